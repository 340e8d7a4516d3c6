"""PyTorch equivalents of the mmjax networks the torch benchmark times (written for this project).

Same layers, widths and layer order as mmjax/models (encoders.py, fusion.py, sequence.py,
residual_ae.py) and the method networks of mmjax/methods (smil.py, redcore.py, mla.py); torch's
default initialisation (the timing does not depend on it). Images are NCHW here (torch's layout)
where mmjax is NHWC. Benchmark-only code: mmjax never imports it, and torch is not a dependency of
mmjax.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class MLPEncoder(nn.Module):
    """mmjax ``MLPEncoder``: ``in -> hidden -> out``, ReLU after each, dropout between."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden), nn.Linear(hidden, out_dim)
        self.drop = nn.Dropout(dropout)
        self.out_dim = out_dim

    def forward(self, x):
        """``[B, *shape] -> [B, out]``."""
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return F.relu(self.fc2(x))


class LeNet5(nn.Module):
    """mmjax ``LeNet5`` (SMIL's image net) on ``[B, 1, 28, 28]`` -> 160-d."""

    out_dim = 160

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 5, 5), nn.Conv2d(5, 10, 5)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        """conv -> maxpool -> ReLU -> conv -> dropout -> maxpool -> ReLU -> flatten."""
        x = F.relu(F.max_pool2d(self.conv1(x), 2, 2))
        x = F.relu(F.max_pool2d(self.drop(self.conv2(x)), 2, 2))
        return x.flatten(1)


class SoundCNN(nn.Module):
    """mmjax ``SoundCNN`` (SMIL's ``SNetPluse``) on ``[B, 1, 20, 20]`` MFCC -> 320-d."""

    out_dim = 320

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        chans = (1, 32, 48, 20)
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 2) for a, b in zip(chans, chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(c, momentum=0.1) for c in chans[1:]])
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        """Three (conv 2x2, BatchNorm, ReLU), maxpool (window 2, stride 4), dropout, flatten."""
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
        return self.drop(F.max_pool2d(x, 2, 4)).flatten(1)


class MLPHead(nn.Module):
    """mmjax ``MLPHead``: ``in -> hidden -> ReLU -> dropout -> out``."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(in_dim, hidden), nn.Linear(hidden, out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        """``[B, in] -> [B, out]``."""
        return self.fc2(self.drop(F.relu(self.fc1(x))))


class ConcatNet(nn.Module):
    """mmjax ``MultimodalNet(fusion="concat")``: encoders, masked features concatenated, head."""

    def __init__(self, encoders: list[nn.Module], hidden: int, classes: int, dropout: float):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)
        self.head = MLPHead(sum(e.out_dim for e in encoders), hidden, classes, dropout)

    def forward(self, inputs: list[torch.Tensor], present: torch.Tensor):
        """``inputs`` one tensor per modality, ``present`` float ``[B, M]`` -> logits."""
        feats = [enc(x) * present[:, i:i + 1] for i, (enc, x) in
                 enumerate(zip(self.encoders, inputs))]
        return self.head(torch.cat(feats, -1))


# ----------------------------------------------------------------------------------------------
# Sequences: mmjax/models/sequence.py's TransformerEncoder.
# ----------------------------------------------------------------------------------------------


def sinusoidal_positions(steps: int, width: int) -> torch.Tensor:
    """The fixed position code ``[steps, width]`` (as mmjax ``sinusoidal_positions``)."""
    t = torch.arange(steps, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, width, 2, dtype=torch.float64) / width)[None, :]
    pe = torch.zeros(steps, width, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq)[:, : width // 2]
    return pe.float()


class Attention(nn.Module):
    """Multi-head self-attention as ``nnx.MultiHeadAttention``: q, k, v and output projections
    with biases, dropout on the attention weights, an additive key-padding mask (a row with no
    valid key attends uniformly, as Flax's masking with the dtype's minimum does)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x, bias):
        """``x [B, T, W]``, ``bias [B, 1, 1, T]`` (0 valid, large negative padded)."""
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(a.transpose(1, 2).reshape(b, t, w))


