#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (PyTorch, CUDA, a compiler,
# CMake and ninja there; nothing else): builds segserve with the GPU build
# kit against PyTorch's LibTorch, runs the C++ tests (the CUDA ones
# included), then the GPU benchmark. Writes gpu-run.log and gpu-run.json to
# OUT (default $OUT, else build-gpu-run/).
#   make gpu-kit      (here: build-gpu-kit/kit.tar.xz, about 13 MiB)
#   then, through the device tool, carrying build-gpu-kit/kit.tar.xz:
#   bash scripts/gpu-kit/device-run.sh [--skip-tests] [--skip-bench]
# Each stage has a time limit so that a stuck one leaves time for the rest;
# a failed stage is recorded and the next one still runs.
# A dry run here, on the CPU, with a build that exists:
#   DEVICE_RUN_BUILD=build DEVICE_RUN_KIND=CPU DEVICE_RUN_SECONDS=2 \
#     bash scripts/gpu-kit/device-run.sh
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-$root/build-gpu-run}
skip_tests=0 skip_bench=0
for arg in "$@"; do
  case "$arg" in
    --skip-tests) skip_tests=1 ;;
    --skip-bench) skip_bench=1 ;;
    *) echo "device-run: unknown argument $arg" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
log=$out/gpu-run.log
results=$out/results.jsonl
: > "$results"
exec > >(tee -a "$log") 2>&1
cd "$root" || exit 1
work=$root/build-gpu-run/work
mkdir -p "$work"
jobs=$(nproc)

record() {  # record NAME JSON: one line of gpu-run.json's "stages".
  printf '{"stage": "%s", "result": %s}\n' "$1" "$2" >> "$results"
}
stage() {  # stage NAME SECONDS COMMAND...: runs it, records its exit status.
  local name=$1 limit=$2 start=$SECONDS rc=0
  shift 2
  echo "=== $name (limit ${limit} s)"
  timeout "$limit" "$@" || rc=$?
  echo "=== $name: exit $rc in $((SECONDS - start)) s"
  record "$name" "{\"exit\": $rc, \"seconds\": $((SECONDS - start))}"
  return $rc
}

echo "=== the machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
ldd --version | head -1; g++ --version | head -1; cmake --version | head -1; nproc
python3 - <<'EOF' || true
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "cxx11 abi", torch._C._GLIBCXX_USE_CXX11_ABI,
      "devices", torch.cuda.device_count())
EOF
torch_cmake=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' || true)

kit=$work/kit
if [[ -z ${DEVICE_RUN_BUILD:-} && ! -f $kit/env.sh ]]; then
  mkdir -p "$kit" && tar -xJf "$root/build-gpu-kit/kit.tar.xz" -C "$kit"
fi
kind=${DEVICE_RUN_KIND:-GPU}
seconds=${DEVICE_RUN_SECONDS:-8}
if [[ -n ${DEVICE_RUN_BUILD:-} ]]; then
  build=$(cd "$DEVICE_RUN_BUILD" && pwd)
else
  build=$root/build-gpu
  tests_regex=""
  ((skip_tests)) && tests_regex='^$'
  stage build-and-test 480 bash scripts/gpu-kit/build-and-test.sh --kit "$kit" \
    --torch "$torch_cmake" --build "$build" --jobs "$jobs" --tests "$tests_regex"
fi
[[ -x $build/server/segserve ]] || echo "device-run: no server was built"

# The GPU repository: each shipped model on a GPU instance, in FP32 and FP16,
# batching off (max_batch_size 1) and SGCPNet at 768x1536.
# The served ones in a repository of their own, so that the server loads
# only what segload measures.
variant() {  # variant FOLDER MODEL NAME SED-EXPRESSIONS...
  local folder=$work/$1 model=$2 name=$3
  shift 3
  rm -rf "${folder:?}/$name"
  mkdir -p "$folder/$name"
  cp -r "model_repository/$model/1" "$folder/$name/"
  sed -e "s/^name: .*/name: \"$name\"/" -e "s/kind: AUTO/kind: $kind/" "$@" \
    "model_repository/$model/config.pbtxt" > "$folder/$name/config.pbtxt"
}
if ((!skip_bench)) && [[ -x $build/server/segserve ]]; then
  for folder in inprocess served; do
    variant $folder scenes-sgcpnet sgcpnet-fp32
    variant $folder scenes-cgrseg-t cgrseg-t-fp32
  done
  variant inprocess scenes-sgcpnet sgcpnet-fp16 -e 's/precision: FP32/precision: FP16/'
  variant inprocess scenes-sgcpnet sgcpnet-768x1536 -e 's/height: 512/height: 768/' \
    -e 's/width: 512/width: 1536/'
  variant inprocess scenes-cgrseg-t cgrseg-t-fp16 -e 's/precision: FP32/precision: FP16/'
  variant served scenes-sgcpnet sgcpnet-nobatch -e 's/max_batch_size: .*/max_batch_size: 1/' \
    -e '/preferred_batch_size/d'

  for name in sgcpnet-fp32 sgcpnet-fp16 sgcpnet-768x1536 cgrseg-t-fp32 cgrseg-t-fp16; do
    stage "inprocess-$name" 90 bash -c '"$0" --model_dir="$1" --min_seconds=1 > "$2"' \
      "$build/bench/inprocess_bench" "$work/inprocess/$name" "$work/inprocess-$name.json" &&
      record "inprocess-$name-figures" "$(cat "$work/inprocess-$name.json")"
  done

  "$build/server/segserve" --model_repository="$work/served" --host=127.0.0.1 \
    --grpc_port=50151 --http_port=-1 --metrics_port=-1 \
    --default_model=sgcpnet-fp32 > "$out/segserve.log" 2>&1 &
  server=$!
  ready=0
  for _ in $(seq 1 180); do
    if "$build/tools/segclient" --target=127.0.0.1:50151 --health \
        --health_service=readiness >/dev/null 2>&1; then
      ready=1
      break
    fi
    sleep 1
  done
  record server-ready "$ready"
  nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader |
    tee "$work/gpu-memory.txt"
  record gpu-memory "\"$(tr '\n' ';' < "$work/gpu-memory.txt")\""
  for name in sgcpnet-fp32 sgcpnet-nobatch cgrseg-t-fp32; do
    levels=1,8,32,64
    [[ $name == sgcpnet-nobatch ]] && levels=32
    stage "served-$name" 150 "$build/tools/segload/segload" \
      --target=127.0.0.1:50151 --model="$name" --raw --sizes=512x512 \
      --mask_encoding=rle --concurrency="$levels" --duration_s="$seconds" \
      --warmup_requests=50 --json="$work/served-$name.json" &&
      record "served-$name-figures" "$(cat "$work/served-$name.json")"
  done
  kill "$server"; wait "$server"
fi

python3 - "$results" "$out/gpu-run.json" <<'EOF'
import json, sys
stages = [json.loads(line) for line in open(sys.argv[1])]
json.dump({"stages": stages}, open(sys.argv[2], "w"), indent=1)
print("device-run: wrote", sys.argv[2], "with", len(stages), "records")
EOF
