# shellcheck shell=bash
# Sourced by .ci/run: a Docker engine, a registry and a local base image for tests/system/test_image.py.
# Every process started here is recorded by pid and stopped by stop_services.

services_root=""
dockerd_pid=""
registry_pid=""

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

start_services() {
    services_root=$(mktemp -d /tmp/api-migrations-ci.XXXXXX)
    dockerd --storage-driver vfs --iptables=false --bridge=none \
        --data-root "$services_root/docker" --exec-root "$services_root/exec" \
        --pidfile "$services_root/dockerd.pid" -H "unix://$services_root/docker.sock" \
        >"$services_root/dockerd.log" 2>&1 &
    dockerd_pid=$!
    export DOCKER_HOST="unix://$services_root/docker.sock"
    wait_for 60 docker info || { cat "$services_root/dockerd.log" >&2; echo "dockerd did not start" >&2; return 1; }

    local port
    port=$(free_port)
    mkdir -p "$services_root/registry"
    cat >"$services_root/registry.yml" <<YAML
version: 0.1
storage:
  filesystem:
    rootdirectory: $services_root/registry
http:
  addr: 127.0.0.1:$port
YAML
    docker-registry serve "$services_root/registry.yml" >"$services_root/registry.log" 2>&1 &
    registry_pid=$!
    export TEST_REGISTRY="127.0.0.1:$port"
    wait_for 30 python3 -c "import urllib.request; urllib.request.urlopen('http://$TEST_REGISTRY/v2/', timeout=2)" \
        || { cat "$services_root/registry.log" >&2; echo "docker-registry did not start" >&2; return 1; }

    # No registry can be pulled from: make the base from Debian packages. The host's CA
    # bundle goes into this test-only base so pip can reach PyPI through the proxy; the
    # production base (python:3.11-slim) brings its own and the Dockerfile adds none.
    local rootfs="$services_root/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" http://deb.debian.org/debian \
        >"$services_root/debootstrap.log" 2>&1 || { tail -20 "$services_root/debootstrap.log" >&2; return 1; }
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
    tar -C "$rootfs" -c . | docker import - migrator-test-base:bookworm >/dev/null
    rm -rf "$rootfs"
    export MIGRATOR_TEST_BASE_IMAGE=migrator-test-base:bookworm
}

stop_pid() {  # SIGTERM, up to 30 s to exit, then SIGKILL
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
}

# dockerd leaves mounts under its exec root (its network namespace, exec/netns/default, at
# least), and a managed containerd if it was killed hard. rm -rf cannot remove a mount
# point, so those go first, deepest first.
unmount_under() {
    local mount
    awk -v root="$1" '$2 == root || index($2, root "/") == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mount; do
            umount "$mount" 2>/dev/null || umount -l "$mount" || echo "could not unmount $mount" >&2
        done
}

stop_services() {
    stop_pid "$registry_pid"
    stop_pid "$dockerd_pid"
    [ -n "$services_root" ] || return 0
    local containerd_pid_file="$services_root/exec/containerd/containerd.pid"
    if [ -s "$containerd_pid_file" ]; then stop_pid "$(cat "$containerd_pid_file")"; fi
    unmount_under "$services_root"
    rm -rf "$services_root" || echo "could not remove $services_root" >&2
}
