"""Records TMC's and ETMC's released training steps (hanmenghan/TMC: ``TMC ICLR/model.py`` with
the loop of ``TMC ICLR/train.py``; ``ETMC TPAMI/models/TMC.py`` with ``model_forward`` of
``ETMC TPAMI/train_ETMC_nyud2.py``) into tests/golden/tmc_{iclr,etmc}.npz.

    TMC_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_tmc

What runs is the authors' code: ``TMC.forward`` (per-view ``ce_loss`` = the adjusted CE plus the
annealed ``KL``, ``DS_Combin`` of the views, the fused ``ce_loss``, the batch mean) and ETMC's
``forward`` (the pseudo-view on ``cat([rgb, depth])``, ``DS_Combin_two(DS_Combin_two(depth, rgb),
pseudo)``) with its ``model_forward`` (four ``ce_loss`` means), both with their optimiser
``Adam(lr, weight_decay=1e-5)``; one batch per epoch for EPOCHS epochs, so that the annealing
coefficient ``min(1, epoch / lambda_epochs)`` walks through its ramp (TMC counts epochs from 1,
ETMC from 0). Recorded: the weights before and after, every step's loss, the fused Dirichlet of
the first step.

Shims (only what the released code needs to run here):
- ``KL`` builds its uniform Dirichlet with ``.cuda()``; ``model_forward`` moves the batch with
  ``.cuda()``: no-ops here.
- The networks: TMC's per-view ``Classifier`` (one linear layer + Softplus on the raw view) and
  ETMC's ``ImageEncoder`` (a ResNet, ``models.image`` imports torchvision) are replaced by twins of
  mmjax's encoders (``tools/golden/torch_nets.py``): TMC's classifiers by mmjax's encoder +
  ``MLPHead`` + Softplus, ETMC's ``ImageEncoder`` by mmjax's MLP encoder (the released heads
  ``clf_rgb`` / ``clf_depth`` / ``clf``, one hidden layer, are kept: they are mmjax's
  ``MLPHead``). ``train_ETMC_nyud2.py`` imports sklearn, torchvision and its data module at the
  top: stub modules.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

from tools.golden import shims, torch_nets

HIDDEN, FEATURE, CLASSES, BATCH, EPOCHS, LR, LAMBDA_EPOCHS = 8, 6, 4, 8, 5, 0.01, 3
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")


class EvidenceTwin(nn.Module):
    """mmjax TMC's view: ``softplus(MLPHead(encoder(x)))`` (the released Classifier's place)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.encoder = torch_nets.MLPEncoder(in_dim, HIDDEN, FEATURE)
        self.head = torch_nets.MLPHead(FEATURE, HIDDEN, CLASSES)

    def forward(self, x):
        return nn.functional.softplus(self.head(self.encoder(x)))


def _batches(dims: dict[str, int]):
    g = torch.Generator().manual_seed(1)
    xs = {m: torch.randn(BATCH, d, generator=g) for m, d in dims.items()}
    return xs, torch.randint(0, CLASSES, (BATCH,), generator=g)


def record_tmc(src: str) -> dict:
    sys.path.insert(0, os.path.join(src, "TMC ICLR"))
    import model as released  # noqa: E402  (the authors' TMC ICLR model.py)
    sys.path.pop(0)
    sys.modules.pop("model")
    torch.manual_seed(0)
    dims = {"v0": 5, "v1": 4, "v2": 3}
    net = released.TMC(CLASSES, len(dims), [[d] for d in dims.values()], LAMBDA_EPOCHS)
    net.Classifiers = nn.ModuleList([EvidenceTwin(d) for d in dims.values()])
    optimizer = torch.optim.Adam(net.parameters(), lr=LR, weight_decay=1e-5)  # train.py
    xs, y = _batches(dims)
    rec = {f"x/{m}": v.numpy() for m, v in xs.items()}
    rec["label"] = y.numpy()
    names = lambda: {_rename(k, dims): v for k, v in torch_nets.flax_named(net)[0].items()}
    rec.update({f"before/{k}": v for k, v in names().items()})
    losses = []
    with shims.cuda_as_cpu():
        for epoch in range(1, EPOCHS + 1):  # train.py: epochs count from 1
            optimizer.zero_grad()
            evidences, evidence_a, loss = net({v: xs[m] for v, m in enumerate(dims)}, y, epoch)
            if epoch == 1:
                rec["fused_alpha"] = (evidence_a + 1).detach().numpy()
                rec["alphas"] = np.stack([(evidences[v] + 1).detach().numpy()
                                          for v in range(len(dims))], 1)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    rec["loss"] = np.asarray(losses, np.float32)
    rec.update({f"after/{k}": v for k, v in names().items()})
    return rec


