"""A misspelt override on the real ``python -m monai.bundle run`` command line stops the run before anything
runs, naming the config files, the unknown key and the closest existing key."""
from __future__ import annotations


def test_misspelt_override_stops_the_run_before_anything_runs(tmp_path, cli):
    out = tmp_path / "pred"
    proc = cli.bundle_run("mistakes_brats2018", ["inference.json"], tmp_path, {
        "input_dri": tmp_path, "output_dir": out, "sw_batch_szie": 4}, check=False, env={"OMP_NUM_THREADS": "1"})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert "inference.json: unknown override(s) on the command line, nothing was run" in log
    assert "--input_dri: no such key in the config; did you mean --input_dir?" in log
    assert "--sw_batch_szie: no such key in the config; did you mean --sw_batch_size?" in log
    assert "Traceback" not in log  # a clear message, not a library traceback
    assert not out.exists()
