"""Stage 4: compare an artifact on one backend with the stored PyTorch outputs.

A ``ttskiln.runners`` runner runs the artifact (ONNX Runtime by default; OpenVINO, or a
TensorRT engine through Polygraphy's TrtRunner) and Polygraphy's comparators compare it with
the reference outputs (max abs error via SimpleCompareFunc, cosine similarity, SNR; MSE from
its L2 norm). The
result is a JSON record with the metrics, the worst over outputs, and pass/fail against the
model's tolerances. Validation never raises for a failing artifact: the gate rule does,
after the report has marked it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ttskiln.atomic import write_json
from ttskiln.errors import one_line
from ttskiln.metrics import failures, log_verdict, non_finite, worst
from ttskiln.reference_io import load_reference

REFERENCE_RUNNER = "pytorch"


def compare_outputs(
    expected: dict[str, np.ndarray], got: dict[str, np.ndarray], runner_name: str
) -> dict[str, dict[str, Any]]:
    """Per-output metrics computed by Polygraphy's comparators."""
    from polygraphy.comparator import (
        Comparator,
        CosineSimilarityCompareFunc,
        IterationResult,
        L2CompareFunc,
        RunResults,
        SimpleCompareFunc,
        SnrCompareFunc,
    )

    from polygraphy.logger import G_LOGGER

    # Polygraphy compares here with infinite tolerances to collect numbers; its own PASSED
    # lines would contradict ttskiln's verdict in the log.
    G_LOGGER.module_severity = G_LOGGER.ERROR
    per_output: dict[str, dict[str, Any]] = {}
    shared = [name for name in expected if name in got]
    for name in expected:
        if name not in got:
            per_output[name] = {"error": "missing from the artifact's outputs"}
        elif expected[name].shape != got[name].shape:
            per_output[name] = {
                "error": f"shape {list(got[name].shape)} != reference {list(expected[name].shape)}"
            }
    shared = [n for n in shared if n not in per_output]
    if not shared:
        return per_output
    results = RunResults()
    results.append((REFERENCE_RUNNER, [IterationResult({n: expected[n] for n in shared}, runner_name=REFERENCE_RUNNER)]))
    results.append((runner_name, [IterationResult({n: got[n] for n in shared}, runner_name=runner_name)]))
    funcs = [
        SimpleCompareFunc(atol=np.inf, rtol=np.inf, check_error_stat="max"),
        CosineSimilarityCompareFunc(cosine_similarity_threshold=-1.0),
        SnrCompareFunc(snr_threshold=-np.inf),
        L2CompareFunc(l2_threshold=np.inf),
    ]
    accuracy = Comparator.compare_accuracy(results, compare_func=funcs)
    values: dict[str, dict[str, Any]] = {name: {} for name in shared}
    for acc in accuracy:
        for iterations in acc.values():
            for name, res in iterations[0].items():
                entry = values[name]
                if hasattr(res, "max_absdiff"):
                    entry["max_abs_err"] = res.max_absdiff
                elif hasattr(res, "cosine_similarity"):
                    entry["cosine"] = float(res.cosine_similarity)
                elif hasattr(res, "snr"):
                    entry["snr_db"] = float(res.snr)
                elif hasattr(res, "l2_norm"):
                    entry["mse"] = float(res.l2_norm) ** 2 / max(expected[name].size, 1)
    per_output.update(values)
    return per_output


