"""Text -> token ids for Tortoise: English normalisation, then the BPE of the user's tokenizer.json.

As Tortoise's ``VoiceBpeTokenizer.encode`` does it (``english_cleaners``, with the libraries it
uses: ``unidecode``, ``inflect``, ``tokenizers``):

1. transliterate to ASCII (unidecode), lower-case;
2. numbers: drop thousands commas (``1,234``), ``£N`` -> ``N pounds``, ``$D.C`` -> dollars and
   cents, ``N.M`` -> ``N point M``, ordinals (``21st``) and cardinals spelled out by inflect;
   years 1001-2999 are read in pairs (``nineteen ninety-nine``, ``two thousand five``);
3. abbreviations with a full stop (``dr.``, ``mrs.``, ``lt.``...) expanded;
4. whitespace runs collapsed to one space (not stripped), double quotes removed;
5. spaces become ``[SPACE]`` and the tokenizer's BPE gives the ids.

Upstream's ``TextToSpeech.tts`` then appends one 0 (``pad_for_generation``); the GPT adds its
start and stop text tokens itself (inside the ``prefill`` graph here).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from ttskiln.errors import InputError

_ABBREVIATIONS = (
    ("mrs", "misess"), ("mr", "mister"), ("dr", "doctor"), ("st", "saint"), ("co", "company"), ("jr", "junior"),
    ("maj", "major"), ("gen", "general"), ("drs", "doctors"), ("rev", "reverend"), ("lt", "lieutenant"),
    ("hon", "honorable"), ("sgt", "sergeant"), ("capt", "captain"), ("esq", "esquire"), ("ltd", "limited"),
    ("col", "colonel"), ("ft", "fort"),
)
_ABBREVIATION_RES = tuple((re.compile(rf"\b{short}\.", re.IGNORECASE), full) for short, full in _ABBREVIATIONS)
_GROUPED = re.compile(r"([0-9][0-9,]+[0-9])")
_DECIMAL = re.compile(r"([0-9]+\.[0-9]+)")
_POUNDS = re.compile(r"£([0-9,]*[0-9]+)")
_DOLLARS = re.compile(r"\$([0-9.,]*[0-9]+)")
_ORDINAL = re.compile(r"[0-9]+(st|nd|rd|th)")
_CARDINAL = re.compile(r"[0-9]+")
_WHITESPACE = re.compile(r"\s+")
#: What the text becomes before the BPE.
SPACE_TOKEN = "[SPACE]"
#: The id ``TextToSpeech.tts`` appends after the text ids.
PAD_ID = 0
TOKENIZER_FILE = "tokenizer.json"
#: The released vocabulary's first entries: the specials, the punctuation the cleaners keep,
#: the letters (the released file then adds BPE merges). A synthetic tokenizer is these alone.
BASE_SYMBOLS = ("[STOP]", "[UNK]", SPACE_TOKEN, *"!'(),-./:;?", *"abcdefghijklmnopqrstuvwxyz")
UNK_TOKEN = "[UNK]"


@lru_cache(maxsize=1)
def _engine() -> Any:
    import inflect

    return inflect.engine()


def _unit(count: int, singular: str) -> str:
    return f"{count} {singular if count == 1 else singular + 's'}"


def _dollars(match: re.Match) -> str:
    amount = match.group(1)
    parts = amount.split(".")
    if len(parts) > 2:
        return amount + " dollars"
    whole = int(parts[0]) if parts[0] else 0
    cents = int(parts[1]) if len(parts) > 1 and parts[1] else 0
    if whole and cents:
        return f"{_unit(whole, 'dollar')}, {_unit(cents, 'cent')}"
    if whole:
        return _unit(whole, "dollar")
    if cents:
        return _unit(cents, "cent")
    return "zero dollars"


def _cardinal(match: re.Match) -> str:
    words = _engine().number_to_words
    n = int(match.group(0))
    if not 1000 < n < 3000:
        return words(n, andword="")
    if n == 2000:
        return "two thousand"
    if 2000 < n < 2010:
        return "two thousand " + words(n % 100)
    if n % 100 == 0:
        return words(n // 100) + " hundred"
    return words(n, andword="", zero="oh", group=2).replace(", ", " ")


def spell_numbers(text: str) -> str:
    text = _GROUPED.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _POUNDS.sub(r"\1 pounds", text)
    text = _DOLLARS.sub(_dollars, text)
    text = _DECIMAL.sub(lambda m: m.group(1).replace(".", " point "), text)
    text = _ORDINAL.sub(lambda m: _engine().number_to_words(m.group(0)), text)
    return _CARDINAL.sub(_cardinal, text)


def english_cleaners(text: str) -> str:
    from unidecode import unidecode

    text = spell_numbers(unidecode(text).lower())
    for pattern, full in _ABBREVIATION_RES:
        text = pattern.sub(full, text)
    return _WHITESPACE.sub(" ", text).replace('"', "")


class TortoiseTokenizer:
    """``encode(text) -> ids`` with a Tortoise tokenizer.json (the released vocabulary file)."""

    def __init__(self, path: str | Path, text: str | None = None) -> None:
        """From a file, or from its JSON ``text`` (``path`` then only names it in messages)."""
        from tokenizers import Tokenizer

        path = Path(path)
        try:
            self.tokenizer = Tokenizer.from_str(text) if text is not None else Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises its own Exception type for malformed files
            raise InputError(f"{path}: not a readable tokenizer.json ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
        self.path = path

    def unknown(self, text: str) -> list[str]:
        """Characters of the cleaned text the vocabulary has no token for (they would read as
        ``[UNK]``), in order of appearance."""
        seen: list[str] = []
        for ch in english_cleaners(text):
            if ch != " " and ch not in seen and self.tokenizer.token_to_id(ch) is None:
                seen.append(ch)
        return seen

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size())

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        return list(self.tokenizer.encode(english_cleaners(text).replace(" ", SPACE_TOKEN)).ids)


def synthetic_tokenizer_json(number_text_tokens: int) -> str:
    """A tokenizer.json in the released layout (Whitespace pre-tokenizer, BPE, the specials as
    added tokens) over ``BASE_SYMBOLS`` without merges, cut to ids below ``number_text_tokens``."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import BPE
    from tokenizers.pre_tokenizers import Whitespace

    symbols = BASE_SYMBOLS[:number_text_tokens]
    tokenizer = Tokenizer(BPE({s: i for i, s in enumerate(symbols)}, [], unk_token=UNK_TOKEN))
    tokenizer.pre_tokenizer = Whitespace()
    tokenizer.add_special_tokens([AddedToken(s, normalized=False) for s in BASE_SYMBOLS[:3] if s in symbols])
    return tokenizer.to_str()


def frontend_parity(folder: Any, vocabulary: str = "tokenizer.json") -> list[tuple[str, bool, str]]:
    """Every recorded text of a front-end fixture (``frontend.json``'s ``encode`` list)."""
    import json

    folder = Path(folder)
    path = folder / "frontend.json"
    try:
        cases = json.loads(path.read_text(encoding="utf-8"))["encode"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a Tortoise front-end record ({exc})") from exc
    tokenizer = TortoiseTokenizer(folder / vocabulary)
    results = []
    for i, case in enumerate(cases):
        cleaned = english_cleaners(case["text"])
        got = tokenizer.encode(case["text"])
        ok = got == list(case["ids"])
        detail = repr(case["text"])[:60]
        if not ok:
            detail += f": got {got}, upstream {case['ids']}"
            if "cleaned" in case and cleaned != case["cleaned"]:
                detail += f"; cleaned {cleaned!r}, upstream {case['cleaned']!r}"
        results.append((f"encode[{i}]", ok, detail))
    return results
