"""GPU stages on a machine without a GPU: commands, DAG and paths by dry run, and the skip path."""

import shutil

import pytest

from conftest import FAST_BENCH, planned_jobs, tiny_model, write_config
from ttskiln.engines import BuilderSettings, build_engine, convert_command
from ttskiln.errors import TtskilnError
from ttskiln.gpu import Machine, engine_tag
from ttskiln.plan import build_plan, gpu_plan

TAG = "nvidia-h100-80gb-hbm3-trt10.7.0"
NO_GPU = shutil.which("nvidia-smi") is None


def _config(**gpu):
    model = tiny_model(variants=["fp32", "fp16"])
    model["profiles"]["q"] = {"frames": {"min": 8, "opt": 48, "max": 96}}
    return {"benchmark": FAST_BENCH, "gpu": gpu, "models": {"tiny": model}}


def test_convert_command_from_yaml(tmp_path):
    plan = build_plan(_config(stages="on", engine_tag=TAG, tensorrt={"builder_optimization_level": 5, "workspace_mb": 2048,
                                                                        "hardware_compatibility_level": "ampere+"}), tmp_path)
    shapes = plan.models["tiny"].engine_shapes("vocoder")
    cmd = convert_command(onnx_path="a.onnx", engine_path="a.plan", variant="fp16", profiles=shapes,
                          settings=BuilderSettings.from_config(plan.gpu.builder), timing_cache="t.cache")
    assert cmd[1:] == [
        "-m", "polygraphy", "convert", "a.onnx", "--convert-to", "trt", "-o", "a.plan",
        "--trt-min-shapes", "mel:[1,100,8]", "--trt-opt-shapes", "mel:[1,100,24]", "--trt-max-shapes", "mel:[2,100,40]",
        "--trt-min-shapes", "mel:[1,100,8]", "--trt-opt-shapes", "mel:[1,100,48]", "--trt-max-shapes", "mel:[1,100,96]",
        "--strongly-typed", "--builder-optimization-level", "5", "--hardware-compatibility-level", "ampere+",
        "--pool-limit", "workspace:2048M", "--load-timing-cache", "t.cache", "--save-timing-cache", "t.cache",
    ]
    fp32 = convert_command(onnx_path="a.onnx", engine_path="a.plan", variant="fp32", profiles=shapes[:1],
                           settings=BuilderSettings(), timing_cache="t.cache")
    assert "--strongly-typed" not in fp32 and "--hardware-compatibility-level" not in fp32


def test_forced_gpu_stages_plan_engines_per_gpu_and_toolchain(tmp_path):
    write_config(tmp_path, _config(stages="on", engine_tag=TAG))
    jobs = planned_jobs(tmp_path)
    engines = sorted(out for rule, out in jobs if rule == "trt_engine")
    assert engines == [f"artifacts/tiny/vocoder/trt/{TAG}/fp16.plan", f"artifacts/tiny/vocoder/trt/{TAG}/fp32.plan"]
    rules = {rule for rule, _ in jobs}
    assert {"validate_trt", "benchmark_trt"} <= rules
    backends = {out.split("/benchmark/")[1].split("/")[0] for rule, out in jobs if rule == "benchmark_onnx"}
    assert backends == {"ort-cpu", "ort-cuda", "ort-trt"}
    # Another GPU model or TensorRT version: new engine paths, never the old engines.
    other = engine_tag("NVIDIA A10G", "10.8.0")
    write_config(tmp_path, _config(stages="on", engine_tag=other))
    assert all(other in out for rule, out in planned_jobs(tmp_path) if rule == "trt_engine")


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU: the skip path does not apply")
def test_auto_skips_with_one_line_per_stage(tmp_path):
    plan = gpu_plan({})
    assert not plan.tensorrt and plan.ort_backends == ()
    assert plan.skipped["tensorrt_engines"].startswith("no CUDA device")
    write_config(tmp_path, _config())
    rules = {rule for rule, _ in planned_jobs(tmp_path)}
    assert not rules & {"trt_engine", "validate_trt", "benchmark_trt"}


def test_stages_off_schedules_nothing_on_gpu(tmp_path):
    plan = gpu_plan({"stages": "off"})
    assert not plan.tensorrt and plan.skipped["tensorrt_engines"] == "gpu.stages is off in the config"


def test_machine_reports_what_is_missing():
    gpu_without_trt = Machine(("NVIDIA L4",), "560.1", None, None, ("CPUExecutionProvider",))
    skipped = gpu_without_trt.skipped_stages()
    assert skipped["tensorrt_engines"] == "the tensorrt Python package is not installed"
    assert "CUDAExecutionProvider" in skipped["ort-cuda"]
    assert gpu_without_trt.tag() == "nvidia-l4-trtnone"


