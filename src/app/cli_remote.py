"""The collection verbs of `face-service` acting on a running service over HTTP: `--url URL` (or
FACE_SERVICE_URL), with the key from FACE_SERVICE_API_KEY (or API_KEY). What the local verbs print,
they print (the same JSON lines), but the service does the work: no model is loaded here and the
store stays the service's own (a SQLite gallery admits one process: the running service).

A 503 or 429 is tried again after its Retry-After, at most RETRIES times, each wait longer than the
last and spread at random (`retry_wait`); an import streamed from its file is sent once.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from domain.errors import FaceServiceError, InvalidInput
from domain.use_cases.gallery_rules import checked_external_id, checked_name, checked_photo_id
from domain.use_cases.people import checked_person_id

KEY_VARIABLES = ("FACE_SERVICE_API_KEY", "API_KEY")
RETRIES = 5
LONGEST_WAIT_S = 30.0
NDJSON = "application/x-ndjson"


class RemoteError(FaceServiceError):
    """The service answered with an error (its `error` and `code`), or could not be reached."""

    def __init__(self, reason: str, code: str, status: int = 0, reasons: list[str] | None = None) -> None:
        super().__init__(f"{reason} (HTTP {status} {code})" if status else reason)
        self.reason = reason  # the service's own words, as the local verbs print them
        self.code = code
        self.status = status  # 0: no answer
        self.reasons = reasons  # low_quality_face: the face's quality reasons

    @property
    def details(self) -> dict[str, list[str]]:
        """What the error adds to a printed failure, as the local verbs print it."""
        return {"reasons": self.reasons} if self.reasons is not None else {}

    @property
    def stops_the_run(self) -> bool:
        """Not the item's fault: the service unreachable, the key refused, or the service failing. A
        service still at capacity after the retries (503 `overloaded`) fails the item, not the run:
        running the verb again takes up what is left."""
        return self.status in (0, 401, 403) or (self.status >= 500 and self.code != "overloaded")


def api_key(environ: dict[str, str]) -> str:
    for name in KEY_VARIABLES:
        if environ.get(name):
            return environ[name]
    raise FaceServiceError(f"--url needs the service's API key in {' or '.join(KEY_VARIABLES)}")


def segment(value: str, check: Callable[[str], str] = checked_name) -> str:
    """One path segment: checked as the service checks it (`check`: the collection-name rule unless
    told), then escaped. Checked here, before anything is sent, because a URL normaliser rewrites some
    values before the service can see them: httpx (as fetch and curl) sends `/collections/c/photos/..`
    as `/collections/c`, a request for the collection itself. Refused as the service would answer."""
    try:
        check(value)
    except InvalidInput as error:
        raise RemoteError(error.message, error.code, 400) from None
    return quote(value, safe="")


class Remote:
    """One service, over one HTTP connection pool."""

    def __init__(self, url: str, key: str, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(300.0, connect=10.0),
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, path: str, **request: Any) -> Any:
        """The decoded JSON of a successful answer (None for an empty one); RemoteError otherwise."""
        for attempt in range(RETRIES + 1):
            try:
                response = self._client.request(method, path, **request)
            except httpx.HTTPError as error:
                raise RemoteError(f"{self.url} could not be reached: {error}", "unreachable") from error
            wait = retry_after(response)
            if wait is None or attempt == RETRIES:
                break
            time.sleep(retry_wait(attempt, wait))
        if response.is_error:
            raise answered_error(response)
        return msgspec.json.decode(response.content) if response.content else None

    def stream_to(self, path: str, sink: Any) -> None:
        """A streamed GET, written to `sink` as it comes."""
        try:
            with self._client.stream("GET", path) as response:
                if response.is_error:
                    response.read()
                    raise answered_error(response)
                for chunk in response.iter_bytes():
                    sink.write(chunk)
        except httpx.HTTPError as error:
            raise RemoteError(f"{self.url}{path}: the answer broke off: {error}", "unreachable") from error

    def upload(self, path: str, body: Iterator[bytes]) -> Any:
        """A POST of a body streamed from a file: sent once (it cannot be read again)."""
        try:
            response = self._client.post(path, content=body, headers={"Content-Type": NDJSON})
        except httpx.HTTPError as error:
            raise RemoteError(f"{self.url} could not be reached: {error}", "unreachable") from error
        if response.is_error:
            raise answered_error(response)
        return msgspec.json.decode(response.content)


def retry_wait(attempt: int, retry_after_s: float) -> float:
    """How long to wait before try `attempt + 1`: the service's Retry-After at least, doubling from
    half a second with each try, and up to half as long again at random, so that the threads of a
    `photos index` refused together do not all come back in the same instant (and are refused
    together again). At most LONGEST_WAIT_S."""
    jitter = random.uniform(1.0, 1.5)  # noqa: S311 - spreading retries, not a secret
    return min(max(retry_after_s, 0.5 * 2.0**attempt) * jitter, LONGEST_WAIT_S)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait before trying again: a 503 or 429 with Retry-After (seconds), else None."""
    if response.status_code not in (429, 503):
        return None
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.0), LONGEST_WAIT_S)
    except ValueError:
        return None


