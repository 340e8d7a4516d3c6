"""Records MLA's released training round and test-time fusion (``main.py`` of
Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-Adaptation) into tests/golden/mla_*.npz.

    MLA_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_mla

What runs is the authors' ``train_epoch(..., gs_flag=True)`` (per batch: the features of every
modality, then for m = a, v[, t] ``CE(fc_out(m)).backward(); gs_plugin.before_update(...);
optimizer.step(); zero_grad()``), their ``GSPlugin``, their optimiser construction
(``SGD(lr, momentum=0.9, weight_decay=1e-4)``, ``StepLR(70, 0.1)``) and their ``valid(...)``
(fixed ``av_alpha`` = 0.55 as ``main()`` passes it, or a/v/t 0.35/0.25/0.40; ``--dynamic``: the
per-batch entropy gating). Two cases: two modalities through the CLIP-feature path
(``args.clip``) and three through the IEMOCAP path (``lorb=m3ae, modal3``).

Shims (only what the released code needs to run here):
- ``main.py`` imports its dataset module (torchvision, torchaudio, timm), its model module (timm,
  ml_collections, CAV-MAE/M3AE) and tensorboard at the top; none of them is on the recorded path
  (batches come in as tensors, the model is ours), so they are empty stub modules.
- ``GSPlugin.__init__`` puts P on CUDA (``torch.cuda.FloatTensor``); P is set to the same
  ``torch.eye(512)`` on the CPU instead.
- The model: the released encoders are ResNet-18 / M3AE; ours are the twins of mmjax's MLA
  encoders (``tools/golden/torch_nets.py``) behind the interface ``train_epoch`` calls:
  ``model(...)`` returns the features, ``model.module.fusion_module.fc_out`` is the shared head
  (``DataParallel`` with no device, as ``main()`` wraps it).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

from tools.golden import shims, torch_nets

HIDDEN, FEATURE, HEAD, BATCH, ROUNDS, LR = 8, 8, 6, 8, 3, 0.05
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")


def import_released(src: str):
    """The authors' ``main`` and ``utils.utils`` modules, with the import stubs above."""
    sys.path.insert(0, src)
    shims.stub_modules("dataset.dataset", "models.basic_model", "torch.utils.tensorboard")
    import main  # noqa: E402  (the authors' script)
    import utils.utils as utils  # noqa: E402
    return main, utils


class FusionModule(nn.Module):
    """Holds the shared head under the released name ``fc_out``."""

    def __init__(self, head_dim: int, classes: int):
        super().__init__()
        self.fc_out = nn.Linear(head_dim, classes)


class TwinNet(nn.Module):
    """mmjax's ``SharedHeadNet`` behind the released ``model(...)`` signatures: returns the
    features of each modality (``clip``: ``model(spec, image)``; ``modal3``:
    ``model(token, padding_mask, image, spec)``)."""

    def __init__(self, dims: dict[str, int], classes: int):
        super().__init__()
        encs = {m: torch_nets.MLPEncoder(d, HIDDEN, FEATURE) for m, d in dims.items()}
        self.enc = torch_nets.ProjectedEncoders(encs, {m: FEATURE for m in dims}, HEAD)
        self.fusion_module = FusionModule(HEAD, classes)
        self.names = tuple(dims)

    def forward(self, *args):
        if len(args) == 2:  # clip path: (spec, image) -> (a, v)
            xs = args
        else:  # modal3 path: (token, padding_mask, image, spec) -> (a, v, t)
            xs = (args[0], args[2], args[3])
        return tuple(self.enc.encode(m, x) for m, x in zip(self.names, xs))


def flax_names(net: TwinNet) -> dict:
    """The net's weights under mmjax ``SharedHeadNet`` names (head = ``fc_out``)."""
    params, _ = torch_nets.flax_named(net)
    return {k.replace("fusion_module/fc_out", "head"): v for k, v in params.items()}


