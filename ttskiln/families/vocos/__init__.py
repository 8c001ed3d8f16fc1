"""The Vocos vocoder family (gemelo-ai/vocos, mel variant; F5-TTS's vocoder).

Checkpoint: a folder with ``config.yaml`` and ``pytorch_model.bin`` (a plain state_dict of the
whole module), as released on the Hub (charactr/vocos-mel-24khz). One component, ``vocoder``:
mel (B, n_mels, frames) -> audio (B, samples).

The EnCodec variant (charactr/vocos-encodec-24khz: ``EncodecFeatures`` and a backbone whose
norms are AdaLayerNorms, ``adanorm_num_embeddings``) is built from its decode path only: the
``vocoder`` graph takes the EnCodec features (B, 128, frames) -- the summed codebook
embeddings that upstream's feature extractor makes -- and ``bandwidth_id`` (B,) int64 (the
index into the config's ``bandwidths``). The EnCodec model itself is not exported; its
``feature_extractor.*`` weights in the checkpoint are not read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import ConfigError
from ttskiln.families.base import ModelInfo, TensorSpec
from ttskiln.families.vocoder import COMPONENT, VocoderFamily, mel_component
from ttskiln.families.vocos.config import VocosConfig, make_config_dict


class VocosFamily(VocoderFamily):
    name = "vocos"
    title = "Vocos"
    config_file = "config.yaml"
    weights_file = "pytorch_model.bin"
    parity_entry = (".decode(",)
    parity_call = "Vocos.decode"
    parity_arrays = ({"mel": "features_input"}, {"audio": "audio"})
    parity_max_abs_err = 1e-5
    presets = {
        # charactr/vocos-mel-24khz: 13,531,650 parameters.
        "vocos-mel-24khz": {},
        # The same layout, small enough for tests.
        "tiny": {"dim": 32, "intermediate_dim": 64, "num_layers": 1, "n_fft": 256, "hop_length": 64},
        # charactr/vocos-encodec-24khz's decode path (AdaLayerNorm on four bandwidths).
        "vocos-encodec-24khz": {"features": "encodec", "n_mels": 128, "dim": 384, "intermediate_dim": 1152,
                                "n_fft": 1280, "hop_length": 320, "padding": "same"},
        # The same layout, small enough for tests.
        "encodec-tiny": {"features": "encodec", "n_mels": 128, "dim": 32, "intermediate_dim": 64, "num_layers": 1,
                         "n_fft": 320, "hop_length": 80, "padding": "same"},
    }
    default_tolerances = {**VocoderFamily.default_tolerances, "mrstft": 0.01, "logmel_l1": 0.01}
    variant_tolerances = {
        "fp16": {"max_abs_err": 1e-2, "cosine": 0.9999, "snr_db": 40.0, "mrstft": 0.05, "logmel_l1": 0.02},
        "int8": {"max_abs_err": 5e-2, "cosine": 0.99, "snr_db": 15.0, "mrstft": 0.3, "logmel_l1": 0.1},
    }
    # The head's exp/clip, and the whole ISTFT (basis products, overlap-add, envelope divide)
    # stay fp32: magnitudes up to 100 summed over 513 bins overflow fp16's precision.
    fp16_defaults = {
        "keep_fp32_ops": ["LayerNormalization", "Exp", "Clip", "Cos", "Sin"],
        "keep_fp32_nodes": ["after:head.istft.*"],
    }
    # Pointwise convolutions are MatMul/Gemm: dynamic int8; the ISTFT stays fp32.
    int8_defaults = {"method": "dynamic", "op_types": ["MatMul", "Gemm"], "exclude_nodes": ["after:head.istft.*"], "per_channel": True}
    default_profiles = {
        "default": {
            "batch": {"min": 1, "opt": 1, "max": 4},
            "frames": {"min": 16, "opt": 256, "max": 1024},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    parse_config = staticmethod(VocosConfig.from_yaml_dict)
    config_dict = staticmethod(make_config_dict)

    def synthetic_weights(self, cfg: VocosConfig, seed: int) -> dict[str, Any]:
        import torch

        from ttskiln.families.vocos.modules import AdaLayerNorm, Vocos
        from ttskiln.ops.istft import hann_window
        from ttskiln.ops.mel import mel_filterbank

        torch.manual_seed(seed)
        model = Vocos(cfg)
        with torch.no_grad():
            # Upstream's init (truncated normal 0.02, zero biases, LayerNorm 1/0, layer scale
            # 1/num_layers), then a seeded perturbation so that no weight is trivially regular.
            for module in model.backbone.modules():
                if isinstance(module, (torch.nn.Conv1d, torch.nn.Linear)):
                    torch.nn.init.trunc_normal_(module.weight, std=0.02)
                    torch.nn.init.zeros_(module.bias)
            for block in model.backbone.convnext:
                if block.gamma is not None:
                    block.gamma.fill_(1.0 / cfg.num_layers)
            for param in model.parameters():
                param.add_(0.02 * torch.randn_like(param))
            for module in model.backbone.modules():
                if isinstance(module, AdaLayerNorm):  # bandwidths that differ audibly
                    module.scale.weight.add_(0.2 * torch.randn_like(module.scale.weight))
                    module.shift.weight.add_(0.2 * torch.randn_like(module.shift.weight))
            if cfg.features == "mel":
                fe = model.feature_extractor.mel_spec
                fe.spectrogram.window.copy_(hann_window(cfg.fe_n_fft))
                fe.mel_scale.fb.copy_(
                    torch.from_numpy(mel_filterbank(cfg.sample_rate, cfg.fe_n_fft, cfg.n_mels))
                )
        return model.state_dict()

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = VocosConfig.from_yaml_dict(config)
        min_frames = 2 if cfg.padding == "center" else 1
        if cfg.adanorm_num_embeddings:
            # Chunking cuts one input along time; the bandwidth id is not one.
            vocoder = mel_component(cfg.n_mels, input_name="features", min_frames=min_frames,
                                    extra_inputs=(TensorSpec("bandwidth_id", ("batch",), "int64"),))
        else:
            vocoder = mel_component(cfg.n_mels, chunked=True, min_frames=min_frames)
        params = _parameter_count(cfg)
        return ModelInfo(
            family=self.name,
            sample_rate=cfg.sample_rate,
            hop_length=cfg.hop_length,
            components=(vocoder,),
            summary={
                "parameters": params,
                "dim": cfg.dim,
                "layers": cfg.num_layers,
                "n_fft": cfg.n_fft,
                "hop_length": cfg.hop_length,
                "padding": cfg.padding,
                "n_mels": cfg.n_mels,
                "features": cfg.features,
                "bandwidths": cfg.adanorm_num_embeddings,
            },
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        self._state_dict(Path(checkpoint), VocosConfig.from_yaml_dict(config))

    def check_plan(self, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                   points: list[Any], checkpoint: Path | None) -> None:
        """The ISTFT head must be invertible by overlap-add (see ``istft_overlap_problem``)."""
        cfg = VocosConfig.from_yaml_dict(config)
        problem = istft_overlap_problem(cfg.n_fft, cfg.hop_length, cfg.padding)
        if problem:
            raise ConfigError(f"head: {problem}")

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        from ttskiln.families.vocos.modules import Vocos

        cfg = VocosConfig.from_yaml_dict(config)
        state = self._state_dict(Path(checkpoint), cfg)
        model = Vocos(cfg)
        model.load_state_dict(state, strict=True)
        model.head.istft.refresh()
        return model.eval()

    def _state_dict(self, checkpoint: Path, cfg: VocosConfig) -> dict[str, Any]:
        import torch

        from ttskiln.checkpoint import load_tensors, match_state_dict, shapes_of
        from ttskiln.families.vocos.modules import Vocos

        path = self.weights_path(checkpoint)
        state = load_tensors(path)
        if cfg.features == "encodec":  # the EnCodec model and codebooks: not part of the decode path
            state = {k: v for k, v in state.items() if not k.startswith("feature_extractor.")}
        with torch.device("meta"):
            expected = shapes_of(Vocos(cfg))
        match_state_dict(state, expected, str(path))
        return state

    # -- components --------------------------------------------------------------------------
    def component_modules(self, model: Any) -> dict[str, Any]:
        from ttskiln.families.vocos.modules import AdaNormVocosDecoder, VocosDecoder

        return {COMPONENT: AdaNormVocosDecoder if model.cfg.adanorm_num_embeddings else VocosDecoder}

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        if not info.summary.get("bandwidths"):
            return super().make_inputs(info, component, sizes, rng)
        spec = info.component(component).inputs[0]
        batch, n_mels, frames = spec.concrete(sizes)
        # EnCodec features: sums of codebook vectors, zero-mean, a few units in size.
        features = (2.0 * rng.standard_normal((batch, n_mels, frames))).astype(np.float32)
        ids = rng.integers(0, info.summary["bandwidths"], size=batch).astype(np.int64)
        return {spec.name: features, "bandwidth_id": ids}

    def synthetic_mel(self, batch: int, n_mels: int, frames: int, rng: np.random.Generator) -> np.ndarray:
        return synthetic_log_mel(batch, n_mels, frames, rng)


def istft_overlap_problem(n_fft: int, hop: int, padding: str) -> str | None:
    """Why a Hann-window ISTFT with ``n_fft`` and ``hop`` cannot be inverted by overlap-add
    (the squared windows must overlap to a non-zero sum at every kept sample, the NOLA
    condition upstream Vocos checks), or None."""
    if padding == "same" and (n_fft - hop) % 2:
        return f"padding 'same' needs an even n_fft - hop_length, got {n_fft} - {hop}"
    if n_fft % hop:
        return f"n_fft {n_fft} is not a multiple of hop_length {hop}"
    # Away from the ends every sample sums the same n_fft / hop window values; near the ends
    # (inside the trimmed part for hop < n_fft) fewer, but the first frame's are non-zero.
    window_sq = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)) ** 2
    if window_sq.reshape(-1, hop).sum(axis=0).min() <= 1e-11:
        return (
            f"the ISTFT with n_fft {n_fft} and hop_length {hop} cannot be inverted by overlap-add: the squared "
            f"Hann windows sum to zero at some samples (the NOLA condition; upstream Vocos refuses it); use a hop "
            f"of at most n_fft / 2"
        )
    return None


def synthetic_log_mel(batch: int, n_mels: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A speech-like natural-log mel (B, n_mels, frames) in about [-7, 2]: spectral tilt, a slow
    loudness envelope, drifting ridges and noise. Deterministic for a given ``rng``."""
    bins = np.linspace(0.0, 1.0, n_mels)[None, :, None]
    t = np.arange(frames)[None, None, :]
    phase = rng.uniform(0, 2 * math.pi, size=(batch, 1, 1))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * t / max(frames, 8) * 3 + phase)
    ridge_pos = 0.2 + 0.1 * np.sin(2 * math.pi * t / 50.0 + phase)
    ridges = np.exp(-(((bins - ridge_pos) / 0.05) ** 2)) + 0.6 * np.exp(-(((bins - 2 * ridge_pos) / 0.07) ** 2))
    mel = -1.0 - 4.0 * bins + 2.0 * envelope * (0.4 + ridges) + 0.4 * rng.standard_normal((batch, n_mels, frames))
    return np.clip(mel, -7.0, 2.0).astype(np.float32)


def _parameter_count(cfg: VocosConfig) -> int:
    d, i = cfg.dim, cfg.intermediate_dim
    block = d + (d * 7 + d) + 2 * d + (d * i + i) + (i * d + d) - (0 if cfg.layer_scale else d)
    backbone = (cfg.n_mels * d * 7 + d) + 2 * d + cfg.num_layers * block + 2 * d
    head = d * (cfg.n_fft + 2) + cfg.n_fft + 2
    # AdaLayerNorm: a (bandwidths, dim) scale and shift table instead of LayerNorm's weight and bias.
    adanorm = (cfg.num_layers + 1) * 2 * d * (cfg.adanorm_num_embeddings - 1) if cfg.adanorm_num_embeddings else 0
    return backbone + head + adanorm
