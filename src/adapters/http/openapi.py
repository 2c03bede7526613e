"""What the OpenAPI document says about the routes' bodies and error responses.

Every route reads its body itself (`adapters/wire/bodies.py`), so that each answers the documented
codes for a body it cannot read. The image routes take multipart *or* JSON, which one handler
parameter cannot express, so their request bodies are declared here; a JSON-only route's comes from
its struct (`json_body`). Responses come from the handlers' return types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar.di import Provide
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, OpenAPIMediaType, Operation, Reference, RequestBody, Schema
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from adapters.wire.schemas import ErrorResponse

STRING = Schema(type=OpenAPIType.STRING)
BINARY = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
BASE64 = Schema(type=OpenAPIType.STRING, description="The image file, base64 (standard or URL-safe, or a data: URL)")
VECTOR = Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.NUMBER), description="An embedding")


def _object(required: list[str], **properties: Schema | Reference) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, required=required, properties=properties)


# An 8x8 white JPEG: a valid image without a face.
TINY_JPEG = (
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkzODdASFxOQERXRTc4UG1RV19i"
    "Z2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj"
    "Y2NjY2NjY2P/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF"
    "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW"
    "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi"
    "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC"
    "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm"
    "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq"
    "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwD0CiiigD//2Q=="
)
EMBEDDING_EXAMPLE = [0.0225, -0.0516, -0.0222, 0.0305]  # shortened: real embeddings have 512 numbers


IMAGE_BODY = RequestBody(
    required=True,
    description="One image: a multipart `file` part, or JSON with `image_base64`. JPEG, PNG, WebP or BMP.",
    content={
        "multipart/form-data": OpenAPIMediaType(schema=_object(["file"], file=BINARY)),
        "application/json": OpenAPIMediaType(
            schema=_object(["image_base64"], image_base64=BASE64),
            examples={"image": Example(summary="A base64 JPEG", value={"image_base64": TINY_JPEG})},
        ),
    },
)
BATCH_BODY = RequestBody(
    required=True,
    description="Several images: multipart `file` parts, or JSON `images` (base64 strings).",
    content={
        "multipart/form-data": OpenAPIMediaType(
            schema=_object(["file"], file=Schema(type=OpenAPIType.ARRAY, items=BINARY))
        ),
        "application/json": OpenAPIMediaType(
            schema=_object(["images"], images=Schema(type=OpenAPIType.ARRAY, items=BASE64)),
            examples={"two": Example(summary="Two base64 JPEGs", value={"images": [TINY_JPEG, TINY_JPEG]})},
        ),
    },
)
COMPARE_BODY = RequestBody(
    required=True,
    description="`embedding_a` with either `embedding_b` (one to one) or `candidates` (one to many).",
    content={
        "application/json": OpenAPIMediaType(
            schema=_object(
                ["embedding_a"],
                embedding_a=VECTOR,
                embedding_b=VECTOR,
                candidates=Schema(type=OpenAPIType.ARRAY, items=VECTOR),
                model_a=STRING,
                model_b=STRING,
            ),
            examples={
                "one_to_one": Example(
                    summary="Two embeddings (shortened here; send all 512 numbers)",
                    value={
                        "embedding_a": EMBEDDING_EXAMPLE,
                        "embedding_b": EMBEDDING_EXAMPLE,
                        "model_a": "buffalo_s:9cc6e4a7",
                    },
                ),
                "one_to_many": Example(
                    summary="A probe against candidates",
                    value={"embedding_a": EMBEDDING_EXAMPLE, "candidates": [EMBEDDING_EXAMPLE, EMBEDDING_EXAMPLE]},
                ),
            },
        )
    },
)


GALLERY_BODY = RequestBody(
    required=True,
    description="An image (a multipart `file` part, or JSON `image_base64`), or JSON `embedding` with its `model`.",
    content={
        "multipart/form-data": OpenAPIMediaType(schema=_object(["file"], file=BINARY)),
        "application/json": OpenAPIMediaType(
            schema=_object(
                [],
                image_base64=BASE64,
                embedding=VECTOR,
                model=Schema(type=OpenAPIType.STRING, description="The `model` id that made `embedding`"),
                top_k=Schema(type=OpenAPIType.INTEGER, description="search only: subjects per face"),
            ),
            examples={
                "image": Example(summary="A base64 JPEG", value={"image_base64": TINY_JPEG}),
                "embedding": Example(
                    summary="An embedding (shortened here; send all 512 numbers) and its model",
                    value={"embedding": EMBEDDING_EXAMPLE, "model": "buffalo_s:9cc6e4a7"},
                ),
            },
        ),
    },
)


IMPORT_BODY = RequestBody(
    required=True,
    description="An export: JSON lines, the collection first, then one line per face (see GET .../export).",
    content={"application/x-ndjson": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
)


def with_body(body: RequestBody) -> type[Operation]:
    """An Operation class that carries this request body."""

    @dataclass
    class OperationWithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = body

    return OperationWithBody


def json_body(kind: type[msgspec.Struct]) -> dict[str, Provide]:
    """The `dependencies` of a route whose handler reads a JSON body of `kind` itself
    (`GalleryWork.json_body`), for the OpenAPI document alone. Litestar describes a request body from
    a `data` parameter of the handler or of any dependency it may take, and reads one only for a
    dependency the handler takes: this one no handler takes, so the body is described as Litestar
    describes every struct (a component the TypeScript client names) and never read by Litestar,
    whose errors for it would not be the documented ones."""

    def described_only(data: Any) -> None:
        raise AssertionError("never called: no handler takes this dependency")

    described_only.__annotations__ = {"data": kind, "return": None}
    return {"json_body_described": Provide(described_only, sync_to_thread=False)}


def errors(*statuses: int, specific: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """The error answers of these statuses, `specific` descriptions in place of the general ones."""
    descriptions = {
        400: "Malformed request: JSON, base64, fields or parameters",
        401: "Missing or wrong API key",
        403: "The API key's scope does not allow this verb on this collection (`forbidden_scope`)",
        408: "The body did not arrive in time",
        413: "Body, image, or batch over its limit",
        415: "Not a supported content type or image format",
        404: "No such collection, subject or face",
        409: "The collection exists, holds another model's vectors, or is at a limit",
        422: "An image that cannot be decoded, unusable embeddings, or no usable face",
        429: "Rate limit of this API key reached (Retry-After)",
        503: "At capacity, or the gallery's store is unavailable (Retry-After)",
        **(specific or {}),
    }
    return {
        status: ResponseSpec(data_container=ErrorResponse, description=descriptions[status], generate_examples=False)
        for status in statuses
    }


ERROR_RESPONSES = errors(400, 401, 403, 413, 415, 422, 429, 503)
QUARANTINED = "At capacity, the gallery's store is unavailable (Retry-After), or the collection is quarantined"
COLLECTION_ERRORS = errors(400, 401, 403, 404, 409, 413, 415, 422, 429, 503, specific={503: QUARANTINED})
IMPORT_ERRORS = errors(
    400,
    401,
    403,
    404,
    408,
    409,
    413,
    429,
    503,
    specific={
        400: "A line that is not a usable export line (`line` names it); nothing is kept",
        408: "The body arrived slower than MAX_REQUEST_BYTES per BODY_TIMEOUT_SECONDS; nothing is kept",
        413: "Over MAX_IMPORT_BYTES, or a line over MAX_IMPORT_LINE_BYTES; nothing is kept",
        503: QUARANTINED,
    },
)
