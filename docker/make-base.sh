#!/usr/bin/env bash
# Builds the base image segserve-base:bookworm from Debian packages alone (no
# container registry needed): debootstrap --variant=minbase, then docker import.
#   docker/make-base.sh [--force]
# Env: DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR,
# SEGSERVE_BASE_IMAGE (default segserve-base:bookworm), SEGSERVE_BUILD_DIR, DOCKER_HOST.
# Skips when the image already exists, unless --force.
set -euo pipefail

DOCKER=/usr/bin/docker # Debian's client; /usr/local/bin/docker may be another
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=$(realpath -m "${SEGSERVE_BUILD_DIR:-$ROOT/build}")
IMAGE=${SEGSERVE_BASE_IMAGE:-segserve-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

eval "$("$ROOT/docker/start-dockerd.sh")"
if ((!force)) && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "make-base: $IMAGE exists (--force rebuilds it)"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || { echo "make-base: debootstrap needs root" >&2; exit 1; }

start=$SECONDS
rootfs=$BUILD_DIR/docker/base-rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"
# The mounts debootstrap makes must not outlive a failure.
trap 'umount -R "$rootfs/proc" "$rootfs/sys" 2>/dev/null || true; rm -rf --one-file-system "$rootfs"' EXIT
debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$BUILD_DIR/docker/debootstrap.log" 2>&1 ||
  { tail -n 20 "$BUILD_DIR/docker/debootstrap.log" >&2; exit 1; }

# apt as on the host: bookworm, bookworm-updates and bookworm-security.
rm -f "$rootfs/etc/apt/sources.list"
cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
# Keep images small, as the official slim images do: no docs, man pages or
# translations from later installs, and no .deb files kept after installs.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Acquire::GzipIndexes "true";
EOF
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* "$rootfs"/tmp/*
: >"$rootfs/etc/resolv.conf" # docker mounts its own; never ship the host's
: >"$rootfs/etc/hostname"

tar --numeric-owner --xattrs -C "$rootfs" -c . |
  "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' - "$IMAGE" >/dev/null

# Containers must actually run here (storage driver, cgroups, host network).
"$DOCKER" run --rm --network host "$IMAGE" true
size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
echo "make-base: $IMAGE imported, $((size / 1048576)) MiB, $((SECONDS - start)) s"
