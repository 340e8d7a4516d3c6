"""The training loop: setup -> restore_or_init -> run -> evaluate.

``train(config, workdir)`` is what ``mmjax train`` calls. The whole training set lives on the
device; one jitted call runs ``train.steps_per_call`` steps of one training phase with ``lax.scan`` for all
``train.num_seeds`` replicas at once (``vmap`` over the state), with the state donated and the
batch sharded over the ``"data"`` mesh axis. The host only reads back the small metrics array after
each call, to log, to stop on a non-finite value, and to checkpoint.

Workdir layout: ``config.json`` (resolved config), ``metrics.jsonl``, ``checkpoints/``,
``eval.json`` and ``eval.md`` (written once, when training finishes). Running ``train`` again on
the same workdir resumes from the newest readable checkpoint; a run killed and resumed ends exactly
where an uninterrupted one does, because the data order and every random draw derive from
(seed, step). One process at a time writes a workdir (``mmjax.workdir.WorkdirLock``), and every
file of an existing run is checked before anything is written.

SIGINT/SIGTERM: inside the loop they set a flag, so the current call finishes and a checkpoint is
saved; anywhere else (start-up, compilation, the final evaluation) ``errors.raising_signals`` turns them
into ``Interrupted`` at once. Either way the command ends with one line and exit 128 + signal.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

from mmjax import config as config_lib
from mmjax import data as data_lib
from mmjax import evaluate, methods, parallel, policy
from mmjax import workdir as workdir_lib
from mmjax.checkpoint import Checkpointer
from mmjax.config import ExperimentConfig
from mmjax.data import missing, pipeline
from mmjax.data.base import Dataset, validate_split
# Interrupted and TrainingDiverged are part of this module's interface (defined with UserError).
from mmjax.errors import Interrupted, TrainingDiverged, UserError  # noqa: F401
from mmjax.errors import check_signals, pending_signal
from mmjax.log import MetricsWriter, progress, write_atomic
from mmjax.methods.base import Method, schedule, span_at
from mmjax.policy import AUTO, Policy


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

    def __post_init__(self):
        if self.policy is None:
            self.policy = policy.resolve(self.config.train, has_convolution=False)


# ----------------------------------------------------------------------------------------------
# Setup: every check that can fail on user input happens here, before training.
# ----------------------------------------------------------------------------------------------


# The DataConfig fields that are options of one dataset only.
_DATASET_FIELDS = {"avmnist_offline": ("snr_db", "image_pca_energy"),
                   "smil_avmnist": ("per_class_num", "mfcc_variant"),
                   "multibench_avmnist": ("num_valid",),
                   ("multibench_mosi", "multibench_mosei", "mmsa_mosi", "mmsa_mosei"):
                       ("label_view",),
                   ("iemocap", "msp_improv"): ("fold",)}


def dataset_options(config: ExperimentConfig) -> dict:
    """The loader options ``config.data`` sets for its dataset (others do not apply to it)."""
    d = config.data
    options = {"seed": d.seed}
    default = config_lib.DataConfig()
    for owner, names in _DATASET_FIELDS.items():
        owners = (owner,) if isinstance(owner, str) else owner  # a field several datasets share
        if d.name in owners:
            options.update({name: getattr(d, name) for name in names})
            continue
        for name in names:
            if getattr(d, name) != getattr(default, name):
                raise UserError(f"data.{name} only applies to {', '.join(owners)}, not {d.name}")
    if d.views:
        options["views"] = d.views
    return options


def check_config(config: ExperimentConfig) -> None:
    """Static checks of the loop's settings; one ``UserError`` line per problem."""
    config_lib.validate(config)
    t = config.train
    if t.unroll != AUTO and (isinstance(t.unroll, str) or t.unroll < 0):
        raise UserError(f"train.unroll must be 'auto' or an integer >= 0, got {t.unroll!r}")
    if t.vmap_seeds != AUTO and not isinstance(t.vmap_seeds, bool):
        raise UserError(f"train.vmap_seeds must be 'auto', true or false, got {t.vmap_seeds!r}")
    for name in ("steps", "steps_per_call", "num_seeds", "log_every", "checkpoint_every"):
        if getattr(t, name) <= 0:
            raise UserError(f"train.{name} must be positive, got {getattr(t, name)}")
    for name in ("steps", "log_every", "checkpoint_every"):
        if getattr(t, name) % t.steps_per_call:
            raise UserError(f"train.{name}={getattr(t, name)} must be a multiple of "
                            f"train.steps_per_call={t.steps_per_call}")
    parallel.check_batch_size(t.batch_size)
    parallel.check_batch_size(config.eval.batch_size, "eval.batch_size")
    for i, rate in enumerate(config.eval.missing_rates):
        missing.check_rate(f"eval.missing_rates[{i}]", rate)
    for i, p in enumerate(config.eval.mask_probs):
        missing.check_rate(f"eval.mask_probs[{i}]", p)
    if any(s < 0 for s in config.eval.noise_sigmas):
        raise UserError(f"eval.noise_sigmas must be >= 0, got {config.eval.noise_sigmas}")


