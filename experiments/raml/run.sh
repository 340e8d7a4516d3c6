#!/usr/bin/env bash
# Reproduces RAML's tables on the offline datasets (3 seeds per run, trained in one program;
# mfeat's Tables I and IV at an equal budget: one sweep of 5 seeds per method, and Tables V, VI
# and Figure 4 left, stage t56, another; Tables II-III and Figure 5 at an equal budget, stage
# t2: one run of 5 seeds per method) and writes
# experiments/raml/results.md and the Figure 5 PNGs.
#   bash experiments/raml/run.sh [RUNS_DIR] [STAGES]   (default runs/raml,
#     "main t1 t1_sweep t56 t56_av t4_av fig1 fig1_av fig4r fig4r_av t2 eval abl_mfeat
#      abl_avmnist")
# A finished run is skipped (its workdir holds eval.json); a killed one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-runs/raml}
all_stages=(main t1 t1_sweep t56 t56_av t4_av fig1 fig1_av fig4r fig4r_av t2 eval abl_mfeat
  abl_avmnist)
stages=${2:-${all_stages[*]}}
mmjax=${MMJAX:-.venv/bin/mmjax}
py=${PYTHON:-.venv/bin/python}

train() {  # train WORKDIR CONFIG [--set ...]
  local dir=$1 config=$2
  shift 2
  [ -f "$dir/eval.json" ] && return
  echo "== $dir $(date -u +%T)" >&2
  "$mmjax" train --config "$config" --workdir "$dir" "$@" >/dev/null
}

corrupt() {  # corrupt WORKDIR [FIGURE.png]: Tables II (mmjax eval), III and Figure 5
  local dir=$1
  [ -f "$dir/eval.json" ] || { echo "skip $dir (not trained)" >&2; return 0; }
  [ -f "$dir/eval-corruption-test.json" ] || "$mmjax" eval --workdir "$dir" --protocol corruption >/dev/null
  [ -f "$dir/corrupt_both.json" ] || "$py" experiments/raml/corrupt_both.py "$dir" ${2:+"$2"}
}

