"""The report row schema (``ttskiln.rows``): builders, the one speedup, and rows that take only
their own backend's validation. In-process, from small generated records."""

from __future__ import annotations

import html
import json
import math

import pytest

from ttskiln.report import build_rows, chain_rows, render_html, render_markdown
from ttskiln.rows import (
    ROW_FIELDS,
    Row,
    accuracy_row,
    error_row,
    latency_row,
    not_validated_reason,
    real_time_factor,
    speedup,
)

TIMING = {"p50_ms": 4.0, "p90_ms": 5.0, "p99_ms": 6.0, "mean_ms": 4.2, "samples_ms": [4.0, 4.1]}
ENV = {"hostname": "h"}


def test_speedup_and_rtf_divide_only_real_latencies():
    assert speedup(8.0, 2.0) == 4.0 and real_time_factor(50.0, 0.5) == pytest.approx(0.1)
    for bad in (None, 0, 0.0, -1.0, math.inf, math.nan, "x", True):
        assert speedup(8.0, bad) is None and speedup(bad, 2.0) is None
        assert real_time_factor(bad, 1.0) is None and real_time_factor(10.0, bad) is None


def test_latency_row_works_out_rtf_and_speedup_and_keeps_the_json_keys():
    row = latency_row(component="c", variant="fp32", backend="onnxruntime-cpu", timing=TIMING, reference_ms=8.0,
                      audio_seconds=0.2, shape={"x": [1, 2]})
    data = row.to_dict()
    assert set(ROW_FIELDS) - {"model", "point", "artifact"} <= set(data)
    assert data["speedup_vs_torch"] == 2.0 and data["rtf"] == pytest.approx(0.02)
    assert data["passed"] is None and data["failures"] == [] and data["shape"] == {"x": [1, 2]}
    assert "mean_ms" not in data and "model" not in data  # identity keys left for the chain stage to fill
    assert latency_row(component="c", variant="v", backend="b", timing=TIMING, reference_ms=8.0,
                       all_stats=True).to_dict()["samples_ms"] == [4.0, 4.1]
    # Zero or missing latencies give no number, never inf or NaN.
    for timing, ref in (({"p50_ms": 0.0}, 8.0), ({"p50_ms": 3.0}, None), ({}, 8.0), ({"p50_ms": 3.0}, 0.0)):
        data = latency_row(component="c", variant="v", backend="b", timing=timing, reference_ms=ref,
                           audio_seconds=0.0).to_dict()
        assert data["speedup_vs_torch"] is None and data["rtf"] is None
    assert Row.from_dict(data).to_dict() == data


def test_accuracy_row_verdict_and_metrics():
    metrics = {"max_abs_err": 1e-3, "snr_db": 50.0, "step_spread": 0.5}
    good = accuracy_row(component="c", variant="fp16", backend="onnxruntime-cpu", metrics=metrics, failures=[],
                        tolerances={"max_abs_err": 1e-2}).to_dict()
    assert good["passed"] is True and good["snr_db"] == 50.0 and good["step_spread"] == 0.5
    assert good["tolerances"] == {"max_abs_err": 1e-2} and good["mse"] is None
    bad = accuracy_row(component="c", variant="fp16", backend="onnxruntime-cpu", metrics=metrics,
                       failures=["max_abs_err 1e-3 > 1e-4"]).to_dict()
    assert bad["passed"] is False and bad["failures"] == ["max_abs_err 1e-3 > 1e-4"]
    both = latency_row(component="c", variant="fp32", backend="onnxruntime-cpu", timing=TIMING,
                       reference_ms=4.0).with_accuracy(metrics, []).to_dict()
    assert both["passed"] is True and both["p50_ms"] == 4.0 and both["max_abs_err"] == 1e-3
    with pytest.raises(ValueError, match="row fields"):
        accuracy_row(component="c", variant="v", backend="b", metrics={}, failures=[], **{"p50_ms": 1.0})


def test_error_row_fails_with_its_reason():
    data = error_row(variant="fp32", backend="onnxruntime-cpu", error="boom", failure="chain cannot run: boom").to_dict()
    assert data["status"] == "error" and data["error"] == "boom" and data["passed"] is False
    assert data["failures"] == ["chain cannot run: boom"]


def _bench(backend: str, p50: float) -> dict:
    return {"model": "m", "component": "c", "variant": "fp16", "point": "p", "backend": backend,
            "artifact": "a.onnx", "shape": {"x": [1]}, "audio_seconds": 0.5, "p50_ms": p50, "p90_ms": p50,
            "p99_ms": p50, "rtf": p50 / 500, "environment": ENV}


def _check(backend: str, passed: bool = True) -> dict:
    return {"model": "m", "component": "c", "variant": "fp16", "point": "p", "backend": backend,
            "artifact": "a.onnx", "metrics": {"max_abs_err": 1e-3 if passed else 1.0, "snr_db": 60.0},
            "passed": passed, "failures": [] if passed else ["max_abs_err 1 > 0.01"]}


