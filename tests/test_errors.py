"""One line for every foreseeable mistake: the user's error is found in MONAI's chain of wrapped errors and
printed as ``error: <file or key>: <problem>; <what to do>``; anything else keeps its traceback."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from monai_attn.errors import BadInputError, MissingInputError, error_line, find_user_error
from monai_attn.workflows import check_output_dir, load_network_weights


def _wrapped(call):
    """What MONAI's config parser does to an error raised in a ``$`` expression."""
    try:
        call()
    except Exception as e:
        try:
            raise RuntimeError("Failed to evaluate ConfigExpression: ...") from e
        except RuntimeError as wrapped:
            return wrapped
    raise AssertionError("no error raised")


def test_error_line_of_a_bad_input_names_the_file_the_problem_and_what_to_do():
    e = BadInputError("/d/a.nii.gz", "all 720 voxels are zero (a blank image)", "export the volume again")
    assert error_line(e) == "error: /d/a.nii.gz: all 720 voxels are zero (a blank image); export the volume again"
    assert error_line(BadInputError("--fold", "fold 9 not in [0, 1]")) == \
        "error: --fold: fold 9 not in [0, 1]; see docs/troubleshooting.md"


def test_the_user_error_is_found_behind_monai_wrappers(tmp_path):
    wrapped = _wrapped(lambda: load_network_weights(None, str(tmp_path / "model.pt")))
    user = find_user_error(wrapped)
    assert isinstance(user, MissingInputError)
    assert error_line(wrapped.__cause__) == (f"error: {tmp_path / 'model.pt'}: checkpoint not found; train first, or "
                                             f"set --ckpt_path to a model.pt")


def test_an_os_error_of_our_code_is_a_user_error_but_a_library_bug_is_not(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    user = find_user_error(_wrapped(lambda: check_output_dir(str(blocker / "sub"))))
    assert error_line(user).startswith(f"error: {blocker / 'sub'}: cannot create the output folder (Not a directory); "
                                       f"choose a writable --output_dir")
    # a ValueError raised outside the package (a library's internal failure, a bug) keeps its traceback
    assert find_user_error(_wrapped(lambda: int("abc"))) is None
    assert find_user_error(_wrapped(lambda: (_ for _ in ()).throw(KeyError("x")))) is None


SCRIPT = """
import sys
sys.argv = [sys.argv[0]]
from monai_attn.errors import install_excepthook
install_excepthook()
from monai_attn.workflows import inference_items
try:
    inference_items('brats2018', {folder!r})
except Exception as e:
    raise RuntimeError('Failed to evaluate ConfigExpression') from e
"""


@pytest.mark.parametrize("debug", [False, True])
def test_the_excepthook_prints_one_line_unless_debugging(tmp_path, debug):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "MONAI_ATTN_DEBUG": "1" if debug else "0"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT.format(folder=str(empty))], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    if debug:
        assert "Traceback" in proc.stderr and "RuntimeError: Failed to evaluate" in lines[-1]
    else:
        assert "Traceback" not in proc.stderr, proc.stderr
        assert lines == [f"error: {empty}: no brats2018 cases found; point --dataset_dir at the folder holding the "
                         f"cases, in the dataset's layout (see docs/bundles.md)"]


def test_cli_prints_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    from monai_attn.cli import main

    missing = tmp_path / "missing"
    assert main(["verify", "isic2018", "--root", str(missing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {missing}") and "Traceback" not in "\n".join(err)
    with pytest.raises((FileNotFoundError, ValueError)):
        main(["verify", "isic2018", "--root", str(missing), "--debug"])


def test_cli_names_a_file_standing_where_a_folder_is_needed_and_refuses_folds_0(tmp_path, capsys):
    from monai_attn.cli import main

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    root = tmp_path / "isic"
    assert main(["synth", "isic2018", "--out", str(root), "--cases", "2"]) == 0
    assert main(["prepare", "isic2018", "--root", str(root), "--out", str(blocker / "d.json")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"error: {blocker}: is a file where a folder is needed; check the path and its permissions"
    assert main(["prepare", "brats2018", "--root", str(root), "--out", str(tmp_path / "d.json"), "--folds", "0"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "error: --folds: cross-validation needs at least 2 folds, got 0; e.g. --folds 5"
