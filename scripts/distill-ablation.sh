#!/bin/bash
# make distill-ablation: does distillation help? Trains the ablation's
# student (SGCPNet at 256x256, train/configs/scenes-sgcpnet-256) on one
# fixed short schedule, 2000 steps of 16 whole 256x256 inputs (32,000
# crops; the teacher fails on smaller crops, MODELS.md), once per arm, and
# scores each arm on the held-out scenes 0..199:
#   ce-seed0, ce-seed1  cross-entropy only, two seeds (the spread)
#   kl                  + KL on the teacher's logits
#   drkd                + pixel-wise and class-wise relations + KL
# The arms other than ce-seed1 share seed 0: the same initialisation,
# samples and augmentation, so they differ only in the loss. Logs and
# weights in runs/ablation/, scores in runs/ablation/ARM.scores.txt.
# Usage: distill-ablation.sh [build dir] [teacher model dir] [arm ...]
set -euo pipefail
build_dir=${1:-build}
teacher=${2:-model_repository/scenes-cgrseg-t}
shift $(( $# < 2 ? $# : 2 ))
arms=("$@")
[ ${#arms[@]} -gt 0 ] || arms=(ce-seed0 ce-seed1 kl drkd)
segtrain="$build_dir/train/segtrain"
student=train/configs/scenes-sgcpnet-256
out=runs/ablation
mkdir -p $out

arm() {  # name, seed, extra flags
  local name=$1 seed=$2
  shift 2
  echo "arm $name: log in $out/$name.log"
  local started=$(date +%s)
  "$segtrain" --model_dir $student --steps 2000 --warmup_steps 100 \
    --lr 4e-3 --crop 256 --batch_size 16 --threads 1 --seed "$seed" \
    --scene_offset 0 "$@" --checkpoint_dir "$out/$name" \
    --checkpoint_every 500 --output "$out/$name/final.pt" --eval_images 0 \
    > "$out/$name.log" 2>&1
  echo "arm $name: trained in $(( ($(date +%s) - started) / 60 )) min"
  "$segtrain" --model_dir $student --evaluate_only \
    --weights "$out/$name/final.pt" --eval_first 0 --eval_images 200 \
    --threads 1 | tee "$out/$name.scores.txt"
}
for name in "${arms[@]}"; do
  case $name in
    ce-seed0) arm ce-seed0 0 ;;
    ce-seed1) arm ce-seed1 1 ;;
    kl) arm kl 0 --teacher "$teacher" --kl_weight 1 ;;
    drkd) arm drkd 0 --teacher "$teacher" --pixel_relation_weight 1 \
            --class_relation_weight 1 --kl_weight 1 ;;
    *) echo "unknown arm '$name'; allowed: ce-seed0 ce-seed1 kl drkd" >&2
       exit 2 ;;
  esac
done
