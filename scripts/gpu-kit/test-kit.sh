#!/usr/bin/env bash
# Proves the GPU build kit (make test-gpu-kit): in a clean Debian 12 root in
# the real Docker engine, with a compiler, CMake and ninja but none of
# segserve's -dev packages, unpacks the kit, builds segserve against it and
# a LibTorch that is not installed system-wide (Debian's, unpacked from its
# .debs, standing in for PyTorch's), runs the C++ tests, then serves the
# default model and sends it requests with the built binaries.
#   scripts/gpu-kit/test-kit.sh [--all]
# Default: the server, the tools and the unit tests of the model, core,
# service and API layers (about 25 minutes on 2 cores the first time; ccache
# under build-gpu-kit/ makes reruns quick). --all builds and runs every C++
# test, as the GPU machine does.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build-gpu-kit
DOCKER=/usr/bin/docker
image=segserve-kit-test:bookworm
base=${SEGSERVE_BASE_IMAGE:-segserve-base:bookworm}
all=0
[[ ${1:-} == --all ]] && all=1

[[ -f $out/kit.tar.xz ]] || bash "$root/scripts/gpu-kit/make-kit.sh"
eval "$("$root/docker/start-dockerd.sh")"
"$root/docker/make-base.sh"

# The LibTorch stand-in: Debian's, with the gflags and glog its CMake config
# asks for, unpacked into a folder of its own (mounted at /opt/torch).
torch=$out/torch
if [[ ! -f $torch/usr/lib/x86_64-linux-gnu/cmake/Torch/TorchConfig.cmake ]]; then
  mkdir -p "$out/torch-debs" && rm -rf "$torch"
  (cd "$out/torch-debs" && apt-get download -qq libtorch-dev libtorch1.13 \
    libgflags-dev libgflags2.2 libgoogle-glog-dev libgoogle-glog0v6 libunwind-dev)
  for deb in "$out"/torch-debs/*.deb; do dpkg-deb -x "$deb" "$torch"; done
fi

# The clean root: the base image plus a toolchain and LibTorch's runtime
# libraries (its Depends), then LibTorch itself removed again. No -dev
# package of segserve's dependencies may be there.
if ! "$DOCKER" image inspect "$image" >/dev/null 2>&1; then
  mapfile -t torch_depends < <(apt-cache depends libtorch1.13 |
    awk '$1 == "Depends:" && $2 !~ /^</ {print $2}' | sort -u)
  "$DOCKER" rm -f segserve-kit-setup >/dev/null 2>&1 || true
  "$DOCKER" run --name segserve-kit-setup --network host \
    -v /var/cache/apt/archives:/var/cache/apt/archives "$base" bash -c "
      set -e
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        g++ cmake ninja-build ccache xz-utils ${torch_depends[*]} >/dev/null
      rm -rf /var/lib/apt/lists/*"
  "$DOCKER" commit segserve-kit-setup "$image" >/dev/null
  "$DOCKER" rm segserve-kit-setup >/dev/null
fi

mkdir -p "$out/ccache" "$out/src" "$out/build"
# The source as committed plus uncommitted changes, without build folders;
# tar keeps the files' times, so unchanged files are not rebuilt.
(cd "$root" && git ls-files -co --exclude-standard -z |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$out/src"
tests='^(TorchModel|InferenceCore|DynamicBatcher|ServingApi|InferRequest|JsonUtil|Playground|RestInfer|RestSegment|SegmentRequest|StatusMapping|GrpcIntegration)|^(segclient|segload)\.'
targets="segserve segclient segload torch_model_test inference_core_test dynamic_batcher_test serving_api_test rest_conversions_test grpc_integration_test"
((all)) && tests="" targets=""
"$DOCKER" run --rm --network host \
  -v "$out/src:/src" -v "$out/build:/build" -v "$out/kit.tar.xz:/kit.tar.xz:ro" \
  -v "$torch:/opt/torch:ro" -v "$out/ccache:/ccache" \
  -e CCACHE_DIR=/ccache -e TESTS="$tests" -e TARGETS="$targets" \
  "$image" bash -c '
    set -euo pipefail
    installed=$(dpkg-query -W -f "\${Package}\n" | grep -E \
      "^(libgrpc|libprotobuf-dev|protobuf-compiler|libabsl-dev|libopencv.*-dev|prometheus-cpp-dev|libgtest-dev|libgmock-dev|libevent-dev|rapidjson-dev|libtorch)" || true)
    if [[ -n $installed ]]; then echo "test-kit: not a clean root: $installed" >&2; exit 1; fi
    mkdir -p /kit && tar -xJf /kit.tar.xz -C /kit
    cd /src
    bash scripts/gpu-kit/build-and-test.sh --kit /kit --torch /opt/torch/usr \
      --build /build --jobs 2 --targets "$TARGETS" --tests "$TESTS"
    # The built server answers with the shipped model.
    /build/server/segserve --model_repository=model_repository --host=127.0.0.1 \
      --grpc_port=50151 --http_port=-1 --metrics_port=-1 \
      --default_model=scenes-sgcpnet > /tmp/segserve.log 2>&1 &
    for _ in $(seq 1 120); do
      /build/tools/segclient --target=127.0.0.1:50151 --health >/dev/null 2>&1 && break
      sleep 1
    done
    /build/tools/segload/segload --target=127.0.0.1:50151 --raw --sizes=512x512 \
      --concurrency=2 --requests=16
    kill %1
    echo "test-kit: ok"'
