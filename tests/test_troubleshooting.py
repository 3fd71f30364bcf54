"""docs/troubleshooting.md cannot rot: every row of the catalogue of bad inputs names a test that
exists, and the catalogue covers every kind of bad input of issue #9."""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "troubleshooting.md"
TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
#: the kinds of bad input the catalogue must cover (a word or phrase of each row's first column)
REQUIRED = ["missing file", "truncated", "not an image at all", "number of modalities", "different shapes",
            "2D image given to volumetric", "3D volume given to a 2D", "time axis", "NaN", "all-zero",
            "label with unexpected values", "non-binary ISIC mask", "datalist with missing keys", "empty input folder",
            "cannot be written", "checkpoint of another network", "pickled payload", "misspelt key",
            "spacing (0 or negative)", "wrong type", "in_channels", "roi_size", "device cuda", "--fold",
            "not readable JSON", "no checkpoint", "not 8-bit RGB", "mask of another size", "share a name",
            "symbolic link loop", "empty `HGG/`", "corrupt `eval/metrics.json`"]


def _rows() -> list[list[str]]:
    text = DOC.read_text()
    table = text[text.index("## Catalogue of bad inputs"):].split("\n## ")[0]
    rows = []
    for line in table.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    assert rows and rows[0] == ["Input", "Message (abridged)", "What to do", "Test"], rows[:1]
    return rows[1:]


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_row_names_existing_tests():
    rows = _rows()
    assert len(rows) >= len(REQUIRED)
    for cells in rows:
        assert len(cells) == 4, cells
        refs = TEST_REF.findall(cells[3])
        assert refs, f"row {cells[0]!r} names no test"
        for file, name in refs:
            assert (ROOT / file).is_file(), f"{file} (row {cells[0]!r}) does not exist"
            assert name in _test_names(ROOT / file), f"{file}::{name} (row {cells[0]!r}) does not exist"
        assert cells[1] and cells[2], f"row {cells[0]!r} lacks a message or what to do"


def test_catalogue_covers_every_kind_of_bad_input():
    inputs = " ".join(cells[0] for cells in _rows())
    missing = [kind for kind in REQUIRED if kind.lower() not in inputs.lower()]
    assert not missing, missing


def test_other_tests_named_in_the_doc_exist():
    for file, name in TEST_REF.findall(DOC.read_text()):
        assert name in _test_names(ROOT / file), f"{file}::{name}"
    for file in re.findall(r"`(tests/[\w/]+\.py)`", DOC.read_text()):
        assert (ROOT / file).is_file(), file
