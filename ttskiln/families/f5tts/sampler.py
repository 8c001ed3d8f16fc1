"""Flow-matching sampling on the host (upstream ``CFM.sample`` with the Euler solver).

The loop is numpy and drives any velocity function (``backends.DitVelocity`` over PyTorch,
ONNX Runtime, ...). What it does, in upstream's float32 operation order:

1. durations: ``max(max(text tokens, reference frames) + 1, duration)``, clamped to
   ``max_duration``; the batch runs at the longest, with a frame mask per row;
2. conditioning: the reference mel zero-padded to that length, zero from each row's
   reference length on;
3. noise: standard normal [duration_i, M] per row, zero-padded (give ``noise`` to reuse a
   recorded draw, or ``upstream_noise`` to draw it with torch as upstream does);
4. time grid: EPSS for 5, 6, 7, 10, 12 or 16 steps, else ``linspace(0, 1, steps + 1)``;
   then sway ``t + s (cos(pi t / 2) - 1 + t)`` (float32; within an ulp of torch's values);
5. Euler: ``y <- y + (t_{k+1} - t_k) v(t_k, y)`` with
   ``v = c + (c - u) * cfg_strength`` from one packed conditional/unconditional call, or
   the conditional flow alone when ``cfg_strength < 1e-5``;
6. output: reference frames copied from the conditioning, the rest from the final state.

Typical use::

    from ttskiln.families.f5tts.backends import onnx_velocity
    from ttskiln.families.f5tts.sampler import sample
    result = sample(onnx_velocity("dit.onnx", config), ref_mel, ids, duration=400, steps=32)
    mel = result.out[:, ref_frames:]          # [B, frames, 100] log-mel for the vocoder
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ttskiln.errors import InputError

#: Empirically pruned step sampling: time grids (in 1/32) for low step counts.
EPSS_GRIDS: dict[int, tuple[int, ...]] = {
    5: (0, 2, 4, 8, 16, 32),
    6: (0, 2, 4, 6, 8, 16, 32),
    7: (0, 2, 4, 6, 8, 16, 24, 32),
    10: (0, 2, 4, 6, 8, 12, 16, 20, 24, 28, 32),
    12: (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 28, 32),
    16: (0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32),
}
GUIDANCE_MIN = 1e-5
MAX_DURATION = 65536


class Velocity(Protocol):
    def __call__(self, x: np.ndarray, cond: np.ndarray, text: np.ndarray, time: np.ndarray,
                 mask: np.ndarray | None, *, guidance: bool) -> np.ndarray: ...


@dataclass(frozen=True)
class SampleResult:
    """``out`` [B, T, M]: the mel with the reference frames restored; ``trajectory``
    [steps + 1, B, T, M]: the ODE states (index 0 = noise) or None; ``times`` [steps + 1];
    ``durations`` [B] and ``ref_lens`` [B] in frames (T = max duration)."""

    out: np.ndarray
    trajectory: np.ndarray | None
    times: np.ndarray
    durations: np.ndarray
    ref_lens: np.ndarray


def time_grid(steps: int, sway_sampling_coef: float | None = -1.0, use_epss: bool = True) -> np.ndarray:
    """The ``steps + 1`` flow times (float32), from 0 to 1."""
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    if use_epss and steps in EPSS_GRIDS:
        t = np.float32(1.0 / 32) * np.asarray(EPSS_GRIDS[steps], dtype=np.float32)
    else:
        t = np.linspace(0.0, 1.0, steps + 1).astype(np.float32)
    if sway_sampling_coef is not None:
        s = np.float32(sway_sampling_coef)
        t = t + s * (np.cos(np.float32(np.pi / 2) * t) - np.float32(1.0) + t)
    return t.astype(np.float32)


def total_durations(text: np.ndarray, ref_lens: np.ndarray, duration: int | Sequence[int],
                    max_duration: int = MAX_DURATION) -> np.ndarray:
    """Frames per row: at least the text tokens or reference frames plus one."""
    tokens = (np.asarray(text) != -1).sum(axis=-1)
    wanted = np.broadcast_to(np.asarray(duration, dtype=np.int64).reshape(-1), tokens.shape)
    return np.minimum(np.maximum(np.maximum(tokens, ref_lens) + 1, wanted), max_duration).astype(np.int64)


def initial_noise(durations: np.ndarray, mel_dim: int, rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise [B, max(durations), M] (float32), zero past each row's duration."""
    noise = np.zeros((len(durations), int(np.max(durations)), mel_dim), dtype=np.float32)
    for i, frames in enumerate(durations):
        noise[i, :frames] = rng.standard_normal((int(frames), mel_dim), dtype=np.float32)
    return noise


