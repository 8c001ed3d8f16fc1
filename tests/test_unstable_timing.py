"""Timings disturbed by other load on the machine: the rule (``ttskiln.stats.unstable_timing``),
the report's marks and section, the ship table and run comparison that decide nothing by them.
All in-process, from small generated records."""

from __future__ import annotations

import json

import numpy as np

from ttskiln.benchmark import machine_load
from ttskiln.history import compare_summaries
from ttskiln.report import UNSTABLE_MARK, add_speed_context, build_rows, write_report
from ttskiln.ship import ship_table
from ttskiln.stats import UNSTABLE_P50_OVER_MIN, unstable_timing

# PyTorch eager timed while other jobs loaded the machine: p50 ~800 ms, fastest call ~51 ms.
LOADED = [360, 645, 1895, 4420, 2357, 959, 380, 2609, 4327, 2413, 1815, 3301, 3564, 597, 52, 52, 52, 51, 55, 51]
ENV = {"hostname": "h", "cpu": "cpu", "cpu_count": 2, "threads": 1, "versions": {"numpy": np.__version__}}
METRICS = {"fp32": {"snr_db": 120.0, "mrstft": 1e-5, "logmel_l1": 1e-5},
           "fp16": {"snr_db": 70.0, "mrstft": 1e-3, "logmel_l1": 1e-3}}


def _steady(median_ms: float, seed: int, n: int = 20, spread: float = 0.03) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in median_ms * (1 + spread * rng.standard_normal(n))]


def _bench(variant: str, backend: str, samples: list[float]) -> dict:
    return {"model": "m", "component": "c", "variant": variant, "point": "p", "backend": backend,
            "artifact": f"artifacts/m/c/{variant}.onnx", "shape": {"x": [1, 100, 8]}, "audio_seconds": 0.1,
            "p50_ms": float(np.median(samples)), "p90_ms": float(np.percentile(samples, 90)),
            "p99_ms": float(np.percentile(samples, 99)), "min_ms": float(min(samples)), "samples_ms": samples,
            "threads": 1, "environment": ENV, "load_average": 0.9, "cpu_count": 2}


def _check(variant: str) -> dict:
    return {"model": "m", "component": "c", "variant": variant, "point": "p", "backend": "onnxruntime-cpu",
            "artifact": f"artifacts/m/c/{variant}.onnx", "metrics": METRICS[variant], "passed": True, "failures": []}


def test_loaded_samples_are_flagged_with_the_ratio_and_the_load():
    reason = unstable_timing({"samples_ms": LOADED, "load_average": 5.3, "cpu_count": 2})
    ratio = float(np.median(LOADED)) / min(LOADED)
    assert reason is not None and ratio > UNSTABLE_P50_OVER_MIN
    assert f"{ratio:.1f}x" in reason and "load average 5.3 on 2 cores" in reason
    # Records without samples are judged from their p50 and min.
    assert unstable_timing({"p50_ms": 801.7, "min_ms": 50.6}) is not None


def test_steady_samples_are_not_flagged_however_short():
    assert unstable_timing({"samples_ms": _steady(50.0, seed=1)}) is None
    # Sub-millisecond calls with 20 % jitter (a fast decode step): the same rule, not flagged ...
    assert unstable_timing({"samples_ms": _steady(0.6, seed=2, spread=0.2)}) is None
    # ... but flagged when most of them took over twice as long as the machine can do.
    fast = [0.5] * 8 + [1.4] * 12
    assert unstable_timing({"samples_ms": fast}) is not None
    assert unstable_timing({"p50_ms": None, "min_ms": None}) is None and unstable_timing({}) is None


def test_benchmark_records_say_how_busy_the_machine_was():
    load = machine_load()
    assert set(load) == {"load_average", "cpu_count"} and load["cpu_count"] >= 1


def _write(tmp_path, records: list[dict]) -> list[str]:
    paths = []
    for i, record in enumerate(records):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(record))
        paths.append(str(path))
    return paths


