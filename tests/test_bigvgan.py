import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from conftest import UPSTREAM, upstream_case
from ttskiln.errors import CheckpointError
from ttskiln.export import FORBIDDEN_OPS, export_component
from ttskiln.families import get_family
from ttskiln.families.bigvgan.config import BigVGANConfig
from ttskiln.families.bigvgan.filters import kaiser_sinc_lowpass
from ttskiln.families.bigvgan.weights import fold_weight_norm
from ttskiln.runtime import ort_session, torch_run

BIGVGAN = get_family("bigvgan")
CASE = "v2_small_snakebeta"


@pytest.fixture(scope="module", autouse=True)
def parity_process():
    """The parity command, started when this module begins so that it runs beside the
    in-process tests (it is mostly single-threaded export work); its test collects it."""
    case = UPSTREAM / "bigvgan" / CASE
    if not case.is_dir():
        yield None  # the parity test skips
        return
    proc = subprocess.Popen(
        [sys.executable, "-m", "ttskiln", "parity", str(case)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # leave the other core to this process
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


@pytest.fixture(scope="module")
def upstream():
    case = upstream_case("bigvgan", CASE)
    model = BIGVGAN.load(case, BIGVGAN.read_config(case, {}))
    return case, model, dict(np.load(case / "inputs.npz")), dict(np.load(case / "outputs.npz"))


@pytest.fixture
def case_copy(tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(upstream_case("bigvgan", CASE), dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bigvgan_tiny")
    BIGVGAN.write_synthetic(BIGVGAN.synthetic_config("tiny", {}), path, seed=0)
    return path


def _generator_state(folder):
    return torch.load(folder / "bigvgan_generator.pt", weights_only=True)["generator"]


def _save_generator_state(folder, state):
    torch.save({"generator": state}, folder / "bigvgan_generator.pt")


def _err(got, want):
    return float(np.abs(np.asarray(got) - want).max())


def test_intermediates_and_folded_weight_norm_match_upstream(upstream):
    _, model, inputs, outputs = upstream
    with torch.no_grad():
        x = model.conv_pre(torch.from_numpy(inputs["mel"]))
        assert _err(x, outputs["conv_pre_out"]) < 1e-5
        for i in range(len(model.ups)):
            assert _err(model.ups[i][0](x), outputs[f"ups_{i}_out"]) < 1e-5
            x = model.stage(i, x)
            assert _err(x, outputs[f"stage_{i}_out"]) < 1e-5
        x = model.activation_post(x)
        assert _err(x, outputs["activation_post_out"]) < 1e-5
        assert _err(model.conv_post(x), outputs["conv_post_out"]) < 1e-5
        wav = model(torch.from_numpy(inputs["mel"]))
    # Upstream's output before and after remove_weight_norm: folding at load reproduces both.
    assert wav.shape == outputs["wav"].shape == (1, 1, 24 * 256)
    assert _err(wav, outputs["wav"]) < 1e-5
    assert _err(wav, outputs["wav_weightnorm"]) < 1e-5


def test_resampling_taps_are_the_stored_buffers(upstream, case_copy):
    case, model, inputs, outputs = upstream
    stored = _generator_state(case)
    computed = kaiser_sinc_lowpass()
    taps = [v for k, v in stored.items() if k.endswith(".filter")]
    assert len(taps) == 2 * len(model.anti_aliased_activations())
    assert all(torch.equal(t, computed) for t in taps)
    up = model.activation_post.upsample.kernel
    assert up.shape == (8, 1, 12) and torch.equal(up[3, 0], 2 * computed[0, 0])
    # The loader takes the taps from the file, not from its own computation.
    stored["activation_post.downsample.lowpass.filter"] = torch.flip(computed, dims=[-1]) * 0.5
    _save_generator_state(case_copy, stored)
    changed = BIGVGAN.load(case_copy, BIGVGAN.read_config(case_copy, {}))
    assert torch.equal(changed.activation_post.downsample.kernel[0], 0.5 * torch.flip(computed, dims=[-1])[0])


def test_already_folded_checkpoint_loads(upstream, case_copy):
    _, _, inputs, outputs = upstream
    state = _generator_state(case_copy)
    for key in [k for k in state if k.endswith(".weight_g")]:
        prefix = key.removesuffix(".weight_g")
        state[f"{prefix}.weight"] = fold_weight_norm(state.pop(key), state.pop(f"{prefix}.weight_v"))
    _save_generator_state(case_copy, state)
    model = BIGVGAN.load(case_copy, BIGVGAN.read_config(case_copy, {}))
    with torch.no_grad():
        assert _err(model(torch.from_numpy(inputs["mel"])), outputs["wav"]) < 1e-5


@pytest.mark.parametrize(
    "key", ["resblocks.4.convs2.1.weight_g", "ups.1.0.bias", "resblocks.0.activations.3.downsample.lowpass.filter"]
)
def test_missing_key_is_named(case_copy, key):
    state = _generator_state(case_copy)
    del state[key]
    _save_generator_state(case_copy, state)
    with pytest.raises(CheckpointError, match=rf"1 missing keys \[{key.replace('.', '[.]')}\]"):
        BIGVGAN.check_checkpoint(case_copy, BIGVGAN.read_config(case_copy, {}))


def test_unexpected_key_is_named(case_copy):
    state = _generator_state(case_copy)
    state["conv_post.bias"] = torch.zeros(1)  # config.json says use_bias_at_final: false
    _save_generator_state(case_copy, state)
    with pytest.raises(CheckpointError, match=r"1 unexpected keys \[conv_post\.bias\]"):
        BIGVGAN.check_checkpoint(case_copy, BIGVGAN.read_config(case_copy, {}))


def test_config_that_disagrees_with_the_weights(case_copy):
    data = json.loads((case_copy / "config.json").read_text())
    data["upsample_initial_channel"] = 128
    (case_copy / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError) as info:
        BIGVGAN.load(case_copy, BIGVGAN.read_config(case_copy, {}))
    message = str(info.value)
    assert "285 shape mismatches (conv_pre.bias: expected [128], got [64]; conv_pre.weight_g: expected [128, 1, 1]" in message
    assert "upsample_initial_channel 128" in message and "config.json" in message


def test_v1_config_defaults_to_tanh_and_a_bias(case_copy):
    data = json.loads((case_copy / "config.json").read_text())
    del data["use_tanh_at_final"], data["use_bias_at_final"]
    (case_copy / "config.json").write_text(json.dumps(data))
    config = BIGVGAN.read_config(case_copy, {})
    assert BIGVGAN.describe(config).summary["output"] == "tanh"
    with pytest.raises(CheckpointError, match=r"missing keys \[conv_post\.bias\]"):
        BIGVGAN.check_checkpoint(case_copy, config)


def test_tanh_output_when_configured(upstream, case_copy):
    _, _, inputs, outputs = upstream
    data = json.loads((case_copy / "config.json").read_text())
    data["use_tanh_at_final"] = True
    (case_copy / "config.json").write_text(json.dumps(data))
    model = BIGVGAN.load(case_copy, BIGVGAN.read_config(case_copy, {}))
    with torch.no_grad():
        wav = model(torch.from_numpy(inputs["mel"]))
    assert _err(wav, np.tanh(outputs["conv_post_out"])) < 1e-5


def test_file_without_generator_key_is_refused(case_copy):
    torch.save({"state_dict": _generator_state(case_copy)}, case_copy / "bigvgan_generator.pt")
    with pytest.raises(CheckpointError, match="key 'generator'"):
        BIGVGAN.check_checkpoint(case_copy, BIGVGAN.read_config(case_copy, {}))


def test_bad_config_values_are_named(case_copy):
    data = json.loads((case_copy / "config.json").read_text())
    data["activation"] = "relu"
    (case_copy / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="activation must be one of"):
        BIGVGAN.read_config(case_copy, {})
    data["activation"], data["hop_size"] = "snakebeta", 300
    (case_copy / "config.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="hop_size 300 != product"):
        BIGVGAN.read_config(case_copy, {})


@pytest.mark.parametrize(
    "overrides, folded, weight_norm",
    [
        ({}, 112_414_512, 112_446_289),  # v2 24 kHz 100-band 256x
        ({"num_mels": 80}, 112_199_472, 112_231_249),  # v2 22 kHz 80-band
        ({"num_mels": 128}, 112_715_568, 112_747_345),  # v2 44 kHz 128-band 256x
        (
            {"num_mels": 128, "upsample_rates": [8, 4, 2, 2, 2, 2], "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4]},
            122_152_752,
            122_184_529,
        ),  # v2 44 kHz 128-band 512x
        ({"use_tanh_at_final": None, "use_bias_at_final": None}, 112_414_513, 112_446_290),  # v1 24 kHz
    ],
)
def test_parameter_counts_of_released_configs(overrides, folded, weight_norm):
    config = BIGVGAN.synthetic_config("bigvgan_v2_24khz_100band_256x", overrides)
    info = BIGVGAN.describe(config)
    assert info.summary["parameters"] == folded
    assert info.summary["parameters_weight_norm_layout"] == weight_norm
    assert (info.sample_rate, info.hop_length) == (24000, BigVGANConfig.from_json_dict(config).hop_length)


def test_synthetic_checkpoint_is_in_released_format(tiny_checkpoint):
    assert sorted(p.name for p in tiny_checkpoint.iterdir()) == ["bigvgan_generator.pt", "config.json"]
    raw = torch.load(tiny_checkpoint / "bigvgan_generator.pt", weights_only=True)
    assert list(raw) == ["generator"]
    state = raw["generator"]
    assert not [k for k in state if k.endswith(".weight")]
    assert state["ups.0.0.weight_g"].shape == (32, 1, 1)  # ConvTranspose1d: per input channel
    assert state["ups.0.0.weight_v"].shape == (32, 16, 32)
    assert torch.equal(state["activation_post.upsample.filter"], kaiser_sinc_lowpass())
    config = BIGVGAN.read_config(tiny_checkpoint, {})
    assert config == BIGVGAN.synthetic_config("tiny", {})
    info = BIGVGAN.describe(config)
    model = BIGVGAN.load(tiny_checkpoint, config)
    assert sum(p.numel() for p in model.parameters()) == info.summary["parameters"]
    assert sum(v.numel() for k, v in state.items() if not k.endswith(".filter")) == info.summary["parameters_weight_norm_layout"]
    mel = BIGVGAN.make_inputs(info, "vocoder", {"batch": 1, "frames": 20}, np.random.default_rng(0))["mel"]
    with torch.no_grad():
        wav = model(torch.from_numpy(mel)).numpy()
    assert wav.shape == (1, 1, 20 * 16)
    assert 0.05 < wav.std() < 0.9 and np.mean(np.abs(wav) >= 1.0) < 0.2


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1")  # TorchScript's edge Pad
def test_export_is_dynamic_and_matches_pytorch(tiny_checkpoint, tmp_path, exporter):
    out = tmp_path / "vocoder.onnx"
    export_component(family="bigvgan", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                     output=str(out), exporter=exporter)
    model = onnx.load(out)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & FORBIDDEN_OPS
    modes = {a.s for n in model.graph.node if n.op_type == "Pad" for a in n.attribute if a.name == "mode"}
    assert modes == {b"edge"}
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 100, "frames"]
    config = BIGVGAN.read_config(tiny_checkpoint, {})
    info = BIGVGAN.describe(config)
    module = BIGVGAN.component_module(BIGVGAN.load(tiny_checkpoint, config), "vocoder")
    session = ort_session(out)
    for batch, frames in [(1, 1), (3, 37)]:
        inputs = BIGVGAN.make_inputs(info, "vocoder", {"batch": batch, "frames": frames}, np.random.default_rng(batch))
        (got,) = session.run(None, inputs)
        want = torch_run(module, info.component("vocoder"), inputs)["audio"]
        assert got.shape == want.shape == (batch, frames * 16)
        assert np.abs(got - want).max() < 1e-5


# Last in the module: the command has been running beside the tests above.
def test_parity_command_reproduces_upstream(parity_process):
    upstream_case("bigvgan", CASE)
    stdout, stderr = parity_process.communicate(timeout=300)
    assert parity_process.returncode == 0, stdout + stderr
    lines = stdout.strip().splitlines()
    assert {line.split()[1] for line in lines if line.startswith("wav ")} == {"pytorch", "onnxruntime"}
    assert float(lines[-1].removeprefix("worst max_abs_err=")) <= 1e-4
