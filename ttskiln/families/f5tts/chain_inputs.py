"""What the ``synth`` chain job speaks and with which limits: its texts (the model entry's or
defaults its vocabulary spells, fitted to a point), the reference audio, the layout of a point
(requests, reference frames), the check that every batch fits a point (run when the plan is
built) and the chain's tolerances.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ttskiln.audio_io import read_audio
from ttskiln.errors import ConfigError, InputError
from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.request import MIN_REF_FRAMES, split_texts, text_ids
from ttskiln.families.f5tts.vocab import CHAIN_SPEECH_REF_TEXT, CHAIN_SPEECH_TEXTS, char_tokens, prompt_text

CHAIN = "synth"

#: Chain-only model options (``read_config`` accepts them; they do not change the graph).
CHAIN_OPTION_KEYS = ("vocoder", "max_frames", "chain_texts", "reference_text", "reference_audio")
#: Drift of the ONNX chain from the PyTorch chain after the whole loop (N steps, then the
#: vocoder). Per-call fp32 differences (~1e-6) grow through the ODE and the vocoder's exp(),
#: so these are looser than the per-graph tolerances. Keys a model entry's ``tolerances`` set
#: to other values than the family defaults override them (see ``chain_tolerances``).
CHAIN_TOLERANCES: dict[str, dict[str, float]] = {
    "mel": {"max_abs_err": 1e-2, "cosine": 0.9999, "snr_db": 40.0},
    "wave": {"max_abs_err": 1e-2, "cosine": 0.999, "snr_db": 30.0, "mrstft": 0.05, "logmel_l1": 0.02},
}
# The default texts of the chain job live with the vocabulary that spells them (``vocab``):
# a synthetic checkpoint's vocabulary is made from them, without running chain code.
#: Within the tiny synthetic vocabulary (" " and ASCII 33..71: punctuation, digits, A-G), the
#: defaults of a vocabulary without the ones above. For a vocabulary without these either,
#: ``chain_texts`` draws words from its own characters.
CHAIN_REF_TEXT = "A BAD CAFE, 1 2 3."
CHAIN_GEN_TEXTS = ("FADE 4 5 6, ACE 7 8 9.", "BEAD 9 8, CAGED 7 6.", "DECAF 5, BADGE 4 3 2 1.")
#: Limits of a reduced-precision TensorRT-LLM engine's chain against PyTorch fp32 (explicit
#: tolerances in the model entry override them). Set from the fp16 ONNX drift, not yet
#: measured on an engine: no GPU was available where they were chosen.
TRTLLM_CHAIN_TOLERANCES: dict[str, dict[str, float]] = {
    "mel": {"cosine": 0.999, "snr_db": 25.0},
    "wave": {"cosine": 0.99, "snr_db": 15.0, "mrstft": 0.2, "logmel_l1": 0.1},
}


def chain_texts(options: dict[str, Any], vocab: dict[str, int]) -> tuple[str, tuple[str, ...]]:
    """(reference text, texts to speak) of the synth chain: the model entry's
    ``options.reference_text`` / ``options.chain_texts``, else the defaults when the vocabulary
    holds their characters, else words of the vocabulary's own single-character tokens.
    ConfigError (naming the option and the characters) for a text the vocabulary cannot spell."""
    given = options.get("chain_texts")
    if given is not None and (not isinstance(given, list) or not given or not all(isinstance(t, str) for t in given)):
        raise ConfigError(f"options.chain_texts must be a non-empty list of texts, got {given!r}")
    ref = options.get("reference_text")
    if ref is not None and not isinstance(ref, str):
        raise ConfigError(f"options.reference_text must be a text, got {ref!r}")
    defaults = (CHAIN_SPEECH_REF_TEXT, *CHAIN_SPEECH_TEXTS)
    if not all(t in vocab for text in defaults for t in char_tokens(text)):
        defaults = (CHAIN_REF_TEXT, *CHAIN_GEN_TEXTS)
    if not all(t in vocab for text in defaults for t in char_tokens(text)):
        letters = [t for t in vocab if len(t) == 1 and t.isalnum()] or [t for t in vocab if len(t) == 1 and not t.isspace()]
        if not letters:
            raise ConfigError("the model's vocab.txt holds no single-character token to write chain texts with; "
                              "give options.reference_text and options.chain_texts")
        space = " " if " " in vocab else ""
        words = ["".join(letters[(i * 3 + j) % len(letters)] for j in range(4)) for i in range(12)]
        defaults = tuple(space.join(words[k:k + 3]) for k in range(0, 12, 3))
    ref = defaults[0] if ref is None else ref
    texts = tuple(given) if given is not None else tuple(defaults[1:])
    for what, text in (("options.reference_text", ref), *(("options.chain_texts", t) for t in texts)):
        try:
            text_ids(text, vocab, what)
        except InputError as exc:
            raise ConfigError(str(exc)) from None
    return ref, texts


def fitted_chain_texts(options: dict[str, Any], vocab: dict[str, int], frames: int) -> tuple[str, tuple[str, ...]]:
    """``chain_texts`` for a point of ``frames``: texts the model entry gives are kept as they
    are (``check_chain_fit`` refuses them at plan time when they do not fit), while the family's
    defaults are cut after a word so that the reference and each text fit the point's frames."""
    from ttskiln.families.base import shortest_fit

    ref, texts = chain_texts(options, vocab)
    limit = max(frames - 1, 1)

    def count(ref_text: str, text: str) -> int:
        return len(char_tokens(prompt_text(ref_text, text)))

    if options.get("reference_text") is None:
        first = texts[0].split(" ")[0] if texts else ""
        ref = shortest_fit(ref, lambda r: count(r, first), limit)
    if options.get("chain_texts") is None:
        texts = tuple(shortest_fit(t, lambda head: count(ref, head), limit) for t in texts)
    return ref, texts


