"""Exact, batched surface distances in torch (any device): Hausdorff distance / HD95, average
symmetric surface distance and normalised surface Dice, in three conventions.

Surfaces and conventions (docs/metrics.md has the table of the libraries each one matches):

* ``"monai"`` (default) and ``"pooled"``: the *edge* of a binary mask is the mask minus its
  binary erosion by the cross-shaped (face-connected) structuring element, with everything
  outside the image counting as background (MONAI 1.6's ``get_mask_edges``, medpy's
  ``__surface_distances``); every edge voxel counts once. ``"monai"`` takes the larger of the
  two directed percentiles, ``"pooled"`` one percentile of both directions together (medpy);
* ``"surface"``: surface elements at the voxel corners, coded by their 2^D neighbourhood and
  weighted by their area (DeepMind's ``surface_distance``; the tables are MONAI's
  ``get_code_to_measure_table``).

The directed surface distances from ``A`` to ``B`` are, for every surface point of ``A``, the
distance (in physical units, index times ``spacing``) to the nearest surface point of ``B``;
percentiles use linear interpolation (``torch.quantile``) or, for ``"surface"``, DeepMind's
area-weighted rule.

Distances are exact (no chamfer approximation), found in three stages for the whole ``[B, C]``
batch and both directions at once: a dense look-up of the other surface at the offsets of a
ball, nearest first; all pairs for the few points left; or, for many points left, a uniform
cell grid whose neighbourhood search and coarse-to-fine pyramid resolve every point exactly.
Memory stays bounded by ``max_pairs``.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
from collections.abc import Sequence
from typing import Union

import numpy as np
import torch

__all__ = [
    "CONVENTIONS",
    "EMPTY_POLICIES",
    "average_surface_distance",
    "check_binary",
    "hausdorff_distance",
    "mask_edges",
    "prepare_spacing_tensor",
    "surface_dice",
]

SpacingType = Union[None, float, int, Sequence, np.ndarray, torch.Tensor]

#: accepted string values of ``empty`` (a number is accepted too: a fixed penalty).
EMPTY_POLICIES = ("diagonal", "nan", "inf")
#: surface-distance conventions (docs/metrics.md has the table of libraries each one matches).
CONVENTIONS = ("monai", "pooled", "surface")
_METRICS = ("euclidean", "chessboard", "taxicab")
# default budgets: voxel pairs per chunk (≈ 12 bytes × D each) and cell pairs per chunk
_MAX_PAIRS = 1 << 22
_MAX_CELL_PAIRS = 1 << 21
_MAX_TABLE = 1 << 23  # entries of a dense cell lookup table (int32: 32 MB)


# --------------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------------
def _describe_values(t: torch.Tensor, bad: torch.Tensor) -> str:
    """A short account of the offending values of ``t`` (``bad``: their mask)."""
    vals = t[bad]
    parts = [f"{int(bad.sum())} of {t.numel()} values are not 0 or 1"]
    if t.is_floating_point():
        n_nan, n_inf = int(torch.isnan(vals).sum()), int(torch.isinf(vals).sum())
        if n_nan:
            parts.append(f"{n_nan} NaN")
        if n_inf:
            parts.append(f"{n_inf} Inf")
        vals = vals[torch.isfinite(vals)]
    if vals.numel():
        uniq = torch.unique(vals.double().cpu())
        shown = ", ".join(f"{v:g}" for v in uniq[:5].tolist())
        more = f" (and {uniq.numel() - 5} more)" if uniq.numel() > 5 else ""
        parts.append(f"e.g. {shown}{more}; range [{float(vals.min()):g}, {float(vals.max()):g}]")
    return "; ".join(parts)


def check_binary(x: torch.Tensor | np.ndarray, name: str = "y_pred") -> torch.Tensor:
    """The foreground of a binary mask as a bool tensor, refusing anything that is not a mask.

    A mask must be ``bool`` or hold only the values 0 and 1 (any numeric dtype). Anything else —
    0/255 masks as stored on disk, probabilities or logits, label maps with values > 1, NaN, Inf —
    raises instead of being thresholded silently (MONAI reads ``== 1`` as foreground, so a 0/255
    mask looks empty and a probability map looks like its exact ones).

    Raises:
        ValueError: naming the argument, what was found, and how to binarize it.
    """
    t = torch.as_tensor(x)
    if type(t) is not torch.Tensor:  # e.g. MetaTensor: drop the subclass (and its overhead)
        t = t.as_subclass(torch.Tensor)
    if t.dtype == torch.bool:
        return t
    if t.is_complex():
        raise ValueError(f"`{name}` must be a binary mask (bool or 0/1), got a complex tensor ({t.dtype}).")
    fg = t == 1
    bad = ~(fg | (t == 0))
    if bool(bad.any()):
        raise ValueError(
            f"`{name}` must be a binary mask (bool, or numbers that are all 0 or 1), got {t.dtype} with "
            f"{_describe_values(t, bad)}. Binarize it first: probabilities with `{name} > 0.5` (or "
            "monai.transforms.AsDiscrete(threshold=0.5)), logits of several classes with "
            "AsDiscrete(argmax=True, to_onehot=num_classes), a label map with `== label`, a 0/255 "
            "mask with `> 0`."
        )
    return fg


def _as_bool_mask(x: torch.Tensor | np.ndarray, name: str = "y_pred") -> torch.Tensor:
    """Foreground of a validated binary mask (see :func:`check_binary`)."""
    return check_binary(x, name)


def prepare_spacing_tensor(
    spacing: SpacingType, batch_size: int, img_dim: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """Normalise ``spacing`` to a float64 tensor of shape ``[batch_size, img_dim]``.

    Accepts what MONAI's ``prepare_spacing`` accepts — ``None`` (unit spacing), one number
    (isotropic), a sequence of ``img_dim`` numbers (the same for every image), a sequence of
    ``batch_size`` sequences (per image; an inner sequence of length 1 is isotropic) — and also
    tensors/arrays of shape ``[img_dim]`` or ``[batch_size, img_dim]``.

    Raises:
        ValueError: on a shape mismatch or a non-positive / non-finite spacing.
    """
    if spacing is None:
        out = torch.ones(batch_size, img_dim, dtype=torch.float64)
    elif isinstance(spacing, (int, float, np.number)) and not isinstance(spacing, bool):
        out = torch.full((batch_size, img_dim), float(spacing), dtype=torch.float64)
    else:
        if isinstance(spacing, (torch.Tensor, np.ndarray)):
            arr = torch.as_tensor(
                np.asarray(spacing.detach().cpu() if isinstance(spacing, torch.Tensor) else spacing)
            )
            arr = arr.to(torch.float64)
        else:
            items = list(spacing)
            if len(items) == 0:
                raise ValueError("`spacing` must not be an empty sequence.")
            nested = [isinstance(s, (Sequence, np.ndarray, torch.Tensor)) for s in items]
            if any(nested) and not all(nested):
                raise ValueError(
                    f"if `spacing` is a sequence, its elements should be of same type, got {spacing}."
                )
            if all(nested):
                if len(items) != batch_size:
                    raise ValueError(
                        "if `spacing` is a sequence of sequences, the outer sequence should have the same "
                        f"length as the batch size ({batch_size}), got {len(items)}."
                    )
                rows = []
                for s in items:
                    row = torch.as_tensor(
                        np.asarray(s.detach().cpu() if isinstance(s, torch.Tensor) else s, float)
                    )
                    row = row.reshape(-1).to(torch.float64)
                    if row.numel() == 1:
                        row = row.expand(img_dim)
                    if row.numel() != img_dim:
                        raise ValueError(
                            f"each element of `spacing` should have length 1 or the image dimension ({img_dim}), "
                            f"got {s}."
                        )
                    rows.append(row)
                arr = torch.stack(rows)
            else:
                arr = torch.as_tensor([float(s) for s in items], dtype=torch.float64)
        if arr.ndim == 0:
            arr = arr.reshape(1, 1).expand(batch_size, img_dim)
        elif arr.ndim == 1:
            if arr.numel() == 1:
                arr = arr.reshape(1, 1).expand(batch_size, img_dim)
            elif arr.numel() != img_dim:
                raise ValueError(
                    f"if `spacing` is a sequence of numbers, it should have the same length as the image "
                    f"dimension ({img_dim}), got {arr.numel()}."
                )
            else:
                arr = arr.reshape(1, img_dim).expand(batch_size, img_dim)
        elif arr.ndim == 2:
            if arr.shape[1] == 1:
                arr = arr.expand(arr.shape[0], img_dim)
            if tuple(arr.shape) != (batch_size, img_dim):
                raise ValueError(
                    f"per-image `spacing` should have shape [batch_size, img_dim] = [{batch_size}, {img_dim}], "
                    f"got {list(arr.shape)}."
                )
        else:
            raise ValueError(f"`spacing` has too many dimensions: shape {list(arr.shape)}.")
        out = arr.contiguous().clone()
    if not bool(torch.isfinite(out).all()) or bool((out <= 0).any()):
        raise ValueError(f"`spacing` must be finite and positive, got {out.tolist()}.")
    return out.to(device) if device is not None else out


def mask_edges(mask: torch.Tensor, spatial_dims: int | None = None) -> torch.Tensor:
    """Edges of a batch of binary masks: ``mask & ~erosion(mask)``, as MONAI's ``get_mask_edges``.

    The erosion uses the cross-shaped (face-connected) structuring element of
    ``scipy.ndimage.binary_erosion`` with ``border_value=0``: a foreground voxel is an edge voxel
    when any of its ``2 * spatial_dims`` face neighbours is background or outside the image.

    Args:
        mask: boolean tensor ``[..., *spatial]`` (any leading dims, any device).
        spatial_dims: number of trailing spatial dims; defaults to ``mask.ndim - 2`` (``[B, C, ...]``).
    """
    if mask.dtype != torch.bool:
        mask = mask.bool()
    d = mask.ndim - 2 if spatial_dims is None else spatial_dims
    if d < 1 or d > mask.ndim:
        raise ValueError(f"mask of shape {list(mask.shape)} has no {d} spatial dims.")
    interior = mask.clone()
    for k in range(mask.ndim - d, mask.ndim):
        n = mask.shape[k]
        interior.narrow(k, 0, 1).zero_()
        interior.narrow(k, n - 1, 1).zero_()
        if n > 2:
            inner = interior.narrow(k, 1, n - 2)
            inner &= mask.narrow(k, 0, n - 2)
            inner &= mask.narrow(k, 2, n - 2)
    return mask & ~interior


def _crop_to_union(p: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop ``[G, *S]`` masks to the bounding box of all their foreground plus a one-voxel margin
    (clipped at the image border). Edges and distances are unchanged: the margin is background,
    exactly like the outside of the image, and distances do not depend on the origin."""
    if p.shape[0] == 0:
        return p, t
    shape = p.shape[1:]
    # u8 max-reductions over contiguous inner dims are fast; reducing outer dims is slow, so the
    # box is found axis by axis on ever smaller crops
    union = (p | t).view(torch.uint8)
    if p.shape[0] > 1:
        union = union.reshape(p.shape[0], -1).amax(0).reshape(shape)
    else:
        union = union[0]
    box: list[slice] = []
    sub = union
    for k, n in enumerate(shape):
        lead = sub.shape[:k]
        outer = math.prod(lead)
        prof = sub.reshape(outer, n, -1).amax(2)  # [outer, n]
        prof = prof.amax(0) if outer > 1 else prof[0]
        nz = torch.nonzero(prof).reshape(-1)
        if nz.numel() == 0:  # nothing anywhere: keep one (background) voxel
            index = (slice(None),) + (slice(0, 1),) * len(shape)
            return p[index], t[index]
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        box.append(slice(max(lo - 1, 0), min(hi + 1, n)))
        sub = sub.narrow(k, lo, hi - lo)  # crop this axis before reducing the next ones
    index = (slice(None),) + tuple(box)
    return p[index].contiguous(), t[index].contiguous()


