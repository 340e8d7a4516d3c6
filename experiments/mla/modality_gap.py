"""Modality gap (MLA section 3.3.3, after Liang et al. 2022) of trained workdirs.

For each seed replica, every test sample's per-modality embedding is L2-normalised and the gap
between modalities a and b is ``|| mean_i z_a(x_i) - mean_i z_b(x_i) ||`` (the distance between
the modality centroids on the unit sphere; 0 = the same region, up to 2). With more than two
modalities the table gives every pair and their mean. Embeddings: MLA / QMF / OGM-GE the projected
encoder outputs h_m (the shared head's input space for MLA); concat/sum/late the encoder outputs
(equal widths needed: mfeat with model.feature_dim=128; AV-MNIST's LeNet-5 160-d and sound CNN
320-d are not comparable, so AV-MNIST compares MLA with OGM-GE, which is concat fusion on the same
projected 128-d encoders).

  python experiments/mla/modality_gap.py [--json OUT.json] RUN_DIR ...

Prints the table (mean ± std over the seed replicas); ``--json`` also writes every run's per-seed
gaps, ``{run folder name: {"method": ..., "seeds": [...], "gaps": {pair: [per seed]}}}``, which
experiments/mla/make_table.py reads for its paired tests (results/gap_mfeat.json).
"""

import argparse
import itertools
import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax import cli, train
from mmjax.data.base import length_key
from mmjax.models.encoders import encode


def _embedder(s):
    """``f(params, model_state, inputs) -> {m: [B, D]}`` for the method's network."""
    graphdef = s.method_graphdef

    def embed(params, model_state, inputs):
        module = nnx.merge(graphdef, params, model_state)
        out = {}
        for m in s.dataset.spec.modalities:
            if hasattr(module, "enc"):
                out[m] = module.enc.encode(m, inputs, deterministic=True)
            else:
                out[m] = encode(module.encoders[m], inputs[m], inputs.get(length_key(m)),
                                deterministic=True)
        return out

    return jax.jit(embed)


def _graphdef(config, spec):
    """The NNX graph definition of the workdir method's network (rebuilt from the config)."""
    from mmjax.methods import baselines, mla, ogm_ge, qmf
    from mmjax.methods.base import NNXModel, compute_dtype

    name, dtype = config.method.name, compute_dtype(config.train.dtype)
    if name == "mla":
        return mla.make_net(config, spec).graphdef
    if name == "qmf":
        s = config.method.head_dim
        return NNXModel(lambda r: qmf.LateHeadsNet(spec, config.model, s, dtype=dtype,
                                                   rngs=r)).graphdef
    if name == "ogm_ge":
        s = config.method.head_dim
        return NNXModel(lambda r: ogm_ge.ConcatLinearNet(spec, config.model, s, dtype=dtype,
                                                         rngs=r)).graphdef
    if name in ("concat", "sum", "late"):
        return baselines.fusion_net(config, spec, fusion=name).graphdef
    raise SystemExit(f"no embedding rule for method {name}")


def per_seed_gaps(workdir: pathlib.Path) -> tuple[str, list[int], dict[str, list[float]]]:
    """``(method name, seeds, {pair: [gap per seed]})`` on the complete test split; with more
    than two modalities ``"mean"`` is each seed's mean over the pairs."""
    config = cli._load_workdir_config(workdir)
    s = train.setup(config)
    states = train.restore_states(s, workdir)
    s.method_graphdef = _graphdef(config, s.dataset.spec)
    embed = _embedder(s)
    split = s.dataset.splits[config.eval.split]
    mods = s.dataset.spec.modalities
    pairs = [f"{a}-{b}" for a, b in itertools.combinations(mods, 2)]
    out = {p: [] for p in pairs}
    for i in range(config.train.num_seeds):
        st = jax.tree.map(lambda x: x[i], states)
        z = embed(st.params, st.model_state, {m: jnp.asarray(x) for m, x in split.inputs.items()})
        cent = {m: np.asarray(z[m] / jnp.maximum(jnp.linalg.norm(z[m], axis=-1, keepdims=True),
                                                 1e-12)).mean(0) for m in mods}
        for p, (a, b) in zip(pairs, itertools.combinations(mods, 2)):
            out[p].append(float(np.linalg.norm(cent[a] - cent[b])))
    if len(pairs) > 1:
        out["mean"] = [float(np.mean([out[p][i] for p in pairs]))
                       for i in range(config.train.num_seeds)]
    seeds = [config.train.seed + i for i in range(config.train.num_seeds)]
    return f"{config.method.name} ({config.data.name})", seeds, out


def main(argv) -> int:
    """Prints the table of the workdirs' gaps; writes the per-seed JSON when asked."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the per-seed gaps here")
    parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
    args = parser.parse_args(argv)
    doc = {}
    for w in args.workdirs:
        name, seeds, gaps = per_seed_gaps(w)
        doc[w.name] = {"method": name, "seeds": seeds, "gaps": gaps}
    pairs = sorted({p for run in doc.values() for p in run["gaps"]})
    print("| run | method | " + " | ".join(pairs) + " |")
    print("|" + "---|" * (len(pairs) + 2))
    for run, d in doc.items():
        cells = " | ".join(f"{np.mean(d['gaps'][p]):.3f} ± {np.std(d['gaps'][p], ddof=1):.3f}"
                           if p in d["gaps"] else "" for p in pairs)
        print(f"| {run} | {d['method']} | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