def test_report_marks_an_unstable_baseline_and_the_ship_table_does_not_choose_by_it(tmp_path):
    checks = [_check("fp32"), _check("fp16")]
    benches = [_bench("fp32", "pytorch-eager", LOADED), _bench("fp32", "onnxruntime-cpu", _steady(15.0, 3)),
               _bench("fp16", "onnxruntime-cpu", _steady(14.9, 4))]
    paths = _write(tmp_path, checks + benches)
    summary = write_report(validations=paths[:2], benchmarks=paths[2:], plots={},
                           models={"m": {"family": "bigvgan", "checkpoint": "m.pt"}},
                           summary_json=str(tmp_path / "reports/summary.json"),
                           summary_md=str(tmp_path / "reports/summary.md"),
                           index_html=str(tmp_path / "reports/index.html"))
    rows = {(r["variant"], r["backend"]): r for r in summary["rows"]}
    torch, ort = rows[("fp32", "pytorch-eager")], rows[("fp32", "onnxruntime-cpu")]
    assert torch["unstable_timing"] and "unstable_timing" not in ort  # serialised only where set
    assert "pytorch-eager" in ort["reference_unstable_timing"]
    assert not any(r["fastest_within_tolerance"] for r in summary["rows"])

    md = (tmp_path / "reports/summary.md").read_text()
    html = (tmp_path / "reports/index.html").read_text()
    section = md.split("## Unstable timings", 1)[1].split("\n## ", 1)[0]
    assert "snakemake --forcerun benchmark_torch benchmark_onnx" in section
    assert f"m / c / fp32 / pytorch-eager @ p: {torch['unstable_timing']}" in section
    assert "onnxruntime-cpu @ p" not in section  # the stable rows are not listed
    assert f"{torch['p50_ms']:.2f} {UNSTABLE_MARK}" in md and f"{torch['p50_ms']:.2f} {UNSTABLE_MARK}" in html
    assert f"{ort['p50_ms']:.2f} {UNSTABLE_MARK}" not in md
    assert f"{ort['speedup_vs_torch']:.2f} {UNSTABLE_MARK}" in md  # its speedup divides by the bad median
    assert "<h2>Unstable timings</h2>" in html

    entry = summary["ship"][0]
    assert entry["variant"] == "fp32" and entry["speedup_vs_torch"] is None and entry["speedup_ci"] is None
    assert "pytorch-eager timing unstable at p" in entry["reason"] and "faster beyond noise" not in entry["reason"]


def test_an_unstable_candidate_wins_nothing_in_the_ship_table():
    # fp16 looks faster (p50 3 ms against 4 ms) but most of its calls ran at 3x its fastest.
    loaded = [1.0] * 9 + [3.0] * 11
    benches = [_bench("fp32", "pytorch-eager", _steady(8.0, 5)), _bench("fp32", "onnxruntime-cpu", _steady(4.0, 6)),
               _bench("fp16", "onnxruntime-cpu", loaded)]
    rows = build_rows([_check("fp32"), _check("fp16")], benches)
    add_speed_context(rows, None)
    entry = ship_table(rows)[0]
    assert entry["variant"] == "fp32" and entry["speedup_vs_torch"] is not None
    assert "not compared beyond noise with fp16 on onnxruntime-cpu" in entry["reason"]
    assert "unstable" in entry["reason"] and "within noise" not in entry["reason"]
    # Under a speed floor the unstable candidate's speedup is not checked, not passed.
    floor = ship_table(rows, {"min_speedup": 1.5})[0]
    fp16 = next(c for c in floor["candidates"] if c["variant"] == "fp16")
    assert fp16["speedup_vs_torch"] is None and "min_speedup not checked" in fp16["excluded"][0]


def test_run_comparison_calls_an_unstable_row_neither_regression_nor_faster():
    old = {"rows": build_rows([], [_bench("fp32", "onnxruntime-cpu", _steady(4.0, 7))])}
    new = {"rows": build_rows([], [_bench("fp32", "onnxruntime-cpu", [4.0] * 8 + [12.0] * 12)])}
    result = compare_summaries(old, new)
    assert result["rows"][0]["latency"] == "unstable timing" and not result["regressions"]


def test_samples_of_different_calls_are_not_judged_by_the_rule():
    """Decode steps at growing cache lengths spread by their work: the chain marks them."""
    spread = {"samples_ms": [2.15, 1.3, 1.75, 5.43, 1.11, 0.92, 0.85, 1.67, 2.16, 1.56, 1.12, 0.91, 1.43, 1.47, 1.68,
                             1.41, 1.17, 5.29, 1.34, 0.62]}
    assert unstable_timing(spread) is not None
    assert unstable_timing({**spread, "varied_calls": True}) is None


def test_evenly_slow_calls_on_a_loaded_machine_are_flagged_by_the_load():
    from ttskiln.stats import UNSTABLE_LOAD_PER_CORE

    steady = _steady(50.0, seed=3)  # every call slowed alike: the p50-over-fastest rule sees nothing
    cores = 4
    over, under = UNSTABLE_LOAD_PER_CORE * cores + 0.5, UNSTABLE_LOAD_PER_CORE * cores - 0.5
    reason = unstable_timing({"samples_ms": steady, "load_average": over, "cpu_count": cores})
    assert reason is not None and f"load average {over:.1f} on {cores} cores" in reason
    # At or under the threshold (the benchmark's own threads), or without a load reading: not flagged.
    assert unstable_timing({"samples_ms": steady, "load_average": under, "cpu_count": cores}) is None
    assert unstable_timing({"samples_ms": steady, "load_average": over}) is None
    # The load rule judges records of varied calls too (the ratio rule does not).
    varied = {"samples_ms": [1.0] * 9 + [3.0] * 11, "varied_calls": True, "cpu_count": cores}
    assert unstable_timing(varied | {"load_average": under}) is None
    assert unstable_timing(varied | {"load_average": over}) is not None