# --------------------------------------------------------------------------------------------
# nearest neighbours between two point sets, grouped by image
# --------------------------------------------------------------------------------------------
class _Points:
    """Edge voxels of one side, sorted by (group, cell), with padded per-cell coordinate tables."""

    def __init__(self, group: torch.Tensor, coords: torch.Tensor, cell: torch.Tensor, strides: torch.Tensor):
        # group [n], coords [n, D] int64 voxel indices, cell [D] cell size in voxels
        dev = coords.device
        dims = coords.shape[1]
        cc = torch.div(coords, cell, rounding_mode="floor") + 1  # +1: a ring of empty cells around the grid
        key = group * strides[0] + (cc * strides[1:]).sum(1)
        key, order = torch.sort(key, stable=True)
        self.order = order  # position in the input of every sorted point
        self.n = int(key.numel())
        self.group = group[order]
        self.coords = coords[order]
        self.fcoords = self.coords.to(torch.float32)
        self.cell_key, self.cell_count = torch.unique_consecutive(key, return_counts=True)
        self.n_cells = int(self.cell_key.numel())
        self.cell_start = torch.cumsum(self.cell_count, 0) - self.cell_count
        self.point_cell = torch.repeat_interleave(
            torch.arange(self.n_cells, device=dev), self.cell_count, output_size=self.n
        )
        self.cell_group = self.group[self.cell_start]
        self.cell_grid = cc[order][self.cell_start]  # [n_cells, D], including the +1 offset
        if self.n:
            lo = [
                torch.segment_reduce(self.fcoords[:, k], "min", lengths=self.cell_count) for k in range(dims)
            ]
            hi = [
                torch.segment_reduce(self.fcoords[:, k], "max", lengths=self.cell_count) for k in range(dims)
            ]
            self.cell_lo, self.cell_hi = torch.stack(lo, 1), torch.stack(hi, 1)
        else:
            self.cell_lo = self.cell_hi = torch.zeros(0, dims, device=dev)

    def rescale(self, factor: torch.Tensor) -> None:
        """Switch coordinates (and cell boxes) to physical units with one spacing for all groups."""
        self.fcoords = self.fcoords * factor
        self.cell_lo, self.cell_hi = self.cell_lo * factor, self.cell_hi * factor

    def table(self, subset: torch.Tensor | None = None) -> _Table:
        """Padded table of all points, or of the sorted ``subset`` of point indices."""
        if subset is None:
            return _Table(self.fcoords, torch.arange(self.n, device=self.fcoords.device), self.point_cell,
                          self.cell_count, self.cell_start, self.n)  # fmt: skip
        sub_cell = self.point_cell[subset]
        cells, local, count = torch.unique_consecutive(sub_cell, return_inverse=True, return_counts=True)
        tab = _Table(self.fcoords[subset], subset, local, count, torch.cumsum(count, 0) - count, self.n)
        tab.cells = cells
        return tab


class _Table:
    """Points of each cell padded to a power-of-two width: coordinates ``inf``, indices ``dummy``."""

    def __init__(self, fc, index, cell_of, count, start, dummy):
        n_cells, dims = int(count.numel()), fc.shape[1]
        width = int(count.max()) if n_cells else 1
        pos = torch.arange(index.numel(), device=fc.device) - start[cell_of]
        self.coords = torch.full((n_cells, width, dims), math.inf, device=fc.device, dtype=fc.dtype)
        self.coords[cell_of, pos] = fc
        self.index = torch.full((n_cells, width), dummy, device=fc.device, dtype=torch.int64)
        self.index[cell_of, pos] = index
        # width class of every cell: ceil(log2(count)); rows are padded only to 2**class
        self.wclass = torch.ceil(torch.log2(count.to(torch.float64))).to(torch.int64)
        self.count = count
        self.width = width
        self.cells: torch.Tensor | None = None


def _block_dist(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor | None, metric: str) -> torch.Tensor:
    """Distances ``[P, KA, KB]`` between the rows of ``a`` [P, KA, D] and ``b`` [P, KB, D]
    (squared for euclidean), optionally scaling axis k by ``scale[P, k]``."""
    acc = None
    for k in range(a.shape[-1]):
        diff = a[:, :, None, k] - b[:, None, :, k]
        if scale is not None:
            diff.mul_(scale[:, None, None, k])
        if metric == "euclidean":
            diff.mul_(diff)
        else:
            diff.abs_()
        if acc is None:
            acc = diff
        elif metric == "chessboard":
            torch.maximum(acc, diff, out=acc)
        else:
            acc.add_(diff)
    return acc


