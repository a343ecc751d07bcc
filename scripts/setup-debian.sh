#!/usr/bin/env bash
# Installs every build, test and interop dependency of segserve from Debian 12 packages.
# Idempotent: when everything is already installed it only checks and returns.
#   setup-debian.sh               everything: build, tests, benchmarks, deployment
#   setup-debian.sh --build-only  only what building the binaries needs (the
#                                 container image's builder stage)
set -euo pipefail

BUILD_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libopencv-dev zlib1g-dev libabsl-dev prometheus-cpp-dev
  libevent-dev libssl-dev rapidjson-dev
)
TEST_PACKAGES=(
  git libgtest-dev libgmock-dev
  python3-torch python3-grpcio python3-numpy python3-protobuf python3-yaml
  python3-h2
  # The Python SDK (client/python) is built with setuptools at test time.
  python3-setuptools python3-wheel
  # The playground's browser test: headless Chromium driven by Selenium.
  chromium chromium-driver python3-selenium
  prometheus curl
  # Deployment: container engine, offline base image, manifests, replicas.
  # kubernetes-client (Debian's kubectl 1.20) is handled below.
  docker.io debootstrap dnsmasq
  # Fuzzing (scripts/fuzz.sh): clang's libFuzzer and sanitizers.
  clang-14 libclang-rt-14-dev
)

PACKAGES=("${BUILD_PACKAGES[@]}")
case "${1:-}" in
  --build-only) ;;
  "") PACKAGES+=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

# Debian's kubectl, which the manifest tests render with. When another
# package already owns /usr/bin/kubectl (a newer kubectl from elsewhere), its
# files are unpacked under $DEBIAN_KUBECTL_ROOT instead, leaving that one alone.
DEBIAN_KUBECTL_ROOT=/opt/segserve/kubernetes-client
want_kubectl=0
if [[ "${1:-}" != --build-only ]] &&
  ! dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null | grep -q "ok installed" &&
  [[ ! -x $DEBIAN_KUBECTL_ROOT/usr/bin/kubectl ]]; then
  want_kubectl=1
fi

# The manifest test's schema validator (tests/deploy/manifests): npm packages
# pinned by its committed package-lock.json. Skipped when node_modules was
# installed from this very lock file.
install_node_modules() {
  [[ "${1:-}" == --build-only ]] && return 0
  local dir
  dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/deploy/manifests"
  [[ -f $dir/package-lock.json ]] || return 0
  local stamp=$dir/node_modules/.segserve-lock.sha256
  local want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then return 0; fi
  echo "setup-debian: npm ci in $dir"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$want" >"$stamp"
}

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$pkg")
  fi
done
# npm for install_node_modules; Debian's only where no node/npm is there yet.
if [[ "${1:-}" != --build-only ]] && ! command -v npm >/dev/null; then
  missing+=(npm)
fi

if ((${#missing[@]} == 0 && want_kubectl == 0)); then
  echo "setup-debian: all ${#PACKAGES[@]} packages present"
  install_node_modules "${1:-}"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

echo "setup-debian: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if ((${#missing[@]} > 0)); then
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ((want_kubectl)); then
  owner=$(dpkg-query -S /usr/bin/kubectl 2>/dev/null | cut -d: -f1 || true)
  if [[ -z $owner ]]; then
    $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
  else
    echo "setup-debian: /usr/bin/kubectl belongs to '$owner'; unpacking Debian's" \
      "kubernetes-client under $DEBIAN_KUBECTL_ROOT"
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -qq kubernetes-client)
    $SUDO mkdir -p "$DEBIAN_KUBECTL_ROOT"
    $SUDO dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$DEBIAN_KUBECTL_ROOT"
    rm -rf "$tmp"
  fi
fi
install_node_modules "${1:-}"
echo "setup-debian: done"
