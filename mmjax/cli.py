"""The ``mmjax`` command: ``train``, ``eval``, ``report``, ``bench``, ``data build|info|prepare``,
``config show``, ``list``.

Mistakes a user can fix (bad config or data, unknown keys, a workdir that is not ours or that
another process is using, a file the system refuses: read-only, not a directory, disk full) end
with one line ``mmjax: error: ...`` on stderr and exit code 2, before any training starts. A command
stopped by SIGTERM/SIGINT, at any moment, ends with one line and exits 130 (SIGINT) or 143
(SIGTERM); in training a checkpoint is saved first. A diverged run (NaN/inf) exits 1 naming the
step and the quantity.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from mmjax.config import EVAL_PROTOCOLS
from mmjax.errors import (Interrupted, TrainingDiverged, UserError, check_signals,
                          deferred_signals, pending_signal, raising_signals)


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
    """``"float32,bfloat16"`` -> ``("float32", "bfloat16")``: values of ``train.dtype``."""
    from mmjax.config import TrainConfig, field_choices

    values, valid = tuple(text.split(",")), field_choices(TrainConfig, "dtype")
    if not set(values) <= set(valid):
        raise argparse.ArgumentTypeError(f"{text!r}: use comma-separated values of "
                                         f"{', '.join(valid)}")
    return values


DESCRIPTION = ("multimodal learning with missing or corrupted modalities: train, evaluate, report "
               "and benchmark the methods of mmjax")
LISTS = ("methods", "datasets", "configs")


def _parser() -> argparse.ArgumentParser:
    from mmjax import __version__, report, sweep

    parser = _Parser(prog="mmjax", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"mmjax {__version__}")
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not keep compiled programs in the persistent cache "
                             "(default: $JAX_COMPILATION_CACHE_DIR, else ~/.cache/mmjax/jax-compile)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("train", help="train a config, then evaluate it on every modality subset")
    p.add_argument("--config", required=True, help="PATH[:ARG], e.g. configs/avmnist_offline/"
                                                   "augmentation.py:quick")
    p.add_argument("--workdir", required=True, help="run directory (resumed if it exists)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.steps=500 (repeatable)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files into WORKDIR/tensorboard "
                        "(train.tensorboard=True; needs pip install 'mmjax[tensorboard]')")
    p.add_argument("--init-from", metavar="DIR[:STEP]",
                   help="start from the parameters of another run's checkpoint (its newest, or "
                        "STEP); the shapes must match (train.init_from)")

    p = sub.add_parser("eval", help="evaluate a trained workdir under a protocol")
    p.add_argument("--workdir", required=True,
                   help="a run directory of mmjax train (its newest readable checkpoint is used)")
    p.add_argument("--protocol", default="subsets", choices=EVAL_PROTOCOLS)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override eval.* fields, e.g. --set eval.split=val")

    p = sub.add_parser("report", help=report.DESCRIPTION)
    report.add_arguments(p)

    p = sub.add_parser("sweep", help=sweep.DESCRIPTION)
    sweep.add_arguments(p)

    p = sub.add_parser("list", help="the registered methods, the datasets, or the shipped configs")
    p.add_argument("what", nargs="?", choices=LISTS, default="methods")

    p = sub.add_parser("bench", help="time compiled train steps (JSON lines on stdout)")
    p.add_argument("--methods", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--suite", choices=("paper",),
                   help="paper: each method at its paper's shapes and batch (ignores --dataset, "
                        "--batch)")
    p.add_argument("--dataset", default="avmnist_offline",
                   help="shapes to benchmark at (bench.shapes(): declared by the "
                        "datasets' registry entries)")
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

    p = sub.add_parser("config", help="print a resolved config with each field's documentation")
    p.add_argument("action", choices=("show",))
    p.add_argument("spec", metavar="PATH[:ARG]",
                   help="a config file and its variants, e.g. configs/mfeat/smil.py:quick")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, as mmjax train's --set (repeatable)")

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
    from mmjax import train

    flags = (["train.tensorboard=True"] if args.tensorboard else []) + (
        [f"train.init_from={args.init_from}"] if args.init_from else [])
    config = config_lib.override(config_lib.load(args.config), [*args.set, *flags])
    result = train.train(config, args.workdir)
    print(_markdown(result))
    return 0


def _eval(args) -> int:
    """Evaluates a workdir's newest readable checkpoint into ``eval-[<protocol>-]<split>.json``
    and ``.md`` (never training's ``eval.json``), holding the workdir's lock meanwhile."""
    from mmjax import config as config_lib
    from mmjax import evaluate, train
    from mmjax import workdir as workdir_lib

    workdir = pathlib.Path(args.workdir)
    if not (workdir / "config.json").is_file():
        raise UserError(f"{workdir} is not an mmjax run (no config.json)")
    if any(not a.startswith("eval.") for a in args.set):
        raise UserError("mmjax eval only accepts --set eval.* overrides")
    workdir_lib.check_run_files(workdir, write=True)
    train.check_same_data(workdir, None)  # before loading: a user's data is not in the registry
    with workdir_lib.WorkdirLock(workdir) as lock:
        lock.acquire()
        config = config_lib.override(_load_workdir_config(workdir), args.set)
        # A packed sweep run keeps its replicas (seeds, masks) in replicas.json.
        s = train.setup(config, replicas=train.read_replicas(workdir, config))
        step, states = train.restore_states(s, workdir, with_step=True)
        if step < config.train.steps:
            print(f"mmjax: warning: {workdir} is not finished: evaluating its checkpoint of step "
                  f"{step} of {config.train.steps}", file=sys.stderr)
        result = evaluate.RUNNERS[args.protocol](s.method, states, s.dataset, config, s.mesh,
                                                 seeds=s.replicas and [r.seed for r in s.replicas])
        check_signals()
        result = evaluate.at_step(result, step)
        evaluate.write(workdir, evaluate.file_stem(args.protocol, config.eval.split), result)
    print(_markdown(result))
    return 0


def _load_workdir_config(workdir: pathlib.Path):
    from mmjax import train

    file = workdir / "config.json"
    raw = train.read_config_json(file)
    try:
        return train.config_from_json(raw)
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{file} is not a readable mmjax config ({type(e).__name__}: {e})") from e


def _markdown(result: dict) -> str:
    """The eval table of ``result`` with its dataset's headline metrics (its registry entry's)."""
    from mmjax import evaluate
    from mmjax.data import registry

    first = next(iter(result["subsets"].values()))
    return evaluate.to_markdown(result, registry.headline_metrics(result["dataset"], first))


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
    data.entry(args.name)  # an unknown name fails first, listing the datasets
    config = config_lib.ExperimentConfig()
    config = config_lib.override(config, [f"data.name={args.name}", *args.set])
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


def _config(args) -> int:
    """``mmjax config show``: the config ``mmjax train --config SPEC --set ...`` would run."""
    from mmjax import config as config_lib

    config = config_lib.override(config_lib.load(args.spec), args.set)
    print(f"# {args.spec}{''.join(f' --set {a}' for a in args.set)}")
    print(config_lib.show(config), end="")
    return 0


def _configs_dir() -> pathlib.Path | None:
    """The shipped ``configs/`` folder: the checkout's (next to the package), else ``./configs``."""
    import mmjax

    for folder in (pathlib.Path(mmjax.__file__).resolve().parent.parent / "configs",
                   pathlib.Path("configs")):
        if folder.is_dir():
            return folder
    return None


