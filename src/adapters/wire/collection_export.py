"""A collection's export and import as JSON lines, transport-neutral (the HTTP routes stream them;
the CLI writes and reads files): the export's chunks, and `ImportStager`, which checks an import line
by line and stages its faces on disk until the whole body is in, so that it is stored all or nothing."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, TypeVar

import msgspec
import numpy as np

from adapters.wire import collections as wire
from adapters.wire.bodies import RequestTooLarge
from domain.errors import FaceServiceError, InvalidImport, InvalidInput, StoreUnavailable
from domain.gallery import FaceRecord
from domain.use_cases.collections import CollectionHeader, Collections, nothing_kept

T = TypeVar("T")
EXPORT_CHUNK = 256  # faces per chunk of an export stream
IMPORT_FEED_BYTES = 1 << 20  # an import's body is handed to the stager this much at a time


def export_chunks(header: CollectionHeader, records: Iterable[FaceRecord]) -> Iterator[bytes]:
    """An export as JSON lines, EXPORT_CHUNK faces to a chunk (HTTP streams them; the CLI writes them)."""
    encoder = msgspec.json.Encoder()
    yield encoder.encode(wire.export_header(header)) + b"\n"
    chunk: list[bytes] = []
    for record in records:
        chunk.append(encoder.encode(wire.exported_face(record)))
        if len(chunk) == EXPORT_CHUNK:
            yield b"\n".join(chunk) + b"\n"
            chunk = []
    if chunk:
        yield b"\n".join(chunk) + b"\n"


class _Staged(msgspec.Struct, array_like=True):
    """A checked face, waiting in an import's temporary file."""

    face_id: str
    external_id: str | None
    embedding: bytes  # float32, native order
    bbox: tuple[float, float, float, float] | None
    confidence: float | None
    source_digest: str
    created_at: datetime
    landmarks: list[tuple[float, float]] | None
    quality: wire.FaceQuality | None
    photo_id: str | None


class ImportStager:
    """An import's body, line by line, on a gallery thread: the header and each face are checked as they
    arrive (a bad line is refused at once, with its number; a line longer than MAX_IMPORT_LINE_BYTES
    as soon as it is), and the checked faces wait in a temporary file, deleted when closed (or when
    the process dies). `records` gives them back to be stored in one transaction: nothing reaches the
    store before the whole body has arrived and checked out. Shared by HTTP and the CLI."""

    def __init__(self, collections: Collections, name: str, max_line_bytes: int, spool_dir: Path | None) -> None:
        self._collections = collections
        self._name = name
        self._max_line = max_line_bytes
        self._pending = bytearray()  # the line that has not ended yet
        self._lines = 0  # lines ended so far
        self._encoder = msgspec.msgpack.Encoder()
        self.header: CollectionHeader | None = None
        self.faces = 0
        try:
            self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="face-import-", dir=spool_dir)  # noqa: SIM115
        except OSError as exc:
            raise _unstaged(exc) from exc

    def feed(self, data: bytes) -> None:
        """The next bytes of the body."""
        view = memoryview(data)
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            self._extend(view[start:end])
            line = bytes(self._pending)
            self._pending.clear()
            self._take(line)
            start = end + 1
        self._extend(view[start:])

    def finish(self) -> None:
        """The body has ended: its last line (it needs no newline), then ready for `records`."""
        if self._pending:
            line = bytes(self._pending)
            self._pending.clear()
            self._take(line)
        if self.header is None:
            raise nothing_kept(InvalidInput("The import is empty; send an export's JSON lines", code="invalid_import"))
        try:
            self._spool.flush()
            self._spool.seek(0)
        except OSError as exc:
            raise _unstaged(exc) from exc

    def records(self) -> Iterator[FaceRecord]:
        """The checked faces, in the order they came."""
        decoder = msgspec.msgpack.Decoder(_Staged)
        read = self._spool.read
        while size := read(4):
            staged = decoder.decode(read(int.from_bytes(size, "big")))
            vector = np.frombuffer(staged.embedding, dtype=np.float32)
            points = staged.landmarks
            yield FaceRecord(
                staged.face_id,
                staged.external_id,
                vector,
                staged.bbox,
                staged.confidence,
                staged.source_digest,
                staged.created_at,
                landmarks=None if points is None else (points[0], points[1], points[2], points[3], points[4]),
                quality=None if staged.quality is None else wire.stored_quality(staged.quality),
                photo_id=staged.photo_id,
            )

    def close(self) -> None:
        self._spool.close()

    def _extend(self, piece: memoryview) -> None:
        if len(self._pending) + len(piece) > self._max_line:
            raise nothing_kept(LineTooLong(self._lines + 1, self._max_line))
        self._pending += piece

    def _take(self, line: bytes) -> None:
        self._lines += 1
        if not line.strip():
            return
        if self.header is None:
            exported = _decoded(line, wire.ExportHeader, self._lines)
            self.header = self._collections.import_header(self._name, wire.imported_header(exported))
            return
        try:
            given = wire.imported_face(_decoded(line, wire.ExportedFace, self._lines))
        except ValueError as error:
            raise nothing_kept(InvalidImport(str(error), self._lines)) from None
        face = self._collections.import_face(self.header, given, self._lines)
        vector = np.ascontiguousarray(face.embedding, dtype=np.float32)
        staged = _Staged(
            face.face_id,
            face.external_id,
            vector.tobytes(),
            face.bbox,
            face.confidence,
            face.source_digest,
            face.created_at,
            None if face.landmarks is None else list(face.landmarks),
            wire.face_quality(face.quality),
            face.photo_id,
        )
        payload = self._encoder.encode(staged)
        try:
            self._spool.write(len(payload).to_bytes(4, "big") + payload)
        except OSError as exc:
            raise _unstaged(exc) from exc
        self.faces += 1


class LineTooLong(RequestTooLarge):
    code = "import_line_too_long"

    def __init__(self, line: int, limit: int) -> None:
        super().__init__(f"line {line}: longer than MAX_IMPORT_LINE_BYTES ({limit} bytes)")
        self.line = line


def _decoded(line: bytes, kind: type[T], number: int) -> T:
    try:
        return msgspec.json.decode(line, type=kind)
    except msgspec.ValidationError as error:
        raise nothing_kept(InvalidImport(str(error), number)) from None
    except (msgspec.DecodeError, RecursionError):
        raise nothing_kept(InvalidImport("not a JSON object", number)) from None


def _unstaged(error: OSError) -> FaceServiceError:
    """The temporary file failed (a full disk): said without its path."""
    return nothing_kept(
        StoreUnavailable(f"the import cannot be staged on disk: {error.strerror or type(error).__name__}")
    )
