"""The resolved pipeline: models, their components and profile points, and per-job params.

``build_plan`` turns the YAML into plain values the Snakemake rules use. It checks everything
a user can get wrong in YAML before any job runs (the schema, unknown family and options,
missing or mismatched checkpoint, impossible profile, limits the family knows, points too
large for this machine, fp16/int8 op names and node patterns, bad ``sample_inputs``) and
raises a one-line ConfigError, CheckpointError or InputError that names the model.

``sample_inputs`` feed a model's one graph: a family with several graphs, where later graphs
run from earlier ones' outputs (tortoise_gpt's decode, the VITS stages), refuses them.
"""

from __future__ import annotations

import difflib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.config_check import check_config
from ttskiln.errors import CheckpointError, ConfigError, InputError, TtskilnError, for_model
from ttskiln.families import FAMILIES, get_family
from ttskiln.families.base import LinkedModel, ModelInfo
from ttskiln.ship import DEFAULT_POLICY

SAMPLE_POINT = "sample"
LEVELS = ("min", "opt", "max")
#: Every ONNX variant: the raw export, the simplified fp32 graph and its precision variants.
VARIANTS = ("export", "fp32", "fp16", "int8")
PRECISIONS = ("fp16", "int8")
#: The fp32 graph run in overlapping windows (long audio through a length-limited engine).
CHUNKED_VARIANT = "fp32-chunked"
#: Largest number a synthetic checkpoint's ``overrides`` or the ``options`` may hold
#: (channels, layers, sizes).
OVERRIDE_LIMIT = 65536
#: A point's memory estimate: its largest input or output tensor (fp32) times this factor
#: (the PyTorch reference's activations, ONNX Runtime's arena, the compared copies). Rough
#: and generous, so that it only refuses points that cannot fit.
MEMORY_FACTOR = 4


@dataclass(frozen=True)
class Point:
    """One concrete shape at which a component is validated and benchmarked."""

    name: str
    profile: str
    sizes: dict[str, int]


@dataclass(frozen=True)
class Profile:
    """min/opt/max per dynamic axis, in the axis's own units (frames, not seconds)."""

    name: str
    ranges: dict[str, dict[str, int]]


