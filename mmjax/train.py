"""The training loop: setup -> restore_or_init -> run -> evaluate.

``train(config, workdir)`` is what ``mmjax train`` calls. The whole training set lives on the
device; one jitted call runs ``train.steps_per_call`` steps of one training phase with
``lax.scan`` for all ``train.num_seeds`` replicas at once (``vmap`` over the state), with the
state donated and split over the ``"replica"`` mesh axis and the batch over ``"data"``
(``mmjax.parallel``). The host only reads back the small metrics array after each call, to log,
to stop on a non-finite value, and to checkpoint.

Replicas (``Replica``, ``train(..., replicas=)``): by default replica ``i`` trains seed
``train.seed + i`` under the config's missing protocol; the replicas of one program may instead
each have their own seed, training missing protocol and traced values (``optim.lr``:
``traceable_fields``), which is how ``mmjax sweep`` packs a grid's points. Such a run keeps them
in ``replicas.json`` (a resume must give the same) and writes its evaluation as
``eval-replicas.json`` instead of ``eval.json``.

Workdir layout: ``config.json`` (resolved config), ``metrics.jsonl``, ``checkpoints/``,
``eval.json`` and ``eval.md`` (written once, when training finishes); with model selection also
``checkpoint-best/`` (the selected step's states), with ``train.tensorboard`` also
``tensorboard/`` (event files); a run of other replicas than its config's also has
``replicas.json``, a run on a user's dataset ``dataset.json`` (``user_data_text``). Running
``train`` again on the same workdir resumes from the newest readable checkpoint; a run killed and
resumed ends exactly where an uninterrupted one does, because the data order and every random
draw derive from (seed, step). One process at a time writes a workdir
(``mmjax.workdir.WorkdirLock``), and every file of an existing run is checked before anything is
written.

Model selection (``train.eval_every``, ``train.select``): every ``eval_every`` steps (and at the
last step) the states are evaluated on the selection split (``val``) exactly as the final
evaluation evaluates the test split: every non-empty modality subset, and the ``average`` over
them is the value selected on and logged as ``val/<metric>`` columns of ``metrics.jsonl``. The
seed replicas are selected together, on the mean over replicas of that average (one selected
step for all). A strictly better value (larger; smaller for ``evaluate.LOWER_IS_BETTER``) saves
the states into ``checkpoint-best/`` (its own orbax slot of one, which ``keep_checkpoints``
never removes); the first of equal values wins. ``eval.json`` then holds the test evaluation of
the selected step, and of the last step under ``last``. The best value so far is read back from
``metrics.jsonl`` on resume, so a resumed run selects exactly as an uninterrupted one.
Selection on the test split (or on ``eval.split``) is refused. ``train.select=auto`` selects on
``val`` with the task's headline metric (``evaluate.HEADLINE_BY_TASK``); on a dataset without a
``val`` split (``smil_avmnist``) it falls back to the last step, saying so in one line.

Extending a finished run: running it again with only ``train.steps`` larger continues from its
last checkpoint (``config.json`` is updated), and trains exactly what a fresh run of the longer
length trains (its log also has the old last step's validation row when that step was off
the ``eval_every`` grid, a candidate for selection), unless a setting depends on the total number
of steps (``optim.schedule=cosine``, OGM-GE's ``modulation_end=-1``, TMC's
``annealing_steps=0``): that would change the schedule of the steps already taken, and is
refused in one line. ``train.init_from=DIR[:STEP]``
(``--init-from``) starts a fresh run from the parameters (and non-trainable model state) of
another run's checkpoint; the optimiser state, step and keys start fresh.

SIGINT/SIGTERM: inside the loop they set a flag, so the current call finishes and a checkpoint is
saved; anywhere else (start-up, compilation, the final evaluation) ``errors.raising_signals``
turns them into ``Interrupted`` at once. Either way the command ends with one line and exit 128 +
signal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mmjax import config as config_lib
from mmjax import data as data_lib
from mmjax import evaluate, methods, parallel, policy
from mmjax import workdir as workdir_lib
from mmjax.checkpoint import Checkpointer
from mmjax.config import ExperimentConfig
from mmjax.data import pipeline
from mmjax.data.base import Dataset, validate_split
# Interrupted and TrainingDiverged are part of this module's interface (defined with UserError).
from mmjax.errors import Interrupted, TrainingDiverged, UserError  # noqa: F401
from mmjax.errors import check_signals, pending_signal
from mmjax import log
from mmjax.log import MetricsWriter, write_atomic
from mmjax.methods.base import TRACED_LR, Method, schedule, span_at, traced_hyperparameters
from mmjax.policy import AUTO, Policy
from mmjax.report import PER_REPLICA_LOG


@dataclasses.dataclass
class Setup:
    """Everything built from the config before the first step (and before any file is written)."""

    config: ExperimentConfig
    dataset: Dataset
    method: Method
    mesh: jax.sharding.Mesh
    init_keys: jax.Array  # [S] one per seed replica
    data_keys: jax.Array  # [S]
    train_present: np.ndarray  # [S, N, M] the training mask of each replica
    policy: Policy | None = None  # train.unroll/vmap_seeds resolved (None: as for an MLP)
    selection: Selection | None = None  # train.select resolved (None: from the config)
    replicas: tuple[Replica, ...] | None = None  # each replica's seed, protocol, hparams
    # (init, replica indices) per group of replicas of equal hparams (None: method.init for all)
    init_groups: tuple[tuple[Callable, np.ndarray], ...] | None = None
    user_data: str | None = None  # dataset.json's text for a user's dataset (user_data_text)

    def __post_init__(self):
        if self.replicas is None:
            self.replicas = replicas_of(self.config)
        if self.policy is None:
            self.policy = policy.resolve(self.config.train, has_convolution=False)
        if self.selection is None:
            self.selection = resolve_selection(self.config, self.dataset)


@dataclasses.dataclass(frozen=True)
class Selection:
    """``train.select`` resolved for a dataset: the checkpoint ``eval.json`` reports.

    Attributes:
      rule: ``"last"`` or ``"best:<split>/<metric>"``.
      split, metric: what is selected on (None under ``last``).
      note: a line to say when training starts (``auto`` fell back to ``last``), or "".
    """

    rule: str
    split: str | None = None
    metric: str | None = None
    note: str = ""

    @property
    def column(self) -> str:
        """The ``metrics.jsonl`` column selected on, e.g. ``val/accuracy``."""
        return f"{self.split}/{self.metric}"

    def better(self, value: float, best: float | None) -> bool:
        """Whether ``value`` strictly improves on ``best`` (None: nothing yet)."""
        if value != value:  # NaN never improves
            return False
        if best is None:
            return True
        return value < best if self.metric in evaluate.LOWER_IS_BETTER else value > best

    def best_of(self, rows: list[dict]) -> tuple[int | None, float | None]:
        """``(step, value)`` of the first best value of the column in log ``rows`` (oldest
        first), the rule training applies online; ``(None, None)`` if none has it."""
        step = value = None
        for row in rows:
            if self.column in row and self.better(float(row[self.column]), value):
                step, value = int(row["step"]), float(row[self.column])
        return step, value


# ----------------------------------------------------------------------------------------------
# Setup: every check that can fail on user input happens here, before training.
# ----------------------------------------------------------------------------------------------


def dataset_options(config: ExperimentConfig) -> dict:
    """The loader options ``config.data`` sets for its dataset (its registry entry names them;
    a field set for another dataset is refused)."""
    return data_lib.registry.config_options(config.data)


def check_config(config: ExperimentConfig) -> None:
    """Static checks of the loop's settings; one ``UserError`` line per problem.

    ``config_lib.validate`` checks each field's type, switch values and declared range (e.g.
    ``train.vmap_seeds`` is true, false or ``"auto"``; ``train.steps`` > 0; ``eval.missing_rates``
    in [0, 1]); what follows is what no single field declares.
    """
    config_lib.validate(config)
    t = config.train
    if t.unroll != AUTO and t.unroll < 0:  # an int or "auto" (its type); no Range for the int
        raise UserError(f"train.unroll must be 'auto' or an integer >= 0, got {t.unroll!r}")
    for name in ("steps", "log_every", "checkpoint_every", "eval_every"):
        if getattr(t, name) % t.steps_per_call:
            raise UserError(f"train.{name}={getattr(t, name)} must be a multiple of "
                            f"train.steps_per_call={t.steps_per_call}")
    parse_select(t.select)
    if t.select.startswith("best:") and not t.eval_every:
        raise UserError(f"train.select={t.select} needs train.eval_every > 0 (the steps at which "
                        "the validation split is evaluated)")
    if t.init_from:
        parse_init_from(t.init_from)
    if t.tensorboard:
        log.check_tensorboard()
    parallel.check_batch_size(t.batch_size, num_replicas=t.num_seeds)
    parallel.check_batch_size(config.eval.batch_size, "eval.batch_size", t.num_seeds)


def parse_select(text: str) -> tuple[str, str | None, str | None]:
    """``train.select`` -> ``(kind, split, metric)``: ``("auto"|"last", None, None)`` or
    ``("best", split, metric)``; one ``UserError`` line for anything else, and for the test
    split (selecting on it would report an optimistically biased test result)."""
    if text in ("auto", "last"):
        return text, None, None
    split, _, metric = text.removeprefix("best:").partition("/")
    if not text.startswith("best:") or not split or not metric:
        raise UserError(f"train.select must be auto, last or best:<split>/<metric> (e.g. "
                        f"best:val/accuracy), got {text!r}")
    if split == "test":
        raise UserError(f"train.select={text} is refused: selecting on the test split biases the "
                        "reported test result; select on the validation split (best:val/...)")
    return "best", split, metric


def _metric_names(task: str, num_classes: int) -> tuple[str, ...]:
    """The metrics an evaluation of ``task`` reports (computed on two dummy samples)."""
    import warnings

    from mmjax import metrics as metrics_lib

    outputs = np.eye(2, max(num_classes, 2), dtype=np.float32)[:, :num_classes]
    label = {"classification": np.array([0, min(1, num_classes - 1)]),
             "multilabel": np.eye(2, num_classes, dtype=np.float32),
             "regression": np.array([0.5, -0.5], np.float32)}[task]
    if task == "regression":
        outputs = np.array([1.0, -1.0], np.float32)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(metrics_lib.compute(task, label, outputs))


def resolve_selection(config: ExperimentConfig, dataset: Dataset) -> Selection:
    """``train.select`` for ``dataset`` (see the module docstring); ``UserError`` for a split
    the dataset lacks, the evaluated split itself, or a metric the task does not report."""
    t = config.train
    kind, split, metric = parse_select(t.select)
    if kind == "last" or (kind == "auto" and not t.eval_every):
        return Selection("last")
    spec = dataset.spec
    if kind == "auto":
        if "val" not in dataset.splits:
            return Selection("last", note=f"{spec.name} has no val split: train.select=auto "
                                          "reports the last step (no model selection)")
        split, metric = "val", evaluate.HEADLINE_BY_TASK[spec.task]
    if split not in dataset.splits:
        raise UserError(f"train.select={t.select}: {spec.name} has no {split!r} split "
                        f"({', '.join(dataset.splits)})")
    if split == config.eval.split:
        raise UserError(f"train.select={t.select} selects on eval.split={split}, the split it "
                        "reports: that biases the result; select on another split")
    names = _metric_names(spec.task, spec.num_classes)
    if metric not in names:
        raise UserError(f"train.select={t.select}: {spec.task} evaluations report "
                        f"{', '.join(names)}, not {metric!r}")
    return Selection(f"best:{split}/{metric}", split, metric)


def parse_init_from(text: str) -> tuple[pathlib.Path, int | None]:
    """``train.init_from`` ``DIR[:STEP]`` -> ``(DIR, STEP or None)``."""
    head, sep, tail = text.rpartition(":")
    if sep and tail.isdigit():
        return pathlib.Path(head), int(tail)
    if sep and not tail:
        raise UserError(f"train.init_from must be DIR or DIR:STEP, got {text!r}")
    return pathlib.Path(text), None


# Settings that make a method's training depend on the total number of steps; extending a run
# with them would change the steps it already took. (method name, field, value that derives it
# from train.steps, what it does.)
_TOTAL_STEPS_FIELDS = (("ogm_ge", "modulation_end", -1, "ends the modulation at half of it"),
                       ("tmc", "annealing_steps", 0, "anneals over a tenth of it"),
                       ("etmc", "annealing_steps", 0, "anneals over a tenth of it"))


def total_steps_dependence(config: ExperimentConfig) -> str | None:
    """Why ``config``'s training depends on ``train.steps`` beyond its length (None if not)."""
    if config.optim.schedule == "cosine":
        return "optim.schedule=cosine decays the learning rate over train.steps"
    for name, field, value, what in _TOTAL_STEPS_FIELDS:
        if config.method.name == name and getattr(config.method, field, None) == value:
            return f"method.{field}={value} {what} train.steps"
    return None


