"""Times PyTorch equivalents (benchmarks/torch/steps.py) against mmjax's compiled steps, interleaved.

Command (from the repository root, in an environment with torch and mmjax, e.g. a separate venv:
``python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch && /tmp/torchvenv/bin/pip
install -e .``; torch is never a dependency of mmjax)::

  python benchmarks/torch/compare.py [--cases smil_meta,concat,redcore,mla,raml] [--rounds 5]
                                     [--steps 10] [--threads 2] [--flags]

(default cases: smil_meta,concat,redcore,mla)

Per case: builds the mmjax side (the case's config file with ``mmjax.bench.with_settings``, then
``compile_case``: a compiled chunk of ``--steps`` steps) and the torch side, warms both up (two
calls each), then runs ``--rounds`` rounds, each a torch block of ``--steps`` steps followed by one
mmjax call of ``--steps`` steps, so both sides see the same machine load. Prints one JSON line per
case: the median ms per step of each side, ``ratio`` = mmjax / torch (below 1: mmjax is faster),
torch's thread count, the load average at the start and the end, versions and the device. MLA's step
is one round of M unimodal updates on both sides (``mmjax_updates_per_step`` says how many mmjax
steps make one round: M if mmjax's MLA step is still a single unimodal update). Figures on a shared
CPU are indicative only; recorded figures go in benchmarks/README.md.

The mmjax side runs as the ``mmjax`` command line does: with the backend policy's XLA:CPU flags
(``mmjax.policy.with_cpu_flags``) added to ``XLA_FLAGS``, unless ``XLA_FLAGS`` sets them itself.
``--flags`` reruns the comparison once per XLA:CPU setting of ``FLAGS`` on top of those (XLA reads
its flags once per process, so each setting is its own process, one after the other); every record
carries its ``xla_flags`` and its own interleaved PyTorch baseline, so the ratios compare across
settings.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import torch  # noqa: E402

from mmjax import bench  # noqa: E402
from mmjax import config as config_lib  # noqa: E402
from mmjax import policy  # noqa: E402

import steps as torch_steps  # noqa: E402

ROOT = HERE.parent.parent
SMIL_META = ("method.phase1_steps=0", "method.phase2_steps=0", "method.memory_size=256")

# case -> (mmjax config name, bench.shapes() key, batch, overrides)
CASES = {
    "smil_meta": ("smil", "avmnist_offline", 64, SMIL_META),
    "concat": ("concat", "avmnist_offline", 64, ()),
    "redcore": ("redcore", "iemocap_sequences", 128, ()),
    "mla": ("mla", "features512", 64, ()),
    "raml": ("raml", "food_features", 128, ()),
}
DEFAULT_CASES = ("smil_meta", "concat", "redcore", "mla")
# XLA:CPU settings of the pinned jaxlib tried on the small-matrix steps (MLA, RAML): its oneDNN,
# XNNPACK and YNNPACK paths for dots and elementwise ops, fast math, denormals flushed (as the
# torch side does), single-threaded Eigen and the concurrency-optimised scheduler; each on top of
# the policy's flags ("" is the policy alone; individual_dot undoes its YNNPACK dot fusion).
FLAGS = (
    "",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise",
    "--xla_cpu_experimental_ynn_fusion_type=individual_dot",  # jaxlib's default, not the policy's
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_ftz=true",
    "--xla_cpu_multi_thread_eigen=false",
    "--xla_cpu_enable_concurrency_optimized_scheduler=true",
    "--xla_cpu_prefer_vector_width=512",
)


def mmjax_side(case: str, steps: int):
    """The compiled mmjax chunk of ``steps`` steps of ``case``: ``(call, updates_per_step)``.

    ``call()`` runs one chunk and blocks on it. ``updates_per_step`` is how many mmjax steps
    make one of the case's steps (1; for MLA, M if mmjax's step is one unimodal update).
    """
    name, shapes, batch, overrides = CASES[case]
    # The config file's program (its optimiser and widths), which the PyTorch side mirrors.
    file = ROOT / "configs" / bench.shapes()[shapes].configs / f"{name}.py"
    config = bench.with_settings(config_lib.load(str(file)), overrides, batch_size=batch,
                                 num_seeds=1, steps_per_call=steps)
    spec = bench.shapes()[shapes].spec
    compiled, states, args, _, _, _ = bench.compile_case(config, spec)
    holder = {"states": states, "metrics": None}

    def call():
        holder["states"], holder["metrics"] = jax.block_until_ready(
            compiled(holder["states"], *args))

    call()
    per_step = 1
    if case == "mla" and "modality" in holder["metrics"]:  # one step = one unimodal update
        per_step = spec.num_modalities
    return call, per_step


def compare_case(case: str, rounds: int, steps: int, threads: int) -> dict:
    """Builds, warms up and times both sides of ``case`` interleaved; returns its JSON record."""
    load_start = os.getloadavg()
    call, per_step = mmjax_side(case, steps)
    batch = CASES[case][2]
    side = torch_steps.CASES[case](batch)
    for _ in range(2):
        side.run(steps)
        call()
    t_torch, t_mmjax = [], []
    for _ in range(rounds):
        tic = time.perf_counter()
        side.run(steps)
        t_torch.append((time.perf_counter() - tic) / steps * 1e3)
        tic = time.perf_counter()
        call()
        t_mmjax.append((time.perf_counter() - tic) / steps * per_step * 1e3)
    tm, jm = statistics.median(t_torch), statistics.median(t_mmjax)
    return {"case": case, "batch": batch, "steps_per_round": steps, "rounds": rounds,
            "torch_ms_per_step": round(tm, 3), "mmjax_ms_per_step": round(jm, 3),
            "ratio": round(jm / tm, 3), "mmjax_updates_per_step": per_step,
            "torch_threads": threads, "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "load_avg": [round(x, 2) for x in (*load_start, *os.getloadavg())],
            "jax": jax.__version__, "torch": torch.__version__,
            "device": jax.devices()[0].device_kind}


def main(argv=None) -> None:
    """Parses the command line and prints one JSON line per case."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per block and per call")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--flags", action="store_true",
                        help="one run per XLA:CPU setting of FLAGS, one after the other")
    args = parser.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {', '.join(CASES)}")
    if args.flags:
        command = [sys.executable, __file__, "--cases", ",".join(cases), "--rounds",
                   str(args.rounds), "--steps", str(args.steps), "--threads", str(args.threads)]
        for flags in FLAGS:
            subprocess.run(command, env={**os.environ, "XLA_FLAGS": flags}, check=True)
        return
    # Before the first computation: XLA reads XLA_FLAGS once, when it starts.
    os.environ["XLA_FLAGS"] = policy.with_cpu_flags(os.environ.get("XLA_FLAGS", ""))
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    for case in cases:
        print(json.dumps(compare_case(case, args.rounds, args.steps, args.threads)), flush=True)


if __name__ == "__main__":
    main()
