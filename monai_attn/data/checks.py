"""Content checks shared by the adapters: readability, geometry agreement, label values, finiteness.

Each check returns ``(path, message)`` pairs; the adapters turn them into
:class:`~monai_attn.data.base.Problem` s attached to a case.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "Geometry",
    "read_volume",
    "read_image_2d",
    "geometry_mismatches",
    "value_problem",
    "unique_values",
    "finite_problem",
    "zero_problem",
    "shape_problem",
    "spacing_problem",
    "raw_nifti_pixdim",
    "check_volume_group",
    "lps_geometry",
    "majority_geometry",
]

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class Geometry:
    """Voxel grid of a volume: shape, spacing (mm), origin (mm) and direction cosines."""

    shape: tuple
    spacing: tuple
    origin: tuple
    direction: tuple  # row-major 3x3 (or ndim x ndim)


def is_nifti(path: str | Path) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_volume(path: str | os.PathLike, data: bool = True) -> tuple[np.ndarray | None, Geometry]:
    """Read a volume (NIfTI through nibabel, anything else, e.g. NRRD/MHA, through SimpleITK; a folder
    as the DICOM series it holds, see :mod:`monai_attn.data.dicom`).

    Returns ``(array or None, geometry)``; the array is indexed (x, y, z) like nibabel's. A DICOM
    series is read whole even with ``data=False`` (its geometry follows from every slice's position).
    Exceptions from the readers propagate (the callers turn them into problems).
    """
    path = Path(path)
    if path.is_dir():
        from .dicom import read_dicom_series

        img = read_dicom_series(path)
        geom = Geometry(tuple(int(s) for s in img.GetSize()), tuple(img.GetSpacing()), tuple(img.GetOrigin()),
                        tuple(img.GetDirection()))
        if not data:
            return None, geom
        import SimpleITK as sitk

        arr = sitk.GetArrayFromImage(img)
        return np.transpose(arr, tuple(range(arr.ndim))[::-1]), geom
    if is_nifti(path):
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


def lps_geometry(geom: Geometry, nifti: bool) -> Geometry:
    """``geom`` in ITK's LPS world coordinates: :func:`read_volume` gives NIfTI geometry in nibabel's RAS
    (unchanged when ``nifti`` is false), so a NIfTI file and a DICOM series / NRRD can be compared."""
    if not nifti or len(geom.origin) != 3 or len(geom.direction) != 9:
        return geom
    flip = np.diag([-1.0, -1.0, 1.0])
    direction = flip @ np.asarray(geom.direction, dtype=np.float64).reshape(3, 3)
    origin = flip @ np.asarray(geom.origin, dtype=np.float64)
    return Geometry(geom.shape, geom.spacing, tuple(origin), tuple(direction.ravel()))


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
    arr = np.asarray(arr)
    if arr.dtype not in (np.uint8, np.bool_):
        # distinct values of the offending voxels only: one comparison pass per allowed value, no sort of
        # the whole (float) volume
        arr = arr[~np.isin(arr, allowed)]
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


def zero_problem(arr: np.ndarray) -> str | None:
    """A message when every voxel of ``arr`` is zero (a blank or empty image), else ``None``."""
    if arr.size and np.any(arr):
        return None
    return f"all {arr.size} voxels are zero (a blank image)"


def shape_problem(shape: Sequence[int], ndim: int = 3) -> str | None:
    """A message when ``shape`` (a file's array shape) is not an ``ndim``-D image, else ``None``.

    A 4th axis (a time or vector axis, even of length one) is refused: a segmentation bundle reads
    one 3D volume per file and stacks the files of a case as its channels.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == ndim:
        return None
    if len(shape) < ndim:
        if ndim == 3:
            return f"a 2D image (shape {shape}) given to a volumetric (3D) bundle: expected a 3D volume"
        return f"expected a {ndim}D image, got shape {shape}"
    if ndim == 3 and len(shape) == 4:
        return (f"a 4-D volume with a time axis of {shape[3]} (shape {shape}): expected one 3D volume per file "
                "(split the time points, or squeeze a last axis of length 1)")
    if ndim == 2:
        return f"a 3D volume (shape {shape}) given to a 2D bundle: expected a 2D image"
    return f"expected a {ndim}D image, got {len(shape)} dimensions (shape {shape})"


def raw_nifti_pixdim(path: str | os.PathLike) -> np.ndarray | None:
    """The ``pixdim`` field of a NIfTI header as written in the file (nibabel's loader silently
    replaces zero or negative voxel sizes), or ``None`` for other formats."""
    path = Path(path)
    if not is_nifti(path):
        return None
    import nibabel as nib
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as f:
        raw = f.read(4)
        f.seek(0)
        klass = nib.Nifti2Header if int.from_bytes(raw, "little") == 540 or int.from_bytes(raw, "big") == 540 \
            else nib.Nifti1Header
        header = klass.from_fileobj(f, check=False)
    return np.asarray(header["pixdim"], dtype=np.float64)


def spacing_problem(path: str | os.PathLike, geom: Geometry) -> str | None:
    """A message when the voxel spacing of ``path`` is zero, negative or not finite, else ``None``.

    Looks at the spacing that the reader derives (``geom``, from the affine) and, for NIfTI, at the
    header's ``pixdim`` as written (nibabel would otherwise fix it silently, changing the geometry).
    """
    nd = min(3, len(geom.shape))
    pixdim = raw_nifti_pixdim(path)
    if pixdim is not None:
        shown = tuple(float(x) for x in pixdim[1 : nd + 1])
        if not all(np.isfinite(x) and x > 0 for x in shown):
            return f"absurd voxel spacing: pixdim {shown} in the header (must be positive)"
    spacing = tuple(float(s) for s in geom.spacing[:nd])
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        return f"absurd voxel spacing {spacing} (must be positive; the affine/direction is degenerate)"
    return None


def check_volume_group(
    files: Mapping[str, Path],
    label_role: str | None = "label",
    label_values: Iterable[float] = (0, 1),
    ndim: int = 3,
) -> list[tuple[Path, str]]:
    """Check a case's volumes: readable, ``ndim``-D (no time axis), positive spacing, same
    geometry as the first readable one, finite and not all-zero intensities, and label values
    within ``label_values``."""
    problems: list[tuple[Path, str]] = []
    geoms: list[tuple[str, Path, Geometry]] = []
    mixed = len({is_nifti(p) for p in files.values()}) > 1
    for role, path in files.items():
        try:
            arr, geom = read_volume(path)
            arr = np.asarray(arr)
        except Exception as e:  # noqa: BLE001 - any reader failure means "unreadable"
            problems.append((path, f"cannot read {role} file ({type(e).__name__}: {e})"))
            continue
        msg = shape_problem(arr.shape, ndim) or spacing_problem(path, geom)
        if msg:
            problems.append((path, msg))
            continue
        if mixed:  # NIfTI and NRRD/MHA/DICOM series files in one case: compare them in one world
            geom = lps_geometry(geom, is_nifti(path))
        geoms.append((role, path, geom))
        msg = finite_problem(arr)
        zero = None if msg or role == label_role else zero_problem(arr)
        if msg or zero:
            problems.append((path, msg or zero))
        if role == label_role and msg is None:
            msg = value_problem(arr, label_values)
            if msg:
                problems.append((path, msg))
    if geoms:
        # compare with the shape most files share, so the one odd file is named, not the good ones
        ref_role, ref_path, ref_geom = majority_geometry([(p, g) for _, p, g in geoms], [r for r, _, _ in geoms])
        for _role, path, geom in geoms:
            if path != ref_path:
                problems += [(path, m) for m in geometry_mismatches(ref_geom, geom, f"{ref_role} ({Path(ref_path).name})")]
    return problems


def majority_geometry(found: Sequence[tuple[Any, Geometry]], names: Sequence[str] | None = None):
    """``(name, path, geometry)`` of the first file whose shape the most files share (``found``: ``(path,
    geometry)`` pairs in order; ``names`` default to the paths), the reference the others are compared with."""
    from collections import Counter

    counts = Counter(g.shape for _, g in found)
    best = max(counts.values())
    i = next(i for i, (_, g) in enumerate(found) if counts[g.shape] == best)
    return (names[i] if names is not None else str(found[i][0])), found[i][0], found[i][1]
