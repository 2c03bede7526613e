"""`create_app`: the Litestar application over the inference workers, from plain collaborators."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Receive, Scope, Send

from adapters.http.admission import AdmissionQueue, BodyBudget, RateLimiter
from adapters.http.auth import ApiKeyGuard
from adapters.http.collections import CollectionController
from adapters.http.controllers import FaceController, FaceWork, HealthController, JobError
from adapters.http.errors import (
    handle_domain_error,
    handle_http_exception,
    handle_job_error,
    handle_unexpected,
    handle_worker_failure,
)
from adapters.http.gallery import GalleryPool, GalleryWork, ImportLimits
from adapters.http.observability import MetricsController, observe_requests
from adapters.http.people import PeopleController
from adapters.http.photos import PhotoController
from adapters.inference.pool import InferenceRunner
from adapters.inference.worker import WorkerFailed
from adapters.metrics import Metrics
from domain.access import Keyring
from domain.errors import FaceServiceError
from domain.ports import FaceGallery
from domain.use_cases.collections import Collections

logger = logging.getLogger(__name__)

NO_SUCH_ENDPOINT = b'{"error":"No such endpoint","code":"not_found"}'


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """What the HTTP adapter needs to know of the settings (the composition root fills it in)."""

    keyring: Keyring  # every accepted API key, with its scope
    inference_workers: int
    max_queue: int
    max_request_bytes: int
    body_budget_bytes: int
    body_timeout_seconds: float
    rate_limit_per_minute: int
    metrics: str  # "protected", "public" or "off"
    expose_docs: bool
    cors_origins: tuple[str, ...]
    version: str
    max_import_bytes: int
    max_import_line_bytes: int
    import_spool_dir: Path | None  # where an import's faces wait for the rest of its body (None: the temp dir)
    gallery_store: str  # the configured store: "sqlite", "postgresql" or "memory"
    # (value, name): locations /health shows by name only (the data folder, the database URL)
    hidden_locations: tuple[tuple[str, str], ...] = ()


def create_app(
    runner: InferenceRunner,
    metrics: Metrics,
    config: HttpConfig,
    collections: Callable[[], Collections],
    gallery: Callable[[], FaceGallery],
) -> Litestar:
    """The Litestar application. Its lifespan starts the inference workers (models loaded and warmed
    up) and opens the gallery before the server accepts connections, and closes both after the last
    request. `collections` and `gallery` are providers: a store that cannot open yet is tried again
    at the next request."""
    gallery_pool = GalleryPool(gallery, config.gallery_store)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await runner.start()
        info = runner.info
        metrics.describe_model(info.backend, info.model_id, info.execution_providers)
        store = await gallery_pool.check()
        logger.info(
            "ready: backend=%s model=%s providers=%s gallery=%s (%s)",
            info.backend,
            info.model_id,
            ",".join(info.execution_providers),
            store.store,
            "ok" if store.ok else store.detail,
        )
        try:
            yield
        finally:
            runner.close()
            galleries.clustering.close()
            gallery_pool.close()

    admission = AdmissionQueue(capacity=config.inference_workers + config.max_queue)
    bodies = BodyBudget(total=config.body_budget_bytes, largest=config.max_request_bytes)
    limiter = RateLimiter(config.rate_limit_per_minute) if config.rate_limit_per_minute else None
    faces = FaceWork(runner, admission, bodies, metrics, config.body_timeout_seconds)
    galleries = GalleryWork(
        collections,
        gallery_pool,
        metrics,
        ImportLimits(
            config.max_import_bytes,
            config.max_import_line_bytes,
            config.body_timeout_seconds,
            config.max_request_bytes,
            config.import_spool_dir,
        ),
        bodies,
    )
    metrics.watch_queue(lambda: admission.in_flight)
    protected_handlers: list[Any] = [FaceController, CollectionController, PhotoController, PeopleController]
    public_handlers: list[Any] = [HealthController]
    if config.metrics != "off":
        (public_handlers if config.metrics == "public" else protected_handlers).append(MetricsController)
    guard = ApiKeyGuard(config.keyring, limiter)
    protected = Router(
        path="/",
        route_handlers=protected_handlers,
        guards=[guard],
        security=[{"BearerAuth": []}],
    )
    openapi = None
    if config.expose_docs:
        openapi = OpenAPIConfig(
            title="Face service",
            version=config.version,
            path="/docs",
            components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}),
        )
    app = Litestar(
        route_handlers=[*public_handlers, protected],
        dependencies={
            "faces": Provide(lambda: faces, use_cache=True, sync_to_thread=False),
            "runner": Provide(lambda: runner, use_cache=True, sync_to_thread=False),
            "gallery": Provide(lambda: galleries, use_cache=True, sync_to_thread=False),
            "store_health": Provide(lambda: gallery_pool, use_cache=True, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, use_cache=True, sync_to_thread=False),
            "callers": Provide(lambda: guard, use_cache=True, sync_to_thread=False),
            "hidden_locations": Provide(lambda: config.hidden_locations, use_cache=True, sync_to_thread=False),
        },
        exception_handlers={
            JobError: handle_job_error,
            WorkerFailed: handle_worker_failure,
            FaceServiceError: handle_domain_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        request_max_body_size=config.max_request_bytes,
        openapi_config=openapi,
        # Server-to-server by default: browsers get no CORS headers unless origins are configured.
        cors_config=CORSConfig(allow_origins=list(config.cors_origins), allow_headers=["Authorization", "Content-Type"])
        if config.cors_origins
        else None,
        lifespan=[lifespan],
        # Logging is configured once by the entry point; Litestar's own config would add a second format.
        logging_config=None,
        debug=False,
    )
    # Around everything Litestar does, routing included, so that 404s, 405s, HEAD and requests cut
    # short at shutdown get a request id, a log line, metrics and the JSON error shape too.
    app.asgi_handler = observe_requests(metrics)(exact_paths(app.asgi_handler))
    return app


def exact_paths(app: ASGIApp) -> ASGIApp:
    """A path that ends in "/" or holds an empty segment names no resource: 404. Litestar would route
    `/collections/x/` as `/collections/x`, and URL normalisers (fetch, curl) turn
    `/collections/x/subjects/..` into exactly that: a subject's delete would delete the collection."""

    async def exact(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == ScopeType.HTTP else "/"
        if path != "/" and (path.endswith("/") or "//" in path):
            await send(
                {"type": "http.response.start", "status": 404, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": NO_SUCH_ENDPOINT, "more_body": False})
            return
        await app(scope, receive, send)

    return exact
