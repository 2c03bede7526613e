"""The libjpeg-turbo path (simplejpeg) against OpenCV's decoder, the plain path: the same pixels, so the
same faces and embeddings, on every bundled photo and phone-sized variants of them (progressive,
EXIF-rotated, other chroma subsampling, grayscale); what it cannot read exactly (CMYK, damaged data,
an unreadable EXIF segment) goes to the plain path."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from adapters.images.decoder import decode_jpeg
from adapters.images.header import jpeg_orientation
from domain.errors import UndecodableImage
from domain.model import Image
from domain.use_cases.faces import FaceService
from tests.support.photos import GROUP_PHOTO, SELFIE, TEAM_PHOTO, TIGHT_CROP, TRIO_PHOTO
from tests.support.services import decoder

PHOTOS = [GROUP_PHOTO, SELFIE, TEAM_PHOTO, TRIO_PHOTO, TIGHT_CROP]
PHONE_PIXELS = 12_000_000  # a phone camera's photo


def exif_segment(orientation: int, order: str) -> bytes:
    """An EXIF APP1 segment holding only an orientation tag, in either TIFF byte order."""
    code = "<" if order == "II" else ">"
    tiff = (
        order.encode()
        + (42).to_bytes(2, "little" if order == "II" else "big")
        + (8).to_bytes(4, "little" if order == "II" else "big")
        + np.array([1], dtype=code + "u2").tobytes()
        + np.array([0x0112, 3], dtype=code + "u2").tobytes()
        + np.array([1], dtype=code + "u4").tobytes()
        + np.array([orientation, 0], dtype=code + "u2").tobytes()
        + b"\x00\x00\x00\x00"
    )
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def with_orientation(jpeg: bytes, orientation: int, order: str = "MM") -> bytes:
    return jpeg[:2] + exif_segment(orientation, order) + jpeg[2:]


def phone_sized(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_COLOR)
    scale = (PHONE_PIXELS / (pixels.shape[0] * pixels.shape[1])) ** 0.5
    return np.asarray(cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC))


def encode(pixels: np.ndarray, *flags: int) -> bytes:
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 90, *flags])
    assert ok
    return data.tobytes()


def plain(data: bytes) -> np.ndarray:
    """OpenCV's full-resolution decode: the path every JPEG took before, and the reference."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    return np.asarray(pixels)


def stored_sideways(pixels: np.ndarray) -> bytes:
    """The photo as a phone stores it when held upright: turned, with EXIF orientation 6 to undo it."""
    return with_orientation(encode(cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)), 6)


