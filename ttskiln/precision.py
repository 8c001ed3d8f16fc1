"""Precision variants of an fp32 ONNX graph: fp16 (mixed, in the graph) and int8.

fp16 lives in the graph itself (TensorRT 10.12+ builds strongly typed networks, TensorRT 11
has no FP16 builder flag): onnxconverter-common's ``convert_float_to_float16`` rewrites the
graph with a block list, inserting Casts around the ops that stay fp32. Graph inputs and
outputs stay fp32, so the variant is a drop-in replacement.

int8 uses ONNX Runtime quantization: dynamic (weights int8, activations quantized on the fly;
for MatMul/Gemm-heavy graphs) or static QDQ calibrated on stored reference inputs (for
convolution-heavy vocoders).

Node selections are glob patterns matched against node names and the names of their inputs
(initializers carry module paths, e.g. ``head.istft.basis_real``). ``after:<pattern>`` also
selects everything downstream of the matching nodes.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ttskiln.onnx_io import save_onnx
from ttskiln.errors import ConfigError
from ttskiln.export import audit_ops

INT8_METHODS = ("dynamic", "static")


def select_nodes(model: Any, patterns: Iterable[str]) -> list[str]:
    """Names of the nodes selected by ``patterns`` (see the module docstring), graph order."""
    nodes = list(model.graph.node)
    chosen: set[str] = set()
    for pattern in patterns:
        downstream = pattern.startswith("after:")
        glob = pattern.removeprefix("after:")
        hits = {
            n.name for n in nodes if fnmatch.fnmatchcase(n.name, glob) or any(fnmatch.fnmatchcase(i, glob) for i in n.input)
        }
        if downstream:
            produced = {out for n in nodes if n.name in hits for out in n.output}
            for n in nodes:  # graph order is topological
                if n.name not in hits and any(i in produced for i in n.input):
                    hits.add(n.name)
                    produced.update(n.output)
        chosen |= hits
    return [n.name for n in nodes if n.name in chosen]


def _ensure_names(model: Any) -> None:
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"


def to_fp16(*, source: str, output: str, keep_fp32_ops: list[str], keep_fp32_nodes: list[str]) -> dict[str, Any]:
    """Mixed fp16 with the listed op types and nodes kept fp32; returns what was kept."""
    import warnings

    import onnx
    from onnxconverter_common import float16

    model = onnx.load(source)
    _ensure_names(model)
    nodes = select_nodes(model, keep_fp32_nodes)
    with warnings.catch_warnings():
        # The converter warns for every weight below fp16's smallest normal; they are clamped.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops)),
            node_block_list=nodes,
        )
    _restore_io_types(converted, model)
    kept = {"ops": sorted(keep_fp32_ops), "nodes": nodes}
    _finish(converted, output, {"precision": "fp16", "fp32_nodes": ",".join(nodes)})
    return kept


def _restore_io_types(converted: Any, original: Any) -> None:
    """Give every graph output its original element type back.

    With ``keep_io_types`` the converter still ends a graph whose last node is kept fp32 with
    a Cast to fp16; a Cast back makes the variant a drop-in again.
    """
    from onnx import helper

    wanted = {o.name: o.type.tensor_type.elem_type for o in original.graph.output}
    for value in converted.graph.output:
        elem = wanted.get(value.name)
        if elem is None or value.type.tensor_type.elem_type == elem:
            continue
        inner = f"{value.name}__converted"
        for node in converted.graph.node:
            node.output[:] = [inner if out == value.name else out for out in node.output]
            node.input[:] = [inner if name == value.name else name for name in node.input]
        converted.graph.node.append(helper.make_node("Cast", [inner], [value.name], to=elem, name=f"{value.name}_restore_type"))
        value.type.tensor_type.elem_type = elem


def to_int8(
    *,
    source: str,
    output: str,
    method: str,
    op_types: list[str] | None,
    exclude_nodes: list[str],
    calibration: list[str],
    per_channel: bool = True,
) -> dict[str, Any]:
    """int8 by ONNX Runtime quantization; ``calibration`` are reference .npz files (static)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in INT8_METHODS:
        raise ConfigError(f"int8 method must be one of {INT8_METHODS}, got {method!r}")
    model = onnx.load(source)
    _ensure_names(model)
    excluded = select_nodes(model, exclude_nodes)
    with tempfile.TemporaryDirectory() as tmp:
        named = Path(tmp) / "named.onnx"
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        onnx.save(model, str(named))
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        if method == "dynamic":
            quantize_dynamic(
                str(prepared),
                str(quantized),
                op_types_to_quantize=op_types or ["MatMul", "Gemm"],
                nodes_to_exclude=excluded,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
            )
        else:
            if not calibration:
                raise ConfigError("static int8 needs calibration inputs (profile points or sample_inputs)")
            quantize_static(
                str(prepared),
                str(quantized),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types or ["Conv", "ConvTranspose", "MatMul", "Gemm"],
                nodes_to_exclude=excluded,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
            )
        result = onnx.load(str(quantized))
    _finish(result, output, {"precision": f"int8-{method}", "fp32_nodes": ",".join(excluded)})
    return {"method": method, "excluded": excluded}


class _Calibration:
    """ONNX Runtime CalibrationDataReader over stored reference inputs."""

    def __init__(self, references: list[str]) -> None:
        from ttskiln.reference import load_reference

        self._feeds = iter([load_reference(path)[0] for path in references])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def _finish(model: Any, output: str, metadata: dict[str, str]) -> None:
    import onnx

    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ttskiln.{key}", value
    audit_ops(model, output)
    save_onnx(model, output)
    onnx.checker.check_model(output)
