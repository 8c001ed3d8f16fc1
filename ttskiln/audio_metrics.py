"""Audio-domain distances between a reference waveform and a candidate.

Tensor tolerances mislead for audio: a waveform can be close sample by sample and still be
wrong in its spectrum, or be shifted in phase and look far off while sounding the same. These
metrics compare magnitude spectra:

- ``mrstft``: multi-resolution STFT distance, the mean over three resolutions of spectral
  convergence (||S_ref - S||_F / ||S_ref||_F) plus the mean absolute log-magnitude difference.
- ``logmel_l1``: mean absolute difference of natural-log mel spectrograms (HTK mel, 80 bands,
  floor 1e-5).

Both are 0 for identical signals. Scaling a signal by ``a`` gives a log-mel L1 of ``|ln a|``
wherever the mel stays above the floor.
"""

from __future__ import annotations

import numpy as np

from ttskiln.ops.mel import mel_filterbank

#: (n_fft, hop) pairs; the window is a periodic Hann of n_fft.
RESOLUTIONS = ((512, 128), (1024, 256), (2048, 512))
MAG_FLOOR = 1e-7
MEL_FLOOR = 1e-5
AUDIO_METRICS = ("mrstft", "logmel_l1")


def stft_magnitude(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| of (..., samples) audio, centred with reflect padding: (..., frames, n_fft//2+1)."""
    audio = np.asarray(audio, dtype=np.float64)
    pad = n_fft // 2
    mode = "reflect" if audio.shape[-1] > pad else "constant"
    padded = np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(pad, pad)], mode=mode)
    n_frames = 1 + (padded.shape[-1] - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    return np.abs(np.fft.rfft(padded[..., index] * window, axis=-1))


def mrstft_distance(reference: np.ndarray, candidate: np.ndarray, resolutions=RESOLUTIONS) -> float:
    total = 0.0
    for n_fft, hop in resolutions:
        ref = stft_magnitude(reference, n_fft, hop)
        got = stft_magnitude(candidate, n_fft, hop)
        norm = np.linalg.norm(ref)
        convergence = np.linalg.norm(ref - got) / norm if norm > 0 else float(np.linalg.norm(got) > 0)
        log_diff = np.mean(np.abs(np.log(np.maximum(ref, MAG_FLOOR)) - np.log(np.maximum(got, MAG_FLOOR))))
        total += convergence + log_diff
    return float(total / len(resolutions))


def logmel_l1(reference: np.ndarray, candidate: np.ndarray, sample_rate: int, n_fft: int = 1024, hop: int = 256, n_mels: int = 80) -> float:
    fb = mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float64)
    ref = np.log(np.maximum(stft_magnitude(reference, n_fft, hop) @ fb, MEL_FLOOR))
    got = np.log(np.maximum(stft_magnitude(candidate, n_fft, hop) @ fb, MEL_FLOOR))
    return float(np.mean(np.abs(ref - got)))


def audio_metrics(reference: np.ndarray, candidate: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Both audio metrics for (batch, samples) or (samples,) waveforms of equal shape."""
    if np.shape(reference) != np.shape(candidate):
        raise ValueError(f"shapes differ: {np.shape(reference)} vs {np.shape(candidate)}")
    return {
        "mrstft": mrstft_distance(reference, candidate),
        "logmel_l1": logmel_l1(reference, candidate, sample_rate),
    }
