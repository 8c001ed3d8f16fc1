"""Noise-aware stars, the ship table under a policy, run history and ``compare``: all in-process,
from small generated records (no Snakemake run)."""

from __future__ import annotations

import json

import numpy as np

from ttskiln.__main__ import main
from ttskiln.history import compare_summaries
from ttskiln.report import add_speed_context, build_rows, write_report
from ttskiln.ship import ship_table
from ttskiln.stats import median_ratio_ci

ENV = {"hostname": "h", "cpu": "cpu", "cpu_count": 2, "threads": 1, "versions": {"numpy": np.__version__}}
METRICS = {
    "fp32": {"snr_db": 120.0, "mrstft": 1e-5, "logmel_l1": 1e-5},
    "fp16": {"snr_db": 70.0, "mrstft": 1e-3, "logmel_l1": 1e-3},
    "int8": {"snr_db": 30.0, "mrstft": 0.4, "logmel_l1": 0.2},
}


def _samples(median_ms: float, seed: int, n: int = 20, spread: float = 0.03) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median_ms * (1 + spread * rng.standard_normal(n)))


def _bench(variant: str, backend: str, samples: list[float], point: str = "p") -> dict:
    return {"model": "m", "component": "c", "variant": variant, "point": point, "backend": backend,
            "artifact": f"artifacts/m/c/{variant}.onnx", "shape": {"x": [1, 100, 8]}, "audio_seconds": 0.1,
            "p50_ms": float(np.median(samples)), "p90_ms": float(np.percentile(samples, 90)),
            "p99_ms": float(np.percentile(samples, 99)), "rtf": 0.01, "samples_ms": samples, "threads": 1,
            "environment": ENV}


def _check(variant: str, point: str = "p") -> dict:
    return {"model": "m", "component": "c", "variant": variant, "point": point, "backend": "onnxruntime-cpu",
            "artifact": f"artifacts/m/c/{variant}.onnx", "metrics": METRICS[variant], "passed": True, "failures": []}


def _records(medians: dict[str, float], torch_ms: float = 10.0, seed: int = 0) -> tuple[list[dict], list[dict]]:
    benches = [_bench("fp32", "pytorch-eager", _samples(torch_ms, seed))]
    benches += [_bench(v, "onnxruntime-cpu", _samples(ms, seed + 1 + i)) for i, (v, ms) in enumerate(medians.items())]
    return [_check(v) for v in medians], benches


def _rows(medians: dict[str, float], **kwargs) -> list[dict]:
    checks, benches = _records(medians, **kwargs)
    rows = build_rows(checks, benches)
    add_speed_context(rows, None)
    return rows


def test_noise_level_difference_stars_nothing_and_ships_fp32():
    # int8 at 0.98 ms against fp32 at 0.99 ms, each with 3 % jitter: no win beyond noise.
    rows = _rows({"fp32": 0.99, "int8": 0.98}, torch_ms=0.99)
    assert not any(r["fastest_within_tolerance"] for r in rows)
    ship = ship_table(rows)
    assert len(ship) == 1 and ship[0]["variant"] == "fp32"
    assert "within noise" in ship[0]["reason"]


def test_a_clear_two_fold_win_is_starred_and_shipped():
    rows = _rows({"fp32": 4.0, "fp16": 2.0}, torch_ms=8.0)
    starred = [r for r in rows if r["fastest_within_tolerance"]]
    assert [r["variant"] for r in starred] == ["fp16"]
    entry = ship_table(rows)[0]
    assert entry["variant"] == "fp16" and entry["backend"] == "onnxruntime-cpu"
    assert entry["artifact"] == "artifacts/m/c/fp16.onnx"
    low, high = entry["speedup_ci"]
    assert low <= entry["speedup_vs_torch"] <= high and low > 1
    assert entry["delta_snr_db"] == METRICS["fp16"]["snr_db"] - METRICS["fp32"]["snr_db"]
    assert "faster beyond noise" in entry["reason"]


def test_a_policy_limit_excludes_a_lossy_int8():
    rows = _rows({"fp32": 4.0, "int8": 1.0}, torch_ms=8.0)
    assert ship_table(rows)[0]["variant"] == "int8"  # no limits: the clearly fastest
    entry = ship_table(rows, {"max_mrstft": 0.1})[0]
    assert entry["variant"] == "fp32"
    assert "int8" in entry["reason"] and "max_mrstft" in entry["reason"]
    assert ship_table(rows, {"min_snr_db": 40})[0]["variant"] == "fp32"
    nothing = ship_table(rows, {"min_speedup": 100})[0]
    assert nothing["artifact"] is None and nothing["reason"].startswith("nothing to ship")


def test_reproduce_commands_name_the_records(tmp_path):
    checks, benches = _records({"fp32": 4.0, "fp16": 2.0}, torch_ms=8.0)
    paths = []
    for i, record in enumerate(checks + benches):
        path = tmp_path / f"r{i}.json"
        path.write_text(json.dumps(record))
        paths.append(str(path))
    summary = write_report(validations=paths[:2], benchmarks=paths[2:], models={}, plots={},
                           summary_json=str(tmp_path / "reports/summary.json"),
                           summary_md=str(tmp_path / "reports/summary.md"), index_html=str(tmp_path / "reports/index.html"))
    fp16 = next(r for r in summary["rows"] if r["variant"] == "fp16")
    assert fp16["reproduce"] == f"snakemake --cores 1 --force {paths[1]} {paths[4]}"
    assert summary["ship"][0]["reproduce"] == fp16["reproduce"]
    assert fp16["reproduce"] in (tmp_path / "reports/index.html").read_text()


