"""The interface every model family implements.

A family knows its checkpoint format, its components (the graphs it exports), the shapes of
their inputs and outputs, how to make example inputs for a profile point, and its audio
metadata. The pipeline talks to families only through this interface and the registry.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """A named graph input or output. ``shape`` holds ints (fixed) and axis names (dynamic)."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}

    def concrete(self, sizes: dict[str, int]) -> tuple[int, ...]:
        return tuple(d if isinstance(d, int) else sizes[d] for d in self.shape)


@dataclass(frozen=True)
class ComponentSpec:
    """One exported graph of a model.

    ``profile_axes`` are the dynamic axes a shape profile sets (min/opt/max); ``time_axis`` is
    the one that a profile may also give in seconds; ``axis_min`` are the smallest sizes the
    graph accepts; ``audio_output`` names the output whose length measures audio seconds;
    ``chunk_input`` names the input that chunked vocoding cuts (see ``ttskiln.chunking``).
    """

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    profile_axes: tuple[str, ...] = ("batch", "frames")
    time_axis: str = "frames"
    axis_min: dict[str, int] = field(default_factory=lambda: {"batch": 1, "frames": 1})
    audio_output: str | None = "audio"
    trace_sizes: dict[str, int] = field(default_factory=lambda: {"batch": 2, "frames": 32})
    #: The input a long request can be cut along its time axis (vocoders: the mel), or None.
    chunk_input: str | None = None

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


@dataclass(frozen=True)
class ModelInfo:
    """What the pipeline needs to know about a model without loading its weights."""

    family: str
    sample_rate: int
    hop_length: int
    components: tuple[ComponentSpec, ...]
    summary: dict[str, Any] = field(default_factory=dict)
    #: Ranges ({min, opt, max}) for axes a profile may leave out (e.g. an optional component's).
    axis_defaults: dict[str, dict[str, int]] = field(default_factory=dict)

    def component(self, name: str) -> ComponentSpec:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(f"no component {name!r}; have {[c.name for c in self.components]}")


@dataclass(frozen=True)
class ChainJob:
    """One run of a family's chain (several graphs and host code, e.g. text -> waveform).

    ``artifacts`` maps each component to its fp32 ONNX file; ``linked`` holds, per linked
    role (e.g. ``vocoder``), the other model's family, checkpoint, options and artifacts.
    The chain writes any audio it makes into ``directory`` and returns report rows (see
    ``Family.run_chain``).
    """

    model: str
    chain: str
    point: str
    sizes: dict[str, int]
    checkpoint: Path
    config: dict[str, Any]
    options: dict[str, Any]
    artifacts: dict[str, str]
    linked: dict[str, dict[str, Any]]
    tolerances: dict[str, float]
    bench: dict[str, int]
    seed: int
    directory: Path


@dataclass(frozen=True)
class LinkedModel:
    """A model of the same config that another model links (``links``), as planned: its
    name, family name, resolved config and description."""

    name: str
    family: str
    config: dict[str, Any]
    info: ModelInfo


@dataclass(frozen=True)
class ParityCase:
    """A folder of upstream outputs: manifest, checkpoint files, inputs.npz, outputs.npz."""

    directory: Path
    manifest: dict[str, Any]
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


@dataclass(frozen=True)
class ParityCheck:
    """One compared output: where it came from (backend) and its recorded upstream value."""

    output: str
    backend: str
    got: np.ndarray
    expected: np.ndarray
    tolerance: float


#: int8 for convolution-heavy graphs: static QDQ calibrated on the stored reference inputs
#: (dynamic quantization covers only MatMul/Gemm, which these graphs hardly have).
STATIC_INT8: dict[str, Any] = {"method": "static", "op_types": None, "exclude_nodes": [], "per_channel": True}


@dataclass(frozen=True)
class Option:
    """One model-entry option a family takes: the kind of its value, for integers the
    smallest and largest allowed, for lists the kind of each item; ``checkpoint_only`` options
    describe a checkpoint folder's files and mean nothing for a synthetic checkpoint."""

    kind: type
    minimum: int | None = None
    maximum: int | None = None
    help: str = ""
    item: type | None = None
    checkpoint_only: bool = False

    def problem(self, value: Any) -> str | None:
        """Why ``value`` does not fit, or None."""
        names = {int: "an integer", str: "a non-empty string", bool: "true or false", dict: "a mapping", list: "a list"}
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return f"must be {names[int]}, got {value!r}"
        if not isinstance(value, self.kind) or (self.kind is str and not value.strip()):
            return f"must be {names.get(self.kind, self.kind.__name__)}, got {value!r}"
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum}, got {value}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum}, got {value}"
        if self.item is not None:
            inner = Option(self.item)
            for i, entry in enumerate(value):
                problem = inner.problem(entry)
                if problem:
                    return f"item {i} {problem}"
        return None


