"""One runner interface and one table of backend names (``ttskiln.runners``)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from ttskiln.errors import ConfigError, TtskilnError
from ttskiln.families import get_family
from ttskiln.metrics import failures, worst
from ttskiln.plan import build_plan
from ttskiln.runners import (
    ALIASES,
    BACKENDS,
    OpenVinoRunner,
    OrtRunner,
    TorchRunner,
    TrtllmRunner,
    artifact_runner,
    backend,
    canonical,
    label,
    openvino_cpu_bf16,
)

VOCOS = get_family("vocos")


# -- the table -----------------------------------------------------------------------------
@pytest.mark.parametrize("alias, name", [
    ("onnxruntime-cpu", "ort-cpu"), ("tensorrt", "trt"), ("pytorch-eager", "torch"), ("onnxruntime-cuda", "ort-cuda"),
    ("onnxruntime-tensorrt", "ort-trt"), ("tensorrt-llm", "trtllm"), ("openvino", "openvino-cpu"),
    ("OpenVINO-bf16", "openvino-cpu-bf16"), ("ort-cpu", "ort-cpu"),
])
def test_aliases_resolve_to_one_canonical_name(alias, name):
    assert canonical(alias) == name
    assert label(alias) == BACKENDS[name].label


def test_every_label_and_alias_names_one_backend():
    spellings = [b.name for b in BACKENDS.values()] + list(ALIASES)
    assert len(spellings) == len(set(spellings))
    for b in BACKENDS.values():
        assert canonical(b.label) == b.name


@pytest.mark.parametrize("name", ["onnx-gpu", "tensorrt2", "", "openvino-gpu\nx"])
def test_an_unknown_backend_is_refused_in_one_line(name):
    with pytest.raises(ConfigError) as info:
        backend(name)
    message = str(info.value)
    assert "\n" not in message and message.startswith("unknown backend") and "ort-cpu" in message


# -- the runners on a tiny model -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ttskiln.export import export_component

    root = tmp_path_factory.mktemp("runners")
    config = VOCOS.synthetic_config("tiny", {})
    VOCOS.write_synthetic(config, root / "ckpt", seed=0)
    export_component(family="vocos", checkpoint=str(root / "ckpt"), options={}, component="vocoder", opset=18,
                     output=str(root / "fp32.onnx"))
    info = VOCOS.describe(config)
    spec = info.component("vocoder")
    feed = VOCOS.make_inputs(info, "vocoder", {"batch": 1, "frames": 48}, np.random.default_rng(0))
    module = VOCOS.component_module(VOCOS.load(root / "ckpt", config), "vocoder")
    with TorchRunner(module, spec.input_names, spec.output_names) as runner:
        expected = runner.infer(feed)
    return {"onnx": str(root / "fp32.onnx"), "spec": spec, "feed": feed, "expected": expected, "root": root}


def _max_err(a, b):
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


@pytest.mark.parametrize("name", ["ort-cpu", "openvino-cpu"])
def test_each_cpu_runner_matches_pytorch(tiny, name):
    runner = artifact_runner(name, tiny["onnx"], threads=1)
    assert not runner.is_active
    with runner:
        got = runner.infer(tiny["feed"])
        again = runner.timed_call(tiny["feed"])()
    assert not runner.is_active and runner.name == label(name)
    assert set(got) == set(tiny["expected"])
    assert all(got[k].shape == tiny["expected"][k].shape for k in got)
    assert _max_err(got, tiny["expected"]) < 1e-4
    assert _max_err(again, got) == 0.0


def test_infer_before_activate_is_an_error(tiny):
    with pytest.raises(TtskilnError, match="before activate"):
        OrtRunner(tiny["onnx"]).infer(tiny["feed"])


def test_ort_runner_keeps_named_outputs_as_ort_values(tiny):
    import onnxruntime as ort

    out = tiny["spec"].output_names[0]
    with OrtRunner(tiny["onnx"], keep=[out]) as runner:
        got = runner.infer(tiny["feed"])
    assert isinstance(got[out], ort.OrtValue)
    np.testing.assert_array_equal(got[out].numpy(), OrtRunner(tiny["onnx"]).activate().infer(tiny["feed"])[out])


def test_openvino_bf16_is_within_its_limits_and_not_fp32(tiny):
    if not openvino_cpu_bf16():
        with pytest.raises(TtskilnError, match="not bf16"):
            OpenVinoRunner(tiny["onnx"], precision="bf16").activate()
        pytest.skip("this CPU has no bf16 support: the bf16 runner refuses to run (checked above)")
    with OpenVinoRunner(tiny["onnx"], precision="fp32", threads=1) as fp32, \
            OpenVinoRunner(tiny["onnx"], precision="bf16", threads=1) as bf16:
        got32, got16 = fp32.infer(tiny["feed"]), bf16.infer(tiny["feed"])
    assert _max_err(got16, got32) > 0  # the hint changed the arithmetic
    limits = {**VOCOS.default_tolerances, **VOCOS.variant_tolerances["fp16"]}
    from ttskiln.validate import compare_outputs

    summary = worst(list(compare_outputs(tiny["expected"], got16, "bf16").values()))
    assert not failures(summary, {k: v for k, v in limits.items() if k in summary}), summary
    assert summary["max_abs_err"] > _max_err(got32, tiny["expected"])


def test_openvino_refuses_an_unknown_precision(tiny):
    with pytest.raises(ConfigError, match="fp32, bf16"):
        OpenVinoRunner(tiny["onnx"], precision="int4")


# -- GPU runners: real code, constructed here; activation needs the toolkit ----------------
def _provider_here(provider: str) -> bool:
    import onnxruntime as ort

    return provider in ort.get_available_providers()


@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt", "trt"])
def test_gpu_runners_say_in_one_line_what_is_missing(tiny, name):
    b = backend(name)
    runner = artifact_runner(name, tiny["onnx"])  # constructing imports no toolkit
    present = _provider_here(b.provider) if b.provider else importlib.util.find_spec("tensorrt") is not None
    if present:
        pytest.skip(f"{b.description} is installed here; the GPU stages exercise it")
    with pytest.raises(TtskilnError) as info:
        runner.activate()
    assert "\n" not in str(info.value) and not runner.is_active


def test_trtllm_runner_says_in_one_line_what_is_missing(tmp_path):
    runner = TrtllmRunner(tmp_path, ["denoised"])
    assert runner.engine == tmp_path / "rank0.engine"
    if importlib.util.find_spec("tensorrt_llm") is not None:
        pytest.skip("tensorrt_llm is installed here; the GPU stages exercise the engine runner")
    with pytest.raises(TtskilnError, match="TensorRT-LLM is not importable") as info:
        runner.activate()
    assert "\n" not in str(info.value)


def test_torch_is_not_a_graph_file_backend(tiny):
    with pytest.raises(ConfigError, match="does not run a graph file"):
        artifact_runner("torch", tiny["onnx"])


# -- the stages and the plan ---------------------------------------------------------------
def test_validation_and_benchmark_records_carry_the_openvino_label(tiny, tmp_path):
    from ttskiln.benchmark import benchmark
    from ttskiln.reference import build_reference
    from ttskiln.validate import validate_artifact

    root = tiny["root"]
    build_reference(family="vocos", checkpoint=str(root / "ckpt"), options={}, component="vocoder", point="p",
                    sizes={"batch": 1, "frames": 32}, seed=0, sample_inputs=None, output=str(tmp_path / "ref.npz"))
    labels = {"model": "m", "component": "vocoder", "variant": "fp32", "point": "p"}
    record = validate_artifact(artifact=tiny["onnx"], reference=str(tmp_path / "ref.npz"),
                               tolerances={"max_abs_err": 1e-4}, output=str(tmp_path / "v.json"), labels=labels,
                               backend="openvino")
    assert record["backend"] == "openvino-cpu" and record["status"] == "ok" and record["passed"], record
    assert json.loads((tmp_path / "v.json").read_text())["backend"] == "openvino-cpu"
    bench = benchmark(backend="openvino-cpu", artifact=tiny["onnx"], reference=str(tmp_path / "ref.npz"), family="vocos",
                      checkpoint=str(root / "ckpt"), options={}, component="vocoder", threads=1, warmup=1, repeats=2,
                      output=str(tmp_path / "b.json"), labels=labels)
    assert bench["backend"] == "openvino-cpu" and bench["status"] == "ok" and bench["p50_ms"] > 0
    assert bench["gflop"] and bench["gflop"] > 0


def _plan(tmp_path, **entry):
    return build_plan({"models": {"m": {"family": "vocos", "checkpoint": {"synthetic": "tiny"}, **entry}}}, tmp_path)


def test_plan_resolves_backends_and_holds_bf16_to_fp16_limits(tmp_path):
    m = _plan(tmp_path, backends=["onnxruntime-cpu", "openvino", "openvino-cpu-bf16"], variants=["fp32", "fp16"],
              tolerances={"bf16": {"snr_db": 35.0}}).models["m"]
    assert m.backends == ("openvino-cpu", "openvino-cpu-bf16")
    assert m.backend_variants("openvino-cpu-bf16") == ("fp32",)
    assert m.backend_variants("ort-cpu") == ("fp32", "fp16")
    bf16 = m.tolerances_for("fp32", "openvino-cpu-bf16")
    assert bf16["max_abs_err"] == m.tolerances_for("fp16")["max_abs_err"] > m.tolerances_for("fp32")["max_abs_err"]
    assert bf16["snr_db"] == 35.0
    assert m.tolerances_for("fp32", "openvino-cpu") == m.tolerances_for("fp32")


@pytest.mark.parametrize("given, message", [
    ("openvino-npu", "model 'm': backends: unknown backend 'openvino-npu' (did you mean 'openvino-cpu'?); "
                     "known: ort-cpu, openvino-cpu, openvino-cpu-bf16"),
    ("openvino-bf61", "model 'm': backends: unknown backend 'openvino-bf61' (did you mean 'openvino-bf16'?); known:"),
    ("xyz", "model 'm': backends: unknown backend 'xyz'; known: ort-cpu, openvino-cpu, openvino-cpu-bf16"),
    ("tensorrt", "model 'm': backends: 'tensorrt' is not a CPU backend of ONNX artifacts (gpu.stages schedules"),
    ("torch", "model 'm': backends: 'torch' is not a CPU backend of ONNX artifacts (PyTorch is always"),
])
def test_plan_refuses_a_backend_in_one_line(tmp_path, given, message):
    with pytest.raises(ConfigError) as info:
        _plan(tmp_path, backends=[given])
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_doctor_and_the_report_environment_name_openvino_and_its_bf16(monkeypatch):
    from ttskiln import doctor
    from ttskiln.environment import library_versions

    assert "openvino" in library_versions()
    assert isinstance(openvino_cpu_bf16(), bool)  # OpenVINO is a dependency here
    monkeypatch.setattr(doctor, "openvino_cpu_bf16", lambda: True)
    assert "OpenVINO CPU fp32" in doctor._openvino() and "OpenVINO CPU bf16" in doctor._openvino()
    monkeypatch.setattr(doctor, "openvino_cpu_bf16", lambda: False)
    assert "OpenVINO CPU bf16" not in doctor._openvino() and "no bf16" in doctor._openvino()
    monkeypatch.setattr(doctor, "openvino_cpu_bf16", lambda: None)
    assert "not installed" in doctor._openvino()
