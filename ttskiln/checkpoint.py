"""Safe checkpoint reading and strict state_dict matching.

Pickled checkpoints load with ``torch.load(weights_only=True)``: a checkpoint's pickle code
never runs. safetensors files are read with the safetensors library (whatever the file is
called: a safetensors file saved as ``pytorch_model.bin`` is recognised by its header).

Trainer checkpoints (``{"model": state_dict, "config": <object>, "step": np.int64, ...}``)
often pickle objects of the training code. When a caller names the ``entries`` it needs, the
classes of the other entries are replaced by inert placeholders: the class is never imported,
its ``__init__``/``__setstate__`` never run, and a pickled *call* of anything outside torch's
allow-list is refused. The needed entries must hold only tensors and plain containers.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from ttskiln.errors import ANSI_ESCAPE, CheckpointError, one_line

_SHOWN = 6
#: How a file can be re-saved so that a weights-only reader takes it (never weights_only=False).
RESAVE = (
    "to use it, load it once in the environment that trained it and save "
    "{'model': model.state_dict(), 'config': <plain dict>} with torch.save, or the state_dict with safetensors"
)
_UNSUPPORTED = re.compile(r"Unsupported global: GLOBAL (\S+) was not an allowed global")
_BLOCKED = re.compile(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked")
#: At most this many distinct classes are replaced by placeholders in one file.
_MAX_PLACEHOLDERS = 64


class TensorSpec(tuple):
    """A state_dict entry's shape (a plain tuple to compare) that also carries its dtype."""

    dtype: torch.dtype

    def __new__(cls, shape: Iterable[int], dtype: torch.dtype) -> TensorSpec:
        spec = super().__new__(cls, shape)
        spec.dtype = dtype
        return spec

    def __reduce__(self) -> tuple[Any, ...]:
        return (TensorSpec, (tuple(self), self.dtype))


class PickledObject:
    """Stands in for an instance of a class outside torch's allow-list (never imported).

    Built only the way pickle builds an instance without calling it (``cls.__new__`` and the
    saved state); a call, which in pickle runs arbitrary code, is refused.
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> PickledObject:
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise _PickledCall(self.global_name)

    def __setstate__(self, state: Any) -> None:
        self.__dict__["_state"] = state


class _PickledCall(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def load_tensors(path: str | Path, entries: Iterable[str] | None = None) -> dict[str, object]:
    """Load a safetensors file or a ``torch.save`` file without running pickle code.

    ``entries``: the top-level keys a trainer checkpoint must give up (e.g. ``("model",)``);
    other entries may hold pickled objects of foreign classes, which are dropped. Without it
    (or when the file lacks those keys) every value must be a tensor, number or plain container.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    kind = _file_kind(path)
    if path.suffix == ".safetensors" or kind == "safetensors":
        return _load_safetensors(path)
    if kind is None:
        raise CheckpointError(
            f"{path} is neither a torch.save file (zip or legacy pickle) nor a safetensors file"
        )
    data, placeholders = _torch_load(path, kind, entries is not None)
    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a mapping of tensors")
    data = dict(data)
    if placeholders:
        needed = [e for e in entries or () if e in data]
        scope = needed if needed and len(needed) == len(list(entries or ())) else list(data)
        for key in scope:
            found = _placeholder_in(data[key])
            if found is not None:
                where = f"entry {key!r}" if needed else f"key {key!r}"
                raise CheckpointError(
                    f"{path}: {where} holds a pickled {found} object, not a tensor or plain value "
                    f"(a weights-only read never imports it); {RESAVE}"
                )
        data = {k: v for k, v in data.items() if k in scope or _placeholder_in(v) is None}
    return data


