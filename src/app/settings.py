"""Settings, read once from the environment. A bad value stops start-up with a message naming it."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from app.keys import keyring, load_keys_file
from domain.access import ApiKey, Keyring

PLACEHOLDER_KEY = "change-me-in-production"  # the seed's default; refused outside DEBUG
BACKENDS = ("insightface", "fake")
# Default MATCH_THRESHOLD for the buffalo packs: see docs/api.md ("Choosing MATCH_THRESHOLD").
DEFAULT_MATCH_THRESHOLD = 0.4


class SettingsError(ValueError):
    """An environment variable has a value the service cannot run with."""


def _api_keys(env: Mapping[str, str], debug: bool, scoped: bool) -> tuple[tuple[str, ...], bool]:
    raw = [env.get("API_KEY", ""), *env.get("API_KEYS", "").split(",")]
    keys = tuple(dict.fromkeys(key.strip() for key in raw if key.strip()))
    if PLACEHOLDER_KEY in keys and not debug:
        raise SettingsError(
            f"API_KEY is the placeholder {PLACEHOLDER_KEY!r}; set a real key "
            "(for example: openssl rand -base64 32), or DEBUG=true for local development"
        )
    if any(len(key) < 8 for key in keys) and not debug:
        raise SettingsError("API_KEY / API_KEYS: every key must be at least 8 characters")
    if keys or scoped:
        return keys, False
    return (secrets.token_urlsafe(32),), True


def _keys_file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError("no such file")
    return path


def _boolean(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("use true or false")


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return convert


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0.1 <= value <= 3600:  # also rejects NaN
        raise ValueError("must be a number of seconds between 0.1 and 3600")
    return value


def _fraction(low: float, high: float) -> Callable[[str], float]:
    def convert(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:  # also rejects NaN
            raise ValueError(f"must be a number between {low} and {high}")
        return value

    return convert


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def convert(raw: str) -> str:
        value = raw.lower() if options[0].islower() else raw.upper()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return convert


def _folder(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ValueError("no such folder")
    return path


def _providers(raw: str) -> tuple[str, ...] | None:
    if raw.lower() == "auto":
        return None
    names = tuple(name.strip() for name in raw.split(",") if name.strip())
    for name in names:
        if not name.endswith("ExecutionProvider"):
            raise ValueError(f"{name!r} is not an execution provider name (e.g. CUDAExecutionProvider)")
    return names


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            raise ValueError(f"{origin!r} is not an origin like https://app.example.com")
    return origins


def _database_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a PostgreSQL URL: postgresql://user:password@host:5432/database")
    return raw


def _det_size(raw: str) -> int:
    """The longest side of the detector input. '640' or the seed's '640,640' / '640x640' form."""
    parts = [p for p in raw.replace("x", ",").split(",") if p.strip()]
    values = [int(p) for p in parts]
    if not values or len(values) > 2 or any(v < 32 or v > 4096 or v % 32 for v in values):
        raise ValueError("must be a multiple of 32 between 32 and 4096, like 640")
    return max(values)


def setting(env: str, parse: Callable[[str], Any], default: Any = MISSING, secret: bool = False, **options: Any) -> Any:
    """A field read from the environment variable `env` through `parse`; its default is written here
    only. A `secret` one's value is never repeated in an error message."""
    return field(default=default, metadata={"env": env, "parse": parse, "secret": secret}, **options)


