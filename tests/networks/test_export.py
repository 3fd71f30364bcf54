"""Shared model tests (in the manner of segmentation_models_pytorch's ``tests/models/base.py``): every
registered network (FocusNet++, its lite version and every :data:`MISTAKES_PRESETS` entry; a new preset
gets these tests by being registered) keeps the input's size for odd sizes, and exports with TorchScript,
``torch.jit.trace``, ``torch.export`` (dynamic batch and spatial sizes, under ``torch.no_grad``) and
``torch.onnx.export`` (dynamo), whose model onnxruntime runs at two spatial sizes other than the traced one
with the eager outputs. The eager-only fast paths (oneDNN fused operators, weight caches, shifted
convolutions, channels-last) never reach an exported, traced or compiled graph.

Networks are tiny (4-8 channels, reduced FocusNet++ depth where the constructor allows), 2D."""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from monai_attn.networks import MISTAKES_PRESETS, FocusNetPP, MistakesUNet, ResidualGroupAttentionBlock
from monai_attn.networks.utils import eager_fast_paths

from .reference_cases import randomise_norm_statistics

TINY_FOCUS = dict(filters=(4, 4, 8, 8, 8, 8), blocks=(1, 1, 1, 1, 1), side_channels=(4, 4, 4), head_channels=(4,),
                  fusion_channels=4, dropout=0.0)


def _focusnetpp() -> torch.nn.Module:
    return FocusNetPP(2, 1, 1, **TINY_FOCUS)


def _lite() -> torch.nn.Module:
    return FocusNetPP.lite(2, 1, 1)  # the DSB bundle's network as it is (1.85 M parameters)


