"""Record golden numbers from RedCore's released code (``sunjunaimer/RedCore``).

Usage (torch CPU venv, outside the project's; REDCORE_SRC is a checkout of the repository root)::

    REDCORE_SRC=/tmp/golden_src/redcore /tmp/torchvenv/bin/python tools/golden/record_redcore.py

Writes two files:

- ``tests/golden/redcore_rule.npz``: the released eta/beta rule (``redcoreMMINModel.backward``'s
  moving averages, relative advantage, x1.5 step growth every 500 iterations, the update every 3
  iterations with clamp-then-normalise) driven for ``RULE_STEPS`` iterations by a fixed sequence of
  reconstruction losses: the losses the code computed, and after each iteration its moving
  averages, beta and step size.
- ``tests/golden/redcore_step.npz``: ``STEPS`` calls of ``optimize_parameters`` of the released
  model at small widths on one fixed batch (three padded sequence modalities, five missing
  patterns): the weights before, the noise the reparameterisation drew, per-term losses, the
  gradients of the first step before and after the per-network clipping, the weights after the
  first and after the last step.

Nothing of the authors' code is copied: it is imported from REDCORE_SRC and run as it is, with
these shims (each needed only to run it outside its training script):
- ``opt`` is a plain namespace holding the options ``train_miss.py`` sets (``mse_weight`` 0.15,
  ``ii`` 3, ``beta`` 0.7, ``eta`` 0.1, ``etaext`` 1.5) and the small widths below, instead of the
  argparse ``Options`` (whose dataset options import the data loaders);
- every network is put in ``eval()`` mode before the steps: dropout masks cannot be shared between
  PyTorch and JAX, and eval mode changes nothing else here (no BatchNorm in these networks);
- instrumentation only: ``torch.randn_like`` is wrapped to keep the noise it returns,
  ``torch.Tensor.backward`` to keep the total loss and the gradients before clipping.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "golden"
RULE_STEPS = 1100  # covers the step growth at iterations 0, 500 and 1000
STEPS = 3  # iteration 0 updates beta, 1 and 2 do not
DIMS = {"A": 6, "V": 5, "L": 7}  # per-step feature widths
EMBD = 8  # transformer width (8 heads, hard-coded in the model: head width 1)
AE_LAYERS = "16,8,4"  # the release script's 256,128,64 for a 256-d input, scaled to 16-d
N_BLOCKS = 2
CLS_LAYERS = "8,8"  # the release script's 128,128 for 128-d latents, scaled
LR = 2e-4


def _import_released():
    src = os.environ.get("REDCORE_SRC")
    if not src:
        sys.exit("set REDCORE_SRC to a checkout of sunjunaimer/RedCore")
    sys.path.insert(0, str(Path(src) / "RedCore"))
    from models.redcore_mmin_model import redcoreMMINModel  # noqa: E402
    return redcoreMMINModel


def _options(tmp: str) -> types.SimpleNamespace:
    """The options the model reads (shim for the argparse ``Options``; see the module doc)."""
    os.makedirs(os.path.join(tmp, "golden"), exist_ok=True)  # the model makes <name>/<cvNo>
    return types.SimpleNamespace(
        gpu_ids=[], isTrain=True, checkpoints_dir=tmp, name="golden", cuda_benchmark=False,
        cvNo=1, input_dim_a=DIMS["A"], input_dim_v=DIMS["V"], input_dim_l=DIMS["L"],
        embd_size_a=EMBD, embd_size_v=EMBD, embd_size_l=EMBD, embd_method_a="maxpool",
        embd_method_v="maxpool", AE_layers=AE_LAYERS, n_blocks=N_BLOCKS, cls_layers=CLS_LAYERS,
        dropout_rate=0.5, bn=False, output_dim=4, share_weight=False, ce_weight=1.0,
        cycle_weight=2.0, lr=LR, beta1=0.9, total_iters=100, lr_policy="linear", niter=30,
        niter_decay=30, epoch_count=1, init_type="kaiming", init_gain=0.012, verbose=False,
        # set by train_miss.py (it overrides the script's --mse_weight=4.0):
        mse_weight=0.15, ii=3, beta=0.7, eta=0.1, etaext=1.5)


class _Tap:
    """Instrumentation: keeps what ``randn_like`` returns and the state at ``backward``."""

    def __init__(self, params):
        self.params = params  # name -> parameter
        self.noise, self.loss, self.raw_grads = [], None, None
        self._randn, self._backward = torch.randn_like, torch.Tensor.backward

    def __enter__(self):
        tap = self

        def randn_like(t, *a, **k):
            out = tap._randn(t, *a, **k)
            tap.noise.append(out.detach().clone().numpy())
            return out

        def backward(t, *a, **k):
            tap.loss = float(t.detach())
            tap._backward(t, *a, **k)
            tap.raw_grads = {n: p.grad.detach().clone().numpy()
                             for n, p in tap.params.items() if p.grad is not None}

        torch.randn_like, torch.Tensor.backward = randn_like, backward
        return self

    def __exit__(self, *exc):
        torch.randn_like, torch.Tensor.backward = self._randn, self._backward


USED = ("A", "V", "L", "xenc_vl2a", "xenc_al2v", "xenc_av2l", "Cls", "Cls_a", "Cls_v", "Cls_l")
UNUSED_PARAMS = ("attention_vector_weight", "attention_layer")  # built, never on the loss path


def _params(model) -> dict:
    out = {}
    for net in USED:
        for n, p in getattr(model, "net" + net).named_parameters():
            if not n.startswith(UNUSED_PARAMS):
                out[f"{net}/{n}"] = p
    return out


def _pack(arrays: dict) -> np.ndarray:
    """One flat float32 vector (in ``names`` order; ``shapes`` restores them): one npz entry per
    snapshot keeps the file small."""
    return np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays.values()])


def _snapshot(params: dict) -> np.ndarray:
    return _pack({n: p.detach().numpy() for n, p in params.items()})


def _factor(raw: dict, params: dict, net: str) -> float:
    """The factor by which ``clip_grad_norm_(net, 1.0)`` scaled ``net``'s gradients, measured:
    ||clipped|| / ||raw|| over the network's parameters on the loss path."""
    names = [n for n in params if n.startswith(net + "/") and n in raw]
    raw_sq = sum(float((raw[n].astype(np.float64) ** 2).sum()) for n in names)
    clip_sq = sum(float((params[n].grad.detach().double() ** 2).sum()) for n in names)
    return float(np.sqrt(clip_sq / raw_sq))


