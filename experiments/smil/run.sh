#!/usr/bin/env bash
# Reproduces SMIL's Figure 4 and the Table 3 ablations (100% modality 1 + eta% modality 2) and
# writes experiments/smil/results_<dataset>.md and experiments/smil/figure4_<dataset>.png.
#   bash experiments/smil/run.sh DATASET [PARTS] [RUNS_DIR]
#     DATASET  a 5-seed sweep (one `mmjax sweep` over sweeps/DATASET.txt into runs/smil/DATASET,
#              exported to results/DATASET; PARTS and STEPS do not apply):
#                mfeat: views fou (modality 1) and kar, Figure 4 and Table 3;
#                regime_avmnist: Figure 4 in SMIL's own data regime;
#                table3_regime_avmnist: Table 3's ablations there (its full SMIL is
#                regime_avmnist's, results_table3_regime_avmnist.md);
#              or avmnist_offline: the default regime (3,500 pairs), 3 seeds per run trained in
#              one program, into runs/smil/avmnist_offline (or RUNS_DIR)
#     PARTS    (avmnist_offline) default "main ablations curve": main = eta 10% and 20%,
#              ablations = Table 3 at 10% and 20% (ABL_ETAS="0.1 0.2"), curve = eta 5%, 50%, 100%
#   STEPS=N  (optional) every run trains N steps (the AE: its autoencoder steps + N), into
#            runs/smil/DATASET/stepsN, tables results_DATASET_stepsN.md, figure4_DATASET_stepsN.png
# A finished run is skipped (its workdir holds eval.json); a killed one resumes from its checkpoint.
# The lower and upper bounds do not depend on eta (100% modality 1; 100% of both). On
# avmnist_offline they are the same commands and configs as experiments/baselines/run.sh, whose
# runs are reused when present.
set -euo pipefail
cd "$(dirname "$0")/../.."
dataset=${1:?usage: run.sh DATASET [PARTS] [RUNS_DIR]}
case $dataset in
mfeat | regime_avmnist | table3_regime_avmnist)  # a sweep cut short resumes where it stopped
  "${MMJAX:-.venv/bin/mmjax}" sweep --workdir "runs/smil/$dataset" \
    --grid-file "experiments/smil/sweeps/$dataset.txt" --seeds 5
  "${MMJAX:-.venv/bin/mmjax}" report "runs/smil/$dataset" \
    --export "experiments/smil/results/$dataset" > /dev/null
  plot=()
  [ "$dataset" = regime_avmnist ] && plot=(experiments/smil/figure4_regime_avmnist.png)
  [ "$dataset" = mfeat ] && plot=(experiments/smil/figure4_mfeat.png
    "mfeat, 100% fou + eta% kar, 1,000 steps (5 seeds)")
  .venv/bin/python experiments/smil/make_table.py "runs/smil/$dataset" "${plot[@]}" \
    > "experiments/smil/results_$dataset.md"
  cat "experiments/smil/results_$dataset.md"
  exit
  ;;
avmnist_offline) ;;
*) echo "unknown dataset $dataset (use mfeat regime_avmnist table3_regime_avmnist" \
     "avmnist_offline)" >&2; exit 2 ;;
esac
parts=${2:-main ablations curve}
suffix=${STEPS:+_steps$STEPS}
runs=${3:-runs/smil/$dataset${STEPS:+/steps$STEPS}}
mmjax=${MMJAX:-.venv/bin/mmjax}
# AV-MNIST: 2 unrolled steps per call instead of the config's 10, as experiments/redcore/run.sh:
# 3 seeds x 10 copies of SMIL's second-order meta-step take too long to compile on 2 cores.
data=(--set train.steps_per_call=2)
lower=(--set method.modality=image)

train() {  # train WORKDIR CONFIG [--set ...]
  local dir=$1 config=$2 steps=()
  shift 2
  [ -f "$dir/eval.json" ] && return
  if [ -n "${STEPS:-}" ]; then
    case $config in
    */ae_imputation.py)  # STEPS fusion steps after the config's autoencoder phase (AE_STEPS)
      local ae_steps
      ae_steps=$(.venv/bin/python -c "from configs.$dataset.ae_imputation import AE_STEPS; print(AE_STEPS)")
      steps=(--set train.steps=$((STEPS + ae_steps))) ;;
    *) steps=(--set train.steps=$STEPS) ;;
    esac
  fi
  echo "== $dir" >&2
  "$mmjax" train --config "$config" --workdir "$dir" "${data[@]}" "${steps[@]}" "$@" >/dev/null
}

bounds() {
  if [ "$dataset" = avmnist_offline ] && [ -z "${STEPS:-}" ]; then
    for b in lower_bound upper_bound; do
      if [ ! -f "$runs/$b/eval.json" ] && [ -f "runs/baselines/avmnist/$b/eval.json" ]; then
        mkdir -p "$runs" && cp -r "runs/baselines/avmnist/$b" "$runs/$b"
      fi
    done
  fi
  train "$runs/lower_bound" "configs/$dataset/lower_bound.py" "${lower[@]}"
  train "$runs/upper_bound" "configs/$dataset/upper_bound.py"
}

eta_runs() {  # SMIL and AE imputation at eta
  local eta=$1
  train "$runs/eta$eta/smil" "configs/$dataset/smil.py" --set missing.paired_fraction=$eta
  train "$runs/eta$eta/ae_imputation" "configs/$dataset/ae_imputation.py" --set missing.paired_fraction=$eta
}

for part in $parts; do
  case $part in
  main)  # Figure 4 at eta = 10% and 20%
    bounds
    for eta in 0.1 0.2; do eta_runs $eta; done
    ;;
  ablations)  # Table 3 (the paper's is on MM-IMDb) and the released-code switches
    for eta in ${ABL_ETAS:-0.1 0.2}; do
      c=configs/$dataset/smil.py
      s="--set missing.paired_fraction=$eta"
      train "$runs/eta$eta/wo_kmeans" $c $s --set method.reconstruction=direct
      train "$runs/eta$eta/wo_regularization" $c $s --set method.regularization=none
      train "$runs/eta$eta/fixed_gaussian" $c $s --set method.fixed_gaussian=True
      train "$runs/eta$eta/deterministic" $c $s --set method.deterministic=True
      train "$runs/eta$eta/released" $c $s --set method.reconstruction=released \
        --set method.reg_sigma=fixed --set method.outer_loss=released --set method.kl_weight=0 \
        --set method.inner_lr_decay_every=1000
      # the released reconstruction alone (input-dependent x2_hat), everything else the paper's
      train "$runs/eta$eta/released_reconstruction" $c $s --set method.reconstruction=released
    done
    ;;
  curve)  # the rest of Figure 4's x axis
    for eta in 0.05 0.5 1.0; do eta_runs $eta; done
    ;;
  *) echo "unknown part $part (use main ablations curve)" >&2; exit 2 ;;
  esac
done
title="$dataset, 100% image + eta% audio"
results=experiments/smil/results_$dataset$suffix.md
.venv/bin/python experiments/smil/make_table.py "$runs" "experiments/smil/figure4_$dataset$suffix.png" \
  "$title${STEPS:+, $STEPS steps} (3 seeds)" > "$results.new"
mv "$results.new" "$results"
cat "$results"
