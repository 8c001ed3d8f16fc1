import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The scheduling process imports ttskiln from this checkout; job scripts use the installed
# package (`make` installs it in editable mode, envs/cpu.yaml installs it too).
sys.path.insert(0, workflow.basedir)

from ttskiln.config_check import check_config
from ttskiln.errors import TtskilnError
from ttskiln.families import get_family
from ttskiln.fingerprint import keep_imports, parts_hash
from ttskiln.plan import CHUNKED_VARIANT, VARIANTS, build_plan, synthetic_dir

if workflow.is_main_process:
    # The imports of ttskiln's modules (for the code hashes) parsed once per source version.
    keep_imports(Path(".snakemake") / "ttskiln" / "code-imports.json")

try:
    # One line per mistake (file:line:col, model, key path), before anything is planned.
    check_config(config, f"{workflow.basedir}/config/schema.yaml", workflow.configfiles)
    # The scheduling process reads checkpoints and sample inputs to check them up front;
    # job processes trust that check.
    PLAN = build_plan(config, Path.cwd(), check_files=workflow.is_main_process)
except TtskilnError as exc:
    raise WorkflowError(f"ttskiln: {exc}") from None

MODELS = PLAN.models
GPU = PLAN.gpu
# ONNX Runtime backends (every model, every variant), and the CPU backends models add
# (`backends:`, the variants ttskiln.runners.BACKENDS gives them).
BACKENDS = ["ort-cpu", *GPU.ort_backends]
MODEL_BACKENDS = sorted({b for m in MODELS.values() for b in m.backends})


def _alternatives(values):
    return "|".join(re.escape(v) for v in sorted({str(v) for v in values})) or "NONE"


wildcard_constraints:
    model=_alternatives(MODELS),
    component=_alternatives(c for m in MODELS.values() for c in m.components),
    point=_alternatives(p.name for m in MODELS.values() for p in m.points),
    variant=_alternatives(VARIANTS),
    backend=_alternatives([*BACKENDS, *MODEL_BACKENDS]),
    chain=_alternatives(c for m in MODELS.values() for c in m.chains),
    engine_tag=_alternatives([GPU.engine_tag]),
    trtllm_tag=_alternatives([GPU.trtllm_tag]),
    dtype="float16|bfloat16|float32",


# -- hashes that key the cache -------------------------------------------------------------
def stage_code(*modules, family="model"):
    """Input function: the hash of the ttskiln code a stage runs: ``modules`` (the stage's own)
    and, for a job of a model, the model's family code of the kinds ``family`` names ("model",
    "chain", "tensorrt_llm", "ggml"; a tuple for several, False for none; see
    ``Family.code_parts``). Each module's imports are followed inside the package
    (ttskiln.fingerprint)."""
    kinds = (family,) if isinstance(family, str) else tuple(family or ())

    def code(wildcards):
        parts = [(modules, ())]
        if kinds and "model" in wildcards.keys():
            parts += get_family(MODELS[wildcards.model].family).code_parts(*kinds)
        return parts_hash(parts)

    return code


def get_checkpoint_sha(wildcards):
    """Content hash of a real checkpoint (synthetic ones are inputs instead)."""
    return MODELS[wildcards.model].checkpoint_sha256 or "synthetic"


def model_ref(wildcards):
    """The one ``model`` param: the model as plain values (``ModelPlan.ref``)."""
    return MODELS[wildcards.model].ref


# -- paths ---------------------------------------------------------------------------------
# Each path pattern is spelled once, as its rule's output; targets and inputs below expand
# ``rules.<rule>.output``. These functions run after every rule file is read (named targets
# take them as input functions).
#: The ONNX file of each variant, by the rule that writes it.
ONNX_RULES = {"export": "export", "fp32": "simplify", "fp16": "fp16", "int8": "int8"}
#: The TensorRT builder's timing cache, shared by the engines of one engine tag.
TIMING_CACHE = "artifacts/trt/{engine_tag}/timing.cache"


def _out(rule, key=0, **wildcards):
    """Rule ``rule``'s output (``key``: index or name) with ``wildcards`` filled in; lists of
    values expand to every combination, in the order given (what ``expand`` does; input
    functions call this for every job, so the one-path case skips expand's generality).
    """
    pattern = str(getattr(rules, rule).output[key])
    names = _PATTERN_FIELDS.get(pattern)
    if names is None:
        names = _PATTERN_FIELDS[pattern] = frozenset(
            re.findall(r"{([^}\.[!:]+)", pattern)
        )
    values = {k: v for k, v in wildcards.items() if k in names}
    if all(isinstance(v, str) for v in values.values()):
        return [pattern.format_map(values)]
    return expand(pattern, **values)


