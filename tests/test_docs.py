"""README.md and docs/ against the code: the examples a newcomer copies show what the service answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from litestar.testing import TestClient

from tests.conftest import AUTH

ROOT = Path(__file__).resolve().parents[1]


def json_example_after(document: Path, heading: str) -> dict[str, object]:
    """The first ```json block after a heading."""
    text = document.read_text()
    block = re.search(r"```json\n(.*?)```", text[text.index(heading) :], re.DOTALL)
    assert block, f"{document.name}: no JSON example after {heading}"
    example: dict[str, object] = json.loads(block.group(1))
    return example


def test_api_md_health_example_has_every_field_of_the_answer(client: TestClient) -> None:  # type: ignore[type-arg]
    example = json_example_after(ROOT / "docs" / "api.md", "## `GET /health`")
    answer = client.get("/health", headers=AUTH).json()
    assert set(example) == set(answer)
    for section in ("inference", "gallery"):
        assert set(example[section]) == set(answer[section]), section  # type: ignore[arg-type]
