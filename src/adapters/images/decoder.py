"""Image decoding. The format is decided by the file's bytes, never by a declared type, and the size
is checked from the header before any pixel is decoded.

JPEGs go through simplejpeg (libjpeg-turbo, bundled in its wheels): the same pixels as OpenCV's
decoder, bit for bit, in half the time on an 11.6 MP phone photo (OpenCV's own work around
libjpeg-turbo, and page faults: numpy puts large arrays on huge pages; bench/decode.py measures
it). Everything else, and every JPEG that simplejpeg cannot read exactly as OpenCV would (CMYK,
YCCK, Adobe RGB, a damaged file, an unreadable EXIF segment), goes through OpenCV, as before.
A large JPEG is decoded (and turned upright) into arrays kept from the last job where no image
uses them any more: the same pixels, without mapping 35 MB afresh each time (pixel_buffers.py)."""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg
from cv2.typing import MatLike

from adapters.images.header import jpeg_orientation, read_header, sniff_format
from adapters.images.pixel_buffers import PIXEL_BUFFERS, PixelBuffers
from domain.errors import ImageTooLarge, UndecodableImage, UnsupportedImageFormat
from domain.model import Image, Pixels

SUPPORTED_FORMATS = ("jpeg", "png", "webp", "bmp")
REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}
# JPEG colour spaces libjpeg-turbo turns into BGR exactly as OpenCV does; the others go to OpenCV.
TURBO_COLORSPACES = ("YCbCr", "Gray")


def configure_opencv() -> None:
    """Process-wide OpenCV settings for a server.

    One thread per call: OpenCV's own pool would compete with the inference workers for the cores.
    Fatal messages only: a hostile upload would otherwise print a decoder error line per request,
    and every refusal already gets its own clear answer.
    """
    cv2.setNumThreads(1)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)


def reduction_for(width: int, height: int, det_size: int) -> int:
    """The JPEG decoding reduction (1, 2, 4 or 8) that keeps the long side at least twice the
    detector input, so faces the detector finds stay large enough to embed."""
    for factor in (8, 4, 2):
        if max(width, height) / factor >= 2 * det_size:
            return factor
    return 1


class OpenCVImageDecoder:
    """Decodes JPEG, PNG, WebP and BMP into 8-bit BGR.

    JPEGs go through libjpeg-turbo (`decode_jpeg`) where it gives OpenCV's pixels exactly, the rest
    through OpenCV. Both apply EXIF orientation (phone photos stored sideways come out upright);
    OpenCV's IMREAD_COLOR converts grayscale, alpha, palette and 16-bit images to 8-bit BGR.

    `fast_jpeg_decode` decodes large JPEGs at 1/2, 1/4 or 1/8 of their resolution (libjpeg's DCT
    scaling): 1.8 times faster on phone photos, at a small cost in embedding fidelity
    (docs/performance.md). Coordinates are still reported in the original pixels.
    """

    def __init__(
        self,
        *,
        max_bytes: int,
        max_pixels: int,
        max_side: int,
        fast_jpeg_decode: bool,
        det_size: int,
        buffers: PixelBuffers | None = PIXEL_BUFFERS,
    ) -> None:
        self._max_bytes = max_bytes
        self.buffers = buffers  # the kept arrays it decodes into; None: fresh ones each time
        self._max_pixels = max_pixels
        self._max_side = max_side
        self._fast_jpeg_decode = fast_jpeg_decode
        self._det_size = det_size

    def decode(self, data: bytes) -> Image:
        if not data:
            raise UndecodableImage("The image is empty")
        if len(data) > self._max_bytes:
            raise ImageTooLarge(f"The image is {len(data)} bytes; the limit is {self._max_bytes} bytes")
        if sniff_format(data) is None:
            raise UnsupportedImageFormat(
                "Unsupported image format; send " + ", ".join(f.upper() for f in SUPPORTED_FORMATS)
            )
        header = read_header(data)
        if header is None:
            raise UndecodableImage("The image header is corrupt or truncated")
        name = header.format.upper()
        if max(header.width, header.height) > self._max_side:
            raise ImageTooLarge(
                f"The image is {header.width}x{header.height}; the longest side allowed is {self._max_side} pixels"
            )
        if header.width * header.height > self._max_pixels:
            raise ImageTooLarge(
                f"The image has {header.width}x{header.height} pixels; the limit is {self._max_pixels} pixels"
            )
        factor = 1
        if self._fast_jpeg_decode and header.format == "jpeg":
            factor = reduction_for(header.width, header.height, self._det_size)
        pixels: Pixels | MatLike | None = decode_jpeg(data, factor, self.buffers) if header.format == "jpeg" else None
        if pixels is None:
            if self.buffers is not None:  # OpenCV allocates its own: no kept arrays beside them
                self.buffers.release_unused()
            flag = REDUCED_FLAGS.get(factor, cv2.IMREAD_COLOR)
            pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
        if pixels is None or pixels.size == 0:
            raise UndecodableImage(f"The {name} data could not be decoded (corrupt or truncated)")
        height, width = pixels.shape[:2]
        # EXIF orientation may have turned the stored image by 90 degrees.
        rotated = (width > height) != (header.width > header.height) and header.width != header.height
        source = (header.height, header.width) if rotated else (header.width, header.height)
        return Image(pixels=np.asarray(pixels, dtype=np.uint8), source_size=source if factor > 1 else None)


