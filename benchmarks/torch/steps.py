"""PyTorch training steps equivalent to the mmjax steps that benchmarks/torch/compare.py times.

One class per case; each builds its network, optimiser and random data of the case's shapes in
``__init__(batch)`` and runs ``steps`` training steps in ``run(steps)``. Same layers, widths,
losses and optimiser as the mmjax config of the case (see benchmarks/torch/README.md); the data
are random tensors generated once (mmjax's bench also feeds random data), so neither side's
timing includes a data pipeline. Written for this project; benchmark-only.

- ``SmilMeta``: SMIL's meta-update (mmjax/methods/smil.py ``meta_objective``): paired-memory
  insert and draw, one inner SGD step on theta with the reconstructed modality (second order:
  ``torch.autograd.grad(create_graph=True)``), the outer loss on the memory batch with theta*,
  the inner loss and the KL terms, Adam on theta and psi.
- ``Concat``: concat fusion of LeNet-5 and the sound CNN (BatchNorm in training mode), Adam.
- ``RedCore``: RedCore on three padded sequence modalities (3-layer Transformers), VIB + MSE
  losses, eta regulation, Adam.
- ``Mla``: one round of MLA (M unimodal updates, each of one encoder and the shared head, with the
  RLS head-gradient projection), SGD momentum with step decay.
- ``Raml``: RAML on two feature modalities (512-d, 1024-d) with 3 sampled missing patterns per
  sample, precision-weighted fusion, L^M + L^U + 0.01 L^D, Adam with L2 weight decay.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.func import functional_call

from models import ConcatNet, LeNet5, RamlNet, RedCoreNet, SharedHeadNet, SmilNet, SoundCNN


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(w v) / max(sum(w), 1)`` (mmjax ``losses.weighted_mean``)."""
    weights = weights.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def _avmnist(batch: int, gen: torch.Generator):
    """Random AV-MNIST-shaped tensors: images ``[B, 1, 28, 28]``, MFCC ``[B, 1, 20, 20]``, labels."""
    return (torch.randn(batch, 1, 28, 28, generator=gen), torch.randn(batch, 1, 20, 20,
                                                                      generator=gen),
            torch.arange(batch) % 10)


class Case:
    """A timed case: ``step()`` is one training step (one MLA round) returning its loss."""

    def run(self, steps: int) -> float:
        """Runs ``steps`` steps; returns the last loss."""
        for _ in range(steps):
            loss = self.step()
        return float(loss.detach())


