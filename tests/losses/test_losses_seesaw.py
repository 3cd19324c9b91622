"""SeesawLoss: equals a transcription of mmdet's seesaw_ce_loss + objectness CE; counts buffer; scores."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gol.activations import Gumbel, Softmax
from gol.losses import InvalidPairError, SeesawLoss, seesaw_loss, seesaw_scores

K = 5


def _to_mmdet(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our [bg-obj, z_1..z_K, obj] layout and 0 = background -> mmdet's [z, obj, bg] and background = K."""
    mm = torch.cat((logits[:, 1 : K + 1], logits[:, K + 1 : K + 2], logits[:, :1]), dim=1)
    return mm, torch.where(labels == 0, torch.full_like(labels, K), labels - 1)


def _mmdet_seesaw(cls_score, labels, cum_samples, p, q, eps):
    """paper-notes 3.7 / mmdet SeesawLoss.forward (cum_samples over mmdet labels, background last)."""
    n = cls_score.shape[0]
    pos = labels < K
    obj_labels = (labels == K).long()
    z, obj = cls_score[:, :-2], cls_score[:, -2:]
    zs, ls = z[pos], labels[pos]
    onehot = F.one_hot(ls, K)
    w = zs.new_ones(onehot.size())
    cum = cum_samples[:K]
    if p > 0:
        ratio = cum[None, :].clamp(min=1) / cum[:, None].clamp(min=1)
        index = (ratio < 1.0).float()
        w = w * (ratio.pow(p) * index + (1 - index))[ls]
    if q > 0:
        scores = F.softmax(zs.detach(), dim=1)
        self_scores = scores[torch.arange(len(scores)), ls]
        m = scores / self_scores[:, None].clamp(min=eps)
        index = (m > 1.0).float()
        w = w * (m.pow(q) * index + (1 - index))
    zs = zs + (w.log() * (1 - onehot))
    cls = F.cross_entropy(zs, ls, reduction="sum") / n
    return cls + F.cross_entropy(obj, obj_labels, reduction="sum") / n


@pytest.mark.parametrize("numerics", ["stable", "official"])
@pytest.mark.parametrize(("p", "q"), [(0.8, 2.0), (0.0, 2.0), (0.8, 0.0), (0.0, 0.0)])
@pytest.mark.parametrize("seed", [0, 1])
def test_equals_mmdet_transcription(make_batch, p: float, q: float, seed: int, numerics: str) -> None:
    logits, labels = make_batch(40, K, width=K + 2, seed=seed, scale=4.0, background_fraction=0.4)
    cum = torch.tensor([500.0, 3.0, 40.0, 0.0, 900.0, 7.0])  # ours: index = label, 0 = background
    a, b = logits.clone().requires_grad_(True), logits.clone().requires_grad_(True)
    ours = seesaw_loss(a, labels, cum_samples=cum, p=p, q=q, eps=1e-2, numerics=numerics)
    mm_logits, mm_labels = _to_mmdet(b, labels)
    ref = _mmdet_seesaw(mm_logits, mm_labels, torch.cat((cum[1:], cum[:1])), p, q, 1e-2)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(a.grad, b.grad)


def test_module_counts_rois_in_training_mode_only(make_batch) -> None:
    loss = SeesawLoss(activation=Softmax(), num_classes=K)
    logits, labels = make_batch(16, K, width=K + 2, seed=2)
    expected = torch.bincount(labels, minlength=K + 1).float()
    value = loss(logits, labels)
    assert torch.equal(loss.cum_samples, expected)
    # the loss uses the counts including this batch, as mmdet does
    torch.testing.assert_close(value, seesaw_loss(logits, labels, cum_samples=expected))
    loss.eval()
    loss(logits, labels)
    assert torch.equal(loss.cum_samples, expected)
    restored = SeesawLoss(activation=Softmax(), num_classes=K)
    restored.load_state_dict(loss.state_dict())
    assert torch.equal(restored.cum_samples, expected)


def test_scores_are_class_times_objectness() -> None:
    logits = torch.randn(4, K + 2)
    loss = SeesawLoss(activation=Softmax(), num_classes=K)
    scores = loss.scores(logits)
    obj = torch.softmax(torch.stack((logits[:, K + 1], logits[:, 0]), 1), 1)[:, :1]
    torch.testing.assert_close(scores, torch.softmax(logits[:, 1 : K + 1], 1) * obj)
    torch.testing.assert_close(seesaw_scores(logits), scores)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert loss.num_logits == K + 2


def test_gradcheck_float64(make_batch) -> None:
    logits, labels = make_batch(8, K, width=K + 2, seed=3, dtype=torch.float64)
    cum = torch.tensor([50.0, 3.0, 40.0, 1.0, 90.0, 7.0], dtype=torch.float64)
    # q = 0: the compensation factor is built from *detached* probabilities (by design), so finite
    # differences would see it move while the analytic gradient does not; mitigation is checked fully.
    fn = lambda x: seesaw_loss(x, labels, cum_samples=cum, p=0.8, q=0.0)
    assert torch.autograd.gradcheck(fn, (logits.requires_grad_(True),))


def test_errors() -> None:
    with pytest.raises(InvalidPairError, match="softmax"):
        SeesawLoss(activation=Gumbel(), num_classes=K)
    with pytest.raises(ValueError, match="eps must be in"):
        SeesawLoss(activation=Softmax(), num_classes=K, eps=0.0)
    with pytest.raises(ValueError, match=r"shape \(R, 7\)"):
        SeesawLoss(activation=Softmax(), num_classes=K)(torch.zeros(2, K + 1), torch.zeros(2).long())
