"""``mmjax sweep``: a grid of configs trained in one process, resumable, ending with its table.

A *point* of the grid is a set of ``--set``-style overrides of the base config::

    mmjax sweep --config configs/mfeat/concat.py:quick --workdir runs/sweep \\
        --set missing.protocol=independent --grid 'missing.rates=[0.8,0.5],[0.5,0.5]' --seeds 3

- ``--grid KEY=V1,V2,...`` is one axis; several axes form their cartesian product. Values are
  split on the commas outside brackets, so a tuple field's values are JSON lists
  (``missing.rates=[0.8,0.5],[0.2,0.5]``). ``--grid-file F`` lists explicit points, one
  ``KEY=V KEY=V`` line each (shell quoting; ``#`` comments), multiplied by the ``--grid`` axes;
  a line's ``name=NAME`` names its folder and its row. The key ``config`` swaps the config file
  itself (``config=configs/mfeat/sum.py:quick``).
- ``--seeds N`` adds the axis ``train.seed = s, ..., s+N-1`` (``s``: the first point's seed,
  ``--set train.seed=S`` included) with one replica per point.

Every point is resolved and checked (``mmjax.config.override``, then ``train.setup``: the data,
the method, the masks) before anything is written; a bad point is one ``UserError`` line naming
it. Each point's results live in its own folder under ``DIR``, named from its values
(``missing.rates=0.8,0.5`` -> ``missing.rates-0.8_0.5``; one folder level for a grid-file line,
its ``KEY-VALUE`` names joined by ``+``, then one per axis, then the seeds); the consecutive
seeds of one label share one folder (a *slot*: ``train.seed-0..2``), holding ``config.json`` and
``eval.json`` as that slot's run alone would, so ``mmjax report DIR`` reads the grid point by
point. A rerun of the same command finds them: finished slots are read back, unfinished runs
resume exactly (``train.train``'s doing). ``DIR/sweep.json`` records the points, their folders,
their runs and each run's status; a rerun keeps the record of a finished run whose points it reads
back (its folder, its seconds of training: ``kept_runs``).

Packing: slots whose programs are identical up to data (``program_key``: configs equal but for
the seeds, the ``missing`` section and the traced fields, ``optim.lr`` and whatever a method
declares, ``train.traceable_fields``) train as the replicas of one run, one compiled program:
each replica has its slot's seed, training mask and traced values (``train.Replica``), and
trains and evaluates exactly as its point alone (tests/test_sweep.py, tests/test_replicas.py:
identical evaluations, the learning rate kept in the optimiser state). A run of one slot trains
in the slot's folder; a packed run of several trains under ``DIR/packed-runs/`` (its
``replicas.json``, ``eval-replicas.json`` and ``metrics-replicas.jsonl``, each log column a list
of the replicas' values, there) and then writes each slot's ``config.json``, its learning curves
(``metrics.jsonl``: its replicas' mean, ``slot_log``; ``metrics-replicas.jsonl``: its seeds'
values) and its slice of the evaluation
(``evaluate.select_replicas``) into the slot's folder. On N
devices the replicas are spread over them (``mmjax.parallel``: the replica mesh axis); with
``train.distributed`` every process runs the same command, trains its share of each run's
replicas, and process 0 writes the files. Every run trains in this one process, so imports are
paid once and a dataset is loaded once (``train.train(..., dataset=)``).

Points under model selection (``train.eval_every`` > 0, ``train.select`` not ``last``) are not
packed: a run selects one step for all its replicas. A finished slot is never packed again (a
later sweep that adds points trains only the new ones, packed among themselves); a slot of a
packed run cannot be extended to more ``train.steps`` (its folder has no checkpoint: use a new
``--workdir``). ``--no-pack`` trains one run per point. Where the backend policy copies the
step once per replica instead of vmapping it (a convolutional network on the CPU,
``mmjax.policy``), a program's compile time grows with its copies, so those points are not
packed: each trains as its own run of one copy, and the runs of one program compile once (the
persistent compilation cache serves the others; ``copied_programs``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import itertools
import json
import pathlib
import re
import shlex
import sys
import time
from collections.abc import Collection, Sequence

import numpy as np

from mmjax import config as config_lib
from mmjax import report
from mmjax.config import ExperimentConfig
from mmjax.errors import Interrupted, TrainingDiverged, UserError, check_signals

DESCRIPTION = ("train a grid of configs (--grid axes, --grid-file points, --seeds) in one "
               "process, the points that differ only in seeds, missing rates or learning rates "
               "packed into one program; resumable; prints the grid's table")
MANIFEST = report.SWEEP_RECORD
CONFIG_KEY = "config"  # the grid key that swaps the config file
NAME_KEY = "name"  # a grid-file line's name: its folder and its row in the table
PSEUDO_KEYS = (CONFIG_KEY, NAME_KEY)  # grid keys that are not config fields
SEED_KEYS = ("train.seed", "train.num_seeds")  # never table rows: the seeds of a row pool
_SAFE = re.compile(r"[^A-Za-z0-9._+=-]")
_MAX_PART = 100  # characters of one folder name taken from a value (longer ones are hashed)


# ----------------------------------------------------------------------------------------------
# The grid: axes, points, their configs.
# ----------------------------------------------------------------------------------------------


def split_values(text: str) -> list[str]:
    """``"1e-3,[0.8,0.5],a"`` -> ``["1e-3", "[0.8,0.5]", "a"]``: the commas outside brackets and
    quotes separate values."""
    values, current, depth, quote = [], [], 0, None
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        elif ch == "," and depth == 0:
            values.append("".join(current))
            current = []
            continue
        current.append(ch)
    values.append("".join(current))
    return values


def parse_axis(text: str) -> tuple[str, list[str]]:
    """``--grid KEY=V1,V2,...`` -> ``(KEY, [V1, V2, ...])`` (values as typed)."""
    key, sep, rest = text.partition("=")
    values = split_values(rest) if sep else []
    if not key or not values or not all(values):
        raise UserError(f"--grid expects KEY=V1,V2,... (tuple values as JSON lists: "
                        f"KEY=[a,b],[c,d]), got {text!r}")
    if len(set(values)) != len(values):
        raise UserError(f"--grid {key}: a value is repeated in {rest!r}")
    return key, values


def read_grid_file(path: str | pathlib.Path) -> list[list[tuple[str, str]]]:
    """The points of a grid file: one ``KEY=V KEY=V`` line each (shell quoting, ``#`` comments,
    blank lines skipped)."""
    file = pathlib.Path(path)
    if not file.is_file():
        raise UserError(f"grid file not found: {path}")
    points = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as e:
            raise UserError(f"{path}:{number}: {e}") from None
        if not words:
            continue
        point = []
        for word in words:
            key, sep, value = word.partition("=")
            if not sep or not key or not value:
                raise UserError(f"{path}:{number}: expected KEY=VALUE, got {word!r}")
            point.append((key, value))
        points.append(point)
    if not points:
        raise UserError(f"grid file {path} lists no point")
    return points


def expand(axes: Sequence[tuple[str, list[str]]],
           file_points: Sequence[Sequence[tuple[str, str]]] = ()
           ) -> list[tuple[list[tuple[str, str]], int]]:
    """The points: every grid-file point (or one empty point) times the cartesian product of the
    axes, in order (the last axis varies fastest), each with the number of its leading values
    that came from the file. A key twice in one point is refused."""
    points = []
    for base in file_points or [[]]:
        for combo in itertools.product(*[[(key, v) for v in values] for key, values in axes]):
            point = [*base, *combo]
            keys = [k for k, _ in point]
            if len(set(keys)) != len(keys):
                twice = next(k for k in keys if keys.count(k) > 1)
                raise UserError(f"grid key {twice!r} is given twice (in --grid and --grid-file, "
                                "or twice in one line)")
            points.append((point, len(base)))
    return points


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of the grid: its values as typed (the first ``from_file`` from its grid-file
    line, the others one per ``--grid`` axis) and its resolved config."""

    values: tuple[tuple[str, str], ...]
    config: ExperimentConfig
    from_file: int = 0

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.values)

    def text(self, key: str) -> str:
        """The value of ``key`` as the resolved config holds it (so ``1e-3`` and ``0.001`` read
        the same); the config file as ``stem[:variant]`` for ``config``, ``name`` as given."""
        if key == NAME_KEY:
            return dict(self.values)[key]
        if key == CONFIG_KEY:
            path, _, arg = dict(self.values)[key].partition(":")
            return pathlib.Path(path).stem + (f":{arg}" if arg else "")
        return value_text(functools.reduce(getattr, key.split("."), self.config))

    def _levels(self) -> list[list[str]]:
        """The keys of each folder level: the file's (or just ``name``), then one per axis;
        seeds left out."""
        line = [k for k in self.keys[:self.from_file] if k not in SEED_KEYS]
        if NAME_KEY in line:
            line = [NAME_KEY]
        axes = [[k] for k in self.keys[self.from_file:] if k not in SEED_KEYS]
        return [level for level in [line, *axes] if level]

    @property
    def label(self) -> str:
        """``KEY=VALUE ...`` of its keys but the seeds, a line's ``name`` alone for the line's
        keys (its row in the table)."""
        words = [self.text(k) if k == NAME_KEY else f"{k}={self.text(k)}"
                 for level in self._levels() for k in level]
        return " ".join(words) or "base"

    def parts(self) -> list[str]:
        """Its folder names: one for its grid-file line (``KEY-VALUE`` joined by ``+``, or the
        line's ``name``), one ``KEY-VALUE`` per axis; filesystem-safe."""
        return ["+".join(_SAFE.sub("_", self.text(k)) if k == NAME_KEY
                         else folder_name(k, self.text(k)) for k in level)
                for level in self._levels()]


