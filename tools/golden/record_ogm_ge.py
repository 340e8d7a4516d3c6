"""Records OGM-GE's released training loop (GeWu-Lab/OGM-GE_CVPR2022, ``main.py``) into
tests/golden/ogm_ge_*.npz.

    OGM_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_ogm_ge

What runs is the authors' ``train_epoch`` (concat fusion, unimodal logits from the halves of
``fc_out`` with half its bias, the scores, ratio and coefficients of eq. 10, the modulation of the
4-d encoder gradients inside the window ``modulation_starts <= epoch <= modulation_ends``, GE's
noise ``N(0, grad.std() + 1e-8)``, ``optimizer.step()``, ``scheduler.step()`` per epoch), with
their optimiser construction (SGD lr, momentum 0.9, weight_decay 1e-4; StepLR(70, 0.1)), for
EPOCHS epochs of one fixed batch each, the window epochs 1-2:

- ``ogm_ge_ogm.npz``: ``--modulation OGM`` (deterministic): every step's loss, ratio and
  coefficients, the weights after the last step.
- ``ogm_ge_ge.npz``: ``--modulation OGM_GE``, epoch 1 (the first in the window): for each tensor
  the released code drew noise for, the raw gradient (recovered from the gradient the step used,
  the drawn noise and k) and the std it passed to ``normal_`` (the noise itself cannot be the
  same in JAX; its law can), and the coefficients.

Shims (only what the released code needs to run here):
- ``main.py`` imports its dataset modules, model module (ResNet-18 backbones) and tensorboard at
  the top; none is on the recorded path: stub modules.
- The model: twins of mmjax's ``sound_cnn`` (audio, 20x20) and ``lenet5`` (visual, 28x28)
  encoders with mmjax's projection (``tools/golden/torch_nets.py``), under the released attribute
  names ``audio_net`` / ``visual_net`` (the released code picks the tensors to modulate by these
  names and ``ndim == 4``) and ``fusion_module.fc_out``, in ``DataParallel`` with no device.
- The writer: ``use_tensorboard`` with a recorder in place of ``SummaryWriter`` (the released
  code logs the ratio and both coefficients through it).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

from tools.golden import layout, shims, torch_nets

HEAD, CLASSES, BATCH, EPOCHS, LR, ALPHA = 8, 4, 8, 4, 0.05, 0.5
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")


class Branch(nn.Module):
    """One modality: mmjax encoder + ``relu(project(.))`` (``ProjectedEncoders.encode``)."""

    def __init__(self, encoder: nn.Module, out_dim: int):
        super().__init__()
        self.encoder = encoder
        self.project = nn.Linear(out_dim, HEAD)

    def forward(self, x):
        return torch.relu(self.project(self.encoder(x)))


class FusionModule(nn.Module):
    """Released ``ConcatFusion``'s layer: ``fc_out`` over ``[a; v]``."""

    def __init__(self):
        super().__init__()
        self.fc_out = nn.Linear(2 * HEAD, CLASSES)


class TwinNet(nn.Module):
    """``model(spec [B,1,20,20], image [B,1,28,28]) -> (a, v, fc_out([a; v]))`` as released."""

    def __init__(self):
        super().__init__()
        self.audio_net = Branch(torch_nets.SoundCNN(), 320)
        self.visual_net = Branch(torch_nets.LeNet5(), 160)
        self.fusion_module = FusionModule()

    def forward(self, spec, image):
        a, v = self.audio_net(spec), self.visual_net(image)
        return a, v, self.fusion_module.fc_out(torch.cat([a, v], 1))


def flax_names(net: TwinNet, grads: bool = False) -> tuple[dict, dict]:
    """mmjax ``ConcatLinearNet`` names of the net's weights (or gradients) and BN statistics."""
    params, state = (torch_nets.grads_named(net), {}) if grads else torch_nets.flax_named(net)
    return ({flax_names_from(k): v for k, v in params.items()},
            {flax_names_from(k): v for k, v in state.items()})


def flax_names_of(torch_name: str) -> str:
    """The mmjax name of one parameter of the net (``audio_net.encoder.convs.0.weight``)."""
    path, leaf = torch_name.rsplit(".", 1)
    net = TwinNet()
    sub = net.get_submodule(path)
    kind = {"weight": "kernel" if isinstance(sub, (nn.Linear, nn.Conv2d)) else "scale",
            "bias": "bias"}[leaf]
    return flax_names_from(path.replace(".", "/") + "/" + kind)


def flax_names_from(name: str) -> str:
    """``flax_names``'s renaming of one ``/``-joined torch module path."""
    for branch, m in (("audio_net", "audio"), ("visual_net", "visual")):
        name = name.replace(f"{branch}/encoder/", f"enc/encoders/{m}/")
        name = name.replace(f"{branch}/project/", f"enc/project/{m}/")
    return name.replace("fusion_module/fc_out", "head")


