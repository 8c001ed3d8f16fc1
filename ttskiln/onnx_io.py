"""Saving ONNX models of any size: one file, or the graph plus ``<name>.data`` past 2 GB.

Protobuf cannot serialise a message over 2 GB, so large models keep their tensors in one
external data file beside the graph (``model.onnx`` + ``model.onnx.data``); ONNX Runtime and
TensorRT load it from there. The graph file is written last, under a temporary name, so a
reader never sees a graph whose data is incomplete.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttskiln.atomic import atomic_path

#: Tensors past this many bytes go to an external data file (protobuf's limit is 2 GiB).
EXTERNAL_DATA_BYTES = 1800 * 1024 * 1024


def tensor_bytes(model: Any) -> int:
    import numpy as np
    from onnx import helper

    total = 0
    for tensor in model.graph.initializer:
        count = int(np.prod(tensor.dims)) if tensor.dims else 1
        total += count * helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return total


def data_file(path: str | Path) -> Path:
    return Path(f"{path}.data")


def save_onnx(model: Any, path: str | Path, limit: int = EXTERNAL_DATA_BYTES) -> list[str]:
    """Save ``model`` at ``path``; returns the files that make up the artifact."""
    import onnx

    final = Path(path)
    external = tensor_bytes(model) > limit
    data = data_file(final)
    if data.exists():
        data.unlink()
    with atomic_path(final, suffix=".onnx") as tmp:
        if external:
            # The location is relative to the graph file; it names the final data file.
            onnx.save(model, str(tmp), save_as_external_data=True, all_tensors_to_one_file=True,
                      location=data.name)  # tensors under 1 KB (shapes) stay inline
            # onnx wrote the data beside tmp, under the final name.
        else:
            onnx.save(model, str(tmp))
    return [str(final), str(data)] if external else [str(final)]


def artifact_files(path: str | Path) -> list[str]:
    """The graph and, when present, its external data file."""
    data = data_file(path)
    return [str(path), str(data)] if data.exists() else [str(path)]
