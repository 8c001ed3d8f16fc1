"""The GPT-SoVITS v4 vocoder configuration.

The released ``vocoder.pth`` carries no configuration: upstream hard-codes the ``Generator``
keyword arguments. A config here is that mapping (the same keys, as recorded in a parity
manifest) plus four ttskiln keys with defaults: ``sampling_rate`` (48000), ``spec_min`` /
``spec_max`` (-12 / 2, the CFM mel normalisation) and ``normalized_input`` (False; True adds
the ``vocoder_normalized`` component that takes the CFM-domain mel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError
from ttskiln.families.upsampling import CONVS_PER_DILATION_SET, UpsamplingStages

GENERATOR_KEYS = (
    "initial_channel",
    "resblock",
    "resblock_kernel_sizes",
    "resblock_dilation_sizes",
    "upsample_rates",
    "upsample_initial_channel",
    "upsample_kernel_sizes",
    "gin_channels",
    "is_bias",
)
EXTRA_KEYS = ("sampling_rate", "spec_min", "spec_max", "normalized_input")
CONV_PRE_KERNEL = 7
CONV_POST_KERNEL = 7

#: The released v4 vocoder (gsv-v4-pretrained/vocoder.pth): 14,425,409 parameters.
RELEASED_V4 = {
    "initial_channel": 100,
    "resblock": "1",
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "upsample_rates": [10, 6, 2, 2, 2],
    "upsample_initial_channel": 512,
    "upsample_kernel_sizes": [20, 12, 4, 4, 4],
    "gin_channels": 0,
    "is_bias": True,
}
DEFAULTS = {"sampling_rate": 48000, "spec_min": -12.0, "spec_max": 2.0, "normalized_input": False}


@dataclass(frozen=True)
class SovitsVocoderConfig(UpsamplingStages):
    n_mels: int
    resblock: str
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    upsample_rates: tuple[int, ...]
    upsample_initial_channel: int
    upsample_kernel_sizes: tuple[int, ...]
    is_bias: bool
    sampling_rate: int
    spec_min: float
    spec_max: float
    normalized_input: bool

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "sovits_v4 config") -> "SovitsVocoderConfig":
        """Parse and check a config mapping; raise CheckpointError naming the bad key."""
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - set(GENERATOR_KEYS) - set(EXTRA_KEYS))
        if unknown:
            raise CheckpointError(f"{source}: unknown keys {unknown}; known: {list(GENERATOR_KEYS + EXTRA_KEYS)}")
        missing = [k for k in GENERATOR_KEYS[:7] if k not in data]
        if missing:
            raise CheckpointError(f"{source}: missing Generator keys {missing}")
        if int(data.get("gin_channels", 0)) != 0:
            raise CheckpointError(
                f"{source}: gin_channels is {data['gin_channels']}; the v4 vocoder runs unconditioned "
                "(gin_channels 0) and ttskiln's graph has no speaker input"
            )
        merged = {**DEFAULTS, **data}
        try:
            cfg = cls(
                n_mels=int(merged["initial_channel"]),
                resblock=str(merged["resblock"]),
                resblock_kernel_sizes=tuple(int(v) for v in merged["resblock_kernel_sizes"]),
                resblock_dilation_sizes=tuple(tuple(int(d) for d in ds) for ds in merged["resblock_dilation_sizes"]),
                upsample_rates=tuple(int(v) for v in merged["upsample_rates"]),
                upsample_initial_channel=int(merged["upsample_initial_channel"]),
                upsample_kernel_sizes=tuple(int(v) for v in merged["upsample_kernel_sizes"]),
                # Upstream's Generator defaults is_bias to False; v4 always passes True.
                is_bias=bool(merged.get("is_bias", False)),
                sampling_rate=int(merged["sampling_rate"]),
                spec_min=float(merged["spec_min"]),
                spec_max=float(merged["spec_max"]),
                normalized_input=bool(merged["normalized_input"]),
            )
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: malformed values: {exc}") from exc
        cfg._check(source)
        return cfg

    def _check(self, source: str) -> None:
        self.check_stages(source)
        if not self.spec_max > self.spec_min:
            raise CheckpointError(f"{source}: spec_max {self.spec_max} must exceed spec_min {self.spec_min}")

    def parameter_count(self) -> int:
        """Parameters of the folded Generator (what vocoder.pth and the graph hold)."""
        need = CONVS_PER_DILATION_SET[self.resblock]
        convs_per_block = 2 * need if self.resblock == "1" else need
        total = self.n_mels * self.upsample_initial_channel * CONV_PRE_KERNEL + self.upsample_initial_channel
        for i, kernel in enumerate(self.upsample_kernel_sizes):
            c_in, c_out = self.stage_channels(i - 1), self.stage_channels(i)
            total += c_in * c_out * kernel + c_out
            for k in self.resblock_kernel_sizes:
                total += convs_per_block * (c_out * c_out * k + c_out)
        return total + self.final_channels * CONV_POST_KERNEL + (1 if self.is_bias else 0)


def make_config_dict(**overrides: Any) -> dict[str, Any]:
    """A config mapping: the released v4 Generator arguments and defaults, then ``overrides``."""
    data = {**RELEASED_V4, **DEFAULTS, **overrides}
    SovitsVocoderConfig.from_dict(data, "synthetic sovits_v4 config")
    return data
