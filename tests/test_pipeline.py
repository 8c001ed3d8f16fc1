"""The whole workflow on tiny models in a temporary folder, and what reruns after an edit."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import FAST_BENCH, copy_workflow, planned_jobs, snakemake, tiny_model, write_config
from ttskiln.families import get_family
from ttskiln.report import ROW_FIELDS

pytestmark = pytest.mark.e2e


def _base_config(workdir: Path) -> dict:
    # "real" is a checkpoint folder given by path (the released layout), "tiny" is synthetic.
    ckpt = workdir / "checkpoints" / "real"
    vocos = get_family("vocos")
    vocos.write_synthetic(vocos.synthetic_config("tiny", {"padding": "same", "hop_length": 32}), ckpt, seed=7)
    np.savez(workdir / "sample.npz", mel=np.random.default_rng(0).uniform(-5, 2, (1, 100, 21)).astype(np.float32))
    return {
        "benchmark": FAST_BENCH,
        "models": {
            "tiny": tiny_model(variants=["fp32", "fp16", "int8"]),
            "real": {
                "family": "vocos",
                "checkpoint": "checkpoints/real",
                "profiles": {"q": {"seconds": {"min": 0.05, "opt": 0.1, "max": 0.2}}},
                "simplifier": "onnxslim",
                "sample_inputs": "sample.npz",
                "tolerances": {"max_abs_err": 1e-4, "snr_db": 60},
                "chunking": {"window": 40, "overlap": 16, "crossfade": 4},
            },
        },
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One complete run; each test works on its own copy of the finished folder."""
    workdir = tmp_path_factory.mktemp("built")
    write_config(workdir, _base_config(workdir))
    snakemake(workdir)
    return workdir


@pytest.fixture
def workdir(built, tmp_path):
    dst = tmp_path / "w"
    shutil.copytree(built, dst, symlinks=True)
    return dst


def _edit_config(workdir: Path, edit) -> None:
    path = workdir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _rules(jobs):
    return sorted({rule for rule, _ in jobs})


def test_all_six_stages_write_their_artifacts(built):
    for model, points in {"tiny": ["p-opt", "p-max"], "real": ["q-opt", "q-max", "sample"]}.items():
        for variant in ("export", "fp32"):
            assert (built / f"artifacts/{model}/vocoder/{variant}.onnx").is_file()
        for point in points:
            assert (built / f"artifacts/{model}/vocoder/reference/{point}.npz").is_file()
            assert (built / f"artifacts/{model}/vocoder/benchmark/torch/{point}.json").is_file()
        assert (built / f"artifacts/{model}/validation.ok").is_file()
    assert sorted(p.name for p in (built / "artifacts/tiny/checkpoint").iterdir() if not p.name.startswith(".")) == ["config.yaml", "pytorch_model.bin"]
    for rule in ("reference", "export", "simplify", "validate", "benchmark_onnx", "report"):
        assert any((built / "logs" / rule).rglob("*.log")), rule
    assert not list(built.rglob("*.tmp*")), "a temporary file was left behind"