def _list(args) -> int:
    """Prints one name per line: method names, dataset names, or config paths with variants."""
    if args.what == "methods":
        from mmjax import methods

        print("\n".join(sorted(methods.REGISTRY)))
    elif args.what == "datasets":
        from mmjax import data

        print("\n".join(data.NAMES))
    else:
        folder = _configs_dir()
        if folder is None:
            raise UserError("no configs/ folder here or next to the mmjax package")
        print("\n".join(str(f) for f in sorted(folder.glob("*/*.py")) if f.name != "__init__.py"))
    return 0


def _report(args) -> int:
    from mmjax import report

    return report.run(args)


def _sweep(args) -> int:
    from mmjax import sweep

    return sweep.run(args)


COMMANDS = {"train": _train, "eval": _eval, "report": _report, "sweep": _sweep, "bench": _bench,
            "data": _data, "config": _config, "list": _list}


def compile_cache(enabled: bool) -> str | None:
    """Turns on JAX's persistent compilation cache (unless ``enabled`` is False); returns its folder.

    ``$JAX_COMPILATION_CACHE_DIR`` wins (JAX reads it itself); otherwise the cache lives in
    ``$XDG_CACHE_HOME/mmjax/jax-compile`` (``~/.cache/mmjax/jax-compile``), so a rerun of the same
    config skips XLA's compile (RedCore's takes about 37 s on the 2-core CPU).
    """
    import jax

    if not enabled:
        jax.config.update("jax_compilation_cache_dir", None)
        return None
    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
        folder = str(pathlib.Path(base) / "mmjax" / "jax-compile")
        jax.config.update("jax_compilation_cache_dir", folder)
    return folder


