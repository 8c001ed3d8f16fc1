"""The stage layout HiFi-GAN-style generators share (BigVGAN, GPT-SoVITS v4's vocoder).

Such a generator halves its channels at every transposed-convolution upsampler, and each
stage holds one residual block per kernel size. A config dataclass gets the derived sizes by
inheriting ``UpsamplingStages`` (it needs ``upsample_rates``, ``resblock_kernel_sizes`` and
``upsample_initial_channel``).
"""

from __future__ import annotations

import math

from ttskiln.errors import CheckpointError

#: Dilated convolutions a residual block of each type holds (upstream uses the first N
#: dilations of each set).
CONVS_PER_DILATION_SET = {"1": 3, "2": 2}


class UpsamplingStages:
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_initial_channel: int

    def check_stages(self, source: str) -> None:
        """Raise CheckpointError naming the first inconsistency of the stage layout."""
        if self.resblock not in CONVS_PER_DILATION_SET:
            raise CheckpointError(f"{source}: resblock must be \"1\" or \"2\", got {self.resblock!r}")
        if not self.upsample_rates or len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise CheckpointError(
                f"{source}: upsample_rates {list(self.upsample_rates)} and upsample_kernel_sizes "
                f"{list(self.upsample_kernel_sizes)} must be non-empty and of equal length"
            )
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if rate < 1 or kernel < rate:
                raise CheckpointError(f"{source}: upsample kernel {kernel} must be >= its rate {rate} >= 1")
        if not self.resblock_kernel_sizes or len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise CheckpointError(
                f"{source}: resblock_kernel_sizes and resblock_dilation_sizes must be non-empty and of equal length"
            )
        need = CONVS_PER_DILATION_SET[self.resblock]
        short = [list(d) for d in self.resblock_dilation_sizes if len(d) < need]
        if short:
            raise CheckpointError(f"{source}: resblock {self.resblock} needs {need} dilations per kernel, got {short}")
        if self.final_channels < 1:
            raise CheckpointError(
                f"{source}: upsample_initial_channel {self.upsample_initial_channel} cannot be halved "
                f"{len(self.upsample_rates)} times"
            )

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
