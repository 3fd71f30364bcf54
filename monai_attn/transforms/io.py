"""Loading transforms that check what they load: volumes (NIfTI through nibabel, NRRD/MHA/...
through ITK), 2D images (Pillow) and the union of per-instance mask files (DSB 2018).

Every problem found is raised as a :class:`~monai_attn.errors.BadInputError` naming the file
first (see docs/troubleshooting.md), never as a reader's internal error.
"""
from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import LoadImage, LoadImaged, MapTransform
from monai.utils import convert_to_numpy

from monai_attn.errors import BadInputError, MissingInputError

__all__ = ["LoadVolumed", "LoadImage2Dd", "LoadUnionMask", "LoadUnionMaskd", "CheckSameSized", "check_input_file",
           "check_image_2d_file", "pil_to_8bit"]

#: suffixes of volume formats, refused by the 2D loaders
VOLUME_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _paths(value) -> list[str]:
    if isinstance(value, (str, bytes, os.PathLike)):
        return [os.fsdecode(value)]
    if isinstance(value, Sequence):
        return [os.fsdecode(v) for v in value]
    raise BadInputError(repr(value)[:200], "expected a file path or a list of file paths")


def path_problem(path: str | os.PathLike) -> BadInputError | None:
    """Why ``path`` cannot be read as a file, with the true cause, or ``None`` when it is a readable file:
    "file not found" (:class:`MissingInputError`), "a broken symbolic link", "a symbolic link loop",
    "permission denied" (the file, or a folder on its path), "is a folder, not an image file"."""
    import errno
    import stat

    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.lexists(p):
            return BadInputError(p, f"a broken symbolic link (to {os.readlink(p)})", "restore its target or the file")
        return MissingInputError(p, "file not found", "check the path (in a datalist, relative paths start at its "
                                 "'root' entry, else at the JSON's folder)")
    except PermissionError:
        return BadInputError(p, "permission denied (a folder on its path cannot be entered)",
                             "give read and execute permission on the case folder (chmod u+rx)")
    except OSError as e:
        if e.errno == errno.ELOOP:
            return BadInputError(p, "a symbolic link loop (the link points back to itself)",
                                 "replace the link by the file")
        return BadInputError(p, f"cannot be read ({e.strerror})", "check the file and the disk")
    if stat.S_ISDIR(st.st_mode):
        return BadInputError(p, "is a folder, not an image file", "point to the image file inside it")
    if not os.access(p, os.R_OK):
        return BadInputError(p, "permission denied", "give read permission on the file (chmod u+r)")
    return None


