"""Every ```python block of README.md and docs/*.md runs (so the docs cannot rot)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks():
    for doc in DOCS:
        for i, match in enumerate(BLOCK.finditer(doc.read_text())):
            yield pytest.param(match.group(1), id=f"{doc.relative_to(ROOT)}#{i}")


@pytest.mark.parametrize("code", list(_blocks()))
def test_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc>", "exec"), {"__name__": "__doc_example__"})


def test_readme_has_the_drop_in_example():
    assert "AdaptiveLogLoss(TverskyBCELoss(sigmoid=True))" in (ROOT / "README.md").read_text()


JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.S | re.M)


def _config_blocks():
    for doc in DOCS:
        for i, match in enumerate(JSON_BLOCK.finditer(doc.read_text())):
            if '"_target_"' in match.group(1) and '"imports"' in match.group(1):
                yield pytest.param(match.group(1), id=f"{doc.relative_to(ROOT)}#json{i}")


@pytest.mark.parametrize("text", list(_config_blocks()))
def test_bundle_config_snippets_resolve(text):
    import json

    from monai.bundle import ConfigParser

    config = json.loads(text)
    parser = ConfigParser(config)
    for key in config:
        if key != "imports":
            assert parser.get_parsed_content(key) is not None