@dataclasses.dataclass(frozen=True)
class Replica:
    """What one replica of a run trains with where the replicas of one compiled program may
    differ: its seed, its training set's missing protocol, and the values of traced config
    fields (``hparams``, e.g. ``(("optim.lr", 0.01),)``; ``traceable_fields``). All are data of
    the program: no method reads ``config.missing`` (the mask is an input of the compiled step),
    and a traced field lives in the state (``methods.base.traced_hyperparameters``).
    ``mmjax sweep`` packs the points of a grid that differ only in these into one run."""

    seed: int
    missing: config_lib.MissingConfig
    hparams: tuple[tuple[str, float], ...] = ()

    def __post_init__(self):
        # One spelling per replica (sorted keys, integers as floats: 1 and 1.0 are one value),
        # so that equal replicas compare and serialise equal (replicas.json on resume).
        pairs = dict(self.hparams).items()
        object.__setattr__(self, "hparams", tuple(sorted(
            (str(k), float(v) if isinstance(v, int) and not isinstance(v, bool) else v)
            for k, v in pairs)))


def replicas_of(config: ExperimentConfig) -> tuple[Replica, ...]:
    """A run's replicas as its config defines them: seeds ``train.seed + i``, one protocol,
    every field as the config sets it."""
    return tuple(Replica(config.train.seed + i, config.missing)
                 for i in range(config.train.num_seeds))


