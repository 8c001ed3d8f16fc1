"""Stage 5: latency of one component at one profile point, on one backend.

Backends are the ``ttskiln.runners`` table: PyTorch eager (``torch``), ONNX Runtime
(``ort-cpu``, and the CUDA / TensorRT providers where installed), OpenVINO (``openvino-cpu``,
``openvino-cpu-bf16``) and TensorRT engines (``trt``); each is one runner, timed through its
``timed_call``. Every backend runs the stored reference inputs with the same thread count,
warm-up first. Records p50/p90/p99 latency and the real-time factor
(compute seconds per second of audio produced, batch included); speedups are joined in the
report.

Each record also says how busy the machine was: ``load_average`` (the 1-minute load average,
read after timing) and ``cpu_count``; where the timings look disturbed by other work
(``ttskiln.stats.unstable_timing``) the job log says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.atomic import write_json
from ttskiln.environment import environment
from ttskiln.errors import one_line
from ttskiln.families import get_family
from ttskiln.onnx_io import artifact_files
from ttskiln.reference_io import load_reference
from ttskiln.runners import artifact_runner
from ttskiln.runners import backend as runner_backend
from ttskiln.stats import unstable_timing
from ttskiln.timing import latency_stats, time_calls  # noqa: F401  (re-exported)


def audio_seconds(outputs: dict[str, np.ndarray], audio_output: str | None, sample_rate: int) -> float | None:
    """Seconds of audio a call produces (all batch items), from the reference output shape."""
    if not audio_output or audio_output not in outputs:
        return None
    audio = outputs[audio_output]
    return float(audio.size) / sample_rate


def benchmark(
    *,
    backend: str,
    artifact: str,
    reference: str,
    family: str,
    checkpoint: str,
    options: dict[str, Any],
    component: str,
    threads: int,
    warmup: int,
    repeats: int,
    output: str,
    labels: dict[str, str],
    chunking: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Time one backend at one point; ``chunking`` runs an ONNX artifact in overlapping windows."""
    from ttskiln.runtime import set_torch_threads

    fam = get_family(family)
    config = fam.read_config(Path(checkpoint), options)
    info = fam.describe(config)
    spec = info.component(component)
    inputs, outputs = load_reference(reference)
    entry = runner_backend(backend)
    feed = {n: np.ascontiguousarray(inputs[n]) for n in spec.input_names}
    if entry.kind == "torch":
        from ttskiln.runners import TorchRunner

        set_torch_threads(threads)
        start = time.perf_counter()
        module = fam.component_module(fam.load(Path(checkpoint), config), component)
        runner = TorchRunner(module, spec.input_names, spec.output_names, threads=threads).activate()
        load_ms = (time.perf_counter() - start) * 1e3
        stats = {"load_ms": load_ms, **_first_then_steady(runner.timed_call(feed), warmup, repeats)}
    else:
        try:
            start = time.perf_counter()
            runner = artifact_runner(entry.name, artifact, threads=threads).activate()
            call = _chunked_call(runner, feed, chunking) if chunking else runner.timed_call(feed)
            stats = {"load_ms": (time.perf_counter() - start) * 1e3, **_first_then_steady(call, warmup, repeats)}
        except Exception as exc:  # the artifact does not load or run: a record, not a crash
            reason = f"cannot run on {entry.label}: {type(exc).__name__}: {one_line(exc)}"
            print(f"ttskiln benchmark: {labels.get('variant')} {artifact} at point {labels.get('point')}: {reason}")
            record = {**labels, "backend": entry.label, "artifact": " + ".join(artifact_files(artifact)),
                      "shape": {n: list(inputs[n].shape) for n in spec.input_names}, "status": "error",
                      "error": reason, "p50_ms": None, "p90_ms": None, "p99_ms": None, "rtf": None,
                      "audio_seconds": None, "gflop": None, "threads": threads, "environment": environment(threads),
                      **machine_load()}
            write_json(output, record)
            return record
    return _record(backend, artifact, spec, info, inputs, outputs, stats, threads, warmup, repeats, chunking,
                   labels, output)


