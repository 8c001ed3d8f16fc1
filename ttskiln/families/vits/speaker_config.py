"""The speaker encoder's config (Coqui's ``config_se.json``) and its size, without torch:
the planner reads and checks it before any job runs. The network is ``speaker.py``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ttskiln.errors import CheckpointError
from ttskiln.families.vits.config import SE_CONFIG_FILE as CONFIG_FILE

DEFAULT_LAYERS = (3, 4, 6, 3)
DEFAULT_FILTERS = (32, 64, 128, 256)
ATTENTION_CHANNELS = 128
SE_REDUCTION = 8


@dataclass(frozen=True)
class SpeakerEncoderConfig:
    sample_rate: int
    n_fft: int
    win_length: int
    hop_length: int
    n_mels: int
    preemphasis: float
    proj_dim: int
    log_input: bool
    do_rms_norm: bool
    db_level: float
    layers: tuple[int, ...] = DEFAULT_LAYERS
    filters: tuple[int, ...] = DEFAULT_FILTERS
    encoder_type: str = "ASP"

    @property
    def min_samples(self) -> int:
        """The shortest clip the graph takes: reflect padding needs more than n_fft // 2
        samples, and three stride-2 stages need at least 4 frames."""
        return max(self.n_fft // 2 + 1, 3 * self.hop_length)

    @classmethod
    def from_dict(cls, data: Any, source: str = CONFIG_FILE) -> "SpeakerEncoderConfig":
        if not isinstance(data, dict) or not isinstance(data.get("audio"), dict) or not isinstance(data.get("model_params"), dict):
            raise CheckpointError(f"{source}: expected Coqui's speaker-encoder config with 'audio' and 'model_params'")
        audio, params = data["audio"], data["model_params"]
        name = params.get("model_name", "lstm")
        if name != "resnet":
            raise CheckpointError(f"{source}: speaker encoder model_name {name!r} is not supported (only 'resnet', H/ASP)")
        if not params.get("use_torch_spec", False):
            raise CheckpointError(f"{source}: only encoders with their own spectrogram (use_torch_spec: true) are supported")
        try:
            cfg = cls(
                sample_rate=int(audio["sample_rate"]),
                n_fft=int(audio["fft_size"]),
                win_length=int(audio["win_length"]),
                hop_length=int(audio["hop_length"]),
                n_mels=int(audio["num_mels"]),
                preemphasis=float(audio.get("preemphasis", 0.0) or 0.0),
                proj_dim=int(params["proj_dim"]),
                log_input=bool(params.get("log_input", False)),
                do_rms_norm=bool(audio.get("do_rms_norm", False)),
                db_level=float(audio.get("db_level") if audio.get("db_level") is not None else -27.0),
                layers=tuple(int(v) for v in params.get("layers", DEFAULT_LAYERS)),
                filters=tuple(int(v) for v in params.get("num_filters", DEFAULT_FILTERS)),
                encoder_type=str(params.get("encoder_type", "ASP")),
            )
            input_dim = int(params.get("input_dim", cfg.n_mels))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source}: missing or malformed field {exc}") from exc
        if input_dim != cfg.n_mels:
            raise CheckpointError(f"{source}: model_params.input_dim {input_dim} differs from audio.num_mels {cfg.n_mels}")
        return cfg.validate(source)

    def validate(self, source: str) -> "SpeakerEncoderConfig":
        problems = []
        if self.n_mels % 8:
            problems.append(f"num_mels {self.n_mels} must be a multiple of 8 (three stride-2 stages)")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length {self.win_length} must lie in 1..fft_size ({self.n_fft})")
        if self.hop_length < 1 or self.proj_dim < 1:
            problems.append("hop_length and proj_dim must be positive")
        if self.encoder_type not in ("ASP", "SAP"):
            problems.append(f"encoder_type {self.encoder_type!r} (known: ASP, SAP)")
        if len(self.layers) != 4 or len(self.filters) != 4:
            problems.append("layers and num_filters must have four stages")
        if problems:
            raise CheckpointError(f"{source}: " + "; ".join(problems))
        return self

    def with_architecture(self, layers: tuple[int, ...], filters: tuple[int, ...], encoder_type: str) -> "SpeakerEncoderConfig":
        from dataclasses import replace

        return replace(self, layers=layers, filters=filters, encoder_type=encoder_type)


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON: {exc}") from exc
    SpeakerEncoderConfig.from_dict(data, str(path))
    return data


def make_config_dict(
    *,
    proj_dim: int,
    layers: tuple[int, ...] = DEFAULT_LAYERS,
    filters: tuple[int, ...] = DEFAULT_FILTERS,
    n_mels: int = 64,
) -> dict[str, Any]:
    """A ``config_se.json`` in Coqui's layout with the released YourTTS encoder's audio setup."""
    params: dict[str, Any] = {"model_name": "resnet", "input_dim": n_mels, "proj_dim": proj_dim, "log_input": True,
                              "use_torch_spec": True}
    if tuple(layers) != DEFAULT_LAYERS or tuple(filters) != DEFAULT_FILTERS:
        params.update({"layers": list(layers), "num_filters": list(filters)})
    return {
        "model": "speaker_encoder",
        "audio": {"fft_size": 512, "win_length": 400, "hop_length": 160, "sample_rate": 16000, "preemphasis": 0.97,
                  "num_mels": n_mels, "mel_fmin": 0.0, "mel_fmax": 8000.0, "do_rms_norm": True, "db_level": -27.0,
                  "resample": False, "stft_pad_mode": "reflect"},
        "model_params": params,
    }


def parameter_count(cfg: SpeakerEncoderConfig) -> int:
    """Parameters of ``speaker.ResNetSpeakerEncoder(cfg)`` (the front end's filter, window and
    filter bank are buffers; batch norms count their weight and bias)."""
    total = 9 * cfg.filters[0] + cfg.filters[0] + 2 * cfg.filters[0]  # conv1 (with bias), bn1
    inplanes = cfg.filters[0]
    for stage, (blocks, planes) in enumerate(zip(cfg.layers, cfg.filters)):
        for i in range(blocks):
            stride = 1 if stage == 0 or i > 0 else 2
            squeezed = planes // SE_REDUCTION
            total += 9 * inplanes * planes + 2 * planes + 9 * planes * planes + 2 * planes
            total += planes * squeezed + squeezed + squeezed * planes + planes
            if stride != 1 or inplanes != planes:
                total += inplanes * planes + 2 * planes
            inplanes = planes
    pooled = cfg.filters[3] * (cfg.n_mels // 8)
    total += pooled * ATTENTION_CHANNELS + ATTENTION_CHANNELS + 2 * ATTENTION_CHANNELS
    total += ATTENTION_CHANNELS * pooled + pooled
    features = pooled * (2 if cfg.encoder_type == "ASP" else 1)
    return total + features * cfg.proj_dim + cfg.proj_dim
