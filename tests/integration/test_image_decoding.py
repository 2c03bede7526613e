"""Image headers, size limits before decoding, formats, and reduced-resolution JPEG decoding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from adapters.images.decoder import reduction_for
from adapters.images.header import read_header
from domain.errors import ImageTooLarge, UndecodableImage, UnsupportedImageFormat
from tests.support.photos import GROUP_PHOTO, SELFIE
from tests.support.services import decoder

PIXELS = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize("extension", [".jpg", ".png", ".webp", ".bmp"])
def test_header_sizes_match_the_decoded_image(extension: str) -> None:
    ok, data = cv2.imencode(extension, PIXELS)
    assert ok
    header = read_header(data.tobytes())
    assert header is not None
    assert (header.width, header.height) == (53, 37)
    image = decoder().decode(data.tobytes())
    assert (image.width, image.height) == (53, 37)


def test_lossless_webp_and_grayscale_png_and_alpha() -> None:
    ok, webp = cv2.imencode(".webp", PIXELS, [cv2.IMWRITE_WEBP_QUALITY, 101])  # 101: lossless (VP8L)
    assert ok and read_header(webp.tobytes()) is not None
    gray = cv2.cvtColor(PIXELS, cv2.COLOR_BGR2GRAY)
    rgba = cv2.cvtColor(PIXELS, cv2.COLOR_BGR2BGRA)
    sixteen = PIXELS.astype(np.uint16) * 257
    for pixels in (gray, rgba, sixteen):
        ok, png = cv2.imencode(".png", pixels)
        image = decoder().decode(png.tobytes())
        assert image.pixels.shape == (37, 53, 3) and image.pixels.dtype == np.uint8


def test_size_is_refused_from_the_header_before_decoding() -> None:
    _ok, data = cv2.imencode(".png", np.zeros((100, 100, 3), np.uint8))
    forged = bytearray(data.tobytes())
    forged[16:24] = (30000).to_bytes(4, "big") + (30000).to_bytes(4, "big")  # IHDR claims 30000x30000
    with pytest.raises(ImageTooLarge):
        decoder(max_pixels=40_000_000).decode(bytes(forged))
    with pytest.raises(ImageTooLarge):
        decoder(max_pixels=10**9, max_side=12_000).decode(bytes(forged))


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", UndecodableImage),
        (b"GIF89a" + b"\x00" * 20, UnsupportedImageFormat),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 10, UndecodableImage),  # JPEG start, no frame header
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, UndecodableImage),
    ],
)
def test_broken_or_foreign_bytes(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        decoder().decode(data)


def test_reduction_keeps_the_long_side_at_twice_the_detector_input() -> None:
    assert reduction_for(4096, 2835, 640) == 2
    assert reduction_for(6000, 4000, 640) == 4
    assert reduction_for(1280, 886, 640) == 1
    assert reduction_for(233, 287, 640) == 1


def test_fast_jpeg_decode_reports_sizes_in_the_sent_pixels() -> None:
    big = cv2.resize(cv2.imread(str(GROUP_PHOTO)), (4096, 2835))
    _ok, data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    image = decoder(fast_jpeg_decode=True).decode(data.tobytes())
    assert (image.width, image.height) == (2048, 1418)
    assert (image.source_width, image.source_height) == (4096, 2835)
    full = decoder().decode(data.tobytes())
    assert full.source_size is None and (full.source_width, full.width) == (4096, 4096)


def test_selfie_is_not_reduced_even_in_fast_mode() -> None:
    image = decoder(fast_jpeg_decode=True).decode(SELFIE.read_bytes())
    assert image.source_size is None


@pytest.mark.parametrize("image_format", ["WEBP", "PNG"])
def test_animated_images_are_read_as_their_first_frame(image_format: str) -> None:
    import io

    from PIL import Image as PILImage

    frames = [PILImage.fromarray(np.full((40, 60, 3), level, np.uint8)) for level in (10, 200)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=image_format, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image = decoder().decode(buffer.getvalue())
    assert image.pixels.shape == (40, 60, 3)
    assert image.pixels.mean() == pytest.approx(10, abs=1)


def test_palette_png_is_decoded() -> None:
    import io

    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.fromarray(PIXELS[:, :, ::-1]).convert("P").save(buffer, format="PNG")
    assert decoder().decode(buffer.getvalue()).pixels.shape == (37, 53, 3)


# Found by the fuzzer: a 295-byte PNG (32x24) whose chunk lengths run past its end. OpenCV 5's PNG
# reader allocated 4 GB for seconds before failing on it; its chunks are now walked before decoding.
CHUNK_BOMB = bytes.fromhex(
    "89504e470d0a1a0a0000000d494844520000002000000018080200000014316862f600092349444154480d011809e7f6"
    "01c2825f294d7a36d4366136c88ee421d8fb4dc19688612f703873e0e5c6f6144e28f1da16069c27ead4585d00524946"
    "4660090000574542505650384cd6175033360c57adbde954bdcd667fb47660a1ffffffffffffffffffffffffffffffff"
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff0008b60089504e"
    "470d0a1a0a000064d57f6a9f08c602d16a9ec995a0add1e4f7020000000000007049dbbc34000d494844520000002000"
    "0000180802000010143268630000092349444154480d011809e70408268ebf01ca2accb375e9e74ec8c7c5bf765b68e2"
    "22a4a38a2592cb"
)


def test_a_png_whose_chunks_run_past_its_end_is_refused_before_decoding() -> None:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UndecodableImage):
        decoder().decode(CHUNK_BOMB)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # kB: far from 4 GB
