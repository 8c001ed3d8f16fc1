"""Text -> token ids for Coqui VITS / YourTTS, from the checkpoint's own ``config.json``.

Coqui's tokenizer (``TTSTokenizer.init_from_config(config).text_to_ids``) in three steps, each
driven by a config.json entry:

1. the cleaner named by ``text_cleaner`` (those that need no language tools: see ``CLEANERS``);
2. one id per character found in the id table; characters not in it are dropped;
3. with ``add_blank``, the blank id before, between and after the ids; with
   ``enable_eos_bos_chars``, the bos id first and the eos id last.

The id table comes from the ``characters`` block and its ``characters_class``:

* ``...vits.VitsCharacters`` (the released YourTTS): pad, the punctuations, the characters
  (followed by ``phonemes`` when set), then the blank ``<BLNK>``; this class ignores the
  block's ``eos``/``bos``/``blank`` entries and its ``is_sorted``/``is_unique`` flags;
* anything else (no class named: Coqui's graphemes): the characters (deduplicated when
  ``is_unique``, sorted when ``is_sorted``), preceded by the pad, eos, bos and blank that are
  set (pad first), then the punctuations. An unset blank/bos/eos takes the id one past the
  table, as upstream.

A repeated symbol maps to its last position. Models that read phonemes (``use_phonemes``) need
a phonemizer (espeak and friends), which this front end does not run: they are refused. For
character models the language does not change the ids; it selects the language embedding.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ttskiln.errors import CheckpointError, InputError

VITS_CHARACTERS = "VitsCharacters"
VITS_BLANK = "<BLNK>"
#: Characters-block defaults of Coqui's config class, for keys a config.json leaves out.
BLOCK_DEFAULTS = {"pad": "<PAD>", "eos": None, "bos": None, "blank": None, "is_unique": True, "is_sorted": True}

_WHITESPACE = re.compile(r"\s+")
_AUX_SYMBOLS = re.compile(r"[<>()\[\]\"]+")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _symbols(text: str, lang: str | None) -> str:
    """Semicolons and colons become commas, hyphens spaces; ``&`` is spelled out per language."""
    text = text.replace(";", ",")
    text = text.replace("-", "" if lang == "ca" else " ")
    text = text.replace(":", ",")
    conjunction = {"en": "and", "fr": "et", "pt": "e", "ca": "i"}.get(lang or "")
    if conjunction:
        text = text.replace("&", f" {conjunction} ")
    if lang == "ca":
        text = text.replace("'", "")
    return text


def _multilingual(text: str) -> str:
    return _collapse(_AUX_SYMBOLS.sub("", _symbols(_nfc(text).lower(), None)))


def _portuguese(text: str) -> str:
    return _collapse(_AUX_SYMBOLS.sub("", _symbols(_nfc(text).lower(), "pt")))


def _basic(text: str) -> str:
    return _collapse(_nfc(text).lower())


def _turkish(text: str) -> str:
    return _collapse(_nfc(text).replace("I", "\u0131").lower())


def _none(text: str) -> str:
    return text.replace("\n", "")


#: Coqui cleaner name -> the same steps. Cleaners that expand numbers, times or abbreviations
#: (english_cleaners, phoneme_cleaners, french_cleaners, chinese_mandarin_cleaners) are not here.
CLEANERS: dict[str, Callable[[str], str]] = {
    "multilingual_cleaners": _multilingual,
    "portuguese_cleaners": _portuguese,
    "basic_cleaners": _basic,
    "transliteration_cleaners": _basic,
    "basic_german_cleaners": _basic,
    "basic_turkish_cleaners": _turkish,
    "no_cleaners": _none,
}


@dataclass(frozen=True)
class TextFrontEnd:
    """The id table, cleaner and blank/bos/eos settings of one model."""

    vocab: tuple[str, ...]
    cleaner: Callable[[str], str] | None
    add_blank: bool
    use_eos_bos: bool
    blank_id: int
    bos_id: int
    eos_id: int

    @property
    def ids(self) -> dict[str, int]:
        return {symbol: i for i, symbol in enumerate(self.vocab) if symbol is not None}

    def clean(self, text: str) -> str:
        return self.cleaner(text) if self.cleaner is not None else text

    def text_to_ids(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise InputError(f"text must be a string, got {type(text).__name__}")
        table = self.ids
        ids = [table[ch] for ch in self.clean(text) if ch in table]
        if self.add_blank:
            spaced = [self.blank_id] * (2 * len(ids) + 1)
            spaced[1::2] = ids
            ids = spaced
        if self.use_eos_bos:
            ids = [self.bos_id, *ids, self.eos_id]
        return ids

    def dropped(self, text: str) -> list[str]:
        """Characters of the cleaned text that are not in the id table (dropped), in order."""
        table = self.ids
        seen: list[str] = []
        for ch in self.clean(text):
            if ch not in table and ch not in seen:
                seen.append(ch)
        return seen


def _string(block: dict[str, Any], key: str, source: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise CheckpointError(f"{source}: characters.{key} must be a string, got {value!r}")
    return value


def front_end(config: dict[str, Any], source: str = "config.json") -> TextFrontEnd:
    """The text front end a Coqui VITS config.json describes (CheckpointError if it cannot be
    reproduced here)."""
    if config.get("use_phonemes"):
        raise CheckpointError(f"{source}: use_phonemes is set; this model reads phonemes, which need a phonemizer "
                              "(espeak) that ttskiln does not run")
    block = config.get("characters")
    if not isinstance(block, dict):
        raise CheckpointError(f"{source}: no 'characters' block (the id table of the model's text)")
    block = {**BLOCK_DEFAULTS, **block}
    cleaner_name = config.get("text_cleaner")
    cleaner = None
    if cleaner_name is not None:
        if cleaner_name not in CLEANERS:
            raise CheckpointError(f"{source}: text_cleaner {cleaner_name!r} is not reproduced here; known: {sorted(CLEANERS)}")
        cleaner = CLEANERS[cleaner_name]
    characters = _string(block, "characters", source)
    punctuations = _string(block, "punctuations", source)
    klass = str(block.get("characters_class") or "")
    if klass.rsplit(".", 1)[-1] == VITS_CHARACTERS:
        phonemes = block.get("phonemes") or ""
        vocab: list[Any] = [block.get("pad"), *punctuations, *(characters + phonemes), VITS_BLANK]
        specials = {"blank": VITS_BLANK, "bos": None, "eos": None}
    elif klass and klass.rsplit(".", 1)[-1] not in ("Graphemes", "BaseCharacters"):
        raise CheckpointError(f"{source}: characters_class {klass!r} is not supported (VitsCharacters or graphemes)")
    else:
        symbols = list(characters)
        if block["is_unique"]:
            if not block["is_sorted"]:
                raise CheckpointError(f"{source}: characters.is_unique without is_sorted gives no fixed order upstream")
            symbols = list(set(symbols))
        if block["is_sorted"]:
            symbols = sorted(symbols)
        head = [block[k] for k in ("pad", "eos", "bos", "blank") if block[k]]
        vocab = [*head, *symbols, *punctuations]
        specials = {k: block[k] or None for k in ("blank", "bos", "eos")}
    front = TextFrontEnd(tuple(vocab), cleaner, bool(config.get("add_blank", False)), bool(config.get("enable_eos_bos_chars", False)),
                         0, 0, 0)
    table = front.ids

    def special(name: str) -> int:
        symbol = specials[name]
        return table[symbol] if symbol else len(vocab)

    return TextFrontEnd(front.vocab, cleaner, front.add_blank, front.use_eos_bos, special("blank"), special("bos"), special("eos"))


def check_vocabulary(front: TextFrontEnd, num_chars: int, source: str) -> None:
    """The id table must fit the model's text embedding (``num_chars`` rows)."""
    top = max([len(front.vocab) - 1] + ([front.blank_id] if front.add_blank else [])
              + ([front.bos_id, front.eos_id] if front.use_eos_bos else []))
    if top >= num_chars:
        raise CheckpointError(f"{source}: the characters block makes ids up to {top}; the model embeds {num_chars} "
                              "(model_args.num_chars)")


