"""The GPT-SoVITS v4 vocoder (a HiFi-GAN generator, 480x) in PyTorch, written for export.

Attribute names follow the released, already-folded state_dict (``conv_pre``, ``ups.{i}``,
``resblocks.{n}.convs1.{j}``, ``conv_post``), so ``vocoder.pth`` loads strictly. Shapes:
mel (B, n_mels, T) -> waveform (B, 1, T * hop_length).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ttskiln.families.sovits_v4.config import CONV_POST_KERNEL, CONV_PRE_KERNEL, SovitsVocoderConfig

#: Leaky-ReLU slope before every upsampler and inside the residual blocks.
STAGE_SLOPE = 0.1
#: The slope before conv_post is torch's default, not STAGE_SLOPE (as upstream).
POST_SLOPE = 0.01


def same_padding(kernel: int, dilation: int) -> int:
    """Padding that keeps the length of a stride-1 dilated convolution."""
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Three residual units lrelu -> dilated conv -> lrelu -> conv. (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        dilations = dilations[:3]
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=same_padding(kernel, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=same_padding(kernel, 1)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            y = dilated(F.leaky_relu(x, STAGE_SLOPE))
            y = plain(F.leaky_relu(y, STAGE_SLOPE))
            x = y + x
        return x


class ResBlock2(nn.Module):
    """Two residual units lrelu -> dilated conv. (B, C, T) -> (B, C, T)."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=same_padding(kernel, d)) for d in dilations[:2]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = conv(F.leaky_relu(x, STAGE_SLOPE)) + x
        return x


class SovitsGenerator(nn.Module):
    """conv_pre -> per stage: lrelu 0.1, transposed-conv upsampler, mean of residual blocks
    -> lrelu 0.01 -> conv_post -> tanh.

    (B, n_mels, T) -> (B, 1, T * prod(upsample_rates)).
    """

    def __init__(self, cfg: SovitsVocoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv_pre = nn.Conv1d(
            cfg.n_mels, cfg.upsample_initial_channel, CONV_PRE_KERNEL, 1, padding=CONV_PRE_KERNEL // 2
        )
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            c_in, c_out = cfg.stage_channels(i - 1), cfg.stage_channels(i)
            self.ups.append(nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2))
            for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(c_out, k, dilations))
        self.conv_post = nn.Conv1d(
            cfg.final_channels, 1, CONV_POST_KERNEL, 1, padding=CONV_POST_KERNEL // 2, bias=cfg.is_bias
        )

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """lrelu, upsampler ``i``, mean of its blocks: (B, C_i, L) -> (B, C_i / 2, L * rate_i)."""
        x = self.ups[i](F.leaky_relu(x, STAGE_SLOPE))
        n = self.cfg.num_kernels
        total = self.resblocks[i * n](x)
        for j in range(1, n):
            total = total + self.resblocks[i * n + j](x)
        return total / n

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """conv_pre and every stage: (B, n_mels, T) -> (B, final_channels, T * hop)."""
        x = self.conv_pre(mel)
        for i in range(len(self.ups)):
            x = self.stage(i, x)
        return x

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """lrelu 0.01 then conv_post, before tanh: (B, C, L) -> (B, 1, L)."""
        return self.conv_post(F.leaky_relu(x, POST_SLOPE))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.logits(self.features(mel)))


class DenormalizeMel(nn.Module):
    """GPT-SoVITS's ``denorm_spec``: CFM-domain mel in [-1, 1] -> natural-log mel.

    (x + 1) / 2 * (spec_max - spec_min) + spec_min, elementwise, in that order of operations.
    """

    def __init__(self, spec_min: float, spec_max: float) -> None:
        super().__init__()
        self.spec_min = spec_min
        self.spec_max = spec_max

    def forward(self, mel_norm: torch.Tensor) -> torch.Tensor:
        return (mel_norm + 1) / 2 * (self.spec_max - self.spec_min) + self.spec_min


class SovitsVocoder(nn.Module):
    """The exported ``vocoder`` graph: log mel (B, n_mels, T) -> audio (B, T * hop)."""

    def __init__(self, generator: SovitsGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)


class NormalizedMelVocoder(nn.Module):
    """The ``vocoder_normalized`` graph: CFM-domain mel (B, n_mels, T) -> audio (B, T * hop)."""

    def __init__(self, generator: SovitsGenerator) -> None:
        super().__init__()
        self.denormalize = DenormalizeMel(generator.cfg.spec_min, generator.cfg.spec_max)
        self.generator = generator

    def forward(self, mel_norm: torch.Tensor) -> torch.Tensor:
        return self.generator(self.denormalize(mel_norm)).squeeze(1)
