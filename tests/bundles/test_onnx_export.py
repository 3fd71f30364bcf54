"""`python -m monai.bundle onnx_export`, exactly as each bundle's docs/README.md gives it, on a copy of the
bundle with random weights: the ONNX model runs in onnxruntime at two batch/spatial sizes other than the
example input and matches the network in eager PyTorch; with ``--network_name rfna`` the exported model
returns foreground logits (RFNA's reversed-label output negated), as the docs and metadata say."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
BUNDLES = ROOT / "bundles"
# the full-size FocusNet++ networks take minutes to export on two shared cores
SLOW = {"focusnetpp_isic2018", "focusnetpp_dsb2018", "mistakes_isles2018"}


def readme_onnx_command(bundle: str) -> list[str]:
    text = (BUNDLES / bundle / "docs" / "README.md").read_text()
    m = re.search(r"^\| export ONNX[^|]*\| `([^`]+)` \|$", text, re.M)
    assert m, f"{bundle}/docs/README.md has no 'export ONNX' row"
    tokens = shlex.split(m.group(1))
    assert tokens[:4] == ["python", "-m", "monai.bundle", "onnx_export"], tokens
    return tokens[3:]


def _network(bundle_dir: Path, key: str, overrides: dict):
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(bundle_dir / "configs" / "inference.json"))
    for k, v in overrides.items():
        parser[k] = v
    return parser.get_parsed_content(key)


def _randomised_weights(net: torch.nn.Module) -> dict:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net.state_dict()


@pytest.mark.parametrize("bundle, network_name", [
    pytest.param(b, None, marks=[pytest.mark.slow] if b in SLOW else [])
    for b in ["mistakes_brats2018", "mistakes_isles2018", "focusnetpp_isic2018", "focusnetpp_dsb2018"]
] + [pytest.param("mistakes_isles2018", "rfna", marks=pytest.mark.slow)])
def test_readme_onnx_export_runs_in_onnxruntime(bundle, network_name, tmp_path, cli):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    copy = tmp_path / bundle
    shutil.copytree(BUNDLES / bundle, copy)
    (copy / "models").mkdir(exist_ok=True)
    overrides = {"network_name": network_name} if network_name else {}
    torch.manual_seed(0)
    trained = _network(copy, "network_def", overrides).eval()  # what training saves
    torch.save(_randomised_weights(trained), copy / "models" / "model.pt")

    args = readme_onnx_command(bundle)
    if network_name:
        args += ["--network_name", network_name]
    cli.run(args, cwd=copy, timeout=3000)

    session = ort.InferenceSession(str(copy / "models" / "model.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "image" and session.get_outputs()[0].name == "pred"
    channels = inp.shape[1]
    g = torch.Generator().manual_seed(1)
    for shape in [(1, channels, 100, 75), (3, channels, 72, 90)]:  # neither the example's size nor batch
        x = torch.randn(shape, generator=g)
        (out,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            expected = trained(x)
        if network_name == "rfna":
            expected = -expected  # exported RFNA models return foreground logits
        assert out.shape == tuple(expected.shape)
        torch.testing.assert_close(torch.from_numpy(out), expected, rtol=1e-4, atol=1e-4)
