"""FocusNet++ losses against hand-computed values, stability and argument checks."""
from __future__ import annotations

import math

import pytest
import torch
from monai.losses import TverskyLoss

from monai_attn.losses import AdaptiveLogLoss, BalancedBCELoss, TverskyBCELoss


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# two pixels: logit 0 on foreground, logit 2 on background
LOGITS = torch.tensor([[[[0.0, 2.0]]]])
TARGET = torch.tensor([[[[1.0, 0.0]]]])
BCE = (0.7 * math.log(2.0) + 0.3 * math.log1p(math.exp(2.0))) / 2  # = 0.561641
TP, FP, FN = 0.5, sig(2.0), 0.5
TVERSKY = 1.0 - (TP + 1e-5) / (TP + 0.3 * FP + 0.7 * FN + 1e-5)  # = 0.551267
HL = 0.5 * BCE + 0.5 * TVERSKY
C = 0.1 - 10.0 * math.log(1.0 + 0.1 / 0.5)


def test_balanced_bce_hand_computed():
    assert BCE == pytest.approx(0.561641, abs=1e-6)
    assert float(BalancedBCELoss(sigmoid=True)(LOGITS, TARGET)) == pytest.approx(BCE, abs=1e-6)
    # from probabilities gives the same value
    probs = torch.sigmoid(LOGITS)
    assert float(BalancedBCELoss()(probs, TARGET)) == pytest.approx(BCE, abs=1e-6)
    # omega = 0.5 is half of the plain binary cross-entropy
    plain = torch.nn.functional.binary_cross_entropy_with_logits(LOGITS, TARGET)
    assert float(BalancedBCELoss(omega=0.5, sigmoid=True)(LOGITS, TARGET)) == pytest.approx(0.5 * float(plain), abs=1e-6)


def test_hybrid_and_adaptive_log_hand_computed():
    assert float(TverskyBCELoss(sigmoid=True)(LOGITS, TARGET)) == pytest.approx(HL, abs=1e-5)
    assert HL == pytest.approx(0.556454, abs=1e-5)
    paper_loss = AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))
    assert float(paper_loss(LOGITS, TARGET)) == pytest.approx(HL - C, abs=1e-5)
    assert C == pytest.approx(-1.7232156, abs=1e-6)


def test_tversky_part_is_monai_tversky():
    torch.manual_seed(0)
    x, y = torch.randn(2, 1, 8, 8), (torch.rand(2, 1, 8, 8) > 0.5).float()
    hybrid = TverskyBCELoss(k=0.0, sigmoid=True)
    assert torch.allclose(hybrid(x, y), TverskyLoss(sigmoid=True, alpha=0.3, beta=0.7)(x, y))


class _Constant(torch.nn.Module):
    def forward(self, value, _):
        return value


@pytest.mark.parametrize("value, expected", [(0.05, 10 * math.log(1.1)), (0.0, 0.0), (0.5, 0.5 - C), (-0.5, 0.5 - C)])
def test_adaptive_log_values(value, expected):
    loss = AdaptiveLogLoss(_Constant())
    assert float(loss(torch.tensor(value), None)) == pytest.approx(expected, abs=1e-6)


def test_adaptive_log_continuous_at_gamma():
    loss = AdaptiveLogLoss(_Constant())
    below = float(loss(torch.tensor(0.1 - 1e-7, dtype=torch.float64), None))
    at = float(loss(torch.tensor(0.1, dtype=torch.float64), None))
    assert below == pytest.approx(at, abs=1e-5)
    assert at == pytest.approx(10 * math.log(1.2), abs=1e-9)


@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("logit", [1e4, -1e4])
def test_finite_gradients_extreme_logits_and_empty_or_full_targets(logit, fill):
    x = torch.full((2, 1, 8, 8), logit, requires_grad=True)
    y = torch.full((2, 1, 8, 8), fill)
    loss = AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_softmax_extreme_logits_finite():
    x = torch.tensor([[[[1e4]], [[-1e4]], [[0.0]]]], requires_grad=True)
    # probabilities exactly 0 and 1 are handled too
    p = torch.tensor([[[[1.0]], [[0.0]]]], requires_grad=True)
    BalancedBCELoss()(p, torch.tensor([[[[0.0]], [[1.0]]]])).backward()
    assert torch.isfinite(p.grad).all()
    y = torch.tensor([[[[2]]]])
    loss = AdaptiveLogLoss(TverskyBCELoss(softmax=True, to_onehot_y=True))(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


def test_multiclass_softmax_one_hot_hand_computed():
    logits = torch.tensor([[[[2.0]], [[0.0]], [[-1.0]]]])  # one pixel, three classes
    label = torch.tensor([[[[1]]]])
    q = torch.softmax(logits, dim=1).flatten().tolist()
    expected = -(0.7 * math.log(q[1]) + 0.3 * (math.log(1 - q[0]) + math.log(1 - q[2]))) / 3
    got = BalancedBCELoss(softmax=True, to_onehot_y=True)(logits, label)
    assert float(got) == pytest.approx(expected, abs=1e-6)
    no_bg = BalancedBCELoss(softmax=True, to_onehot_y=True, include_background=False)(logits, label)
    assert float(no_bg) == pytest.approx(-(0.7 * math.log(q[1]) + 0.3 * math.log(1 - q[2])) / 2, abs=1e-6)
    hybrid = TverskyBCELoss(softmax=True, to_onehot_y=True)(logits, label)
    tl = TverskyLoss(softmax=True, to_onehot_y=True, alpha=0.3, beta=0.7)(logits, label)
    assert float(hybrid) == pytest.approx(0.5 * expected + 0.5 * float(tl), abs=1e-6)


def test_reduction_none_shapes():
    x, y = torch.randn(2, 3, 4, 4), torch.randint(0, 3, (2, 1, 4, 4))
    out = TverskyBCELoss(softmax=True, to_onehot_y=True, reduction="none")(x, y)
    assert out.shape == (2, 3)
    assert AdaptiveLogLoss(TverskyBCELoss(softmax=True, to_onehot_y=True, reduction="none"))(x, y).shape == (2, 3)
    assert TverskyBCELoss(softmax=True, to_onehot_y=True, reduction="none", batch=True)(x, y).shape == (3,)
    assert torch.allclose(out.mean(), TverskyBCELoss(softmax=True, to_onehot_y=True)(x, y))
    assert BalancedBCELoss(sigmoid=True, reduction="sum")(x, torch.rand(2, 3, 4, 4)).dim() == 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="omega"):
        BalancedBCELoss(omega=1.5)
    with pytest.raises(ValueError, match="mutually exclusive"):
        BalancedBCELoss(sigmoid=True, softmax=True)
    with pytest.raises(ValueError, match="k must be"):
        TverskyBCELoss(k=2.0)
    with pytest.raises(ValueError, match="positive"):
        AdaptiveLogLoss(TverskyBCELoss(), gamma=0.0)
    with pytest.raises(ValueError, match="torch.nn.Module"):
        AdaptiveLogLoss(lambda a, b: a)
    with pytest.raises(ValueError, match="different shape"):
        BalancedBCELoss(sigmoid=True)(torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