def validate_artifact(
    *,
    artifact: str,
    reference: str,
    tolerances: dict[str, float],
    output: str,
    labels: dict[str, str],
    audio: dict[str, Any] | None = None,
    chunking: dict[str, Any] | None = None,
    backend: str = "ort-cpu",
) -> dict[str, Any]:
    """Validate one artifact at one point.

    ``audio`` ({"output": name, "sample_rate": Hz}) adds the audio-domain metrics of that
    output. ``chunking`` ({"input", "output", "hop", "window", "overlap", "crossfade"}) runs
    the artifact in overlapping windows (see ``ttskiln.chunking``) and also records the error
    at the chunk boundaries and away from them. ``backend`` is any name of the backend table
    (``ttskiln.runners.BACKENDS``): ``trt`` validates a serialized TensorRT engine,
    ``openvino-cpu-bf16`` the ONNX graph on OpenVINO with the bf16 precision hint; the record
    carries the backend's label.
    """
    from ttskiln.audio_metrics import AUDIO_METRICS
    from ttskiln.onnx_io import artifact_files
    from ttskiln.runners import artifact_runner, label

    backend = label(backend)

    if not audio:  # audio limits apply to components that make audio
        tolerances = {k: v for k, v in tolerances.items() if k not in AUDIO_METRICS}
    inputs, expected = load_reference(reference)
    base = {
        **labels,
        "artifact": " + ".join(artifact_files(artifact)),
        **precision_facts(artifact),
        "backend": backend,
        "shape": {name: list(value.shape) for name, value in inputs.items()},
        "tolerances": tolerances,
    }
    extra: dict[str, Any] = {}
    try:
        runner = artifact_runner(backend, artifact)
        with runner:
            if chunking:
                got, extra = _chunked(runner.infer, inputs, expected, chunking)
            else:
                got = {k: np.asarray(v) for k, v in runner.infer(inputs).items()}
    except Exception as exc:  # the artifact does not load or run: a verdict, not a crash
        reason = f"cannot run on {backend}: {type(exc).__name__}: {one_line(exc)}"
        record = {**base, "status": "error", "error": reason, "metrics": {}, "outputs": {},
                  "passed": False, "failures": [reason]}
        write_json(output, record)
        log_verdict(record)
        return record
    per_output = compare_outputs(expected, got, runner.name)
    if audio and "error" not in per_output.get(audio["output"], {"error": ""}):
        from ttskiln.audio_metrics import audio_metrics

        name = audio["output"]
        per_output[name].update(audio_metrics(expected[name], got[name], int(audio["sample_rate"])))
    errors = [f"{name}: {m['error']}" for name, m in per_output.items() if "error" in m]
    errors += non_finite(got, "the artifact's output")
    summary = worst([m for m in per_output.values() if "error" not in m])
    broken = errors + failures(summary, tolerances)
    record = {
        **base,
        "status": "ok",
        "metrics": summary,
        "outputs": per_output,
        "passed": not broken,
        "failures": broken,
        **extra,
    }
    write_json(output, record)
    log_verdict(record)
    return record


def precision_facts(artifact: str) -> dict[str, str]:
    """What the precision stage recorded in an ONNX artifact (``quantized N of M``, ...)."""
    if not artifact.endswith(".onnx"):
        return {}
    try:
        import onnx

        props = {p.key: p.value for p in onnx.load(artifact, load_external_data=False).metadata_props}
    except Exception:  # an unreadable file is judged by the runner below
        return {}
    return {key: props[f"ttskiln.{key}"] for key in ("precision", "quantized") if f"ttskiln.{key}" in props}



def _chunked(
    infer: Any, inputs: dict[str, np.ndarray], expected: dict[str, np.ndarray], chunking: dict[str, Any]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from ttskiln.chunking import Chunking, boundary_errors, chunked_run

    plan = Chunking(int(chunking["window"]), int(chunking["overlap"]), int(chunking["crossfade"]))
    name_in, name_out = chunking["input"], chunking["output"]

    def run(chunk: np.ndarray) -> np.ndarray:
        return np.asarray(infer({**inputs, name_in: chunk})[name_out])

    audio, boundary = chunked_run(run, inputs[name_in], plan, int(chunking["hop"]))
    info = {"chunks": len(plan.spans(inputs[name_in].shape[-1])), **chunking}
    if audio.shape == expected[name_out].shape:
        info.update(boundary_errors(expected[name_out], audio, boundary))
    return {name_out: audio}, {"chunking": info}
