#!/usr/bin/env bash
# Builds segserve with AddressSanitizer and UndefinedBehaviorSanitizer in
# its own folder and runs the test suite under them: the unit, integration,
# end-to-end, interop and training tests. Left out: the deployment tests
# (containers, Prometheus, DNS), the benchmarks and the reliability tests,
# which measure time and memory that the sanitizers change, and the two
# accuracy gates of the shipped models (200 and 50 scenes through the
# server: about 4 minutes here for code the end-to-end tests also run), and
# the Python SDK's and the playground's tests, which check Python and
# browser code over server paths that e2e.segserve_segclient, e2e.oip and
# e2e.rest already run under the sanitizers.
#   scripts/sanitize.sh            (SANITIZE_BUILD_DIR=build-asan, JOBS=2)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${SANITIZE_BUILD_DIR:-build-asan}"
if [[ ! -f "$build/build.ninja" ]]; then
  # -O1: what the sanitizers' authors recommend, and a build about half as
  # long as -O2 on two cores.
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG" \
    -DSEGSERVE_SANITIZE=address,undefined
fi
cmake --build "$build" -j "${JOBS:-2}"
# LibTorch and OpenBLAS are not instrumented: their allocations are not
# tracked, and leak checking at exit would report their caches.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
ctest --test-dir "$build" --output-on-failure -j "${JOBS:-2}" \
  -E '^(deploy|bench|reliability)\.|^train\.(scene_model_gate|mask_geometry)$|^e2e\.(python_sdk|playground)$'
