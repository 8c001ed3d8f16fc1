"""The F5-TTS text front end: text -> the token list the model reads, long text -> batches.

Tokens (``text_tokens``), as the released models were trained to read them:

* first the punctuation fixes (``vocab.CHAR_FIXES``: ``;`` -> ``,``, curly quotes -> straight);
* the text is cut into words by rjieba (jieba's dictionary segmentation);
* a word of 1-byte characters (ASCII) is kept character by character; when it is longer than
  one character and follows a token other than a space, colon or quote, a space token goes
  first (so "用iPhone" reads "yong4", " ", "i", "P", ...);
* a word of 3-byte characters (CJK) is turned into pinyin by pypinyin, TONE3 style (tone
  digit at the end, none for the neutral tone) with tone sandhi (不要 -> bu2 yao4, 一定 ->
  yi2 ding4); each Chinese character (U+3100..U+9FFF) is one pinyin token preceded by a space
  token, other 3-byte characters (kana, full-width punctuation) stay as they are;
* any other word (mixed widths): Latin-1 characters and non-Chinese characters stay as they
  are, each Chinese character is a space token then its own pinyin.

Batches (``chunk_text``): the text is cut after sentence punctuation (``;:,.!?`` when
whitespace follows, ``；：，。！？`` always) and the pieces are packed greedily into batches of
at most ``max_chars`` UTF-8 bytes (a piece longer than that is a batch of its own). A piece
ending in a 1-byte character is followed by a space inside its batch; batches are stripped.
``max_chars_for`` is the budget upstream derives from the reference: the reference text's
bytes per second times the seconds left to 22 s, times the speed. ``cross_fade`` joins the
batches' audio with linear fades over 0.15 s.

``check_frontend`` compares all of this with a folder of upstream outputs (``frontend.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.f5tts.vocab import CHAR_FIXES

#: Seconds of a request, reference included, that upstream's batch budget aims at.
BATCH_SECONDS = 22.0
#: Upstream's default cross-fade between batches.
CROSS_FADE_SECONDS = 0.15
_SENTENCE_END = re.compile(r"(?<=[;:,.!?])\s+|(?<=[；：，。！？])")
_NO_SPACE_AFTER = (" ", ":", "'", '"')


def is_chinese(char: str) -> bool:
    """The characters read as pinyin: U+3100..U+9FFF (bopomofo to the unified ideographs)."""
    return "\u3100" <= char <= "\u9fff"


def _pinyin(text: str) -> list[str]:
    from pypinyin import Style, lazy_pinyin

    return lazy_pinyin(text, style=Style.TONE3, tone_sandhi=True)


def _words(text: str) -> list[str]:
    import rjieba

    return list(rjieba.cut(text))


def text_tokens(text: str) -> list[str]:
    """The tokens the model reads for ``text`` (Chinese, English or both; see the module doc)."""
    tokens: list[str] = []
    for word in _words(text.translate(CHAR_FIXES)):
        size = len(word.encode("utf-8"))
        if size == len(word):
            if size > 1 and tokens and tokens[-1] not in _NO_SPACE_AFTER:
                tokens.append(" ")
            tokens.extend(word)
        elif size == 3 * len(word):
            readings = _pinyin(word)
            for char, reading in zip(word, readings):
                if is_chinese(char):
                    tokens.append(" ")
                tokens.append(reading)
        else:
            for char in word:
                if ord(char) < 256 or not is_chinese(char):
                    tokens.append(char)
                else:
                    tokens.append(" ")
                    tokens.extend(_pinyin(char))
    return tokens


def chunk_text(text: str, max_chars: int = 135) -> list[str]:
    """``text`` packed into batches of at most ``max_chars`` UTF-8 bytes (see the module doc)."""
    batches: list[str] = []
    current = ""
    for piece in _SENTENCE_END.split(text):
        if not piece:
            continue
        spaced = piece + " " if len(piece[-1].encode("utf-8")) == 1 else piece
        if len(current.encode("utf-8")) + len(piece.encode("utf-8")) <= max_chars:
            current += spaced
            continue
        if current:
            batches.append(current.strip())
        current = spaced
    if current:
        batches.append(current.strip())
    return batches


def max_chars_for(ref_text: str, ref_seconds: float, speed: float = 1.0) -> int:
    """Upstream's batch budget (bytes) for a reference of ``ref_seconds`` saying ``ref_text``."""
    if not ref_seconds > 0:
        raise InputError(f"the reference audio lasts {ref_seconds} s; the batch budget needs a positive length")
    return int(len(ref_text.encode("utf-8")) / ref_seconds * (BATCH_SECONDS - ref_seconds) * speed)


def cross_fade(waves: Sequence[np.ndarray], sample_rate: int, seconds: float = CROSS_FADE_SECONDS) -> np.ndarray:
    """The batches' audio joined in order; each junction overlaps ``seconds`` (at most the
    shorter side) with a linear fade-out of the earlier and fade-in of the later audio, so
    the result is ``sum(lengths) - sum(overlaps)`` samples."""
    if not waves:
        raise InputError("no audio to join")
    out = np.asarray(waves[0], dtype=np.float32).reshape(-1)
    for nxt in waves[1:]:
        nxt = np.asarray(nxt, dtype=np.float32).reshape(-1)
        n = min(int(seconds * sample_rate), out.size, nxt.size) if seconds > 0 else 0
        if n <= 0:
            out = np.concatenate([out, nxt])
            continue
        ramp = np.linspace(0.0, 1.0, n)
        overlap = out[-n:] * ramp[::-1] + nxt[:n] * ramp
        out = np.concatenate([out[:-n], overlap.astype(np.float32), nxt[n:]])
    return out.astype(np.float32)


# -- upstream reproduction ---------------------------------------------------------------------
def _case_name(text: str, limit: int = 24) -> str:
    short = text if len(text) <= limit else text[:limit] + "..."
    return short.replace("\n", " ")


def check_frontend(folder: str | Path) -> list[tuple[str, bool, str]]:
    """(case name, identical?, detail) for every case of a folder of upstream front-end
    outputs (``frontend.json``: ``convert_char_to_pinyin`` token lists and ``chunk_text``
    batches)."""
    path = Path(folder) / "frontend.json"
    if not path.is_file():
        raise InputError(f"{path} not found (an F5-TTS front-end folder holds frontend.json)")
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not JSON: {exc}") from exc
    results: list[tuple[str, bool, str]] = []
    for i, case in enumerate(data.get("convert_char_to_pinyin", [])):
        got, want = text_tokens(case["text"]), list(case["tokens"])
        results.append((f"tokens[{i}] {_case_name(case['text'])!r}", got == want, _difference(got, want, "token")))
    for i, case in enumerate(data.get("chunk_text", [])):
        got, want = chunk_text(case["text"], int(case["max_chars"])), list(case["chunks"])
        name = f"chunks[{i}] max_chars={case['max_chars']} {_case_name(case['text'])!r}"
        results.append((name, got == want, _difference(got, want, "batch")))
    if not results:
        raise InputError(f"{path} holds no convert_char_to_pinyin or chunk_text cases")
    return results


def _difference(got: list[str], want: list[str], what: str) -> str:
    plural = {"batch": "batches"}.get(what, f"{what}s")
    if got == want:
        return f"{len(want)} {plural} identical"
    for k, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"{what} {k}: got {a!r}, upstream {b!r}"
    return f"{len(got)} {plural}, upstream {len(want)}"