def value_text(value) -> str:
    """A config value as text: tuples comma-joined, floats exactly (``repr``), bools lowercase."""
    if isinstance(value, tuple):
        return ",".join(value_text(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, float) else str(value)


def folder_name(key: str, text: str) -> str:
    """``missing.rates``, ``0.8,0.5,0.2`` -> ``missing.rates-0.8_0.5_0.2``: characters outside
    ``[A-Za-z0-9._+=-]`` become ``_``; a name over 100 characters keeps its start and a hash of
    the whole (so it stays unique and stable)."""
    name = _SAFE.sub("_", f"{key}-{text or 'empty'}")
    if len(name) > _MAX_PART:
        digest = hashlib.sha1(f"{key}={text}".encode()).hexdigest()[:10]
        name = f"{name[:_MAX_PART - 11]}-{digest}"
    return name


def resolve(points: Sequence[tuple[Sequence[tuple[str, str]], int]], base_spec: str | None,
            sets: Sequence[str]) -> list[Point]:
    """Each point's config (points as ``expand`` gives them): its ``config`` file (else
    ``base_spec``), then ``sets``, then its values. A bad point raises one ``UserError`` line
    naming it; nothing is run or written."""
    load = functools.cache(config_lib.load)
    set_keys = {s.partition("=")[0] for s in sets}
    resolved = []
    for i, (values, from_file) in enumerate(points):
        where = f"grid point {i + 1} ({' '.join(f'{k}={v}' for k, v in values) or 'base'})"
        overlap = set_keys & {k for k, _ in values}
        if overlap:
            raise UserError(f"{where}: {', '.join(sorted(overlap))} is set by both --set and "
                            "the grid")
        spec = dict(values).get(CONFIG_KEY, base_spec)
        if spec is None:
            raise UserError("mmjax sweep needs --config (or a 'config' key in the grid)")
        try:
            config = config_lib.override(load(spec), [
                *sets, *(f"{k}={v}" for k, v in values if k not in PSEUDO_KEYS)])
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        resolved.append(Point(tuple(values), config, from_file))
    return resolved


# ----------------------------------------------------------------------------------------------
# Runs: the points packed into workdirs.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Slot:
    """One point folder of the sweep: the points of one label whose seeds follow each other
    (one point per seed under ``--seeds``), with ``config`` as that folder's run alone would
    have it (``train.seed`` its first seed, ``train.num_seeds`` all of them); ``replicas[i]``:
    the replica indices of ``points[i]`` in it. ``mmjax report DIR`` reads these folders."""

    dir: str  # relative to the sweep's folder
    config: ExperimentConfig
    points: list[int]
    replicas: list[list[int]]
    label: str


@dataclasses.dataclass
class Run:
    """One training run of the sweep: one compiled program for the replicas of its ``slots``.

    ``replicas`` is None for a run of one slot (it trains in the slot's folder, as ``mmjax
    train`` would); a packed run of several slots trains ``replicas`` (``train.Replica``, slot
    after slot) in its own folder under ``packed-runs/``, then writes each slot's config and
    its slice of the evaluation into the slot's folder."""

    dir: str  # relative to the sweep's folder
    config: ExperimentConfig
    slots: list[Slot]
    replicas: tuple | None = None
    status: str = "pending"
    error: str | None = None
    seconds: float | None = None

    @property
    def points(self) -> list[int]:
        return [i for slot in self.slots for i in slot.points]

    @property
    def label(self) -> str:
        return self.slots[0].label

    def offsets(self) -> list[int]:
        """The index of each slot's first replica in the run."""
        counts = [slot.config.train.num_seeds for slot in self.slots]
        return [sum(counts[:i]) for i in range(len(counts))]

    def seeds(self) -> list[int]:
        """Each replica's seed, in order."""
        if self.replicas is None:
            return list(_seeds(self.config))
        return [r.seed for r in self.replicas]


PACKED = "packed-runs"  # the folder of the packed runs, under the sweep's


def _seeds(config: ExperimentConfig) -> range:
    return range(config.train.seed, config.train.seed + config.train.num_seeds)


def _without(config: ExperimentConfig, keys: Sequence[str]) -> str:
    """The config as JSON text without the fields ``keys`` (``section.field``; ``missing``:
    the whole section)."""
    raw = config_lib.to_dict(config)
    for key in keys:
        section, _, name = key.partition(".")
        if name:
            raw[section].pop(name)
        else:
            raw.pop(section)
    return json.dumps(raw, sort_keys=True)


def _value(config: ExperimentConfig, key: str):
    return functools.reduce(getattr, key.split("."), config)


def selects_last(config: ExperimentConfig) -> bool:
    """Whether ``eval.json`` reports the last step (no model selection): only then do packed
    replicas train and report as the runs alone would; model selection picks one step for all
    replicas of a run, on their mean (``mmjax.train``)."""
    return config.train.eval_every == 0 or config.train.select == "last"


def slots_of(points: Sequence[Point], pack: bool = True,
             copied: Collection[str] = ()) -> list[Slot]:
    """The point folders: with ``pack``, the points of one label (same folder names, configs
    equal up to ``train.seed``/``num_seeds``) whose seeds follow each other share a folder; else
    (and under model selection, and for the ``copied`` programs) one folder per point. In order
    of their first point."""
    seed_swept = any(k in SEED_KEYS for p in points for k in p.keys)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(points):
        key = ((tuple(p.parts()), _without(p.config, SEED_KEYS))
               if packable(p.config, pack, copied) else (i,))
        groups.setdefault(key, []).append(i)
    slots = []
    for members in groups.values():
        members = sorted(members, key=lambda i: points[i].config.train.seed)
        chains = [[members[0]]]
        for i in members[1:]:
            if points[i].config.train.seed == _seeds(points[chains[-1][-1]].config).stop:
                chains[-1].append(i)
            else:
                chains.append([i])
        for chain in chains:
            first = points[chain[0]]
            seeds = [s for i in chain for s in _seeds(points[i].config)]
            train_cfg = dataclasses.replace(first.config.train, seed=seeds[0],
                                            num_seeds=len(seeds))
            parts = first.parts()
            if seed_swept:
                span = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}..{seeds[-1]}"
                parts.append(f"{report.SEED_SLOT}{span}")
            replicas = [[s - seeds[0] for s in _seeds(points[i].config)] for i in chain]
            slots.append(Slot("/".join(parts) or "base",
                              dataclasses.replace(first.config, train=train_cfg), chain,
                              replicas, first.label))
    slots.sort(key=lambda s: min(s.points))
    return slots


