"""`create_app`: the Litestar application over a wired container."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from adapters.http.admission import AdmissionQueue, RateLimiter
from adapters.http.auth import ApiKeyGuard
from adapters.http.controllers import FaceController, HealthController, run_inference
from adapters.http.errors import handle_domain_error, handle_http_exception, handle_unexpected
from adapters.http.observability import MetricsController, observe_requests
from adapters.metrics import Metrics
from app.settings import Settings
from app.use_cases import FaceService, ServiceInfo
from domain.errors import FaceServiceError

if TYPE_CHECKING:
    from app.container import Container

logger = logging.getLogger(__name__)


def create_app(container: Container, settings: Settings, info: ServiceInfo) -> Litestar:
    """Build the app. The models load here (not per request); lifespan warms them up before the
    server accepts connections and shuts the inference executor down after the last request."""
    service: FaceService = container.service()

    def executor() -> Executor:
        # A Resource: started by the lifespan below, shut down at its end, started again by the next.
        return container.executor()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await run_inference(executor(), service.warm_up)
        logger.info(
            "ready: backend=%s model=%s providers=%s", info.backend, info.model_id, ",".join(info.execution_providers)
        )
        try:
            yield
        finally:
            container.shutdown_resources()

    admission = AdmissionQueue(capacity=settings.inference_workers + settings.max_queue)
    limiter = RateLimiter(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None
    metrics: Metrics = container.metrics()
    metrics.describe_model(info.backend, info.model_id, info.execution_providers)
    metrics.watch_queue(lambda: admission.in_flight)
    protected_handlers: list[Any] = [FaceController]
    public_handlers: list[Any] = [HealthController]
    if settings.metrics != "off":
        (public_handlers if settings.metrics == "public" else protected_handlers).append(MetricsController)
    protected = Router(
        path="/",
        route_handlers=protected_handlers,
        guards=[ApiKeyGuard(settings.api_keys, limiter)],
        security=[{"BearerAuth": []}],
    )
    openapi = None
    if settings.expose_docs:
        openapi = OpenAPIConfig(
            title="Face service",
            version=info.version,
            path="/docs",
            components=Components(security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}),
        )
    return Litestar(
        route_handlers=[*public_handlers, protected],
        dependencies={
            "service": Provide(lambda: service, use_cache=True, sync_to_thread=False),
            "executor": Provide(executor, use_cache=False, sync_to_thread=False),
            "info": Provide(lambda: info, use_cache=True, sync_to_thread=False),
            "admission": Provide(lambda: admission, use_cache=True, sync_to_thread=False),
            "metrics": Provide(lambda: metrics, use_cache=True, sync_to_thread=False),
        },
        middleware=[observe_requests(metrics)],
        exception_handlers={
            FaceServiceError: handle_domain_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        request_max_body_size=settings.max_request_bytes,
        openapi_config=openapi,
        # Server-to-server by default: browsers get no CORS headers unless origins are configured.
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins), allow_headers=["Authorization", "Content-Type"]
        )
        if settings.cors_origins
        else None,
        lifespan=[lifespan],
        # Logging is configured once by the entry point; Litestar's own config would add a second format.
        logging_config=None,
        debug=False,
    )
