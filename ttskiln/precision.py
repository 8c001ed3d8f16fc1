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
from ttskiln.errors import ConfigError, TtskilnError, one_line
from ttskiln.onnx_export import audit_ops

INT8_METHODS = ("dynamic", "static")


def select_nodes(model: Any, patterns: Iterable[str], key: str | None = None) -> list[str]:
    """Names of the nodes selected by ``patterns`` (see the module docstring), graph order.

    With ``key`` (the YAML key the patterns come from), a pattern that selects no node is a
    ConfigError naming it: a typo must not silently leave a node unprotected.
    """
    nodes = list(model.graph.node)
    chosen: set[str] = set()
    for pattern in patterns:
        downstream = pattern.startswith("after:")
        glob = pattern.removeprefix("after:")
        hits = {
            n.name for n in nodes if fnmatch.fnmatchcase(n.name, glob) or any(fnmatch.fnmatchcase(i, glob) for i in n.input)
        }
        if key and not hits:
            raise ConfigError(f"{key} pattern {pattern!r} selects no node of {model.graph.name or 'the graph'}; "
                              f"patterns match node names and their input names (e.g. initializer paths)")
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
    """Mixed fp16 with the listed op types and nodes kept fp32; returns what was kept.

    The conversion is onnxconverter-common's ``convert_float_to_float16`` (graph inputs and
    outputs stay fp32) followed by a type repair (``repair_float_types``) for what that
    converter leaves inconsistent: an initializer shared by a kept and a converted node, a
    Cast whose output it relabels, a tensor that is both a kept-fp32 graph output and the
    input of converted nodes. The result passes ``onnx.checker`` (full check) and opens in
    ONNX Runtime before it is written; otherwise the stage fails naming the node.

    Raises ConfigError for a ``keep_fp32_nodes`` pattern that selects no node, and
    TtskilnError for a graph that cannot be made consistent.
    """
    import warnings

    import onnx
    from onnxconverter_common import float16

    model = onnx.load(source)
    _ensure_names(model)
    nodes = select_nodes(model, keep_fp32_nodes, key="keep_fp32_nodes")
    present = {n.op_type for n in model.graph.node}
    blocked_ops = sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    with warnings.catch_warnings():
        # The converter warns for every weight below fp16's smallest normal; they are clamped.
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model,
            keep_io_types=True,
            op_block_list=blocked_ops,
            node_block_list=nodes,
        )
    blocked = {n.name for n in converted.graph.node if n.op_type in blocked_ops or n.name in nodes}
    casts = repair_float_types(converted, model, fp32_nodes=blocked)
    kept = {"ops": sorted(set(keep_fp32_ops) & present), "nodes": nodes, "repair_casts": casts,
            "ops_not_in_graph": sorted(set(keep_fp32_ops) - present)}
    _finish(converted, output, {"precision": "fp16", "fp32_nodes": ",".join(nodes),
                                "fp32_ops": ",".join(kept["ops"]), "repair_casts": str(casts)})
    return kept


_FP32, _FP16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