def _rename(name: str, dims) -> str:
    """``Classifiers/i/encoder/...`` -> mmjax ``encoders/<view>/...``; ``.../head/...`` ->
    ``heads/<view>/...``."""
    parts = name.split("/")
    view = list(dims)[int(parts[1])]
    kind = {"encoder": "encoders", "head": "heads"}[parts[2]]
    return "/".join([kind, view] + parts[3:])


def record_etmc(src: str) -> dict:
    root = os.path.join(src, "ETMC TPAMI")
    sys.path.insert(0, root)
    shims.stub_modules("sklearn.metrics", "torchvision.transforms", "data.aligned_conc_dataset",
                       "models.image")

    class ImageEncoder(torch_nets.MLPEncoder):  # shim: the released ResNet encoder
        def __init__(self, args):
            super().__init__(args.in_dim, HIDDEN, FEATURE)

    sys.modules["models.image"].ImageEncoder = ImageEncoder
    import train_ETMC_nyud2 as train  # noqa: E402  (the authors' script)
    from models.TMC import ETMC, ce_loss  # noqa: E402
    torch.manual_seed(0)
    args = argparse.Namespace(img_hidden_sz=FEATURE, num_image_embeds=1, hidden=[HIDDEN],
                              dropout=0.0, n_classes=CLASSES, annealing_epoch=LAMBDA_EPOCHS,
                              in_dim=5, lr=LR)
    net = ETMC(args)
    optimizer = train.get_optimizer(net, args)
    xs, y = _batches({"rgb": 5, "depth": 5})
    rec = {f"x/{m}": v.numpy() for m, v in xs.items()}
    rec["label"] = y.numpy()
    rename = {"rgbenc": "encoders/rgb", "depthenc": "encoders/depth", "clf_rgb/0": "heads/rgb/fc1",
              "clf_rgb/3": "heads/rgb/fc2", "clf_depth/0": "heads/depth/fc1",
              "clf_depth/3": "heads/depth/fc2", "clf/0": "pseudo/fc1", "clf/3": "pseudo/fc2"}

    def names():
        out = {}
        for k, v in torch_nets.flax_named(net)[0].items():
            head, leaf = k.rsplit("/", 1)
            if head.startswith(("rgbenc", "depthenc")):
                enc, rest = head.split("/", 1)
                out[f"{rename[enc]}/{rest}/{leaf}"] = v
            else:
                out[f"{rename[head]}/{leaf}"] = v
        return out

    rec.update({f"before/{k}": v for k, v in names().items()})
    losses = []
    with shims.cuda_as_cpu():
        for epoch in range(EPOCHS):  # train_ETMC_nyud2.py: i_epoch counts from 0
            optimizer.zero_grad()
            loss, depth_alpha, rgb_alpha, fused, _ = train.model_forward(
                epoch, net, args, ce_loss, {"A": xs["rgb"], "B": xs["depth"], "label": y})
            if epoch == 0:
                rec["fused_alpha"] = fused.detach().numpy()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    rec["loss"] = np.asarray(losses, np.float32)
    rec.update({f"after/{k}": v for k, v in names().items()})
    return rec


def main():
    src = os.environ["TMC_SRC"]
    os.makedirs(OUT, exist_ok=True)
    for name, fn in (("tmc_iclr", record_tmc), ("tmc_etmc", record_etmc)):
        rec = fn(src)
        path = os.path.join(OUT, f"{name}.npz")
        np.savez_compressed(path, **rec)
        print(path, "losses", rec["loss"])


if __name__ == "__main__":
    main()
