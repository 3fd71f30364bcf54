"""Slice-by-slice inference of 2D networks over 3D volumes, batched, without sliding windows.

MONAI's :class:`~monai.inferers.SliceInferer` runs a 2D network over the slices of a volume through
the sliding-window machinery: every batch of slices is gathered window by window, weighted by an
importance map, accumulated into an output buffer and a count map, and divided by the count map
at the end. When each slice fits into one window (the usual case after the pipelines' in-plane
crop/pad to ``roi_size``), all of that reduces to "run the network on a batch of slices and store
the result", which :class:`BatchedSliceInferer` does directly.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer, SliceInferer
from monai.utils import convert_to_dst_type

__all__ = ["BatchedSliceInferer", "AutocastInferer"]


class BatchedSliceInferer(Inferer):
    """Run a 2D network over the slices of 3D volumes, ``sw_batch_size`` slices at a time.

    A drop-in replacement for ``monai.inferers.SliceInferer(roi_size, spatial_dim=..., sw_batch_size=...)``
    (same arguments, same output) for slices no larger than ``roi_size``: each batch of slices is
    copied out of the volume, zero-padded to ``roi_size`` when smaller (centred, as
    ``SlidingWindowInferer`` pads), passed through the network, cropped back and written into the
    output volume. There are no windows, importance maps or count maps, so the cost beyond the
    network is one copy of the input and one of the output. Slices larger than ``roi_size`` in
    any direction are handed to MONAI's ``SliceInferer`` (sliding windows within each slice) with
    the same arguments.

    Args:
        roi_size: in-plane size ``(h, w)`` the network sees; non-positive entries (or ``None``) take
            the slice's size. Defaults to None.
        spatial_dim: the axis of the volume's spatial dims ``(H, W, D)`` to slice along (``2``:
            axial slices of RAS-oriented volumes). Defaults to 0.
        sw_batch_size: slices per network call. Defaults to 1.
        sw_device: device of the network calls (slices are moved there). Defaults to the input's.
        device: device of the output volume (``"cpu"`` keeps a large output off the GPU). Defaults
            to the input's.
        progress: show a progress bar over the slices of each volume (tqdm; it disappears when the volume
            is done). The bundles pass ``monai_attn.workflows.show_progress()``: on in a terminal, off under
            ``CI=true``. Defaults to False.
        padding_mode: ``F.pad`` mode when slices are smaller than ``roi_size``. Defaults to "constant".
        cval: padding value for ``"constant"``. Defaults to 0.
        buffer_dtype: dtype of the output volume (e.g. ``torch.float16`` halves it); by default the
            network output's dtype while accumulating, the input's dtype when returned (as MONAI's inferers).

    Example::

        inferer = BatchedSliceInferer(roi_size=(160, 160), spatial_dim=2, sw_batch_size=8)
        with torch.no_grad():
            logits = inferer(volume, network)  # volume: (B, C, H, W, D) -> (B, C_out, H, W, D)
    """

    def __init__(
        self,
        roi_size: Sequence[int] | int | None = None,
        spatial_dim: int = 0,
        sw_batch_size: int = 1,
        sw_device: torch.device | str | None = None,
        device: torch.device | str | None = None,
        progress: bool = False,
        padding_mode: str = "constant",
        cval: float = 0.0,
        buffer_dtype: torch.dtype | str | None = None,
    ) -> None:
        super().__init__()
        if spatial_dim not in (0, 1, 2) or isinstance(spatial_dim, bool):
            raise ValueError(f"spatial_dim must be 0, 1 or 2 (an axis of H, W, D), got {spatial_dim!r}.")
        if isinstance(sw_batch_size, bool) or not isinstance(sw_batch_size, int) or sw_batch_size < 1:
            raise ValueError(f"sw_batch_size must be a positive integer, got {sw_batch_size!r}.")
        if isinstance(roi_size, int):
            roi_size = (roi_size, roi_size)
        if roi_size is not None and len(tuple(roi_size)) != 2:
            raise ValueError(f"roi_size must give the 2D in-plane size (h, w), got {roi_size!r}.")
        self.roi_size = None if roi_size is None else tuple(int(r) for r in roi_size)
        self.spatial_dim = spatial_dim
        self.sw_batch_size = sw_batch_size
        self.sw_device = sw_device
        self.device = device
        self.progress = progress
        self.padding_mode = padding_mode
        self.cval = cval
        self.buffer_dtype = getattr(torch, buffer_dtype) if isinstance(buffer_dtype, str) else buffer_dtype

    def __call__(self, inputs: torch.Tensor, network: Callable[..., torch.Tensor], *args: Any, **kwargs: Any):
        """Run ``network`` over the slices of ``inputs`` ``(B, C, H, W, D)``; returns ``(B, C_out, H, W, D)``
        (a MetaTensor with the input's metadata when the input is one). ``args``/``kwargs`` go to the network."""
        if inputs.dim() != 5:
            raise ValueError(f"BatchedSliceInferer expects a (B, C, H, W, D) volume, got shape {tuple(inputs.shape)}.")
        axis = 2 + self.spatial_dim
        plane = [s for i, s in enumerate(inputs.shape[2:]) if i != self.spatial_dim]
        roi = plane if self.roi_size is None else [r if r > 0 else s for r, s in zip(self.roi_size, plane)]
        if any(s > r for s, r in zip(plane, roi)):
            return SliceInferer(
                roi_size=roi, spatial_dim=self.spatial_dim, sw_batch_size=self.sw_batch_size,
                sw_device=self.sw_device, device=self.device, progress=self.progress,
                padding_mode=self.padding_mode, cval=self.cval,
            )(inputs, network, *args, **kwargs)  # fmt: skip
        # F.pad lists the last dim first; centred like SlidingWindowInferer
        pads: list[int] = []
        for s, r in zip(reversed(plane), reversed(roi)):
            pads += [(r - s) // 2, r - s - (r - s) // 2]
        padded = any(pads)
        device = torch.device(self.device) if self.device is not None else inputs.device
        sw_device = torch.device(self.sw_device) if self.sw_device is not None else inputs.device

        data = inputs.as_tensor() if isinstance(inputs, MetaTensor) else inputs
        volume = torch.movedim(data, axis, 1)  # (B, D, C, h, w): a view, copied one batch of slices at a time
        n_slices = volume.shape[1]
        starts = [(b, s) for b in range(volume.shape[0]) for s in range(0, n_slices, self.sw_batch_size)]
        bar = None
        if self.progress:
            from monai.utils import optional_import

            tqdm, has_tqdm = optional_import("tqdm", name="tqdm")
            # one bar per volume, counting slices; it goes away when the volume is done (under a case bar)
            bar = tqdm(total=volume.shape[0] * n_slices, desc="slices", unit="slice", leave=False) if has_tqdm else None
        output: torch.Tensor | None = None
        slices_first: torch.Tensor | None = None
        for b, s in starts:
            e = min(s + self.sw_batch_size, n_slices)
            x = volume[b, s:e].to(sw_device)
            if padded:
                x = F.pad(x, pads, mode=self.padding_mode, value=self.cval) if self.padding_mode == "constant" else (
                    F.pad(x, pads, mode=self.padding_mode))
            y = network(x.contiguous(), *args, **kwargs)
            if not isinstance(y, torch.Tensor):
                raise TypeError(
                    f"BatchedSliceInferer: the network returned {type(y).__name__}; only tensor outputs are "
                    "supported (use monai.inferers.SliceInferer for tuples or dicts)."
                )
            if padded:
                y = y[..., pads[2] : y.shape[-2] - pads[3], pads[0] : y.shape[-1] - pads[1]]
            if output is None:
                shape = [volume.shape[0], y.shape[1], *y.shape[2:]]
                shape.insert(axis, n_slices)
                output = torch.empty(shape, dtype=self.buffer_dtype or y.dtype, device=device)
                slices_first = torch.movedim(output, axis, 1)  # a view: (B, D, C_out, h, w)
            assert slices_first is not None
            slices_first[b, s:e] = y
            if bar is not None:
                bar.update(e - s)
        if bar is not None:
            bar.close()
        assert output is not None
        # like MONAI's inferers: the input's type, metadata and (unless buffer_dtype is given) dtype
        return convert_to_dst_type(output, inputs, dtype=self.buffer_dtype or inputs.dtype, device=device)[0]


class AutocastInferer(Inferer):
    """Run another inferer under ``torch.autocast(device_type, dtype)``: bfloat16 inference on the CPU.

    MONAI's engines autocast only on CUDA (``amp=True`` is ``torch.autocast("cuda")``); the bundles wrap their
    inferer in this one so that ``--amp true`` on a CPU device runs the network in bfloat16 (convolutions
    and matrix products in bfloat16, reductions and point-wise heads as autocast decides). It helps on CPUs
    with native bfloat16 arithmetic (AVX512-BF16 or AMX: Intel Xeon from Cooper Lake / Sapphire Rapids on,
    AMD Zen 4 on); elsewhere bfloat16 is emulated and slower than float32, so the default stays off.
    Floating-point outputs are returned in float32 (as MONAI's post-transforms and writers expect).

    Args:
        inferer: the inferer to run (e.g. ``SimpleInferer`` or :class:`BatchedSliceInferer`).
        enabled: autocast on; ``False`` runs ``inferer`` unchanged. Defaults to True.
        device_type: the autocast device type. Defaults to ``"cpu"``.
        dtype: the autocast dtype. Defaults to ``torch.bfloat16``.
    """

    def __init__(self, inferer: Inferer, enabled: bool = True, device_type: str = "cpu",
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if not callable(inferer):
            raise ValueError(f"AutocastInferer: inferer must be an inferer (callable), got {type(inferer).__name__}.")
        self.inferer = inferer
        self.enabled = bool(enabled)
        self.device_type = str(device_type)
        self.dtype = dtype

    def __call__(self, inputs: torch.Tensor, network: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.enabled:
            return self.inferer(inputs, network, *args, **kwargs)
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inferer(inputs, network, *args, **kwargs)
        if isinstance(out, torch.Tensor) and out.is_floating_point() and out.dtype != torch.float32:
            out = out.float()
        return out
