"""The ``tts`` chain: text + language + speaker -> waveform, ONNX graphs vs PyTorch.

The texts are ``options.chain_texts`` (default: one sentence in the chain's language,
``DEFAULT_TEXTS``), read by the checkpoint's own front end (``text.py``, from config.json);
the language is ``options.language``, a name from ``language_ids.json`` (default ``en`` when
the model has it, else its first language; none for a model without a language embedding).
Every text is spoken, each as a request of the point's batch (the text in every row), as long
as the text's ids: the profile's ``tokens`` range is what the graphs are built for, and every
text must fit in its largest point and the model's max_tokens (checked when the plan is built,
with the model's characters: ``resolve_texts``; a default text is cut after a word to fit).

The speaker is the model's kind: a seeded d-vector, a seeded speaker id (``sid``), or none.

With a speaker encoder, the d-vector is not drawn but computed. The chain reads
``options.reference_wav``, or else writes a seeded 3-second clip as ``reference.wav`` (16-bit
PCM at the encoder's rate) and reads it back. Each backend's own speaker encoder embeds it
(``speaker.embed``: RMS normalisation, ten 250-frame windows, mean), so the ONNX chain runs
WAV -> d-vector -> waveform on ONNX graphs only. The embedding is not part of the timed call (a voice is embedded once, then reused).

Both runs use the same host code (``host.synthesize``) and the same noise (noise scales 0.667
for z and 0.8 for the duration predictor, as in YourTTS inference). Rows:

* ``onnxruntime-cpu``: accuracy of the ONNX chain against the PyTorch chain over all texts (the
  waveforms' tensor and audio metrics; ``boundary_max_abs_err`` per boundary tensor; ``passed``
  and ``failures`` against the job's tolerances over the family defaults) and its latency,
  real-time factor and speedup over PyTorch; ``audio`` is the ONNX chain's WAV (the texts in
  turn, first batch row).
* ``pytorch-eager``: latency and real-time factor of the PyTorch chain.

Both rows carry ``texts``, ``language`` and ``text_tokens`` (ids per text); a timed call
speaks every text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import ConfigError, InputError
from ttskiln.families.base import ChainJob, shortest_fit
from ttskiln.rows import REFERENCE_BACKEND, latency_row
from ttskiln.runners import label

ORT_BACKEND = label("ort-cpu")

NOISE_SCALE = 0.667
NOISE_SCALE_DP = 0.8
REFERENCE_SECONDS = 3.0
REFERENCE_NAME = "reference.wav"
BOUNDARIES = ("d_vector", "enc_x", "enc_m_p", "enc_logs_p", "dp_logw", "durations", "m_p_expanded", "logs_p_expanded", "z_p", "z",
              "waveform")
WAV_NAME = "tts.wav"
#: One sentence per language of the released YourTTS, in plain a-z and punctuation (the
#: characters of the synthetic presets; the released table has these and accents).
DEFAULT_TEXTS = {
    "en": "hello, how are you today?",
    "fr-fr": "bonjour tout le monde.",
    "pt-br": "bom dia, tudo bem?",
}
DEFAULT_LANGUAGE = "en"
#: Silence between the texts in the chain's WAV.
GAP_SECONDS = 0.2


def model_languages(config: dict[str, Any], checkpoint: Path | str | None) -> dict[str, int] | None:
    """name -> language id (``language_ids.json`` of a checkpoint folder, else the config's
    ``languages`` in order); None for a model without a language embedding."""
    from ttskiln.families.vits.config import VitsConfig

    cfg = VitsConfig.from_dict(config)
    if not cfg.language_dim:
        return None
    if checkpoint is not None and Path(checkpoint).is_dir():
        from ttskiln.families.vits.tts import languages_of

        return languages_of(Path(checkpoint), cfg)
    return {str(name): i for i, name in enumerate(config.get("languages") or [])}


def resolve_texts(config: dict[str, Any], options: dict[str, Any], checkpoint: Path | str | None,
                  budget: int | None = None) -> tuple[list[str], str | None, int | None, list[list[int]]]:
    """(texts, language name, language id, ids per text) of the chain: ``options.chain_texts``
    and ``options.language`` or their defaults. ConfigError when the language is not the
    model's, a text holds characters the model's table lacks (upstream would drop them), or
    its ids exceed ``budget`` (the profile's largest tokens: the graphs are built for texts up to
    it) or the model's max_tokens. A default text longer than that is cut after a word."""
    from ttskiln.families.vits.config import VitsConfig
    from ttskiln.families.vits.text import check_vocabulary, front_end, language_id

    cfg = VitsConfig.from_dict(config)
    languages = model_languages(config, checkpoint)
    language = options.get("language")
    if language is None and languages:
        language = DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in languages else next(iter(languages))
    try:
        lang = language_id(languages, language)
    except InputError as exc:
        raise ConfigError(f"options.language: {exc}") from None
    texts = options.get("chain_texts")
    if texts is None:
        texts = [DEFAULT_TEXTS.get(language or DEFAULT_LANGUAGE, DEFAULT_TEXTS[DEFAULT_LANGUAGE])]
    if not isinstance(texts, list) or not texts:
        raise ConfigError(f"options.chain_texts must be a non-empty list of texts, got {texts!r}")
    source = "config.json"
    front = front_end(config, source)
    check_vocabulary(front, cfg.num_chars, source)
    limit = min(cfg.max_tokens, budget) if budget is not None else cfg.max_tokens
    if options.get("chain_texts") is None:
        texts = [shortest_fit(t, lambda t: len(front.text_to_ids(t)), limit) for t in texts]
    ids_list = []
    for i, text in enumerate(texts):
        where = f"options.chain_texts[{i}] {text!r}"
        dropped = front.dropped(text)
        if dropped:
            shown = " ".join(repr(c) for c in dropped[:20])
            raise ConfigError(f"{where}: characters not in the model's character table (config.json): {shown}; "
                              "remove or replace them (upstream would drop them silently)")
        ids = front.text_to_ids(text)
        if not any(ch in front.ids for ch in front.clean(text)):
            raise ConfigError(f"{where}: holds no character the model reads; give some words to speak")
        if len(ids) > limit:
            what = "the model's max_tokens" if limit == cfg.max_tokens else "the profile's largest tokens"
            raise ConfigError(f"{where}: {len(ids)} text tokens, above {what} {limit}; "
                              "shorten the text (or raise the profile's tokens)")
        ids_list.append(ids)
    return list(texts), language, lang, ids_list


