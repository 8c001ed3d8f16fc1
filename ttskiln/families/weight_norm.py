"""Weight norm as checkpoints store it, in the two layouts torch writes.

* legacy ``torch.nn.utils.weight_norm``: ``X.weight_g`` (magnitude, ``[d0, 1, ...]``) and
  ``X.weight_v`` (direction, the weight's shape);
* ``torch.nn.utils.parametrizations.weight_norm``: ``X.parametrizations.weight.original0`` (the
  magnitude) and ``X.parametrizations.weight.original1`` (the direction).

Both mean ``weight = g * v / ||v||`` with the norm over every axis but 0 (both APIs' default
``dim=0``; for a ConvTranspose1d, whose weight is ``[in, out, k]``, axis 0 is the input
channel). Families read either layout through ``legacy_layout`` (same keys as the legacy
files their loaders check) or ``fold_weight_norm`` (one plain ``X.weight`` per pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from ttskiln.errors import CheckpointError

LEGACY = (".weight_g", ".weight_v")
PARAMETRIZED = (".parametrizations.weight.original0", ".parametrizations.weight.original1")


def has_weight_norm(state: Mapping[str, Any]) -> bool:
    """True when any layer is stored as a (magnitude, direction) pair, in either layout."""
    return any(key.endswith(LEGACY + PARAMETRIZED) for key in state)


def legacy_layout(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``state`` with every parametrization pair renamed to ``weight_g`` / ``weight_v``."""
    out: dict[str, Any] = {}
    for key, value in state.items():
        for legacy, parametrized in zip(LEGACY, PARAMETRIZED):
            if key.endswith(parametrized):
                key = key[: -len(parametrized)] + legacy
                if key in state:
                    raise CheckpointError(f"{source}: {key} is stored twice (legacy and parametrization layouts)")
                break
        out[key] = value
    return out


def fold(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """g * v / ||v||, the norm over every axis but 0, computed in float32; v's dtype."""
    vf = v.float()
    norm = torch.linalg.vector_norm(vf, dim=tuple(range(1, v.dim())), keepdim=True)
    return (vf * (g.float().reshape(norm.shape) / norm)).to(v.dtype)


def fold_weight_norm(state: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``state`` with each (g, v) pair, in either layout, replaced by ``X.weight``.

    A lone half, a pair whose shapes disagree, or a layer that also holds a plain weight is a
    CheckpointError naming the layer.
    """
    state = legacy_layout(state, source)
    out: dict[str, Any] = {}
    pairs: dict[str, dict[int, Any]] = {}
    for key, value in state.items():
        half = next((i for i, suffix in enumerate(LEGACY) if key.endswith(suffix)), None)
        if half is None:
            out[key] = value
        else:
            pairs.setdefault(key[: -len(LEGACY[half])], {})[half] = value
    for base, halves in pairs.items():
        if set(halves) != {0, 1}:
            lacking = "weight_v (parametrizations.weight.original1)" if 0 in halves else "weight_g (parametrizations.weight.original0)"
            raise CheckpointError(f"{source}: weight-norm layer {base} lacks its {lacking} half")
        g, v = halves[0], halves[1]
        if (not isinstance(g, torch.Tensor) or not isinstance(v, torch.Tensor) or v.dim() < 1
                or g.numel() != v.shape[0]):
            raise CheckpointError(f"{source}: weight-norm layer {base} has a magnitude that does not match its direction")
        if f"{base}.weight" in out:
            raise CheckpointError(f"{source}: {base} holds both a plain weight and a weight-norm pair")
        out[f"{base}.weight"] = fold(g, v)
    return out
