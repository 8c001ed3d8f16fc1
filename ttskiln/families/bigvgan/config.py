"""The BigVGAN configuration: the released ``config.json`` (upstream's hyper-parameter layout).

Only the generator and audio keys matter here; training keys in a released file are ignored.
v1 files lack ``use_tanh_at_final`` / ``use_bias_at_final``; both then default to true
(tanh output, a ``conv_post`` bias), as upstream does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError
from ttskiln.families.upsampling import CONVS_PER_DILATION_SET, UpsamplingStages

ACTIVATIONS = ("snake", "snakebeta")
CONV_PRE_KERNEL = 7
CONV_POST_KERNEL = 7


@dataclass(frozen=True)
class BigVGANConfig(UpsamplingStages):
    num_mels: int
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    activation: str
    snake_logscale: bool
    use_tanh_at_final: bool
    use_bias_at_final: bool
    sampling_rate: int

    @classmethod
    def from_json_dict(cls, data: dict[str, Any], source: str = "config.json") -> "BigVGANConfig":
        """Parse and check a config mapping; raise CheckpointError naming the bad key."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a JSON object, got {type(data).__name__}")
        required = (
            "num_mels", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
            "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes", "activation",
            "snake_logscale", "sampling_rate",
        )
        missing = [k for k in required if k not in data]
        if missing:
            raise CheckpointError(f"{source}: missing keys {missing} (not a BigVGAN generator config)")
        try:
            cfg = cls(
                num_mels=int(data["num_mels"]),
                upsample_rates=tuple(int(v) for v in data["upsample_rates"]),
                upsample_kernel_sizes=tuple(int(v) for v in data["upsample_kernel_sizes"]),
                upsample_initial_channel=int(data["upsample_initial_channel"]),
                resblock=str(data["resblock"]),
                resblock_kernel_sizes=tuple(int(v) for v in data["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in data["resblock_dilation_sizes"]),
                activation=str(data["activation"]),
                snake_logscale=bool(data["snake_logscale"]),
                use_tanh_at_final=bool(data.get("use_tanh_at_final", True)),
                use_bias_at_final=bool(data.get("use_bias_at_final", True)),
                sampling_rate=int(data["sampling_rate"]),
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: malformed generator keys: {exc}") from exc
        cfg._check(source, data.get("hop_size"))
        return cfg

    def _check(self, source: str, hop_size: Any) -> None:
        if self.activation not in ACTIVATIONS:
            raise CheckpointError(f"{source}: activation must be one of {ACTIVATIONS}, got {self.activation!r}")
        self.check_stages(source)
        if hop_size is not None and int(hop_size) != self.hop_length:
            raise CheckpointError(
                f"{source}: hop_size {hop_size} != product of upsample_rates {list(self.upsample_rates)} "
                f"({self.hop_length})"
            )

    # -- sizes ---------------------------------------------------------------------------------
    def parameter_count(self) -> int:
        """Parameters after weight norm is folded (what the exported graph holds)."""
        snake_params = 2 if self.activation == "snakebeta" else 1
        need = CONVS_PER_DILATION_SET[self.resblock]
        convs_per_block = 2 * need if self.resblock == "1" else need
        total = self.num_mels * self.upsample_initial_channel * CONV_PRE_KERNEL + self.upsample_initial_channel
        for i, kernel in enumerate(self.upsample_kernel_sizes):
            c_in, c_out = self.stage_channels(i - 1), self.stage_channels(i)
            total += c_in * c_out * kernel + c_out
            for k in self.resblock_kernel_sizes:
                total += convs_per_block * (c_out * c_out * k + c_out + snake_params * c_out)
        ch = self.final_channels
        total += snake_params * ch + ch * CONV_POST_KERNEL + (1 if self.use_bias_at_final else 0)
        return total

    def weight_norm_extra(self) -> int:
        """Extra parameters of the weight-norm layout: one ``g`` per output (Conv1d) or input
        (ConvTranspose1d) channel of every weight-normed layer."""
        need = CONVS_PER_DILATION_SET[self.resblock]
        convs_per_block = 2 * need if self.resblock == "1" else need
        extra = self.upsample_initial_channel + 1  # conv_pre, conv_post
        for i in range(len(self.upsample_rates)):
            extra += self.stage_channels(i - 1)
            extra += self.num_kernels * convs_per_block * self.stage_channels(i)
        return extra


def make_config_dict(
    *,
    num_mels: int = 100,
    upsample_rates: list[int] | tuple[int, ...] = (4, 4, 2, 2, 2, 2),
    upsample_kernel_sizes: list[int] | tuple[int, ...] = (8, 8, 4, 4, 4, 4),
    upsample_initial_channel: int = 1536,
    resblock: str = "1",
    resblock_kernel_sizes: list[int] | tuple[int, ...] = (3, 7, 11),
    resblock_dilation_sizes: list[list[int]] | tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
    activation: str = "snakebeta",
    snake_logscale: bool = True,
    use_tanh_at_final: bool | None = False,
    use_bias_at_final: bool | None = False,
    sampling_rate: int = 24000,
    n_fft: int = 1024,
    win_size: int = 1024,
    fmin: int = 0,
    fmax: int | None = None,
) -> dict[str, Any]:
    """A ``config.json`` mapping in the released layout (defaults: bigvgan_v2_24khz_100band_256x).

    ``use_tanh_at_final`` / ``use_bias_at_final`` set to None leave the key out (a v1 file).
    """
    data: dict[str, Any] = {
        "resblock": str(resblock),
        "upsample_rates": list(upsample_rates),
        "upsample_kernel_sizes": list(upsample_kernel_sizes),
        "upsample_initial_channel": int(upsample_initial_channel),
        "resblock_kernel_sizes": list(resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in resblock_dilation_sizes],
    }
    if use_tanh_at_final is not None:
        data["use_tanh_at_final"] = bool(use_tanh_at_final)
    if use_bias_at_final is not None:
        data["use_bias_at_final"] = bool(use_bias_at_final)
    data.update(
        {
            "activation": activation,
            "snake_logscale": bool(snake_logscale),
            "num_mels": int(num_mels),
            "num_freq": n_fft // 2 + 1,
            "n_fft": int(n_fft),
            "hop_size": math.prod(upsample_rates),
            "win_size": int(win_size),
            "sampling_rate": int(sampling_rate),
            "fmin": fmin,
            "fmax": fmax,
            "fmax_for_loss": None,
        }
    )
    BigVGANConfig.from_json_dict(data, "synthetic config")
    return data
