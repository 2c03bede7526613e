"""`face-service photos index|search|list|delete`: the photos of a collection (docs/api.md, "Photos").

`photos index COLLECTION PATH...` walks folders (recursively, in name order) and `--list` files for
images and indexes each under a photo id made from its path: the path relative to the folder given,
`/` written as `:`, any other character outside the id alphabet as `_`. It lists the collection's
photos first and skips the ids already there, so a run that stopped can be run again. Photos are
streamed: the walk yields one path at a time and at most `2 x --concurrency` photos are read and in
flight at once, so memory does not grow with the folder. One bad file is one failure in the summary,
never the end of the run; the exit status is 1 when any photo failed.

The work is done by a `PhotoTarget`: a running service over HTTP (`--url`, app/cli_remote.py) or this
process on the settings' store (app/cli_collections.py), both answering in the HTTP API's JSON.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Protocol

import msgspec

from app.image_files import IMAGE_SUFFIXES
from domain.errors import FaceServiceError
from domain.gallery import DOT_SEGMENTS, EXTERNAL_ID

QUALITY_FLOORS = ("none", "low", "medium", "high")
OUTSIDE_ALPHABET = re.compile(r"[^A-Za-z0-9._:@+=-]")
MAX_PHOTO_ID = 128
IN_FLIGHT_PER_THREAD = 2  # photos read ahead per thread: the next upload is ready when one ends


def add_commands(commands: Any, remote: argparse.ArgumentParser) -> None:
    photos = commands.add_parser("photos", help="index photos in a collection, and find a face in them")
    verbs = photos.add_subparsers(dest="verb", required=True, metavar="{index,search,list,delete}")
    index = verbs.add_parser(
        "index",
        parents=[remote],
        help="index every face of each photo (folders walked recursively); skips photos already indexed",
        description="Each photo's id is its path relative to the folder given, '/' written as ':', any other "
        "character outside letters, digits and '._:@+=-' as '_'. Photos already in the collection are skipped, "
        "so a run can be resumed. Exit status 1 when any photo failed.",
    )
    index.add_argument("collection", help="the collection to index into (it must exist)")
    index.add_argument(
        "paths", nargs="*", type=Path, metavar="PATH", help="folders of photos (walked recursively), or image files"
    )
    index.add_argument(
        "--list",
        dest="lists",
        action="append",
        type=Path,
        default=[],
        metavar="FILE",
        help="a text file of image paths, one per line (the id is the path as written); may be repeated",
    )
    index.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        help="photos indexed at once (default: 2 x the service's inference workers over --url, INFERENCE_WORKERS here)",
    )
    index.add_argument(
        "--quality",
        choices=QUALITY_FLOORS,
        default="medium",
        help="faces below this quality level are not indexed (listed as unindexed); none: every face "
        "(default: %(default)s)",
    )
    index.add_argument(
        "--max-faces",
        type=positive,
        default=None,
        help="index at most this many faces per photo, the largest (1-100; the service's default: 100)",
    )
    index.add_argument(
        "--min-face-size",
        type=int,
        default=None,
        help="faces whose box's shorter side is below this many pixels are not indexed (default: 0)",
    )
    index.add_argument("--json", action="store_true", help="one JSON line per photo on stdout, then the summary's")
    search = verbs.add_parser(
        "search", parents=[remote], help="the photos holding the face of an image, most similar first"
    )
    search.add_argument("collection", help="the collection to search")
    search.add_argument("image", type=Path, help="an image of the person: its largest face is searched")
    search.add_argument("--top-k", type=positive, default=None, help="photos to list, 1 to 1000 (default 100)")
    search.add_argument(
        "--face", type=int, default=None, help="search the image's n-th face (0-based, largest first) instead"
    )
    search.add_argument(
        "--min-similarity", type=float, default=None, help="list photos from this similarity (default: the threshold)"
    )
    search.add_argument("--json", action="store_true", help="the service's answer as one JSON line")
    list_ = verbs.add_parser("list", parents=[remote], help="the collection's photos, as JSON lines")
    list_.add_argument("collection", help="the collection whose photos to list")
    delete = verbs.add_parser(
        "delete", parents=[remote], help="delete photos and every face indexed from them; one JSON line each"
    )
    delete.add_argument("collection", help="the collection to delete from")
    delete.add_argument("photo_ids", nargs="+", metavar="PHOTO_ID", help="the ids of the photos to delete")


def positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not a positive whole number")
    return value


# ----- photo ids and the walk


def photo_id(relative: PurePath) -> str:
    """The id for a path relative to the folder given (or as written in a list): its parts joined by
    ':', every character outside the id alphabet as '_'. Longer than MAX_PHOTO_ID for a path too long."""
    parts = [part for part in relative.parts if part not in ("", ".", relative.anchor)]
    return OUTSIDE_ALPHABET.sub("_", ":".join(parts))


def is_photo_id(value: str) -> bool:
    return value not in DOT_SEGMENTS and EXTERNAL_ID.fullmatch(value) is not None


def is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def walk(folder: Path) -> Iterator[Path]:
    """The images under a folder, recursively, in name order, one at a time."""
    for top, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(files):
            if is_image(name):
                yield Path(top) / name


def photo_files(paths: list[Path], lists: list[Path]) -> Iterator[tuple[Path, str]]:
    """(file, photo id) for every photo named: the images under each folder, each image file named (its
    id: its name), each path listed in a --list file (its id: the path as written)."""
    for path in paths:
        if path.is_dir():
            for found in walk(path):
                yield found, photo_id(found.relative_to(path))
        else:
            yield path, photo_id(PurePath(path.name))
    for listing in lists:
        with listing.open(encoding="utf-8") as lines:
            for line in lines:
                written = line.strip()
                if written:
                    yield Path(written), photo_id(PurePath(written))


def count_photos(paths: list[Path], lists: list[Path]) -> int:
    """How many photos photo_files will yield (for the progress bar's ETA), without holding them."""
    return sum(1 for _ in photo_files(paths, lists))


# ----- the work, over HTTP or here


class PhotoTarget(Protocol):
    """Where photos are indexed: each method answers the HTTP API's JSON, or raises FaceServiceError."""

    def photo_ids(self, collection: str) -> Iterator[str]: ...

    def index(self, collection: str, photo_id: str, data: bytes, options: dict[str, Any]) -> dict[str, Any]: ...

    def default_concurrency(self) -> int: ...


def stops_the_run(error: FaceServiceError) -> bool:
    """Not the photo's fault: the service unreachable, the key refused, the collection missing."""
    return bool(getattr(error, "stops_the_run", False)) or error.code in ("collection_not_found", "forbidden_scope")


def reason_of(error: FaceServiceError) -> str:
    return str(getattr(error, "reason", error.message))


@dataclass
class Summary:
    """What a run did: photos indexed (with their faces), found already indexed, skipped, failed."""

    indexed: int = 0
    already_indexed: int = 0  # the service had the same bytes under the id (a race with another run)
    skipped: int = 0  # listed in the collection before the run
    faces: int = 0
    photos_without_faces: int = 0
    unindexed: Counter[str] = field(default_factory=Counter)  # faces by why: their first reason
    unindexed_quality: Counter[str] = field(default_factory=Counter)  # LOW_QUALITY faces' quality reasons
    failures: Counter[str] = field(default_factory=Counter)  # by error code
    seconds: float = 0.0  # from the first photo read to the last answer (the listing before it not counted)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def photos_per_s(self) -> float:
        """Photos sent to the service (indexed, found indexed or failed) per second of the run."""
        sent = self.indexed + self.already_indexed + self.failed
        return sent / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "already_indexed": self.already_indexed,
            "skipped": self.skipped,
            "faces": self.faces,
            "photos_without_faces": self.photos_without_faces,
            "unindexed_faces": sum(self.unindexed.values()),
            "unindexed": dict(sorted(self.unindexed.items())),
            "unindexed_quality_reasons": dict(sorted(self.unindexed_quality.items())),
            "failed": self.failed,
            "failures": dict(sorted(self.failures.items())),
            "seconds": round(self.seconds, 3),
            "photos_per_s": round(self.photos_per_s, 2),
        }

    def as_text(self) -> str:
        text = [
            f"indexed {self.indexed} photo(s), {self.faces} face(s)"
            + (f"; {self.photos_without_faces} photo(s) with no face" if self.photos_without_faces else "")
            + f" in {self.seconds:.1f} s ({self.photos_per_s:.1f} photos/s)",
            f"skipped {self.skipped} photo(s) already in the collection"
            + (f", {self.already_indexed} indexed meanwhile" if self.already_indexed else ""),
        ]
        if self.unindexed:
            reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(self.unindexed.items()))
            text.append(f"faces not indexed: {sum(self.unindexed.values())} ({reasons})")
            if self.unindexed_quality:
                quality = ", ".join(f"{reason} {count}" for reason, count in sorted(self.unindexed_quality.items()))
                text.append(f"  their quality reasons: {quality}")
        if self.failures:
            codes = ", ".join(f"{code} {count}" for code, count in sorted(self.failures.items()))
            text.append(f"failed: {self.failed} photo(s) ({codes})")
        return "\n".join(text)


