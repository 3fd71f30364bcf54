"""Checkpoints are loaded with ``weights_only=True`` everywhere: no ``torch.load`` in the package, the
benchmarks or the bundle configs may unpickle arbitrary objects."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _torch_loads(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            yield node


def test_every_torch_load_is_weights_only():
    unsafe, found = [], 0
    for path in sorted([*ROOT.glob("monai_attn/**/*.py"), *ROOT.glob("benchmarks/**/*.py")]):
        for call in _torch_loads(path):
            found += 1
            kw = {k.arg: k.value for k in call.keywords}
            if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                unsafe.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert found and not unsafe, unsafe


def test_bundle_configs_do_not_call_torch_load_unsafely():
    for path in sorted(ROOT.glob("bundles/*/configs/*.json")):
        for call in re.findall(r"torch\.load\([^)]*\)", path.read_text()):
            assert "weights_only=True" in call, f"{path}: {call}"
