"""DICOM series as volumes: a folder holding one series stands where a NIfTI/NRRD/MHA file would.

The volume bundles (BraTS: ``<case>/<case>_<modality>/``; ISLES: the map's
``SMIR.Brain.XX.O.CT_<MAP>.<id>/`` folder) and ``monai-attn verify``/``prepare`` accept such a folder.
Loading goes through ITK (MONAI's ``ITKReader`` reads a folder as a DICOM series); the checks here use
SimpleITK's GDCM series reader, which sorts the slices by their position along the slice normal and
derives the slice spacing from the positions, as ITK does.

:func:`write_dicom_series` writes a volume as a series of 2D slices (tests, conversions of a NIfTI cohort).
"""
from __future__ import annotations

import hashlib
import locale
import os
from pathlib import Path

__all__ = ["dicom_series_files", "is_dicom_series", "read_dicom_series", "write_dicom_series"]

#: files that are never slices of a series (listing a folder skips them)
_NOT_DICOM = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".json", ".txt", ".csv", ".png", ".jpg")


def _candidate_files(folder: Path) -> list[Path]:
    return [f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
            and not f.name.lower().endswith(_NOT_DICOM)]


def dicom_series_files(folder: str | os.PathLike) -> list[str]:
    """The slice files of the one DICOM series in ``folder``, in slice order.

    Raises ``ValueError`` naming the folder when it holds no DICOM series or several (which one is
    meant cannot be guessed: put each series in its own folder).
    """
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder")
    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) if _candidate_files(folder) else ()
    if not ids:
        raise ValueError(f"{folder}: the folder holds no DICOM series (expected the .dcm slices of one series)")
    if len(ids) > 1:
        raise ValueError(f"{folder}: the folder holds {len(ids)} DICOM series ({', '.join(ids[:3])}"
                         f"{', ...' if len(ids) > 3 else ''}); put each series in its own folder")
    return list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), ids[0]))


def is_dicom_series(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a folder holding (at least) one DICOM series."""
    import SimpleITK as sitk

    folder = Path(folder)
    return folder.is_dir() and bool(_candidate_files(folder)) and bool(
        sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def read_dicom_series(folder: str | os.PathLike):
    """The DICOM series in ``folder`` as one SimpleITK image (world coordinates in LPS, as ITK's)."""
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(dicom_series_files(folder))
    return reader.Execute()


def _uid(*parts: str) -> str:
    """A deterministic DICOM UID (``2.25.<decimal of a 128-bit hash>``, as for UUID-derived UIDs)."""
    digest = hashlib.sha256("/".join(parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def write_dicom_series(image, folder: str | os.PathLike, series_description: str = "monai_attn",
                       patient_id: str = "anonymous") -> list[Path]:
    """Write a 3D volume as a DICOM series, one file per slice (``<folder>/slice_<k>.dcm``).

    Args:
        image: a SimpleITK image, or the path of a volume SimpleITK reads (NIfTI, NRRD, MHA). Integer
            pixel types are written as they are; cast floating-point data to an integer type first
            (DICOM stores integers).
        folder: the series' folder (created; must not already hold DICOM files).
        series_description: the series' description tag (0008|103e).
        patient_id: the patient id tag (0010|0020).

    The geometry (origin, spacing, direction) is kept: ``ImagePositionPatient`` of every slice,
    ``ImageOrientationPatient`` from the direction's first two columns and ``PixelSpacing``; the slice
    spacing and the third axis follow from the positions, so the direction must be right-handed (its
    third column the cross product of the first two), as any scanner's is.
    """
    import numpy as np
    import SimpleITK as sitk

    if not isinstance(image, sitk.Image):
        image = sitk.ReadImage(str(image))
    if image.GetDimension() != 3:
        raise ValueError(f"expected a 3D image, got {image.GetDimension()} dimensions")
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    if np.linalg.det(direction) < 0:
        raise ValueError("the image's direction is left-handed; DICOM cannot store it as one series "
                         "(flip the last axis first)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(f.suffix.lower() == ".dcm" for f in folder.iterdir()):
        raise ValueError(f"{folder}: already holds DICOM files")
    key = str(folder.resolve())
    study_uid, series_uid, frame_uid = _uid(key, "study"), _uid(key, "series"), _uid(key, "frame")
    orientation = "\\".join(f"{v:.10g}" for v in (*direction[:, 0], *direction[:, 1]))
    spacing = image.GetSpacing()
    common = {
        "0008|0060": "OT", "0008|0008": "DERIVED\\SECONDARY", "0008|0021": "20000101", "0008|0031": "000000",
        "0008|103e": series_description, "0010|0010": patient_id, "0010|0020": patient_id,
        "0020|000d": study_uid, "0020|000e": series_uid, "0020|0052": frame_uid, "0020|0011": "1",
        "0020|0037": orientation, "0018|0050": f"{spacing[2]:.10g}",
    }
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()  # keep the UIDs set below instead of fresh random ones
    written = []
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        for k in range(image.GetSize()[2]):
            sl = image[:, :, k]
            for tag, value in common.items():
                sl.SetMetaData(tag, value)
            position = image.TransformIndexToPhysicalPoint((0, 0, k))
            sl.SetMetaData("0020|0032", "\\".join(f"{v:.10g}" for v in position))
            sl.SetMetaData("0020|0013", str(k + 1))
            sl.SetMetaData("0008|0018", _uid(key, "slice", str(k)))
            path = folder / f"slice_{k:04d}.dcm"
            writer.SetFileName(str(path))
            writer.Execute(sl)
            written.append(path)
    finally:
        # GDCM's writer switches the process to the "C" locale, which turns Python's preferred encoding into
        # ASCII (text-mode subprocess output and open() would then fail on non-ASCII text): put it back
        locale.setlocale(locale.LC_ALL, saved_locale)
    return written