@dataclass(frozen=True)
class ModelPlan:
    name: str
    family: str
    checkpoint: str
    synthetic: dict[str, Any] | None
    config: dict[str, Any]
    info: ModelInfo
    profiles: tuple[Profile, ...]
    points: tuple[Point, ...]
    tolerances: dict[str, float]
    simplifier: str
    sample_inputs: str | None
    checkpoint_sha256: str | None
    options: dict[str, Any] = field(default_factory=dict)
    chunking: dict[str, int] | None = None
    variants: tuple[str, ...] = ("export", "fp32")
    variant_tolerances: dict[str, dict[str, float]] = field(default_factory=dict)
    fp16: dict[str, Any] = field(default_factory=dict)
    int8: dict[str, Any] = field(default_factory=dict)
    chains: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)
    engine_variants: tuple[str, ...] = ()
    engine_profiles: tuple[str, ...] = ()
    #: TensorRT-LLM settings (dtype and engine limits) of a model whose family has that
    #: capability and whose entry has a ``trtllm`` block, or None.
    trtllm: dict[str, Any] | None = None
    #: The ggml model file (``{"dtypes": [...]}``) of a family with that capability, or None.
    ggml: dict[str, Any] | None = None
    #: CPU backends beside ONNX Runtime (canonical names of ``ttskiln.runners.BACKENDS``).
    backends: tuple[str, ...] = ()

    def engine_shapes(self, component: str) -> list[dict[str, dict[str, list[int]]]]:
        """Per engine profile: each input's min/opt/max shape (for the TensorRT builder)."""
        spec = self.info.component(component)
        result = []
        for profile in self.profiles:
            if profile.name not in self.engine_profiles:
                continue
            result.append({
                t.name: {level: list(t.concrete({a: r[level] for a, r in profile.ranges.items()})) for level in LEVELS}
                for t in spec.inputs
            })
        return result

    @property
    def ref(self) -> dict[str, Any]:
        """What a job needs to load this model, as plain values (the rules' one ``model``
        param): name, family, checkpoint, its content hash ("synthetic" for a synthetic
        checkpoint), whether it is synthetic, and the entry's options."""
        return {
            "name": self.name,
            "family": self.family,
            "checkpoint": self.checkpoint,
            "checkpoint_sha": self.checkpoint_sha256 or "synthetic",
            "synthetic": self.synthetic is not None,
            "options": dict(self.options),
        }

    def tolerances_for(self, variant: str, backend: str | None = None) -> dict[str, float]:
        """The limits an artifact of ``variant`` is held to (on ``backend``, where the backend
        changes the arithmetic: bf16 on an fp32 graph is held to the ``bf16`` limits)."""
        from ttskiln.runners import backend as backend_entry

        if backend is not None:
            variant = backend_entry(backend).tolerance_variant or variant
        return {**self.tolerances, **self.variant_tolerances.get(variant, {})}

    def backend_variants(self, backend: str) -> tuple[str, ...]:
        """The ONNX variants ``backend`` validates and times (of those the model builds, not
        the raw export)."""
        from ttskiln.runners import backend as backend_entry

        wanted = backend_entry(backend).variants
        return tuple(v for v in self.variants if v != "export" and (wanted is None or v in wanted))

    @property
    def components(self) -> list[str]:
        return [c.name for c in self.info.components]

    def audio(self, component: str) -> dict[str, Any] | None:
        """The component's audio output and sample rate, for the audio metrics."""
        spec = self.info.component(component)
        if not spec.audio_output:
            return None
        return {"output": spec.audio_output, "sample_rate": self.info.sample_rate}

    def chunk_params(self, component: str) -> dict[str, Any] | None:
        """What chunked vocoding of ``component`` needs, or None if it is not chunked."""
        spec = self.info.component(component)
        if not self.chunking or not spec.chunk_input or not spec.audio_output:
            return None
        return {"input": spec.chunk_input, "output": spec.audio_output, "hop": self.info.hop_length, **self.chunking}

    def chunked_points(self, component: str) -> list[Point]:
        """Points longer than one window: there chunked output is compared with full length."""
        params = self.chunk_params(component)
        if params is None:
            return []
        axis = self.info.component(component).time_axis
        return [p for p in self.points if p.sizes.get(axis, 0) > params["window"]]

    def point(self, name: str) -> Point:
        for point in self.points:
            if point.name == name:
                return point
        raise KeyError(f"model {self.name!r} has no point {name!r}")


@dataclass(frozen=True)
class GpuPlan:
    """Which GPU stages run here, the engine tag, and why the others are skipped."""

    tensorrt: bool
    ort_backends: tuple[str, ...]
    engine_tag: str
    builder: dict[str, Any]
    skipped: dict[str, str]
    trtllm: bool = False
    trtllm_tag: str = "nogpu-trtllmnone"


@dataclass(frozen=True)
class Plan:
    models: dict[str, ModelPlan]
    seed: int
    opset: int
    benchmark: dict[str, int]
    gpu: GpuPlan = GpuPlan(False, (), "nogpu-trtnone", {}, {})
    #: How the report's ship table picks an artifact (``ttskiln.ship.DEFAULT_POLICY`` filled in).
    policy: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_POLICY))


def gpu_plan(settings: dict[str, Any], detect: bool = True) -> GpuPlan:
    from ttskiln.gpu import Machine, detect as detect_machine

    stages = settings.get("stages", "auto")
    machine = detect_machine() if detect and stages != "off" else Machine((), None, None, None, ())
    skipped = {} if stages == "on" else machine.skipped_stages()
    if stages == "off":
        skipped = {stage: "gpu.stages is off in the config" for stage in ("tensorrt_engines", "tensorrt_llm", "ort-cuda", "ort-trt")}
    builder = {"builder_optimization_level": 3, "version_compatible": False, "workspace_mb": 4096, **settings.get("tensorrt", {})}
    if builder.get("hardware_compatibility_level") == "none":
        builder.pop("hardware_compatibility_level")
    return GpuPlan(
        tensorrt=stages == "on" or (stages == "auto" and "tensorrt_engines" not in skipped),
        ort_backends=tuple(b for b in ("ort-cuda", "ort-trt") if stages == "on" or (stages == "auto" and b not in skipped)),
        engine_tag=settings.get("engine_tag") or machine.tag(),
        builder=builder,
        skipped=skipped,
        trtllm=stages == "on" or (stages == "auto" and "tensorrt_llm" not in skipped),
        trtllm_tag=settings.get("trtllm_tag") or machine.trtllm_tag(),
    )


