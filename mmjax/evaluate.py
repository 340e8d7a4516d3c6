"""Evaluation protocols over trained (seed-stacked) states, and the result tables.

- ``subsets``: every non-empty modality subset (2^M - 1 patterns), metrics per subset and their
  average (DESIGN §5). Subset names join modality names with ``+`` in dataset order.
- ``missing_rate``: a fraction of the test (sample, modality) entries is removed at random, each
  sample keeping one modality (MLA's test protocol, ``missing.test_missing_rate``).
- ``corruption``: RAML's Tables II-III: Gaussian noise of std sigma on one modality (on inputs
  min-max scaled to [0, 1] with training-split statistics) and time-step/feature masking with
  probability p.

Every protocol reports the mean over seed replicas and the sample standard deviation. The result
schema is the same for every dataset and method::

    {"dataset", "method", "protocol", "split", "num_seeds",
     "subsets": {name: {metric: mean}}, "average": {metric: mean},
     "std": {"subsets": {...}, "average": {...}},
     "seeds": {"subsets": {name: {metric: [per seed]}}, "average": {...}}}

(``seeds`` lists the replicas' values in seed order, ``train.seed + i``, for paired tests across
runs: ``mmjax report --paired``.)

(``missing_rate`` and ``corruption`` name their conditions instead of modality subsets.) A
written result also records the checkpoint ``step`` it evaluated (``at_step``); a run with model
selection (``train.select=best:...``) adds ``select``, ``selected_step`` and ``last`` (the last
step's evaluation, ``selection_result``). Training writes
``eval.json`` / ``eval.md``; ``mmjax eval`` writes ``file_stem(protocol, split)``, e.g.
``eval-test.json``, ``eval-val.json``, ``eval-corruption-test.json``, never training's files.
"""

from __future__ import annotations

import json
import pathlib

import jax
import numpy as np

from mmjax import metrics as metrics_lib
from mmjax import parallel
from mmjax.config import ExperimentConfig
from mmjax.data import corruption, missing
from mmjax.data.base import Dataset, Split
from mmjax.log import write_atomic
from mmjax.methods.base import Method

PROTOCOLS = ("subsets", "missing-rate", "corruption")


def make_predict(method: Method, modalities: tuple[str, ...], mesh):
    """``predict(states, batch) -> outputs [S, B, C]`` for every seed replica, jitted.

    Missing inputs are zero-filled here, so callers only set ``present``.
    """
    sharding = parallel.batch_sharding(mesh)

    def predict(states, batch):
        batch = jax.lax.with_sharding_constraint(batch, sharding)
        batch = {**batch, "inputs": missing.apply(batch["inputs"], batch["present"], modalities)}
        return jax.vmap(method.predict, in_axes=(0, None))(states, batch)

    # Replicated outputs: every process can read the whole prediction.
    return jax.jit(predict, out_shardings=parallel.replicated(mesh))


def predict_split(predict, states, inputs: dict, present: np.ndarray, label: np.ndarray,
                  batch_size: int, mesh) -> np.ndarray:
    """Runs ``predict`` over a whole split in fixed-size batches; returns host ``[S, N, C]``.

    The last batch is padded (by repeating the first rows) so every call has one shape.
    """
    n = len(label)
    outputs = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n
        batch = {"inputs": {m: x[idx] for m, x in inputs.items()}, "present": present[idx],
                 "label": label[idx]}
        # Every process holds the whole split, so the global batch goes in as is.
        out = predict(states, jax.device_put(batch, parallel.batch_sharding(mesh)))
        outputs.append(np.asarray(out)[:, : min(batch_size, n - start)])
    return np.concatenate(outputs, axis=1)


def _per_seed_metrics(task: str, label: np.ndarray, outputs: np.ndarray) -> list[dict]:
    return [metrics_lib.compute(task, label, out) for out in outputs]


