"""Reading and writing Coqui's ``model_file.pth`` (trainer layout) for VITS / YourTTS.

The file is a ``torch.save`` dict ``{"model": state_dict, "config": ..., "optimizer": ...,
"step": ..., ...}``; it is read with ``weights_only=True`` (plain containers, numbers, numpy
scalars; pickled objects outside ``model`` are dropped unbuilt; no code runs). Weight norm comes
in the legacy layout (``X.weight_g`` / ``X.weight_v``) or torch's parametrization layout
(``X.parametrizations.weight.original0/1``); both fold into one ``X.weight`` =
``v * (g / ||v||)`` with the norm over every dim except 0 (``families/weight_norm.py``). Keys of the training-only
discriminator (``disc.*``) and of the speaker-consistency encoder (``speaker_encoder.*``) are
dropped, as upstream's ``load_checkpoint`` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ttskiln.errors import CheckpointError
from ttskiln.families.vits.config import VitsConfig
from ttskiln.families.weight_norm import fold_weight_norm  # noqa: F401  (both layouts; re-exported)

IGNORED_PREFIXES = ("disc.", "speaker_encoder.")


def read_trainer_file(path: Path) -> dict[str, Any]:
    """The dict a Coqui trainer saved; raises CheckpointError for anything else. Only
    ``model`` must be plain: a pickled config object elsewhere is dropped, never run."""
    from ttskiln.checkpoint import load_tensors

    data = load_tensors(path, entries=("model",))
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected Coqui's trainer dict with a 'model' key")
    return data


def model_state(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The network state_dict of a trainer dict (or of a bare state_dict)."""
    state = data.get("model", data) if "model" in data else data
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: 'model' is a {type(state).__name__}, expected a state_dict")
    return dict(state)


def load_network_state(path: Path, cfg: VitsConfig) -> dict[str, Any]:
    """The folded, filtered state_dict of ``path``, checked strictly against ``cfg``."""
    from ttskiln.checkpoint import match_state_dict, shapes_of
    from ttskiln.families.vits.modules import Vits

    state = model_state(read_trainer_file(path), str(path))
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    state = fold_weight_norm(state, str(path))
    with torch.device("meta"):
        expected = shapes_of(Vits(cfg))
    match_state_dict(state, expected, str(path))
    return state


# Modules stored with weight norm in released checkpoints (the rest hold a plain weight).
def _weight_normed(key: str) -> bool:
    if not key.endswith(".weight"):
        return False
    if key.startswith(("posterior_encoder.enc.", "flow.flows.")) and ".enc." in key:
        return True
    return key.startswith(("waveform_decoder.ups.", "waveform_decoder.resblocks."))


def unfold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The legacy layout of a plain state_dict: ``weight_g`` = ||w||, ``weight_v`` = w."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if _weight_normed(key):
            base = key[: -len(".weight")]
            norm = value.reshape(value.shape[0], -1).norm(dim=1).reshape((-1,) + (1,) * (value.dim() - 1))
            out[f"{base}.weight_g"] = norm.clone()
            out[f"{base}.weight_v"] = value.clone()
        else:
            out[key] = value
    return out


def synthetic_state(cfg: VitsConfig, seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights: torch's default init plus 0.02 noise, with a few sizes adjusted so that
    durations vary (1-6 frames) and the waveform is audible."""
    from ttskiln.families.vits.modules import Vits

    torch.manual_seed(seed)
    model = Vits(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
        for layer in model.text_encoder.encoder.norm_layers_2:
            layer.gamma.fill_(1.0)
        model.waveform_decoder.conv_post.weight.mul_(20.0)
        # SDP: logw = log duration around 0.5..1.5 (exp -> ~1.6..4.5 frames).
        first = model.duration_predictor.flows[0]
        first.translation.fill_(0.6)
        first.log_scale.fill_(-0.7)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
