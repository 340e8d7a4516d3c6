"""Records MMIN's released training step (AIM3-RUC/MMIN, branch ``master``,
``models/mmin_model.py``) into tests/golden/mmin_steps.npz, and with ``--model ae`` that of its
released AE variant (``models/mmin_AE_model.py``) into tests/golden/mmin_ae_steps.npz.

    MMIN_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_mmin
    MMIN_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_mmin --model ae

What runs is the authors' ``MMINModel``: its ``__init__`` (the forward and backward ``ResidualAE``,
the ``FcClassifier`` on the latents, Adam over A, V, L, C, AE, AE_cycle with ``betas=(beta1,
0.999)``, beta1 0.5 as ``opts`` default it), ``set_input`` (inputs masked by ``missing_index``
columns [A, V, L], the teacher's inputs by its complement), ``forward`` (concat [A, L, V], the
imagination, the cycle, the classifier, the frozen teacher's embeddings) and
``optimize_parameters`` (CE + 4 MSE(teacher, imagination) + 2 MSE(h.detach(), cycle), then
``clip_grad_norm_(1.0)`` per network, Adam step) for STEPS steps, each with its own missing
patterns. Widths are small (AE_layers 6,4, two blocks, one hidden classifier layer).
``MMINAEModel`` is the same step with one ``SimpleFcAE`` (AE_layers 6,4) in the place of each
``ResidualAE`` and the classifier on its one latent.

Shims (only what the released code needs to run here):
- The encoders: the released LSTM / TextCNN encoders on IEMOCAP sequences are replaced by twins
  of mmjax's MLP encoder (``tools/golden/torch_nets.py``), on inputs [B, 1, D] (one frame), by
  rebinding the names ``LSTMEncoder`` / ``TextCNN`` in ``models.mmin_model``.
- ``load_pretrained_encoder`` reads a trained ``UttFusionModel`` checkpoint from disk; here the
  teacher is three such twins with fixed weights, in eval mode, and ``post_process`` (the copy of
  the teacher's encoders into the student's, which expects ``DataParallel`` key names) is the
  same copy done with plain ``load_state_dict``.
- ``BaseModel`` writes a checkpoint folder: a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np
import torch

from tools.golden import torch_nets

DIMS = {"A": 5, "V": 4, "L": 3}  # released missing_index column order [A, V, L]
ORDER = ("A", "L", "V")  # released concatenation order, mmjax's modality order here
HIDDEN, FEATURE, CLASSES, BATCH, STEPS, LR = 8, 6, 4, 8, 3, 0.01
SCALE = {"cra": 3.0, "ae": 20.0}  # the inputs' standard deviation per recording
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")


def twin(input_dim, embd_size, *args, **kwargs):
    """mmjax's MLP encoder in the place of the released ``LSTMEncoder`` / ``TextCNN``."""
    return torch_nets.MLPEncoder(input_dim, HIDDEN, embd_size)


class Teacher(torch.nn.Module):
    """The pretrained ``UttFusionModel``'s encoders (``netA``, ``netV``, ``netL``)."""

    def __init__(self):
        super().__init__()
        self.netA, self.netV, self.netL = (twin(DIMS[m], FEATURE) for m in "AVL")


