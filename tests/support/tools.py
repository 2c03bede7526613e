"""The programs outside Python that some tests drive, and what happens when one is missing.

Tests marked `node` need Node.js 20+ with npm (the TypeScript client, the Next.js example); tests
marked `browser` need a Chromium as well (the example's page, driven by Playwright). On a developer's
machine without them those tests are skipped, all under one line that says what to install; under
`CI=true` they are required, and each fails instead. Chromium is found from `CHROMIUM_PATH`, else
on PATH by its usual names. A test environment may leave the tiers out explicitly with pytest's own
marker expression: PYTEST_ADDOPTS='-m "not node and not browser"'.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MARKERS = {
    "node": "needs Node.js 20+ with npm (the TypeScript client and the Next.js example)",
    "browser": "needs a Chromium, driven by Playwright (the Next.js example's page); Node.js too",
}
CHROMIUM_PATH = "CHROMIUM_PATH"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
NODE_MAJOR = 20
# What each marker needs, in the order the install hint names them.
NEEDS = {"node": ("node",), "browser": ("node", "chromium")}
INSTALL = {
    "node": f"Node.js {NODE_MAJOR}+ with npm (nodejs.org; Debian 13: apt-get install nodejs npm)",
    "chromium": f"a Chromium (Debian: apt-get install chromium; or set {CHROMIUM_PATH} to its executable)",
}


def executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def find_chromium(environ: Mapping[str, str]) -> str | None:
    """CHROMIUM_PATH when set (an explicit path that is not an executable finds nothing), else the
    first of CHROMIUM_NAMES on the environment's PATH."""
    explicit = environ.get(CHROMIUM_PATH)
    if explicit:
        return explicit if executable(explicit) else None
    search = environ.get("PATH", "")
    for name in CHROMIUM_NAMES:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def node_version(node: str) -> int | None:
    """The major version `node --version` prints, or None when it cannot be run."""
    try:
        printed = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"v(\d+)\.", printed.strip())
    return int(match.group(1)) if match else None


def find_node(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(node, npm) on the environment's PATH, when node is version NODE_MAJOR or later."""
    search = environ.get("PATH", "")
    node, npm = shutil.which("node", path=search), shutil.which("npm", path=search)
    if not node or not npm:
        return None
    version = node_version(node)
    return (node, npm) if version is not None and version >= NODE_MAJOR else None


@dataclass(frozen=True)
class Tools:
    """What this machine has, looked up once per session."""

    node: tuple[str, str] | None
    chromium: str | None

    @classmethod
    def look_up(cls, environ: Mapping[str, str]) -> Tools:
        return cls(node=find_node(environ), chromium=find_chromium(environ))

    def missing(self, markers: Iterable[str]) -> list[str]:
        """The programs these markers need that were not found, in INSTALL's order."""
        needed = {program for marker in markers for program in NEEDS[marker]}
        found = {"node": self.node is not None, "chromium": self.chromium is not None}
        return [program for program in INSTALL if program in needed and not found[program]]


def required(environ: Mapping[str, str]) -> bool:
    """Under CI=true (as CI services set it) a missing program fails its tests instead of skipping them."""
    return environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def message(missing: list[str], ci: bool) -> str:
    """One line for every test a missing program stops: what to install. The same text for all of
    them, so pytest's summary folds them into one line."""
    what = " and ".join(INSTALL[program] for program in missing)
    if ci:
        return f"CI=true requires the Node.js and browser tests: install {what}"
    return f"not found here, so the Node.js/browser tests are skipped: install {what} (CI=true fails instead)"
