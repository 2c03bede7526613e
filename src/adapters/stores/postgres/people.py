"""The PeopleStore port's statements on PostgreSQL (gallery.py's methods call these inside their
transaction; a write holds the collection's row lock, as every other write, so a face cannot be
deleted between being found here and joining a person). schema.py's migration 4 has the tables."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from adapters.stores import job_rows, people_rows
from adapters.stores.face_rows import face_record
from adapters.stores.postgres import rows
from domain.additions import check_merge, plan_labels, unlabels_on_refusal
from domain.cluster_jobs import ClusterJob
from domain.errors import FaceNotFound, InvalidInput, PersonNotFound
from domain.gallery import FaceRecord, GalleryLimits, PersonInfo

Connection = psycopg.Connection[TupleRow]

# A page of people with their face count and the face that shows each (the best quality score, then
# the first stored: people_rows.representative's rule).
PEOPLE = (
    "SELECT p.person_id, p.created_at,"
    " (SELECT count(*) FROM gallery_person_faces pf WHERE pf.collection_id = p.collection_id"
    " AND pf.person_id = p.person_id),"
    " (SELECT f.face_id FROM gallery_person_faces pf JOIN {} f ON f.face_id = pf.face_id"
    " WHERE pf.collection_id = p.collection_id AND pf.person_id = p.person_id"
    " ORDER BY coalesce((f.quality::jsonb ->> 'score')::float8, 0) DESC, f.seq LIMIT 1), p.kept"
    " FROM gallery_people p WHERE p.collection_id = %s AND p.person_id > %s ORDER BY p.person_id LIMIT %s"
)
JOIN_PERSON = (
    "INSERT INTO gallery_person_faces (collection_id, face_id, person_id) VALUES (%s, %s, %s)"
    " ON CONFLICT (collection_id, face_id) DO UPDATE SET person_id = excluded.person_id"
)
NEW_PERSON = "INSERT INTO gallery_people (collection_id, person_id, created_at, kept) VALUES (%s, %s, %s, %s)"


def people(conn: Connection, target: rows.Target, after: str | None, limit: int) -> list[PersonInfo]:
    found = conn.execute(
        sql.SQL(PEOPLE).format(target.table), (target.id, "" if after is None else after, max(0, limit))
    ).fetchall()
    shown = {
        face.face_id: face for face in _faces(conn, target, sql.SQL("face_id = ANY(%s)"), ([row[3] for row in found],))
    }
    return [PersonInfo(row[0], int(row[2]), row[1], shown[row[3]], bool(row[4])) for row in found]


def person(conn: Connection, target: rows.Target, person_id: str) -> tuple[PersonInfo, list[FaceRecord]]:
    row = conn.execute(
        "SELECT created_at, kept FROM gallery_people WHERE collection_id = %s AND person_id = %s",
        (target.id, person_id),
    ).fetchone()
    if row is None:
        raise PersonNotFound(f"the collection has no person {person_id!r}")
    faces = _faces(
        conn,
        target,
        sql.SQL("face_id IN (SELECT face_id FROM gallery_person_faces WHERE collection_id = %s AND person_id = %s)"),
        (target.id, person_id),
    )
    return PersonInfo(person_id, len(faces), row[0], people_rows.representative(faces), bool(row[1])), faces


def memberships(conn: Connection, target: rows.Target, kept_only: bool = False) -> dict[str, str]:
    """Face id -> person id; `kept_only`: the faces of kept people (shaped by hand) only."""
    found = conn.execute(
        "SELECT pf.face_id, pf.person_id FROM gallery_person_faces pf JOIN gallery_people p"
        " ON p.collection_id = pf.collection_id AND p.person_id = pf.person_id"
        " WHERE pf.collection_id = %s AND (p.kept OR NOT %s)",
        (target.id, kept_only),
    ).fetchall()
    return {row[0]: row[1] for row in found}


def people_of(conn: Connection, target: rows.Target, face_ids: Sequence[str]) -> dict[str, str]:
    found = conn.execute(
        "SELECT face_id, person_id FROM gallery_person_faces WHERE collection_id = %s AND face_id = ANY(%s)",
        (target.id, list(face_ids)),
    ).fetchall()
    return {row[0]: row[1] for row in found}


def join_people(conn: Connection, target: rows.Target, joins: Mapping[str, str]) -> int:
    """One statement: the faces and people still stored joined, the others skipped."""
    joined = (
        conn.cursor()
        .execute(
            sql.SQL(
                "INSERT INTO gallery_person_faces (collection_id, face_id, person_id)"
                " SELECT %(c)s, j.face_id, j.person_id"
                " FROM unnest(%(faces)s::text[], %(people)s::text[]) AS j (face_id, person_id)"
                " WHERE EXISTS (SELECT 1 FROM {} f WHERE f.face_id = j.face_id)"
                " AND EXISTS (SELECT 1 FROM gallery_people p"
                " WHERE p.collection_id = %(c)s AND p.person_id = j.person_id)"
                " ON CONFLICT (collection_id, face_id) DO UPDATE SET person_id = excluded.person_id RETURNING 1"
            ).format(target.table),
            {"c": target.id, "faces": list(joins), "people": list(joins.values())},
        )
        .fetchall()
    )
    return len(joined)


def refusals(conn: Connection, target: rows.Target) -> list[tuple[str, str]]:
    found = conn.execute(
        "SELECT face_id, other_id FROM gallery_person_refusals WHERE collection_id = %s ORDER BY face_id, other_id",
        (target.id,),
    ).fetchall()
    return [(row[0], row[1]) for row in found]


def move_faces(conn: Connection, target: rows.Target, face_ids: Sequence[str], person_id: str | None) -> str:
    moving = people_rows.check_face_ids(face_ids)
    stored = _stored(conn, target, moving)
    missing = next((face_id for face_id in moving if face_id not in stored), None)
    if missing is not None:
        raise FaceNotFound(f"the collection has no face {missing!r}")
    if person_id is None:
        person_id = people_rows.new_person_id()
        conn.execute(NEW_PERSON, (target.id, person_id, datetime.now(UTC), True))
    else:
        _check_person(conn, target, person_id)
    # Shaped by hand: the person and those the faces leave are kept (before they move).
    conn.execute(
        "UPDATE gallery_people SET kept = true WHERE collection_id = %(c)s AND (person_id = %(p)s OR person_id IN"
        " (SELECT person_id FROM gallery_person_faces WHERE collection_id = %(c)s AND face_id = ANY(%(f)s)))",
        {"c": target.id, "p": person_id, "f": moving},
    )
    conn.cursor().executemany(JOIN_PERSON, [(target.id, face_id, person_id) for face_id in moving])
    return person_id


def merge_people(conn: Connection, target: rows.Target, person_id: str, other_id: str) -> None:
    _check_person(conn, target, person_id)
    _check_person(conn, target, other_id)
    if person_id == other_id:
        raise InvalidInput("a person cannot be merged with itself")
    check_merge(*(_subjects_of(conn, target, person) for person in (person_id, other_id)))
    conn.execute(
        "UPDATE gallery_person_faces SET person_id = %s WHERE collection_id = %s AND person_id = %s",
        (person_id, target.id, other_id),
    )
    conn.execute(
        "UPDATE gallery_people SET kept = true WHERE collection_id = %s AND person_id = %s", (target.id, person_id)
    )


def refuse_face(conn: Connection, target: rows.Target, person_id: str, face_id: str) -> tuple[bool, str | None]:
    """The face out of the person, kept apart from its other faces, and unlabelled when naming labelled
    it (`unlabels_on_refusal`); whether the person is left, and the subject that lost the face (the
    caller's counts)."""
    _check_person(conn, target, person_id)
    found = _faces(
        conn,
        target,
        sql.SQL(
            "face_id = %s AND face_id IN (SELECT face_id FROM gallery_person_faces"
            " WHERE collection_id = %s AND person_id = %s)"
        ),
        (face_id, target.id, person_id),
    )
    if not found:
        raise FaceNotFound(f"person {person_id!r} has no face {face_id!r}")
    unlabelled = found[0].external_id if unlabels_on_refusal(found[0]) else None
    if unlabelled is not None:
        conn.execute(sql.SQL("UPDATE {} SET external_id = NULL WHERE face_id = %s").format(target.table), (face_id,))
    gone = conn.execute(
        "DELETE FROM gallery_person_faces WHERE collection_id = %s AND face_id = %s AND person_id = %s RETURNING 1",
        (target.id, face_id, person_id),
    ).fetchone()
    if gone is None:
        raise FaceNotFound(f"person {person_id!r} has no face {face_id!r}")
    conn.execute(
        "INSERT INTO gallery_person_refusals (collection_id, face_id, other_id)"
        " SELECT %(c)s, least(%(f)s, face_id), greatest(%(f)s, face_id) FROM gallery_person_faces"
        " WHERE collection_id = %(c)s AND person_id = %(p)s ON CONFLICT DO NOTHING",
        {"c": target.id, "f": face_id, "p": person_id},
    )
    left = conn.execute(
        "SELECT 1 FROM gallery_people WHERE collection_id = %s AND person_id = %s", (target.id, person_id)
    ).fetchone()
    return left is not None, unlabelled


def delete_person(conn: Connection, target: rows.Target, person_id: str) -> list[tuple[str | None, str | None]]:
    """Delete the person's faces; each one's (external_id, photo_id), for the caller's counts. The faces'
    delete trigger takes them out of people and corrections, and then drops the emptied person."""
    _check_person(conn, target, person_id)  # PersonNotFound before anything is deleted
    gone = conn.execute(
        sql.SQL(
            "DELETE FROM {} WHERE face_id IN (SELECT face_id FROM gallery_person_faces"
            " WHERE collection_id = %s AND person_id = %s) RETURNING external_id, photo_id"
        ).format(target.table),
        (target.id, person_id),
    ).fetchall()
    return [(row[0], row[1]) for row in gone]


def people_revision(conn: Connection, target: rows.Target) -> int:
    row = conn.execute("SELECT people_revision FROM gallery_collections WHERE id = %s", (target.id,)).fetchone()
    assert row is not None
    return int(row[0])


def corrected(conn: Connection, target: rows.Target) -> None:
    """A correction's mark, in its transaction: the people revision moves (a running pass stores nothing)."""
    conn.execute("UPDATE gallery_collections SET people_revision = people_revision + 1 WHERE id = %s", (target.id,))


def replace_people(
    conn: Connection,
    target: rows.Target,
    groups: Sequence[Sequence[str]],
    considered: Collection[str],
    based_on: int | None = None,
) -> int | None:
    """`based_on`: PeopleStore.replace_people's; the caller holds the collection's row lock, so no
    correction lands between this check and the commit."""
    people_rows.check_groups(groups)
    if based_on is not None and people_revision(conn, target) != based_on:
        return None  # corrected since the pass read it: its groups would undo that
    stored = _stored(conn, target, [face_id for group in groups for face_id in group])
    kept = [[face_id for face_id in group if face_id in stored] for group in groups]
    kept = [group for group in kept if group]
    old = memberships(conn, target)
    was_kept = set(memberships(conn, target, kept_only=True).values())
    ids = people_rows.carried_ids(kept, old, was_kept)
    kept = people_rows.with_unread_faces(kept, ids, old, considered)
    created: dict[str, datetime] = {
        row[0]: row[1]
        for row in conn.execute(
            "SELECT person_id, created_at FROM gallery_people WHERE collection_id = %s", (target.id,)
        )
    }
    conn.execute("DELETE FROM gallery_people WHERE collection_id = %s", (target.id,))
    now = datetime.now(UTC)
    cursor = conn.cursor()
    cursor.executemany(
        NEW_PERSON,
        [(target.id, person_id, created.get(person_id, now), person_id in was_kept) for person_id in ids],
    )
    cursor.executemany(
        JOIN_PERSON,
        [(target.id, face_id, person_id) for person_id, group in zip(ids, kept, strict=True) for face_id in group],
    )
    return len(ids)


def label_faces(
    conn: Connection,
    target: rows.Target,
    collection: str,
    face_ids: Sequence[str],
    external_id: str,
    limits: GalleryLimits,
) -> int:
    unique = list(dict.fromkeys(face_ids))
    found = {face.face_id: face for face in _faces(conn, target, sql.SQL("face_id = ANY(%s)"), (unique,))}
    missing = next((face_id for face_id in unique if face_id not in found), None)
    if missing is not None:
        raise FaceNotFound(f"the collection has no face {missing!r}")
    subject = conn.execute(
        "SELECT faces FROM gallery_subjects WHERE collection_id = %s AND external_id = %s", (target.id, external_id)
    ).fetchone()
    held = conn.execute(
        sql.SQL("SELECT source_digest FROM {} WHERE external_id = %s").format(target.table), (external_id,)
    ).fetchall()
    chosen = plan_labels(
        collection,
        [found[face_id] for face_id in unique],
        external_id,
        limits,
        subject_exists=subject is not None,
        subjects=target.subjects,
        subject_faces=0 if subject is None else int(subject[0]),
        held_digests={row[0] for row in held},
    )
    if not chosen:
        return 0
    if subject is None:
        conn.execute(
            "INSERT INTO gallery_subjects (collection_id, external_id, created_at, faces) VALUES (%s, %s, %s, 0)",
            (target.id, external_id, datetime.now(UTC)),
        )
    conn.execute(
        sql.SQL("UPDATE {} SET external_id = %s WHERE face_id = ANY(%s)").format(target.table),
        (external_id, [face.face_id for face in chosen]),
    )
    faces = conn.execute(
        "UPDATE gallery_subjects SET faces = faces + %s WHERE collection_id = %s AND external_id = %s RETURNING faces",
        (len(chosen), target.id, external_id),
    ).fetchone()
    assert faces is not None
    conn.execute(
        "UPDATE gallery_collections SET subjects = subjects + %s, most_subject_faces = greatest(most_subject_faces, %s)"
        " WHERE id = %s",
        (0 if subject is not None else 1, faces[0], target.id),
    )
    return len(chosen)


def _subjects_of(conn: Connection, target: rows.Target, person_id: str) -> set[str]:
    found = conn.execute(
        sql.SQL(
            "SELECT DISTINCT f.external_id FROM gallery_person_faces pf JOIN {} f ON f.face_id = pf.face_id"
            " WHERE pf.collection_id = %s AND pf.person_id = %s AND f.external_id IS NOT NULL"
        ).format(target.table),
        (target.id, person_id),
    ).fetchall()
    return {row[0] for row in found}


def _check_person(conn: Connection, target: rows.Target, person_id: str) -> None:
    row = conn.execute(
        "SELECT 1 FROM gallery_people WHERE collection_id = %s AND person_id = %s", (target.id, person_id)
    ).fetchone()
    if row is None:
        raise PersonNotFound(f"the collection has no person {person_id!r}")


def _stored(conn: Connection, target: rows.Target, face_ids: list[str]) -> set[str]:
    found = conn.execute(
        sql.SQL("SELECT face_id FROM {} WHERE face_id = ANY(%s)").format(target.table), (face_ids,)
    ).fetchall()
    return {row[0] for row in found}


def _faces(conn: Connection, target: rows.Target, where: sql.SQL, values: tuple[object, ...]) -> list[FaceRecord]:
    query = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY seq").format(sql.SQL(rows.FACE_COLUMNS), target.table, where)
    return [face_record(row) for row in conn.cursor(binary=True).execute(query, values).fetchall()]


# Re-cluster jobs (the ClusterJobStore port): a job's columns in job_rows' order. A claim is one
# statement, so two replicas' claims of one collection are settled by the row's lock: it replaces the
# collection's job unless that one is queued or running with a fresh heartbeat.
CLAIM_JOB = """INSERT INTO gallery_cluster_jobs (collection_id, job_id, state, stage, progress, started_at,
        heartbeat_at, finished_at, faces, grouped, people, assigned, error)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (collection_id) DO UPDATE SET (job_id, state, stage, progress, started_at, heartbeat_at,
        finished_at, faces, grouped, people, assigned, error)
        = ROW(excluded.job_id, excluded.state, excluded.stage, excluded.progress, excluded.started_at,
        excluded.heartbeat_at, excluded.finished_at, excluded.faces, excluded.grouped, excluded.people,
        excluded.assigned, excluded.error)
    WHERE NOT (gallery_cluster_jobs.state IN ('queued', 'running') AND gallery_cluster_jobs.heartbeat_at >= %s)
    RETURNING job_id"""
SAVE_JOB = """UPDATE gallery_cluster_jobs SET (job_id, state, stage, progress, started_at, heartbeat_at,
        finished_at, faces, grouped, people, assigned, error) = ROW(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    WHERE collection_id = (SELECT id FROM gallery_collections WHERE name = %s) AND job_id = %s RETURNING 1"""
JOB = """SELECT job_id, state, stage, progress, started_at, heartbeat_at, finished_at, faces, grouped, people,
    assigned, error FROM gallery_cluster_jobs WHERE collection_id = %s"""


def _same(moment: datetime) -> datetime:
    return moment


def claim_cluster_job(
    conn: Connection, target: rows.Target, job: ClusterJob, stale_before: datetime
) -> ClusterJob | None:
    """The job in the way, or None when `job` was recorded."""
    claimed = conn.execute(CLAIM_JOB, (target.id, *job_rows.values(job, _same), stale_before)).fetchone()
    if claimed is not None:
        return None
    held = cluster_job(conn, target, job.collection)
    assert held is not None  # the row the claim did not replace (a collection's delete waits for us)
    return held


def save_cluster_job(conn: Connection, job: ClusterJob) -> bool:
    saved = conn.execute(SAVE_JOB, (*job_rows.values(job, _same), job.collection, job.job_id)).fetchone()
    return saved is not None


def cluster_job(conn: Connection, target: rows.Target, collection: str) -> ClusterJob | None:
    row = conn.execute(JOB, (target.id,)).fetchone()
    return None if row is None else job_rows.job(collection, row, _same)