def text_request(ids: list[int], batch: int, dims: Any, language: int | None, seed: int) -> dict[str, Any]:
    """One text as a request of ``batch`` rows: ids, lengths, language, seeded noise and speaker."""
    rng = np.random.default_rng(seed)
    tokens = np.asarray([ids] * batch, dtype=np.int64)
    n = tokens.shape[1]
    return {
        "tokens": tokens,
        "lengths": np.full(batch, n, dtype=np.int64),
        "d_vector": rng.standard_normal((batch, dims.d_vector_dim)).astype(np.float32),
        "language_id": None if language is None else np.full(batch, language, dtype=np.int64),
        "noise_dp": (NOISE_SCALE_DP * rng.standard_normal((batch, 2, n))).astype(np.float32),
        "z_seed": int(rng.integers(0, 2**31 - 1)),
        "speaker_id": rng.integers(0, max(1, dims.num_speakers), size=batch).astype(np.int64),
    }


def chain_request(job_sizes: dict[str, int], dims: Any, languages: int, seed: int) -> dict[str, Any]:
    """Seeded token ids (blank-interspersed like Coqui's ``add_blank``), d-vector, language and
    noise: graph-level tests' inputs (the chain itself speaks text, ``text_request``)."""
    rng = np.random.default_rng(seed)
    batch = int(job_sizes.get("batch", 1))
    tokens = int(job_sizes.get("tokens", 63))
    blank = dims.num_chars - 1
    ids = np.full((batch, tokens), blank, dtype=np.int64)
    ids[:, 1::2] = rng.integers(1, max(2, blank), size=(batch, len(range(1, tokens, 2))))
    return {
        "tokens": ids,
        "lengths": np.full(batch, tokens, dtype=np.int64),
        "d_vector": rng.standard_normal((batch, dims.d_vector_dim)).astype(np.float32),
        "language_id": rng.integers(0, max(1, languages), size=batch).astype(np.int64),
        "noise_dp": (NOISE_SCALE_DP * rng.standard_normal((batch, 2, tokens))).astype(np.float32),
        "z_seed": int(rng.integers(0, 2**31 - 1)),
        # Drawn last, so that the draws above do not depend on the speaker mode.
        "speaker_id": rng.integers(0, max(1, dims.num_speakers), size=batch).astype(np.int64),
    }


def request_speaker(req: dict[str, Any], dims: Any) -> np.ndarray | None:
    """The request's speaker in the model's form: d-vectors, speaker ids, or None."""
    mode = dims.speaker_mode
    return req["d_vector"] if mode == "d_vector" else req["speaker_id"] if mode == "embedding" else None


