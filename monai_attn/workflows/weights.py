"""Loading network weights safely (``weights_only=True``) with errors that name the mismatch."""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["load_network_weights"]


def load_network_weights(network: torch.nn.Module, path: str, key: str = "model", strict: bool = True,
                         map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a checkpoint into ``network`` safely (``weights_only=True``), with clear errors.

    Accepts a bare state dict or a dictionary holding one under ``key`` (as MONAI's
    ``CheckpointSaver`` writes). Mismatching keys or shapes are named in the error.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{p}: checkpoint not found (train first, or set 'ckpt_path')")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle payloads and corrupt files both end here
        raise ValueError(f"{p}: not a loadable weights-only checkpoint ({type(e).__name__}: {str(e)[:300]})") from e
    state = ckpt.get(key, ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise ValueError(f"{p}: no state dict found (expected a dict or a dict with key {key!r})")
    target = network.module if hasattr(network, "module") else network
    own = target.state_dict()
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(v.shape)} vs network {tuple(own[k].shape)}"
              for k, v in state.items() if k in own and hasattr(v, "shape") and v.shape != own[k].shape]
    if shapes or (strict and (missing or unexpected)):
        parts = []
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es): " + "; ".join(shapes[:5]))
        if missing:
            parts.append(f"{len(missing)} missing key(s): {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {unexpected[:5]}")
        raise ValueError(f"{p}: checkpoint does not fit {type(target).__name__} — " + " | ".join(parts))
    target.load_state_dict(state, strict=strict)
    return network
