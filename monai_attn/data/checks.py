"""Content checks shared by the adapters: readability, geometry agreement, label values, finiteness.

Each check returns ``(path, message)`` pairs; the adapters turn them into
:class:`~monai_attn.data.base.Problem` s attached to a case.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

__all__ = [
    "Geometry",
    "read_volume",
    "read_image_2d",
    "geometry_mismatches",
    "value_problem",
    "unique_values",
    "finite_problem",
    "check_volume_group",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of a volume: shape, spacing (mm), origin (mm) and direction cosines."""

    shape: tuple
    spacing: tuple
    origin: tuple
    direction: tuple  # row-major 3x3 (or ndim x ndim)


def _is_nifti(path: Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_volume(path: str | os.PathLike, data: bool = True) -> tuple[np.ndarray | None, Geometry]:
    """Read a volume (NIfTI through nibabel, anything else, e.g. NRRD/MHA, through SimpleITK).

    Returns ``(array or None, geometry)``; the array is indexed (x, y, z) like nibabel's.
    Exceptions from the readers propagate (the callers turn them into problems).
    """
    path = Path(path)
    if _is_nifti(path):
        import nibabel as nib

        img = nib.load(str(path), mmap=False)  # no memory map: a file changed under us must not SIGBUS
        affine = np.asarray(img.affine, dtype=np.float64)
        shape = tuple(int(s) for s in img.shape)
        nd = min(3, len(shape))
        cols = affine[:3, :3]
        spacing = np.linalg.norm(cols, axis=0)
        direction = cols / np.where(spacing == 0, 1.0, spacing)
        geom = Geometry(shape, tuple(np.round(spacing[:nd], 6)), tuple(affine[:3, 3]), tuple(direction.ravel()))
        arr = np.asanyarray(img.dataobj) if data else None
        return arr, geom
    import SimpleITK as sitk

    if data:
        img = sitk.ReadImage(str(path))
    else:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        img = reader
    size = tuple(int(s) for s in img.GetSize())
    geom = Geometry(size, tuple(img.GetSpacing()), tuple(img.GetOrigin()), tuple(img.GetDirection()))
    if not data:
        return None, geom
    arr = sitk.GetArrayFromImage(img)  # (z, y, x)
    return np.transpose(arr, tuple(range(arr.ndim))[::-1]), geom


def read_image_2d(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """Fully decode a 2D image with Pillow; returns ``(array, PIL mode)``. Truncated files raise."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        return np.asarray(img), img.mode


def geometry_mismatches(ref: Geometry, other: Geometry, ref_name: str, spacing_tol: float = 1e-3,
                        origin_tol: float = 1e-2, direction_tol: float = 1e-3) -> list[str]:
    """Messages describing how ``other`` differs from ``ref`` (named ``ref_name``)."""
    out = []
    if ref.shape != other.shape:
        out.append(f"shape {other.shape} differs from {ref_name}'s {ref.shape}")
    for what, a, b, tol in (("spacing", ref.spacing, other.spacing, spacing_tol),
                            ("origin", ref.origin, other.origin, origin_tol),
                            ("direction", ref.direction, other.direction, direction_tol)):
        if len(a) != len(b) or not np.allclose(a, b, atol=tol, rtol=0):
            fmt = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
            out.append(f"{what} {fmt(b)} differs from {ref_name}'s {fmt(a)}")
    return out


def unique_values(arr: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a histogram for 8-bit data, much faster than ``np.unique``)."""
    arr = np.asarray(arr)
    if arr.dtype in (np.uint8, np.bool_):
        return np.flatnonzero(np.bincount(arr.ravel().view(np.uint8), minlength=256)).astype(arr.dtype)
    return np.unique(arr)


def value_problem(arr: np.ndarray, allowed: Iterable[float], what: str = "label") -> str | None:
    """A message when ``arr`` holds values outside ``allowed`` (or NaN), else ``None``."""
    allowed = sorted(set(allowed))
    values = unique_values(arr)
    bad = values[~np.isin(values, allowed)]
    if bad.size == 0:
        return None
    shown = ", ".join(f"{v:g}" for v in bad[:8]) + (", ..." if bad.size > 8 else "")
    expected = "{" + ", ".join(f"{v:g}" for v in allowed) + "}"
    return f"unexpected {what} values {{{shown}}} (expected {expected})"


def finite_problem(arr: np.ndarray) -> str | None:
    """A message when a floating-point ``arr`` holds NaN or inf, else ``None``."""
    if not np.issubdtype(arr.dtype, np.floating):
        return None
    finite = np.isfinite(arr)
    if finite.all():
        return None
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(arr.size - finite.sum() - n_nan)
    return f"contains {n_nan} NaN and {n_inf} inf voxels"


def check_volume_group(
    files: Mapping[str, Path],
    label_role: str | None = "label",
    label_values: Iterable[float] = (0, 1),
    ndim: int = 3,
) -> list[tuple[Path, str]]:
    """Check a case's volumes: readable, ``ndim``-D, same geometry as the first readable one,
    finite intensities, and label values within ``label_values``."""
    problems: list[tuple[Path, str]] = []
    ref: tuple[str, Geometry] | None = None
    for role, path in files.items():
        try:
            arr, geom = read_volume(path)
            arr = np.asarray(arr)
        except Exception as e:  # noqa: BLE001 - any reader failure means "unreadable"
            problems.append((path, f"cannot read {role} file ({type(e).__name__}: {e})"))
            continue
        if arr.ndim != ndim:
            problems.append((path, f"expected a {ndim}D volume, got shape {tuple(arr.shape)}"))
            continue
        if ref is None:
            ref = (f"{role} ({Path(path).name})", geom)
        else:
            problems += [(path, m) for m in geometry_mismatches(ref[1], geom, ref[0])]
        msg = finite_problem(arr)
        if msg:
            problems.append((path, msg))
        if role == label_role and msg is None:
            msg = value_problem(arr, label_values)
            if msg:
                problems.append((path, msg))
    return problems
