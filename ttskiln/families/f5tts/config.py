"""The F5-TTS configuration: the ``model:`` block of upstream's YAML plus what the files add.

A configuration is a plain mapping (it travels through Snakemake params)::

    model:                    # laid out like upstream src/f5_tts/configs/*.yaml, block `model`
      name: F5TTS_v1_Base
      tokenizer: custom
      tokenizer_path: vocab.txt
      backbone: DiT
      arch: {dim: 1024, depth: 22, heads: 16, ff_mult: 2, text_dim: 512, ...}
      mel_spec: {target_sample_rate: 24000, n_mel_channels: 100, hop_length: 256, ...}
    text_num_embeds: 2545     # tokens in vocab.txt (the table has one more row)
    weights: model_1250000.safetensors   # file name, relative to the checkpoint folder
    vocab: vocab.txt          # relative to the checkpoint folder (or absolute)

``F5Config`` is the validated, typed view the code uses.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError

#: Upstream DiT constructor defaults (a YAML ``arch`` block overrides them).
ARCH_DEFAULTS: dict[str, Any] = {
    "dim": None,
    "depth": 8,
    "heads": 8,
    "dim_head": 64,
    "ff_mult": 4,
    "text_dim": None,
    "text_mask_padding": True,
    "text_embedding_average_upsampling": False,
    "qk_norm": None,
    "conv_layers": 0,
    "pe_attn_head": None,
    "attn_backend": "torch",
    "attn_mask_enabled": False,
    "long_skip_connection": False,
    "checkpoint_activations": False,
    "dropout": 0.1,
}
MEL_DEFAULTS: dict[str, Any] = {
    "target_sample_rate": 24000,
    "n_mel_channels": 100,
    "hop_length": 256,
    "win_length": 1024,
    "n_fft": 1024,
    "mel_spec_type": "vocos",
}
#: Fixed sizes inside the network (not configurable upstream).
TIME_SINUSOID_DIM = 256
TEXT_CONV_MULT = 2
TEXT_CONV_KERNEL = 7
CONV_POS_KERNEL = 31
CONV_POS_GROUPS = 16
#: Upstream precomputes the text position table for this many frames; longer inputs fail there.
TEXT_MAX_POSITIONS = 8192

V1_ARCH = {
    "dim": 1024,
    "depth": 22,
    "heads": 16,
    "ff_mult": 2,
    "text_dim": 512,
    "text_mask_padding": True,
    "qk_norm": None,
    "conv_layers": 4,
    "pe_attn_head": None,
    "attn_backend": "torch",
    "attn_mask_enabled": False,
    "checkpoint_activations": False,
}
#: Synthetic presets: name -> (arch, text_num_embeds, weights file name).
PRESETS: dict[str, dict[str, Any]] = {
    # SWivid/F5-TTS F5TTS_v1_Base: 337,096,804 parameters, vocab of 2545 tokens.
    "F5TTS_v1_Base": {"arch": dict(V1_ARCH), "text_num_embeds": 2545, "weights": "model_1250000.safetensors"},
    # The v0 release (F5TTS_Base): no filler masking in the text ConvNeXt, RoPE on head 0 only.
    "F5TTS_Base": {
        "arch": {k: v for k, v in V1_ARCH.items() if k != "qk_norm"} | {"text_mask_padding": False, "pe_attn_head": 1},
        "text_num_embeds": 2545,
        "weights": "model_1200000.safetensors",
    },
    # The fixture's size: v1 options, ~190k parameters.
    "tiny": {
        "arch": V1_ARCH | {"dim": 64, "depth": 2, "heads": 2, "dim_head": 32, "text_dim": 32, "conv_layers": 1},
        "text_num_embeds": 40,
        "weights": "model_1250000.safetensors",
    },
    # v1 options at 835,492 parameters (released vocabulary size): the pipeline demo.
    "demo": {
        "arch": V1_ARCH | {"dim": 128, "depth": 2, "heads": 2, "dim_head": 64, "text_dim": 64, "conv_layers": 1},
        "text_num_embeds": 2545,
        "weights": "model_1250000.safetensors",
    },
}


@dataclass(frozen=True)
class F5Config:
    """The DiT architecture and its I/O sizes, validated."""

    name: str
    dim: int
    depth: int
    heads: int
    dim_head: int
    ff_mult: float
    text_dim: int
    text_mask_padding: bool
    qk_norm: str | None
    conv_layers: int
    pe_attn_head: int | None
    attn_mask_enabled: bool
    long_skip_connection: bool
    text_num_embeds: int
    mel_dim: int
    sample_rate: int
    hop_length: int
    mel_spec_type: str
    weights: str
    vocab: str

    @property
    def ff_inner(self) -> int:
        return int(self.dim * self.ff_mult)

    @property
    def inner_dim(self) -> int:
        return self.heads * self.dim_head

    @property
    def text_inner(self) -> int:
        return self.text_dim * TEXT_CONV_MULT

    @classmethod
    def from_dict(cls, config: dict[str, Any], source: str = "f5tts config") -> "F5Config":
        if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
            raise CheckpointError(f"{source}: no 'model' block (expected upstream's model: layout)")
        model = config["model"]
        arch = normalize_arch(model.get("arch") or {}, source)
        mel = normalize_mel_spec(model.get("mel_spec") or {}, source)
        if model.get("backbone", "DiT") != "DiT":
            raise CheckpointError(
                f"{source}: backbone {model.get('backbone')!r}; ttskiln's f5tts family implements DiT only"
            )
        for key in ("text_num_embeds", "weights", "vocab"):
            if key not in config:
                raise CheckpointError(f"{source}: missing {key!r}")
        mel_dim = int(mel["n_mel_channels"])
        return cls(
            name=str(model.get("name", "f5tts")),
            dim=arch["dim"],
            depth=arch["depth"],
            heads=arch["heads"],
            dim_head=arch["dim_head"],
            ff_mult=arch["ff_mult"],
            text_dim=arch["text_dim"] if arch["text_dim"] is not None else mel_dim,
            text_mask_padding=arch["text_mask_padding"],
            qk_norm=arch["qk_norm"],
            conv_layers=arch["conv_layers"],
            pe_attn_head=arch["pe_attn_head"],
            attn_mask_enabled=arch["attn_mask_enabled"],
            long_skip_connection=arch["long_skip_connection"],
            text_num_embeds=int(config["text_num_embeds"]),
            mel_dim=mel_dim,
            sample_rate=int(mel["target_sample_rate"]),
            hop_length=int(mel["hop_length"]),
            mel_spec_type=str(mel["mel_spec_type"]),
            weights=str(config["weights"]),
            vocab=str(config["vocab"]),
        )


def normalize_arch(arch: dict[str, Any], source: str) -> dict[str, Any]:
    """Upstream defaults filled in, types checked, unsupported options refused."""
    if not isinstance(arch, dict):
        raise CheckpointError(f"{source}: model.arch must be a mapping")
    unknown = sorted(set(arch) - set(ARCH_DEFAULTS))
    if unknown:
        raise CheckpointError(f"{source}: unknown DiT arch options {unknown}; known: {sorted(ARCH_DEFAULTS)}")
    out = {**ARCH_DEFAULTS, **arch}
    try:
        if out["dim"] is None:
            raise CheckpointError(f"{source}: model.arch.dim is required")
        for key in ("dim", "depth", "heads", "dim_head", "conv_layers"):
            out[key] = int(out[key])
        out["ff_mult"] = float(out["ff_mult"])
        if out["text_dim"] is not None:
            out["text_dim"] = int(out["text_dim"])
        if out["pe_attn_head"] is not None:
            out["pe_attn_head"] = int(out["pe_attn_head"])
        for key in ("text_mask_padding", "attn_mask_enabled", "long_skip_connection",
                    "text_embedding_average_upsampling", "checkpoint_activations"):
            out[key] = bool(out[key])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad model.arch value: {exc}") from exc
    if out["ff_mult"] == int(out["ff_mult"]):
        out["ff_mult"] = int(out["ff_mult"])
    if out["text_embedding_average_upsampling"]:
        raise CheckpointError(
            f"{source}: text_embedding_average_upsampling=True is not supported (its upsampling is a "
            "data-dependent per-sample loop); no released F5-TTS model uses it"
        )
    if out["qk_norm"] not in (None, "rms_norm"):
        raise CheckpointError(f"{source}: qk_norm must be null or 'rms_norm', got {out['qk_norm']!r}")
    if out["attn_backend"] not in ("torch", "flash_attn"):
        raise CheckpointError(f"{source}: attn_backend must be 'torch' or 'flash_attn', got {out['attn_backend']!r}")
    if min(out["dim"], out["depth"], out["heads"], out["dim_head"]) < 1 or out["conv_layers"] < 0:
        raise CheckpointError(f"{source}: dim, depth, heads and dim_head must be positive, conv_layers >= 0")
    if out["dim_head"] % 2:
        raise CheckpointError(f"{source}: dim_head {out['dim_head']} must be even (rotary pairs)")
    if out["dim"] % CONV_POS_GROUPS:
        raise CheckpointError(f"{source}: dim {out['dim']} must be a multiple of {CONV_POS_GROUPS} (grouped conv)")
    pn = out["pe_attn_head"]
    if pn is not None and not 0 < pn <= out["heads"]:
        raise CheckpointError(f"{source}: pe_attn_head {pn} must be in 1..heads ({out['heads']})")
    return out


def normalize_mel_spec(mel: dict[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(mel, dict):
        raise CheckpointError(f"{source}: model.mel_spec must be a mapping")
    unknown = sorted(set(mel) - set(MEL_DEFAULTS))
    if unknown:
        raise CheckpointError(f"{source}: unknown mel_spec options {unknown}; known: {sorted(MEL_DEFAULTS)}")
    out = {**MEL_DEFAULTS, **mel}
    if out["mel_spec_type"] not in ("vocos", "bigvgan"):
        raise CheckpointError(f"{source}: mel_spec_type must be 'vocos' or 'bigvgan', got {out['mel_spec_type']!r}")
    return out


def model_block(name: str, arch: dict[str, Any], mel_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``model:`` block in upstream's layout (what config.yaml holds)."""
    return {
        "name": name,
        "tokenizer": "custom",
        "tokenizer_path": "vocab.txt",
        "backbone": "DiT",
        "arch": dict(arch),
        "mel_spec": {**MEL_DEFAULTS, **(mel_spec or {})},
    }


