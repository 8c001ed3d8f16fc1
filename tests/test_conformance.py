"""The conformance matrix over the whole family registry (a new family is covered untouched).

For every family's tiny preset x variant (fp32, fp16, int8 with the family's defaults) x
component: the artifact is written only if ONNX Runtime opens it, it runs at two sizes the
export never traced, and it is judged against PyTorch with the family's variant tolerances.
"""

from __future__ import annotations

import re

import pytest
import yaml

from conftest import REPO
from ttskiln.conformance import VARIANTS, check_family, point_sizes, render_table
from ttskiln.families import FAMILIES

_CELLS: dict[str, list] = {}


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    def cells(family: str):
        if family not in _CELLS:
            _CELLS[family] = check_family(family, tmp_path_factory.mktemp(family))
        return _CELLS[family]

    return cells


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_variant_loads_runs_and_is_judged(matrix, family):
    cells = matrix(family)
    components = [c.name for c in FAMILIES[family].describe(FAMILIES[family].synthetic_config("tiny", {})).components]
    assert {(c.component, c.variant) for c in cells} == {(k, v) for k in components for v in VARIANTS}
    for cell in cells:
        where = f"{family}/{cell.component}/{cell.variant}"
        if cell.error:  # refused: one line naming family, component, variant and the cause
            assert "\n" not in cell.error and cell.error.startswith(where + ": "), cell.error
            assert cell.variant != "fp32", f"{where}: the fp32 graph must always build: {cell.error}"
            continue
        assert cell.loads, f"{where}: written, but ONNX Runtime cannot run it: {cell.failures}"
        if cell.variant == "fp32":
            assert cell.passed, f"{where}: {cell.failures}"
        if cell.variant == "int8":  # an int8 label is never on an unquantized graph
            done, total = map(int, cell.quantized.split(" of "))
            assert 0 < done <= total, f"{where}: quantized {cell.quantized}"
        if not cell.passed:  # a failed verdict says which metric broke which limit
            assert cell.failures and all(re.search(r"(>|<) ", f) for f in cell.failures), cell.failures
    print("\n" + render_table(cells))


def test_conformance_points_are_sizes_the_export_never_saw():
    for family in FAMILIES.values():
        for spec in family.describe(family.synthetic_config("tiny", {})).components:
            for sizes in point_sizes(spec).values():
                assert sizes != {a: spec.trace_sizes.get(a) for a in sizes}
                assert all(sizes[a] >= spec.axis_min.get(a, 1) for a in sizes)


def test_the_demo_enables_only_variants_that_pass(matrix):
    """A variant in the demo config passes in every component of its family's matrix (tiny
    preset; the demo's own run judges its sizes)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for name, entry in config["models"].items():
        cells = matrix(entry["family"])
        for variant in entry.get("variants") or []:
            broken = [c for c in cells if c.variant == variant and not c.passed]
            assert not broken, f"{name} enables {variant}, which fails: {[(c.component, c.error or c.failures) for c in broken]}"
