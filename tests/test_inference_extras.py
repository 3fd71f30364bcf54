"""Inference extras (monai_attn.workflows.attention): attention maps and flip TTA written beside the
predictions, in the input's geometry, through the same pre-processing inverse as the predictions."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import decollate_batch, list_data_collate
from PIL import Image

from monai_attn.inferers import BatchedSliceInferer
from monai_attn.networks import MistakesUNet, attention_maps
from monai_attn.workflows import (
    InferenceOutputs,
    SaveInferenceExtrasd,
    flip_tta,
    image_inference_preprocessing,
    inference_network,
    segmentation_postprocessing,
    volume_inference_preprocessing,
    vote_entropy,
)

pytestmark = pytest.mark.usefixtures("one_thread")


class _Tilted(torch.nn.Module):
    """logit = x + slope · (column index − centre): flipping the columns changes the prediction near the edge."""

    def __init__(self, slope: float) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x):
        cols = torch.arange(x.shape[-1], dtype=x.dtype) - (x.shape[-1] - 1) / 2
        return x[:, :1] + self.slope * cols


def _entropy_by_hand(q: np.ndarray) -> np.ndarray:
    out = np.zeros_like(q)
    m = (q > 0) & (q < 1)
    out[m] = -(q[m] * np.log2(q[m]) + (1 - q[m]) * np.log2(1 - q[m]))
    return out


def test_vote_entropy_by_hand():
    votes = torch.tensor([[0.9, 0.1, 0.8, 0.2], [0.7, 0.2, 0.1, 0.3], [0.6, 0.3, 0.9, 0.4], [0.8, 0.4, 0.2, 0.9]])
    h = vote_entropy(votes[:, None, None])  # 4 augmentations, 4 voxels
    q = np.array([4, 0, 2, 1]) / 4
    np.testing.assert_allclose(h.flatten().numpy(), _entropy_by_hand(q), rtol=1e-6)
    assert h.flatten()[0] == 0 and h.flatten()[1] == 0 and h.flatten()[2] == 1


def test_flip_tta_entropy_zero_where_flips_agree():
    net = _Tilted(slope=0.5)
    x = torch.randn(2, 1, 6, 8)
    mean_logits, entropy = flip_tta(net, x)
    # by hand: the four flips, flipped back
    probs = []
    for dims in [(), (2,), (3,), (2, 3)]:
        y = net(torch.flip(x, dims)) if dims else net(x)
        probs.append(torch.sigmoid(torch.flip(y, dims) if dims else y))
    p = torch.stack(probs)
    torch.testing.assert_close(torch.sigmoid(mean_logits), p.mean(0), rtol=1e-5, atol=1e-6)
    agree = ((p > 0.5).all(0) | (p <= 0.5).all(0))
    assert agree.any() and (~agree).any()
    assert (entropy[agree] == 0).all()
    np.testing.assert_allclose(entropy.numpy(), _entropy_by_hand((p > 0.5).float().mean(0).numpy()), rtol=1e-6)
    assert (entropy[~agree] > 0).all()


def test_flip_tta_of_a_flip_equivariant_network_is_the_network():
    net = torch.nn.Conv3d(2, 1, 1)
    x = torch.randn(1, 2, 4, 5, 6)
    with torch.no_grad():
        mean_logits, entropy = flip_tta(net, x)
        torch.testing.assert_close(mean_logits, net(x), rtol=1e-4, atol=1e-4)
    assert entropy.shape == (1, 1, 4, 5, 6) and (entropy == 0).all()  # 8 flips, all agree


def test_inference_network_costs_nothing_unless_asked():
    net = MistakesUNet(2, 2, 1, width=4, attention="fpa")
    assert inference_network(net) is net
    assert inference_network(net, "false", "encoder1.fpa", "none") is net
    wrapped = inference_network(net, "true", None, "flips")
    assert isinstance(wrapped, InferenceOutputs)
    assert wrapped.extras == ["entropy", "attention_encoder3.fpa"]  # default: the deepest encoder block
    assert inference_network(net, True, "all").attention_blocks == list(attention_maps(net, torch.zeros(1, 2, 16, 16)))
    assert inference_network(net, True, "encoder1.fpa, bridge.fpa").attention_blocks == ["encoder1.fpa", "bridge.fpa"]
    with pytest.raises(ValueError, match="encoder1.fpa"):
        inference_network(net, True, "encoder9.fpa")
    with pytest.raises(ValueError, match="tta"):
        inference_network(net, tta="rotations")
    with pytest.raises(ValueError, match="no attention block"):
        inference_network(MistakesUNet(2, 2, 1, width=4), True)


def test_inference_outputs_channels_are_prediction_entropy_maps():
    net = MistakesUNet(2, 2, 1, width=4, attention="cbam").eval()
    x = torch.randn(2, 2, 16, 16)
    wrapped = InferenceOutputs(net, ["encoder2.cbam", "bridge.cbam"], tta="flips")
    with torch.no_grad():
        out = wrapped(x)
        logits = net(x)
    assert out.shape == (2, 4, 16, 16)
    pred, extras = wrapped.split(out, dim=1)
    torch.testing.assert_close(pred, flip_tta(net, x)[0])
    maps = attention_maps(net, x, ["encoder2.cbam", "bridge.cbam"])
    torch.testing.assert_close(extras["attention_encoder2.cbam"], maps["encoder2.cbam"])
    torch.testing.assert_close(extras["attention_bridge.cbam"], maps["bridge.cbam"])
    assert torch.isfinite(extras["entropy"]).all()
    # without TTA the prediction channels are the network's logits
    plain = InferenceOutputs(net, ["bridge.cbam"])
    with torch.no_grad():
        torch.testing.assert_close(plain.split(plain(x), dim=1)[0], logits)


# ------------------------------------------------------------------------------- files in the input's geometry

#: anisotropic and axis-permuted (LPS-like, slices along the first axis), as in the bundle geometry test
AFFINE = np.array([[0.0, -0.9, 0.0, 40.0], [0.0, 0.0, -0.8, 30.0], [5.0, 0.0, 0.0, -20.0], [0.0, 0.0, 0.0, 1.0]])


def _write_case(folder: Path, shape) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for mod in ("flair", "t1", "t1ce", "t2"):
        vol = (1.0 + rng.standard_normal(shape)).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, AFFINE), folder / f"{folder.name}_{mod}.nii.gz")


def _run_volume(tmp_path: Path, net, **kwargs) -> tuple[Path, dict]:
    shape = (6, 20, 13)
    case = tmp_path / "in" / "case_a"
    _write_case(case, shape)
    item = {"image": [str(case / f"case_a_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")]}
    pre = volume_inference_preprocessing((16, 16), in_channels=4)
    wrapped = inference_network(net, **kwargs)
    batch = list_data_collate([pre(item)])
    with torch.no_grad():
        batch["pred"] = BatchedSliceInferer((16, 16), spatial_dim=2, sw_batch_size=4)(batch["image"], wrapped)
    out = tmp_path / "pred"
    save = SaveInferenceExtrasd(wrapped, pre, str(out), "brats2018")
    [data] = [save(d) for d in decollate_batch(batch)]
    data = segmentation_postprocessing(label_key=None)(data)
    return out, data


def test_volume_attention_and_entropy_have_the_inputs_shape_and_affine(tmp_path):
    net = MistakesUNet(2, 4, 1, width=4, attention="fpa").eval()
    out, data = _run_volume(tmp_path, net, save_attention=True, attention_blocks="encoder3.fpa,bridge.fpa",
                            tta="flips")
    assert data["pred"].shape[0] == 1  # the extras were split off the prediction
    for stem in ("case_a_attention_encoder3_fpa", "case_a_attention_bridge_fpa", "case_a_entropy"):
        img = nib.load(out / f"{stem}.nii.gz")
        assert img.shape == (6, 20, 13), stem
        np.testing.assert_allclose(img.affine, AFFINE, atol=1e-5)
        values = np.asarray(img.dataobj)
        assert img.get_data_dtype() == np.float32 and np.isfinite(values).all() and values.max() > 0
        if "entropy" in stem:
            assert values.min() >= 0 and values.max() <= 1
        else:
            assert values.max() <= 1
    summary = json.loads((out / "uncertainty.json").read_text())
    case = summary["cases"]["case_a"]
    assert case["voxels_inside"] + case["voxels_outside"] == 6 * 20 * 13


def test_volume_attention_map_is_the_slices_map(tmp_path):
    """The written volume holds, slice by slice, attention_maps of the network on the pre-processed slice."""
    net = MistakesUNet(2, 4, 1, width=4, attention="gate").eval()
    out, _ = _run_volume(tmp_path, net, save_attention=True)  # default block: decoder2.gate
    written = np.asarray(nib.load(out / "case_a_attention_decoder2_gate.nii.gz").dataobj)
    pre = volume_inference_preprocessing((16, 16), in_channels=4)
    case = tmp_path / "in" / "case_a"
    image = pre({"image": [str(case / f"case_a_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")]})["image"]
    # pre-processing: orientation to RAS (a permutation/flip here) then an in-plane pad to 16×16; undo by hand
    slices = torch.movedim(image.as_tensor(), 3, 0)  # (D, C, 16, 16)
    maps = attention_maps(net, slices, "decoder2.gate")["decoder2.gate"][:, 0]  # (D, 16, 16)
    ras = torch.movedim(maps, 0, 2).numpy()  # (16, 16, D) in the padded RAS frame
    ornt = nib.orientations.io_orientation(AFFINE)
    ras_shape = [int(s) for s in np.array((6, 20, 13))[ornt[:, 0].astype(int).argsort()]]
    for d, size in enumerate(ras_shape[:2]):  # undo the centred in-plane pad (size < 16) or crop (size > 16)
        if size < 16:
            ras = np.take(ras, range((16 - size) // 2, (16 - size) // 2 + size), axis=d)
        elif size > 16:
            before = [(0, 0)] * 3
            before[d] = ((size - 16) // 2, size - 16 - (size - 16) // 2)
            ras = np.pad(ras, before)
    cropped = ras
    back = nib.orientations.apply_orientation(cropped, nib.orientations.ornt_transform(
        nib.orientations.axcodes2ornt("RAS"), ornt))
    np.testing.assert_allclose(written, back, atol=1e-5)


def test_image_attention_heat_map_has_the_files_size(tmp_path):
    rgb = (np.random.default_rng(0).random((30, 41, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "ISIC_0000001.png")
    pre = image_inference_preprocessing((32, 32))
    from monai_attn.networks import FocusNetPP

    net = FocusNetPP(2, 3, 1, filters=(4, 8, 8, 8), blocks=(1, 1, 1), side_channels=(4,), head_channels=(4,),
                     fusion_channels=4).eval()
    wrapped = inference_network(net, save_attention=True, tta="flips")
    assert wrapped.attention_blocks == ["encoder1.0.group_attention"]
    batch = list_data_collate([pre({"image": str(tmp_path / "ISIC_0000001.png")})])
    with torch.no_grad():
        batch["pred"] = wrapped(batch["image"])
    out = tmp_path / "pred"
    [data] = [SaveInferenceExtrasd(wrapped, pre, str(out), "isic2018")(d) for d in decollate_batch(batch)]
    for stem in ("ISIC_0000001_attention_encoder1_0_group_attention", "ISIC_0000001_entropy"):
        picture = np.asarray(Image.open(out / f"{stem}.png"))
        assert picture.shape == (30, 41, 3) and picture.dtype == np.uint8
    assert data["pred"].shape == (1, 32, 32)


def test_no_extras_is_a_pass_through(tmp_path):
    net = torch.nn.Conv2d(4, 1, 1)
    data = {"pred": torch.zeros(1, 4, 4)}
    assert SaveInferenceExtrasd(inference_network(net), None, str(tmp_path), "brats2018")(data) is data
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("dims", list(itertools.product([2, 3], [False, True])))
def test_entropy_of_a_flip_symmetric_network_is_zero(dims):
    spatial, amp = dims
    net = torch.nn.Conv2d(2, 1, 1) if spatial == 2 else torch.nn.Conv3d(2, 1, 1)
    x = torch.randn(1, 2, *([6] * spatial))
    wrapped = InferenceOutputs(net, tta="flips")
    with torch.no_grad(), torch.autocast("cpu", enabled=amp, dtype=torch.bfloat16):
        _, extras = wrapped.split(wrapped(x), dim=1)
    assert extras["entropy"].dtype == torch.float32 and (extras["entropy"] == 0).all()
