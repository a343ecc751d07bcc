#!/usr/bin/env bash
# Runs segclient and segload against fake_segserve (no real server needed).
# Usage: tools_test.sh FAKE_SEGSERVE SEGCLIENT SEGLOAD WORK_DIR
set -euo pipefail
fake=$1 segclient=$2 segload=$3 work=$4

rm -rf "$work"
mkdir -p "$work"
"$fake" --write_image "$work/in.jpg" --width 97 --height 61

# Two stand-in servers: segload spreads over both with --target a,b.
fake_pids=()
trap 'kill "${fake_pids[@]}" 2>/dev/null || true' EXIT
start_fake() {  # start_fake PORT_FILE
  "$fake" --port_file "$1" --max_seconds 120 &
  fake_pids+=($!)
}
wait_port() {  # wait_port PORT_FILE: prints 127.0.0.1:PORT
  for _ in $(seq 200); do
    [[ -s "$1" ]] && break
    sleep 0.05
  done
  [[ -s "$1" ]] || { echo "FAIL: fake_segserve did not start" >&2; exit 1; }
  echo "127.0.0.1:$(cat "$1")"
}
start_fake "$work/port"
start_fake "$work/port2"
target=$(wait_port "$work/port")
target2=$(wait_port "$work/port2")

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

# segload, closed loop: two steps of 0.2 s windows, stable after three
# windows with a loose threshold, with JSON, CSV and SVG reports.
"$segload" --target "$target" --concurrency 1,3 --window_s 0.2 \
  --max_windows 5 --stability_percent 1000 --warmup_requests 2 \
  --sizes 64x48 --json "$work/load.json" --csv "$work/load.csv" \
  --plot "$work/load.svg" >"$work/segload.txt"
expect "$work/segload.txt" "^ +3 +[0-9.]+ "
expect "$work/load.csv" "^concurrency,rate,throughput_rps,"
python3 - "$work/load.json" "$work/load.csv" "$work/load.svg" <<'PY'
import csv, json, sys
import xml.etree.ElementTree as ET
report = json.load(open(sys.argv[1]))
steps = report["steps"]
assert [s["concurrency"] for s in steps] == [1, 3], steps
for s in steps:
    assert s["rate"] is None and s["sent"] is None and s["late_sends"] is None
    assert s["windows"] == 3 and s["stable"] is True, s
    assert s["throughput_rps"] > 0 and s["ok"] > 0 and s["failed"] == 0, s
    l = s["latency_us"]
    assert 0 < l["p50"] <= l["p90"] <= l["p95"] <= l["p99"] <= l["max"], l
    c = s["client_us"]
    assert c["wait"] > 0 and c["deserialize"] > 0 and c["serialize"] > 0, c
    assert c["wait"] + c["deserialize"] <= l["max"] + 1, (c, l)
    assert s["errors"] == {}, s
    assert s["server_us"] == {"queue": 10, "preprocess": 20, "inference": 30,
                              "postprocess": 40}, s
    assert s["mean_batch_size"] == 1
    assert s["targets"] == [{"target": report["config"]["targets"][0],
                             "ok": s["ok"], "failed": 0}], s
config = report["config"]
assert config["sizes"] == "64x48" and config["raw"] is False, config
assert config["mode"] == "closed_loop" and config["inputs"] == 1, config
rows = list(csv.DictReader(open(sys.argv[2])))
assert [r["concurrency"] for r in rows] == ["1", "3"], rows
assert [int(r["ok"]) for r in rows] == [s["ok"] for s in steps], rows
assert all(r["rate"] == "" and r["stable"] == "true" for r in rows), rows
svg = ET.parse(sys.argv[3]).getroot()
ns = "{http://www.w3.org/2000/svg}"
titles = [c.find(ns + "title").text for c in svg.iter(ns + "circle")
          if c.find(ns + "title") is not None]
assert len(titles) == 4, titles  # p50 and p99 of each step.
assert any(t.startswith("concurrency 3: ") for t in titles), titles
texts = [t.text for t in svg.iter(ns + "text")]
for label in ("throughput (requests/s)", "latency (ms)", "p50 latency",
              "p99 latency"):
    assert label in texts, (label, texts)
PY

# The window cap: a 0% threshold is never met, so four windows run.
"$segload" --target "$target" --concurrency 2 --window_s 0.1 --max_windows 4 \
  --stability_percent 0 --warmup_requests 0 --sizes 32x32 \
  --json "$work/cap.json" >"$work/cap.txt"
expect "$work/cap.txt" "^ +2 .*\| +4\* +- \| none"
expect "$work/cap.txt" "not stable within --max_windows"
python3 - "$work/cap.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["steps"][0]
assert s["windows"] == 4 and s["stable"] is False and s["ok"] > 0, s
PY