def traceable_fields(config: ExperimentConfig) -> tuple[str, ...]:
    """The config fields a replica may set in ``Replica.hparams``: ``optim.lr`` for every
    method (``make_optimizer`` keeps it in the optimiser state), and ``method.<name>`` for each
    name the method's config class lists in its ``traceable`` ClassVar (a method that reads
    those values from its state, docs/sweep-packing-plan.md)."""
    declared = getattr(type(config.method), "traceable", ())
    return (TRACED_LR, *(f"method.{name}" for name in declared))


def replica_config(config: ExperimentConfig, replica: Replica) -> ExperimentConfig:
    """The config of ``replica`` trained alone: ``train.seed`` its seed, one replica, its
    missing protocol and its ``hparams`` values."""
    return with_values(dataclasses.replace(
        config, missing=replica.missing,
        train=dataclasses.replace(config.train, seed=replica.seed, num_seeds=1)), replica.hparams)


def with_values(config: ExperimentConfig, hparams: Sequence[tuple[str, float]]
                ) -> ExperimentConfig:
    """``config`` with the ``section.field`` values of ``hparams`` set."""
    for key, value in hparams:
        section, name = key.split(".")
        config = dataclasses.replace(config, **{section: dataclasses.replace(
            getattr(config, section), **{name: value})})
    return config


def check_replicas(config: ExperimentConfig, replicas: Sequence[Replica],
                   make_kwargs: dict) -> None:
    """One ``UserError`` line unless ``replicas`` fit ``config``: one per ``train.num_seeds``,
    traceable ``hparams`` keys with numbers, and each replica's own config valid (its missing
    protocol, e.g. a method's ``paired_data`` requirement)."""
    if len(replicas) != config.train.num_seeds:
        raise UserError(f"{len(replicas)} replicas for train.num_seeds={config.train.num_seeds}")
    allowed = traceable_fields(config)
    for i, r in enumerate(replicas):
        if not isinstance(r, Replica) or not isinstance(r.missing, config_lib.MissingConfig):
            raise UserError(f"replica {i} must be a train.Replica(seed, MissingConfig, hparams), "
                            f"got {r!r}")
        for key, value in r.hparams:
            if key not in allowed:
                raise UserError(f"replica {i}: {key} is not a traced field of method "
                                f"{config.method.name} ({', '.join(allowed)}); other values "
                                "are other programs")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"replica {i}: {key} must be a number, got {value!r}")
            if key == TRACED_LR and make_kwargs.get("tx") is not None:
                raise UserError(f"replica {i} sets optim.lr, which a user optimiser (tx=) does "
                                "not read")
        try:
            config_lib.validate(replica_config(config, r))
        except UserError as e:
            raise UserError(f"replica {i} (seed {r.seed}): {e}") from None


def setup(config: ExperimentConfig, dataset: Dataset | None = None,
          replicas: Sequence[Replica] | None = None, **make_kwargs) -> Setup:
    """Loads and validates the data, builds the method, the mesh, the keys and training masks.

    ``dataset`` (e.g. ``mmjax.data.from_arrays``) replaces loading ``config.data.name``;
    ``replicas`` (default ``replicas_of(config)``) give each replica its seed, missing protocol
    and traced values; ``make_kwargs`` (``tx=``, ``encoders=``) go to ``methods.make``.
    """
    check_config(config)
    if replicas is not None:
        check_replicas(config, tuple(replicas), make_kwargs)
    given = dataset is not None
    if dataset is None:
        dataset = data_lib.load(config.data.name, **dataset_options(config))
    elif not isinstance(dataset, Dataset):
        raise UserError(f"dataset must be a mmjax.data.Dataset (e.g. from mmjax.data.from_arrays), "
                        f"got {type(dataset).__name__}")
    elif "train" not in dataset.splits:
        raise UserError(f"dataset {dataset.spec.name!r} has no 'train' split "
                        f"({', '.join(dataset.splits)})")
    # A dataset of the config's own registry load (e.g. a sweep's, loaded once for its runs) is
    # the config's data; any other is a user's, recorded in dataset.json.
    users = given and (
        dataset.origin is None
        or dataset.origin != data_lib.origin_of(config.data.name, dataset_options(config)))
    for name, split in dataset.splits.items():  # the runtime's guard, whatever the loader checked
        validate_split(dataset.spec, split, f"{dataset.spec.name}/{name}")
    if config.eval.split not in dataset.splits:
        raise UserError(f"eval.split {config.eval.split!r} is not a split of {config.data.name} "
                        f"({', '.join(dataset.splits)})")
    train_split = dataset.splits["train"]
    if len(train_split) < config.train.batch_size:
        raise UserError(f"train.batch_size={config.train.batch_size} exceeds the "
                        f"{len(train_split)} training examples")
    s = make_setup(config, dataset, replicas, **make_kwargs)
    s.user_data = user_data_text(dataset) if users else None
    return s


def make_setup(config: ExperimentConfig, dataset: Dataset,
               replicas: Sequence[Replica] | None = None, **make_kwargs) -> Setup:
    """The method, mesh, per-seed keys and training masks for an already validated dataset.

    Replica ``i`` uses ``split(key(seed_i), 3)``: its init, data-order and mask keys, draws its
    training mask under its own ``missing_i``, and starts from the state its own config's method
    initialises (``replicas``; by default ``replicas_of``: ``seed_i = train.seed + i``, the
    config's protocol and values). With traced ``hparams`` the method is built under
    ``traced_hyperparameters``, so those values are state, and the one program trains all.
    """
    given = replicas is not None
    replicas = tuple(replicas) if given else replicas_of(config)
    if len(replicas) != config.train.num_seeds:
        raise UserError(f"{len(replicas)} replicas for train.num_seeds={config.train.num_seeds}")
    traced = {key for r in replicas for key, _ in r.hparams}
    builds = {}  # hparams -> (method, replica indices)
    with traced_hyperparameters(traced):
        for i, r in enumerate(replicas):
            if r.hparams not in builds:
                # An empty model.encoders stays empty in the run's config (config.json,
                # resumption): the networks take the dataset's encoders from its registry entry
                # (mmjax.models.encoders.encoder_names).
                builds[r.hparams] = (methods.make(with_values(config, r.hparams), dataset.spec,
                                                  **make_kwargs), [])
            builds[r.hparams][1].append(i)
    method = next(iter(builds.values()))[0]
    init_groups = (None if len(builds) == 1 else
                   tuple((m.init, np.array(idx)) for m, idx in builds.values()))
    seeds = np.array([r.seed for r in replicas])
    roots = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(seeds)  # [S, 3]
    train_split = dataset.splits["train"]
    masks = []
    for i, (r, k) in enumerate(zip(replicas, roots[:, 2])):
        try:
            masks.append(pipeline.train_mask(r.missing, k, train_split))
        except UserError as e:
            raise UserError(f"replica {i} (seed {r.seed}): {e}" if given else str(e)) from None
    masks = np.stack(masks)
    return Setup(config, dataset, method, parallel.make_mesh(len(replicas)), roots[:, 0],
                 roots[:, 1], masks,
                 resolve_policy(config, method, train_split, dataset.spec.modalities),
                 replicas=replicas, init_groups=init_groups)