def answered_error(response: httpx.Response) -> RemoteError:
    try:
        body = msgspec.json.decode(response.content)
        message, code = str(body["error"]), str(body["code"])
        reasons = [str(reason) for reason in body["reasons"]] if isinstance(body.get("reasons"), list) else None
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        message, code, reasons = response.text[:200] or response.reason_phrase, "http_error", None
    return RemoteError(message, code, response.status_code, reasons)


def emit(record: Any) -> int:
    print(msgspec.json.encode(record).decode(), flush=True)
    return 0


def run(args: argparse.Namespace, url: str, key: str) -> int:
    remote = Remote(url, key)
    try:
        return verb(remote, args)
    finally:
        remote.close()


def verb(remote: Remote, args: argparse.Namespace) -> int:
    if args.command == "collections":
        if args.verb == "create":
            return emit(remote.call("POST", "/collections", json={"name": args.name, "threshold": args.threshold}))
        if args.verb == "list":
            for collection in remote.call("GET", "/collections")["collections"]:
                emit(collection)
            return 0
        path = f"/collections/{segment(args.name)}"
        info = remote.call("GET", path)
        remote.call("DELETE", path)
        return emit({"name": info["name"], "deleted_subjects": info["subjects"], "deleted_faces": info["faces"]})
    collection = f"/collections/{segment(args.collection)}"
    if args.command == "photos":
        return photos(remote, args, collection)
    if args.command == "people":
        return people(remote, args, collection)
    if args.command == "enroll":
        return enroll_folder(remote, collection, args.folder, args.largest, args.quality)
    if args.command == "search":
        params: dict[str, Any] = {"min_quality": args.min_quality}
        if args.top_k is not None:
            params["top_k"] = args.top_k
        return emit(remote.call("POST", f"{collection}/search", params=params, files=image(args.image)))
    if args.command == "export":
        return export(remote, f"{collection}/export", args.output)
    with args.file.open("rb") as lines:
        return emit(remote.upload(f"{collection}/import", chunks(lines)))


def image(path: Path) -> dict[str, tuple[str, bytes]]:
    return {"file": (path.name, path.read_bytes())}


