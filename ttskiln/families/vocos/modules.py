"""Vocos in PyTorch, written for export: ConvNeXt backbone + ISTFT head.

Attribute names follow the released state_dict (``backbone.convnext.{i}.pwconv1`` ...), so a
released ``pytorch_model.bin`` loads strictly. Shapes: features (B, n_mels, T) [, bandwidth_id
(B,) int64 for the AdaLayerNorm backbone] -> audio (B, samples).
"""

from __future__ import annotations

import torch
from torch import nn

from ttskiln.families.vocos.config import VocosConfig
from ttskiln.ops.istft import InverseSTFT, hann_window

LAYER_NORM_EPS = 1e-6
MAX_MAGNITUDE = 100.0


class AdaLayerNorm(nn.Module):
    """LayerNorm without affine parameters, then a per-bandwidth scale and shift
    (``scale.weight``, ``shift.weight``: (num_embeddings, dim) tables).

    x (B, T, dim), bandwidth_id (B,) int64 -> (B, T, dim). Each row takes its own id; upstream
    passes one id for the whole batch, which is the same for every row.
    """

    def __init__(self, num_embeddings: int, dim: int, eps: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.scale = nn.Embedding(num_embeddings, dim)
        self.shift = nn.Embedding(num_embeddings, dim)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, bandwidth_id: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x, (self.dim,), eps=self.eps)
        return y * self.scale(bandwidth_id)[:, None, :] + self.shift(bandwidth_id)[:, None, :]


def _norm(dim: int, adanorm: int) -> nn.Module:
    return AdaLayerNorm(adanorm, dim) if adanorm else nn.LayerNorm(dim, eps=LAYER_NORM_EPS)


def _apply_norm(norm: nn.Module, x: torch.Tensor, bandwidth_id: torch.Tensor | None) -> torch.Tensor:
    return norm(x, bandwidth_id) if isinstance(norm, AdaLayerNorm) else norm(x)


class ConvNeXtBlock(nn.Module):
    """Depthwise conv k7 -> LayerNorm (or AdaLayerNorm) -> Linear -> GELU(erf) -> Linear -> gamma, residual.

    (B, dim, T) [, bandwidth_id (B,)] -> (B, dim, T).
    """

    def __init__(self, dim: int, intermediate_dim: int, layer_scale: bool, adanorm: int = 0) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim)) if layer_scale else None
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = _norm(dim, adanorm)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(intermediate_dim, dim)

    def forward(self, x: torch.Tensor, bandwidth_id: torch.Tensor | None = None) -> torch.Tensor:
        y = self.dwconv(x).transpose(1, 2)
        y = self.pwconv2(self.act(self.pwconv1(_apply_norm(self.norm, y, bandwidth_id))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + y.transpose(1, 2)


class VocosBackbone(nn.Module):
    """Conv1d embed (k7) -> LayerNorm -> N ConvNeXt blocks -> final LayerNorm. With
    ``adanorm_num_embeddings``, the first norm and the blocks' norms are AdaLayerNorms (the
    final one stays plain), conditioned on ``bandwidth_id``.

    (B, n_mels, T) [, bandwidth_id (B,)] -> (B, T, dim), channels-last.
    """

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, kernel_size=7, padding=3)
        self.norm = _norm(cfg.dim, cfg.adanorm_num_embeddings)
        self.convnext = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, cfg.layer_scale, cfg.adanorm_num_embeddings)
            for _ in range(cfg.num_layers)
        )
        self.final_layer_norm = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)

    def forward(self, mel: torch.Tensor, bandwidth_id: torch.Tensor | None = None) -> torch.Tensor:
        x = _apply_norm(self.norm, self.embed(mel).transpose(1, 2), bandwidth_id).transpose(1, 2)
        for block in self.convnext:
            x = block(x, bandwidth_id)
        return self.final_layer_norm(x.transpose(1, 2))


class VocosISTFT(InverseSTFT):
    """The inverse STFT with the released ``window`` buffer (a state_dict entry)."""

    def __init__(self, n_fft: int, hop_length: int, padding: str) -> None:
        super().__init__(n_fft, hop_length, padding)
        self.register_buffer("window", hann_window(n_fft).to(torch.float32))

    def refresh(self) -> None:
        """Call after loading weights: synthesis uses the loaded window."""
        self.use_window(self.window)


class ISTFTHead(nn.Module):
    """Linear -> log-magnitude and phase -> exp, clip at 100 -> inverse STFT.

    (B, T, dim) -> (B, samples). ``spectrum`` gives the (real, imag) parts, (B, T, bins) each.
    """

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.out = nn.Linear(cfg.dim, cfg.n_fft + 2)
        self.istft = VocosISTFT(cfg.n_fft, cfg.hop_length, cfg.padding)

    def spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logmag, phase = self.out(x).chunk(2, dim=-1)
        mag = torch.clamp(torch.exp(logmag), max=MAX_MAGNITUDE)
        return mag * torch.cos(phase), mag * torch.sin(phase)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.istft(*self.spectrum(x))


class MelFeatureBuffers(nn.Module):
    """Holds the released feature-extractor buffers (STFT window and HTK mel filterbank).

    ``decode`` does not use them; they are part of the released state_dict.
    """

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.mel_spec = nn.Module()
        self.mel_spec.spectrogram = nn.Module()
        self.mel_spec.spectrogram.register_buffer("window", torch.zeros(cfg.fe_n_fft))
        self.mel_spec.mel_scale = nn.Module()
        self.mel_spec.mel_scale.register_buffer("fb", torch.zeros(cfg.fe_n_fft // 2 + 1, cfg.n_mels))


class Vocos(nn.Module):
    """The whole released module: feature_extractor buffers (mel variant), backbone, head.

    The EnCodec variant's feature extractor (the EnCodec model and its codebooks) is not built:
    its ``feature_extractor.*`` entries are left out at load.
    """

    def __init__(self, cfg: VocosConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.features == "mel":
            self.feature_extractor = MelFeatureBuffers(cfg)
        self.backbone = VocosBackbone(cfg)
        self.head = ISTFTHead(cfg)

    def decode(self, mel: torch.Tensor, bandwidth_id: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.backbone(mel, bandwidth_id))


class VocosDecoder(nn.Module):
    """The exported graph: mel (B, n_mels, T) -> audio (B, samples)."""

    def __init__(self, vocos: Vocos) -> None:
        super().__init__()
        self.backbone = vocos.backbone
        self.head = vocos.head

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(mel))


class AdaNormVocosDecoder(VocosDecoder):
    """The exported graph of the AdaLayerNorm backbone (the EnCodec variant's decode path):
    features (B, n_mels, T) (EnCodec: the summed codebook embeddings, 128 channels), bandwidth_id
    (B,) int64 -> audio (B, samples)."""

    def forward(self, features: torch.Tensor, bandwidth_id: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.head(self.backbone(features, bandwidth_id))
