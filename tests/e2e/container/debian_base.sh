# shellcheck shell=bash
# Sourced by tests/e2e/container/run.sh and tests/e2e/container/newcomer.sh: podman as they call it, and the
# Debian bookworm minbase image both start from, made once with debootstrap and kept between runs.
#
# Every podman call: runc (crun refuses hybrid cgroups), cgroupfs, host network, and ulimits the
# sandbox can grant. REBUILD_BASE=1 makes the base again from scratch.

ROOTFS_IMAGE=localhost/face-service-ci/debian-minbase:bookworm
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
export PODMAN_CMD="${PODMAN[*]}" # for check_container.py
LIMITS=(--network host --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)

podman_() { "${PODMAN[@]}" "$@"; }

# Installs podman, runc and debootstrap where one is missing (Debian's packages).
container_tools() {
    local tool missing=()
    for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
    if [ "${#missing[@]}" != 0 ]; then
        apt-get update && apt-get install -y podman runc debootstrap
    fi
}

# ROOTFS_IMAGE, made if it is not there: Debian bookworm minbase (python3 3.11, python3-venv,
# python3-pip, ca-certificates) from the Debian mirror this machine's apt sources name, slimmed as
# Debian's -slim images are. Its Python keeps Debian's EXTERNALLY-MANAGED (PEP 668) marker.
# debian_base WORKDIR (a scratch folder); prints a line when it made the image.
debian_base() {
    local work=$1 began mirror here
    here=$(dirname "${BASH_SOURCE[0]}")
    if [ "${REBUILD_BASE:-0}" = 1 ]; then podman_ rmi -f "$ROOTFS_IMAGE" >/dev/null 2>&1 || true; fi
    if podman_ image exists "$ROOTFS_IMAGE"; then return 0; fi
    began=$SECONDS
    mirror=$(python3 "$here/host_config.py" debian-mirror)
    debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 40 "$work/debootstrap.log" >&2; echo "FAILED: debootstrap" >&2; return 1; }
    # Slimmed as Debian's -slim images are (python:3.11-slim is built on debian:bookworm-slim): no
    # downloaded packages or package lists, no documentation but copyrights, no man pages or translations.
    (cd "$work/rootfs" && rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* \
        usr/share/man/* usr/share/locale/* usr/share/info/* usr/share/groff/* usr/share/lintian/* &&
        find usr/share/doc -type f ! -name copyright -delete)
    tar -C "$work/rootfs" -c . | podman_ import - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$work/rootfs"
    printf '  ok: %s\n' "debootstrap bookworm minbase from this machine's Debian mirror: $((SECONDS - began)) s"
}
