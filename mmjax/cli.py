"""The ``mmjax`` command: ``train``, ``eval``, ``bench``, ``data build|info|prepare``.

Mistakes a user can fix (bad config or data, unknown keys, a workdir that is not ours) end with one
line ``mmjax: error: ...`` on stderr and exit code 2, before any training starts. A run stopped by
SIGTERM/SIGINT saves a checkpoint and exits 130 (SIGINT) or 143 (SIGTERM); a diverged run (NaN/inf)
exits 1 naming the step and the quantity.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys

from mmjax.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit 2) like every other user error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _int_list(text: str) -> tuple[int, ...]:
    """``"32,64"`` -> ``(32, 64)``: positive integers, comma-separated."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = (0,)
    if min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of positive "
                                         "integers")
    return values


def _dtype_list(text: str) -> tuple[str, ...]:
    """``"float32,bfloat16"`` -> ``("float32", "bfloat16")``."""
    values = tuple(text.split(","))
    if not set(values) <= {"float32", "bfloat16"}:
        raise argparse.ArgumentTypeError(f"{text!r}: use float32, bfloat16 or float32,bfloat16")
    return values


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mmjax", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a config, then evaluate it on every modality subset")
    p.add_argument("--config", required=True, help="PATH[:ARG], e.g. configs/avmnist_offline/"
                                                   "augmentation.py:quick")
    p.add_argument("--workdir", required=True, help="run directory (resumed if it exists)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.steps=500 (repeatable)")

    p = sub.add_parser("eval", help="evaluate a trained workdir under a protocol")
    p.add_argument("--workdir", required=True)
    p.add_argument("--protocol", default="subsets",
                   choices=("subsets", "missing-rate", "corruption"))  # evaluate.PROTOCOLS
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override eval.* fields, e.g. --set eval.split=val")

    p = sub.add_parser("bench", help="time compiled train steps (JSON lines on stdout)")
    p.add_argument("--methods", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--suite", choices=("paper",),
                   help="paper: each method at its paper's shapes and batch (ignores --dataset, "
                        "--batch)")
    p.add_argument("--dataset", default="avmnist_offline",
                   help="shapes to benchmark at (bench.SHAPES)")
    p.add_argument("--batch", type=_int_list, default=(64,), help="e.g. 32,64,128")
    p.add_argument("--num-seeds", type=_int_list, default=(1,), help="e.g. 1,2,4,8")
    p.add_argument("--steps-per-call", type=_int_list, default=(10,), help="e.g. 1,10,100")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--dtype", type=_dtype_list, default=("float32",),
                   help="float32, bfloat16 or both: float32,bfloat16")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of every case's config, e.g. --set "
                        "method.phase1_steps=0 (repeatable)")
    p.add_argument("--compare", metavar="OLD.jsonl", help="print ratios against an earlier run")

    p = sub.add_parser("data", help="build, prepare (from your files) or describe a dataset")
    p.add_argument("action", choices=("build", "info", "prepare"))
    p.add_argument("name")
    p.add_argument("--from", dest="source", metavar="PATH",
                   help="prepare: the folder holding the dataset's published files")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset options as data.* config fields, e.g. --set data.snr_db=-5,15")
    return parser


def _train(args) -> int:
    from mmjax import config as config_lib
    from mmjax import evaluate, train

    config = config_lib.override(config_lib.load(args.config), args.set)
    result = train.train(config, args.workdir)
    print(evaluate.to_markdown(result, _headline_metrics(result)))
    return 0


def _eval(args) -> int:
    from mmjax import config as config_lib
    from mmjax import evaluate, train

    workdir = pathlib.Path(args.workdir)
    config = _load_workdir_config(workdir)
    if any(not a.startswith("eval.") for a in args.set):
        raise UserError("mmjax eval only accepts --set eval.* overrides")
    config = config_lib.override(config, args.set)
    s = train.setup(config)
    states = train.restore_states(s, workdir)
    result = evaluate.RUNNERS[args.protocol](s.method, states, s.dataset, config, s.mesh)
    stem = "eval" if args.protocol == "subsets" else f"eval_{args.protocol.replace('-', '_')}"
    evaluate.write(workdir, stem, result)
    print(evaluate.to_markdown(result, _headline_metrics(result)))
    return 0


def _load_workdir_config(workdir: pathlib.Path):
    from mmjax import train

    file = workdir / "config.json"
    if not file.is_file():
        raise UserError(f"{workdir} is not an mmjax run (no config.json)")
    try:
        return train.config_from_json(json.loads(file.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{file} is not a readable mmjax config ({type(e).__name__}: {e})") from e


def _headline_metrics(result: dict) -> tuple[str, ...]:
    first = next(iter(result["subsets"].values()))
    preferred = ("accuracy", "weighted_f1", "macro_f1", "f1_micro", "f1_macro", "mae", "corr",
                 "acc2")
    return tuple(k for k in preferred if k in first) or tuple(first)


def _bench(args) -> int:
    from mmjax import bench

    records = bench.run(
        names=None if args.methods == "all" else args.methods.split(","),
        dataset=args.dataset, batch_sizes=args.batch, num_seeds=args.num_seeds,
        steps_per_call=args.steps_per_call, dtypes=args.dtype, repeats=args.repeats,
        suite=args.suite, overrides=tuple(args.set))
    if args.compare:
        print(bench.compare(records, pathlib.Path(args.compare)), file=sys.stderr)
    return 0


def _data(args) -> int:
    from mmjax import config as config_lib
    from mmjax import data, train

    if any(not a.startswith("data.") for a in args.set):
        raise UserError("mmjax data only accepts --set data.* overrides")
    config = config_lib.ExperimentConfig()
    config = config_lib.override(config, [f"data.name={args.name}", *args.set])
    if args.name not in data.NAMES:
        raise UserError(f"unknown dataset {args.name!r}; choose from {', '.join(data.NAMES)}")
    options = train.dataset_options(config)
    if args.action == "prepare":
        if not args.source:
            raise UserError(f"mmjax data prepare {args.name} needs --from PATH")
        print(data.prepare(args.name, args.source))
    elif args.action == "build":
        print(data.build(args.name, **options))
    else:
        print(data.info(args.name, **options))
    return 0


COMMANDS = {"train": _train, "eval": _eval, "bench": _bench, "data": _data}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmjax`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    from mmjax import train

    try:
        return COMMANDS[args.command](args)
    except UserError as e:
        print(f"mmjax: error: {e}", file=sys.stderr)
        return 2
    except train.Interrupted as e:
        print(f"mmjax: {e}", file=sys.stderr)
        return 128 + e.signum
    except train.TrainingDiverged as e:
        print(f"mmjax: training stopped: {e}", file=sys.stderr)
        return 1


def run() -> None:
    """``python -m mmjax`` and the console script: exit with ``main``'s code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())