def resolve_policy(config: ExperimentConfig, method: Method, split, modalities) -> Policy:
    """``train.unroll`` / ``train.vmap_seeds`` with ``"auto"`` resolved (``mmjax.policy``); the
    network is traced abstractly once, only when a field is ``"auto"``."""
    t = config.train
    if AUTO not in (t.unroll, t.vmap_seeds):
        return policy.resolve(t, has_convolution=False)
    example = pipeline.gather(pipeline.to_arrays(split), split.present,
                              np.arange(min(t.batch_size, len(split))), modalities)
    state = jax.eval_shape(method.init, jax.random.key(0), example)
    return policy.resolve(t, policy.convolves(method.predict, state, example))


# ----------------------------------------------------------------------------------------------
# The compiled functions.
# ----------------------------------------------------------------------------------------------


def make_train_chunk(s: Setup, phase: int = 0, length: int | None = None):
    """``chunk(states, present, data_keys, data) -> (states, metrics[K, S])``, jitted, donating
    ``states``: ``length`` (default ``train.steps_per_call``) steps of phase ``phase`` of every
    seed replica. Each phase and length is its own program: a call never crosses a phase."""
    n = len(s.dataset.splits["train"])
    batch_size = s.config.train.batch_size
    sharding = parallel.batch_sharding(s.mesh)
    step_fn = s.method.phases[phase].step
    length = length or s.config.train.steps_per_call

    by_position = s.config.missing.mask_rows == "position"

    def one_step(state, present, data_key, data):
        indices = pipeline.batch_indices(data_key, state.step, n, batch_size)
        rows = pipeline.batch_positions(state.step, n, batch_size) if by_position else None
        batch = pipeline.gather(data, present, indices, s.dataset.spec.modalities, rows)
        batch = jax.lax.with_sharding_constraint(batch, sharding)
        return step_fn(state, batch)

    if s.policy.vmap_seeds:
        # spmd_axis_name: inside the vmap the batch constraint is [replica, data], so each
        # device computes only its replicas (parallel.make_mesh).
        all_seeds = jax.vmap(one_step, in_axes=(0, 0, 0, None), spmd_axis_name=parallel.REPLICA)
    else:
        def all_seeds(states, present, data_keys, data):
            outs = [one_step(jax.tree.map(lambda x: x[i], states), present[i], data_keys[i], data)
                    for i in range(s.config.train.num_seeds)]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    def chunk(states, present, data_keys, data):
        unroll = s.policy.unroll or length
        if unroll >= length:  # fully unrolled: straight-line code, no while loop at all
            rows = []
            for _ in range(length):
                states, row = all_seeds(states, present, data_keys, data)
                rows.append(row)
            return states, jax.tree.map(lambda *xs: jnp.stack(xs), *rows)
        return jax.lax.scan(lambda st, _: all_seeds(st, present, data_keys, data), states,
                            length=length, unroll=unroll)

    # The states stay split over the replica axis; the small metrics go to every process.
    return jax.jit(chunk, donate_argnums=0, out_shardings=(parallel.replica_sharding(s.mesh),
                                                           parallel.replicated(s.mesh)))


def make_enter(s: Setup, phase: int):
    """The jitted ``states -> states`` that starts phase ``phase`` for every seed replica (None
    if the phase has no ``enter``)."""
    enter = s.method.phases[phase].enter
    sharding = parallel.replica_sharding(s.mesh)
    return None if enter is None else jax.jit(jax.vmap(enter), donate_argnums=0,
                                              out_shardings=sharding)


class Programs:
    """The compiled programs of a run, built on first use: one per (phase, chunk length), and one
    ``enter`` per phase."""

    def __init__(self, s: Setup):
        self.s = s
        self.spans = schedule(s.method.phases, s.config.train.steps)
        self._chunks, self._enters = {}, {}

    def next_call(self, step: int):
        """``(span, length)``: the phase that runs at ``step`` and how many steps the next call
        takes. Calls stay on the ``steps_per_call`` grid (so logging and checkpoint steps, its
        multiples, are hit) and end at the phase's end."""
        k = self.s.config.train.steps_per_call
        span = span_at(self.spans, step)
        return span, min(k - step % k, span.end - step)

    def chunk(self, phase: int, length: int):
        """The training chunk of ``length`` steps of phase ``phase``."""
        if (phase, length) not in self._chunks:
            self._chunks[phase, length] = make_train_chunk(self.s, phase, length)
        return self._chunks[phase, length]

    def enter(self, phase: int):
        """Phase ``phase``'s jitted ``enter`` (None if it has none)."""
        if phase not in self._enters:
            self._enters[phase] = make_enter(self.s, phase)
        return self._enters[phase]


def init_states(s: Setup, data):
    """The seed-stacked initial states, built on device and laid out over the mesh's replica
    axis (``parallel.replica_sharding``). Replicas of other traced values (``s.init_groups``)
    are each initialised by their own config's method, so their states hold their values."""
    example = pipeline.gather(data, data["present"], np.arange(s.config.train.batch_size),
                              s.dataset.spec.modalities)
    sharding = parallel.replica_sharding(s.mesh)
    if s.init_groups is None:
        init = jax.vmap(s.method.init, in_axes=(0, None))
        return jax.jit(init, out_shardings=sharding)(s.init_keys, example)
    order = np.concatenate([idx for _, idx in s.init_groups])
    inverse = np.argsort(order)

    def init_all(keys, example):
        parts = [jax.vmap(init, in_axes=(0, None))(keys[idx], example)
                 for init, idx in s.init_groups]
        shapes = {str(jax.tree.map(lambda x: x.shape[1:], p)) for p in parts}
        if len(shapes) > 1:
            raise UserError("replicas of other traced values build states of other structures; "
                            "train them as separate runs")
        return jax.tree.map(lambda *xs: jnp.concatenate(xs)[inverse], *parts)

    return jax.jit(init_all, out_shardings=sharding)(s.init_keys, example)


