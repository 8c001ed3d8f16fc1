"""Backends for ``host.synthesize``: the PyTorch component modules and ONNX Runtime sessions."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.families.base import ModelInfo
from ttskiln.families.vits.host import Backend

#: The synthesis graphs; a model may add the speaker encoder (see ``components``).
COMPONENTS = ("text_encoder", "duration_predictor", "flow", "decoder")


def components(info: ModelInfo) -> list[str]:
    return [c.name for c in info.components]


def torch_backend(family: Any, model: Any, info: ModelInfo) -> Backend:
    from ttskiln.runtime import torch_run

    modules = {name: family.component_module(model, name) for name in components(info)}

    def run(component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return torch_run(modules[component], info.component(component), inputs)

    return run


def export_components(family: Any, model: Any, info: ModelInfo, directory: Path, opset: int = 18) -> dict[str, Path]:
    """Export every component (dynamic axes, op audit) into ``directory``; name -> path."""
    from ttskiln.onnx_export import export_module, finish_onnx

    paths = {}
    for name in components(info):
        spec = info.component(name)
        example = family.make_inputs(info, name, spec.trace_sizes, np.random.default_rng(0))
        path = Path(directory) / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            export_module(family.component_module(model, name), spec, example, path, opset, "dynamo")
        finish_onnx(path, spec, {})
        paths[name] = path
    return paths


def onnx_backend(paths: dict[str, str | Path], info: ModelInfo, threads: int | None = None) -> Backend:
    from ttskiln.runtime import ort_session

    sessions = {name: ort_session(paths[name], threads, spin=False) for name in components(info)}

    def run(component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        spec = info.component(component)
        feed = {name: np.ascontiguousarray(inputs[name]) for name in spec.input_names}
        return dict(zip(spec.output_names, sessions[component].run(spec.output_names, feed)))

    return run
