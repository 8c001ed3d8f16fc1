"""BigVGAN's anti-aliased periodic activations: Snake / SnakeBeta between 2x resamplers.

Shapes are (B, C, T) -> (B, C, T) throughout. The resampling filters are depthwise kernels
held as non-persistent buffers, so the exported graph carries them as constants; the loader
fills them from the taps stored in the checkpoint (``set_taps``). Likewise the Snake scales are
derived once from the parameters (``refresh``). Padding is ``replicate``
(ONNX Pad mode ``edge``), which both the dynamo and the TorchScript exporter emit.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ttskiln.families.bigvgan.filters import FILTER_TAPS, RESAMPLE_RATIO, kaiser_sinc_lowpass

#: Added to the (exponentiated) scale before dividing, as upstream does.
SNAKE_EPS = 1e-9
#: Where an activation's taps live in the released state_dict, relative to the activation.
UPSAMPLE_TAPS_KEY = "upsample.filter"
DOWNSAMPLE_TAPS_KEY = "downsample.lowpass.filter"


class Snake(nn.Module):
    """x + 1/(a + eps) * sin(a x)^2 with a per-channel frequency ``alpha``. (B, C, T) -> (B, C, T).

    ``logscale``: ``alpha`` is stored as log(a). The forward pass reads two constants derived
    from the parameters, a (1, C, 1) and 1/(a + eps) (1, C, 1), so the exported graph holds
    them folded; ``refresh`` recomputes them (the loader calls it after loading weights).
    """

    def __init__(self, channels: int, logscale: bool) -> None:
        super().__init__()
        self.logscale = logscale
        self._add_parameters(channels)
        self.register_buffer("frequency", torch.ones(1, channels, 1), persistent=False)
        self.register_buffer("inverse_magnitude", torch.ones(1, channels, 1), persistent=False)
        self.refresh()

    def _initial(self, channels: int) -> nn.Parameter:
        """A parameter whose scale is 1: log 1 = 0 in log scale."""
        return nn.Parameter(torch.zeros(channels) if self.logscale else torch.ones(channels))

    def _add_parameters(self, channels: int) -> None:
        self.alpha = self._initial(channels)

    def _scale(self, param: torch.Tensor) -> torch.Tensor:
        value = param.detach().reshape(1, -1, 1)
        return torch.exp(value) if self.logscale else value

    def _magnitude(self) -> torch.Tensor:
        return self._scale(self.alpha)

    @torch.no_grad()
    def refresh(self) -> None:
        """Recompute the run-time constants from ``alpha`` (and ``beta``): exp, then + eps."""
        self.frequency = self._scale(self.alpha).clone()
        self.inverse_magnitude = 1.0 / (self._magnitude() + SNAKE_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inverse_magnitude * torch.sin(x * self.frequency) ** 2


class SnakeBeta(Snake):
    """x + 1/(b + eps) * sin(a x)^2: Snake with a separate per-channel magnitude ``beta``."""

    def _add_parameters(self, channels: int) -> None:
        super()._add_parameters(channels)
        self.beta = self._initial(channels)

    def _magnitude(self) -> torch.Tensor:
        return self._scale(self.beta)


class DepthwiseResampler(nn.Module):
    """Base of the 2x resamplers: one low-pass kernel per channel, (C, 1, taps), constant."""

    def __init__(self, channels: int, gain: float) -> None:
        super().__init__()
        self.channels = channels
        self.gain = gain
        self.register_buffer("kernel", self._kernel(kaiser_sinc_lowpass()), persistent=False)

    def _kernel(self, taps: torch.Tensor) -> torch.Tensor:
        taps = taps.reshape(1, 1, -1).to(torch.float32)
        return (self.gain * taps).expand(self.channels, 1, taps.shape[-1]).contiguous()

    def set_taps(self, taps: torch.Tensor) -> None:
        """Use ``taps`` (1, 1, 12), as stored in a checkpoint, for every channel."""
        if tuple(taps.shape) != (1, 1, FILTER_TAPS):
            raise ValueError(f"resampling taps must be [1, 1, {FILTER_TAPS}], got {list(taps.shape)}")
        self.kernel = self._kernel(taps.detach().cpu())


class Upsample2x(DepthwiseResampler):
    """Zero-stuffing 2x upsampler: edge-pad, strided transposed conv, crop. (B, C, T) -> (B, C, 2T).

    The gain of 2 that restores the level after zero stuffing is folded into the kernel
    (an exact power-of-two scaling).
    """

    PAD = FILTER_TAPS // RESAMPLE_RATIO - 1
    CROP_LEFT = PAD * RESAMPLE_RATIO + (FILTER_TAPS - RESAMPLE_RATIO) // 2
    CROP_RIGHT = PAD * RESAMPLE_RATIO + (FILTER_TAPS - RESAMPLE_RATIO + 1) // 2

    def __init__(self, channels: int) -> None:
        super().__init__(channels, gain=float(RESAMPLE_RATIO))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.PAD, self.PAD), mode="replicate")
        x = F.conv_transpose1d(x, self.kernel, stride=RESAMPLE_RATIO, groups=self.channels)
        return x[..., self.CROP_LEFT : -self.CROP_RIGHT]


class Downsample2x(DepthwiseResampler):
    """Low-pass then keep every second sample: edge-pad (5 left, 6 right), strided depthwise conv.

    (B, C, 2T) -> (B, C, T).
    """

    PAD_LEFT = FILTER_TAPS // 2 - 1
    PAD_RIGHT = FILTER_TAPS // 2

    def __init__(self, channels: int) -> None:
        super().__init__(channels, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.PAD_LEFT, self.PAD_RIGHT), mode="replicate")
        return F.conv1d(x, self.kernel, stride=RESAMPLE_RATIO, groups=self.channels)


class AntiAliasedActivation(nn.Module):
    """Upsample 2x, apply the periodic activation, low-pass and downsample 2x.

    (B, C, T) -> (B, C, T). ``act`` holds the released ``alpha``/``beta`` parameters.
    """

    def __init__(self, act: Snake) -> None:
        super().__init__()
        channels = act.alpha.shape[0]
        self.act = act
        self.upsample = Upsample2x(channels)
        self.downsample = Downsample2x(channels)

    def set_taps(self, upsample_taps: torch.Tensor, downsample_taps: torch.Tensor) -> None:
        self.upsample.set_taps(upsample_taps)
        self.downsample.set_taps(downsample_taps)

    def refresh(self) -> None:
        """Recompute the activation's constants after its parameters changed."""
        self.act.refresh()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


def make_activation(kind: str, channels: int, logscale: bool) -> AntiAliasedActivation:
    """An anti-aliased ``snake`` or ``snakebeta`` over ``channels`` channels."""
    act = SnakeBeta(channels, logscale) if kind == "snakebeta" else Snake(channels, logscale)
    return AntiAliasedActivation(act)