#: The wildcard names of each output pattern ``_out`` filled in.
_PATTERN_FIELDS = {}


def _points(points):
    return [p.name for p in points]


def onnx_path(model, component, variant):
    return _out(ONNX_RULES[variant], model=model, component=component)[0]


# -- input functions -----------------------------------------------------------------------
def get_checkpoint_input(wildcards):
    model = MODELS[wildcards.model]
    return [synthetic_dir(model.name)] if model.synthetic else []


def get_sample_inputs(wildcards):
    model = MODELS[wildcards.model]
    return (
        [model.sample_inputs]
        if wildcards.point == "sample" and model.sample_inputs
        else []
    )


def get_reference(wildcards):
    return _out(
        "reference",
        model=wildcards.model,
        component=wildcards.component,
        point=wildcards.point,
    )[0]


def get_model_validations(model):
    m = MODELS[model]
    paths = _out(
        "validate",
        model=model,
        component=m.components,
        variant=list(m.variants),
        point=_points(m.points),
    )
    for component in m.components:
        paths += _out(
            "validate_chunked",
            model=model,
            component=component,
            point=_points(m.chunked_points(component)),
        )
        for backend in m.backends:
            paths += _out(
                "validate_backend",
                model=model,
                component=component,
                backend=backend,
                variant=list(m.backend_variants(backend)),
                point=_points(m.points),
            )
    return paths + get_engine_records("validate", model) + get_ggml_validations(model)


def get_ggml_validations(model):
    """Validation records of a model's ggml files (rules/ggml.smk)."""
    m = MODELS[model]
    return _out(
        "validate_ggml",
        model=model,
        dtype=(m.ggml or {}).get("dtypes", []),
        point=_points(m.points),
    )


def get_ggml_files(wildcards=None):
    return [
        path
        for name, m in MODELS.items()
        for path in _out(
            "ggml", "model", model=name, dtype=(m.ggml or {}).get("dtypes", [])
        )
    ]


def get_ggml_steps(wildcards):
    """Steps of the file's validation (the family's ggml capability says how many)."""
    m = MODELS[wildcards.model]
    return get_family(m.family).ggml.steps(m)


def get_ggml_tolerances(wildcards):
    m = MODELS[wildcards.model]
    return get_family(m.family).ggml.tolerances(m, wildcards.dtype)


def get_validations(wildcards=None):
    return [path for model in MODELS for path in get_model_validations(model)]


def get_benchmarks(wildcards=None):
    return [path for model in MODELS for path in get_model_benchmarks(model)]


def get_model_benchmarks(model):
    m = MODELS[model]
    paths = []
    for component in m.components:
        for point in m.points:
            paths += _out(
                "benchmark_torch", model=model, component=component, point=point.name
            )
            # The raw export is validated, not timed: the simplified fp32 graph is what ships.
            paths += _out(
                "benchmark_onnx",
                model=model,
                component=component,
                backend=BACKENDS,
                variant=[v for v in m.variants if v != "export"],
                point=point.name,
            )
            for backend in m.backends:
                paths += _out(
                    "benchmark_onnx",
                    model=model,
                    component=component,
                    backend=backend,
                    variant=list(m.backend_variants(backend)),
                    point=point.name,
                )
        paths += _out(
            "benchmark_chunked",
            model=model,
            component=component,
            backend=BACKENDS,
            point=_points(m.chunked_points(component)),
        )
    return paths + get_engine_records("benchmark", model)


def get_engine_command(wildcards, input, output):
    from ttskiln.engines import BuilderSettings, convert_command

    m = MODELS[wildcards.model]
    return convert_command(
        onnx_path=input[0],
        engine_path=output[0],
        variant=wildcards.variant,
        profiles=m.engine_shapes(wildcards.component),
        settings=BuilderSettings.from_config(GPU.builder),
        timing_cache=get_timing_cache(wildcards),
    )


def get_timing_cache(wildcards):
    return TIMING_CACHE.format(engine_tag=wildcards.engine_tag)


def _engine_keys():
    if not GPU.tensorrt:
        return []
    return [
        (name, component, variant)
        for name, m in MODELS.items()
        for component in m.components
        for variant in m.engine_variants
    ]


