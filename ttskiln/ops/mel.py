"""Mel filterbanks (HTK scale, no normalisation), as torchaudio's MelScale builds them."""

from __future__ import annotations

import math

import numpy as np


def hz_to_mel(freq: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(freq, dtype=np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(
    sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0, f_max: float | None = None
) -> np.ndarray:
    """Triangular HTK mel filters, (n_fft // 2 + 1, n_mels), float32."""
    f_max = sample_rate / 2 if f_max is None else f_max
    freqs = np.linspace(0, sample_rate // 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    return np.maximum(0.0, np.minimum(down, up)).astype(np.float32)


def synthetic_clamped_log_mel(
    batch: int,
    n_mels: int,
    frames: int,
    rng: np.random.Generator,
    *,
    offset: float,
    tilt: float,
    noise: float,
    ceiling: float,
) -> np.ndarray:
    """A natural-log mel (B, n_mels, frames) in the HiFi-GAN-style domain ln(clamp(M, 1e-5)):
    spectral tilt, a slow loudness envelope and noise, clipped to [ln 1e-5, ceiling].
    Deterministic for ``rng``."""
    bins = np.linspace(0.0, 1.0, n_mels)[None, :, None]
    t = np.arange(frames)[None, None, :]
    phase = rng.uniform(0, 2 * math.pi, size=(batch, 1, 1))
    envelope = np.sin(2 * math.pi * t / max(frames, 8) * 2 + phase)
    mel = offset - tilt * bins + 1.5 * envelope + noise * rng.standard_normal((batch, n_mels, frames))
    return np.clip(mel, math.log(1e-5), ceiling).astype(np.float32)
