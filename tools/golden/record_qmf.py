"""Records QMF's released training steps (QingyangZhang/QMF,
``text-image-classification/train_qmf.py``) into tests/golden/qmf_steps.npz.

    QMF_SRC=/path/to/checkout /tmp/torchvenv/bin/python -m tools.golden.record_qmf

What runs is the authors' ``model_forward(..., mode='train')`` (unimodal + fused CE, the history
update ``History.correctness_update``, the ranking loss ``rank_loss`` with
``History.get_target_margin`` / ``correctness_normalize``), their
``MultimodalLateFusionClf.forward`` (energy confidence ``log sum exp / 10``, ``df``:
confidence-weighted fusion), their
``get_optimizer`` (Adam for ``latefusion``) and ``get_criterion``, for STEPS steps over 3 epochs of
a 12-sample training set (two batches per epoch, a new order each epoch), so that from the second
epoch on the history table's minimum differs from the batch's.

Shims (only what the released code needs to run here):
- ``train_qmf.py`` and ``src.models`` import BERT (``pytorch_pretrained_bert``), torchvision, the
  data helpers and sklearn at the top; none is on the recorded path: stub modules.
- ``History.get_target_margin`` calls ``.cuda()`` on its targets: a no-op here.
- The model: ``MultimodalLateFusionClf`` with its BERT / ResNet classifiers replaced by twins of
  mmjax's QMF encoders + linear heads (``tools/golden/torch_nets.py``); its ``forward`` (the
  confidences and the fusion) is the released one.
- ``gradient_accumulation_steps`` = 1 (released default 24): one optimiser step per batch.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch
from torch import nn

from tools.golden import shims, torch_nets

DIMS = {"txt": 5, "img": 4}
HIDDEN, FEATURE, HEAD, CLASSES, BATCH, EPOCHS, LR = 8, 8, 6, 3, 6, 3, 0.01
N = 2 * BATCH
OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden")


class Twin(nn.Module):
    """One modality of mmjax's ``LateHeadsNet``: ``heads[m](relu(project[m](encoders[m](x))))``;
    ``forward(x, *ignored)`` as BertClf(txt, mask, segment) / ImageClf(img) are called."""

    def __init__(self, enc: torch_nets.ProjectedEncoders, heads: nn.ModuleDict, m: str):
        super().__init__()
        self.m, self._enc, self._heads = m, [enc], [heads]  # lists: not registered twice

    def forward(self, x, *ignored):
        return self._heads[0][self.m](self._enc[0].encode(self.m, x))


class Net(nn.Module):
    """Holds the parameters under mmjax's names (``enc``, ``heads``)."""

    def __init__(self):
        super().__init__()
        encs = {m: torch_nets.MLPEncoder(d, HIDDEN, FEATURE) for m, d in DIMS.items()}
        self.enc = torch_nets.ProjectedEncoders(encs, {m: FEATURE for m in DIMS}, HEAD)
        self.heads = nn.ModuleDict({m: nn.Linear(HEAD, CLASSES) for m in DIMS})


def main():
    src = os.path.join(os.environ["QMF_SRC"], "text-image-classification")
    sys.path.insert(0, src)
    shims.stub_modules("pytorch_pretrained_bert", "pytorch_pretrained_bert.modeling",
                       "torchvision", "torchvision.transforms", "src.data.helpers",
                       "sklearn", "sklearn.metrics")
    import train_qmf  # noqa: E402  (the authors' script)
    from src.models.late_fusion import MultimodalLateFusionClf  # noqa: E402

    torch.manual_seed(0)
    args = argparse.Namespace(model="latefusion", task_type="classification", df=True, lr=LR,
                              freeze_img=0, freeze_txt=0)
    net = Net()
    model = MultimodalLateFusionClf.__new__(MultimodalLateFusionClf)
    nn.Module.__init__(model)
    model.args, model.net = args, net
    model.txtclf, model.imgclf = Twin(net.enc, net.heads, "txt"), Twin(net.enc, net.heads, "img")
    criterion = train_qmf.get_criterion(args)
    optimizer = train_qmf.get_optimizer(model, args)
    txt_history, img_history = train_qmf.History(N), train_qmf.History(N)

    g = torch.Generator().manual_seed(1)
    # Scaled so that the confidences differ enough between samples for the ranking loss to act.
    data = {m: 4.0 * torch.randn(N, d, generator=g) for m, d in DIMS.items()}
    labels = torch.randint(0, CLASSES, (N,), generator=g)
    rec = {f"data/{m}": v.numpy() for m, v in data.items()}
    rec["data/label"] = labels.numpy()
    rec.update({f"before/{k}": v for k, v in torch_nets.flax_named(net)[0].items()})
    order, terms, hist, margins = [], [], [], []
    outputs = {}
    model.register_forward_hook(lambda mod, inp, out: outputs.update(out=out))
    with shims.cuda_as_cpu():
        for _ in range(EPOCHS):
            perm = torch.randperm(N, generator=g)
            for b in range(N // BATCH):
                idx = perm[b * BATCH:(b + 1) * BATCH]
                unused = torch.zeros(BATCH)  # segment ids and mask: BERT inputs, unread here
                batch = (data["txt"][idx], unused, unused, data["img"][idx], labels[idx], idx)
                loss, _, _ = train_qmf.model_forward(0, model, args, criterion, batch,
                                                     txt_history, img_history, mode="train")
                fused, txt_out, img_out, txt_conf, img_conf = outputs["out"]
                y = labels[idx]
                # The terms of the released total, recomputed from its outputs (rank_loss only
                # reads the history, which model_forward has already updated).
                terms.append([float(loss.detach()), float(criterion(txt_out, y)),
                              float(criterion(img_out, y)), float(criterion(fused, y)),
                              float(train_qmf.rank_loss(txt_conf, idx, txt_history)),
                              float(train_qmf.rank_loss(img_conf, idx, img_history))])
                # The released ranking targets and margins (the normalised history differences).
                pairs = [h.get_target_margin(idx, torch.roll(idx, -1))
                         for h in (txt_history, img_history)]
                margins.append(np.stack([np.stack([t.numpy(), m.numpy()]) for t, m in pairs]))
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
                order.append(idx.numpy())
                hist.append(np.stack([txt_history.correctness, img_history.correctness]))
    rec["order"] = np.stack(order)  # [steps, B] sample indices of each batch
    rec["terms"] = np.asarray(terms, np.float32)  # total, CE txt, CE img, CE fused, rank txt, img
    rec["history"] = np.stack(hist)  # float64, [steps, 2, N], after each step's update
    rec["target_margin"] = np.stack(margins)  # [steps, modality, (target, margin), B]
    rec.update({f"after/{k}": v for k, v in torch_nets.flax_named(net)[0].items()})
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "qmf_steps.npz")
    np.savez_compressed(path, **rec)
    print(path, len(order), "steps; totals", rec["terms"][:, 0])


if __name__ == "__main__":
    main()
