"""Table III (both modalities corrupted) and Figure 5 (fusion weights under noise) for one run.

Usage: python experiments/raml/corrupt_both.py WORKDIR [FIGURE.png]

Noise of std sigma goes on the dataset's first modality (the image: min-max scaled to [0, 1] with
the training split's range, as ``mmjax eval --protocol corruption``), time-step / entry masking
with probability p on the second (the audio MFCC's frames). Writes ``WORKDIR/corrupt_both.json``:

- ``table3_noise``: sigma in eval.noise_sigmas, second modality masked with p = 0.1;
- ``table3_mask``: p in eval.mask_probs, first modality noised with sigma = 0.18;
  each cell the accuracy's mean, std, n and per-seed ``values`` (seeds ``train.seed`` onwards);
- for RAML runs, ``weights``: the mean fusion weight of each modality (over test samples,
  elements and seeds; ``*_seeds``: per seed) as the noise on the first modality grows (sigma = 0
  and the sweep) and as the masking of the second grows; and FIGURE.png (default
  ``experiments/raml/fig5_<dataset>.png``), heat maps of the first seed's element-wise weights of
  the first modality (16 test samples x 32 elements) at sigma = 0, 0.18, 0.38 (top) and of the
  second at p = 0, 0.15, 0.25 (bottom), plus the mean weight curves.
"""

import json
import pathlib
import sys

import jax
import numpy as np

from mmjax import evaluate, metrics as metrics_lib, train
from mmjax.cli import _load_workdir_config
from mmjax.data import missing
from mmjax.methods import raml

OUT = pathlib.Path(__file__).resolve().parent


def main(workdir: str, figure: str | None = None) -> None:
    """Writes ``WORKDIR/corrupt_both.json`` (and, for RAML, the Figure 5 PNG)."""
    workdir = pathlib.Path(workdir)
    config = _load_workdir_config(workdir)
    s = train.setup(config)
    states = train.restore_states(s, workdir)
    spec = s.dataset.spec
    test, tr = s.dataset.splits[config.eval.split], s.dataset.splits["train"]
    first, second = spec.modalities[:2]
    predict = evaluate.make_predict(s.method, spec.modalities, s.mesh)

    def corrupted(i, sigma, p):
        inputs = dict(test.inputs)
        key = jax.random.fold_in(jax.random.key(config.train.seed), 1000 + i)
        k1, k2 = jax.random.split(key)
        if sigma:
            inputs[first] = np.asarray(evaluate._corrupt(k1, "noise", sigma, test.inputs[first],
                                                         tr.inputs[first],
                                                         spec.time_axis(first)))
        if p:
            inputs[second] = np.asarray(evaluate._corrupt(k2, "mask", p, test.inputs[second],
                                                          tr.inputs[second],
                                                          spec.time_axis(second)))
        return inputs

    def accuracy(inputs):
        out = evaluate.predict_split(predict, states, inputs, test.present, test.label,
                                     config.eval.batch_size, s.mesh)
        rows = [metrics_lib.compute(spec.task, test.label, o) for o in out]
        # The per-seed values too, for paired tests across seeds (make_table.py).
        return {**metrics_lib.mean_std(rows)["accuracy"],
                "values": [float(r["accuracy"]) for r in rows]}

    result = {"method": config.method.name, "dataset": spec.name, "noised": first,
              "masked": second, "table3_noise": {}, "table3_mask": {}}
    for i, sigma in enumerate(config.eval.noise_sigmas):
        result["table3_noise"][f"{sigma:g}"] = accuracy(corrupted(i, sigma, 0.1))
    for i, p in enumerate(config.eval.mask_probs):
        result["table3_mask"][f"{p:g}"] = accuracy(corrupted(100 + i, 0.18, p))

    if config.method.name == "raml":
        inspect = jax.jit(jax.vmap(raml.make_inspect(config, spec), in_axes=(0, None)))
        n = min(len(test.label), 512)

        def weights(inputs):
            batch = {"inputs": {m: x[:n] for m, x in inputs.items()},
                     "present": test.present[:n], "label": test.label[:n]}
            batch["inputs"] = missing.apply(batch["inputs"], batch["present"], spec.modalities)
            return np.asarray(inspect(states, batch)["weights"])  # [S, n, M, D]

        sigmas = (0.0, *config.eval.noise_sigmas)
        probs = (0.0, *config.eval.mask_probs)
        by_sigma = {sg: weights(corrupted(200 + i, sg, 0.0)) for i, sg in enumerate(sigmas)}
        by_p = {p: weights(corrupted(300 + i, 0.0, p)) for i, p in enumerate(probs)}
        result["weights"] = {
            "noise_on_first": {f"{sg:g}": w.mean((0, 1, 3)).tolist() for sg, w in by_sigma.items()},
            "mask_on_second": {f"{p:g}": w.mean((0, 1, 3)).tolist() for p, w in by_p.items()},
            "modalities": list(spec.modalities),
            # per seed ([seed][modality]), for paired tests of the weights' trend
            "noise_on_first_seeds": {f"{sg:g}": w.mean((1, 3)).tolist()
                                     for sg, w in by_sigma.items()},
            "mask_on_second_seeds": {f"{p:g}": w.mean((1, 3)).tolist() for p, w in by_p.items()},
        }
        plot(spec, first, second, by_sigma, by_p, sigmas, probs,
             figure or OUT / f"fig5_{spec.name}.png")
    (workdir / "corrupt_both.json").write_text(json.dumps(result, indent=2) + "\n")


def plot(spec, first, second, by_sigma, by_p, sigmas, probs, path):
    """Figure 5: weight heat maps and the mean-weight curves, one PNG per dataset."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    rows = ((first, 0, by_sigma, (0.0, 0.18, 0.38), "sigma"),
            (second, 1, by_p, (0.0, 0.15, 0.25), "p"))
    for r, (name, col, table, levels, sym) in enumerate(rows):
        for j, level in enumerate(levels):
            w = table[level][0, :16, col, :32]  # seed 0, 16 samples x 32 elements
            im = axes[r, j].imshow(w, vmin=0, vmax=1, cmap="viridis", aspect="auto")
            axes[r, j].set_title(f"weight of {name}, {sym} = {level:g}")
            axes[r, j].set_xlabel("element")
            axes[r, j].set_ylabel("test sample")
        fig.colorbar(im, ax=axes[r, 2])
        levels_all = sigmas if r == 0 else probs
        for c, m in enumerate(spec.modalities[:2]):
            axes[r, 3].plot(levels_all, [table[lv][:, :, c].mean() for lv in levels_all],
                            marker="o", label=m)
        axes[r, 3].set_xlabel(f"{sym} on {name}")
        axes[r, 3].set_ylabel("mean fusion weight")
        axes[r, 3].legend()
    fig.suptitle(f"RAML fusion weights on {spec.name}: noise on {first} (top), "
                 f"masking of {second} (bottom)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main(*sys.argv[1:3])
