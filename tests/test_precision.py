import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ttskiln.export import export_component
from ttskiln.families import get_family
from ttskiln.flops import count_flops
from ttskiln.precision import select_nodes, to_fp16, to_int8
from ttskiln.reference import build_reference
from ttskiln.runtime import ort_session
from ttskiln.simplify import simplify_onnx

VOCOS = get_family("vocos")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    ckpt = root / "ckpt"
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", {}), ckpt, seed=4)
    export_component(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", opset=18, output=str(root / "export.onnx"))
    simplify_onnx(source=str(root / "export.onnx"), output=str(root / "fp32.onnx"))
    refs = []
    for i, frames in enumerate((24, 40)):
        ref = root / f"ref{i}.npz"
        build_reference(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", point=f"p{i}",
                        sizes={"batch": 1, "frames": frames}, seed=0, sample_inputs=None, output=str(ref))
        refs.append(str(ref))
    return root, refs


def _initializer_types(path):
    return {t.name: t.data_type for t in onnx.load(path).graph.initializer}


def _run(path, ref):
    data = np.load(ref)
    return ort_session(path).run(None, {"mel": data["input.mel"]})[0], data["output.audio"]


def test_kept_fp32_nodes_stay_fp32(tiny):
    root, refs = tiny
    keep = VOCOS.fp16_defaults
    to_fp16(source=str(root / "fp32.onnx"), output=str(root / "kept.onnx"), **keep)
    to_fp16(source=str(root / "fp32.onnx"), output=str(root / "all.onnx"), keep_fp32_ops=[], keep_fp32_nodes=[])
    kept, plain = _initializer_types(root / "kept.onnx"), _initializer_types(root / "all.onnx")
    # The ISTFT basis (selected by "after:head.istft.*") and LayerNorm weights stay fp32 only when kept.
    assert kept["head.istft.basis_real"] == TensorProto.FLOAT and plain["head.istft.basis_real"] == TensorProto.FLOAT16
    norm = next(name for name in kept if name.endswith("norm.weight"))
    assert kept[norm] == TensorProto.FLOAT and plain[norm] == TensorProto.FLOAT16
    assert any(t == TensorProto.FLOAT16 for t in kept.values())
    model = onnx.load(root / "kept.onnx")
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [TensorProto.FLOAT]
    listed = {p.key: p.value for p in model.metadata_props}["ttskiln.fp32_nodes"].split(",")
    assert set(select_nodes(onnx.load(root / "fp32.onnx"), ["after:head.istft.*"])) == set(listed)
    got, want = _run(root / "kept.onnx", refs[1])
    assert np.abs(got - want).max() < 1e-2


def test_after_pattern_follows_the_graph(tiny):
    root, _ = tiny
    model = onnx.load(root / "fp32.onnx")
    direct = select_nodes(model, ["head.istft.basis_*"])
    after = select_nodes(model, ["after:head.istft.basis_*"])
    assert len(direct) == 2 and set(direct) < set(after)
    assert model.graph.node[-1].name in after


@pytest.mark.parametrize("method", ["dynamic", "static"])
def test_int8_quantizes_and_excludes(tiny, method):
    root, refs = tiny
    out = root / f"int8-{method}.onnx"
    done = to_int8(source=str(root / "fp32.onnx"), output=str(out), method=method, op_types=None,
                   exclude_nodes=["after:head.istft.*"], calibration=refs)
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert ("MatMulInteger" in ops or "DynamicQuantizeLinear" in ops) if method == "dynamic" else "QuantizeLinear" in ops
    assert _initializer_types(out)["head.istft.basis_real"] == TensorProto.FLOAT
    assert done["excluded"]
    got, want = _run(out, refs[0])
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.2


def test_static_int8_needs_calibration(tiny):
    root, _ = tiny
    with pytest.raises(Exception, match="calibration"):
        to_int8(source=str(root / "fp32.onnx"), output=str(root / "x.onnx"), method="static", op_types=None, exclude_nodes=[], calibration=[])
    assert not (root / "x.onnx").exists()


def test_flop_count_of_known_graph(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 5], np.zeros(20, np.float32).tolist())
    k = helper.make_tensor("k", TensorProto.FLOAT, [6, 3, 3], np.zeros(54, np.float32).tolist())
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Transpose", ["m"], ["t"], perm=[0, 2, 1]),
         helper.make_node("Conv", ["t", "k"], ["y"], pads=[1, 1])],
        "g", [x], [y], [w, k])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    # MatMul: 2 * (2*3*5) * 4 = 240; Conv on (2, 5, 3) -> (2, 6, 3): 2 * 36 * (3*3) = 648.
    assert count_flops(str(path), {"x": [2, 3, 4]}) == 240 + 648