class TensorRTLLM(ABC):
    """Optional capability: one of the family's graphs built as a TensorRT-LLM engine.

    A family that has it sets ``Family.tensorrt_llm`` to an instance; a model entry of such a
    family may then carry a ``trtllm`` block (dtype and engine limits). The pipeline converts
    the checkpoint on the CPU (``convert``), builds the engine where TensorRT-LLM is installed
    (``build``) and runs the family's chains over it (``runner``)."""

    #: What gets built, for messages and ``ttskiln doctor`` (e.g. "the DiT of a model").
    graph: ClassVar[str]
    #: The family's chain that runs over the engine (the GPU stages run it at every point).
    chain: ClassVar[str]
    #: What runs over the engine once it is built, for ``ttskiln doctor``.
    uses: ClassVar[str] = ""
    #: The modules the conversion and the engine build run (what their code hash covers).
    modules: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def check(self, config: dict[str, Any], settings: dict[str, Any], points: Sequence[Any]) -> dict[str, Any]:
        """ConfigError unless the model (``config``) and every profile point (objects with
        ``name`` and ``sizes``) fit the entry's ``trtllm`` block; returns the settings the
        rules pass on (``dtype`` and the engine limits, plain values)."""

    @abstractmethod
    def convert(self, checkpoint: Path, config: dict[str, Any], output: Path, dtype: str,
                settings: dict[str, Any]) -> None:
        """Write the TensorRT-LLM checkpoint folder (CPU only)."""

    @abstractmethod
    def build(self, checkpoint_dir: Path, engine_dir: Path, settings: dict[str, Any], tag: str | None) -> dict[str, Any]:
        """Build the engine from a converted checkpoint; returns the build settings used."""

    @abstractmethod
    def runner(self, engine_dir: Path, model: Any) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        """Run the engine: graph inputs -> output (``model`` is the loaded PyTorch model, for
        the parts that stay on the host)."""


class GGML(ABC):
    """Optional capability: one of the family's graphs written as a ggml model file (the
    format of a C/C++ runtime) and validated against PyTorch from the checkpoint.

    A family that has it sets ``Family.ggml`` to an instance; a model entry of such a family
    may then carry a ``ggml`` block (``dtype``: one or a list). The pipeline writes one file
    per dtype (``convert``) and validates it at every profile point (``validate``)."""

    #: What the file holds, for messages (e.g. "a C++ runtime's GPT-2").
    graph: ClassVar[str]
    #: The modules the conversion and the validation run (what their code hash covers).
    modules: ClassVar[tuple[str, ...]] = ()

    def check(self, settings: dict[str, Any]) -> dict[str, Any]:
        """The entry's ``ggml`` block (its dtypes checked by the schema) as the settings the
        rules read: ``{"dtypes": [...]}``."""
        dtype = settings.get("dtype", "float32")
        return {"dtypes": [dtype] if isinstance(dtype, str) else list(dtype)}

    @abstractmethod
    def convert(self, *, family: "Family", checkpoint: str, config: dict[str, Any], dtype: str, output: str,
                meta_output: str) -> dict[str, Any]:
        """Write the model file (``output``) and what it was made from (``meta_output``)."""

    @abstractmethod
    def validate(self, *, family: "Family", checkpoint: str, config: dict[str, Any], artifact: str, dtype: str,
                 sizes: dict[str, int], steps: int, tolerances: dict[str, float], seed: int, output: str,
                 labels: dict[str, str]) -> dict[str, Any]:
        """Compare the file's model with PyTorch at one point; write and return the record."""

    @abstractmethod
    def tolerances(self, model: Any, dtype: str) -> dict[str, float]:
        """A model plan's limits for the file of ``dtype``."""

    @abstractmethod
    def steps(self, model: Any) -> int:
        """How many steps the validation runs for a model plan."""


