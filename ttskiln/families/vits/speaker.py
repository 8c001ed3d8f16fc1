"""YourTTS's speaker encoder: Coqui's ``ResNetSpeakerEncoder`` (H/ASP), waveform -> d-vector.

Files (in the checkpoint folder, as in Coqui's released YourTTS zip): ``model_se.pth``, a
trainer dict whose ``model`` entry is the encoder's state_dict (read with
``weights_only=True``), and ``config_se.json`` (coqpit: ``audio`` and ``model_params``).
Only the ResNet encoder with its own spectrogram (``use_torch_spec: true``) is supported.

The network, as upstream defines it:

* front end: pre-emphasis ``y[n] = x[n] - c * x[n-1]`` (reflect padding, so ``x[-1] = x[1]``),
  then torchaudio's ``MelSpectrogram``: ``center=True`` reflect padding of ``n_fft // 2``, a
  periodic Hamming window of ``win_length`` centred in ``n_fft``, power 2, HTK filters without
  normalisation from 0 Hz to Nyquist. The state_dict stores the pre-emphasis filter, the window
  and the filter bank (``torch_spec.{0.filter, 1.spectrogram.window, 1.mel_scale.fb}``); the
  stored values are used when present, otherwise they are computed from the config.
  Here the STFT is a strided ``Conv1d`` with a windowed DFT basis (no FFT/DFT op), so the graph
  exports to plain ONNX and TensorRT;
* ``log(mel + 1e-6)`` when ``log_input``; ``InstanceNorm1d`` over time (no affine);
* a ResNet of squeeze-excitation basic blocks (conv -> ReLU -> BN, conv -> BN -> SE, residual,
  ReLU), stages 2-4 with stride 2; the layer counts and widths are read from the weights;
* attentive statistics pooling (``ASP``: weighted mean and std; ``SAP``: weighted mean), a
  linear projection and an L2 normalisation.

Host side (``embed``), as Coqui's ``SpeakerManager.compute_embedding_from_clip`` does it:
RMS normalisation to ``db_level`` dB when ``do_rms_norm``, ten evenly spaced windows of 250
frames (``250 * hop`` samples; the whole clip when shorter) through the encoder as one batch,
and the mean of the ten unit vectors. The reference audio must be at the encoder's rate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ttskiln.errors import CheckpointError, InputError
from ttskiln.families.vits.config import SE_CONFIG_FILE as CONFIG_FILE
from ttskiln.families.vits.config import SE_WEIGHTS_FILE as WEIGHTS_FILE
from ttskiln.families.vits.speaker_config import (  # noqa: F401 (the config half, re-exported)
    ATTENTION_CHANNELS,
    DEFAULT_FILTERS,
    DEFAULT_LAYERS,
    SE_REDUCTION,
    SpeakerEncoderConfig,
    make_config_dict,
    read_config_file,
)

#: Coqui's compute_embedding defaults: windows of this many frames, this many windows.
WINDOW_FRAMES = 250
WINDOWS = 10
FRONT_END_KEYS = ("torch_spec.0.filter", "torch_spec.1.spectrogram.window", "torch_spec.1.mel_scale.fb")


# -- the network -----------------------------------------------------------------------------
def hamming_periodic(length: int) -> np.ndarray:
    return (0.54 - 0.46 * np.cos(2 * np.pi * np.arange(length) / length)).astype(np.float32)


class PreEmphasis(nn.Module):
    def __init__(self, coefficient: float):
        super().__init__()
        self.register_buffer("filter", torch.tensor([[[-coefficient, 1.0]]], dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        previous = torch.cat([x[:, 1:2], x[:, :-1]], dim=1)  # reflect padding by one sample
        return self.filter[0, 0, 1] * x + self.filter[0, 0, 0] * previous


class _Window(nn.Module):
    def __init__(self, win_length: int):
        super().__init__()
        self.register_buffer("window", torch.from_numpy(hamming_periodic(win_length)))


class _MelScale(nn.Module):
    def __init__(self, fb: np.ndarray):
        super().__init__()
        self.register_buffer("fb", torch.from_numpy(fb))


class MelSpectrogram(nn.Module):
    """Power mel spectrogram as torchaudio computes it, with the STFT as a strided convolution."""

    def __init__(self, cfg: SpeakerEncoderConfig):
        from ttskiln.ops.mel import mel_filterbank

        super().__init__()
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.spectrogram = _Window(cfg.win_length)
        self.mel_scale = _MelScale(mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels))
        bins = cfg.n_fft // 2 + 1
        angle = 2 * np.pi * np.outer(np.arange(bins), np.arange(cfg.n_fft)) / cfg.n_fft
        basis = np.concatenate([np.cos(angle), -np.sin(angle)]).astype(np.float32)
        self.register_buffer("dft", torch.from_numpy(basis)[:, None, :], persistent=False)
        self.left = (cfg.n_fft - cfg.win_length) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        window = self.spectrogram.window
        full = F.pad(window, (self.left, self.n_fft - window.shape[0] - self.left))
        pad = self.n_fft // 2
        x = F.pad(x[:, None, :], (pad, pad), mode="reflect")
        spec = F.conv1d(x, self.dft * full, stride=self.hop)  # [B, 2 * bins, frames]
        bins = spec.shape[1] // 2
        power = spec[:, :bins] ** 2 + spec[:, bins:] ** 2
        return torch.matmul(power.transpose(1, 2), self.mel_scale.fb).transpose(1, 2)


class SELayer(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // SE_REDUCTION), nn.ReLU(),
                                nn.Linear(channels // SE_REDUCTION, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.fc(x.mean(dim=(2, 3)))
        return x * scale[:, :, None, None]


class SEBasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = SELayer(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(torch.relu(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return torch.relu(out + residual)


class ResNetSpeakerEncoder(nn.Module):
    """waveform [B, samples] -> unit d-vector [B, proj_dim]."""

    def __init__(self, cfg: SpeakerEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.torch_spec = nn.Sequential(PreEmphasis(cfg.preemphasis), MelSpectrogram(cfg))
        self.conv1 = nn.Conv2d(1, cfg.filters[0], 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cfg.filters[0])
        inplanes = cfg.filters[0]
        for stage, (blocks, planes) in enumerate(zip(cfg.layers, cfg.filters)):
            stride = 1 if stage == 0 else 2
            layer = []
            for i in range(blocks):
                layer.append(SEBasicBlock(inplanes, planes, stride if i == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{stage + 1}", nn.Sequential(*layer))
        pooled = cfg.filters[3] * (cfg.n_mels // 8)
        self.attention = nn.Sequential(nn.Conv1d(pooled, ATTENTION_CHANNELS, 1), nn.ReLU(), nn.BatchNorm1d(ATTENTION_CHANNELS),
                                       nn.Conv1d(ATTENTION_CHANNELS, pooled, 1), nn.Softmax(dim=2))
        self.fc = nn.Linear(pooled * (2 if cfg.encoder_type == "ASP" else 1), cfg.proj_dim)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = self.torch_spec(waveform)
        if self.cfg.log_input:
            x = torch.log(x + 1e-6)
        x = F.instance_norm(x)[:, None]
        x = self.bn1(torch.relu(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = x.reshape(x.shape[0], -1, x.shape[-1])
        w = self.attention(x)
        mu = torch.sum(x * w, dim=2)
        if self.cfg.encoder_type == "ASP":
            sg = torch.sqrt((torch.sum(x * x * w, dim=2) - mu * mu).clamp(min=1e-5))
            mu = torch.cat([mu, sg], dim=1)
        return F.normalize(self.fc(mu), p=2.0, dim=1)


# -- loading ---------------------------------------------------------------------------------
def architecture_of(state: dict[str, Any], source: str) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(blocks per stage, widths, pooling) read from the weights."""
    layers, filters = [], []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.conv1\.weight$", k))}
        if not blocks or blocks != set(range(len(blocks))):
            raise CheckpointError(f"{source}: no ResNet speaker-encoder blocks for layer{stage} (is this a ResNet encoder?)")
        layers.append(len(blocks))
        filters.append(int(state[f"layer{stage}.0.conv1.weight"].shape[0]))
    if "fc.weight" not in state or "attention.0.weight" not in state:
        raise CheckpointError(f"{source}: lacks the attention pooling or the projection (fc) of a ResNet speaker encoder")
    pooled = int(state["attention.0.weight"].shape[1])
    fc_in = int(state["fc.weight"].shape[1])
    kind = "ASP" if fc_in == 2 * pooled else "SAP" if fc_in == pooled else None
    if kind is None:
        raise CheckpointError(f"{source}: fc takes {fc_in} features, neither {pooled} (SAP) nor {2 * pooled} (ASP)")
    return tuple(layers), tuple(filters), kind