@pytest.mark.skipif(not NO_GPU, reason="TensorRT may be installed here")
def test_engine_build_without_tensorrt_is_a_clear_error(tmp_path):
    engine = tmp_path / "x.plan"
    with pytest.raises(TtskilnError, match="TensorRT is not installed"):
        build_engine(command=["true"], engine=str(engine), timing_cache=str(tmp_path / "t.cache"))
    assert not engine.exists()


def test_doctor_lists_stages(capsys):
    from ttskiln.doctor import main

    assert main() == 0
    out = capsys.readouterr().out
    assert "CUDA devices:" in out and "run   export" in out
    if NO_GPU:
        assert "skip  tensorrt_engines: no CUDA device" in out


def _f5_config(**gpu):
    return {
        "benchmark": FAST_BENCH,
        "gpu": gpu,
        "models": {
            "voc": {"family": "vocos", "checkpoint": {"synthetic": "tiny", "seed": 1,
                                                     "overrides": {"n_fft": 1024, "hop_length": 256, "padding": "center"}},
                    "profiles": {"p": {"frames": {"min": 8, "opt": 16, "max": 16}}}},
            "f5": {"family": "f5tts", "checkpoint": {"synthetic": "tiny", "seed": 0}, "options": {"vocoder": "voc"},
                   "profiles": {"p": {"batch": {"min": 2, "opt": 2, "max": 2}, "frames": {"min": 24, "opt": 24, "max": 32}}},
                   "trtllm": {"dtype": "float16", "max_batch_size": 4, "min_frames": 16, "opt_frames": 24, "max_frames": 64}},
        },
    }


TRTLLM_TAG = "nvidia-h100-80gb-hbm3-trtllm0.16.0"


def test_trtllm_stages_forced_on(tmp_path):
    write_config(tmp_path, _f5_config(stages="on", trtllm_tag=TRTLLM_TAG))
    jobs = planned_jobs(tmp_path)
    outs = {rule: sorted(out for r, out in jobs if r == rule) for rule in ("trtllm_checkpoint", "trtllm_engine", "trtllm_synth")}
    assert outs["trtllm_checkpoint"] == ["artifacts/f5/trtllm/checkpoint/float16"]
    assert outs["trtllm_engine"] == [f"artifacts/f5/trtllm/{TRTLLM_TAG}/float16/engine"]
    # One synth chain over the engine per point (opt 24 and max 32 frames).
    assert outs["trtllm_synth"] == [f"artifacts/f5/trtllm/{TRTLLM_TAG}/float16/synth/p-max",
                                    f"artifacts/f5/trtllm/{TRTLLM_TAG}/float16/synth/p-opt"]
    # Another GPU or TensorRT-LLM version: a new engine path.
    write_config(tmp_path, _f5_config(stages="on", trtllm_tag="nvidia-l4-trtllm0.16.0"))
    assert [out for r, out in planned_jobs(tmp_path) if r == "trtllm_engine"] == [
        "artifacts/f5/trtllm/nvidia-l4-trtllm0.16.0/float16/engine"]


def test_trtllm_off_converts_only(tmp_path):
    write_config(tmp_path, _f5_config(stages="off"))
    rules = {r for r, _ in planned_jobs(tmp_path)}
    assert "trtllm_checkpoint" in rules and not rules & {"trtllm_engine", "trtllm_synth"}


def test_trtllm_settings_are_checked_at_plan_time(tmp_path):
    from ttskiln.errors import ConfigError

    config = _f5_config(stages="off")
    config["models"]["f5"]["trtllm"]["max_frames"] = 28  # below the profile's 32-frame point
    with pytest.raises(ConfigError, match="model 'f5': point p-max .* outside the TensorRT-LLM engine profile"):
        build_plan(config, tmp_path)
    config = _f5_config(stages="off")
    config["models"]["voc"]["trtllm"] = {}
    with pytest.raises(ConfigError, match="model 'voc': trtllm is for f5tts models"):
        build_plan(config, tmp_path)


def test_a_node_refuses_an_engine_tagged_for_another_gpu(monkeypatch):
    from ttskiln import gpu

    monkeypatch.setattr(gpu, "detect", lambda: Machine(("NVIDIA A10G",), "550", "10.7.0", "0.16.0", ()))
    gpu.check_node("nvidia-a10g-trt10.7.0", "engine")
    gpu.check_node("nvidia-a10g-trtllm0.16.0", "trtllm")
    with pytest.raises(TtskilnError, match="this node is 'nvidia-a10g-trt10.7.0', but the engine path is tagged 'nvidia-h100"):
        gpu.check_node("nvidia-h100-80gb-hbm3-trt10.7.0", "engine")
    with pytest.raises(TtskilnError, match="tagged 'nvidia-a10g-trtllm0.17.0'"):
        gpu.check_node("nvidia-a10g-trtllm0.17.0", "trtllm")
