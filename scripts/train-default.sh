#!/bin/bash
# make train-default: retrains the shipped default model, scenes-sgcpnet,
# from scratch with fixed seeds: the recipe of MODELS.md. Each phase trains
# on new scenes and starts from the last one's weights: 4 phases of plain
# scenes, then 4 of fine-tuning with noise, blur, colour jitter, JPEG and
# noisy scenes, the last also with letterboxed samples. Checkpoints and
# logs go to runs/ (tail -f runs/*.log); run again, it resumes where it
# stopped (scripts/training-phase.sh). The result replaces
# model_repository/scenes-sgcpnet/1/model.pt and is scored on the held-out
# scenes 0..199. About 4 to 5 hours on 2 cores (8 phases of
# 30 to 43 minutes).
set -euo pipefail
build_dir=${1:-build}
segtrain="$build_dir/train/segtrain"
model=model_repository/scenes-sgcpnet
mkdir -p runs
started=$(date +%s)

source "$(dirname "$0")/training-phase.sh"
phase() {  # name, init weights ('' for none), seed, scene offset, lr, flags
  local name=$1 init=$2 seed=$3 offset=$4 lr=$5
  shift 5
  run_phase "$name" "$init" --model_dir $model --steps 4000 \
    --warmup_steps 100 --lr "$lr" --crop 256 --batch_size 16 --threads 1 \
    --seed "$seed" --scene_offset "$offset" "$@"
}
phase student1 "" 0 0 4e-3
phase student2 runs/student1/final.pt 1 64000 2e-3
phase student3 runs/student2/final.pt 2 128000 2e-3
phase student4 runs/student3/final.pt 3 192000 2e-3
tuning=(--photometric --noisy_scenes 0.5 --min_scale 0.75 --max_scale 1.25)
phase tuned1 runs/student4/final.pt 4 256000 2e-3 "${tuning[@]}"
phase tuned2 runs/tuned1/final.pt 5 320000 1e-3 "${tuning[@]}"
phase tuned3 runs/tuned2/final.pt 6 384000 1e-3 "${tuning[@]}"
phase tuned4 runs/tuned3/final.pt 7 448000 1e-3 "${tuning[@]}" \
  --letterbox_share 0.25
cp runs/tuned4/final.pt $model/1/model.pt
echo "trained in $(( ($(date +%s) - started) / 60 )) min"
"$segtrain" --model_dir $model --evaluate_only --eval_first 0 \
  --eval_images 200
