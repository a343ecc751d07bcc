#!/usr/bin/env bash
# Builds segserve against an unpacked GPU build kit and an installed LibTorch
# (PyTorch's, or any other not installed system-wide), then runs its tests.
# Used on the GPU machine (device-run.sh) and in the clean root that proves
# the kit (test-kit.sh).
#   scripts/gpu-kit/build-and-test.sh --kit DIR --torch PREFIX
#       [--build DIR] [--jobs N] [--targets "t1 t2"] [--tests REGEX]
# --torch: a CMake prefix holding TorchConfig.cmake (PyTorch's
#   torch.utils.cmake_prefix_path). --targets: build only these (default
#   all). --tests: run only the ctest tests matching REGEX (default all but
#   those below).
# Left out always: the tests driven by /usr/bin/python3 with Debian's Python
# packages, Chromium, Prometheus, kubectl or Docker (e2e, interop, deploy,
# reliability, bench, train, tools.end_to_end); the server binaries they
# drive are checked by the caller instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kit="" torch="" build="$root/build-gpu" jobs=$(nproc) targets="" tests=""
while (($#)); do
  case "$1" in
    --kit) kit=$(cd "$2" && pwd) ;;
    --torch) torch=$2 ;;
    --build) build=$(realpath -m "$2") ;;
    --jobs) jobs=$2 ;;
    --targets) targets=$2 ;;
    --tests) tests=$2 ;;
    *) echo "build-and-test: unknown argument $1" >&2; exit 2 ;;
  esac
  shift 2
done
[[ -n $kit && -n $torch ]] || { echo "usage: $0 --kit DIR --torch PREFIX [...]" >&2; exit 2; }

bash "$kit/prepare.sh"
# shellcheck source=/dev/null
source "$kit/env.sh" "$torch"
start=$SECONDS
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DProtobuf_PROTOC_EXECUTABLE="$kit/usr/bin/protoc"
echo "build-and-test: configured in $((SECONDS - start)) s"
# Where CMake found each dependency: the kit and the given LibTorch only.
found=$(grep -E '^((absl|gRPC|OpenCV|prometheus-cpp|GTest|Torch)_DIR|Protobuf_PROTOC_EXECUTABLE|Protobuf_INCLUDE_DIR|PKG_CONFIG_EXECUTABLE):' \
  "$build/CMakeCache.txt" | sed 's/:[A-Z]*=/ /')
echo "$found"
while read -r name path; do
  case "$path" in
    "$kit"/* | "$torch"*) ;;
    *) echo "build-and-test: $name is $path, outside the kit and LibTorch" >&2; exit 1 ;;
  esac
done <<< "$found"
[[ $(wc -l <<< "$found") -eq 9 ]] || { echo "build-and-test: a dependency was not found" >&2; exit 1; }
start=$SECONDS
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" ${targets:+--target $targets}
echo "build-and-test: built in $((SECONDS - start)) s"
# The binaries load every library the kit has from the kit, not from the
# system (others, such as LibTorch's own dependencies, may come from anywhere).
for binary in "$build/server/segserve" "$build/tools/segclient"; do
  [[ -x $binary ]] || continue
  outside=$(ldd "$binary" | awk '$2 == "=>" {print $1, $3}' |
    while read -r name path; do
      [[ -e $SEGSERVE_KIT_LIB/$name && $path != "$kit"/* ]] && echo "$name => $path"
    done || true)
  if [[ -n $outside ]]; then
    echo "build-and-test: $binary loads these from outside the kit:" >&2
    echo "$outside" >&2
    exit 1
  fi
  echo "build-and-test: $binary loads $(ldd "$binary" | grep -c "$kit/") libraries from the kit"
done
start=$SECONDS
python_driven='^(e2e|interop|deploy|reliability|bench|train)\.|^tools\.end_to_end$'
ctest --test-dir "$build" --output-on-failure -j "$jobs" \
  -E "$python_driven" ${tests:+-R "$tests"}
echo "build-and-test: tests passed in $((SECONDS - start)) s"