def preset_config(preset: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The configuration of a preset. ``overrides`` may set any arch key, ``text_num_embeds``,
    ``n_mel_channels``, ``name`` or ``weights``."""
    if preset not in PRESETS:
        raise CheckpointError(f"unknown f5tts preset {preset!r}; choose from {sorted(PRESETS)}")
    spec = copy.deepcopy(PRESETS[preset])
    overrides = dict(overrides or {})
    name = str(overrides.pop("name", preset))
    text_num_embeds = int(overrides.pop("text_num_embeds", spec["text_num_embeds"]))
    weights = str(overrides.pop("weights", spec["weights"]))
    mel = {}
    if "n_mel_channels" in overrides:
        mel["n_mel_channels"] = int(overrides.pop("n_mel_channels"))
    unknown = sorted(set(overrides) - set(ARCH_DEFAULTS))
    if unknown:
        raise CheckpointError(
            f"f5tts overrides {unknown} are not arch options; known: {sorted(ARCH_DEFAULTS)} "
            "and text_num_embeds, n_mel_channels, name, weights"
        )
    arch = {**spec["arch"], **overrides}
    config = {
        "model": model_block(name, arch, mel),
        "text_num_embeds": text_num_embeds,
        "weights": weights,
        "vocab": "vocab.txt",
    }
    F5Config.from_dict(config, f"f5tts preset {preset!r}")
    if text_num_embeds < 1:
        raise CheckpointError(f"text_num_embeds must be positive, got {text_num_embeds}")
    return config


def parameter_count(cfg: F5Config) -> int:
    """Trainable parameters of the DiT (the ``inv_freq`` buffer not counted)."""
    d, td, ti, mel = cfg.dim, cfg.text_dim, cfg.text_inner, cfg.mel_dim
    time = TIME_SINUSOID_DIM * d + d + d * d + d
    text_block = (td * TEXT_CONV_KERNEL + td) + 2 * td + (td * ti + ti) + 2 * ti + (ti * td + td)
    text = (cfg.text_num_embeds + 1) * td + (cfg.conv_layers * text_block)
    conv_pos = 2 * (d * (d // CONV_POS_GROUPS) * CONV_POS_KERNEL + d)
    inp = (2 * mel + td) * d + d + conv_pos
    inner, ffi = cfg.inner_dim, cfg.ff_inner
    block = (d * 6 * d + 6 * d) + 3 * (d * inner + inner) + (inner * d + d) + (d * ffi + ffi) + (ffi * d + d)
    if cfg.qk_norm == "rms_norm":
        block += 2 * cfg.dim_head
    skip = 2 * d * d if cfg.long_skip_connection else 0
    out = (d * 2 * d + 2 * d) + (d * mel + mel)
    return time + text + inp + cfg.depth * block + skip + out
