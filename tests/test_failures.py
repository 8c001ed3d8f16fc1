"""Verdicts you can trust: a failure is a record with its reason, never a crash that hides the report."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from conftest import FAST_BENCH, snakemake, tiny_model, write_config
from ttskiln.benchmark import benchmark
from ttskiln.errors import CheckpointError, TtskilnError
from ttskiln.families import get_family
from ttskiln.metrics import failures
from ttskiln.precision import quantized_counts, to_fp16, to_int8
from ttskiln.reference import build_reference
from ttskiln.runtime import ort_session
from ttskiln.validate import validate_artifact

VOCOS = get_family("vocos")


def _vocos_folder(path, seed=0):
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", {}), path, seed=seed)
    return path


def test_one_broken_model_among_three_still_gets_a_report_and_the_others_their_gate(tmp_path):
    broken = _vocos_folder(tmp_path / "broken_ckpt")
    state = torch.load(broken / "pytorch_model.bin", weights_only=True)
    state["head.out.weight"] = state["head.out.weight"].to_sparse()  # right keys and shapes: the plan accepts it
    torch.save(state, broken / "pytorch_model.bin")
    profile = {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "frames": {"min": 8, "opt": 16, "max": 16}}}
    write_config(tmp_path, {
        "benchmark": FAST_BENCH,
        "models": {
            "good_a": tiny_model(profiles=profile),
            "good_b": tiny_model(profiles=profile, checkpoint={"synthetic": "tiny", "seed": 2}),
            "broken": {"family": "vocos", "checkpoint": "broken_ckpt", "profiles": profile},
        },
    })
    proc = snakemake(tmp_path, "--keep-going", check=False)
    assert proc.returncode != 0
    # One line per failed job on stderr, naming model and stage; the traceback is in the job's log.
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ttskiln: model 'broken': export failed: ")]
    assert len(lines) == 1 and "RuntimeError" in lines[0], proc.stderr[-3000:]
    log = (tmp_path / "logs/export/broken/vocoder.log").read_text()
    assert "Traceback (most recent call last)" in log and "ttskiln: model 'broken': export failed" in log
    # The report is written over the records that exist, and names the failed jobs.
    summary = json.loads((tmp_path / "reports/summary.json").read_text())
    assert summary["partial"] is True
    assert {r["model"] for r in summary["rows"]} == {"good_a", "good_b"}
    failed = {(f["model"], f["stage"]) for f in summary["failed_jobs"]}
    assert ("broken", "export") in failed and ("broken", "reference") in failed
    assert "Failed jobs" in (tmp_path / "reports/summary.md").read_text()
    assert "broken" in (tmp_path / "reports/index.html").read_text()
    assert (tmp_path / "artifacts/good_a/validation.ok").is_file()
    assert (tmp_path / "artifacts/good_b/validation.ok").is_file()
    assert not (tmp_path / "artifacts/broken/validation.ok").exists()
    # The partial report is stale by construction: once the model is fixed, the report job reruns.
    assert (tmp_path / "reports/summary.json").stat().st_mtime < 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ttskiln.export import export_component
    from ttskiln.simplify import simplify_onnx

    root = tmp_path_factory.mktemp("tiny")
    ckpt = _vocos_folder(root / "ckpt")
    export_component(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", opset=18, output=str(root / "export.onnx"))
    simplify_onnx(source=str(root / "export.onnx"), output=str(root / "fp32.onnx"))
    build_reference(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", point="p",
                    sizes={"batch": 1, "frames": 24}, seed=0, sample_inputs=None, output=str(root / "ref.npz"))
    return root, ckpt


def test_an_artifact_that_cannot_load_is_a_failed_record_not_a_crash(tiny, tmp_path, capsys):
    root, ckpt = tiny
    bad = tmp_path / "fp16.onnx"
    bad.write_bytes(b"not an onnx graph")
    record = validate_artifact(artifact=str(bad), reference=str(root / "ref.npz"), tolerances={"max_abs_err": 1e-2},
                               output=str(tmp_path / "v.json"), labels={"model": "m", "component": "vocoder", "variant": "fp16", "point": "p"})
    assert record["status"] == "error" and record["passed"] is False
    assert record["failures"][0].startswith("cannot run on onnxruntime-cpu: ")
    assert json.loads((tmp_path / "v.json").read_text())["passed"] is False
    assert "FAIL" in capsys.readouterr().out
    timing = benchmark(backend="ort-cpu", artifact=str(bad), reference=str(root / "ref.npz"), family="vocos",
                       checkpoint=str(ckpt), options={}, component="vocoder", threads=1, warmup=0, repeats=3,
                       output=str(tmp_path / "b.json"), labels={"model": "m", "component": "vocoder", "variant": "fp16", "point": "p"})
    assert timing["status"] == "error" and timing["p50_ms"] is None and "cannot run" in timing["error"]


def test_validation_log_holds_the_verdict_with_every_metric_and_limit(tiny, tmp_path, capsys):
    root, _ = tiny
    record = validate_artifact(artifact=str(root / "fp32.onnx"), reference=str(root / "ref.npz"),
                               tolerances={"max_abs_err": 1e-12, "cosine": 0.9}, output=str(tmp_path / "v.json"),
                               labels={"model": "m", "component": "vocoder", "variant": "fp32", "point": "p"})
    out = capsys.readouterr().out
    assert not record["passed"]
    assert "FAIL" in out and "max_abs_err" in out and "limit <= 1e-12" in out and "limit >= 0.9" in out
    assert "PASSED" not in out and "Pass Rate" not in out  # Polygraphy's infinite-tolerance verdict stays out


def test_non_finite_limits_and_values_never_pass():
    assert failures({"max_abs_err": 0.5}, {"max_abs_err": float("nan")})
    assert failures({"snr_db": float("nan")}, {"snr_db": 10.0})
    assert failures({"max_abs_err": float("inf")}, {"max_abs_err": 1.0})
    assert not failures({"max_abs_err": 0.5}, {"max_abs_err": 1.0})


def test_a_non_finite_reference_is_refused_naming_point_and_output(tmp_path):
    ckpt = _vocos_folder(tmp_path / "ckpt")
    state = torch.load(ckpt / "pytorch_model.bin", weights_only=True)
    state["head.out.bias"][0] = float("nan")
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"component 'vocoder' at point 'p-opt' is not finite .*output 'audio'"):
        build_reference(family="vocos", checkpoint=str(ckpt), options={}, component="vocoder", point="p-opt",
                        sizes={"batch": 1, "frames": 16}, seed=0, sample_inputs=None, output=str(tmp_path / "r.npz"))
    assert not (tmp_path / "r.npz").exists()


def test_dynamic_int8_of_a_convolution_graph_is_refused_not_published(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4, "t"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 4, 3], np.random.default_rng(0).standard_normal(48).astype(np.float32).tolist())
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1], name="conv")], "g", [x], [y], [w])
    src = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10), src)
    with pytest.raises(TtskilnError, match=r"quantized none of the graph's 1 product ops \(Conv x1\).*static"):
        to_int8(source=str(src), output=str(tmp_path / "int8.onnx"), method="dynamic", op_types=None, exclude_nodes=[], calibration=[])
    assert not (tmp_path / "int8.onnx").exists()
    ref = tmp_path / "ref.npz"
    np.savez(ref, **{"input.x": np.random.default_rng(1).standard_normal((1, 4, 16)).astype(np.float32)})
    done = to_int8(source=str(src), output=str(tmp_path / "int8.onnx"), method="static", op_types=None, exclude_nodes=[], calibration=[str(ref)])
    assert done["quantized"] == "1 of 1" == {p.key: p.value for p in onnx.load(tmp_path / "int8.onnx").metadata_props}["ttskiln.quantized"]
    assert quantized_counts(str(tmp_path / "int8.onnx")) == (1, 1)
    assert quantized_counts(str(src)) == (0, 1)


def test_fp16_with_an_initializer_shared_by_kept_and_converted_nodes_loads(tmp_path):
    """BigVGAN's shape: one scalar feeds kept-fp32 Pow nodes and a converted Div (onnxsim merges equal constants)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    nodes = [helper.make_node("Pow", ["x", "two"], ["p"], name="pow"),
             helper.make_node("Div", ["p", "two"], ["d"], name="div"),
             helper.make_node("Add", ["d", "x"], ["y"], name="add")]
    src = tmp_path / "shared.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [two]), opset_imports=[helper.make_opsetid("", 18)], ir_version=10), src)
    out = tmp_path / "fp16.onnx"
    kept = to_fp16(source=str(src), output=str(out), keep_fp32_ops=["Pow"], keep_fp32_nodes=[])
    assert kept["ops"] == ["Pow"] and kept["repair_casts"] >= 1
    data = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 4.0]], np.float32)
    got = ort_session(out).run(None, {"x": data})[0]
    assert got.dtype == np.float32 and np.allclose(got, data**2 / 2 + data, atol=1e-2)


def test_a_keep_pattern_that_selects_nothing_fails_the_stage_naming_it(tiny, tmp_path):
    root, _ = tiny
    with pytest.raises(TtskilnError, match=r"keep_fp32_nodes pattern 'after:heads\.istft\.\*' selects no node"):
        to_fp16(source=str(root / "fp32.onnx"), output=str(tmp_path / "fp16.onnx"), keep_fp32_ops=[], keep_fp32_nodes=["after:heads.istft.*"])
    assert not (tmp_path / "fp16.onnx").exists()
