#!/bin/bash
# make ssa-ablation: does the SSA classifier, trained with its paper's
# losses, beat DPG? CGRSeg-T at 256x256, both heads on one fixed short
# schedule: 1000 steps of 8 whole 256x256 inputs (8,000 images), the
# backbone started from the shipped teacher's (as the paper starts from a
# pretrained one; --init_backbone), each head fresh; two seeds per arm.
# Each arm is scored on the held-out scenes 0..199:
#   dpg-seed0, dpg-seed1  model_repository/scenes-cgrseg-t's config (DPG)
#   ssa-seed0, ssa-seed1  train/configs/scenes-cgrseg-t-ssa (SSA, its losses)
#   ssa-ce-seed0          the SSA head on cross-entropy alone
#                         (--ssa_losses=false): the head without its losses
# Arms of one seed share the head's seed, sample order and augmentation.
# An arm takes 25 to 28 minutes here (one thread, beside another arm).
# Every arm checkpoints each 200 steps and resumes when run again; logs and
# weights in runs/ssa-ablation/, scores in runs/ssa-ablation/ARM.scores.txt.
# Usage: ssa-ablation.sh [build dir] [arm ...]
set -euo pipefail
build_dir=${1:-build}
shift $(( $# < 1 ? $# : 1 ))
arms=("$@")
[ ${#arms[@]} -gt 0 ] || arms=(dpg-seed0 ssa-seed0 dpg-seed1 ssa-seed1 ssa-ce-seed0)
segtrain="$build_dir/train/segtrain"
backbone=model_repository/scenes-cgrseg-t/1/model.pt
mkdir -p runs/ssa-ablation

source "$(dirname "$0")/training-phase.sh"
arm() {  # name, model dir, seed, extra flags
  local name=$1 model_dir=$2 seed=$3
  shift 3
  local started
  started=$(date +%s)
  run_phase "ssa-ablation/$name" "" --model_dir "$model_dir" \
    --init_backbone "$backbone" --steps 1000 --warmup_steps 100 --lr 2e-3 \
    --crop 256 --batch_size 8 --threads 1 --seed "$seed" --scene_offset 0 \
    "$@"
  echo "arm $name: $(( ($(date +%s) - started) / 60 )) min this run"
  "$segtrain" --model_dir "$model_dir" --evaluate_only \
    --weights "runs/ssa-ablation/$name/final.pt" --eval_first 0 \
    --eval_images 200 --threads 1 | tee "runs/ssa-ablation/$name.scores.txt"
}
for name in "${arms[@]}"; do
  case $name in
    dpg-seed*) arm "$name" model_repository/scenes-cgrseg-t "${name#dpg-seed}" ;;
    ssa-seed*) arm "$name" train/configs/scenes-cgrseg-t-ssa "${name#ssa-seed}" ;;
    ssa-ce-seed*) arm "$name" train/configs/scenes-cgrseg-t-ssa \
                    "${name#ssa-ce-seed}" --ssa_losses=false ;;
    *) echo "unknown arm '$name'; allowed: dpg-seedN, ssa-seedN, ssa-ce-seedN" >&2
       exit 2 ;;
  esac
done
