#!/bin/bash
# make train-teacher: trains the distillation teacher, scenes-cgrseg-t
# (CGRSeg-T at a 256x256 input, model_repository/scenes-cgrseg-t), from scratch
# with fixed seeds: the recipe of MODELS.md. It trains on whole 256x256
# inputs (the scenes at half the default's scale): from scratch, CGRSeg-T
# trained on smaller crops fails at the full input. Each phase trains on
# new scenes and starts from the last one's weights. Checkpoints
# and logs go to runs/ (tail -f runs/*.log); run again, it resumes where it
# stopped (scripts/training-phase.sh). The result is written, as
# float16, to model_repository/scenes-cgrseg-t/1/model.pt,
# and scored on the held-out scenes 0..199.
set -euo pipefail
build_dir=${1:-build}
segtrain="$build_dir/train/segtrain"
model=model_repository/scenes-cgrseg-t
mkdir -p runs "$model/1"
started=$(date +%s)

source "$(dirname "$0")/training-phase.sh"
phase() {  # name, init weights ('' for none), seed, scene offset, lr
  local name=$1 init=$2 seed=$3 offset=$4 lr=$5
  run_phase "$name" "$init" --model_dir $model --steps 2000 \
    --warmup_steps 200 --lr "$lr" --crop 256 --batch_size 8 --threads 1 \
    --seed "$seed" --scene_offset "$offset"
}
phase teacher1 "" 10 0 2e-3
phase teacher2 runs/teacher1/final.pt 11 16000 2e-3
phase teacher3 runs/teacher2/final.pt 12 32000 1e-3
"$build_dir/model/segtool" half --weights runs/teacher3/final.pt \
  --output $model/1/model.pt
echo "trained in $(( ($(date +%s) - started) / 60 )) min"
"$segtrain" --model_dir $model --evaluate_only --eval_first 0 \
  --eval_images 200
