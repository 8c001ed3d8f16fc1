"""Backends for ``host.synthesize``: one ``ttskiln.runners`` runner per component, over the
PyTorch component modules or ONNX Runtime sessions."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.families.base import ModelInfo
from ttskiln.families.vits.host import Backend
from ttskiln.runners import OrtRunner, Runner, TorchRunner

#: The synthesis graphs; a model may add the speaker encoder (see ``components``).
COMPONENTS = ("text_encoder", "duration_predictor", "flow", "decoder")


def components(info: ModelInfo) -> list[str]:
    return [c.name for c in info.components]


def runners_backend(runners: dict[str, Runner]) -> Backend:
    """A ``host.Backend`` over one runner per component (each activated here)."""
    for runner in runners.values():
        runner.activate()

    def run(component: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return runners[component].infer(inputs)

    return run


def torch_backend(family: Any, model: Any, info: ModelInfo) -> Backend:
    return runners_backend({
        name: TorchRunner(family.component_module(model, name), info.component(name).input_names,
                          info.component(name).output_names)
        for name in components(info)
    })


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
    # No spinning: the host code between the graph calls needs the cores (see runtime.ort_session).
    return runners_backend({
        name: OrtRunner(paths[name], threads=threads, spin=False, outputs=info.component(name).output_names)
        for name in components(info)
    })