def test_report_rows_and_flags(built):
    summary = json.loads((built / "reports/summary.json").read_text())
    rows = summary["rows"]
    # tiny: 2 points x (torch + export, fp32, fp16, int8); real: 3 points x (torch + export,
    # fp32), plus the chunked fp32 at the two points longer than one 40-frame window.
    assert len(rows) == 2 * 5 + 3 * 3 + 2
    for row in rows:
        assert set(ROW_FIELDS) <= set(row)
        if row["variant"] == "export":  # the raw export is validated, not timed
            assert row["p50_ms"] is None and row["passed"] is True
            continue
        assert row["p50_ms"] > 0 and row["p50_ms"] <= row["p99_ms"]
        assert row["rtf"] > 0
    onnx_rows = [r for r in rows if r["backend"] == "onnxruntime-cpu"]
    assert all(r["passed"] is True for r in onnx_rows)
    fp32_rows = [r for r in onnx_rows if r["variant"] in ("export", "fp32", "fp32-chunked")]
    assert all(r["max_abs_err"] < 1e-4 and r["cosine"] > 0.9999 for r in fp32_rows)
    assert {r["variant"] for r in onnx_rows} == {"export", "fp32", "fp32-chunked", "fp16", "int8"}
    low = {r["variant"]: r for r in onnx_rows if r["model"] == "tiny" and r["point"] == "p-max"}
    assert 1e-6 < low["fp16"]["max_abs_err"] < 1e-2 and low["int8"]["max_abs_err"] > low["fp16"]["max_abs_err"]
    assert all(r["gflops"] > 0 and 0 < r["peak_fraction"] for r in rows if r["variant"] not in ("fp32-chunked", "export"))
    assert summary["environment"]["gemm_peak"]["gflops"] > 0
    peaks = summary["environment"]["gemm_peak"]["peaks"]
    assert {"fp32", "fp16", "int8"} <= set(peaks) and all(p["gflops"] > 0 for p in peaks.values())
    # A share of peak above 100 % would mean the peak is wrong: every row scores within its precision's.
    assert summary["over_peak"] == []
    assert all(r["peak_fraction"] is None or 0 < r["peak_fraction"] <= 1 for r in summary["rows"])
    for point in ("p-opt", "p-max", "q-opt", "q-max", "sample"):
        # The star needs a win beyond noise over every other row; within noise nothing is starred.
        marked = [r for r in rows if r["point"] == point and r["fastest_within_tolerance"]]
        assert len(marked) <= 1 and all(r["passed"] is not False for r in marked)
    # Every validation passed and the default policy sets no limits: each component ships something.
    assert summary["ship"] and all(s["artifact"] and s["reproduce"].startswith("snakemake --cores ") for s in summary["ship"])
    assert all(r["samples_ms"] for r in rows if r.get("p50_ms") and not r.get("chain"))
    assert list((built / "reports/history").glob("*.json"))
    chunked = [r for r in onnx_rows if r["variant"] == "fp32-chunked"]
    assert sorted(r["point"] for r in chunked) == ["q-max", "q-opt"]
    assert all(r["chunking"]["chunks"] >= 2 and r["chunk_interior_max_abs_err"] < 1e-5 for r in chunked)
    assert all(r["mrstft"] < 1e-3 and r["logmel_l1"] < 1e-3 for r in fp32_rows)
    assert all(r["speedup_vs_torch"] == pytest.approx(1.0) for r in rows if r["backend"] == "pytorch-eager")
    sample = [r for r in rows if r["point"] == "sample"]
    assert sample and all(r["shape"] == {"mel": [1, 100, 21]} for r in sample)
    assert summary["models"]["tiny"]["synthetic"] is True and summary["models"]["real"]["synthetic"] is False
    assert summary["synthetic_weights"] is True and "tiny" in summary["notes"][0]
    assert "SYNTHETIC WEIGHTS" in (built / "reports/summary.md").read_text()
    html = (built / "reports/index.html").read_text()
    assert "SYNTHETIC WEIGHTS" in html and "tiny-latency.png" in html
    assert (built / "reports/tiny-latency.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["environment"]["versions"]["onnxruntime"]
    if shutil.which("nvidia-smi") is None:
        # One line per GPU stage that did not run, saying why; shown in both renderings.
        assert any(line.startswith("tensorrt_engines: skipped, no CUDA device") for line in summary["skipped_stages"])
        assert "Skipped stages" in (built / "reports/summary.md").read_text() and "Skipped stages" in html
    # The real model: the same-padding head at hop 32 gives frames * 32 samples.
    q_opt = next(r for r in rows if r["model"] == "real" and r["point"] == "q-opt")
    assert q_opt["shape"] == {"mel": [1, 100, 75]}
    assert q_opt["audio_seconds"] == pytest.approx(75 * 32 / 24000)


def test_second_run_does_nothing(workdir):
    assert planned_jobs(workdir) == []


def test_profile_edit_reruns_only_that_models_point(workdir):
    _edit_config(workdir, lambda c: c["models"]["tiny"]["profiles"]["p"]["frames"].update(opt=30))
    jobs = planned_jobs(workdir)
    assert _rules(jobs) == ["benchmark_onnx", "benchmark_torch", "gate", "reference", "report", "validate"]
    touched = {out for _, out in jobs if out.startswith("artifacts/")}
    assert all("/tiny/vocoder/" in out or out == "artifacts/tiny/validation.ok" or out == "artifacts/real/validation.ok" for out in touched)
    assert all("p-max" not in out for out in touched)
    assert not [r for r, _ in jobs if r in ("export", "simplify", "synthetic_checkpoint")]


def test_tolerance_edit_reruns_only_validation_and_report(workdir):
    _edit_config(workdir, lambda c: c["models"]["real"]["tolerances"].update(max_abs_err=2e-4))
    jobs = planned_jobs(workdir)
    assert _rules(jobs) == ["gate", "report", "validate", "validate_chunked"]
    assert all("/real/" in out for rule, out in jobs if rule.startswith("validate"))


def test_family_code_change_reruns_its_exports(workdir, tmp_path):
    snakefile = copy_workflow(tmp_path / "wf")
    jobs_before = planned_jobs(workdir, snakefile=snakefile)
    assert jobs_before == []
    module = tmp_path / "wf/ttskiln/families/vocos/modules.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    rules = _rules(planned_jobs(workdir, snakefile=snakefile))
    assert {"export", "reference", "benchmark_torch", "synthetic_checkpoint"} <= set(rules)


def test_report_code_change_reruns_only_the_report(workdir, tmp_path):
    # The gates wait for their model's records, not for the report.
    snakefile = copy_workflow(tmp_path / "wf")
    module = tmp_path / "wf/ttskiln/report.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    assert _rules(planned_jobs(workdir, snakefile=snakefile)) == ["report"]


def test_identical_checkpoint_rewrite_reruns_nothing(workdir):
    weights = workdir / "checkpoints/real/pytorch_model.bin"
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data)
    later = weights.stat().st_mtime + 100
    os.utime(weights, (later, later))
    assert planned_jobs(workdir) == []


