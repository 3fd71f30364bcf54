"""Overlays: the colour coding of a saved PNG matches the masks it was made from; curves from TensorBoard logs."""
from __future__ import annotations

import numpy as np
from PIL import Image

from monai_attn.visualize import MISTAKE_COLOURS, mistake_overlay, plot_curves, read_scalars, save_overlay


def _masks():
    truth = np.zeros((20, 24), bool)
    truth[4:12, 4:12] = True
    pred = np.zeros_like(truth)
    pred[8:16, 8:16] = True
    return truth, pred


def test_overlay_colours_match_masks():
    truth, pred = _masks()
    image = np.random.default_rng(0).random((20, 24))
    rgb = mistake_overlay(image, truth, pred)
    for name, mask in (("tp", truth & pred), ("fp", pred & ~truth), ("fn", truth & ~pred)):
        assert mask.any()
        assert (rgb[mask] == MISTAKE_COLOURS[name]).all(), name
    untouched = ~(truth | pred)
    assert (rgb[untouched][:, 0] == rgb[untouched][:, 1]).all()  # still grey


def test_saved_png_decodes_to_the_masks(tmp_path):
    truth, pred = _masks()
    image = np.linspace(0, 1, 20 * 24).reshape(20, 24)
    path = save_overlay(tmp_path / "o.png", image, truth, pred)
    png = np.asarray(Image.open(path).convert("RGB"))
    right = png[:, 2 * (24 + 4):]  # third panel
    decoded_fp = (right == MISTAKE_COLOURS["fp"]).all(-1)
    decoded_fn = (right == MISTAKE_COLOURS["fn"]).all(-1)
    decoded_tp = (right == MISTAKE_COLOURS["tp"]).all(-1)
    np.testing.assert_array_equal(decoded_fp, pred & ~truth)
    np.testing.assert_array_equal(decoded_fn, truth & ~pred)
    np.testing.assert_array_equal(decoded_tp, truth & pred)
    middle = png[:, 24 + 4: 2 * 24 + 4]
    np.testing.assert_array_equal((middle == MISTAKE_COLOURS["tp"]).all(-1), truth)


def test_curves_from_tensorboard_logs(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step in range(1, 6):
        writer.add_scalar("train_loss", 1.0 / step, step)
        writer.add_scalar("val_mean_dice", 0.1 * step, step)
    writer.close()
    series = read_scalars(tmp_path)
    np.testing.assert_allclose([v for _, v in series["train_loss"]], [1.0, 0.5, 1 / 3, 0.25, 0.2], rtol=1e-6)
    assert [s for s, _ in series["val_mean_dice"]] == [1, 2, 3, 4, 5]
    out = plot_curves(series, tmp_path / "curves.png")
    assert out.is_file() and Image.open(out).size[0] > 100
    assert plot_curves({}, tmp_path / "none.png") is None


def test_attention_panel_holds_image_mistakes_and_heat_map(tmp_path):
    from monai_attn.visualize import heat_map, save_attention_panel

    rng = np.random.default_rng(0)
    image, attention = rng.random((12, 10)), rng.random((12, 10))
    truth = np.zeros((12, 10), bool)
    truth[3:8, 2:6] = True
    pred = np.roll(truth, 1, axis=1)
    path = save_attention_panel(tmp_path / "p.png", image, truth, pred, attention)
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert rgb.shape == (12, 3 * 10 + 2 * 4, 3)
    np.testing.assert_array_equal(rgb[:, 14:24], mistake_overlay(image, truth, pred))
    np.testing.assert_array_equal(rgb[:, 28:38], heat_map(attention))
    # the heat map runs from the colour map's start (0) to its end (1); maps above 1 are scaled by their maximum
    ends = heat_map(np.array([[0.0, 1.0]]))
    assert not np.array_equal(ends[0, 0], ends[0, 1])
    np.testing.assert_array_equal(heat_map(np.array([[0.0, 4.0]])), ends)


def test_overlay_saver_draws_the_deepest_encoder_attention_of_the_shown_slice(tmp_path):
    import torch

    from monai_attn.networks import MistakesUNet, attention_maps
    from monai_attn.visualize import OverlaySaver, heat_map

    torch.manual_seed(0)
    net = MistakesUNet(2, 2, 1, width=4, attention="fpa").eval()
    image = torch.randn(2, 16, 16, 5)  # (C, H, W, D) volume, sliced along the last axis
    label = torch.zeros(1, 16, 16, 5)
    label[0, 4:9, 4:9, 3] = 1  # slice 3 holds the truth
    saver = OverlaySaver(str(tmp_path / "overlays"), network=net)
    saver.save_item({"image": image, "label": label, "pred": label.roll(1, 1)}, "case_x")
    panel = tmp_path / "attention" / "case_x_attention_encoder3_fpa.png"
    assert panel.is_file() and (tmp_path / "overlays" / "case_x.png").is_file()
    expected = attention_maps(net, image[None, ..., 3], "encoder3.fpa")["encoder3.fpa"][0, 0].numpy()
    rgb = np.asarray(Image.open(panel).convert("RGB"))
    np.testing.assert_array_equal(rgb[16:, 2 * (16 + 4):], heat_map(expected.T))  # below the 16-pixel title
    # a network without attention blocks draws no panel
    OverlaySaver(str(tmp_path / "o2"), network=MistakesUNet(2, 2, 1, width=4)).save_item(
        {"image": image, "label": label, "pred": label}, "case_y")
    assert not (tmp_path / "attention" / "case_y_attention_encoder3_fpa.png").exists()
    assert (tmp_path / "o2" / "case_y.png").is_file()
