"""Turning a PyTorch module into a checked ONNX file: the export helpers every stage and family share.

A bottom-layer module (see ``ttskiln.LAYERS``): it takes a family object, never looks one up,
and imports no stage module, so a family's own exports (parity graphs, runner graphs) use it
without their code hash covering the export stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttskiln.atomic import clean_stale, scratch_dir
from ttskiln.errors import TtskilnError
from ttskiln.onnx_io import EXTERNAL_DATA_BYTES, save_onnx

if TYPE_CHECKING:
    from ttskiln.families.base import ComponentSpec, Family

#: Scratch folders an interrupted export of an earlier version left beside its output.
LEGACY_SCRATCH = ".export-*"
#: Ops that ONNX Runtime and TensorRT do not both run, or that need complex numbers.
FORBIDDEN_OPS = {"DFT", "STFT", "ScatterND", "ScatterElements", "Col2Im", "Loop", "If"}
EXPORTERS = ("dynamo", "torchscript")


def export_family_component(
    fam: Family,
    *,
    checkpoint: str,
    options: dict[str, Any],
    component: str,
    opset: int,
    output: str,
    exporter: str = "dynamo",
    metadata: dict[str, str] | None = None,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
) -> None:
    """Export one component of a checkpoint of family ``fam`` to ``output``."""
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    config = fam.read_config(Path(checkpoint), options)
    info = fam.describe(config)
    spec = info.component(component)
    module = fam.component_module(fam.load(Path(checkpoint), config), component)
    example = fam.make_inputs(info, component, spec.trace_sizes, np.random.default_rng(0))
    clean_stale(output, [LEGACY_SCRATCH])
    with scratch_dir(output) as tmp:
        raw = tmp / "raw.onnx"
        export_module(module, spec, example, raw, opset, exporter)
        finish_onnx(raw, spec, metadata or {}, Path(output), external_data_bytes)


def export_module(
    module: Any, spec: ComponentSpec, example: dict[str, np.ndarray], path: Path, opset: int, exporter: str
) -> None:
    import contextlib
    import io
    import logging
    import warnings

    import torch

    if exporter not in EXPORTERS:
        raise TtskilnError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    args = tuple(torch.from_numpy(example[name]) for name in spec.input_names)
    common = dict(input_names=spec.input_names, output_names=spec.output_names, opset_version=opset)
    # The exporters print progress and deprecation chatter; keep logs to what matters.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    chatter = io.StringIO()
    with torch.no_grad(), contextlib.redirect_stdout(chatter), warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning))
        if exporter == "dynamo":
            dims: dict[str, Any] = {}
            shapes = {}
            for tensor in spec.inputs:
                shapes[tensor.name] = {
                    i: dims.setdefault(axis, torch.export.Dim(axis, min=spec.axis_min.get(axis, 1)))
                    for i, axis in tensor.dynamic_axes.items()
                }
            large = sum(p.numel() * p.element_size() for p in module.parameters()) > EXTERNAL_DATA_BYTES
            torch.onnx.export(
                module, args, str(path), dynamo=True, dynamic_shapes=shapes, external_data=large, **common
            )
        else:
            axes = {t.name: t.dynamic_axes for t in spec.inputs + spec.outputs}
            torch.onnx.export(module, args, str(path), dynamo=False, dynamic_axes=axes, **common)


def finish_onnx(
    path: Path,
    spec: ComponentSpec,
    metadata: dict[str, str],
    output: Path | None = None,
    external_data_bytes: int = EXTERNAL_DATA_BYTES,
) -> list[str]:
    """Name the dynamic output axes, add metadata, save to ``output`` (default: in place;
    external data past the limit), run the checker and the op audit. Returns the files."""
    import onnx

    output = Path(output or path)

    model = onnx.load(str(path))
    for value, tensor in zip(model.graph.output, spec.outputs):
        dims = value.type.tensor_type.shape.dim
        for i, axis in tensor.dynamic_axes.items():
            if i < len(dims) and not dims[i].dim_value:
                dims[i].dim_param = axis
    for key, value in sorted(metadata.items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ttskiln.{key}", str(value)
    audit_ops(model, str(output))
    files = save_onnx(model, output, external_data_bytes)
    onnx.checker.check_model(str(output), full_check=True)
    return files


def audit_ops(model: Any, where: str) -> None:
    ops = {node.op_type for node in model.graph.node}
    bad = sorted(ops & FORBIDDEN_OPS)
    if bad:
        raise TtskilnError(f"{where}: the graph holds {bad}, which not every backend runs")
