#!/usr/bin/env bash
# make image: builds segserve:cpu from docker/Dockerfile without any registry.
# Starts dockerd if none answers, makes segserve-base:bookworm if missing, builds
# with host networking (the only network a step gets: dockerd runs with
# --bridge=none), then prints the image size and the build time.
# Env: SEGSERVE_IMAGE (segserve:cpu), SEGSERVE_BASE_IMAGE (segserve-base:bookworm;
# any Debian 12 image works, e.g. debian:bookworm-slim), JOBS (2).
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

start=$SECONDS
DOCKER_BUILDKIT=1 "$DOCKER" build --network host \
  --build-arg BASE="$BASE" --build-arg JOBS="${JOBS:-2}" \
  -f "$ROOT/docker/Dockerfile" -t "$IMAGE" "$ROOT"
secs=$((SECONDS - start))
size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
echo "build-image: $IMAGE $(numfmt --to=iec-i --suffix=B "$size") ($size bytes)," \
  "built in $((secs / 60)) min $((secs % 60)) s"
echo "build-image: DOCKER_HOST=$DOCKER_HOST"