def _pair_min(
    li: torch.Tensor,
    rj: torch.Tensor,
    left: _Table,
    right: _Table,
    pair_scale: torch.Tensor | None,
    metric: str,
    dl: torch.Tensor,
    dr: torch.Tensor | None,
    max_pairs: int,
) -> None:
    """Compare every point of left cell ``li[p]`` with every point of right cell ``rj[p]``,
    lowering ``dl`` (and ``dr``) in place to the minima found. ``dl``/``dr`` have one extra
    (dummy) slot at the end that receives the padding."""
    if li.numel() == 0:
        return
    combo = left.wclass[li] * 64 + right.wclass[rj]
    combo, order = torch.sort(combo, stable=True)
    keys, counts = torch.unique_consecutive(combo, return_counts=True)
    first = 0
    for key, cnt in zip(keys.tolist(), counts.tolist()):
        kl = min(1 << (key // 64), left.width)
        kr = min(1 << (key % 64), right.width)
        step = max(1, max_pairs // (kl * kr))
        for s in range(first, first + cnt, step):
            sel = order[s : min(s + step, first + cnt)]
            pi, pj = li[sel], rj[sel]
            block = _block_dist(
                left.coords[:, :kl][pi], right.coords[:, :kr][pj],
                pair_scale[sel] if pair_scale is not None else None, metric,
            )  # fmt: skip
            dl.scatter_reduce_(0, left.index[:, :kl][pi].reshape(-1), block.amin(2).reshape(-1), "amin")
            if dr is not None:
                dr.scatter_reduce_(0, right.index[:, :kr][pj].reshape(-1), block.amin(1).reshape(-1), "amin")
        first += cnt


def _margin(pts: _Points, cell: torch.Tensor, shape: torch.Tensor, scale: torch.Tensor | None, metric: str):
    """Distance from each point to the outside of its cell's 3^D neighbourhood (inf where that
    neighbourhood reaches the image border), in the metric's comparison units."""
    grid = pts.cell_grid[pts.point_cell] - 1  # [n, D] cell index without the +1 offset
    lo = (grid - 1) * cell  # first voxel of the neighbourhood
    hi = (grid + 2) * cell  # one past its last voxel
    below = (pts.coords - lo + 1).to(torch.float32)
    above = (hi - pts.coords).to(torch.float32)
    below = torch.where(lo <= 0, torch.full_like(below, math.inf), below)
    above = torch.where(hi >= shape, torch.full_like(above, math.inf), above)
    m = torch.minimum(below, above)
    if scale is not None:
        m = m * scale
    m = m.amin(1)
    return m * m if metric == "euclidean" else m


def _box_bounds(a_lo, a_hi, b_lo, b_hi, scale, metric):
    gap = torch.clamp(torch.maximum(a_lo - b_hi, b_lo - a_hi), min=0)
    span = torch.maximum(a_hi - b_lo, b_hi - a_lo)
    if scale is not None:
        gap = gap * scale
        span = span * scale
    return _combine(gap, metric), _combine(span, metric)


def _combine(v: torch.Tensor, metric: str) -> torch.Tensor:
    """Combine per-axis non-negative differences [..., D] into the metric's comparison value."""
    if metric == "euclidean":
        return (v * v).sum(-1)  # squared distance
    if metric == "taxicab":
        return v.sum(-1)
    return v.amax(-1)


def _morton(coords: torch.Tensor, bits: int) -> torch.Tensor:
    """Z-order code of non-negative int64 coordinates ``[N, D]`` (each below ``2**bits``):
    the code of ``coords >> l`` is the code of ``coords`` shifted right by ``D * l`` bits."""
    dims = coords.shape[1]
    code = torch.zeros(coords.shape[0], dtype=torch.int64, device=coords.device)
    for b in range(bits):
        for k in range(dims):
            code |= ((coords[:, k] >> b) & 1) << (b * dims + dims - 1 - k)
    return code


def _index_of(keys: torch.Tensor, space: int):
    """A function mapping candidate keys (in ``[0, space)``) to their position in ``keys`` (unique,
    any order) or -1: a dense table when ``space`` is small enough, else a binary search."""
    dev = keys.device
    if space <= _MAX_TABLE:
        table = torch.full((space,), -1, dtype=torch.int32, device=dev)
        table[keys] = torch.arange(keys.numel(), device=dev, dtype=torch.int32)
        return lambda cand: table[cand].long()
    skeys, order = torch.sort(keys)

    def find(cand: torch.Tensor) -> torch.Tensor:
        if skeys.numel() == 0:
            return torch.full_like(cand, -1)
        pos = torch.searchsorted(skeys, cand).clamp_(max=skeys.numel() - 1)
        return torch.where(skeys[pos] == cand, order[pos], torch.full_like(pos, -1))

    return find


def _resolve(
    q: torch.Tensor,
    src: _Points,
    dst: _Points,
    dst_table: _Table,
    d_src: torch.Tensor,
    grp_w: torch.Tensor,
    per_group: bool,
    cell: torch.Tensor,
    shape: torch.Tensor,
    metric: str,
    max_pairs: int,
    max_cell_pairs: int,
) -> None:
    """Exact nearest ``dst`` distance for the points ``q`` of ``src`` (sorted indices) that the
    neighbourhood search could not certify; updates ``d_src`` in place.

    A pyramid of ever coarser grids (super-cells of 2^l x ... x 2^l fine cells, contiguous in
    Z-order, so one sort serves every level) is searched per query cell: at level l the 3^D
    super-cells around the query cell give an upper bound (farthest box corner); once that bound
    is below the distance to the outside of the level-l neighbourhood, every fine ``dst`` cell
    inside it whose box lower bound does not exceed the bound is compared point by point. The top
    level covers the whole image, so the search always terminates.
    ``grp_w``: [n_groups, D] spacing (ones unless euclidean); ``per_group``: coordinates are in
    voxel units and pairs must be scaled by their group's spacing.
    """
    if q.numel() == 0 or dst.n == 0:
        return
    dev = q.device
    dims = src.coords.shape[1]
    qt = src.table(q)
    n_groups = int(grp_w.shape[0])
    qc = qt.cells  # fine src cell of every query cell
    qc_group = src.cell_group[qc]
    qc_fine = src.cell_grid[qc] - 1
    q_lo, q_hi = src.cell_lo[qc], src.cell_hi[qc]
    q_w = grp_w[qc_group]
    bound = torch.segment_reduce(d_src[q], "max", lengths=qt.count)  # upper bound per query cell
    fine_grid = torch.div(shape + cell - 1, cell, rounding_mode="floor")
    bits = max(1, int(fine_grid.max() - 1).bit_length())
    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=dims)), dtype=torch.int64, device=dev)
    # dst fine cells in (group, Z-order): every super-cell is a contiguous run, at every level
    dst_fine = dst.cell_grid - 1
    zkey = (dst.cell_group << (dims * bits)) | _morton(dst_fine, bits)
    zkey, order = torch.sort(zkey)
    keys, lo, hi = zkey, dst.cell_lo[order], dst.cell_hi[order]
    fstart = torch.arange(zkey.numel(), device=dev)  # first fine cell of every super-cell
    total = torch.tensor([zkey.numel()], device=dev)
    active = torch.arange(qc.numel(), device=dev)
    level = 0
    while active.numel():
        level += 1
        f = 1 << level
        # super-cells of this level from those of the previous one
        keys, n_sub = torch.unique_consecutive(keys >> dims, return_counts=True)
        lo = torch.stack([torch.segment_reduce(lo[:, k], "min", lengths=n_sub) for k in range(dims)], 1)
        hi = torch.stack([torch.segment_reduce(hi[:, k], "max", lengths=n_sub) for k in range(dims)], 1)
        fstart = fstart[torch.cumsum(n_sub, 0) - n_sub]
        fcount = torch.diff(fstart, append=total)
        # the 3^D super-cells around every active query cell, found by row-major key
        coarse_dims = torch.div(fine_grid + f - 1, f, rounding_mode="floor") + 2  # + a ring of empty cells
        st = torch.ones(dims + 1, dtype=torch.int64, device=dev)
        for k in range(dims - 1, -1, -1):
            st[k] = st[k + 1] * coarse_dims[k]
        s_coarse = torch.div(dst_fine[order[fstart]], f, rounding_mode="floor") + 1
        find = _index_of(
            dst.cell_group[order[fstart]] * st[0] + (s_coarse * st[1:]).sum(1), n_groups * int(st[0])
        )
        qcoarse = torch.div(qc_fine[active], f, rounding_mode="floor")
        qkey = qc_group[active] * st[0] + ((qcoarse + 1) * st[1:]).sum(1)
        pos = find((qkey[:, None] + (offsets * st[1:]).sum(1)[None, :]).reshape(-1))
        found = pos >= 0
        pa = active.repeat_interleave(offsets.shape[0])[found]
        ps = pos[found]
        sc = q_w[pa] if per_group else None
        lb, ub = _box_bounds(q_lo[pa], q_hi[pa], lo[ps], hi[ps], sc, metric)
        bound.scatter_reduce_(0, pa, ub, "amin")
        # distance from the query cell to the outside of the level's neighbourhood
        nb_lo = (qcoarse - 1) * f * cell
        nb_hi = (qcoarse + 2) * f * cell
        below = (qc_fine[active] * cell - nb_lo + 1).to(torch.float32)
        above = (nb_hi - (qc_fine[active] + 1) * cell + 1).to(torch.float32)
        below = torch.where(nb_lo <= 0, torch.full_like(below, math.inf), below)
        above = torch.where(nb_hi >= shape, torch.full_like(above, math.inf), above)
        gap = (torch.minimum(below, above) * q_w[active]).amin(1)
        margin = gap * gap if metric == "euclidean" else gap
        done = bound[active] <= margin
        # finish the query cells whose nearest neighbour is certainly inside the neighbourhood
        is_done = torch.zeros(qc.numel(), dtype=torch.bool, device=dev)
        is_done[active[done]] = True
        sel = is_done[pa] & (lb <= bound[pa])
        pa, ps = pa[sel], ps[sel]
        cnt = fcount[ps]
        cum = torch.cumsum(cnt, 0)
        n_exp = int(cum[-1]) if cum.numel() else 0
        cuts: list = []
        if n_exp > max_cell_pairs:
            marks = torch.arange(max_cell_pairs, n_exp, max_cell_pairs, device=dev, dtype=cum.dtype)
            cuts = torch.searchsorted(cum, marks, right=True).tolist()
        edges = sorted({0, pa.numel(), *[c for c in cuts if 0 < c < pa.numel()]})
        for s, e in zip(edges[:-1], edges[1:]):
            c_ = cnt[s:e]
            n_ = int(c_.sum())
            if n_ == 0:
                continue
            local = torch.repeat_interleave(pa[s:e], c_, output_size=n_)
            first = torch.repeat_interleave(torch.cumsum(c_, 0) - c_ - fstart[ps[s:e]], c_, output_size=n_)
            fine = order[torch.arange(n_, device=dev) - first]
            sc = q_w[local] if per_group else None
            lb_f, ub_f = _box_bounds(
                q_lo[local], q_hi[local], dst.cell_lo[fine], dst.cell_hi[fine], sc, metric
            )
            bound.scatter_reduce_(0, local, ub_f, "amin")
            # fine cells with |offset| <= 1 were compared by the neighbourhood search already
            far = (qc_fine[local] - dst_fine[fine]).abs().amax(1) > 1
            keep = far & (lb_f <= bound[local])
            if bool(keep.any()):
                _pair_min(
                    local[keep], fine[keep], qt, dst_table, sc[keep] if sc is not None else None, metric,
                    d_src, None, max_pairs,
                )  # fmt: skip
        active = active[~done]


