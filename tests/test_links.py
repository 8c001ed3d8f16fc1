"""A model that links another (an F5 model and its vocoder) is checked against it when the
config is planned, so a mismatched pair stops the run before any job."""

import pytest

from ttskiln.errors import ConfigError
from ttskiln.families import FAMILIES, get_family
from ttskiln.families.base import Family
from ttskiln.plan import build_plan

VOCOS_HOP_256 = {"hop_length": 256, "n_fft": 1024}


def _config(vocos_overrides=None):
    voc = {"family": "vocos", "checkpoint": {"synthetic": "tiny"}}
    if vocos_overrides is not None:
        voc["checkpoint"]["overrides"] = vocos_overrides
    return {"models": {
        "voc": voc,
        "f5": {"family": "f5tts", "checkpoint": {"synthetic": "tiny"}, "options": {"vocoder": "voc"},
               "profiles": {"p": {"batch": {"min": 2, "opt": 2, "max": 2}, "frames": {"min": 32, "opt": 32, "max": 48}}}},
    }}


def test_vocoder_of_another_hop_is_refused_at_plan_time(tmp_path):
    with pytest.raises(ConfigError) as info:
        build_plan(_config(), tmp_path)
    message = str(info.value)
    assert message.startswith("model 'f5': options.vocoder: vocoder 'voc' takes ")
    voc = get_family("vocos").describe(get_family("vocos").synthetic_config("tiny", {}))
    assert f"at hop {voc.hop_length}" in message and "the F5 model makes" in message and "at hop 256" in message
    assert "\n" not in message
    assert not (tmp_path / "artifacts").exists()


def test_vocoder_of_the_same_mel_plans(tmp_path):
    plan = build_plan(_config(VOCOS_HOP_256), tmp_path)
    assert plan.models["f5"].links == {"vocoder": "voc"}
    assert plan.models["voc"].info.hop_length == 256


def test_check_links_gets_the_linked_models_as_planned(tmp_path, monkeypatch):
    seen = {}

    def record(self, config, options, linked):
        seen.update(config=config, options=options, linked=linked)

    monkeypatch.setattr(type(get_family("f5tts")), "check_links", record)
    plan = build_plan(_config(), tmp_path)
    voc = plan.models["voc"]
    link = seen["linked"]["vocoder"]
    assert (link.name, link.family, link.config, link.info) == ("voc", "vocos", voc.config, voc.info)
    assert seen["config"] == plan.models["f5"].config and seen["options"] == {"vocoder": "voc"}


def test_families_without_links_keep_the_no_op_hook():
    for name, family in FAMILIES.items():
        if not family.link_families:
            assert type(family).check_links is Family.check_links, name