class SmilMeta(Case):
    """SMIL's meta-training step at AV-MNIST shapes (configs/avmnist_offline/smil.py defaults:
    paper reconstruction, additive regulariser with learned sigma, one inner step at lr 1e-3,
    second order, one MC sample, KL weight 1e-3, the D^m term in the outer loss; Adam 1e-3).

    Dropout is off and BatchNorm uses its running statistics in the meta phase (as mmjax).
    """

    name = "smil_meta"

    def __init__(self, batch: int = 64, memory_size: int = 256, inner_lr: float = 1e-3,
                 kl_weight: float = 1e-3, num_priors: int = 10):
        gen = torch.Generator().manual_seed(0)
        self.batch, self.inner_lr, self.kl_weight, self.k = batch, inner_lr, kl_weight, num_priors
        self.net = SmilNet(num_priors=num_priors).eval()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.x1, self.x2, self.y = _avmnist(batch, gen)
        # The paired memory (D^f), a fingerprint per slot as mmjax keeps; half full at the start.
        self.mx1, self.mx2, _ = _avmnist(memory_size, gen)
        self.my = torch.arange(memory_size) % 10
        self.fp = torch.zeros(memory_size)
        self.count = memory_size // 2
        self.r1, self.r2 = torch.randn(784, generator=gen), torch.randn(400, generator=gen)
        self.priors = torch.randn(num_priors, 320, generator=gen)
        self.buffers = dict(self.net.named_buffers())

    def _insert(self):
        """Writes the batch's samples not already stored (by fingerprint) into free slots."""
        fp = self.x1.flatten(1) @ self.r1 + self.x2.flatten(1) @ self.r2
        size = self.fp.shape[0]
        valid = torch.arange(size) < self.count
        same = (fp[:, None] - self.fp[None, :]).abs() <= 1e-4 * (1.0 + fp[:, None].abs())
        new = ~(same & valid[None, :]).any(-1)
        pos = self.count + torch.cumsum(new.long(), 0) - 1
        keep = new & (pos < size)
        slots = pos[keep]
        self.mx1[slots], self.mx2[slots] = self.x1[keep], self.x2[keep]
        self.my[slots], self.fp[slots] = self.y[keep], fp[keep]
        self.count = self.count + int(keep.sum())
        if self.count >= size:  # keep the benchmark inserting: forget the memory once full
            self.count = size // 2

    def _forward(self, params, x1, x2, eps):
        """SMIL's ``forward`` with parameters ``params``: x2=None reconstructs modality 2 for
        every sample. Returns ``(logits, kl [B])``."""
        call = lambda name, x: functional_call(  # noqa: E731
            getattr(self.net, name), {k.split(".", 1)[1]: v for k, v in params.items()
                                      if k.split(".", 1)[0] == name}, (x,))
        h1 = call("enc1", x1)
        kl = torch.zeros(h1.shape[0])
        if x2 is None:  # eq. 2, paper: omega ~ N(1, sigma), x2_hat = omega @ M / K
            sigma = F.softplus(call("recon", h1)) + 1e-6
            omega = 1.0 + sigma * eps[0]
            kl = kl + 0.5 * (sigma ** 2 - 1.0 - 2.0 * torch.log(sigma)).sum(-1)
            h2 = omega @ self.priors / self.k
        else:
            h2 = call("enc2", x2)
        h = torch.cat([h1, h2], -1)
        for site, (prev, e) in enumerate(((h1, eps[1]), (None, eps[2])), start=1):
            prev = h if prev is None else prev
            mu = call(f"reg{site}_mu", prev)
            sigma = F.softplus(call(f"reg{site}_sigma", prev)) + 1e-6
            r = mu + sigma * e
            kl = kl + 0.5 * (sigma ** 2 + mu ** 2 - 1.0 - 2.0 * torch.log(sigma)).sum(-1)
            if site == 1:
                h = h + F.softplus(r)
                a = F.relu(call("fc1", h))
            else:
                a = a + F.softplus(r)
        return call("fc2", a), kl

    def _noise(self, n):
        d1, d2, h = self.net.dims
        return torch.randn(n, self.k), torch.randn(n, d1 + d2), torch.randn(n, h)

    def step(self):
        """One meta-update (memory insert and draw, inner step, outer loss, Adam)."""
        self._insert()
        idx = torch.randint(0, max(self.count, 1), (self.batch,))
        mx1, mx2, my = self.mx1[idx], self.mx2[idx], self.my[idx]
        params = dict(self.net.named_parameters())
        theta = [k for k in params if self.net.is_theta(k)]
        logits, kl_in = self._forward(params, self.x1, None, self._noise(self.batch))
        inner = F.cross_entropy(logits, self.y)
        grads = torch.autograd.grad(inner, [params[k] for k in theta], create_graph=True,
                                    allow_unused=True)
        star = dict(params)
        for k, g in zip(theta, grads):
            if g is not None:  # enc2 and the unimodal heads are off the D^m path: zero gradient
                star[k] = params[k] - self.inner_lr * g
        logits, kl_f = self._forward(star, mx1, mx2, self._noise(self.batch))
        ones = torch.ones(self.batch)
        outer = weighted_mean(F.cross_entropy(logits, my, reduction="none"), ones)
        total = outer + self.kl_weight * (kl_in.mean() + weighted_mean(kl_f, ones)) + inner
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        self.opt.step()
        return total


