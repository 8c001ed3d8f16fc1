"""The BigVGAN vocoder family (NVIDIA/BigVGAN v1 and v2 generators; GPT-SoVITS v3's vocoder).

Checkpoint: a folder with ``config.json`` and ``bigvgan_generator.pt`` (``{"generator":
state_dict}``, legacy weight-norm layout or already folded), as released on the Hub under
``nvidia/<name>``. Weight norm is folded at load. One component, ``vocoder``:
mel (B, num_mels, frames) -> audio (B, frames * hop_length).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError
from ttskiln.families.base import ModelInfo
from ttskiln.families.bigvgan.config import BigVGANConfig, make_config_dict
from ttskiln.families.vocoder import COMPONENT, VocoderFamily, calibrate_output_, fan_in_init_, mel_component

#: Pre-squashing output level the synthetic weights are calibrated to.
SYNTHETIC_OUTPUT_STD = 0.3


class BigVGANFamily(VocoderFamily):
    name = "bigvgan"
    title = "BigVGAN"
    config_file = "config.json"
    weights_file = "bigvgan_generator.pt"
    release_hint = " (as in the Hub repos nvidia/bigvgan_*)"
    parity_entry = ("BigVGAN", "forward")
    parity_call = "BigVGAN.forward(mel)"
    # A seeded natural-log mel in BigVGAN's domain, about [-11.5, 1.5].
    mel_domain = {"offset": -3.0, "tilt": 5.0, "noise": 1.2, "ceiling": 1.5}
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
    # The full v2 model takes seconds per second of audio on a CPU: modest default shapes.
    default_profiles = {
        "default": {
            "batch": {"min": 1, "opt": 1, "max": 2},
            "frames": {"min": 16, "opt": 128, "max": 512},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    parse_config = staticmethod(BigVGANConfig.from_json_dict)
    config_dict = staticmethod(make_config_dict)

    def synthetic_weights(self, cfg: BigVGANConfig, seed: int) -> dict[str, Any]:
        import torch

        from ttskiln.families.bigvgan.modules import BigVGANGenerator
        from ttskiln.families.bigvgan.weights import GENERATOR_KEY, released_state

        torch.manual_seed(seed)
        model = BigVGANGenerator(cfg)
        with torch.no_grad():
            # Fan-in scaled weights, then the Snake parameters perturbed so that no channel is
            # trivially regular, then conv_post calibrated.
            fan_in_init_((layer for _, layer in model.weight_normed_layers()), gain=0.7)
            for _, act in model.anti_aliased_activations():
                for param in act.act.parameters():
                    param.add_(0.25 * torch.randn_like(param))
                act.refresh()
            mel = torch.from_numpy(self.synthetic_mel(1, cfg.num_mels, 16, np.random.default_rng(seed)))
            calibrate_output_(model.conv_post, model.conv_post(model.activation_post(model.features(mel))),
                              SYNTHETIC_OUTPUT_STD)
            return {GENERATOR_KEY: released_state(model, torch.Generator().manual_seed(seed + 1))}

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = BigVGANConfig.from_json_dict(config)
        vocoder = mel_component(cfg.num_mels, trace_frames=16)
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

        path = self.weights_path(checkpoint)
        source = f"{path} ['generator']"
        state = unwrap_generator(load_tensors(path, entries=(GENERATOR_KEY,)), str(path))
        with torch.device("meta"):
            model = BigVGANGenerator(cfg)
        try:
            return generator_state(state, model, source)
        except CheckpointError as exc:
            raise CheckpointError(
                f"{exc} (architecture read from {checkpoint / str(self.config_file)}: num_mels {cfg.num_mels}, "
                f"upsample_initial_channel {cfg.upsample_initial_channel}, upsample_kernel_sizes "
                f"{list(cfg.upsample_kernel_sizes)}, resblock {cfg.resblock!r}, activation {cfg.activation!r}, "
                f"use_bias_at_final {cfg.use_bias_at_final}; does config.json belong to these weights?)"
            ) from None

    # -- components --------------------------------------------------------------------------
    def component_modules(self, model: Any) -> dict[str, Any]:
        from ttskiln.families.bigvgan.modules import BigVGANVocoder

        return {COMPONENT: BigVGANVocoder}
