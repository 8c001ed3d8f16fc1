import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import upstream_case, vocos_cases
from ttskiln.errors import CheckpointError
from ttskiln.families import get_family
from ttskiln.families.vocos.config import make_config_dict
from ttskiln.ops.mel import mel_filterbank

VOCOS = get_family("vocos")


@pytest.fixture
def case_copy(tmp_path):
    src = upstream_case("vocos", "mel_center")
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.mark.parametrize("case", vocos_cases(), ids=lambda p: p.name)
def test_intermediates_match_upstream(case):
    config = VOCOS.read_config(case, {})
    model = VOCOS.load(case, config)
    inputs, outputs = np.load(case / "inputs.npz"), np.load(case / "outputs.npz")
    mel = torch.from_numpy(inputs["features_input"])
    with torch.no_grad():
        hidden = model.backbone(mel)
        real, imag = model.head.spectrum(hidden)
        audio = model.decode(mel)
    assert np.abs(hidden.numpy() - outputs["backbone_out"]).max() < 1e-5
    np.testing.assert_allclose(real.transpose(1, 2).numpy(), outputs["head_spec_real"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(imag.transpose(1, 2).numpy(), outputs["head_spec_imag"], rtol=1e-5, atol=1e-5)
    assert audio.shape == outputs["audio"].shape
    assert np.abs(audio.numpy() - outputs["audio"]).max() < 1e-5


def test_describe_counts_released_parameters():
    info = VOCOS.describe(VOCOS.synthetic_config("vocos-mel-24khz", {}))
    assert info.summary["parameters"] == 13_531_650
    assert (info.sample_rate, info.hop_length) == (24000, 256)


def test_synthetic_checkpoint_is_in_released_format(tmp_path):
    config = VOCOS.synthetic_config("tiny", {})
    VOCOS.write_synthetic(config, tmp_path, seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "pytorch_model.bin"]
    state = torch.load(tmp_path / "pytorch_model.bin", weights_only=True)
    model = VOCOS.load(tmp_path, VOCOS.read_config(tmp_path, {}))
    assert set(state) == set(model.state_dict())
    assert sum(p.numel() for p in model.parameters()) == VOCOS.describe(config).summary["parameters"]
    fb = state["feature_extractor.mel_spec.mel_scale.fb"].numpy()
    np.testing.assert_allclose(fb, mel_filterbank(24000, 256, 100), atol=0)


def test_mel_filterbank_matches_released_buffer():
    case = upstream_case("vocos", "mel_center")
    fb = torch.load(case / "pytorch_model.bin", weights_only=True)["feature_extractor.mel_spec.mel_scale.fb"]
    assert np.abs(fb.numpy() - mel_filterbank(24000, 1024, 100)).max() < 1e-5


def test_missing_key_is_named(case_copy):
    state = torch.load(case_copy / "pytorch_model.bin", weights_only=True)
    del state["backbone.convnext.1.gamma"]
    torch.save(state, case_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"missing keys \[backbone\.convnext\.1\.gamma\]"):
        VOCOS.load(case_copy, VOCOS.read_config(case_copy, {}))


def test_unexpected_key_is_named(case_copy):
    state = torch.load(case_copy / "pytorch_model.bin", weights_only=True)
    state["backbone.extra.weight"] = torch.zeros(3)
    torch.save(state, case_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"unexpected keys \[backbone\.extra\.weight\]"):
        VOCOS.check_checkpoint(case_copy, VOCOS.read_config(case_copy, {}))


def test_config_that_disagrees_with_weights(case_copy):
    (case_copy / "config.yaml").write_text(yaml.safe_dump(make_config_dict(dim=128, intermediate_dim=192, num_layers=2)))
    with pytest.raises(CheckpointError, match=r"shape mismatches \(backbone\.embed\.weight: expected \[128, 100, 7\], got \[64, 100, 7\]"):
        VOCOS.check_checkpoint(case_copy, VOCOS.read_config(case_copy, {}))


def test_wrapped_state_dict_is_rejected(case_copy):
    state = torch.load(case_copy / "pytorch_model.bin", weights_only=True)
    torch.save({"state_dict": state}, case_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="non-tensor entries"):
        VOCOS.check_checkpoint(case_copy, VOCOS.read_config(case_copy, {}))


class _Boom:
    def __reduce__(self):
        return (Path("/tmp/ttskiln-pickle-ran").touch, ())


def test_pickle_code_never_runs(case_copy, tmp_path):
    marker = Path("/tmp/ttskiln-pickle-ran")
    marker.unlink(missing_ok=True)
    with open(case_copy / "pytorch_model.bin", "wb") as fh:
        pickle.dump({"x": _Boom()}, fh)
    with pytest.raises(CheckpointError, match="weights-only"):
        VOCOS.check_checkpoint(case_copy, VOCOS.read_config(case_copy, {}))
    assert not marker.exists()


def test_not_a_vocos_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="config.yaml"):
        VOCOS.read_config(tmp_path, {})


def test_adanorm_config_with_plain_layernorm_weights_names_the_keys(case_copy):
    data = yaml.safe_load((case_copy / "config.yaml").read_text())
    data["backbone"]["init_args"]["adanorm_num_embeddings"] = 4
    (case_copy / "config.yaml").write_text(yaml.safe_dump(data))
    config = VOCOS.read_config(case_copy, {})  # AdaLayerNorm is supported; these weights lack its tables
    with pytest.raises(CheckpointError, match=r"missing keys \[backbone\.norm\.scale\.weight"):
        VOCOS.check_checkpoint(case_copy, config)