def decode_jpeg(data: bytes, factor: int = 1, buffers: PixelBuffers | None = None) -> Pixels | None:
    """A JPEG decoded to upright BGR with libjpeg-turbo, at 1/`factor` of its size (1, 2, 4 or 8, as
    OpenCV's IMREAD_REDUCED_COLOR_*), or None where OpenCV must decide (a colour space or EXIF
    segment read otherwise, data libjpeg-turbo warns about). A full-size decode and its upright copy
    are written into `buffers`' arrays where it has them (pixel_buffers.py says why)."""
    orientation = jpeg_orientation(data)
    if orientation is None:
        return None
    try:
        height, width, colorspace, _subsampling = simplejpeg.decode_jpeg_header(data)
        if colorspace not in TURBO_COLORSPACES:
            return None
        # strict: a recoverable error (a truncated scan, say) is OpenCV's to answer, as before.
        output = buffers.array((height, width, 3)) if buffers is not None and factor == 1 else None
        decoded = simplejpeg.decode_jpeg(
            data,
            colorspace="BGR",
            strict=True,
            min_width=-(-width // factor),
            min_height=-(-height // factor),
            buffer=output,
        )
        pixels = np.asarray(decoded, dtype=np.uint8)
    except ValueError:
        return None
    return oriented(pixels, orientation, buffers)


def oriented(pixels: Pixels, orientation: int, buffers: PixelBuffers | None = None) -> Pixels:
    """Turn stored pixels upright for an EXIF orientation (1 to 8), as OpenCV's IMREAD_COLOR does,
    into one of `buffers`' arrays where it has one."""
    if orientation not in range(2, 9):
        return pixels
    height, width = pixels.shape[:2]
    shape = (height, width, 3) if orientation in (2, 3, 4) else (width, height, 3)
    output = buffers.array(shape) if buffers is not None else np.empty(shape, dtype=np.uint8)
    if orientation == 2:
        turned = cv2.flip(pixels, 1, output)
    elif orientation == 3:
        turned = cv2.rotate(pixels, cv2.ROTATE_180, output)
    elif orientation == 4:
        turned = cv2.flip(pixels, 0, output)
    elif orientation == 5:
        turned = cv2.transpose(pixels, output)
    elif orientation == 6:
        turned = cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE, output)
    elif orientation == 7:
        turned = cv2.rotate(cv2.transpose(pixels), cv2.ROTATE_180, output)
    else:
        turned = cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE, output)
    return np.asarray(turned, dtype=np.uint8)
