"""The benchmark scripts keep working: tiny runs of the measuring scripts, the report from fake JSON,
run_all's handling of missing and failing benchmarks."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def _run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_networks_smoke(tmp_path):
    out = tmp_path / "networks.json"
    _run("networks.py", "--networks", "BasicUNet", "FocusNetPP-lite", "--sizes", "brats160", "--repeats", "1",
         "--train-repeats", "1", "--batch", "1", "--threads", "1", "--out", str(out))
    result = json.loads(out.read_text())
    rows = {r["network"]: r for r in result["rows"]}
    assert set(rows) == {"BasicUNet", "FocusNetPP-lite"}
    assert rows["BasicUNet"]["gflops_s_vs_basicunet"] == pytest.approx(1.0)
    lite = rows["FocusNetPP-lite"]
    assert lite["params"] == 1_882_229 and lite["gflop_per_image"] == pytest.approx(4.18, abs=0.01)
    assert lite["fwd_img_s"] > 0 and lite["train_img_s"] > 0 and lite["gflops_s_vs_basicunet"] > 0
    assert "error" not in lite
    papers = {r["model"]: r for r in result["paper_table"]}
    assert papers["FocusNet++ (official code: no SE)"]["params_with_bn_stats"] == 7_803_739
    assert papers["FPA"]["params"] == 4_200_608
    assert result["machine"]["cpu_count"] >= 1 and result["settings"]["threads_used"] == 1


def test_paper_numbers_match_the_network_tests():
    networks = _module("networks")
    sys.path.insert(0, str(ROOT))
    try:
        from tests.networks.test_mistakes_unet import PAPER_PARAMS
    finally:
        sys.path.remove(str(ROOT))
    names = {"UNet": "unet", "WUnet": "wunet", "AUnet": "aunet", "CSCUnet": "cscunet", "CBAMUnet": "cbamunet",
             "GCNUnet": "gcnunet", "FPA": "fpa", "RFNA": "rfna"}
    table = {row[0]: row[6] for row in networks.PAPER_MODELS}
    for model, preset in names.items():
        assert table[model] == PAPER_PARAMS[preset][0]
    assert table["FocusNet++ (official code: no SE)"] == 7.80


def test_inference_smoke(tmp_path):
    out = tmp_path / "inference.json"
    _run("inference.py", "--threads", "1", "--case-shape", "40", "40", "9", "--memory-shape", "48", "48", "6",
         "--sw-batch-size", "4", "--out", str(out))
    result = json.loads(out.read_text())
    paths = [r["path"] for r in result["rows"]]
    assert paths == ["network forward only", "end to end, BatchedSliceInferer", "end to end, monai SliceInferer"]
    assert all(r["slices"] == 9 and r["total_s"] > 0 for r in result["rows"])
    whole, monai_only = result["memory"]
    assert whole["path"] == "whole path" and whole["normalize"] == "lean"
    assert whole["peak_rss_mib"] >= whole["inferer_peak_mib"] > whole["import_rss_mib"] > 0
    assert monai_only["path"] == "load + preprocess only" and monai_only["normalize"] == "monai"


FAKE = {
    "networks.json": {
        "machine": {"processor": "Fake CPU", "cpu_count": 2, "torch": "2.x", "load_average": [1.0, 2.0, 3.0]},
        "settings": {"device": "cpu", "threads_used": 1, "batch": 2, "repeats": 3, "train_repeats": 2,
                     "train_sizes": ["brats160"], "amp": "none"},
        "rows": [
            {"network": "BasicUNet", "size": 160, "params": 1979297, "gflop_per_image": 3.91, "fwd_img_s": 9.0,
             "gflops_s": 35.2, "gflops_s_vs_basicunet": 1.0, "train_img_s": 3.0},
            {"network": "FocusNetPP-lite", "size": 160, "params": 1882229, "gflop_per_image": 4.18, "fwd_img_s": 6.0,
             "gflops_s": 25.1, "gflops_s_vs_basicunet": 0.713},
            {"network": "Broken", "size": 160, "error": "RuntimeError: boom"},
        ],
        "paper_table": [{"model": "FPA", "paper_table": "PATM Tables 5-6", "task": "BraTS 2018", "input": "4×160×160",
                         "params": 4200608, "params_with_bn_stats": 4200608, "paper_params_m": 4.2,
                         "gflop_per_image": 10.7}],
    },
    "inference.json": {
        "settings": {"network": "FPAUNet(2, 4, 1)", "sw_batch_size": 8, "threads_used": 1, "repeats": 1},
        "rows": [{"path": "network forward only", "slices": 155, "total_s": 40.0, "ratio_vs_bare": 1.0},
                 {"path": "end to end, BatchedSliceInferer", "slices": 155, "total_s": 41.0, "ratio_vs_bare": 1.025}],
        "memory": [{"volume": "512×512×300", "path": "whole path", "normalize": "lean", "inferer": "batched",
                    "sw_batch_size": 8, "peak_rss_mib": 2100.0, "import_rss_mib": 250.0}],
    },
    "hd95.json": {"meta": {"device": "cpu", "torch_threads": 2, "repeats": 5},
                  "results": [{"case": "isic", "description": "8 images", "monai_s": 0.5, "ours_s": 0.05,
                               "speedup": 10.0}]},
    "hd95_stale.json": {"results": [{"case": "stale"}]},  # not written by this run_all: not reported
    "run_all.json": {"benchmarks": [{"name": "networks", "status": "ok"}, {"name": "inference", "status": "ok"},
                                    {"name": "hd95", "status": "ok"},
                                    {"name": "data", "status": "skipped", "note": "benchmarks/data.py does not exist"}]},
}


def test_report_from_fake_json(tmp_path):
    for name, content in FAKE.items():
        (tmp_path / name).write_text(json.dumps(content))
    (tmp_path / "garbage.json").write_text("{not json")
    docs = tmp_path / "docs" / "benchmarks.md"
    report = _module("report")
    assert report.main(["--results", str(tmp_path), "--docs", str(docs)]) == 0
    text = docs.read_text()
    assert "Fake CPU" in text and "| FocusNetPP-lite | 160 |" in text
    assert "FocusNetPP-lite 0.71" in text and "All networks meet the target." in text
    assert "RuntimeError: boom" in text
    assert "| FPA | PATM Tables 5-6 |" in text and "+0.01 %" in text
    assert "End to end, BatchedSliceInferer: 1.02× the bare forward" in text and "2.05 GiB" in text
    assert "stale" not in text
    assert "| isic |" in text and "benchmarks/data.py does not exist" in text
    assert "## Data loader\n\nNot run." in text


def test_run_all_records_missing_and_failing_benchmarks(tmp_path, monkeypatch):
    run_all = _module("run_all")
    fake = tmp_path / "bench"
    fake.mkdir()
    (fake / "ok.py").write_text("import json, sys\nopen(sys.argv[sys.argv.index('--out') + 1], 'w').write('{}')\n")
    (fake / "bad.py").write_text("raise SystemExit('broken on purpose')\n")
    monkeypatch.setattr(run_all, "HERE", fake)
    out = tmp_path / "out"
    out.mkdir()
    ok = run_all.run_one("networks", "ok.py", ["--out", str(out / "networks.json")], out, timeout=60)
    bad = run_all.run_one("hd95", "bad.py", [], out, timeout=60)
    missing = run_all.run_one("data", "data.py", [], out, timeout=60)
    assert ok["status"] == "ok" and (out / "networks.json").is_file()
    assert bad["status"] == "failed" and "broken on purpose" in bad["note"]
    assert missing["status"] == "skipped" and "does not exist" in missing["note"]
    args = run_all.main.__globals__["argparse"].Namespace(out=str(out), threads=1, cuda=True, only=["networks"])
    assert [name for name, _, _ in run_all.plan(args)] == ["networks", "networks_cuda"]


@pytest.mark.slow  # medpy's hd95 alone takes ~1 s per call here
def test_hd95_benchmark_compares_every_library_in_one_run(tmp_path):
    pytest.importorskip("medpy")
    pytest.importorskip("surface_distance")
    hd95 = _module("hd95")
    out = tmp_path / "hd95.json"
    assert hd95.main(["--cases", "mr_small", "--repeats", "1", "--threads", "1", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    (row,) = doc["results"]
    assert doc["meta"]["libraries"] == ["deepmind", "medpy"] and "cucim" in doc["meta"]
    assert row["shape"] == [1, 1, 256, 256, 25] and row["spacing"] == [0.78, 0.78, 6.5]
    # each reference against our function in its convention: the same values to 1e-3 mm
    for lib in ("", "medpy_", "deepmind_"):
        assert row[f"{lib}max_abs_diff"] < 1e-3
    assert row["speedup"] > 0 and row["medpy_speedup"] > 0 and row["deepmind_speedup"] > 0
    # the stray false-positive blob: its surface elements (6.5 mm tall) weigh more than 5 % of the
    # prediction's area, so DeepMind's HD95 is the distance to the blob (~56 mm), while it is less
    # than 5 % of the edge voxels (MONAI ~1.6 mm) and of both surfaces pooled (medpy ~1.1 mm)
    assert row["deepmind_mean_hd95"] > 10 * row["mean_hd95"] and row["medpy_mean_hd95"] <= row["mean_hd95"]