def language_id(languages: dict[str, int] | None, language: str | None, source: str = "language_ids.json") -> int | None:
    """The language embedding row for ``language`` (None for a model without one)."""
    if not languages:
        if language is not None:
            raise InputError(f"this model has no language embedding; leave the language out (got {language!r})")
        return None
    if language is None:
        raise InputError(f"this model needs a language, one of {sorted(languages)} ({source})")
    if language not in languages:
        raise InputError(f"language {language!r} is not in {source}; known: {sorted(languages)}")
    return int(languages[language])


def frontend_parity(folder: Any) -> list[tuple[str, bool, str]]:
    """Every case of a front-end fixture (``frontend.json``: ``configs`` and ``cases``)."""
    import json
    from pathlib import Path

    path = Path(folder) / "frontend.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        configs, cases = data["configs"], data["cases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a VITS front-end record ({exc})") from exc
    fronts = {name: front_end(block, f"{path}: configs.{name}") for name, block in configs.items()}
    results = []
    for i, case in enumerate(cases):
        name = f"{case['config']}[{i}] {case.get('language')}"
        got = fronts[case["config"]].text_to_ids(case["text"])
        ok = got == list(case["ids"])
        detail = repr(case["text"]) if ok else f"{case['text']!r}: got {got}, upstream {case['ids']}"
        results.append((name, ok, detail))
    return results