@dataclass(frozen=True)
class Command:
    """A ``python -m ttskiln`` subcommand a family registers (see ``Family.commands``).

    ``arguments`` adds the options to the subcommand's parser; ``run`` takes the parsed
    arguments and returns the exit status. Both import what they need when called, so that
    ``--help`` stays light."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


#: How ``python -m ttskiln parity`` checks a family (``Family.parity_mode``): each recorded
#: entry point is one exported graph ("graphs"), or the family's own code runs them ("host").
ParityMode = Literal["graphs", "host"]


def parse_option_pairs(pairs: list[str], flag: str = "--option") -> dict[str, Any]:
    """``KEY=VALUE`` command-line options as a dict (values read as YAML scalars)."""
    import yaml

    from ttskiln.errors import ConfigError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} takes key=value, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def shortest_fit(text: str, count: Any, limit: int) -> str:
    """A default text cut after its last word that keeps ``count(text)`` within ``limit`` (the
    whole text when it fits; the first word when none does, refused by the caller)."""
    words = text.split(" ")
    for k in range(len(words), 0, -1):
        head = " ".join(words[:k])
        if count(head) <= limit:
            return head
    return words[0]


class Family(ABC):
    """A model family. Subclasses are stateless; one instance lives in the registry."""

    name: ClassVar[str]
    #: Synthetic presets: name -> keyword overrides of the family's config builder.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    default_tolerances: ClassVar[dict[str, float]] = {}
    #: Profiles used when a model entry gives none (same layout as the YAML).
    default_profiles: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Tolerance overrides per precision variant (merged over ``default_tolerances``).
    variant_tolerances: ClassVar[dict[str, dict[str, float]]] = {
        "fp16": {"max_abs_err": 1e-2, "cosine": 0.999, "snr_db": 30.0},
        "int8": {"max_abs_err": 1e-1, "cosine": 0.99, "snr_db": 15.0},
    }
    #: fp16: op types and node patterns kept in fp32 (see ``ttskiln.precision``).
    fp16_defaults: ClassVar[dict[str, list[str]]] = {
        "keep_fp32_ops": ["LayerNormalization", "GroupNormalization", "InstanceNormalization", "BatchNormalization",
                          "Softmax", "LogSoftmax", "ReduceMean", "Pow", "Sqrt", "Exp", "Log"],
        "keep_fp32_nodes": [],
    }
    #: int8: ONNX Runtime quantization method, op types, excluded node patterns.
    int8_defaults: ClassVar[dict[str, Any]] = {"method": "dynamic", "op_types": None, "exclude_nodes": [], "per_channel": True}
    #: The model entry's ``options`` this family takes (none by default): the one declaration
    #: of them. ``check_options`` is the one check: planning runs it on every model entry
    #: (real and synthetic checkpoints), ``read_config`` on every other caller's options.
    option_specs: ClassVar[dict[str, Option]] = {}
    #: The family a linked model (``links``) must be of, by role; ``linked_family`` resolves
    #: it through the registry. A family with links overrides ``links``.
    link_families: ClassVar[dict[str, str]] = {}
    #: Upstream parity (``python -m ttskiln parity``): "graphs" when each recorded entry point
    #: is one exported graph (``parity_plan`` lists them; the pipeline runs them on PyTorch
    #: and ONNX Runtime), "host" when entry points need host code (``parity`` runs them),
    #: None for a family without parity cases.
    parity_mode: ClassVar[ParityMode | None] = None
    #: TensorRT-LLM engines of one of the family's graphs, or None (see ``TensorRTLLM``).
    tensorrt_llm: ClassVar[TensorRTLLM | None] = None
    #: The dotted module whose ``COMMANDS`` (a list of ``Command``) the family adds to
    #: ``python -m ttskiln``, or None. Named, not imported: command-line code is no stage's
    #: code, so it stays out of the family's code hash.
    command_module: ClassVar[str | None] = None
    #: The ggml model file of one of the family's graphs, or None (see ``GGML``).
    ggml: ClassVar[GGML | None] = None
    #: The modules the family's chains run that no model stage does (what ``run_chain``
    #: imports): the chain stage's code hash starts at them, the model stages' stops there.
    chain_modules: ClassVar[tuple[str, ...]] = ()
    #: The modules only upstream parity runs (``parity``): no stage's code.
    parity_modules: ClassVar[tuple[str, ...]] = ()

    @property
    def capabilities(self) -> frozenset[str]:
        """The optional capabilities this family declares: ``parity``, ``tensorrt_llm``,
        ``links``, ``commands``, ``ggml``."""
        declared = {
            "parity": self.parity_mode is not None,
            "tensorrt_llm": self.tensorrt_llm is not None,
            "links": bool(self.link_families),
            "commands": bool(self.commands()),
            "ggml": self.ggml is not None,
        }
        return frozenset(name for name, present in declared.items() if present)

    def linked_family(self, role: str) -> "Family":
        """The family a linked model of ``role`` is of, from the registry."""
        from ttskiln.errors import ConfigError
        from ttskiln.families import get_family

        if role not in self.link_families:
            raise ConfigError(f"{self.name} links no {role!r} model; its links: {sorted(self.link_families)}")
        return get_family(self.link_families[role])

    # -- the code a stage runs (cache keys) -----------------------------------------------------
    def side_modules(self) -> dict[str, tuple[str, ...]]:
        """The family's modules that are no model code, by what runs them: ``chain``,
        ``parity``, ``commands``, ``tensorrt_llm``, ``ggml``. Only the family's own module
        (its dispatching methods) may import them, inside the methods that use them."""
        return {
            "chain": tuple(self.chain_modules),
            "parity": tuple(self.parity_modules),
            "commands": (self.command_module,) if self.command_module else (),
            "tensorrt_llm": tuple(self.tensorrt_llm.modules) if self.tensorrt_llm else (),
            "ggml": tuple(self.ggml.modules) if self.ggml else (),
        }

    def code_parts(self, *kinds: str) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """The family code a stage runs, as ``ttskiln.fingerprint.parts_hash`` parts (modules
        to walk from, modules the walk stops at). ``model`` (export, reference, benchmarks,
        synthetic checkpoints): the family's module and its imports, stopping at every side
        module (``side_modules``); ``chain``, ``tensorrt_llm``, ``ggml``: that code and the
        side modules of that kind, and for ``chain`` the model code of every family a chain
        links (a linked vocoder's code changes the chain's result)."""
        side = self.side_modules()
        unknown = sorted(set(kinds) - {"model", *side})
        if unknown:
            raise ValueError(f"no family code kind {unknown}; kinds: {['model', *side]}")
        parts = []
        for kind in kinds or ("model",):
            roots = (type(self).__module__, *side.get(kind, ()))
            stops = tuple(sorted(m for other, names in side.items() if other != kind for m in names))
            parts.append((roots, stops))
        if "chain" in kinds:
            for role in sorted(self.link_families):
                parts += self.linked_family(role).code_parts("model")
        return parts

    def commands(self) -> list[Command]:
        """The ``python -m ttskiln`` subcommands this family adds: ``COMMANDS`` of its
        ``command_module`` (default: none)."""
        if self.command_module is None:
            return []
        import importlib

        return list(importlib.import_module(self.command_module).COMMANDS)

    # -- plan-time checks --------------------------------------------------------------------
    def check_options(self, options: dict[str, Any]) -> None:
        """ConfigError for an option this family does not take (with "did you mean") or a
        value of the wrong kind; the same check for real and synthetic checkpoints."""
        import difflib

        from ttskiln.errors import ConfigError

        if not options:
            return
        if not self.option_specs:
            raise ConfigError(f"options: {self.name} takes no options; got {sorted(options)}")
        unknown = sorted(str(k) for k in options if k not in self.option_specs)
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(self.option_specs), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.name} options {unknown}{hint}; known: {list(self.option_specs)}")
        for key, value in options.items():
            problem = self.option_specs[key].problem(value)
            if problem:
                raise ConfigError(f"options.{key}: {problem}")

    def check_synthetic_options(self, options: dict[str, Any]) -> None:
        """ConfigError for options that only describe a checkpoint folder's files (they would be
        silently ignored on a synthetic checkpoint)."""
        from ttskiln.errors import ConfigError

        ignored = sorted(k for k in options if k in self.option_specs and self.option_specs[k].checkpoint_only)
        if ignored:
            raise ConfigError(
                f"options {ignored} describe a checkpoint folder and do nothing for a synthetic checkpoint; "
                "a synthetic model's layout comes from checkpoint.synthetic (the preset) and checkpoint.overrides")

    def check_plan(self, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                   points: list[Any], checkpoint: Path | None) -> None:
        """ConfigError for a limit of this family a point or an option breaks (text tokens
        above the model's positions, say), so that no job fails on it later. ``checkpoint``
        is the checkpoint folder or file (None for a synthetic checkpoint not yet written)."""

    def check_links(self, config: dict[str, Any], options: dict[str, Any],
                    linked: dict[str, LinkedModel]) -> None:
        """ConfigError for a linked model (by role, once every model of the config is planned)
        that cannot work with this one (a vocoder of another hop, say), so that the run stops
        before its first job. The message starts with the option's key path
        (``options.<role>: ...``); the planner prefixes the model name."""

    def input_limits(self, info: ModelInfo, component: str) -> dict[str, tuple[int, int]]:
        """Integer inputs' allowed range (inclusive), e.g. token ids inside the vocabulary."""
        return {}

    # -- checkpoints -------------------------------------------------------------------------
    @abstractmethod
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        """The files that make up a checkpoint (what its content hash covers)."""

    def read_config(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The model configuration, read without loading weights. ``options`` are the model
        entry's ``options`` from YAML, for formats that carry no configuration of their own;
        they are checked here (``check_options``), so that callers outside a plan (commands,
        library use) get the same one-line error as planning does."""
        options = dict(options or {})
        self.check_options(options)
        return self.config_from_checkpoint(Path(checkpoint), options)

    @abstractmethod
    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        """The family's part of ``read_config``: ``options`` are already checked against
        ``option_specs`` (known keys, kinds of values)."""

    @abstractmethod
    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        """The configuration of a synthetic checkpoint (same layout as ``read_config``)."""

    def synthetic_options(self, config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        """A synthetic checkpoint's configuration with the model entry's ``options`` applied,
        where they change the model as ``read_config`` applies them to a real one (default:
        unchanged)."""
        return config

    @abstractmethod
    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        """Write seeded random weights for ``config`` in the released file format."""

    @abstractmethod
    def describe(self, config: dict[str, Any]) -> ModelInfo:
        """Components, shapes and audio metadata from a configuration."""

    @abstractmethod
    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        """Raise CheckpointError unless the weights fit ``config`` (keys and shapes)."""

    @abstractmethod
    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        """The PyTorch model in eval mode, weights loaded strictly."""

    # -- components --------------------------------------------------------------------------
    @abstractmethod
    def component_module(self, model: Any, component: str) -> Any:
        """An ``nn.Module`` whose forward takes the component's inputs in order and returns
        its outputs (a tensor or a tuple) in order; this is what gets exported."""

    @abstractmethod
    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        """Seeded example inputs for one profile point."""

    # -- chains ------------------------------------------------------------------------------
    def chains(self, info: ModelInfo, options: dict[str, Any]) -> list[str]:
        """Names of the chains this model runs at every profile point (default: none)."""
        return []

    def links(self, options: dict[str, Any]) -> dict[str, str]:
        """Other models a chain needs, by role (e.g. ``{"vocoder": "vocos_demo"}``)."""
        return {}

    def run_chain(self, job: ChainJob) -> list[dict[str, Any]]:
        """Run one chain; return report rows. Each row has ``component`` (the chain name),
        ``variant``, ``backend``, the metrics it measured (``max_abs_err`` ... with
        ``passed`` and ``failures`` against ``job.tolerances``) and/or latency
        (``p50_ms``, ``p90_ms``, ``p99_ms``, ``rtf``, ``speedup_vs_torch``), and optionally
        ``audio`` (a file it wrote under ``job.directory``)."""
        raise NotImplementedError(f"family {self.name!r} has no chains")

    # -- upstream parity (``parity_mode``) ----------------------------------------------------
    def parity_config(self, case: ParityCase) -> dict[str, Any]:
        """The configuration of a parity case (default: the checkpoint's own files)."""
        return self.read_config(case.directory, {})

    def parity_plan(self, case: ParityCase) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        """``parity_mode`` "graphs": for each compared entry point, (component,
        {input: case input}, {output: case output})."""
        raise NotImplementedError(f"family {self.name!r} has no graph parity (parity_mode {self.parity_mode!r})")

    def parity(self, case: ParityCase) -> list[ParityCheck]:
        """``parity_mode`` "host": run the case's entry points; one check per compared output
        and backend."""
        raise NotImplementedError(f"family {self.name!r} has no host parity (parity_mode {self.parity_mode!r})")

    def frontend_parity(self, folder: Path) -> list[tuple[str, bool, str]] | None:
        """Check a text front-end fixture folder (manifest ``kind: frontend``): one
        ``(case name, identical, detail)`` per recorded case. None (the default): the family
        has no text front end."""
        return None

    def tolerances(self, variant: str) -> dict[str, float]:
        """The family's default limits for an artifact of ``variant`` (fp32, fp16, int8)."""
        return {**self.default_tolerances, **self.variant_tolerances.get(variant, {})}

    def parity_tolerance(self, case: ParityCase, output: str) -> float:
        return self.default_tolerances.get("max_abs_err", 1e-5)
