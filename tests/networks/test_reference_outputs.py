"""The optimised networks (issue 8) load the state dicts recorded before the optimisation and
reproduce the outputs recorded then: eval mode (no-grad fast paths, channels-last on CPU) and
train mode (batch statistics), 2D and 3D, and their TorchScript versions."""
from __future__ import annotations

import pytest
import torch

from .reference_cases import CASES, REFERENCE_FILE, build_case, unpack


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE_FILE)


def _load(name: str, reference: dict) -> tuple[torch.nn.Module, dict]:
    case = reference[name]
    net, shape = build_case(name)
    net.load_state_dict(unpack(case["state_dict"]), strict=True)  # same keys and shapes as before
    assert tuple(case["input"].shape) == shape
    return net, case


@pytest.mark.parametrize("name", CASES)
def test_eval_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    x = case["input"].float()
    with torch.no_grad():
        fast = net.eval()(x)
    torch.testing.assert_close(fast, case["eval"], rtol=1e-4, atol=1e-5)
    # eval mode with autograd (no fused path) gives the same values
    torch.testing.assert_close(net(x).detach(), case["eval"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_train_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    expected = case.get("train", case["eval"])
    if hasattr(net, "channels_last"):
        # FocusNet++ trains in channels-last on the CPU: a different summation order, amplified by batch
        # norms over the few voxels of the deepest maps (float64 puts both within 1e-4 of the truth)
        torch.testing.assert_close(net.train()(case["input"].float()).detach(), expected, rtol=1e-3, atol=5e-4)
        net.channels_last = False
    out = net.train()(case["input"].float())
    torch.testing.assert_close(out.detach(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["focusnetpp_tiny_2d", "focusnetpp_tiny_3d", "mistakes_fpa_2d", "mistakes_fpa_3d"])
def test_torchscript_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    scripted = torch.jit.script(net.eval())
    with torch.no_grad():
        torch.testing.assert_close(scripted(case["input"].float()), case["eval"], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["focusnetpp_tiny_2d", "mistakes_fpa_2d", "mistakes_rfna_2d"])
def test_channels_last_input_and_batch_of_one(name, reference):
    net, case = _load(name, reference)
    x = case["input"].float()
    with torch.no_grad():
        out = net.eval()(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(out, case["eval"], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(net(x[:1]), case["eval"][:1], rtol=1e-4, atol=1e-5)
