#!/bin/bash
# make train-default: retrains the shipped default model, scenes-sgcpnet,
# from scratch with fixed seeds: the recipe of MODELS.md. Each phase trains
# on new scenes and starts from the last one's weights. Checkpoints and logs
# go to runs/ (tail -f runs/*.log); the result replaces
# model_repository/scenes-sgcpnet/1/model.pt and is scored on the held-out
# scenes 0..199. About 130 minutes on 2 cores (4 phases of 32).
set -euo pipefail
build_dir=${1:-build}
segtrain="$build_dir/train/segtrain"
model=model_repository/scenes-sgcpnet
mkdir -p runs
started=$(date +%s)

phase() {  # name, init weights ('' for none), seed, scene offset, lr
  local name=$1 init=$2 seed=$3 offset=$4 lr=$5
  echo "phase $name: log in runs/$name.log"
  "$segtrain" --model_dir $model ${init:+--init "$init"} --steps 4000 \
    --warmup_steps 100 --lr "$lr" --crop 256 --batch_size 16 --threads 1 \
    --seed "$seed" --scene_offset "$offset" --checkpoint_dir "runs/$name" \
    --checkpoint_every 200 --output "runs/$name/final.pt" --eval_images 0 \
    > "runs/$name.log" 2>&1
}
phase student1 "" 0 0 4e-3
phase student2 runs/student1/final.pt 1 64000 2e-3
phase student3 runs/student2/final.pt 2 128000 2e-3
phase student4 runs/student3/final.pt 3 192000 2e-3
cp runs/student4/final.pt $model/1/model.pt
echo "trained in $(( ($(date +%s) - started) / 60 )) min"
"$segtrain" --model_dir $model --evaluate_only --eval_first 0 \
  --eval_images 200
