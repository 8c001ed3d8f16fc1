"""Text -> waveform with F5-TTS and a Vocos vocoder: the ``synth`` chain and ``python -m ttskiln synth``.

One request is (reference audio, reference text, new text). The chain, as upstream's
``infer_batch_process`` runs it:

1. the reference audio (any file soundfile reads; averaged to mono and resampled with soxr to the
   model's rate by ``audio_io.read_audio``) is normalised to RMS 0.1 (``audio.normalize_reference``)
   and turned into the conditioning log-mel (``audio.log_mel``, ``samples // 256 + 1`` frames);
   ``ref_len = samples // 256`` frames are cut from the output;
2. a long text is split into batches by ``frontend.chunk_text`` with upstream's budget
   (``frontend.max_chars_for``: the reference text's bytes per second times the seconds left to
   22 s); each batch is one request, and the batches' audio is joined by ``frontend.cross_fade``
   (linear, 0.15 s);
3. the model reads ``prompt_text(ref_text, batch)`` as the front end's tokens
   (``frontend.text_tokens``: characters, and TONE3 pinyin for Chinese); every token must be in
   the checkpoint's ``vocab.txt`` (see ``text_ids``);
4. the total duration (reference included) is upstream's estimate from the ratio of the text
   lengths (``sampler.estimate_duration``) or ``duration_s`` seconds (upstream's
   ``fix_duration``: the total, reference included), at most ``max_frames``;
5. ``sampler.sample`` runs the Euler/CFG/sway loop (NFE steps) over a velocity backend; the
   generated frames (after ``ref_len``) go through the vocoder, mel (B, 100, T) -> audio, and
   the audio is scaled back by ``1 / gain``.

Unknown tokens: upstream maps a token missing from the vocabulary to id 0 (the space) and goes
on; here it is an ``InputError`` that names the tokens, because a silently
dropped character is a pause in the speech that nobody asked for, and with the synthetic
vocabularies (``tiny`` has 40 tokens) most of the alphabet is missing.

``max_frames`` (model option, default ``DEFAULT_MAX_FRAMES`` = 3000, the released frame range;
at most upstream's text position table, 8192) bounds the total duration of a request and so the
reference length too; a request beyond it is refused before any graph runs.

``run_chain`` (``F5TTSFamily.run_chain``) runs the chain at a profile point with ONNX Runtime
and with PyTorch from the same noise, compares them (``CHAIN_TOLERANCES``) and times them. It
speaks every batch of every chain text (``CHAIN_SPEECH_TEXTS`` by default: Chinese, English,
mixed, and a text of two batches), the point's requests at a time, each request the point's
frames long; the plan refuses a batch whose prompt does not fit them (``check_chain_fit``).
The timed calls are the first group's; the WAV holds every text, its batches cross-faded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.audio_io import read_audio, write_audio
from ttskiln.errors import ConfigError, InputError
from ttskiln.families.f5tts.audio import log_mel, normalize_reference
from ttskiln.families.f5tts.config import TEXT_MAX_POSITIONS, F5Config
from ttskiln.families.f5tts.sampler import estimate_duration, initial_noise, sample
from ttskiln.families.f5tts.vocab import PAD_ID, char_tokens, prompt_text, spoken_reference

CHAIN = "synth"
#: The released models are trained and used up to 3000 frames (about 32 s at 24 kHz).
DEFAULT_MAX_FRAMES = 3000
#: Smallest reference: 3 hops (the mel front end needs more than n_fft / 2 samples).
MIN_REF_FRAMES = 3
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
TRTLLM_BACKEND = "tensorrt-llm"
TRTLLM_ARTIFACT = "trtllm_engine"
#: The linked vocoder: its role in ``links`` and the component that turns mels into audio.
VOCODER_ROLE = "vocoder"
VOCODER_COMPONENT = "vocoder"
_DTYPE_VARIANT = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
VALIDATION_STEPS = 32
#: Silence between the texts in the chain's WAV (each text's batches cross-faded).
WAV_GAP_SECONDS = 0.3
BENCH_NFES = (16, 32)


# -- inputs ------------------------------------------------------------------------------------
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


# -- the chain ---------------------------------------------------------------------------------
Vocoder = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Synthesis:
    """mel [B, T_out, M] generated frames (zero past a row's length); audio: one waveform per
    request (``(out_frames[i] - 1) * hop`` samples for a Vocos with 'center' padding, as
    released, ``out_frames[i] * hop`` for 'same'); durations [B] total frames."""

    mel: np.ndarray
    audio: list[np.ndarray]
    durations: np.ndarray


def synthesize(
    velocity: Any,
    vocoder: Vocoder,
    prepared: Prepared,
    *,
    steps: int = 32,
    cfg_strength: float = 2.0,
    sway: float | None = -1.0,
    noise: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> Synthesis:
    """Sampling loop, cut of the reference frames, vocoder, gain undone."""
    result = sample(velocity, prepared.cond, prepared.ids, prepared.durations, steps=steps, cfg_strength=cfg_strength,
                    sway_sampling_coef=sway, noise=noise, rng=rng, max_duration=max_frames, keep_trajectory=False)
    ref = prepared.ref_len
    mel = result.out[:, ref:].copy()
    lengths = result.durations - ref
    for i, n in enumerate(lengths):
        mel[i, int(n):] = 0.0
    audio: list[np.ndarray] = []
    if len(set(lengths.tolist())) == 1:
        waves = vocoder(np.ascontiguousarray(mel.transpose(0, 2, 1)))
        audio = [np.asarray(w, dtype=np.float32) for w in waves]
    else:  # rows of different lengths: one vocoder call each (no padding inside the convolutions)
        for i, n in enumerate(lengths):
            audio.append(np.asarray(vocoder(np.ascontiguousarray(mel[i : i + 1, : int(n)].transpose(0, 2, 1)))[0], dtype=np.float32))
    if prepared.gain != 1.0:
        audio = [(a / np.float32(prepared.gain)).astype(np.float32) for a in audio]
    return Synthesis(mel=mel, audio=audio, durations=result.durations)


def vocoder_family() -> Any:
    """The family of the linked vocoder (``link_families``), from the registry."""
    from ttskiln.families import get_family

    return get_family("f5tts").linked_family(VOCODER_ROLE)


def check_vocoder(cfg: F5Config, vocoder_config: dict[str, Any], where: str) -> None:
    """The vocoder must read the F5 mel: same bands, hop and sample rate (from its family's
    ``describe``: the mel input's bands, the model's hop and rate)."""
    from ttskiln.errors import CheckpointError

    try:
        info = vocoder_family().describe(vocoder_config)
    except CheckpointError as exc:
        raise CheckpointError(f"vocoder {where}: {exc}") from None
    n_mels = info.component(VOCODER_COMPONENT).inputs[0].shape[1]
    got = (n_mels, info.hop_length, info.sample_rate)
    want = (cfg.mel_dim, cfg.hop_length, cfg.sample_rate)
    if got != want:
        raise ConfigError(
            f"vocoder {where} takes {n_mels} mels at hop {info.hop_length}, {info.sample_rate} Hz; the F5 model makes "
            f"{cfg.mel_dim} mels at hop {cfg.hop_length}, {cfg.sample_rate} Hz (for a synthetic Vocos use overrides "
            f"{{hop_length: {cfg.hop_length}, n_fft: {4 * cfg.hop_length}}})"
        )


def torch_vocoder(checkpoint: str | Path, options: dict[str, Any] | None = None) -> tuple[Vocoder, dict[str, Any]]:
    """(mel [B, M, T] -> audio [B, samples] on PyTorch, the vocoder's config)."""
    import torch

    fam = vocoder_family()
    config = fam.read_config(Path(checkpoint), options or {})
    module = fam.component_module(fam.load(Path(checkpoint), config), VOCODER_COMPONENT)

    def run(mel: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))).numpy()

    return run, config


