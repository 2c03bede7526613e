"""What the container test needs to know about this machine, read at run time (never committed).

    python3 host_config.py debian-mirror     the Debian mirror that this machine's apt sources name
    python3 host_config.py standin DIR BASE     writes DIR/Containerfile (+ files) for the stand-in base image
    python3 host_config.py newcomer DIR BASE    the same for newcomer.sh's stock Debian image

The stand-in for `python:3.11-slim` must reach the same package indexes as this machine, so pip's
and uv's configuration are carried into it: the settings `pip config list` shows (local paths and
file:// indexes left out: they do not exist inside a container), uv's UV_* index settings from the
environment, uv.toml files, and the CA bundle that SSL_CERT_FILE names. Standard library only; this
file imports nothing of the service. Not a test module: pytest does not collect it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

APT = Path("/etc/apt")
SUITE = "bookworm"  # Debian 12: its python3 is 3.11, as in python:3.11-slim
CA_IN_IMAGE = "/etc/ssl/certs/standin-ca-bundle.crt"
UV_SETTINGS = (
    "UV_DEFAULT_INDEX",
    "UV_INDEX",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "UV_INDEX_STRATEGY",
    "UV_KEYRING_PROVIDER",
    "UV_INSECURE_HOST",
    "UV_NATIVE_TLS",
    "UV_HTTP_TIMEOUT",
)


def apt_entries() -> list[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of every enabled `deb` source, one-line and deb822 formats."""
    entries: list[tuple[str, list[str], list[str]]] = []
    one_line = [APT / "sources.list", *sorted((APT / "sources.list.d").glob("*.list"))]
    for path in one_line:
        if not path.is_file():
            continue
        for raw in path.read_text().splitlines():
            words = raw.split("#", 1)[0].split()
            if not words or words[0] != "deb":
                continue
            words = words[1:]
            if words and words[0].startswith("["):  # [arch=amd64 signed-by=...]
                while words and not words[0].endswith("]"):
                    words = words[1:]
                words = words[1:]
            if len(words) >= 2:
                entries.append((words[0], [words[1]], words[2:]))
    for path in sorted((APT / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields: dict[str, str] = {}
            key = ""
            for raw in stanza.splitlines():
                if raw.startswith("#") or not raw.strip():
                    continue
                if raw[0].isspace() and key:
                    fields[key] += " " + raw.strip()
                elif ":" in raw:
                    key, value = raw.split(":", 1)
                    key = key.strip().lower()
                    fields[key] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                entries.append((uri, fields.get("suites", "").split(), fields.get("components", "").split()))
    return entries


def debian_mirror() -> str:
    """The first source that serves Debian's main suites (not -security, not -updates)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    codename = ""
    os_release = Path("/etc/os-release")
    if os_release.is_file():
        for line in os_release.read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    wanted = {SUITE, codename, "stable"} - {""}
    for uri, suites, components in apt_entries():
        if "main" in components and wanted & set(suites):
            return uri.rstrip("/")
    raise SystemExit("no Debian mirror in /etc/apt/sources.list{,.d}; set DEBIAN_MIRROR")


def is_local(value: str) -> bool:
    return value.startswith(("/", "file:", "~", "."))


def pip_settings() -> dict[str, dict[str, str]]:
    """`pip config list` as {section: {key: value}}, environment overriding files, local paths left out."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    files: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for line in listed.splitlines():
        name, sep, quoted = line.partition("=")
        if not sep or "." not in name:
            continue
        section, key = name.rsplit(".", 1)
        try:
            value = str(ast.literal_eval(quoted))
        except (ValueError, SyntaxError):
            value = quoted.strip("'\"")
        if key == "cert":
            continue  # replaced by the bundle copied into the image
        kept = " ".join(word for word in value.split() if not is_local(word))
        if value.split() and not kept:
            print(f"  pip {name}: local to this machine, left out of the image", file=sys.stderr)
            continue
        if section == ":env:":
            env[key] = kept
        else:
            files.setdefault(section, {})[key] = kept
    for key, value in env.items():  # PIP_* variables win over configuration files, as in pip
        files.setdefault("global", {})[key] = value
    return files


def uv_files(user_target: str) -> list[tuple[Path, str]]:
    """uv.toml files uv reads on this machine, and where the image's user reads them."""
    found: list[tuple[Path, str]] = []
    user = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "uv" / "uv.toml"
    if user.is_file():
        found.append((user, user_target))
    for base in [*(os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"), "/etc"]:
        system = Path(base) / "uv" / "uv.toml"
        if system.is_file():
            found.append((system, "/etc/uv/uv.toml"))
            break
    return found


def standin(directory: Path, base: str) -> None:
    """The Containerfile of the thin layer that makes the debootstrapped rootfs look like python:3.11-slim."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f"FROM {base}",
        "ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        # python:3.11-slim has python and pip in /usr/local/bin and lets pip install into the system.
        "RUN ln -sf /usr/bin/python3 /usr/local/bin/python && ln -sf /usr/bin/pip3 /usr/local/bin/pip"
        " && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",
        "LABEL face-service.standin=bookworm-minbase",
    ]
    lines += package_indexes(directory, "/root/.config/uv/uv.toml")
    (directory / "Containerfile").write_text("\n".join(lines) + "\n")


NEWCOMER_UID = 1000


def newcomer(directory: Path, base: str) -> None:
    """The Containerfile of a stock Debian 12 machine as a newcomer has it: the debootstrapped rootfs
    as it is (PEP 668 in force, no uv), curl, and a user without root. Only this machine's package
    index settings are added, so that pip and uv reach the same indexes as here."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        f"FROM {base}",
        "ENV LANG=C.UTF-8",
        "RUN apt-get update -q && apt-get install -y -q --no-install-recommends curl"
        " && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin",
        f"RUN useradd --create-home --uid {NEWCOMER_UID} --shell /bin/bash newcomer",
        "LABEL face-service.newcomer=bookworm-minbase",
    ]
    lines += package_indexes(directory, "/home/newcomer/.config/uv/uv.toml")
    lines += ["USER newcomer", "WORKDIR /home/newcomer/face-service"]
    (directory / "Containerfile").write_text("\n".join(lines) + "\n")


def package_indexes(directory: Path, user_uv_toml: str) -> list[str]:
    """Containerfile lines (and files in `directory`) that carry this machine's CA bundle, pip
    configuration, uv.toml files and UV_* index settings in."""
    lines: list[str] = []
    cert = os.environ.get("SSL_CERT_FILE")
    if cert and Path(cert).is_file():
        shutil.copyfile(cert, directory / "ca-bundle.crt")
        lines += [f"COPY ca-bundle.crt {CA_IN_IMAGE}", f"ENV SSL_CERT_FILE={CA_IN_IMAGE} PIP_CERT={CA_IN_IMAGE}"]
    pip_conf = []
    for section, settings in pip_settings().items():
        pip_conf.append(f"[{section}]")
        pip_conf += [f"{key} = {value}" for key, value in settings.items()]
    (directory / "pip.conf").write_text("\n".join(pip_conf) + "\n")
    lines.append("COPY pip.conf /etc/pip.conf")
    for index, (source, target) in enumerate(uv_files(user_uv_toml)):
        shutil.copyfile(source, directory / f"uv-{index}.toml")
        lines.append(f"COPY uv-{index}.toml {target}")
    uv_env = [f'{name}="{os.environ[name]}"' for name in UV_SETTINGS if os.environ.get(name)]
    if uv_env:
        lines.append("ENV " + " ".join(uv_env))
    return lines


def main(argv: list[str]) -> int:
    if argv[:1] == ["debian-mirror"]:
        print(debian_mirror())
        return 0
    if argv[:1] == ["standin"] and len(argv) == 3:
        standin(Path(argv[1]), argv[2])
        return 0
    if argv[:1] == ["newcomer"] and len(argv) == 3:
        newcomer(Path(argv[1]), argv[2])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