def upstream_noise(durations: Sequence[int], mel_dim: int, seed: int) -> np.ndarray:
    """The noise upstream draws with ``seed``: ``torch.manual_seed(seed); torch.randn(d, M)``
    for every row, zero-padded. Uses a private torch generator (global RNG untouched)."""
    import torch

    durations = [int(d) for d in durations]
    noise = np.zeros((len(durations), max(durations), mel_dim), dtype=np.float32)
    for i, frames in enumerate(durations):
        gen = torch.Generator().manual_seed(seed)
        noise[i, :frames] = torch.randn(frames, mel_dim, generator=gen).numpy()
    return noise


def sample(
    velocity: Velocity,
    cond: np.ndarray,
    text: np.ndarray,
    duration: int | Sequence[int],
    *,
    lens: Sequence[int] | np.ndarray | None = None,
    steps: int = 32,
    cfg_strength: float = 2.0,
    sway_sampling_coef: float | None = -1.0,
    use_epss: bool = True,
    noise: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    max_duration: int = MAX_DURATION,
    keep_trajectory: bool = True,
    on_step: Callable[[int, float, np.ndarray, np.ndarray], None] | None = None,
) -> SampleResult:
    """Generate mel frames after a reference.

    cond [B, n_ref, M] reference log-mel; text [B, nt] token ids of reference + new text
    (-1 = pad); duration: total frames wanted (int or one per row, reference included);
    lens: reference frames per row (default n_ref). Defaults (32 steps, CFG 2, sway -1) are
    those of upstream's inference pipeline. ``noise`` [B, T, M] replaces the random draw
    (T = the longest duration); otherwise ``rng`` (default: a fresh unseeded generator) draws
    it. ``on_step(k, t_k, x_k, flow)`` sees every network call (flow is the packed output).
    """
    cond = np.asarray(cond, dtype=np.float32)
    if cond.ndim != 3:
        raise InputError(f"cond must be [batch, frames, mel], got shape {list(cond.shape)}")
    text = np.asarray(text, dtype=np.int64)
    if text.ndim != 2 or text.shape[0] != cond.shape[0]:
        raise InputError(f"text must be [batch, tokens] with batch {cond.shape[0]}, got {list(text.shape)}")
    batch, ref_frames, mel_dim = cond.shape
    ref_lens = np.full(batch, ref_frames, dtype=np.int64) if lens is None else np.asarray(lens, dtype=np.int64)
    durations = total_durations(text, ref_lens, duration, max_duration)
    frames = int(durations.max())

    padded = np.zeros((batch, frames, mel_dim), dtype=np.float32)
    keep = min(frames, ref_frames)
    padded[:, :keep] = cond[:, :keep]
    positions = np.arange(frames)[None, :]
    ref_mask = (positions < ref_lens[:, None])[..., None]
    step_cond = np.where(ref_mask, padded, np.float32(0.0))
    mask = positions < durations[:, None]

    if noise is None:
        noise = initial_noise(durations, mel_dim, rng if rng is not None else np.random.default_rng())
    noise = np.asarray(noise, dtype=np.float32)
    if noise.shape != (batch, frames, mel_dim):
        raise InputError(f"noise must be [{batch}, {frames}, {mel_dim}], got {list(noise.shape)}")

    times = time_grid(steps, sway_sampling_coef, use_epss)
    guidance = cfg_strength >= GUIDANCE_MIN
    strength = np.float32(cfg_strength)
    y = noise
    states = [y] if keep_trajectory else None
    for k in range(len(times) - 1):
        t = np.full(batch, times[k], dtype=np.float32)
        flow = np.asarray(velocity(y, step_cond, text, t, mask, guidance=guidance), dtype=np.float32)
        if on_step is not None:
            on_step(k, float(times[k]), y, flow)
        if guidance:
            c, u = flow[:batch], flow[batch:]
            v = c + (c - u) * strength
        else:
            v = flow
        y = y + (times[k + 1] - times[k]) * v
        if states is not None:
            states.append(y)
    out = np.where(ref_mask, padded, y)
    trajectory = np.stack(states) if states is not None else None
    return SampleResult(out=out, trajectory=trajectory, times=times, durations=durations, ref_lens=ref_lens)


def estimate_duration(ref_samples: int, ref_text: str, gen_text: str, *, speed: float = 1.0,
                      hop_length: int = 256) -> int:
    """Upstream's total frame estimate: reference frames plus the new text at the
    reference's bytes-per-frame rate (speed 0.3 when the new text is under 10 bytes)."""
    ref_len = ref_samples // hop_length
    ref_bytes = len(ref_text.encode("utf-8"))
    gen_bytes = len(gen_text.encode("utf-8"))
    if ref_bytes == 0:
        raise InputError("the reference text is empty; the duration estimate divides by its length")
    local_speed = 0.3 if gen_bytes < 10 else speed
    return ref_len + int(ref_len / ref_bytes * gen_bytes / local_speed)
