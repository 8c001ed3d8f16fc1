"""Chunked vocoding: a long mel in overlapping windows, cross-faded into one waveform.

Engines have a maximum length; users need longer audio. The mel (B, n_mels, T) is cut into
windows of ``window`` frames that overlap by ``overlap`` frames. Each window is vocoded on its
own; window i's sample j lands at absolute sample ``start_i * hop + j`` (true for vocoders whose
output is ``frames * hop`` or ``(frames - 1) * hop`` samples). Where two windows overlap, a
linear cross-fade of ``crossfade`` frames sits in the middle of the overlap, so each side keeps
``(overlap - crossfade) / 2`` frames of context: with that context at least the vocoder's
receptive field, the chunked output equals the full-length output up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ttskiln.errors import ConfigError

BOUNDARY_MIN_FRAMES = 4


@dataclass(frozen=True)
class Chunking:
    window: int
    overlap: int
    crossfade: int

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.window:
            raise ConfigError(f"chunking needs 0 <= overlap < window, got overlap {self.overlap}, window {self.window}")
        if not 0 <= self.crossfade <= self.overlap or (self.overlap - self.crossfade) % 2:
            raise ConfigError(
                f"chunking needs crossfade <= overlap with an even difference, got crossfade {self.crossfade}, overlap {self.overlap}"
            )

    def spans(self, n_frames: int) -> list[tuple[int, int]]:
        """Frame spans [start, end) covering ``n_frames``; the last one is moved back so that
        every window is full length (when the input is at least one window long)."""
        if n_frames <= self.window:
            return [(0, n_frames)]
        stride = self.window - self.overlap
        spans = []
        start = 0
        while True:
            end = start + self.window
            if end >= n_frames:
                spans.append((max(0, n_frames - self.window), n_frames))
                break
            spans.append((start, end))
            start += stride
        return spans


def _fade_zones(spans: list[tuple[int, int]], crossfade: int) -> list[tuple[int, int]]:
    """For each junction between span i and i+1: the cross-fade zone [a, b) in frames."""
    zones = []
    for (_, end), (start, _) in zip(spans, spans[1:]):
        middle = (start + end) / 2
        zones.append((int(round(middle - crossfade / 2)), int(round(middle + crossfade / 2))))
    return zones


def chunked_run(
    run: Callable[[np.ndarray], np.ndarray], mel: np.ndarray, chunking: Chunking, hop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Vocode (B, n_mels, T) in chunks with ``run`` (mel chunk -> (B, samples) audio).

    Returns the audio and a boolean mask of the samples near chunk boundaries (each overlap
    region, or 4 frames either side of a cut without overlap), so that errors there and away
    from them can be reported separately.
    """
    n_frames = mel.shape[-1]
    spans = chunking.spans(n_frames)
    zones = _fade_zones(spans, chunking.crossfade)
    pieces = [np.asarray(run(np.ascontiguousarray(mel[..., a:b]))) for a, b in spans]
    total = max(a * hop + p.shape[-1] for (a, _), p in zip(spans, pieces))
    audio = np.zeros(pieces[0].shape[:-1] + (total,), dtype=np.float64)
    weight_sum = np.zeros(total)
    for i, ((a, _), piece) in enumerate(zip(spans, pieces)):
        n = piece.shape[-1]
        pos = a * hop + np.arange(n)
        weight = np.ones(n)
        if i > 0:
            weight *= _ramp(pos, zones[i - 1], hop, rising=True)
        if i < len(spans) - 1:
            weight *= _ramp(pos, zones[i], hop, rising=False)
        audio[..., pos] += weight * piece
        weight_sum[pos] += weight
    audio /= np.where(weight_sum > 0, weight_sum, 1.0)
    boundary = np.zeros(total, dtype=bool)
    margin = max((chunking.overlap - chunking.crossfade) // 2, BOUNDARY_MIN_FRAMES)
    for lo, hi in zones:
        boundary[max((lo - margin) * hop, 0) : min((hi + margin) * hop, total)] = True
    return audio.astype(np.float32), boundary


def _ramp(pos: np.ndarray, zone: tuple[int, int], hop: int, rising: bool) -> np.ndarray:
    lo, hi = zone[0] * hop, zone[1] * hop
    if hi <= lo:  # no cross-fade: a hard cut in the middle of the overlap
        up = (pos >= lo).astype(np.float64)
    else:
        up = np.clip((pos - lo + 0.5) / (hi - lo), 0.0, 1.0)
    return up if rising else 1.0 - up


def boundary_errors(reference: np.ndarray, audio: np.ndarray, boundary: np.ndarray) -> dict[str, float | None]:
    """Max abs error of chunked vs full-length audio at the chunk boundaries and elsewhere."""
    diff = np.abs(np.asarray(audio, np.float64) - np.asarray(reference, np.float64))
    return {
        "boundary_max_abs_err": float(diff[..., boundary].max()) if boundary.any() else None,
        "interior_max_abs_err": float(diff[..., ~boundary].max()) if (~boundary).any() else None,
    }