class Concat(Case):
    """Concat fusion on AV-MNIST shapes (configs/avmnist_offline/concat.py: LeNet-5 160-d + sound
    CNN 320-d, head 480 -> 64 -> 10, dropout 0, Adam 1e-3, CE over samples with any modality)."""

    name = "concat"

    def __init__(self, batch: int = 64):
        gen = torch.Generator().manual_seed(0)
        self.net = ConcatNet([LeNet5(0.0), SoundCNN(0.0)], 64, 10, 0.0).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        x1, x2, self.y = _avmnist(batch, gen)
        self.inputs = [x1, x2]
        self.present = (torch.rand(batch, 2, generator=gen) > 0.3).float()

    def step(self):
        """One Adam step on the fused CE."""
        logits = self.net(self.inputs, self.present)
        loss = weighted_mean(F.cross_entropy(logits, self.y, reduction="none"),
                             self.present.amax(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss


class RedCore(Case):
    """RedCore at IEMOCAP-like sequence shapes (configs/iemocap/redcore.py: Transformers of width
    128, 3 layers, 8 heads, dropout 0.2; latent 128; RA-layers 128-64-32 x 5 blocks; gamma 0.008
    on the KL; beta 0.7; eta updated every 3 steps; Adam 2e-4).

    The eta update projects with clamp-and-normalise (mmjax's default is the exact Euclidean
    projection onto Gamma_1; both are a handful of operations on an M-vector, immaterial to
    the step time).
    """

    name = "redcore"
    DIMS = (130, 342, 1024)
    RATES = (0.2, 0.5, 0.8)

    def __init__(self, batch: int = 128, steps: int = 50, gamma: float = 0.008, beta: float = 0.7,
                 every: int = 3, alpha: float = 0.1, xi1: float = 0.015, xi2: float = 0.15):
        gen = torch.Generator().manual_seed(0)
        self.net = RedCoreNet(self.DIMS, 4).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=2e-4)
        self.present = torch.stack([torch.rand(batch, generator=gen) >= r for r in self.RATES],
                                   1).float()
        self.lengths = [torch.randint(1, steps + 1, (batch,), generator=gen)
                        * self.present[:, c].long() for c in range(len(self.DIMS))]
        self.inputs = [torch.randn(batch, steps, d, generator=gen)
                       * (torch.arange(steps)[None, :] < self.lengths[c][:, None])[..., None]
                       for c, d in enumerate(self.DIMS)]
        self.y = torch.arange(batch) % 4
        self.gamma, self.beta, self.every, self.alpha, self.xi1, self.xi2 = (
            gamma, beta, every, alpha, xi1, xi2)
        m = len(self.DIMS)
        self.eta = torch.full((m,), xi2 / math.sqrt(m))
        self.mal = torch.zeros(m)
        self.t = 0

    def step(self):
        """One RedCore step: losses, eta regulation, Adam."""
        mus, logvars, zbars, zhats, logits, joint = self.net(self.inputs, self.lengths,
                                                             self.present)
        p, b = self.present, self.present.shape[0]
        anyp = p.amax(-1)
        ce_joint = weighted_mean(F.cross_entropy(joint, self.y, reduction="none"), anyp)
        ce = torch.stack([weighted_mean(F.cross_entropy(lg, self.y, reduction="none"), anyp)
                          for lg in logits])
        kl = torch.stack([(-0.5 * (1.0 + lv - mu ** 2 - lv.exp()).sum(-1) * p[:, c]).sum() / b
                          for c, (mu, lv) in enumerate(zip(mus, logvars))])
        mse = torch.stack([weighted_mean(((zb - zh) ** 2).sum(-1), p[:, c])
                           for c, (zb, zh) in enumerate(zip(zbars, zhats))])
        with torch.no_grad():  # Red: moving averages, relative advantage, eta every K steps
            self.mal = mse if self.t == 0 else (1 - self.beta) * self.mal + self.beta * mse
            ra = (self.mal.mean() - self.mal) / self.mal.mean().clamp_min(1e-12)
            if self.t % self.every == 0:
                eta = (self.eta - self.alpha * ra).clamp_min(self.xi1)
                self.eta = eta * self.xi2 / eta.norm()
        loss = ce_joint + ce.sum() + self.gamma * kl.sum() + (self.eta * mse).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.t += 1
        return loss


class Mla(Case):
    """One MLA round per step at three 512-d features (configs/mfeat/mla.py at the
    bench shapes features512: MLP encoders 512 -> 128 -> 128 (dropout 0.1), projection 128 -> 128 +
    ReLU, shared head 128 -> 10; RLS head-gradient projection, alpha 0.1; SGD lr 1e-2, momentum
    0.9, x0.1 every 2,100 rounds).

    A round is M unimodal updates, each of encoder m and the head only (the other encoders keep
    their parameters and momentum: each encoder has its own SGD, the head one of its own).
    """

    name = "mla"
    DIMS = (512, 512, 512)

    def __init__(self, batch: int = 64, alpha: float = 0.1):
        gen = torch.Generator().manual_seed(0)
        self.net = SharedHeadNet(self.DIMS, 128, 128, 128, 10, 0.1).train()
        sgd = lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9)  # noqa: E731
        self.opts = [sgd(list(e.parameters()) + list(p.parameters()))
                     for e, p in zip(self.net.encoders, self.net.project)]
        self.head_opt = sgd(self.net.head.parameters())
        # The decay period counts rounds (mmjax ``round_optim``); each optimiser steps its own
        # schedule per update it takes: the head M per round, encoder m one.
        m = len(self.DIMS)
        self.scheds = [torch.optim.lr_scheduler.StepLR(o, 2100, 0.1) for o in self.opts]
        self.scheds.append(torch.optim.lr_scheduler.StepLR(self.head_opt, 2100 * m, 0.1))
        self.inputs = [torch.randn(batch, d, generator=gen) for d in self.DIMS]
        self.present = (torch.rand(batch, len(self.DIMS), generator=gen) > 0.2).float()
        self.y = torch.arange(batch) % 10
        self.P = torch.eye(128)
        self.alpha = alpha
        self.count = 0

    def update(self, m: int):
        """One unimodal update of modality ``m`` (eq. 2-4)."""
        w = self.present[:, m]
        feats = self.net.encode(m, self.inputs[m])
        logits = self.net.head(feats)
        loss = weighted_mean(F.cross_entropy(logits, self.y, reduction="none"), w)
        self.opts[m].zero_grad(set_to_none=True)
        self.head_opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            if self.count > 0:  # eq. 3 (RLS) with the batch-mean feature, eq. 4 on the kernel
                h = (feats * w[:, None]).sum(0) / w.sum().clamp_min(1.0)
                ph = self.P @ h
                new = self.P - torch.outer(ph, h @ self.P) / (self.alpha + h @ ph)
                self.P = 0.5 * (new + new.T)
                g = self.net.head.weight.grad  # [C, s]: P acts on the input side
                g.copy_(g @ self.P)
            self.count += 1
        self.opts[m].step()
        self.head_opt.step()
        for s in (self.scheds[m], self.scheds[-1]):
            s.step()
        return loss

    def step(self):
        """One round: the M unimodal updates in turn."""
        for m in range(len(self.DIMS)):
            loss = self.update(m)
        return loss