def repair_float_types(model: Any, original: Any, fp32_nodes: set[str]) -> int:
    """Make a mixed fp16/fp32 graph type-consistent by inserting Casts; returns how many.

    Element types are propagated node by node (graph order is topological) with ONNX's own
    per-op inference. Where one type parameter of a node is bound to both fp16 and fp32, the
    odd inputs are cast to fp32 when the node is in ``fp32_nodes`` and to fp16 otherwise.
    Every intermediate ``value_info`` is dropped (the converter's labels can be wrong) and
    each graph output gets ``original``'s element type back through a final Cast.
    """
    from onnx import defs, helper, shape_inference

    graph = model.graph
    opset = {o.domain or "": o.version for o in model.opset_import}
    types: dict[str, int] = {v.name: v.type.tensor_type.elem_type for v in graph.input}
    types.update({t.name: t.data_type for t in graph.initializer})
    added = 0
    new_nodes = []
    for node in graph.node:
        try:
            schema = defs.get_schema(node.op_type, opset.get(node.domain or "", 1), node.domain or "")
        except Exception:  # an op ONNX does not define (a runtime's contrib op): leave it as it is
            new_nodes.append(node)
            continue
        formals = list(schema.inputs)
        groups: dict[str, list[int]] = {}
        for i, name in enumerate(node.input):
            if not name or not formals:
                continue
            formal = formals[min(i, len(formals) - 1)]
            groups.setdefault(formal.type_str, []).append(i)
        want = _FP32 if node.name in fp32_nodes else _FP16
        for type_str, positions in groups.items():
            bound = {types.get(node.input[i]) for i in positions} - {None}
            if not ({_FP32, _FP16} <= bound) or not type_str.isidentifier() or type_str.startswith("tensor"):
                continue
            for i in positions:
                name = node.input[i]
                if types.get(name) in (_FP32, _FP16) and types[name] != want:
                    cast_out = f"{name}__as_{'fp32' if want == _FP32 else 'fp16'}__{node.name}"
                    new_nodes.append(helper.make_node("Cast", [name], [cast_out], to=want, name=f"{cast_out}_cast"))
                    types[cast_out] = want
                    node.input[i] = cast_out
                    added += 1
        new_nodes.append(node)
        for name, elem in _output_types(node, schema, types, shape_inference, opset).items():
            types[name] = elem
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]
    wanted = {o.name: o.type.tensor_type.elem_type for o in original.graph.output}
    for value in graph.output:
        elem = wanted.get(value.name, value.type.tensor_type.elem_type)
        if types.get(value.name, elem) != elem:
            inner = f"{value.name}__converted"
            for node in graph.node:
                node.output[:] = [inner if out == value.name else out for out in node.output]
                node.input[:] = [inner if name == value.name else name for name in node.input]
            graph.node.append(helper.make_node("Cast", [inner], [value.name], to=elem, name=f"{value.name}_restore_type"))
            added += 1
        value.type.tensor_type.elem_type = elem
    return added


def _output_types(node: Any, schema: Any, types: dict[str, int], shape_inference: Any, opset: dict[str, int]) -> dict[str, int]:
    """Element types of ``node``'s outputs given its inputs' (ONNX's inference for the op)."""
    from onnx import TypeProto, helper

    if node.op_type == "Cast":
        return {node.output[0]: helper.get_attribute_value(next(a for a in node.attribute if a.name == "to"))}
    inputs = {}
    for name in node.input:
        if name and name in types:
            proto = TypeProto()
            proto.tensor_type.elem_type = types[name]
            inputs[name] = proto
    try:
        result = shape_inference.infer_node_outputs(
            schema, node, inputs, opset_imports=[helper.make_opsetid(d, v) for d, v in opset.items()])
        found = {name: t.tensor_type.elem_type for name, t in result.items() if t.tensor_type.elem_type}
    except Exception:  # an op whose inference needs more than types: bind by type parameter
        found = {}
    formals_out = list(schema.outputs)
    formals_in = list(schema.inputs)
    for i, name in enumerate(node.output):
        if not name or name in found or not formals_out:
            continue
        type_str = formals_out[min(i, len(formals_out) - 1)].type_str
        for j, inp in enumerate(node.input):
            if inp and formals_in and formals_in[min(j, len(formals_in) - 1)].type_str == type_str and inp in types:
                found[name] = types[inp]
                break
    return found


#: The product ops whose weights int8 quantizes: "quantized N of M" counts these.
PRODUCT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
#: Ops that are a product op in quantized form (ONNX Runtime's QOperator and dynamic kernels).
_INTEGER_OPS = ("ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "QGemm",
                "DynamicQuantizeMatMul", "MatMulIntegerToFloat")
INT8_OP_TYPES = {"dynamic": ["MatMul", "Gemm"], "static": list(PRODUCT_OPS)}


