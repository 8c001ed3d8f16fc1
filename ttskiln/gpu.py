"""What this machine offers for the GPU stages, and the tag engine paths carry.

Detection never imports CUDA libraries eagerly in a way that fails: every probe is guarded,
and a missing tool is reported with the reason, which the report prints for skipped stages.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class Machine:
    gpus: tuple[str, ...]
    driver: str | None
    tensorrt: str | None
    tensorrt_llm: str | None
    ort_providers: tuple[str, ...]
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    def tag(self) -> str:
        """``<gpu model>-trt<version>``: engines built here are valid only on the same GPU model
        with the same TensorRT, so their paths carry both."""
        return engine_tag(self.gpus[0] if self.gpus else "nogpu", self.tensorrt or "none")

    def skipped_stages(self) -> dict[str, str]:
        """Stage -> why it does not run here (empty when everything can run)."""
        reasons = {}
        if not self.has_gpu:
            why = self.notes.get("gpu", "no CUDA device")
            reasons["tensorrt_engines"] = why
            reasons["tensorrt_llm"] = why
        else:
            if not self.tensorrt:
                reasons["tensorrt_engines"] = "the tensorrt Python package is not installed"
            if not self.tensorrt_llm:
                reasons["tensorrt_llm"] = "the tensorrt_llm Python package is not installed"
        for provider, backend in (("CUDAExecutionProvider", "ort-cuda"), ("TensorrtExecutionProvider", "ort-trt")):
            if provider not in self.ort_providers:
                reasons[backend] = f"onnxruntime offers no {provider} (install onnxruntime-gpu on a CUDA machine)"
        return reasons


    def trtllm_tag(self) -> str:
        """``<gpu model>-trtllm<version>``: TensorRT-LLM engines (the version pins TensorRT)."""
        return trtllm_tag(self.gpus[0] if self.gpus else "nogpu", self.tensorrt_llm or "none")


def _slug(gpu: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", gpu.lower()).strip("-") or "gpu"


def check_node(expected: str, kind: str = "engine") -> None:
    """Refuse to build an engine whose path names another GPU model or toolchain than this
    node's (``kind``: ``engine`` for TensorRT tags, ``trtllm`` for TensorRT-LLM tags)."""
    from ttskiln.errors import TtskilnError

    machine = detect()
    here = machine.tag() if kind == "engine" else machine.trtllm_tag()
    if here != expected:
        raise TtskilnError(
            f"this node is {here!r}, but the engine path is tagged {expected!r}: an engine built here would be "
            "filed under the wrong GPU or toolchain. Run the job on that GPU type (pin it with the gpu_model "
            "resource) or plan with this node's tag"
        )


def engine_tag(gpu: str, tensorrt: str) -> str:
    return f"{_slug(gpu)}-trt{tensorrt}"


def trtllm_tag(gpu: str, tensorrt_llm: str) -> str:
    return f"{_slug(gpu)}-trtllm{tensorrt_llm}"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


#: ONNX Runtime's GPU execution providers, each a shared library beside its Python bindings
#: (``capi/libonnxruntime_providers_<name>.so``, ``.dll`` on Windows) in the builds that offer it.
PROVIDER_LIBRARIES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider"}


def ort_providers(load: bool = False) -> tuple[str, ...]:
    """The execution providers the installed ONNX Runtime offers (CPU last).

    Without ``load``, the GPU providers are read from the provider libraries the package ships,
    so that planning does not import ONNX Runtime; with ``load`` (or where the package is laid
    out otherwise), from ``onnxruntime.get_available_providers()``."""
    import importlib.util
    import sys
    from pathlib import Path

    try:
        spec = importlib.util.find_spec("onnxruntime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return ()
    capi = Path(spec.origin).parent / "capi"
    if not load and "onnxruntime" not in sys.modules and capi.is_dir():
        names = {f.name for f in capi.iterdir()}
        if any(n.startswith(("libonnxruntime.", "onnxruntime.dll")) for n in names):
            found = tuple(
                provider
                for lib, provider in PROVIDER_LIBRARIES.items()
                if any(n.startswith((f"libonnxruntime_providers_{lib}.", f"onnxruntime_providers_{lib}.")) for n in names)
            )
            return (*found, "CPUExecutionProvider")
    try:
        import onnxruntime

        return tuple(onnxruntime.get_available_providers())
    except ImportError:
        return ()


def detect() -> Machine:
    notes: dict[str, str] = {}
    gpus: tuple[str, ...] = ()
    driver = None
    smi = shutil.which("nvidia-smi")
    if smi is None:
        notes["gpu"] = "no CUDA device (nvidia-smi not found)"
    else:
        try:
            out = subprocess.run(
                [smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=True,
            ).stdout
            rows = [line.split(",") for line in out.strip().splitlines() if line.strip()]
            gpus = tuple(r[0].strip() for r in rows)
            driver = rows[0][1].strip() if rows else None
            if not gpus:
                notes["gpu"] = "no CUDA device (nvidia-smi lists none)"
        except (subprocess.SubprocessError, OSError) as exc:
            notes["gpu"] = f"no CUDA device (nvidia-smi failed: {exc})"
    providers = ort_providers()
    return Machine(
        gpus=gpus,
        driver=driver,
        tensorrt=_version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt_cu12"),
        tensorrt_llm=_version("tensorrt_llm") or _version("tensorrt-llm"),
        ort_providers=providers,
        notes=notes,
    )


def describe(machine: Machine) -> dict[str, Any]:
    return {
        "gpus": list(machine.gpus),
        "driver": machine.driver,
        "tensorrt": machine.tensorrt,
        "tensorrt_llm": machine.tensorrt_llm,
        "onnxruntime_providers": list(machine.ort_providers),
        "engine_tag": machine.tag(),
        "trtllm_tag": machine.trtllm_tag(),
        "skipped": machine.skipped_stages(),
    }
