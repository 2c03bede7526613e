"""The `face-service` verbs for face collections: `collections create|list|delete`, `enroll`,
`search`, `export`, `import`.

Locally (the default) they run the same use cases as the HTTP routes, in this process, on the store
the settings name: with SQLite, only while no service holds DATA_DIR (the store admits one process).
With `--url` (or FACE_SERVICE_URL) they ask that running service instead (app/cli_remote.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from app import cli_people, cli_photos
from app.settings import Settings
from domain.errors import FaceServiceError, StoreUnavailable
from domain.quality import DEFAULT_ENROLL_QUALITY, FLOOR_NAMES, quality_floor

if TYPE_CHECKING:
    from app.bootstrap import Container
    from domain.use_cases.collections import Collections

URL_VARIABLE = "FACE_SERVICE_URL"  # --url's default
URL_HELP = (
    "a running service to act on, over HTTP, with the key in FACE_SERVICE_API_KEY or API_KEY "
    "(default: FACE_SERVICE_URL; without either, this process opens the store itself)"
)


def add_commands(commands: Any) -> None:
    remote = argparse.ArgumentParser(add_help=False)
    remote.add_argument("--url", help=URL_HELP)
    collections = commands.add_parser("collections", help="create, list or delete face collections")
    verbs = collections.add_subparsers(dest="verb", required=True, metavar="{create,list,delete}")
    create = verbs.add_parser("create", parents=[remote], help="create a collection pinned to the current model")
    create.add_argument("name", help="the collection's name: 1 to 64 letters, digits, '.', '_' or '-'")
    create.add_argument("--threshold", type=float, help="its match threshold (default: MATCH_THRESHOLD)")
    verbs.add_parser("list", parents=[remote], help="every collection, as JSON lines")
    delete = verbs.add_parser(
        "delete", parents=[remote], help="delete a collection and every face in it; prints what it deleted"
    )
    delete.add_argument("name", help="the collection to delete")
    enroll = commands.add_parser(
        "enroll", parents=[remote], help="enroll a folder of folders: each subfolder's name is the subject"
    )
    enroll.add_argument("collection", help="the collection to enroll into (it must exist)")
    enroll.add_argument("folder", type=Path, help="a folder with one subfolder of photos per subject")
    enroll.add_argument("--largest", action="store_true", help="take the largest face of a photo with several")
    enroll.add_argument(
        "--quality",
        choices=FLOOR_NAMES,
        default=DEFAULT_ENROLL_QUALITY.value,
        help="refuse a face of a lower quality level (code low_quality_face, with its reasons); none: no floor "
        "(default: %(default)s)",
    )
    search = commands.add_parser(
        "search", parents=[remote], help="who is in this image: the best subjects for each face"
    )
    search.add_argument("collection", help="the collection to search")
    search.add_argument("image", type=Path, help="the photo: every face in it is searched")
    search.add_argument("--top-k", type=int, default=None, help="subjects per face (default 5)")
    search.add_argument(
        "--min-quality",
        choices=FLOOR_NAMES,
        default="none",
        help="search only faces of at least this quality level; the others are listed in skipped (default: none)",
    )
    export = commands.add_parser("export", parents=[remote], help="export a collection as JSON lines")
    export.add_argument("collection", help="the collection to export")
    export.add_argument("-o", "--output", type=Path, help="file to write (default: stdout)")
    import_ = commands.add_parser("import", parents=[remote], help="import an export (JSON lines) into a collection")
    import_.add_argument("collection", help="the collection to import into (created if it does not exist)")
    import_.add_argument("file", type=Path, help="an export's JSON lines (`face-service export`)")
    cli_photos.add_commands(commands, remote)
    cli_people.add_commands(commands, remote)


COMMANDS = ("collections", "enroll", "search", "export", "import", "photos", "people")


def in_process(settings: Settings) -> Container:
    from app.bootstrap import bootstrap

    # This process runs the use cases itself: inference on its own threads, models loaded here.
    return bootstrap(dataclasses.replace(settings, inference_isolation="thread"))


def run(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return run_here(settings, args)
    except StoreUnavailable as error:
        if settings.gallery() != "sqlite":
            raise
        raise StoreUnavailable(
            f"{error.message}. If a running service holds it, ask that service instead: "
            "--url http://HOST:PORT (or FACE_SERVICE_URL), with its key in FACE_SERVICE_API_KEY"
        ) from error


def run_here(settings: Settings, args: argparse.Namespace) -> int:
    from adapters.wire import collections as wire

    container = in_process(settings)
    collections: Collections = container.collections()
    try:
        if args.command == "collections":
            if args.verb == "create":
                return emit(wire.collection(collections.create(args.name, args.threshold)))
            if args.verb == "list":
                for info in collections.all():
                    emit(wire.collection(info))
                return 0
            deleted = collections.get(args.name)
            collections.delete(args.name)
            return emit(DeletedCollection(deleted.name, deleted.subjects, deleted.faces))
        if args.command == "enroll":
            return enroll_folder(container, collections, args.collection, args.folder, args.largest, args.quality)
        if args.command == "search":
            extraction = container.service().extract(args.image.read_bytes(), all_faces=True)
            return emit(
                wire.search(
                    collections.search_extraction(
                        args.collection, extraction, args.top_k, quality_floor(args.min_quality)
                    )
                )
            )
        if args.command == "photos":
            return photos_here(container, collections, settings, args)
        if args.command == "people":
            return people_here(collections, args)
        if args.command == "export":
            return export(collections, args.collection, args.output)
        return import_file(collections, args.collection, args.file, settings)
    finally:
        container.gallery().close()


class DeletedCollection(msgspec.Struct):
    """What `collections delete` prints: the collection, and how many subjects and faces went with it."""

    name: str
    deleted_subjects: int
    deleted_faces: int


def emit(record: msgspec.Struct) -> int:
    print(msgspec.json.encode(record).decode(), flush=True)
    return 0


def enroll_folder(
    container: Container, collections: Collections, name: str, folder: Path, largest: bool, quality: str
) -> int:
    """Every image in each subfolder of `folder`, enrolled under the subfolder's name. One JSON line per
    image (its face id, or its error); a progress bar on a terminal."""
    from tqdm import tqdm

    from adapters.wire import collections as wire
    from app.image_files import image_files
    from domain.use_cases.collections import EnrollOptions, PoorFace, image_digest

    if not folder.is_dir():
        raise FaceServiceError(f"{folder} is not a folder of subject folders")
    service = container.service()
    options = EnrollOptions(largest=largest, min_quality=quality_floor(quality))
    subjects = [subject for subject in sorted(folder.iterdir()) if subject.is_dir()]
    jobs = [(subject.name, path) for subject in subjects for path in image_files([subject])]
    status = 0
    for subject, path in tqdm(jobs, unit="image", disable=None, file=sys.stderr, leave=False):
        try:
            data = path.read_bytes()
            enrolled = collections.enroll_extraction(name, subject, service.extract(data), image_digest(data), options)
            record = msgspec.structs.asdict(wire.enrollment(enrolled))
            print(msgspec.json.encode({"file": str(path), **record}).decode())
        except FaceServiceError as error:
            status = 1
            failure: dict[str, object] = {"file": str(path), "error": error.message, "code": error.code}
            if isinstance(error, PoorFace) and error.reasons is not None:
                failure["reasons"] = [reason.value for reason in error.reasons]
            print(msgspec.json.encode(failure).decode())
    return status


def export(collections: Collections, name: str, output: Path | None) -> int:
    from adapters.wire.collection_export import export_chunks

    header, faces = collections.export(name)
    sink = output.open("wb") if output else sys.stdout.buffer
    try:
        for chunk in export_chunks(header, faces):
            sink.write(chunk)
    finally:
        if output:
            sink.close()
    return 0


def import_file(collections: Collections, name: str, path: Path, settings: Settings) -> int:
    """As the HTTP route does it: every line checked (and a bad one named) before anything is stored,
    then one transaction."""
    from adapters.wire import collections as wire
    from adapters.wire.collection_export import IMPORT_FEED_BYTES, ImportStager

    stager = ImportStager(collections, name, settings.max_import_line_bytes, settings.import_spool_dir())
    try:
        with path.open("rb") as source:
            while data := source.read(IMPORT_FEED_BYTES):
                stager.feed(data)
        stager.finish()
        assert stager.header is not None
        outcome = collections.import_faces(name, stager.header, stager.records())
    finally:
        stager.close()
    return emit(wire.ImportResponse(name, outcome.added))


class LocalPhotos:
    """photos index's target in this process: the routes' use cases, the models on this process's
    threads (they release the GIL), the store's calls one at a time."""

    def __init__(self, container: Container, collections: Collections, workers: int) -> None:
        self._service = container.service()
        self._photos = collections.photos
        self._workers = workers
        self._store = threading.Lock()

    def photo_ids(self, collection: str) -> Iterator[str]:
        after: str | None = None
        while page := self._photos.page(collection, after, 1000):
            yield from (photo.photo_id for photo in page)
            after = page[-1].photo_id

    def index(self, collection: str, photo_id: str, data: bytes, options: dict[str, Any]) -> dict[str, Any]:
        from adapters.wire import photos as wire
        from domain.use_cases.collections import image_digest
        from domain.use_cases.photos import PhotoFaces, PhotoOptions, chosen_faces

        rules = PhotoOptions(quality_floor(options["quality"]), *photo_limits(options))
        digest = image_digest(data)
        with self._store:
            known = self._photos.already_indexed(collection, photo_id, digest)
        if known is None:  # only now do the models run
            found, extraction = self._service.extract_chosen(data, chosen_faces(rules))
            with self._store:
                known = self._photos.index(collection, photo_id, PhotoFaces(digest, found, extraction), rules)
        answer: dict[str, Any] = msgspec.to_builtins(wire.indexed_photo(known))
        return answer

    def default_concurrency(self) -> int:
        return self._workers