def quantized_counts(model: Any) -> tuple[int, int]:
    """(quantized, total) product ops of an int8 graph (a ModelProto or a path).

    A product op counts as quantized when it runs in integer form, or (QDQ) when its
    weight or activation arrives through a DequantizeLinear.
    """
    import onnx

    if not hasattr(model, "graph"):
        model = onnx.load(str(model), load_external_data=False)
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    quantized = total = 0
    for node in model.graph.node:
        if node.op_type in _INTEGER_OPS:
            quantized += 1
            total += 1
        elif node.op_type in PRODUCT_OPS:
            total += 1
            quantized += any(name in dequantized for name in node.input[:2])
    return quantized, total


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
    """int8 by ONNX Runtime quantization; ``calibration`` are reference .npz files (static).

    ``dynamic`` quantizes MatMul/Gemm weights (activations on the fly); ``static`` writes QDQ
    around Conv/ConvTranspose/MatMul/Gemm with activation ranges from the calibration
    inputs. ``op_types`` narrows either list. The result records "quantized N of M" product
    ops in its metadata; with N = 0 nothing is written (an int8 label on an fp32 graph would
    be a lie) and the stage fails naming the method and what the graph holds.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ttskiln.atomic import scratch_dir

    if method not in INT8_METHODS:
        raise ConfigError(f"int8 method must be one of {INT8_METHODS}, got {method!r}")
    model = onnx.load(source)
    _ensure_names(model)
    excluded = select_nodes(model, exclude_nodes, key="int8.exclude_nodes")
    present = {n.op_type for n in model.graph.node}
    wanted = list(op_types or INT8_OP_TYPES[method])
    if method == "static" and not calibration:
        raise ConfigError("static int8 needs calibration inputs (profile points or sample_inputs)")
    with scratch_dir(output) as tmp:
        named = tmp / "named.onnx"
        prepared = tmp / "prepared.onnx"
        quantized = tmp / "int8.onnx"
        onnx.save(model, str(named))
        quant_pre_process(str(named), str(prepared), skip_symbolic_shape=True)
        if method == "dynamic":
            quantize_dynamic(
                str(prepared),
                str(quantized),
                op_types_to_quantize=wanted,
                nodes_to_exclude=excluded,
                per_channel=per_channel,
                weight_type=QuantType.QInt8,
            )
        else:
            quantize_static(
                str(prepared),
                str(quantized),
                _Calibration(calibration),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=wanted,
                nodes_to_exclude=excluded,
                per_channel=per_channel,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                extra_options={"CalibTensorRangeSymmetric": False},
            )
        result = onnx.load(str(quantized))
    done, total = quantized_counts(result)
    if done == 0:
        held = ", ".join(f"{op} x{sum(n.op_type == op for n in model.graph.node)}" for op in PRODUCT_OPS if op in present)
        raise TtskilnError(
            f"int8 ({method}, op_types {wanted}) quantized none of the graph's {total} product ops "
            f"({held or 'it has none'}); nothing written. "
            + ("Use int8: {method: static} for convolutions." if method == "dynamic" and present & {"Conv", "ConvTranspose"}
               else "Drop int8 from this model's variants.")
        )
    _finish(result, output, {"precision": f"int8-{method}", "fp32_nodes": ",".join(excluded),
                             "quantized": f"{done} of {total}"})
    return {"method": method, "op_types": wanted, "excluded": excluded, "quantized": f"{done} of {total}"}


class _Calibration:
    """ONNX Runtime CalibrationDataReader over stored reference inputs."""

    def __init__(self, references: list[str]) -> None:
        from ttskiln.reference_io import load_reference

        self._feeds = iter([load_reference(path)[0] for path in references])

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)


def _finish(model: Any, output: str, metadata: dict[str, str]) -> None:
    """Add metadata, check the graph (ONNX checker, full; ONNX Runtime opens it), then write.

    Nothing is written for a graph that fails a check: the stage fails with one line.
    """
    from ttskiln.onnx_io import EXTERNAL_DATA_BYTES, tensor_bytes

    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = f"ttskiln.{key}", value
    audit_ops(model, output)
    if tensor_bytes(model) <= EXTERNAL_DATA_BYTES:
        check_loadable(model, output)
        save_onnx(model, output)
    else:  # past protobuf's limit the checks read the saved files
        from ttskiln.atomic import scratch_dir

        with scratch_dir(output) as tmp:
            files = save_onnx(model, tmp / Path(output).name)
            check_loadable(files[0], output)
        save_onnx(model, output)


def check_loadable(model: Any, where: str) -> None:
    """Raise TtskilnError unless the ONNX checker (full) passes and ONNX Runtime opens
    ``model`` (a ModelProto or a path) on the CPU."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # the checker raises several types
        raise TtskilnError(f"{where}: the ONNX checker refuses the graph: {type(exc).__name__}: {one_line(exc)}") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        ort.InferenceSession(model.SerializeToString() if hasattr(model, "SerializeToString") else str(model),
                             sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise TtskilnError(f"{where}: ONNX Runtime cannot load the graph: {type(exc).__name__}: {one_line(exc)}") from None