def _edge_distances(
    idx_a: torch.Tensor,
    idx_b: torch.Tensor,
    n_groups: int,
    shape: Sequence[int],
    scale: torch.Tensor,
    metric: str,
    symmetric: bool,
    cell_size: int | None,
    max_pairs: int,
    max_cell_pairs: int,
):
    """Nearest distances A→B (and B→A) of surface points, by the cell-grid search.

    ``idx_*``: int64 ``[n, 1 + D]`` rows ``(group, *voxel index)`` (as ``torch.nonzero`` of a
    ``[G, *S]`` mask gives them) inside ``shape`` ``S``; ``scale``: float64 [G, D] spacing per
    group (ones unless euclidean). Returns ``(d_ab, d_ba)``: distances (float32, metric units,
    not squared) in the order of ``idx_a`` / ``idx_b``; ``d_ba`` is None when not ``symmetric``.
    """
    dev = idx_a.device
    shape = list(shape)
    dims = len(shape)
    # cells: about `cell_size` voxels along the finest axis, proportionally fewer along coarse axes
    c = cell_size if cell_size is not None else (8 if dims <= 2 else 4)
    ref = scale.mean(0) if n_groups else torch.ones(dims, dtype=torch.float64, device=scale.device)
    cell = torch.clamp(torch.round(c * ref.min() / ref), min=1).to(device=dev, dtype=torch.int64)
    shape_t = torch.as_tensor(shape, dtype=torch.int64, device=dev)
    grid = torch.div(shape_t + cell - 1, cell, rounding_mode="floor") + 2
    strides = torch.ones(dims + 1, dtype=torch.int64, device=dev)
    for k in range(dims - 1, -1, -1):
        strides[k] = strides[k + 1] * grid[k]

    def points(idx):
        return _Points(idx[:, 0], idx[:, 1:], cell, strides)

    pa, pb = points(idx_a), points(idx_b)
    d_a = torch.full((pa.n + 1,), math.inf, device=dev)  # + one dummy slot for the padding
    d_b = torch.full((pb.n + 1,), math.inf, device=dev) if symmetric else None
    scale32 = scale.to(device=dev, dtype=torch.float32)
    uniform = n_groups == 0 or bool((scale32 == scale32[:1]).all())
    sc_grp = None  # per-group spacing, only when it differs between images
    grp_w = scale32 if metric == "euclidean" else torch.ones_like(scale32)
    if metric == "euclidean" and uniform and n_groups and not bool((scale32[0] == 1).all()):
        pa.rescale(scale32[0])
        pb.rescale(scale32[0])
    elif metric == "euclidean" and not uniform:
        sc_grp = scale32

    if pa.n and pb.n:
        ta, tb = pa.table(), pb.table()
        # 1) neighbourhood search: all pairs of cells whose grid index differs by at most 1 per axis
        offsets = torch.tensor(
            list(itertools.product((-1, 0, 1), repeat=dims)), dtype=torch.int64, device=dev
        )
        cand = (pa.cell_key[:, None] + (offsets * strides[1:]).sum(1)[None, :]).reshape(-1)
        pos = _index_of(pb.cell_key, n_groups * int(strides[0]))(cand)
        found = pos >= 0
        li = torch.arange(pa.n_cells, device=dev).repeat_interleave(offsets.shape[0])[found]
        rj = pos[found]
        pair_scale = sc_grp[pa.cell_group[li]] if sc_grp is not None else None
        _pair_min(li, rj, ta, tb, pair_scale, metric, d_a, d_b, max_pairs)
        # 2) exact resolution of the points whose nearest neighbour may lie outside that neighbourhood
        if metric == "euclidean" and uniform and n_groups:
            m_scale_a = m_scale_b = scale32[0]
        elif sc_grp is not None:
            m_scale_a, m_scale_b = sc_grp[pa.group], sc_grp[pb.group]
        else:
            m_scale_a = m_scale_b = None
        q_a = torch.nonzero(d_a[:-1] > _margin(pa, cell, shape_t, m_scale_a, metric)).reshape(-1)
        _resolve(
            q_a, pa, pb, tb, d_a, grp_w, sc_grp is not None, cell, shape_t, metric, max_pairs, max_cell_pairs
        )
        if symmetric:
            q_b = torch.nonzero(d_b[:-1] > _margin(pb, cell, shape_t, m_scale_b, metric)).reshape(-1)
            _resolve(
                q_b,
                pb,
                pa,
                ta,
                d_b,
                grp_w,
                sc_grp is not None,
                cell,
                shape_t,
                metric,
                max_pairs,
                max_cell_pairs,
            )

    d_a = d_a[:-1]
    d_b = d_b[:-1] if d_b is not None else None
    if metric == "euclidean":
        d_a = torch.sqrt(d_a.double()).float()
        d_b = torch.sqrt(d_b.double()).float() if d_b is not None else None
    # back to the input order
    out_a = torch.empty_like(d_a)
    out_a[pa.order] = d_a
    out_b = None
    if d_b is not None:
        out_b = torch.empty_like(d_b)
        out_b[pb.order] = d_b
    return out_a, out_b


