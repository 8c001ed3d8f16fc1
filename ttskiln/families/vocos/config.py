"""The Vocos configuration: the released ``config.yaml`` (class_path/init_args per part)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError

BACKBONE = "vocos.models.VocosBackbone"
HEAD = "vocos.heads.ISTFTHead"
MEL_FEATURES = "vocos.feature_extractors.MelSpectrogramFeatures"


@dataclass(frozen=True)
class VocosConfig:
    n_mels: int
    dim: int
    intermediate_dim: int
    num_layers: int
    layer_scale: bool
    n_fft: int
    hop_length: int
    padding: str
    sample_rate: int
    fe_n_fft: int
    fe_hop_length: int
    fe_padding: str

    @classmethod
    def from_yaml_dict(cls, data: dict[str, Any], source: str = "config.yaml") -> "VocosConfig":
        def part(key: str, class_path: str) -> dict[str, Any]:
            entry = data.get(key) if isinstance(data, dict) else None
            if not isinstance(entry, dict) or "init_args" not in entry:
                raise CheckpointError(f"{source}: no '{key}' with class_path/init_args (not a Vocos config)")
            if entry.get("class_path") != class_path:
                raise CheckpointError(
                    f"{source}: {key}.class_path is {entry.get('class_path')!r}; "
                    f"ttskiln supports {class_path!r}"
                )
            return dict(entry["init_args"])

        fe = part("feature_extractor", MEL_FEATURES)
        bb = part("backbone", BACKBONE)
        hd = part("head", HEAD)
        if bb.get("adanorm_num_embeddings"):
            raise CheckpointError(
                f"{source}: adanorm_num_embeddings is set (the EnCodec variant); "
                "ttskiln supports the mel Vocos only"
            )
        try:
            layer_scale = bb.get("layer_scale_init_value")
            cfg = cls(
                n_mels=int(bb["input_channels"]),
                dim=int(bb["dim"]),
                intermediate_dim=int(bb["intermediate_dim"]),
                num_layers=int(bb["num_layers"]),
                layer_scale=layer_scale is None or float(layer_scale) > 0,
                n_fft=int(hd["n_fft"]),
                hop_length=int(hd["hop_length"]),
                padding=str(hd.get("padding", "same")),
                sample_rate=int(fe.get("sample_rate", 24000)),
                fe_n_fft=int(fe.get("n_fft", 1024)),
                fe_hop_length=int(fe.get("hop_length", 256)),
                fe_padding=str(fe.get("padding", "center")),
            )
        except KeyError as exc:
            raise CheckpointError(f"{source}: missing init_args key {exc}") from exc
        if int(hd.get("dim", cfg.dim)) != cfg.dim:
            raise CheckpointError(f"{source}: head.dim {hd['dim']} != backbone.dim {cfg.dim}")
        if int(fe.get("n_mels", cfg.n_mels)) != cfg.n_mels:
            raise CheckpointError(
                f"{source}: feature_extractor n_mels {fe['n_mels']} != backbone input_channels {cfg.n_mels}"
            )
        if cfg.padding not in ("same", "center"):
            raise CheckpointError(f"{source}: head padding must be 'same' or 'center', got {cfg.padding!r}")
        if cfg.n_fft % cfg.hop_length:
            raise CheckpointError(f"{source}: head n_fft {cfg.n_fft} is not a multiple of hop {cfg.hop_length}")
        return cfg


def make_config_dict(
    *,
    n_mels: int = 100,
    dim: int = 512,
    intermediate_dim: int = 1536,
    num_layers: int = 8,
    n_fft: int = 1024,
    hop_length: int = 256,
    padding: str = "center",
    sample_rate: int = 24000,
) -> dict[str, Any]:
    """A ``config.yaml`` mapping in the released layout (defaults: charactr/vocos-mel-24khz)."""
    return {
        "feature_extractor": {
            "class_path": MEL_FEATURES,
            "init_args": {
                "sample_rate": sample_rate,
                "n_fft": n_fft,
                "hop_length": hop_length,
                "n_mels": n_mels,
                "padding": "center",
            },
        },
        "backbone": {
            "class_path": BACKBONE,
            "init_args": {
                "input_channels": n_mels,
                "dim": dim,
                "intermediate_dim": intermediate_dim,
                "num_layers": num_layers,
            },
        },
        "head": {
            "class_path": HEAD,
            "init_args": {"dim": dim, "n_fft": n_fft, "hop_length": hop_length, "padding": padding},
        },
    }
