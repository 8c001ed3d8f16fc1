"""The pipeline chains start from text: each family's chain texts (and language, tokenizer) are
read with the model's own front end and refused at plan time, in one line, when the model
cannot read them or they do not fit the points."""

from __future__ import annotations

import json

import pytest

from conftest import UPSTREAM
from ttskiln.errors import ConfigError, TtskilnError
from ttskiln.families import get_family
from ttskiln.plan import build_plan


def refused(models, tmp_path) -> str:
    with pytest.raises(TtskilnError) as info:
        build_plan({"models": models}, tmp_path)
    message = str(info.value)
    assert "\n" not in message
    return message


# -- YourTTS / VITS ----------------------------------------------------------------------------
def _vits(options=None, overrides=None, tokens=63):
    checkpoint = {"synthetic": "tiny", **({"overrides": overrides} if overrides else {})}
    return {"family": "vits", "checkpoint": checkpoint, "options": options or {},
            "profiles": {"s": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 3, "opt": tokens, "max": tokens},
                               "frames": {"min": 8, "opt": 64, "max": 64}}}}


def test_vits_chain_texts_and_language_checked_at_plan_time(tmp_path):
    from ttskiln.families.vits.chain import DEFAULT_TEXTS, resolve_texts

    planned = build_plan({"models": {"v": _vits({"chain_texts": ["bom dia!"], "language": "pt-br"})}}, tmp_path)
    assert planned.models["v"].chains == ("tts",)
    message = refused({"v": _vits({"chain_texts": ["hello world", "voilà ça"]})}, tmp_path)
    assert message.startswith("model 'v': options.chain_texts[1] 'voilà ça': characters not in the model's character table")
    assert "'à'" in message and "'ç'" in message
    assert "language 'de' is not in language_ids.json" in refused({"v": _vits({"language": "de"})}, tmp_path)
    assert "no language embedding" in refused({"v": _vits({"language": "en"}, {"languages": []})}, tmp_path)
    long_text = _vits({"chain_texts": ["one two three four five"]}, tokens=21)
    assert "above the profile's largest tokens 21" in refused({"v": long_text}, tmp_path)
    assert "item 0 must be a non-empty string" in refused({"v": _vits({"chain_texts": [3]})}, tmp_path)

    vits = get_family("vits")
    config = vits.synthetic_config("tiny", {})
    texts, language, lang, ids = resolve_texts(config, {"language": "fr-fr"}, None, 63)
    assert texts == [DEFAULT_TEXTS["fr-fr"]] and (language, lang) == ("fr-fr", 1)
    assert len(ids[0]) == 2 * len(texts[0]) + 1  # blank-interspersed characters
    # A default text longer than the profile is cut after a word; the first word is kept.
    short, *_ = resolve_texts(config, {}, None, 21)
    assert DEFAULT_TEXTS["en"].startswith(short[0]) and len(short[0]) < len(DEFAULT_TEXTS["en"])
    assert 2 * len(short[0]) + 1 <= 21
    mono = vits.synthetic_config("tiny", {"languages": []})
    assert resolve_texts(mono, {}, None)[1:3] == (None, None)


# -- Tortoise ----------------------------------------------------------------------------------
def _tortoise(options=None, tokens=32):
    return {"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny"}, "options": options or {},
            "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 4, "opt": tokens, "max": tokens}}}}


def test_tortoise_chain_texts_checked_at_plan_time(tmp_path):
    build_plan({"models": {"t": _tortoise({"chain_texts": ["Dr. Who paid $3."]})}}, tmp_path)
    message = refused({"t": _tortoise({"chain_texts": ["50% off @ home"]})}, tmp_path)
    assert message.startswith("model 't': options.chain_texts[0] '50% off @ home': characters the tokenizer")
    assert "'%'" in message and "'@'" in message
    assert "a prompt of 25 tokens, above the profile's largest tokens 12" in refused(
        {"t": _tortoise({"chain_texts": ["twenty four letters long"]}, tokens=12)}, tmp_path)
    assert "options.tokenizer: " in refused({"t": _tortoise({"tokenizer": str(tmp_path / "none.json")})}, tmp_path)


