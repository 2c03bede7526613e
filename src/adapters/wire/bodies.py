"""Request bodies, parsed: the transport-neutral half of reading a request. The HTTP adapter reads
the bytes on the event loop; these functions, whose work grows with the body (JSON, base64,
multipart), run in an inference worker or on the gallery's threads, never on the loop."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TypeVar

import msgspec
import multipart

from adapters.wire.base64_images import decode_base64
from adapters.wire.schemas import BatchRequest, CompareRequest, GalleryRequest, ImageRequest
from domain.errors import BatchTooLarge, FaceServiceError, InvalidEmbedding, InvalidInput
from domain.use_cases.faces import Extraction

T = TypeVar("T")

ERROR_PATH = re.compile(r"at `\$\.?([^`]*)`")
MISSING_FIELD = re.compile(r"missing required field `([^`]*)`")
FILE_FIELDS = ("file", "files")
MULTIPART = "multipart/form-data"


class UnsupportedMediaType(FaceServiceError):
    code = "unsupported_media_type"


class RequestTooLarge(FaceServiceError):
    code = "request_too_large"


def media_type_of(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def check_media_type(content_type: str, multipart_allowed: bool) -> None:
    """Refuse a body we cannot read before reading it (constant work)."""
    media_type = media_type_of(content_type)
    if is_json(media_type) or (multipart_allowed and media_type == MULTIPART):
        return
    if multipart_allowed:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media_type or '(none)'}: send multipart/form-data with a "
            "'file' part, or application/json with 'image_base64'"
        )
    raise UnsupportedMediaType("Send application/json")


def json_from(content_type: str, body: bytes, kind: type[T]) -> T:
    """The body of a JSON-only route: 415 for another media type, 400 `invalid_json` for an empty or
    malformed body, 400 `invalid_request` (with the field) for one that does not fit `kind`."""
    check_media_type(content_type, multipart_allowed=False)
    return decode_json(body, kind)


def decode_json(body: bytes, kind: type[T]) -> T:
    if not body.strip():
        raise InvalidInput("The request body is empty; send JSON", code="invalid_json")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as error:
        raise InvalidInput(f"Invalid request body: {error}", code="invalid_request", field=error_field(error)) from None
    except (msgspec.DecodeError, RecursionError):
        raise InvalidInput("The request body is not valid JSON", code="invalid_json") from None


def error_field(error: msgspec.ValidationError, within: str = "") -> str | None:
    """The field msgspec's message locates (`$.a[1]` -> `a[1]`), or the one it misses (`a.b` for `b`
    at `$.a`), under `within` when decoding a part."""
    message = str(error)
    located = ERROR_PATH.search(message)
    path = located.group(1) if located else ""
    missing = MISSING_FIELD.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}" if path else missing.group(1)
    return f"{within}{path}" or None


def uploads(content_type: str, body: bytes, max_parts: int) -> list[bytes]:
    """The files of a multipart body's `file` (or `files`) parts, in order. Other parts are ignored
    and never decoded, whatever their charset."""
    _, options = multipart.parse_options_header(content_type)
    boundary = options.get("boundary")
    if not boundary:
        raise InvalidInput("The multipart Content-Type has no boundary", code="invalid_request")
    parser = multipart.PushMultipartParser(boundary, content_length=len(body), max_segment_count=max_parts)
    files: list[bytes] = []
    current: list[bytes] | None = None
    try:
        for event in itertools.chain(parser.parse(body), parser.parse(b"")):
            if isinstance(event, multipart.MultipartSegment):
                wanted = event.name in FILE_FIELDS
                if wanted and event.filename is None and not _has_extended_filename(event):
                    raise InvalidInput(f"The '{event.name}' part must be a file upload", code="invalid_request")
                current = [] if wanted else None
            elif event is None:
                if current is not None:
                    files.append(b"".join(current))
                current = None
            elif current is not None:
                current.append(bytes(event))
    except multipart.ParserLimitReached as error:
        raise RequestTooLarge(f"The multipart body exceeds a limit: {error}") from None
    except (multipart.ParserError, ValueError) as error:  # ValueError: UnicodeDecodeError in part headers
        raise InvalidInput(f"The multipart body is malformed: {error}", code="invalid_request") from None
    return files


def _has_extended_filename(segment: multipart.MultipartSegment) -> bool:
    """RFC 5987's `filename*=UTF-8''...`, which the parser does not read into `filename`."""
    return any(name == "Content-Disposition" and "filename*=" in value for name, value in segment.headerlist)


