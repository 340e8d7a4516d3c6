#!/usr/bin/env bash
# Benchmarks as JSON lines in benchmarks/results/<device>_<what>.jsonl (one line per case).
#   bash benchmarks/run.sh methods [DEVICE]  every registered method, batch 64, both offline datasets
#   bash benchmarks/run.sh suite   [DEVICE]  mmjax bench --suite paper (each method at its paper shapes)
#   bash benchmarks/run.sh sweeps  [DEVICE]  batch, seeds, steps-per-call, dtype and device sweeps
# then: .venv/bin/python benchmarks/tables.py benchmarks/results/<file>.jsonl   (markdown + plot)
# Compare with an earlier file: .venv/bin/mmjax bench ... --compare benchmarks/results/<file>.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
mmjax=${MMJAX:-.venv/bin/mmjax}
what=${1:?methods, suite or sweeps}
device=${2:-cpu}
out=benchmarks/results/${device}_${what}.jsonl
mkdir -p benchmarks/results
: > "$out"
bench() { "$mmjax" bench "$@" | tee -a "$out"; }

case $what in
methods)
  for dataset in avmnist_offline mfeat; do bench --dataset "$dataset" --batch 64; done ;;
suite)
  bench --suite paper ;;
sweeps)
  # Sizes are chosen so the whole sweep takes about 20 minutes on the 2-core CPU; on an
  # accelerator pass larger ones by hand (e.g. --batch 32,...,4096 for AV-MNIST too).
  bench --methods concat --dataset mfeat --batch 32,64,128,256,512,1024,2048,4096 --repeats 10
  bench --methods concat --dataset avmnist_offline --batch 32,64,128,256,512,1024 \
    --steps-per-call 2 --repeats 5
  bench --methods concat --dataset mfeat --num-seeds 1,2,4,8,16 --repeats 10
  bench --methods concat --dataset avmnist_offline --num-seeds 1,2,4,8 --steps-per-call 2 --repeats 5
  bench --methods concat --dataset mfeat --steps-per-call 1,10,100 --repeats 10
  bench --methods concat,ume_mma --dataset mfeat --dtype float32,bfloat16 --repeats 10
  bench --methods concat --dataset avmnist_offline --dtype float32,bfloat16 --steps-per-call 2 \
    --repeats 5
  # Devices: simulated CPU devices share the same cores, so this measures the cost of sharding
  # (batch split + gradient all-reduce), not a speed-up; on a multi-GPU host drop XLA_FLAGS.
  for n in 1 2 4 8; do
    XLA_FLAGS=--xla_force_host_platform_device_count=$n \
      bench --methods concat --dataset mfeat --batch 256 --repeats 10
  done ;;
*) echo "unknown benchmark set $what (use methods, suite or sweeps)" >&2; exit 2 ;;
esac
