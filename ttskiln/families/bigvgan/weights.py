"""BigVGAN's released weight layout and its conversion to the folded generator.

``bigvgan_generator.pt`` holds ``{"generator": state_dict}``. Every convolution is stored in the
legacy ``torch.nn.utils.weight_norm`` layout (``weight_g`` [dim0, 1, 1] and ``weight_v``,
weight = g * v / ||v|| with the norm over all axes but 0; for a ConvTranspose1d, whose weight is
[in, out, k], axis 0 is the INPUT channel). Files saved with torch's parametrizations
(``parametrizations.weight.original0/1``) and already-folded files (plain ``weight``) load too.
Every anti-aliased activation also stores its resampling taps as two [1, 1, 12] buffers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ttskiln.checkpoint import TensorSpec, match_state_dict, shapes_of
from ttskiln.errors import CheckpointError
from ttskiln.families.bigvgan.activations import DOWNSAMPLE_TAPS_KEY, UPSAMPLE_TAPS_KEY
from ttskiln.families.bigvgan.filters import FILTER_TAPS, kaiser_sinc_lowpass
from ttskiln.families.bigvgan.modules import BigVGANGenerator
from ttskiln.families.weight_norm import LEGACY, fold, legacy_layout

GENERATOR_KEY = "generator"
WEIGHT_NORM_SUFFIXES = LEGACY
TAPS_SHAPE = (1, 1, FILTER_TAPS)


def is_weight_norm_layout(state: Mapping[str, object]) -> bool:
    """True when any layer is stored as weight_g / weight_v."""
    return any(key.endswith(WEIGHT_NORM_SUFFIXES) for key in state)


def released_shapes(model: BigVGANGenerator, weight_norm: bool) -> dict[str, tuple[int, ...]]:
    """Every key of the released state_dict with its shape (``model`` may live on meta)."""
    shapes = shapes_of(model)
    if weight_norm:
        for prefix, layer in model.weight_normed_layers():
            weight = shapes.pop(f"{prefix}.weight")
            shapes[f"{prefix}.weight_g"] = TensorSpec((weight[0],) + (1,) * (len(weight) - 1), weight.dtype)
            shapes[f"{prefix}.weight_v"] = weight
    for prefix, _ in model.anti_aliased_activations():
        shapes[f"{prefix}.{UPSAMPLE_TAPS_KEY}"] = TAPS_SHAPE
        shapes[f"{prefix}.{DOWNSAMPLE_TAPS_KEY}"] = TAPS_SHAPE
    return shapes


def fold_weight_norm(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v||, the norm over every axis but 0. g: (d0, 1, ..), v: (d0, ...) -> like v."""
    return fold(g, v)


def generator_state(
    file_state: Mapping[str, object], model: BigVGANGenerator, source: str
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Check ``file_state`` strictly against ``model``'s released layout, fold weight norm.

    Returns the folded parameters (float32, keyed like ``model.state_dict()``) and, per
    activation prefix, its (upsample, downsample) taps.
    """
    file_state = legacy_layout(file_state, source)
    weight_norm = is_weight_norm_layout(file_state)
    match_state_dict(file_state, released_shapes(model, weight_norm), source)
    state = {k: v.to(torch.float32) for k, v in file_state.items() if isinstance(v, torch.Tensor)}
    if weight_norm:
        for prefix, _ in model.weight_normed_layers():
            g, v = state.pop(f"{prefix}.weight_g"), state.pop(f"{prefix}.weight_v")
            state[f"{prefix}.weight"] = fold_weight_norm(g, v)
    taps = {}
    for prefix, _ in model.anti_aliased_activations():
        up = state.pop(f"{prefix}.{UPSAMPLE_TAPS_KEY}")
        down = state.pop(f"{prefix}.{DOWNSAMPLE_TAPS_KEY}")
        taps[prefix] = (up, down)
    bad = [k for k, v in state.items() if not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{source}: non-finite values in {bad[:6]}")
    return state, taps


def unwrap_generator(data: Mapping[str, object], source: str) -> Mapping[str, object]:
    """The generator state_dict inside a loaded ``bigvgan_generator.pt``."""
    state = data.get(GENERATOR_KEY)
    if not isinstance(state, Mapping):
        keys = sorted(data)[:6]
        raise CheckpointError(
            f"{source}: expected a dict with the key {GENERATOR_KEY!r} holding the generator state_dict "
            f"(the layout of BigVGAN's bigvgan_generator.pt); found keys {keys}"
        )
    return state


def released_state(model: BigVGANGenerator, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """``model``'s weights in the released weight-norm layout, taps included.

    Each v is the folded weight times a random positive per-channel factor (so g != ||v||
    and folding is exercised); g carries the norm that restores the weight.
    """
    state: dict[str, torch.Tensor] = {}
    layers = dict(model.weight_normed_layers())
    for name, tensor in model.state_dict().items():
        prefix, _, leaf = name.rpartition(".")
        if prefix in layers and leaf == "weight":
            scale_shape = (tensor.shape[0],) + (1,) * (tensor.dim() - 1)
            scale = 0.5 + 1.5 * torch.rand(scale_shape, generator=generator)
            v = tensor * scale
            dims = tuple(range(1, v.dim()))
            state[f"{prefix}.weight_g"] = torch.linalg.vector_norm(tensor, dim=dims, keepdim=True)
            state[f"{prefix}.weight_v"] = v
        else:
            state[name] = tensor
    lowpass = kaiser_sinc_lowpass()
    for prefix, _ in model.anti_aliased_activations():
        state[f"{prefix}.{UPSAMPLE_TAPS_KEY}"] = lowpass.clone()
        state[f"{prefix}.{DOWNSAMPLE_TAPS_KEY}"] = lowpass.clone()
    return {k: v.detach().contiguous() for k, v in state.items()}