def get_engines(wildcards=None):
    return [
        path
        for name, component, variant in _engine_keys()
        for path in _out(
            "trt_engine",
            model=name,
            component=component,
            engine_tag=GPU.engine_tag,
            variant=variant,
        )
    ]


def get_engine_records(kind, model=None):
    """Validation (kind "validate") or benchmark records of the TensorRT engines."""
    return [
        path
        for name, component, variant in _engine_keys()
        if model in (None, name)
        for path in _out(
            f"{kind}_trt",
            model=name,
            component=component,
            engine_tag=GPU.engine_tag,
            variant=variant,
            point=_points(MODELS[name].points),
        )
    ]


def get_onnx_artifacts(wildcards=None):
    return [
        onnx_path(name, component, variant)
        for name, m in MODELS.items()
        for component in m.components
        for variant in m.variants
    ]


def get_calibration(wildcards):
    """Reference inputs that calibrate static int8: each profile's opt point and the sample."""
    m = MODELS[wildcards.model]
    if m.int8.get("method") != "static":
        return []
    return _out(
        "reference",
        model=m.name,
        component=wildcards.component,
        point=[
            p.name for p in m.points if p.name.endswith("-opt") or p.name == "sample"
        ],
    )


def fp32_artifacts(model):
    return {c: onnx_path(model, c, "fp32") for c in MODELS[model].components}


def get_chain_links(wildcards):
    """What a chain needs of its linked models (e.g. a text-to-mel model's vocoder), by role."""
    links = {}
    for role, other in MODELS[wildcards.model].links.items():
        ref = dict(MODELS[other].ref)
        links[role] = {
            "model": ref.pop("name"),
            **ref,
            "artifacts": fp32_artifacts(other),
        }
    return links


def get_chain_artifacts(wildcards):
    models = [wildcards.model, *MODELS[wildcards.model].links.values()]
    return [path for name in models for path in fp32_artifacts(name).values()]


def get_chain_checkpoints(wildcards):
    models = [wildcards.model, *MODELS[wildcards.model].links.values()]
    return [synthetic_dir(name) for name in models if MODELS[name].synthetic]


def get_chain_references(wildcards):
    """A reference recording a chain reads (``options.reference_wav``), if any."""
    path = MODELS[wildcards.model].options.get("reference_wav")
    return [path] if path else []


def get_model_chains(model):
    m = MODELS[model]
    return [
        path
        for chain in m.chains
        for path in _out("chain", model=model, chain=chain, point=_points(m.points))
    ] + get_trtllm_chains(model)


# -- TensorRT-LLM (models whose family has that capability and a trtllm block) -------------
def trtllm_chain(model):
    """The chain that runs over the model's TensorRT-LLM engine (its family names it)."""
    return get_family(MODELS[model].family).tensorrt_llm.chain


def get_trtllm_checkpoints(wildcards=None):
    return [
        path
        for name, m in MODELS.items()
        if m.trtllm
        for path in _out("trtllm_checkpoint", model=name, dtype=m.trtllm["dtype"])
    ]


def get_trtllm_engines(wildcards=None):
    return [
        path
        for name, m in MODELS.items()
        if m.trtllm and GPU.trtllm
        for path in _out(
            "trtllm_engine",
            model=name,
            trtllm_tag=GPU.trtllm_tag,
            dtype=m.trtllm["dtype"],
        )
    ]


def get_trtllm_chains(model):
    """The family's chain over the TensorRT-LLM engine, where the GPU stages run."""
    m = MODELS[model]
    if not (m.trtllm and GPU.trtllm and m.chains):
        return []
    return _out(
        "trtllm_synth",
        model=model,
        trtllm_tag=GPU.trtllm_tag,
        dtype=m.trtllm["dtype"],
        chain=trtllm_chain(model),
        point=_points(m.points),
    )


def get_trtllm_chain_artifacts(wildcards, input):
    return {**fp32_artifacts(wildcards.model), "trtllm_engine": input.engine}


def get_chains(wildcards=None):
    return [path for model in MODELS for path in get_model_chains(model)]


def get_plots(wildcards=None):
    return {name: f"reports/{name}-latency.png" for name in MODELS}


GEMM_PEAK = "artifacts/machine/gemm_peak.json"


