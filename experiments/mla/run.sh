#!/usr/bin/env bash
# MLA's Tables 1-3 and the modality-gap analysis on the offline datasets.
#   bash experiments/mla/run.sh [PART ...]
# PART in: sweep_mfeat (mfeat's Tables 1-3, one sweep of 5 seeds per line, sweeps/mfeat.txt),
# fig2_mfeat (mfeat's Figure 2: kar missing from a fraction of training, sweeps/fig2_mfeat.txt),
# sweep_avmnist (AV-MNIST's Tables 1-3, 5 seeds per line, sweeps/avmnist.txt), fig2_avmnist
# (AV-MNIST's Figure 2: the audio missing from a fraction of training, sweeps/fig2_avmnist.txt),
# t1_av t3_av t1_av_rest t2_av (AV-MNIST, 3 seeds per run; the earlier runs of results_3seed.md,
# now in sweep_avmnist), t1_mfeat t3_mfeat t2_mfeat (the
# earlier 3-seed mfeat runs of results_3seed.md), gap (reads t1_mfeat's and t3_mfeat's runs),
# gap_mfeat (the modality gap of sweep_mfeat's configs, 5 seeds, into results/gap_mfeat.json).
# Default: sweep_mfeat fig2_mfeat sweep_avmnist fig2_avmnist. Single AV-MNIST runs: av_concat
# av_mla av_late av_qmf av_ogm_ge av_sum; av_mla600 re-runs the first session's 600-step MLA
# ablation.
# RATES="0.1 0.2 ..." / RATES_AV=... set t2_mfeat's / t2_av's missing rates. Runs go to
# runs/mla/<name>/ (skipped if eval.json exists); experiments/mla/make_table.py then writes
# experiments/mla/results.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
MMJAX=${MMJAX:-.venv/bin/mmjax}
PY=${PY:-.venv/bin/python}
OUT=runs/mla
mkdir -p "$OUT"

# mfeat: three views (fou 76-d, kar 64-d, mor 6-d); the core baselines keep their own configs
# (two-layer MLP encoders, Adam 1e-3) with the same views and 128-d encoder outputs.
MFEAT_BASE=(--set data.views=fou,kar,mor --set model.feature_dim=128)
# AV-MNIST-offline: image reduced to 25 % PCA energy, audio SNR -5..15 dB (configs/*/mla.py).
# Two steps per jitted call instead of ten: the conv nets' unrolled program compiles ~5x faster,
# which matters more than dispatch overhead on the shared 2-core machine.
AV_FAST=(--set train.steps_per_call=2)
AV_BASE=(--set data.image_pca_energy=0.25 --set "data.snr_db=[-5,15]" "${AV_FAST[@]}")
# MLA on AV-MNIST-offline runs its config's 1,200 steps (600 updates per encoder, as many as the
# baselines' 600 steps give). The first session's runs used the shrunk AV_MLA600 (300 updates
# per encoder, for time on the loaded CPU); they are kept as av_mla600 / av_mla600_nohgm.
AV_MLA=("${AV_FAST[@]}")
AV_MLA600=("${AV_FAST[@]}" --set train.steps=600 --set optim.decay_steps=450)

train() {  # name config [--set ...]
  local name=$1 config=$2; shift 2
  if [[ -f $OUT/$name/eval.json ]]; then echo "skip $name"; return; fi
  # STOP_AFTER=HHMM (UTC): start no new training after that time (a shared machine's deadline).
  if [[ -n ${STOP_AFTER:-} && $(date -u +%H%M) > $STOP_AFTER ]]; then
    echo "not started: $name (after $STOP_AFTER UTC)"; return; fi
  rm -rf "$OUT/$name"
  echo "== $name ($(date -u +%H:%M:%S))"
  "$MMJAX" train --config "$config" --workdir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1
  tail -n 12 "$OUT/$name.log" | grep -E '^\| ' | head -n 6 || true
}

reeval() {  # name tag [--set method.* ...]: the trained model, evaluated with other method switches
  local name=$1 tag=$2; shift 2
  if [[ -f $OUT/$name/eval_$tag.json ]]; then echo "skip $name/$tag"; return; fi
  if [[ ! -f $OUT/$name/eval.json ]]; then echo "no run $name: skip $name/$tag"; return; fi
  if [[ -n ${STOP_AFTER:-} && $(date -u +%H%M) > $STOP_AFTER ]]; then
    echo "not started: $name/$tag (after $STOP_AFTER UTC)"; return; fi
  "$PY" experiments/mla/reeval.py --workdir "$OUT/$name" --tag "$tag" "$@"
}

