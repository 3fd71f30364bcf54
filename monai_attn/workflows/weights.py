"""Loading network weights safely (``weights_only=True``) with errors that name the mismatch."""
from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

import torch

from monai_attn.errors import BadInputError, MissingInputError

__all__ = ["load_network_weights", "pickled_globals", "load_failure"]


def pickled_globals(path: str | Path, limit: int = 5) -> list[str]:
    """The ``module.name`` globals that the pickle of checkpoint ``path`` would import, other than those
    ``torch.load(weights_only=True)`` allows, found by reading its opcodes (nothing is unpickled or run).
    Reads the ``data.pkl`` of a zip checkpoint (``torch.save``'s format) or a bare pickle stream."""
    from torch._weights_only_unpickler import _get_allowed_globals

    allowed = set(_get_allowed_globals())
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                member = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(member) if member else b""
        else:
            data = Path(path).read_bytes()
    except OSError:
        return []
    found: list[str] = []
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
                strings = (strings + [arg])[-2:]
            name = None
            if op.name in ("GLOBAL", "INST"):
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                name = ".".join(strings)
            if name and name not in allowed and name not in found:
                found.append(name)
                if len(found) >= limit:
                    break
    except Exception:  # noqa: BLE001 - a truncated stream: report what was read
        pass
    return found


def load_failure(path: str | Path, error: BaseException) -> BadInputError:
    """The error to raise when ``torch.load(path, weights_only=True)`` raised ``error``: a refusal naming
    the pickled globals the file would import (torch's advice to retry with ``weights_only=False`` is
    not repeated: that would run them), or a corrupt/truncated file."""
    text = str(error)
    if "weights_only" in text or "Weights only load failed" in text or "Unsupported global" in text:
        names = pickled_globals(path)
        what = f" ({', '.join(names)})" if names else ""
        return BadInputError(path, f"not a loadable weights-only checkpoint: refused, it holds pickled objects other "
                                   f"than weights{what} that loading would import or run; nothing was run "
                                   f"(checkpoints are loaded with weights_only=True)",
                             "delete the file unless you wrote it yourself, and use a checkpoint written by training")
    first = text.strip().splitlines()[0].split(". ")[0][:300] if text.strip() else ""
    return BadInputError(path, f"not a loadable weights-only checkpoint ({type(error).__name__}: {first})",
                         "the file is corrupt or truncated (e.g. an interrupted copy): copy it again or retrain")


def load_network_weights(network: torch.nn.Module, path: str, key: str = "model", strict: bool = True,
                         map_location: str | torch.device = "cpu") -> torch.nn.Module:
    """Load a checkpoint into ``network`` safely (``weights_only=True``), with clear errors.

    Accepts a bare state dict or a dictionary holding one under ``key`` (as MONAI's
    ``CheckpointSaver`` writes). Mismatching keys or shapes are named in the error.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise MissingInputError(p, "checkpoint not found", "train first, or set --ckpt_path to a model.pt")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle payloads and corrupt files both end here
        raise load_failure(p, e) from None  # torch's message advises weights_only=False: not passed on
    state = ckpt.get(key, ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(state, dict):
        raise BadInputError(p, f"no state dict found (expected a dict or a dict with key {key!r})",
                            "use a model.pt or checkpoint written by training")
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
        raise BadInputError(p, f"checkpoint does not fit {type(target).__name__}: " + " | ".join(parts),
                            "use the checkpoint trained with the same network settings (--network_name, "
                            "--in_channels, ...)")
    target.load_state_dict(state, strict=strict)
    return network
