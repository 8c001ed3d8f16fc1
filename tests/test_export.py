import numpy as np
import onnx
import pytest

from ttskiln.export import FORBIDDEN_OPS, export_component
from ttskiln.families import get_family
from ttskiln.runtime import ort_session, torch_run
from ttskiln.simplify import simplify_onnx

VOCOS = get_family("vocos")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", {"padding": "same"}), path, seed=0)
    return path


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_export_is_dynamic_and_portable(tiny_checkpoint, tmp_path, exporter):
    out = tmp_path / "vocoder.onnx"
    export_component(family="vocos", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                     output=str(out), exporter=exporter, metadata={"model": "t"})
    model = onnx.load(out)
    assert model.opset_import[0].version >= 17
    ops = {n.op_type for n in model.graph.node}
    assert not ops & FORBIDDEN_OPS
    assert [i.name for i in model.graph.input] == ["mel"]
    assert [o.name for o in model.graph.output] == ["audio"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 100, "frames"]
    assert {p.key: p.value for p in model.metadata_props}["ttskiln.model"] == "t"
    config = VOCOS.read_config(tiny_checkpoint, {})
    info = VOCOS.describe(config)
    module = VOCOS.component_module(VOCOS.load(tiny_checkpoint, config), "vocoder")
    session = ort_session(out)
    for batch, frames in [(1, 3), (3, 57)]:
        inputs = VOCOS.make_inputs(info, "vocoder", {"batch": batch, "frames": frames}, np.random.default_rng(batch))
        (got,) = session.run(None, inputs)
        want = torch_run(module, info.component("vocoder"), inputs)["audio"]
        assert got.shape == want.shape == (batch, frames * 64)
        assert np.abs(got - want).max() < 1e-5


@pytest.mark.parametrize("simplifier", ["onnxsim", "onnxslim"])
def test_simplified_graph_still_matches(tiny_checkpoint, tmp_path, simplifier):
    raw, simple = tmp_path / "export.onnx", tmp_path / "fp32.onnx"
    export_component(family="vocos", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18, output=str(raw))
    simplify_onnx(source=str(raw), output=str(simple), simplifier=simplifier)
    meta = {p.key: p.value for p in onnx.load(simple).metadata_props}
    assert meta["ttskiln.simplifier"] == simplifier
    mel = np.random.default_rng(0).uniform(-5, 2, (2, 100, 20)).astype(np.float32)
    a = ort_session(raw).run(None, {"mel": mel})[0]
    b = ort_session(simple).run(None, {"mel": mel})[0]
    assert np.abs(a - b).max() < 1e-6
    assert not {n.op_type for n in onnx.load(simple).graph.node} & FORBIDDEN_OPS


def test_failed_export_leaves_no_file(tiny_checkpoint, tmp_path):
    out = tmp_path / "vocoder.onnx"
    with pytest.raises(Exception):
        export_component(family="vocos", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                         output=str(out), exporter="nonsense")
    assert list(tmp_path.iterdir()) == []


def test_large_models_keep_their_tensors_in_one_external_file(tiny_checkpoint, tmp_path):
    # The 2 GB protobuf limit, scaled down: any tensor bytes count as "large" here.
    out = tmp_path / "export.onnx"
    export_component(family="vocos", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                     output=str(out), external_data_bytes=0)
    data = tmp_path / "export.onnx.data"
    assert data.is_file() and data.stat().st_size > out.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export.onnx", "export.onnx.data"]
    from ttskiln.onnx_io import artifact_files, save_onnx

    assert artifact_files(out) == [str(out), str(data)]
    mel = np.random.default_rng(0).uniform(-5, 2, (1, 100, 12)).astype(np.float32)
    small = tmp_path / "small.onnx"
    save_onnx(onnx.load(out), small)
    assert artifact_files(small) == [str(small)]
    np.testing.assert_array_equal(ort_session(out).run(None, {"mel": mel})[0], ort_session(small).run(None, {"mel": mel})[0])


def test_export_removes_what_an_interrupted_export_left(tiny_checkpoint, tmp_path):
    out = tmp_path / "export.onnx"
    stale = [tmp_path / ".export-2on0py3j", tmp_path / ".export.onnx.ab12cd34.tmp.d", tmp_path / ".export.onnx.wlb4iaz4.tmp.onnx"]
    for path in stale[:2]:
        path.mkdir()
        (path / "raw.onnx").write_bytes(b"partial")
    stale[2].write_bytes(b"partial")
    keep = tmp_path / ".fp32.onnx.wlb4iaz4.tmp.onnx"  # another output's temporary
    keep.write_bytes(b"")
    export_component(family="vocos", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                     output=str(out), exporter="torchscript")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, keep.name])
