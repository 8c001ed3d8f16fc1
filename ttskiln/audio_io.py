"""Audio files in and out: any WAV/FLAC/OGG soundfile reads, as mono float32 at the model's rate.

``read_audio`` takes any bit depth (8/16/24/32-bit PCM, float, double) and any channel count;
channels are averaged into one, and a file at another rate is resampled with soxr (high
quality) to the rate asked for. ``AudioInfo`` keeps what the file was (rate, channels, sample
format, seconds) so callers can report it. ``write_audio`` writes mono audio as 16-bit PCM
(clipped to [-1, 1], scaled by 32767) or as 32-bit float, atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError

#: Output sample formats: 16-bit PCM (the default) or 32-bit float.
FORMATS = ("PCM_16", "FLOAT")


@dataclass(frozen=True)
class AudioInfo:
    """What a file held before it was made mono and resampled."""

    sample_rate: int
    channels: int
    subtype: str
    frames: int
    resampled_to: int | None = None

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate

    def as_dict(self) -> dict[str, Any]:
        return {"sample_rate": self.sample_rate, "channels": self.channels, "subtype": self.subtype,
                "seconds": round(self.seconds, 4), "resampled_to": self.resampled_to}

    def describe(self) -> str:
        how = f", resampled to {self.resampled_to} Hz" if self.resampled_to else ""
        return f"{self.sample_rate} Hz, {self.channels} channel(s), {self.subtype}, {self.seconds:.2f} s{how}"


def resample(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Mono float audio from ``rate`` to ``target`` Hz (soxr, high quality)."""
    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    import soxr

    return np.asarray(soxr.resample(np.asarray(audio, dtype=np.float32), rate, target), dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, AudioInfo]:
    """(mono float32 samples, what the file held); resampled to ``sample_rate`` when given."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file {path} not found")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        subtype = sf.info(str(path)).subtype
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise InputError(f"{path} is not an audio file soundfile reads ({str(exc).strip()})") from exc
    frames, channels = data.shape
    if frames == 0:
        raise InputError(f"{path} holds no samples")
    mono = data.mean(axis=1, dtype=np.float64).astype(np.float32) if channels > 1 else data[:, 0].copy()
    if not np.all(np.isfinite(mono)):
        raise InputError(f"{path} holds NaN or infinite samples")
    target = None
    if sample_rate is not None and int(sample_rate) != int(rate):
        target = int(sample_rate)
        mono = resample(mono, int(rate), target)
    return mono, AudioInfo(int(rate), int(channels), str(subtype), int(frames), target)


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write mono audio as a WAV file: 16-bit PCM (clipped) or 32-bit float, atomically."""
    import soundfile as sf

    from ttskiln.atomic import atomic_path

    if subtype not in FORMATS:
        raise InputError(f"audio output format must be one of {', '.join(FORMATS)}, got {subtype!r}")
    flat = np.asarray(audio, dtype=np.float64).reshape(-1)
    if subtype == "PCM_16":
        data: np.ndarray = (np.clip(flat, -1.0, 1.0) * 32767.0).round().astype(np.int16)
    else:
        data = flat.astype(np.float32)
    with atomic_path(path, suffix=".wav") as tmp:
        sf.write(str(tmp), data, int(sample_rate), subtype=subtype, format="WAV")