def synthetic_dir(model: str) -> str:
    """Where the pipeline writes a synthetic checkpoint (relative to the working directory)."""
    return f"artifacts/{model}/checkpoint"


def build_plan(config: dict[str, Any], workdir: Path, check_files: bool = True) -> Plan:
    """Resolve the config (checked against the schema first). ``check_files`` also reads
    checkpoints and ``sample_inputs`` to check them; set it in the process that schedules jobs."""
    check_config(config)
    models = {}
    for name, entry in config["models"].items():
        try:
            models[name] = _model_plan(name, entry, Path(workdir), check_files)
        except TtskilnError as exc:
            raise for_model(name, exc) from None
    bench = {"threads": 2, "warmup": 3, "repeats": 20, **config.get("benchmark", {})}
    for name, model in models.items():
        for role, other in model.links.items():
            if other not in models:
                close = difflib.get_close_matches(other, list(models), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"model '{name}': options.{role}: {other!r} is not a model of this config{hint}; known: {sorted(models)}")
            wanted = get_family(model.family).link_families.get(role)
            if wanted and models[other].family != wanted:
                raise ConfigError(f"model '{name}': options.{role}: {other!r} is a {models[other].family} model; it must be a {wanted} model")
    for name, model in models.items():
        if not model.links:
            continue
        linked = {role: LinkedModel(other, models[other].family, models[other].config, models[other].info)
                  for role, other in model.links.items()}
        try:
            get_family(model.family).check_links(model.config, model.options, linked)
        except TtskilnError as exc:
            raise for_model(name, exc) from None
    return Plan(
        models=models,
        seed=int(config.get("seed", 0)),
        opset=int(config.get("opset", 18)),
        benchmark=bench,
        gpu=gpu_plan(config.get("gpu") or {}),
        policy={**DEFAULT_POLICY, **(config.get("policy") or {})},
    )


