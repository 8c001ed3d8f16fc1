"""The F5-TTS text front end (pinyin tokens, batches, cross-fade) and audio files in and out."""

import json

import numpy as np
import pytest

from conftest import upstream_case
from ttskiln.audio_io import read_audio, write_audio
from ttskiln.errors import ConfigError, InputError
from ttskiln.families import get_family
from ttskiln.families.f5tts.chain import chain_texts, join_batches, split_texts, text_ids
from ttskiln.families.f5tts.frontend import (
    check_frontend,
    chunk_text,
    cross_fade,
    max_chars_for,
    text_tokens,
)
from ttskiln.families.f5tts.vocab import prompt_text, synthetic_tokens

F5 = get_family("f5tts")


def test_every_upstream_frontend_case_is_reproduced():
    folder = upstream_case("f5tts", "frontend")
    data = json.loads((folder / "frontend.json").read_text(encoding="utf-8"))
    expected = len(data["convert_char_to_pinyin"]) + len(data["chunk_text"])
    results = check_frontend(folder)
    assert len(results) == expected
    wrong = [(name, detail) for name, ok, detail in results if not ok]
    assert not wrong
    assert F5.frontend_parity(folder) == results
    assert get_family("vocos").frontend_parity(folder) is None


def test_a_changed_fixture_is_reported_as_different(tmp_path):
    data = {"convert_char_to_pinyin": [{"text": "你好", "tokens": [" ", "ni3", " ", "hao3"]}],
            "chunk_text": [{"text": "A, b. C!", "max_chars": 4, "chunks": ["A, b.", "C!"]}]}
    (tmp_path / "frontend.json").write_text(json.dumps(data), encoding="utf-8")
    results = check_frontend(tmp_path)
    assert [ok for _, ok, _ in results] == [False, False]
    assert "got 'ni2', upstream 'ni3'" in results[0][2]  # tone sandhi: 3-3 -> 2-3
    with pytest.raises(InputError, match="frontend.json not found"):
        check_frontend(tmp_path / "missing")


def test_tokens_of_chinese_english_and_mixed_text():
    assert text_tokens("行") == [" ", "xing2"]
    assert text_tokens("Hi all") == ["H", "i", " ", "a", "l", "l"]
    mixed = text_tokens("用GPU跑")
    assert mixed[:3] == [" ", "yong4", " "] and mixed[3:6] == ["G", "P", "U"] and mixed[-2:] == [" ", "pao3"]
    assert text_tokens("a;b \u201cc\u201d") == ["a", ",", "b", " ", '"', "c", '"']


def test_chunks_keep_every_word_in_order_and_fit_the_budget():
    text = "One, two three. Four five six seven! 八九十，十一十二。Thirteen? Fourteen; fifteen."
    for budget in (1, 10, 25, 60, 1000):
        batches = chunk_text(text, budget)
        assert " ".join(batches).replace(" ", "") == text.replace(" ", "")
        for batch in batches:
            pieces = [p for p in chunk_text(batch, 0)]
            # a batch holds more than one sentence piece only when they fit the budget together
            assert len(pieces) == 1 or len(batch.encode("utf-8")) <= budget + len(pieces)
    assert len(chunk_text(text, 1000)) == 1 and len(chunk_text(text, 10)) > 3


def test_budget_is_upstreams_formula():
    # 30 bytes over 3 s: 10 bytes/s, times the 19 s left to 22 s
    assert max_chars_for("x" * 30, 3.0) == 190
    assert max_chars_for("x" * 30, 3.0, speed=0.5) == 95
    with pytest.raises(InputError, match="positive length"):
        max_chars_for("abc", 0.0)


def test_long_text_is_split_and_joined_with_a_cross_fade():
    ref = "A BAD CAFE"  # read as "A BAD CAFE. ": 12 bytes
    texts = ["FADE 1, " * 30 + "ACE.", "BEAD 2."]
    batches, counts, budget = split_texts(texts, ref, ref_seconds=6.0)
    assert budget == int(12 / 6.0 * 16.0)
    assert counts[1] == 1 and counts[0] >= 2 and len(batches) == sum(counts)
    assert all(len(b.encode("utf-8")) <= budget for b in batches[: counts[0]])
    rate = 1000
    waves = [np.ones(400, np.float32) * (i + 1) for i in range(sum(counts))]
    joined = join_batches(waves, counts, rate)
    overlap = int(0.15 * rate)
    assert joined[0].size == 400 * counts[0] - overlap * (counts[0] - 1)
    assert joined[1].size == 400
    # inside the first overlap the fade moves linearly from the first batch to the second
    seg = joined[0][400 - overlap: 400]
    assert seg[0] == pytest.approx(1.0) and seg[-1] == pytest.approx(2.0) and np.all(np.diff(seg) > 0)
    with pytest.raises(InputError, match="text 2 is empty"):
        split_texts(["A.", "  "], ref, 6.0)


