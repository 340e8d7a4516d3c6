#!/usr/bin/env bash
# RedCore's imbalanced-missing-rate tables (Tables 1-2 protocol), the shared-missing-rate sweep
# (Figure 3) and the relative-advantage curves (Figure 5) on the offline datasets. Each part but
# curves is one `mmjax sweep` (SEEDS=5 seeds per point; on mfeat a method's points are the
# replicas of one program, on AV-MNIST each seed is its own run), exported into the committed
# experiments/redcore/results/<sweep>; make_table.py then writes experiments/redcore/results.md
# and the PNG plots from there.
#   bash experiments/redcore/run.sh [RUNS_DIR] [PARTS]
#     (default runs/redcore, "imb imb_position imb_baselines curves fig3 fig3_baselines av
#     av_baselines av_bernoulli")
# A finished point is skipped (its folder holds eval.json); a killed run resumes from its
# checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/redcore}
parts=${2:-imb imb_position imb_baselines curves fig3 fig3_baselines av av_baselines av_bernoulli}
mmjax=${MMJAX:-.venv/bin/mmjax}
MFEAT_STEPS=${MFEAT_STEPS:-1000}
# Programs do not depend on missing rates (masks are data), so one compile serves every rate.
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-$runs/jax-cache}
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
# mfeat and AV-MNIST: the paper's widths halved for CPU time (latent 64, RA-layers 128-64-32-16-32-64-128).
SMALL="--set method.latent_dim=64 --set method.xenc_layers=64,32,16"
AV_STEPS=${AV_STEPS:-600}  # AV-MNIST's loop settings: sweeps/imb_avmnist_methods.txt

train() {  # train WORKDIR CONFIG [--set ...]
  local dir=$1 config=$2
  shift 2
  [ -f "$dir/eval.json" ] && return
  echo "== $dir" >&2
  "$mmjax" train --config "$config" --workdir "$dir" "$@" >/dev/null
}

sweep_part() {  # sweep_part SWEEP GRID [--set ...] --grid ...: one `mmjax sweep` of
  # sweeps/GRID.txt into $runs/SWEEP (SEEDS seeds a point), then its per-seed results exported
  # into the committed results/SWEEP.
  local sweep=$1 grid=$2
  shift 2
  "$mmjax" sweep --workdir "$runs/$sweep" --grid-file "experiments/redcore/sweeps/$grid.txt" \
    --seeds "$SEEDS" "$@" >/dev/null
  "$mmjax" report "$runs/$sweep" --export "experiments/redcore/results/$sweep" \
    --columns 'loss,ra_*,eta_*' >/dev/null
}

# method name -> config file stem and switches
variant() {
  case $1 in
  redcore) echo "redcore $SMALL" ;;
  core) echo "redcore $SMALL --set method.regulate=False" ;;
  red) echo "redcore $SMALL --set method.unimodal_ce=False" ;;
  augmentation) echo "augmentation" ;;
  esac
}

# Three mfeat views in modality order (fou, kar, zer); (l, m, s) = (0.8, 0.5, 0.2).
declare -A RATE=([l]=0.8 [m]=0.5 [s]=0.2)
ASSIGN="sml msl lms lsm slm mls"   # Table 2's column order (s,m,l) (m,s,l) (l,m,s) (l,s,m) (s,l,m) (m,l,s)
SEEDS=${SEEDS:-5}  # seeds per sweep point
# The --set flags every mfeat / AV-MNIST sweep part starts with (their order is part of a
# sweep's record, so keep it).
MFEAT=(--set data.views=fou,kar,zer --set missing.protocol=independent
  --set train.steps=$MFEAT_STEPS)
AV=(--set train.steps=$AV_STEPS --set train.log_every=10)

imb_rates() {  # the --grid values of the six assignments: [0.2,0.5,0.8],[0.5,0.2,0.8],...
  local a out=()
  for a in $ASSIGN; do out+=("[${RATE[${a:0:1}]},${RATE[${a:1:1}]},${RATE[${a:2:1}]}]"); done
  (IFS=,; echo "${out[*]}")
}

