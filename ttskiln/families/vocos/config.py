"""The Vocos configuration: the released ``config.yaml`` (class_path/init_args per part).

Two feature extractors are known: the mel spectrogram (charactr/vocos-mel-24khz) and EnCodec
(charactr/vocos-encodec-24khz, whose backbone norms are AdaLayerNorms conditioned on the
bandwidth id, ``adanorm_num_embeddings``). Only the decode path is built; the EnCodec feature
extractor itself is not (its features are the graph input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError

BACKBONE = "vocos.models.VocosBackbone"
HEAD = "vocos.heads.ISTFTHead"
MEL_FEATURES = "vocos.feature_extractors.MelSpectrogramFeatures"
ENCODEC_FEATURES = "vocos.feature_extractors.EncodecFeatures"
#: EnCodec model name -> its sample rate.
ENCODEC_RATES = {"encodec_24khz": 24000, "encodec_48khz": 48000}


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
    #: Bandwidth ids of the AdaLayerNorm backbone (0: plain LayerNorms).
    adanorm_num_embeddings: int = 0
    #: ``mel`` or ``encodec``: what the graph input is.
    features: str = "mel"

    @classmethod
    def from_yaml_dict(cls, data: dict[str, Any], source: str = "config.yaml") -> "VocosConfig":
        def part(key: str, *class_paths: str) -> dict[str, Any]:
            entry = data.get(key) if isinstance(data, dict) else None
            if not isinstance(entry, dict) or "init_args" not in entry:
                raise CheckpointError(f"{source}: no '{key}' with class_path/init_args (not a Vocos config)")
            if entry.get("class_path") not in class_paths:
                raise CheckpointError(
                    f"{source}: {key}.class_path is {entry.get('class_path')!r}; "
                    f"ttskiln supports {' or '.join(repr(c) for c in class_paths)}"
                )
            return dict(entry["init_args"] or {})

        fe = part("feature_extractor", MEL_FEATURES, ENCODEC_FEATURES)
        encodec = data["feature_extractor"]["class_path"] == ENCODEC_FEATURES
        bb = part("backbone", BACKBONE)
        hd = part("head", HEAD)
        try:
            adanorm = int(bb.get("adanorm_num_embeddings") or 0)
        except (TypeError, ValueError):
            raise CheckpointError(f"{source}: backbone adanorm_num_embeddings must be an integer, "
                                  f"got {bb.get('adanorm_num_embeddings')!r}") from None
        if adanorm < 0:
            raise CheckpointError(f"{source}: backbone adanorm_num_embeddings must be positive, got {adanorm}")
        if encodec:
            model_name = fe.get("encodec_model", "encodec_24khz")
            if model_name not in ENCODEC_RATES:
                raise CheckpointError(f"{source}: feature_extractor encodec_model {model_name!r} is not one of {sorted(ENCODEC_RATES)}")
            bandwidths = fe.get("bandwidths", [1.5, 3.0, 6.0, 12.0])
            if adanorm and isinstance(bandwidths, list) and len(bandwidths) != adanorm:
                raise CheckpointError(f"{source}: {len(bandwidths)} bandwidths but adanorm_num_embeddings {adanorm}")
            fe = {"sample_rate": ENCODEC_RATES[model_name]}
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
                adanorm_num_embeddings=adanorm,
                features="encodec" if encodec else "mel",
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
    features: str = "mel",
    adanorm_num_embeddings: int | None = None,
) -> dict[str, Any]:
    """A ``config.yaml`` mapping in the released layout (defaults: charactr/vocos-mel-24khz).

    ``features: encodec`` writes the EnCodec variant's feature extractor (24 kHz, four
    bandwidths; ``adanorm_num_embeddings`` defaults to their number)."""
    if features == "encodec":
        bandwidths = [1.5, 3.0, 6.0, 12.0]
        backbone = {"input_channels": n_mels, "dim": dim, "intermediate_dim": intermediate_dim, "num_layers": num_layers,
                    "adanorm_num_embeddings": adanorm_num_embeddings or len(bandwidths)}
        return {
            "feature_extractor": {"class_path": ENCODEC_FEATURES, "init_args": {
                "encodec_model": "encodec_24khz", "bandwidths": bandwidths[: backbone["adanorm_num_embeddings"]],
                "train_codebooks": False}},
            "backbone": {"class_path": BACKBONE, "init_args": backbone},
            "head": {"class_path": HEAD, "init_args": {"dim": dim, "n_fft": n_fft, "hop_length": hop_length, "padding": padding}},
        }
    if features != "mel":
        raise TypeError(f"features must be 'mel' or 'encodec', got {features!r}")
    config = {
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
    if adanorm_num_embeddings:
        config["backbone"]["init_args"]["adanorm_num_embeddings"] = adanorm_num_embeddings
    return config