def program_key(config: ExperimentConfig) -> str:
    """What a slot's program is, as text: its config without what a replica may change (the
    seeds, the ``missing`` section but ``mask_rows``, which changes the program, the traced
    fields, ``train.traceable_fields``). Slots of one key train as the replicas of one run."""
    from mmjax import train as train_lib

    per_replica = [f"missing.{f.name}" for f in dataclasses.fields(config.missing)
                   if f.name != "mask_rows"]
    return _without(config, [*SEED_KEYS, *per_replica, *train_lib.traceable_fields(config)])


def packable(config: ExperimentConfig, pack: bool, copied: Collection[str]) -> bool:
    """Whether a point or slot of ``config`` may share a run with others: packing is on, it
    reports its last step (``selects_last``) and its program is not one of the ``copied``."""
    return pack and selects_last(config) and program_key(config) not in copied


def copied_programs(points: Sequence[Point], datasets: Datasets) -> set[str]:
    """The ``program_key`` of every point whose step the backend policy copies once per replica
    instead of vmapping it (``mmjax.policy``: a convolutional network on the CPU). Their points
    train one run each, every run one copy of the step, and the persistent compilation cache
    shares that program between them: packed, a program of N copies compiles about N times as
    long, and SMIL's 5-copy runs of the issue-24 grid took 1.3 times as long as the 45 points
    one process each (benchmarks/README.md). A point whose setup fails is left to
    ``check_runs``, which names it."""
    from mmjax import train as train_lib

    policy_copies = {}
    for p in points:
        key = program_key(p.config)
        if key in policy_copies:
            continue
        one = dataclasses.replace(p.config, train=dataclasses.replace(p.config.train,
                                                                      num_seeds=1))
        try:
            policy_copies[key] = not train_lib.setup(one, datasets.get(one)).policy.vmap_seeds
        except UserError:
            policy_copies[key] = False
    return {key for key, copies in policy_copies.items() if copies}


