"""Transcriptions of the official GOL code's EQL and DropLoss (paper-notes sections 3.4 and 3.5), the references the
losses' ``official`` numerics are tested against. Official label convention: classes 0..C-1, background = C."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _official_targets(q: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) labels in gol's convention (0 = background) -> official labels gt (N,) and one-hot targets (N, C)."""
    n, c = q.shape
    gt = torch.where(labels == 0, torch.full_like(labels, c), labels - 1)
    onehot = q.new_zeros(n, c + 1)
    onehot[torch.arange(n), gt] = 1
    return gt, onehot[:, :c]


def _weighted_bce(q: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, activation: str) -> torch.Tensor:
    """sum(w * BCE) / N, with the official Gumbel head's clamp of the logits to [-4, 10]."""
    if activation == "gumbel":
        p = 1 / torch.exp(torch.exp(-torch.clamp(q, min=-4, max=10)))
        loss = F.binary_cross_entropy(p, target, reduction="none")
    else:
        loss = F.binary_cross_entropy_with_logits(q, target, reduction="none")
    return torch.sum(loss * weight) / q.shape[0]


def official_eql(
    q: torch.Tensor, labels: torch.Tensor, freq: torch.Tensor, lam: float, activation: str
) -> torch.Tensor:
    """w_j = 1 - E(r) T_lambda(f_j) (1 - y_j)."""
    n, c = q.shape
    gt, target = _official_targets(q, labels)
    e = (gt != c).float().view(n, 1).expand(n, c)
    t = (freq < lam).float().view(1, c).expand(n, c)
    return _weighted_bce(q, target, 1 - e * t * (1 - target), activation)


def official_droploss(
    q: torch.Tensor, labels: torch.Tensor, freq: torch.Tensor, lam: float, uniform: torch.Tensor, activation: str
) -> torch.Tensor:
    """The DropLoss pseudo-code, with the noise U passed in."""
    n, c = q.shape
    gt, t = _official_targets(q, labels)
    tail = (freq < lam).float().view(1, c).expand(n, c)
    fg = (gt != c).float().view(n, 1).expand(n, c)
    r = torch.mean((freq[gt[gt != c]] < lam).float())
    bg = 1 - fg
    u = uniform * bg
    rb = torch.where(u > r, torch.ones_like(u), torch.zeros_like(u))
    d = (rb + fg) * tail
    return _weighted_bce(q, t, 1 - d * (1 - t), activation)


def official_federated(q: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, activation: str) -> torch.Tensor:
    """CenterNet2's federated loss with the class set S given as a (C,) bool mask: w[:, j] = 1 for j in S."""
    n, c = q.shape
    _, target = _official_targets(q, labels)
    weight = classes.float().view(1, c).expand(n, c)
    return _weighted_bce(q, target, weight, activation)
