"""The ``generate`` chain: prefill + N decode steps over the exported graphs.

Validation (one row, variant ``fp32``): greedy generation on ONNX Runtime with I/O binding
(batch and prompt length of the point; seeded random conditioning latents and text), then the
full uncached PyTorch forward over the same token sequence at the same mel positions. Every
step's logits and final-norm hidden state are compared; the row records the per-step max abs
error (``step_max_abs_err``) and the worst over all steps as ``max_abs_err`` (plus cosine / SNR
over all steps), checked against the model's tolerances.

Benchmark (four rows): ``fp32-prefill`` (prefill at the point's prompt length) and
``fp32-decode`` (one decode step with the cache fed back, every step of a few N-step
generations; p50 per token and tokens/s for the whole batch), each on ONNX Runtime (I/O binding) and PyTorch eager
(with its cache). ``speedup_vs_torch`` is on the ONNX Runtime rows.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ttskiln.errors import ConfigError
from ttskiln.families.base import ChainJob
from ttskiln.families.tortoise_gpt.config import SAMPLE_RATE, TortoiseConfig
from ttskiln.families.tortoise_gpt.generate import generated_position

DEFAULT_STEPS = 16
ORT_BACKEND = "onnxruntime-cpu"
TORCH_BACKEND = "pytorch-eager"


def chain_prompts(cfg: TortoiseConfig, batch: int, tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded conditioning latents [B, D] and text ids [B, tokens]."""
    rng = np.random.default_rng([seed, batch, tokens])
    cond = (0.6 * rng.standard_normal((batch, cfg.model_dim))).astype(np.float32)
    text = rng.integers(1, cfg.number_text_tokens, size=(batch, tokens)).astype(np.int64)
    return cond, text