VARIANTS: dict[str, Callable[[np.ndarray], bytes]] = {
    "baseline": lambda p: encode(p),
    "progressive": lambda p: encode(p, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "exif-rotated": stored_sideways,
    "progressive-exif-rotated": lambda p: with_orientation(
        encode(cv2.rotate(p, cv2.ROTATE_90_CLOCKWISE), cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 8, "II"
    ),
    "4:4:4": lambda p: encode(p, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444),
    "4:2:2": lambda p: encode(p, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422),
    "4:1:1": lambda p: encode(p, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411),
    "grayscale": lambda p: encode(cv2.cvtColor(p, cv2.COLOR_BGR2GRAY)),
}


@pytest.mark.parametrize("path", PHOTOS, ids=lambda p: p.name)
def test_every_bundled_photo_and_its_phone_sized_variants_decode_to_the_plain_paths_pixels(path: Path) -> None:
    original = cv2.imread(str(path), cv2.IMREAD_COLOR)
    for pixels in (original, phone_sized(path)):
        for name, make in VARIANTS.items():
            data = make(pixels)
            turbo = decode_jpeg(data)
            assert turbo is not None, name  # taken by the libjpeg-turbo path, not routed away
            assert np.array_equal(turbo, plain(data)), name
            assert np.array_equal(decoder().decode(data).pixels, turbo), name
    if path.suffix == ".jpg":  # the bundled file itself, as shipped
        assert np.array_equal(decoder().decode(path.read_bytes()).pixels, plain(path.read_bytes()))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("order", ["II", "MM"])
def test_every_exif_orientation_is_applied_as_opencv_applies_it(orientation: int, order: str) -> None:
    pixels = cv2.imread(str(SELFIE), cv2.IMREAD_COLOR)[:200, :150]  # not square: a turn changes the shape
    data = with_orientation(encode(pixels), orientation, order)
    assert jpeg_orientation(data) == orientation
    turbo = decode_jpeg(data)
    assert turbo is not None
    assert np.array_equal(turbo, plain(data))


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_reduced_decodes_match_opencvs_reduced_decodes(factor: int) -> None:
    """FAST_JPEG_DECODE's path: the same pixels as OpenCV's IMREAD_REDUCED_COLOR_*, odd sizes and
    EXIF turns included."""
    flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
    pixels = phone_sized(GROUP_PHOTO)[:2999, :4001]
    for data in (encode(pixels), stored_sideways(pixels), encode(pixels, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)):
        turbo = decode_jpeg(data, factor)
        assert turbo is not None
        assert np.array_equal(turbo, cv2.imdecode(np.frombuffer(data, np.uint8), flag))


def test_cmyk_and_an_unreadable_exif_segment_go_to_the_plain_path() -> None:
    from PIL import Image as PILImage

    pixels = cv2.imread(str(TRIO_PHOTO), cv2.IMREAD_COLOR)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels[:, :, ::-1]).convert("CMYK").save(buffer, format="JPEG", quality=90)
    cmyk = buffer.getvalue()
    assert decode_jpeg(cmyk) is None  # libjpeg-turbo's CMYK is not OpenCV's conversion
    assert np.array_equal(decoder().decode(cmyk).pixels, plain(cmyk))

    broken_exif = with_orientation(encode(pixels), 6)
    broken_exif = broken_exif.replace(b"Exif\x00\x00MM\x00\x2a", b"Exif\x00\x00XX\x00\x2a", 1)
    assert jpeg_orientation(broken_exif) is None
    assert decode_jpeg(broken_exif) is None
    assert np.array_equal(decoder().decode(broken_exif).pixels, plain(broken_exif))


def test_a_truncated_phone_photo_gets_the_plain_paths_answer() -> None:
    data = encode(phone_sized(GROUP_PHOTO))
    truncated = data[: len(data) // 2]
    assert decode_jpeg(truncated) is None  # libjpeg-turbo warns: OpenCV decides, as before
    with pytest.raises(UndecodableImage):
        decoder().decode(truncated)


@pytest.mark.real_model
@pytest.mark.parametrize(
    ("path", "variant", "faces"),
    [
        (GROUP_PHOTO, "as shipped", 6),
        (SELFIE, "as shipped", 1),
        (TEAM_PHOTO, "as shipped", None),
        (TRIO_PHOTO, "as shipped", None),
        (GROUP_PHOTO, "baseline", 6),
        (GROUP_PHOTO, "progressive", 6),
        (GROUP_PHOTO, "exif-rotated", 6),
        (GROUP_PHOTO, "progressive-exif-rotated", 6),
        (SELFIE, "exif-rotated", 1),
        (TRIO_PHOTO, "progressive", None),
        # The photo whose small faces a reduced-scale detection moves furthest (docs/performance.md).
        (TEAM_PHOTO, "progressive-exif-rotated", None),
        (TEAM_PHOTO, "4:4:4", None),
    ],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_faces_and_embeddings_match_the_plain_path(
    real_service: FaceService, path: Path, variant: str, faces: int | None
) -> None:
    """End to end on the real models: every face within 1 pixel, every embedding at cosine >= 0.999,
    the same quality; on the photo as shipped and on phone-sized variants."""
    data = path.read_bytes() if variant == "as shipped" else VARIANTS[variant](phone_sized(path))
    served = real_service.extract(data, all_faces=True)
    reference = real_service.extract_image(Image(plain(data)), all_faces=True)
    assert (served.width, served.height) == (reference.width, reference.height)
    assert served.faces_count == reference.faces_count > 0
    assert faces is None or served.faces_count == faces
    for ours, theirs in zip(served.faces, reference.faces, strict=True):
        a, b = ours.face.box, theirs.face.box
        assert max(abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2)) <= 1.0
        assert float(ours.embedding @ theirs.embedding) >= 0.999
        assert ours.face.quality == theirs.face.quality
