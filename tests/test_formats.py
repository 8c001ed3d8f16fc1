"""Checkpoint formats users have: weight norm saved with torch's parametrizations, VITS without
a language embedding or with speaker ids, Vocos with AdaLayerNorm (the EnCodec variant)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ttskiln.errors import CheckpointError
from ttskiln.families import get_family
from ttskiln.families.weight_norm import fold_weight_norm, legacy_layout

BIGVGAN = get_family("bigvgan")
SOVITS = get_family("sovits_v4")
VITS = get_family("vits")

PARAMETRIZED = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}


def _to_parametrizations(state: dict) -> dict:
    """The key layout ``torch.nn.utils.parametrizations.weight_norm`` saves (g, v unchanged)."""
    out = {}
    for key, value in state.items():
        for legacy, param in PARAMETRIZED.items():
            if key.endswith(legacy):
                key = key[: -len(legacy)] + param
        out[key] = value
    return out


# -- weight norm saved with parametrizations ---------------------------------------------------
def test_shared_fold_matches_torch_parametrization():
    conv = torch.nn.ConvTranspose1d(6, 4, 5, stride=2)
    torch.nn.utils.parametrizations.weight_norm(conv)
    with torch.no_grad():
        conv.parametrizations.weight.original0.mul_(torch.linspace(0.5, 2.0, 6).view(6, 1, 1))
    saved = {f"up.{k}": v.detach().clone() for k, v in conv.state_dict().items()}
    assert "up.parametrizations.weight.original0" in saved
    folded = fold_weight_norm(saved, "test")
    torch.testing.assert_close(folded["up.weight"], conv.weight.detach())
    assert set(folded) == {"up.weight", "up.bias"}
    assert set(legacy_layout(saved, "test")) == {"up.weight_g", "up.weight_v", "up.bias"}
    with pytest.raises(CheckpointError, match=r"weight-norm layer up lacks its weight_g"):
        fold_weight_norm({"up.parametrizations.weight.original1": saved["up.parametrizations.weight.original1"]}, "test")


def test_bigvgan_loads_parametrized_weight_norm(tmp_path):
    config = BIGVGAN.synthetic_config("tiny", {})
    legacy, param = tmp_path / "legacy", tmp_path / "param"
    BIGVGAN.write_synthetic(config, legacy, seed=3)
    param.mkdir()
    (param / "config.json").write_bytes((legacy / "config.json").read_bytes())
    data = torch.load(legacy / "bigvgan_generator.pt", weights_only=True)
    assert any(k.endswith(".weight_g") for k in data["generator"])
    torch.save({"generator": _to_parametrizations(data["generator"])}, param / "bigvgan_generator.pt")
    want = BIGVGAN.load(legacy, config).state_dict()
    got = BIGVGAN.load(param, config).state_dict()  # was: refused, blaming config.json
    assert set(got) == set(want)
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=0, atol=0)


def test_sovits_v4_loads_a_generator_saved_with_parametrizations(tmp_path):
    folded = tmp_path / "folded"
    SOVITS.write_synthetic(SOVITS.synthetic_config("tiny", {}), folded, seed=1)
    config = SOVITS.read_config(folded, {})
    model = SOVITS.load(folded, config)
    # A training-layout generator: torch's own parametrization on every convolution.
    for module in model.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            torch.nn.utils.parametrizations.weight_norm(module)
    state = model.state_dict()
    assert any(k.endswith("parametrizations.weight.original1") for k in state)
    (tmp_path / "train").mkdir()
    torch.save(state, tmp_path / "train" / "vocoder.pth")
    again = SOVITS.load(tmp_path / "train", SOVITS.read_config(tmp_path / "train", {}))
    mel = SOVITS.make_inputs(SOVITS.describe(config), "vocoder", {"batch": 1, "frames": 6}, np.random.default_rng(0))["mel"]
    ref = SOVITS.load(folded, config)
    with torch.no_grad():
        torch.testing.assert_close(again(torch.from_numpy(mel)), ref(torch.from_numpy(mel)), rtol=1e-5, atol=1e-6)


def test_vits_loads_parametrized_weight_norm(tmp_path):
    config = VITS.synthetic_options(VITS.synthetic_config("tiny", {}), {"speaker_encoder": False})
    VITS.write_synthetic(config, tmp_path, seed=2)
    path = tmp_path / "model_file.pth"
    trainer = torch.load(path, weights_only=True)
    want = VITS.load(tmp_path, config).state_dict()
    trainer["model"] = _to_parametrizations(trainer["model"])
    assert any(k.endswith("original0") for k in trainer["model"])
    torch.save(trainer, path)
    got = VITS.load(tmp_path, config).state_dict()
    for key in want:
        torch.testing.assert_close(got[key], want[key])
