"""The SQLite gallery's schema (its migrations) and the statements it runs (sqlite.py)."""

from __future__ import annotations

SCHEMA_VERSION = 6

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
    # 4: people (domain/people.py): each face in at most one person, and the corrections ("not this
    # person") as pairs of faces, smaller seq first. A face's delete cascades to both; the triggers
    # drop a person left with no face, whichever way its last face left.
    (
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY,
            collection_id INTEGER NOT NULL REFERENCES collections (id) ON DELETE CASCADE,
            person_id TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            UNIQUE (collection_id, person_id)
        )""",
        """CREATE TABLE person_faces (
            face_seq INTEGER PRIMARY KEY REFERENCES faces (seq) ON DELETE CASCADE,
            person_ref INTEGER NOT NULL REFERENCES people (id) ON DELETE CASCADE
        )""",
        "CREATE INDEX person_faces_by_person ON person_faces (person_ref, face_seq)",
        """CREATE TABLE person_refusals (
            face_seq INTEGER NOT NULL REFERENCES faces (seq) ON DELETE CASCADE,
            other_seq INTEGER NOT NULL REFERENCES faces (seq) ON DELETE CASCADE,
            PRIMARY KEY (face_seq, other_seq),
            CHECK (face_seq < other_seq)
        ) WITHOUT ROWID""",
        "CREATE INDEX person_refusals_by_other ON person_refusals (other_seq)",
        """CREATE TRIGGER people_emptied_by_delete AFTER DELETE ON person_faces
            WHEN NOT EXISTS (SELECT 1 FROM person_faces WHERE person_ref = OLD.person_ref)
            BEGIN DELETE FROM people WHERE id = OLD.person_ref; END""",
        """CREATE TRIGGER people_emptied_by_move AFTER UPDATE OF person_ref ON person_faces
            WHEN NOT EXISTS (SELECT 1 FROM person_faces WHERE person_ref = OLD.person_ref)
            BEGIN DELETE FROM people WHERE id = OLD.person_ref; END""",
    ),
    # 5: each collection's last re-cluster job (domain/cluster_jobs.py), its outcome once done.
    (
        """CREATE TABLE cluster_jobs (
            collection_id INTEGER PRIMARY KEY REFERENCES collections (id) ON DELETE CASCADE,
            job_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
            stage TEXT NOT NULL,
            progress REAL NOT NULL CHECK (progress BETWEEN 0 AND 1),
            started_at INTEGER NOT NULL,
            heartbeat_at INTEGER NOT NULL,
            finished_at INTEGER,
            faces INTEGER, grouped INTEGER, people INTEGER, assigned INTEGER,
            error TEXT
        )""",
    ),
    # 6: a person a user shaped by hand (a merge, a split) is kept: a re-cluster keeps it whole; each
    # collection's people revision, moved by every correction, so a re-cluster never undoes one that
    # landed while it ran (PeopleStore.people_revision).
    (
        "ALTER TABLE people ADD COLUMN kept INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE collections ADD COLUMN people_revision INTEGER NOT NULL DEFAULT 0",
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
# A start's load (sqlite_load.py): a collection's subjects and photos, each table as one row (row ids
# and names, space-separated: names hold no space), and its faces a chunk at a time, each chunk as one
# row of aggregates. LOAD_CHUNK_END finds where each chunk of ? + 1 faces ends, from the index alone.
LOAD_SUBJECTS = (
    "SELECT group_concat(id, ' '), group_concat(external_id, ' '), count(*) FROM subjects WHERE collection_id = ?"
)
LOAD_PHOTOS = "SELECT group_concat(id, ' '), group_concat(photo_id, ' '), count(*) FROM photos WHERE collection_id = ?"
LOAD_CHUNK_END = "SELECT seq FROM faces WHERE collection_id = ? AND seq > ? ORDER BY seq LIMIT 1 OFFSET ?"
LOAD_TAIL_COUNT = "SELECT count(*) FROM faces WHERE collection_id = ? AND seq > ?"  # the last chunk's faces
# The vectors end to end, the face ids end to end, subject and photo row ids as 16 hex digits each (0:
# none), and counts of the rows a write could not have stored: a vector of the wrong size, a face id
# of the wrong type or length, landmarks or quality face_rows.py could not decode.
LOAD_CHUNK = (
    "SELECT count(*), CAST(group_concat(embedding, '') AS BLOB), group_concat(face_id, ''),"
    " group_concat(printf('%016x', ifnull(subject_id, 0)), ''),"
    " group_concat(printf('%016x', ifnull(photo_ref, 0)), ''),"
    " total(typeof(embedding) IS NOT 'blob' OR length(embedding) != :bytes),"
    " total(typeof(face_id) IS NOT 'text' OR length(face_id) != 32),"
    " total((landmarks IS NOT NULL AND CASE WHEN json_valid(landmarks)"
    " THEN json_array_length(landmarks) != 5 ELSE 1 END)"
    " OR (quality IS NOT NULL AND CASE WHEN json_valid(quality) THEN"
    " ifnull(json_extract(quality, '$.level'), '') NOT IN ('low', 'medium', 'high')"
    " OR ifnull(json_type(quality, '$.score'), '') NOT IN ('real', 'integer')"
    " OR json_extract(quality, '$.score') NOT BETWEEN 0 AND 1"
    " OR json_type(quality, '$.reasons') IS NOT 'array' ELSE 1 END))"
    " FROM faces WHERE collection_id = :collection AND seq > :after AND seq <= :last"
)
# People: a page of them with their face count and the seq of the face that shows them (the best
# quality score, then the first stored: people_rows.representative's rule).
PEOPLE = (
    "SELECT pe.person_id, pe.created_at, (SELECT COUNT(*) FROM person_faces pf WHERE pf.person_ref = pe.id),"
    " (SELECT pf.face_seq FROM person_faces pf JOIN faces f ON f.seq = pf.face_seq WHERE pf.person_ref = pe.id"
    " ORDER BY ifnull(json_extract(f.quality, '$.score'), 0) DESC, f.seq LIMIT 1), pe.kept"
    " FROM people pe WHERE pe.collection_id = ?"
)
PEOPLE_PAGE = PEOPLE + " ORDER BY pe.person_id LIMIT ?"
PEOPLE_AFTER = PEOPLE + " AND pe.person_id > ? ORDER BY pe.person_id LIMIT ?"
PERSON = "SELECT id, created_at, kept FROM people WHERE collection_id = ? AND person_id = ?"
FACE_BY_SEQ = "SELECT" + FACES + " WHERE f.seq = ?"
PERSON_FACES = "SELECT" + FACES + " JOIN person_faces pf ON pf.face_seq = f.seq WHERE pf.person_ref = ? ORDER BY f.seq"
MEMBERSHIPS = (
    "SELECT f.face_id, pe.person_id FROM people pe JOIN person_faces pf ON pf.person_ref = pe.id"
    " JOIN faces f ON f.seq = pf.face_seq WHERE pe.collection_id = ?"
)
PEOPLE_REVISION = "SELECT people_revision FROM collections WHERE id = ?"
BUMP_PEOPLE_REVISION = "UPDATE collections SET people_revision = people_revision + 1 WHERE id = ?"
KEPT_MEMBERSHIPS = MEMBERSHIPS + " AND pe.kept = 1"
# The people the faces (a JSON array of face seqs) are in, and the person (its row id), become kept.
KEEP_PEOPLE_OF = (
    "UPDATE people SET kept = 1 WHERE id IN (SELECT pf.person_ref FROM json_each(?) AS wanted"
    " JOIN person_faces pf ON pf.face_seq = wanted.value) OR id = ?"
)
REFUSALS = (
    "SELECT min(a.face_id, b.face_id) AS one, max(a.face_id, b.face_id) AS other FROM faces a"
    " JOIN person_refusals r ON r.face_seq = a.seq JOIN faces b ON b.seq = r.other_seq"
    " WHERE a.collection_id = ? ORDER BY one, other"
)
# The batch's faces (a JSON array of face ids): face id -> seq.
FACE_SEQS = (
    "SELECT f.face_id, f.seq FROM json_each(?) AS wanted CROSS JOIN faces f"
    " WHERE f.face_id = wanted.value AND f.collection_id = ?"
)
JOIN_PERSON = (
    "INSERT INTO person_faces (face_seq, person_ref) VALUES (?, ?)"
    " ON CONFLICT (face_seq) DO UPDATE SET person_ref = excluded.person_ref"
)
PEOPLE_REFS = (
    "SELECT pe.person_id, pe.id FROM json_each(?) AS wanted CROSS JOIN people pe"
    " WHERE pe.person_id = wanted.value AND pe.collection_id = ?"
)
PEOPLE_OF = (
    "SELECT f.face_id, pe.person_id FROM json_each(?) AS wanted CROSS JOIN faces f"
    " JOIN person_faces pf ON pf.face_seq = f.seq JOIN people pe ON pe.id = pf.person_ref"
    " WHERE f.face_id = wanted.value AND f.collection_id = ?"
)
# Re-cluster jobs: a job's columns in job_rows' order.
CLUSTER_JOB = """SELECT job_id, state, stage, progress, started_at, heartbeat_at, finished_at, faces, grouped,
    people, assigned, error FROM cluster_jobs WHERE collection_id = ?"""
SAVE_CLUSTER_JOB = """INSERT OR REPLACE INTO cluster_jobs (collection_id, job_id, state, stage, progress,
    started_at, heartbeat_at, finished_at, faces, grouped, people, assigned, error)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""
# At open: this process holds the file (one process per file), so no job it did not start is running.
INTERRUPT_CLUSTER_JOBS = (
    "UPDATE cluster_jobs SET state = 'failed', stage = 'failed', finished_at = heartbeat_at, error = ?"
    " WHERE state IN ('queued', 'running')"
)
