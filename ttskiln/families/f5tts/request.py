"""One synth request, from inputs to the arrays the sampler reads: the reference audio, the
reference text and the texts to speak checked against the model's vocabulary and frame
limits (``prepare``), a long text split into batches with upstream's budget (``split_texts``)
and the batches' audio joined again (``join_batches``). See ``chain`` for the whole chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.audio_io import read_audio, write_audio
from ttskiln.errors import ConfigError, InputError
from ttskiln.families.f5tts.audio import log_mel, normalize_reference
from ttskiln.families.f5tts.config import TEXT_MAX_POSITIONS, F5Config
from ttskiln.families.f5tts.sampler import estimate_duration
from ttskiln.families.f5tts.vocab import PAD_ID, char_tokens, prompt_text, spoken_reference

#: The released models are trained and used up to 3000 frames (about 32 s at 24 kHz).
DEFAULT_MAX_FRAMES = 3000
#: Smallest reference: 3 hops (the mel front end needs more than n_fft / 2 samples).
MIN_REF_FRAMES = 3


def max_frames_option(options: dict[str, Any], default: int = DEFAULT_MAX_FRAMES) -> int:
    """The largest total duration (frames) a request may have (``options.max_frames``)."""
    value = options.get("max_frames", default)
    try:
        frames = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"options.max_frames must be an integer, got {value!r}") from None
    if not 2 <= frames <= TEXT_MAX_POSITIONS:
        raise ConfigError(f"options.max_frames must be in [2, {TEXT_MAX_POSITIONS}] (upstream's text position table), got {frames}")
    return frames


def text_ids(text: str, vocab: dict[str, int], what: str = "text") -> list[int]:
    """Character ids of ``text``; InputError for an empty text or characters not in ``vocab``."""
    if not text or not text.strip():
        raise InputError(f"the {what} is empty; give some words to speak")
    tokens = char_tokens(text)
    missing = sorted({t for t in tokens if t not in vocab})
    if missing:
        shown = " ".join(repr(c) for c in missing[:20])
        raise InputError(
            f"the {what} holds {len(missing)} token(s) missing from the model's vocab.txt: {shown} "
            "(Chinese characters read as TONE3 pinyin); remove or replace them (upstream would read them as a space)"
        )
    return [vocab[t] for t in tokens]


def read_wav(path: str | Path, sample_rate: int = 24000) -> np.ndarray:
    """An audio file (any bit depth, float, any channel count, any rate) as mono float32 at
    ``sample_rate`` (channels averaged, soxr resampling; ``audio_io.read_audio``)."""
    return read_audio(path, sample_rate)[0]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int = 24000, subtype: str = "PCM_16") -> None:
    """Write mono float audio as 16-bit PCM (clipped to [-1, 1]) or 32-bit float, atomically."""
    write_audio(path, audio, sample_rate, subtype)


@dataclass(frozen=True)
class Prepared:
    """What the sampler and the vocoder need for a batch of requests (one shared reference).

    cond [B, ref_len + 1, M]; ids [B, nt] (-1 pads); durations [B] total frames; ref_len:
    frames cut from the output; gain: the reference's normalisation gain.
    """

    cond: np.ndarray
    ids: np.ndarray
    durations: np.ndarray
    ref_len: int
    gain: float

    @property
    def batch(self) -> int:
        return int(self.cond.shape[0])

    @property
    def out_frames(self) -> np.ndarray:
        return self.durations - self.ref_len


def prepare(
    cfg: F5Config,
    vocab: dict[str, int],
    ref_audio: np.ndarray,
    ref_text: str,
    texts: Sequence[str],
    *,
    sample_rate: int = 24000,
    duration_s: float | None = None,
    durations: Sequence[int] | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
    speed: float = 1.0,
    max_tokens: int | None = None,
) -> Prepared:
    """Check a batch of requests and lay them out. ``durations`` (total frames per request)
    wins over ``duration_s`` (total seconds, upstream's ``fix_duration``), which wins over
    upstream's estimate. ``max_tokens`` crops each prompt (the chain job fits its fixed texts
    into small points)."""
    if not texts:
        raise InputError("no text to synthesise; give at least one --text")
    hop = cfg.hop_length
    wave_, gain = normalize_reference(ref_audio, sample_rate, cfg.sample_rate)
    ref_len = wave_.size // hop
    if ref_len < MIN_REF_FRAMES:
        raise InputError(f"the reference audio is {wave_.size} samples; give at least {MIN_REF_FRAMES * hop} "
                         f"({MIN_REF_FRAMES * hop / cfg.sample_rate:.3f} s)")
    if ref_len + 2 > max_frames:
        raise InputError(
            f"the reference audio is {wave_.size / cfg.sample_rate:.2f} s ({ref_len + 1} frames); with the generated speech it must "
            f"fit in max_frames {max_frames} ({max_frames * hop / cfg.sample_rate:.2f} s): give a shorter reference"
        )
    text_ids(ref_text, vocab, "reference text")
    rows = []
    for i, text in enumerate(texts):
        what = "text" if len(texts) == 1 else f"text {i + 1}"
        text_ids(text, vocab, what)
        ids = text_ids(prompt_text(ref_text, text), vocab, what)
        rows.append(ids[:max_tokens] if max_tokens else ids)
    if durations is not None:
        wanted = [int(d) for d in durations]
    elif duration_s is not None:
        if not duration_s > 0:
            raise InputError(f"duration must be positive seconds, got {duration_s}")
        frames = int(duration_s * cfg.sample_rate / hop)
        if frames <= ref_len + 1:
            raise InputError(f"duration {duration_s} s is the total, reference included; the reference alone is "
                             f"{wave_.size / cfg.sample_rate:.2f} s: ask for a duration longer than the reference")
        wanted = [frames] * len(texts)
    else:
        # Upstream estimates from the reference text as it prepared it (ending in ". ").
        wanted = [estimate_duration(wave_.size, spoken_reference(ref_text), text, speed=speed, hop_length=hop)
                  for text in texts]
    totals = []
    for i, (ids, frames) in enumerate(zip(rows, wanted)):
        need = max(len(ids), ref_len + 1) + 1
        total = max(need, frames)
        if total > max_frames:
            why = (f"{len(ids)} text tokens need {need} frames" if need > frames
                   else f"the requested duration is {frames} frames ({frames * hop / cfg.sample_rate:.2f} s, reference included)")
            raise InputError(f"request {i + 1}: {why}, beyond max_frames {max_frames} "
                             f"({max_frames * hop / cfg.sample_rate:.2f} s); shorten the text or the duration, or split the text")
        if total - ref_len < 2:
            raise InputError(f"request {i + 1}: {total} frames in all leave {total - ref_len} after the reference "
                             f"({ref_len} frames); ask for a duration longer than the reference")
        totals.append(total)
    width = max(len(r) for r in rows)
    ids_batch = np.full((len(rows), width), PAD_ID, dtype=np.int64)
    for i, ids in enumerate(rows):
        ids_batch[i, : len(ids)] = ids
    cond = np.repeat(log_mel(wave_, sample_rate=cfg.sample_rate, hop_length=hop, n_mels=cfg.mel_dim), len(rows), axis=0)
    return Prepared(cond=cond, ids=ids_batch, durations=np.asarray(totals, dtype=np.int64), ref_len=ref_len, gain=gain)


# -- long text -------------------------------------------------------------------------------
def split_texts(texts: Sequence[str], ref_text: str, ref_seconds: float, speed: float = 1.0) -> tuple[list[str], list[int], int]:
    """(batches of all texts in order, batches per text, the byte budget): each text split by
    ``frontend.chunk_text`` with upstream's budget for this reference (``max_chars_for`` of the
    reference text as upstream prepares it and the reference's length in seconds)."""
    from ttskiln.families.f5tts.frontend import chunk_text, max_chars_for

    budget = max_chars_for(spoken_reference(ref_text), ref_seconds, speed)
    batches: list[str] = []
    counts: list[int] = []
    for i, text in enumerate(texts):
        parts = [p for p in chunk_text(text, budget) if p.strip()]
        if not parts:
            what = "text" if len(texts) == 1 else f"text {i + 1}"
            raise InputError(f"the {what} is empty; give some words to speak")
        batches += parts
        counts.append(len(parts))
    return batches, counts, budget


def join_batches(audio: Sequence[np.ndarray], counts: Sequence[int], sample_rate: int,
                 seconds: float | None = None) -> list[np.ndarray]:
    """One waveform per text: its batches' audio (``counts[i]`` in order) joined by
    ``frontend.cross_fade`` (linear fades over ``seconds``, default upstream's 0.15 s)."""
    from ttskiln.families.f5tts.frontend import CROSS_FADE_SECONDS, cross_fade

    if sum(counts) != len(audio):
        raise InputError(f"{len(audio)} waveforms for {sum(counts)} batches")
    fade = CROSS_FADE_SECONDS if seconds is None else seconds
    out, start = [], 0
    for n in counts:
        out.append(cross_fade(audio[start:start + n], sample_rate, fade))
        start += n
    return out