def plan(points: Sequence[Point], pack: bool = True, finished: Sequence[str] = (),
         copied: Collection[str] = ()) -> list[Run]:
    """The runs that train ``points``: with ``pack``, every slot (``slots_of``) of one
    ``program_key`` is a replica block of one packed run (not those under model selection, not
    the ``copied`` programs', and not the ``finished`` slot folders: they are read back alone);
    else one run per point. Runs are in order of their first point."""
    slots = slots_of(points, pack, copied)
    groups: dict[tuple, list[Slot]] = {}
    for slot in slots:
        key = ((program_key(slot.config),)
               if packable(slot.config, pack, copied) and slot.dir not in finished
               else ("alone", slot.dir))
        groups.setdefault(key, []).append(slot)
    runs = [run for members in groups.values() for run in _pack(members)]
    runs.sort(key=lambda r: min(r.points))
    _check_dirs([*slots, *(r for r in runs if r.replicas is not None)], points)
    return runs


def _pack(slots: Sequence[Slot]) -> list[Run]:
    """One run of ``slots`` (of one program): the slot's own for one slot (or for slots whose
    replicas are just the first's config's seeds), else a packed run whose replicas carry each
    slot's seeds, missing protocol and the traced values that vary between the slots."""
    from mmjax import train as train_lib

    first = slots[0].config
    varying = [k for k in train_lib.traceable_fields(first)
               if len({_value(slot.config, k) for slot in slots}) > 1]
    replicas = tuple(train_lib.Replica(seed, slot.config.missing,
                                       tuple((k, _value(slot.config, k)) for k in varying))
                     for slot in slots for seed in _seeds(slot.config))
    config = dataclasses.replace(first, train=dataclasses.replace(
        first.train, seed=replicas[0].seed, num_seeds=len(replicas)))
    if len(slots) == 1 or replicas == train_lib.replicas_of(config):
        return [Run(slot.dir, slot.config, [slot]) for slot in slots]
    common = []
    for parts in zip(*(slot.dir.split("/") for slot in slots)):
        if len(set(parts)) > 1:
            break
        common.append(parts[0])
    digest = hashlib.sha1((train_lib.config_text(config) + (train_lib.replicas_text(
        config, replicas) or "")).encode()).hexdigest()[:12]
    return [Run("/".join([PACKED, *common, f"pack-{digest}"]), config, list(slots), replicas)]


