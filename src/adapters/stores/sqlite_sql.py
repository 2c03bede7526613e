"""The SQLite gallery's schema (its migrations) and the statements it runs (sqlite.py)."""

from __future__ import annotations

SCHEMA_VERSION = 3

# Each entry takes the schema from version i to i + 1 (PRAGMA user_version).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE collections (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            model_id TEXT NOT NULL,
            dimension INTEGER NOT NULL,
            threshold REAL NOT NULL,
            created_at INTEGER NOT NULL
        )""",
        """CREATE TABLE subjects (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            external_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (collection_id, external_id)
        )""",
        """CREATE TABLE faces (
            seq INTEGER PRIMARY KEY,
            face_id TEXT NOT NULL UNIQUE,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            subject_id INTEGER NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
            source_digest TEXT NOT NULL,
            x1 REAL, y1 REAL, x2 REAL, y2 REAL,
            confidence REAL,
            created_at INTEGER NOT NULL,
            embedding BLOB NOT NULL,
            UNIQUE (subject_id, source_digest)
        )""",
        "CREATE INDEX faces_by_collection ON faces (collection_id, seq)",
    ),
    # 2: each face keeps its landmarks and quality (JSON text, face_rows.py); faces stored before have NULL.
    (
        "ALTER TABLE faces ADD COLUMN landmarks TEXT",
        "ALTER TABLE faces ADD COLUMN quality TEXT",
    ),
    # 3: photos. A face belongs to a subject, a photo, or both: `subject_id` may be NULL now, which
    # SQLite can only change by copying the table (the rows keep their seq, so their order).
    (
        """CREATE TABLE photos (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            photo_id TEXT NOT NULL,
            source_digest TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (collection_id, photo_id)
        )""",
        """CREATE TABLE faces_3 (
            seq INTEGER PRIMARY KEY,
            face_id TEXT NOT NULL UNIQUE,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            subject_id INTEGER REFERENCES subjects (id) ON DELETE CASCADE,
            photo_ref INTEGER REFERENCES photos (id) ON DELETE CASCADE,
            source_digest TEXT NOT NULL,
            x1 REAL, y1 REAL, x2 REAL, y2 REAL,
            confidence REAL,
            created_at INTEGER NOT NULL,
            embedding BLOB NOT NULL,
            landmarks TEXT,
            quality TEXT,
            CHECK (subject_id IS NOT NULL OR photo_ref IS NOT NULL),
            UNIQUE (subject_id, source_digest)
        )""",
        """INSERT INTO faces_3 (seq, face_id, collection_id, subject_id, source_digest, x1, y1, x2, y2, confidence,
            created_at, embedding, landmarks, quality)
           SELECT seq, face_id, collection_id, subject_id, source_digest, x1, y1, x2, y2, confidence,
            created_at, embedding, landmarks, quality FROM faces""",
        "DROP TABLE faces",
        "ALTER TABLE faces_3 RENAME TO faces",
        "CREATE INDEX faces_by_collection ON faces (collection_id, seq)",
        "CREATE INDEX faces_by_photo ON faces (photo_ref, seq) WHERE photo_ref IS NOT NULL",
    ),
)

# A face's columns in face_rows.COLUMNS' order, after any leading columns a query names first.
FACE_COLUMNS = (
    " f.face_id, s.external_id, f.embedding, f.x1, f.y1, f.x2, f.y2, f.confidence, f.source_digest, f.created_at,"
    " f.landmarks, f.quality, p.photo_id"
)
FACES = (
    FACE_COLUMNS + " FROM faces f LEFT JOIN subjects s ON s.id = f.subject_id LEFT JOIN photos p ON p.id = f.photo_ref"
)
SUBJECT_FACES = "SELECT" + FACES + " WHERE f.subject_id = ? ORDER BY f.created_at, f.seq"
FACE_TO_DELETE = "SELECT f.seq, f.subject_id," + FACES + " WHERE f.face_id = ? AND f.collection_id = ?"
EXPORT_FACES = "SELECT f.seq," + FACES + " WHERE f.collection_id = ? AND f.seq > ? ORDER BY f.seq LIMIT ?"
SUBJECTS = (
    "SELECT s.external_id, s.created_at, (SELECT COUNT(*) FROM faces f WHERE f.subject_id = s.id)"
    " FROM subjects s WHERE s.collection_id = ?"
)
SUBJECTS_PAGE = SUBJECTS + " ORDER BY s.external_id LIMIT ?"
SUBJECTS_AFTER = SUBJECTS + " AND s.external_id > ? ORDER BY s.external_id LIMIT ?"
# The batch's subjects and the faces already stored for its (external id, source digest) pairs, each in
# one query: the batch's keys travel as one JSON array, read first (CROSS JOIN fixes the order) so
# that every key is one look-up in the unique indexes.
SUBJECT_IDS = (
    "SELECT s.external_id, s.id FROM json_each(?) AS wanted CROSS JOIN subjects s"
    " WHERE s.collection_id = ? AND s.external_id = wanted.value"
)
FACES_BY_SOURCE = (
    "SELECT" + FACE_COLUMNS + " FROM json_each(?) AS wanted CROSS JOIN subjects s CROSS JOIN faces f"
    " LEFT JOIN photos p ON p.id = f.photo_ref"
    " WHERE s.collection_id = ? AND s.external_id = json_extract(wanted.value, '$[0]')"
    " AND f.subject_id = s.id AND f.source_digest = json_extract(wanted.value, '$[1]')"
)
# The batch's photos: photo id -> (row id, source digest).
PHOTO_ROWS = (
    "SELECT p.photo_id, p.id, p.source_digest FROM json_each(?) AS wanted CROSS JOIN photos p"
    " WHERE p.collection_id = ? AND p.photo_id = wanted.value"
)
PHOTOS = (
    "SELECT p.photo_id, p.source_digest, p.created_at, (SELECT COUNT(*) FROM faces f WHERE f.photo_ref = p.id)"
    " FROM photos p WHERE p.collection_id = ?"
)
PHOTOS_PAGE = PHOTOS + " ORDER BY p.photo_id LIMIT ?"
PHOTOS_AFTER = PHOTOS + " AND p.photo_id > ? ORDER BY p.photo_id LIMIT ?"
PHOTO = "SELECT id, source_digest, created_at FROM photos WHERE collection_id = ? AND photo_id = ?"
PHOTO_FACES = "SELECT" + FACES + " WHERE f.photo_ref = ? ORDER BY f.seq"
# What a photo search answers of its hits' faces (at most a page of them).
HIT_FACES = (
    "SELECT f.face_id, s.external_id, f.x1, f.y1, f.x2, f.y2 FROM json_each(?) AS wanted CROSS JOIN faces f"
    " LEFT JOIN subjects s ON s.id = f.subject_id WHERE f.face_id = wanted.value AND f.collection_id = ?"
)
INSERT_FACE = (
    "INSERT INTO faces (face_id, collection_id, subject_id, photo_ref, source_digest, x1, y1, x2, y2, confidence,"
    " created_at, embedding, landmarks, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# What a start loads of each face, and whether its landmarks or quality are ones no write could have
# stored (face_rows.py decodes them fully whenever a face is read): checked in the same pass.
LOAD_FACES = (
    "SELECT subject_id, face_id, embedding,"
    " (landmarks IS NOT NULL AND CASE WHEN json_valid(landmarks) THEN json_array_length(landmarks) != 5 ELSE 1 END)"
    " OR (quality IS NOT NULL AND CASE WHEN json_valid(quality) THEN"
    " ifnull(json_extract(quality, '$.level'), '') NOT IN ('low', 'medium', 'high')"
    " OR ifnull(json_type(quality, '$.score'), '') NOT IN ('real', 'integer')"
    " OR json_extract(quality, '$.score') NOT BETWEEN 0 AND 1"
    " OR json_type(quality, '$.reasons') IS NOT 'array' ELSE 1 END)"
    ", photo_ref FROM faces WHERE collection_id = ? ORDER BY seq"
)
