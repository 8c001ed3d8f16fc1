"""The BigVGAN generator in PyTorch, weight norm already folded, written for export.

Attribute names follow the released state_dict (``ups.{i}.0``, ``resblocks.{n}.convs1.{j}``,
``...activations.{m}.act.alpha``), so folded weights load strictly. Shapes: mel
(B, num_mels, T) -> waveform (B, 1, T * hop_length).
"""

from __future__ import annotations

import torch
from torch import nn

from ttskiln.families.bigvgan.activations import AntiAliasedActivation, make_activation
from ttskiln.families.bigvgan.config import CONV_POST_KERNEL, CONV_PRE_KERNEL, BigVGANConfig


def same_padding(kernel: int, dilation: int) -> int:
    """Padding that keeps the length of a stride-1 dilated convolution."""
    return (kernel * dilation - dilation) // 2


class AMPBlock1(nn.Module):
    """Three residual units act -> dilated conv -> act -> conv, summed into the input.

    (B, C, T) -> (B, C, T). Activation 2j precedes ``convs1[j]``, 2j+1 precedes ``convs2[j]``.
    """

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        dilations = dilations[:3]
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=same_padding(kernel, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=1, padding=same_padding(kernel, 1)) for _ in dilations
        )
        self.activations = nn.ModuleList(
            make_activation(cfg.activation, channels, cfg.snake_logscale) for _ in range(2 * len(dilations))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for j, (dilated, plain) in enumerate(zip(self.convs1, self.convs2)):
            y = dilated(self.activations[2 * j](x))
            y = plain(self.activations[2 * j + 1](y))
            x = y + x
        return x


class AMPBlock2(nn.Module):
    """Two residual units act -> dilated conv, summed into the input. (B, C, T) -> (B, C, T)."""

    def __init__(self, cfg: BigVGANConfig, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        dilations = dilations[:2]
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, 1, dilation=d, padding=same_padding(kernel, d)) for d in dilations
        )
        self.activations = nn.ModuleList(
            make_activation(cfg.activation, channels, cfg.snake_logscale) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, act in zip(self.convs, self.activations):
            x = conv(act(x)) + x
        return x


class BigVGANGenerator(nn.Module):
    """conv_pre -> per stage: transposed-conv upsampler, mean of AMP blocks -> activation_post
    -> conv_post -> tanh or clamp to [-1, 1].

    (B, num_mels, T) -> (B, 1, T * prod(upsample_rates)).
    """

    def __init__(self, cfg: BigVGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.conv_pre = nn.Conv1d(
            cfg.num_mels, cfg.upsample_initial_channel, CONV_PRE_KERNEL, 1, padding=CONV_PRE_KERNEL // 2
        )
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        block = AMPBlock1 if cfg.resblock == "1" else AMPBlock2
        for i, (rate, kernel) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            c_in, c_out = cfg.stage_channels(i - 1), cfg.stage_channels(i)
            upsampler = nn.ConvTranspose1d(c_in, c_out, kernel, rate, padding=(kernel - rate) // 2)
            self.ups.append(nn.ModuleList([upsampler]))
            for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(cfg, c_out, k, dilations))
        ch = cfg.final_channels
        self.activation_post = make_activation(cfg.activation, ch, cfg.snake_logscale)
        self.conv_post = nn.Conv1d(
            ch, 1, CONV_POST_KERNEL, 1, padding=CONV_POST_KERNEL // 2, bias=cfg.use_bias_at_final
        )

    def stage(self, i: int, x: torch.Tensor) -> torch.Tensor:
        """Upsampler ``i`` then the mean of its AMP blocks: (B, C_i, L) -> (B, C_i / 2, L * rate_i)."""
        for layer in self.ups[i]:
            x = layer(x)
        n = self.cfg.num_kernels
        total = self.resblocks[i * n](x)
        for j in range(1, n):
            total = total + self.resblocks[i * n + j](x)
        return total / n

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """conv_pre and every stage: (B, num_mels, T) -> (B, final_channels, T * hop)."""
        x = self.conv_pre(mel)
        for i in range(len(self.ups)):
            x = self.stage(i, x)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """activation_post, conv_post and the output squashing: (B, C, L) -> (B, 1, L)."""
        x = self.conv_post(self.activation_post(x))
        if self.cfg.use_tanh_at_final:
            return torch.tanh(x)
        return torch.clamp(x, min=-1.0, max=1.0)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(mel))

    def anti_aliased_activations(self) -> list[tuple[str, AntiAliasedActivation]]:
        """(state_dict prefix, module) of every anti-aliased activation, in module order."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, AntiAliasedActivation)]

    def weight_normed_layers(self) -> list[tuple[str, nn.Module]]:
        """(prefix, module) of every layer the released file stores as weight_g / weight_v:
        all Conv1d and ConvTranspose1d modules (the resamplers are functional, not layers)."""
        return [(name, m) for name, m in self.named_modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d))]


class BigVGANVocoder(nn.Module):
    """The exported graph: mel (B, num_mels, T) -> audio (B, T * hop)."""

    def __init__(self, generator: BigVGANGenerator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator(mel).squeeze(1)