def _check_dirs(folders: Sequence[Slot | Run], points: Sequence[Point]) -> None:
    """One ``UserError`` if two folders are one or one folder holds another."""
    by_dir = {}
    for r in folders:
        if r.dir in by_dir:
            a, b = by_dir[r.dir].points[0], r.points[0]
            raise UserError(f"grid points {a + 1} ({points[a].label}) and {b + 1} "
                            f"({points[b].label}) would train in the same folder {r.dir}; "
                            "give them different values")
        by_dir[r.dir] = r
    for d in by_dir:
        parent = d.rsplit("/", 1)[0] if "/" in d else None
        while parent:
            if parent in by_dir:
                raise UserError(f"the run folder {parent} would hold the run folder {d}: give "
                                "every grid point the same keys")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None


def finished_slots(slots: Sequence[Slot], directory: pathlib.Path) -> set[str]:
    """The slot folders that already hold their finished evaluation (a slot of an earlier
    packed run, or a finished run): read back, never packed again."""
    from mmjax import train as train_lib

    done = set()
    for slot in slots:
        workdir = directory / slot.dir
        try:
            same = not train_lib.check_workdir(slot.config, workdir)
        except UserError:
            continue  # reported by check_runs, with the point it belongs to
        if same and train_lib.finished_result(workdir, slot.config) is not None:
            done.add(slot.dir)
    return done


class Datasets:
    """The datasets of a sweep, each loaded once: ``get(config)`` is what ``train.setup`` would
    load for ``config`` (mfeat's 2,000 rows take 0.6-2 s through tfds, AV-MNIST's more, and a
    sweep's runs mostly share one). Their arrays are made read-only, so a run that wrote into
    them would fail instead of changing the next run's data."""

    def __init__(self):
        self._loaded = {}

    def get(self, config: ExperimentConfig):
        from mmjax import data as data_lib
        from mmjax import train as train_lib

        options = train_lib.dataset_options(config)
        key = json.dumps([config.data.name, options], sort_keys=True, default=str)
        if key not in self._loaded:
            dataset = data_lib.load(config.data.name, **options)
            for split in dataset.splits.values():
                for array in (*split.inputs.values(), split.present, split.label):
                    if isinstance(array, np.ndarray):
                        array.flags.writeable = False
            self._loaded[key] = dataset
        return self._loaded[key]


def check_runs(runs: Sequence[Run], directory: pathlib.Path, datasets: Datasets) -> None:
    """Every check ``train.train`` makes before it writes (the data, the method, the masks; an
    existing run's config and replicas), for every run and every slot folder of a packed run,
    so that a bad point stops the sweep before any run."""
    from mmjax import train as train_lib

    for r in runs:
        # A packed run's points one by one first, so that an error names its own point.
        for slot in r.slots if r.replicas is not None else ():
            try:
                train_lib.setup(slot.config, datasets.get(slot.config))
                if train_lib.check_workdir(slot.config, directory / slot.dir):
                    raise UserError(f"{directory / slot.dir} holds a run of fewer steps; "
                                    "use a new --workdir")
            except UserError as e:
                raise UserError(f"grid point {slot.points[0] + 1} ({slot.label}): {e}") from None
        try:
            train_lib.setup(r.config, datasets.get(r.config), r.replicas)
            train_lib.check_workdir(r.config, directory / r.dir, r.replicas)
        except UserError as e:
            raise UserError(f"grid point {r.points[0] + 1} ({r.label}): {e}") from None
        check_signals()


