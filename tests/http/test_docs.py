"""README.md and docs/ against the code: the examples a newcomer copies show what the service answers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from litestar.testing import TestClient

from tests.support.paths import ROOT
from tests.support.services import AUTH


def json_example_after(document: Path, heading: str) -> dict[str, object]:
    """The first ```json block after a heading (a line of text)."""
    text = document.read_text()
    block = re.search(r"```json\n(.*?)```", text[text.index(heading) :], re.DOTALL)
    assert block, f"{document.name}: no JSON example after {heading}"
    example: dict[str, object] = json.loads(block.group(1))
    return example


def test_api_md_health_examples_have_every_field_of_the_answers(client: TestClient) -> None:  # type: ignore[type-arg]
    without_key = json_example_after(ROOT / "docs" / "api.md", "## `GET /health`")
    assert set(without_key) == set(client.get("/health").json())
    example = json_example_after(ROOT / "docs" / "api.md", "With a valid key (any scope), the details too")
    answer = client.get("/health", headers=AUTH).json()
    assert set(example) == set(answer)
    for section in ("inference", "gallery"):
        assert set(example[section]) == set(answer[section]), section  # type: ignore[arg-type]


# ----- the Quick start and the command lines a reader copies


def readme_command(name: str) -> str:
    """What .ci/run and tests/e2e/container/newcomer.sh run: .ci/readme_command.py's answer."""
    result = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "readme_command.py"), name], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def code_lines(text: str) -> list[str]:
    """The lines of every ```bash block."""
    return [line for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL) for line in block.splitlines()]


def test_quick_start_commands_are_what_ci_runs() -> None:
    """CI reads the commands from README.md; each is one line, through ./uv, with no system pip."""
    serve, test = readme_command("serve"), readme_command("test")
    assert re.fullmatch(r"API_KEY=\S+ \./uv run --no-dev face-service serve", serve), serve
    assert test.startswith("./uv run ") and "pytest" in test, test
    for command in (serve, test):
        assert "pip" not in command, "pip install into the system Python fails where PEP 668 holds"
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci, f".ci/run does not run the README's test command {test!r} as a line of its own"
    assert f'[ "$(python3 .ci/readme_command.py test)" = "{test}" ] ||' in ci  # and checks it still is
    newcomer = (ROOT / "tests" / "e2e" / "container" / "newcomer.sh").read_text()
    assert "readme_command.py serve" in newcomer and "readme_command.py test" in newcomer


def test_cli_examples_run_in_the_runtime_environment() -> None:
    """`uv run face-service ...` without --no-dev installs the development tools first (a 1.2 GB .venv):
    every README line that runs the CLI through uv says --no-dev (or --no-sync: no install at all)."""
    readme = (ROOT / "README.md").read_text()
    runs = [line for line in code_lines(readme) if re.search(r"\buv run\b.*\bface-service\b", line)]
    runs += re.findall(r"`([^`]*\buv run\b[^`]*\bface-service\b[^`]*)`", readme)  # in the text, too
    assert len(runs) >= 6, runs
    for line in runs:
        options = line.split("uv run", 1)[1].split("face-service", 1)[0].split()
        assert "--no-dev" in options or "--no-sync" in options, line
    bare = [line for line in code_lines(readme) if re.match(r"\s*face-service ", line)]
    assert bare == [], "run the CLI through ./uv run --no-dev (it is not on PATH)"
