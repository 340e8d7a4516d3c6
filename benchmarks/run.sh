#!/usr/bin/env bash
# Step time of every registered method at batch 64 on both offline datasets' shapes, one JSON line
# per case, saved as benchmarks/results/<device>.jsonl. Compare with an earlier file:
#   .venv/bin/mmjax bench --compare benchmarks/results/cpu.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
mmjax=${MMJAX:-.venv/bin/mmjax}
out=benchmarks/results/${1:-cpu}.jsonl
mkdir -p benchmarks/results
: > "$out"
for dataset in avmnist_offline mfeat; do
  "$mmjax" bench --dataset "$dataset" --batch 64 --repeats 20 | tee -a "$out"
done