def _summary(medians: dict[str, float], seed: int) -> dict:
    return {"rows": _rows(medians, seed=seed)}


def test_compare_flags_a_planted_slowdown_and_ignores_noise(tmp_path):
    old = _summary({"fp32": 4.0, "int8": 2.0}, seed=0)
    same = _summary({"fp32": 4.0, "int8": 2.0}, seed=100)  # the same distributions, other draws
    slow = _summary({"fp32": 4.0, "int8": 2.6}, seed=100)  # int8 30 % slower
    assert compare_summaries(old, same)["regressions"] == []
    found = compare_summaries(old, slow)["regressions"]
    assert [(r["variant"], r["backend"]) for r in found] == [("int8", "onnxruntime-cpu")]
    assert found[0]["latency_ci"][0] > 1.05
    for name, summary in (("old", old), ("same", same), ("slow", slow)):
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "same.json")]) == 0
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "slow.json")]) == 1


def test_median_ratio_interval_is_seeded_and_brackets_the_ratio():
    a, b = _samples(2.0, 1), _samples(1.0, 2)
    ratio, low, high = median_ratio_ci([(a, b)])
    assert low < ratio < high and low > 1.5
    assert median_ratio_ci([(a, b)]) == (ratio, low, high)
    assert median_ratio_ci([(a, [])]) is None


def test_each_report_is_kept_in_the_history_and_compared_with_the_last(tmp_path):
    def report(medians: dict[str, float], seed: int) -> dict:
        checks, benches = _records(medians, torch_ms=8.0, seed=seed)
        paths = []
        for i, record in enumerate(checks + benches):
            path = tmp_path / f"s{seed}-{i}.json"
            path.write_text(json.dumps(record))
            paths.append(str(path))
        return write_report(validations=paths[:len(checks)], benchmarks=paths[len(checks):], models={}, plots={},
                            summary_json=str(tmp_path / "reports/summary.json"),
                            summary_md=str(tmp_path / "reports/summary.md"),
                            index_html=str(tmp_path / "reports/index.html"))

    first = report({"fp32": 4.0, "fp16": 2.0}, seed=0)
    history = sorted((tmp_path / "reports/history").glob("*.json"))
    assert len(history) == 1 and first["since_last_run"] is None
    kept = json.loads(history[0].read_text())
    assert kept["provenance"]["version"] and kept["provenance"]["source"]
    assert kept["rows"] == json.loads((tmp_path / "reports/summary.json").read_text())["rows"]
    second = report({"fp32": 4.0, "fp16": 3.0}, seed=50)  # fp16 50 % slower
    assert len(list((tmp_path / "reports/history").glob("*.json"))) == 2
    since = second["since_last_run"]
    assert since["previous"] == history[0].name
    assert len(since["regressions"]) == 1 and "fp16" in since["regressions"][0]
    assert "Since the last run" in (tmp_path / "reports/summary.md").read_text()


def test_compare_refuses_what_is_not_a_summary_and_fails_on_vanished_rows(tmp_path, capsys):
    old = _summary({"fp32": 4.0, "int8": 2.0}, seed=0)
    fewer = {"rows": [r for r in _summary({"fp32": 4.0, "int8": 2.0}, seed=100)["rows"] if r["variant"] != "int8"]}
    for name, data in (("old", old), ("fewer", fewer), ("empty", {})):
        (tmp_path / f"{name}.json").write_text(json.dumps(data))
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "empty.json")]) == 2
    assert "is not a ttskiln summary.json" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "fewer.json")]) == 1
    assert "missing from NEW" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "old.json"), str(tmp_path / "old.json"), "--threshold", "-1"]) == 2


def test_compare_does_not_call_a_changed_model_a_regression():
    """Another checkpoint under the same name (hop 64 -> 256, more parameters) is slower for a
    reason compare must not call a regression; the same model with other limits is compared."""
    old = {**_summary({"fp32": 4.0, "int8": 2.0}, seed=0), "models": {}}
    slow = {**_summary({"fp32": 4.0, "int8": 2.6}, seed=100), "models": {}}
    for summary, hop, limit in ((old, 64, 1e-4), (slow, 256, 1e-3)):
        summary["models"] = {r["model"]: {"hop_length": hop, "parameters": 35618 + hop, "tolerances": {"max_abs_err": limit}}
                             for r in summary["rows"]}
    result = compare_summaries(old, slow)
    assert result["regressions"] == []
    assert {r["latency"] for r in result["rows"] if r["variant"] == "int8"} == {"not compared: the model changed"}
    for summary in (old, slow):  # the same model: the planted slowdown is found again
        for meta in summary["models"].values():
            meta.update(hop_length=256, parameters=35874)
    assert [r["variant"] for r in compare_summaries(old, slow)["regressions"]] == ["int8"]