def onnx_vocoder(path: str | Path, threads: int | None = None) -> Vocoder:
    """mel [B, M, T] -> audio [B, samples] on ONNX Runtime (CPU)."""
    from ttskiln.runtime import ort_session

    session = ort_session(path, threads)

    def run(mel: np.ndarray) -> np.ndarray:
        return session.run(["audio"], {"mel": np.ascontiguousarray(mel, dtype=np.float32)})[0]

    return run


# -- the chain job -----------------------------------------------------------------------------
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


def run_chain_job(job: Any, family_defaults: dict[str, float]) -> list[dict[str, Any]]:
    """The ``synth`` chain at one point: ONNX DiT + ONNX Vocos against PyTorch DiT + PyTorch Vocos.

    With ``job.artifacts["trtllm_engine"]`` (a TensorRT-LLM engine folder) the DiT backend is
    that engine instead of the ONNX graph (same host code, same noise; the vocoder stays the
    ONNX graph), and only its rows are returned: backend ``tensorrt-llm``, variants named by
    the engine dtype (``fp16``, ``fp16-mel``, ``fp16-step``, ``fp16-nfe16`` ...), speedups
    against PyTorch on the CPU (``torch_device``)."""
    from ttskiln.audio_metrics import audio_metrics
    from ttskiln.benchmark import time_calls
    from ttskiln.families import get_family
    from ttskiln.families.f5tts.backends import DitVelocity, onnx_runner, torch_runner
    from ttskiln.families.f5tts.host import HostDims
    from ttskiln.metrics import failures, tensor_metrics
    from ttskiln.runtime import ort_session, set_torch_threads

    if job.chain != CHAIN:
        raise ConfigError(f"f5tts has one chain, {CHAIN!r}; got {job.chain!r}")
    link = job.linked.get(VOCODER_ROLE)
    wanted = vocoder_family().name
    if not link:
        raise ConfigError(f"model '{job.model}': the synth chain needs options.vocoder (a {wanted} model of this config)")
    if link.get("family") != wanted:
        raise ConfigError(f"model '{job.model}': options.vocoder {link.get('model')!r} is a {link.get('family')} model; the synth chain needs a {wanted} model")
    fam = get_family("f5tts")
    cfg = F5Config.from_dict(job.config)
    frames, rows = int(job.sizes["frames"]), int(job.sizes["batch"])
    max_frames = max_frames_option(job.options, max(DEFAULT_MAX_FRAMES, frames))
    if frames > max_frames:
        raise ConfigError(f"model '{job.model}': point {job.point} has {frames} frames, beyond options.max_frames {max_frames}")
    requests, ref_len = chain_layout(frames, rows)
    threads = int(job.bench.get("threads", 1))
    set_torch_threads(threads)

    torch_voc, voc_config = torch_vocoder(link["checkpoint"], link.get("options") or {})
    check_vocoder(cfg, voc_config, f"model '{link['model']}'")
    ort_voc = onnx_vocoder(link["artifacts"][VOCODER_COMPONENT], threads)
    dims = HostDims.of(cfg)
    model = fam.load(job.checkpoint, job.config)
    engine = job.artifacts.get(TRTLLM_ARTIFACT)
    if engine:
        from ttskiln.families.f5tts.trtllm import engine_dtype, trtllm_runner

        primary, precision = TRTLLM_BACKEND, _DTYPE_VARIANT[engine_dtype(engine)]
        dit_runner = trtllm_runner(engine, model.text_embed)
    else:
        primary, precision = "onnxruntime-cpu", "fp32"
        dit_runner = onnx_runner(ort_session(job.artifacts["dit"], threads))
    runners = {primary: dit_runner, "pytorch-eager": torch_runner(model)}
    captured: dict[str, dict[str, np.ndarray]] = {}

    def capture(run: Callable[[dict[str, np.ndarray]], np.ndarray]) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        def wrapped(inputs: dict[str, np.ndarray]) -> np.ndarray:
            captured.setdefault("inputs", inputs)
            return run(inputs)
        return wrapped

    velocities = {name: DitVelocity(dims, capture(run)) for name, run in runners.items()}
    vocoders = {primary: ort_voc, "pytorch-eager": torch_voc}
    vocab = fam.vocab(job.checkpoint, job.config)
    ref_text, gen_texts = fitted_chain_texts(job.options, vocab, frames)
    reference, ref_info = chain_reference(job.options, ref_len, cfg, job.seed)
    # Long chain texts are split as the synth command splits them; every batch is spoken, the
    # point's requests at a time (the last group filled up from the first batches).
    batches, counts, _ = split_texts(gen_texts, ref_text, reference.size / cfg.sample_rate)
    groups = [[batches[(g + j) % len(batches)] for j in range(requests)] for g in range(0, len(batches), requests)]
    rng = np.random.default_rng(job.seed)
    prepared_groups, noises = [], []
    for texts in groups:
        prepared_groups.append(prepare(cfg, vocab, reference, ref_text, texts, sample_rate=cfg.sample_rate,
                                       durations=[frames] * requests, max_frames=max_frames, max_tokens=frames - 1))
        noises.append(initial_noise(prepared_groups[-1].durations, cfg.mel_dim, rng))
    prepared, noise = prepared_groups[0], noises[0]

    def run(backend: str, steps: int, group: int = 0) -> Synthesis:
        return synthesize(velocities[backend], vocoders[backend], prepared_groups[group], steps=steps, noise=noises[group],
                          max_frames=max_frames)

    ort_outs = [run(primary, VALIDATION_STEPS, g) for g in range(len(groups))]   # also the warm-up of both backends
    torch_outs = [run("pytorch-eager", VALIDATION_STEPS, g) for g in range(len(groups))]
    ort_out = Synthesis(mel=np.concatenate([o.mel for o in ort_outs]), audio=[a for o in ort_outs for a in o.audio],
                        durations=np.concatenate([o.durations for o in ort_outs]))
    torch_out = Synthesis(mel=np.concatenate([o.mel for o in torch_outs]), audio=[a for o in torch_outs for a in o.audio],
                          durations=np.concatenate([o.durations for o in torch_outs]))
    limits = chain_tolerances(job.tolerances, family_defaults, TRTLLM_CHAIN_TOLERANCES if engine and precision != "fp32" else None)
    # Vocos with 'center' padding makes (T - 1) * hop samples from T frames, 'same' T * hop.
    seconds = sum(a.size for a in ort_outs[0].audio) / cfg.sample_rate  # what one timed call makes
    shape = {"dit": [2 * requests, frames, cfg.mel_dim], "audio": [requests, int(ort_out.audio[0].size)]}
    base = {"component": CHAIN, "shape": shape, "audio_seconds": seconds, "requests": requests,
            "ref_frames": ref_len, "nfe": VALIDATION_STEPS, "reference_text": ref_text, "texts": list(gen_texts),
            "text_batches": counts, "batch_groups": len(groups)}
    if ref_info is not None:
        base["reference_audio"] = ref_info

    mel_metrics = tensor_metrics(torch_out.mel, ort_out.mel)
    wave_ref, wave_got = np.concatenate(torch_out.audio), np.concatenate(ort_out.audio)
    wave_metrics = {**tensor_metrics(wave_ref, wave_got), **audio_metrics(wave_ref, wave_got, cfg.sample_rate)}
    audio_path = job.directory / "synth.wav"
    spoken = join_batches(ort_out.audio[: len(batches)], counts, cfg.sample_rate)
    gap = np.zeros(int(WAV_GAP_SECONDS * cfg.sample_rate), dtype=np.float32)
    write_wav(audio_path, np.concatenate([p for k, w in enumerate(spoken) for p in ((gap, w) if k else (w,))]), cfg.sample_rate)
    out: list[dict[str, Any]] = []
    if engine:
        base["torch_device"] = "cpu"
    for variant, metrics, tol in ((f"{precision}-mel", mel_metrics, limits["mel"]), (precision, wave_metrics, limits["wave"])):
        broken = failures(metrics, tol)
        out.append({**base, "variant": variant, "backend": primary, **metrics, "passed": not broken,
                    "failures": broken, "tolerances": tol})
    out[-1]["audio"] = str(audio_path)

    # Per-step latency: one packed CFG velocity call at the point's shape, the inputs of step 0.
    inputs = captured["inputs"]
    warmup, repeats = int(job.bench.get("warmup", 1)), max(1, int(job.bench.get("repeats", 3)))
    step = {name: time_calls(lambda r=r: r(inputs), warmup, repeats) for name, r in runners.items()}
    timed: dict[str, tuple[dict[str, dict[str, float]], int | None]] = {f"{precision}-step": (step, None)}
    # End to end (sampling loop + vocoder): one warm-up ran above; 1-2 timed runs per NFE.
    e2e_runs = min(2, repeats)
    for nfe in BENCH_NFES:
        lat = {name: time_calls(lambda n=name: run(n, nfe), 0, e2e_runs) for name in runners}
        timed[f"{precision}-nfe{nfe}"] = (lat, nfe)
    for variant, (lat, nfe) in timed.items():
        torch_p50 = lat["pytorch-eager"]["p50_ms"]
        for backend in ((primary,) if engine else ("pytorch-eager", primary)):
            t = lat[backend]
            out.append({**base, "variant": variant, "backend": backend, "nfe": nfe, "passed": None,
                        "p50_ms": t["p50_ms"], "p90_ms": t["p90_ms"], "p99_ms": t["p99_ms"],
                        "rtf": t["p50_ms"] / 1e3 / seconds if nfe else None,
                        "audio_seconds": seconds if nfe else None,
                        "speedup_vs_torch": torch_p50 / t["p50_ms"]})
    return out


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


