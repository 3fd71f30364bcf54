"""The optimised networks (issue 8) load the state dicts recorded before the optimisation and
reproduce the outputs recorded then: eval mode (no-grad fast paths, channels-last on CPU) and
train mode (batch statistics), 2D and 3D, and their TorchScript versions.

Tolerances. The recorded outputs are float32 results of one CPU's kernels; another CPU (another
``ATEN_CPU_CAPABILITY``: default, AVX2, AVX-512, or another vendor's BLAS blocking) sums in another
order, so its float32 results differ from them by up to twice the float32 rounding error of the network.
Comparing float32 with float32 therefore spends the error budget twice and fails on some CPUs (an AMD
AVX-512 machine: 1.16e-5 against atol 1e-5). Instead, each float32 output (the recorded one, and
today's on this CPU) is compared with today's network run in float64, whose own rounding (~1e-15) is
the same on every CPU. That checks both "the function is unchanged" (recorded vs float64) and "this
CPU computes it accurately" (today's float32 vs float64), each against one rounding error:

- eval mode: unit roundoff u = 2**-24 ~ 6e-8 per operation; ~20 layers of sums of up to ~600 terms
  (3x3x3 kernels x 24 channels) with |values| ~ 1 give |error| <~ 20 * sqrt(600) * u ~ 3e-5 at most
  (random-walk accumulation); measured worst case over default/AVX2/AVX-512: 1.0e-5.
- train mode: batch normalisation divides by the batch standard deviation of the deepest maps (a few
  voxels per channel), which amplifies the error by up to ~1/std; measured worst case 3.9e-5.
The bounds below are these worst cases with a ~5x margin, and stay far below any real change in the
networks' function (a changed layer moves outputs by >= 1e-2 here).
"""
from __future__ import annotations

import copy

import pytest
import torch

from .reference_cases import CASES, REFERENCE_FILE, build_case, unpack

EVAL_TOL = dict(rtol=1e-4, atol=5e-5)
TRAIN_TOL = dict(rtol=1e-4, atol=2e-4)
# FocusNet++ trains in channels-last on the CPU: another summation order in every convolution, amplified by
# the batch norms as above (float64 puts both layouts within 1e-4 of the truth)
CHANNELS_LAST_TRAIN_TOL = dict(rtol=1e-3, atol=5e-4)


@pytest.fixture(scope="module")
def reference():
    return torch.load(REFERENCE_FILE)


def _load(name: str, reference: dict) -> tuple[torch.nn.Module, dict]:
    case = reference[name]
    net, shape = build_case(name)
    net.load_state_dict(unpack(case["state_dict"]), strict=True)  # same keys and shapes as before
    assert tuple(case["input"].shape) == shape
    return net, case


def _float64(net: torch.nn.Module, x: torch.Tensor, train: bool) -> torch.Tensor:
    """``net`` on ``x`` in float64 on the plain (reference) path: a copy, so the caller's network (and its
    batch-norm running statistics) is left as it was."""
    ref = copy.deepcopy(net).double().train(train)
    if hasattr(ref, "channels_last"):
        ref.channels_last = False
    with torch.enable_grad():  # autograd on: the fused inference paths stay off
        return ref(x.double()).detach()


def _assert_close(actual: torch.Tensor, expected64: torch.Tensor, tol: dict) -> None:
    torch.testing.assert_close(actual.detach().double(), expected64, **tol)


@pytest.mark.parametrize("name", CASES)
def test_eval_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    x = case["input"].float()
    exact = _float64(net, x, train=False)
    _assert_close(case["eval"], exact, EVAL_TOL)  # the function is unchanged
    with torch.no_grad():
        fast = net.eval()(x)
    _assert_close(fast, exact, EVAL_TOL)
    # eval mode with autograd (no fused path) gives the same values
    _assert_close(net(x), exact, EVAL_TOL)


@pytest.mark.parametrize("name", CASES)
def test_train_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    x = case["input"].float()
    exact = _float64(net, x, train=True)
    _assert_close(case.get("train", case["eval"]), exact, TRAIN_TOL)  # the function is unchanged
    if hasattr(net, "channels_last"):
        _assert_close(net.train()(x), exact, CHANNELS_LAST_TRAIN_TOL)
        net.channels_last = False
    _assert_close(net.train()(x), exact, TRAIN_TOL)


@pytest.mark.parametrize("name", ["focusnetpp_tiny_2d", "focusnetpp_tiny_3d", "mistakes_fpa_2d", "mistakes_fpa_3d"])
def test_torchscript_outputs_unchanged(name, reference):
    net, case = _load(name, reference)
    exact = _float64(net, case["input"], train=False)
    scripted = torch.jit.script(net.eval())
    with torch.no_grad():
        _assert_close(scripted(case["input"].float()), exact, EVAL_TOL)


@pytest.mark.parametrize("name", ["focusnetpp_tiny_2d", "mistakes_fpa_2d", "mistakes_rfna_2d"])
def test_channels_last_input_and_batch_of_one(name, reference):
    net, case = _load(name, reference)
    x = case["input"].float()
    exact = _float64(net, x, train=False)
    with torch.no_grad():
        out = net.eval()(x.contiguous(memory_format=torch.channels_last))
        _assert_close(out, exact, EVAL_TOL)
        _assert_close(net(x[:1]), exact[:1], EVAL_TOL)
