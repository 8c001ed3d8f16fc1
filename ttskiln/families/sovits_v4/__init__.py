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

from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families.base import ModelInfo, Option, ParityCase
from ttskiln.families.sovits_v4.config import GENERATOR_KEYS, SovitsVocoderConfig, make_config_dict
from ttskiln.families.vocoder import COMPONENT, VocoderFamily, calibrate_output_, fan_in_init_, mel_component

NORMALIZED_COMPONENT = "vocoder_normalized"
DEFAULT_PRESET = "sovits_v4"
#: Pre-tanh output level the synthetic weights are calibrated to.
SYNTHETIC_OUTPUT_STD = 0.5


class SovitsV4Family(VocoderFamily):
    name = "sovits_v4"
    title = "GPT-SoVITS v4 vocoder"
    weights_file = "vocoder.pth"
    parity_entry = ("Generator", "forward")
    parity_call = "Generator.forward(mel)"
    # A seeded natural-log mel in the v4 vocoder's domain, about [-11.5, 2].
    mel_domain = {"offset": -3.5, "tilt": 6.0, "noise": 1.3, "ceiling": 2.0}
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
    # 100 frames = 1 s of 48 kHz audio; the full model runs about real time on 2 CPU threads.
    default_profiles = {
        "default": {
            "batch": {"min": 1, "opt": 1, "max": 2},
            "frames": {"min": 16, "opt": 100, "max": 500},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    parse_config = staticmethod(SovitsVocoderConfig.from_dict)
    config_dict = staticmethod(make_config_dict)

    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The weights carry no configuration: ``options`` (checked) choose it."""
        path = self.weights_path(checkpoint)
        if not path.is_file():
            raise CheckpointError(
                f"{path} not found; a {self.title} checkpoint is {self.weights_file} "
                "(gsv-v4-pretrained/vocoder.pth) or a folder holding it"
            )
        overrides = options.get("config") or {}
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
        extra = {"normalized_input": options["normalized_input"]} if "normalized_input" in options else {}
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

    def synthetic_weights(self, cfg: SovitsVocoderConfig, seed: int) -> dict[str, Any]:
        import torch

        from ttskiln.families.sovits_v4.modules import SovitsGenerator

        torch.manual_seed(seed)
        model = SovitsGenerator(cfg)
        with torch.no_grad():
            # Fan-in scaled weights, then conv_post calibrated so tanh is not saturated.
            fan_in_init_((m for m in model.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))),
                         gain=0.8)
            mel = torch.from_numpy(self.synthetic_mel(1, cfg.n_mels, 8, np.random.default_rng(seed)))
            calibrate_output_(model.conv_post, model.logits(model.features(mel)), SYNTHETIC_OUTPUT_STD)
        return model.state_dict()

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = SovitsVocoderConfig.from_dict(config)
        components = [mel_component(cfg.n_mels, trace_frames=8)]
        if cfg.normalized_input:
            components.append(mel_component(cfg.n_mels, name=NORMALIZED_COMPONENT, input_name="mel_norm", trace_frames=8))
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

        path = self.weights_path(checkpoint)
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
    def component_modules(self, model: Any) -> dict[str, Any]:
        from ttskiln.families.sovits_v4.modules import NormalizedMelVocoder, SovitsVocoder

        modules: dict[str, Any] = {COMPONENT: SovitsVocoder}
        if model.cfg.normalized_input:
            modules[NORMALIZED_COMPONENT] = NormalizedMelVocoder
        return modules

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        inputs = super().make_inputs(info, component, sizes, rng)
        if component == NORMALIZED_COMPONENT:
            # norm_spec with the released constants: the CFM domain, about [-1, 1].
            lo, hi = info.summary["spec_min"], info.summary["spec_max"]
            return {name: ((mel - lo) / (hi - lo) * 2 - 1).astype(np.float32) for name, mel in inputs.items()}
        return inputs

    # -- upstream parity ---------------------------------------------------------------------
    def parity_config(self, case: ParityCase) -> dict[str, Any]:
        recorded = case.manifest.get("config")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{case.directory}/manifest.json has no 'config' with the Generator arguments")
        return make_config_dict(**{**recorded, "normalized_input": "mel_norm" in case.inputs})

    def parity_plan(self, case: ParityCase) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        plan = super().parity_plan(case)
        if "mel_norm" in case.inputs:
            # The recorded ``mel`` is denorm_spec(mel_norm): the same waveform, from the CFM domain.
            plan.append((NORMALIZED_COMPONENT, {"mel_norm": "mel_norm"}, {"audio": "wav"}))
        return plan
