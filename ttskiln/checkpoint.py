"""Safe checkpoint reading and strict state_dict matching.

Pickled checkpoints load with ``torch.load(weights_only=True)``: a checkpoint's pickle code
never runs. safetensors files are read with the safetensors library.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from ttskiln.errors import CheckpointError

_SHOWN = 6


def load_tensors(path: str | Path) -> dict[str, object]:
    """Load a ``.safetensors`` file or a ``torch.save`` file without running pickle code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zip(path))
    except Exception as exc:
        raise CheckpointError(
            f"{path} could not be read as a weights-only torch checkpoint "
            f"(pickled code is never executed): {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a mapping of tensors")
    return dict(data)


def _is_zip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Every persistent state_dict entry of ``module`` with its shape."""
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def match_state_dict(
    state: Mapping[str, object], expected: Mapping[str, tuple[int, ...]], source: str
) -> None:
    """Raise a CheckpointError naming missing, unexpected and mis-shaped keys."""
    problems = []
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        problems.append(f"non-tensor entries {_few(not_tensors)}")
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in not_tensors]
    if missing:
        problems.append(f"{len(missing)} missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys {_few(unexpected)}")
    mis_shaped = [
        f"{k}: expected {list(expected[k])}, got {list(v.shape)}"
        for k, v in state.items()
        if k in expected and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(expected[k])
    ]
    if mis_shaped:
        problems.append(f"{len(mis_shaped)} shape mismatches ({'; '.join(mis_shaped[:_SHOWN])})")
    if problems:
        raise CheckpointError(
            f"{source} does not match the configured architecture: " + "; ".join(problems)
        )


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return f"[{shown}{', ...' if len(keys) > _SHOWN else ''}]"