def load_speaker_encoder(folder: Path, se_config: dict[str, Any], d_vector_dim: int | None = None) -> ResNetSpeakerEncoder:
    """The encoder of ``folder/model_se.pth``, checked strictly against its config."""
    from ttskiln.checkpoint import match_state_dict, shapes_of
    from ttskiln.families.vits.weights import model_state, read_trainer_file

    path = Path(folder) / WEIGHTS_FILE
    cfg = SpeakerEncoderConfig.from_dict(se_config, str(Path(folder) / CONFIG_FILE))
    state = model_state(read_trainer_file(path), str(path))
    layers, filters, kind = architecture_of(state, str(path))
    cfg = cfg.with_architecture(layers, filters, kind)
    if d_vector_dim is not None and cfg.proj_dim != d_vector_dim:
        raise CheckpointError(f"{path}: the speaker encoder makes {cfg.proj_dim}-dim d-vectors; the model takes {d_vector_dim}")
    with torch.device("meta"):
        expected = shapes_of(ResNetSpeakerEncoder(cfg))
    module = ResNetSpeakerEncoder(cfg)
    defaults = module.state_dict()
    for key in FRONT_END_KEYS:  # absent when the encoder was saved without torchaudio buffers
        state.setdefault(key, defaults[key])
    match_state_dict(state, expected, str(path))
    fc = state["fc.weight"]
    if fc.shape[0] != cfg.proj_dim:
        raise CheckpointError(f"{path}: fc makes {fc.shape[0]} features, config_se.json says proj_dim {cfg.proj_dim}")
    module.load_state_dict(state, strict=True)
    return module.eval()