def _summarize(dataset: Dataset, config: ExperimentConfig, protocol: str,
               per_condition: dict[str, list[dict]], split: str | None = None) -> dict:
    """Means and stds over seeds, per condition and for the average over conditions."""
    names = list(per_condition)
    num_seeds = len(per_condition[names[0]])
    averages = [{k: float(np.mean([per_condition[c][s][k] for c in names]))
                 for k in per_condition[names[0]][s]} for s in range(num_seeds)]
    result = {"dataset": dataset.spec.name, "method": config.method.name, "protocol": protocol,
              "split": split or config.eval.split, "num_seeds": num_seeds, "subsets": {},
              "std": {"subsets": {}}, "seeds": {"subsets": {}}}
    for name, rows in per_condition.items():
        stats = metrics_lib.mean_std(rows)
        result["subsets"][name] = {k: v["mean"] for k, v in stats.items()}
        result["std"]["subsets"][name] = {k: v["std"] for k, v in stats.items()}
        result["seeds"]["subsets"][name] = {k: [float(r[k]) for r in rows] for k in stats}
    stats = metrics_lib.mean_std(averages)
    result["average"] = {k: v["mean"] for k, v in stats.items()}
    result["std"]["average"] = {k: v["std"] for k, v in stats.items()}
    result["seeds"]["average"] = {k: [a[k] for a in averages] for k in stats}
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


def missing_rate(method: Method, states, dataset: Dataset, config: ExperimentConfig,
                 mesh) -> dict:
    """Evaluates at each test missing rate in ``config.eval.missing_rates`` (fixed key per rate)."""
    split = _split(dataset, config)
    predict = make_predict(method, dataset.spec.modalities, mesh)
    n, num_modalities = split.present.shape
    per_rate = {}
    for i, rate in enumerate(config.eval.missing_rates):
        key = jax.random.fold_in(jax.random.key(config.train.seed), i)
        present = split.present & np.asarray(
            missing.test_missing_rate(key, n, num_modalities, rate))
        out = predict_split(predict, states, split.inputs, present, split.label,
                            config.eval.batch_size, mesh)
        per_rate[f"rate={rate:g}"] = _per_seed_metrics(dataset.spec.task, split.label, out)
    return _summarize(dataset, config, "missing-rate", per_rate)


def corruption_sweep(method: Method, states, dataset: Dataset, config: ExperimentConfig,
                     mesh) -> dict:
    """Gaussian noise (``eval.noise_sigmas``) and masking (``eval.mask_probs``) per modality.

    Noise follows RAML: the modality is min-max scaled to [0, 1] with the training split's range,
    noise of std sigma is added, and the result is mapped back to the model's input scale.
    """
    split = _split(dataset, config)
    train = dataset.splits["train"]
    predict = make_predict(method, dataset.spec.modalities, mesh)
    per_condition = {}
    conditions = [("clean", None, None, 0.0)]
    for m in dataset.spec.modalities:
        conditions += [(f"{m} noise sigma={s:g}", m, "noise", s) for s in config.eval.noise_sigmas]
        conditions += [(f"{m} mask p={p:g}", m, "mask", p) for p in config.eval.mask_probs]
    for i, (name, modality, kind, amount) in enumerate(conditions):
        inputs = dict(split.inputs)
        if kind is not None:
            key = jax.random.fold_in(jax.random.key(config.train.seed), i)
            inputs[modality] = np.asarray(_corrupt(key, kind, amount, split.inputs[modality],
                                                   train.inputs[modality],
                                                   dataset.spec.time_axis(modality)))
        out = predict_split(predict, states, inputs, split.present, split.label,
                            config.eval.batch_size, mesh)
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


RUNNERS = {"subsets": subsets, "missing-rate": missing_rate, "corruption": corruption_sweep}


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
    """A markdown table: one row per condition plus the average, ``mean ± std`` cells."""
    first = next(iter(result["subsets"].values()))
    metrics = metrics or tuple(first)
    header = f"| {result['protocol']} | " + " | ".join(metrics) + " |"
    where = ", ".join(x for x in (f"{result['split']} split" if "split" in result else "",
                                  f"step {result['step']}" if "step" in result else "",
                                  f"selected by {result['select']}" if "select" in result else "")
                      if x)
    lines = [f"**{result['method']}** on **{result['dataset']}**"
             + (f" ({where})" if where else "")
             + f", {result['num_seeds']} seed(s), mean ± std", "", header,
             "|" + "---|" * (len(metrics) + 1)]
    rows = [(n, result["subsets"][n], result["std"]["subsets"][n]) for n in result["subsets"]]
    rows.append(("average", result["average"], result["std"]["average"]))
    for name, mean, std in rows:
        cells = " | ".join(f"{mean[k]:.4f} ± {std[k]:.4f}" for k in metrics)
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
