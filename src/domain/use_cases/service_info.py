"""What the service reports about itself (in /health, the metrics and `face-service prepare`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    """Which backend, model and execution providers are serving, and the service's version."""

    backend: str
    model_pack: str
    model_id: str
    embedding_size: int
    execution_providers: list[str]
    requested_execution_providers: list[str]
    version: str
