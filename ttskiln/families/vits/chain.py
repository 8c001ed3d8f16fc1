"""The ``tts`` chain: seeded text ids + speaker -> waveform, ONNX graphs vs PyTorch.

The speaker is the model's kind: a seeded d-vector, a seeded speaker id (``sid``), or none.

With a speaker encoder, the d-vector is not drawn but computed. The chain reads
``options.reference_wav``, or else writes a seeded 3-second clip as ``reference.wav`` (16-bit
PCM at the encoder's rate) and reads it back. Each backend's own speaker encoder embeds it
(``speaker.embed``: RMS normalisation, ten 250-frame windows, mean), so the ONNX chain runs
WAV -> d-vector -> waveform on ONNX graphs only. The embedding is not part of the timed call (a voice is embedded once, then reused).

Both runs use the same host code (``host.synthesize``) and the same noise (noise scales 0.667
for z and 0.8 for the duration predictor, as in YourTTS inference). Rows:

* ``onnxruntime-cpu``: accuracy of the ONNX chain against the PyTorch chain (the waveform's
  tensor and audio metrics; ``boundary_max_abs_err`` per boundary tensor; ``passed`` and
  ``failures`` against the job's tolerances over the family defaults) and its latency,
  real-time factor and speedup over PyTorch; ``audio`` is the ONNX chain's WAV.
* ``pytorch-eager``: latency and real-time factor of the PyTorch chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.base import ChainJob

NOISE_SCALE = 0.667
NOISE_SCALE_DP = 0.8
REFERENCE_SECONDS = 3.0
REFERENCE_NAME = "reference.wav"
BOUNDARIES = ("d_vector", "enc_x", "enc_m_p", "enc_logs_p", "dp_logw", "durations", "m_p_expanded", "logs_p_expanded", "z_p", "z",
              "waveform")
WAV_NAME = "tts.wav"


def chain_request(job_sizes: dict[str, int], dims: Any, languages: int, seed: int) -> dict[str, Any]:
    """Seeded token ids (blank-interspersed like Coqui's ``add_blank``), d-vector, language and noise."""
    rng = np.random.default_rng(seed)
    batch = int(job_sizes.get("batch", 1))
    tokens = int(job_sizes.get("tokens", 63))
    blank = dims.num_chars - 1
    ids = np.full((batch, tokens), blank, dtype=np.int64)
    ids[:, 1::2] = rng.integers(1, max(2, blank), size=(batch, len(range(1, tokens, 2))))
    return {
        "tokens": ids,
        "lengths": np.full(batch, tokens, dtype=np.int64),
        "d_vector": rng.standard_normal((batch, dims.d_vector_dim)).astype(np.float32),
        "language_id": rng.integers(0, max(1, languages), size=batch).astype(np.int64),
        "noise_dp": (NOISE_SCALE_DP * rng.standard_normal((batch, 2, tokens))).astype(np.float32),
        "z_seed": int(rng.integers(0, 2**31 - 1)),
        # Drawn last, so that the draws above do not depend on the speaker mode.
        "speaker_id": rng.integers(0, max(1, dims.num_speakers), size=batch).astype(np.int64),
    }


def request_speaker(req: dict[str, Any], dims: Any) -> np.ndarray | None:
    """The request's speaker in the model's form: d-vectors, speaker ids, or None."""
    mode = dims.speaker_mode
    return req["d_vector"] if mode == "d_vector" else req["speaker_id"] if mode == "embedding" else None


def _z_noise(seed: int, batch: int, hidden: int):
    def make(frames: int) -> np.ndarray:
        return (NOISE_SCALE * np.random.default_rng(seed).standard_normal((batch, hidden, frames))).astype(np.float32)

    return make


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit mono PCM (clipped to [-1, 1]; ``audio_io.write_audio``)."""
    from ttskiln.audio_io import write_audio

    write_audio(path, audio, sample_rate)


def run_tts_chain(family: Any, job: ChainJob) -> list[dict[str, Any]]:
    from ttskiln.audio_metrics import audio_metrics
    from ttskiln.benchmark import time_calls
    from ttskiln.families.vits.backends import components, onnx_backend, torch_backend
    from ttskiln.families.vits.host import synthesize
    from ttskiln.metrics import failures, tensor_metrics
    from ttskiln.runtime import set_torch_threads

    config = job.config
    info = family.describe(config)
    missing = [c for c in components(info) if c not in job.artifacts]
    if missing:
        raise InputError(f"chain {job.chain!r} needs ONNX artifacts for {missing}")
    dims = family.host_dims(config)
    threads = int(job.bench.get("threads", 2))
    set_torch_threads(threads)
    model = family.load(job.checkpoint, config)
    backends = {"pytorch-eager": torch_backend(family, model, info),
                "onnxruntime-cpu": onnx_backend(job.artifacts, info, threads)}
    req = chain_request(job.sizes, dims, info.summary["languages"], job.seed)
    noise_z = _z_noise(req["z_seed"], req["tokens"].shape[0], dims.hidden)
    d_vectors = {backend: request_speaker(req, dims) for backend in backends}
    reference_wav = None
    se = family.speaker_encoder_config(config)
    if se is not None:
        from ttskiln.families.vits.speaker import embed, read_wav, synthetic_reference

        if job.options.get("reference_wav"):
            reference_wav = Path(job.options["reference_wav"])
        else:
            reference_wav = Path(job.directory) / REFERENCE_NAME
            write_wav(reference_wav, synthetic_reference(se.sample_rate, REFERENCE_SECONDS, job.seed), se.sample_rate)
        clip = read_wav(reference_wav, se.sample_rate)
        batch = req["tokens"].shape[0]
        for backend, run in backends.items():
            vector = embed(lambda w, run=run: run("speaker_encoder", {"waveform": w})["d_vector"], clip, se)
            d_vectors[backend] = np.repeat(vector, batch, axis=0)

    def call(backend: str) -> dict[str, np.ndarray]:
        out = synthesize(backends[backend], dims, req["tokens"], req["lengths"], d_vectors[backend], req["language_id"],
                         req["noise_dp"], noise_z)
        if d_vectors[backend] is not None and dims.speaker_mode == "d_vector":
            out["d_vector"] = d_vectors[backend]
        return out

    ref = call("pytorch-eager")
    got = call("onnxruntime-cpu")
    tolerances = {**family.default_tolerances, **family.chain_tolerances, **job.tolerances}
    drift: dict[str, float | None] = {}
    for name in (n for n in BOUNDARIES if n in ref):
        a, b = ref[name], got[name]
        drift[name] = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.shape == b.shape else None
    problems: list[str] = []
    if not np.array_equal(ref["durations"], got["durations"]):
        problems.append("durations differ between the ONNX and PyTorch chains")
        metrics: dict[str, float] = {}
    else:
        metrics = tensor_metrics(ref["waveform"], got["waveform"])
        metrics.update(audio_metrics(ref["waveform"], got["waveform"], info.sample_rate))
        worst_boundary = max(v for v in drift.values() if v is not None)
        metrics["max_abs_err"] = max(metrics["max_abs_err"], worst_boundary)
    problems += failures(metrics, tolerances)

    wav = Path(job.directory) / WAV_NAME
    first = got["waveform"][0, : int(got["y_lengths"][0]) * info.hop_length]
    write_wav(wav, first, info.sample_rate)

    warmup, repeats = int(job.bench.get("warmup", 3)), int(job.bench.get("repeats", 20))
    seconds = float(got["waveform"].size) / info.sample_rate
    timing = {backend: time_calls(lambda b=backend: call(b), warmup, repeats) for backend in backends}
    base = timing["pytorch-eager"]["p50_ms"]
    rows = []
    for backend, t in timing.items():
        row: dict[str, Any] = {
            "component": job.chain,
            "variant": "fp32",
            "backend": backend,
            "p50_ms": t["p50_ms"],
            "p90_ms": t["p90_ms"],
            "p99_ms": t["p99_ms"],
            "rtf": t["p50_ms"] / 1e3 / seconds if seconds else None,
            "speedup_vs_torch": base / t["p50_ms"] if t["p50_ms"] else None,
            "audio_seconds": seconds,
            "shape": {"tokens": list(req["tokens"].shape), "z": list(got["z"].shape),
                      "audio": list(got["waveform"].shape)},
        }
        if backend == "onnxruntime-cpu":
            row.update(metrics)
            row["boundary_max_abs_err"] = drift
            row["passed"] = not problems
            row["failures"] = problems
            row["audio"] = str(wav)
            if reference_wav is not None:
                row["speaker_reference"] = str(reference_wav)
        rows.append(row)
    return rows
