"""The ``synth`` chain job at one profile point (``F5TTSFamily.run_chain``): the chain on ONNX
Runtime (or a TensorRT-LLM engine) against the chain on PyTorch from the same noise, its
accuracy rows and its latency rows (``ttskiln.rows``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ttskiln.errors import ConfigError
from ttskiln.families.f5tts.chain_inputs import (
    CHAIN,
    TRTLLM_CHAIN_TOLERANCES,
    chain_layout,
    chain_reference,
    chain_tolerances,
    fitted_chain_texts,
)
from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.request import DEFAULT_MAX_FRAMES, join_batches, max_frames_option, prepare, split_texts, write_wav
from ttskiln.families.f5tts.sampler import initial_noise
from ttskiln.families.f5tts.synthesis import (
    VOCODER_COMPONENT, VOCODER_ROLE, Synthesis, check_vocoder, onnx_vocoder, synthesize, torch_vocoder, vocoder_family,
)
from ttskiln.rows import REFERENCE_BACKEND, accuracy_row, latency_row
from ttskiln.runners import label

TRTLLM_BACKEND = label("trtllm")
ORT_BACKEND = label("ort-cpu")
TRTLLM_ARTIFACT = "trtllm_engine"
_DTYPE_VARIANT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
VALIDATION_STEPS = 32
#: Silence between the texts in the chain's WAV (each text's batches cross-faded).
WAV_GAP_SECONDS = 0.3
BENCH_NFES = (16, 32)


def run_chain_job(job: Any, family_defaults: dict[str, float]) -> list[dict[str, Any]]:
    """The ``synth`` chain at one point: ONNX DiT + ONNX Vocos against PyTorch DiT + PyTorch Vocos.

    With ``job.artifacts["trtllm_engine"]`` (a TensorRT-LLM engine folder) the DiT backend is
    that engine instead of the ONNX graph (same host code, same noise; the vocoder stays the
    ONNX graph), and only its rows are returned: backend ``tensorrt-llm``, variants named by
    the engine dtype (``fp16``, ``fp16-mel``, ``fp16-step``, ``fp16-nfe16`` ...), speedups
    against PyTorch on the CPU (``torch_device``)."""
    from ttskiln.timing import time_calls
    from ttskiln.families import get_family
    from ttskiln.families.f5tts.backends import DitVelocity, onnx_runner, torch_runner
    from ttskiln.families.f5tts.host import HostDims
    from ttskiln.runtime import ort_session, set_torch_threads

    if job.chain != CHAIN:
        raise ConfigError(f"f5tts has one chain, {CHAIN!r}; got {job.chain!r}")
    link = job.linked.get(VOCODER_ROLE)
    wanted = vocoder_family().name
    if not link:
        raise ConfigError(f"model '{job.model}': the synth chain needs options.vocoder (a {wanted} model of this config)")
    if link.get("family") != wanted:
        raise ConfigError(f"model '{job.model}': options.vocoder {link.get('model')!r} is a {link.get('family')} model; the synth chain needs a {wanted} model")
    fam = get_family("f5tts")
    cfg = F5Config.from_dict(job.config)
    frames, rows = int(job.sizes["frames"]), int(job.sizes["batch"])
    max_frames = max_frames_option(job.options, max(DEFAULT_MAX_FRAMES, frames))
    if frames > max_frames:
        raise ConfigError(f"model '{job.model}': point {job.point} has {frames} frames, beyond options.max_frames {max_frames}")
    requests, ref_len = chain_layout(frames, rows)
    threads = int(job.bench.get("threads", 1))
    set_torch_threads(threads)

    torch_voc, voc_config = torch_vocoder(link["checkpoint"], link.get("options") or {})
    check_vocoder(cfg, voc_config, f"model '{link['model']}'")
    ort_voc = onnx_vocoder(link["artifacts"][VOCODER_COMPONENT], threads)
    dims = HostDims.of(cfg)
    model = fam.load(job.checkpoint, job.config)
    engine = job.artifacts.get(TRTLLM_ARTIFACT)
    if engine:
        from ttskiln.families.f5tts.trtllm import engine_dtype

        primary, precision = TRTLLM_BACKEND, _DTYPE_VARIANT[engine_dtype(engine)]
        dit_runner = fam.tensorrt_llm.runner(engine, model)  # the family's declared capability
    else:
        primary, precision = ORT_BACKEND, "fp32"
        dit_runner = onnx_runner(ort_session(job.artifacts["dit"], threads))
    runners = {primary: dit_runner, REFERENCE_BACKEND: torch_runner(model)}
    captured: dict[str, dict[str, np.ndarray]] = {}

    def capture(run: Callable[[dict[str, np.ndarray]], np.ndarray]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        def wrapped(inputs: dict[str, np.ndarray]) -> np.ndarray:
            captured.setdefault("inputs", inputs)
            return run(inputs)
        return wrapped

    velocities = {name: DitVelocity(dims, capture(run)) for name, run in runners.items()}
    vocoders = {primary: ort_voc, REFERENCE_BACKEND: torch_voc}
    vocab = fam.vocab(job.checkpoint, job.config)
    ref_text, gen_texts = fitted_chain_texts(job.options, vocab, frames)
    reference, ref_info = chain_reference(job.options, ref_len, cfg, job.seed)
    # Long chain texts are split as the synth command splits them; every batch is spoken, the
    # point's requests at a time (the last group filled up from the first batches).
    batches, counts, _ = split_texts(gen_texts, ref_text, reference.size / cfg.sample_rate)
    groups = [[batches[(g + j) % len(batches)] for j in range(requests)] for g in range(0, len(batches), requests)]
    rng = np.random.default_rng(job.seed)
    prepared_groups, noises = [], []
    for texts in groups:
        prepared_groups.append(prepare(cfg, vocab, reference, ref_text, texts, sample_rate=cfg.sample_rate,
                                       durations=[frames] * requests, max_frames=max_frames, max_tokens=frames - 1))
        noises.append(initial_noise(prepared_groups[-1].durations, cfg.mel_dim, rng))

    def run(backend: str, steps: int, group: int = 0) -> Synthesis:
        return synthesize(velocities[backend], vocoders[backend], prepared_groups[group], steps=steps, noise=noises[group],
                          max_frames=max_frames)

    ort_outs = [run(primary, VALIDATION_STEPS, g) for g in range(len(groups))]   # also the warm-up of both backends
    torch_outs = [run(REFERENCE_BACKEND, VALIDATION_STEPS, g) for g in range(len(groups))]
    ort_out = Synthesis(mel=np.concatenate([o.mel for o in ort_outs]), audio=[a for o in ort_outs for a in o.audio],
                        durations=np.concatenate([o.durations for o in ort_outs]))
    torch_out = Synthesis(mel=np.concatenate([o.mel for o in torch_outs]), audio=[a for o in torch_outs for a in o.audio],
                          durations=np.concatenate([o.durations for o in torch_outs]))
    limits = chain_tolerances(job.tolerances, family_defaults, TRTLLM_CHAIN_TOLERANCES if engine and precision != "fp32" else None)
    # Vocos with 'center' padding makes (T - 1) * hop samples from T frames, 'same' T * hop.
    seconds = sum(a.size for a in ort_outs[0].audio) / cfg.sample_rate  # what one timed call makes
    shape = {"dit": [2 * requests, frames, cfg.mel_dim], "audio": [requests, int(ort_out.audio[0].size)]}
    facts = {"shape": shape, "requests": requests, "ref_frames": ref_len, "nfe": VALIDATION_STEPS,
             "reference_text": ref_text, "texts": list(gen_texts), "text_batches": counts, "batch_groups": len(groups)}
    if ref_info is not None:
        facts["reference_audio"] = ref_info
    if engine:
        facts["torch_device"] = "cpu"

    audio_path = job.directory / "synth.wav"
    spoken = join_batches(ort_out.audio[: len(batches)], counts, cfg.sample_rate)
    gap = np.zeros(int(WAV_GAP_SECONDS * cfg.sample_rate), dtype=np.float32)
    write_wav(audio_path, np.concatenate([p for k, w in enumerate(spoken) for p in ((gap, w) if k else (w,))]), cfg.sample_rate)
    out = accuracy_rows(torch_out, ort_out, cfg.sample_rate, limits, precision, primary, seconds, str(audio_path), facts)

    # Per-step latency: one packed CFG velocity call at the point's shape, the inputs of step 0.
    inputs = captured["inputs"]
    warmup, repeats = int(job.bench.get("warmup", 1)), max(1, int(job.bench.get("repeats", 3)))
    step = {name: time_calls(lambda r=r: r(inputs), warmup, repeats) for name, r in runners.items()}
    timed: dict[str, tuple[dict[str, dict[str, float]], int | None]] = {f"{precision}-step": (step, None)}
    # End to end (sampling loop + vocoder): one warm-up ran above; 1-2 timed runs per NFE.
    e2e_runs = min(2, repeats)
    for nfe in BENCH_NFES:
        lat = {name: time_calls(lambda n=name: run(n, nfe), 0, e2e_runs) for name in runners}
        timed[f"{precision}-nfe{nfe}"] = (lat, nfe)
    for variant, (lat, nfe) in timed.items():
        for backend in ((primary,) if engine else (REFERENCE_BACKEND, primary)):
            # A step row times one velocity call: no audio of its own, so no real-time factor.
            out.append(latency_row(component=CHAIN, variant=variant, backend=backend, timing=lat[backend],
                                   reference_ms=lat[REFERENCE_BACKEND]["p50_ms"], audio_seconds=seconds if nfe else None,
                                   **{**facts, "nfe": nfe}).to_dict())
    return out


def accuracy_rows(torch_out: Synthesis, ort_out: Synthesis, sample_rate: int, limits: dict[str, dict[str, float]],
                  precision: str, backend: str, seconds: float, audio: str, facts: dict[str, Any]) -> list[dict[str, Any]]:
    """The chain's two verdicts against the PyTorch chain: the generated mel (``<precision>-mel``,
    tensor metrics) and the waveform (``<precision>``, tensor and audio metrics; it names the WAV)."""
    from ttskiln.audio_metrics import audio_metrics
    from ttskiln.metrics import failures, tensor_metrics

    mel_metrics = tensor_metrics(torch_out.mel, ort_out.mel)
    wave_ref, wave_got = np.concatenate(torch_out.audio), np.concatenate(ort_out.audio)
    wave_metrics = {**tensor_metrics(wave_ref, wave_got), **audio_metrics(wave_ref, wave_got, sample_rate)}
    rows = []
    for variant, metrics, tol, wav in ((f"{precision}-mel", mel_metrics, limits["mel"], None),
                                       (precision, wave_metrics, limits["wave"], audio)):
        rows.append(accuracy_row(component=CHAIN, variant=variant, backend=backend, metrics=metrics,
                                 failures=failures(metrics, tol), tolerances=tol, audio_seconds=seconds, audio=wav,
                                 **facts).to_dict())
    return rows