def imagination_names(name: str, key: str) -> str:
    """mmjax's name of a released ``ResidualAE`` (``cra``) or ``SimpleFcAE`` (``ae``) weight:
    ``Sequential`` indices count activations too, so Linear ``i`` is layer ``i // 2``."""
    block, index, leaf = key.split("/")
    if block == "transition":
        return f"{name}/trans{int(index) // 2 + 1}/{leaf}"
    if block in ("encoder", "decoder"):  # SimpleFcAE
        return f"{name}/{block[:3]}/{int(index) // 2}/{leaf}"
    kind, b = block.split("_")
    part = {"encoder": "enc", "decoder": "dec"}[kind]
    return f"{name}/blocks/{b}/{part}/{int(index) // 2}/{leaf}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cra", "ae"), default="cra")
    variant = parser.parse_args().model
    sys.path.insert(0, os.environ["MMIN_SRC"])
    if variant == "cra":
        import models.mmin_model as released  # noqa: E402  (the authors' model)
        model_class = released.MMINModel
    else:
        import models.mmin_AE_model as released  # noqa: E402  (the authors' AE variant)
        model_class = released.MMINAEModel
    released.LSTMEncoder = released.TextCNN = twin
    torch.manual_seed(0)
    teacher = Teacher().eval()

    def load_pretrained_encoder(self, opt):  # shim: no checkpoint on disk
        self.pretrained_encoder = teacher

    model_class.load_pretrained_encoder = load_pretrained_encoder
    checkpoints = tempfile.mkdtemp()
    os.makedirs(os.path.join(checkpoints, "golden"))
    opt = argparse.Namespace(
        gpu_ids=[], isTrain=True, checkpoints_dir=checkpoints, name="golden",
        cuda_benchmark=False, cvNo=1, input_dim_a=DIMS["A"], input_dim_v=DIMS["V"],
        input_dim_l=DIMS["L"], embd_size_a=FEATURE, embd_size_v=FEATURE, embd_size_l=FEATURE,
        embd_method_a="maxpool", embd_method_v="maxpool", AE_layers="6,4", n_blocks=2,
        cls_layers=str(HIDDEN), dropout_rate=0.0, bn=False, share_weight=False,
        output_dim=CLASSES, lr=LR, beta1=0.5, ce_weight=1.0, mse_weight=4.0, cycle_weight=2.0)
    model = model_class(opt)
    for m in "AVL":  # post_process: student encoders := teacher's
        getattr(model, f"net{m}").load_state_dict(getattr(teacher, f"net{m}").state_dict())

    def weights() -> dict:
        out = {}
        for m in "AVL":
            for k, v in torch_nets.flax_named(getattr(model, f"net{m}"))[0].items():
                out[f"encoders/{m}/{k}"] = v
                out[f"teacher/encoders/{m}/{k}"] = torch_nets.flax_named(
                    getattr(teacher, f"net{m}"))[0][k]
        for net, name in (("netAE", "imagination"), ("netAE_cycle", "backward_ae")):
            for k, v in torch_nets.flax_named(getattr(model, net))[0].items():
                out[imagination_names(name, k)] = v
        for k, v in torch_nets.flax_named(model.netC)[0].items():
            out["head/" + k.replace("module/0", "fc1").replace("fc_out", "fc2")] = v
        return out

    g = torch.Generator().manual_seed(1)
    rec = {f"before/{k}": v for k, v in weights().items()}
    patterns = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]])
    terms, norms = [], []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(parameters, max_norm, *a, **k):  # the released call, its pre-clip norm kept
        out = clip(parameters, max_norm, *a, **k)
        norms.append(float(out))
        return out

    torch.nn.utils.clip_grad_norm_ = recording_clip
    for s in range(STEPS):
        # Scaled so that some networks' gradients exceed the released clipping norm 1 (the AE's
        # ReLU output passes smaller gradients than the CRA's linear one).
        x = {m: SCALE[variant] * torch.randn(BATCH, 1, d, generator=g) for m, d in DIMS.items()}
        y = torch.randint(0, CLASSES, (BATCH,), generator=g)
        index = patterns[torch.randint(0, 6, (BATCH,), generator=g).numpy()]  # [A, V, L]
        model.set_input({"A_feat": x["A"], "V_feat": x["V"], "L_feat": x["L"], "label": y,
                         "missing_index": torch.as_tensor(index)})
        model.optimize_parameters(s)
        terms.append([float(model.loss_CE.detach()), float(model.loss_mse.detach()),
                      float(model.loss_cycle.detach())])
        for m in DIMS:
            rec[f"step{s}/x/{m}"] = x[m][:, 0].numpy()
        rec[f"step{s}/label"] = y.numpy()
        rec[f"step{s}/present"] = index[:, [0, 2, 1]].astype(bool)  # mmjax order A, L, V
        if s == 0:
            rec["step0/logits"] = model.logits.detach().numpy()
    torch.nn.utils.clip_grad_norm_ = clip
    rec["terms"] = np.asarray(terms, np.float32)  # weighted CE, 4 MSE, 2 cycle
    # [steps, networks A, V, L, C, AE, AE_cycle]: gradient norms before clipping to 1
    rec["grad_norms"] = np.asarray(norms, np.float32).reshape(STEPS, 6)
    rec.update({f"after/{k}": v for k, v in weights().items()})
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "mmin_steps.npz" if variant == "cra" else "mmin_ae_steps.npz")
    np.savez_compressed(path, **rec)
    print(path, "terms", rec["terms"])


if __name__ == "__main__":
    main()
