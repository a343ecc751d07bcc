#!/bin/bash
# make distill-default: does distilling the teacher (scenes-cgrseg-t, a
# 256x256 input) into the shipped default (scenes-sgcpnet, 512x512) beat the
# default? Both arms fine-tune the shipped weights on one short schedule,
# 300 steps of 8 whole 512x512 inputs with the last phase's augmentation
# (make train-default, MODELS.md) at a quarter of its learning rate, on
# scenes no phase trained on:
#   control  cross-entropy only: what the fine-tuning alone does
#   kl       + KL on the teacher's logits (weight 1, T 1); the teacher sees
#            each input at 256x256 (segtrain's distillation across sizes)
# Both share seed, samples and augmentation. Each arm, and the shipped
# weights, are scored as the two scene gates score them: held-out scenes
# 0..199, clean and with noise over the objects. Logs, weights and scores in
# runs/distill-default/. Usage: distill-default.sh [build dir] [arm ...]
set -euo pipefail
build_dir=${1:-build}
shift $(( $# < 1 ? $# : 1 ))
arms=("$@")
[ ${#arms[@]} -gt 0 ] || arms=(control kl)
segtrain="$build_dir/train/segtrain"
model=model_repository/scenes-sgcpnet
mkdir -p runs/distill-default

source "$(dirname "$0")/training-phase.sh"
score() {  # weights, output prefix
  "$segtrain" --model_dir $model --evaluate_only --weights "$1" \
    --eval_first 0 --eval_images 200 --threads 1 > "$2.scores.txt"
  "$segtrain" --model_dir $model --evaluate_only --weights "$1" \
    --eval_first 0 --eval_images 200 --eval_noise_over_objects \
    --threads 1 > "$2.noisy-scores.txt"
  grep -H mIoU "$2.scores.txt" "$2.noisy-scores.txt"
}
arm() {  # name, extra flags
  local name=$1
  shift
  run_phase "distill-default/$name" "$model/1/model.pt" --model_dir $model \
    --steps 300 --warmup_steps 30 --lr 2.5e-4 --crop 512 --batch_size 8 \
    --threads 1 --seed 8 --scene_offset 512000 --photometric \
    --noisy_scenes 0.5 --min_scale 0.75 --max_scale 1.25 \
    --letterbox_share 0.25 "$@"
  score "runs/distill-default/$name/final.pt" "runs/distill-default/$name"
}
for name in "${arms[@]}"; do
  case $name in
    shipped) score "$model/1/model.pt" runs/distill-default/shipped ;;
    control) arm control ;;
    kl) arm kl --teacher model_repository/scenes-cgrseg-t --kl_weight 1 ;;
    *) echo "unknown arm '$name'; allowed: shipped, control, kl" >&2
       exit 2 ;;
  esac
done