def setup(config: ExperimentConfig) -> Setup:
    """Loads and validates the data, builds the method, the mesh, the keys and training masks."""
    check_config(config)
    dataset = data_lib.load(config.data.name, **dataset_options(config))
    for name, split in dataset.splits.items():  # the runtime's guard, whatever the loader checked
        validate_split(dataset.spec, split, f"{config.data.name}/{name}")
    if config.eval.split not in dataset.splits:
        raise UserError(f"eval.split {config.eval.split!r} is not a split of {config.data.name} "
                        f"({', '.join(dataset.splits)})")
    train_split = dataset.splits["train"]
    if len(train_split) < config.train.batch_size:
        raise UserError(f"train.batch_size={config.train.batch_size} exceeds the "
                        f"{len(train_split)} training examples")
    return make_setup(config, dataset)


def make_setup(config: ExperimentConfig, dataset: Dataset) -> Setup:
    """The method, mesh, per-seed keys and training masks for an already validated dataset.

    Replica ``i`` uses ``split(key(train.seed + i), 3)``: its init, data-order and mask keys.
    """
    method = methods.make(config, dataset.spec)
    seeds = config.train.seed + np.arange(config.train.num_seeds)
    roots = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(seeds)  # [S, 3]
    train_split = dataset.splits["train"]
    masks = np.stack([pipeline.train_mask(config.missing, k, train_split) for k in roots[:, 2]])
    return Setup(config, dataset, method, parallel.make_mesh(), roots[:, 0], roots[:, 1], masks,
                 resolve_policy(config, method, train_split, dataset.spec.modalities))


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

    def one_step(state, present, data_key, data):
        indices = pipeline.batch_indices(data_key, state.step, n, batch_size)
        batch = pipeline.gather(data, present, indices, s.dataset.spec.modalities)
        batch = jax.lax.with_sharding_constraint(batch, sharding)
        return step_fn(state, batch)

    if s.policy.vmap_seeds:
        all_seeds = jax.vmap(one_step, in_axes=(0, 0, 0, None))
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

    return jax.jit(chunk, donate_argnums=0)


def make_enter(s: Setup, phase: int):
    """The jitted ``states -> states`` that starts phase ``phase`` for every seed replica (None
    if the phase has no ``enter``)."""
    enter = s.method.phases[phase].enter
    return None if enter is None else jax.jit(jax.vmap(enter), donate_argnums=0)


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
    """The seed-stacked initial states, built on device and replicated over the mesh."""
    example = pipeline.gather(data, data["present"], np.arange(s.config.train.batch_size),
                              s.dataset.spec.modalities)
    init = jax.vmap(s.method.init, in_axes=(0, None))
    return jax.jit(init, out_shardings=parallel.replicated(s.mesh))(s.init_keys, example)


# ----------------------------------------------------------------------------------------------
# Workdir, resume, loop.
# ----------------------------------------------------------------------------------------------


def prepare_workdir(config: ExperimentConfig, workdir: pathlib.Path,
                    lock: workdir_lib.WorkdirLock | None = None) -> None:
    """Creates ``workdir`` with ``config.json``, or checks an existing run used the same config.

    Never writes into a directory that holds anything but an mmjax run of this config. A field
    added to a config class after the run started counts as the same run when the config sets it
    to its default (defaults keep the earlier behaviour). ``lock`` is taken before the first write.
    """
    resolved = json.dumps(config_lib.to_dict(config), indent=2, sort_keys=True)
    config_file = workdir / "config.json"
    if config_file.exists():
        text = config_file.read_text(errors="replace")
        if text != resolved:
            old = _with_defaults(read_config_json(config_file))
            new = json.loads(resolved)  # both sides as JSON (tuples as lists)
            if old != new:
                raise UserError(f"workdir {workdir} holds a run with a different config "
                                f"({_first_difference(old, new)}); use a new --workdir")
        return
    if workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
        raise UserError(f"workdir {workdir} exists and is not an mmjax run; use a new --workdir")
    if jax.process_index() == 0:
        workdir.mkdir(parents=True, exist_ok=True)
        if lock is not None:
            lock.acquire()
        write_atomic(config_file, resolved)


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
    """The training split and the seed replicas' masks, on device (replicated)."""
    replicated = parallel.replicated(s.mesh)
    return (jax.device_put(pipeline.to_arrays(s.dataset.splits["train"]), replicated),
            jax.device_put(s.train_present, replicated))


def _say(line: str) -> None:
    """One line on stderr, from process 0."""
    if jax.process_index() == 0:
        print(f"mmjax: {line}", file=sys.stderr)


def restore_states(s: Setup, workdir: pathlib.Path, with_step: bool = False):
    """The newest readable checkpoint's states (for ``mmjax eval``), or ``(step, states)`` with
    ``with_step``; an unreadable newer checkpoint is skipped with one line; ``UserError`` if
    there is none."""
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
    states = jax.device_put(states, parallel.replicated(s.mesh))
    return (step, states) if with_step else states