# ----------------------------------------------------------------------------------------------
# Workdir, resume, loop.
# ----------------------------------------------------------------------------------------------


REPLICAS = "replicas.json"  # a run's replicas, when they are not its config's own
PACKED_EVAL = "eval-replicas"  # such a run's evaluation (not eval.json: see replicas_text)


def replicas_text(config: ExperimentConfig, replicas: Sequence[Replica] | None) -> str | None:
    """``replicas.json``'s text for a run's ``replicas``; None when they are the config's own.

    A run of other replicas is not a run of its ``config.json`` (its replicas trained other
    seeds, protocols or values), so it writes its evaluation as ``eval-replicas.json``, which
    ``mmjax report`` does not take for a run's; ``mmjax sweep`` writes each point's slice of it
    into the point's own folder."""
    if replicas is None or tuple(replicas) == replicas_of(config):
        return None
    return json.dumps([{"seed": r.seed, "missing": config_lib.to_dict(r.missing),
                        "hparams": dict(r.hparams)} for r in replicas], indent=2,
                      sort_keys=True) + "\n"


def read_replicas(workdir: str | pathlib.Path, config: ExperimentConfig
                  ) -> tuple[Replica, ...] | None:
    """The replicas ``workdir``'s ``replicas.json`` lists (None if it has none: the config's
    own), e.g. for ``setup(config, replicas=...)`` before ``mmjax eval``; one ``UserError`` line
    if the file is damaged."""
    file = pathlib.Path(workdir) / REPLICAS
    if not file.exists():
        return None
    try:
        raw = json.loads(file.read_text())
        return tuple(Replica(int(r["seed"]),
                             config_lib.from_dict(config_lib.MissingConfig, r["missing"]),
                             tuple(sorted((str(k), float(v)) for k, v in r["hparams"].items())))
                     for r in raw)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is damaged ({type(e).__name__}: {e}); restore it, or use a new "
                        "--workdir") from None


USER_DATA = "dataset.json"  # the record of a user's dataset a run trained on


def user_data_text(dataset: Dataset) -> str:
    """``dataset.json``'s text for a run on a user's ``dataset`` (``train(dataset=...)``): its
    name, split sizes and a SHA-256 over every split's arrays (names, dtypes, shapes, bytes).

    Such a run's ``config.json`` names ``config.data.name``, which is not the data it saw; so
    a resume and ``restore_states`` compare this record (``check_same_data``), and ``mmjax
    eval``, which can only load a registered dataset, refuses the run."""
    digest = hashlib.sha256()
    for name in sorted(dataset.splits):
        split = dataset.splits[name]
        arrays = {**{f"inputs/{k}": v for k, v in split.inputs.items()},
                  "present": split.present, "label": split.label}
        for key in sorted(arrays):
            a = np.ascontiguousarray(arrays[key])
            digest.update(f"{name}/{key}:{a.dtype.str}:{a.shape};".encode())
            digest.update(a.tobytes())
    return json.dumps({"name": dataset.spec.name, "sha256": digest.hexdigest(),
                       "splits": {n: len(s) for n, s in dataset.splits.items()}},
                      indent=2, sort_keys=True) + "\n"


def check_same_data(workdir: pathlib.Path, user_data: str | None) -> None:
    """One ``UserError`` line unless the run in ``workdir`` trained on the same data: the
    user's dataset ``user_data`` records (``user_data_text``), or, for None, its config's
    registered dataset (no ``dataset.json`` there)."""
    file = pathlib.Path(workdir) / USER_DATA
    there = file.read_text(errors="replace") if file.exists() else None
    if there == user_data:
        return
    if there is None:
        raise UserError(f"workdir {workdir} holds a run of its config's registered dataset, "
                        "not of the dataset= given; use a new --workdir")
    if user_data is None:
        raise UserError(f"workdir {workdir} holds a run trained on your own data ({USER_DATA}): "
                        "mmjax eval cannot load it; pass the same dataset= to "
                        "mmjax.train.train or mmjax.train.setup")
    raise UserError(f"workdir {workdir} holds a run trained on other data ({USER_DATA} "
                    "differs); pass the dataset it trained on, or use a new --workdir")


def evaluation_stem(config: ExperimentConfig, replicas: Sequence[Replica] | None) -> str:
    """The name (without ``.json``) of a run's final evaluation: ``eval``, or ``eval-replicas``
    for a run of other replicas than its config's (``replicas_text``)."""
    return "eval" if replicas_text(config, replicas) is None else PACKED_EVAL


def prepare_workdir(config: ExperimentConfig, workdir: pathlib.Path,
                    lock: workdir_lib.WorkdirLock | None = None,
                    replicas: Sequence[Replica] | None = None,
                    user_data: str | None = None) -> None:
    """Creates ``workdir`` with ``config.json``, or checks an existing run used the same config.

    Never writes into a directory that holds anything but an mmjax run of this config. A field
    added to a config class after the run started counts as the same run when the config sets it
    to its default (defaults keep the earlier behaviour). A config that differs only by a larger
    ``train.steps`` extends the run (``config.json`` is rewritten; refused when the training
    depends on the total, ``total_steps_dependence``). ``lock`` is taken before the first write.
    Replicas other than the config's own are written to ``replicas.json``, a user's dataset's
    record to ``dataset.json`` (both before ``config.json``); both must be the same on resume.
    """
    resolved = config_text(config)
    config_file = workdir / "config.json"
    packed, packed_file = replicas_text(config, replicas), workdir / REPLICAS
    if check_workdir(config, workdir, replicas, user_data):
        steps = read_config_json(config_file)["train"]["steps"]
        _say(f"extending the run in {workdir} from {steps} to {config.train.steps} steps")
        if jax.process_index() == 0:
            write_atomic(config_file, resolved)
    if config_file.exists():
        return
    # Multi-host: every process has checked the workdir before process 0 creates it (another
    # would find process 0's first files and call the workdir foreign), and it exists after.
    parallel.sync_processes("mmjax: workdir checked")
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire()
        if packed is not None:  # first: a folder with config.json is a complete start
            write_atomic(packed_file, packed)
        if user_data is not None:
            write_atomic(workdir / USER_DATA, user_data)
        write_atomic(config_file, resolved)
    parallel.sync_processes("mmjax: workdir created")


def config_text(config: ExperimentConfig) -> str:
    """``config.json``'s text: the resolved config, keys sorted."""
    return json.dumps(config_lib.to_dict(config), indent=2, sort_keys=True)