def _preset(name: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        kwargs = {"attention_kwargs": {"reduction": 2}} if name in ("cscunet", "cbamunet", "gcnunet") else {}
        return MistakesUNet.preset(name, 2, 1, 1, width=4, **kwargs)

    return build


#: name -> constructor of a tiny 1-channel 2D version
NETWORKS: dict[str, Callable[[], torch.nn.Module]] = {
    "focusnetpp": _focusnetpp,
    "focusnetpp_lite": _lite,
    **{name: _preset(name) for name in MISTAKES_PRESETS},
}
#: spatial sizes: traced/exported at the first, checked at the others (none a multiple of 8 or 16). RFNA's
#: attention branch needs an input side larger than 64, and an exported RFNA needs both (its branch at the
#: bridge is then larger than one voxel along both axes, as at export; torch.export specialises size 1)
SIZES = {name: [(72, 80), (100, 75), (90, 130)] if name == "rfna" else [(48, 40), (37, 50), (21, 66)]
         for name in NETWORKS}
#: exports that take long on two cores (the full lite network): slow
SLOW = {"focusnetpp_lite"}
#: the ONNX round trip (export, translation, onnxruntime) takes 10-60 s per network on two shared cores: the
#: default run covers each kind of block once (residual group attention, the plain backbone, FPA, RFNA, the
#: attention gate); the post-convolution attentions and the width/dilation variants of the backbone are slow
ONNX_SLOW = SLOW | {"wunet", "d6unet", "d9unet", "cscunet", "cbamunet", "gcnunet"}


def _params(names=NETWORKS, slow=SLOW):
    return [pytest.param(n, marks=[pytest.mark.slow] if n in slow else []) for n in names]


pytestmark = pytest.mark.usefixtures("one_thread_quiet")


def _network(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = NETWORKS[name]()
    with torch.no_grad():
        randomise_norm_statistics(net)  # folded batch norms (eager fast path) differ from the plain ones
    return net.eval()


def _inputs(name: str) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn((2 if i == 0 else 1 + i % 2, 1) + size, generator=g) for i, size in enumerate(SIZES[name])]


_EXPORTED: dict[str, torch.export.ExportedProgram] = {}


def _exported(name: str, net: torch.nn.Module) -> torch.export.ExportedProgram:
    """``torch.export`` under ``torch.no_grad`` with dynamic batch and spatial sizes (cached per network)."""
    if name not in _EXPORTED:
        dyn = torch.export.Dim.DYNAMIC
        with torch.no_grad():
            _EXPORTED[name] = torch.export.export(net, (_inputs(name)[0],), dynamic_shapes={"x": {0: dyn, 2: dyn, 3: dyn}})
    return _EXPORTED[name]


def _ops(graph: torch.fx.Graph) -> set[str]:
    return {str(n.target) for n in graph.nodes if n.op in ("call_function", "call_method")}


# ------------------------------------------------------------------------------------------- the switch


def test_eager_fast_paths_switch():
    seen: list[bool] = []

    class Probe(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(eager_fast_paths())
            return x + 1

    x = torch.zeros(1, 1, 4, 4)
    Probe()(x)
    assert seen == [True]
    for export in (lambda m: torch.jit.trace(m, x, check_trace=False), lambda m: torch.export.export(m, (x,)),
                   lambda m: torch.compile(m, backend="eager")(x)):
        seen.clear()
        export(Probe())
        assert seen == [False]

    class Flag(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + float(eager_fast_paths())

    assert torch.equal(Flag()(x), x + 1)
    assert torch.equal(torch.jit.script(Flag())(x), x)  # scriptable, and False in TorchScript


# ---------------------------------------------------------------------------------------- one size contract


@pytest.mark.parametrize("name", _params())
def test_odd_sizes_keep_the_input_size(name):
    net = _network(name)
    with torch.no_grad():
        for x in _inputs(name):
            assert net(x).shape == (x.shape[0], 1) + x.shape[2:]
    # training mode too (batch statistics), with gradients
    x = _inputs(name)[1]
    net.train()(x).sum().backward()


@pytest.mark.parametrize("name", ["unet", "fpa", "rfna", "aunet"])
def test_mistakes_unet_pads_evenly_and_crops_back(name):
    # the same as padding the input evenly to a multiple of 8 with zeros and cropping the output by hand
    net = _network(name)
    x = _inputs(name)[1]  # 37x50 (rfna: 100x75) -> 40x56 (104x80)
    h, w = x.shape[2:]
    ph, pw = -h % 8, -w % 8
    padded = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    with torch.no_grad():
        expected = net(padded)[:, :, ph // 2: ph // 2 + h, pw // 2: pw // 2 + w]
        torch.testing.assert_close(net(x), expected, rtol=1e-5, atol=1e-5)


def test_rfna_too_small_fails_before_any_work_naming_the_rule():
    net = MistakesUNet(3, 1, 1, width=4, attention="rfna")
    calls = []
    net.encoder[0].register_forward_hook(lambda *a: calls.append(1))
    with pytest.raises(ValueError, match=r"larger than 64 .*\[1, 1, 32, 40, 64\].*downsample"):
        net(torch.zeros(1, 1, 32, 40, 64))
    assert not calls  # raised before the first stage ran
    assert net.min_largest_side == 64
    # sides padded past 64 (65 -> 72) work, in 3D too; a smaller attention branch lowers the limit
    assert net(torch.zeros(1, 1, 8, 65, 8)).shape == (1, 1, 8, 65, 8)
    small = MistakesUNet(3, 1, 1, width=4, attention="rfna", attention_kwargs={"downsample": 4})
    assert small.min_largest_side == 32
    assert small(torch.zeros(1, 1, 33, 20, 12)).shape == (1, 1, 33, 20, 12)
    assert MistakesUNet(2, 1, 1, width=4, attention="fpa").min_largest_side == 0


# ----------------------------------------------------------------------------------------------- exports


@pytest.mark.parametrize("name", _params())
def test_torchscript_equals_eager_at_odd_sizes(name):
    net = _network(name)
    scripted = torch.jit.script(net)
    with torch.no_grad():
        for x in _inputs(name)[1:]:
            torch.testing.assert_close(scripted(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", _params())
def test_trace_is_not_frozen_to_the_traced_size(name):
    # `ckpt_export --use_trace True`: the padding arithmetic stays in the traced graph
    net = _network(name)
    xs = _inputs(name)
    with torch.no_grad():
        traced = torch.jit.trace(net, xs[0])
        for x in xs[1:]:
            torch.testing.assert_close(traced(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", _params(slow=set()))  # the lite network too (about 30 s on two cores)
def test_torch_export_no_grad_dynamic_sizes(name):
    net = _network(name)
    ep = _exported(name, net)
    ops = _ops(ep.graph)
    assert not [op for op in ops if "mkldnn" in op], ops  # no oneDNN-only operator in the graph
    module = ep.module()
    with torch.no_grad():
        for x in _inputs(name)[1:]:
            torch.testing.assert_close(module(x), net(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", _params(slow=ONNX_SLOW))
def test_onnx_parity_in_onnxruntime_at_two_sizes(name, tmp_path):
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    net = _network(name)
    program = torch.onnx.export(_exported(name, net), dynamo=True, optimize=False, verbose=False)
    program.save(str(tmp_path / "net.onnx"))
    session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    for x in _inputs(name)[1:]:
        (out,) = session.run(None, {inp.name: x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), net(x), rtol=1e-4, atol=1e-4)


def test_legacy_onnx_export_traced_at_96_runs_at_100(tmp_path):
    # the TorchScript-based exporter traces: the padding is computed in the graph, not frozen at 96
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net = _network("focusnetpp")
    with torch.no_grad():
        torch.onnx.export(net, (torch.randn(1, 1, 96, 96),), str(tmp_path / "net.onnx"), dynamo=False,
                          input_names=["image"], output_names=["pred"],
                          dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}, "pred": {0: "b", 2: "h", 3: "w"}})
        session = ort.InferenceSession(str(tmp_path / "net.onnx"), providers=["CPUExecutionProvider"])
        x = torch.randn(1, 1, 100, 100)
        (out,) = session.run(None, {"image": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), net(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # dynamo traces the whole network with dynamic shapes (about a minute on two cores)
def test_fast_paths_run_eagerly_but_not_under_compile():
    net = _network("focusnetpp")
    x = _inputs("focusnetpp")[1]
    graphs: list[torch.fx.GraphModule] = []

    def backend(gm, example_inputs):  # records what dynamo traced, runs it as is
        graphs.append(gm)
        return gm.forward

    blocks = [m for m in net.modules() if isinstance(m, ResidualGroupAttentionBlock)]
    with torch.no_grad():
        compiled = torch.compile(net, backend=backend, dynamic=True)(x)
        assert all(b._fold_cache is None for b in blocks)  # the compiled graph ran the plain formulation
        eager = net(x)
        assert all(b._fold_cache is not None for b in blocks)  # eager inference took the fused path
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    ops = set().union(*(_ops(g.graph) for g in graphs))
    assert ops and not [op for op in ops if "mkldnn" in op or "contiguous" in op], ops


def test_unreverse_output_negates_and_exports(tmp_path):
    # exported RFNA models return foreground logits: the option adds no parameter and negates the output
    torch.manual_seed(0)
    plain = MistakesUNet.preset("rfna", 2, 1, 1, width=4).eval()
    unreversed = MistakesUNet.preset("rfna", 2, 1, 1, width=4, unreverse_output=True).eval()
    unreversed.load_state_dict(plain.state_dict())  # same keys: a checkpoint trained without it loads
    x = _inputs("rfna")[1]
    with torch.no_grad():
        torch.testing.assert_close(unreversed(x), -plain(x))
        traced = torch.jit.trace(unreversed, _inputs("rfna")[0], check_trace=False)
        torch.testing.assert_close(traced(x), -plain(x), rtol=1e-4, atol=1e-5)