def image_from(content_type: str, body: bytes, max_parts: int) -> bytes:
    """The one image of a request."""
    if media_type_of(content_type) == MULTIPART:
        files = uploads(content_type, body, max_parts)
        if len(files) != 1:
            raise InvalidInput(f"Send exactly one 'file' part (got {len(files)})", code="missing_image")
        return files[0]
    check_media_type(content_type, multipart_allowed=True)
    return decode_base64(decode_json(body, ImageRequest).image_base64, "image_base64")


def photo_image(content_type: str, body: bytes, max_parts: int) -> bytes:
    """A photo route's image: a multipart `file` part or JSON `image_base64` (never an embedding).
    Read where the body is, before the photo is indexed (its SHA-256 says whether it is indexed
    already), so that the inference worker gets the image itself."""
    if media_type_of(content_type) == MULTIPART:
        return image_from(content_type, body, max_parts)
    check_media_type(content_type, multipart_allowed=True)
    payload = decode_json(body, GalleryRequest)
    if payload.image_base64 is None:
        raise InvalidInput("Send the photo as a 'file' part or as 'image_base64'", code="missing_image")
    return decode_base64(payload.image_base64, "image_base64")


def images_from(content_type: str, body: bytes, max_batch: int) -> list[bytes | FaceServiceError]:
    """Every image of a batch request. Base64 that cannot be decoded is kept as that item's error."""
    if media_type_of(content_type) == MULTIPART:
        return list(uploads(content_type, body, max_parts=max_batch + 16))
    check_media_type(content_type, multipart_allowed=True)
    # Without decoding: base64 holds no commas, so a body with more commas than two per allowed item
    # (a separator, and a data: URL's) plus a few holds too many items. Refused before a million
    # empty strings are ever built.
    if body.count(b",") > 2 * max_batch + 64:
        raise BatchTooLarge(f"The batch holds more than {max_batch} images; the limit is {max_batch}")
    payload = decode_json(body, BatchRequest)
    if len(payload.images) > max_batch:
        raise BatchTooLarge(f"The batch holds {len(payload.images)} images; the limit is {max_batch}")
    items: list[bytes | FaceServiceError] = []
    for index, text in enumerate(payload.images):
        try:
            items.append(decode_base64(text, f"images[{index}]"))
        except InvalidInput as error:
            items.append(error)
    return items


@dataclass(frozen=True, slots=True)
class ComparisonInput:
    probe: list[float]
    single_candidate: list[float]
    candidates: list[list[float]] | None
    probe_model: str | None
    candidates_model: str | None


def comparison_from(content_type: str, body: bytes) -> ComparisonInput:
    """A /compare-faces body: `embedding_a` with either `embedding_b` or `candidates`."""
    payload = json_from(content_type, body, CompareRequest)
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
    except RecursionError:
        raise InvalidEmbedding(f"Invalid {name}: nested too deeply", name) from None


@dataclass(frozen=True, slots=True)
class GalleryInput:
    """What a collection route's body holds, parsed: the faces of an image (embedded in a worker), or
    an embedding the caller sent with its model."""

    extraction: Extraction | None = None
    source_digest: str = ""
    embedding: list[float] | None = None
    model: str | None = None
    top_k: int | None = None


def gallery_embedding(content_type: str, body: bytes) -> GalleryInput | None:
    """A collection route's JSON body when it holds `embedding` (+ `model`): no image, so no worker is
    needed. None when the body is not JSON or holds an image instead."""
    if not is_json(media_type_of(content_type)):
        return None
    return embedding_input(decode_json(body, GalleryRequest))


def embedding_input(payload: GalleryRequest) -> GalleryInput | None:
    """The embedding a parsed collection body holds (+ `model`, `top_k`); None when it holds none."""
    if payload.embedding is None:
        return None
    if not payload.model:  # without it no collection can say whether the vector is of its model
        raise InvalidInput(
            "An embedding needs the 'model' it came from (the id /extract-embedding answers with it)",
            code="missing_model",
            field="model",
        )
    return GalleryInput(embedding=payload.embedding, model=payload.model, top_k=payload.top_k)
