"""Loading TensorRT at run time: the version check (the runner is ``ttskiln.runners.TrtRunner``).

A bottom-layer module (``ttskiln.LAYERS``): validation and benchmarks run engines through it
without their code hashes covering the engine-building stage.
"""

from __future__ import annotations

from ttskiln.errors import TtskilnError


def require_tensorrt() -> str:
    """The installed TensorRT version, or a TtskilnError saying it is missing."""
    try:
        import tensorrt  # noqa: F401
    except ImportError as exc:
        raise TtskilnError(
            "TensorRT is not installed in this environment (pip install tensorrt, or run with "
            "--sdm conda/apptainer to use envs/tensorrt.yaml); this stage needs a CUDA GPU"
        ) from exc
    return str(tensorrt.__version__)

