"""The vocoder base (mel -> audio) and the one option check every family shares."""

import numpy as np
import pytest

from ttskiln.errors import ConfigError
from ttskiln.families import FAMILIES
from ttskiln.families.vocoder import COMPONENT, VocoderFamily
from ttskiln.plan import build_plan

VOCODERS = ("vocos", "bigvgan", "sovits_v4")


@pytest.mark.parametrize("name", VOCODERS)
def test_vocoder_families_share_the_base(name):
    family = FAMILIES[name]
    assert isinstance(family, VocoderFamily)
    info = family.describe(family.synthetic_config("tiny", {}))
    assert info.components[0].name == COMPONENT
    assert info.components[0].output_names == ["audio"]


@pytest.mark.parametrize("name", VOCODERS)
@pytest.mark.parametrize("sizes", [{"batch": 1, "frames": 7}, {"batch": 3, "frames": 40}])
def test_make_inputs_gives_the_mel_of_the_config(name, sizes):
    family = FAMILIES[name]
    info = family.describe(family.synthetic_config("tiny", {}))
    n_mels = info.summary.get("n_mels", info.summary.get("num_mels"))
    inputs = family.make_inputs(info, COMPONENT, sizes, np.random.default_rng(0))
    mel_name = info.components[0].input_names[0]
    assert inputs[mel_name].shape == (sizes["batch"], n_mels, sizes["frames"])
    assert inputs[mel_name].dtype == np.float32 and np.isfinite(inputs[mel_name]).all()
    again = family.make_inputs(info, COMPONENT, sizes, np.random.default_rng(0))
    assert np.array_equal(again[mel_name], inputs[mel_name])


def test_other_vocoder_inputs_follow_the_config():
    """The EnCodec Vocos and the normalized sovits graph: the same mel shape, their own inputs."""
    vocos = FAMILIES["vocos"]
    info = vocos.describe(vocos.synthetic_config("encodec-tiny", {}))
    inputs = vocos.make_inputs(info, COMPONENT, {"batch": 2, "frames": 9}, np.random.default_rng(1))
    assert inputs["features"].shape == (2, 128, 9) and inputs["bandwidth_id"].shape == (2,)
    sovits = FAMILIES["sovits_v4"]
    info = sovits.describe(sovits.synthetic_config("tiny", {"normalized_input": True}))
    inputs = sovits.make_inputs(info, "vocoder_normalized", {"batch": 2, "frames": 9}, np.random.default_rng(1))
    assert inputs["mel_norm"].shape == (2, info.summary["n_mels"], 9)
    assert -1.5 < inputs["mel_norm"].min() and inputs["mel_norm"].max() < 1.5


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_an_unknown_option_is_one_line_naming_the_key(name, tmp_path):
    key = "no_such_option_key"
    config = {"models": {"m": {"family": name, "checkpoint": {"synthetic": "tiny"}, "options": {key: 1}}}}
    with pytest.raises(ConfigError) as planned:
        build_plan(config, tmp_path, check_files=False)
    # Outside a plan (commands, library use) read_config runs the same check, before the files.
    with pytest.raises(ConfigError) as read:
        FAMILIES[name].read_config(tmp_path / "absent", {key: 1})
    for exc in (planned.value, read.value):
        message = str(exc)
        assert "\n" not in message and key in message, message
    assert str(read.value) in str(planned.value)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_an_option_of_the_wrong_kind_names_the_key(name, tmp_path):
    specs = FAMILIES[name].option_specs
    if not specs:
        pytest.skip(f"{name} takes no options")
    key, spec = next(iter(specs.items()))
    wrong = [] if spec.kind is not list else {}
    with pytest.raises(ConfigError) as read:
        FAMILIES[name].read_config(tmp_path / "absent", {key: wrong})
    assert "\n" not in str(read.value) and f"options.{key}:" in str(read.value)
