"""2D images of every Pillow mode are read as the 8-bit RGB the networks were trained on, or refused by
name: 16-bit grey is scaled (not clipped into a constant image), palette images are expanded, CMYK is
converted (not read as inverted RGB), alpha is dropped, grey is repeated; a mask of another size than its
image is refused instead of being scored after a resize."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from monai_attn.errors import BadInputError, find_bad_input
from monai_attn.transforms import isic2018_transforms
from monai_attn.workflows import image_inference_preprocessing

RGB = (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8)


def _load(path):
    return image_inference_preprocessing((24, 20))({"image": str(path)})["image"].numpy()  # (W, H): no resize


def _expected(rgb):  # the pipeline's reference: channel first, (W, H) as Pillow indexes, scaled to [0, 1]
    return rgb.transpose(2, 1, 0).astype(np.float32) / 255.0


@pytest.mark.parametrize("mode, suffix", [("RGB", "png"), ("RGBA", "png"), ("P", "png"), ("CMYK", "tif"),
                                          ("L", "png"), ("I;16", "png"), ("1", "png")])
def test_every_mode_reads_as_the_rgb_it_shows(tmp_path, mode, suffix):
    path = tmp_path / f"img.{suffix}"
    if mode == "I;16":
        grey = (np.random.default_rng(1).random((20, 24)) * 65535).astype(np.uint16)
        Image.fromarray(grey).save(path)
        reference = np.rint(grey / 257.0).astype(np.uint8)  # 16 -> 8 bits: 65535 -> 255, not clipped at 255
        expected = _expected(np.repeat(reference[..., None], 3, axis=2))
        assert Image.open(path).mode == "I;16"
    else:
        img = Image.fromarray(RGB).convert(mode)
        img.save(path)
        shown = np.asarray(Image.open(path).convert("RGB"))  # Pillow's own rendering of the file as RGB
        expected = _expected(shown)
    got = _load(path)
    assert got.shape == (3, 24, 20)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    if mode == "CMYK":  # the old reading took C, M, Y as R, G, B: inverted colours
        assert np.abs(got - _expected(RGB)).max() < 0.02
    if mode == "I;16":
        assert got.std() > 0.2  # the old reading clipped every value above 255: a constant image


def test_a_float_image_is_refused_by_name(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.random.default_rng(0).random((20, 24)).astype(np.float32)).save(path)
    with pytest.raises(Exception) as info:
        _load(path)
    bad = find_bad_input(info.value)
    assert isinstance(bad, BadInputError) and bad.path == str(path) and "unsupported image mode F" in bad.problem


@pytest.mark.parametrize("mode", ["L", "1", "I;16", "P"])
def test_masks_of_any_mode_read_as_0_255(tmp_path, mode):
    image, mask = tmp_path / "img.png", tmp_path / "mask.png"
    Image.fromarray(RGB).save(image)
    m = np.zeros((20, 24), np.uint8)
    m[5:10, 5:12] = 255
    if mode == "I;16":
        Image.fromarray(m.astype(np.uint16) * 257).save(mask)
    else:
        Image.fromarray(m).convert(mode).save(mask)
    out = isic2018_transforms(train=False, image_size=(24, 20))({"image": str(image), "label": str(mask)})
    assert float(out["label"].sum()) == 35.0


def test_a_mask_of_another_size_is_refused_not_resized(tmp_path):
    image, mask = tmp_path / "img.png", tmp_path / "mask.png"
    Image.fromarray(RGB).save(image)
    Image.fromarray(np.zeros((21, 24), np.uint8)).save(mask)
    with pytest.raises(Exception) as info:
        isic2018_transforms(train=False, image_size=(16, 16))({"image": str(image), "label": str(mask)})
    bad = find_bad_input(info.value)
    assert bad is not None and bad.path == str(mask)
    assert bad.problem == f"mask size 24×21 differs from the image's 24×20 ({image})"
