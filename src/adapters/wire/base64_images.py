"""Images sent inside JSON: base64, as browsers, Node and curl produce it."""

from __future__ import annotations

import base64
import binascii

from domain.errors import InvalidInput


def decode_base64(text: str, field: str) -> bytes:
    """Standard or URL-safe base64, with or without padding, line breaks or a `data:` URL prefix."""
    if text.startswith("data:") and "," in text[:200]:
        text = text.split(",", 1)[1]
    cleaned = "".join(text.split()).replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        data = base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{field} is not valid base64", code="invalid_base64") from None
    if not data:
        raise InvalidInput(f"{field} is empty", code="invalid_base64")
    return data
