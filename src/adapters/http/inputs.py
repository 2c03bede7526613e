"""Reading images and JSON bodies out of requests: multipart `file` parts or base64 in JSON."""

from __future__ import annotations

import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException, InternalServerException

from face_service.adapters.http.base64_images import decode_base64
from face_service.adapters.wire.schemas import BatchRequest, CompareRequest, ImageRequest
from face_service.domain.errors import InvalidEmbedding, InvalidInput

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]
ERROR_PATH = re.compile(r"at `\$\.?([^`]*)`")
FILE_FIELDS = ("file", "files")


async def read_body(request: AnyRequest) -> bytes:
    if not _is_json(_media_type(request)):
        raise UnsupportedMediaTypeError(detail="Send application/json")
    return await _received(request.body())


async def read_json(request: AnyRequest, kind: type[T]) -> T:
    return decode_json(await _received(request.body()), kind)


def decode_json(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise InvalidInput("The request body is empty; send JSON", code="invalid_json")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        raise InvalidInput(f"Invalid request body: {error}", code="invalid_request", field=error_field(error)) from None
    except msgspec.DecodeError:
        raise InvalidInput("The request body is not valid JSON", code="invalid_json") from None


def error_field(error: msgspec.ValidationError, within: str = "") -> str | None:
    """The field msgspec's message locates (`$.a[1]` -> `a[1]`), under `within` when decoding a part."""
    located = ERROR_PATH.search(str(error))
    path = located.group(1) if located else ""
    return f"{within}{path}" or None


@dataclass(frozen=True, slots=True)
class ComparisonInput:
    probe: list[float]
    single_candidate: list[float]
    candidates: list[list[float]] | None
    probe_model: str | None
    candidates_model: str | None


def read_comparison(body: bytes) -> ComparisonInput:
    """A /compare-faces body: `embedding_a` with either `embedding_b` or `candidates`."""
    payload = decode_json(body, CompareRequest)
    if _given(payload.embedding_b) == _given(payload.candidates):
        raise InvalidInput("Send embedding_a with either embedding_b or candidates", code="invalid_request")
    return ComparisonInput(
        probe=_embedding_part(payload.embedding_a, "embedding_a", list[float]),
        single_candidate=_embedding_part(payload.embedding_b, "embedding_b", list[float])
        if _given(payload.embedding_b)
        else [],
        candidates=_embedding_part(payload.candidates, "candidates", list[list[float]])
        if _given(payload.candidates)
        else None,
        probe_model=payload.model_a,
        candidates_model=payload.model_b,
    )


def _given(raw: msgspec.Raw) -> bool:
    return len(raw) > 0 and not (len(raw) == 4 and bytes(raw) == b"null")


def _embedding_part(raw: msgspec.Raw, name: str, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as error:
        raise InvalidEmbedding(f"Invalid {name}: {error}", error_field(error, within=name) or name) from None


def _media_type(request: AnyRequest) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


async def _uploads(request: AnyRequest) -> list[UploadFile]:
    form = await _received(request.form())
    files: list[UploadFile] = []
    for name in FILE_FIELDS:
        for value in form.getall(name, []):
            if not isinstance(value, UploadFile):
                raise InvalidInput(f"The '{name}' part must be a file upload", code="invalid_request")
            files.append(value)
    return files


class ClientDisconnectedError(HTTPException):
    """The caller went away before its body arrived: nobody will read the answer, and it is no bug."""

    status_code = 400
    detail = "Client disconnected"


async def _received(reading: Awaitable[T]) -> T:
    """Await a read of the request body. Litestar signals a client that disconnected mid-body with
    the only InternalServerException its body stream raises; it becomes ClientDisconnectedError."""
    try:
        return await reading
    except InternalServerException:
        raise ClientDisconnectedError() from None


class UnsupportedMediaTypeError(HTTPException):
    status_code = 415


def _unsupported(media_type: str) -> UnsupportedMediaTypeError:
    return UnsupportedMediaTypeError(
        detail=f"Unsupported Content-Type {media_type or '(none)'}: send multipart/form-data with a "
        "'file' part, or application/json with 'image_base64'"
    )


async def read_image(request: AnyRequest) -> bytes:
    """The one image of a request."""
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        files = await _uploads(request)
        if len(files) != 1:
            raise InvalidInput(f"Send exactly one 'file' part (got {len(files)})", code="missing_image")
        return await files[0].read()
    if _is_json(media_type):
        payload = await read_json(request, ImageRequest)
        return decode_base64(payload.image_base64, "image_base64")
    raise _unsupported(media_type)


async def read_images(request: AnyRequest) -> list[bytes | InvalidInput]:
    """Every image of a batch request. Base64 that cannot be decoded is kept as that item's error."""
    media_type = _media_type(request)
    if media_type == "multipart/form-data":
        return [await upload.read() for upload in await _uploads(request)]
    if _is_json(media_type):
        payload = await read_json(request, BatchRequest)
        items: list[bytes | InvalidInput] = []
        for index, text in enumerate(payload.images):
            try:
                items.append(decode_base64(text, f"images[{index}]"))
            except InvalidInput as error:
                items.append(error)
        return items
    raise _unsupported(media_type)
