"""Face galleries: where enrolled faces are kept and searched (SQLite, PostgreSQL + pgvector, memory)."""
