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
