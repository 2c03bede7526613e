"""The composition root: the one place that picks adapters for the ports, from the settings."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from dependency_injector import containers, providers

from adapters.executor import InferenceExecutor
from adapters.fake_backend import FakeDetector, FakeEmbedder
from adapters.graph_rewrite import default_cache_dir
from adapters.images import OpenCVImageDecoder, configure_opencv
from adapters.insightface_backend import InsightFaceDetector, InsightFaceEmbedder
from adapters.metrics import Metrics
from adapters.model_pack import ModelPack, embedded_pack, pack_from_dir
from adapters.onnx_runtime import resolve_providers, session_options
from app.settings import Settings
from app.use_cases import FaceService, Limits
from domain.similarity import CosineSimilarity

logger = logging.getLogger(__name__)


def locate_pack(model_dir: Path | None) -> ModelPack:
    pack = embedded_pack() if model_dir is None else pack_from_dir(model_dir)
    logger.info("model pack %s: detector %s, recogniser %s", pack.name, pack.detector.name, pack.recognizer.name)
    return pack


def chosen_providers(requested: tuple[str, ...] | None) -> list[str]:
    chosen = resolve_providers(requested)
    logger.info("execution providers: %s", ", ".join(chosen))
    return chosen


def inference_executor(workers: int) -> Iterator[InferenceExecutor]:
    """Inference runs here, never on the event loop; its size bounds concurrent model runs."""
    configure_opencv()
    executor = InferenceExecutor(workers)
    try:
        yield executor
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    execution_providers = providers.Singleton(chosen_providers, config.execution_providers)
    ort_options = providers.Factory(session_options, config.intra_op_threads)
    model_pack = providers.Singleton(locate_pack, config.model_dir)

    detector = providers.Selector(
        config.face_backend,
        insightface=providers.Singleton(
            InsightFaceDetector,
            path=model_pack.provided.detector,
            providers=execution_providers,
            options=ort_options,
            max_side=config.det_size,
            threshold=config.det_threshold,
        ),
        fake=providers.Singleton(FakeDetector),
    )
    embedder = providers.Selector(
        config.face_backend,
        insightface=providers.Singleton(
            InsightFaceEmbedder,
            path=model_pack.provided.recognizer,
            providers=execution_providers,
            options=ort_options,
            pack_name=model_pack.provided.name,
            input_mean=model_pack.provided.recognizer_mean,
            input_std=model_pack.provided.recognizer_std,
            cache_dir=config.model_cache_dir,
        ),
        fake=providers.Singleton(FakeEmbedder),
    )

    metrics = providers.Singleton(Metrics)
    decoder = providers.Singleton(
        OpenCVImageDecoder,
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
        observer=metrics,
        limits=providers.Singleton(
            Limits,
            max_batch_size=config.max_batch_size,
            max_candidates=config.max_candidates,
            max_faces=config.max_faces,
        ),
    )
    executor = providers.Resource(inference_executor, config.inference_workers)


def build_container(settings: Settings) -> Container:
    container = Container()
    container.config.from_dict(
        {
            "face_backend": settings.face_backend,
            "model_dir": settings.model_dir,
            "execution_providers": settings.execution_providers,
            "intra_op_threads": settings.intra_op_threads,
            "det_size": settings.det_size,
            "det_threshold": settings.det_threshold,
            "match_threshold": settings.match_threshold,
            "max_image_pixels": settings.max_image_pixels,
            "max_image_side": settings.max_image_side,
            "fast_jpeg_decode": settings.fast_jpeg_decode,
            "model_cache_dir": settings.model_cache_dir or default_cache_dir(),
            "max_batch_size": settings.max_batch_size,
            "max_image_bytes": settings.max_image_bytes,
            "max_candidates": settings.max_candidates,
            "max_faces": settings.max_faces,
            "inference_workers": settings.inference_workers,
        }
    )
    return container
