"""Small networks whose outputs were recorded before the performance work (issue 8).

``tests/networks/data/reference_outputs.pt`` holds, per case, the state dict (with randomised
batch-norm statistics), an input and the outputs in eval mode and (where they differ) in train mode, written by
``python tests/networks/reference_cases.py`` from the implementation of commit 8a5e16c (weights
stored in float16, packed: load them with :func:`unpack`). The
optimised implementations must load the same state dicts and reproduce these outputs.
"""
from __future__ import annotations

from pathlib import Path

import torch

REFERENCE_FILE = Path(__file__).resolve().parent / "data" / "reference_outputs.pt"
TINY_FOCUS = dict(filters=(8, 8, 16, 16, 24, 32), side_channels=(8, 8, 8), head_channels=(8, 4), fusion_channels=8)


def build_case(name: str) -> tuple[torch.nn.Module, tuple[int, ...]]:
    """Return ``(network, input_shape)`` for a reference case."""
    from monai_attn.networks import FocusNetPP, MistakesUNet

    if name == "focusnetpp_tiny_2d":
        return FocusNetPP(2, 3, 1, dropout=0.0, **TINY_FOCUS), (2, 3, 40, 36)
    if name == "focusnetpp_tiny_3d":
        return FocusNetPP(3, 2, 2, dropout=0.0, **TINY_FOCUS), (2, 2, 16, 16, 16)
    if name == "focusnetpp_tiny_2d_nose":
        return FocusNetPP(2, 1, 1, dropout=0.0, squeeze_excitation=False, groups=2, **TINY_FOCUS), (2, 1, 32, 32)
    if name.startswith("mistakes_"):
        preset, dims = name.split("_")[1], int(name.split("_")[2][0])
        shape = (1, 4, 72, 72) if dims == 2 else (1, 4, 16, 16, 16)
        if preset == "rfna" and dims == 3:
            shape = (1, 4, 72, 8, 8)
        kwargs = {"attention_kwargs": {"reduction": 2}} if preset in ("cscunet", "cbamunet", "gcnunet") else {}
        return MistakesUNet.preset(preset, dims, 4, 1, width=4, **kwargs), shape
    raise ValueError(name)


CASES = ["focusnetpp_tiny_2d", "focusnetpp_tiny_3d", "focusnetpp_tiny_2d_nose"] + [
    f"mistakes_{p}_2d" for p in ("unet", "aunet", "cscunet", "cbamunet", "gcnunet", "fpa", "rfna")
] + ["mistakes_fpa_3d", "mistakes_rfna_3d"]


def randomise_norm_statistics(net: torch.nn.Module, seed: int = 0) -> None:
    """Give batch norms non-trivial running statistics and affine parameters (so folding them is tested)."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
        if isinstance(m, (torch.nn.modules.batchnorm._NormBase, torch.nn.GroupNorm)) and m.weight is not None:
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


def pack(state: dict) -> dict:
    """One flat float16 tensor plus keys and shapes (a file of many small tensors is mostly overhead)."""
    floats = {k: v for k, v in state.items() if v.is_floating_point()}
    return {
        "keys": list(floats),
        "shapes": [tuple(v.shape) for v in floats.values()],
        "flat": torch.cat([v.reshape(-1) for v in floats.values()]),
        "other": {k: v for k, v in state.items() if not v.is_floating_point()},
    }


def unpack(packed: dict) -> dict:
    """Inverse of :func:`pack`, in float32."""
    state, offset = dict(packed["other"]), 0
    for key, shape in zip(packed["keys"], packed["shapes"]):
        n = int(torch.Size(shape).numel())
        state[key] = packed["flat"][offset : offset + n].float().reshape(shape)
        offset += n
    return state


def record() -> dict:
    out = {}
    for i, name in enumerate(CASES):
        torch.manual_seed(i)
        net, shape = build_case(name)
        with torch.no_grad():
            randomise_norm_statistics(net, i)
            x = torch.randn(shape).half().float()  # exactly representable in float16 (stored so)
            # weights rounded to float16 (stored so, half the file size), the network runs in float32
            state = {k: v.half() if v.is_floating_point() else v.clone() for k, v in net.state_dict().items()}
            net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
            eval_out = net.eval()(x)
            train_out = net.train()(x)
        out[name] = {"state_dict": pack(state), "input": x.half(), "eval": eval_out}
        if not torch.equal(train_out, eval_out):
            out[name]["train"] = train_out
    return out


if __name__ == "__main__":
    REFERENCE_FILE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record(), REFERENCE_FILE)
    print(f"wrote {REFERENCE_FILE} ({REFERENCE_FILE.stat().st_size} bytes)")