def _group_stat(values: torch.Tensor, groups: torch.Tensor, n_groups: int, percentile: float | None):
    """Per-group max or percentile (linear interpolation, as ``torch.quantile``); NaN for empty groups."""
    dev = values.device
    out = torch.full((n_groups,), math.nan, device=dev, dtype=torch.float32)
    if values.numel() == 0:
        return out
    if percentile is None or percentile == 100:
        return out.scatter_reduce(0, groups, values, "amax", include_self=False)
    if n_groups == 1:  # one image: two order statistics, no sort
        n = values.numel()
        rank = torch.tensor(percentile / 100.0, dtype=torch.float32) * (n - 1)
        below, above = int(rank), int(torch.ceil(rank))
        vb = torch.kthvalue(values.cpu() if values.device.type == "mps" else values, below + 1).values
        va = vb if above == below else torch.kthvalue(values, above + 1).values
        out[0] = torch.lerp(vb, va, (rank - below).to(values.device))
        return out
    counts = torch.bincount(groups, minlength=n_groups)
    # sort by (group, value): stable sort by value, then stable sort by group
    order = torch.sort(values, stable=True).indices
    order = order[torch.sort(groups[order], stable=True).indices]
    v = values[order]
    start = torch.cumsum(counts, 0) - counts
    has = counts > 0
    q = torch.tensor(percentile / 100.0, dtype=torch.float32, device=dev)
    ranks = q * (counts[has] - 1).to(torch.float32)
    below = ranks.to(torch.int64)
    above = torch.ceil(ranks).to(torch.int64)
    weight = ranks - below.to(torch.float32)
    vb = v[start[has] + below]
    va = v[start[has] + above]
    out[has] = torch.lerp(vb, va, weight)
    return out


def _penalty(shape: Sequence[int], scale: torch.Tensor, metric: str) -> torch.Tensor:
    """Image diagonal (extent of the field of view) per image, in the metric's units."""
    ext = torch.as_tensor(list(shape), dtype=torch.float64, device=scale.device)
    if metric == "euclidean":
        return torch.sqrt(((ext * scale) ** 2).sum(-1))
    if metric == "taxicab":
        return ext.sum().expand(scale.shape[0])
    return ext.max().expand(scale.shape[0])


@contextlib.contextmanager
def _cpu_threads(n: int | None, device: torch.device):
    """Temporarily set torch's intra-op CPU threads (restored on exit)."""
    old = torch.get_num_threads()
    if n is None or device.type != "cpu" or n == old:
        yield
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# --------------------------------------------------------------------------------------------
# dense first pass: look the other surface up at the offsets of a small ball, nearest first
# --------------------------------------------------------------------------------------------
#: use the dense first pass (the grid search alone gives the same values; tests compare both)
_DENSE_FIRST = True
_BRUTE_PAIRS = 1 << 26  # unresolved points x other points below which the rest is brute force
_BALL = 32768  # offsets of the dense pass (a ball of about this many voxels)
_MAX_HALF_WIDTH = 64
_CHUNK_FRACTION = 1 / 3  # dense chunks stop when longer than this fraction of a target surface


@functools.lru_cache(maxsize=64)
def _offset_ball(w: tuple, metric: str) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """Integer offsets of a ball in voxel units, sorted by their length in the metric.

    ``w``: weight of each axis (the spacing for euclidean, ones otherwise). The box
    ``|o_k| <= m_k`` is chosen to hold about ``_BALL`` offsets for this anisotropy; returned are
    ``(offsets [K, D] int64, lengths [K] float64, (m_k))`` for every offset of the box shorter
    than the certified radius ``min_k (m_k + 1) w_k`` (offsets outside the box are at least that
    long, so the list is complete below the radius)."""
    dims = len(w)
    wt = torch.tensor(w, dtype=torch.float64) if metric == "euclidean" else torch.ones(dims, dtype=torch.float64)
    # radius r holding ~_BALL offsets: volume of the ball in voxel units ~ c_D r^D / prod(w)
    unit = math.pi if dims == 2 else (4.0 / 3.0 * math.pi if dims == 3 else 2.0**dims)
    r = (_BALL * float(wt.prod()) / unit) ** (1.0 / dims)
    r = max(r, float(wt.min()))
    m = [max(1, min(_MAX_HALF_WIDTH, math.ceil(r / float(wk) - 1e-9))) for wk in wt.tolist()]
    radius = min((mk + 1) * float(wk) for mk, wk in zip(m, wt.tolist()))
    axes = [torch.arange(-mk, mk + 1, dtype=torch.int64) for mk in m]
    off = torch.cartesian_prod(*axes).reshape(-1, dims)
    v = off.abs().to(torch.float64) * wt
    length = torch.sqrt((v * v).sum(1)) if metric == "euclidean" else _combine(v, metric)
    keep = length < radius * (1 - 1e-9)
    off, length = off[keep], length[keep]
    order = torch.sort(length, stable=True).indices
    return off[order], length[order], tuple(m)


def _dense_nearest(
    idx_q: torch.Tensor, dst: torch.Tensor, w: tuple, metric: str, max_pairs: int, max_chunk: int = 1 << 30
):
    """Nearest ``dst`` point of every query point among the offsets of :func:`_offset_ball`.

    ``idx_q``: ``[n, 1 + D]`` rows (group, voxel index); ``dst``: bool ``[G, *S]``. Offsets are
    tried in chunks of growing size, nearest first; a point is done at the first chunk with a
    hit (the nearest hit in that chunk is its distance: every shorter offset was tried). The
    search stops early when a chunk would cost more than ``max_pairs`` look-ups or would be
    longer than ``max_chunk`` offsets (then all pairs are cheaper). Returns float32
    distances (``inf`` where not found) and the indices left unresolved.
    """
    dev = idx_q.device
    n = idx_q.shape[0]
    d = torch.full((n,), math.inf, dtype=torch.float32, device=dev)
    if n == 0:
        return d, torch.zeros(0, dtype=torch.int64, device=dev)
    off, length, m = _offset_ball(w, metric)
    # chunks stop once longer than max_chunk, so at most ~2 * max_chunk offsets are ever used:
    # pad only as much as those need
    k_used = min(off.shape[0], 2 * max_chunk + 16)
    off, length = off[:k_used], length[:k_used]
    m = tuple(int(v) for v in off.abs().amax(0).tolist())
    off, length = off.to(dev), length.to(device=dev, dtype=torch.float32)
    g, *shape = dst.shape
    padded = torch.zeros((g, *[s + 2 * mk for s, mk in zip(shape, m)]), dtype=torch.bool, device=dev)
    padded[(slice(None),) + tuple(slice(mk, mk + s) for s, mk in zip(shape, m))] = dst
    strides = torch.tensor(padded.stride(), dtype=torch.int64, device=dev)
    flat_dst = padded.reshape(-1).view(torch.uint8)
    # int32 look-up indices where they fit (index_select reads them at half the traffic)
    itype = torch.int32 if padded.numel() < 2**31 - 1 else torch.int64
    base = idx_q[:, 0] * strides[0] + ((idx_q[:, 1:] + torch.tensor(m, device=dev)) * strides[1:]).sum(1)
    base = base.to(itype)
    off_flat = (off * strides[1:]).sum(1).to(itype)
    active = torch.arange(n, device=dev)
    s, size = 0, 1
    while s < off.shape[0] and active.numel():
        e = min(s + size, off.shape[0])
        if s > 0 and (active.numel() * (e - s) > max_pairs or e - s > max_chunk):
            break
        base_act = base if s == 0 else base[active]
        look = (base_act[:, None] + off_flat[None, s:e]).reshape(-1)
        hits = flat_dst.index_select(0, look).reshape(-1, e - s)
        # first hit in the chunk = the nearest (offsets are sorted); max returns the first maximum
        found, first = hits.max(1)
        found = found.bool()
        d[active[found]] = length[s + first[found]]
        active = active[~found]
        # chunks grow 2x while many points are left (bounded overshoot), 4x when few (fewer calls)
        s, size = e, max(8, size * (2 if active.numel() > 8192 else 4))
    return d, active


