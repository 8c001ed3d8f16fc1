"""Reference audio to the conditioning mel, as upstream's inference does it (numpy only).

* ``normalize_reference``: mono downmix, then a gain up to RMS 0.1 when quieter (the
  generated audio is scaled back by ``1 / gain`` at the end). Resampling is the caller's:
  the audio must already be at the model's rate (24 kHz).
* ``log_mel``: the "vocos" mel, torchaudio ``MelSpectrogram`` with n_fft 1024, Hann window
  1024 (periodic), hop 256, ``center=True`` reflect padding, power 1, 100 HTK bands without
  normalisation from 0 Hz to Nyquist; then ``log(clamp(mel, 1e-5))``. Frames:
  ``samples // hop + 1``. Layout [B, frames, n_mels], as the DiT takes it. The "bigvgan" mel
  (another STFT setup) is not implemented.
"""

from __future__ import annotations

import numpy as np

from ttskiln.errors import InputError
from ttskiln.ops.mel import mel_filterbank

TARGET_RMS = 0.1
LOG_FLOOR = 1e-5


def normalize_reference(audio: np.ndarray, sample_rate: int, target_rate: int = 24000) -> tuple[np.ndarray, float]:
    """(mono float32 [samples], gain applied). ``audio`` is [samples] or [channels, samples]."""
    if sample_rate != target_rate:
        raise InputError(f"reference audio is {sample_rate} Hz; resample it to {target_rate} Hz first")
    wave = np.asarray(audio, dtype=np.float32)
    if wave.ndim == 2:
        wave = wave.mean(axis=0)
    if wave.ndim != 1 or wave.size == 0:
        raise InputError(f"reference audio must be [samples] or [channels, samples], got shape {list(np.shape(audio))}")
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    gain = TARGET_RMS / rms if 0.0 < rms < TARGET_RMS else 1.0
    return (wave * np.float32(gain)).astype(np.float32), gain


def log_mel(audio: np.ndarray, *, sample_rate: int = 24000, n_fft: int = 1024, hop_length: int = 256,
            n_mels: int = 100) -> np.ndarray:
    """[samples] or [B, samples] -> [B, samples // hop + 1, n_mels] float32 natural-log mel."""
    wave = np.atleast_2d(np.asarray(audio, dtype=np.float64))
    pad = n_fft // 2
    if wave.shape[-1] <= pad:
        raise InputError(f"reference audio of {wave.shape[-1]} samples is too short for reflect padding ({pad})")
    padded = np.pad(wave, ((0, 0), (pad, pad)), mode="reflect")
    frames = wave.shape[-1] // hop_length + 1
    index = np.arange(n_fft)[None, :] + hop_length * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    magnitude = np.abs(np.fft.rfft(padded[:, index] * window, axis=-1))
    mel = magnitude @ mel_filterbank(sample_rate, n_fft, n_mels).astype(np.float64)
    return np.log(np.maximum(mel, LOG_FLOOR)).astype(np.float32)
