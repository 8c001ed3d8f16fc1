"""The BigVGAN vocoder family (NVIDIA/BigVGAN v1 and v2 generators; GPT-SoVITS v3's vocoder).

Checkpoint: a folder with ``config.json`` and ``bigvgan_generator.pt`` (``{"generator":
state_dict}``, legacy weight-norm layout or already folded), as released on the Hub under
``nvidia/<name>``. Weight norm is folded at load. One component, ``vocoder``:
mel (B, num_mels, frames) -> audio (B, frames * hop_length).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families.base import ComponentSpec, Family, ModelInfo, STATIC_INT8, ParityCase, TensorSpec
from ttskiln.ops.mel import synthetic_clamped_log_mel
from ttskiln.families.bigvgan.config import BigVGANConfig, make_config_dict

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "bigvgan_generator.pt"
COMPONENT = "vocoder"
#: Pre-squashing output level the synthetic weights are calibrated to.
SYNTHETIC_OUTPUT_STD = 0.3


class BigVGANFamily(Family):
    name = "bigvgan"
    parity_mode = "graphs"
    # Convolutions throughout: static QDQ int8 (dynamic int8 would quantize nothing).
    int8_defaults = STATIC_INT8
    presets = {
        # nvidia/bigvgan_v2_24khz_100band_256x: 112,414,512 parameters once folded.
        "bigvgan_v2_24khz_100band_256x": {},
        # The released 256x stages at 1/24 of the width and one resblock kernel: the demo.
        "demo": {"upsample_initial_channel": 64, "resblock_kernel_sizes": [3], "resblock_dilation_sizes": [[1, 3, 5]]},
        # The v2 layout (SnakeBeta, AMPBlock1, clamp), small enough for tests.
        "tiny": {
            "upsample_rates": [16],
            "upsample_kernel_sizes": [32],
            "upsample_initial_channel": 32,
            "resblock_kernel_sizes": [3, 5],
            "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5]],
        },
    }
    default_tolerances = {"max_abs_err": 1e-4, "cosine": 0.99999, "snr_db": 60.0}
    # The full v2 model takes seconds per second of audio on a CPU: modest default shapes.
    default_profiles = {
        "default": {
            "batch": {"min": 1, "opt": 1, "max": 2},
            "frames": {"min": 16, "opt": 128, "max": 512},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        return [Path(checkpoint) / CONFIG_FILE, Path(checkpoint) / WEIGHTS_FILE]

    def read_config(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        checkpoint = Path(checkpoint)
        if options:
            raise ConfigError(
                f"bigvgan takes no options (its config.json describes the model); got {sorted(options)}"
            )
        if not checkpoint.is_dir():
            raise CheckpointError(
                f"{checkpoint} is not a folder; a BigVGAN checkpoint is a folder with {CONFIG_FILE} "
                f"and {WEIGHTS_FILE} (as in the Hub repos nvidia/bigvgan_*)"
            )
        for path in self.checkpoint_files(checkpoint):
            if not path.is_file():
                raise CheckpointError(f"{path} not found (a BigVGAN checkpoint has {CONFIG_FILE} and {WEIGHTS_FILE})")
        try:
            data = json.loads((checkpoint / CONFIG_FILE).read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{checkpoint / CONFIG_FILE} is not valid JSON: {exc}") from exc
        BigVGANConfig.from_json_dict(data, str(checkpoint / CONFIG_FILE))
        return data

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        if preset not in self.presets:
            raise CheckpointError(f"unknown bigvgan preset {preset!r}; choose from {sorted(self.presets)}")
        try:
            return make_config_dict(**{**self.presets[preset], **overrides})
        except TypeError as exc:
            raise CheckpointError(f"synthetic bigvgan overrides: {exc}") from exc

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        import torch

        from ttskiln.atomic import atomic_path
        from ttskiln.families.bigvgan.modules import BigVGANGenerator
        from ttskiln.families.bigvgan.weights import GENERATOR_KEY, released_state

        cfg = BigVGANConfig.from_json_dict(config, "synthetic config")
        torch.manual_seed(seed)
        model = BigVGANGenerator(cfg)
        with torch.no_grad():
            # Upstream initialises every weight-normed conv with N(0, 0.01), which makes a
            # near-silent random network; use fan-in scaling instead, then perturb the Snake
            # parameters so that no channel is trivially regular.
            for _, layer in model.weight_normed_layers():
                if isinstance(layer, torch.nn.ConvTranspose1d):  # [in, out, k], stride s: in * k / s taps
                    fan_in = layer.weight.shape[0] * layer.weight.shape[2] // layer.stride[0]
                else:
                    fan_in = layer.weight[0].numel()
                torch.nn.init.normal_(layer.weight, std=0.7 / math.sqrt(fan_in))
                if layer.bias is not None:
                    torch.nn.init.normal_(layer.bias, std=0.02)
            for _, act in model.anti_aliased_activations():
                for param in act.act.parameters():
                    param.add_(0.25 * torch.randn_like(param))
                act.refresh()
            mel = torch.from_numpy(synthetic_log_mel(1, cfg.num_mels, 16, np.random.default_rng(seed)))
            pre = model.conv_post(model.activation_post(model.features(mel)))
            if model.conv_post.bias is not None:
                pre = pre - model.conv_post.bias.view(1, -1, 1)
            model.conv_post.weight.mul_(SYNTHETIC_OUTPUT_STD / max(float(pre.std()), 1e-6))
            state = released_state(model, torch.Generator().manual_seed(seed + 1))
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / WEIGHTS_FILE) as tmp:
            torch.save({GENERATOR_KEY: state}, tmp)
        with atomic_path(destination / CONFIG_FILE) as tmp:
            tmp.write_text(json.dumps(config, indent=4) + "\n")

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = BigVGANConfig.from_json_dict(config)
        vocoder = ComponentSpec(
            name=COMPONENT,
            inputs=(TensorSpec("mel", ("batch", cfg.num_mels, "frames")),),
            outputs=(TensorSpec("audio", ("batch", "samples")),),
            axis_min={"batch": 1, "frames": 1},
            trace_sizes={"batch": 2, "frames": 16},
        )
        params = cfg.parameter_count()
        return ModelInfo(
            family=self.name,
            sample_rate=cfg.sampling_rate,
            hop_length=cfg.hop_length,
            components=(vocoder,),
            summary={
                "parameters": params,
                "parameters_weight_norm_layout": params + cfg.weight_norm_extra(),
                "num_mels": cfg.num_mels,
                "hop_length": cfg.hop_length,
                "upsample_rates": list(cfg.upsample_rates),
                "upsample_initial_channel": cfg.upsample_initial_channel,
                "resblock": cfg.resblock,
                "activation": cfg.activation,
                "output": "tanh" if cfg.use_tanh_at_final else "clamp",
            },
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        self._weights(Path(checkpoint), BigVGANConfig.from_json_dict(config))

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        import torch

        from ttskiln.families.bigvgan.modules import BigVGANGenerator

        cfg = BigVGANConfig.from_json_dict(config)
        params, taps = self._weights(Path(checkpoint), cfg)
        with torch.device("meta"):
            model = BigVGANGenerator(cfg)
        model.load_state_dict(params, strict=True, assign=True)
        for prefix, act in model.anti_aliased_activations():
            act.set_taps(*taps[prefix])
            act.refresh()
        unset = [name for name, t in model.named_buffers() if t.is_meta]
        if unset:
            raise RuntimeError(f"bigvgan loader left buffers unset: {unset[:4]}")  # a ttskiln bug
        return model.eval()

    def _weights(self, checkpoint: Path, cfg: BigVGANConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        import torch

        from ttskiln.checkpoint import load_tensors
        from ttskiln.families.bigvgan.modules import BigVGANGenerator
        from ttskiln.families.bigvgan.weights import GENERATOR_KEY, generator_state, unwrap_generator

        path = checkpoint / WEIGHTS_FILE
        source = f"{path} ['generator']"
        state = unwrap_generator(load_tensors(path, entries=(GENERATOR_KEY,)), str(path))
        with torch.device("meta"):
            model = BigVGANGenerator(cfg)
        try:
            return generator_state(state, model, source)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc} (architecture read from {checkpoint / CONFIG_FILE}: num_mels {cfg.num_mels}, "
                f"upsample_initial_channel {cfg.upsample_initial_channel}, upsample_kernel_sizes "
                f"{list(cfg.upsample_kernel_sizes)}, resblock {cfg.resblock!r}, activation {cfg.activation!r}, "
                f"use_bias_at_final {cfg.use_bias_at_final}; does config.json belong to these weights?)"
            ) from None

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        from ttskiln.families.bigvgan.modules import BigVGANVocoder

        if component != COMPONENT:
            raise KeyError(f"bigvgan has one component, {COMPONENT!r}; got {component!r}")
        return BigVGANVocoder(model).eval()

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        spec = info.component(component).inputs[0]
        batch, n_mels, frames = spec.concrete(sizes)
        return {spec.name: synthetic_log_mel(batch, n_mels, frames, rng)}

    # -- upstream parity ---------------------------------------------------------------------
    def parity_plan(self, case: ParityCase) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        entry = str(case.manifest.get("entry_point", ""))
        if "BigVGAN" not in entry or "forward" not in entry:
            raise CheckpointError(f"bigvgan parity supports BigVGAN.forward(mel); manifest names {entry!r}")
        return [(COMPONENT, {"mel": "mel"}, {"audio": "wav"})]

    def parity_tolerance(self, case: ParityCase, output: str) -> float:
        return 1e-4


def synthetic_log_mel(batch: int, n_mels: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A seeded natural-log mel (B, n_mels, frames) in BigVGAN's domain, about [-11.5, 1.5]."""
    return synthetic_clamped_log_mel(batch, n_mels, frames, rng, offset=-3.0, tilt=5.0, noise=1.2, ceiling=1.5)
