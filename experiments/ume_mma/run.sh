#!/usr/bin/env bash
# Reproduces UME-MMA's Tables 1, 3, 4 and 5 and Figure 3's protocol on the offline datasets
# (AV-MNIST-offline: 3 seeds per run, trained in one program; Table 1 on both datasets: one sweep
# of 5 seeds per method, whose runs Figure 3's evaluations reuse) and writes
# experiments/ume_mma/results.md.
#   bash experiments/ume_mma/run.sh [RUNS_DIR] [TABLES]     (default runs/ume_mma, "1 4 5 3")
# A finished run is skipped (its workdir holds eval.json); a killed one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/ume_mma}
tables=${2:-1 4 5 3}
mmjax=${MMJAX:-.venv/bin/mmjax}

train() {  # train WORKDIR CONFIG [--set ...]
  local dir=$1 config=$2
  shift 2
  [ -f "$dir/eval.json" ] && return
  echo "== $dir" >&2
  "$mmjax" train --config "$config" --workdir "$dir" "$@" >/dev/null
}

for t in $tables; do
  case $t in
  1)  # Table 1: complete training data; test with the image missing (Miss-V), the audio missing
      # (Miss-A), and complete. Every method of the table, on AV-MNIST-offline and on two mfeat
      # views (fac plays "visual", kar plays "audio").
    train "$runs/t1_avmnist/lower_bound_image" configs/avmnist_offline/lower_bound.py --set method.modality=image
    train "$runs/t1_avmnist/lower_bound_audio" configs/avmnist_offline/lower_bound.py --set method.modality=audio
    for m in naive multi_task missing_detection ume_mma; do
      train "$runs/t1_avmnist/$m" "configs/avmnist_offline/$m.py"
    done
    # AV-MNIST-offline again: one sweep, 5 seeds per method at an equal budget (900 steps each).
    "$mmjax" sweep --workdir "$runs/t1_avmnist5" \
      --grid-file experiments/ume_mma/sweeps/t1_avmnist.txt --seeds "${AVMNIST_SEEDS:-5}" >/dev/null
    # mfeat: one sweep, 5 seeds per method (and the phase-1-only control), each one program.
    "$mmjax" sweep --workdir "$runs/t1_mfeat" --grid-file experiments/ume_mma/sweeps/t1_mfeat.txt \
      --set data.views=fac,kar --seeds "${MFEAT_SEEDS:-5}" >/dev/null
    # Figure 3's protocol on both sweeps' runs: complete training, the second modality on eta of
    # the test samples (eval.paired_fractions), every other sample the first modality alone.
    for d in "$runs"/t1_avmnist5/*/train.seed-* "$runs"/t1_mfeat/*/train.seed-*; do
      [ -f "$d/eval-paired-fraction-test.json" ] && continue
      "$mmjax" eval --workdir "$d" --protocol paired-fraction >/dev/null
    done
    ;;
  4)  # Table 4 ablations on AV-MNIST-offline. Only Missing-Aug is the naive joint training (600
      # steps at the base learning rate) plus augmentation; the full method is Table 1's run.
    train "$runs/t4_avmnist/only_missing_aug" configs/avmnist_offline/ume_mma.py --set method.pretrain=False --set train.steps=600
    train "$runs/t4_avmnist/only_pretraining" configs/avmnist_offline/ume_mma.py --set method.augment=False
    train "$runs/t4_avmnist/freeze_encoders" configs/avmnist_offline/ume_mma.py --set method.freeze_encoders=True
    ;;
  5)  # Table 5: drop probability per modality (0 = Table 4's only_pretraining, 0.3 = Table 1's).
    for p in 0.1 0.2 0.4 0.5; do
      train "$runs/t5_avmnist/p$p" configs/avmnist_offline/ume_mma.py --set method.dropout_p=$p
    done
    ;;
  3)  # Table 3 protocol: only a fraction of the training samples have modality 2 (audio); the
      # image is complete (missing.protocol=paired). The paper reports the complete test set.
    # 100% is complete training data: make_table.py takes Table 1's runs for it.
    for f in 0.1 0.2; do
      for m in ume_mma naive; do
        train "$runs/t3_avmnist/paired$f/$m" "configs/avmnist_offline/$m.py" --set missing.protocol=paired --set missing.paired_fraction=$f
      done
    done
    ;;
  *) echo "unknown table $t (use 1 3 4 5)" >&2; exit 2 ;;
  esac
done
.venv/bin/python experiments/ume_mma/make_table.py "$runs" > experiments/ume_mma/results.md
cat experiments/ume_mma/results.md
