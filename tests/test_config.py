"""Bad input ends with one clear message naming the model and the problem, before any job."""

import shutil

import numpy as np
import pytest
import torch

from conftest import snakemake, tiny_model, upstream_case, write_config
from ttskiln.errors import CheckpointError, ConfigError, InputError
from ttskiln.plan import build_plan


def plan(models, tmp_path, **top):
    return build_plan({"models": models, **top}, tmp_path)


def test_defaults_and_points(tmp_path):
    p = plan({"m": {"family": "vocos", "checkpoint": {"synthetic": "tiny"}}}, tmp_path)
    m = p.models["m"]
    assert [pt.name for pt in m.points] == ["default-opt", "default-max"]
    assert m.point("default-max").sizes == {"batch": 4, "frames": 1024}
    assert m.tolerances["max_abs_err"] == 1e-4
    assert m.checkpoint == "artifacts/m/checkpoint"


def test_seconds_convert_with_hop_and_rate(tmp_path):
    prof = {"s": {"seconds": {"min": 0.1, "opt": 1.0, "max": 2.0}, "extra_points": [{"seconds": 0.5}]}}
    m = plan({"m": {"family": "vocos", "checkpoint": {"synthetic": "tiny"}, "profiles": prof}}, tmp_path).models["m"]
    # tiny preset: 24 kHz, hop 64 -> 375 frames per second.
    assert m.point("s-opt").sizes == {"batch": 1, "frames": 375}
    assert m.point("s-max").sizes["frames"] == 750
    assert m.point("s-x1").sizes["frames"] == 188


@pytest.mark.parametrize(
    "entry, error, message",
    [
        ({"family": "wavenet", "checkpoint": "x"}, ConfigError, "model 'm': unknown family 'wavenet'"),
        ({"family": "vocos", "checkpoint": "nowhere/vocos"}, ConfigError, "model 'm': checkpoint nowhere/vocos not found"),
        (tiny_model(profiles={"p": {"frames": {"min": 64, "opt": 32, "max": 16}}}), ConfigError,
         "model 'm': profile 'p': frames needs min <= opt <= max, got min 64, opt 32, max 16"),
        (tiny_model(profiles={"p": {"frames": {"min": 1, "opt": 2, "max": 3}}}), ConfigError,
         "frames min 1 is below the smallest the model accepts (2)"),
        (tiny_model(profiles={"p": {"heads": {"min": 1, "opt": 2, "max": 3}}}), ConfigError, "unknown axis 'heads'"),
        (tiny_model(profiles={"p": {"frames": {"min": 8, "opt": 9, "max": 10}, "extra_points": [{"frames": 99}]}}),
         ConfigError, "extra point 0 has frames 99, outside min 8 .. max 10"),
        ({"family": "vocos", "checkpoint": {"synthetic": "huge"}}, CheckpointError, "unknown vocos preset 'huge'"),
    ],
)
def test_bad_entries_are_named(tmp_path, entry, error, message):
    with pytest.raises(error) as info:
        plan({"m": entry}, tmp_path)
    assert message in str(info.value)
    assert str(info.value).startswith("model 'm': ")


def test_checkpoint_of_another_architecture(tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(upstream_case("vocos", "mel_center"), ckpt)
    (ckpt / "pytorch_model.bin").chmod(0o644)
    state = torch.load(ckpt / "pytorch_model.bin", weights_only=True)
    state = {k.replace("convnext", "resblocks"): v for k, v in state.items()}
    torch.save(state, ckpt / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"model 'm': .*pytorch_model.bin does not match .*missing keys \[backbone.convnext"):
        plan({"m": {"family": "vocos", "checkpoint": str(ckpt)}}, tmp_path)


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"features": np.zeros((1, 100, 20), np.float32)}, "holds ['features']; component 'vocoder' needs ['mel']"),
        ({"mel": np.zeros((1, 80, 20), np.float32)}, "'mel' has shape [1, 80, 20]; expected [batch, 100, frames]"),
        ({"mel": np.zeros((100, 20), np.float32)}, "'mel' has shape [100, 20]"),
        ({"mel": np.zeros((1, 100, 1), np.float32)}, "frames is 1, below the minimum 2"),
    ],
)
def test_bad_sample_inputs(tmp_path, arrays, message):
    np.savez(tmp_path / "sample.npz", **arrays)
    with pytest.raises(InputError) as info:
        plan({"m": tiny_model(sample_inputs="sample.npz")}, tmp_path)
    assert message in str(info.value)


def test_sample_inputs_add_a_point(tmp_path):
    np.savez(tmp_path / "sample.npz", mel=np.zeros((2, 100, 30), np.float32))
    m = plan({"m": tiny_model(sample_inputs="sample.npz")}, tmp_path).models["m"]
    assert m.point("sample").sizes == {"batch": 2, "frames": 30}


@pytest.mark.parametrize(
    "models, message",
    [
        ({"m": {"family": "vocos"}}, "model 'm': missing required key 'checkpoint'"),
        ({"m": tiny_model(simplifier="onnxopt")}, "model 'm': simplifier: must be one of onnxsim, onnxslim; got 'onnxopt'"),
        ({"m": tiny_model(tolerances={"max_abs": 1})},
         "model 'm': tolerances.max_abs: unknown key 'max_abs' (did you mean 'max_abs_err'?)"),
        ({"m": {"family": "vocos", "checkpoint": "missing/dir"}}, "model 'm': checkpoint missing/dir not found"),
    ],
)
def test_snakemake_stops_before_any_job(tmp_path, models, message):
    write_config(tmp_path, {"models": models})
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if message in line]
    assert lines and lines[0].startswith("ttskiln: ")
    if "missing/dir" not in message:  # schema mistakes say where in the file they are
        assert f"{tmp_path / 'config.yaml'}:" in lines[0]
    assert not (tmp_path / "artifacts").exists()


def test_default_config_plans_the_demo(tmp_path):
    # No --configfile: the repository's config/config.yaml (the demo) is used.
    from conftest import REPO, SNAKEMAKE
    import subprocess

    proc = subprocess.run([SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-n", "--cores", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synthetic_checkpoint" in proc.stdout and "vocos_demo" in proc.stdout
