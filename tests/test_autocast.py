"""CPU bfloat16 inference (issue 18): ``AutocastInferer`` runs the bundles' inferer under
``torch.autocast("cpu", dtype=torch.bfloat16)`` when ``--amp true`` is given on a CPU device."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.inferers import SimpleInferer

from monai_attn.inferers import AutocastInferer, BatchedSliceInferer
from monai_attn.networks import FocusNetPP, MistakesUNet

ROOT = Path(__file__).resolve().parents[1]


def _tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "focusnetpp":
        return FocusNetPP(2, 1, 1, filters=(8, 8, 16, 16), blocks=(1, 1, 1), side_channels=(8,), head_channels=(4,),
                          fusion_channels=4, dropout=0.0).eval()
    return MistakesUNet.preset(name, 2, 1, 1, width=8).eval()


def _relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    """bf16 keeps 8 bits of mantissa (and CPUs with and without native bf16 round differently): compare the
    whole output, not single voxels (an untrained network's logits near 0 have large relative errors)."""
    return float((out - reference).norm() / reference.norm())


@pytest.mark.parametrize("name", ["focusnetpp", "fpa", "unet"])
def test_bf16_autocast_runs_the_network_in_bfloat16(name):
    net = _tiny(name)
    dtypes: list[torch.dtype] = []
    conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
    conv.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
    x = torch.randn(2, 1, 37, 45)
    with torch.no_grad():
        reference = SimpleInferer()(x, net)
        out = AutocastInferer(SimpleInferer())(x, net)
        off = AutocastInferer(SimpleInferer(), enabled=False)(x, net)
    assert dtypes == [torch.float32, torch.bfloat16, torch.float32]  # the first convolution ran in bf16
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert torch.equal(off, reference)
    # bf16 keeps 8 bits of mantissa: close to float32, not equal
    assert not torch.equal(out, reference)
    assert _relative_error(out, reference) < 0.05


def test_bf16_autocast_wraps_the_slice_inferer():
    net = _tiny("unet")
    volume = torch.randn(1, 1, 24, 20, 5)
    inner = BatchedSliceInferer(roi_size=(24, 20), spatial_dim=2, sw_batch_size=2)
    with torch.no_grad():
        reference = inner(volume, net)
        out = AutocastInferer(inner)(volume, net)
    assert out.dtype == torch.float32 and out.shape == reference.shape
    assert 0 < _relative_error(out, reference) < 0.05


def test_bad_inferer_is_a_clear_error():
    with pytest.raises(ValueError, match="inferer must be an inferer"):
        AutocastInferer("SimpleInferer")


@pytest.mark.parametrize("bundle", ["focusnetpp_isic2018", "mistakes_brats2018"])
@pytest.mark.parametrize("configs, evaluator", [(["inference.json"], "evaluator"),
                                                (["train.json", "evaluate.json"], "validate#evaluator")])
def test_bundles_autocast_on_cpu_only_with_amp(bundle, configs, evaluator):
    from monai.bundle import ConfigParser

    for amp, device, expected in ((None, "cpu", False), (True, "cpu", True), (True, "cuda", False)):
        parser = ConfigParser()
        parser.read_config([str(ROOT / "bundles" / bundle / "configs" / c) for c in configs])
        parser["device"] = f"$torch.device('{device}')"
        if amp is not None:
            parser["amp"] = amp
        inferer = parser.get_parsed_content("autocast_inferer")
        assert isinstance(inferer, AutocastInferer) and inferer.enabled is expected
        assert inferer.device_type == "cpu" and inferer.dtype == torch.bfloat16
        assert parser.get(evaluator)["inferer"] == "@autocast_inferer"
