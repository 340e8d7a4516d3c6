"""Record golden numbers from SMIL's released code (``mengmenm/SMIL``, AV-MNIST).

Usage (torch CPU venv, outside the project's; SMIL_SRC is a checkout of the repository root)::

    SMIL_SRC=/tmp/golden_src/smil /tmp/torchvenv/bin/python tools/golden/record_smil.py

Writes ``tests/golden/smil_meta.npz``. The released networks (``LeNet5``, ``SNetPluse``,
``SoundLenet5New``, ``InferNetNew``) hold ~152k weights on the meta-update's path, too many to
store: every weight and BatchNorm statistic is drawn by ``tools.golden.params.seeded`` from
``SEED`` and the stored ``names``/``shapes``/``lows``/``highs``, which the test regenerates. The
file holds, in PyTorch layouts:

- the two batches (``mtr/*``: the image-only meta-train batch, ``mval/*``: the paired meta-val
  batch) and the K = 10 sound priors ``sound_mean`` ``[K, 320]`` (as ``np.load`` gives them,
  before the released ``.T``);
- the forward outputs at the starting weights on the meta-val batch, eval mode: the LeNet-5 and
  sound-CNN features, the full-modality logits (mode ``'two'``) and the image-only logits with the
  released reconstruction and the deterministic regulariser (mode ``'one'``, ``meta_train=False``);
- one call of the released ``meta_training`` (iteration 0): the noise the inner pass drew
  (``noise/fc1`` ``[B, 480]``, ``noise/fc2`` ``[B, 64]``), the per-term losses (meta-train CE; the
  meta-val CE of the perturbed pass, the two feature MSEs, the clean CE that is computed but not
  added, the meta-val total), the perturbed and clean passes at theta* (logits and both feature
  maps), theta* of three tensors, and for each of the 26 tensors with a gradient: the norm of its
  outer gradient and of its Adam update, and both at ``SUBSET`` fixed flat indices (``idx/*``).

Nothing of the authors' code is copied: it is imported from SMIL_SRC/src and run as it is, with
these shims, each needed only to import or run it here:

- ``torch._six`` (removed in torch 2) is provided with ``string_classes``, the one name MetaNN
  0.3.2 imports from it (official-code-notes 5.9);
- ``torch.utils.tensorboard`` and the four ``dataset.*`` modules are empty stand-ins: they are
  imported at the top of ``train_missing_eval_missing.py`` (pulling in cv2, PIL, librosa,
  torchvision) and never called on the recorded path (the batches are passed in directly);
- ``ProtoModule.functional(params, True)``, which the released ``meta_training`` uses for all
  three passes, is forced to eval mode (``training=False``): as shipped it switches the stateless
  copy to train mode, so dropout (LeNet-5 0.5, SNetPluse 0.25, fusion 0.5) is on and the sound
  CNN's BatchNorm uses batch statistics in the clean pass; dropout masks cannot be shared between
  frameworks and mmjax's meta phase runs deterministic layers (experiments/smil/README.md,
  "Released conformance", lists this as not reproduced);
- instrumentation only: ``torch.randn_like`` is wrapped to keep the noise it returns, the two
  criteria to keep their inputs and outputs, ``functional`` to keep the parameters it is given
  (its second call receives theta*).
"""

from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from tools.golden import params as golden_params  # noqa: E402
from tools.golden import shims  # noqa: E402

OUT = ROOT / "tests" / "golden" / "smil_meta.npz"
SEED = 20  # of the weights (tools.golden.params.seeded)
B = 8  # both batches
K = 10  # priors, hard-coded in InferNetNew.fc0
SUBSET = 256  # flat indices kept per tensor for gradients and updates
LR, LR_INNER, WD = 1e-3, 1e-3, 1e-4  # train_missing_eval_missing.py's defaults
THETA_STAR = ("net.img_extractor.conv1.weight", "net.fc1.bias", "net.fc2.weight")


def _import_released():
    src = os.environ.get("SMIL_SRC")
    if not src:
        sys.exit("set SMIL_SRC to a checkout of mengmenm/SMIL")
    sys.path.insert(0, str(Path(src) / "src"))
    six = types.ModuleType("torch._six")  # shim: see the module docstring
    six.string_classes = (str, bytes)
    sys.modules["torch._six"] = torch._six = six
    shims.stub_modules("torch.utils.tensorboard", "dataset.meta_training_dataset",
                       "dataset.meta_testing_dataset", "dataset.soundmnist", "dataset.mnist")
    import train_missing_eval_missing as script  # noqa: E402
    return script


