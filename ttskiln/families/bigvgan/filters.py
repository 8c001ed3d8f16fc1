"""The Kaiser-windowed sinc low-pass filter of BigVGAN's anti-aliased activations.

Released checkpoints store the taps as buffers and the model uses the stored values; this
computation only fills synthetic checkpoints and freshly built modules.
"""

from __future__ import annotations

import math

import torch

#: The taps BigVGAN uses for its 2x resampling: cutoff 0.5/2, transition half-width 0.6/2.
RESAMPLE_RATIO = 2
FILTER_TAPS = 12
FILTER_CUTOFF = 0.5 / RESAMPLE_RATIO
FILTER_HALF_WIDTH = 0.6 / RESAMPLE_RATIO


def kaiser_beta(taps: int, half_width: float) -> float:
    """Kaiser's empirical beta for the attenuation a ``taps``-long filter reaches."""
    attenuation = 2.285 * (taps // 2 - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        return 0.1102 * (attenuation - 8.7)
    if attenuation >= 21.0:
        return 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    return 0.0


def kaiser_sinc_lowpass(
    cutoff: float = FILTER_CUTOFF, half_width: float = FILTER_HALF_WIDTH, taps: int = FILTER_TAPS
) -> torch.Tensor:
    """Low-pass taps, (1, 1, taps) float32, normalised to sum 1.

    ``cutoff`` is in cycles per sample (0.5 = Nyquist). Even ``taps`` centre the filter between
    two samples (times -n/2+0.5 .. n/2-0.5).
    """
    window = torch.kaiser_window(taps, beta=kaiser_beta(taps, half_width), periodic=False)
    half = taps // 2
    if taps % 2 == 0:
        times = torch.arange(-half, half) + 0.5
    else:
        times = (torch.arange(taps) - half).to(torch.float32)
    if cutoff == 0:
        return torch.zeros(1, 1, taps)
    taps_ = 2 * cutoff * window * torch.sinc(2 * cutoff * times)
    taps_ = taps_ / taps_.sum()
    return taps_.reshape(1, 1, taps)
