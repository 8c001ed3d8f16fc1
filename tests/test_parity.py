import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import upstream_case, vocos_cases


def _parity(case_dir):
    return subprocess.run(
        [sys.executable, "-m", "ttskiln", "parity", str(case_dir)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("case", vocos_cases(), ids=lambda p: p.name)
def test_parity_command_reproduces_upstream(case):
    proc = _parity(case)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    compared = [line for line in lines if line.startswith("audio ")]
    assert {line.split()[1] for line in compared} == {"pytorch", "onnxruntime"}
    worst = float(lines[-1].removeprefix("worst max_abs_err="))
    assert lines[-1].startswith("worst max_abs_err=")
    assert worst <= 1e-5


def test_parity_fails_on_a_wrong_recording(tmp_path):
    src = upstream_case("vocos", "mel_same")
    case = tmp_path / "case"
    shutil.copytree(src, case)
    outputs = dict(np.load(case / "outputs.npz"))
    outputs["audio"] = outputs["audio"] + 1e-3
    (case / "outputs.npz").chmod(0o644)
    np.savez(case / "outputs.npz", **outputs)
    proc = _parity(case)
    assert proc.returncode == 1
    assert "FAIL" in proc.stdout
    assert float(proc.stdout.strip().splitlines()[-1].split("=")[1]) > 9e-4


def test_parity_names_a_folder_that_is_no_case(tmp_path):
    proc = _parity(tmp_path)
    assert proc.returncode == 2
    assert "manifest.json" in proc.stdout


def test_parity_refuses_unknown_family(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"family": "wavenet"}))
    np.savez(tmp_path / "inputs.npz", x=np.zeros(1))
    np.savez(tmp_path / "outputs.npz", y=np.zeros(1))
    proc = _parity(tmp_path)
    assert proc.returncode == 2
    assert "unknown family 'wavenet'" in proc.stdout