def _masked_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over axis -2 (modalities) of ``logits [..., M, D]`` restricted to ``mask [..., M]``
    (zeros where the mask is empty), as mmjax ``raml.masked_softmax``."""
    keep = mask[..., None]
    top = torch.where(keep, logits, -torch.inf).amax(-2, keepdim=True)
    top = torch.where(torch.isfinite(top), top, 0.0)
    e = torch.where(keep, torch.exp(logits - top), 0.0)
    total = e.sum(-2, keepdim=True)
    return e / torch.where(total > 0, total, 1.0)


class Raml(Case):
    """RAML at the bench shapes food_features (configs/mfeat/raml.py: MLP encoders hidden 128 -> 64,
    dropout 0.1, Gaussians of width 128, a shared linear predictor to 101 classes, 3 sampled
    patterns per sample, lambda_1 = 1, lambda_2 = 0.01; Adam 1e-3 with weight decay 5e-4 added to
    the gradient)."""

    name = "raml"
    DIMS = (512, 1024)

    def __init__(self, batch: int = 128, num_patterns: int = 3, lambda_u: float = 1.0,
                 lambda_d: float = 0.01):
        gen = torch.Generator().manual_seed(0)
        self.net = RamlNet(self.DIMS, 128, 64, 128, 101, 0.1).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3, weight_decay=5e-4)
        self.inputs = [torch.randn(batch, d, generator=gen) for d in self.DIMS]
        self.present = torch.rand(batch, len(self.DIMS), generator=gen) > 0.2
        self.y = torch.arange(batch) % 101
        self.p, self.lambda_u, self.lambda_d = num_patterns, lambda_u, lambda_d

    def step(self):
        """One RAML step: sampled patterns, L^M, L^U, L^D, Adam."""
        b, m = self.present.shape
        code = torch.randint(1, 2 ** m, (self.p, b))
        delta = ((code[..., None] >> torch.arange(m)) & 1).bool() & self.present[None]  # [P,B,M]
        valid = delta.any(-1).float()
        mu, logvar, mu0, logvar0 = self.net(self.inputs)
        keep = delta[..., None]
        mu_p = torch.where(keep, mu[None], mu0[None, None])  # [P, B, M, D]
        logvar_p = torch.where(keep, logvar[None], logvar0[None, None])
        h = (_masked_softmax(-logvar_p, delta) * mu_p).sum(-2)  # eq. 4, [P, B, D]
        lm = F.cross_entropy(self.net.predictor(h).flatten(0, 1), self.y.repeat(self.p),
                             reduction="none").view(self.p, b)
        h_m = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # [B, M, D]
        h_0 = mu0[None] + torch.randn_like(mu) * torch.exp(0.5 * logvar0)[None]
        ce = torch.stack([F.cross_entropy(self.net.predictor(h_m[:, c]), self.y,
                                          reduction="none") for c in range(m)], -1)
        ce0 = torch.stack([F.cross_entropy(self.net.predictor(h_0[:, c]), self.y,
                                           reduction="none") for c in range(m)], -1)
        lu = torch.where(delta, ce[None], ce0[None]).sum(-1)  # [P, B]
        ld = (_masked_softmax(-logvar_p, torch.ones_like(delta)) * mu_p).abs().sum((-2, -1))
        mean = lambda v: weighted_mean(v.flatten(), valid.flatten())  # noqa: E731
        loss = mean(lm) + self.lambda_u * mean(lu) + self.lambda_d * mean(ld)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss


CASES = {c.name: c for c in (SmilMeta, Concat, RedCore, Mla, Raml)}
