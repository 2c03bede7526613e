"""Image decoding with OpenCV. The format is decided by the file's bytes, never by a declared type."""

from __future__ import annotations

import cv2
import numpy as np

from domain.errors import ImageTooLarge, UndecodableImage, UnsupportedImageFormat
from domain.model import Image

SUPPORTED_FORMATS = ("jpeg", "png", "webp", "bmp")


def sniff_format(data: bytes) -> str | None:
    """Name the image format from its magic bytes, or None if it is not one we decode."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    return None


class OpenCVImageDecoder:
    """Decodes JPEG, PNG, WebP and BMP into 8-bit BGR.

    OpenCV's IMREAD_COLOR applies EXIF orientation (phone photos stored sideways come out upright)
    and converts grayscale, alpha, palette and 16-bit images to 8-bit three-channel BGR.
    """

    def __init__(self, max_pixels: int = 40_000_000) -> None:
        self._max_pixels = max_pixels

    def decode(self, data: bytes) -> Image:
        if not data:
            raise UndecodableImage("The image is empty")
        image_format = sniff_format(data)
        if image_format is None:
            raise UnsupportedImageFormat(
                "Unsupported image format; send " + ", ".join(f.upper() for f in SUPPORTED_FORMATS)
            )
        pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
        if pixels is None or pixels.size == 0:
            raise UndecodableImage(f"The {image_format.upper()} data could not be decoded (corrupt or truncated)")
        height, width = pixels.shape[:2]
        if height * width > self._max_pixels:
            raise ImageTooLarge(f"The image has {width}x{height} pixels; the limit is {self._max_pixels} pixels")
        return Image(pixels=np.asarray(pixels, dtype=np.uint8))
