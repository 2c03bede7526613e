"""Image dimensions from the first bytes of a file, before any pixel is decoded.

Checking the size first is what stops a decompression bomb: a few hundred KB of PNG that would
decode into gigabytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True, slots=True)
class ImageHeader:
    format: str
    width: int
    height: int


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


def read_header(data: bytes) -> ImageHeader | None:
    """Format and stored size (before EXIF rotation), or None if the header is missing or broken."""
    image_format = sniff_format(data)
    try:
        if image_format == "jpeg":
            size = _jpeg_size(data)
        elif image_format == "png":
            size = _png_size(data)
        elif image_format == "webp":
            size = _webp_size(data)
        elif image_format == "bmp":
            size = _bmp_size(data)
        else:
            return None
    except (struct.error, IndexError, ValueError):
        return None
    if size is None or size[0] <= 0 or size[1] <= 0:
        return None
    assert image_format is not None
    return ImageHeader(image_format, size[0], size[1])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            offset += 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        if length < 2:
            return None
        if marker in JPEG_FRAME_MARKERS:
            height, width = struct.unpack(">HH", data[offset + 5 : offset + 9])
            return width, height
        if marker == 0xDA:  # start of scan before any frame header
            return None
        offset += 2 + length
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR" or not png_chunks_fit(data):
        return None
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def png_chunks_fit(data: bytes) -> bool:
    """Every chunk's declared length fits in the bytes that follow it, up to IEND.

    OpenCV 5's PNG reader trusts a chunk's length: a 295-byte file whose chunk claims 1.7 GB made
    it allocate 4 GB for seconds before failing (found by the fuzzer). Walking the chunk headers
    costs a few microseconds and refuses such a file before it is decoded.
    """
    offset = 8
    while offset + 12 <= len(data):
        length = struct.unpack(">I", data[offset : offset + 4])[0]
        kind = data[offset + 4 : offset + 8]
        end = offset + 12 + length
        if length > 0x7FFFFFFF or end > len(data):
            return False
        if kind == b"IEND":
            return True
        offset = end
    return False


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            return None
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    (header_size,) = struct.unpack("<I", data[14:18])
    if header_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
        return width, height
    width, height = struct.unpack("<ii", data[18:26])
    return width, abs(height)


EXIF_ORIENTATION_TAG = 0x0112


def jpeg_orientation(data: bytes) -> int | None:
    """The EXIF orientation (1 to 8) of a JPEG; 1 when it carries none, None when its EXIF
    segment cannot be read with certainty (the caller then leaves orientation to OpenCV)."""
    offset = 2
    try:
        while offset + 4 <= len(data):
            if data[offset] != 0xFF:
                return None
            marker = data[offset + 1]
            if marker == 0xFF:
                offset += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                offset += 2
                continue
            if marker == 0xDA:  # start of scan: no EXIF before the pixels
                return 1
            (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
            if length < 2:
                return None
            if marker == 0xE1 and data[offset + 4 : offset + 10] == b"Exif\x00\x00":
                return _tiff_orientation(data[offset + 10 : offset + 2 + length])
            offset += 2 + length
    except (struct.error, IndexError, ValueError):
        return None
    return None


def _tiff_orientation(tiff: bytes) -> int | None:
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack(order + "H", tiff[2:4])[0] != 42:
        return None
    (ifd,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
    for index in range(count):
        entry = tiff[ifd + 2 + 12 * index : ifd + 14 + 12 * index]
        if len(entry) < 12:
            return None
        tag, kind, _count = struct.unpack(order + "HHI", entry[:8])
        if tag == EXIF_ORIENTATION_TAG:
            if kind != 3:  # SHORT, as the standard says
                return None
            (value,) = struct.unpack(order + "H", entry[8:10])
            return value if 1 <= value <= 8 else None
    return 1
