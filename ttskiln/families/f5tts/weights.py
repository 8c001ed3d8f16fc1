"""The released F5-TTS weight files: read them as upstream's loader does, write synthetic ones.

Two formats, both holding the EMA copy of the whole ``CFM`` module:

* ``.safetensors`` (v1 release): a flat dict ``initted``, ``step`` (EMA bookkeeping) and
  ``ema_model.transformer.<name>`` for every network tensor, float32;
* ``.pt`` (older release, training checkpoints): a torch pickle dict whose
  ``ema_model_state_dict`` entry is that same flat dict. Read with ``weights_only=True``:
  no pickled code runs.

Reading drops the bookkeeping keys and upstream's two legacy mel-spectrogram keys, strips the
``ema_model.`` prefix and matches the remaining ``transformer.*`` keys and shapes strictly.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError
from ttskiln.families.f5tts.config import F5Config

EMA_PREFIX = "ema_model."
EMA_ENTRY = "ema_model_state_dict"
NETWORK_PREFIX = "transformer."
BOOKKEEPING = ("initted", "step")
LEGACY_KEYS = ("mel_spec.mel_stft.mel_scale.fb", "mel_spec.mel_stft.spectrogram.window")
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
INV_FREQ_KEY = "rotary_embed.inv_freq"


def read_cfm_state(path: Path) -> dict[str, Any]:
    """The CFM state_dict a released file holds (keys ``transformer.*``), as upstream's
    ``load_checkpoint(use_ema=True)`` builds it before ``load_state_dict``."""
    from ttskiln.checkpoint import load_tensors

    path = Path(path)
    if path.suffix not in WEIGHT_SUFFIXES:
        raise CheckpointError(f"{path}: F5-TTS weights are a .safetensors or .pt file, got {path.suffix!r}")
    data = load_tensors(path, entries=(EMA_ENTRY,))
    if path.suffix != ".safetensors":
        if EMA_ENTRY not in data:
            raise CheckpointError(
                f"{path} has no {EMA_ENTRY!r} entry (top-level keys: {sorted(map(str, data))[:8]}); "
                "an F5-TTS .pt checkpoint stores the EMA weights there"
            )
        data = data[EMA_ENTRY]
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{path}: {EMA_ENTRY} is a {type(data).__name__}, expected a mapping of tensors")
    state = {}
    for key, value in data.items():
        if key in BOOKKEEPING:
            continue
        name = key[len(EMA_PREFIX):] if key.startswith(EMA_PREFIX) else key
        if name not in LEGACY_KEYS:
            state[name] = value
    return state


def expected_shapes(cfg: F5Config) -> dict[str, tuple[int, ...]]:
    """Every ``transformer.*`` key of the configured network with its shape."""
    import torch

    from ttskiln.checkpoint import shapes_of
    from ttskiln.families.f5tts.modules import DiT

    with torch.device("meta"):
        shapes = shapes_of(DiT(cfg))
    return {NETWORK_PREFIX + name: shape for name, shape in shapes.items()}


def load_network_state(path: Path, cfg: F5Config) -> dict[str, Any]:
    """The DiT state_dict (prefix stripped, float32), keys and shapes checked strictly."""
    import torch

    from ttskiln.checkpoint import match_state_dict
    from ttskiln.families.f5tts.host import rotary_inv_freq

    state = read_cfm_state(path)
    match_state_dict(state, expected_shapes(cfg), str(path))
    network = {k[len(NETWORK_PREFIX):]: v.to(torch.float32) for k, v in state.items()}
    stored = network[INV_FREQ_KEY].numpy()
    standard = rotary_inv_freq(cfg.dim_head)
    if not np.allclose(stored, standard, rtol=1e-6, atol=0):
        raise CheckpointError(
            f"{path}: {NETWORK_PREFIX}{INV_FREQ_KEY} differs from the standard RoPE frequencies "
            f"(max relative difference {float(np.max(np.abs(stored / standard - 1))):.2e}); ttskiln computes the "
            "RoPE tables on the host from dim_head and supports only the standard ones"
        )
    return network


def synthetic_network_state(cfg: F5Config, seed: int) -> dict[str, Any]:
    """Seeded random weights for every network tensor (a private generator; the global RNG is
    untouched). Linear/conv weights ~ N(0, 1/fan_in), biases ~ N(0, 0.02^2), norm weights
    ~ 1 + N(0, 0.02^2), GRN gamma/beta ~ N(0, 0.1^2), embeddings ~ N(0, 1): no tensor is zero,
    unlike upstream's zero-initialised adaLN and output layers."""
    import torch

    from ttskiln.families.f5tts.host import rotary_inv_freq

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in sorted(expected_shapes(cfg).items()):
        key = name[len(NETWORK_PREFIX):]
        noise = torch.randn(shape, generator=gen)
        if key == INV_FREQ_KEY:
            value = torch.from_numpy(rotary_inv_freq(cfg.dim_head))
        elif key.endswith(("grn.gamma", "grn.beta")):
            value = 0.1 * noise
        elif key.endswith("text_embed.text_embed.weight"):
            value = noise
        elif key.endswith(".bias"):
            value = 0.02 * noise
        elif len(shape) == 1:  # LayerNorm / RMSNorm weights
            value = 1.0 + 0.02 * noise
        else:
            fan_in = int(np.prod(shape[1:]))
            value = noise / np.sqrt(fan_in)
        state[key] = value.to(torch.float32).contiguous()
    return state


def write_released_safetensors(network: Mapping[str, Any], path: Path, step: int) -> None:
    """Write a DiT state_dict in the v1 release layout (EMA keys plus bookkeeping)."""
    import torch
    from safetensors.torch import save_file

    from ttskiln.atomic import atomic_path

    tensors = {"initted": torch.tensor(True), "step": torch.tensor(step, dtype=torch.int64)}
    tensors.update({EMA_PREFIX + NETWORK_PREFIX + k: v.contiguous() for k, v in network.items()})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def write_released_pt(network: Mapping[str, Any], path: Path, step: int) -> None:
    """Write a DiT state_dict in the older ``.pt`` layout (``ema_model_state_dict`` entry)."""
    import torch

    from ttskiln.atomic import atomic_path

    ema = {"initted": torch.tensor(True), "step": torch.tensor(step, dtype=torch.int64)}
    ema.update({EMA_PREFIX + NETWORK_PREFIX + k: v for k, v in network.items()})
    with atomic_path(path) as tmp:
        torch.save({EMA_ENTRY: ema}, tmp)