def run(s: Setup, workdir: pathlib.Path):
    """Restores or initialises the states and trains to ``train.steps``; returns the states."""
    t = s.config.train
    data, present = device_data(s)
    states = init_states(s, data)
    ckpt = Checkpointer(workdir / "checkpoints", keep=t.keep_checkpoints)
    unreadable = []
    start, restored = ckpt.restore_readable(states, lambda bad, why: unreadable.append((bad, why)))
    if restored is not None:
        states = jax.device_put(restored, parallel.replicated(s.mesh))
    if unreadable:  # moved aside (kept), so that training can save these steps again
        aside = ckpt.set_aside([bad for bad, _ in unreadable]) if jax.process_index() == 0 else None
        for bad, why in unreadable:
            _say(f"checkpoint {bad} in {ckpt.directory} is unreadable ({why}); moved to "
                 f"{aside}/, resuming from step {start}")
    writer = MetricsWriter(workdir / "metrics.jsonl", resume_step=start)
    step = start or 0
    programs = Programs(s)
    bar = progress(t.steps, step, f"{s.config.method.name} on {s.config.data.name}")
    try:
        with _StopFlag() as stop:
            # steps_per_sec of the first logged window includes compilation.
            tic, last_logged = time.perf_counter(), step
            while step < t.steps:
                span, length = programs.next_call(step)
                # Checkpoints are saved after calls, so a state at a phase's first step (fresh,
                # or restored from the previous phase's last checkpoint) has not entered it yet.
                if step == span.start and programs.enter(span.index) is not None:
                    states = programs.enter(span.index)(states)
                chunk = programs.chunk(span.index, length)
                states, metrics = chunk(states, present, s.data_keys, data)
                metrics = jax.device_get(metrics)
                check_finite(metrics, step)
                step += length
                bar.update(length)
                bar.set_postfix(loss=f"{float(metrics['loss'][-1].mean()):.4f}")
                if step % t.log_every == 0:
                    toc = time.perf_counter()
                    # The last step of the call, averaged over seed replicas.
                    row = {k: float(v[-1].mean()) for k, v in metrics.items()}
                    row["steps_per_sec"] = (step - last_logged) / (toc - tic)
                    writer.write(step, row)
                    tic, last_logged = toc, step
                if step % t.checkpoint_every == 0 or step == t.steps or stop.signum:
                    ckpt.save(step, states)
                if stop.signum:  # also in the last call: the final evaluation has not run
                    saved = ckpt.latest_step() == step
                    raise Interrupted(
                        f"stopped by signal {stop.signum} at step {step}"
                        + (" (training done, not yet evaluated)" if step == t.steps else "")
                        + (f"; checkpoint saved in {workdir}" if saved else
                           f"; no checkpoint of step {step} could be saved "
                           f"(newest: {ckpt.latest_step()})")
                        + "; run the same command to resume", stop.signum)
    finally:
        bar.close()
        writer.close()
        ckpt.close()
    return states


def train(config: ExperimentConfig, workdir: str | pathlib.Path) -> dict:
    """Trains ``config`` in ``workdir`` (resuming if it holds a checkpoint), then evaluates it.

    Returns:
      The ``subsets`` evaluation at ``train.steps`` (written once to ``eval.json`` and
      ``eval.md``; a finished run's are read back, not rewritten).
    """
    parallel.maybe_initialize_distributed(config.train.distributed)
    workdir = pathlib.Path(workdir)
    with workdir_lib.WorkdirLock(workdir, enabled=jax.process_index() == 0) as lock:
        if (workdir / "config.json").exists():  # an existing run: one writer, checked files
            workdir_lib.check_run_files(workdir, write=True)
            lock.acquire()
        s = setup(config)
        check_signals()
        prepare_workdir(config, workdir, lock)
        finished = _finished_result(workdir, config)
        if finished is not None:
            return finished
        states = run(s, workdir)
        try:
            result = evaluate.subsets(s.method, states, s.dataset, s.config, s.mesh)
            check_signals()
        except Interrupted as e:
            raise Interrupted(f"stopped by signal {e.signum} during the final evaluation; "
                              f"training is done (checkpoint of step {config.train.steps} in "
                              f"{workdir}); run the same command to evaluate", e.signum) from None
        result = evaluate.at_step(result, config.train.steps)
        evaluate.write(workdir, "eval", result)
    return result


def _finished_result(workdir: pathlib.Path, config: ExperimentConfig) -> dict | None:
    """The ``eval.json`` training wrote at ``train.steps`` (None if absent, damaged, or from
    another step or split)."""
    try:
        result = json.loads((workdir / "eval.json").read_text())
    except (OSError, ValueError):
        return None
    same = (isinstance(result, dict) and result.get("step") == config.train.steps
            and result.get("split") == config.eval.split and result.get("protocol") == "subsets")
    return result if same else None