for s in $stages; do
  case $s in
  main)  # RAML itself on both datasets.
    train "$runs/avmnist/raml" configs/avmnist_offline/raml.py
    train "$runs/mfeat/raml" configs/mfeat/raml.py
    ;;
  t1)  # Table I baselines (every test subset). concat/augmentation/late/multi_task: their own
       # configs (batch 64, as experiments/baselines); TMC, ETMC, MVAE when registered.
    for m in concat augmentation late multi_task tmc etmc mvae; do
      train "$runs/mfeat/$m" "configs/mfeat/$m.py"
    done
    for m in concat augmentation late multi_task; do
      train "$runs/avmnist/$m" "configs/avmnist_offline/$m.py"
    done
    ;;
  abl_mfeat|abl_avmnist)  # Table V (weighting), Table VI (loss terms), Figure 4 left.
    # Shortened to $ABL_STEPS steps (default 300) for lack of CPU time; each group has its own
    # RAML reference run of the same length.
    d=${s#abl_}
    cfg=configs/${d/avmnist/avmnist_offline}/raml.py
    short="--set train.steps=${ABL_STEPS:-300}"
    # AV-MNIST: 2 unrolled steps per call (not the config's 10): 3 seeds x 10 copies of the step
    # compile for minutes per variant on 2 cores; the arithmetic of a step is the same.
    [ "$d" = avmnist ] && short="$short --set train.steps_per_call=2"
    (
      train "$runs/$d/abl/raml" "$cfg" $short
      train "$runs/$d/abl/w_identical" "$cfg" $short --set method.weighting=identical
      train "$runs/$d/abl/w_fixed" "$cfg" $short --set method.weighting=fixed
      train "$runs/$d/abl/l_m" "$cfg" $short --set method.lambda_unimodal=0 --set method.lambda_sparsity=0
      train "$runs/$d/abl/l_md" "$cfg" $short --set method.lambda_unimodal=0
      train "$runs/$d/abl/l_mu" "$cfg" $short --set method.lambda_sparsity=0
      train "$runs/$d/abl/separate" "$cfg" $short --set method.shared_predictor=False
    )
    ;;
  t4_av)  # Table IV on AV-MNIST-offline at Table II's budget, 5 seeds: one sweep
          # (sweeps/t4_avmnist.txt), every method trained and tested on complete samples.
    "$mmjax" sweep --workdir "$runs/t4_avmnist" --grid-file experiments/raml/sweeps/t4_avmnist.txt \
      --seeds 5 >/dev/null
    ;;
  fig1)  # Figure 1 on mfeat, 5 seeds: the unimodal models (sweeps/fig1_mfeat.txt); the concat
        # model beside them is t1_sweep's `concat`.
    "$mmjax" sweep --workdir "$runs/fig1_mfeat" --grid-file experiments/raml/sweeps/fig1_mfeat.txt \
      --seeds "${MFEAT_SEEDS:-5}" >/dev/null
    ;;
  fig1_av)  # Figure 1 on AV-MNIST-offline, 5 seeds: the unimodal models (sweeps/fig1_avmnist.txt);
           # the concat model beside them is t4_av's `concat`.
    "$mmjax" sweep --workdir "$runs/fig1_avmnist" \
      --grid-file experiments/raml/sweeps/fig1_avmnist.txt --seeds 5 >/dev/null
    ;;
  fig4r)  # Figure 4 right on mfeat at Table I's budget, 5 seeds: one sweep
          # (sweeps/fig4r_mfeat.txt); its default point (lambda_1 = 1, lambda_2 = 0.01) is
          # t1_sweep's `raml`.
    "$mmjax" sweep --workdir "$runs/fig4r_mfeat" --grid-file experiments/raml/sweeps/fig4r_mfeat.txt \
      --seeds 5 >/dev/null
    ;;
  fig4r_av)  # Figure 4 right on AV-MNIST-offline at Table II's budget, 5 seeds: one sweep
          # (sweeps/fig4r_avmnist.txt); its default point is the sweep's own `default` line.
    "$mmjax" sweep --workdir "$runs/fig4r_avmnist" \
      --grid-file experiments/raml/sweeps/fig4r_avmnist.txt --seeds 5 >/dev/null
    ;;
  t1_sweep)  # Tables I and IV on mfeat at an equal budget, 5 seeds: one sweep (sweeps/t1_mfeat.txt).
    "$mmjax" sweep --workdir "$runs/t1_mfeat" --grid-file experiments/raml/sweeps/t1_mfeat.txt \
      --seeds "${MFEAT_SEEDS:-5}" >/dev/null
    ;;
  t56)  # Tables V, VI and Figure 4 left on mfeat at Table I's budget, 5 seeds: one sweep
         # (sweeps/t56_mfeat.txt); its reference RAML is t1_sweep's `raml`.
    "$mmjax" sweep --workdir "$runs/t56_mfeat" --grid-file experiments/raml/sweeps/t56_mfeat.txt \
      --seeds "${MFEAT_SEEDS:-5}" >/dev/null
    ;;
  t56_av)  # Tables V, VI and Figure 4 left on AV-MNIST-offline at Table II's budget, 5 seeds:
         # one sweep (sweeps/t56_avmnist.txt); its reference RAML is fig4r_av's `default`.
    "$mmjax" sweep --workdir "$runs/t56_avmnist" \
      --grid-file experiments/raml/sweeps/t56_avmnist.txt --seeds 5 >/dev/null
    ;;
  t2)  # Tables II-III and Figure 5 at an equal budget: 5 seeds per method in one program, RAML
    # at the paper's batch 128 for half the baselines' steps of 64 (mfeat 500 vs 1000, AV-MNIST
    # 300 vs 600); its Figure 5 PNGs stay in the run folder (fig5_*.png here are the 3-seed runs).
    for d in mfeat avmnist; do
      raml_steps=$([ $d = mfeat ] && echo 500 || echo 300)
      for m in raml concat augmentation; do
        extra=(--set train.num_seeds=5)
        [ $m = raml ] && extra+=(--set train.steps=$raml_steps)
        train "$runs/t2_$d/$m" "configs/${d/avmnist/avmnist_offline}/$m.py" "${extra[@]}"
        corrupt "$runs/t2_$d/$m" "$runs/t2_$d/fig5_$m.png"
      done
    done
    ;;
  eval)  # Tables II-III and Figure 5 (noise on the first modality, masking on the second).
    for d in avmnist mfeat; do
      for m in raml augmentation concat; do
        corrupt "$runs/$d/$m"
      done
    done
    ;;
  *) echo "unknown stage $s" >&2; exit 2 ;;
  esac
done
"$py" experiments/raml/make_table.py "$runs" > experiments/raml/results.md
cat experiments/raml/results.md