def _first_then_steady(call: Callable[[], Any], warmup: int, repeats: int) -> dict[str, float]:
    """The first call's latency (what a fresh deployment's first request waits), then the
    steady-state percentiles after the remaining warm-up."""
    start = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - start) * 1e3
    return {"first_call_ms": first_ms, **time_calls(call, max(warmup - 1, 0), repeats)}


def deployment_facts(artifact: str | None, inputs: dict[str, np.ndarray], p50_ms: float,
                     seconds: float | None) -> dict[str, Any]:
    """Size on disk, this process's peak resident memory, and throughput at the point.

    Peak memory is the job process's own high-water mark (getrusage), so it covers loading and
    running this one artifact on this one backend (plus the Python runtime around it).
    """
    import resource

    files = artifact_files(artifact) if artifact and Path(artifact).is_file() else []
    batch = int(next(iter(inputs.values())).shape[0]) if inputs else 1
    return {
        "file_bytes": sum(Path(f).stat().st_size for f in files) or None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "batch": batch,
        "requests_per_s": batch / (p50_ms / 1e3) if p50_ms else None,
        "audio_s_per_s": seconds / (p50_ms / 1e3) if seconds and p50_ms else None,
    }


def machine_load() -> dict[str, Any]:
    """The 1-minute load average (None where the platform has none) and the logical core count."""
    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return {"load_average": load, "cpu_count": os.cpu_count()}


def _chunked_call(runner: Any, feed: dict[str, np.ndarray], chunking: dict[str, Any]) -> Callable[[], Any]:
    """One chunked run of the stored input: overlapping windows through ``runner.infer``."""
    from ttskiln.chunking import Chunking, chunked_run

    plan = Chunking(int(chunking["window"]), int(chunking["overlap"]), int(chunking["crossfade"]))

    def run_chunk(chunk: np.ndarray) -> np.ndarray:
        return runner.infer({**feed, chunking["input"]: chunk})[chunking["output"]]

    return lambda: chunked_run(run_chunk, feed[chunking["input"]], plan, int(chunking["hop"]))


def _record(backend: str, artifact: str, spec: Any, info: Any, inputs: dict[str, np.ndarray],
            outputs: dict[str, np.ndarray], stats: dict[str, float], threads: int, warmup: int, repeats: int,
            chunking: dict[str, Any] | None, labels: dict[str, str], output: str) -> dict[str, Any]:
    load = machine_load()  # right after timing: what the timed calls shared the cores with
    entry = runner_backend(backend)
    gflop = None
    if entry.kind in ("onnxruntime", "openvino") and not chunking:
        from ttskiln.flops import count_flops

        gflop = count_flops(artifact, {n: list(inputs[n].shape) for n in spec.input_names}) / 1e9
    seconds = audio_seconds(outputs, spec.audio_output, info.sample_rate)
    record = {
        **labels,
        "backend": entry.label,
        "artifact": " + ".join(artifact_files(artifact)) if entry.kind != "torch" else artifact,
        "shape": {n: list(inputs[n].shape) for n in spec.input_names},
        "audio_seconds": seconds,
        **stats,
        "rtf": stats["p50_ms"] / 1e3 / seconds if seconds else None,
        "gflop": gflop,
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "environment": environment(threads),
        **load,
        "status": "ok",
        **deployment_facts(artifact if entry.kind != "torch" else None, {n: inputs[n] for n in spec.input_names},
                           stats["p50_ms"], seconds),
    }
    write_json(output, record)
    print(f"ttskiln benchmark: {labels.get('variant')} {record['artifact']} at point {labels.get('point')} on "
          f"{record['backend']}, {threads} thread(s), {warmup} warm-up + {repeats} timed calls: "
          f"p50 {stats['p50_ms']:.3f} ms, p90 {stats['p90_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms, "
          f"min {stats['min_ms']:.3f} ms" + (f", RTF {record['rtf']:.4g}" if record["rtf"] else "")
          + f"; load {stats['load_ms']:.1f} ms, first call {stats['first_call_ms']:.1f} ms, "
          f"peak RSS {record['peak_rss_mb']:.0f} MB")
    unstable = unstable_timing(record)
    if unstable:
        print(f"ttskiln benchmark: WARNING: unstable timings for {labels.get('variant')} at point "
              f"{labels.get('point')} on {record['backend']}: {unstable}; rerun this job on an idle machine")
    return record
