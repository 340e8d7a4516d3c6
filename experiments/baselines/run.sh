#!/usr/bin/env bash
# Trains every first baseline on both offline datasets (3 seeds each, in one program per config)
# and writes the tables of experiments/baselines/README.md to experiments/baselines/results.md.
#   bash experiments/baselines/run.sh [RUNS_DIR]      (default runs/baselines)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/baselines}
mmjax=${MMJAX:-.venv/bin/mmjax}
methods="lower_bound upper_bound concat sum late augmentation multi_task"

for m in $methods; do
  "$mmjax" train --config "configs/avmnist_offline/$m.py" --workdir "$runs/avmnist/$m" >/dev/null
done
"$mmjax" train --config configs/avmnist_offline/lower_bound.py --workdir "$runs/avmnist/lower_bound_audio" \
  --set method.modality=audio >/dev/null
for m in $methods; do
  "$mmjax" train --config "configs/mfeat/$m.py" --workdir "$runs/mfeat/$m" >/dev/null
done
# Training data with missing modalities: 30% of the images and 30% of the audio missing (exact
# counts, no sample missing both). The upper bound then learns from the complete 40% only.
for m in $methods; do
  "$mmjax" train --config "configs/avmnist_offline/$m.py" --workdir "$runs/avmnist_missing30/$m" \
    --set missing.protocol=independent --set missing.rates=0.3,0.3 >/dev/null
done
.venv/bin/python experiments/baselines/make_table.py "$runs" > experiments/baselines/results.md
cat experiments/baselines/results.md
