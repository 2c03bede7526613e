"""./uv, the README's first command: the uv on PATH, else a pinned uv installed once into .tools/ (a
virtual environment: allowed where the system Python refuses pip, PEP 668). Run here on fake PATHs,
with a fake python3 whose `-m venv` and `-m pip install` only write files: no network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import ROOT

WRAPPER = ROOT / "uv"
# What the wrapper runs besides python3 and uv: linked into the fake PATH, so no real uv is on it.
UTILITIES = ("sh", "dirname", "rm", "mv", "cp", "mkdir", "chmod", "cat")

FAKE_PYTHON = r"""#!/bin/sh
# `-m venv DIR`: DIR/bin/python (this script). `-m pip install ... uv==V`: bin/uv next to it.
if [ "$1 $2" = "-m venv" ]; then
    if [ -n "${FAKE_VENV_FAILS:-}" ]; then echo "The virtual environment was not created: ensurepip" >&2; exit 1; fi
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && exit 0
fi
if [ "$1 $2 $3" = "-m pip install" ]; then
    echo "$*" >> "$FAKE_PIP_LOG"
    if [ -n "${FAKE_PIP_FAILS:-}" ]; then echo "ERROR: no matching distribution" >&2; exit 1; fi
    for arg in "$@"; do case $arg in uv==*) version=${arg#uv==} ;; esac; done
    printf '#!/bin/sh\necho "pinned uv %s: $*"\n' "$version" > "$(dirname "$0")/uv"
    chmod +x "$(dirname "$0")/uv"
    exit 0
fi
exit 2
"""


def pinned_version() -> str:
    match = re.search(r"^UV_VERSION=(\S+)", WRAPPER.read_text(), re.MULTILINE)
    assert match
    return match.group(1)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the wrapper in a folder of its own, and a bin folder with the fake python3."""
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(WRAPPER, repo / "uv")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in UTILITIES:
        found = shutil.which(name)
        assert found, name
        (bin_dir / name).symlink_to(found)
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    return repo


def run(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PATH": str(repo.parent / "bin"), "FAKE_PIP_LOG": str(repo.parent / "pip.log"), **env}
    return subprocess.run([str(repo / "uv"), *args], env=environment, capture_output=True, text=True, timeout=60)


def pip_calls(repo: Path) -> list[str]:
    log = repo.parent / "pip.log"
    return log.read_text().splitlines() if log.exists() else []


def test_the_wrapper_is_executable_and_pins_the_dockerfiles_uv() -> None:
    assert os.access(WRAPPER, os.X_OK)
    assert f"pip install --no-cache-dir uv=={pinned_version()}\n" in (ROOT / "Dockerfile").read_text()
    assert f"otherwise uv {pinned_version()}," in (ROOT / "README.md").read_text(), "README names the version"


def test_without_uv_it_installs_the_pinned_uv_once(checkout: Path) -> None:
    first = run(checkout, "run", "pytest")
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"pinned uv {pinned_version()}: run pytest\n"
    assert "installing uv" in first.stderr and "(once)" in first.stderr
    (call,) = pip_calls(checkout)
    assert f"uv=={pinned_version()}" in call.split() and "--quiet" in call.split()
    assert (checkout / ".tools" / "bin" / "uv").exists()

    second = run(checkout, "--version")
    assert (second.returncode, second.stdout, second.stderr) == (0, f"pinned uv {pinned_version()}: --version\n", "")
    assert len(pip_calls(checkout)) == 1, "pip ran again"
    assert sorted(p.name for p in checkout.iterdir()) == [".tools", "uv"], "a partial install was left behind"


def test_a_uv_on_path_is_used_as_it_is(checkout: Path) -> None:
    uv = checkout.parent / "bin" / "uv"
    uv.write_text('#!/bin/sh\necho "uv on PATH: $*"\n')
    uv.chmod(0o755)
    result = run(checkout, "sync", "--no-dev")
    assert (result.returncode, result.stdout, result.stderr) == (0, "uv on PATH: sync --no-dev\n", "")
    assert pip_calls(checkout) == [] and not (checkout / ".tools").exists()


def test_without_venv_it_says_what_to_install_and_leaves_nothing(checkout: Path) -> None:
    result = run(checkout, "--version", FAKE_VENV_FAILS="1")
    assert result.returncode == 1
    assert "apt install python3-venv" in result.stderr
    assert [p.name for p in checkout.iterdir()] == ["uv"]


def test_a_failed_pip_install_leaves_nothing_and_is_tried_again(checkout: Path) -> None:
    failed = run(checkout, "--version", FAKE_PIP_FAILS="1")
    assert failed.returncode != 0 and "no matching distribution" in failed.stderr
    assert [p.name for p in checkout.iterdir()] == ["uv"]
    again = run(checkout, "--version")
    assert again.returncode == 0 and len(pip_calls(checkout)) == 2