def check_workdir(config: ExperimentConfig, workdir: pathlib.Path,
                  replicas: Sequence[Replica] | None = None,
                  user_data: str | None = None) -> bool:
    """``prepare_workdir``'s checks, writing nothing: passes for an absent or empty ``workdir``
    and for a run of ``config``, ``replicas`` and ``user_data`` there; returns True when that
    run is to be extended to ``config``'s larger ``train.steps``; else one ``UserError`` line."""
    config_file = workdir / "config.json"
    if not config_file.exists():
        if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
            raise UserError(f"workdir {workdir} exists and is not an mmjax run; use a new "
                            "--workdir")
        return False
    check_same_replicas(workdir, config, replicas)
    check_same_data(workdir, user_data)
    resolved = config_text(config)
    if config_file.read_text(errors="replace") == resolved:
        return False
    old = _with_defaults(read_config_json(config_file))
    new = json.loads(resolved)  # both sides as JSON (tuples as lists)
    if old == new:
        return False
    _check_extension(workdir, old, new, config)
    return True


def check_same_replicas(workdir: pathlib.Path, config: ExperimentConfig,
                        replicas: Sequence[Replica] | None) -> None:
    """One ``UserError`` line unless the run in ``workdir`` trained ``replicas`` (its
    ``replicas.json``, or the config's own where it has none)."""
    file = workdir / REPLICAS
    there = file.read_text(errors="replace") if file.exists() else None
    here = replicas_text(config, replicas)
    if there != here:
        what = "differs" if there and here else ("absent here" if there else "absent there")
        raise UserError(f"workdir {workdir} holds a run of other replicas ({REPLICAS} {what}); "
                        "use a new --workdir")


def _check_extension(workdir: pathlib.Path, old: dict, new: dict,
                     config: ExperimentConfig) -> None:
    """Passes if ``new`` is ``old`` with a larger ``train.steps`` that changes no step already
    taken; else one ``UserError`` line naming the difference."""
    steps = old.get("train", {}).get("steps") if isinstance(old.get("train"), dict) else None
    same_but_steps = (isinstance(steps, int) and
                      {**old, "train": {**old["train"], "steps": new["train"]["steps"]}} == new)
    if not same_but_steps:
        raise UserError(f"workdir {workdir} holds a run with a different config "
                        f"({_first_difference(old, new)}); use a new --workdir")
    if new["train"]["steps"] < steps:
        raise UserError(f"workdir {workdir} holds a run with a different config "
                        f"({_first_difference(old, new)}: a run can be extended, not "
                        "shortened); use a new --workdir")
    reason = total_steps_dependence(config)
    if reason:
        raise UserError(f"workdir {workdir}: extending the run from {steps} to "
                        f"{new['train']['steps']} steps is refused: {reason}, so the steps "
                        "already taken would change; use a new --workdir")


def read_config_json(file: pathlib.Path) -> dict:
    """The dict of a run's ``config.json``; one ``UserError`` line if it is not JSON."""
    try:
        raw = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is damaged ({type(e).__name__}: {e}); it was left as it is: "
                        "restore it, or use a new --workdir") from None
    if not isinstance(raw, dict):
        raise UserError(f"{file} is damaged (not a JSON object); it was left as it is: "
                        "restore it, or use a new --workdir")
    return raw


def config_from_json(raw: dict) -> ExperimentConfig:
    """Rebuilds the config of a ``config.json``'s dict (the registry names the method's class);
    fields the dict lacks take their defaults."""
    method_cls = methods.entry(raw["method"]["name"]).config_class
    return config_lib.from_dict(ExperimentConfig, raw, method_cls)


def _with_defaults(raw: dict) -> dict:
    """A ``config.json``'s dict with the fields it lacks at their defaults (``raw`` itself if it
    is not a config this version reads)."""
    try:
        config = config_from_json(raw)
    except (UserError, KeyError, TypeError, ValueError):
        return raw
    return json.loads(json.dumps(config_lib.to_dict(config)))


def _first_difference(old: dict, new: dict, prefix: str = "") -> str:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                return _first_difference(a, b, f"{prefix}{key}.")
        elif a != b:
            return f"{prefix}{key}: {json.dumps(a)} there, {json.dumps(b)} now"
    return "?"


def check_finite(metrics: dict, first_step: int) -> None:
    """Raises ``TrainingDiverged`` naming the first step/seed/quantity that is not finite.

    ``metrics`` maps names to host arrays ``[K, S]``: K steps of S seed replicas.
    """
    for name in sorted(metrics, key=lambda k: (k != "loss", k)):  # name the loss first
        values = np.asarray(metrics[name])
        bad = ~np.isfinite(values)
        if bad.any():
            k, seed = np.argwhere(bad)[0]
            raise TrainingDiverged(f"non-finite {name} ({values[k, seed]}) at step "
                                   f"{first_step + int(k) + 1}, seed replica {int(seed)}")


class _StopFlag:
    """Turns SIGTERM/SIGINT into a flag the loop checks between calls (restored on exit)."""

    def __init__(self):
        self.signum = pending_signal()  # one that arrived during start-up and was swallowed

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            self._old = {sig: signal.signal(sig, self._handle)
                         for sig in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum, frame):
        del frame
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def device_data(s: Setup):
    """The training split (replicated) and the seed replicas' masks (split over the replica
    axis), on device."""
    return (jax.device_put(pipeline.to_arrays(s.dataset.splits["train"]),
                           parallel.replicated(s.mesh)),
            parallel.place_replicas(s.train_present, s.mesh))


def _say(line: str) -> None:
    """One line on stderr, from process 0."""
    if jax.process_index() == 0:
        print(f"mmjax: {line}", file=sys.stderr)


def restore_states(s: Setup, workdir: pathlib.Path, with_step: bool = False):
    """The newest readable checkpoint's states (for ``mmjax eval``), or ``(step, states)`` with
    ``with_step``; an unreadable newer checkpoint is skipped with one line; ``UserError`` if
    there is none, or if the run trained other replicas or data than ``s``'s (``read_replicas``,
    ``check_same_data``)."""
    check_same_replicas(workdir, s.config, s.replicas)
    check_same_data(workdir, s.user_data)
    data, _ = device_data(s)
    like = jax.eval_shape(lambda: init_states(s, data))
    directory = workdir / "checkpoints"
    if not directory.exists():
        raise UserError(f"{workdir} has no checkpoint to evaluate")
    ckpt = Checkpointer(directory)
    unreadable = []  # reported once a readable one is found (else the error says it all)
    try:
        step, states = ckpt.restore_readable(like, lambda bad, why: unreadable.append((bad, why)))
        if step is None:
            raise UserError(f"{workdir} has no checkpoint to evaluate")
    finally:
        ckpt.close()
    for bad, why in unreadable:
        _say(f"skipping checkpoint {bad} in {directory}: unreadable ({why}); using step {step}")
    states = parallel.place_replicas(states, s.mesh)
    return (step, states) if with_step else states


BEST = "checkpoint-best"  # the selected step's states (model selection only)


