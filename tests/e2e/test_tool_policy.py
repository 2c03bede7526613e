"""The skip-or-fail rule for tests that need Node.js, run for real: pytest on the TypeScript client's
tests with a PATH that has no Node (the rule's own parts are unit-tested in tests/unit/test_tools.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def run_node_tests(ci: str | None, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CHROMIUM_PATH", "PYTEST_ADDOPTS")}
    env["PATH"] = str(tmp_path)  # no node, no npm, no chromium
    if ci is not None:
        env["CI"] = ci
    tests = [
        "tests/e2e/test_typescript_client.py::test_generated_types_match_the_document",
        "tests/e2e/test_typescript_client.py::test_node_suite_passes_against_live_servers",
    ]
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_node_the_tests_are_skipped_under_one_line(tmp_path: Path) -> None:
    result = run_node_tests(None, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"\b2 skipped\b", result.stdout), result.stdout[-3000:]
    skipped = [line for line in result.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and skipped[0].startswith("SKIPPED [2]"), skipped
    assert "install Node.js 20+ with npm" in skipped[0] and "a Chromium" in skipped[0]


def test_under_ci_true_missing_node_fails_them(tmp_path: Path) -> None:
    result = run_node_tests("true", tmp_path)
    assert result.returncode == 1, result.stdout[-3000:]
    assert re.search(r"\b2 errors?\b|\b2 failed\b", result.stdout), result.stdout[-3000:]
    assert "CI=true requires the Node.js and browser tests: install Node.js 20+ with npm" in result.stdout