def test_a_gpu_row_never_borrows_the_cpu_validation():
    benches = [_bench("pytorch-eager", 10.0) | {"variant": "fp32"}, _bench("onnxruntime-cpu", 5.0),
               _bench("onnxruntime-cuda", 1.0), _bench("tensorrt", 0.5)]
    # The CPU run passed; TensorRT has its own (failed) validation; CUDA has none.
    rows = {r["backend"]: r for r in build_rows([_check("onnxruntime-cpu"), _check("tensorrt", passed=False)], benches)}
    cpu, cuda, trt, torch = (rows[b] for b in ("onnxruntime-cpu", "onnxruntime-cuda", "tensorrt", "pytorch-eager"))
    assert cpu["passed"] is True and cpu["max_abs_err"] == 1e-3 and "not_validated" not in cpu
    assert trt["passed"] is False and trt["max_abs_err"] == 1.0  # its own record, not the CPU's pass
    assert cuda["passed"] is None and cuda["max_abs_err"] is None and cuda["snr_db"] is None
    assert "onnxruntime-cuda" in cuda["not_validated"] and "onnxruntime-cpu" in cuda["not_validated"]
    assert torch["passed"] is None and torch["max_abs_err"] is None and "not_validated" not in torch
    assert cuda["speedup_vs_torch"] == 10.0 and torch["speedup_vs_torch"] == 1.0
    summary = {"notes": [], "models": {"m": {"family": "vocos", "checkpoint": "ck"}}, "rows": list(rows.values()),
               "environment": {"cpu": "c", "cpu_count": 1, "threads": 1, "hostname": "h", "versions": {}}}
    text = render_markdown(summary)
    assert "| not validated |" in text and "## Not validated" in text
    assert f"m / c / fp16 / onnxruntime-cuda @ p: {cuda['not_validated']}" in text


def test_a_failed_validation_names_its_backend():
    # bf16 arithmetic over the fp32 graph fails: the line must not read as an fp32 failure on ONNX Runtime.
    benches = [_bench("pytorch-eager", 10.0) | {"variant": "fp32"}, _bench("openvino-cpu-bf16", 5.0) | {"variant": "fp32"}]
    check = _check("openvino-cpu-bf16", passed=False) | {"variant": "fp32"}
    rows = build_rows([check], benches)
    summary = {"notes": [], "models": {"m": {"family": "vocos", "checkpoint": "ck"}}, "rows": rows,
               "environment": {"cpu": "c", "cpu_count": 1, "threads": 1, "hostname": "h", "versions": {}}}
    line = "m / c / fp32 / openvino-cpu-bf16 @ p: max_abs_err 1 > 0.01"
    markdown = render_markdown(summary)
    assert "## Failed validations" in markdown and f"- {line}" in markdown
    assert f"<li>{html.escape(line)}</li>" in render_html(summary, {})


def test_no_validation_anywhere_still_says_why():
    assert not_validated_reason("pytorch-eager", ["onnxruntime-cpu"]) is None
    assert not_validated_reason("onnxruntime-cuda", []) == "no validation on onnxruntime-cuda"
    row = build_rows([], [_bench("onnxruntime-cpu", 5.0)])[0]
    assert row["passed"] is None and row["not_validated"] == "no validation on onnxruntime-cpu"


def test_a_benchmark_that_cannot_run_fails_on_its_own_backend():
    bench = _bench("onnxruntime-cuda", 1.0) | {"error": "CUDA provider missing", "p50_ms": None}
    row = build_rows([_check("onnxruntime-cpu")], [bench])[0]
    assert row["passed"] is False and row["failures"] == ["CUDA provider missing"]
    assert row["speedup_vs_torch"] is None and row["max_abs_err"] is None


def test_chain_rows_read_back_with_every_field(tmp_path):
    folder = tmp_path / "chain"
    folder.mkdir()
    written = [latency_row(component="synth", variant="fp32-step", backend="pytorch-eager", timing=TIMING,
                           reference_ms=4.0, model="m", point="p", nfe=None).to_dict()]
    (folder / "rows.json").write_text(json.dumps(written))
    row = chain_rows([str(folder)])[0]
    assert set(ROW_FIELDS) <= set(row) and row["nfe"] is None and row["speedup_vs_torch"] == 1.0


def test_the_ship_table_does_not_ship_an_unvalidated_backend():
    from ttskiln.ship import ship_table

    benches = [_bench("pytorch-eager", 10.0) | {"variant": "fp32"}, _bench("onnxruntime-cpu", 5.0),
               _bench("onnxruntime-cuda", 1.0)]
    entry = ship_table(build_rows([_check("onnxruntime-cpu")], benches))[0]
    assert entry["backend"] == "onnxruntime-cpu"
    assert "not validated on onnxruntime-cuda at p" in entry["reason"]
