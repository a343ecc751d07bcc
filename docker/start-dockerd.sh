#!/usr/bin/env bash
# Makes sure a Docker daemon answers and prints the environment to reach it:
#   eval "$(docker/start-dockerd.sh)"        start (or reuse) one
#   docker/start-dockerd.sh stop             stop the one this script started
# A daemon already answering on $DOCKER_HOST or the default socket is reused.
# Otherwise Debian's dockerd is started with everything (data, exec root,
# socket, pidfile, log) under $SEGSERVE_BUILD_DIR/docker (default build/), so
# it needs no system service and leaves /var/lib/docker alone.
# It prints two lines for eval: DOCKER_HOST and SEGSERVE_DOCKERD_STARTED (1 when
# this call started the daemon, so a caller knows whether to stop it).
#
# Storage driver: dockerd picks overlay2 when the data root's filesystem
# supports it (ext4 here) and otherwise falls back by itself (vfs inside a
# container whose root is already overlayfs). SEGSERVE_DOCKER_STORAGE_DRIVER
# forces one.
set -euo pipefail

# Debian's client (docker.io): /usr/local/bin/docker may be a different one.
DOCKER=/usr/bin/docker
DOCKERD=/usr/sbin/dockerd
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(realpath -m "${SEGSERVE_BUILD_DIR:-$ROOT/build}")
STATE=$BUILD_DIR/docker
# Unix socket paths are limited to 108 bytes, and containerd puts its own
# sockets below the exec root: keep both short, in /tmp when the build path is long.
RUN=$STATE/run
if ((${#RUN} > 60)); then
  RUN=/tmp/segserve-dockerd-$(printf %s "$STATE" | md5sum | cut -c1-8)
fi
SOCK=unix://$RUN/docker.sock
PIDFILE=$RUN/dockerd.pid

answers() { DOCKER_HOST=$1 timeout 10 "$DOCKER" info >/dev/null 2>&1; }

ours_running() { [[ -f $PIDFILE ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

stop() {
  if ours_running; then
    pid=$(cat "$PIDFILE")
    kill "$pid"
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid"; fi
    echo "start-dockerd: stopped dockerd $pid" >&2
  fi
}

case "${1:-start}" in
  stop) stop; exit 0 ;;
  start) ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac

# 1. Reuse whatever answers: our own daemon, $DOCKER_HOST, the default socket.
if ours_running && answers "$SOCK"; then
  printf 'export DOCKER_HOST=%s\nexport SEGSERVE_DOCKERD_STARTED=0\n' "$SOCK"
  exit 0
fi
if answers "${DOCKER_HOST:-unix:///var/run/docker.sock}"; then
  printf 'export DOCKER_HOST=%s\nexport SEGSERVE_DOCKERD_STARTED=0\n' \
    "${DOCKER_HOST:-unix:///var/run/docker.sock}"
  exit 0
fi

# 2. Start our own. No bridge, no iptables, no proxy: every container and every
# build step uses host networking, so the daemon never touches the host's
# network configuration.
[[ -x $DOCKERD ]] || { echo "start-dockerd: $DOCKERD missing (apt-get install docker.io)" >&2; exit 1; }
stop # a stale one that stopped answering
mkdir -p "$STATE/data" "$RUN"
driver=()
if [[ -n ${SEGSERVE_DOCKER_STORAGE_DRIVER:-} ]]; then
  driver=(--storage-driver "$SEGSERVE_DOCKER_STORAGE_DRIVER")
fi
setsid "$DOCKERD" \
  --host "$SOCK" --pidfile "$PIDFILE" \
  --data-root "$STATE/data" --exec-root "$RUN/exec" \
  --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
  --ip-masq=false --userland-proxy=false \
  "${driver[@]}" </dev/null >>"$STATE/dockerd.log" 2>&1 &
daemon=$!

for _ in $(seq 1 120); do
  if answers "$SOCK"; then
    echo "start-dockerd: dockerd $(cat "$PIDFILE") on $SOCK," \
      "storage driver $(DOCKER_HOST=$SOCK "$DOCKER" info --format '{{.Driver}}')," \
      "log $STATE/dockerd.log" >&2
    printf 'export DOCKER_HOST=%s\nexport SEGSERVE_DOCKERD_STARTED=1\n' "$SOCK"
    exit 0
  fi
  kill -0 "$daemon" 2>/dev/null || break
  sleep 0.5
done
echo "start-dockerd: dockerd did not come up; last lines of $STATE/dockerd.log:" >&2
tail -n 20 "$STATE/dockerd.log" >&2
exit 1