# Open loop on two targets with two channels each: constant arrivals for a
# fixed time, then Poisson arrivals for a fixed request count.
"$segload" --target "$target,$target2" --channels 2 --rate 200 \
  --duration_s 0.5 --warmup_requests 4 --sizes 48x32,32x16 \
  --json "$work/open.json" --csv "$work/open.csv" >"$work/open.txt"
expect "$work/open.txt" "^ rate/s +req/s"
expect "$work/open.txt" "^ +200 +[0-9.]+ "
"$segload" --target "$target,$target2" --channels 2 --rate 100,300 \
  --arrivals poisson --requests 30 --warmup_requests 6 --sizes 48x32 \
  --mask_encoding raw --json "$work/poisson.json" >"$work/poisson.txt"
python3 - "$work/open.json" "$work/open.csv" "$work/poisson.json" \
  "$target" "$target2" <<'PY'
import csv, json, sys
opened, rows, poisson = (json.load(open(sys.argv[1])),
                         list(csv.DictReader(open(sys.argv[2]))),
                         json.load(open(sys.argv[3])))
targets = sys.argv[4:6]
s = opened["steps"][0]
assert s["concurrency"] is None and s["rate"] == 200, s
assert s["stable"] is None and s["windows"] == 1, s
# About 100 sends in 0.5 s, none waiting for a response.
assert 70 <= s["sent"] <= 130, s
assert 140 <= s["throughput_rps"] <= 260, s
assert isinstance(s["late_sends"], int) and 0 <= s["late_sends"] <= s["sent"]
assert s["errors"] == {}, s
assert [t["target"] for t in s["targets"]] == targets, s
assert all(t["ok"] > 0 for t in s["targets"]), s
assert opened["config"]["mode"] == "open_loop", opened["config"]
assert opened["config"]["arrivals"] == "constant", opened["config"]
assert opened["config"]["channels"] == 2 and opened["config"]["inputs"] == 2
assert rows[0]["concurrency"] == "" and rows[0]["rate"] == "200", rows
assert rows[0]["late_sends"] == str(s["late_sends"]), rows
steps = poisson["steps"]
assert [p["rate"] for p in steps] == [100, 300], steps
for p in steps:
    # Exactly the requested count, alternating between the targets.
    assert p["sent"] == 30 and p["ok"] == 30 and p["failed"] == 0, p
    assert [t["ok"] for t in p["targets"]] == [15, 15], p
    assert p["rate"] / 4 <= p["throughput_rps"] <= p["rate"] * 4, p
assert poisson["config"]["arrivals"] == "poisson", poisson["config"]
PY

# Images from a folder (other files skipped), re-encoded as PNG, and sent
# raw; every mask must decode to its image's size (else DATA_LOSS).
mkdir -p "$work/images"
"$fake" --write_image "$work/images/a.jpg" --width 40 --height 30
"$fake" --write_image "$work/images/b.PNG" --width 50 --height 20
"$fake" --write_image "$work/images/c.bmp" --width 33 --height 17
echo "not an image" >"$work/images/notes.txt"
for send in "--send png --mask_encoding rle" "--raw --mask_encoding raw"; do
  # shellcheck disable=SC2086  # $send holds two flags.
  "$segload" --target "$target" --image_dir "$work/images" $send \
    --concurrency 2 --requests 12 --warmup_requests 0 \
    --json "$work/dir.json" >"$work/dir.txt"
  python3 - "$work/dir.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
s = report["steps"][0]
assert s["ok"] == 12 and s["errors"] == {}, s
assert report["config"]["inputs"] == 3, report["config"]
PY
done

# Every request of a step failing: its error counts, exit status 1.
"$segload" --target "$target" --concurrency 2 --duration_s 0.3 --raw \
  --image "$work/in.jpg" --model missing >"$work/segload_err.txt" 2>&1 \
  && fail "segload succeeded although every request failed"
expect "$work/segload_err.txt" "NOT_FOUND=[0-9]+"
expect "$work/segload_err.txt" \
  "no request of the concurrency 2 step succeeded"
"$segload" --target "$target" --concurrency 1 --rate 5 2>"$work/err.txt" \
  && fail "segload accepted --concurrency with --rate"
expect "$work/err.txt" "INVALID_ARGUMENT: give --concurrency .* or --rate"
"$segload" --target "$target" --image_dir "$work/nope" 2>"$work/err.txt" \
  && fail "segload accepted a missing --image_dir"
expect "$work/err.txt" "NOT_FOUND: cannot read directory"
echo "tools test: ok"
