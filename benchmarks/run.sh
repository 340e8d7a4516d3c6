#!/usr/bin/env bash
# Benchmarks as JSON lines in benchmarks/results/<device>_<what>.jsonl (one line per case).
#   bash benchmarks/run.sh methods [DEVICE]  every method, batch 64, both offline datasets
#   bash benchmarks/run.sh suite   [DEVICE]  mmjax bench --suite paper (each at its paper shapes)
#   bash benchmarks/run.sh sweeps  [DEVICE]  batch, seeds, steps-per-call, dtype, device sweeps
#   bash benchmarks/run.sh phases  [DEVICE]  SMIL's and UME-MMA's later phases (suite: step 0)
#   bash benchmarks/run.sh accel-sweeps [DEVICE]  the sweeps at accelerator sizes (one device)
# On a host where mmjax is not installed: MMJAX="python3 -m mmjax" PYTHONPATH=$PWD bash ...
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
bench() { $mmjax bench "$@" | tee -a "$out"; }  # unquoted: MMJAX may be "python3 -m mmjax"

case $what in
methods)
  for dataset in avmnist_offline mfeat; do bench --dataset "$dataset" --batch 64; done ;;
suite)
  bench --suite paper ;;
phases)
  bench --methods ume_mma --set method.phase1_steps=0
  bench --methods smil --set method.phase1_steps=0 --set method.phase2_steps=0 \
    --set method.memory_size=256 --set train.vmap_seeds=true --steps-per-call 1 --num-seeds 1,8 ;;
accel-sweeps)
  # On an accelerator the replicas are vmapped (the AV-MNIST configs write one copy of the step per
  # seed, vmap_seeds=False, which is best on XLA:CPU) and the scan is rolled (unroll=1: the full
  # unroll that XLA:CPU needs only lengthens compilation on a GPU).
  acc=(--set train.vmap_seeds=true --set train.unroll=1)
  bench --methods concat,ume_mma --dataset avmnist_offline --num-seeds 1,2,4,8,16 "${acc[@]}"
  bench --methods concat --dataset avmnist_offline --batch 32,128,512,1024,2048,4096 "${acc[@]}"
  bench --methods concat --dataset avmnist_offline --steps-per-call 1,100 "${acc[@]}"
  bench --methods concat,mla,raml,redcore --suite paper --dtype float32,bfloat16 "${acc[@]}" ;;
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
*) echo "unknown benchmark set $what (methods, suite, phases, sweeps, accel-sweeps)" >&2; exit 2 ;;
esac