# ----------------------------------------------------------------------------------------------
# Manifest, execution, table.
# ----------------------------------------------------------------------------------------------


def manifest(args: argparse.Namespace, points: Sequence[Point], runs: Sequence[Run],
             kept: Sequence[dict] = ()) -> dict:
    """``sweep.json``: the command's grid, every point (values, folder, replicas there, run)
    and every run (folder, replica seeds, slot folders, points, status, error, seconds); the
    ``kept`` records (``kept_runs``) stand for the runs that read their slots back."""
    kept_run = {d: k["dir"] for k in kept for d in k["slots"]}
    where = {i: (slot.dir, reps, kept_run.get(slot.dir, r.dir)) for r in runs
             for slot in r.slots for i, reps in zip(slot.points, slot.replicas)}
    # A kept slot is read back as a run of its own (``plan``), in the slot's folder.
    records = [*kept, *({"dir": r.dir, "seeds": r.seeds(), "slots": [s.dir for s in r.slots],
                         "points": r.points, "status": r.status, "error": r.error,
                         "seconds": r.seconds} for r in runs if r.dir not in kept_run)]
    return {
        "config": args.config, "set": list(args.set), "grid": list(args.grid),
        "grid_file": args.grid_file, "seeds": args.seeds, "pack": not args.no_pack,
        "points": [{"values": dict(p.values), "label": p.label, "dir": where[i][0],
                    "replicas": where[i][1], "run": where[i][2]} for i, p in enumerate(points)],
        "runs": sorted(records, key=lambda record: min(record["points"])),
    }


def previous_runs(directory: pathlib.Path) -> list[dict]:
    """The runs that ``directory``'s ``sweep.json`` (an earlier sweep's) records as done, with
    their folder and slot folders; none without that file, or when it is not a sweep record
    (damaged: said on stderr, and this sweep records its runs anew)."""
    path = directory / MANIFEST
    if not path.is_file():
        return []
    try:
        # Only the file's text and its JSON are read here: a TypeError or LookupError is a
        # record of another shape (a list for a dict, a missing key), not a bug to hide.
        return [r for r in json.loads(path.read_text())["runs"]
                if r["status"] == "done" and isinstance(r["dir"], str)
                and isinstance(r["slots"], list) and r["slots"]
                and all(isinstance(d, str) for d in r["slots"])]
    except (OSError, ValueError, LookupError, TypeError) as e:
        _say(f"{path} is no readable sweep record ({type(e).__name__}: {e}); its runs are "
             "recorded anew")
        return []


def kept_runs(previous: Sequence[dict], slots: Sequence[Slot],
              finished: Collection[str]) -> list[dict]:
    """The records of ``previous`` (``previous_runs``) that this sweep keeps as they are, their
    ``points`` renumbered to this grid's (it may have gained points): those whose slot folders
    are all ``finished`` slots of this sweep's ``slots``. A rerun reads such a run's points back
    in a second or so; its record keeps the folder, the pack and the seconds it trained."""
    points = {slot.dir: slot.points for slot in slots if slot.dir in finished}
    return [{**r, "points": [i for d in r["slots"] for i in points[d]]} for r in previous
            if all(d in points for d in r["slots"])]


def _write_manifest(directory: pathlib.Path, doc: dict) -> None:
    from mmjax.log import write_atomic

    write_atomic(directory / MANIFEST, json.dumps(doc, indent=2) + "\n")


def _is_writer() -> bool:
    """Whether this process writes the sweep's files (process 0 of a multi-host run)."""
    import jax

    return jax.process_index() == 0


def _say(line: str) -> None:
    """One line on stderr, from process 0."""
    if _is_writer():
        print(f"mmjax: {line}", file=sys.stderr)


def write_slots(r: Run, directory: pathlib.Path, result: dict) -> None:
    """Each slot of the packed run ``r``: its ``config.json`` (as its run alone has it), its
    ``metrics.jsonl`` and ``metrics-replicas.jsonl`` (``slot_log``), then its ``eval.json``/``eval.md``, the run's ``result``
    restricted to its replicas (``evaluate.select_replicas``: what that run alone reports).
    Process 0 only."""
    from mmjax import evaluate
    from mmjax import train as train_lib
    from mmjax.log import write_atomic

    if not _is_writer():
        return
    per_replica = directory / r.dir / train_lib.PER_REPLICA_LOG
    rows = ([json.loads(line) for line in per_replica.read_text().splitlines()]
            if per_replica.is_file() else [])
    for slot, offset in zip(r.slots, r.offsets()):
        workdir = directory / slot.dir
        workdir.mkdir(parents=True, exist_ok=True)
        text = train_lib.config_text(slot.config)
        if not (workdir / "config.json").is_file():
            write_atomic(workdir / "config.json", text)
        picked = range(offset, offset + slot.config.train.num_seeds)
        write_atomic(workdir / "metrics.jsonl", slot_log(rows, picked))
        write_atomic(workdir / train_lib.PER_REPLICA_LOG, slot_log(rows, picked, mean=False))
        evaluate.write(workdir, "eval", evaluate.select_replicas(result, picked))


