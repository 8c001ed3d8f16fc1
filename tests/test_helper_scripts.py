"""scripts/cpu_backends.py and scripts/bench_planning.py: one-line errors, honest figures."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cpu_backends.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("cpu_backends_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv, message", [
    (["--preset", "bogus"], "unknown vocos preset 'bogus'"),
    (["--frames", "0"], "--frames: 0 frames"),
])
def test_a_bad_argument_is_one_line_and_exit_2(script, monkeypatch, capsys, argv, message):
    monkeypatch.setattr("sys.argv", ["cpu_backends.py", *argv])
    assert script.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("cpu_backends: ") and message in err and err.count("\n") == 1


def test_the_ratio_keeps_two_significant_digits(script):
    assert script.ratio(10.0, 2500.0) == "0.0040x"  # PyTorch far slower than ONNX Runtime: not "0.00x"
    assert script.ratio(10.0, 7.7) == "1.3x" and script.ratio(10.0, 0.5) == "20x"
    assert script.ratio(10.0, None) == "–" and script.ratio(None, 1.0) == "–"


def test_bench_planning_calls_a_full_plan_no_no_op():
    spec = importlib.util.spec_from_file_location("bench_planning_script", SCRIPT.parent / "bench_planning.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    stale = module.demo_line(3.0, 1.5, 412)
    assert "not a no-op: 412 jobs planned (rebuild the demo first)" in stale and "no-op dry run" not in stale
    assert module.demo_line(3.0, 1.5, 0).startswith("demo no-op dry run: 3.00 s (2.00x --version)")