# -- command line ------------------------------------------------------------------------------
def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """``k=v`` strings -> options (values read as YAML scalars: 3000 -> int, true -> bool)."""
    import yaml

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--f5-option takes key=value, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value)
    return options


def synth_cli(
    *,
    f5: str,
    f5_options: dict[str, Any],
    vocoder: str,
    backend: str,
    dit_onnx: str | None,
    vocoder_onnx: str | None,
    ref_audio: str | None,
    ref_mel: str | None,
    ref_text: str,
    texts: Sequence[str],
    nfe: int,
    cfg_strength: float,
    sway: float,
    duration: float | None,
    seed: int,
    out: str,
    threads: int | None = None,
    log: Callable[[str], None] = print,
    trtllm_engine: str | None = None,
    cross_fade_s: float | None = None,
    out_format: str = "PCM_16",
) -> list[Path]:
    """``python -m ttskiln synth``: write one WAV per text; returns their paths. A text of any
    length is split into batches (``split_texts``) that are synthesised together and joined
    by a cross-fade (``join_batches``)."""
    import tempfile

    from ttskiln.families import get_family
    from ttskiln.families.f5tts.backends import onnx_velocity, torch_velocity

    if backend not in ("onnx", "torch", "trtllm"):
        raise ConfigError(f"--backend must be onnx, torch or trtllm, got {backend!r}")
    if (backend == "trtllm") != (trtllm_engine is not None):
        raise InputError("--backend trtllm needs --trtllm-engine DIR (a TensorRT-LLM F5 engine folder), and only it takes one")
    if (ref_audio is None) == (ref_mel is None):
        raise InputError("give the reference as one of --ref-audio WAV or --ref-mel .npy")
    if nfe < 1:
        raise InputError(f"--nfe must be at least 1, got {nfe}")
    fam = get_family("f5tts")
    checkpoint = Path(f5)
    config = fam.read_config(checkpoint, f5_options)
    cfg = F5Config.from_dict(config)
    max_frames = max_frames_option(f5_options)
    vocab = fam.vocab(checkpoint, config)
    voc_config = vocoder_family().read_config(Path(vocoder), {})
    check_vocoder(cfg, voc_config, str(vocoder))

    if cross_fade_s is not None and not cross_fade_s >= 0:
        raise InputError(f"--cross-fade must be 0 or more seconds, got {cross_fade_s}")
    if not texts:
        raise InputError("no text to synthesise; give at least one --text")
    if ref_audio is not None:
        audio, info = read_audio(ref_audio, cfg.sample_rate)
        log(f"reference {ref_audio}: {info.describe()}")
        ref_seconds = info.seconds
    else:
        ref_seconds = _mel_seconds(cfg, ref_mel)
    if not ref_text or not ref_text.strip():
        raise InputError("the reference text is empty; give what the reference recording says")
    batches, counts, budget = split_texts(texts, ref_text, ref_seconds)
    for i, n in enumerate(counts):
        name = "text" if len(texts) == 1 else f"text {i + 1}"
        log(f"{name}: {n} batch(es) of at most {budget} bytes (upstream's budget for a {ref_seconds:.2f} s reference)")
    if ref_audio is not None:
        prepared = prepare(cfg, vocab, audio, ref_text, batches, sample_rate=cfg.sample_rate, duration_s=duration,
                           max_frames=max_frames)
    else:
        prepared = _prepare_from_mel(cfg, vocab, ref_mel, ref_text, batches, duration, max_frames)

    with tempfile.TemporaryDirectory(prefix="ttskiln-synth-") as tmp:
        if backend == "onnx":
            from ttskiln.export import export_component

            if dit_onnx is None:
                dit_onnx = str(Path(tmp) / "dit.onnx")
                log(f"exporting the DiT to {dit_onnx} (give --dit-onnx to reuse an export)")
                export_component(family="f5tts", checkpoint=str(checkpoint), options=f5_options, component="dit",
                                 opset=18, output=dit_onnx)
            if vocoder_onnx is None:
                vocoder_onnx = str(Path(tmp) / "vocoder.onnx")
                log(f"exporting the vocoder to {vocoder_onnx} (give --vocoder-onnx to reuse an export)")
                export_component(family=vocoder_family().name, checkpoint=str(vocoder), options={}, component=VOCODER_COMPONENT,
                                 opset=18, output=vocoder_onnx)
            for path in (dit_onnx, vocoder_onnx):
                if not Path(path).is_file():
                    raise InputError(f"ONNX file {path} not found")
            from ttskiln.runtime import ort_session

            velocity = onnx_velocity(ort_session(dit_onnx, threads), config)
            voc = onnx_vocoder(vocoder_onnx, threads)
        elif backend == "trtllm":
            from ttskiln.families.f5tts.backends import DitVelocity
            from ttskiln.families.f5tts.host import HostDims
            from ttskiln.families.f5tts.trtllm import require_trtllm, trtllm_runner

            require_trtllm()  # before loading anything
            velocity = DitVelocity(HostDims.of(cfg), trtllm_runner(trtllm_engine, fam.load(checkpoint, config).text_embed))
            voc = onnx_vocoder(vocoder_onnx, threads) if vocoder_onnx else torch_vocoder(vocoder)[0]
        else:
            if threads:
                from ttskiln.runtime import set_torch_threads

                set_torch_threads(threads)
            velocity = torch_velocity(fam.load(checkpoint, config))
            voc, _ = torch_vocoder(vocoder)
        start = time.perf_counter()
        result = synthesize(velocity, voc, prepared, steps=nfe, cfg_strength=cfg_strength, sway=sway,
                            rng=np.random.default_rng(seed), max_frames=max_frames)
        elapsed = time.perf_counter() - start
    joined = join_batches(result.audio, counts, cfg.sample_rate, cross_fade_s)
    target = Path(out)
    paths = [target] if len(texts) == 1 else [target.with_name(f"{target.stem}_{i}{target.suffix or '.wav'}") for i in range(len(texts))]
    for path, audio, n in zip(paths, joined, counts):
        write_wav(path, audio, cfg.sample_rate, out_format)
        log(f"wrote {path} ({audio.size / cfg.sample_rate:.2f} s, {n} batch(es))")
    seconds = sum(a.size for a in joined) / cfg.sample_rate
    log(f"{backend}: NFE {nfe}, {len(batches)} batch(es), {elapsed:.2f} s for {seconds:.2f} s of audio "
        f"(RTF {elapsed / seconds:.3f})")
    return paths


