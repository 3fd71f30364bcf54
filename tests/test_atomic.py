"""Text outputs (datalists, metrics, tables) get the usual mode (0666 minus the umask: 0644 under umask 022),
as ``open()`` would give them, not ``mkstemp``'s private 0600; a failed write leaves nothing behind."""
from __future__ import annotations

import os
import stat

import pytest

from monai_attn.atomic import atomic_write, write_text_atomic


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_text_outputs_get_0644_like_open(tmp_path, umask_022):
    from monai_attn.data import write_json_atomic
    from monai_attn.metrics import SegmentationReport

    with open(tmp_path / "plain.txt", "w") as f:  # the reference: what open() gives
        f.write("x")
    assert _mode(tmp_path / "plain.txt") == 0o644
    assert _mode(write_text_atomic("table\n", tmp_path / "table.md")) == 0o644
    assert _mode(write_json_atomic({"training": []}, tmp_path / "datalist.json")) == 0o644
    import torch

    report = SegmentationReport(include_background=True)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:5, 2:5] = 1
    report(mask, mask)
    assert _mode(report.to_json(tmp_path / "metrics.json")) == 0o644
    assert _mode(report.to_csv(tmp_path / "metrics.csv")) == 0o644


def test_the_mode_follows_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        assert _mode(write_text_atomic("x", tmp_path / "private.txt")) == 0o600
    finally:
        os.umask(old)


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.txt"]
