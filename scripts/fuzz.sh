#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang-14, ASan + UBSan) in their
# own build folder and runs each for SECONDS (JOBS targets at a time, one
# core each), starting from its committed corpus (tests/fuzz/corpus/<target>:
# seeds and regressions) plus what earlier runs found (in the build folder).
# Prints executions and crashes per target; exits 1 when any target crashed,
# leaving the input under $FUZZ_BUILD_DIR/artifacts/.
#   scripts/fuzz.sh [SECONDS]        (default 60; FUZZ_BUILD_DIR=build-fuzz)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
targets=(segment_request_fuzzer infer_request_fuzzer image_header_fuzzer
         mask_codec_fuzzer model_config_fuzzer rest_infer_fuzzer
         pickle_fuzzer)

if [[ ! -f "$build/build.ninja" ]]; then
  CXX=clang++-14 cmake -S . -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEGSERVE_FUZZ=ON
fi
cmake --build "$build" -j "${JOBS:-2}"

# Seeds are committed; make them again only for a target that has none.
for target in "${targets[@]}"; do
  if [[ ! -d "tests/fuzz/corpus/$target" ]]; then
    "$build/tests/fuzz/make_seeds" tests/fuzz/corpus model_repository
    /usr/bin/python3 tests/fuzz/make_pickle_seeds.py \
      tests/fuzz/corpus/pickle_fuzzer
    break
  fi
done

mkdir -p "$build/artifacts"
summary="$build/fuzz-summary.txt"
: > "$summary"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Each target runs single-threaded; JOBS of them run at once, so every
# target still gets SECONDS of one core.
fuzz_one() {
  local target="$1" work="$build/corpus/$1" rc=0 dict=()
  mkdir -p "$work"
  [[ -f "tests/fuzz/$target.dict" ]] && dict=("-dict=tests/fuzz/$target.dict")
  "$build/tests/fuzz/$target" "${dict[@]}" -max_total_time="$seconds" \
    -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$target-" \
    "$work" "tests/fuzz/corpus/$target" > "$build/$target.log" 2>&1 || rc=$?
  echo "$rc" > "$build/$target.rc"
}
for target in "${targets[@]}"; do
  while (( $(jobs -rp | wc -l) >= ${JOBS:-2} )); do wait -n || true; done
  fuzz_one "$target" &
done
wait

failed=0
for target in "${targets[@]}"; do
  log="$build/$target.log"
  rc=$(cat "$build/$target.rc")
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  crashes=$(ls "$build/artifacts" | grep -c "^$target-" || true)
  line="$target: ${execs:-0} executions in ${seconds} s, exit $rc, $crashes crash input(s)"
  echo "$line" | tee -a "$summary"
  if [[ $rc -ne 0 ]]; then
    failed=1
    tail -40 "$log"
  fi
done
exit $failed
