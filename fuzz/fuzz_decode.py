"""Fuzz target for the image input path: base64 decoding, format sniffing, header parsing, size
limits, EXIF orientation, and libjpeg-turbo (simplejpeg) and OpenCV decoding. Any exception other
than the service's own errors is a finding.

Longer runs than the test suite's (which runs 3,000 inputs):

    uv run python fuzz/fuzz_decode.py -max_total_time=600 fuzz/corpus

(`fuzz/corpus` starts empty or with any images; libFuzzer adds what it finds. Crashes are written
to the current folder as crash-*.)
"""

from __future__ import annotations

import sys

import atheris
import cv2  # noqa: F401 - imported before instrumentation: only the service's own code is instrumented
import numpy  # noqa: F401
import simplejpeg  # noqa: F401

with atheris.instrument_imports():
    from adapters.images.decoder import OpenCVImageDecoder
    from adapters.images.header import read_header
    from adapters.wire.base64_images import decode_base64
    from domain.errors import FaceServiceError

# Small limits: the fuzzer must not spend its time decoding (legitimately) huge images.
DECODER = OpenCVImageDecoder(
    max_bytes=2_000_000, max_pixels=4_000_000, max_side=4096, fast_jpeg_decode=False, det_size=640
)


def test_one_input(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    through_base64 = provider.ConsumeBool()
    payload = provider.ConsumeBytes(sys.maxsize)
    try:
        if through_base64:
            payload = decode_base64(payload.decode("latin-1"), "image_base64")
        header = read_header(payload)
        image = DECODER.decode(payload)
    except FaceServiceError:
        return  # a clear refusal is the right answer to garbage
    # What was accepted is a proper image, and the header told the truth about it.
    assert header is not None
    assert image.pixels.ndim == 3 and image.pixels.shape[2] == 3 and image.pixels.dtype.name == "uint8"
    assert image.width * image.height <= 4_000_000
    assert sorted((image.width, image.height)) == sorted((header.width, header.height))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