def time_generation(runner: Any, cfg: TortoiseConfig, cond: np.ndarray, text: np.ndarray, steps: int,
                    warmup: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(prefill, per-token decode) latency. Prefill: ``repeats`` timed calls after ``warmup``.
    Decode: every step of ceil(repeats / 4) generations of ``steps`` tokens after a prefill
    (one untimed generation first), each step feeding its cache and greedy token to the next."""
    from ttskiln.benchmark import latency_stats, time_calls

    b = text.shape[0]
    start = np.full(b, cfg.start_mel_token, dtype=np.int64)
    prefill = time_calls(lambda: runner.prefill(cond, text, start), warmup, repeats)
    decode_ms = []
    runs = max(1, math.ceil(repeats / 4))
    for r in range(1 + runs):
        logits, _ = runner.prefill(cond, text, start)
        for k in range(1, steps + 1):
            token = logits.argmax(-1).astype(np.int64)
            position = np.full(b, generated_position(k), dtype=np.int64)
            s0 = time.perf_counter()
            logits, _ = runner.decode(token, position)
            if r:
                decode_ms.append((time.perf_counter() - s0) * 1e3)
    return prefill, latency_stats(np.array(decode_ms))


def run_generate_chain(family: Any, job: ChainJob) -> list[dict[str, Any]]:
    import torch

    from ttskiln.families.tortoise_gpt.generate import OrtRunner, TorchRunner, check_lengths, generate_batch
    from ttskiln.metrics import failures, tensor_metrics
    from ttskiln.runtime import set_torch_threads

    cfg = TortoiseConfig.from_dict(job.config)
    missing = [c for c in ("prefill", "decode") if c not in job.artifacts]
    if missing:
        raise ConfigError(f"chain generate needs the fp32 ONNX of {missing}")
    batch, tokens = int(job.sizes.get("batch", 1)), int(job.sizes["tokens"])
    steps = min(int(job.options.get("decode_steps", job.config.get("decode_steps", DEFAULT_STEPS))), cfg.max_new_tokens)
    check_lengths(cfg, tokens, steps)
    threads = int(job.bench.get("threads", 1))
    warmup, repeats = int(job.bench.get("warmup", 1)), int(job.bench.get("repeats", 3))
    tolerances = {**family.default_tolerances, **job.tolerances}

    set_torch_threads(threads)
    model = family.load(job.checkpoint, job.config)
    ort_runner = OrtRunner.open(job.artifacts["prefill"], job.artifacts["decode"], threads)
    torch_runner = TorchRunner(model)
    cond, text = chain_prompts(cfg, batch, tokens, job.seed)
    shape = {"cond_latent": [batch, cfg.model_dim], "text_ids": [batch, tokens]}

    # -- accuracy: cached ONNX generation vs the full PyTorch forward, at every step -----------
    gen = generate_batch(ort_runner, cfg, cond, text, steps, stop_early=False)
    n = gen.tokens.shape[1]
    fed = np.concatenate([np.full((batch, 1), cfg.start_mel_token, np.int64), gen.tokens[:, :-1]], 1)
    positions = np.array([0] + [k + 1 for k in range(1, n)], dtype=np.int64)[None].repeat(batch, 0)
    with torch.inference_mode():
        ref_logits, ref_hidden = model.full(torch.from_numpy(cond), torch.from_numpy(text),
                                            torch.from_numpy(fed), torch.from_numpy(positions))
    ref_logits, ref_hidden = ref_logits.numpy(), ref_hidden.numpy()
    step_err = [
        float(max(np.abs(gen.step_logits[:, k] - ref_logits[:, k]).max(), np.abs(gen.step_hidden[:, k] - ref_hidden[:, k]).max()))
        for k in range(n)
    ]
    metrics = tensor_metrics(np.concatenate([ref_logits.ravel(), ref_hidden.ravel()]),
                             np.concatenate([gen.step_logits.ravel(), gen.step_hidden.ravel()]))
    metrics["max_abs_err"] = max(step_err)
    torch_tokens = generate_batch(torch_runner, cfg, cond, text, steps, stop_early=False).tokens
    broken = failures(metrics, tolerances)
    rows: list[dict[str, Any]] = [{
        "component": job.chain,
        "variant": "fp32",
        "backend": ORT_BACKEND,
        "io_binding": True,
        "shape": shape,
        **metrics,
        "step_max_abs_err": step_err,
        "steps": n,
        "tokens": gen.tokens.tolist(),
        "tokens_equal_torch_cached": bool(np.array_equal(torch_tokens, gen.tokens)),
        "tolerances": tolerances,
        "passed": not broken,
        "failures": broken,
    }]

    # -- latency: prefill and per-token decode, ORT (I/O binding) vs PyTorch with cache --------
    timings = {
        backend: time_generation(runner, cfg, cond, text, steps, warmup, repeats)
        for backend, runner in ((TORCH_BACKEND, torch_runner), (ORT_BACKEND, ort_runner))
    }
    step_audio = batch * cfg.mel_length_compression / SAMPLE_RATE  # seconds of audio one step adds
    for index, variant in enumerate(("fp32-prefill", "fp32-decode")):
        base = timings[TORCH_BACKEND][index]["p50_ms"]
        for backend in (TORCH_BACKEND, ORT_BACKEND):
            stats = timings[backend][index]
            row = {
                "component": job.chain,
                "variant": variant,
                "backend": backend,
                "io_binding": backend == ORT_BACKEND,
                "passed": None,  # latency rows; the fp32 row above carries the accuracy verdict
                "shape": shape if index == 0 else {**shape, "past": [cfg.layers, 2, batch, cfg.heads, f"{tokens + 4}..{tokens + 3 + steps}", cfg.head_dim]},
                **stats,
                "speedup_vs_torch": (base / stats["p50_ms"]) if backend == ORT_BACKEND and stats["p50_ms"] else (1.0 if backend == TORCH_BACKEND else None),
                "threads": threads,
                "warmup": warmup,
                "repeats": repeats,
            }
            if index == 1:
                row.update({
                    "steps": steps,
                    "tokens_per_s": batch * 1e3 / stats["p50_ms"],
                    "audio_seconds": step_audio,
                    "rtf": stats["p50_ms"] / 1e3 / step_audio,
                })
            else:
                row.update({"prompt_tokens": tokens, "rtf": None})
            rows.append(row)
    return rows
