"""ONNX Runtime plumbing shared by every model (`onnx_model.OnnxModel`): execution providers and
session options."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import onnxruntime as ort

logger = logging.getLogger(__name__)

# Preference order for "auto": the fastest provider that is installed wins, the CPU is always last.
# TensorRT is left out of "auto": it compiles engines on first use, which takes minutes.
AUTO_PREFERENCE = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CoreMLExecutionProvider")
CPU = "CPUExecutionProvider"


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def resolve_providers(requested: Sequence[str] | None) -> list[str]:
    """Keep the requested providers that this onnxruntime build offers, in the requested order.

    `None` means "auto". The CPU provider is always appended as the last resort; the choice is
    logged, and so is every requested provider that is missing: a silent fall back to the CPU
    cannot happen. (Each model logs the providers its session started on.)
    """
    available = available_providers()
    if requested is None:
        chosen = [p for p in AUTO_PREFERENCE if p in available]
    else:
        chosen = []
        for provider in requested:
            if provider in available:
                chosen.append(provider)
            else:
                logger.warning(
                    "execution provider %s is not available in this onnxruntime build (available: %s); falling back",
                    provider,
                    ", ".join(available),
                )
    if CPU not in chosen:
        chosen.append(CPU)
    logger.info("execution providers: %s", ", ".join(chosen))
    return chosen


def session_options(intra_op_threads: int) -> ort.SessionOptions:
    """Session options tuned for small machines: no busy-waiting threads, sequential graph execution."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    # Spinning threads burn a core between requests and fight the other requests' threads.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    # No arena: ONNX Runtime's arena keeps the peak of every concurrent run for good, and input
    # sizes vary with every image. Freed tensors go back to malloc, which the inference executor
    # trims above a free-heap threshold and when idle: half the resident memory (executor.py).
    options.enable_cpu_mem_arena = False
    return options