def photo_limits(options: dict[str, Any]) -> tuple[int, int]:
    from domain.use_cases.photos import MAX_FACES_PER_PHOTO

    return options.get("max_faces", MAX_FACES_PER_PHOTO), options.get("min_face_size", 0)


def photos_here(container: Container, collections: Collections, settings: Settings, args: argparse.Namespace) -> int:
    from adapters.wire import photos as wire

    if args.verb == "index":
        return cli_photos.index_photos(LocalPhotos(container, collections, settings.inference_workers), args)
    photos = collections.photos
    if args.verb == "search":
        from domain.use_cases.photos import DEFAULT_PHOTO_TOP_K

        extraction = container.service().extract(args.image.read_bytes(), all_faces=True)
        found = photos.search_extraction(
            args.collection,
            extraction,
            args.face,
            args.top_k or DEFAULT_PHOTO_TOP_K,
            args.min_similarity,
            None,
            None,
        )
        return cli_photos.print_search(msgspec.to_builtins(wire.photo_search(found)), args.json)
    if args.verb == "list":
        after: str | None = None
        while page := photos.page(args.collection, after, 1000):
            for photo in wire.photos(page, len(page)).photos:
                emit(photo)
            after = page[-1].photo_id
        return 0
    status = 0
    for photo_id in args.photo_ids:
        try:
            emit(wire.DeletedPhotoResponse(photo_id, photos.delete(args.collection, photo_id)))
        except FaceServiceError as error:
            if error.code == "collection_not_found":
                raise
            status = 1
            print(msgspec.json.encode({"photo_id": photo_id, "error": error.message, "code": error.code}).decode())
    return status


