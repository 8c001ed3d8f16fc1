"""The conformance matrix: every family x precision variant x component, end to end.

For a family's synthetic preset, each component is exported, simplified, converted to each
precision variant with the family's defaults, opened in ONNX Runtime, run at two sizes the
export never traced, and validated against PyTorch within the family's tolerances for that
variant. A variant either passes, fails validation with its metrics, or its conversion fails
with one line naming model, component, variant and cause — these are the verdicts the
pipeline's own stages give, through the same functions.

``python -m ttskiln conformance [FAMILY ...]`` prints the matrix; the test suite runs it over
the whole registry, so a new family is covered without a test edit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttskiln.errors import TtskilnError

VARIANTS = ("fp32", "fp16", "int8")
#: Each axis of a conformance point, as a function of the size the export was traced at.
POINTS = {
    "unseen-a": lambda axis, traced: 1 if axis == "batch" else traced + 5,
    "unseen-b": lambda axis, traced: 3 if axis == "batch" else 2 * traced + 1,
}


@dataclass
class Cell:
    """One family x component x variant verdict."""

    family: str
    component: str
    variant: str
    loads: bool = False
    passed: bool = False
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    quantized: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.error:
            return "refused"
        return "pass" if self.passed else "FAIL"


def point_sizes(spec: Any) -> dict[str, dict[str, int]]:
    """Sizes of the two conformance points of a component (none equals its traced size)."""
    sizes = {}
    for name, rule in POINTS.items():
        sizes[name] = {
            axis: max(spec.axis_min.get(axis, 1), rule(axis, spec.trace_sizes.get(axis, 8)))
            for axis in spec.profile_axes
        }
    return sizes


def check_family(family: str, workdir: Path, preset: str = "tiny", variants: tuple[str, ...] = VARIANTS,
                 seed: int = 0) -> list[Cell]:
    """Build and judge every component x variant of ``family``'s ``preset`` under ``workdir``."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the stages' log lines; the cells hold the verdicts
        return _check_family(family, workdir, preset, variants, seed)


def _check_family(family: str, workdir: Path, preset: str, variants: tuple[str, ...], seed: int) -> list[Cell]:
    from ttskiln.export import export_component
    from ttskiln.families import get_family
    from ttskiln.precision import quantized_counts, to_fp16, to_int8
    from ttskiln.reference import build_reference
    from ttskiln.simplify import simplify_onnx
    from ttskiln.validate import validate_artifact

    fam = get_family(family)
    config = fam.synthetic_config(preset, {})
    ckpt = workdir / family / "checkpoint"
    fam.write_synthetic(config, ckpt, seed=seed)
    info = fam.describe(config)
    cells = []
    for spec in info.components:
        root = workdir / family / spec.name
        fp32 = root / "fp32.onnx"
        export_component(family=family, checkpoint=str(ckpt), options={}, component=spec.name, opset=18,
                         output=str(root / "export.onnx"))
        simplify_onnx(source=str(root / "export.onnx"), output=str(fp32))
        refs = {}
        for name, sizes in point_sizes(spec).items():
            refs[name] = root / "reference" / f"{name}.npz"
            build_reference(family=family, checkpoint=str(ckpt), options={}, component=spec.name, point=name,
                            sizes={**{a: r["opt"] for a, r in info.axis_defaults.items()}, **sizes}, seed=seed,
                            sample_inputs=None, output=str(refs[name]))
        audio = ({"output": spec.audio_output, "sample_rate": info.sample_rate} if spec.audio_output else None)
        for variant in variants:
            cell = Cell(family, spec.name, variant)
            cells.append(cell)
            artifact = root / f"{variant}.onnx"
            try:
                if variant == "fp16":
                    to_fp16(source=str(fp32), output=str(artifact), **fam.fp16_defaults)
                elif variant == "int8":
                    settings = fam.int8_defaults
                    to_int8(source=str(fp32), output=str(artifact), method=settings["method"],
                            op_types=settings.get("op_types"), exclude_nodes=list(settings.get("exclude_nodes") or []),
                            calibration=[str(p) for p in refs.values()])
            except TtskilnError as exc:
                cell.error = f"{family}/{spec.name}/{variant}: {exc}"
                continue
            if variant == "int8":
                done, total = quantized_counts(str(artifact))
                cell.quantized = f"{done} of {total}"
            tolerances = fam.tolerances(variant)
            records = [
                validate_artifact(artifact=str(artifact), reference=str(ref), tolerances=tolerances,
                                  output=str(root / "validate" / variant / f"{point}.json"),
                                  labels={"model": family, "component": spec.name, "variant": variant, "point": point},
                                  audio=audio)
                for point, ref in refs.items()
            ]
            cell.loads = all(r.get("status") != "error" for r in records)
            cell.passed = all(r["passed"] for r in records)
            cell.failures = [f"{r['point']}: {f}" for r in records for f in r["failures"]]
            for key in ("max_abs_err", "snr_db", "mrstft"):
                values = [r["metrics"][key] for r in records if r["metrics"].get(key) is not None]
                if values:
                    cell.metrics[key] = min(values) if key == "snr_db" else max(values)
    return cells


def render_table(cells: list[Cell]) -> str:
    """The matrix as a Markdown table."""
    lines = [
        "| family | component | variant | loads | verdict | max abs err | SNR dB | mrstft | quantized |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cells:
        def num(key: str) -> str:
            value = c.metrics.get(key)
            return "" if value is None else f"{value:.3g}"

        verdict = c.verdict if not c.error else f"refused: {c.error.split(': ', 1)[1]}"
        lines.append(f"| {c.family} | {c.component} | {c.variant} | {'yes' if c.loads else 'no'} | {verdict} | "
                     f"{num('max_abs_err')} | {num('snr_db')} | {num('mrstft')} | {c.quantized or ''} |")
    return "\n".join(lines)


def main(families: list[str], workdir: str | None = None) -> int:
    """Print the matrix for ``families`` (default: the whole registry); 1 if any cell failed."""
    import sys
    import tempfile

    from ttskiln.families import FAMILIES, get_family

    try:
        names = [get_family(f).name for f in families] or list(FAMILIES)
    except TtskilnError as exc:
        print(f"ttskiln conformance: error: {exc}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ttskiln-conformance-") as tmp:
        cells = [cell for name in names for cell in check_family(name, Path(workdir or tmp))]
    print(render_table(cells))
    bad = [c for c in cells if c.verdict != "pass"]
    for c in bad:
        print(f"{c.family}/{c.component}/{c.variant}: {c.error or '; '.join(c.failures)}")
    print(f"conformance: {len(cells) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0
