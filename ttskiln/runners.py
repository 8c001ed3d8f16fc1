"""One way to run a graph, and the one table of backend names.

A runner follows Polygraphy's interface: ``activate()`` loads what it runs (a session, an
engine, a compiled model), ``infer(feed)`` maps input names to numpy arrays and returns output
names to numpy arrays, ``deactivate()`` lets it go; ``with runner:`` does both ends. Validation
feeds the outputs to Polygraphy's comparators, benchmarks time ``timed_call(feed)``, and the
families' host loops (F5's sampler, the VITS stages, Tortoise's prefill/decode) call ``infer``.

``BACKENDS`` is the one table of backend names. The canonical name (``ort-cpu``) is what the
config, rule wildcards and artifact paths spell; the label (``onnxruntime-cpu``) is what records
and the report say; aliases (a label, ``onnxruntime``, ``tensorrt`` ...) resolve to the canonical
name, and anything else is refused in one line (``backend``).

This module is a bottom layer: it imports numpy, and the toolkits (torch, onnxruntime,
openvino, tensorrt, tensorrt_llm, polygraphy) only inside the runners that use them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import ConfigError, TtskilnError

CPU_PROVIDER = "CPUExecutionProvider"


@dataclass(frozen=True)
class Backend:
    """One way to run a graph: where (``device``), with what (``kind``), how it is spelled."""

    name: str
    label: str
    kind: str  # torch | onnxruntime | tensorrt | tensorrt-llm | openvino
    device: str  # cpu | gpu
    description: str
    provider: str | None = None  # ONNX Runtime execution provider
    precision: str | None = None  # OpenVINO's inference precision hint
    #: The ONNX variants this backend runs (None: every variant the model builds).
    variants: tuple[str, ...] | None = None
    #: Held to the limits of this variant instead of the artifact's own (bf16 arithmetic on an
    #: fp32 graph: the model's ``bf16`` limits, by default its fp16 ones; see ``plan``).
    tolerance_variant: str | None = None
    aliases: tuple[str, ...] = ()


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("torch", "pytorch-eager", "torch", "cpu", "PyTorch eager (the reference)", aliases=("pytorch",)),
    Backend("ort-cpu", "onnxruntime-cpu", "onnxruntime", "cpu", "ONNX Runtime, CPU execution provider",
            provider=CPU_PROVIDER, aliases=("onnxruntime",)),
    Backend("ort-cuda", "onnxruntime-cuda", "onnxruntime", "gpu", "ONNX Runtime, CUDA execution provider",
            provider="CUDAExecutionProvider"),
    Backend("ort-trt", "onnxruntime-tensorrt", "onnxruntime", "gpu", "ONNX Runtime, TensorRT execution provider",
            provider="TensorrtExecutionProvider"),
    Backend("trt", "tensorrt", "tensorrt", "gpu", "a serialized TensorRT engine (Polygraphy's TrtRunner)"),
    Backend("trtllm", "tensorrt-llm", "tensorrt-llm", "gpu", "a TensorRT-LLM engine (its runtime Session)"),
    Backend("openvino-cpu", "openvino-cpu", "openvino", "cpu",
            "OpenVINO on the CPU, fp32 inference precision (the simplified fp32 graph)",
            precision="fp32", variants=("fp32",), aliases=("openvino", "openvino-fp32", "openvino-cpu-fp32")),
    Backend("openvino-cpu-bf16", "openvino-cpu-bf16", "openvino", "cpu",
            "OpenVINO on the CPU, bf16 inference precision hint over the fp32 graph (held to the model's tolerances.bf16: by default its fp16 limits)",
            precision="bf16", variants=("fp32",), tolerance_variant="bf16", aliases=("openvino-bf16",)),
)}
ALIASES: dict[str, str] = {
    alias: b.name for b in BACKENDS.values() for alias in {b.label, *b.aliases} - {b.name}
}


def backend(name: str) -> Backend:
    """The table entry of a canonical name or an alias; ConfigError (one line) otherwise."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in BACKENDS:
        raise ConfigError(f"unknown backend {str(name)[:60]!r}; known: {', '.join(BACKENDS)}")
    return BACKENDS[key]


