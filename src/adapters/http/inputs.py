"""Reading images and JSON bodies out of requests: multipart `file` parts or base64 in JSON."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException

from adapters.encoding import decode_base64
from adapters.http.schemas import BatchRequest, ImageRequest
from domain.errors import InvalidInput

T = TypeVar("T")

AnyRequest = Request[Any, Any, Any]
ERROR_PATH = re.compile(r"at `\$\.?([^`]*)`")
FILE_FIELDS = ("file", "files")


async def read_body(request: AnyRequest) -> bytes:
    if not _is_json(_media_type(request)):
        raise UnsupportedMediaTypeError(detail="Send application/json")
    return await request.body()


async def read_json(request: AnyRequest, kind: type[T]) -> T:
    return decode_json(await request.body(), kind)


def decode_json(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise InvalidInput("The request body is empty; send JSON", code="invalid_json")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        located = ERROR_PATH.search(str(error))
        field = located.group(1) if located and located.group(1) else None
        raise InvalidInput(f"Invalid request body: {error}", code="invalid_request", field=field) from None
    except msgspec.DecodeError:
        raise InvalidInput("The request body is not valid JSON", code="invalid_json") from None


def _media_type(request: AnyRequest) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


async def _uploads(request: AnyRequest) -> list[UploadFile]:
    form = await request.form()
    files: list[UploadFile] = []
    for name in FILE_FIELDS:
        for value in form.getall(name, []):
            if not isinstance(value, UploadFile):
                raise InvalidInput(f"The '{name}' part must be a file upload", code="invalid_request")
            files.append(value)
    return files


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