def test_cross_fade_never_overlaps_more_than_the_shorter_side():
    a, b = np.zeros(50, np.float32), np.ones(30, np.float32)
    assert cross_fade([a, b], 1000, 0.15).size == 50  # overlap limited to 30 samples
    assert cross_fade([a, b], 1000, 0.0).size == 80
    assert cross_fade([a], 1000).size == 50


def test_vocabulary_check_applies_to_the_front_end_tokens():
    # a vocabulary without these two syllables (the synthetic one holds the demo texts' pinyin)
    vocab = {t: i for i, t in enumerate(t for t in synthetic_tokens(200) if t not in ("ni2", "hao3"))}
    with pytest.raises(InputError, match="'hao3' 'ni2'"):
        text_ids("你好", vocab)
    vocab.update({"ni2": 300, "hao3": 301})
    assert text_ids("你好", vocab) == [0, 300, 0, 301]
    # the prompt the model reads: reference, then the new text, one token list
    assert text_ids(prompt_text("OK", "你好"), vocab)[-4:] == [0, 300, 0, 301]
    with pytest.raises(ConfigError, match="options.chain_texts holds 1 token.*'mao1'"):
        chain_texts({"chain_texts": ["ABC", "猫GPU"]}, vocab)
    vocab.update({"yong4": 302})
    ref, texts = chain_texts({"reference_text": "GPU.", "chain_texts": ["你好!", "用GPU"]}, vocab)
    assert texts == ("你好!", "用GPU") and ref == "GPU."


def test_24bit_stereo_44k_reads_as_mono_at_the_model_rate(tmp_path):
    import soundfile as sf

    rate, seconds = 44100, 0.5
    t = np.arange(int(rate * seconds)) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 220 * t), 0.25 * np.sin(2 * np.pi * 220 * t)
    path = tmp_path / "ref.wav"
    sf.write(str(path), np.stack([left, right], axis=1), rate, subtype="PCM_24")
    audio, info = read_audio(path, 24000)
    assert (info.sample_rate, info.channels, info.subtype, info.frames) == (44100, 2, "PCM_24", t.size)
    assert info.resampled_to == 24000 and "44100 Hz, 2 channel(s)" in info.describe()
    assert audio.dtype == np.float32 and abs(audio.size - int(seconds * 24000)) <= 1
    # the mean of the channels: a 220 Hz sine of amplitude 0.375
    middle = audio[2000:-2000]
    assert np.max(np.abs(middle)) == pytest.approx(0.375, abs=2e-3)
    same, same_info = read_audio(path)
    assert same.size == t.size and same_info.resampled_to is None


def test_written_audio_is_16bit_pcm_or_float(tmp_path):
    import soundfile as sf

    wave = np.array([0.0, 0.5, -0.5, 2.0], np.float32)
    write_audio(tmp_path / "a.wav", wave, 24000)
    write_audio(tmp_path / "b.wav", wave, 24000, "FLOAT")
    assert sf.info(str(tmp_path / "a.wav")).subtype == "PCM_16"
    assert sf.info(str(tmp_path / "b.wav")).subtype == "FLOAT"
    pcm, _ = read_audio(tmp_path / "a.wav")
    np.testing.assert_allclose(pcm, [0.0, 16384 / 32768, -16384 / 32768, 32767 / 32768], atol=1e-6)
    np.testing.assert_array_equal(read_audio(tmp_path / "b.wav")[0], wave)
    with pytest.raises(InputError, match="not an audio file"):
        (tmp_path / "bad.wav").write_bytes(b"RIFF0000WAVEjunk")
        read_audio(tmp_path / "bad.wav")
    with pytest.raises(InputError, match="not found"):
        read_audio(tmp_path / "none.wav")


def test_chain_reference_audio_from_the_model_entry(tmp_path):
    import soundfile as sf

    from ttskiln.families.f5tts.chain import chain_reference
    from ttskiln.families.f5tts.config import F5Config

    cfg = F5Config.from_dict(F5.synthetic_config("tiny", {}))
    path = tmp_path / "voice.flac"
    sf.write(str(path), np.full((4800, 2), 0.25), 48000, subtype="PCM_16")  # 0.1 s stereo
    long, info = chain_reference({"reference_audio": str(path)}, 20, cfg, seed=0)
    assert long.size == 20 * cfg.hop_length  # 2400 samples at 24 kHz, repeated to 5120
    assert info["sample_rate"] == 48000 and info["channels"] == 2 and info["resampled_to"] == cfg.sample_rate
    short, _ = chain_reference({"reference_audio": str(path)}, 4, cfg, seed=0)
    assert short.size == 4 * cfg.hop_length
    synthetic, none = chain_reference({}, 4, cfg, seed=0)
    assert none is None and synthetic.size == 4 * cfg.hop_length


def test_the_reference_text_is_read_as_upstream_prepares_it():
    """"Hello." and "Hello. " are the same reference to upstream (it appends the ". "); the
    chain's duration estimate reads it so (tests/test_f5tts_chain.py checks the lengths)."""
    from ttskiln.families.f5tts.vocab import spoken_reference

    assert spoken_reference("Hello.") == spoken_reference("Hello. ") == spoken_reference("Hello") == "Hello. "
    assert spoken_reference("你好。") == "你好。"
