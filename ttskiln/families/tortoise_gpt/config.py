"""The UnifiedVoice configuration: the constructor arguments of upstream's model.

The released ``autoregressive.pth`` carries no configuration; ``tortoise/api.py`` builds the
model with fixed arguments (preset ``tortoise_v2``). A config dict in ttskiln is
``{"unified_voice": {<constructor keyword>: value, ...}, "weights": <file name>}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ttskiln.errors import CheckpointError, ConfigError

WEIGHTS_FILE = "autoregressive.pth"
SPEC_DIM = 80
COND_ATTN_BLOCKS = 6
SAMPLE_RATE = 22050


@dataclass(frozen=True)
class TortoiseConfig:
    """UnifiedVoice constructor arguments (upstream names and defaults) that shape the weights."""

    layers: int = 8
    model_dim: int = 512
    heads: int = 8
    max_text_tokens: int = 120
    max_mel_tokens: int = 250
    max_conditioning_inputs: int = 1
    mel_length_compression: int = 1024
    number_text_tokens: int = 256
    start_text_token: int | None = None
    number_mel_codes: int = 8194
    start_mel_token: int = 8192
    stop_mel_token: int = 8193
    train_solo_embeddings: bool = False
    use_mel_codes_as_input: bool = True
    checkpointing: bool = True
    types: int = 1

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "tortoise_gpt config") -> "TortoiseConfig":
        block = data.get("unified_voice") if isinstance(data, dict) else None
        if not isinstance(block, dict):
            raise CheckpointError(f"{source}: no 'unified_voice' mapping of UnifiedVoice arguments")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(block) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown UnifiedVoice arguments {unknown}; known: {sorted(known)}")
        try:
            cfg = cls(**block)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc
        cfg.check(source)
        return cfg

    def check(self, source: str) -> None:
        if self.model_dim % self.heads:
            raise ConfigError(f"{source}: model_dim {self.model_dim} is not a multiple of heads {self.heads}")
        if self.train_solo_embeddings:
            raise ConfigError(f"{source}: train_solo_embeddings=True is not supported (the released model uses False)")
        if not self.use_mel_codes_as_input:
            raise ConfigError(f"{source}: use_mel_codes_as_input=False (mel encoder input) is not supported")
        for name in ("start_mel_token", "stop_mel_token"):
            if not 0 <= getattr(self, name) < self.number_mel_codes:
                raise ConfigError(f"{source}: {name} {getattr(self, name)} outside 0..{self.number_mel_codes - 1}")
        if self.model_dim < 16 or self.model_dim % group_count(self.model_dim):
            raise ConfigError(f"{source}: model_dim {self.model_dim} does not fit the conditioning GroupNorm")

    # -- derived sizes (as upstream computes them) -------------------------------------------
    @property
    def start_text(self) -> int:
        return self.number_text_tokens * self.types if self.start_text_token is None else self.start_text_token

    @property
    def text_vocab(self) -> int:
        return self.number_text_tokens * self.types + 1

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.heads

    @property
    def mel_positions(self) -> int:
        return self.max_mel_tokens + 2 + self.max_conditioning_inputs

    @property
    def text_positions(self) -> int:
        return self.max_text_tokens + 2

    @property
    def n_positions(self) -> int:
        return self.mel_positions + self.text_positions

    @property
    def max_new_tokens(self) -> int:
        """Most tokens one generation may produce (upstream's default max length)."""
        return self.max_mel_tokens - 1

    def to_dict(self, weights: str = WEIGHTS_FILE) -> dict[str, Any]:
        return {"unified_voice": asdict(self), "weights": weights}


def group_count(channels: int) -> int:
    """GroupNorm groups of the conditioning encoder (upstream's ``normalization``)."""
    groups = 32
    if channels <= 16:
        groups = 8
    elif channels <= 64:
        groups = 16
    while channels % groups:
        groups //= 2
    return groups


#: Presets: UnifiedVoice keyword arguments.
PRESETS: dict[str, dict[str, Any]] = {
    # tortoise/api.py: the released autoregressive.pth (about 420M parameters).
    "tortoise_v2": {
        "layers": 30, "model_dim": 1024, "heads": 16, "max_text_tokens": 402, "max_mel_tokens": 604,
        "max_conditioning_inputs": 2, "number_text_tokens": 255, "start_text_token": 255,
        "checkpointing": False, "train_solo_embeddings": False,
    },
    # The parity fixture's size (uv_small).
    "tiny": {
        "layers": 2, "model_dim": 64, "heads": 4, "max_text_tokens": 40, "max_mel_tokens": 60,
        "max_conditioning_inputs": 1, "number_text_tokens": 50, "start_text_token": 50,
        "number_mel_codes": 64, "start_mel_token": 62, "stop_mel_token": 63, "checkpointing": False,
    },
    # Small enough for the pipeline demo on two cores, with the released vocabularies.
    "demo": {
        "layers": 4, "model_dim": 256, "heads": 8, "max_text_tokens": 100, "max_mel_tokens": 200,
        "max_conditioning_inputs": 1, "number_text_tokens": 255, "start_text_token": 255,
        "number_mel_codes": 8194, "start_mel_token": 8192, "stop_mel_token": 8193, "checkpointing": False,
    },
}


def preset_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    if preset not in PRESETS:
        raise ConfigError(f"unknown tortoise_gpt preset {preset!r}; choose from {sorted(PRESETS)}")
    data = {"unified_voice": {**asdict(TortoiseConfig()), **PRESETS[preset], **(overrides or {})}, "weights": WEIGHTS_FILE}
    TortoiseConfig.from_dict(data, f"tortoise_gpt preset {preset!r}")
    return data


def parameter_count(cfg: TortoiseConfig) -> int:
    d, f = cfg.model_dim, 4 * cfg.model_dim
    cond = (SPEC_DIM * d + d) + COND_ATTN_BLOCKS * (2 * d + (d * 3 * d + 3 * d) + (d * d + d))
    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + 2 * d + (d * f + f) + (f * d + d)
    gpt = cfg.layers * block + 2 * d
    emb = cfg.text_vocab * d + cfg.number_mel_codes * d + cfg.mel_positions * d + cfg.text_positions * d
    heads = 2 * d + (d * cfg.text_vocab + cfg.text_vocab) + (d * cfg.number_mel_codes + cfg.number_mel_codes)
    return cond + gpt + emb + heads