def canonical(name: str) -> str:
    return backend(name).name


def label(name: str) -> str:
    """What records and the report call the backend (``onnxruntime-cpu`` for ``ort-cpu``)."""
    return backend(name).label


# -- the interface ---------------------------------------------------------------------------
class Runner:
    """activate / infer / deactivate, in Polygraphy's style; a context manager."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False

    def activate(self) -> "Runner":
        if not self.is_active:
            self.activate_impl()
            self.is_active = True
        return self

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def __enter__(self) -> "Runner":
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def infer(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Outputs by name for inputs by name (numpy arrays; inputs the graph lacks are ignored)."""
        if not self.is_active:
            raise TtskilnError(f"runner {self.name}: infer before activate")
        return self.infer_impl(feed)

    def timed_call(self, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
        """A function that runs ``feed`` once, for a benchmark: what one request costs here.
        Device runners override it to keep inputs and outputs on the device between calls."""
        return lambda: self.infer(feed)

    def activate_impl(self) -> None:
        pass

    def deactivate_impl(self) -> None:
        pass

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


def _pick(feed: dict[str, Any], names: Iterable[str], runner: str) -> dict[str, Any]:
    missing = [n for n in names if n not in feed]
    if missing:
        raise TtskilnError(f"runner {runner}: inputs {missing} missing from the feed (given {sorted(feed)})")
    return {n: feed[n] for n in names}


class TorchRunner(Runner):
    """A PyTorch module (or any callable over tensors) with named inputs and outputs.

    Inputs may be numpy arrays or tensors; outputs come back as numpy arrays, except those named
    in ``keep`` (a KV cache, say), which stay tensors."""

    def __init__(self, module: Callable[..., Any], input_names: Sequence[str], output_names: Sequence[str],
                 *, threads: int | None = None, keep: Iterable[str] = (), name: str | None = None) -> None:
        super().__init__(name or label("torch"))
        self.module, self.input_names, self.output_names = module, list(input_names), list(output_names)
        self.threads, self.keep = threads, set(keep)

    def activate_impl(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        import torch

        args = [v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
                for v in _pick(feed, self.input_names, self.name).values()]
        with torch.inference_mode():
            result = self.module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        return {n: t if n in self.keep else t.detach().cpu().numpy() for n, t in zip(self.output_names, result)}

    def timed_call(self, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
        """The module call alone (tensors made once), as PyTorch eager is used in deployment."""
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feed[n])) for n in self.input_names]

        def call() -> Any:
            with torch.inference_mode():
                return self.module(*args)

        return call


