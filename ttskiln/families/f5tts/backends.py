"""Velocity functions over one runner of the ``dit`` graph (``ttskiln.runners``).

``DitVelocity(dims, run)`` is what ``sampler.sample`` calls: it packs DiT.forward-style
arguments into graph inputs (``host.dit_inputs``; position tables are cached per frame count)
and hands them to ``run``, a function from the graph's input dict to its output ``flow``.
``graph_runner(runner)`` makes that function of any ``ttskiln.runners.Runner``;
``torch_velocity(model)`` and ``onnx_velocity(session, config)`` build one for PyTorch and
ONNX Runtime, and another runtime (the TensorRT-LLM engine) only needs its own runner.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.host import HostDims, dit_inputs, input_names, position_tables
from ttskiln.runners import OrtRunner, Runner, TorchRunner

GraphRunner = Callable[[dict[str, np.ndarray]], np.ndarray]


class DitVelocity:
    """velocity(x, cond, text, time, mask, guidance=...) -> flow.

    x, cond [B, N, M]; text [B, nt] ids (-1 = pad); time [B]; mask [B, N] or None. With
    ``guidance`` the result is [2B, N, M] (conditional rows, then unconditional rows), else
    [B, N, M] (conditional only).
    """

    def __init__(self, dims: HostDims, run: GraphRunner) -> None:
        self.dims = dims
        self.run = run
        self._tables: dict[int, dict[str, np.ndarray]] = {}

    def tables(self, frames: int) -> dict[str, np.ndarray]:
        if frames not in self._tables:
            self._tables = {frames: position_tables(self.dims, frames)}
        return self._tables[frames]

    def inputs(self, x: np.ndarray, cond: np.ndarray, text: np.ndarray, time: np.ndarray | float,
               mask: np.ndarray | None, **flags: bool) -> dict[str, np.ndarray]:
        """The graph inputs of one call (``flags``: drop_audio_cond, drop_text, cfg_infer)."""
        return dit_inputs(self.dims, x, cond, text, time, mask, tables=self.tables(np.shape(x)[1]), **flags)

    def forward(self, x: np.ndarray, cond: np.ndarray, text: np.ndarray, time: np.ndarray | float,
                mask: np.ndarray | None = None, **flags: bool) -> np.ndarray:
        """One DiT.forward with upstream's flags (drop_audio_cond, drop_text, cfg_infer)."""
        return self.run(self.inputs(x, cond, text, time, mask, **flags))

    def __call__(self, x: np.ndarray, cond: np.ndarray, text: np.ndarray, time: np.ndarray,
                 mask: np.ndarray | None, *, guidance: bool) -> np.ndarray:
        return self.forward(x, cond, text, time, mask, cfg_infer=guidance)


def graph_runner(runner: Runner, output: str = "flow") -> GraphRunner:
    """A ``GraphRunner`` over a ``ttskiln.runners`` runner (activated here): its ``output``."""
    runner.activate()

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return runner.infer(inputs)[output]

    return run


def torch_runner(module: Any) -> GraphRunner:
    """Run the PyTorch ``dit`` module (``DiT``) on a graph input dict."""
    return graph_runner(TorchRunner(module, input_names(HostDims.of(module.cfg)), ["flow"]))


def onnx_runner(session: Any) -> GraphRunner:
    """Run an ONNX Runtime session of the exported ``dit`` graph on a graph input dict."""
    return graph_runner(OrtRunner(session, outputs=["flow"]))


def torch_velocity(model: Any) -> DitVelocity:
    """The velocity of a loaded PyTorch model (``F5TTSFamily.load``)."""
    return DitVelocity(HostDims.of(model.cfg), torch_runner(model))


def onnx_velocity(session: Any, config: F5Config | dict[str, Any]) -> DitVelocity:
    """The velocity of an exported ``dit`` graph; ``session`` is an ONNX Runtime session or
    the path of the .onnx file (then a CPU session is opened)."""
    if isinstance(session, (str, Path)):
        from ttskiln.runtime import ort_session

        session = ort_session(session)
    return DitVelocity(HostDims.of(config), onnx_runner(session))