def people_here(collections: Collections, args: argparse.Namespace) -> int:
    """The people verbs on this process's store; a re-cluster runs here, to the end."""
    from adapters.wire import people as wire

    people = collections.people
    if args.verb == "cluster":
        # Recorded in the store as the service's are: one at a time per collection with the replicas
        # on the same database, its progress visible to their status route.
        jobs = collections.cluster_jobs
        shown = cli_people.ProgressLines()
        job, claimed = jobs.claim(args.collection)
        if claimed:
            with jobs.heartbeat():
                job = jobs.run(job, shown)
        elif args.wait:  # another process runs it: follow it in the store
            shown(job.stage, job.progress)
            while job.active:
                time.sleep(cli_people.POLL_S)
                job = jobs.status(args.collection)
                shown(job.stage, job.progress)
        emit(wire.cluster_job(job))
        return 1 if job.state == "failed" else 0
    if args.verb == "list":
        after: str | None = None
        while page := people.page(args.collection, after, 1000):
            for person in wire.people(page, len(page)).people:
                emit(person)
            after = page[-1].person_id
        return 0
    if args.verb == "name":
        named, labelled = people.name(args.collection, args.person_id, args.external_id)
        return emit(wire.NamedPersonResponse(args.external_id, labelled, wire.summary(named)))
    if args.verb == "merge":
        return emit(wire.summary(people.merge(args.collection, args.person_id, args.other_person_id)))
    if args.verb == "split":
        return emit(wire.summary(people.split(args.collection, args.person_id, args.face_ids)))
    if args.verb == "delete":
        return emit(wire.DeletedPersonResponse(args.person_id, people.delete(args.collection, args.person_id)))
    left = people.refuse(args.collection, args.person_id, args.face_id)
    return emit(wire.NotThisPersonResponse(args.face_id, None if left is None else wire.summary(left)))
