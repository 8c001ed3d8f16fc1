import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from conftest import UPSTREAM, upstream_case
from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.export import FORBIDDEN_OPS, export_component
from ttskiln.families import get_family
from ttskiln.families.sovits_v4.config import RELEASED_V4
from ttskiln.parity import load_case
from ttskiln.runtime import ort_session, torch_run

SOVITS = get_family("sovits_v4")
CASE = "v4_small"


@pytest.fixture(scope="module", autouse=True)
def parity_process():
    """The parity command, started when this module begins so that it runs beside the
    in-process tests (it is mostly single-threaded export work); its test collects it."""
    case = UPSTREAM / "sovits_v4" / CASE
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
    case = load_case(upstream_case("sovits_v4", CASE))
    config = SOVITS.parity_config(case)
    return case, config, SOVITS.load(case.directory, config)


@pytest.fixture
def case_copy(tmp_path):
    dst = tmp_path / "ckpt"
    shutil.copytree(upstream_case("sovits_v4", CASE), dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("sovits_tiny")
    SOVITS.write_synthetic(SOVITS.synthetic_config("tiny", {}), path, seed=0)
    return path


def _err(got, want):
    return float(np.abs(np.asarray(got) - want).max())


def test_intermediates_match_upstream(upstream):
    case, _, model = upstream
    out = case.outputs
    with torch.no_grad():
        x = model.conv_pre(torch.from_numpy(case.inputs["mel"]))
        assert _err(x, out["conv_pre_out"]) < 1e-5
        for i in range(len(model.ups)):
            assert _err(F.leaky_relu(x, 0.1), out[f"ups_{i}_in"]) < 1e-5
            assert _err(model.ups[i](F.leaky_relu(x, 0.1)), out[f"ups_{i}_out"]) < 1e-5
            x = model.stage(i, x)
        assert _err(F.leaky_relu(x, 0.01), out["conv_post_in"]) < 1e-5
        assert _err(model.logits(x), out["conv_post_out"]) < 1e-5
        wav = model(torch.from_numpy(case.inputs["mel"]))
    assert wav.shape == out["wav"].shape == (1, 1, 12 * 480)
    assert _err(wav, out["wav"]) < 1e-5


def test_normalized_mel_component_applies_denorm_spec(upstream):
    case, config, model = upstream
    assert [c.name for c in SOVITS.describe(config).components] == ["vocoder", "vocoder_normalized"]
    module = SOVITS.component_module(model, "vocoder_normalized")
    with torch.no_grad():
        mel = module.denormalize(torch.from_numpy(case.inputs["mel_norm"]))
        wav = module(torch.from_numpy(case.inputs["mel_norm"]))
    assert _err(mel, case.inputs["mel"]) == 0.0
    assert _err(wav, case.outputs["wav"][:, 0]) < 1e-5


def test_describe_counts_released_parameters(upstream):
    _, config, _ = upstream
    assert SOVITS.describe(config).summary["parameters"] == 77_939
    info = SOVITS.describe(SOVITS.synthetic_config("sovits_v4", {}))
    assert info.summary["parameters"] == 14_425_409
    assert (info.sample_rate, info.hop_length) == (48000, 480)
    assert [c.name for c in info.components] == ["vocoder"]


def test_options_choose_the_config(case_copy, tiny_checkpoint):
    assert SOVITS.read_config(tiny_checkpoint, {}) == SOVITS.synthetic_config("tiny", {})
    assert SOVITS.read_config(tiny_checkpoint / "vocoder.pth", {"preset": "sovits_v4"})["upsample_initial_channel"] == 512
    # The fixture matches no preset: the released config is the default, options fix it.
    assert SOVITS.read_config(case_copy, {})["upsample_initial_channel"] == 512
    config = SOVITS.read_config(case_copy, {"config": {"upsample_initial_channel": 32}, "normalized_input": True})
    assert config["upsample_initial_channel"] == 32 and config["normalized_input"] is True
    SOVITS.check_checkpoint(case_copy, config)
    with pytest.raises(ConfigError, match=r"unknown sovits_v4 options \['sample_rate'\]"):
        SOVITS.read_config(case_copy, {"sample_rate": 24000})
    with pytest.raises(ConfigError, match="preset 'v3' is unknown"):
        SOVITS.read_config(case_copy, {"preset": "v3"})
    with pytest.raises(ConfigError, match="gin_channels"):
        SOVITS.read_config(case_copy, {"config": {"gin_channels": 512}})


def test_options_that_disagree_with_the_weights(case_copy):
    with pytest.raises(CheckpointError) as info:
        SOVITS.load(case_copy, SOVITS.read_config(case_copy, {}))
    message = str(info.value)
    assert "shape mismatches (conv_pre.weight: expected [512, 100, 7], got [32, 100, 7]" in message
    assert "set options.preset" in message


def test_missing_key_is_named(case_copy, upstream):
    _, config, _ = upstream
    state = torch.load(case_copy / "vocoder.pth", weights_only=True)
    del state["resblocks.7.convs2.1.bias"]
    torch.save(state, case_copy / "vocoder.pth")
    with pytest.raises(CheckpointError, match=r"1 missing keys \[resblocks\.7\.convs2\.1\.bias\]"):
        SOVITS.check_checkpoint(case_copy, config)


def test_training_layout_is_folded_at_load(case_copy, upstream):
    _, config, _ = upstream
    state = torch.load(case_copy / "vocoder.pth", weights_only=True)
    weight = state.pop("ups.0.weight")
    # v = 3 * weight, g = ||weight||: folding gives back weight (ConvTranspose1d: norm per input channel).
    state["ups.0.weight_g"], state["ups.0.weight_v"] = weight.norm(dim=(1, 2), keepdim=True), 3 * weight
    torch.save(state, case_copy / "vocoder.pth")
    model = SOVITS.load(case_copy, config)
    torch.testing.assert_close(model.state_dict()["ups.0.weight"], weight.float())
    del state["ups.0.weight_v"]
    torch.save(state, case_copy / "vocoder.pth")
    with pytest.raises(CheckpointError, match=r"weight-norm layer ups\.0 lacks its weight_v"):
        SOVITS.check_checkpoint(case_copy, config)


def test_synthetic_checkpoint_is_in_released_format(tiny_checkpoint):
    assert [p.name for p in tiny_checkpoint.iterdir()] == ["vocoder.pth"]
    state = torch.load(tiny_checkpoint / "vocoder.pth", weights_only=True)
    config = SOVITS.read_config(tiny_checkpoint, {})
    info = SOVITS.describe(config)
    model = SOVITS.load(tiny_checkpoint, config)
    assert set(state) == set(model.state_dict())
    assert not [k for k in state if k.endswith(("weight_g", "weight_v"))]
    assert sum(v.numel() for v in state.values()) == info.summary["parameters"]
    mel = SOVITS.make_inputs(info, "vocoder", {"batch": 1, "frames": 6}, np.random.default_rng(0))["mel"]
    with torch.no_grad():
        wav = model(torch.from_numpy(mel)).numpy()
    assert wav.shape == (1, 1, 6 * 480)
    assert 0.05 < wav.std() < 0.9 and np.mean(np.abs(wav) > 0.99) < 0.2


def test_released_layout_has_194_keys():
    from ttskiln.families.sovits_v4.config import SovitsVocoderConfig
    from ttskiln.families.sovits_v4.modules import SovitsGenerator

    with torch.device("meta"):
        model = SovitsGenerator(SovitsVocoderConfig.from_dict(dict(RELEASED_V4)))
    assert len(model.state_dict()) == 194


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.filterwarnings("ignore:Constant folding - Only steps=1")  # TorchScript's edge Pad
def test_export_is_dynamic_and_matches_pytorch(tiny_checkpoint, tmp_path, exporter):
    out = tmp_path / "vocoder.onnx"
    export_component(family="sovits_v4", checkpoint=str(tiny_checkpoint), options={}, component="vocoder", opset=18,
                     output=str(out), exporter=exporter)
    model = onnx.load(out)
    assert not {n.op_type for n in model.graph.node} & FORBIDDEN_OPS
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 100, "frames"]
    config = SOVITS.read_config(tiny_checkpoint, {})
    info = SOVITS.describe(config)
    module = SOVITS.component_module(SOVITS.load(tiny_checkpoint, config), "vocoder")
    session = ort_session(out)
    for batch, frames in [(1, 1), (3, 13)]:
        inputs = SOVITS.make_inputs(info, "vocoder", {"batch": batch, "frames": frames}, np.random.default_rng(batch))
        (got,) = session.run(None, inputs)
        want = torch_run(module, info.component("vocoder"), inputs)["audio"]
        assert got.shape == want.shape == (batch, frames * 480)
        assert np.abs(got - want).max() < 1e-5


# Last in the module: the command has been running beside the tests above.
def test_parity_command_covers_both_inputs(parity_process):
    upstream_case("sovits_v4", CASE)
    stdout, stderr = parity_process.communicate(timeout=300)
    assert parity_process.returncode == 0, stdout + stderr
    lines = stdout.strip().splitlines()
    # mel -> wav and mel_norm -> wav, each on PyTorch and ONNX Runtime.
    assert sorted(line.split()[1] for line in lines if line.startswith("wav ")) == ["onnxruntime"] * 2 + ["pytorch"] * 2
    assert float(lines[-1].removeprefix("worst max_abs_err=")) <= 1e-4