def test_synthetic_tokenizer_is_the_released_base_and_beside_the_checkpoint(tmp_path):
    from ttskiln.families.tortoise_gpt.chain import resolve_texts
    from ttskiln.families.tortoise_gpt.text import TortoiseTokenizer

    family = get_family("tortoise_gpt")
    config = family.synthetic_config("tiny", {})
    family.write_synthetic(config, tmp_path / "ckpt", seed=0)
    written = json.loads((tmp_path / "ckpt" / "tokenizer.json").read_text())
    released = json.loads((UPSTREAM / "tortoise_gpt" / "frontend" / "tokenizer.json").read_text())
    base = {k: v for k, v in released["model"]["vocab"].items() if v < len(written["model"]["vocab"])}
    assert written["model"]["vocab"] == base  # the released file's first entries, same ids
    assert max(written["model"]["vocab"].values()) < config["unified_voice"]["number_text_tokens"]
    # Letters and punctuation only: one id per character, as the released file without its merges.
    texts, prompts = resolve_texts(config, {"chain_texts": ["hi there."]}, tmp_path / "ckpt")
    assert prompts == [[21, 22, 2, 33, 21, 18, 31, 18, 9, 0]]
    released_ids = TortoiseTokenizer(UPSTREAM / "tortoise_gpt" / "frontend" / "tokenizer.json").encode("hi there.")
    assert len(released_ids) < len(prompts[0]) - 1  # the released merges join letters
    # A real checkpoint without a tokenizer.json beside it needs options.tokenizer.
    (tmp_path / "ckpt" / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="give options.tokenizer"):
        resolve_texts(config, {}, tmp_path / "ckpt")
    given = {"tokenizer": str(UPSTREAM / "tortoise_gpt" / "frontend" / "tokenizer.json"), "chain_texts": ["hi there."]}
    with pytest.raises(ConfigError, match="ids up to 172; the model has 50 text tokens"):
        resolve_texts(config, given, tmp_path / "ckpt")  # the tiny model embeds fewer than the released file has
    assert resolve_texts(family.synthetic_config("demo", {}), given, tmp_path / "ckpt")[1] == [released_ids + [0]]


# -- F5-TTS ------------------------------------------------------------------------------------
def test_f5_demo_vocabulary_speaks_the_default_texts():
    from ttskiln.families.f5tts.chain import CHAIN_SPEECH_TEXTS, chain_texts, check_chain_fit
    from ttskiln.families.f5tts.config import F5Config
    from ttskiln.families.f5tts.frontend import is_chinese
    from ttskiln.families.f5tts.vocab import synthetic_tokens

    config = get_family("f5tts").synthetic_config("demo", {})
    tokens = synthetic_tokens(int(config["text_num_embeds"]))
    assert len(tokens) == len(set(tokens)) == config["text_num_embeds"]
    vocab = {t: i for i, t in enumerate(tokens)}
    ref, texts = chain_texts({}, vocab)
    assert texts == CHAIN_SPEECH_TEXTS
    chinese = [any(is_chinese(c) for c in t) for t in texts]
    latin = [any(c.isascii() and c.isalpha() for c in t) for t in texts]
    assert (chinese[0], latin[0]) == (True, False) and (chinese[1], latin[1]) == (False, True)
    assert chinese[2] and latin[2]
    assert "tian1" in vocab and "zhao4" in vocab
    # At the demo's point (256 frames, batch 2) the last text needs two batches, the others one.
    assert check_chain_fit(F5Config.from_dict(config), vocab, ref, texts, 256, 2, "p") == [1, 1, 1, 2]
    # The tiny vocabulary (40 tokens) keeps its own defaults.
    assert chain_texts({}, {t: i for i, t in enumerate(synthetic_tokens(40))})[1] != CHAIN_SPEECH_TEXTS


def test_f5_chain_texts_refused_at_plan_time(tmp_path):
    voc = {"family": "vocos", "checkpoint": {"synthetic": "tiny", "overrides": {"hop_length": 256, "n_fft": 1024}}}

    def f5(frames=256, **options):
        return {"f": {"family": "f5tts", "checkpoint": {"synthetic": "demo"}, "options": {"vocoder": "voc", **options},
                      "profiles": {"p": {"batch": {"min": 2, "opt": 2, "max": 2},
                                         "frames": {"min": frames, "opt": frames, "max": frames}}}}, "voc": voc}

    message = refused(f5(chain_texts=["我的猫。"]), tmp_path)
    assert message.startswith("model 'f': the options.chain_texts holds ") and "'mao1'" in message
    long = ["The quick brown fox jumps over the lazy dog and then the quick brown fox jumps again."]
    message = refused(f5(frames=64, chain_texts=long), tmp_path)
    assert message.startswith("model 'f': point p-opt: a batch of the chain texts") and "beyond the 63" in message
    # The family's own defaults are cut after a word to fit a small point instead.
    from ttskiln.plan import build_plan

    assert build_plan({"models": f5(frames=64)}, tmp_path).models["f"].chains == ("synth",)


def test_a_phoneme_vits_model_plans_without_a_chain():
    from ttskiln.families import get_family

    vits = get_family("vits")
    config = vits.synthetic_config("tiny", {})
    config["use_phonemes"] = True
    info = vits.describe(config)
    assert vits.chains(info, {}) == []
    vits.check_plan(info, config, {}, [], None)  # no text to read: nothing refused
    import pytest

    from ttskiln.errors import ConfigError

    with pytest.raises(ConfigError, match="reads phonemes"):
        vits.check_plan(info, config, {"chain_texts": ["hello"]}, [], None)