def synthetic_state(cfg: SpeakerEncoderConfig, seed: int) -> dict[str, torch.Tensor]:
    """Seeded random weights (He-scaled convs, BN statistics away from identity) with the
    front-end buffers, as a torchaudio-built encoder stores them."""
    gen = torch.Generator().manual_seed(seed)
    module = ResNetSpeakerEncoder(cfg)
    state = {}
    for key, value in module.state_dict().items():
        if key in FRONT_END_KEYS or key.endswith("num_batches_tracked"):
            state[key] = value.clone()
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        elif key.endswith("running_mean") or key.endswith("bias"):
            state[key] = 0.1 * torch.randn(value.shape, generator=gen)
        elif value.dim() == 1:  # BN weights
            state[key] = 1.0 + 0.1 * torch.randn(value.shape, generator=gen)
        else:
            fan_in = math.prod(value.shape[1:])
            state[key] = torch.randn(value.shape, generator=gen) * math.sqrt(2.0 / fan_in)
    return state


def write_synthetic(se_config: dict[str, Any], destination: Path, seed: int) -> None:
    from ttskiln.atomic import atomic_path, write_text

    cfg = SpeakerEncoderConfig.from_dict(se_config, "synthetic speaker encoder")
    trainer = {"model": synthetic_state(cfg, seed), "optimizer": None, "step": 0, "epoch": 0, "date": "synthetic"}
    with atomic_path(Path(destination) / WEIGHTS_FILE) as tmp:
        torch.save(trainer, tmp)
    write_text(Path(destination) / CONFIG_FILE, json.dumps(se_config, indent=2))