class Block(nn.Module):
    """Pre-LayerNorm block: ``x + MHA(LN(x))``, ``x + MLP(LN(x))`` (MLP width 4x), dropout."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(width, eps=1e-5), nn.LayerNorm(width, eps=1e-5)
        self.attn = Attention(width, heads, dropout)
        self.fc1, self.fc2 = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x, bias):
        """One block on ``[B, T, W]``."""
        x = x + self.drop(self.attn(self.ln1(x), bias))
        h = self.drop(F.relu(self.fc1(self.ln2(x))))
        return x + self.drop(self.fc2(h))


class TransformerEncoder(nn.Module):
    """mmjax ``TransformerEncoder`` (RedCore's): padding zeroed, Linear + sinusoidal positions,
    ``layers`` pre-LN blocks with the key mask, LayerNorm, mean over valid steps, Linear + ReLU."""

    def __init__(self, in_dim: int, out_dim: int, width: int = 128, layers: int = 3,
                 heads: int = 8, dropout: float = 0.0):
        super().__init__()
        self.proj = nn.Linear(in_dim, width)
        self.blocks = nn.ModuleList([Block(width, heads, dropout) for _ in range(layers)])
        self.ln = nn.LayerNorm(width, eps=1e-5)
        self.out = nn.Linear(width, out_dim)
        self.out_dim = out_dim
        self._pe = {}

    def forward(self, x, lengths):
        """``x [B, T, D]``, ``lengths`` int ``[B]`` -> ``[B, out]``."""
        t = x.shape[1]
        mask = torch.arange(t)[None, :] < lengths[:, None]  # [B, T]
        x = x * mask[:, :, None]
        if t not in self._pe:
            self._pe[t] = sinusoidal_positions(t, self.proj.out_features)
        h = self.proj(x) + self._pe[t][None]
        bias = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
        bias = bias[:, None, None, :]
        for block in self.blocks:
            h = block(h, bias)
        h = self.ln(h)
        m = mask[:, :, None].float()
        pooled = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
        return F.relu(self.out(pooled))


# ----------------------------------------------------------------------------------------------
# RedCore (mmjax/methods/redcore.py, residual_ae.py).
# ----------------------------------------------------------------------------------------------


class ResidualXE(nn.Module):
    """RedCore's cross-modal encoder: ``blocks`` residual AE blocks (encoder LeakyReLU(0.2) on every
    layer including the latent, decoder ReLU with a linear output), then Linear -> ReLU -> Linear."""

    def __init__(self, in_dim: int, layers: tuple[int, ...], blocks: int, out_dim: int):
        super().__init__()
        widths = (in_dim, *layers)
        back = widths[::-1]
        self.enc = nn.ModuleList([nn.ModuleList([nn.Linear(a, b) for a, b in
                                                 zip(widths, widths[1:])]) for _ in range(blocks)])
        self.dec = nn.ModuleList([nn.ModuleList([nn.Linear(a, b) for a, b in
                                                 zip(back, back[1:])]) for _ in range(blocks)])
        self.trans1, self.trans2 = nn.Linear(in_dim, in_dim), nn.Linear(in_dim, out_dim)

    def forward(self, x):
        """``[B, in] -> [B, out]``."""
        x_in, x_out = x, torch.zeros_like(x)
        for enc, dec in zip(self.enc, self.dec):
            x_in = x_in + x_out
            h = x_in
            for layer in enc:
                h = F.leaky_relu(layer(h), 0.2)
            for layer in dec[:-1]:
                h = F.relu(layer(h))
            x_out = dec[-1](h)
        return self.trans2(F.relu(self.trans1(x_in + x_out)))


class RedCoreNet(nn.Module):
    """RedCore's network: a Transformer + Gaussian head per modality, a residual cross-modal
    encoder per modality, M unimodal MLP heads and the joint head."""

    def __init__(self, in_dims: tuple[int, ...], classes: int, hidden: int = 128,
                 feature_dim: int = 128, latent: int = 128, dropout: float = 0.2,
                 xenc_layers: tuple[int, ...] = (128, 64, 32), xenc_blocks: int = 5):
        super().__init__()
        m = len(in_dims)
        self.encoders = nn.ModuleList([TransformerEncoder(d, feature_dim, width=hidden,
                                                          dropout=dropout) for d in in_dims])
        self.gauss = nn.ModuleList([nn.Linear(feature_dim, 2 * latent) for _ in in_dims])
        self.xenc = nn.ModuleList([ResidualXE((m - 1) * latent, xenc_layers, xenc_blocks, latent)
                                   for _ in in_dims])
        self.heads = nn.ModuleList([MLPHead(latent, hidden, classes, dropout) for _ in in_dims])
        self.joint = MLPHead(m * latent, hidden, classes, dropout)

    def forward(self, inputs, lengths, present):
        """Returns ``(mu, logvar, zbar, zhat, logits, joint)`` (lists over modalities)."""
        mus, logvars, zbars, zhats, logits = [], [], [], [], []
        for c, (enc, gauss) in enumerate(zip(self.encoders, self.gauss)):
            p = present[:, c]
            x = inputs[c] * p[:, None, None]
            mu, logvar = gauss(enc(x, lengths[c])).chunk(2, -1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            mus.append(mu)
            logvars.append(logvar)
            zbars.append(z * p[:, None])
        zs = []
        for c in range(len(self.encoders)):
            others = torch.cat([zbars[o] for o in range(len(zbars)) if o != c], -1)
            zhat = self.xenc[c](others)
            zhats.append(zhat)
            z = torch.where(present[:, c:c + 1] > 0, zbars[c], zhat)
            zs.append(z)
            logits.append(self.heads[c](z))
        return mus, logvars, zbars, zhats, logits, self.joint(torch.cat(zs, -1))


# ----------------------------------------------------------------------------------------------
# SMIL (mmjax/methods/smil.py SmilNet) and MLA (mla.py SharedHeadNet).
# ----------------------------------------------------------------------------------------------


class SmilNet(nn.Module):
    """SMIL's main network theta (encoders, unimodal heads, fusion fc1/fc2) and psi (phi_c, phi_r)."""

    PSI = ("recon", "recon_direct", "reg1_mu", "reg1_sigma", "reg2_mu", "reg2_sigma")

    def __init__(self, hidden: int = 64, classes: int = 10, num_priors: int = 10):
        super().__init__()
        self.enc1, self.enc2 = LeNet5(0.0), SoundCNN(0.0)
        d1, d2, h, c = 160, 320, hidden, classes
        self.head1, self.head2 = nn.Linear(d1, c), nn.Linear(d2, c)
        self.fc1, self.fc2 = nn.Linear(d1 + d2, h), nn.Linear(h, c)
        self.recon, self.recon_direct = nn.Linear(d1, num_priors), nn.Linear(d1, d2)
        self.reg1_mu, self.reg1_sigma = nn.Linear(d1, d1 + d2), nn.Linear(d1, d1 + d2)
        self.reg2_mu, self.reg2_sigma = nn.Linear(d1 + d2, h), nn.Linear(d1 + d2, h)
        self.dims = (d1, d2, h)

    def is_theta(self, name: str) -> bool:
        """Whether parameter ``name`` belongs to theta (adapted in the inner loop)."""
        return name.split(".")[0] not in self.PSI