def slot_log(rows: list[dict], picked: range, mean: bool = True) -> str:
    """A slot's ``metrics.jsonl`` from its packed run's per-replica rows: each column averaged
    over the slot's replicas in float32, as the slot's run alone averages its seeds (the same
    values: each replica trains as its point alone). With ``mean=False``, the slot's own
    ``metrics-replicas.jsonl`` instead: each column the list of its replicas' values (its seeds',
    in seed order), which per-seed statistics of a logged quantity need. The per-replica rows
    hold no ``steps_per_sec`` (the run's, not a slot's)."""
    out = []
    for row in rows:
        values = {k: np.asarray(v, np.float32)[picked.start:picked.stop]
                  for k, v in row.items() if k != "step"}
        values = {k: float(v.mean()) if mean else v.tolist() for k, v in values.items()}
        out.append(json.dumps({"step": row["step"], **values}) + "\n")
    return "".join(out)


def execute(runs: Sequence[Run], directory: pathlib.Path, datasets: Datasets,
            save=lambda: None) -> int:
    """Trains every run with ``train.train`` (a finished one is read back, an unfinished one
    resumes) and writes a packed run's slots, calling ``save`` after each status change. A
    diverged run is recorded and the sweep goes on; a signal or an error is recorded and
    raised. Returns how many diverged."""
    from mmjax import parallel
    from mmjax import train as train_lib

    diverged = 0
    for n, r in enumerate(runs, 1):
        check_signals()
        r.status, r.error = "running", None
        save()
        _say(f"sweep run {n}/{len(runs)}: {r.dir}"
             + (f" ({len(r.slots)} points packed)" if r.replicas is not None else ""))
        tic = time.perf_counter()
        try:
            result = train_lib.train(r.config, directory / r.dir,
                                     dataset=datasets.get(r.config), replicas=r.replicas)
            if r.replicas is not None:
                write_slots(r, directory, result)
            parallel.sync_processes(f"mmjax: sweep run {n} written")
        except TrainingDiverged as e:
            r.status, r.error, diverged = "diverged", str(e), diverged + 1
            _say(f"sweep run {r.dir} diverged: {e}")
        except Interrupted as e:
            r.status, r.error = "interrupted", str(e)
            raise
        except BaseException as e:
            r.status, r.error = "failed", f"{type(e).__name__}: {e}"
            raise
        else:
            r.status = "done"
        finally:
            r.seconds = round(time.perf_counter() - tic, 3)
            save()
    return diverged


