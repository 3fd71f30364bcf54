"""Losses of FocusNet++ (balanced BCE, Tversky + BCE hybrid, adaptive logarithmic wrapper)."""
from .hybrid import AdaptiveLogLoss, BalancedBCELoss, TverskyBCELoss

__all__ = ["AdaptiveLogLoss", "BalancedBCELoss", "TverskyBCELoss"]
