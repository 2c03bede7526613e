"""JPEG decoding of the bench's phone photo, path by path: `uv run python -m bench.decode [--repeats N]`.

What a full-resolution decode costs with OpenCV (the plain path) and with simplejpeg (the service's
path since docs/performance.md "Large photos"), and what the reduced-scale decodes a "detect on a
small decode, then decode the faces' regions" design would start from cost: each of them still
reads every bit of the file's entropy-coded data, which is the floor of any decode.

Then a phone photo's whole extraction in-process (decode, detect, align, embed, quality; all six
faces) with OpenCV's decode and with the service's, alternating image by image so that a shared
machine's load falls on both alike, memory trimmed after each as the service's executor does (so
each decode writes into freshly mapped pages, as in the service).

Last, how faithful the region design could be at best: the detector run on a reduced decode, every face
then aligned from the full-resolution pixels (what a region decode would give), against the plain
path (detector and alignment on the full decode): the boxes' worst edge and the lowest cosine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np
import simplejpeg

from adapters.images.decoder import OpenCVImageDecoder
from adapters.inference.executor import trim_memory
from app.bootstrap import bootstrap
from app.settings import Settings
from bench.model_cost import ModelCost
from bench.workloads import GROUP, PHONE_SIDE, variants
from domain.model import DetectedFace, Image


def timed(work: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best and median milliseconds over `repeats` runs, after one warm-up run."""
    work()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append((time.perf_counter() - began) * 1000)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.decode", description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    data = variants(GROUP, 1, seed=9, side=PHONE_SIDE)[0]
    buffer = np.frombuffer(data, np.uint8)
    height, width = simplejpeg.decode_jpeg_header(data)[:2]
    limits = {"max_bytes": len(data), "max_pixels": width * height, "max_side": max(width, height)}
    service = OpenCVImageDecoder(**limits, fast_jpeg_decode=False, det_size=640)
    paths: dict[str, Callable[[], object]] = {
        "OpenCV imdecode, full (the plain path)": lambda: cv2.imdecode(buffer, cv2.IMREAD_COLOR),
        "simplejpeg, full": lambda: simplejpeg.decode_jpeg(data, "BGR"),
        "the service's decoder (simplejpeg, full, header and EXIF checks)": lambda: service.decode(data),
    }
    for factor in (2, 4, 8):
        paths[f"simplejpeg, 1/{factor} (DCT scaling)"] = lambda factor=factor: simplejpeg.decode_jpeg(
            data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor)
        )
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        paths[f"OpenCV imdecode, 1/{factor} (FAST_JPEG_DECODE)"] = lambda flag=flag: cv2.imdecode(buffer, flag)
    paths["simplejpeg, 1/8, grey (entropy decoding and little else)"] = lambda: simplejpeg.decode_jpeg(
        data, "GRAY", min_width=-(-width // 8), min_height=-(-height // 8)
    )
    print(f"phone photo: {width}x{height}, {len(data)} bytes; best / median of {args.repeats} runs, one thread")
    for name, work in paths.items():
        best, median = timed(work, args.repeats)
        print(f"{best:7.1f} / {median:7.1f} ms  {name}")
    whole_extraction(variants(GROUP, 4, seed=9, side=PHONE_SIDE), max(1, args.repeats // 4))
    detection_on_reduced_decodes(data)


def whole_extraction(images: list[bytes], repeats: int) -> None:
    env = {"API_KEY": "bench-key-0123456789", "INFERENCE_ISOLATION": "thread", "DATA_DIR": tempfile.mkdtemp()}
    service = bootstrap(Settings.from_env(env)).service()

    def plain(data: bytes) -> None:
        pixels = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8)
        service.extract_image(Image(pixels), all_faces=True)

    def served(data: bytes) -> None:
        service.extract(data, all_faces=True)

    paths: dict[str, Callable[[bytes], None]] = {"OpenCV decode": plain, "the service's decode": served}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for path in paths.values():  # warm-up
        path(images[0])
    for _ in range(repeats):
        for data in images:
            for name, path in paths.items():
                began = time.perf_counter()
                path(data)
                times[name].append((time.perf_counter() - began) * 1000)
                trim_memory()
    print(f"whole extraction of a phone photo, {len(images)} photos x {repeats}, one thread:")
    for name, spent in times.items():
        print(f"{min(spent):7.1f} / {statistics.median(spent):7.1f} ms  {name}")


def nearest(face: DetectedFace, faces: list[DetectedFace]) -> DetectedFace:
    return min(faces, key=lambda other: abs(other.box.x1 - face.box.x1) + abs(other.box.y1 - face.box.y1))


def detection_on_reduced_decodes(data: bytes) -> None:
    models = ModelCost(intra_op_threads=1)
    full = simplejpeg.decode_jpeg(data, "BGR")
    height, width = full.shape[:2]
    reference = models.detector.detect(Image(full))
    reference_vectors = models.embedder.embed(Image(full), reference)
    print(f"detector on a reduced decode, {len(reference)} faces aligned from full resolution, against the plain path:")
    for factor in (2, 4, 8):
        small = simplejpeg.decode_jpeg(data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor))
        reduced = Image(small, source_size=(width, height))
        found = [face.in_source_pixels(reduced) for face in models.detector.detect(reduced)]
        paired = [nearest(face, found) for face in reference]
        edge = max(
            max(abs(a.box.x1 - b.box.x1), abs(a.box.y1 - b.box.y1), abs(a.box.x2 - b.box.x2), abs(a.box.y2 - b.box.y2))
            for a, b in zip(reference, paired, strict=True)
        )
        vectors = models.embedder.embed(Image(full), paired)
        cosine = min(float(a @ b) for a, b in zip(reference_vectors, vectors, strict=True))
        print(f"  1/{factor}: {len(found)} faces, worst box edge {edge:.2f} px (full scale), min cosine {cosine:.4f}")


if __name__ == "__main__":
    main()