def record_rule(model_cls, tmp: str) -> dict:
    """The eta/beta rule of ``backward`` on a fixed loss sequence (a one-sample batch with every
    modality present whose reconstruction loss is the chosen value; CE/KL terms are constants)."""
    model = model_cls(_options(tmp))
    t = np.arange(RULE_STEPS)
    # Three losses whose ranking changes (different periods), three exact zeros (the code then
    # keeps the previous moving average), values in float32 as the code computes them.
    base = np.array([1.0, 1.3, 0.8])[:, None]
    period = np.array([97.0, 151.0, 233.0])[:, None]
    seq = base * np.exp(0.5 * np.sin(2 * np.pi * t[None] / period + np.array([[0], [1], [2]])))
    seq[0, 37] = seq[1, 38] = seq[2, 700] = 0.0
    one = torch.ones(1, 1, 1)
    logits = torch.zeros(1, 4, requires_grad=True)
    rec = {k: [] for k in ("mse", "mal", "beta", "eta")}
    for i in range(RULE_STEPS):
        model.label = torch.zeros(1, dtype=torch.long)
        model.A_miss_index = model.V_miss_index = model.L_miss_index = one.long()
        model.logits = model.logits_a = model.logits_v = model.logits_l = logits
        for m in "avl":
            setattr(model, f"fmu_{m}", torch.zeros(1, 2))
            setattr(model, f"flogvar_{m}", torch.zeros(1, 2))
        for c, m in enumerate("AVL"):
            setattr(model, f"gen_{m.lower()}",
                    torch.tensor([[np.sqrt(seq[c, i])]], dtype=torch.float32, requires_grad=True))
            setattr(model, f"feat_{m}_miss", torch.zeros(1, 1))
        model.backward()
        rec["mse"].append([model.lossA_r.item(), model.lossV_r.item(), model.lossL_r.item()])
        rec["mal"].append([float(model.lossA), float(model.lossV), float(model.lossL)])
        rec["beta"].append(np.asarray(model.beta, np.float64))
        rec["eta"].append(model.eta)
    return {f"rule_{k}": np.asarray(v, np.float64) for k, v in rec.items()} | {
        "rule_beta0": np.array([1.0, 1.0, 1.0]), "rule_mse_weight": np.float64(0.15),
        "rule_ii": np.int64(3), "rule_loss_beta": np.float64(0.7),
        "rule_eta0": np.float64(0.1), "rule_etaext": np.float64(1.5)}


