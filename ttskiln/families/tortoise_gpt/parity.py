"""Upstream parity for UnifiedVoice cases (``inference_speech`` greedy with kv_cache=True).

Both graphs are exported (dynamic batch/tokens) and the same host loop (``generate.py``)
runs over the PyTorch modules and over ONNX Runtime with I/O binding. Compared: the
conditioning latent (PyTorch), the prefill (next logits, final-norm hidden states, present
KV), every step's logits, the greedy tokens and the mel positions fed (exact), and the
diffusion latents (``forward(return_latent=True)``: on ONNX Runtime a teacher-forced decode at
positions 1..N-1 after the prefill).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.base import ParityCase, ParityCheck

TOLERANCE = 1e-4
NEEDED_INPUTS = ("cond_latent", "text_ids")
NEEDED_OUTPUTS = ("prefill_next_logits", "decode_tokens", "decode_step_logits")


def export_graphs(family: Any, model: Any, config: dict[str, Any], directory: Path, opset: int = 18) -> dict[str, Path]:
    """Export ``prefill`` and ``decode`` of a loaded model into ``directory``."""
    from ttskiln.onnx_export import export_module, finish_onnx

    info = family.describe(config)
    paths = {}
    for spec in info.components:
        example = family.make_inputs(info, spec.name, spec.trace_sizes, np.random.default_rng(0))
        path = Path(directory) / f"{spec.name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            export_module(family.component_module(model, spec.name), spec, example, path, opset, "dynamo")
        finish_onnx(path, spec, {})
        paths[spec.name] = path
    return paths


def teacher_forced_latents(runner: Any, cfg: Any, cond: np.ndarray, text: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Hidden states at [start, c_1..c_{N-1}] with mel positions 0..N-1 via prefill + decode."""
    b, n = codes.shape
    _, hidden = runner.prefill(cond, text, np.full(b, cfg.start_mel_token, dtype=np.int64))
    out = [hidden[:, -1]]
    for k in range(1, n):
        _, h = runner.decode(codes[:, k - 1], np.full(b, k, dtype=np.int64))
        out.append(h)
    return np.stack(out, 1)


def run_case(family: Any, case: ParityCase) -> list[ParityCheck]:
    import torch

    from ttskiln.families.tortoise_gpt.generate import OrtRunner, TorchRunner, generate_batch

    missing = [k for k in NEEDED_INPUTS if k not in case.inputs] + [k for k in NEEDED_OUTPUTS if k not in case.outputs]
    if missing:
        raise InputError(f"{case.directory}: inputs/outputs.npz lack {missing}")
    config = family.parity_config(case)
    cfg = family.config_of(config)
    model = family.load(case.directory, config)
    cond = case.inputs["cond_latent"].astype(np.float32)
    text = case.inputs["text_ids"].astype(np.int64)
    expected_tokens = case.outputs["decode_tokens"]
    steps = int(expected_tokens.shape[1])
    checks: list[ParityCheck] = []
    if "cond_mels" in case.inputs and "cond_latent" in case.outputs:
        with torch.inference_mode():
            got = model.conditioning(torch.from_numpy(case.inputs["cond_mels"].astype(np.float32))).numpy()
        checks.append(ParityCheck("cond_latent", "pytorch", got, case.outputs["cond_latent"], TOLERANCE))
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_graphs(family, model, config, Path(tmp))
        runners = {"pytorch": TorchRunner(model), "onnxruntime": OrtRunner.open(paths["prefill"], paths["decode"])}
        for backend, runner in runners.items():
            start = np.full(text.shape[0], cfg.start_mel_token, dtype=np.int64)
            logits, hidden = runner.prefill(cond, text, start)
            present = runner.cache()
            prefill_expect = {
                "prefill_next_logits": logits,
                "prefill_hidden_final_norm": hidden,
                "prefill_present_kv": present,
            }
            for name, value in prefill_expect.items():
                if name in case.outputs:
                    checks.append(ParityCheck(name, backend, value, case.outputs[name], TOLERANCE))
            gen = generate_batch(runner, cfg, cond, text, steps, stop_early=False)
            checks.append(ParityCheck("decode_tokens", backend, gen.tokens, expected_tokens.astype(np.int64), 0.0))
            checks.append(ParityCheck("decode_step_logits", backend, gen.step_logits, case.outputs["decode_step_logits"], TOLERANCE))
            if "decode_step_mel_pos" in case.outputs:
                fed = np.array([[0, *gen.positions]], dtype=np.int64)
                checks.append(ParityCheck("decode_step_mel_pos", backend, fed, case.outputs["decode_step_mel_pos"], 0.0))
            if "latents" in case.outputs:
                codes = expected_tokens.astype(np.int64)
                if backend == "pytorch":
                    with torch.inference_mode():
                        lat = model.latents(torch.from_numpy(cond), torch.from_numpy(text), torch.from_numpy(codes)).numpy()
                else:
                    lat = teacher_forced_latents(runner, cfg, cond, text, codes)
                checks.append(ParityCheck("latents", backend, lat, case.outputs["latents"], TOLERANCE))
    return checks