@dataclass(frozen=True)
class Outcome:
    """One photo's line: what happened to it."""

    file: str
    photo_id: str
    answer: dict[str, Any] | None = None
    error: str | None = None
    code: str | None = None

    def record(self) -> dict[str, Any]:
        if self.answer is None:
            return {"file": self.file, "photo_id": self.photo_id, "error": self.error, "code": self.code}
        return {"file": self.file, **self.answer}


def index_photos(target: PhotoTarget, args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not args.paths and not args.lists:
        raise FaceServiceError("name at least one folder or image, or a --list file")
    options: dict[str, Any] = {"quality": args.quality}
    if args.max_faces is not None:
        options["max_faces"] = args.max_faces
    if args.min_face_size is not None:
        options["min_face_size"] = args.min_face_size
    concurrency = args.concurrency or target.default_concurrency()
    existing = set(target.photo_ids(args.collection))  # ids only: about 100 bytes per photo
    summary = Summary()
    seen: set[str] = set()  # this run's ids: a second file with one of them is a failure
    show = sys.stderr.isatty()
    total = count_photos(args.paths, args.lists) if show else None
    bar = tqdm(total=total, unit="photo", disable=not show, file=sys.stderr, leave=False, dynamic_ncols=True)

    def report(outcome: Outcome) -> None:
        if outcome.answer is None:
            summary.failures[outcome.code or "error"] += 1
        elif outcome.answer.get("duplicate"):
            summary.already_indexed += 1
        else:
            summary.indexed += 1
            faces = len(outcome.answer.get("faces", []))
            summary.faces += faces
            summary.photos_without_faces += faces == 0
            for face in outcome.answer.get("unindexed", []):
                # The first reason is why the face was left out (LOW_QUALITY, SMALL_BOUNDING_BOX,
                # EXCEEDS_MAX_FACES); after LOW_QUALITY come the quality's own reasons.
                why, *quality = face.get("reasons") or ["UNKNOWN"]
                summary.unindexed[why] += 1
                summary.unindexed_quality.update(quality)
        if args.json:
            print(msgspec.json.encode(outcome.record()).decode(), flush=True)
        elif outcome.answer is None:
            print(f"{outcome.file}: {outcome.error} ({outcome.code})", file=sys.stderr)
        bar.set_postfix(faces=summary.faces, failed=summary.failed, refresh=False)  # drawn by the update
        bar.update(1)

    def index_one(path: Path, photo: str) -> Outcome:
        try:
            data = path.read_bytes()
        except OSError as error:
            return Outcome(str(path), photo, error=error.strerror or str(error), code="unreadable_file")
        try:
            return Outcome(str(path), photo, answer=target.index(args.collection, photo, data, options))
        except FaceServiceError as error:
            if stops_the_run(error):
                raise
            return Outcome(str(path), photo, error=reason_of(error), code=error.code)

    began = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="photos") as pool:
            pending: set[Future[Outcome]] = set()

            def settle(block: bool) -> None:
                done, rest = wait(pending, return_when=FIRST_COMPLETED) if block else (set(), pending)
                pending.intersection_update(rest)
                for future in done:
                    report(future.result())

            try:
                for path, photo in photo_files(args.paths, args.lists):
                    failure = refused(photo, seen)
                    if failure:
                        report(Outcome(str(path), photo, error=failure[0], code=failure[1]))
                        continue
                    seen.add(photo)
                    if photo in existing:
                        summary.skipped += 1
                        bar.update(1)
                        continue
                    pending.add(pool.submit(index_one, path, photo))
                    while len(pending) >= concurrency * IN_FLIGHT_PER_THREAD:
                        settle(block=True)
                while pending:
                    settle(block=True)
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    finally:
        bar.close()
        summary.seconds = time.perf_counter() - began
    if args.json:
        print(msgspec.json.encode({"summary": summary.as_json()}).decode(), flush=True)
    else:
        print(summary.as_text(), flush=True)
    return 1 if summary.failed else 0


def refused(photo: str, seen: set[str]) -> tuple[str, str] | None:
    """Why a photo id cannot be indexed in this run (its message and code), or None."""
    if len(photo) > MAX_PHOTO_ID or not is_photo_id(photo):
        return f"the path makes a photo id of more than {MAX_PHOTO_ID} characters", "invalid_photo_id"
    if photo in seen:
        return f"another file of this run has the photo id {photo!r}", "duplicate_photo_id"
    return None


def print_search(answer: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(msgspec.json.encode(answer).decode(), flush=True)
        return 0
    for photo in answer["photos"]:
        mark = "match" if photo["match"] else "-"
        box = ",".join(f"{value:.0f}" for value in photo["bbox"])
        print(f"{photo['photo_id']}\t{photo['similarity']:.3f}\t{mark}\t{box}")
    more = " (more with --top-k)" if answer.get("next") else ""
    print(f"{answer['count']} photo(s) at or above {answer['threshold']}{more}", file=sys.stderr)
    return 0


def emit_all(records: Iterator[Any], emit: Callable[[Any], Any]) -> int:
    for record in records:
        emit(record)
    return 0
