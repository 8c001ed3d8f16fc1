"""Text front ends: Coqui VITS / YourTTS ids from config.json, Tortoise's cleaners + BPE, the
front-end folders through ``ttskiln parity``, and the ``tts`` / ``tortoise-generate`` commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, upstream_case
from ttskiln.errors import CheckpointError, InputError
from ttskiln.families import get_family
from ttskiln.families.vits.text import front_end, language_id
from ttskiln.parity import main as parity_main


# -- upstream fixtures -----------------------------------------------------------------------
def test_vits_front_end_reproduces_every_upstream_case():
    folder = upstream_case("vits", "frontend")
    cases = json.loads((folder / "frontend.json").read_text())["cases"]
    results = get_family("vits").frontend_parity(folder)
    assert len(results) == len(cases) == 60
    assert {(c["config"], c["language"]) for c in cases} >= {("yourtts_small", "pt-br"), ("accented_bos_eos_noblank", "fr-fr")}
    assert [r for r in results if not r[1]] == []


def test_tortoise_front_end_reproduces_every_upstream_case():
    folder = upstream_case("tortoise_gpt", "frontend")
    cases = json.loads((folder / "frontend.json").read_text())["encode"]
    results = get_family("tortoise_gpt").frontend_parity(folder)
    assert len(results) == len(cases) == 15
    assert [r for r in results if not r[1]] == []


def test_parity_command_on_a_front_end_folder(capsys):
    folder = upstream_case("vits", "frontend")
    assert parity_main(str(folder)) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2] == "vits front end: 60/60 cases identical to upstream"
    assert lines[-1] == "worst max_abs_err=0.000e+00"


def test_parity_command_reports_a_differing_case(tmp_path, capsys):
    folder = upstream_case("vits", "frontend")
    shutil.copy(folder / "manifest.json", tmp_path / "manifest.json")
    data = json.loads((folder / "frontend.json").read_text())
    data["cases"] = data["cases"][:2]
    data["cases"][1]["ids"] = data["cases"][1]["ids"][:-1]
    (tmp_path / "frontend.json").write_text(json.dumps(data))
    assert parity_main(str(tmp_path)) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "1/2 cases identical" in out and out.strip().endswith("worst max_abs_err=inf")


def test_parity_command_on_a_family_without_front_end(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"family": "vocos", "kind": "frontend", "file": "frontend.json"}))
    assert parity_main(str(tmp_path)) == 2
    assert "has no text front end" in capsys.readouterr().out


# -- VITS front end from config blocks -------------------------------------------------------
def _config(**block):
    characters = {"pad": "_", "blank": "#", "characters": "cba", "punctuations": "!", "eos": None, "bos": None, **block}
    return {"characters": characters, "add_blank": True, "text_cleaner": "basic_cleaners", "use_phonemes": False}


def test_grapheme_table_sorts_and_puts_specials_first():
    front = front_end(_config())
    assert front.vocab == ("_", "#", "a", "b", "c", "!")
    assert front.text_to_ids(" Ab? !") == [1, 2, 1, 3, 1, 5, 1]  # '?' dropped, spaces not in the table
    assert front.dropped(" Ab? !") == ["?", " "]


def test_vits_characters_table_ignores_block_specials():
    config = _config(characters_class="TTS.tts.models.vits.VitsCharacters", eos="&", bos="*")
    front = front_end(config)
    assert front.vocab == ("_", "!", "c", "b", "a", "<BLNK>")
    assert front.text_to_ids("a") == [5, 4, 5]


def test_eos_bos_and_missing_blank_take_ids_past_the_table():
    config = _config(blank=None, eos="&", bos="*")
    config["enable_eos_bos_chars"] = True
    front = front_end(config)
    assert front.vocab == ("_", "&", "*", "a", "b", "c", "!")
    assert front.text_to_ids("ab") == [2, 7, 3, 7, 4, 7, 1]


@pytest.mark.parametrize("change, message", [
    ({"use_phonemes": True}, "phonemizer"),
    ({"text_cleaner": "english_cleaners"}, "not reproduced"),
    ({"characters": None}, "no 'characters' block"),
])
def test_front_ends_that_cannot_be_reproduced_are_refused(change, message):
    with pytest.raises(CheckpointError, match=message):
        front_end({**_config(), **change})


def test_language_by_name():
    assert language_id({"en": 0, "pt-br": 2}, "pt-br") == 2
    assert language_id(None, None) is None
    with pytest.raises(InputError, match="known"):
        language_id({"en": 0}, "de")
    with pytest.raises(InputError, match="no language embedding"):
        language_id(None, "en")
    with pytest.raises(InputError, match="needs a language"):
        language_id({"en": 0}, None)


def test_synthetic_config_front_end_matches_the_model():
    from ttskiln.families.vits.config import make_config_dict

    config = make_config_dict()
    front = front_end(config)
    assert len(front.vocab) == config["model_args"]["num_chars"]
    assert front.blank_id == config["model_args"]["num_chars"] - 1  # the chain's blank


# -- commands --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vits(tmp_path_factory):
    family = get_family("vits")
    path = tmp_path_factory.mktemp("vits_tiny")
    family.write_synthetic(family.synthetic_config("tiny", {}), path, 3)
    return path


def test_tts_command_speaks_text_with_a_named_speaker(tiny_vits, tmp_path):
    from ttskiln.families.vits.tts import text_to_wav

    out = tmp_path / "x.wav"
    done = text_to_wav(tiny_vits, "Olá, tudo bem?", out, language="pt-br", speaker="spk1", backend="torch")
    assert done["dropped"] == ["á"] and done["language_id"] == 2
    assert len(done["ids"]) == 2 * len("ol, tudo bem?") + 1
    with wave.open(str(out)) as fh:
        assert fh.getframerate() == 16000 and fh.getnframes() > 0
    with pytest.raises(InputError, match="spk0"):
        text_to_wav(tiny_vits, "hi", tmp_path / "y.wav", language="en", speaker="nobody", backend="torch")
    with pytest.raises(InputError, match="known"):
        text_to_wav(tiny_vits, "hi", tmp_path / "y.wav", language="xx", speaker="spk0", backend="torch")


def test_tts_command_embeds_a_reference_wav(tiny_vits, tmp_path):
    from ttskiln.families.vits.chain import write_wav
    from ttskiln.families.vits.speaker import synthetic_reference
    from ttskiln.families.vits.tts import text_to_wav

    ref = tmp_path / "ref.wav"
    write_wav(ref, synthetic_reference(16000, 1.0, 5), 16000)
    done = text_to_wav(tiny_vits, "hello", tmp_path / "x.wav", language="en", speaker_wav=ref, backend="torch")
    assert done["audio_seconds"] > 0


@pytest.fixture(scope="module")
def tiny_tortoise(tmp_path_factory):
    family = get_family("tortoise_gpt")
    path = tmp_path_factory.mktemp("tortoise_tiny")
    family.write_synthetic(family.synthetic_config("tiny", {"number_text_tokens": 255, "start_text_token": 255}), path, 1)
    return path


def test_tortoise_generate_writes_codes_and_latents(tiny_tortoise, tmp_path):
    import torch

    from ttskiln.families.tortoise_gpt.cli import text_to_codes
    from ttskiln.families.tortoise_gpt.text import TortoiseTokenizer

    tokenizer = upstream_case("tortoise_gpt", "frontend") / "tokenizer.json"
    text = "Dr. Smith paid $4.99."
    done = text_to_codes(tiny_tortoise, tokenizer, text, tmp_path, backend="torch", max_new_tokens=6)
    ids = np.load(tmp_path / "text_ids.npy")
    assert ids.tolist() == TortoiseTokenizer(tokenizer).encode(text) + [0]
    codes, latents = np.load(tmp_path / "codes.npy"), np.load(tmp_path / "latents.npy")
    assert latents.shape == (codes.size, 64) and done["codes"] == codes.size > 0
    family = get_family("tortoise_gpt")
    config = family.read_config(tiny_tortoise, {})
    model = family.load(tiny_tortoise, config)
    with torch.inference_mode():
        full = model.latents(torch.from_numpy(np.load(tmp_path / "cond_latent.npy")[None]),
                             torch.from_numpy(ids[None]), torch.from_numpy(codes[None])).numpy()[0]
    np.testing.assert_allclose(latents, full, atol=1e-4)


def test_tortoise_generate_refuses_a_foreign_tokenizer(tmp_path):
    from ttskiln.families.tortoise_gpt.cli import text_to_codes

    folder = upstream_case("tortoise_gpt", "uv_small")
    tokenizer = upstream_case("tortoise_gpt", "frontend") / "tokenizer.json"
    kwargs = json.loads((folder / "manifest.json").read_text())["config"]["UnifiedVoice_kwargs"]
    with pytest.raises(InputError, match="text tokens"):
        text_to_codes(folder / "autoregressive.pth", tokenizer, "zebra quiz", tmp_path, options={"unified_voice": kwargs},
                      backend="torch")


def test_front_end_imports_stay_light():
    code = ("import sys, ttskiln.families, ttskiln.families.vits.text, ttskiln.families.tortoise_gpt.text, "
            "ttskiln.families.vits.tts, ttskiln.families.tortoise_gpt.cli\n"
            "heavy = [m for m in ('torch', 'tokenizers', 'inflect') if m in sys.modules]\n"
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})