def _specs(net: torch.nn.Module, encoder: torch.nn.Module) -> list[tuple]:
    """``(name, shape, low, high)`` of every float tensor of both state dicts: weights
    U(+-1/sqrt(fan_in)) as torch's default, biases U(+-0.1), BatchNorm scales and running
    variances U(0.5, 1.5), BatchNorm shifts and running means U(+-0.1)."""
    out = []
    for prefix, module in (("net.", net), ("encoder.", encoder)):
        norms = {n for n, m in module.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue  # num_batches_tracked
            owner, leaf = name.rsplit(".", 1)
            if owner in norms:
                lo, hi = (0.5, 1.5) if leaf in ("weight", "running_var") else (-0.1, 0.1)
            elif leaf == "weight":
                bound = 1.0 / np.sqrt(np.prod(t.shape[1:]))
                lo, hi = -bound, bound
            else:
                lo, hi = -0.1, 0.1
            out.append((prefix + name, tuple(t.shape), lo, hi))
    return out


def _load(module, weights: dict, prefix: str):
    state = module.state_dict()
    for name in state:
        if prefix + name in weights:
            state[name] = torch.from_numpy(weights[prefix + name])
    module.load_state_dict(state)


class _Tap:
    """The eval-mode shim of ``functional`` and the instrumentation (see the module docstring)."""

    def __init__(self, proto_cls):
        self.proto_cls = proto_cls
        self.noise, self.functional_params = [], []
        self._randn, self._functional = torch.randn_like, proto_cls.functional

    def __enter__(self):
        tap = self

        def randn_like(t, *a, **k):
            out = tap._randn(t, *a, **k)
            tap.noise.append(out.detach().clone().numpy())
            return out

        def functional(proto, params, training=None):
            tap.functional_params.append([p.detach().clone().numpy() for p in params])
            del training  # shim: eval mode (the released call passes True)
            return tap._functional(proto, params, False)

        torch.randn_like, self.proto_cls.functional = randn_like, functional
        return self

    def __exit__(self, *exc):
        torch.randn_like, self.proto_cls.functional = self._randn, self._functional


class _Criterion(torch.nn.Module):
    """Instrumentation: the released criterion, keeping its inputs and output."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, []

    def forward(self, *args):
        out = self.inner(*args)
        self.calls.append(([a.detach().clone() for a in args], float(out.detach())))
        return out


def _build(script, weights):
    """The released models as ``main()`` builds them, with ``weights`` loaded; eval mode, as the
    iteration-0 evaluation leaves them."""
    from metann import ProtoModule
    encoder = script.InferNetNew()
    net = script.SoundLenet5New(script.LeNet5(), script.SNetPluse(), extractor_grad=False)
    _load(net, weights, "net.")
    _load(encoder, weights, "encoder.")
    encoder, net = ProtoModule(encoder), ProtoModule(net)
    net.eval()
    encoder.eval()
    return net, encoder


def _meta_update(script, weights, batches, sound_mean):
    """One ``meta_training`` call (iteration 0) on fresh models; returns its records."""
    from metann import ProtoModule
    net, encoder = _build(script, weights)
    ce = _Criterion(torch.nn.CrossEntropyLoss())
    kd = _Criterion(script.KDLossAlignTwo(alpha=0.01, beta=0.01))
    opt_net = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=WD)
    opt_enc = torch.optim.Adam(encoder.parameters(), lr=LR, weight_decay=WD)
    args = types.SimpleNamespace(inner_loop=1, lr_inner=LR_INNER)
    writer = types.SimpleNamespace(add_scalar=lambda *a, **k: None)
    before = {**{"net." + n: p.detach().clone().numpy() for n, p in net.named_parameters()},
              **{"encoder." + n: p.detach().clone().numpy()
                 for n, p in encoder.named_parameters()}}
    with _Tap(ProtoModule) as tap:
        script.meta_training(args, *batches, torch.from_numpy(sound_mean).T, net, encoder, ce, kd,
                             opt_net, opt_enc, torch.device("cpu"), writer, 0, 1)
    named = {**{"net." + n: p for n, p in net.named_parameters()},
             **{"encoder." + n: p for n, p in encoder.named_parameters()}}
    return before, named, tap, ce, kd


def record(script) -> dict:
    """Every number of ``smil_meta.npz`` (see the module docstring)."""
    torch.manual_seed(0)
    specs = _specs(script.SoundLenet5New(script.LeNet5(), script.SNetPluse()),
                   script.InferNetNew())
    names, shapes, lows, highs = zip(*specs)
    weights = golden_params.seeded(names, shapes, lows, highs, SEED)
    rng = np.random.default_rng(SEED + 1)
    x = {"mtr/image": rng.uniform(-1, 1, (B, 1, 28, 28)),  # Normalize(0.5, 0.5)'s range
         "mval/image": rng.uniform(-1, 1, (B, 1, 28, 28)),
         "mval/sound": rng.normal(0, 1, (B, 1, 20, 20))}
    x = {k: v.astype(np.float32) for k, v in x.items()}
    x["mtr/label"] = rng.integers(0, 10, B).astype(np.int64)
    x["mval/label"] = rng.integers(0, 10, B).astype(np.int64)
    sound_mean = rng.uniform(0, 1, (K, 320)).astype(np.float32)
    t = {k: torch.from_numpy(v) for k, v in x.items()}
    out = {"seed": np.int64(SEED), "names": np.array(names), "shapes": json.dumps(shapes),
           "lows": np.array(lows), "highs": np.array(highs), "sound_mean": sound_mean,
           "lr": np.float64(LR), "lr_inner": np.float64(LR_INNER), "wd": np.float64(WD), **x}

    # forward outputs at the starting weights, eval mode
    net, encoder = _build(script, weights)
    with torch.no_grad():
        m = net.module
        out["fwd/f_image"] = m.img_extractor(t["mval/image"], noise=False)[1].numpy()
        out["fwd/f_sound"] = m.sound_extractor(t["mval/sound"])[1].numpy()
        out["fwd/logits_two"] = net(t["mval/label"], t["mval/image"], sound=t["mval/sound"],
                                    mode="two")[0].numpy()
        one = net(t["mval/label"], t["mval/image"], sound=None, encoder=encoder,
                  sound_mean=torch.from_numpy(sound_mean).T,
                  noise_layer=["fc0", "fc1", "fc2"], meta_train=False, mode="one")
        out["fwd/logits_one"], out["fwd/sound_hat"] = one[0].numpy(), one[3].numpy()

    batches = ((t["mtr/image"], t["mtr/label"]),
               (t["mval/image"], t["mval/sound"], t["mval/label"]))
    before, named, tap, ce, kd = _meta_update(script, weights, batches, sound_mean)
    assert [n.shape for n in tap.noise] == [(B, 480), (B, 64)], [n.shape for n in tap.noise]
    out["noise/fc1"], out["noise/fc2"] = tap.noise
    (kd_args, kd_total), = kd.calls
    _, _, f_c, f_n, f1_c, f1_n, pred_n, pred_c, label = kd_args
    mse = torch.nn.functional.mse_loss
    cross = torch.nn.functional.cross_entropy
    out.update({
        "loss/meta_train": np.float64(ce.calls[0][1]), "loss/meta_val": np.float64(kd_total),
        "loss/ce_noised": np.float64(cross(pred_n, label)),
        "loss/ce_clean": np.float64(cross(pred_c, label)),
        "loss/mse_concat": np.float64(mse(f_c, f_n)), "loss/mse_fc1": np.float64(mse(f1_c, f1_n)),
        "star/logits_noised": pred_n.numpy(), "star/logits_clean": pred_c.numpy(),
        "star/f_noised": f_n.numpy(), "star/f_clean": f_c.numpy(),
        "star/f1_noised": f1_n.numpy(), "star/f1_clean": f1_c.numpy()})
    # functional's second call (the perturbed pass) receives theta*, in named_parameters order
    star = dict(zip(["net." + n for n, _ in net.named_parameters()], tap.functional_params[1]))
    for n in THETA_STAR:
        out[f"theta_star/{n}"] = star[n]
    used = [n for n, p in named.items() if p.grad is not None]
    out["used"] = np.array(used)
    for i, n in enumerate(used):
        g = named[n].grad.detach().numpy().ravel()
        step = named[n].detach().numpy().ravel() - before[n].ravel()
        idx = np.sort(np.random.default_rng(i).choice(g.size, min(g.size, SUBSET), replace=False))
        out[f"idx/{n}"] = idx.astype(np.int32)
        out[f"grad/{n}"], out[f"update/{n}"] = g[idx], step[idx]
        out[f"grad_norm/{n}"] = np.float64(np.linalg.norm(g.astype(np.float64)))
        out[f"update_norm/{n}"] = np.float64(np.linalg.norm(step.astype(np.float64)))
    return out


def main():
    """Records ``OUT``."""
    out = record(_import_released())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