def get_final_targets():
    return [
        rules.report.output.summary_json,
        rules.report.output.summary_md,
        rules.report.output.index_html,
        *_out("gate", model=list(MODELS)),
        *get_trtllm_checkpoints(),
    ]


# -- params --------------------------------------------------------------------------------
def get_point_sizes(wildcards):
    return MODELS[wildcards.model].point(wildcards.point).sizes


def get_models_meta(wildcards=None):
    meta = {}
    for name, m in MODELS.items():
        meta[name] = {
            "family": m.family,
            "checkpoint": m.checkpoint,
            "synthetic": m.synthetic is not None,
            "synthetic_preset": (m.synthetic or {}).get("preset"),
            "checkpoint_sha256": m.checkpoint_sha256,
            "components": m.components,
            "points": {p.name: p.sizes for p in m.points},
            "tolerances": m.tolerances,
            **m.info.summary,
        }
    return meta


def write_report_after_failure(snakemake_log):
    """After a failed run: the report over the records that exist, naming the failed jobs.

    Its files are dated 1970 so the next run's ``report`` job replaces them."""
    import os

    from ttskiln.report import collect_failed_jobs, write_report

    if isinstance(snakemake_log, (list, tuple)):  # Snakemake gives a list of log files
        snakemake_log = snakemake_log[-1] if snakemake_log else None

    def existing(paths):
        return [p for p in paths if os.path.exists(p)]

    failed = [
        f
        for f in collect_failed_jobs(list(MODELS), snakemake_log)
        if f["stage"] != "gate"
    ]
    if not failed and _report_written_by_this_run(snakemake_log):
        return  # only gates failed, after this run's report job marked every failure

    outputs = {
        key: str(getattr(rules.report.output, key))
        for key in ("summary_json", "summary_md", "index_html")
    }
    try:
        write_report(
            validations=existing(get_validations()),
            benchmarks=existing(get_benchmarks()),
            chains=[
                p for p in existing(get_chains()) if os.path.exists(f"{p}/rows.json")
            ],
            trtllm_checkpoints=existing(get_trtllm_checkpoints()),
            models=get_models_meta(),
            plots=get_plots(),
            gemm_peak=GEMM_PEAK if os.path.exists(GEMM_PEAK) else None,
            skipped=GPU.skipped,
            failed_jobs=failed,
            partial=True,
            policy=PLAN.policy,
            **outputs,
        )
    except Exception as exc:  # never hide the run's own error behind the report's
        print(
            f"ttskiln: the report over the existing records could not be written: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return
    for path in [*outputs.values(), *get_plots().values()]:
        if os.path.exists(path):
            os.utime(path, (0, 0))
    print(
        f"ttskiln: the run failed; a partial report naming the failed jobs is at {os.path.abspath(outputs['index_html'])}",
        file=sys.stderr,
    )


def _report_written_by_this_run(snakemake_log):
    """Whether this run's ``report`` job wrote reports/summary.json (after its log began)."""
    import os

    summary = str(rules.report.output.summary_json)
    if not (snakemake_log and os.path.exists(summary)):
        return False
    return os.path.getmtime(summary) >= _log_start(snakemake_log)


def _log_start(snakemake_log):
    """When the run began: Snakemake names its log after the start time."""
    import datetime
    import os

    stem = os.path.basename(snakemake_log).split(".snakemake.log")[0]
    try:
        return datetime.datetime.strptime(stem, "%Y-%m-%dT%H%M%S.%f").timestamp()
    except ValueError:
        return float("inf")  # unknown start: rewrite the report


# -- planning speed ------------------------------------------------------------------------
def record_signatures(all_rules):
    """Snakemake reads an input or params function's signature (``inspect.signature``) each
    time it calls it: thousands of jobs times several functions. Record each once, the way
    Snakemake's own wrappers do (``snakemake.common.overwrite_function_params``)."""
    try:  # internal helpers of the pinned Snakemake; without them, planning is just slower
        from snakemake.common import get_function_params, overwrite_function_params
    except ImportError:
        return

    def record(func):
        func = (
            getattr(getattr(func, "_file", None), "callable", None)
            or getattr(func, "callable", None)
            or func
        )
        if not callable(func) or isinstance(func, type):
            return
        try:
            overwrite_function_params(func, get_function_params(func))
        except (
            AttributeError,
            TypeError,
            ValueError,
        ):  # builtins, bound methods: left as they are
            pass

    for each in all_rules:
        for item in [*each.input, *each.params]:
            record(item)
