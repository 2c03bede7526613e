"""The gallery on PostgreSQL + pgvector: `gallery.PostgresGallery`, with its tables (`schema`), how it
reads rows back (`rows`), adds faces (`additions`), searches (`search`) and sends vectors
(`vector_codec`). Imported only when the PostgreSQL store is chosen (psycopg is needed then only)."""