def check_input_file(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path`` when it is a readable file; the :func:`path_problem` otherwise."""
    problem = path_problem(path)
    if problem is not None:
        raise problem
    return Path(path)


def _cannot_read(path: str, error: BaseException, part: str = "data") -> BadInputError:
    return BadInputError(path, f"cannot read the image {part}: not an image in a supported format, or a corrupt or "
                               f"truncated file ({type(error).__name__}: {str(error)[:200]})")


def _read_error(paths: Mapping[Hashable, list[str]], error: BaseException,
                read: Callable[[str], object]) -> BadInputError:
    """The error for a failed ``LoadImaged`` call: re-read the item's files one by one with ``read`` and
    name the first that fails; the loader's own error when each reads on its own."""
    for files in paths.values():
        for f in files:
            try:
                read(f)
            except BadInputError as e:  # a refusal that names the file itself
                return e
            except Exception as e:  # noqa: BLE001
                return _cannot_read(f, e)
    return BadInputError(", ".join(f for fs in paths.values() for f in fs),
                         f"cannot load ({type(error).__name__}: {str(error)[:300]})")


#: MONAI's ``NibabelReader`` keeps the file names of its last ``read`` on the instance (``self.filenames``) and
#: ``get_data`` zips the images with them: two threads sharing one loader (``CacheDataset`` /
#: ``VolumeSliceDataset`` with ``num_workers``) then mix their calls, and a case's four modalities come back
#: as its first file alone. Volume reads through one loader are therefore serialised.
_VOLUME_READ_LOCK = threading.Lock()


class _CheckedLoadImaged(LoadImaged):
    """``LoadImaged`` that checks each item's files before reading (:meth:`_check_files`) and what it read
    afterwards (:meth:`_check_content`); a failed read is re-tried file by file (:meth:`_read_file`) to name
    the file that cannot be read. ``check=False`` is plain ``LoadImaged``."""

    def __init__(self, keys: KeysCollection, label_keys: Sequence[str], label_values: Sequence[float] | None,
                 check: bool, **kwargs):
        super().__init__(keys, **kwargs)
        self.label_keys = (label_keys,) if isinstance(label_keys, str) else tuple(label_keys)
        self.label_values = None if label_values is None else tuple(float(v) for v in label_values)
        self.check = check

    #: held around the read (see ``_VOLUME_READ_LOCK``); readers without per-call state need none
    _read_lock = contextlib.nullcontext()

    def __call__(self, data, reader=None):
        d = dict(data)
        if not self.check:
            with self._read_lock:
                return super().__call__(d, reader)
        paths = {key: _paths(d[key]) for key in self.key_iterator(d)}
        self._check_files(paths)
        try:
            with self._read_lock:
                d = super().__call__(d, reader)
        except Exception as e:  # noqa: BLE001 - turned into a message naming the file
            from monai_attn.errors import find_bad_input

            bad = find_bad_input(e)  # e.g. a refused image mode (pil_to_8bit)
            if bad is not None:
                raise bad from None
            raise _read_error(paths, e, self._read_file) from e
        for key, files in paths.items():
            self._check_content(key, d[key], files)
        return d

    def _check_files(self, paths: Mapping[Hashable, list[str]]) -> None:
        raise NotImplementedError

    def _read_file(self, path: str) -> object:
        raise NotImplementedError

    def _check_content(self, key: Hashable, image, files: list[str]) -> None:
        raise NotImplementedError


class LoadVolumed(_CheckedLoadImaged):
    """:class:`monai.transforms.LoadImaged` that reads ``.nii``/``.nii.gz`` with ``NibabelReader``
    and every other format (NRRD, MHA, a folder holding a DICOM series, ...) with ``ITKReader``, and
    checks what it reads.

    A list of paths under one key (e.g. BraTS' four modalities) is stacked as channels in the
    list's order. All arguments are those of ``LoadImaged`` except ``reader``, plus:

    Args:
        modalities: the number of files each image (non-label) key must list (e.g. 4 for BraTS).
        label_keys: keys holding label maps (checked for ``label_values``, may be all zero).
        label_values: the values a label map may hold (``None``: not checked).
        check: run the checks below (default). Each failure raises a
            :class:`~monai_attn.errors.BadInputError` naming the file and the problem:

            * before reading the data: the file exists, its header is readable, it is a 3D volume
              (not a 2D image, not 4-D with a time axis), its voxel spacing is positive, and all
              files of the item (modalities and label) share one voxel grid;
            * after: the data could be decoded (not truncated), intensities are finite (no
              NaN/inf) and not all zero, label values are expected ones.
    """

    _read_lock = _VOLUME_READ_LOCK

    def __init__(self, keys: KeysCollection, image_only: bool = True, dtype=np.float32,
                 modalities: int | None = None, label_keys: Sequence[str] = ("label",),
                 label_values: Sequence[float] | None = None, check: bool = True, **kwargs):
        if "reader" in kwargs:
            raise ValueError("LoadVolumed chooses its readers itself; use LoadImaged to set `reader`")
        super().__init__(keys, label_keys, label_values, check, reader=None, image_only=image_only, dtype=dtype,
                         **kwargs)
        from monai.data import ITKReader, NibabelReader

        # auto-selection tries the most recently registered reader first: nibabel takes the NIfTI
        # suffixes, ITK (which accepts every suffix) takes the rest
        self.register(ITKReader())
        self.register(NibabelReader())
        self.modalities = modalities

    def _read_file(self, path: str) -> object:
        from monai_attn.data.checks import read_volume

        return read_volume(path, data=True)

    def _check_files(self, paths: Mapping[Hashable, list[str]]) -> None:
        from monai_attn.data.checks import (
            geometry_mismatches,
            is_nifti,
            majority_geometry,
            read_volume,
            shape_problem,
            spacing_problem,
        )

        grid: list = []  # (file, geometry, is NIfTI) of every file of the item
        for key, files in paths.items():
            if not files:
                raise BadInputError(f"<{key}>", "empty list of files")
            if self.modalities is not None and key not in self.label_keys and len(files) != self.modalities:
                raise BadInputError(", ".join(files), f"{len(files)} modality file(s) given under {key!r}; the "
                                    f"bundle expects {self.modalities}, one per input channel")
            for f in files:
                series = Path(f).is_dir()  # a folder holding a DICOM series (read by ITK)
                if not series:
                    check_input_file(f)
                try:
                    _, geom = read_volume(f, data=False)
                except Exception as e:  # noqa: BLE001
                    if series:
                        raise BadInputError(f, f"cannot read the DICOM series ({type(e).__name__}: {str(e)[:200]})",
                                            "a modality given as a folder must hold the slices of one DICOM "
                                            "series") from e
                    raise _cannot_read(f, e, "header") from e
                msg = shape_problem(geom.shape, 3) or spacing_problem(f, geom)
                if msg:
                    raise BadInputError(f, msg)
                grid.append((f, geom, is_nifti(f)))
        if len(grid) > 1:
            # compare with the shape most files share, so the one odd file is named, not the good ones
            _, ref_file, ref_geom = majority_geometry([(f, g) for f, g, _ in grid])
            ref_nifti = next(n for f, _, n in grid if f == ref_file)
            for f, geom, nifti in grid:
                if f == ref_file:
                    continue
                if nifti == ref_nifti:
                    found = geometry_mismatches(ref_geom, geom, Path(ref_file).name)
                else:  # NIfTI (RAS) and ITK (LPS) world coordinates are not comparable as read
                    found = [] if ref_geom.shape == geom.shape else [
                        f"shape {geom.shape} differs from {Path(ref_file).name}'s {ref_geom.shape}"]
                if found:
                    raise BadInputError(f, "; ".join(found) + " (all files of a case must share one voxel grid)",
                                        "co-register and resample the modalities onto one grid")

    def _check_content(self, key: Hashable, image, files: list[str]) -> None:
        from monai_attn.data.checks import finite_problem, value_problem, zero_problem

        arr = convert_to_numpy(image)
        channels = [arr[i] for i in range(len(files))] if len(files) > 1 else [arr]
        is_label = key in self.label_keys
        for f, a in zip(files, channels):
            msg, hint = finite_problem(a), "fix the conversion that produced them (or replace them, e.g. " \
                                          "`fslmaths in -nan out`)"
            if msg is None and not is_label:
                msg, hint = zero_problem(a), "export the volume again (an empty label is fine, a blank image is not)"
            if msg is None and is_label and self.label_values is not None:
                msg, hint = value_problem(a, self.label_values, "label"), "relabel it (BraTS: 0, 1, 2, 4; ISLES: 0, " \
                                                                          "1); `monai-attn verify` lists every such file"
            if msg:
                raise BadInputError(f, msg, hint)


#: Pillow modes read as they are: 8-bit RGB and grey, with or without alpha (``EnsureRGB`` drops the alpha
#: and repeats a grey channel)
_PIL_KEPT = ("RGB", "RGBA", "L", "LA")
#: Pillow modes converted to RGB by Pillow itself (its CMYK conversion undoes the inversion of Adobe JPEGs)
_PIL_TO_RGB = ("CMYK", "YCbCr", "LAB", "HSV", "RGBX", "RGBa")
#: Pillow's modes of 16-bit grey images (``I`` is how some versions open 16-bit PNGs)
_PIL_16BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pil_to_8bit(img):
    """A Pillow image as 8-bit RGB / grey (a ``PILReader`` ``converter``): 8-bit RGB and grey (with alpha) are
    kept; palette images are expanded through their palette (to grey when the palette is grey, so a palette
    mask stays one channel); bilevel (``1``) becomes grey 0/255; CMYK, YCbCr, LAB and HSV are converted to
    RGB by Pillow; 16-bit grey is scaled to 8 bits (``value / 257``, so 65535 -> 255; clipping at 255 would
    turn it into a constant image). Other modes (32-bit float ``F``, signed 32-bit ``I`` beyond 0..65535)
    raise :class:`~monai_attn.errors.BadInputError` naming the file."""
    from PIL import Image

    mode = img.mode
    path = getattr(img, "filename", None) or "<image>"
    if mode in _PIL_KEPT:
        return img
    if mode == "1":
        return img.convert("L")
    if mode in ("P", "PA"):
        out = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
        arr = np.asarray(out)
        grey = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
        return out.convert("LA" if out.mode == "RGBA" else "L") if grey else out
    if mode in _PIL_TO_RGB:
        return img.convert("RGB")
    if mode in _PIL_16BIT:
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise BadInputError(path, f"a 32-bit integer image (PIL mode {mode}, values {arr.min()}..{arr.max()})",
                                "export it as an 8-bit or 16-bit image (PNG, TIFF)")
        scaled = np.rint(arr.astype(np.float64) / 257.0).astype(np.uint8)
        return Image.fromarray(scaled, mode="L")
    raise BadInputError(path, f"unsupported image mode {mode} (e.g. floating point)",
                        "export it as an 8-bit or 16-bit RGB or grey image (PNG, JPEG, TIFF)")


class LoadImage2Dd(_CheckedLoadImaged):
    """:class:`monai.transforms.LoadImaged` with Pillow (``PILReader``, as the 2D pipelines) that
    checks what it reads, raising :class:`~monai_attn.errors.BadInputError` naming the file: it
    exists, is not a volume format (a 3D volume given to a 2D bundle), Pillow recognises it, has a
    single frame (not a multi-page TIFF stack), decodes completely (not truncated), and, for
    ``label_keys``, holds only ``label_values`` (e.g. ISIC masks: 0 and 255). Images of other modes than
    8-bit RGB / grey are converted by :func:`pil_to_8bit` (16-bit scaled, palette expanded, CMYK
    converted by Pillow) or refused by name.

    Args:
        keys: keys of the image paths.
        label_keys: keys holding masks.
        label_values: the values a mask may hold (``None``: not checked).
        check: run the checks (default).
        kwargs: other ``LoadImaged`` arguments (``image_only=True`` by default).
    """

    def __init__(self, keys: KeysCollection, label_keys: Sequence[str] = ("label",),
                 label_values: Sequence[float] | None = None, check: bool = True, **kwargs):
        kwargs.setdefault("image_only", True)
        kwargs.setdefault("converter", pil_to_8bit)
        super().__init__(keys, label_keys, label_values, check, reader="PILReader", **kwargs)

    def _check_files(self, paths: Mapping[Hashable, list[str]]) -> None:
        for files in paths.values():
            for f in files:
                check_image_2d_file(f)

    def _read_file(self, path: str) -> object:
        from PIL import Image

        with Image.open(path) as img:
            img.load()
            return np.asarray(pil_to_8bit(img))

    def _check_content(self, key: Hashable, image, files: list[str]) -> None:
        from monai_attn.data.checks import value_problem

        if key not in self.label_keys or self.label_values is None:
            return
        msg = value_problem(convert_to_numpy(image), self.label_values, "mask")
        if msg:
            allowed = ", ".join(f"{v:g}" for v in self.label_values)
            raise BadInputError(files[0], msg, f"masks must be binary ({allowed}); a 0/1 mask reads as empty "
                                "after scaling: save it as 0/255")


def check_image_2d_file(path: str | os.PathLike) -> None:
    """Raise :class:`BadInputError` unless ``path`` is a single-frame 2D image that Pillow recognises."""
    from PIL import Image

    p = check_input_file(path)
    if p.name.lower().endswith(VOLUME_FILE_SUFFIXES):
        raise BadInputError(p, "a 3D volume file given to a 2D bundle: expected a 2D image (PNG, JPEG, TIFF, BMP)")
    try:
        with Image.open(p) as img:
            frames = int(getattr(img, "n_frames", 1) or 1)
            size = img.size
    except Exception as e:  # noqa: BLE001
        raise _cannot_read(str(p), e, "header") from e
    if frames > 1:
        raise BadInputError(p, f"a 3D / multi-page image ({frames} frames of {size[0]}x{size[1]}) given to a 2D "
                               "bundle: expected a single 2D image")


class LoadUnionMask:
    """Load several binary mask files (e.g. one PNG per DSB nucleus) and return their union as a
    channel-first ``(1, ...)`` float32 MetaTensor in ``{0, 1}`` (metadata of the first file).

    Uses the same reader as :class:`monai.transforms.LoadImage` would (Pillow for PNG, with its
    axis order), so the mask lines up with an image loaded by ``LoadImaged``.
    """

    def __init__(self, reader=None, threshold: float = 0.0):
        extra = {"converter": pil_to_8bit} if reader == "PILReader" else {}  # 16-bit / palette masks
        self.loader = LoadImage(reader=reader, image_only=True, dtype=None, **extra)
        self.threshold = threshold

    def __call__(self, paths: str | Sequence[str]) -> MetaTensor:
        if isinstance(paths, (str, bytes)) or not isinstance(paths, Sequence):
            paths = [paths]
        if len(paths) == 0:
            raise BadInputError("<label>", "empty list of mask files")
        union = None
        first = None
        for p in paths:
            check_image_2d_file(p)
            try:
                m = self.loader(p)
            except Exception as e:  # noqa: BLE001
                raise _cannot_read(str(p), e) from e
            if m.ndim != 2:
                raise BadInputError(p, f"expected a single-channel 2D mask, got shape {tuple(m.shape)}")
            arr = convert_to_numpy(m)
            if first is None:
                first, union = m, np.zeros(arr.shape, dtype=bool)
            elif arr.shape != union.shape:
                raise BadInputError(p, f"mask shape {tuple(arr.shape)} differs from {paths[0]}'s {tuple(union.shape)}")
            np.logical_or(union, arr > self.threshold, out=union)
        meta = {k: v for k, v in first.meta.items() if k != "affine"}
        meta["original_channel_dim"] = 0
        return MetaTensor(torch.from_numpy(union[None].astype(np.float32)), affine=first.affine, meta=meta)


class LoadUnionMaskd(MapTransform):
    """Dictionary wrapper of :class:`LoadUnionMask`: each key holds a list of mask paths."""

    def __init__(self, keys: KeysCollection, reader=None, threshold: float = 0.0, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadUnionMask(reader=reader, threshold=threshold)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


class CheckSameSized(MapTransform):
    """Refuse an item whose ``keys`` (masks) differ in spatial size from ``ref_key`` (the image), as
    ``monai-attn verify`` does, instead of letting a later resize hide it (the mask would then be scored
    against the wrong pixels). Expects channel-first arrays (after ``EnsureChannelFirstd``); 2D sizes
    are given as W×H, the order Pillow reports them in. Raises :class:`~monai_attn.errors.BadInputError`
    naming the mask file."""

    def __init__(self, keys: KeysCollection, ref_key: str = "image", allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        ref = d[self.ref_key]
        ref_size = tuple(int(s) for s in ref.shape[1:])
        for key in self.key_iterator(d):
            size = tuple(int(s) for s in d[key].shape[1:])
            if size != ref_size:
                meta = getattr(d[key], "meta", {}) or {}
                ref_meta = getattr(ref, "meta", {}) or {}
                fmt = "×".join  # noqa: E731
                raise BadInputError(meta.get("filename_or_obj", f"<{key}>"),
                                    f"mask size {fmt(map(str, size))} differs from the image's {fmt(map(str, ref_size))} "
                                    f"({ref_meta.get('filename_or_obj', self.ref_key)})",
                                    "fix or remove this case (`monai-attn verify` lists every such pair); it is not "
                                    "scored after a resize")
        return d