def _os_error(e: OSError) -> str:
    """``PATH: reason`` of an OSError (both paths of a failed rename)."""
    paths = [p for p in (e.filename, e.filename2) if p is not None]
    reason = e.strerror or str(e)
    return f"{' -> '.join(map(str, paths))}: {reason}" if paths else reason


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mmjax`` console script; returns the exit code.

    The one place that turns errors into lines: ``UserError`` and ``OSError`` (exit 2), a signal
    (``Interrupted``, exit 128 + signal), a diverged run (exit 1).
    """
    with raising_signals():
        try:
            args = _parser().parse_args(argv)
            with deferred_signals():  # a signal during the heavy imports is raised after them
                from mmjax import policy
                # Before XLA starts: it reads XLA_FLAGS once, at the first computation.
                os.environ["XLA_FLAGS"] = policy.with_cpu_flags(os.environ.get("XLA_FLAGS", ""))
                import mmjax.train  # noqa: F401 (jax, flax, optax, orbax)
                if args.command in ("train", "eval", "data", "sweep"):
                    import tensorflow_datasets  # noqa: F401
            compile_cache(not args.no_compile_cache)
            return COMMANDS[args.command](args)
        except UserError as e:
            print(f"mmjax: error: {e}", file=sys.stderr)
            return 2
        except OSError as e:
            print(f"mmjax: error: {_os_error(e)}", file=sys.stderr)
            return 2
        except Interrupted as e:
            print(f"mmjax: {e}", file=sys.stderr)
            return 128 + e.signum
        except KeyboardInterrupt:  # SIGINT before our handler was installed
            print("mmjax: stopped by signal 2; run the same command to resume", file=sys.stderr)
            return 130
        except TrainingDiverged as e:
            print(f"mmjax: training stopped: {e}", file=sys.stderr)
            return 1
        except Exception:
            # Our Interrupted, raised inside a C extension's import or a library callback, can
            # come out as another error (ImportError "error while initializing the extension").
            signum = pending_signal()
            if signum is None:
                raise
            print(f"mmjax: stopped by signal {signum} before training started; run the same "
                  "command to start again", file=sys.stderr)
            return 128 + signum


def run() -> None:
    """``python -m mmjax`` and the console script: exit with ``main``'s code.

    After a signal the process ends with ``os._exit``: the interpreter's normal shutdown would
    wait for (or crash in) threads that XLA, orbax or tfds left running mid-operation.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    code = main()
    if code in (128 + 2, 128 + 15):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
