"""Settings from the environment: defaults, validation, API keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import Settings, SettingsError
from tests.support.paths import ROOT


def test_defaults() -> None:
    settings = Settings.from_env({"API_KEY": "a-long-enough-key"})
    assert settings.port == 8000
    assert settings.face_backend == "insightface"
    assert settings.model_dir is None
    assert settings.execution_providers is None  # auto
    assert settings.det_size == 640
    assert settings.match_threshold == 0.4
    assert settings.debug is False


def test_api_keys_rotation_list() -> None:
    settings = Settings.from_env({"API_KEY": "first-key-123", "API_KEYS": "second-key-123, third-key-123,"})
    assert settings.api_keys == ("first-key-123", "second-key-123", "third-key-123")


def test_a_key_is_generated_when_none_is_set() -> None:
    first = Settings.from_env({})
    second = Settings.from_env({})
    assert first.api_key_generated and len(first.api_keys[0]) >= 32
    assert first.api_keys != second.api_keys


def test_the_seed_placeholder_key_is_refused_unless_debug() -> None:
    with pytest.raises(SettingsError, match="API_KEY"):
        Settings.from_env({"API_KEY": "change-me-in-production"})
    assert Settings.from_env({"API_KEY": "change-me-in-production", "DEBUG": "true"}).debug


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("FACE_BACKEND", "dlib"),
        ("MODEL_DIR", "/no/such/folder"),
        ("EXECUTION_PROVIDERS", "cuda"),
        ("DET_SIZE", "650"),
        ("DET_THRESHOLD", "1.5"),
        ("MATCH_THRESHOLD", "nan"),
        ("DEBUG", "maybe"),
        ("INFERENCE_WORKERS", "0"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({"API_KEY": "a-long-enough-key", name: value})


def test_values_are_parsed(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "API_KEY": "a-long-enough-key",
            "PORT": "9000",
            "FACE_BACKEND": "fake",
            "MODEL_DIR": str(tmp_path),
            "EXECUTION_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
            "DET_SIZE": "640,640",
            "MATCH_THRESHOLD": "0.35",
        }
    )
    assert settings.port == 9000
    assert settings.face_backend == "fake"
    assert settings.model_dir == tmp_path
    assert settings.execution_providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert settings.det_size == 640
    assert settings.match_threshold == 0.35


def test_every_setting_is_documented() -> None:
    """.env.example and the README list every variable the service reads."""
    import re

    root = ROOT
    read = set(Settings.variables())
    assert {"API_KEY", "API_KEYS", "HOST", "PORT", "MAX_QUEUE"} <= read
    example = set(re.findall(r"^([A-Z_]+)=", (root / ".env.example").read_text(), re.MULTILINE))
    readme = (root / "README.md").read_text()
    assert read <= example, read - example
    assert all(f"`{name}`" in readme for name in read), [n for n in read if f"`{n}`" not in readme]