def test_changed_checkpoint_reruns_everything_downstream(workdir):
    weights = workdir / "checkpoints/real/pytorch_model.bin"
    state = torch.load(weights, weights_only=True)
    state["head.out.bias"] += 0.01
    torch.save(state, weights)
    jobs = planned_jobs(workdir)
    real = {rule for rule, out in jobs if "/real/" in out}
    assert {"reference", "export", "simplify", "validate", "benchmark_torch", "benchmark_onnx"} <= real
    # Nothing of the other model reruns (its gate at most).
    assert not [out for _, out in jobs if "/tiny/" in out and not out.endswith("validation.ok")]


def test_failing_artifact_is_reported_and_fails_the_run(tmp_path):
    write_config(tmp_path, {
        "benchmark": FAST_BENCH,
        "models": {
            "ok": tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 16, "max": 16}}}),
            "strict": tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 16, "max": 16}}},
                                 variants=["fp32", "int8"], tolerances={"int8": {"max_abs_err": 1e-9}}),
        },
    })
    proc = snakemake(tmp_path, "--keep-going", check=False)
    assert proc.returncode != 0
    log = proc.stdout + proc.stderr
    assert "model 'strict'" in log and "max_abs_err" in log and "artifacts/strict/vocoder/int8.onnx" in log
    summary = json.loads((tmp_path / "reports/summary.json").read_text())
    strict = {r["variant"]: r["passed"] for r in summary["rows"] if r["model"] == "strict" and r["backend"] != "pytorch-eager"}
    assert strict == {"export": True, "fp32": True, "int8": False}
    assert (tmp_path / "artifacts/ok/validation.ok").is_file()
    assert not (tmp_path / "artifacts/strict/validation.ok").exists()
    assert "FAIL" in (tmp_path / "reports/summary.md").read_text()


def test_snakemake_report_carries_the_ttskiln_page_and_plots(workdir):
    snakemake(workdir, "--report", str(workdir / "report.html"))
    page = (workdir / "report.html").read_text(errors="replace")
    assert "index.html" in page and "summary.md" in page
    assert "tiny-latency.png" in page and "real-latency.png" in page
