"""FocusNet++ losses: balanced cross-entropy, its Tversky hybrid, and the adaptive logarithmic wrapper.

Kaul et al., "FocusNet++", ISBI 2021, eqs. (1)–(2).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from monai.losses import TverskyLoss
from monai.networks import one_hot
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

__all__ = ["BalancedBCELoss", "TverskyBCELoss", "AdaptiveLogLoss"]

# torch.nn.BCELoss clamps log-probabilities at -100 so that a confident mistake costs a finite amount.
_LOG_CLAMP = -100.0


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """``log(x)`` with ``x`` clamped to the smallest normal float, so that neither value nor gradient is inf/NaN."""
    return torch.log(x.clamp(min=torch.finfo(x.dtype).tiny))


def _log1mexp(log_q: torch.Tensor) -> torch.Tensor:
    """Stable ``log(1 - exp(log_q))`` for ``log_q <= 0`` (Mächler, 2012), with finite gradients at 0."""
    log_q = log_q.clamp(max=0.0)
    near_one = log_q > -math.log(2.0)
    # evaluate each branch only on the inputs it is accurate for, so the other branch never produces inf
    a = _safe_log(-torch.expm1(torch.where(near_one, log_q, torch.full_like(log_q, -1.0))))
    b = torch.log1p(-torch.exp(torch.where(near_one, torch.full_like(log_q, -1.0), log_q)))
    return torch.where(near_one, a, b)


class BalancedBCELoss(_Loss):
    """Class-balanced binary cross-entropy, computed from logits in a numerically stable way.

    ``C_b = -[Ω·p·log p̂ + (1 - Ω)·(1 - p)·log(1 - p̂)]`` per element and channel, where ``p`` is the
    target and ``p̂`` the predicted probability (FocusNet++ eq. (1), Ω = 0.7 weights the foreground).
    With ``softmax=True`` every channel is treated one-vs-rest with its softmax probability.

    Args:
        omega: weight of the positive term (Ω); ``1 - omega`` weighs the negatives. Defaults to 0.7.
        include_background: if False, channel 0 (background) is excluded. Defaults to True.
        to_onehot_y: convert a label map ``y`` of shape (B, 1, ...) to one-hot. Defaults to False.
        sigmoid: the input holds logits for independent (sigmoid) channels. Defaults to False.
        softmax: the input holds logits for mutually exclusive (softmax) channels. Defaults to False.
            With neither, the input must hold probabilities in [0, 1].
        reduction: ``"mean"`` (over all elements), ``"sum"``, or ``"none"`` (mean over the spatial
            dimensions, shape (B, C), like :class:`monai.losses.TverskyLoss`).
    """

    def __init__(
        self,
        omega: float = 0.7,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if not 0.0 <= omega <= 1.0:
            raise ValueError(f"omega must be in [0, 1], got {omega}.")
        if sigmoid and softmax:
            raise ValueError("sigmoid=True and softmax=True are mutually exclusive; choose one.")
        self.omega = float(omega)
        self.include_background = include_background
        self.to_onehot_y = to_onehot_y
        self.sigmoid = sigmoid
        self.softmax = softmax

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """
        Args:
            input: logits (``sigmoid``/``softmax``) or probabilities, shape (B, C, H, W[, D]).
            target: same shape, or (B, 1, ...) label map with ``to_onehot_y=True``.
        """
        n_pred_ch = input.shape[1]
        if self.to_onehot_y:
            if n_pred_ch == 1:
                warnings.warn("single channel prediction, `to_onehot_y=True` ignored.", stacklevel=2)
            else:
                target = one_hot(target, num_classes=n_pred_ch)
        if target.shape != input.shape:
            raise ValueError(f"ground truth has different shape ({target.shape}) from input ({input.shape}).")
        target = target.to(input.dtype)

        if self.sigmoid:
            log_p, log_1mp = -F.softplus(-input), -F.softplus(input)
        elif self.softmax:
            if n_pred_ch == 1:
                warnings.warn("single channel prediction, `softmax=True` ignored.", stacklevel=2)
                log_p, log_1mp = -F.softplus(-input), -F.softplus(input)
            else:
                log_p = torch.log_softmax(input, dim=1)
                log_1mp = _log1mexp(log_p)
        else:
            log_p, log_1mp = _safe_log(input), _safe_log(1.0 - input)
        log_p, log_1mp = log_p.clamp(min=_LOG_CLAMP), log_1mp.clamp(min=_LOG_CLAMP)

        loss = -(self.omega * target * log_p + (1.0 - self.omega) * (1.0 - target) * log_1mp)
        if not self.include_background:
            if n_pred_ch == 1:
                warnings.warn("single channel prediction, `include_background=False` ignored.", stacklevel=2)
            else:
                loss = loss[:, 1:]
        if self.reduction == LossReduction.MEAN.value:
            return loss.mean()
        if self.reduction == LossReduction.SUM.value:
            return loss.sum()
        return loss.mean(dim=tuple(range(2, loss.dim())))


class TverskyBCELoss(_Loss):
    """FocusNet++ hybrid loss ``HL = k·C_b + (1 - k)·TL`` (eq. (1)).

    ``C_b`` is :class:`BalancedBCELoss`; ``TL`` is MONAI's :class:`monai.losses.TverskyLoss` with
    ``alpha`` weighting false positives and ``beta`` false negatives
    (``TI = |G∩P| / (|G∩P| + α|P∖G| + β|G∖P|)``). Following MONAI, ``TL`` is averaged (not summed)
    over classes; for the paper's binary task the two are identical.

    Args:
        k: weight of the cross-entropy term. Defaults to 0.5.
        omega: Ω of the balanced cross-entropy. Defaults to 0.7.
        alpha: Tversky weight of false positives. Defaults to 0.3.
        beta: Tversky weight of false negatives. Defaults to 0.7.
        include_background, to_onehot_y, sigmoid, softmax, reduction, smooth_nr, smooth_dr, batch:
            as in :class:`monai.losses.TverskyLoss` (``reduction="none"`` gives shape (B, C), or (C,)
            with ``batch=True``).
    """

    def __init__(
        self,
        k: float = 0.5,
        omega: float = 0.7,
        alpha: float = 0.3,
        beta: float = 0.7,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
        smooth_nr: float = 1e-5,
        smooth_dr: float = 1e-5,
        batch: bool = False,
    ) -> None:
        super().__init__(reduction=LossReduction(reduction).value)
        if not 0.0 <= k <= 1.0:
            raise ValueError(f"k must be in [0, 1], got {k}.")
        self.k = float(k)
        self.bce = BalancedBCELoss(
            omega=omega, include_background=include_background, to_onehot_y=to_onehot_y,
            sigmoid=sigmoid, softmax=softmax, reduction=reduction,
        )  # fmt: skip
        self.tversky = TverskyLoss(
            include_background=include_background, to_onehot_y=to_onehot_y, sigmoid=sigmoid, softmax=softmax,
            alpha=alpha, beta=beta, reduction=reduction, smooth_nr=smooth_nr, smooth_dr=smooth_dr, batch=batch,
        )  # fmt: skip

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = self.bce(input, target)
        if self.tversky.batch and self.reduction == LossReduction.NONE.value:
            bce = bce.mean(dim=0)  # Tversky pools the batch: match its (C,) shape
        return self.k * bce + (1.0 - self.k) * self.tversky(input, target)


class AdaptiveLogLoss(_Loss):
    """Adaptive logarithmic loss (FocusNet++ eq. (2)) wrapped around any loss module.

    ``ALL(L) = ω·ln(1 + |L|/ε)`` if ``|L| < γ``, else ``|L| - C`` with ``C = γ - ω·ln(1 + γ/ε)``,
    which makes ALL continuous at ``γ``. Small losses are amplified logarithmically so that training
    keeps pushing once the loss is already small. The paper's loss is
    ``AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))``.

    Args:
        loss: the wrapped loss module; its output (any shape) is transformed element-wise.
        gamma: threshold γ between the logarithmic and linear parts. Defaults to 0.1.
        omega: ω, scale of the logarithmic part. Defaults to 10.0.
        epsilon: ε, curvature of the logarithmic part. Defaults to 0.5.
    """

    def __init__(self, loss: torch.nn.Module, gamma: float = 0.1, omega: float = 10.0, epsilon: float = 0.5) -> None:
        super().__init__()
        if not isinstance(loss, torch.nn.Module):
            raise ValueError(f"loss must be a torch.nn.Module, got {type(loss).__name__}.")
        if gamma <= 0 or omega <= 0 or epsilon <= 0:
            raise ValueError(f"gamma, omega and epsilon must be positive, got {gamma}, {omega}, {epsilon}.")
        self.loss = loss
        self.gamma, self.omega, self.epsilon = float(gamma), float(omega), float(epsilon)
        self.offset = self.gamma - self.omega * math.log1p(self.gamma / self.epsilon)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        value = self.loss(input, target).abs()
        log_part = self.omega * torch.log1p(value / self.epsilon)
        return torch.where(value < self.gamma, log_part, value - self.offset)
