"""What an inference worker process runs at its start: the composition root for these settings,
with the models loaded and warmed up. Imported (preloaded) by the forkserver, so that every worker
forked from it starts with the model stack already imported."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from adapters.http import jobs
from app.bootstrap import bootstrap
from app.logging_setup import configure_logging
from app.settings import Settings
from domain.use_cases.service_info import ServiceInfo


def initialize(settings: Settings) -> tuple[Callable[[jobs.Job], jobs.JobResult], ServiceInfo]:
    configure_logging(settings.log_level, settings.debug)
    container = bootstrap(settings)
    service = container.service()
    service.warm_up()
    return partial(jobs.perform, service), container.info()
