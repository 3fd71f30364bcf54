"""Workflow functions used by the 2D (FocusNet++) bundles: image-only inference preprocessing and the
best-checkpoint bookkeeping that survives a resumed run."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.handlers import CheckpointSaver
from monai.transforms import Invertd
from PIL import Image

from monai_attn.transforms import dsb2018_transforms, isic2018_transforms
from monai_attn.workflows import image_inference_preprocessing, key_metric_tracker


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    h, w = 45, 70  # not square, odd: catches transposed axes
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    grey = rng.integers(0, 256, (h, w), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    mask[10:30, 20:50] = 255
    return {
        "rgb": _write(tmp_path / "rgb.png", rgb), "rgba": _write(tmp_path / "rgba.png", rgba),
        "grey": _write(tmp_path / "grey.png", grey), "mask": _write(tmp_path / "mask.png", mask),
        "shape": (h, w),
    }


@pytest.mark.parametrize("size", [(256, 256), (64, 48)])
def test_inference_preprocessing_matches_the_training_pipelines(images, size):
    pre = image_inference_preprocessing(size)
    isic = isic2018_transforms(train=False, image_size=size)({"image": images["rgb"], "label": images["mask"]})
    got = pre({"image": images["rgb"]})["image"]
    assert got.shape == (3, *size) and got.dtype == torch.float32
    torch.testing.assert_close(got.as_tensor(), isic["image"].as_tensor())
    for kind in ("rgba", "grey"):  # DSB: alpha dropped, grey repeated to RGB
        dsb = dsb2018_transforms(train=False, image_size=size)({"image": images[kind], "label": [images["mask"]]})
        got = pre({"image": images[kind]})["image"]
        torch.testing.assert_close(got.as_tensor(), dsb["image"].as_tensor())
    assert float(got.min()) >= 0.0 and float(got.max()) <= 1.0


def test_inference_preprocessing_is_inverted_to_the_original_resolution(images):
    pre = image_inference_preprocessing((64, 64))
    data = pre({"image": images["grey"]})
    data["pred"] = data["image"][:1].clone()  # a one-channel "prediction" on the 64×64 grid
    out = Invertd("pred", pre, orig_keys="image", nearest_interp=False)(data)
    h, w = images["shape"]
    assert out["pred"].shape == (1, w, h)  # Pillow's (W, H) order, which SaveSegmentationd writes back as H×W


def _evaluate(saver: CheckpointSaver, score: float) -> None:
    """One validation 'epoch' whose key metric ``val_loss`` is ``score``, with ``saver`` attached."""
    engine = Engine(lambda e, b: None)

    @engine.on(Events.EPOCH_COMPLETED)
    def _metric(e):
        e.state.metrics["val_loss"] = score

    saver.attach(engine)
    engine.run([0], max_epochs=1)


def _best_saver(folder, net) -> CheckpointSaver:
    return CheckpointSaver(str(folder), {"model": net}, save_key_metric=True, key_metric_name="val_loss",
                           key_metric_negative_sign=True, key_metric_filename="model.pt")


def test_key_metric_tracker_keeps_the_best_checkpoint_across_a_resume(tmp_path):
    net = torch.nn.Conv2d(1, 1, 1)
    first = _best_saver(tmp_path, net)
    _evaluate(first, 0.5)
    best = tmp_path / "model.pt"
    assert best.is_file()
    state = key_metric_tracker(first).state_dict()  # what attach_training_state checkpoints
    saved_weights = torch.load(best, weights_only=True)["weight"].clone()

    # a resumed run: new saver, tracker restored, a worse validation loss must not replace model.pt
    with torch.no_grad():
        net.weight.fill_(7.0)
    resumed = _best_saver(tmp_path, net)
    key_metric_tracker(resumed).load_state_dict(state)
    _evaluate(resumed, 0.9)
    torch.testing.assert_close(torch.load(best, weights_only=True)["weight"], saved_weights)
    # a better one does
    _evaluate(resumed, 0.1)
    assert float(torch.load(best, weights_only=True)["weight"].flatten()[0]) == 7.0

    # without the restored tracker, the worse score would have overwritten the best model
    forgetful = _best_saver(tmp_path, torch.nn.Conv2d(1, 1, 1))
    _evaluate(forgetful, 0.9)
    assert float(torch.load(best, weights_only=True)["weight"].flatten()[0]) != 7.0


def test_key_metric_tracker_needs_a_key_metric_saver(tmp_path):
    with pytest.raises(ValueError, match="save_key_metric"):
        key_metric_tracker(CheckpointSaver(str(tmp_path), {"model": torch.nn.Conv2d(1, 1, 1)}, save_final=True))