def _restore_fresh_or_resume(s: Setup, ckpt: Checkpointer, states):
    """``(start, states)``: the newest readable checkpoint (unreadable newer ones moved aside,
    one line each), else ``train.init_from``'s parameters, else ``states`` as initialised."""
    unreadable = []
    start, restored = ckpt.restore_readable(states, lambda bad, why: unreadable.append((bad, why)))
    if unreadable:  # moved aside (kept), so that training can save these steps again
        aside = ckpt.set_aside([bad for bad, _ in unreadable]) if jax.process_index() == 0 else None
        for bad, why in unreadable:
            _say(f"checkpoint {bad} in {ckpt.directory} is unreadable ({why}); moved to "
                 f"{aside}/, resuming from step {start}")
    if restored is not None:
        return start, parallel.place_replicas(restored, s.mesh)
    if s.config.train.init_from:
        states = init_from(states, s.config.train.init_from)
        states = parallel.place_replicas(states, s.mesh)
    return start, states


def init_from(states, text: str):
    """``states`` with ``params`` and ``model_state`` taken from the checkpoint ``DIR[:STEP]``
    names (another run's ``checkpoints/``, its newest step by default); one seed replica there
    initialises every replica here, else the replica counts must agree.

    Raises:
      UserError: no such run or step, or a parameter missing there or of another shape (one line
        naming it).
    """
    folder, step = parse_init_from(text)
    directory = folder / "checkpoints"
    if not directory.is_dir():
        raise UserError(f"train.init_from={text}: {folder} has no checkpoints/ (not an mmjax run)")
    ckpt = Checkpointer(directory)
    try:
        steps = ckpt.steps()
        if not steps or (step is not None and step not in steps):
            raise UserError(f"train.init_from={text}: no checkpoint of step "
                            f"{step if step is not None else '(any)'} in {directory} "
                            f"(it has: {', '.join(map(str, steps)) or 'none'})")
        stored = ckpt.restore_raw(steps[-1] if step is None else step)
    finally:
        ckpt.close()
    num_seeds = int(np.shape(states.step)[0])
    taken = {}
    for field in ("params", "model_state"):
        there = {_path_name(p): x for p, x in
                 jax.tree_util.tree_flatten_with_path(stored.get(field) or {})[0]}
        leaves, treedef = jax.tree_util.tree_flatten_with_path(getattr(states, field))
        new = []
        for path, here in leaves:
            name = _path_name(path)
            if name not in there:
                raise UserError(f"train.init_from={text}: {field} {name} is not in that run "
                                "(another method or model)")
            x = np.asarray(there[name])
            if x.shape[1:] != here.shape[1:] or x.shape[0] not in (1, num_seeds):
                raise UserError(f"train.init_from={text}: {field} {name} has shape "
                                f"{tuple(x.shape[1:])} there ({x.shape[0]} seed replicas), "
                                f"{tuple(here.shape[1:])} here ({num_seeds}); the shapes must "
                                "match")
            new.append(np.broadcast_to(x, here.shape).astype(here.dtype))
        taken[field] = jax.tree_util.tree_unflatten(treedef, new)
    return states.replace(**taken)


