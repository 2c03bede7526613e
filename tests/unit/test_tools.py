"""tests/support/tools.py: Chromium and Node.js found where a developer has them, and the policy for
tests that need them (skipped with one line here, failed under CI=true), on fake PATHs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import tools


def program(folder: Path, name: str, output: str = "") -> Path:
    """An executable shell script `name` in `folder` that prints `output`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize("name", tools.CHROMIUM_NAMES)
def test_chromium_is_found_on_path_by_each_usual_name(tmp_path: Path, name: str) -> None:
    found = program(tmp_path / "bin", name)
    assert tools.find_chromium({"PATH": f"{tmp_path / 'empty'}:{tmp_path / 'bin'}"}) == str(found)


def test_chromium_names_are_tried_in_order(tmp_path: Path) -> None:
    program(tmp_path / "a", "google-chrome")
    chromium = program(tmp_path / "b", "chromium")
    assert tools.find_chromium({"PATH": f"{tmp_path / 'a'}:{tmp_path / 'b'}"}) == str(chromium)


def test_chromium_path_wins_over_path(tmp_path: Path) -> None:
    program(tmp_path / "bin", "chromium")
    chrome = program(tmp_path / "Applications", "Google Chrome")
    env = {"PATH": str(tmp_path / "bin"), "CHROMIUM_PATH": str(chrome)}
    assert tools.find_chromium(env) == str(chrome)


def test_a_chromium_path_that_is_no_executable_finds_nothing(tmp_path: Path) -> None:
    program(tmp_path / "bin", "chromium")
    (tmp_path / "not-executable").write_text("")
    for explicit in (tmp_path / "missing", tmp_path / "not-executable"):
        assert tools.find_chromium({"PATH": str(tmp_path / "bin"), "CHROMIUM_PATH": str(explicit)}) is None


def test_no_chromium_and_a_file_that_is_not_executable_is_none(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "chromium").write_text("")  # not executable
    assert tools.find_chromium({"PATH": str(tmp_path / "bin")}) is None
    assert tools.find_chromium({}) is None


def test_node_20_with_npm_is_found(tmp_path: Path) -> None:
    node = program(tmp_path, "node", "v20.11.1")
    npm = program(tmp_path, "npm")
    assert tools.find_node({"PATH": str(tmp_path)}) == (str(node), str(npm))
    program(tmp_path, "node", "v22.3.0")
    assert tools.find_node({"PATH": str(tmp_path)}) == (str(node), str(npm))


def test_an_old_node_or_no_npm_is_not_enough(tmp_path: Path) -> None:
    program(tmp_path / "old", "node", "v18.19.0")
    program(tmp_path / "old", "npm")
    assert tools.find_node({"PATH": str(tmp_path / "old")}) is None
    program(tmp_path / "no-npm", "node", "v20.11.1")
    assert tools.find_node({"PATH": str(tmp_path / "no-npm")}) is None
    program(tmp_path / "broken", "node", "not a version")
    program(tmp_path / "broken", "npm")
    assert tools.find_node({"PATH": str(tmp_path / "broken")}) is None


def test_what_each_marker_needs() -> None:
    nothing = tools.Tools(node=None, chromium=None)
    assert nothing.missing(["node"]) == ["node"]
    assert nothing.missing(["browser"]) == ["node", "chromium"]
    no_browser = tools.Tools(node=("node", "npm"), chromium=None)
    assert no_browser.missing(["node"]) == []
    assert no_browser.missing(["node", "browser"]) == ["chromium"]
    assert tools.Tools(node=("node", "npm"), chromium="chromium").missing(tools.MARKERS) == []


@pytest.mark.parametrize(("value", "ci"), [("true", True), ("1", True), ("TRUE", True), ("false", False), ("", False)])
def test_ci_true_makes_them_required(value: str, ci: bool) -> None:
    assert tools.required({"CI": value}) is ci
    assert tools.required({}) is False


def test_the_message_says_what_to_install() -> None:
    local = tools.message(["node", "chromium"], ci=False)
    assert "\n" not in local and "skipped" in local
    assert "Node.js 20+ with npm" in local and "apt-get install chromium" in local and "CHROMIUM_PATH" in local
    assert "Chromium" not in tools.message(["node"], ci=False)
    assert tools.message(["chromium"], ci=True).startswith("CI=true requires")


# ----- the policy, end to end: pytest run on two tests marked `node`, on a PATH without Node.js
