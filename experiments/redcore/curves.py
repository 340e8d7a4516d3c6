"""RedCore's Figure 5(c): test accuracy and weighted F1 over training, per seed, of trained runs.

  python experiments/redcore/curves.py OUT.json RUN_DIR ...

Each run is a ``mmjax train`` of several seeds that kept a checkpoint every few steps
(``train.checkpoint_every``, ``train.keep_checkpoints``; experiments/redcore/run.sh part
``curves``). Every checkpoint is restored and evaluated on the test split's modality subsets
(``evaluate.subsets``, the evaluation ``eval.json`` holds); the average over the subsets of
accuracy and weighted F1 is recorded per seed. OUT.json:
``{run folder name: {"steps": [...], "seeds": [...], "accuracy": [[per seed] per step],
"weighted_f1": [...]}}``, which experiments/redcore/make_table.py plots (fig5c_mfeat.png) and
tests (the mean over the curve per seed, paired across seeds).
"""

import json
import pathlib
import sys

import jax

from mmjax import cli, evaluate, report, train
from mmjax.checkpoint import Checkpointer

METRICS = ("accuracy", "weighted_f1")


def curve(workdir: pathlib.Path) -> dict:
    """The per-seed test curves of one run (see the module docstring)."""
    config = cli._load_workdir_config(workdir)
    s = train.setup(config)
    data, _ = train.device_data(s)
    like = jax.eval_shape(lambda: train.init_states(s, data))
    predict = evaluate.make_predict(s.method, s.dataset.spec.modalities, s.mesh)
    ckpt = Checkpointer(workdir / "checkpoints")
    out = {"steps": [], "seeds": None, **{m: [] for m in METRICS}}
    try:
        for step in ckpt.steps():
            states = ckpt.restore(like, step)
            result = evaluate.subsets(s.method, states, s.dataset, config, s.mesh,
                                      split="test", predict=predict)
            out["steps"].append(step)
            for m in METRICS:
                cell = report.stats(result, report.AVERAGE, m)
                out[m].append(list(cell.values))
                out["seeds"] = list(cell.seeds)
    finally:
        ckpt.close()
    return out


def main(argv) -> int:
    """Writes OUT.json from the runs named on the command line."""
    if len(argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    out = pathlib.Path(argv[0])
    doc = {pathlib.Path(w).name: curve(pathlib.Path(w)) for w in argv[1:]}
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
