"""Modality gap (MLA section 3.3.3, after Liang et al. 2022) of trained workdirs.

For each seed replica, every test sample's per-modality embedding is L2-normalised and the gap
between modalities a and b is ``|| mean_i z_a(x_i) - mean_i z_b(x_i) ||`` (the distance between
the modality centroids on the unit sphere; 0 = the same region, up to 2). With more than two
modalities the table gives every pair and their mean. Embeddings: MLA / QMF / OGM-GE the projected
encoder outputs h_m (the shared head's input space for MLA); concat/sum/late the encoder outputs
(equal widths needed: mfeat with model.feature_dim=128; AV-MNIST's LeNet-5 160-d and sound CNN
320-d are not comparable, so AV-MNIST compares MLA with OGM-GE, which is concat fusion on the same
projected 128-d encoders).

  python experiments/mla/modality_gap.py runs/mla/mfeat_mla runs/mla/mfeat_concat ...
"""

import itertools
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax import cli, train


def _embedder(s):
    """``f(params, model_state, inputs) -> {m: [B, D]}`` for the method's network."""
    graphdef = s.method_graphdef

    def embed(params, model_state, inputs):
        module = nnx.merge(graphdef, params, model_state)
        out = {}
        for m in s.dataset.spec.modalities:
            if hasattr(module, "enc"):
                out[m] = module.enc.encode(m, inputs[m], deterministic=True)
            else:
                out[m] = module.encoders[m](inputs[m], deterministic=True)
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
        return baselines._net(config, spec, fusion=name).graphdef
    raise SystemExit(f"no embedding rule for method {name}")


def gaps(workdir: pathlib.Path) -> tuple[str, dict]:
    """``(method name, {pair: (mean, std) over seeds})`` on the complete test split."""
    config = cli._load_workdir_config(workdir)
    s = train.setup(config)
    states = train.restore_states(s, workdir)
    s.method_graphdef = _graphdef(config, s.dataset.spec)
    embed = _embedder(s)
    split = s.dataset.splits[config.eval.split]
    mods = s.dataset.spec.modalities
    per_seed = []
    for i in range(config.train.num_seeds):
        st = jax.tree.map(lambda x: x[i], states)
        z = embed(st.params, st.model_state, {m: jnp.asarray(x) for m, x in split.inputs.items()})
        cent = {m: np.asarray(z[m] / jnp.maximum(jnp.linalg.norm(z[m], axis=-1, keepdims=True),
                                                 1e-12)).mean(0) for m in mods}
        per_seed.append({f"{a}-{b}": float(np.linalg.norm(cent[a] - cent[b]))
                         for a, b in itertools.combinations(mods, 2)})
    pairs = list(per_seed[0])
    out = {p: (np.mean([d[p] for d in per_seed]), np.std([d[p] for d in per_seed], ddof=1))
           for p in pairs}
    if len(pairs) > 1:
        means = [np.mean([d[p] for p in pairs]) for d in per_seed]
        out["mean"] = (np.mean(means), np.std(means, ddof=1))
    return f"{config.method.name} ({config.data.name})", out


def main(argv) -> int:
    rows = [(pathlib.Path(w).name, *gaps(pathlib.Path(w))) for w in argv]
    pairs = sorted({p for _, _, g in rows for p in g})
    print("| run | method | " + " | ".join(pairs) + " |")
    print("|" + "---|" * (len(pairs) + 2))
    for run, name, g in rows:
        cells = " | ".join(f"{g[p][0]:.3f} ± {g[p][1]:.3f}" if p in g else "" for p in pairs)
        print(f"| {run} | {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
