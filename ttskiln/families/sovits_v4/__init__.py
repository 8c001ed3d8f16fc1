"""The GPT-SoVITS v4 vocoder family (RVC-Boss/GPT-SoVITS ``module.models.Generator``, 48 kHz).

Checkpoint: ``vocoder.pth`` (``gsv-v4-pretrained/vocoder.pth`` in the Hub repo
lj1995/GPT-SoVITS), a plain state_dict with weight norm already folded, or a folder holding it.
A generator saved before weight norm was removed (``weight_g``/``weight_v`` or torch's
``parametrizations.weight.original0/1``) is folded at load.
The file carries no configuration; the model entry's ``options`` give it:

- ``preset``: a preset name (``sovits_v4``, the released model, or ``tiny``);
- ``config``: Generator keyword arguments overriding the preset's;
- ``normalized_input``: also build ``vocoder_normalized``, which takes the CFM-domain mel
  (``mel_norm`` in [-1, 1]) and applies GPT-SoVITS's ``denorm_spec`` first.

With neither ``preset`` nor ``config``, the preset whose weight shapes match the file is used
(the released one first), else the released one. Components: ``vocoder``, mel (B, 100, frames)
-> audio (B, frames * 480), and optionally ``vocoder_normalized``, mel_norm -> audio.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families.base import ComponentSpec, Family, ModelInfo, Option, ParityCase, STATIC_INT8, TensorSpec
from ttskiln.ops.mel import synthetic_clamped_log_mel
from ttskiln.families.sovits_v4.config import GENERATOR_KEYS, SovitsVocoderConfig, make_config_dict

WEIGHTS_FILE = "vocoder.pth"
COMPONENT = "vocoder"
NORMALIZED_COMPONENT = "vocoder_normalized"
DEFAULT_PRESET = "sovits_v4"
#: Pre-tanh output level the synthetic weights are calibrated to.
SYNTHETIC_OUTPUT_STD = 0.5


class SovitsV4Family(Family):
    name = "sovits_v4"
    parity_mode = "graphs"
    # Convolutions throughout: static QDQ int8 (dynamic int8 would quantize nothing).
    int8_defaults = STATIC_INT8
    option_specs = {"preset": Option(str, checkpoint_only=True), "config": Option(dict, checkpoint_only=True),
                    "normalized_input": Option(bool, checkpoint_only=True)}
    presets = {
        # The released v4 vocoder: 14,425,409 parameters.
        DEFAULT_PRESET: {},
        # The released layout (480x in five stages, ResBlock1), small enough for tests.
        "tiny": {
            "upsample_initial_channel": 64,
            "resblock_kernel_sizes": [3, 7],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        },
    }
    default_tolerances = {"max_abs_err": 1e-4, "cosine": 0.99999, "snr_db": 60.0}
    # 100 frames = 1 s of 48 kHz audio; the full model runs about real time on 2 CPU threads.
    default_profiles = {
        "default": {
            "batch": {"min": 1, "opt": 1, "max": 2},
            "frames": {"min": 16, "opt": 100, "max": 500},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        return [_weights_path(Path(checkpoint))]

    def read_config(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        path = _weights_path(Path(checkpoint))
        if not path.is_file():
            raise CheckpointError(
                f"{path} not found; a GPT-SoVITS v4 vocoder checkpoint is {WEIGHTS_FILE} "
                "(gsv-v4-pretrained/vocoder.pth) or a folder holding it"
            )
        options = dict(options or {})
        self.check_options(options)
        overrides = options.get("config") or {}
        if not isinstance(overrides, dict):
            raise ConfigError(
                f"sovits_v4 options.config must be a mapping of Generator arguments, got {overrides!r}"
            )
        bad = sorted(set(overrides) - set(GENERATOR_KEYS) - {"sampling_rate", "spec_min", "spec_max"})
        if bad:
            raise ConfigError(
                f"sovits_v4 options.config: unknown keys {bad}; Generator arguments are {list(GENERATOR_KEYS)}"
            )
        preset = options.get("preset")
        if preset is None and not overrides:
            preset = self._matching_preset(path)
        preset = preset or DEFAULT_PRESET
        if preset not in self.presets:
            raise ConfigError(f"sovits_v4 options.preset {preset!r} is unknown; choose from {sorted(self.presets)}")
        extra = {}
        if "normalized_input" in options:
            if not isinstance(options["normalized_input"], bool):
                raise ConfigError(
                    f"sovits_v4 options.normalized_input must be true or false, got {options['normalized_input']!r}"
                )
            extra["normalized_input"] = options["normalized_input"]
        try:
            return make_config_dict(**{**self.presets[preset], **overrides, **extra})
        except CheckpointError as exc:
            raise ConfigError(f"sovits_v4 options: {exc}") from None

    def _matching_preset(self, path: Path) -> str | None:
        """The first preset whose state_dict shapes equal the file's (None when none does)."""
        import torch

        from ttskiln.checkpoint import load_tensors, shapes_of
        from ttskiln.families.sovits_v4.modules import SovitsGenerator
        from ttskiln.families.weight_norm import fold_weight_norm

        state = fold_weight_norm(load_tensors(path), str(path))
        found = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
        for preset, overrides in self.presets.items():
            with torch.device("meta"):
                model = SovitsGenerator(SovitsVocoderConfig.from_dict(make_config_dict(**overrides)))
            if shapes_of(model) == found:
                return preset
        return None

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        if preset not in self.presets:
            raise CheckpointError(f"unknown sovits_v4 preset {preset!r}; choose from {sorted(self.presets)}")
        return make_config_dict(**{**self.presets[preset], **overrides})

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        import torch

        from ttskiln.atomic import atomic_path
        from ttskiln.families.sovits_v4.modules import SovitsGenerator

        cfg = SovitsVocoderConfig.from_dict(config)
        torch.manual_seed(seed)
        model = SovitsGenerator(cfg)
        with torch.no_grad():
            # Fan-in scaled weights (upstream's N(0, 0.01) init gives a near-silent network),
            # small random biases, then conv_post calibrated so tanh is not saturated.
            for layer in model.modules():
                if isinstance(layer, torch.nn.ConvTranspose1d):  # [in, out, k], stride s
                    fan_in = layer.weight.shape[0] * layer.weight.shape[2] // layer.stride[0]
                elif isinstance(layer, torch.nn.Conv1d):
                    fan_in = layer.weight[0].numel()
                else:
                    continue
                torch.nn.init.normal_(layer.weight, std=0.8 / math.sqrt(fan_in))
                if layer.bias is not None:
                    torch.nn.init.normal_(layer.bias, std=0.02)
            mel = torch.from_numpy(synthetic_log_mel(1, cfg.n_mels, 8, np.random.default_rng(seed)))
            pre = model.logits(model.features(mel))
            if model.conv_post.bias is not None:
                pre = pre - model.conv_post.bias.view(1, -1, 1)
            model.conv_post.weight.mul_(SYNTHETIC_OUTPUT_STD / max(float(pre.std()), 1e-6))
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / WEIGHTS_FILE) as tmp:
            torch.save(model.state_dict(), tmp)

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = SovitsVocoderConfig.from_dict(config)
        trace = {"batch": 2, "frames": 8}
        components = [
            ComponentSpec(
                name=COMPONENT,
                inputs=(TensorSpec("mel", ("batch", cfg.n_mels, "frames")),),
                outputs=(TensorSpec("audio", ("batch", "samples")),),
                axis_min={"batch": 1, "frames": 1},
                trace_sizes=trace,
            )
        ]
        if cfg.normalized_input:
            components.append(
                ComponentSpec(
                    name=NORMALIZED_COMPONENT,
                    inputs=(TensorSpec("mel_norm", ("batch", cfg.n_mels, "frames")),),
                    outputs=(TensorSpec("audio", ("batch", "samples")),),
                    axis_min={"batch": 1, "frames": 1},
                    trace_sizes=trace,
                )
            )
        return ModelInfo(
            family=self.name,
            sample_rate=cfg.sampling_rate,
            hop_length=cfg.hop_length,
            components=tuple(components),
            summary={
                "parameters": cfg.parameter_count(),
                "n_mels": cfg.n_mels,
                "hop_length": cfg.hop_length,
                "upsample_rates": list(cfg.upsample_rates),
                "upsample_initial_channel": cfg.upsample_initial_channel,
                "resblock": cfg.resblock,
                "normalized_input": cfg.normalized_input,
                "spec_min": cfg.spec_min,
                "spec_max": cfg.spec_max,
            },
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        self._state_dict(Path(checkpoint), SovitsVocoderConfig.from_dict(config))

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        import torch

        from ttskiln.families.sovits_v4.modules import SovitsGenerator

        cfg = SovitsVocoderConfig.from_dict(config)
        state = self._state_dict(Path(checkpoint), cfg)
        with torch.device("meta"):
            model = SovitsGenerator(cfg)
        model.load_state_dict(state, strict=True, assign=True)
        return model.eval()

    def _state_dict(self, checkpoint: Path, cfg: SovitsVocoderConfig) -> dict[str, Any]:
        import torch

        from ttskiln.checkpoint import load_tensors, match_state_dict, shapes_of
        from ttskiln.families.sovits_v4.modules import SovitsGenerator
        from ttskiln.families.weight_norm import fold_weight_norm

        path = _weights_path(checkpoint)
        state = load_tensors(path)
        # A training-layout generator (weight norm not yet removed, legacy or parametrization
        # keys) folds to the released layout here.
        state = fold_weight_norm(state, str(path))
        with torch.device("meta"):
            expected = shapes_of(SovitsGenerator(cfg))
        try:
            match_state_dict(state, expected, str(path))
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc} (architecture from the model entry's options: upsample_initial_channel "
                f"{cfg.upsample_initial_channel}, upsample_rates {list(cfg.upsample_rates)}, resblock_kernel_sizes "
                f"{list(cfg.resblock_kernel_sizes)}; vocoder.pth carries no config, so set options.preset "
                f"({', '.join(sorted(self.presets))}) or options.config to match the weights)"
            ) from None
        state = {k: v.to(torch.float32) for k, v in state.items()}
        bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(f"{path}: non-finite values in {bad[:6]}")
        return state

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        from ttskiln.families.sovits_v4.modules import NormalizedMelVocoder, SovitsVocoder

        if component == COMPONENT:
            return SovitsVocoder(model).eval()
        if component == NORMALIZED_COMPONENT and model.cfg.normalized_input:
            return NormalizedMelVocoder(model).eval()
        raise KeyError(f"sovits_v4 component {component!r} is not built; this model has {_component_names(model.cfg)}")

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        spec = info.component(component).inputs[0]
        batch, n_mels, frames = spec.concrete(sizes)
        mel = synthetic_log_mel(batch, n_mels, frames, rng)
        if component == NORMALIZED_COMPONENT:
            # norm_spec with the released constants: the CFM domain, about [-1, 1].
            lo, hi = info.summary["spec_min"], info.summary["spec_max"]
            return {spec.name: ((mel - lo) / (hi - lo) * 2 - 1).astype(np.float32)}
        return {spec.name: mel}

    # -- upstream parity ---------------------------------------------------------------------
    def parity_config(self, case: ParityCase) -> dict[str, Any]:
        recorded = case.manifest.get("config")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{case.directory}/manifest.json has no 'config' with the Generator arguments")
        return make_config_dict(**{**recorded, "normalized_input": "mel_norm" in case.inputs})

    def parity_plan(self, case: ParityCase) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        entry = str(case.manifest.get("entry_point", ""))
        if "Generator" not in entry or "forward" not in entry:
            raise CheckpointError(f"sovits_v4 parity supports Generator.forward(mel); manifest names {entry!r}")
        plan = [(COMPONENT, {"mel": "mel"}, {"audio": "wav"})]
        if "mel_norm" in case.inputs:
            # The recorded ``mel`` is denorm_spec(mel_norm): the same waveform, from the CFM domain.
            plan.append((NORMALIZED_COMPONENT, {"mel_norm": "mel_norm"}, {"audio": "wav"}))
        return plan

    def parity_tolerance(self, case: ParityCase, output: str) -> float:
        return 1e-4


def _weights_path(checkpoint: Path) -> Path:
    """The weights file of a checkpoint given as the file itself or as the folder holding it."""
    return checkpoint / WEIGHTS_FILE if checkpoint.is_dir() else checkpoint


def _component_names(cfg: SovitsVocoderConfig) -> list[str]:
    return [COMPONENT, NORMALIZED_COMPONENT] if cfg.normalized_input else [COMPONENT]


def synthetic_log_mel(batch: int, n_mels: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded natural-log mel (B, n_mels, frames) in the v4 vocoder's domain, about [-11.5, 2]."""
    return synthetic_clamped_log_mel(batch, n_mels, frames, rng, offset=-3.5, tilt=6.0, noise=1.3, ceiling=2.0)
