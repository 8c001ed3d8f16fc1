"""Upstream parity for F5-TTS cases: DiT.forward calls and full CFM.sample runs.

Both kinds run twice, through the PyTorch module and through its ONNX export (ONNX Runtime,
CPU), with the same host-side packing (``host.py``) and, for sampling, the same host loop
(``sampler.py``). The ONNX graph is exported once per case with dynamic batch and frames.

* ``DiT.forward`` cases: every output whose call is listed under ``calls`` in the manifest
  (an upstream call expression such as ``transformer(x=x, ..., mask=None, cfg_infer=True)``)
  is rebuilt from its keyword arguments and compared (tolerance 1e-4).
* ``CFM.sample`` cases: the recorded ``noise`` replaces the random draw; ``out``,
  ``trajectory``, the DiT inputs and packed outputs of every step (tolerance 1e-3) and the
  time grid (1e-6) are compared.
"""

from __future__ import annotations

import ast
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.base import ParityCase, ParityCheck

DIT_TOLERANCE = 1e-4
SAMPLE_TOLERANCE = 1e-3
GRID_TOLERANCE = 1e-6
BACKENDS = ("pytorch", "onnxruntime")
DIT_ARGUMENTS = ("x", "cond", "text", "time", "mask")
DIT_FLAGS = ("drop_audio_cond", "drop_text", "cfg_infer")


def run_case(family: Any, case: ParityCase) -> list[ParityCheck]:
    entry = str(case.manifest.get("entry_point", ""))
    if "DiT.forward" in entry:
        return _dit_case(family, case)
    if "CFM.sample" in entry:
        return _sample_case(family, case)
    raise InputError(f"{case.directory}: f5tts parity supports DiT.forward and CFM.sample; manifest names {entry!r}")


def _velocities(family: Any, case: ParityCase, workdir: Path) -> dict[str, Any]:
    """The DiT as a velocity on each backend (the ONNX graph exported into ``workdir``)."""
    from ttskiln.onnx_export import export_module, finish_onnx
    from ttskiln.families.f5tts.backends import onnx_velocity, torch_velocity

    config = family.parity_config(case)
    info = family.describe(config)
    spec = info.component("dit")
    model = family.load(case.directory, config)
    example = family.make_inputs(info, "dit", spec.trace_sizes, np.random.default_rng(0))
    path = workdir / "dit.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the exporter's notes on shared axis names
        export_module(model, spec, example, path, 18, "dynamo")
    finish_onnx(path, spec, {})
    return {"pytorch": torch_velocity(model), "onnxruntime": onnx_velocity(path, config)}


def parse_call(expression: str) -> tuple[dict[str, str | None], dict[str, bool]]:
    """Keyword arguments of an upstream call expression: tensor arguments (name of the case
    input, or None) and boolean flags."""
    try:
        call = ast.parse(expression, mode="eval").body
    except SyntaxError as exc:
        raise InputError(f"cannot parse manifest call {expression!r}: {exc}") from exc
    if not isinstance(call, ast.Call):
        raise InputError(f"manifest call {expression!r} is not a call")
    tensors: dict[str, str | None] = {}
    flags: dict[str, bool] = {}
    for kw in call.keywords:
        value = kw.value
        if kw.arg in DIT_ARGUMENTS and isinstance(value, ast.Name):
            tensors[kw.arg] = value.id
        elif kw.arg in DIT_ARGUMENTS and isinstance(value, ast.Constant) and value.value is None:
            tensors[kw.arg] = None
        elif kw.arg in DIT_FLAGS and isinstance(value, ast.Constant) and isinstance(value.value, bool):
            flags[kw.arg] = value.value
        elif kw.arg == "cache":
            continue
        else:
            raise InputError(f"manifest call {expression!r}: unsupported argument {kw.arg}={ast.unparse(value)}")
    missing = [a for a in DIT_ARGUMENTS[:4] if a not in tensors]
    if missing:
        raise InputError(f"manifest call {expression!r} does not give {missing}")
    return tensors, flags


def _dit_case(family: Any, case: ParityCase) -> list[ParityCheck]:
    calls = case.manifest.get("calls") or {}
    if not calls:
        raise InputError(f"{case.directory}: manifest lists no 'calls'")
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        velocities = _velocities(family, case, Path(tmp))
        for output, expression in calls.items():
            if output not in case.outputs:
                raise InputError(f"{case.directory}: outputs.npz has no {output!r}")
            tensors, flags = parse_call(expression)
            args = {}
            for name, source in tensors.items():
                if source is not None and source not in case.inputs:
                    raise InputError(f"{case.directory}: inputs.npz has no {source!r} (needed by {output})")
                args[name] = None if source is None else case.inputs[source]
            args.setdefault("mask", None)
            for backend in BACKENDS:
                got = velocities[backend].forward(**args, **flags)
                checks.append(ParityCheck(output, backend, got, case.outputs[output], DIT_TOLERANCE))
    return checks


def _sample_case(family: Any, case: ParityCase) -> list[ParityCheck]:
    from ttskiln.families.f5tts.sampler import sample

    kwargs = dict(case.manifest.get("sample_kwargs") or {})
    needed = ("cond", "text", "duration", "noise")
    missing = [k for k in needed if k not in case.inputs]
    if missing:
        raise InputError(f"{case.directory}: inputs.npz lacks {missing}")
    checks = []
    with tempfile.TemporaryDirectory() as tmp:
        velocities = _velocities(family, case, Path(tmp))
        for backend in BACKENDS:
            xs, flows = [], []
            result = sample(
                velocities[backend],
                case.inputs["cond"],
                case.inputs["text"],
                case.inputs["duration"],
                lens=case.inputs.get("lens"),
                steps=int(kwargs.get("steps", 32)),
                cfg_strength=float(kwargs.get("cfg_strength", 1.0)),
                sway_sampling_coef=kwargs.get("sway_sampling_coef"),
                use_epss=bool(kwargs.get("use_epss", True)),
                noise=case.inputs["noise"],
                on_step=lambda k, t, x, flow: (xs.append(x), flows.append(flow)),
            )
            got = {
                "out": result.out,
                "trajectory": result.trajectory,
                "t_grid": result.times[:-1],
                "dit_inputs_x": np.stack(xs),
                "dit_cfg_outputs": np.stack(flows),
            }
            for name, value in got.items():
                if name not in case.outputs:
                    continue
                expected = case.outputs[name]
                if value.shape != expected.shape and value.size == expected.size:
                    value = value.reshape(expected.shape)
                tol = GRID_TOLERANCE if name == "t_grid" else SAMPLE_TOLERANCE
                checks.append(ParityCheck(name, backend, value, expected, tol))
    if not any(c.output == "out" for c in checks):
        raise InputError(f"{case.directory}: outputs.npz has no 'out'")
    return checks
