"""Fused Gumbel binary cross-entropy (the ``stable`` numerics of every Gumbel loss, GOL included).

Shape shorthand:
    R: RoIs. C: logit columns (K or K + 1). Each row has at most one positive column.

For one logit q, with t = exp(-q) and eta = exp(-t) (GOL paper eqs. 1-3):
    positive (y = 1): L1 = -log eta = t,                dL1/dq = -t
    negative (y = 0): L0 = -log(1 - eta),               dL0/dq = t eta / (1 - eta) = t / (e^t - 1)

How the negative term is evaluated, exactly to float32/float64 rounding for every finite q:
    q <= q_s:  L0 = -log(1 - eta) and dL0/dq = t eta / (1 - eta), with 1 - eta formed directly (no
               cancellation problem: eta <= exp(-exp(-q_s)));
    q >  q_s:  the series L0 = q + t/2 - t^2/24 and dL0/dq = 1 - t/2 + t^2/12 (truncation < 1e-8 at
               q_s = 3 in float32, < 1e-20 at q_s = 10 in float64);
the two are joined without branches by evaluating the direct form at max(t, t_s) and adding the series
difference at min(t, t_s). Exponentials are kept away from denormal results (t <= 85 in float32, where eta
and L0 are already 0 to float32 precision), because the CPU ``exp`` slows down by 15-45x there.
The positive term exp(-q) overflows float32 for q < -88.7, so below ``GUMBEL_LINEAR_BELOW`` = -10 it
continues along its tangent: L1 = e^10 (1 + (-10 - q)), gradient -e^10. Above -10 it is exact.

Speed: the forward computes the per-element gradient in closed form together with the loss, one block of
rows at a time (CPU; the whole matrix at once on GPU), in place in four block-sized buffers, with three
transcendental passes (two exp, one log); the backward is one multiply. Negatives to be ignored (EQL, DropLoss, Federated weights are 0/1) are
switched off by moving their logit to where L0 is exactly 0 and zeroing their gradient, instead of
multiplying by a weight tensor. Measure with ``python -m gol.bench.loss``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["GUMBEL_LINEAR_BELOW", "gumbel_binary_cross_entropy_sum", "gumbel_positive_loss"]

GUMBEL_LINEAR_BELOW = -10.0  # positive-term tangent continuation (overflow guard; see module docstring)
_Z_MIN = -80.0  # z = -q >= -80: t = exp(z) stays a normal float32; above q = 80, L0 = q exactly
# Elements per block on CPU. Single-threaded, 128 Ki elements (512 KiB per float32 buffer) keep the passes in
# cache. With intra-op threads every op is a parallel region that can stall for a scheduler time slice on a
# busy machine, so fewer, larger blocks win there (measured on 2 contended threads: 1 Mi elements is 2x
# faster than 128 Ki; single-threaded it is 5-10% slower).
_CPU_BLOCK_ELEMENTS = (1 << 17, 1 << 20)  # (one thread, several threads)


def gumbel_positive_loss(logits: Tensor) -> Tensor:
    """(..., C) -> (..., C) the positive term -log eta(q) = exp(-q), continued along its tangent below
    ``GUMBEL_LINEAR_BELOW`` as in the fused sum: finite, with a finite autograd gradient, for every finite q."""
    return torch.exp(-logits.clamp(min=GUMBEL_LINEAR_BELOW)) * (1.0 + (GUMBEL_LINEAR_BELOW - logits).clamp(min=0.0))


def _constants(dtype: torch.dtype) -> tuple[float, float, float]:
    """(z_max, q_split, t_split) for ``dtype``: z_max keeps eta = exp(-t) >= e^2 x the smallest normal number."""
    z_max = math.log(-math.log(torch.finfo(dtype).tiny) - 2.0)  # float32: t <= 85.3, float64: t <= 706
    q_split = 3.0 if dtype == torch.float32 else 10.0
    return z_max, q_split, math.exp(-q_split)


class _GumbelBCESum(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: Tensor, positive_cols: Tensor, drop: Tensor | None) -> Tensor:
        rows, cols = logits.shape
        z_max, q_split, t_split = _constants(logits.dtype)
        need_grad = bool(ctx.needs_input_grad[0])
        grad = torch.empty_like(logits) if need_grad else None
        log_sum = logits.new_zeros(())  # sum of log(1 - eta) over the direct part
        lin_sum = logits.new_zeros(())  # sum of (q - q_s) over q > q_s
        ser_sum = logits.new_zeros(())  # sum of the series corrections
        block = rows
        if logits.device.type == "cpu":
            elements = _CPU_BLOCK_ELEMENTS[0 if torch.get_num_threads() == 1 else 1]
            block = max(1, min(rows, elements // max(cols, 1)))
        z, t, eta, d = (logits.new_empty((block, cols)) for _ in range(4))
        for start in range(0, rows, block):
            stop = min(rows, start + block)
            n = stop - start
            zb, tb, eb, db = z[:n], t[:n], eta[:n], d[:n]
            drop_b = None if drop is None else (drop if drop.shape[0] == 1 else drop[start:stop])
            torch.neg(logits[start:stop], out=zb)  # z = -q
            if drop_b is not None:
                zb.masked_fill_(drop_b, z_max)  # L0 = 0 there
            pc = positive_cols[start:stop]
            idx = pc.clamp(min=0).unsqueeze(1)  # (n, 1)
            # positives leave the negative pass (their term is added below)
            zb.scatter_(1, idx, torch.where(pc.unsqueeze(1) >= 0, z_max, zb.gather(1, idx)))
            torch.add(zb, q_split, out=tb)
            lin_sum -= tb.clamp_(max=0.0).sum()  # sum of relu(q - q_s), unclamped q
            zb.clamp_(_Z_MIN, z_max)
            torch.exp(zb, out=tb)  # t = exp(-q)
            torch.clamp(tb, max=t_split, out=db)
            db.sub_(t_split)  # d = min(t, t_s) - t_s  (0 unless q > q_s)
            tb.clamp_(min=t_split)  # direct part evaluated at max(t, t_s)
            torch.neg(tb, out=eb)
            eb.exp_()  # eta = exp(-t)
            if grad is not None:
                gb = grad[start:stop]
                torch.mul(tb, eb, out=gb)
            eb.neg_().add_(1.0)  # 1 - eta
            if grad is not None:
                gb.div_(eb)  # t eta / (1 - eta)
            eb.log_()
            log_sum += eb.sum()
            # series part: with s = min(t, t_s), L0 += (s - t_s)/2 - (s^2 - t_s^2)/24, grad += -(s - t_s)/2
            # + (s^2 - t_s^2)/12, and s^2 - t_s^2 = d (d + 2 t_s)
            torch.add(db, 2.0 * t_split, out=tb)
            tb.mul_(db)
            if grad is not None:
                gb.add_(db, alpha=-0.5).add_(tb, alpha=1.0 / 12.0)
                if drop_b is not None:
                    gb.masked_fill_(drop_b, 0.0)  # exactly 0, not exp(-85)-small
            ser_sum += db.add_(tb, alpha=-1.0 / 12.0).sum()
        total = lin_sum + 0.5 * ser_sum - log_sum
        # positive terms, one per row at most: L1 = exp(-q), tangent-continued below GUMBEL_LINEAR_BELOW
        has_pos = positive_cols >= 0
        idx = positive_cols.clamp(min=0).unsqueeze(1)  # (R, 1)
        qp = logits.gather(1, idx).squeeze(1)  # (R,)
        tp = torch.exp(-qp.clamp(min=GUMBEL_LINEAR_BELOW))
        l1 = gumbel_positive_loss(qp)
        total = total + torch.where(has_pos, l1, torch.zeros_like(l1)).sum()
        if grad is not None:
            grad.scatter_(1, idx, torch.where(has_pos, -tp, grad.gather(1, idx).squeeze(1)).unsqueeze(1))
            ctx.save_for_backward(grad)
        return total

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor | None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad * grad_output, None, None


def gumbel_binary_cross_entropy_sum(logits: Tensor, positive_cols: Tensor, *, drop: Tensor | None = None) -> Tensor:
    """Sum over all kept elements of the Gumbel binary cross-entropy (stable numerics).

    Args:
        logits: (R, C) float32 or float64.
        positive_cols: (R,) int64, the column whose target is 1 in each row, or -1 if the row has none.
        drop: optional bool tensor of shape (R, C) or (1, C); True removes that element's *negative* term
            (weight 0, gradient exactly 0). Positive terms are always kept, as in every loss of this package.

    Returns:
        Scalar tensor (not normalised by R).
    """
    if logits.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"gumbel_binary_cross_entropy_sum needs float32/float64 logits, got {logits.dtype}")
    if drop is not None and drop.dtype != torch.bool:
        raise ValueError(f"drop must be a bool mask, got {drop.dtype}")
    return _GumbelBCESum.apply(logits, positive_cols, drop)
