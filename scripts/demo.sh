#!/bin/bash
# make demo: starts segserve on model_repository/, segments synthetic scene
# SEED through segdemo (input, mask and overlay PNGs in demo/, per-class IoU
# against the scene's exact labels), then stops the server.
set -euo pipefail
build_dir=${1:-build}
seed=${2:-3}
log=$(mktemp)
"$build_dir/server/segserve" --model_repository=model_repository \
  --default_model=scenes-sgcpnet \
  --grpc_port=0 --http_port=-1 --metrics_port=0 --host=127.0.0.1 2>"$log" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$log"' EXIT
port=""
for _ in $(seq 1 600); do
  port=$(sed -n 's/.*ready grpc_port=\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] && break
  kill -0 $server 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.2
done
[ -n "$port" ] || { echo "segserve did not become ready"; cat "$log"; exit 1; }
"$build_dir/tools/segdemo" --target=127.0.0.1:$port --seed="$seed" \
  --out_dir=demo
