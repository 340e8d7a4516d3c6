#!/usr/bin/env bash
# Reproduces UME-MMA's Table 1, Figure 3's protocol and Tables 3, 4 and 5 on the offline datasets
# (5 seeds per method, one `mmjax sweep` per table group; Figure 3's evaluations reuse Table 1's
# runs) and writes experiments/ume_mma/results.md.
#   bash experiments/ume_mma/run.sh [RUNS_DIR] [TABLES]     (default runs/ume_mma, "1 345")
# A finished run is skipped (its workdir holds eval.json); a killed one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/ume_mma}
tables=${2:-1 345}
mmjax=${MMJAX:-.venv/bin/mmjax}

for t in $tables; do
  case $t in
  1)  # Table 1: complete training data; test with the image missing (Miss-V), the audio missing
      # (Miss-A), and complete. AV-MNIST-offline: 5 seeds per method at an equal budget (900
      # steps each); mfeat (fac plays "visual", kar plays "audio"): 5 seeds, each one program.
    "$mmjax" sweep --workdir "$runs/t1_avmnist5" \
      --grid-file experiments/ume_mma/sweeps/t1_avmnist.txt --seeds "${AVMNIST_SEEDS:-5}" >/dev/null
    "$mmjax" sweep --workdir "$runs/t1_mfeat" --grid-file experiments/ume_mma/sweeps/t1_mfeat.txt \
      --set data.views=fac,kar --seeds "${MFEAT_SEEDS:-5}" >/dev/null
    # Figure 3's protocol on both sweeps' runs: complete training, the second modality on eta of
    # the test samples (eval.paired_fractions), every other sample the first modality alone.
    for d in "$runs"/t1_avmnist5/*/train.seed-* "$runs"/t1_mfeat/*/train.seed-*; do
      [ -f "$d/eval-paired-fraction-test.json" ] && continue
      "$mmjax" eval --workdir "$d" --protocol paired-fraction >/dev/null
    done
    ;;
  345)  # Tables 4 (ablations), 5 (drop probability) and 3 (audio on 10 / 20 % of the training
      # samples) on AV-MNIST-offline, 5 seeds at Table 1's budget; their full-method and
      # image-only cells are Table 1's runs.
    "$mmjax" sweep --workdir "$runs/t345_avmnist5" \
      --grid-file experiments/ume_mma/sweeps/t345_avmnist.txt --seeds "${AVMNIST_SEEDS:-5}" >/dev/null
    ;;
  *) echo "unknown table group $t (use 1 345)" >&2; exit 2 ;;
  esac
done
.venv/bin/python experiments/ume_mma/make_table.py "$runs" > experiments/ume_mma/results.md
cat experiments/ume_mma/results.md