def _brute_nearest(q: torch.Tensor, pts: torch.Tensor, scale: torch.Tensor, metric: str, max_pairs: int):
    """Nearest distance from every row of ``q`` to the rows of ``pts`` of the same group (exact,
    all pairs, in chunks of ``max_pairs``). ``scale``: ``[G, D]`` float64 axis weights per group.
    Rows are ``(group, *voxel index)``, both sorted by group (``torch.nonzero`` order)."""
    dev = q.device
    out = torch.full((q.shape[0],), math.inf, dtype=torch.float32, device=dev)
    if q.shape[0] == 0 or pts.shape[0] == 0:
        return out
    n_groups = int(scale.shape[0])
    counts = torch.bincount(pts[:, 0], minlength=n_groups)
    start = (torch.cumsum(counts, 0) - counts).tolist()
    counts_l = counts.tolist()
    groups, q_counts = torch.unique_consecutive(q[:, 0], return_counts=True)
    row = 0
    for grp, nq in zip(groups.tolist(), q_counts.tolist()):
        qs, ps = q[row : row + nq, 1:], pts[start[grp] : start[grp] + counts_l[grp], 1:]
        if ps.shape[0]:
            w = scale[grp].to(device=dev, dtype=torch.float64)
            qw, pw = qs.to(torch.float64) * w, ps.to(torch.float64) * w
            step = max(1, max_pairs // ps.shape[0])
            for r in range(0, nq, step):
                qq = qw[r : r + step]
                if metric == "euclidean":
                    # |q - p|^2 = |q|^2 + |p|^2 - 2 q.p in float64 (exact to ~1e-10 for image coordinates)
                    d2 = torch.addmm((pw * pw).sum(1)[None, :], qq, pw.T, alpha=-2.0)
                    d2 += (qq * qq).sum(1)[:, None]
                    v = torch.sqrt(d2.amin(1).clamp_(min=0))
                else:
                    v = _combine((qq[:, None, :] - pw[None, :, :]).abs_(), metric).amin(1)
                out[row + r : row + r + qq.shape[0]] = v.to(torch.float32)
        row += nq
    return out


def _nearest(
    idx_a: torch.Tensor,
    dst_b: torch.Tensor,
    idx_b: torch.Tensor,
    scale: torch.Tensor,
    metric: str,
    cell_size: int | None,
    max_pairs: int,
) -> torch.Tensor:
    """Directed nearest distances from the points ``idx_a`` to the points ``idx_b`` (whose mask
    is ``dst_b`` ``[G, *S]``), exact: a dense first pass over a small ball, then all pairs or the
    cell grid for the points left (far from the other surface, e.g. a stray false positive)."""
    n_groups, *shape = dst_b.shape
    if idx_a.shape[0] == 0 or idx_b.shape[0] == 0:
        return torch.full((idx_a.shape[0],), math.inf, dtype=torch.float32, device=idx_a.device)
    uniform = bool((scale == scale[:1]).all())
    if _DENSE_FIRST and uniform:
        w = tuple(float(v) for v in scale[0].tolist())
        # a look-up costs about 3x a point pair of the all-pairs pass: stop the dense pass once
        # its chunks are longer than ~1/3 of the points of a target image
        per_group = idx_b.shape[0] / max(1, int(torch.unique_consecutive(idx_b[:, 0]).numel()))
        d, left = _dense_nearest(idx_a, dst_b, w, metric, max_pairs, max_chunk=max(8, int(per_group * _CHUNK_FRACTION)))
    else:
        d, left = (
            torch.full((idx_a.shape[0],), math.inf, dtype=torch.float32, device=idx_a.device),
            torch.arange(idx_a.shape[0], device=idx_a.device),
        )
    if left.numel() == 0:
        return d
    if left.numel() * idx_b.shape[0] <= _BRUTE_PAIRS:
        d[left] = _brute_nearest(idx_a[left], idx_b, scale, metric, max_pairs)
    else:
        d[left], _ = _edge_distances(
            idx_a[left], idx_b, n_groups, shape, scale, metric, False, cell_size, max_pairs, _MAX_CELL_PAIRS
        )
    return d


# --------------------------------------------------------------------------------------------
# surfaces of the three conventions
# --------------------------------------------------------------------------------------------
def _corner_codes(mask: torch.Tensor, dims: int) -> torch.Tensor:
    """Neighbourhood code (``2**D`` bits, MONAI's ``ENCODING_KERNEL``, DeepMind's kernel) of every
    voxel corner of ``[G, *S]`` masks: ``[G, *(S + 1)]`` uint8, corner ``j`` lying between the
    voxels ``j - 1`` and ``j`` along every axis."""
    m = torch.nn.functional.pad(mask.to(torch.uint8), (1, 1) * dims)
    code = torch.zeros((mask.shape[0], *[s + 1 for s in mask.shape[1:]]), dtype=torch.uint8, device=mask.device)
    bit = 1 << (2**dims)
    for corner in itertools.product((0, 1), repeat=dims):
        bit >>= 1
        idx = (slice(None),) + tuple(slice(c, c + s + 1) for c, s in zip(corner, mask.shape[1:]))
        code += m[idx] * bit
    return code


@functools.lru_cache(maxsize=32)
def _area_table(w: tuple) -> torch.Tensor:
    """Surface area (3D) / contour length (2D) of every neighbourhood code for spacing ``w``:
    MONAI's ``get_code_to_measure_table`` (DeepMind's marching-cubes tables)."""
    from monai.metrics.utils import get_code_to_measure_table

    table, _ = get_code_to_measure_table(list(w))
    return torch.as_tensor(table, dtype=torch.float64)


class _Surfaces:
    """Surface points of both masks (one convention), their nearest distances and weights.

    Both masks are processed as one stack ``[2G, *S]`` (prediction groups first), so every step
    runs once for both directions: a query point of group ``g`` looks into group ``(g + G) % 2G``.
    """

    def __init__(self, p, t, scale, convention, metric, symmetric, cell_size, max_pairs):
        n_groups, *shape = p.shape
        dims = len(shape)
        both = torch.cat([p, t])
        if convention == "surface":
            codes = _corner_codes(both, dims)
            full = 2 ** (2**dims) - 1
            edges = (codes != 0) & (codes != full)
        else:
            edges = mask_edges(both, dims)
        idx = torch.nonzero(edges)
        n_a = int(torch.searchsorted(idx[:, 0].contiguous(), n_groups)) if idx.numel() else 0
        self.idx_a, self.idx_b = idx[:n_a], idx[n_a:]
        self.g_a, self.g_b = self.idx_a[:, 0], self.idx_b[:, 0] - n_groups
        self.weights_a = self.weights_b = None
        scale2 = scale.repeat(2, 1)
        if convention == "surface":
            # areas per unique spacing (the table depends on it)
            weights = torch.zeros(idx.shape[0], dtype=torch.float64, device=p.device)
            code = codes[edges].long()
            rows, inv = torch.unique(scale.cpu(), dim=0, return_inverse=True)
            inv = inv.to(p.device).repeat(2)
            for k, row in enumerate(rows):
                table = _area_table(tuple(float(v) for v in row.tolist())).to(p.device)
                sel = inv[idx[:, 0]] == k
                weights[sel] = table[code[sel]]
            self.weights_a, self.weights_b = weights[:n_a], weights[n_a:]
        queries = idx if symmetric else self.idx_a
        q = queries.clone()
        q[:, 0] = (q[:, 0] + n_groups) % (2 * n_groups)  # look into the other mask of the same image
        d = _nearest(q, edges, idx, scale2, metric, cell_size, max_pairs)
        self.d_ab = d[:n_a]
        self.d_ba = d[n_a:] if symmetric else None
        self.n_a = torch.bincount(self.g_a, minlength=n_groups)
        self.n_b = torch.bincount(self.g_b, minlength=n_groups)


def _weighted_quantile(values, weights, groups, n_groups: int, percentile: float | None):
    """DeepMind's ``compute_robust_hausdorff`` per group: the first distance (in ascending order)
    at which the cumulative area fraction reaches ``percentile / 100``; NaN for empty groups."""
    dev = values.device
    out = torch.full((n_groups,), math.nan, device=dev, dtype=torch.float32)
    if values.numel() == 0:
        return out
    if percentile is None:
        return out.scatter_reduce(0, groups, values, "amax", include_self=False)
    # sort by (group, value, weight) as DeepMind sorts (distance, area) pairs
    order = torch.sort(weights, stable=True).indices
    order = order[torch.sort(values[order], stable=True).indices]
    order = order[torch.sort(groups[order], stable=True).indices]
    v, w, g = values[order], weights[order].double(), groups[order]
    counts = torch.bincount(g, minlength=n_groups)
    start = torch.cumsum(counts, 0) - counts
    cum = torch.cumsum(w, 0)
    before = torch.where(start > 0, cum[(start - 1).clamp(min=0)], torch.zeros_like(cum[:1]))
    total = torch.zeros(n_groups, dtype=torch.float64, device=dev).scatter_add_(0, g, w)
    frac = (cum - before[g]) / total[g]
    pos = torch.arange(v.numel(), device=dev)
    hit = torch.where(frac >= percentile / 100.0, pos, v.numel())
    first = torch.full((n_groups,), v.numel(), dtype=torch.int64, device=dev).scatter_reduce(
        0, g, hit, "amin", include_self=True
    )
    has = counts > 0
    last = start + counts - 1
    idx = torch.minimum(first, last)
    out[has] = v[idx[has]]
    return out


def _group_sum(values, groups, n_groups: int, weights=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group sum of (weighted) values and of the weights (float64)."""
    dev = values.device
    w = torch.ones_like(values, dtype=torch.float64) if weights is None else weights.double()
    num = torch.zeros(n_groups, dtype=torch.float64, device=dev).scatter_add_(0, groups, values.double() * w)
    den = torch.zeros(n_groups, dtype=torch.float64, device=dev).scatter_add_(0, groups, w)
    return num, den


def _check_args(distance_metric, percentile, empty, convention):
    if distance_metric not in _METRICS:
        raise ValueError(f"distance_metric must be one of {_METRICS}, got {distance_metric!r}.")
    if percentile is not None and not 0 <= float(percentile) <= 100:
        raise ValueError(f"percentile should be a value between 0 and 100, got {percentile}.")
    if isinstance(empty, str):
        if empty not in EMPTY_POLICIES:
            raise ValueError(f"empty must be one of {EMPTY_POLICIES} or a number, got {empty!r}.")
    elif not isinstance(empty, (int, float)) or isinstance(empty, bool):
        raise ValueError(f"empty must be one of {EMPTY_POLICIES} or a number, got {empty!r}.")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}.")
    if convention == "surface" and distance_metric != "euclidean":
        raise ValueError('convention="surface" (area-weighted surface elements) needs distance_metric="euclidean".')


def _prepare(y_pred, y, include_background, distance_metric, spacing, device):
    """Validated bool masks ``[G, *S]`` cropped to the union, their batch/class sizes, the
    original spatial shape and the per-group axis weights (float64 ``[G, D]``)."""
    p = check_binary(y_pred, "y_pred").to(device)
    t = check_binary(y, "y").to(device)
    if p.shape != t.shape:
        raise ValueError(f"y_pred and y should have same shapes, got {list(p.shape)} and {list(t.shape)}.")
    if p.ndim < 3:
        raise ValueError(
            f"y_pred should have at least three dimensions [B, C, *spatial], got {list(p.shape)}."
        )
    if not include_background and p.shape[1] > 1:
        p, t = p[:, 1:], t[:, 1:]
    b, c, *shape = p.shape
    dims = len(shape)
    spacing_t = prepare_spacing_tensor(spacing, b, dims, device=device)
    g_scale = spacing_t.repeat_interleave(c, 0)
    if distance_metric != "euclidean":
        g_scale = torch.ones_like(g_scale)
    p = p.reshape(b * c, *shape)
    t = t.reshape(b * c, *shape)
    p, t = _crop_to_union(p, t)
    return p, t, b, c, shape, g_scale


def _empty_fill(value, code, shape, g_scale, metric, empty, both=0.0):
    """Apply the empty-mask policy to per-group values: one side empty -> ``empty``, both -> ``both``."""
    one_empty = (code == 1) | (code == 2)
    if empty == "diagonal":
        fill = _penalty(shape, g_scale, metric).to(torch.float32)
    else:
        fill = torch.full_like(value, float(empty))
    value = torch.where(one_empty, fill.to(value.device), value)
    return torch.where(code == 3, torch.full_like(value, both), value)


def hausdorff_distance(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = False,
    distance_metric: str = "euclidean",
    percentile: float | None = None,
    directed: bool = False,
    spacing: SpacingType = None,
    empty: str | float = "diagonal",
    return_empty: bool = False,
    cell_size: int | None = None,
    max_pairs: int = _MAX_PAIRS,
    num_threads: int | None = 1,
    convention: str = "monai",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Hausdorff distance (or its percentile, e.g. HD95) between batched binary masks.

    Same definition and arguments as :func:`monai.metrics.compute_hausdorff_distance` (edges =
    mask minus its erosion, distances between the two edge sets, symmetric = max of the two
    directed values), but computed for the whole ``[B, C]`` batch at once in torch, on the inputs'
    device, with exact distances and bounded memory. Values agree with MONAI's to float32
    precision on every case where both masks are non-empty. ``convention`` selects how the
    percentile is taken, to match other libraries (docs/metrics.md has the table).

    Args:
        y_pred: binary prediction ``[B, C, *spatial]`` (2D or 3D): bool, or numbers that are all
            0 or 1 (anything else raises ``ValueError``; see :func:`check_binary`). Tensor or
            numpy array.
        y: binary ground truth, same shape.
        include_background: whether to keep the first channel (dropped only when ``C > 1``, as in
            MONAI). Defaults to ``False``.
        distance_metric: ``"euclidean"`` (default, uses ``spacing``), ``"chessboard"`` or
            ``"taxicab"`` (on the voxel grid, ignoring ``spacing``, as MONAI's chamfer transforms).
        percentile: ``None`` or ``100`` for the maximum; otherwise a value in ``[0, 100]``. ``95``
            gives HD95. Defaults to ``None``.
        directed: only the directed distance from ``y_pred`` to ``y``. Defaults to ``False``.
        spacing: voxel size in physical units: ``None`` (1), a number, a sequence of ``D`` numbers,
            or per image a sequence of ``B`` sequences (or a ``[B, D]`` tensor). Defaults to ``None``.
        empty: value when exactly one of the two masks is empty (both empty always gives ``0``):
            ``"diagonal"`` (default) — the image diagonal ``sqrt(sum((n_k * spacing_k)^2))`` in
            physical units, larger than any distance between two voxels, so a missed lesion can
            never improve a mean; ``"nan"`` — NaN, counted as missing by MONAI's reductions
            (MONAI 1.6 returns NaN with a percentile, ``inf`` without); ``"inf"``; or a number.
        return_empty: also return an int8 tensor ``[B, C]`` coding the empty cases: 0 both
            non-empty, 1 prediction empty, 2 ground truth empty, 3 both empty.
        cell_size: grid cell size (voxels along the finest axis) of the neighbour search for
            points far from the other surface; default 8 in 2D, 4 in 3D. Speed only.
        max_pairs: maximum number of voxel pairs compared at once (memory bound, ~``12 * D``
            bytes each). Affects memory and speed only.
        num_threads: torch CPU threads used during the call, restored afterwards. The computation
            is many medium-sized operations, whose parallel speed-up is small and whose thread
            synchronisation costs a lot on a busy machine (10x on a shared 2-core CPU); ``1``
            (default) is the fastest there. ``None`` keeps torch's setting. Note that torch's
            thread setting is process-wide. No effect on other devices.
        convention: how the two directed distance sets become one number (docs/metrics.md):

            * ``"monai"`` (default): edge voxels (mask minus erosion), the larger of the two
              directed percentiles (linear interpolation, ``torch.quantile``) — MONAI's
              ``compute_hausdorff_distance``, MetricsReloaded;
            * ``"pooled"``: the same edge voxels, one percentile of both directions pooled —
              ``medpy.metric.binary.hd95`` / ``hd`` (seg-metrics, panoptica and the PATM code use
              medpy's definition);
            * ``"surface"``: surface elements at the voxel corners, each weighted by its area
              (contour length in 2D), the larger of the two area-weighted directed percentiles
              — DeepMind's ``surface_distance.compute_robust_hausdorff`` (euclidean only).

    Returns:
        float32 tensor ``[B, C]`` on ``y_pred``'s device (and the empty codes if ``return_empty``).

    Raises:
        ValueError: on non-binary masks, mismatched shapes, fewer than 3 dims, unknown
            metric/policy/convention, or a percentile outside ``[0, 100]``.

    Note:
        MONAI's ``_compute_percentile_hausdorff_distance`` treats ``percentile=0`` as "no
        percentile" (the maximum); here ``0`` is the minimum, as in ``torch.quantile``.
    """
    _check_args(distance_metric, percentile, empty, convention)
    device = y_pred.device if isinstance(y_pred, torch.Tensor) else torch.device("cpu")
    with _cpu_threads(num_threads, device):
        p, t, b, c, shape, g_scale = _prepare(y_pred, y, include_background, distance_metric, spacing, device)
        n_groups = b * c
        perc = None if percentile is None or float(percentile) == 100 else float(percentile)
        sf = _Surfaces(p, t, g_scale, convention, distance_metric, not directed, cell_size, max_pairs)
        if convention == "surface":
            hd = _weighted_quantile(sf.d_ab, sf.weights_a, sf.g_a, n_groups, perc)
            if not directed:
                hd = torch.fmax(hd, _weighted_quantile(sf.d_ba, sf.weights_b, sf.g_b, n_groups, perc))
        elif convention == "pooled" and not directed:
            hd = _group_stat(torch.cat([sf.d_ab, sf.d_ba]), torch.cat([sf.g_a, sf.g_b]), n_groups, perc)
        else:
            hd = _group_stat(sf.d_ab, sf.g_a, n_groups, perc)
            if not directed:
                hd = torch.fmax(hd, _group_stat(sf.d_ba, sf.g_b, n_groups, perc))
        code = (sf.n_a == 0).to(torch.int8) + 2 * (sf.n_b == 0).to(torch.int8)
        hd = _empty_fill(hd, code, shape, g_scale, distance_metric, empty).reshape(b, c)
    return (hd, code.reshape(b, c)) if return_empty else hd


def average_surface_distance(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    include_background: bool = False,
    distance_metric: str = "euclidean",
    symmetric: bool = True,
    spacing: SpacingType = None,
    convention: str = "monai",
    empty: str | float = "diagonal",
    return_empty: bool = False,
    cell_size: int | None = None,
    max_pairs: int = _MAX_PAIRS,
    num_threads: int | None = 1,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Average (symmetric) surface distance, ASSD, between batched binary masks.

    With ``d(P→G)`` the nearest distances from the prediction's surface points to the ground
    truth's surface and ``d(G→P)`` the reverse:

    * ``"monai"`` (default) and ``"pooled"`` (the same number): the mean of all distances of
      both directions together, ``(Σ d(P→G) + Σ d(G→P)) / (|∂P| + |∂G|)`` over edge voxels —
      MONAI's ``compute_average_surface_distance(symmetric=True)`` and
      ``medpy.metric.binary.assd`` (medpy ≥ 0.5 pools the two lists; older versions averaged
      the two directed means);
    * ``"surface"``: the mean of the two area-weighted directed means over the corner surface
      elements — the average of the pair DeepMind's ``compute_average_surface_distance`` returns.

    ``symmetric=False`` gives the directed mean ``d(P→G)`` (area-weighted for ``"surface"``).
    Other arguments, the empty-mask policy and the return value are as in
    :func:`hausdorff_distance` (both masks empty gives 0).
    """
    _check_args(distance_metric, None, empty, convention)
    device = y_pred.device if isinstance(y_pred, torch.Tensor) else torch.device("cpu")
    with _cpu_threads(num_threads, device):
        p, t, b, c, shape, g_scale = _prepare(y_pred, y, include_background, distance_metric, spacing, device)
        n_groups = b * c
        sf = _Surfaces(p, t, g_scale, convention, distance_metric, symmetric, cell_size, max_pairs)
        num_a, den_a = _group_sum(sf.d_ab, sf.g_a, n_groups, sf.weights_a)
        if not symmetric:
            val = num_a / den_a
        else:
            num_b, den_b = _group_sum(sf.d_ba, sf.g_b, n_groups, sf.weights_b)
            if convention == "surface":
                val = (num_a / den_a + num_b / den_b) / 2
            else:
                val = (num_a + num_b) / (den_a + den_b)
        code = (sf.n_a == 0).to(torch.int8) + 2 * (sf.n_b == 0).to(torch.int8)
        val = _empty_fill(val.to(torch.float32), code, shape, g_scale, distance_metric, empty).reshape(b, c)
    return (val, code.reshape(b, c)) if return_empty else val


def surface_dice(
    y_pred: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    tolerance: float | Sequence[float],
    include_background: bool = False,
    spacing: SpacingType = None,
    convention: str = "surface",
    distance_metric: str = "euclidean",
    both_empty: float = 1.0,
    return_empty: bool = False,
    cell_size: int | None = None,
    max_pairs: int = _MAX_PAIRS,
    num_threads: int | None = 1,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Normalised surface Dice (NSD) at a tolerance, between batched binary masks.

    The fraction of both surfaces that lies within ``tolerance`` (physical units) of the other
    surface: ``(|{p ∈ ∂P: d(p, ∂G) <= τ}| + |{g ∈ ∂G: d(g, ∂P) <= τ}|) / (|∂P| + |∂G|)``,
    surfaces measured as

    * ``"surface"`` (default): corner surface elements weighted by their area — DeepMind's
      ``compute_surface_dice_at_tolerance`` and MONAI's ``SurfaceDiceMetric(use_subvoxels=True)``;
    * ``"monai"`` (or ``"pooled"``, the same count): edge voxels counted — MONAI's
      ``SurfaceDiceMetric`` default (``use_subvoxels=False``).

    Args:
        tolerance: ``τ``, one number or one per reported class.
        both_empty: value when both masks are empty (MONAI: NaN). Defaults to ``1.0``. One mask
            empty gives 0.
        Other arguments as :func:`hausdorff_distance`.

    Returns:
        float32 tensor ``[B, C]`` in ``[0, 1]`` (and the empty codes if ``return_empty``).
    """
    _check_args(distance_metric, None, "nan", convention)
    device = y_pred.device if isinstance(y_pred, torch.Tensor) else torch.device("cpu")
    with _cpu_threads(num_threads, device):
        p, t, b, c, shape, g_scale = _prepare(y_pred, y, include_background, distance_metric, spacing, device)
        n_groups = b * c
        tol = torch.as_tensor(tolerance, dtype=torch.float64).reshape(-1)
        if tol.numel() not in (1, c):
            raise ValueError(f"tolerance must be one number or one per class ({c}), got {tol.tolist()}.")
        if not bool(torch.isfinite(tol).all()) or bool((tol < 0).any()):
            raise ValueError(f"tolerance must be finite and >= 0, got {tol.tolist()}.")
        tol_g = tol.expand(c).repeat(b).to(device)  # [G], group = image * c + class
        sf = _Surfaces(p, t, g_scale, convention, distance_metric, True, cell_size, max_pairs)
        ok_a = (sf.d_ab.double() <= tol_g[sf.g_a]).double()
        ok_b = (sf.d_ba.double() <= tol_g[sf.g_b]).double()
        num_a, den_a = _group_sum(ok_a, sf.g_a, n_groups, sf.weights_a)
        num_b, den_b = _group_sum(ok_b, sf.g_b, n_groups, sf.weights_b)
        val = ((num_a + num_b) / (den_a + den_b)).to(torch.float32)
        code = (sf.n_a == 0).to(torch.int8) + 2 * (sf.n_b == 0).to(torch.int8)
        val = torch.where(code == 3, torch.full_like(val, float(both_empty)), val).reshape(b, c)
    return (val, code.reshape(b, c)) if return_empty else val