def _load_mel(cfg: F5Config, path: str | None) -> np.ndarray:
    """A reference log-mel .npy as [frames, M] ([frames, M], [M, frames] or [1, frames, M])."""
    file = Path(str(path))
    if not file.is_file():
        raise InputError(f"reference mel {file} not found")
    try:
        mel = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{file} is not a numpy .npy file: {exc}") from exc
    mel = np.asarray(mel, dtype=np.float32)
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim == 2 and mel.shape[0] == cfg.mel_dim and mel.shape[1] != cfg.mel_dim:
        mel = mel.T
    if mel.ndim != 2 or mel.shape[1] != cfg.mel_dim:
        raise InputError(f"{file}: a reference mel is [frames, {cfg.mel_dim}] natural-log mel, got shape {list(np.shape(mel))}")
    if not np.all(np.isfinite(mel)):
        raise InputError(f"{file} holds NaN or infinite values")
    return mel


def _mel_seconds(cfg: F5Config, path: str | None) -> float:
    """The audio length a reference mel stands for: (frames - 1) hops."""
    return max(_load_mel(cfg, path).shape[0] - 1, 1) * cfg.hop_length / cfg.sample_rate


def _prepare_from_mel(cfg: F5Config, vocab: dict[str, int], path: str | None, ref_text: str, texts: Sequence[str],
                      duration: float | None, max_frames: int) -> Prepared:
    """A reference given as a log-mel .npy ([frames, M], [M, frames] or [1, frames, M]); its
    audio length is taken as (frames - 1) hops and its gain as 1."""
    mel = _load_mel(cfg, path)
    # Reuse ``prepare`` for the checks and durations, with stand-in audio of the same length.
    samples = (mel.shape[0] - 1) * cfg.hop_length
    stand_in = np.full(max(samples, 1), 0.5, dtype=np.float32)
    prepared = prepare(cfg, vocab, stand_in, ref_text, texts, sample_rate=cfg.sample_rate, duration_s=duration,
                       max_frames=max_frames)
    cond = np.repeat(mel[None], prepared.batch, axis=0)
    return Prepared(cond=cond, ids=prepared.ids, durations=prepared.durations, ref_len=prepared.ref_len, gain=1.0)