def _default_workers() -> int:
    return min(os.cpu_count() or 1, 4)


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "face-service"


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, its environment variable, parser and default, each written once (here)."""

    api_keys: tuple[str, ...]  # API_KEY and API_KEYS: full access
    api_key_generated: bool = False
    scoped_keys: tuple[ApiKey, ...] = ()  # read from API_KEYS_FILE
    api_keys_file: Path | None = setting("API_KEYS_FILE", _keys_file, None)
    host: str = setting("HOST", str, "0.0.0.0")  # noqa: S104 - a service in a container listens on every interface
    port: int = setting("PORT", _bounded_int(1, 65535), 8000)
    debug: bool = setting("DEBUG", _boolean, False)
    face_backend: str = setting("FACE_BACKEND", _choice(BACKENDS), "insightface")
    model_dir: Path | None = setting("MODEL_DIR", _folder, None)
    execution_providers: tuple[str, ...] | None = setting("EXECUTION_PROVIDERS", _providers, None)  # None: auto
    det_size: int = setting("DET_SIZE", _det_size, 640)
    det_threshold: float = setting("DET_THRESHOLD", _fraction(0.0, 1.0), 0.5)
    match_threshold: float = setting("MATCH_THRESHOLD", _fraction(-1.0, 1.0), DEFAULT_MATCH_THRESHOLD)
    inference_workers: int = setting("INFERENCE_WORKERS", _bounded_int(1, 64), default_factory=_default_workers)
    intra_op_threads: int = setting("INTRA_OP_THREADS", _bounded_int(0, 256), 1)
    max_request_bytes: int = setting("MAX_REQUEST_BYTES", _bounded_int(1024, 1 << 31), 25_000_000)
    max_image_pixels: int = setting("MAX_IMAGE_PIXELS", _bounded_int(1, 1 << 30), 40_000_000)
    max_batch_size: int = setting("MAX_BATCH_SIZE", _bounded_int(1, 1000), 32)
    max_image_bytes: int = setting("MAX_IMAGE_BYTES", _bounded_int(1024, 1 << 31), 15_000_000)
    max_image_side: int = setting("MAX_IMAGE_SIDE", _bounded_int(32, 65_535), 12_000)
    max_faces: int = setting("MAX_FACES", _bounded_int(1, 1000), 100)
    max_candidates: int = setting("MAX_CANDIDATES", _bounded_int(1, 1_000_000), 10_000)
    max_queue: int = setting("MAX_QUEUE", _bounded_int(0, 10_000), 8)
    max_batch_faces: int = setting("MAX_BATCH_FACES", _bounded_int(1, 100_000), 256)
    inference_isolation: str = setting("INFERENCE_ISOLATION", _choice(("process", "thread")), "process")
    job_timeout_seconds: float = setting("JOB_TIMEOUT_SECONDS", _seconds, 60.0)
    header_timeout_seconds: float = setting("HEADER_TIMEOUT_SECONDS", _seconds, 10.0)
    body_timeout_seconds: float = setting("BODY_TIMEOUT_SECONDS", _seconds, 60.0)
    keep_alive_seconds: int = setting("KEEP_ALIVE_SECONDS", _bounded_int(1, 3600), 5)
    max_connections: int = setting("MAX_CONNECTIONS", _bounded_int(1, 100_000), 256)
    body_budget_bytes: int = setting("BODY_BUDGET_BYTES", _bounded_int(1024, 1 << 40), 100_000_000)
    rate_limit_per_minute: int = setting("RATE_LIMIT_PER_MINUTE", _bounded_int(0, 1_000_000), 0)
    cors_origins: tuple[str, ...] = setting("CORS_ORIGINS", _origins, ())
    metrics: str = setting("METRICS", _choice(("protected", "public", "off")), "protected")
    fast_jpeg_decode: bool = setting("FAST_JPEG_DECODE", _boolean, False)
    model_cache_dir: Path = setting("MODEL_CACHE_DIR", Path, default_factory=_default_cache_dir)
    data_dir: Path = setting("DATA_DIR", Path, default_factory=lambda: Path("data"))
    database_url: str | None = setting("DATABASE_URL", _database_url, None, secret=True)
    gallery_store: str = setting("GALLERY_STORE", _choice(("auto", "sqlite", "postgresql", "memory")), "auto")
    max_collections: int = setting("MAX_COLLECTIONS", _bounded_int(1, 100_000), 100)
    max_subjects_per_collection: int = setting("MAX_SUBJECTS_PER_COLLECTION", _bounded_int(1, 100_000_000), 1_000_000)
    max_faces_per_subject: int = setting("MAX_FACES_PER_SUBJECT", _bounded_int(1, 10_000), 20)
    max_faces_per_collection: int = setting("MAX_FACES_PER_COLLECTION", _bounded_int(1, 100_000_000), 2_000_000)
    max_top_k: int = setting("MAX_TOP_K", _bounded_int(1, 1000), 100)
    max_import_bytes: int = setting("MAX_IMPORT_BYTES", _bounded_int(1024, 1 << 40), 10_000_000_000)
    # A 512-D face's line is about 3.1 KB, a 4096-D one's 22 KB: a longer line is refused as it arrives.
    max_import_line_bytes: int = setting("MAX_IMPORT_LINE_BYTES", _bounded_int(1024, 1 << 24), 65_536)
    exact_search_below: int = setting("EXACT_SEARCH_BELOW", _bounded_int(0, 100_000_000), 10_000)
    log_level: str = setting("LOG_LEVEL", _choice(("DEBUG", "INFO", "WARNING", "ERROR")), "INFO")
    expose_docs: bool = setting("EXPOSE_DOCS", _boolean, False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for item in fields(cls):
            name = item.metadata.get("env")
            raw = env.get(name, "").strip() if name else ""
            if raw:
                try:
                    values[item.name] = item.metadata["parse"](raw)
                except (ValueError, TypeError) as error:
                    shown = name if item.metadata["secret"] else f"{name}={raw!r}"
                    raise SettingsError(f"{shown} is invalid: {error}") from None
        scoped: tuple[ApiKey, ...] = ()
        if values.get("api_keys_file") is not None:
            try:
                scoped = load_keys_file(values["api_keys_file"])
            except ValueError as error:
                raise SettingsError(f"API_KEYS_FILE ({values['api_keys_file']}): {error}") from None
        keys, generated = _api_keys(env, values.get("debug", False), bool(scoped))
        settings = cls(api_keys=keys, api_key_generated=generated, scoped_keys=scoped, **values)
        try:
            settings.keyring()
        except ValueError as error:
            raise SettingsError(f"API_KEY / API_KEYS / API_KEYS_FILE: {error}") from None
        return settings

    def keyring(self) -> Keyring:
        """Every accepted key: API_KEY and API_KEYS (full access, named env-1, env-2...), then the
        scoped keys of API_KEYS_FILE."""
        return keyring(self.api_keys, self.scoped_keys)

    def gallery(self) -> str:
        """The store collections live in: GALLERY_STORE, or with `auto`, PostgreSQL when DATABASE_URL
        is set, memory for the fake backend, SQLite in DATA_DIR otherwise."""
        if self.gallery_store != "auto":
            return self.gallery_store
        if self.database_url:
            return "postgresql"
        return "memory" if self.face_backend == "fake" else "sqlite"

    def import_spool_dir(self) -> Path | None:
        """Where an import's checked faces wait until its body has arrived (then one transaction
        stores them): DATA_DIR with SQLite, the disk they are going to; else the system's temporary
        folder (None)."""
        return self.data_dir if self.gallery() == "sqlite" else None

    @classmethod
    def variables(cls) -> list[str]:
        """Every environment variable the service reads."""
        return ["API_KEY", "API_KEYS", *(item.metadata["env"] for item in fields(cls) if "env" in item.metadata)]