class OrtRunner(Runner):
    """An ONNX Runtime session run with I/O binding.

    ``model`` is an .onnx path (the session is opened on ``activate``) or an open session.
    Inputs may be numpy arrays or ``OrtValue``s (bound as they are, wherever they live); outputs
    come back as numpy arrays except those named in ``keep``, left as ``OrtValue``s where the
    provider put them (host memory on CPU, device memory on CUDA/TensorRT)."""

    def __init__(self, model: str | Path | Any, *, provider: str = CPU_PROVIDER, threads: int | None = None,
                 spin: bool = True, outputs: Sequence[str] | None = None, keep: Iterable[str] = (),
                 name: str | None = None, device_id: int = 0) -> None:
        super().__init__(name or next((b.label for b in BACKENDS.values() if b.provider == provider), "onnxruntime"))
        self.model, self.provider, self.threads, self.spin = model, provider, threads, spin
        self.wanted, self.keep, self.device_id = outputs, set(keep), device_id
        self.device = "cpu" if provider == CPU_PROVIDER else "cuda"
        self.session: Any = None
        if not isinstance(model, (str, Path)):
            self._bind(model)
            self.is_active = True

    def _bind(self, session: Any) -> None:
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = list(self.wanted or [o.name for o in session.get_outputs()])

    def activate_impl(self) -> None:
        from ttskiln.runtime import available_providers, ort_session

        if self.provider not in available_providers():
            raise TtskilnError(f"ONNX Runtime has no {self.provider} here (available: "
                               f"{', '.join(available_providers())}); this backend needs onnxruntime-gpu and a CUDA GPU")
        providers = [self.provider] + ([CPU_PROVIDER] if self.provider != CPU_PROVIDER else [])
        self._bind(ort_session(self.model, self.threads, providers=providers, spin=self.spin))

    def deactivate_impl(self) -> None:
        if isinstance(self.model, (str, Path)):
            self.session = None

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        binding = self.session.io_binding()
        for name, value in _pick(feed, self.input_names, self.name).items():
            if isinstance(value, np.ndarray) or np.isscalar(value):
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
            else:
                binding.bind_ortvalue_input(name, value)
        for name in self.output_names:
            if name in self.keep:
                binding.bind_output(name, self.device, self.device_id)
            else:
                binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        return {n: v if n in self.keep else v.numpy() for n, v in zip(self.output_names, values)}

    def timed_call(self, feed: dict[str, np.ndarray]) -> Callable[[], Any]:
        if self.device == "cpu":
            return super().timed_call(feed)
        # On a GPU: inputs copied to the device once, outputs stay there between calls.
        import onnxruntime as ort

        binding = self.session.io_binding()
        for name, value in _pick(feed, self.input_names, self.name).items():
            binding.bind_ortvalue_input(
                name, ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), self.device, self.device_id))
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        return lambda: self.session.run_with_iobinding(binding)