t1_mfeat() {
  for m in concat sum late film bilinear_gated; do
    [[ $m == film || $m == bilinear_gated ]] && ! [[ -f configs/mfeat/$m.py ]] && continue
    train mfeat_$m configs/mfeat/$m.py "${MFEAT_BASE[@]}"
  done
  for m in qmf ogm_ge mla; do train mfeat_$m configs/mfeat/$m.py; done
}

t3_mfeat() {  # 2 x 2: head-gradient modification x dynamic fusion (fusion is test-time only)
  train mfeat_mla_nohgm configs/mfeat/mla.py --set method.head_projection=none
  reeval mfeat_mla avg --set method.fusion=average
  reeval mfeat_mla_nohgm avg --set method.fusion=average
  reeval mfeat_mla perbatch --set method.entropy=per_batch
}

av_concat() { train av_concat configs/avmnist_offline/concat.py "${AV_BASE[@]}"; }
av_sum() { train av_sum configs/avmnist_offline/sum.py "${AV_BASE[@]}"; }
av_late() { train av_late configs/avmnist_offline/late.py "${AV_BASE[@]}"; }
av_mla() { train av_mla configs/avmnist_offline/mla.py "${AV_MLA[@]}"; }
av_qmf() { train av_qmf configs/avmnist_offline/qmf.py "${AV_FAST[@]}"; }
av_ogm_ge() { train av_ogm_ge configs/avmnist_offline/ogm_ge.py "${AV_FAST[@]}"; }
# In order of importance (the shared CPU may not finish all of them); each av_* is also a PART,
# so two chains can run side by side on different runs.
t1_av() { av_concat; av_mla; av_late; }
t1_av_rest() { av_qmf; av_ogm_ge; av_sum; }

t3_av() {
  train av_mla_nohgm configs/avmnist_offline/mla.py "${AV_MLA[@]}" --set method.head_projection=none
  reeval av_mla avg --set method.fusion=average
  reeval av_mla_nohgm avg --set method.fusion=average
}

av_mla600() {  # the first session's shrunk MLA runs (half the encoder updates), kept for comparison
  train av_mla600 configs/avmnist_offline/mla.py "${AV_MLA600[@]}"
  train av_mla600_nohgm configs/avmnist_offline/mla.py "${AV_MLA600[@]}" --set method.head_projection=none
  reeval av_mla600 avg --set method.fusion=average
  reeval av_mla600_nohgm avg --set method.fusion=average
}

t2_mfeat() {  # Table 2: the same entry-wise missing rate (at least one view kept) in train and test
  for r in ${RATES:-0.1 0.2 0.3 0.4 0.5 0.6 0.7}; do
    local miss=(--set missing.protocol=at_least_one --set missing.rate=$r)
    for m in concat late; do train mfeat_${m}_miss$r configs/mfeat/$m.py "${MFEAT_BASE[@]}" "${miss[@]}"; done
    for m in qmf mla; do train mfeat_${m}_miss$r configs/mfeat/$m.py "${miss[@]}"; done
    for m in concat late qmf mla; do
      local w=$OUT/mfeat_${m}_miss$r
      [[ -f $w/eval.json ]] || continue
      [[ -f $w/eval-missing-rate-test.json ]] || "$MMJAX" eval --workdir "$w" --protocol missing-rate \
        --set "eval.missing_rates=[$r]" > "$w/eval_missing_rate.log" 2>&1
    done
  done
}

t2_av() {  # Table 2 on AV-MNIST-offline. With M = 2 and at least one modality per sample the
  # entry-wise rate saturates at 1/2 (the sampler clips larger rates to 0.5: one modality each).
  for r in ${RATES_AV:-0.1 0.3 0.5 0.2 0.4}; do
    local miss=(--set missing.protocol=at_least_one --set missing.rate=$r)
    # MLA first: on a deadline the later runs of the last rate are the ones left out.
    train av_mla_miss$r configs/avmnist_offline/mla.py "${AV_MLA[@]}" "${miss[@]}"
    train av_late_miss$r configs/avmnist_offline/late.py "${AV_BASE[@]}" "${miss[@]}"
    train av_qmf_miss$r configs/avmnist_offline/qmf.py "${AV_FAST[@]}" "${miss[@]}"
    train av_concat_miss$r configs/avmnist_offline/concat.py "${AV_BASE[@]}" "${miss[@]}"
    for m in concat late qmf mla; do
      local w=$OUT/av_${m}_miss$r
      [[ -f $w/eval.json ]] || continue
      [[ -f $w/eval-missing-rate-test.json ]] || "$MMJAX" eval --workdir "$w" --protocol missing-rate \
        --set "eval.missing_rates=[$r]" > "$w/eval_missing_rate.log" 2>&1
    done
  done
}

