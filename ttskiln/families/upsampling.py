"""The stage layout HiFi-GAN-style generators share (BigVGAN, GPT-SoVITS v4's vocoder).

Such a generator halves its channels at every transposed-convolution upsampler, and each
stage holds one residual block per kernel size. A config dataclass gets the derived sizes by
inheriting ``UpsamplingStages`` (it needs ``upsample_rates``, ``resblock_kernel_sizes`` and
``upsample_initial_channel``).
"""

from __future__ import annotations

import math


class UpsamplingStages:
    upsample_rates: tuple[int, ...]
    resblock_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int

    @property
    def hop_length(self) -> int:
        """Output samples per mel frame: the product of the upsample rates."""
        return math.prod(self.upsample_rates)

    @property
    def num_kernels(self) -> int:
        return len(self.resblock_kernel_sizes)

    def stage_channels(self, stage: int) -> int:
        """Channels after upsampler ``stage`` (0-based); stage -1 is conv_pre's output."""
        return self.upsample_initial_channel // (2 ** (stage + 1))

    @property
    def final_channels(self) -> int:
        return self.stage_channels(len(self.upsample_rates) - 1)