def _z_noise(seed: int, batch: int, hidden: int):
    def make(frames: int) -> np.ndarray:
        return (NOISE_SCALE * np.random.default_rng(seed).standard_normal((batch, hidden, frames))).astype(np.float32)

    return make


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit mono PCM (clipped to [-1, 1]; ``audio_io.write_audio``)."""
    from ttskiln.audio_io import write_audio

    write_audio(path, audio, sample_rate)


def run_tts_chain(family: Any, job: ChainJob) -> list[dict[str, Any]]:
    from ttskiln.audio_metrics import audio_metrics
    from ttskiln.timing import time_calls
    from ttskiln.families.vits.backends import components, onnx_backend, torch_backend
    from ttskiln.families.vits.host import synthesize
    from ttskiln.metrics import failures, tensor_metrics
    from ttskiln.runtime import set_torch_threads

    config = job.config
    info = family.describe(config)
    missing = [c for c in components(info) if c not in job.artifacts]
    if missing:
        raise InputError(f"chain {job.chain!r} needs ONNX artifacts for {missing}")
    dims = family.host_dims(config)
    # The points' token budget is checked when the plan is built; here the model's limits.
    texts, language, lang, ids_list = resolve_texts(config, job.options, job.checkpoint)
    threads = int(job.bench.get("threads", 2))
    set_torch_threads(threads)
    model = family.load(job.checkpoint, config)
    backends = {REFERENCE_BACKEND: torch_backend(family, model, info),
                ORT_BACKEND: onnx_backend(job.artifacts, info, threads)}
    batch = int(job.sizes.get("batch", 1))
    reqs = [text_request(ids, batch, dims, lang, job.seed + 7919 * k) for k, ids in enumerate(ids_list)]
    reference_wav = None
    se = family.speaker_encoder_config(config)
    # One voice for every text: the first request's seeded speaker, or the reference's d-vector.
    d_vectors = {backend: request_speaker(reqs[0], dims) for backend in backends}
    if se is not None:
        from ttskiln.families.vits.speaker import embed, read_wav, synthetic_reference

        if job.options.get("reference_wav"):
            reference_wav = Path(job.options["reference_wav"])
        else:
            reference_wav = Path(job.directory) / REFERENCE_NAME
            write_wav(reference_wav, synthetic_reference(se.sample_rate, REFERENCE_SECONDS, job.seed), se.sample_rate)
        clip = read_wav(reference_wav, se.sample_rate)
        for backend, run in backends.items():
            vector = embed(lambda w, run=run: run("speaker_encoder", {"waveform": w})["d_vector"], clip, se)
            d_vectors[backend] = np.repeat(vector, batch, axis=0)

    def call(backend: str) -> list[dict[str, np.ndarray]]:
        outs = []
        for req in reqs:
            out = synthesize(backends[backend], dims, req["tokens"], req["lengths"], d_vectors[backend], req["language_id"],
                             req["noise_dp"], _z_noise(req["z_seed"], batch, dims.hidden))
            if d_vectors[backend] is not None and dims.speaker_mode == "d_vector":
                out["d_vector"] = d_vectors[backend]
            outs.append(out)
        return outs

    refs = call(REFERENCE_BACKEND)
    gots = call(ORT_BACKEND)
    tolerances = {**family.default_tolerances, **family.chain_tolerances, **job.tolerances}
    drift: dict[str, float | None] = {}
    for name in (n for n in BOUNDARIES if n in refs[0]):
        worst: float | None = 0.0
        for ref, got in zip(refs, gots):
            a, b = ref[name], got[name]
            if a.shape != b.shape:
                worst = None
                break
            worst = max(worst, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
        drift[name] = worst
    problems: list[str] = []
    if not all(np.array_equal(r["durations"], g["durations"]) for r, g in zip(refs, gots)):
        problems.append("durations differ between the ONNX and PyTorch chains")
        metrics: dict[str, float] = {}
    else:
        wave_ref = np.concatenate([r["waveform"] for r in refs], axis=-1)
        wave_got = np.concatenate([g["waveform"] for g in gots], axis=-1)
        metrics = tensor_metrics(wave_ref, wave_got)
        metrics.update(audio_metrics(wave_ref, wave_got, info.sample_rate))
        worst_boundary = max(v for v in drift.values() if v is not None)
        metrics["max_abs_err"] = max(metrics["max_abs_err"], worst_boundary)
    problems += failures(metrics, tolerances)

    wav = Path(job.directory) / WAV_NAME
    gap = np.zeros(int(GAP_SECONDS * info.sample_rate), dtype=np.float32)
    pieces = []
    for k, got in enumerate(gots):
        pieces += ([gap] if k else []) + [got["waveform"][0, : int(got["y_lengths"][0]) * info.hop_length]]
    write_wav(wav, np.concatenate(pieces), info.sample_rate)

    warmup, repeats = int(job.bench.get("warmup", 3)), int(job.bench.get("repeats", 20))
    seconds = float(sum(g["waveform"].size for g in gots)) / info.sample_rate
    timing = {backend: time_calls(lambda b=backend: call(b), warmup, repeats) for backend in backends}
    base = timing[REFERENCE_BACKEND]["p50_ms"]
    rows = []
    for backend, t in timing.items():
        row = latency_row(
            component=job.chain, variant="fp32", backend=backend, timing=t, reference_ms=base, audio_seconds=seconds,
            texts=texts, language=language, text_tokens=[len(ids) for ids in ids_list],
            shape={"tokens": [list(r["tokens"].shape) for r in reqs], "z": [list(g["z"].shape) for g in gots],
                   "audio": [list(g["waveform"].shape) for g in gots]},
        )
        if backend == ORT_BACKEND:
            row = row.with_accuracy(metrics, problems)
            row.audio = str(wav)
            row.extra["boundary_max_abs_err"] = drift
            if reference_wav is not None:
                row.extra["speaker_reference"] = str(reference_wav)
        rows.append(row.to_dict())
    return rows
