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
grep -E '^(absl|gRPC|OpenCV|prometheus-cpp|GTest|Torch)_DIR|^Protobuf_PROTOC_EXECUTABLE|^Protobuf_INCLUDE_DIR|^PKG_CONFIG_EXECUTABLE' \
  "$build/CMakeCache.txt"
start=$SECONDS
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" ${targets:+--target $targets}
echo "build-and-test: built in $((SECONDS - start)) s"
# The binaries load the kit's libraries, not the system's.
for binary in "$build/server/segserve" "$build/tools/segclient"; do
  [[ -x $binary ]] || continue
  outside=$(ldd "$binary" | grep -E 'grpc|protobuf|absl|opencv|prometheus|event|re2|cares' |
    grep -v "$kit/" || true)
  if [[ -n $outside ]]; then
    echo "build-and-test: $binary loads these from outside the kit:" >&2
    echo "$outside" >&2
    exit 1
  fi
done
start=$SECONDS
python_driven='^(e2e|interop|deploy|reliability|bench|train)\.|^tools\.end_to_end$'
ctest --test-dir "$build" --output-on-failure -j "$jobs" \
  -E "$python_driven" ${tests:+-R "$tests"}
echo "build-and-test: tests passed in $((SECONDS - start)) s"
