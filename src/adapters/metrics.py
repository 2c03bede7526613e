"""Prometheus metrics: HTTP traffic, per-stage timings, faces per image, the queue, and the model."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
FACE_BUCKETS = (0, 1, 2, 3, 5, 10, 20, 50, 100)


class Metrics:
    """One registry per service instance (so tests and several apps in one process never collide).

    Also the use cases' `ServiceObserver`: they report stage timings and face counts here.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "face_service_requests_total",
            "HTTP requests by route, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "face_service_request_duration_seconds",
            "HTTP request duration by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.stages = Histogram(
            "face_service_stage_duration_seconds",
            "Time spent in each processing stage (decode, detect, embed, quality).",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.faces_per_image = Histogram(
            "face_service_faces_per_image", "Faces found per image.", buckets=FACE_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge(
            "face_service_queue_depth",
            "Requests inside the service: running or waiting for a worker.",
            registry=self.registry,
        )
        self.rejections = Counter(
            "face_service_rejections_total",
            "Requests refused to protect the service, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.key_requests = Counter(
            "face_service_api_key_requests_total",
            "Requests by API key name (never the key) and outcome: allowed, or forbidden by its scope.",
            ["key", "outcome"],
            registry=self.registry,
        )
        self.model = Gauge(
            "face_service_model_info",
            "The model and execution providers serving (value is always 1).",
            ["backend", "model_id", "execution_providers"],
            registry=self.registry,
        )

        self.gallery_search_seconds = Histogram(
            "face_service_gallery_search_seconds",
            "Collection search time in the gallery, by store and method (exact or approximate).",
            ["store", "method"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.gallery_searched_faces = Histogram(
            "face_service_gallery_searched_faces",
            "Faces a collection search ran over, by store.",
            ["store"],
            buckets=(100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000),
            registry=self.registry,
        )
        self.gallery_enrollments = Counter(
            "face_service_gallery_enrollments_total",
            "Faces enrolled, by store and outcome (new or duplicate).",
            ["store", "outcome"],
            registry=self.registry,
        )
        self.gallery_deletions = Counter(
            "face_service_gallery_deletions_total",
            "Deletions, by store and kind (collection, subject, face, photo).",
            ["store", "kind"],
            registry=self.registry,
        )

    # ServiceObserver
    def stage(self, name: str, seconds: float) -> None:
        self.stages.labels(stage=name).observe(seconds)

    def faces(self, count: int) -> None:
        self.faces_per_image.observe(count)

    def describe_model(self, backend: str, model_id: str, providers: list[str]) -> None:
        self.model.labels(backend=backend, model_id=model_id, execution_providers=",".join(providers)).set(1)

    def watch_queue(self, depth: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