def record(main, utils, case: str) -> dict:
    """One case: ``ROUNDS`` released rounds on fixed batches, then both test-time fusions."""
    torch.manual_seed(0)
    modal3 = case == "m3"
    dims = {"a": 5, "v": 4, "t": 3} if modal3 else {"a": 5, "v": 4}
    classes = 4 if modal3 else 6  # released n_classes: IEMOCAP 4, CREMA-D 6
    net = TwinNet(dims, classes)
    model = nn.DataParallel(net, device_ids=[])
    args = argparse.Namespace(lorb="m3ae" if modal3 else "base", modal3=modal3, clip=not modal3,
                              modulation="Normal", dataset="IEMOCAP" if modal3 else "CREMAD",
                              dynamic=False)
    # main(): optimizer and scheduler as released.
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 70, 0.1)
    gs = utils.GSPlugin.__new__(utils.GSPlugin)  # shim: P on the CPU (released: CUDA)
    gs.Pl, gs.exp_count = torch.eye(512), 0

    g = torch.Generator().manual_seed(1)
    batches, rec = [], {}
    for r in range(ROUNDS):
        xs = {m: torch.randn(BATCH, d, generator=g) for m, d in dims.items()}
        y = torch.randint(0, classes, (BATCH,), generator=g)
        idx = torch.arange(BATCH)[:, None] + r * BATCH
        for m in dims:
            rec[f"round{r}/x/{m}"] = xs[m].numpy()
        rec[f"round{r}/label"] = y.numpy()
        if modal3:
            batches.append((xs["a"], torch.ones(BATCH, 1), xs["v"], xs["t"], y, idx))
        else:
            batches.append((xs["a"], xs["v"], y, idx))
    for k, v in flax_names(net).items():
        rec[f"before/{k}"] = v

    # Per update: the loss the released criterion returned, the gradients the step used, the
    # weights after it.
    losses, updates = [], []
    released_ce = nn.CrossEntropyLoss

    class RecordingCE(released_ce):
        def forward(self, input, target):
            out = super().forward(input, target)
            losses.append(float(out))
            return out

    step = optimizer.step

    def recording_step(*a, **k):
        grads = torch_nets.grads_named(net)
        out = step(*a, **k)
        updates.append(({kk.replace("fusion_module/fc_out", "head"): v
                         for kk, v in grads.items()}, flax_names(net)))
        return out

    nn.CrossEntropyLoss = RecordingCE
    optimizer.step = recording_step
    try:
        main.train_epoch(args, 0, model, torch.device("cpu"), batches, optimizer, scheduler,
                         gs_plugin=gs, gs_flag=True, av_alpha=0.55)
    finally:
        nn.CrossEntropyLoss = released_ce
    rec["loss"] = np.asarray(losses, np.float32)  # [ROUNDS * M], update order
    for u, (grads, after) in enumerate(updates):
        for k, v in grads.items():
            rec[f"update{u}/grad/{k}"] = v
        if u == len(updates) - 1:
            for k, v in after.items():
                rec[f"after/{k}"] = v
    rec["P_is_identity"] = np.asarray(bool(torch.equal(gs.Pl, torch.eye(512))))
    rec["exp_count"] = np.asarray(gs.exp_count)

    # Test time: the fused logits valid() computes (the first softmax input of each batch).
    test = {m: torch.randn(BATCH, d, generator=g) for m, d in dims.items()}
    y = torch.randint(0, classes, (BATCH,), generator=g)
    for m in dims:
        rec[f"test/x/{m}"] = test[m].numpy()
    packet = ((test["a"], torch.ones(BATCH, 1), test["v"], test["t"], y, torch.arange(BATCH))
              if modal3 else (test["a"], test["v"], y, torch.arange(BATCH)))
    released_softmax = nn.Softmax
    for dynamic in (False, True):
        seen = []

        class RecordingSoftmax(released_softmax):
            def forward(self, x):
                seen.append(x.detach().numpy().copy())
                return super().forward(x)

        args.dynamic = dynamic
        nn.Softmax = RecordingSoftmax
        try:
            main.valid(args, model, torch.device("cpu"), [packet], gs_flag=True, av_alpha=0.55)
        finally:
            nn.Softmax = released_softmax
        rec[f"test/fused_{'dynamic' if dynamic else 'fixed'}"] = seen[0]
    return rec


def main_():
    src = os.environ["MLA_SRC"]
    main, utils = import_released(src)
    os.makedirs(OUT, exist_ok=True)
    for case in ("av", "m3"):
        rec = record(main, utils, case)
        path = os.path.join(OUT, f"mla_{case}.npz")
        np.savez_compressed(path, **rec)
        print(path, len(rec), "arrays; losses", rec["loss"])


if __name__ == "__main__":
    main_()
