# Sourced by the train-*.sh scripts. run_phase NAME INIT FLAGS... trains one
# phase with $segtrain into runs/NAME (log in runs/NAME.log), starting from
# the weights INIT ('' for none). A phase whose runs/NAME/final.pt exists is
# skipped and one cut short resumes from its last checkpoint, so a recipe
# longer than one sitting is run again until it is done.
run_phase() {
  local name=$1 init=$2
  shift 2
  if [[ -f runs/$name/final.pt ]]; then
    echo "phase $name: done before (runs/$name/final.pt)"
    return
  fi
  local resume=()
  if [[ -f runs/$name/trainer_state.pt ]]; then
    resume=(--resume "runs/$name")
  fi
  echo "phase $name: log in runs/$name.log ${resume[*]}"
  "$segtrain" ${init:+--init "$init"} "${resume[@]}" \
    --checkpoint_dir "runs/$name" --checkpoint_every 200 \
    --output "runs/$name/final.pt" --eval_images 0 "$@" \
    >> "runs/$name.log" 2>&1
}
