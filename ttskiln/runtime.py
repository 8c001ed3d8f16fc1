"""Running a component: PyTorch eager and ONNX Runtime, with one thread setting for both."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.families.base import ComponentSpec

CPU = "CPUExecutionProvider"


def torch_run(module: Any, spec: ComponentSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a component module on numpy inputs once; outputs by name, as numpy arrays
    (``ttskiln.runners.TorchRunner``)."""
    from ttskiln.runners import TorchRunner

    with TorchRunner(module, spec.input_names, spec.output_names) as runner:
        return runner.infer(inputs)


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def ort_session(path: str | Path, threads: int | None = None, providers: Sequence[str] = (CPU,),
                spin: bool = True) -> Any:
    """An ONNX Runtime session; ``threads`` sets intra-op threads (inter-op is 1).

    ``spin=False`` stops the intra-op threads from busy-waiting after each run. The YourTTS
    chain wants that: its host code (numpy alignment and expansion) runs between the graph
    calls, and spinning threads take the cores from it. On the 2-core machine its ONNX chain
    went from 24-37 ms to 12-13 ms per call. Single-graph benchmarks, the Tortoise decode loop
    (1.0-1.4 ms per token with spinning, 1.3-1.7 ms without) and the F5 sampling loop (no
    measurable difference) keep spinning."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())