def table(runs: Sequence[Run], directory: pathlib.Path, metric: str | None = None,
          row_key: str = "point", cols: Sequence[str] | None = None) -> report.Table:
    """The grid's ``mmjax report`` table: one row per point label (grid order, every seed of
    a label pooled), one column per evaluation condition and the average (or ``cols``, e.g.
    ``["average"]``); a point without ``eval.json`` (diverged, not run) leaves its row empty."""
    slots = [slot for r in runs for slot in r.slots]
    slots.sort(key=lambda s: min(s.points))
    loaded = [(slot, report.load_run(directory / slot.dir, directory)) for slot in slots
              if report.load_result(directory / slot.dir) is not None]
    if not loaded:
        raise UserError(f"no run of the sweep in {directory} has finished")
    metric = metric or report.headline_metric(loaded[0][1].result)
    cols = list(cols or report.conditions(loaded[0][1].result))
    groups: dict[tuple[str, str], list[report.Stats]] = {}
    for slot, found in loaded:
        for c in cols:
            groups.setdefault((slot.label, c), []).append(
                report.stats(found.result, c, metric, slot.config.train.seed))
    rows = list(dict.fromkeys(slot.label for slot in slots))
    cells = {k: report.pool(v) for k, v in groups.items()}
    return report.Table(row_key, report.SUBSET, metric, rows, cols, cells)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``mmjax sweep``'s arguments to ``parser`` (the CLI's ``sweep`` sub-command)."""
    parser.add_argument("--config", help="the base config, PATH[:ARG] (optional when the grid "
                                         "has a 'config' key)")
    parser.add_argument("--workdir", required=True,
                        help="the sweep's folder: one run folder per point, sweep.json "
                             "(resumed if it exists)")
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                        help="one axis of the grid (repeatable: the cartesian product); tuple "
                             "values as JSON lists: missing.rates=[0.8,0.5],[0.5,0.5]")
    parser.add_argument("--grid-file", metavar="FILE",
                        help="explicit points, one 'KEY=V KEY=V' line each (times the --grid "
                             "axes)")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="N seeds per point (train.seed = s..s+N-1), trained as the "
                             "replicas of one program")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of every point, e.g. --set train.steps=500")
    parser.add_argument("--metric", help="the table's metric (default: the evaluation's "
                                         "headline, e.g. accuracy)")
    parser.add_argument("--col-order", metavar="A,B,...",
                        help="the table's columns, in this order (default: every condition of "
                             "the evaluation, the average last), e.g. 'average'")
    parser.add_argument("--no-pack", action="store_true",
                        help="one run (one program) per point, also for points that differ "
                             "only in seeds, missing rates or learning rates")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every point and print the runs; train and write nothing")


def points_of(args: argparse.Namespace) -> list[Point]:
    """The resolved points of the command line (``UserError`` for a bad one)."""
    axes = [parse_axis(a) for a in args.grid]
    file_points = read_grid_file(args.grid_file) if args.grid_file else ()
    if args.seeds is not None:
        if args.seeds < 1:
            raise UserError(f"--seeds must be positive, got {args.seeds}")
        if any(k in SEED_KEYS for k, _ in axes) or any(k in SEED_KEYS for p in file_points
                                                         for k, _ in p):
            raise UserError("--seeds and a train.seed/train.num_seeds grid key exclude each other")
    if any(k == NAME_KEY for k, _ in axes):
        raise UserError(f"'{NAME_KEY}' names a line of a --grid-file; it is no --grid axis")
    if not axes and not file_points and args.seeds is None:
        raise UserError("nothing to sweep: give --grid, --grid-file or --seeds")
    sets = list(args.set)
    if args.seeds is not None:  # counting from the first point's train.seed (--set included)
        seed = resolve(expand(axes, file_points)[:1], args.config, sets)[0].config.train.seed
        axes.append(("train.seed", [str(seed + i) for i in range(args.seeds)]))
        sets = [s for s in sets if s.partition("=")[0] != "train.seed"] + ["train.num_seeds=1"]
    return resolve(expand(axes, file_points), args.config, sets)


def run(args: argparse.Namespace) -> int:
    """Runs ``mmjax sweep`` on parsed arguments: checks every point, trains the runs, prints the
    table. Returns 0, or 1 if a run diverged (the others still train)."""
    from mmjax import parallel
    from mmjax import workdir as workdir_lib

    directory = pathlib.Path(args.workdir)
    if directory.exists() and not (directory / MANIFEST).is_file() and (
            not directory.is_dir() or any(directory.iterdir())):
        raise UserError(f"{directory} exists and is not an mmjax sweep (no {MANIFEST}); use a "
                        "new --workdir")
    points = points_of(args)
    # Multi-host (train.distributed): every process runs this same command and trains every run
    # together (each its share of the replicas, parallel.make_mesh); process 0 writes the files.
    parallel.maybe_initialize_distributed(any(p.config.train.distributed for p in points))
    pack = not args.no_pack
    datasets = Datasets()
    copied = copied_programs(points, datasets) if pack else set()
    slots = slots_of(points, pack, copied)
    finished = finished_slots(slots, directory)
    runs = plan(points, pack, finished, copied)
    check_runs(runs, directory, datasets)
    replicas = sum(r.config.train.num_seeds for r in runs)
    _say(f"sweep of {len(points)} point(s) in {len(runs)} run(s), {replicas} replica(s), in "
         f"{directory}")
    if args.dry_run:
        for r in runs:
            for slot in r.slots:
                print(f"{slot.dir}\t{slot.label}\tseeds {slot.config.train.seed}.."
                      f"{slot.config.train.seed + slot.config.train.num_seeds - 1}\trun {r.dir}")
        return 0
    # Every process has checked the folder before process 0 writes into it.
    parallel.sync_processes("mmjax: sweep checked")
    writer = _is_writer()
    if writer:
        directory.mkdir(parents=True, exist_ok=True)
    with workdir_lib.WorkdirLock(directory, enabled=writer) as lock:
        lock.acquire()
        kept = kept_runs(previous_runs(directory), slots, finished)

        def save():
            if writer:
                _write_manifest(directory, manifest(args, points, runs, kept))

        diverged = execute(runs, directory, datasets, save)
        keys = dict.fromkeys(k for p in points for k in p.keys[p.from_file:]
                             if k not in SEED_KEYS)
        t = table(runs, directory, args.metric,
                  " ".join(keys) if not args.grid_file and keys else "point",
                  args.col_order and args.col_order.split(","))
    if not writer:
        return 1 if diverged else 0
    seeds = sorted({c.n for c in t.cells.values()})
    print(f"{t.metric}, mean ± std over {seeds[0]}" + (f"–{seeds[-1]}" if len(seeds) > 1 else "")
          + f" seed(s), {len(runs)} run(s) in {directory}\n")
    print(report.markdown(t))
    if diverged:
        print(f"mmjax: {diverged} run(s) of the sweep diverged (see {directory / MANIFEST})",
              file=sys.stderr)
    return 1 if diverged else 0