fig3_rates() {  # [r,r,r] for each shared rate of FIG3_RATES
  local r out=()
  for r in ${FIG3_RATES:-0.0 0.3 0.6 0.9}; do out+=("[$r,$r,$r]"); done
  (IFS=,; echo "${out[*]}")
}

for part in $parts; do
  case $part in
  imb)  # Table 1-2 protocol on mfeat: six assignments x {RedCore, Core, Red, augmentation}, one
    # sweep: each method's 6 x SEEDS points are the replicas of one program (masks are data).
    sweep_part imb_mfeat imb_mfeat_methods "${MFEAT[@]}" --set train.log_every=10 \
      --grid "missing.rates=$(imb_rates)"
    ;;
  imb_position)  # imb's protocol for RedCore and augmentation with the released code's mask
      # rows (missing.mask_rows=position: a sample gets another row every epoch).
    sweep_part imb_mfeat_position imb_mfeat_position "${MFEAT[@]}" --set train.log_every=10 \
      --grid "missing.rates=$(imb_rates)"
    ;;
  imb_baselines)  # imb's protocol for Table 1's MMIN and Figure 4's CRA imputation.
    sweep_part imb_mfeat_baselines imb_mfeat_baselines "${MFEAT[@]}" --set train.log_every=10 \
      --grid "missing.rates=$(imb_rates)"
    ;;
  curves)  # Figure 5(c): Core, Red, RedCore at (fou, kar, zer) = (0.8, 0.2, 0.5), 5 seeds each,
    # a checkpoint every 50 steps; curves.py evaluates them all into results/curves_mfeat.json.
    for meth in core red redcore; do
      read -r stem sets <<<"$(variant $meth)"
      # shellcheck disable=SC2086
      train "$runs/curves_mfeat/$meth" "configs/mfeat/$stem.py" $sets \
        --set data.views=fou,kar,zer --set missing.protocol=independent \
        --set missing.rates=0.8,0.2,0.5 --set train.steps=$MFEAT_STEPS --set train.log_every=10 \
        --set train.num_seeds="$SEEDS" --set train.checkpoint_every=50 \
        --set train.keep_checkpoints=$((MFEAT_STEPS / 50))
    done
    .venv/bin/python experiments/redcore/curves.py experiments/redcore/results/curves_mfeat.json \
      "$runs"/curves_mfeat/{core,red,redcore}
    ;;
  fig3)  # Figure 3: one missing rate shared by the three views, the same four methods.
    sweep_part fig3_mfeat imb_mfeat_methods "${MFEAT[@]}" --grid "missing.rates=$(fig3_rates)"
    ;;
  fig3_baselines)  # Figure 3's protocol for the comparators, MMIN and CRA imputation.
    sweep_part fig3_mfeat_baselines imb_mfeat_baselines "${MFEAT[@]}" \
      --grid "missing.rates=$(fig3_rates)"
    ;;
  av)  # AV-MNIST-offline, two modalities (image, audio): (l, s) and (s, l), the four methods;
    # each seed is its own run (the CPU policy's conv-net rule).
    sweep_part imb_avmnist imb_avmnist_methods --set missing.protocol=independent "${AV[@]}" \
      --grid "missing.rates=[0.8,0.2],[0.2,0.8]"
    ;;
  av_baselines)  # av's protocol for the comparators CRA and MMIN.
    sweep_part imb_avmnist_baselines imb_avmnist_baselines --set missing.protocol=independent \
      "${AV[@]}" --grid "missing.rates=[0.8,0.2],[0.2,0.8]"
    ;;
  av_bernoulli)  # The diagnostic beside av: Bernoulli masks at (0.8, 0.2), ~16 % complete pairs.
    sweep_part imb_avmnist_bernoulli imb_avmnist_methods --set missing.protocol=independent \
      --set missing.exact=false "${AV[@]}" --grid "missing.rates=[0.8,0.2]"
    ;;
  *) echo "unknown part $part (use imb imb_position imb_baselines curves fig3 fig3_baselines" \
       "av av_baselines av_bernoulli)" >&2; exit 2 ;;
  esac
done
# Every table from the committed results (a part not run here keeps its committed copy).
.venv/bin/python experiments/redcore/make_table.py experiments/redcore/results \
  > experiments/redcore/results.md
cat experiments/redcore/results.md
