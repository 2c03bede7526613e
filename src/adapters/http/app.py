"""`create_app`: the Litestar application over the use cases, from plain collaborators."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from face_service.adapters.executor import InferencePool
from face_service.adapters.http.admission import AdmissionQueue, RateLimiter
from face_service.adapters.http.auth import ApiKeyGuard
from face_service.adapters.http.controllers import FaceController, FaceWork, HealthController, run_inference
from face_service.adapters.http.errors import handle_domain_error, handle_http_exception, handle_unexpected
from face_service.adapters.http.observability import MetricsController, observe_requests
from face_service.adapters.metrics import Metrics
from face_service.domain.errors import FaceServiceError
from face_service.domain.use_cases.faces import FaceService
from face_service.domain.use_cases.service_info import ServiceInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """What the HTTP adapter needs to know of the settings (the composition root fills it in)."""

    api_keys: tuple[str, ...]
    inference_workers: int
    max_queue: int
    rate_limit_per_minute: int
    metrics: str  # "protected", "public" or "off"
    expose_docs: bool
    cors_origins: tuple[str, ...]
    max_request_bytes: int


def create_app(
    service: FaceService, info: ServiceInfo, metrics: Metrics, inference: InferencePool, config: HttpConfig
) -> Litestar:
    """The Litestar application over the use cases. Lifespan warms the models up before the server
    accepts connections and shuts the inference executor down after the last request."""

    def executor() -> Executor:
        return inference.executor

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await run_inference(executor(), service.warm_up)
        logger.info(
            "ready: backend=%s model=%s providers=%s", info.backend, info.model_id, ",".join(info.execution_providers)
        )
        try:
            yield
        finally:
            inference.close()

    admission = AdmissionQueue(capacity=config.inference_workers + config.max_queue)
    limiter = RateLimiter(config.rate_limit_per_minute) if config.rate_limit_per_minute else None
    faces = FaceWork(service, executor, admission)
    metrics.describe_model(info.backend, info.model_id, info.execution_providers)
    metrics.watch_queue(lambda: admission.in_flight)
    protected_handlers: list[Any] = [FaceController]
    public_handlers: list[Any] = [HealthController]
    if config.metrics != "off":
        (public_handlers if config.metrics == "public" else protected_handlers).append(MetricsController)
    protected = Router(
        path="/",
        route_handlers=protected_handlers,
        guards=[ApiKeyGuard(config.api_keys, limiter)],
        security=[{"BearerAuth": []}],
    )
    openapi = None
    if config.expose_docs:
        openapi = OpenAPIConfig(
            title="Face service",
            version=info.version,
            path="/docs",
            components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}),
        )
    return Litestar(
        route_handlers=[*public_handlers, protected],
        dependencies={
            "faces": Provide(lambda: faces, use_cache=True, sync_to_thread=False),
            "info": Provide(lambda: info, use_cache=True, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, use_cache=True, sync_to_thread=False),
        },
        middleware=[observe_requests(metrics)],
        exception_handlers={
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
