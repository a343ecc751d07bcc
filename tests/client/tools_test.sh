#!/usr/bin/env bash
# Runs segclient and segload against fake_segserve (no real server needed).
# Usage: tools_test.sh FAKE_SEGSERVE SEGCLIENT SEGLOAD WORK_DIR
set -euo pipefail
fake=$1 segclient=$2 segload=$3 work=$4

rm -rf "$work"
mkdir -p "$work"
"$fake" --write_image "$work/in.jpg" --width 97 --height 61

"$fake" --port_file "$work/port" --max_seconds 120 &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  [[ -s "$work/port" ]] && break
  sleep 0.05
done
[[ -s "$work/port" ]] || { echo "FAIL: fake_segserve did not start"; exit 1; }
target="127.0.0.1:$(cat "$work/port")"

fail() { echo "FAIL: $*"; exit 1; }
expect() {  # expect FILE PATTERN
  grep -qE -- "$2" "$1" || { cat "$1"; fail "no /$2/ in $1"; }
}

for encoding in png raw rle; do
  "$segclient" --image "$work/in.jpg" --mask "$work/mask_$encoding.png" \
    --overlay "$work/overlay.png" --confidence "$work/conf.png" \
    --target "$target" --encoding "$encoding" --request_id "r-$encoding" \
    >"$work/segclient.txt"
  out="$work/segclient.txt"
  expect "$out" "model: fake  version: 1  request_id: r-$encoding"
  expect "$out" "image: .*in.jpg \(97x61\)"
  expect "$out" "classes found: 3"
  expect "$out" "^ +0  sky +2013 +34\.02%"
  expect "$out" "^ +2  car +"
  expect "$out" "server: queue 0.01 ms, preprocess 0.02 ms, inference 0.03 ms, postprocess 0.04 ms, batch size 1"
  expect "$out" "round trip: [0-9.]+ ms"
  [[ "$("$fake" --describe "$work/mask_$encoding.png")" == "97x61 depth=8 channels=1" ]] \
    || fail "mask_$encoding.png is not a 97x61 8-bit gray PNG"
done
cmp "$work/mask_png.png" "$work/mask_rle.png" || fail "masks differ by encoding"
[[ "$("$fake" --describe "$work/overlay.png")" == "97x61 depth=8 channels=3" ]] \
  || fail "overlay.png is not a 97x61 color PNG"
[[ "$("$fake" --describe "$work/conf.png")" == "97x61 depth=8 channels=1" ]] \
  || fail "conf.png is not a 97x61 gray PNG"

# Errors: the gRPC code and message, exit status 1.
if "$segclient" --image "$work/in.jpg" --model missing --target "$target" \
    2>"$work/err.txt"; then
  fail "segclient succeeded for a missing model"
fi
expect "$work/err.txt" "error: NOT_FOUND: model 'missing' not found"
if "$segclient" --image "$work/nope.jpg" --target "$target" 2>"$work/err.txt"; then
  fail "segclient succeeded without an image file"
fi
expect "$work/err.txt" "error: NOT_FOUND: cannot open"

# segload: two short steps, encoded and raw, with a JSON report.
"$segload" --target "$target" --concurrency 1,3 --duration_s 0.5 \
  --warmup_requests 2 --width 64 --height 48 --json "$work/load.json" \
  >"$work/segload.txt"
expect "$work/segload.txt" "^ +3 +[0-9.]+ "
"$segload" --target "$target" --concurrency 2 --duration_s 0.3 --raw \
  --image "$work/in.jpg" --model missing >"$work/segload_err.txt" 2>&1 \
  && fail "segload succeeded although every request failed"
expect "$work/segload_err.txt" "NOT_FOUND=[0-9]+"
python3 - "$work/load.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
steps = report["steps"]
assert [s["concurrency"] for s in steps] == [1, 3], steps
for s in steps:
    assert s["rate"] is None
    assert s["throughput_rps"] > 0 and s["ok"] > 0, s
    l = s["latency_us"]
    assert 0 < l["p50"] <= l["p90"] <= l["p95"] <= l["p99"] <= l["max"], l
    assert s["errors"] == {}, s
    assert s["server_us"] == {"queue": 10, "preprocess": 20, "inference": 30,
                              "postprocess": 40}, s
    assert s["mean_batch_size"] == 1
assert report["config"]["width"] == 64 and report["config"]["raw"] is False
PY
echo "tools test: ok"