def _path_name(path) -> str:
    """A tree path as ``a/b/c`` whatever the containers (orbax returns nested dicts where the
    state holds ``nnx.State`` and ``VariableState``s)."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
    # A variable's payload: ``.../kernel/value`` in orbax's dicts, ``.../kernel`` (.value) here.
    return "/".join(p for p in parts if p != "value")




class _Writers:
    """The log rows' destinations: ``metrics.jsonl`` and, with ``train.tensorboard``, the
    TensorBoard event files; for a run of replicas other than its config's own (a packed sweep
    run), also ``metrics-replicas.jsonl``, each column a list of the replicas' values, from
    which ``mmjax sweep`` writes each point's own ``metrics.jsonl``. All cut back to
    ``resume_step``."""

    def __init__(self, workdir: pathlib.Path, config: ExperimentConfig, resume_step: int | None,
                 per_replica: bool):
        self._all = [MetricsWriter(workdir / "metrics.jsonl", resume_step=resume_step)]
        if config.train.tensorboard:
            self._all.append(log.TensorBoardWriter(workdir / "tensorboard", resume_step))
        self._replicas = (MetricsWriter(workdir / PER_REPLICA_LOG, resume_step=resume_step)
                          if per_replica else None)

    def write(self, step: int, row: dict, metrics: dict | None = None) -> None:
        """One row to every writer; ``metrics`` (the call's ``[steps, replicas]`` arrays) gives
        the per-replica row, the call's last step."""
        for writer in self._all:
            writer.write(step, row)
        if self._replicas is not None and metrics is not None:
            self._replicas.write(step, {k: np.asarray(v[-1]).tolist() for k, v in metrics.items()})

    def close(self) -> None:
        """Closes every writer."""
        for writer in self._all:
            writer.close()
        if self._replicas is not None:
            self._replicas.close()


def run(s: Setup, workdir: pathlib.Path):
    """Restores or initialises the states and trains to ``train.steps``; returns the states.

    With model selection, evaluates the selection split every ``train.eval_every`` steps (and at
    the last one), logs it, and saves improvements into ``checkpoint-best/``.
    """
    t = s.config.train
    sel = s.selection
    if sel.note:
        _say(sel.note)
    data, present = device_data(s)
    data_keys = parallel.place_replicas(s.data_keys, s.mesh)
    states = init_states(s, data)
    ckpt = Checkpointer(workdir / "checkpoints", keep=t.keep_checkpoints)
    best_ckpt = predict = None
    try:
        start, states = _restore_fresh_or_resume(s, ckpt, states)
        step = start or 0
        if sel.split is not None:
            best_ckpt = Checkpointer(workdir / BEST, keep=1)
            predict = evaluate.make_predict(s.method, s.dataset.spec.modalities, s.mesh)
        # The best value so far, from the log the resumed run keeps (read by every process).
        _, best = (sel.best_of(log.read_rows(workdir / "metrics.jsonl", start))
                   if sel.split is not None else (None, None))
        writers = _Writers(workdir, s.config, start,
                           per_replica=evaluation_stem(s.config, s.replicas) == PACKED_EVAL)
    except BaseException:
        ckpt.close()
        if best_ckpt is not None:
            best_ckpt.close()
        raise
    programs = Programs(s)
    bar = log.Progress(t.steps, step, f"{s.config.method.name} on {s.dataset.spec.name}",
                       t.progress_seconds)
    try:
        with _StopFlag() as stop:
            # steps_per_sec of the first logged window includes compilation (not evaluation).
            tic, last_logged, eval_seconds = time.perf_counter(), step, 0.0
            while step < t.steps:
                span, length = programs.next_call(step)
                # Checkpoints are saved after calls, so a state at a phase's first step (fresh,
                # or restored from the previous phase's last checkpoint) has not entered it yet.
                if step == span.start and programs.enter(span.index) is not None:
                    states = programs.enter(span.index)(states)
                chunk = programs.chunk(span.index, length)
                states, metrics = chunk(states, present, data_keys, data)
                metrics = jax.device_get(metrics)
                check_finite(metrics, step)
                step += length
                bar.update(length, float(metrics["loss"][-1].mean()))
                row, logged = {}, None
                if step % t.log_every == 0:
                    logged = metrics
                    toc = time.perf_counter()
                    # The last step of the call, averaged over seed replicas.
                    row = {k: float(v[-1].mean()) for k, v in metrics.items()}
                    row["steps_per_sec"] = (step - last_logged) / (toc - tic - eval_seconds)
                    tic, last_logged, eval_seconds = toc, step, 0.0
                if sel.split is not None and (step % t.eval_every == 0 or step == t.steps):
                    eval_tic = time.perf_counter()
                    values = evaluate.subsets(s.method, states, s.dataset, s.config, s.mesh,
                                              split=sel.split, predict=predict)["average"]
                    row.update({f"{sel.split}/{k}": v for k, v in values.items()})
                    # Saved before the row is logged and before the regular checkpoint: a log
                    # row of a best step (which resume reads) implies its best slot is on disk.
                    if sel.better(values[sel.metric], best):
                        best = values[sel.metric]
                        best_ckpt.save(step, states)
                    eval_seconds += time.perf_counter() - eval_tic
                if row:
                    writers.write(step, row, logged)
                # A signal to any process stops all of them after this call (multi-host: they
                # save the checkpoint together, and none waits for the others in a collective).
                signum = parallel.any_process(stop.signum or 0)
                if step % t.checkpoint_every == 0 or step == t.steps or signum:
                    ckpt.save(step, states)
                if signum:  # also in the last call: the final evaluation has not run
                    saved = ckpt.latest_step() == step
                    raise Interrupted(
                        f"stopped by signal {signum}"
                        + ("" if stop.signum == signum else " (sent to another process)")
                        + f" at step {step}"
                        + (" (training done, not yet evaluated)" if step == t.steps else "")
                        + (f"; checkpoint saved in {workdir}" if saved else
                           f"; no checkpoint of step {step} could be saved "
                           f"(newest: {ckpt.latest_step()})")
                        + "; run the same command to resume", signum)
    finally:
        bar.close()
        writers.close()
        ckpt.close()
        if best_ckpt is not None:
            best_ckpt.close()
    return states


def selected_states(s: Setup, workdir: pathlib.Path, like) -> tuple[int, object]:
    """``(step, states)`` of the step ``train.select`` picked from a finished run's log, restored
    from ``checkpoint-best/``.

    Raises:
      UserError: the log has no value of the selection column, or the best slot holds another
        step than the log's best (a damaged or edited workdir).
    """
    sel = s.selection
    step, _ = sel.best_of(log.read_rows(workdir / "metrics.jsonl", s.config.train.steps))
    if step is None:
        raise UserError(f"{workdir}/metrics.jsonl has no {sel.column} values to select from")
    ckpt = Checkpointer(workdir / BEST, keep=1)
    try:
        if ckpt.latest_step() != step:
            raise UserError(f"{workdir}/{BEST} holds step {ckpt.latest_step()}, but "
                            f"metrics.jsonl's best {sel.column} is at step {step}; the workdir "
                            "was changed: use a new --workdir")
        states = ckpt.restore(like, step)
    finally:
        ckpt.close()
    return step, parallel.place_replicas(states, s.mesh)


def train(config: ExperimentConfig, workdir: str | pathlib.Path, *,
          dataset: Dataset | None = None, replicas: Sequence[Replica] | None = None,
          **make_kwargs) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint), then evaluates it.

    Args:
      config: the experiment.
      workdir: the run directory.
      dataset: your own data (``mmjax.data.from_arrays``) instead of ``config.data.name``'s.
      replicas: each replica's seed, training missing protocol and traced values (``Replica``;
        default ``replicas_of(config)``); other ones are kept in ``replicas.json`` and must be
        the same on resume. The evaluation's ``seeds`` lists the replicas in this order.
      **make_kwargs: ``tx=`` / ``encoders=`` for ``methods.make``.

    Returns:
      The ``subsets`` evaluation of ``eval.split`` at the selected step (``train.select``; the
      last step by default), written once to ``eval.json`` and ``eval.md`` (``eval-replicas``
      for other replicas, ``evaluation_stem``); a finished run's are read back, not rewritten.
    """
    parallel.maybe_initialize_distributed(config.train.distributed)
    workdir = pathlib.Path(workdir)
    with workdir_lib.WorkdirLock(workdir, enabled=jax.process_index() == 0) as lock:
        if (workdir / "config.json").exists():  # an existing run: one writer, checked files
            workdir_lib.check_run_files(workdir, write=True)
            lock.acquire()
        elif jax.process_index() == 0:
            workdir_lib.check_creatable(workdir)
        s = setup(config, dataset, replicas, **make_kwargs)
        check_signals()
        prepare_workdir(config, workdir, lock, s.replicas, s.user_data)
        stem = evaluation_stem(config, s.replicas)
        finished = finished_result(workdir, config, stem)
        if finished is not None:
            return finished
        states = run(s, workdir)
        try:
            result = _final_evaluation(s, workdir, states)
            check_signals()
        except Interrupted as e:
            raise Interrupted(f"stopped by signal {e.signum} during the final evaluation; "
                              f"training is done (checkpoint of step {config.train.steps} in "
                              f"{workdir}); run the same command to evaluate", e.signum) from None
        evaluate.write(workdir, stem, result)
    return result


def _final_evaluation(s: Setup, workdir: pathlib.Path, states) -> dict:
    """``eval.json``'s result: ``eval.split`` at the last step, or at the selected step with the
    last step's evaluation beside it (``evaluate.selection_result``)."""
    last_step = s.config.train.steps
    last = evaluate.subsets(s.method, states, s.dataset, s.config, s.mesh)
    if s.selection.split is None:
        return evaluate.at_step(last, last_step)
    step, best_states = selected_states(s, workdir, states)
    selected = evaluate.subsets(s.method, best_states, s.dataset, s.config, s.mesh)
    return evaluate.selection_result(selected, step, s.selection.rule, last, last_step)


def finished_result(workdir: pathlib.Path, config: ExperimentConfig,
                     stem: str = "eval") -> dict | None:
    """The ``<stem>.json`` training wrote at ``train.steps`` (None if absent, damaged, or from
    another step, split or selection rule)."""
    try:
        result = json.loads((workdir / f"{stem}.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(result, dict):
        return None
    last_step = result.get("last", {}).get("step", result.get("step"))
    same = (last_step == config.train.steps and result.get("split") == config.eval.split
            and result.get("protocol") == "subsets")
    return result if same else None
