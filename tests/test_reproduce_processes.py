"""``monai-attn reproduce`` owns its children: SIGTERM to the runner stops its trainings (their whole process
groups, DataLoader workers included), its children die with it even when it is SIGKILLed (Linux
``PR_SET_PDEATHSIG``), and a cell locked by another runner is skipped with a message, never trained twice at
once. Processes are found by scanning ``/proc`` (psutil is not a dependency)."""
from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from monai_attn import reproduce as rp
from monai_attn.cli import main

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and PR_SET_PDEATHSIG: Linux")

# a FocusNet++ (lite) cell on 6 tiny DSB-like images, one DataLoader worker (a grandchild of the runner),
# many epochs so that it is still training when the signal comes
RUN = ["--networks", "focusnetpp", "--seeds", "1", "--device", "cpu", "--override", "image_size=[32,32]",
       "--override", "batch_size=3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _pids_with(text: str) -> list[int]:
    """Live processes (not zombies) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the runner ended (exit {proc.returncode}) before {what}:\n"
                        f"{log.read_text()[-3000:] if log else ''}")
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:] if log and log.exists() else ''}")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("dsb")
    subprocess.run([sys.executable, "-m", "monai_attn", "synth", "dsb2018", "--out", str(out), "--cases", "8",
                    "--shape", "48", "64"], check=True, capture_output=True, env=ENV)
    return out


def test_sigterm_to_the_runner_stops_its_trainings(cohort, tmp_path):
    out = tmp_path / "out"
    cell = out / "runs" / "focusnetpp" / "seed0"
    log = tmp_path / "runner.log"
    with open(log, "w") as f:
        runner = subprocess.Popen([sys.executable, "-m", "monai_attn", "reproduce", "dsb2018", "--root", str(cohort),
                                   "--out", str(out), "--epochs", "500", "--override", "num_workers=1", *RUN],
                                  stdout=f, stderr=subprocess.STDOUT, env=ENV)
    try:
        # training has started: the bundle process and its DataLoader worker both run in the cell's folder
        _wait_until(lambda: len(_pids_with(str(cell))) >= 2 and "Epoch: 1/500" in _read(cell / "train.log"),
                    600, "the training's first epoch", runner, log)
        children = _pids_with(str(cell))
        runner.send_signal(signal.SIGTERM)
        assert runner.wait(120) == rp.EXIT_INTERRUPTED
    finally:
        if runner.poll() is None:
            runner.kill()
    # the runner waited for them: none of its trainings (nor their workers) is left
    _wait_until(lambda: not _pids_with(str(cell)), 5, "no process of the cell to remain")
    assert all(not Path(f"/proc/{pid}").exists() or _state(pid) == "Z" for pid in children)
    text = log.read_text()
    assert "interrupted (SIGTERM): the running trainings were stopped; rerun the same command to continue" in text
    # not a failure: the next run resumes the cell
    assert not (cell / "failed.json").exists()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [e["status"] for e in events] == ["interrupted"]


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_a_locked_cell_is_skipped_not_trained_twice(cohort, tmp_path):
    out = tmp_path / "out"
    cell = out / "runs" / "focusnetpp" / "seed0"
    cell.mkdir(parents=True)
    fd = os.open(cell / rp.CELL_LOCK, os.O_RDWR | os.O_CREAT)  # another runner works on this cell
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"pid 4242, since 2026-01-01 00:00:00\n")
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = main(["reproduce", "dsb2018", "--root", str(cohort), "--out", str(out), "--epochs", "1",
                         "--override", "num_workers=0", *RUN])
    finally:
        os.close(fd)
    text = buf.getvalue()
    assert code == rp.EXIT_FAILED
    assert (f"[1/1] focusnetpp/seed0: skipped: another runner is working on this cell (pid 4242, since 2026-01-01 "
            f"00:00:00; lock {cell / rp.CELL_LOCK}); rerun when it has finished") in text
    assert "BUSY cells (1 of 1), not run:" in text
    assert not (cell / "models").exists() and not (cell / "train.log").exists()  # nothing was started


def test_stopping_a_child_stops_its_whole_process_group(tmp_path):
    marker = f"r15-group-{os.getpid()}"
    # a shell that starts a grandchild and waits for it
    grandchild = f"{sys.executable} -c 'import time; time.sleep(300)' {marker}"
    proc = rp._start_child(["bash", "-c", f"{grandchild} & wait"], stdout=subprocess.DEVNULL)
    try:
        _wait_until(lambda: _pids_with(f"time.sleep(300) {marker}"), 10, "the grandchild")
        assert os.getpgid(proc.pid) == proc.pid  # its own process group
        assert rp._stop_child(proc, grace=5) == -signal.SIGTERM
        _wait_until(lambda: not _pids_with(f"time.sleep(300) {marker}"), 5, "the grandchild to end")
    finally:
        with rp._CHILDREN_LOCK:
            rp._CHILDREN.discard(proc)
        if proc.poll() is None:
            proc.kill()


def test_children_die_with_a_sigkilled_runner(tmp_path):
    marker = f"r15-orphan-{os.getpid()}"
    # a stand-in runner that starts a child the way the runner does, then is SIGKILLed (no cleanup runs)
    script = textwrap.dedent(f"""
        import sys, time
        from monai_attn import reproduce as rp
        rp._start_child([sys.executable, "-c", "import time; time.sleep(300)", "{marker}"])
        print("started", flush=True)
        time.sleep(300)
    """)
    runner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert runner.stdout.readline().strip() == "started"
        _wait_until(lambda: _pids_with(marker), 10, "the child")
        runner.kill()
        runner.wait(10)
        _wait_until(lambda: not _pids_with(marker), 10, "the child to die with its parent")
    finally:
        for pid in _pids_with(marker):
            os.kill(pid, signal.SIGKILL)


def test_a_cell_killed_before_its_first_checkpoint_is_trained_afresh_with_overwrite(tmp_path, monkeypatch):
    plan = rp.Plan(rp.TASKS["dsb2018"], tmp_path, tmp_path / "out", ["focusnetpp"], [0], [-1], epochs=1)
    cell = rp.Cell("focusnetpp", 0)
    models = plan.cell_dir(cell) / "models"
    models.mkdir(parents=True)
    (models / "model.pt").write_bytes(b"best model of an epoch killed before its checkpoint")
    plan.out.mkdir(exist_ok=True)
    commands = []
    monkeypatch.setattr(rp._Runner, "command", lambda self, cmd, log: (commands.append(cmd), (1, 0.0))[1])
    rp._Runner(plan, lambda text: None).run(cell, 1, 1)
    assert rp.cell_stage(plan.cell_dir(cell)) == "train"  # no checkpoint: not resumable
    assert commands[0][-2:] == ["--overwrite", "True"] and "--resume" not in commands[0]
    (models / "model.pt").unlink()
    rp._Runner(plan, lambda text: None).run(cell, 1, 1)
    assert "--overwrite" not in commands[1]  # nothing to move aside