def chunks(file: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := file.read(size):
        yield chunk


def enroll_folder(remote: Remote, collection: str, folder: Path, largest: bool, quality: str) -> int:
    """The local verb's walk (each subfolder's name is the subject), each image sent to the service."""
    from tqdm import tqdm

    from app.image_files import image_files

    if not folder.is_dir():
        raise FaceServiceError(f"{folder} is not a folder of subject folders")
    subjects = [subject for subject in sorted(folder.iterdir()) if subject.is_dir()]
    jobs = [(subject.name, path) for subject in subjects for path in image_files([subject])]
    params = {"face": "largest" if largest else "one", "quality": quality}
    status = 0
    for subject, path in tqdm(jobs, unit="image", disable=None, file=sys.stderr, leave=False):
        try:
            answer = remote.call(
                "POST",
                f"{collection}/subjects/{segment(subject, checked_external_id)}/faces",
                params=params,
                files=image(path),
            )
            emit({"file": str(path), **answer})
        except RemoteError as error:
            if error.stops_the_run:
                raise
            status = 1
            emit({"file": str(path), "error": error.reason, "code": error.code, **error.details})
        except OSError as error:
            status = 1
            emit({"file": str(path), "error": str(error), "code": "unreadable_file"})
    return status


def export(remote: Remote, path: str, output: Path | None) -> int:
    if output is None:
        remote.stream_to(path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return 0
    try:
        with output.open("wb") as sink:
            remote.stream_to(path, sink)
    except BaseException:
        output.unlink(missing_ok=True)  # no half an export left looking like a whole one
        raise
    return 0


class RemotePhotos:
    """photos index's target: the service's photo routes."""

    def __init__(self, remote: Remote) -> None:
        self.remote = remote

    def photo_ids(self, collection: str) -> Iterator[str]:
        for photo in list_photos(self.remote, f"/collections/{segment(collection)}"):
            yield photo["photo_id"]

    def index(self, collection: str, photo_id: str, data: bytes, options: dict[str, Any]) -> dict[str, Any]:
        path = f"/collections/{segment(collection)}/photos/{segment(photo_id, checked_photo_id)}"
        answer: dict[str, Any] = self.remote.call("POST", path, params=options, files={"file": (photo_id, data)})
        return answer

    def default_concurrency(self) -> int:
        """Two photos per inference worker of the service: one running and the next already sent to
        that worker, or being uploaded, hashed and stored (bench/photos.py: 88-91% of the model floor
        for phone photos against 80-85% with one per worker; docs/performance.md)."""
        inference = self.remote.call("GET", "/health").get("inference") or {}
        return 2 * max(int(inference.get("workers", 1)), 1)


def list_photos(remote: Remote, collection: str) -> Iterator[dict[str, Any]]:
    """Every photo of the collection, a page at a time."""
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after is not None else {})
        page = remote.call("GET", f"{collection}/photos", params=params)
        yield from page["photos"]
        after = page.get("next")
        if after is None:
            return


def photos(remote: Remote, args: argparse.Namespace, collection: str) -> int:
    from app import cli_photos

    if args.verb == "index":
        return cli_photos.index_photos(RemotePhotos(remote), args)
    if args.verb == "search":
        params: dict[str, Any] = {}
        for name in ("top_k", "face", "min_similarity"):
            if getattr(args, name) is not None:
                params[name] = getattr(args, name)
        answer = remote.call("POST", f"{collection}/search/photos", params=params, files=image(args.image))
        return cli_photos.print_search(answer, args.json)
    if args.verb == "list":
        return cli_photos.emit_all(list_photos(remote, collection), emit)
    status = 0
    for photo_id in args.photo_ids:
        try:
            emit(remote.call("DELETE", f"{collection}/photos/{segment(photo_id, checked_photo_id)}"))
        except RemoteError as error:
            if error.stops_the_run or error.code == "collection_not_found":
                raise
            status = 1
            emit({"photo_id": photo_id, "error": error.reason, "code": error.code})
    return status


def people(remote: Remote, args: argparse.Namespace, collection: str) -> int:
    """The people verbs on the service's routes; every path segment checked before anything is sent."""
    from app import cli_people

    if args.verb == "cluster":
        job = remote.call("POST", f"{collection}/clustering")
        if args.wait:

            def status() -> dict[str, Any]:
                answer: dict[str, Any] = remote.call("GET", f"{collection}/clustering")
                return answer

            job = cli_people.wait_for(job, status, cli_people.ProgressLines())
        emit(job)
        return 1 if job["state"] == "failed" else 0
    if args.verb == "list":
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000} | ({"after": after} if after else {})
            page = remote.call("GET", f"{collection}/people", params=params)
            for person in page["people"]:
                emit(person)
            after = page["next"]
            if not after:
                return 0
    person = f"{collection}/people/{segment(args.person_id, checked_person_id)}"
    if args.verb == "name":
        return emit(remote.call("POST", f"{person}/name", json={"external_id": args.external_id}))
    if args.verb == "merge":
        return emit(remote.call("POST", f"{person}/merge", json={"person_id": args.other_person_id}))
    if args.verb == "split":
        return emit(remote.call("POST", f"{person}/split", json={"face_ids": args.face_ids}))
    if args.verb == "delete":
        return emit(remote.call("DELETE", person))
    return emit(remote.call("POST", f"{person}/not-this-person", json={"face_id": args.face_id}))
