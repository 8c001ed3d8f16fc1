"""``python -m ttskiln parity <case-dir>``: reproduce outputs recorded from upstream code.

A case folder holds manifest.json (``family``, ``config``, ``entry_point``), the checkpoint
files in the released format, inputs.npz and outputs.npz keyed by upstream names. The family's
PyTorch re-implementation and its exported fp32 ONNX run on the recorded inputs; each compared
output prints its max abs error, and the last line is ``worst max_abs_err=<value>``.

A text front-end folder (manifest ``kind: frontend``: recorded texts and the ids upstream's
front end made of them) goes to the family's ``frontend_parity``; each case prints ``ok`` or
``FAIL`` with a detail, then the count of identical cases and the same summary line (0 when
every case is identical, inf otherwise).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from ttskiln.errors import InputError, TtskilnError
from ttskiln.families import get_family
from ttskiln.families.base import ParityCase, ParityCheck


def load_case(directory: str | Path) -> ParityCase:
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise InputError(f"{directory} has no manifest.json; not a parity case folder")
    manifest = json.loads(manifest_path.read_text())
    arrays = {}
    for name in ("inputs", "outputs"):
        path = directory / f"{name}.npz"
        if not path.is_file():
            raise InputError(f"{directory} has no {name}.npz")
        with np.load(path, allow_pickle=False) as data:
            arrays[name] = {k: data[k] for k in data.files}
    return ParityCase(directory, manifest, arrays["inputs"], arrays["outputs"])


def run_parity(case: ParityCase, opset: int = 18) -> list[ParityCheck]:
    family = get_family(case.manifest.get("family", ""))
    if family.parity_mode == "host":
        return family.parity(case)
    if family.parity_mode == "graphs":
        return graph_parity(family, case, opset)
    raise InputError(f"{case.directory}: family {family.name!r} has no upstream parity cases")


def graph_parity(family, case: ParityCase, opset: int = 18) -> list[ParityCheck]:
    """Entry points that are one exported graph: PyTorch and ONNX Runtime on the case inputs."""
    from ttskiln.onnx_export import export_module
    from ttskiln.runtime import ort_session, torch_run

    config = family.parity_config(case)
    info = family.describe(config)
    model = family.load(case.directory, config)
    checks = []
    for component, input_map, output_map in family.parity_plan(case):
        spec = info.component(component)
        missing = [v for v in input_map.values() if v not in case.inputs]
        missing += [v for v in output_map.values() if v not in case.outputs]
        if missing:
            raise InputError(f"{case.directory}: inputs/outputs.npz lack {missing}")
        inputs = {name: case.inputs[src].astype(np.float32, copy=False) for name, src in input_map.items()}
        module = family.component_module(model, component)
        torch_out = torch_run(module, spec, inputs)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{component}.onnx"
            export_module(module, spec, inputs, path, opset, "dynamo")
            session = ort_session(path)
            ort_out = dict(zip(spec.output_names, session.run(spec.output_names, inputs)))
        for name, upstream in output_map.items():
            expected = _like(case.outputs[upstream], torch_out[name])
            tol = family.parity_tolerance(case, upstream)
            checks.append(ParityCheck(upstream, "pytorch", torch_out[name], expected, tol))
            checks.append(ParityCheck(upstream, "onnxruntime", ort_out[name], expected, tol))
    return checks


def _like(expected: np.ndarray, got: np.ndarray) -> np.ndarray:
    """Upstream's layout where it differs from ours only by size-1 axes ([B, 1, T] vs [B, T])."""
    if expected.shape != got.shape and expected.size == got.size:
        if [d for d in expected.shape if d != 1] == [d for d in got.shape if d != 1]:
            return expected.reshape(got.shape)
    return expected


def max_abs_err(check: ParityCheck) -> float:
    if check.got.shape != check.expected.shape:
        return float("inf")
    return float(np.max(np.abs(check.got.astype(np.float64) - check.expected.astype(np.float64))))


def frontend_main(case_dir: str, manifest: dict) -> int:
    """A text front-end folder: every case identical to upstream, or FAIL."""
    family = get_family(str(manifest.get("family", "")))
    results = family.frontend_parity(Path(case_dir))
    if results is None:
        print(f"parity: {case_dir}: family {family.name!r} has no text front end")
        return 2
    width = max((len(name) for name, _, _ in results), default=0)
    for name, ok, detail in results:
        print(f"{name:<{width}} {'ok' if ok else 'FAIL'}{'  ' + detail if detail else ''}")
    same = sum(1 for _, ok, _ in results if ok)
    print(f"{family.name} front end: {same}/{len(results)} cases identical to upstream")
    failed = same != len(results) or not results
    print(f"worst max_abs_err={float('inf') if failed else 0.0:.3e}")
    return 1 if failed else 0


def main(case_dir: str) -> int:
    try:
        manifest_path = Path(case_dir) / "manifest.json"
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{manifest_path} is not valid JSON: {exc}") from exc
            if isinstance(manifest, dict) and manifest.get("kind") == "frontend":
                return frontend_main(case_dir, manifest)
        case = load_case(case_dir)
        checks = run_parity(case)
    except TtskilnError as exc:
        print(f"parity: {case_dir}: {exc}")
        return 2
    worst = 0.0
    failed = False
    for check in checks:
        err = max_abs_err(check)
        shape = "" if check.got.shape == check.expected.shape else f" SHAPE {list(check.got.shape)} != {list(check.expected.shape)}"
        ok = err <= check.tolerance
        failed |= not ok
        worst = max(worst, err)
        print(f"{check.output:<24} {check.backend:<12} max_abs_err={err:.3e} tol={check.tolerance:.0e} {'ok' if ok else 'FAIL'}{shape}")
    print(f"worst max_abs_err={worst:.3e}")
    return 1 if failed else 0
