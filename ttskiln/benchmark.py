"""Stage 5: latency of one component at one profile point, on one backend.

Backends: PyTorch eager (``torch``) and ONNX Runtime (``onnxruntime-cpu``, and the CUDA /
TensorRT providers where installed). Every backend runs the stored reference inputs with the
same thread count, warm-up first. Records p50/p90/p99 latency and the real-time factor
(compute seconds per second of audio produced, batch included); speedups are joined in the
report.
"""

from __future__ import annotations

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
from ttskiln.timing import latency_stats, time_calls  # noqa: F401  (re-exported)

BACKENDS = {
    "torch": "pytorch-eager",
    "ort-cpu": "onnxruntime-cpu",
    "ort-cuda": "onnxruntime-cuda",
    "ort-trt": "onnxruntime-tensorrt",
    "trt": "tensorrt",
}
ORT_PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


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
    if backend == "torch":
        import torch

        set_torch_threads(threads)
        start = time.perf_counter()
        module = fam.component_module(fam.load(Path(checkpoint), config), component)
        load_ms = (time.perf_counter() - start) * 1e3
        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in spec.input_names]

        def call() -> Any:
            with torch.inference_mode():
                return module(*args)

        stats = {"load_ms": load_ms, **_first_then_steady(call, warmup, repeats)}
    elif backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {sorted(BACKENDS)}")
    else:
        try:
            start = time.perf_counter()
            call = _artifact_call(backend, artifact, spec, inputs, threads, chunking)
            stats = {"load_ms": (time.perf_counter() - start) * 1e3, **_first_then_steady(call, warmup, repeats)}
        except Exception as exc:  # the artifact does not load or run: a record, not a crash
            reason = f"cannot run on {BACKENDS[backend]}: {type(exc).__name__}: {one_line(exc)}"
            print(f"ttskiln benchmark: {labels.get('variant')} {artifact} at point {labels.get('point')}: {reason}")
            record = {**labels, "backend": BACKENDS[backend], "artifact": " + ".join(artifact_files(artifact)),
                      "shape": {n: list(inputs[n].shape) for n in spec.input_names}, "status": "error",
                      "error": reason, "p50_ms": None, "p90_ms": None, "p99_ms": None, "rtf": None,
                      "audio_seconds": None, "gflop": None, "threads": threads, "environment": environment(threads)}
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


def _artifact_call(backend: str, artifact: str, spec: Any, inputs: dict[str, np.ndarray], threads: int,
                   chunking: dict[str, Any] | None) -> Callable[[], Any]:
    """A function that runs ``artifact`` once on ``backend`` with the stored inputs."""
    from ttskiln.runtime import ort_session

    if backend == "trt":
        from ttskiln.tensorrt_runtime import trt_runner

        runner = trt_runner(artifact)
        runner.activate()
        feed = {n: np.ascontiguousarray(inputs[n]) for n in spec.input_names}

        def call() -> Any:
            return runner.infer(feed)

    elif backend in ("ort-cuda", "ort-trt"):
        # I/O binding: inputs copied to the device once, outputs stay there between calls.
        import onnxruntime as ort

        session = ort_session(artifact, threads, providers=[ORT_PROVIDERS[backend], "CPUExecutionProvider"])
        binding = session.io_binding()
        for name in spec.input_names:
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(inputs[name]), "cuda", 0))
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda", 0)

        def call() -> Any:
            session.run_with_iobinding(binding)

    elif backend in ORT_PROVIDERS:
        session = ort_session(artifact, threads, providers=[ORT_PROVIDERS[backend]])
        feed = {n: np.ascontiguousarray(inputs[n]) for n in spec.input_names}

        def call() -> Any:
            return session.run(None, feed)

        if chunking:
            from ttskiln.chunking import Chunking, chunked_run

            plan = Chunking(int(chunking["window"]), int(chunking["overlap"]), int(chunking["crossfade"]))
            names = [o.name for o in session.get_outputs()]
            index = names.index(chunking["output"])

            def run_chunk(chunk: np.ndarray) -> np.ndarray:
                return session.run(None, {**feed, chunking["input"]: chunk})[index]

            def call() -> Any:
                return chunked_run(run_chunk, feed[chunking["input"]], plan, int(chunking["hop"]))

    return call


def _record(backend: str, artifact: str, spec: Any, info: Any, inputs: dict[str, np.ndarray],
            outputs: dict[str, np.ndarray], stats: dict[str, float], threads: int, warmup: int, repeats: int,
            chunking: dict[str, Any] | None, labels: dict[str, str], output: str) -> dict[str, Any]:
    gflop = None
    if backend in ORT_PROVIDERS and not chunking:
        from ttskiln.flops import count_flops

        gflop = count_flops(artifact, {n: list(inputs[n].shape) for n in spec.input_names}) / 1e9
    seconds = audio_seconds(outputs, spec.audio_output, info.sample_rate)
    record = {
        **labels,
        "backend": BACKENDS[backend],
        "artifact": " + ".join(artifact_files(artifact)) if backend != "torch" else artifact,
        "shape": {n: list(inputs[n].shape) for n in spec.input_names},
        "audio_seconds": seconds,
        **stats,
        "rtf": stats["p50_ms"] / 1e3 / seconds if seconds else None,
        "gflop": gflop,
        "threads": threads,
        "warmup": warmup,
        "repeats": repeats,
        "environment": environment(threads),
        "status": "ok",
        **deployment_facts(artifact if backend != "torch" else None, {n: inputs[n] for n in spec.input_names},
                           stats["p50_ms"], seconds),
    }
    write_json(output, record)
    print(f"ttskiln benchmark: {labels.get('variant')} {record['artifact']} at point {labels.get('point')} on "
          f"{record['backend']}, {threads} thread(s), {warmup} warm-up + {repeats} timed calls: "
          f"p50 {stats['p50_ms']:.3f} ms, p90 {stats['p90_ms']:.3f} ms, p99 {stats['p99_ms']:.3f} ms, "
          f"min {stats['min_ms']:.3f} ms" + (f", RTF {record['rtf']:.4g}" if record["rtf"] else "")
          + f"; load {stats['load_ms']:.1f} ms, first call {stats['first_call_ms']:.1f} ms, "
          f"peak RSS {record['peak_rss_mb']:.0f} MB")
    return record
