"""The composition root: the one place that builds the service from the settings.

`bootstrap(settings)` returns the wired container; every entry point (`serve`, each CLI command,
the OpenAPI export) and the tests start here. Adapters are picked by configuration
(`providers.Selector` on FACE_BACKEND) and receive plain values, never the settings object.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers

from adapters.fake_backend import FakeDetector, FakeEmbedder, FakeQualityMeter
from adapters.images.decoder import OpenCVImageDecoder, configure_opencv
from adapters.inference.pool import ProcessRunner, ThreadRunner
from adapters.inference.stage_recorder import RECORDER
from adapters.metrics import Metrics
from adapters.models.model_pack import ModelPack, embedded_pack, load_model, pack_from_dir
from adapters.models.onnx_runtime import resolve_providers, session_options
from adapters.models.registry import Task
from adapters.quality.meter import OpenCVQualityMeter
from adapters.stores.memory import MemoryGallery
from app.logging_setup import configure_logging
from app.settings import Settings
from domain.gallery import GalleryLimits
from domain.model import EmbeddingModel
from domain.ports import NeighbourSearch, PeopleGallery
from domain.similarity import CosineSimilarity
from domain.use_cases.collections import CollectionRules, Collections
from domain.use_cases.faces import FaceService, Limits
from domain.use_cases.service_info import ServiceInfo

if TYPE_CHECKING:
    from litestar import Litestar

logger = logging.getLogger(__name__)


def locate_pack(model_dir: Any) -> ModelPack:
    pack = embedded_pack() if model_dir is None else pack_from_dir(model_dir)
    files = ", ".join(f"{task.value} {model.path.name}" for task, model in pack.models.items())
    logger.info("model pack %s: %s", pack.name, files)
    return pack


def service_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # deferred: 50 ms of start-up

    try:
        return version("face-service")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0+unknown"


def describe_service(
    service: FaceService,
    detector: Any,
    embedder: Any,
    backend: str,
    requested_providers: tuple[str, ...] | None,
) -> ServiceInfo:
    providers_in_use = list(dict.fromkeys([*detector.providers, *embedder.providers])) or ["none (fake backend)"]
    return ServiceInfo(
        backend=backend,
        model_pack=service.model.pack,
        model_id=service.model.id,
        embedding_size=service.model.dimension,
        execution_providers=providers_in_use,
        requested_execution_providers=list(requested_providers or ["auto"]),
        version=service_version(),
    )


def http_application(**collaborators: Any) -> Litestar:
    # Deferred: `serve` imports the web stack on one thread while the models load on another.
    from adapters.http.app import create_app

    return create_app(**collaborators)


def connection_protocol(header_timeout: float, max_connections: int, metrics: Metrics) -> Any:
    from adapters.http.observability import observe_server_answers
    from adapters.http.server import guarded_protocol

    return guarded_protocol(header_timeout, max_connections, observe_server_answers(metrics))


def http_settings(**values: Any) -> Any:
    from adapters.http.app import HttpConfig

    return HttpConfig(**values)


def hidden_locations(data_dir: Path, database_url: str | None) -> tuple[tuple[str, str], ...]:
    """What /health never shows, with the name it shows instead: the data folder (as configured and
    as resolved) and the database URL."""
    hidden = [(str(data_dir), "DATA_DIR"), (str(data_dir.resolve()), "DATA_DIR")]
    return (*hidden, (database_url, "DATABASE_URL")) if database_url else tuple(hidden)


def opencv_decoder(**limits: Any) -> OpenCVImageDecoder:
    configure_opencv()
    return OpenCVImageDecoder(**limits)


def inference_job(service: FaceService) -> Any:
    from adapters.inference import jobs  # deferred: the CLI's verbs parse no request bodies

    return functools.partial(jobs.perform, service)


def start_worker(settings: Settings) -> tuple[Callable[[Any], Any], ServiceInfo]:
    """What an inference worker process runs at its start: the composition root for these settings,
    with the models loaded and warmed up; returns its job function and what it serves."""
    configure_logging(settings.log_level, settings.debug)
    container = bootstrap(settings)
    service = container.service()
    service.warm_up()
    return inference_job(service), container.info()


# Imported by the forkserver before it forks each worker, so that workers start with the model stack
# and the job code already imported.
WORKER_PRELOAD = ("app.bootstrap", "adapters.inference.jobs")


def sqlite_gallery(data_dir: Path, limits: GalleryLimits) -> PeopleGallery:
    from adapters.stores.sqlite import SqliteGallery

    return SqliteGallery(data_dir / "gallery.sqlite3", limits)


def postgres_gallery(url: str, limits: GalleryLimits, exact_below: int) -> PeopleGallery:
    from adapters.stores.postgres.gallery import PostgresGallery  # deferred: psycopg only when used

    return PostgresGallery(url, limits, exact_below=exact_below)


def people_neighbours() -> NeighbourSearch:
    from adapters.people.neighbours import FaissNeighbours  # deferred: faiss only when people are grouped

    return FaissNeighbours()


def serving_model(runner: Callable[[], Any]) -> Callable[[], EmbeddingModel]:
    """The model the inference workers serve, as the collection use cases pin it: asked for only when
    a use case needs it (the workers know it once started; listing collections loads no model)."""

    def model() -> EmbeddingModel:
        info = runner().info
        pack, _, digest = info.model_id.rpartition(":")
        return EmbeddingModel(pack=pack, weights_digest=digest, dimension=info.embedding_size)

    return model


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)
    settings = providers.Dependency(instance_of=Settings)

    execution_providers = providers.Singleton(resolve_providers, config.execution_providers)
    ort_options = providers.Factory(session_options, config.intra_op_threads)
    model_pack = providers.Singleton(locate_pack, config.model_dir)

    # Each model is the pack's file for its task, run by the class the registry names for it. The
    # detector and the recogniser are warmed up by `FaceService.warm_up`, through the whole pipeline.
    detector = providers.Selector(
        config.face_backend,
        insightface=providers.Singleton(
            load_model,
            Task.DETECTION,
            model_pack,
            execution_providers,
            ort_options,
            warm_up=False,
            max_side=config.det_size,
            threshold=config.det_threshold,
        ),
        fake=providers.Singleton(FakeDetector),
    )
    embedder = providers.Selector(
        config.face_backend,
        insightface=providers.Singleton(
            load_model,
            Task.RECOGNITION,
            model_pack,
            execution_providers,
            ort_options,
            warm_up=False,
            pack_name=model_pack.provided.name,
            cache_dir=config.model_cache_dir,
        ),
        fake=providers.Singleton(FakeEmbedder),
    )
    # Measures each face's quality on the embedder's aligned crops; head pose from the detector's
    # five points (docs/quality.md: as accurate as the 106-point model here, at no model cost).
    quality_meter = providers.Selector(
        config.face_backend,
        insightface=providers.Singleton(OpenCVQualityMeter),
        fake=providers.Singleton(FakeQualityMeter),
    )
    # Loaded only when asked for: no route uses it (bench/quality.py compares its head pose).
    landmarks = providers.Singleton(
        load_model,
        Task.LANDMARKS_2D_106,
        model_pack,
        execution_providers,
        ort_options,
        cache_dir=config.model_cache_dir,
    )

    metrics = providers.Singleton(Metrics)
    decoder = providers.Singleton(
        opencv_decoder,
        max_bytes=config.max_image_bytes,
        max_pixels=config.max_image_pixels,
        max_side=config.max_image_side,
        fast_jpeg_decode=config.fast_jpeg_decode,
        det_size=config.det_size,
    )
    service = providers.Singleton(
        FaceService,
        decoder=decoder,
        detector=detector,
        embedder=embedder,
        similarity=providers.Singleton(CosineSimilarity),
        match_threshold=config.match_threshold,
        meter=quality_meter,
        observer=providers.Object(RECORDER),  # jobs carry the records to `metrics`
        limits=providers.Singleton(
            Limits,
            max_batch_size=config.max_batch_size,
            max_candidates=config.max_candidates,
            max_faces=config.max_faces,
            max_batch_faces=config.max_batch_faces,
        ),
    )
    info = providers.Singleton(
        describe_service, service, detector, embedder, config.face_backend, config.execution_providers
    )
    # Inference runs here, never on the event loop; its size bounds concurrent model runs. In worker
    # processes (the default) this process loads no model: each worker builds its own service.
    runner = providers.Selector(
        config.inference_isolation,
        process=providers.Singleton(
            ProcessRunner,
            initializer=providers.Object(start_worker),
            args=providers.Callable(lambda settings: (settings,), settings),
            preload=WORKER_PRELOAD,
            workers=config.inference_workers,
            timeout=config.job_timeout_seconds,
        ),
        thread=providers.Singleton(
            ThreadRunner,
            perform=providers.Callable(inference_job, service),
            warm_up=service.provided.warm_up,
            info=info,
            workers=config.inference_workers,
            timeout=config.job_timeout_seconds,
        ),
    )

    http_config = providers.Singleton(
        http_settings,
        keyring=settings.provided.keyring.call(),
        inference_workers=config.inference_workers,
        max_queue=config.max_queue,
        max_request_bytes=config.max_request_bytes,
        body_budget_bytes=config.body_budget_bytes,
        body_timeout_seconds=config.body_timeout_seconds,
        rate_limit_per_minute=config.rate_limit_per_minute,
        metrics=config.metrics,
        expose_docs=config.expose_docs,
        cors_origins=config.cors_origins,
        version=providers.Callable(service_version),
        max_import_bytes=config.max_import_bytes,
        max_import_line_bytes=config.max_import_line_bytes,
        import_spool_dir=providers.Callable(lambda settings: settings.import_spool_dir(), settings),
        gallery_store=config.gallery,
        hidden_locations=providers.Callable(hidden_locations, config.data_dir, config.database_url),
    )
    gallery_limits = providers.Singleton(
        GalleryLimits,
        max_collections=config.max_collections,
        max_subjects_per_collection=config.max_subjects_per_collection,
        max_faces_per_subject=config.max_faces_per_subject,
        max_faces_per_collection=config.max_faces_per_collection,
    )
    # Opened on first use; a store that cannot open is tried again at the next request (503 until then).
    gallery = providers.Selector(
        config.gallery,
        sqlite=providers.Singleton(sqlite_gallery, config.data_dir, gallery_limits),
        postgresql=providers.Singleton(
            postgres_gallery, config.database_url, gallery_limits, config.exact_search_below
        ),
        memory=providers.Singleton(MemoryGallery, gallery_limits),
    )
    collections = providers.Singleton(
        Collections,
        gallery=gallery,
        neighbours=providers.Singleton(people_neighbours),
        model=providers.Callable(serving_model, runner.provider),
        rules=providers.Singleton(
            CollectionRules,
            default_threshold=config.match_threshold,
            default_top_k=5,
            max_top_k=config.max_top_k,
            max_page=1000,
        ),
    )

    http_app = providers.Factory(
        http_application,
        runner=runner,
        metrics=metrics,
        config=http_config,
        collections=collections.provider,
        gallery=gallery.provider,
    )
    server_protocol = providers.Singleton(
        lambda header_timeout, max_connections, metrics: connection_protocol(header_timeout, max_connections, metrics),
        config.header_timeout_seconds,
        config.max_connections,
        metrics,
    )


def bootstrap(settings: Settings) -> Container:
    """The container for these settings (nothing is loaded until a provider is called)."""
    container = Container(settings=settings)
    container.config.from_dict({**dataclasses.asdict(settings), "gallery": settings.gallery()})
    return container


def openapi_document() -> dict[str, object]:
    """The OpenAPI document, as the service serves it at /docs/openapi.json (built on the fake backend:
    the document does not depend on the models)."""
    settings = Settings.from_env({"API_KEY": "openapi-export-only", "FACE_BACKEND": "fake", "EXPOSE_DOCS": "true"})
    app: Litestar = bootstrap(settings).http_app()
    document: dict[str, object] = app.openapi_schema.to_schema()
    return document
