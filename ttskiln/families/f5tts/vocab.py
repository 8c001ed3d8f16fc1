"""The F5-TTS ``vocab.txt``: token <-> id, read the way upstream reads it.

Each line of the file is one token and its line index is the token id. The file is read in
text mode (so CRLF and LF both end a line) as UTF-8, and exactly the last character of each
line is removed (the newline), never stripped: a token may be a single space (id 0 by
convention) or another whitespace character. A last line without a newline therefore loses
its last character, as upstream does. A token that appears twice keeps its later index, and
the embedding table has ``len(mapping) + 1`` rows (row 0 is the filler).

Ids given to the model: the token's index, or 0 for a token not in the vocabulary (0 is
the space in the released vocabularies); -1 pads a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ttskiln.errors import CheckpointError

UNKNOWN_ID = 0
PAD_ID = -1
#: Upstream's character fixes before tokenising (out-of-vocabulary punctuation).
CHAR_FIXES = str.maketrans({";": ",", "\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


def read_vocab(path: str | Path) -> dict[str, int]:
    """token -> id from a ``vocab.txt``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"vocabulary file {path} not found (F5-TTS needs the vocab.txt it was trained with)")
    mapping: dict[str, int] = {}
    try:
        with path.open("r", encoding="utf-8") as fh:
            for index, line in enumerate(fh):
                mapping[line[:-1]] = index
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{path} is not UTF-8 text: {exc}") from exc
    if not mapping:
        raise CheckpointError(f"{path} is empty; an F5-TTS vocab.txt has one token per line")
    return mapping


def write_vocab(tokens: Sequence[str], path: str | Path) -> None:
    """Write tokens one per line, each ending in a newline (the released layout)."""
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for token in tokens:
            fh.write(token + "\n")


#: Default texts of the chain job (``options.reference_text`` and ``options.chain_texts``
#: replace them): one Chinese, one English and one mixed sentence, and a text long enough to
#: need two batches at the demo's point (256 frames: a 0.91 s reference saying "Hello." gives
#: upstream's budget of 162 bytes). A released vocab.txt holds their tokens, and so does the
#: synthetic one of the released size (``vocab.synthetic_tokens``).
CHAIN_SPEECH_REF_TEXT = "Hello."
CHAIN_SPEECH_TEXTS = (
    "今天天气很好，我们一起去公园散步吧。",
    "The quick brown fox jumps over the lazy dog.",
    "我昨天用iPhone拍了一张照片，效果非常好。",
    "Speech synthesis turns written words into sound. A long passage is cut at the ends of its sentences "
    "into batches that fit the reference; each batch is spoken on its own, and the pieces are joined with a short "
    "cross-fade.",
)

def synthetic_tokens(count: int) -> list[str]:
    """``count`` distinct tokens laid out like a released vocabulary: the space first, then
    printable ASCII, then the TONE3 pinyin syllables the chain's default texts read (so a
    vocabulary of the released size speaks them), then pinyin-like filler syllables."""
    if count < 1:
        raise CheckpointError(f"a vocabulary needs at least one token, got {count}")
    tokens = [" "] + [chr(c) for c in range(33, 127)]
    if count > len(tokens):
        for text in (CHAIN_SPEECH_REF_TEXT, *CHAIN_SPEECH_TEXTS):
            for token in char_tokens(text):
                if token not in tokens:
                    tokens.append(token)
    index = 0
    while len(tokens) < count:
        if f"syl{index}{index % 5 + 1}" not in tokens:
            tokens.append(f"syl{index}{index % 5 + 1}")
        index += 1
    return tokens[:count]


def tokens_to_ids(tokens: Iterable[str], vocab: dict[str, int]) -> np.ndarray:
    """Ids (int64, shape [len(tokens)]) of a token list; unknown tokens map to 0."""
    return np.asarray([vocab.get(token, UNKNOWN_ID) for token in tokens], dtype=np.int64).reshape(-1)


def batch_ids(token_lists: Sequence[Sequence[str]], vocab: dict[str, int]) -> np.ndarray:
    """A padded id batch [B, longest] (int64, -1 after each row's tokens)."""
    rows = [tokens_to_ids(tokens, vocab) for tokens in token_lists]
    width = max((len(r) for r in rows), default=0)
    out = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def spoken_reference(ref_text: str) -> str:
    """The reference text made to end in ". " (unless it ends in "。"), as upstream prepares it
    before it derives the batch budget from it."""
    if not ref_text.endswith(". ") and not ref_text.endswith("\u3002"):
        ref_text += " " if ref_text.endswith(".") else ". "
    return ref_text


def prompt_text(ref_text: str, gen_text: str) -> str:
    """The text the model reads: ``spoken_reference(ref_text)``, one more space when it ends in
    a 1-byte character, then the new text."""
    ref_text = spoken_reference(ref_text)
    if ref_text and len(ref_text[-1].encode("utf-8")) == 1:
        ref_text += " "
    return ref_text + gen_text


def char_tokens(text: str) -> list[str]:
    """The tokens the model reads for ``text``: the F5 front end (``frontend.text_tokens``:
    upstream's character fixes, word segmentation, pinyin for Chinese characters)."""
    from ttskiln.families.f5tts.frontend import text_tokens

    return text_tokens(text)
