"""JPEG decoding of the bench's phone photo, path by path: `uv run python -m bench.decode [--repeats N]`.

What a full-resolution decode costs with OpenCV (the plain path) and with simplejpeg (the service's
path since docs/performance.md "Large photos"), and what the reduced-scale decodes a "detect on a
small decode, then decode the faces' regions" design would start from cost: each of them still
reads every bit of the file's entropy-coded data, which is the floor of any decode. Also the same
photo stored sideways (EXIF orientation 6, as a phone held upright stores it): the decode, then a
full-resolution turn upright.

Then a phone photo's whole extraction in-process (decode, detect, align, embed, quality; all six
faces) with OpenCV's decode, with the service's decode into freshly allocated arrays (the service
until pixel_buffers.py), and with the service's decode as it is (into the arrays kept from the last
job), alternating image by image so that a shared machine's load falls on both alike, each followed
by what a worker does after a job (`trim_if_heap_over`). A fresh 35 MB array is mapped, zeroed and
unmapped by the kernel each time: the lines give each path's user and kernel CPU time and page
faults per photo.

Then that design's own decode, measured where PyTurboJPEG and the system's libturbojpeg are installed
(`apt install libturbojpeg0`, then `uv run --with pyturbojpeg==1.8.3 python -m bench.decode`; they
are no dependency of the service): a reduced decode, then one lossless MCU-aligned crop of every
face's region (`crop_multiple`, one entropy-decoding pass) and each region decoded at full
resolution. It checks that the regions' pixels are the full decode's and that faces aligned from them
embed as from the full decode.

Last, how faithful the region design could be at best, on every bundled photo enlarged to phone size: the
detector run on a reduced decode, every face then aligned from the full-resolution pixels (what a
region decode gives), against the plain path (detector and alignment on the full decode): the boxes'
worst edge and the lowest cosine; and FAST_JPEG_DECODE's path (faces aligned from the reduced decode).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from collections.abc import Callable

import cv2
import numpy as np
import simplejpeg

from adapters.images.decoder import OpenCVImageDecoder
from adapters.images.pixel_buffers import PIXEL_BUFFERS
from adapters.inference.executor import trim_if_heap_over
from adapters.models.alignment import ARCFACE_REFERENCE, similarity_transform
from app.bootstrap import bootstrap
from app.settings import Settings
from bench.model_cost import ModelCost
from bench.workloads import GROUP, PHONE_SIDE, SELFIE, TEAM, TRIO, variants
from domain.model import DetectedFace, Image

try:  # the region design's crop (see the docstring): optional, for this measurement only
    from turbojpeg import TJPF_BGR, TurboJPEG

    turbo: TurboJPEG | None = TurboJPEG()
except (ImportError, RuntimeError, OSError):
    turbo = None


def stored_sideways(data: bytes) -> bytes:
    """The photo as a phone held upright stores it: turned a quarter counter-clockwise, with an EXIF
    segment (orientation 6) that says to turn it back."""
    turned = cv2.rotate(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.ROTATE_90_COUNTERCLOCKWISE)
    ok, encoded = cv2.imencode(".jpg", turned, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    # Big-endian TIFF: one IFD entry, tag 0x0112 (orientation), type SHORT, count 1, value 6.
    tiff = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + b"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"
    payload = b"Exif\x00\x00" + tiff + b"\x00\x00\x00\x00"
    jpeg = encoded.tobytes()
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


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
    limits = {"max_bytes": 4 * len(data), "max_pixels": width * height, "max_side": max(width, height)}
    service = OpenCVImageDecoder(**limits, fast_jpeg_decode=False, det_size=640)
    fresh = OpenCVImageDecoder(**limits, fast_jpeg_decode=False, det_size=640, buffers=None)
    sideways = stored_sideways(data)
    paths: dict[str, Callable[[], object]] = {
        "OpenCV imdecode, full (the plain path)": lambda: cv2.imdecode(buffer, cv2.IMREAD_COLOR),
        "simplejpeg, full": lambda: simplejpeg.decode_jpeg(data, "BGR"),
        "the service's decoder (simplejpeg, full, header and EXIF checks)": lambda: service.decode(data),
        "the service's decoder, the photo stored sideways (EXIF orientation 6, turned upright)": lambda: service.decode(
            sideways
        ),
        "the same into fresh arrays (before pixel_buffers.py)": lambda: fresh.decode(sideways),
    }
    for factor in (2, 4, 8):
        paths[f"simplejpeg, 1/{factor} (DCT scaling)"] = lambda factor=factor: simplejpeg.decode_jpeg(
            data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor)
        )
        flag = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[factor]
        paths[f"OpenCV imdecode, 1/{factor} (FAST_JPEG_DECODE)"] = lambda flag=flag: cv2.imdecode(buffer, flag)
    paths["simplejpeg, full, fast IDCT and upsampling (not the plain path's pixels)"] = lambda: simplejpeg.decode_jpeg(
        data, "BGR", fastdct=True, fastupsample=True
    )
    paths["simplejpeg, 1/8, grey (entropy decoding and little else)"] = lambda: simplejpeg.decode_jpeg(
        data, "GRAY", min_width=-(-width // 8), min_height=-(-height // 8)
    )
    print(f"phone photo: {width}x{height}, {len(data)} bytes; best / median of {args.repeats} runs, one thread")
    for name, work in paths.items():
        best, median = timed(work, args.repeats)
        print(f"{best:7.1f} / {median:7.1f} ms  {name}")
    region_design_decode(data, args.repeats)
    whole_extraction(variants(GROUP, 4, seed=9, side=PHONE_SIDE), max(1, args.repeats // 4))
    for name, photo in (("group", GROUP), ("team", TEAM), ("selfie", SELFIE), ("trio", TRIO)):
        detection_on_reduced_decodes(name, variants(photo, 1, seed=9, side=PHONE_SIDE)[0])


MCU = 16  # the phone photo's minimum coded unit (4:2:0): lossless crops start on its multiples


def face_regions(image: Image, faces: list[DetectedFace], width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Each face's region as (x, y, w, h): what aligning it reads (the 112x112 crop mapped back onto the
    photo, plus the two pixels bilinear sampling touches), widened to whole MCUs and one MCU more each
    side, so that chroma upsampling at the region's edge sees the same neighbours as in a full decode."""
    regions = []
    for face in faces:
        matrix = cv2.invertAffineTransform(
            similarity_transform(np.asarray(face.landmarks, dtype=np.float64), ARCFACE_REFERENCE)
        )
        corners = np.array([[0, 0, 1], [112, 0, 1], [0, 112, 1], [112, 112, 1]], dtype=np.float64) @ matrix.T
        x1, y1 = np.floor(corners.min(axis=0)) - 2
        x2, y2 = np.ceil(corners.max(axis=0)) + 2
        left = max(0, (int(x1) // MCU - 1) * MCU)
        top = max(0, (int(y1) // MCU - 1) * MCU)
        right = min(width, (int(x2) // MCU + 2) * MCU)
        bottom = min(height, (int(y2) // MCU + 2) * MCU)
        regions.append((left, top, right - left, bottom - top))
    return regions


def region_design_decode(data: bytes, repeats: int) -> None:
    if turbo is None:
        print("the region design's decode: not measured (PyTurboJPEG or the system's libturbojpeg missing)")
        return
    models = ModelCost(intra_op_threads=1)
    full = simplejpeg.decode_jpeg(data, "BGR")
    height, width = full.shape[:2]
    factor = 4  # the smallest reduction whose long side (1024) the 640-pixel detector does not enlarge
    small = simplejpeg.decode_jpeg(data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor))
    reduced = Image(small, source_size=(width, height))
    faces = [face.in_source_pixels(reduced) for face in models.detector.detect(reduced)]
    regions = face_regions(reduced, faces, width, height)

    def decoded_regions() -> list[np.ndarray]:
        return [turbo.decode(crop, pixel_format=TJPF_BGR) for crop in turbo.crop_multiple(data, regions)]

    # The regions' pixels are the full decode's, and faces aligned from them embed as from the full decode.
    for (x, y, w, h), pixels in zip(regions, decoded_regions(), strict=True):
        inner = (slice(MCU, h - MCU), slice(MCU, w - MCU))
        assert np.array_equal(pixels[inner], full[y : y + h, x : x + w][inner]), (x, y, w, h)
    from_full = models.embedder.embed(Image(full), faces)
    for face, (x, y, _, _), pixels, vector in zip(faces, regions, decoded_regions(), from_full, strict=True):
        moved = DetectedFace(face.box, face.confidence, tuple((px - x, py - y) for px, py in face.landmarks))  # type: ignore[arg-type]
        assert float(models.embedder.embed(Image(pixels), [moved])[0] @ vector) > 0.99999

    crops = turbo.crop_multiple(data, regions)
    print(f"the region design's decode ({len(faces)} faces, regions of {sum(w * h for *_, w, h in regions)} pixels):")
    paths: dict[str, Callable[[], object]] = {
        f"simplejpeg, 1/{factor} (the detector's input)": lambda: simplejpeg.decode_jpeg(
            data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor)
        ),
        "PyTurboJPEG crop_multiple, every face's region (one entropy-decoding pass)": lambda: turbo.crop_multiple(
            data, regions
        ),
        "the regions decoded at full resolution": lambda: [turbo.decode(crop, pixel_format=TJPF_BGR) for crop in crops],
        "all three: the design's whole decode": lambda: (
            simplejpeg.decode_jpeg(data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor)),
            decoded_regions(),
        ),
        "simplejpeg, full (the service's decode, for comparison)": lambda: simplejpeg.decode_jpeg(data, "BGR"),
    }
    for name, work in paths.items():
        best, median = timed(work, repeats)
        print(f"{best:7.1f} / {median:7.1f} ms  {name}")


def whole_extraction(images: list[bytes], repeats: int) -> None:
    env = {"API_KEY": "bench-key-0123456789", "INFERENCE_ISOLATION": "thread", "DATA_DIR": tempfile.mkdtemp()}
    service = bootstrap(Settings.from_env(env)).service()
    decoder = service._decoder  # its pixel arrays swapped below
    assert isinstance(decoder, OpenCVImageDecoder)

    def plain(data: bytes) -> None:
        pixels = np.asarray(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), dtype=np.uint8)
        service.extract_image(Image(pixels), all_faces=True)

    def fresh(data: bytes) -> None:
        decoder.buffers = None
        service.extract(data, all_faces=True)

    def served(data: bytes) -> None:
        decoder.buffers = PIXEL_BUFFERS
        service.extract(data, all_faces=True)

    paths: dict[str, Callable[[bytes], None]] = {
        "OpenCV decode": plain,
        "the service's decode into fresh arrays (before pixel_buffers.py)": fresh,
        "the service's decode into kept arrays (the service)": served,
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[tuple[float, float, int]]] = {name: [] for name in paths}
    for path in paths.values():  # warm-up
        path(images[0])
    for _ in range(repeats):
        for data in images:
            for name, path in paths.items():
                before = resource.getrusage(resource.RUSAGE_THREAD)
                began = time.perf_counter()
                path(data)
                times[name].append((time.perf_counter() - began) * 1000)
                after = resource.getrusage(resource.RUSAGE_THREAD)
                cpu[name].append(
                    (
                        (after.ru_utime - before.ru_utime) * 1000,
                        (after.ru_stime - before.ru_stime) * 1000,
                        after.ru_minflt - before.ru_minflt,
                    )
                )
                trim_if_heap_over()  # what a worker does after each job
    print(f"whole extraction of a phone photo, {len(images)} photos x {repeats}, one thread:")
    print("   best / median ms, median user / kernel CPU ms and page faults per photo")
    for name, spent in times.items():
        user, kernel, faults = (statistics.median(values) for values in zip(*cpu[name], strict=True))
        print(
            f"{min(spent):7.1f} / {statistics.median(spent):7.1f} ms  ({user:5.1f} / {kernel:4.1f} ms, "
            f"{faults:5.0f} faults)  {name}"
        )


def overlap(a: DetectedFace, b: DetectedFace) -> float:
    """Intersection over union of two faces' boxes."""
    width = max(0.0, min(a.box.x2, b.box.x2) - max(a.box.x1, b.box.x1))
    height = max(0.0, min(a.box.y2, b.box.y2) - max(a.box.y1, b.box.y1))
    return width * height / (a.box.area + b.box.area - width * height)


def detection_on_reduced_decodes(name: str, data: bytes) -> None:
    """Each face of the plain path paired with the reduced detection's face over it (IoU at least 0.5):
    the boxes' worst edge and the lowest cosine over the paired faces, and the faces left unpaired."""
    models = ModelCost(intra_op_threads=1)
    full = simplejpeg.decode_jpeg(data, "BGR")
    height, width = full.shape[:2]
    reference = models.detector.detect(Image(full))
    reference_vectors = models.embedder.embed(Image(full), reference)
    print(
        f"{name} photo at {width}x{height}: detector on a reduced decode, {len(reference)} faces aligned from "
        "full resolution (and from the reduced decode, FAST_JPEG_DECODE), against the plain path:"
    )
    for factor in (2, 4, 8):
        small = simplejpeg.decode_jpeg(data, "BGR", min_width=-(-width // factor), min_height=-(-height // factor))
        reduced = Image(small, source_size=(width, height))
        detected = models.detector.detect(reduced)
        found = [face.in_source_pixels(reduced) for face in detected]
        from_full = models.embedder.embed(Image(full), found)
        from_reduced = models.embedder.embed(reduced, detected)
        edge, cosine, fast, missed = 0.0, 1.0, 1.0, 0
        for face, vector in zip(reference, reference_vectors, strict=True):
            best = max(range(len(found)), key=lambda i: overlap(face, found[i]), default=None)
            if best is None or overlap(face, found[best]) < 0.5:
                missed += 1
                continue
            a, b = face.box, found[best].box
            edge = max(edge, abs(a.x1 - b.x1), abs(a.y1 - b.y1), abs(a.x2 - b.x2), abs(a.y2 - b.y2))
            cosine = min(cosine, float(vector @ from_full[best]))
            fast = min(fast, float(vector @ from_reduced[best]))
        print(
            f"  1/{factor}: {len(found)} faces ({missed} of the plain path's unpaired), worst box edge {edge:.2f} px "
            f"(full scale), min cosine {cosine:.4f} (aligned from the reduced decode: {fast:.4f})"
        )


if __name__ == "__main__":
    main()
