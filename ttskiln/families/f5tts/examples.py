"""Seeded example requests for the ``dit`` graph (reference inputs at a profile point).

A graph batch of even size 2B is B requests packed for CFG (conditional rows, then
unconditional rows); an odd batch is that many conditional rows. Row 0 uses every frame,
the others a random valid length (their tail masked), each with a reference prefix of about
30 % of its frames, token ids drawn from the vocabulary, and a random flow time.
"""

from __future__ import annotations

import numpy as np

from ttskiln.families.f5tts.host import HostDims, dit_inputs


def reference_mel(batch: int, frames: int, mel_dim: int, rng: np.random.Generator) -> np.ndarray:
    """A log-mel-like [batch, frames, mel_dim] float32 in about [-11, 2]: spectral tilt, a slow
    loudness envelope and noise."""
    bins = np.linspace(0.0, 1.0, mel_dim, dtype=np.float32)[None, None, :]
    t = np.arange(frames, dtype=np.float32)[None, :, None]
    phase = rng.uniform(0.0, 2 * np.pi, size=(batch, 1, 1)).astype(np.float32)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * t / 40.0 + phase)
    mel = -2.0 - 6.0 * bins + 3.0 * envelope + 0.5 * rng.standard_normal((batch, frames, mel_dim))
    return np.clip(mel, -11.5, 2.0).astype(np.float32)


def example_inputs(dims: HostDims, batch: int, frames: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Graph inputs for ``batch`` rows of ``frames`` frames (see the module docstring)."""
    packed = batch >= 2 and batch % 2 == 0
    requests = batch // 2 if packed else batch
    lengths = np.full(requests, frames, dtype=np.int64)
    if requests > 1:
        lengths[1:] = rng.integers(max(1, frames // 2), frames + 1, size=requests - 1)
    positions = np.arange(frames)[None, :]
    mask = positions < lengths[:, None]
    ref_lens = np.maximum(1, lengths * 3 // 10)
    cond = np.where((positions < ref_lens[:, None])[..., None], reference_mel(requests, frames, dims.mel_dim, rng), 0.0)
    tokens = np.maximum(1, lengths // 3)
    text = np.full((requests, int(tokens.max())), -1, dtype=np.int64)
    for i, count in enumerate(tokens):
        text[i, :count] = rng.integers(0, dims.text_num_embeds, size=count)
    x = (rng.standard_normal((requests, frames, dims.mel_dim)) * mask[..., None]).astype(np.float32)
    time = rng.uniform(0.0, 1.0, size=requests).astype(np.float32)
    return dit_inputs(dims, x, cond.astype(np.float32), text, time, mask, cfg_infer=packed)