def _batch():
    """One fixed batch: padded sequences (zeros past each length) and five missing patterns."""
    rng = np.random.default_rng(20)
    b, t = 6, 5
    lengths = {"A": [5, 3, 4, 2, 5, 1], "V": [4, 5, 2, 3, 1, 5], "L": [3, 4, 5, 5, 2, 3]}
    feats = {}
    for m, d in DIMS.items():
        x = rng.normal(size=(b, t, d)).astype(np.float32)
        x[np.arange(t)[None, :] >= np.array(lengths[m])[:, None]] = 0.0
        feats[m] = x
    # Columns [A, V, L], 1 = present; every modality is missing somewhere, no sample is empty.
    missing = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    label = np.array([0, 1, 2, 3, 1, 2])
    return feats, {m: np.array(v) for m, v in lengths.items()}, missing, label


def record_step(model_cls, tmp: str) -> dict:
    torch.manual_seed(0)
    opt = _options(tmp)
    model = model_cls(opt)
    model.setup(opt)  # the released init: kaiming-normal Linear weights, zero biases
    for net in model.model_names:  # shim: dropout off (see the module docstring)
        getattr(model, "net" + net).eval()
    feats, lengths, missing, label = _batch()
    data = {"A_feat": torch.from_numpy(feats["A"]), "V_feat": torch.from_numpy(feats["V"]),
            "L_feat": torch.from_numpy(feats["L"]), "label": torch.from_numpy(label),
            "missing_index": torch.from_numpy(missing)}
    params = _params(model)
    out = {"names": np.array(list(params)), "w0": _snapshot(params),
           "shapes": np.array(json.dumps([list(p.shape) for p in params.values()]))}
    out |= {f"x/{m}": v for m, v in feats.items()} | {f"len/{m}": v for m, v in lengths.items()}
    out |= {"missing": missing, "label": label, "lr": np.float64(LR)}
    terms = {k: [] for k in ("loss", "ce", "ce_a", "ce_v", "ce_l", "mse_a", "mse_v", "mse_l",
                             "loss_mse", "beta", "eps")}
    for step in range(STEPS):
        with _Tap(params) as tap:
            model.set_input(data)
            model.optimize_parameters(epoch=1)
        terms["loss"].append(tap.loss)
        for k, attr in (("ce", "loss_CE"), ("ce_a", "loss_CE_a"), ("ce_v", "loss_CE_v"),
                        ("ce_l", "loss_CE_l"), ("mse_a", "lossA_r"), ("mse_v", "lossV_r"),
                        ("mse_l", "lossL_r"), ("loss_mse", "loss_mse")):
            terms[k].append(float(getattr(model, attr)))
        terms["beta"].append(np.asarray(model.beta, np.float64))
        assert len(tap.noise) == 3, "one reparameterisation draw per modality (A, V, L)"
        terms["eps"].append(np.stack(tap.noise))
        # mu/logvar of this step's forward, so the KL terms can be checked term by term
        for m in "avl":
            out[f"mu{step}/{m}"] = getattr(model, f"fmu_{m}").detach().numpy()
            out[f"logvar{step}/{m}"] = getattr(model, f"flogvar_{m}").detach().numpy()
        if step == 0:
            out["g_raw"] = _pack({n: tap.raw_grads.get(n, np.zeros(p.shape, np.float32))
                                  for n, p in params.items()})
            # torch.nn.utils.clip_grad_norm_(net, 1.0) per network: its factor per network
            out["clip_nets"] = np.array(USED)
            out["clip_factor"] = np.array([_factor(tap.raw_grads, params, net)
                                           for net in USED])
            out["w1"] = _snapshot(params)
    out[f"w{STEPS}"] = _snapshot(params)
    out |= {f"terms/{k}": np.asarray(v) for k, v in terms.items()}
    return out


def main():
    model_cls = _import_released()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rule = record_rule(model_cls, tmp)
        step = record_step(model_cls, tmp)
    np.savez_compressed(OUT / "redcore_rule.npz", **rule)
    np.savez_compressed(OUT / "redcore_step.npz", **step)
    for name in ("redcore_rule.npz", "redcore_step.npz"):
        print(name, (OUT / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
