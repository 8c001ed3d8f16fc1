"""``python -m ttskiln tortoise-generate``: text -> the GPT's mel codes and latents (.npy).

The text goes through Tortoise's front end with the user's tokenizer.json (``text.py``), gets
the one trailing 0 that ``TextToSpeech.tts`` appends, and runs through ``prefill`` and cached
``decode`` (ONNX Runtime with the exported graphs, exported on the fly when no files are
given, or PyTorch) until the stop token or ``max_new_tokens``. The latents are upstream's
``forward(..., return_latent=True)`` over the generated codes (stop token excluded): a
teacher-forced pass over the same graphs at mel positions 0..N-1.

Written into the output folder: ``text_ids.npy`` [T+1] (with the trailing 0), ``codes.npy``
[N] int64, ``latents.npy`` [N, D] float32 and ``cond_latent.npy`` [D]. The conditioning latent
is read from a .npy ([D] or [1, D], e.g. the autoregressive half of upstream's
``get_conditioning_latents``); without one, a seeded random stand-in is used (and said so).
Upstream's calm-token padding of the codes, the diffusion decoder and the vocoder are not
part of this.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError


def load_cond_latent(path: str | Path | None, dim: int, seed: int) -> tuple[np.ndarray, str]:
    if path is None:
        rng = np.random.default_rng(seed)
        return (0.6 * rng.standard_normal((1, dim))).astype(np.float32), f"seeded random stand-in (seed {seed})"
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"conditioning latent {path}: not a readable .npy ({exc})") from exc
    value = np.asarray(value, dtype=np.float32)
    if value.size != dim or value.ndim > 2:
        raise InputError(f"conditioning latent {path} has shape {list(value.shape)}; the model takes [{dim}] or [1, {dim}]")
    if not np.all(np.isfinite(value)):
        raise InputError(f"conditioning latent {path} holds NaN or infinite values")
    return value.reshape(1, dim), str(path)


def text_to_codes(
    checkpoint: str | Path,
    tokenizer: str | Path,
    text: str,
    out_dir: str | Path,
    *,
    options: dict[str, Any] | None = None,
    backend: str = "onnx",
    prefill_onnx: str | Path | None = None,
    decode_onnx: str | Path | None = None,
    cond_latent: str | Path | None = None,
    max_new_tokens: int | None = None,
    sampling: Any = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    from ttskiln.families import get_family
    from ttskiln.families.tortoise_gpt.generate import OrtRunner, Sampling, TorchRunner, generate_batch
    from ttskiln.families.tortoise_gpt.parity import export_graphs, teacher_forced_latents
    from ttskiln.families.tortoise_gpt.text import PAD_ID, TortoiseTokenizer

    if backend not in ("onnx", "torch"):
        raise InputError(f"backend must be 'onnx' or 'torch', got {backend!r}")
    if (prefill_onnx is None) != (decode_onnx is None):
        raise InputError("give both exported graphs (prefill and decode) or neither")
    family = get_family("tortoise_gpt")
    config = family.read_config(Path(checkpoint), options or {})
    cfg = family.config_of(config)
    ids = TortoiseTokenizer(tokenizer).encode(text)
    if not ids:
        raise InputError(f"text {text!r} gives no tokens")
    text_ids = np.asarray([ids + [PAD_ID]], dtype=np.int64)
    if text_ids.max() >= cfg.text_vocab:
        raise InputError(f"the tokenizer gives ids up to {text_ids.max()}; the model embeds {cfg.text_vocab} text tokens "
                         "(is tokenizer.json the model's own?)")
    cond, cond_source = load_cond_latent(cond_latent, cfg.model_dim, seed)
    steps = int(max_new_tokens or cfg.max_new_tokens)
    sampling = sampling or Sampling(seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        if backend == "torch" or prefill_onnx is None:
            model = family.load(Path(checkpoint), config)
        if backend == "torch":
            from ttskiln.runtime import set_torch_threads

            if threads:
                set_torch_threads(threads)
            runner: Any = TorchRunner(model)
        else:
            if prefill_onnx is None:
                paths = export_graphs(family, model, config, Path(tmp))
                prefill_onnx, decode_onnx = paths["prefill"], paths["decode"]
            for path in (prefill_onnx, decode_onnx):
                if not Path(path).is_file():
                    raise InputError(f"exported graph {path} not found")
            runner = OrtRunner.open(prefill_onnx, decode_onnx, threads)
        start = time.perf_counter()
        gen = generate_batch(runner, cfg, cond, text_ids, steps, sampling)
        seconds = time.perf_counter() - start
        tokens = gen.tokens[0]
        stops = np.flatnonzero(tokens == cfg.stop_mel_token)
        stopped = bool(stops.size)
        codes = tokens[: stops[0]] if stopped else tokens
        latents = (teacher_forced_latents(runner, cfg, cond, text_ids, codes[None])[0] if codes.size
                   else np.zeros((0, cfg.model_dim), np.float32))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "text_ids.npy", text_ids[0])
    np.save(out / "codes.npy", codes.astype(np.int64))
    np.save(out / "latents.npy", latents.astype(np.float32))
    np.save(out / "cond_latent.npy", cond[0])
    return {"text_ids": text_ids[0].tolist(), "codes": int(codes.size), "stopped": stopped, "latents": list(latents.shape),
            "cond_latent": cond_source, "backend": backend, "generate_seconds": seconds, "out_dir": str(out)}