def openvino_cpu_bf16() -> bool | None:
    """Whether OpenVINO's CPU plugin can run bf16 here (``BF16`` among the CPU's optimization
    capabilities); None where OpenVINO is not importable."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


class OpenVinoRunner(Runner):
    """An ONNX graph compiled by OpenVINO for the CPU.

    ``precision`` is OpenVINO's inference precision hint (``INFERENCE_PRECISION_HINT``): ``fp32``
    runs the graph in fp32 (set explicitly: on CPUs with bf16 units OpenVINO's default is bf16),
    ``bf16`` lets the CPU plugin run matrix products and convolutions in bf16. A CPU without
    bf16 support would silently run fp32; that is refused rather than reported as bf16."""

    HINTS = {"fp32": "f32", "bf16": "bf16"}

    def __init__(self, model: str | Path, *, precision: str = "fp32", threads: int | None = None,
                 name: str | None = None) -> None:
        if precision not in self.HINTS:
            raise ConfigError(f"OpenVINO precision {precision!r}: one of {', '.join(self.HINTS)}")
        super().__init__(name or next(b.label for b in BACKENDS.values() if b.kind == "openvino" and b.precision == precision))
        self.model, self.precision, self.threads = str(model), precision, threads
        self.request: Any = None

    def activate_impl(self) -> None:
        import openvino as ov

        core = ov.Core()
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": self.HINTS[self.precision],
                                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = int(self.threads)
        compiled = core.compile_model(core.read_model(self.model), "CPU", config)
        effective = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        if self.precision == "bf16" and "bf16" not in effective and "bfloat16" not in effective:
            raise TtskilnError(f"OpenVINO runs {effective} on this CPU, not bf16 (no bf16 support)")
        self.input_names = [p.get_any_name() for p in compiled.inputs]
        self.output_names = [p.get_any_name() for p in compiled.outputs]
        self.request = compiled.create_infer_request()

    def deactivate_impl(self) -> None:
        self.request = None

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        inputs = {n: np.ascontiguousarray(v) for n, v in _pick(feed, self.input_names, self.name).items()}
        self.request.infer(inputs)
        return {n: self.request.get_output_tensor(i).data.copy() for i, n in enumerate(self.output_names)}


class TrtRunner(Runner):
    """A serialized TensorRT engine, run by Polygraphy's ``TrtRunner`` (it handles shapes,
    profiles and device buffers; this class only adds the lazy import and the interface)."""

    def __init__(self, engine: str | Path, name: str | None = None) -> None:
        super().__init__(name or label("trt"))
        self.engine = str(engine)
        self.inner: Any = None

    def activate_impl(self) -> None:
        require_toolkit("tensorrt", "TensorRT")
        from polygraphy.backend.common import BytesFromPath
        from polygraphy.backend.trt import EngineFromBytes
        from polygraphy.backend.trt import TrtRunner as PolygraphyTrtRunner

        self.inner = PolygraphyTrtRunner(EngineFromBytes(BytesFromPath(self.engine)), name=self.name)
        self.inner.activate()

    def deactivate_impl(self) -> None:
        self.inner.deactivate()
        self.inner = None

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        names = list(self.inner.get_input_metadata().keys())
        feed = {n: np.ascontiguousarray(v) for n, v in _pick(feed, names, self.name).items()}
        return {n: np.asarray(v) for n, v in self.inner.infer(feed).items()}


class TrtllmRunner(Runner):
    """A TensorRT-LLM engine (``rank0.engine`` in an engine folder, or the file) run with its
    runtime ``Session``: inputs cast to the engine's tensor types on the GPU, output shapes
    from the engine's shape inference, ``outputs`` back to the host as float32/int numpy."""

    def __init__(self, engine: str | Path, outputs: Sequence[str], name: str | None = None) -> None:
        super().__init__(name or label("trtllm"))
        path = Path(engine)
        self.engine = path / "rank0.engine" if path.is_dir() else path
        self.outputs = list(outputs)
        self.session: Any = None

    def activate_impl(self) -> None:
        require_toolkit("tensorrt_llm", "TensorRT-LLM")
        from tensorrt_llm.runtime.session import Session

        self.session = Session.from_serialized_engine(self.engine.read_bytes())

    def deactivate_impl(self) -> None:
        self.session = None

    def infer_impl(self, feed: dict[str, Any]) -> dict[str, Any]:
        import torch
        from tensorrt_llm._utils import trt_dtype_to_torch
        from tensorrt_llm.runtime.session import TensorInfo

        engine = self.session.engine
        tensors = {n: torch.from_numpy(np.ascontiguousarray(v)).cuda().to(trt_dtype_to_torch(engine.get_tensor_dtype(n)))
                   for n, v in feed.items()}
        infos = [TensorInfo(n, engine.get_tensor_dtype(n), tuple(t.shape)) for n, t in tensors.items()]
        shapes = {info.name: info for info in self.session.infer_shapes(infos)}
        out = {n: torch.empty(tuple(shapes[n].shape), dtype=trt_dtype_to_torch(engine.get_tensor_dtype(n)), device="cuda")
               for n in self.outputs}
        stream = torch.cuda.current_stream()
        if not self.session.run(tensors, out, stream.cuda_stream):
            raise TtskilnError(f"TensorRT-LLM engine {self.engine}: Session.run failed")
        stream.synchronize()
        return {n: (t.float() if t.is_floating_point() else t).cpu().numpy() for n, t in out.items()}


def require_toolkit(module: str, what: str) -> None:
    """Import ``module`` or raise a one-line TtskilnError naming what is missing."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:  # ImportError, or CUDA/driver errors raised at import
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TtskilnError(f"{what} is not importable here ({type(exc).__name__}: {first[:200]}); "
                           "this backend needs a CUDA GPU and its environment (envs/)") from None


def artifact_runner(name: str, artifact: str | Path, *, threads: int | None = None) -> Runner:
    """The runner of a graph file (ONNX, or a TensorRT engine) on backend ``name`` (any spelling)."""
    b = backend(name)
    if b.kind == "onnxruntime":
        return OrtRunner(artifact, provider=b.provider or CPU_PROVIDER, threads=threads, name=b.label)
    if b.kind == "openvino":
        return OpenVinoRunner(artifact, precision=b.precision or "fp32", threads=threads, name=b.label)
    if b.kind == "tensorrt":
        return TrtRunner(artifact, name=b.label)
    raise ConfigError(f"backend {b.name!r} does not run a graph file on its own ({b.description})")