class SharedHeadNet(nn.Module):
    """MLA's network: per modality an MLP encoder and a projection ``Linear(d, s)`` + ReLU; one
    shared ``Linear(s, C)`` head."""

    def __init__(self, in_dims: tuple[int, ...], hidden: int, feature_dim: int, head_dim: int,
                 classes: int, dropout: float):
        super().__init__()
        self.encoders = nn.ModuleList([MLPEncoder(d, hidden, feature_dim, dropout)
                                       for d in in_dims])
        self.project = nn.ModuleList([nn.Linear(feature_dim, head_dim) for _ in in_dims])
        self.head = nn.Linear(head_dim, classes)

    def encode(self, m: int, x):
        """``h_m(x)``: ``[B, s]``."""
        return F.relu(self.project[m](self.encoders[m](x)))


def param_count(module: nn.Module) -> int:
    """The number of parameters of ``module``."""
    return sum(math.prod(p.shape) for p in module.parameters())


class RamlNet(nn.Module):
    """RAML's network (mmjax/methods/raml.py ``RamlNet``): per modality an MLP encoder with linear
    mu and log-variance heads of width ``latent``; one shared linear predictor."""

    def __init__(self, in_dims: tuple[int, ...], hidden: int, feature_dim: int, latent: int,
                 classes: int, dropout: float):
        super().__init__()
        self.encoders = nn.ModuleList([MLPEncoder(d, hidden, feature_dim, dropout)
                                       for d in in_dims])
        self.mu_heads = nn.ModuleList([nn.Linear(feature_dim, latent) for _ in in_dims])
        self.logvar_heads = nn.ModuleList([nn.Linear(feature_dim, latent) for _ in in_dims])
        self.predictor = nn.Linear(latent, classes)

    def forward(self, inputs):
        """Encodes the batch plus one all-zero row per modality: ``(mu, logvar)`` ``[B, M, D]``
        and the zero row's ``(mu0, logvar0)`` ``[M, D]``."""
        mus, logvars = [], []
        for enc, mh, lh, x in zip(self.encoders, self.mu_heads, self.logvar_heads, inputs):
            f = enc(torch.cat([x, x.new_zeros(1, *x.shape[1:])], 0))
            mus.append(mh(f))
            logvars.append(lh(f))
        mu, logvar = torch.stack(mus, 1), torch.stack(logvars, 1)
        return mu[:-1], logvar[:-1], mu[-1], logvar[-1]
