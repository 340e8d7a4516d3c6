"""Evaluation protocols over trained (seed-stacked) states, and the result tables.

- ``subsets``: every non-empty modality subset (2^M - 1 patterns), metrics per subset and their
  average (DESIGN §5). Subset names join modality names with ``+`` in dataset order.
- ``missing_rate``: a fraction of the test (sample, modality) entries is removed at random, each
  sample keeping one modality (MLA's test protocol, ``missing.test_missing_rate``).
- ``corruption``: RAML's Tables II-III: Gaussian noise of std sigma on one modality (on inputs
  min-max scaled to [0, 1] with training-split statistics) and time-step/feature masking with
  probability p.
- ``paired_fraction``: one modality on every test sample and the others on a random fraction
  eta of them (SMIL's ``paired_fraction`` pattern at test; UME-MMA's Figure 3, after Ma et al.
  2022: "tested with a mixture of eta% text and 100% image").

Every protocol reports the mean over seed replicas and the sample standard deviation. The result
schema is the same for every dataset and method::

    {"dataset", "method", "protocol", "split", "num_seeds",
     "subsets": {name: {metric: mean}}, "average": {metric: mean},
     "std": {"subsets": {...}, "average": {...}},
     "seeds": {"subsets": {name: {metric: [per seed]}}, "average": {...}}}

(``seeds`` lists the replicas' values in seed order, ``train.seed + i``, for paired tests across
runs: ``mmjax report --paired``.)

(``missing_rate``, ``corruption`` and ``paired_fraction`` name their conditions instead of
modality subsets.) A written result also records the checkpoint ``step`` it evaluated
(``at_step``); a run with model selection (``train.select=best:...``) adds ``select``,
``selected_step`` and ``last`` (the last step's evaluation, ``selection_result``). Training
writes ``eval.json`` / ``eval.md``; ``mmjax eval`` writes ``file_stem(protocol, split)``, e.g.
``eval-test.json``, ``eval-val.json``, ``eval-corruption-test.json``, never training's files.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

import jax
import numpy as np

from mmjax import metrics as metrics_lib
from mmjax import parallel
from mmjax.config import ExperimentConfig
from mmjax.data import corruption, missing
from mmjax.data.base import Dataset, Split
from mmjax.errors import UserError
from mmjax.log import write_atomic
from mmjax.methods.base import Method

def make_predict(method: Method, modalities: tuple[str, ...], mesh, per_replica: bool = False):
    """``predict(states, batch) -> outputs [S, B, C]`` for every seed replica, jitted.

    Missing inputs are zero-filled here, so callers only set ``present``. With ``per_replica``
    the batch's ``inputs`` and ``present`` have a leading replica axis (``[S, B, ...]``: each
    replica's own test masks or corrupted inputs), else every replica sees one batch.
    """
    sharding = _batch_sharding(mesh, per_replica)

    def one(state, batch):
        batch = {**batch, "inputs": missing.apply(batch["inputs"], batch["present"], modalities)}
        return method.predict(state, batch)

    def predict(states, batch):
        batch = jax.lax.with_sharding_constraint(batch, sharding)
        axes = ({"inputs": 0, "present": 0, "label": None} if per_replica else None)
        return jax.vmap(one, in_axes=(0, axes), spmd_axis_name=parallel.REPLICA)(states, batch)

    # Replicated outputs: every process can read the whole prediction.
    return jax.jit(predict, out_shardings=parallel.replicated(mesh))


def _batch_sharding(mesh, per_replica: bool):
    """A batch's sharding: ``[data]``, or ``[replica, data]`` with a leading replica axis
    (the label, shared, stays ``[data]``)."""
    if not per_replica:
        return parallel.batch_sharding(mesh)
    stacked = parallel.replica_batch_sharding(mesh)
    return {"inputs": stacked, "present": stacked, "label": parallel.batch_sharding(mesh)}


def predict_split(predict, states, inputs: dict, present: np.ndarray, label: np.ndarray,
                  batch_size: int, mesh, per_replica: bool = False) -> np.ndarray:
    """Runs ``predict`` over a whole split in fixed-size batches; returns host ``[S, N, C]``.

    With ``per_replica`` (``make_predict``'s), ``inputs`` and ``present`` are ``[S, N, ...]``.
    The last batch is padded (by repeating the first rows) so every call has one shape.
    """
    n = len(label)
    outputs = []
    take = (lambda x, idx: x[:, idx]) if per_replica else (lambda x, idx: x[idx])
    sharding = _batch_sharding(mesh, per_replica)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n
        batch = {"inputs": {m: take(x, idx) for m, x in inputs.items()},
                 "present": take(present, idx), "label": label[idx]}
        # Every process holds the whole split, so the global batch goes in as is.
        out = predict(states, jax.device_put(batch, sharding))
        outputs.append(np.asarray(out)[:, : min(batch_size, n - start)])
    return np.concatenate(outputs, axis=1)


def _per_seed_metrics(task: str, label: np.ndarray, outputs: np.ndarray) -> list[dict]:
    return [metrics_lib.compute(task, label, out) for out in outputs]


def _summarize(dataset: Dataset, config: ExperimentConfig, protocol: str,
               per_condition: dict[str, list[dict]], split: str | None = None) -> dict:
    """Means and stds over seeds, per condition and for the average over conditions."""
    names = list(per_condition)
    num_seeds = len(per_condition[names[0]])
    first = per_condition[names[0]][0]
    values = {"subsets": {name: {k: [float(r[k]) for r in rows] for k in rows[0]
                                 if all(k in r for r in rows)}
                          for name, rows in per_condition.items()},
              "average": {k: [float(np.mean([per_condition[c][s][k] for c in names]))
                              for s in range(num_seeds)] for k in first}}
    result = {"dataset": dataset.spec.name, "method": config.method.name, "protocol": protocol,
              "split": split or config.eval.split, "num_seeds": num_seeds}
    result.update(_restricted(values, list(range(num_seeds))))
    return result


def _split(dataset: Dataset, config: ExperimentConfig) -> Split:
    return dataset.splits[config.eval.split]


def subsets(method: Method, states, dataset: Dataset, config: ExperimentConfig, mesh, *,
            split: str | None = None, predict=None) -> dict:
    """Evaluates on every non-empty modality subset; see the module docstring for the schema.

    ``split`` (default ``config.eval.split``) names the split; ``predict`` is a ``make_predict``
    function to reuse (training evaluates the validation split many times with one program).
    """
    split_name = split or config.eval.split
    split = dataset.splits[split_name]
    predict = predict or make_predict(method, dataset.spec.modalities, mesh)
    names, masks = missing.all_subsets(dataset.spec.modalities)
    per_subset = {}
    for name, mask in zip(names, np.asarray(masks)):
        present = split.present & mask[None, :]
        keep = present.any(1)  # a sample whose only modalities are outside the subset is skipped
        out = predict_split(predict, states, split.inputs, present, split.label,
                            config.eval.batch_size, mesh)
        per_subset[name] = _per_seed_metrics(dataset.spec.task, split.label[keep], out[:, keep])
    return _summarize(dataset, config, "subsets", per_subset, split_name)


def replica_seeds(config: ExperimentConfig, seeds: Sequence[int] | None = None) -> list[int]:
    """The seed of each replica of a run: ``seeds`` (a packed run's, ``train.Replica.seed``),
    else ``train.seed + i``."""
    if seeds is None:
        return [config.train.seed + i for i in range(config.train.num_seeds)]
    if len(seeds) != config.train.num_seeds:
        raise UserError(f"{len(seeds)} replica seeds for train.num_seeds="
                        f"{config.train.num_seeds}")
    return [int(s) for s in seeds]


def missing_rate(method: Method, states, dataset: Dataset, config: ExperimentConfig,
                 mesh, *, seeds: Sequence[int] | None = None) -> dict:
    """Evaluates at each test missing rate in ``config.eval.missing_rates``: replica ``k``
    removes entries with the key ``fold_in(key(seed_k), i)`` for the ``i``-th rate, so every
    replica is tested as its seed's run alone is (``replica_seeds``; ``seeds`` for a packed
    run's)."""
    split = _split(dataset, config)
    predict = make_predict(method, dataset.spec.modalities, mesh, per_replica=True)
    n, num_modalities = split.present.shape
    roots = [jax.random.key(s) for s in replica_seeds(config, seeds)]
    per_rate = {}
    for i, rate in enumerate(config.eval.missing_rates):
        present = np.stack([split.present & np.asarray(missing.test_missing_rate(
            jax.random.fold_in(root, i), n, num_modalities, rate)) for root in roots])
        inputs = {m: _stacked(x, len(roots)) for m, x in split.inputs.items()}
        out = predict_split(predict, states, inputs, present, split.label,
                            config.eval.batch_size, mesh, per_replica=True)
        per_rate[f"rate={rate:g}"] = _per_seed_metrics(dataset.spec.task, split.label, out)
    return _summarize(dataset, config, "missing-rate", per_rate)


def paired_fraction(method: Method, states, dataset: Dataset, config: ExperimentConfig,
                    mesh, *, seeds: Sequence[int] | None = None) -> dict:
    """For each modality c and each eta in ``config.eval.paired_fractions``: c on every test
    sample, the other modalities together on a random ``round(eta * n)`` of them
    (``missing.paired_fraction``), condition ``"<others> eta=<eta>"`` (e.g. ``audio eta=0.1``:
    the image on all, the audio on 10 %). Replica ``k`` draws the ``i``-th condition's samples
    from ``fold_in(key(seed_k), i)``, as ``missing_rate``."""
    split = _split(dataset, config)
    modalities = dataset.spec.modalities
    predict = make_predict(method, modalities, mesh, per_replica=True)
    n, num_modalities = split.present.shape
    roots = [jax.random.key(s) for s in replica_seeds(config, seeds)]
    conditions = [(c, eta) for c in range(num_modalities) for eta in config.eval.paired_fractions]
    per_condition = {}
    for i, (c, eta) in enumerate(conditions):
        present = np.stack([split.present & np.asarray(missing.paired_fraction(
            jax.random.fold_in(root, i), n, num_modalities, eta, complete=c)) for root in roots])
        inputs = {m: _stacked(x, len(roots)) for m, x in split.inputs.items()}
        out = predict_split(predict, states, inputs, present, split.label,
                            config.eval.batch_size, mesh, per_replica=True)
        others = "+".join(m for j, m in enumerate(modalities) if j != c)
        per_condition[f"{others} eta={eta:g}"] = _per_seed_metrics(dataset.spec.task,
                                                                   split.label, out)
    return _summarize(dataset, config, "paired-fraction", per_condition)


def _stacked(x: np.ndarray, num: int) -> np.ndarray:
    """``x`` as ``[num, *x.shape]`` without copying (a broadcast view)."""
    return np.broadcast_to(x, (num, *x.shape))


def corruption_sweep(method: Method, states, dataset: Dataset, config: ExperimentConfig,
                     mesh, *, seeds: Sequence[int] | None = None) -> dict:
    """Gaussian noise (``eval.noise_sigmas``) and masking (``eval.mask_probs``) per modality.

    Noise follows RAML: the modality is min-max scaled to [0, 1] with the training split's range,
    noise of std sigma is added, and the result is mapped back to the model's input scale.
    Replica ``k`` draws the ``i``-th condition's noise or mask from ``fold_in(key(seed_k), i)``
    (``replica_seeds``), as its seed's run alone does.
    """
    split = _split(dataset, config)
    train = dataset.splits["train"]
    predict = make_predict(method, dataset.spec.modalities, mesh, per_replica=True)
    roots = [jax.random.key(s) for s in replica_seeds(config, seeds)]
    present = _stacked(split.present, len(roots))
    per_condition = {}
    conditions = [("clean", None, None, 0.0)]
    for m in dataset.spec.modalities:
        conditions += [(f"{m} noise sigma={s:g}", m, "noise", s) for s in config.eval.noise_sigmas]
        conditions += [(f"{m} mask p={p:g}", m, "mask", p) for p in config.eval.mask_probs]
    for i, (name, modality, kind, amount) in enumerate(conditions):
        inputs = {m: _stacked(x, len(roots)) for m, x in split.inputs.items()}
        if kind is not None:
            inputs[modality] = np.stack([np.asarray(_corrupt(
                jax.random.fold_in(root, i), kind, amount, split.inputs[modality],
                train.inputs[modality], dataset.spec.time_axis(modality))) for root in roots])
        out = predict_split(predict, states, inputs, present, split.label,
                            config.eval.batch_size, mesh, per_replica=True)
        per_condition[name] = _per_seed_metrics(dataset.spec.task, split.label, out)
    return _summarize(dataset, config, "corruption", per_condition)


def _corrupt(key, kind: str, amount: float, x: np.ndarray, train_x: np.ndarray,
             time_axis: int | None):
    """Noise on min-max scaled inputs (no clipping: features have no natural range), or masking
    of whole time steps along ``time_axis`` (of single entries where there is none)."""
    if kind == "noise":
        lo, hi = float(train_x.min()), float(train_x.max())
        scaled = corruption.minmax_scale(x, lo, hi)
        noisy = corruption.gaussian_noise(key, scaled, amount)
        return np.asarray(noisy) * (hi - lo) + lo
    return corruption.mask_timesteps(key, x, amount, time_axis=time_axis)


# Every protocol of ``config.EVAL_PROTOCOLS`` (the CLI's choices):
# ``runner(method, states, dataset, config, mesh, *, seeds=None)``; ``seeds`` (the replicas'
# seeds, ``train.Replica.seed``) matters to the random protocols only.
RUNNERS = {"subsets": lambda *args, seeds=None: subsets(*args),
           "missing-rate": missing_rate, "corruption": corruption_sweep,
           "paired-fraction": paired_fraction}


def select_replicas(result: dict, replicas: Sequence[int]) -> dict:
    """The evaluation ``result`` restricted to the replicas ``replicas`` (indices into its
    ``seeds`` lists, in this order): ``num_seeds``, the means and stds recomputed from those
    replicas' values exactly as the run of those replicas alone computes them (``_summarize``),
    every other entry as it is; a ``last`` evaluation (model selection) restricted as well."""
    replicas = [int(i) for i in replicas]
    out = dict(result)
    out["num_seeds"] = len(replicas)
    out.update(_restricted(result["seeds"], replicas))
    if "last" in result:
        out["last"] = {**result["last"], **_restricted(result["last"]["seeds"], replicas)}
    return out


def _restricted(seeds: dict, replicas: list[int]) -> dict:
    """``subsets``, ``std``, ``seeds`` and ``average`` (mean and sample std over replicas) of
    the per-replica values ``seeds`` (``{"subsets": {name: {metric: [v]}}, "average":
    {metric: [v]}}``, the average being each replica's mean over conditions) at ``replicas``."""
    rows = {name: [{k: values[k][i] for k in values} for i in replicas]
            for name, values in seeds["subsets"].items()}
    averages = [{k: seeds["average"][k][i] for k in seeds["average"]} for i in replicas]
    out = {"subsets": {}, "std": {"subsets": {}}, "seeds": {"subsets": {}}}
    for name, per_seed in rows.items():
        stats = metrics_lib.mean_std(per_seed)
        out["subsets"][name] = {k: v["mean"] for k, v in stats.items()}
        out["std"]["subsets"][name] = {k: v["std"] for k, v in stats.items()}
        out["seeds"]["subsets"][name] = {k: [float(r[k]) for r in per_seed] for k in stats}
    stats = metrics_lib.mean_std(averages)
    out["average"] = {k: v["mean"] for k, v in stats.items()}
    out["std"]["average"] = {k: v["std"] for k, v in stats.items()}
    out["seeds"]["average"] = {k: [a[k] for a in averages] for k in stats}
    return out


def at_step(result: dict, step: int) -> dict:
    """``result`` recording the checkpoint step it evaluated (``"step"``, after ``"split"``)."""
    out = {}
    for k, v in result.items():
        out[k] = v
        if k == "split":
            out["step"] = step
    out.setdefault("step", step)
    return out


def file_stem(protocol: str, split: str) -> str:
    """The file name (without suffix) ``mmjax eval`` writes: ``eval-[<protocol>-]<split>``
    (``subsets`` is left out), so that it never replaces training's ``eval.json``."""
    return "-".join(["eval", *([protocol] if protocol != "subsets" else []), split])


# ----------------------------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------------------------


def to_markdown(result: dict, metrics: tuple[str, ...] | None = None) -> str:
    """A markdown table: one row per condition plus the average, ``mean ± std`` cells (the mean
    alone for one seed: its std of 0 is not a spread)."""
    first = next(iter(result["subsets"].values()))
    metrics = metrics or tuple(first)
    header = f"| {result['protocol']} | " + " | ".join(metrics) + " |"
    where = ", ".join(x for x in (f"{result['split']} split" if "split" in result else "",
                                  f"step {result['step']}" if "step" in result else "",
                                  f"selected by {result['select']}" if "select" in result else "")
                      if x)
    lines = [f"**{result['method']}** on **{result['dataset']}**"
             + (f" ({where})" if where else "")
             + (f", {n} seeds, mean ± std" if (n := result["num_seeds"]) > 1 else ", 1 seed"),
             "", header,
             "|" + "---|" * (len(metrics) + 1)]
    rows = [(n, result["subsets"][n], result["std"]["subsets"][n]) for n in result["subsets"]]
    rows.append(("average", result["average"], result["std"]["average"]))
    for name, mean, std in rows:
        cells = " | ".join(f"{mean[k]:.4f}" + (f" ± {std[k]:.4f}" if n > 1 else "")
                           for k in metrics)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines) + "\n"


def write(workdir: pathlib.Path, stem: str, result: dict) -> None:
    """Writes ``<stem>.json`` and ``<stem>.md`` into ``workdir`` (atomically; process 0 only)."""
    if jax.process_index() != 0:
        return
    write_atomic(pathlib.Path(workdir) / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    write_atomic(pathlib.Path(workdir) / f"{stem}.md", to_markdown(result))


# ----------------------------------------------------------------------------------------------
# Model selection (``train.select``).
# ----------------------------------------------------------------------------------------------

# The metric ``train.select=auto`` selects on: the first of ``mmjax.report.HEADLINE`` each task's
# evaluation reports (what a table shows by default).
HEADLINE_BY_TASK = {"classification": "accuracy", "multilabel": "f1_micro", "regression": "mae"}
# Metrics where a smaller value is better (every other one is maximised).
LOWER_IS_BETTER = frozenset({"mae"})


def selection_result(selected: dict, selected_step: int, rule: str, last: dict,
                     last_step: int) -> dict:
    """The ``eval.json`` of a run with ``train.select=best:...``: ``selected`` (the test metrics
    of the selected checkpoint) at the top level, as every reader of ``eval.json`` expects, plus
    ``select`` (the rule), ``selected_step`` and ``last`` (the same evaluation of the last step:
    ``step``, ``subsets``, ``average``, ``std``, ``seeds``)."""
    out = at_step(selected, selected_step)
    out["select"] = rule
    out["selected_step"] = selected_step
    out["last"] = {"step": last_step, **{k: last[k] for k in ("subsets", "average", "std",
                                                              "seeds")}}
    return out