# -- host side -------------------------------------------------------------------------------
def rms_normalize(wave_: np.ndarray, db_level: float) -> np.ndarray:
    """Scale to an RMS of ``db_level`` dBFS (Coqui's ``rms_volume_norm``)."""
    x = np.asarray(wave_, dtype=np.float64)
    energy = float(np.sum(x * x))
    if energy == 0.0:
        raise InputError("reference audio is silent (all zeros); it has no speaker to encode")
    return (x * math.sqrt(x.size * (10.0 ** (db_level / 20.0)) ** 2 / energy)).astype(np.float32)


def windows(wave_: np.ndarray, cfg: SpeakerEncoderConfig, frames: int = WINDOW_FRAMES, count: int = WINDOWS) -> np.ndarray:
    """``count`` evenly spaced windows of ``frames * hop`` samples -> [count, samples]."""
    x = np.asarray(wave_, dtype=np.float32).reshape(-1)
    length = min(frames * cfg.hop_length, x.size)
    if length < cfg.min_samples:
        raise InputError(
            f"reference audio of {x.size} samples is too short for the speaker encoder "
            f"(at least {cfg.min_samples} samples, {cfg.min_samples / cfg.sample_rate:.3f} s)"
        )
    offsets = np.linspace(0, x.size - length, num=count)
    return np.stack([x[int(o): int(o) + length] for o in offsets]).astype(np.float32)


def embed(run: Callable[[np.ndarray], np.ndarray], wave_: np.ndarray, cfg: SpeakerEncoderConfig) -> np.ndarray:
    """One reference clip -> the mean d-vector [1, proj_dim] (float32), through ``run``
    (a function of the [windows, samples] batch that returns [windows, proj_dim])."""
    x = np.asarray(wave_, dtype=np.float32)
    if x.ndim != 1 or x.size == 0:
        raise InputError(f"reference audio must be mono [samples], got shape {list(x.shape)}")
    if not np.all(np.isfinite(x)):
        raise InputError("reference audio holds NaN or infinite samples")
    if cfg.do_rms_norm:
        x = rms_normalize(x, cfg.db_level)
    vectors = np.asarray(run(windows(x, cfg)), dtype=np.float32)
    return vectors.mean(axis=0, keepdims=True).astype(np.float32)


def read_wav(path: Path, sample_rate: int) -> np.ndarray:
    """An audio file (any bit depth, float, any channel count) as mono float32, resampled to
    ``sample_rate`` (``audio_io.read_audio``)."""
    from ttskiln.audio_io import read_audio

    return read_audio(path, sample_rate)[0]


def synthetic_reference(sample_rate: int, seconds: float, seed: int) -> np.ndarray:
    """A seeded voiced-speech-like clip: a gliding harmonic source with formant-like
    weighting, syllable-rate amplitude modulation and a little noise (float32, peak 0.5)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    formants = rng.uniform([300, 1000, 2200], [900, 2000, 3200])
    sig = np.zeros_like(t)
    for h in range(1, 30):
        freq = h * f0.mean()
        if freq >= sample_rate / 2:
            break
        gain = sum(np.exp(-0.5 * ((freq - f) / 150.0) ** 2) for f in formants) + 0.05
        sig += gain / h * np.sin(h * phase)
    sig *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t) ** 2
    sig += 0.01 * rng.standard_normal(t.size)
    return (0.5 * sig / np.max(np.abs(sig))).astype(np.float32)