def _model_plan(name: str, entry: dict[str, Any], workdir: Path, check_files: bool) -> ModelPlan:
    family = get_family(entry["family"])
    options = dict(entry.get("options") or {})
    family.check_options(options)
    _check_overrides(options, "options")
    ckpt = entry["checkpoint"]
    sha = None
    path = None
    if isinstance(ckpt, dict):
        synthetic = {"preset": ckpt["synthetic"], "seed": int(ckpt.get("seed", 0)), "overrides": dict(ckpt.get("overrides") or {})}
        family.check_synthetic_options(options)
        _check_overrides(synthetic["overrides"], "checkpoint.overrides")
        _check_override_kinds(synthetic["overrides"], family.presets.get(synthetic["preset"]) or {})
        try:
            config = family.synthetic_options(family.synthetic_config(synthetic["preset"], synthetic["overrides"]), options)
            family.describe(config)
        except TtskilnError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, RuntimeError) as exc:
            raise ConfigError(f"checkpoint.overrides {synthetic['overrides']} do not make a {family.name} model: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        checkpoint = synthetic_dir(name)
    else:
        synthetic = None
        path = Path(ckpt) if Path(ckpt).is_absolute() else workdir / ckpt
        try:
            found = path.exists()
        except OSError as exc:  # a name too long for the file system, say
            raise CheckpointError(f"checkpoint {ckpt[:80]}{'...' if len(ckpt) > 80 else ''}: {exc.strerror}") from None
        if not found:
            raise ConfigError(f"checkpoint {ckpt} not found (looked at {path})")
        # Jobs run in the working directory: keep the path as written, so moving the whole
        # folder does not invalidate the cache.
        checkpoint = str(ckpt)
        try:
            config = family.read_config(path, options)
        except TtskilnError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError, RuntimeError) as exc:
            raise ConfigError(f"options {options} do not describe a {family.name} model: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
        if check_files:
            family.check_checkpoint(path, config)
        from ttskiln.fingerprint import sha256_files

        cache = workdir / ".snakemake" / "ttskiln" / "sha256-cache.json"
        sha = sha256_files(family.checkpoint_files(path), cache)
    info = family.describe(config)
    profiles, points = [], []
    for pname, spec in (entry.get("profiles") or family.default_profiles).items():
        profile = _profile(pname, spec, info)
        profiles.append(profile)
        points.extend(_points(profile, spec.get("extra_points") or [], info))
    _checked_plan(family, info, config, options, points, path, workdir if check_files else None)
    for point in points:
        _check_memory(point, info)
    sample = entry.get("sample_inputs")
    if sample:
        if len(info.components) > 1:
            raise ConfigError(
                f"sample_inputs: they feed one graph, and {family.name} has {len(info.components)} "
                f"({', '.join(c.name for c in info.components)}), the later ones run from earlier outputs; "
                f"remove sample_inputs (the profile points cover every graph)"
            )
        sample_path = Path(sample) if Path(sample).is_absolute() else workdir / sample
        try:
            present = sample_path.exists()
        except OSError as exc:
            raise InputError(f"sample_inputs {sample[:80]}: {exc.strerror}") from None
        limits = family.input_limits(info, info.components[0].name)
        sizes = _check_sample_inputs(sample_path, info, limits) if check_files or present else {}
        points.append(Point(SAMPLE_POINT, SAMPLE_POINT, sizes))
    given = dict(entry.get("tolerances") or {})
    per_variant = {v: {**family.variant_tolerances.get(v, {}), **given.pop(v, {})} for v in PRECISIONS}
    per_variant["bf16"] = {**per_variant["fp16"], **given.pop("bf16", {})}
    tolerances = {**family.default_tolerances, **given}
    variants = ("export", "fp32") + tuple(v for v in PRECISIONS if v in (entry.get("variants") or []))
    chunking = None
    if entry.get("chunking"):
        from ttskiln.chunking import Chunking

        spec = entry["chunking"]
        plan = Chunking(int(spec["window"]), int(spec.get("overlap", 0)), int(spec.get("crossfade", 0)))
        if not any(c.chunk_input for c in info.components):
            raise ConfigError(f"chunking is set, but no component of family {family.name!r} can be chunked")
        floor = max(c.axis_min.get(c.time_axis, 1) for c in info.components)
        if plan.window < floor:
            raise ConfigError(f"chunking window {plan.window} is below the smallest input the model accepts ({floor})")
        chunking = {"window": plan.window, "overlap": plan.overlap, "crossfade": plan.crossfade}
    return ModelPlan(
        name=name,
        family=family.name,
        checkpoint=checkpoint,
        synthetic=synthetic,
        config=config,
        info=info,
        profiles=tuple(profiles),
        points=tuple(points),
        tolerances=tolerances,
        simplifier=entry.get("simplifier", "onnxsim"),
        sample_inputs=sample,
        checkpoint_sha256=sha,
        options=options,
        chunking=chunking,
        variants=variants,
        variant_tolerances=per_variant,
        chains=tuple(family.chains(info, options)),
        engine_variants=_engine_variants(entry, variants),
        engine_profiles=_engine_profiles(name, entry, profiles),
        links=family.links(options),
        # The config's settings are checked; a family's defaults are checked by its tests.
        fp16={**family.fp16_defaults, **_check_precision("fp16", entry.get("fp16") or {})},
        int8={**family.int8_defaults, **_check_precision("int8", entry.get("int8") or {})},
        trtllm=_trtllm(family.name, entry, config, points),
        ggml=_ggml(family.name, entry),
        backends=_backends(entry),
    )


def _backends(entry: dict[str, Any]) -> tuple[str, ...]:
    """The model's CPU backends beside ONNX Runtime, by canonical name (aliases resolved)."""
    from ttskiln.runners import BACKENDS, backend

    accepted = [b for b in BACKENDS.values() if b.device == "cpu" and b.kind != "torch"]
    names: list[str] = []
    for given in entry.get("backends") or []:
        try:
            b = backend(given)
        except ConfigError:
            spellings = [s for b in accepted for s in (b.name, b.label, *b.aliases)]
            close = difflib.get_close_matches(str(given).strip().lower(), spellings, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"backends: unknown backend {str(given)[:60]!r}{hint}; "
                              f"known: {', '.join(b.name for b in accepted)}") from None
        if b.device != "cpu" or b.kind == "torch":
            raise ConfigError(f"backends: {given!r} is not a CPU backend of ONNX artifacts "
                              f"({'gpu.stages schedules GPU backends' if b.device != 'cpu' else 'PyTorch is always the reference'})")
        if b.name != "ort-cpu" and b.name not in names:
            names.append(b.name)
    return tuple(names)


def _check_overrides(value: Any, key: str) -> None:
    """Synthetic overrides are sizes: refuse numbers no model of a test or a demo needs
    (they would overflow tensor storage or exhaust memory while planning)."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_overrides(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_overrides(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) > OVERRIDE_LIMIT:
        raise ConfigError(f"{key}: {value} is beyond {OVERRIDE_LIMIT}, the largest size a model entry may give")


def _check_override_kinds(overrides: dict[str, Any], preset: dict[str, Any]) -> None:
    """An override of a key the preset sets keeps its kind (``num_layers: false`` is not 0)."""
    for key, value in overrides.items():
        default = preset.get(key)
        if default is None:
            continue
        if isinstance(default, bool):
            fits, kind = isinstance(value, bool), "true or false"
        elif isinstance(default, int):
            fits, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
        elif isinstance(default, float):
            fits, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        elif isinstance(default, (str, list, dict)):
            fits, kind = isinstance(value, type(default)), {str: "a string", list: "a list", dict: "a mapping"}[type(default)]
        else:
            continue
        if not fits:
            raise ConfigError(f"checkpoint.overrides.{key}: must be {kind} like the preset's {default!r}, got {value!r}")


def machine_memory() -> int | None:
    """Bytes of physical memory of this machine (None where unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def point_memory(point: Point, info: ModelInfo) -> int:
    """Rough bytes a point needs: the largest fp32 tensor of any component (axes the point
    does not set, such as audio samples, follow the time axis times the hop) x MEMORY_FACTOR."""
    sizes = dict(point.sizes)
    largest = 0
    for comp in info.components:
        axis_sizes = {**sizes, "samples": sizes.get(comp.time_axis, 1) * info.hop_length}
        for tensor in (*comp.inputs, *comp.outputs):
            count = 1
            for dim in tensor.shape:
                count *= dim if isinstance(dim, int) else axis_sizes.get(dim, 1)
            largest = max(largest, count)
    return 4 * largest * MEMORY_FACTOR


def _check_memory(point: Point, info: ModelInfo) -> None:
    total = machine_memory()
    need = point_memory(point, info)
    if total and need > total:
        shown = ", ".join(f"{a} {n}" for a, n in point.sizes.items())
        raise ConfigError(
            f"point {point.name} ({shown}) needs about {need / 2**30:.1f} GiB, more than this machine's "
            f"{total / 2**30:.1f} GiB; lower the profile's max or extra points"
        )


#: Where the scheduling process records the family checks (``check_plan``) that passed.
PASSED_CHECKS = Path(".snakemake") / "ttskiln" / "passed-checks.json"
#: How many passed checks it remembers (the latest).
PASSED_CHECKS_KEPT = 512


def _checked_plan(family: Any, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                  points: list[Point], checkpoint: Path | None, workdir: Path | None) -> None:
    """``family.check_plan``, skipped when the same check passed before in ``workdir``.

    Some checks are slow (the F5 chain texts go through its Chinese front end, which loads
    pinyin dictionaries), and a no-op rerun would repeat them. The key covers what a check
    reads: the family's code (with everything it imports), the model's config, options and
    points, the checkpoint's files and any file the options name (their size, mtime, inode
    and ctime), and the installed libraries (the state of the folders on ``sys.path``). A check
    that fails is never recorded, so its error comes back on every run. Without ``workdir``
    (a job process) the check always runs."""
    key = _check_key(family, config, options, points, checkpoint) if workdir is not None else None
    record = workdir / PASSED_CHECKS if workdir is not None else None
    passed: list[str] = []
    if key is not None and record is not None and record.is_file():
        try:
            passed = json.loads(record.read_text())
        except (OSError, ValueError):
            passed = []
        passed = passed if isinstance(passed, list) else []
        if key in passed:
            return
    family.check_plan(info, config, options, points, checkpoint)
    if key is None or record is None:
        return
    try:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_name(f".{record.name}.{os.getpid()}")
        tmp.write_text(json.dumps([k for k in passed if k != key][-(PASSED_CHECKS_KEPT - 1):] + [key]))
        os.replace(tmp, record)
    except OSError:
        pass  # a read-only working directory: the check just runs next time too


def _file_states(path: Path) -> list[Any]:
    """(name, size, mtime, inode, ctime) of a file, or of every file under a folder."""
    found = []
    paths = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if not p.is_dir())
    for p in paths:
        try:
            st = p.stat()
        except OSError:
            found.append([str(p), None])
            continue
        found.append([str(p), st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns])
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def _check_key(family: Any, config: dict[str, Any], options: dict[str, Any], points: list[Point],
               checkpoint: Path | None) -> str | None:
    """The key of one model's family checks (``_checked_plan``); None when one cannot be made."""
    import hashlib
    import sys

    from ttskiln.fingerprint import code_hash

    try:
        named = [s for s in _strings(options) if len(s) < 4096 and os.path.exists(s)]
        libraries = [[p, os.stat(p).st_mtime_ns] for p in sys.path if p and os.path.isdir(p)]
        payload = json.dumps(
            {
                "family": family.name,
                "code": code_hash([type(family).__module__]),
                "config": config,
                "options": options,
                "points": [[p.name, p.profile, p.sizes] for p in points],
                "checkpoint": _file_states(checkpoint) if checkpoint is not None else None,
                "files": [_file_states(Path(s)) for s in sorted(set(named))],
                "python": sys.version,
                "libraries": libraries,
            },
            sort_keys=True,
        )
    except (OSError, TypeError, ValueError):
        return None
    return hashlib.sha256(payload.encode()).hexdigest()


def _onnx_op_names() -> list[str]:
    import onnx.defs

    return sorted({s.name for s in onnx.defs.get_all_schemas_with_history()})


def _check_precision(variant: str, settings: dict[str, Any]) -> dict[str, Any]:
    """fp16/int8 settings: op types that are ONNX ops, node patterns that are globs."""
    for key in ("keep_fp32_ops", "op_types"):
        for op in settings.get(key) or []:
            import onnx.defs  # only when the config names op types (planning stays light)

            if not onnx.defs.has(op):
                close = difflib.get_close_matches(op, _onnx_op_names(), n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{variant}.{key}: {op!r} is not an ONNX op type{hint}")
    for key in ("keep_fp32_nodes", "exclude_nodes"):
        for pattern in settings.get(key) or []:
            problem = _glob_problem(pattern.removeprefix("after:"))
            if problem:
                raise ConfigError(f"{variant}.{key}: pattern {pattern!r} {problem}")
    return settings


def _glob_problem(glob: str) -> str | None:
    """Why a node-name glob is malformed (empty, or a '[' set that is never closed)."""
    if not glob:
        return "has an empty glob"
    i = 0
    while i < len(glob):
        if glob[i] == "[":
            j = i + 1
            if j < len(glob) and glob[j] in "!^":
                j += 1
            if j < len(glob) and glob[j] == "]":
                j += 1
            close = glob.find("]", j)
            if close < 0:
                return "opens a '[' set that is never closed (write [[] for a literal '[')"
            i = close
        i += 1
    return None


def _trtllm(family: str, entry: dict[str, Any], config: dict[str, Any], points: list[Point]) -> dict[str, Any] | None:
    """The entry's ``trtllm`` block, checked by the family's TensorRT-LLM capability, or None."""
    if entry.get("trtllm") is None:
        return None
    capability = get_family(family).tensorrt_llm
    if capability is None:
        able = [f for f in FAMILIES.values() if f.tensorrt_llm is not None]
        which = " or ".join(f"{f.name} models ({f.tensorrt_llm.graph})" for f in able) or "no family here"
        raise ConfigError(f"trtllm is for {which}; this model is {family}")
    return capability.check(config, dict(entry["trtllm"]), points)


def _ggml(family: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """The entry's ``ggml`` block (``dtype``: one or a list), checked by the family's ggml
    capability, or None."""
    if entry.get("ggml") is None:
        return None
    capability = get_family(family).ggml
    if capability is None:
        able = [f for f in FAMILIES.values() if f.ggml is not None]
        which = " or ".join(f"{f.name} models ({f.ggml.graph})" for f in able) or "no family here"
        raise ConfigError(f"ggml: the ggml model file is for {which}; this model is {family}")
    return capability.check(dict(entry["ggml"]))


def _time_units(info: ModelInfo, seconds: float) -> int:
    """Seconds of audio as a count of frames (hops), rounded up."""
    return max(1, math.ceil(seconds * info.sample_rate / info.hop_length))


def _engine_variants(entry: dict[str, Any], variants: tuple[str, ...]) -> tuple[str, ...]:
    wanted = (entry.get("engines") or {}).get("variants")
    if wanted is None:
        return tuple(v for v in ("fp32", "fp16") if v in variants)
    missing = [v for v in wanted if v not in variants]
    if missing:
        raise ConfigError(f"engines.variants lists {missing}, which are not in the model's variants {list(variants[1:])}")
    return tuple(wanted)


def _engine_profiles(model: str, entry: dict[str, Any], profiles: list[Profile]) -> tuple[str, ...]:
    names = [p.name for p in profiles]
    wanted = (entry.get("engines") or {}).get("profiles") or names
    unknown = [p for p in wanted if p not in names]
    if unknown:
        raise ConfigError(f"engines.profiles lists unknown profiles {unknown}; the model has {names}")
    return tuple(wanted)


@dataclass(frozen=True)
class _Axes:
    """The model-level view of its components' axes: a profile sets each axis once."""

    profile_axes: tuple[str, ...]
    time_axis: str
    axis_min: dict[str, int]


def _model_axes(info: ModelInfo) -> _Axes:
    axes: list[str] = []
    floors: dict[str, int] = {}
    for comp in info.components:
        for axis in comp.profile_axes:
            if axis not in axes:
                axes.append(axis)
            floors[axis] = max(floors.get(axis, 1), comp.axis_min.get(axis, 1))
    return _Axes(tuple(axes), info.components[0].time_axis, floors)


def _profile(name: str, spec: dict[str, Any], info: ModelInfo) -> Profile:
    comp = _model_axes(info)
    ranges: dict[str, dict[str, int]] = {}
    axes = [k for k in spec if k != "extra_points"]
    if "seconds" in axes and comp.time_axis in axes:
        raise ConfigError(f"profile {name!r} gives both seconds and {comp.time_axis}; give one")
    for axis in axes:
        target = comp.time_axis if axis == "seconds" else axis
        if target not in comp.profile_axes:
            raise ConfigError(
                f"profile {name!r}: unknown axis {axis!r}; this family's axes are "
                f"{', '.join(comp.profile_axes)} (and seconds for {comp.time_axis})"
            )
        values = {}
        for level in LEVELS:
            raw = spec[axis][level]
            if axis == "seconds":
                values[level] = _time_units(info, float(raw))
            elif float(raw) != int(raw):
                raise ConfigError(f"profile {name!r}: {axis}.{level} must be a whole number, got {raw}")
            else:
                values[level] = int(raw)
        if not values["min"] <= values["opt"] <= values["max"]:
            raise ConfigError(
                f"profile {name!r}: {axis} needs min <= opt <= max, got "
                f"min {spec[axis]['min']}, opt {spec[axis]['opt']}, max {spec[axis]['max']}"
            )
        floor = comp.axis_min.get(target, 1)
        if values["min"] < floor:
            raise ConfigError(f"profile {name!r}: {target} min {values['min']} is below the smallest the model accepts ({floor})")
        ranges[target] = values
    for axis in comp.profile_axes:
        if axis not in ranges:
            if axis == "batch":
                ranges["batch"] = {"min": 1, "opt": 1, "max": 1}
            elif axis in info.axis_defaults:
                ranges[axis] = dict(info.axis_defaults[axis])
            else:
                raise ConfigError(f"profile {name!r} does not set {axis}")
    return Profile(name, ranges)


def _points(profile: Profile, extra_points: list[dict[str, float]], info: ModelInfo) -> list[Point]:
    comp = _model_axes(info)
    points = [Point(f"{profile.name}-{level}", profile.name, {a: r[level] for a, r in profile.ranges.items()}) for level in ("opt", "max")]
    if points[0].sizes == points[1].sizes:  # opt == max: one point, not the same work twice
        points.pop()
    for i, extra in enumerate(extra_points):
        sizes = {a: r["opt"] for a, r in profile.ranges.items()}
        for axis, value in extra.items():
            target = comp.time_axis if axis == "seconds" else axis
            if target not in profile.ranges:
                raise ConfigError(f"profile {profile.name!r}: extra point {i} names unknown axis {axis!r}")
            size = _time_units(info, float(value)) if axis == "seconds" else int(value)
            lo, hi = profile.ranges[target]["min"], profile.ranges[target]["max"]
            if not lo <= size <= hi:
                raise ConfigError(f"profile {profile.name!r}: extra point {i} has {target} {size}, outside min {lo} .. max {hi}")
            sizes[target] = size
        points.append(Point(f"{profile.name}-x{i + 1}", profile.name, sizes))
    return points


def _check_sample_inputs(path: Path, info: ModelInfo, limits: dict[str, tuple[int, int]] | None = None) -> dict[str, int]:
    """Check names, shapes and values of a ``sample_inputs`` .npz against the (one) component:
    finite numbers, and integer inputs whole and inside their range (``limits``)."""
    comp = info.components[0]
    if not path.is_file():
        raise InputError(f"sample_inputs {path} not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: (data[k].shape, data[k].dtype) for k in data.files}
            values = {k: _value_problem(k, data[k], comp, limits or {}) for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"sample_inputs {path} is not a readable .npz: {' '.join(str(exc).split())[:200]}") from None
    for problem in values.values():
        if problem:
            raise InputError(f"sample_inputs {path.name}: {problem}")
    expected = comp.input_names
    if sorted(arrays) != sorted(expected):
        raise InputError(f"sample_inputs {path} holds {sorted(arrays)}; component {comp.name!r} needs {expected}")
    sizes: dict[str, int] = {}
    for spec in comp.inputs:
        shape, dtype = arrays[spec.name]
        if len(shape) != len(spec.shape):
            raise InputError(f"sample_inputs {spec.name!r} has shape {list(shape)}; expected {_shape_str(spec.shape)}")
        if not np.issubdtype(dtype, np.floating) and spec.dtype.startswith("float"):
            raise InputError(f"sample_inputs {spec.name!r} has dtype {dtype}; expected {spec.dtype}")
        for got, want in zip(shape, spec.shape):
            if isinstance(want, int) and got != want:
                raise InputError(f"sample_inputs {spec.name!r} has shape {list(shape)}; expected {_shape_str(spec.shape)}")
            if isinstance(want, str):
                if sizes.setdefault(want, got) != got:
                    raise InputError(f"sample_inputs disagree on {want}: {sizes[want]} vs {got}")
                if got < comp.axis_min.get(want, 1):
                    raise InputError(f"sample_inputs {spec.name!r}: {want} is {got}, below the minimum {comp.axis_min.get(want, 1)}")
    return sizes


def _value_problem(name: str, array: np.ndarray, comp: Any, limits: dict[str, tuple[int, int]]) -> str | None:
    """Why the values of one sample input are unusable, or None."""
    if array.dtype.kind not in "biuf":
        return f"{name!r} holds {array.dtype} values; expected numbers"
    spec = next((t for t in comp.inputs if t.name == name), None)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return f"{name!r} holds {int((~np.isfinite(array)).sum())} non-finite value(s) (NaN or inf)"
    if spec is None or spec.dtype.startswith("float"):
        return None
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        return f"{name!r} is an {spec.dtype} input, but holds fractional values such as {array[array != np.round(array)].flat[0]!r}"
    if name in limits and array.size:
        lo, hi = limits[name]
        bad = array[(array < lo) | (array > hi)]
        if bad.size:
            return f"{name!r} holds {bad.size} value(s) outside {lo}..{hi} (e.g. {bad.flat[0]}); ids must be inside the vocabulary"
    return None


def _shape_str(shape: tuple[int | str, ...]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"
