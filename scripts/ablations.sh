#!/usr/bin/env bash
# Hawkeye's ablations on the benchmark (docs/training.md): train the full model, the
# paper's four ablations and the model without the kinematic expert with the embedded recipe, then evaluate them with the baseline in one
# table (Table 1 and Table 2 layout), with false alerts per hour on unmodified vtest.
#
#   scripts/ablations.sh [OUT [--set key=value ...]]   OUT defaults to out/ablations; the --set
#                                     words go to every training run (e.g. --set threads=3)
#   JOBS=5 scripts/ablations.sh       train that many at once (a GPU has room for all six)
#   NAMES="no-kinematic no-action" FULL=models/hawkeye scripts/ablations.sh
#                                     train only these, and compare them with a full model already trained
#   PY=python3 scripts/ablations.sh   another Python (default .venv/bin/python)
# A model already trained in OUT (its train_report.json exists) is not trained again: rerun the same
# command after an interruption and only what is missing is trained.
set -euo pipefail
out=${1:-out/ablations}
shift || true
py=${PY:-.venv/bin/python}
jobs=${JOBS:-1}
mkdir -p "$out"
declare -A extra=(
  [full]=""
  [no-action]="--set model.experts=[appearance,motion,kinematic,relation]"
  [no-relation]="--set model.experts=[appearance,motion,action,kinematic]"
  [no-kinematic]="--set model.experts=[appearance,motion,action,relation]"
  [no-moe]="--set model.router=mean"
  [no-lbc]="--set model.balance_weight=0"
)
# shellcheck disable=SC2206
names=(${NAMES:-full no-action no-relation no-kinematic no-moe no-lbc})
for name in "${names[@]}"; do
  [ -n "${extra[$name]+x}" ] || { echo "unknown ablation $name (one of: ${!extra[*]})" >&2; exit 2; }
done
for name in "${names[@]}"; do
  if [ -f "$out/$name/train_report.json" ]; then echo "$name already trained in $out/$name"; continue; fi
  echo "training $name (log: $out/$name.log)"
  # shellcheck disable=SC2086  # the --set words split on purpose
  $py -m training.train --config configs/train/embedded.yaml --set "out=$out/$name" ${extra[$name]} "$@" \
      >"$out/$name.log" 2>&1 &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
done
wait
models=()
[ -n "${FULL:-}" ] && models+=(--model "full=$FULL")
for name in "${names[@]}"; do models+=(--model "$name=$out/$name"); done
$py -m training.evaluate --baseline "${models[@]}" --normal-video vtest --out "$out/eval" --plots 4
