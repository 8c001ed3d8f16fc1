"""Deployment facts per artifact: size, load time, first call, the process's peak memory, throughput."""

from __future__ import annotations

import os

import pytest

from ttskiln.benchmark import benchmark
from ttskiln.families import get_family
from ttskiln.report import deployment_table

VOCOS = get_family("vocos")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ttskiln.export import export_component
    from ttskiln.reference import build_reference

    root = tmp_path_factory.mktemp("deploy")
    ckpt = root / "ckpt"
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", {}), ckpt, seed=0)
    export_component(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", opset=18, output=str(root / "fp32.onnx"))
    build_reference(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", point="p",
                    sizes={"batch": 2, "frames": 24}, seed=0, sample_inputs=None, output=str(root / "ref.npz"))
    return root, ckpt


@pytest.mark.parametrize("backend", ["ort-cpu", "torch"])
def test_benchmark_records_deployment_facts(tiny, backend):
    root, ckpt = tiny
    record = benchmark(backend=backend, artifact=str(root / "fp32.onnx"), reference=str(root / "ref.npz"), family="vocos",
                       checkpoint=str(ckpt), options={}, component="vocoder", threads=1, warmup=1, repeats=3,
                       output=str(root / f"{backend}.json"), labels={"model": "m", "component": "vocoder", "variant": "fp32", "point": "p"})
    assert record["load_ms"] > 0 and record["first_call_ms"] > 0
    # The job process's own high-water mark: a Python process running a graph is tens of MB at least.
    assert record["peak_rss_mb"] > 30
    assert record["batch"] == 2
    assert record["requests_per_s"] == pytest.approx(2 / (record["p50_ms"] / 1e3))
    assert record["audio_s_per_s"] == pytest.approx(record["audio_seconds"] / (record["p50_ms"] / 1e3))
    expected = os.path.getsize(root / "fp32.onnx") if backend == "ort-cpu" else None
    assert record["file_bytes"] == expected


def test_deployment_table_says_whether_batching_pays():
    def row(point, batch, audio_s_per_s):
        return {"model": "m", "component": "c", "variant": "fp32", "backend": "onnxruntime-cpu", "point": point,
                "file_bytes": 1000, "load_ms": 5.0, "first_call_ms": 9.0, "peak_rss_mb": 100.0 + batch, "batch": batch,
                "requests_per_s": None, "audio_s_per_s": audio_s_per_s}

    pays = deployment_table([row("p-opt", 1, 10.0), row("p-max", 4, 25.0)])[0]
    assert pays["batching_pays"] is True and pays["largest_batch"] == 4 and pays["peak_rss_mb"] == 104.0
    flat = deployment_table([row("p-opt", 1, 10.0), row("p-max", 4, 10.5)])[0]
    assert flat["batching_pays"] is False
    single = deployment_table([row("p-opt", 1, 10.0)])[0]
    assert single["batching_pays"] is None and single["throughput_largest_batch"] is None
