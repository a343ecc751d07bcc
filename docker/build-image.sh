#!/usr/bin/env bash
# make image: builds segserve:cpu from docker/Dockerfile without any registry.
# Starts dockerd if none answers, makes segserve-base:bookworm if missing, builds
# with host networking (the only network a step gets: dockerd runs with
# --bridge=none), then prints the image size and the build time.
# Env: SEGSERVE_IMAGE (segserve:cpu), SEGSERVE_BASE_IMAGE (segserve-base:bookworm;
# any Debian 12 image works, e.g. debian:bookworm-slim), JOBS (2),
# SEGSERVE_IMAGE_FROM: "source" (default: the Dockerfile's builder stage
# compiles segserve and segclient) or "build" (they come from the Release build
# in SEGSERVE_BUILD_DIR, default build/, which must be of this tree on Debian 12:
# CI does this, so the image ships the binaries make test just tested and the
# compile is not done twice).
# BuildKit (built into dockerd 20.10) is required: the ccache cache mount.
set -euo pipefail

DOCKER=/usr/bin/docker # Debian's client; /usr/local/bin/docker may be another
ROOT=$(cd "$(dirname "$0")/.." && pwd)
IMAGE=${SEGSERVE_IMAGE:-segserve:cpu}
BASE=${SEGSERVE_BASE_IMAGE:-segserve-base:bookworm}

eval "$("$ROOT/docker/start-dockerd.sh")"
if [[ $BASE == segserve-base:* ]]; then
  SEGSERVE_BASE_IMAGE=$BASE "$ROOT/docker/make-base.sh"
fi

binaries=builder
case ${SEGSERVE_IMAGE_FROM:-source} in
  source) ;;
  build)
    build=${SEGSERVE_BUILD_DIR:-build}
    [[ $build == /* ]] || build=$ROOT/$build
    if ! grep -q '^VERSION_ID="12"' /etc/os-release; then
      echo "build-image: SEGSERVE_IMAGE_FROM=build needs a Debian 12 host" \
        "(the image's base); use SEGSERVE_IMAGE_FROM=source" >&2
      exit 1
    fi
    if ! grep -q '^CMAKE_BUILD_TYPE:STRING=Release$' "$build/CMakeCache.txt" \
      2>/dev/null; then
      echo "build-image: $build is not a Release build; run make build" >&2
      exit 1
    fi
    staged=$ROOT/.image-binaries
    trap 'rm -rf "$staged"' EXIT
    rm -rf "$staged"
    install -D -s -t "$staged" "$build/server/segserve" "$build/tools/segclient"
    binaries=host-build
    echo "build-image: segserve and segclient from $build"
    ;;
  *)
    echo "build-image: SEGSERVE_IMAGE_FROM is '$SEGSERVE_IMAGE_FROM';" \
      "allowed: source, build" >&2
    exit 1
    ;;
esac

start=$SECONDS
DOCKER_BUILDKIT=1 "$DOCKER" build --network host \
  --build-arg BASE="$BASE" --build-arg JOBS="${JOBS:-2}" \
  --build-arg BINARIES="$binaries" \
  -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT"
secs=$((SECONDS - start))
size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
echo "build-image: $IMAGE $(numfmt --to=iec-i --suffix=B "$size") ($size bytes)," \
  "built in $((secs / 60)) min $((secs % 60)) s"
echo "build-image: DOCKER_HOST=$DOCKER_HOST"