sweep_mfeat() {  # mfeat's Tables 1-3, 5 seeds per line, 64,000 training samples per run; then
  # the test-time cells (Table 3's DF off, Table 2's test missing rate) from the checkpoints.
  "$MMJAX" sweep --workdir $OUT/sweep_mfeat --grid-file experiments/mla/sweeps/mfeat.txt \
    --seeds "${MFEAT_SEEDS:-5}" > "$OUT/sweep_mfeat.log" 2>&1
  "$PY" experiments/mla/slot_eval.py $OUT/sweep_mfeat
}

sweep_avmnist() {  # AV-MNIST-offline's Tables 1-3, 5 seeds per line, 38,400 training samples
  # per run; then the test-time cells (Table 3's DF off, Table 2's test missing rate).
  "$MMJAX" sweep --workdir $OUT/sweep_avmnist --grid-file experiments/mla/sweeps/avmnist.txt \
    --seeds 5 > "$OUT/sweep_avmnist.log" 2>&1
  "$PY" experiments/mla/slot_eval.py $OUT/sweep_avmnist
}

fig2_mfeat() {  # Figure 2 (isolation of modalities): kar removed from a fraction r of the
  # training samples, r = 0 ... 0.8, MLA and QMF, 5 seeds per line (sweeps/fig2_mfeat.txt).
  "$MMJAX" sweep --workdir $OUT/fig2_mfeat --grid-file experiments/mla/sweeps/fig2_mfeat.txt \
    --seeds "${MFEAT_SEEDS:-5}" > "$OUT/fig2_mfeat.log" 2>&1
}

fig2_avmnist() {  # Figure 2 on AV-MNIST-offline: the audio removed from a fraction r of the
  # training samples, r = 0 ... 0.8, MLA and QMF, 5 seeds per line (sweeps/fig2_avmnist.txt).
  "$MMJAX" sweep --workdir $OUT/fig2_avmnist --grid-file experiments/mla/sweeps/fig2_avmnist.txt \
    --seeds 5 > "$OUT/fig2_avmnist.log" 2>&1
}

gap_mfeat() {  # section 3.3.3 on sweep_mfeat's configs, 5 seeds per run (the sweep keeps no
  # checkpoints): each run's per-seed gaps into the committed results/gap_mfeat.json.
  local m
  for m in concat late; do
    train gap_mfeat/$m configs/mfeat/$m.py "${MFEAT_BASE[@]}" --set train.num_seeds=5
  done
  for m in qmf ogm_ge mla; do train gap_mfeat/$m configs/mfeat/$m.py --set train.num_seeds=5; done
  train gap_mfeat/mla_nohgm configs/mfeat/mla.py --set method.head_projection=none \
    --set train.num_seeds=5
  "$PY" experiments/mla/modality_gap.py --json experiments/mla/results/gap_mfeat.json \
    $OUT/gap_mfeat/{mla,mla_nohgm,concat,late,qmf,ogm_ge}
}

gap() {  # section 3.3.3: distance between the modality centroids of L2-normalised embeddings
  "$PY" experiments/mla/modality_gap.py $OUT/mfeat_mla $OUT/mfeat_mla_nohgm $OUT/mfeat_concat \
    $OUT/mfeat_late $OUT/mfeat_qmf $OUT/mfeat_ogm_ge > "$OUT/gap.md"
  cat "$OUT/gap.md"
}

parts=("$@")
# sweep_mfeat replaces the 3-seed mfeat parts (kept for results_3seed.md and gap), sweep_avmnist
# the 3-seed AV-MNIST parts.
[[ ${#parts[@]} -eq 0 ]] && parts=(sweep_mfeat fig2_mfeat sweep_avmnist fig2_avmnist)
for p in "${parts[@]}"; do "$p"; done
"$PY" experiments/mla/make_table.py > experiments/mla/results.md
echo "wrote experiments/mla/results.md"