def _load_safetensors(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a readable safetensors file: {one_line(str(exc))}") from exc


def _file_kind(path: Path) -> str | None:
    """'zip', 'legacy' (a pickle stream), 'safetensors' or None, from the first bytes."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "legacy"
    if len(head) == 9 and head[8:9] == b"{":
        return "safetensors"
    return None


def _zip_stored(path: Path) -> bool | str:
    """True when every zip member is stored (mmap-able), False when some are compressed,
    or the reason the zip cannot be read."""
    try:
        with zipfile.ZipFile(path) as zf:
            return all(info.compress_type == zipfile.ZIP_STORED for info in zf.infolist())
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
        return str(exc) or type(exc).__name__


def _torch_load(path: Path, kind: str, placeholders: bool) -> tuple[Any, bool]:
    """torch.load(weights_only=True), numpy scalars allowed; with ``placeholders``, foreign
    classes become PickledObject subclasses. Returns the data and whether any was used."""
    mmap = False
    if kind == "zip":
        stored = _zip_stored(path)
        if isinstance(stored, str):
            raise CheckpointError(f"{path} is a damaged zip archive ({stored}): truncated or corrupted? copy it again")
        mmap = stored  # torch reads DEFLATE members only without mmap (with it, garbage)
    stand_ins: dict[str, type] = {}
    while True:
        allowed = _numpy_scalar_globals() + [(cls, name) for name, cls in stand_ins.items()]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap), bool(stand_ins)
        except _PickledCall as call:
            raise CheckpointError(
                f"{path} holds a pickled call of {call.name}, code that only a full unpickler would run "
                f"(refused: a weights-only read never runs pickled code); {RESAVE}"
            ) from None
        except Exception as exc:
            message = ANSI_ESCAPE.sub("", str(exc))
            name = _unsupported_global(message)
            if placeholders and name and "." in name and name not in stand_ins and len(stand_ins) < _MAX_PLACEHOLDERS:
                stand_ins[name] = type(name.rpartition(".")[2], (PickledObject,), {"global_name": name})
                continue
            raise CheckpointError(f"{path}: {_refusal(message, exc)}; {RESAVE}") from None


def _unsupported_global(message: str) -> str | None:
    found = _UNSUPPORTED.search(message)
    return found.group(1) if found else None


def _refusal(message: str, exc: Exception) -> str:
    """One line from torch's (multi-line, colour-coded) error: what in the file is refused."""
    blocked = _BLOCKED.search(message)
    if blocked:
        return (
            f"the pickled global {blocked.group(1)} (module {blocked.group(2)}) is refused "
            "by the weights-only reader; its pickled code was not run"
        )
    name = _unsupported_global(message)
    if name:
        shown = name if "." in name else f"builtins.{name}"
        return (
            f"the pickled global {shown} is not a tensor, number or plain container, so the weights-only "
            "reader refuses it (it was not imported or run)"
        )
    if "WeightsUnpickler error:" in message:
        reason = message.split("WeightsUnpickler error:", 1)[1]
        reason = reason.split("Check the documentation of torch.load", 1)[0]
        return f"the weights-only reader refuses its pickle: {one_line(reason)}"
    if isinstance(exc, RuntimeError) and "storage" in message:
        return f"torch cannot read its tensor data ({one_line(message)}): the archive is not as torch.save writes it"
    return f"not a readable torch checkpoint ({type(exc).__name__}: {one_line(message) or 'no detail'})"



def _placeholder_in(value: Any, depth: int = 0) -> str | None:
    """The class name of the first PickledObject inside ``value`` (None when plain)."""
    if isinstance(value, PickledObject):
        return type(value).global_name
    if depth > 50:
        return None
    if isinstance(value, Mapping):
        items: Iterable[Any] = list(value.keys()) + list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = value
    else:
        return None
    for item in items:
        found = _placeholder_in(item, depth + 1)
        if found is not None:
            return found
    return None


def _numpy_scalar_globals() -> list[Any]:
    """numpy's scalar reconstructor and the dtypes of plain numbers (values only, no code):
    trainer files store step and loss as numpy scalars."""
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    kinds = (np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_)
    allowed: list[Any] = [scalar, np.dtype, *(type(np.dtype(k)) for k in kinds)]
    if hasattr(np, "_core"):  # pickles written with numpy 1 name the old module path
        allowed.append((scalar, "numpy.core.multiarray.scalar"))
    return allowed


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Every persistent state_dict entry of ``module`` with its shape (a TensorSpec: the
    dtype rides along, so ``match_state_dict`` can refuse integer data for a float parameter)."""
    return {name: TensorSpec(t.shape, t.dtype) for name, t in module.state_dict().items()}


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
    mis_typed = [
        f"{k}: stored as {str(v.dtype).removeprefix('torch.')}, the parameter is "
        f"{str(expected[k].dtype).removeprefix('torch.')}"
        for k, v in state.items()
        if isinstance(expected.get(k), TensorSpec) and isinstance(v, torch.Tensor)
        and expected[k].dtype.is_floating_point and not v.dtype.is_floating_point
    ]
    if mis_typed:
        problems.append(
            f"{len(mis_typed)} entries of the wrong kind of number, which a cast would silently change "
            f"({'; '.join(mis_typed[:_SHOWN])})"
        )
    if problems:
        raise CheckpointError(
            f"{source} does not match the configured architecture: " + "; ".join(problems)
        )


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return f"[{shown}{', ...' if len(keys) > _SHOWN else ''}]"