class Writer:
    """Stands in for ``SummaryWriter``: keeps every scalar the released loop logs."""

    def __init__(self):
        self.scalars = {}

    def add_scalar(self, tag, value, iteration):
        self.scalars.setdefault(tag, []).append(float(value))


def record(main, modulation: str) -> dict:
    torch.manual_seed(0)
    net = TwinNet()
    model = nn.DataParallel(net, device_ids=[])
    args = argparse.Namespace(fusion_method="concat", modulation=modulation, alpha=ALPHA,
                              modulation_starts=1, modulation_ends=2, use_tensorboard=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 70, 0.1)
    g = torch.Generator().manual_seed(1)
    spec = torch.randn(BATCH, 20, 20, generator=g)  # the loop unsqueezes the channel axis
    image = torch.randn(BATCH, 1, 28, 28, generator=g)
    label = torch.randint(0, CLASSES, (BATCH,), generator=g)
    rec = {"x/audio": spec.numpy()[..., None], "x/visual": image.numpy().transpose(0, 2, 3, 1),
           "label": label.numpy()}
    params, state = flax_names(net)
    rec.update({f"before/{k}": v for k, v in params.items()})
    rec.update({f"before_state/{k}": v for k, v in state.items()})

    losses, noise = [], []
    released_ce, released_normal = nn.CrossEntropyLoss, torch.Tensor.normal_

    class RecordingCE(released_ce):
        def forward(self, input, target):
            out = super().forward(input, target)
            losses.append(float(out.detach()))
            return out

    def recording_normal(self, mean=0.0, std=1.0, **kw):
        out = released_normal(self, mean, std, **kw)
        noise.append((float(std), out.detach().numpy().copy()))
        return out

    step = optimizer.step
    grads_at_step = []

    def recording_step(*a, **k):
        grads_at_step.append(flax_names(net, grads=True)[0])
        return step(*a, **k)

    optimizer.step = recording_step
    writer = Writer()
    nn.CrossEntropyLoss, torch.Tensor.normal_ = RecordingCE, recording_normal
    try:
        for epoch in range(EPOCHS):
            main.train_epoch(args, epoch, model, torch.device("cpu"), [(spec, image, label)],
                             optimizer, scheduler, writer=writer)
    finally:
        nn.CrossEntropyLoss, torch.Tensor.normal_ = released_ce, released_normal
    params, state = flax_names(net)
    rec.update({f"after/{k}": v for k, v in params.items()})
    rec.update({f"after_state/{k}": v for k, v in state.items()})
    rec["loss"] = np.asarray(losses[0::3], np.float32)  # criterion(out) of each step
    rec["ratio_v"] = np.asarray(writer.scalars["data/ratio v"], np.float32)
    rec["coeff_a"] = np.asarray(writer.scalars["data/coefficient a"], np.float32)
    rec["coeff_v"] = np.asarray(writer.scalars["data/coefficient v"], np.float32)
    if modulation == "OGM_GE":
        # Epoch 1 is the first in the window: one noise draw per 4-d encoder kernel, in
        # named_parameters order. From the gradient the step used (k g + noise), the noise and
        # k, the raw gradient g whose std the released code passed to normal_.
        kernels = [n for n, p in net.named_parameters() if p.ndim == 4]
        names = [flax_names_of(n) for n in kernels]
        k = {"audio": rec["coeff_a"][1], "visual": rec["coeff_v"][1]}
        assert len(noise) == 2 * len(names), len(noise)
        for name, (std, sample) in zip(names, noise[:len(names)]):
            modality = name.split("/")[2]
            rec[f"ge/{name}/std"] = np.float32(std)
            raw = (grads_at_step[1][name] - layout.conv_kernel(sample)) / k[modality]
            rec[f"ge/{name}/raw"] = raw.astype(np.float32)
    return rec


def main_():
    src = os.environ["OGM_SRC"]
    sys.path.insert(0, src)
    shims.stub_modules("dataset.CramedDataset", "dataset.VGGSoundDataset", "dataset.dataset",
                       "models.basic_model", "torch.utils.tensorboard")
    import main  # noqa: E402  (the authors' script)
    os.makedirs(OUT, exist_ok=True)
    for modulation, name in (("OGM", "ogm"), ("OGM_GE", "ge")):
        rec = record(main, modulation)
        if modulation == "OGM_GE":  # the GE file pins the noise only; OGM's holds the weights
            rec = {k: v for k, v in rec.items() if k.startswith(("ge/", "coeff", "ratio"))}
        path = os.path.join(OUT, f"ogm_ge_{name}.npz")
        np.savez_compressed(path, **rec)
        print(path, "coeff_a", rec["coeff_a"], "coeff_v", rec["coeff_v"])


if __name__ == "__main__":
    main_()