def check_chain_fit(cfg: F5Config, vocab: dict[str, int], ref_text: str, texts: Sequence[str], frames: int,
                    batch: int, where: str) -> list[int]:
    """Batches per text at a point of ``frames`` x ``batch``: the texts split as the chain splits
    them (the reference is a third of the frames), each batch's prompt within the point's
    frames (ConfigError otherwise: the chain would crop it)."""
    requests, ref_len = chain_layout(frames, batch)
    batches, counts, budget = split_texts(texts, ref_text, ref_len * cfg.hop_length / cfg.sample_rate)
    for text in batches:
        tokens = len(char_tokens(prompt_text(ref_text, text)))
        if tokens > frames - 1:
            raise ConfigError(f"{where}: a batch of the chain texts ({text[:40]!r}..., {budget}-byte batches for this "
                              f"reference) reads {tokens} tokens with the reference text, beyond the {frames - 1} the point's {frames} frames "
                              "hold; give shorter sentences or more frames")
    return counts


def chain_reference(options: dict[str, Any], ref_len: int, cfg: F5Config, seed: int) -> tuple[np.ndarray, dict[str, Any] | None]:
    """(reference audio of ``ref_len`` hops, what its file held) for the chain job: the file
    ``options.reference_audio`` (read by ``audio_io.read_audio`` at the model's rate, cut or
    repeated to the point's reference length), else ``synthetic_reference`` (and None)."""
    path = options.get("reference_audio")
    if path is None:
        return synthetic_reference(ref_len, seed, cfg.sample_rate, cfg.hop_length), None
    audio, info = read_audio(path, cfg.sample_rate)
    samples = ref_len * cfg.hop_length
    audio = np.resize(audio, samples).astype(np.float32) if audio.size < samples else audio[:samples]
    return audio, {"path": str(path), **info.as_dict()}


def synthetic_reference(frames: int, seed: int, sample_rate: int = 24000, hop: int = 256) -> np.ndarray:
    """Seeded speech-like audio of ``frames * hop`` samples: a gliding harmonic tone with a
    syllable envelope and breath noise, RMS below 0.1 (so the gain path runs)."""
    rng = np.random.default_rng(seed)
    n = frames * hop
    t = np.arange(n) / sample_rate
    f0 = 110.0 + 30.0 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 2 * np.pi))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    voiced = sum(np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t + rng.uniform(0, 2 * np.pi))
    audio = 0.02 * envelope * voiced + 0.003 * rng.standard_normal(n)
    return audio.astype(np.float32)


def chain_tolerances(given: dict[str, float], family_defaults: dict[str, float],
                     base: dict[str, dict[str, float]] | None = None) -> dict[str, dict[str, float]]:
    """``base`` (default ``CHAIN_TOLERANCES``) with the keys a model entry set (to values other
    than the family's per-graph defaults, which every entry inherits) merged over both the mel
    and the wave limits."""
    base = base or CHAIN_TOLERANCES
    explicit = {k: float(v) for k, v in given.items() if family_defaults.get(k) != v}
    mel_keys = {"max_abs_err", "mse", "cosine", "snr_db"}
    return {
        "mel": {**base["mel"], **{k: v for k, v in explicit.items() if k in mel_keys}},
        "wave": {**base["wave"], **explicit},
    }


def chain_layout(frames: int, batch: int) -> tuple[int, int]:
    """(requests, reference frames) of the chain job at a point: graph rows = 2 x requests;
    a third of the frames (at least ``MIN_REF_FRAMES``) is reference."""
    if frames < MIN_REF_FRAMES + 2:
        raise ConfigError(f"the synth chain needs points of at least {MIN_REF_FRAMES + 2} frames, got {frames}")
    return max(1, batch // 2), max(MIN_REF_FRAMES, min(frames // 3, frames - 2))
