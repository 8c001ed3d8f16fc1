"""Text -> waveform with F5-TTS and a Vocos vocoder: the ``synth`` chain and ``python -m ttskiln synth``.

The code is split by job: ``request`` (one request's inputs checked and laid out, long texts
split into batches and joined), ``synthesis`` (the sampling loop and the vocoders),
``chain_inputs`` (the chain job's texts, reference, point layout and tolerances),
``chain_job`` (the chain job and its rows) and ``synth_command`` (the command line). This
module names them all, as before the split.

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

from ttskiln.families.f5tts.chain_inputs import (
    CHAIN,
    CHAIN_GEN_TEXTS,
    CHAIN_OPTION_KEYS,
    CHAIN_REF_TEXT,
    CHAIN_SPEECH_REF_TEXT,
    CHAIN_SPEECH_TEXTS,
    CHAIN_TOLERANCES,
    TRTLLM_CHAIN_TOLERANCES,
    chain_layout,
    chain_reference,
    chain_texts,
    chain_tolerances,
    check_chain_fit,
    fitted_chain_texts,
    synthetic_reference,
)
from ttskiln.families.f5tts.chain_job import (
    BENCH_NFES,
    TRTLLM_ARTIFACT,
    TRTLLM_BACKEND,
    VALIDATION_STEPS,
    WAV_GAP_SECONDS,
    accuracy_rows,
    run_chain_job,
)
from ttskiln.families.f5tts.request import (
    DEFAULT_MAX_FRAMES,
    MIN_REF_FRAMES,
    Prepared,
    join_batches,
    max_frames_option,
    prepare,
    read_wav,
    split_texts,
    text_ids,
    write_wav,
)
from ttskiln.families.f5tts.synth_command import parse_options, synth_cli
from ttskiln.families.f5tts.synthesis import (
    VOCODER_COMPONENT, VOCODER_ROLE, Synthesis, Vocoder, check_vocoder, onnx_vocoder, synthesize, torch_vocoder,
    vocoder_family,
)

__all__ = [
    "BENCH_NFES", "CHAIN", "CHAIN_GEN_TEXTS", "CHAIN_OPTION_KEYS", "CHAIN_REF_TEXT", "CHAIN_SPEECH_REF_TEXT",
    "CHAIN_SPEECH_TEXTS", "CHAIN_TOLERANCES", "DEFAULT_MAX_FRAMES", "MIN_REF_FRAMES", "TRTLLM_ARTIFACT", "TRTLLM_BACKEND",
    "TRTLLM_CHAIN_TOLERANCES", "VALIDATION_STEPS", "WAV_GAP_SECONDS", "Prepared", "Synthesis", "Vocoder", "accuracy_rows",
    "chain_layout", "chain_reference", "chain_texts", "chain_tolerances", "check_chain_fit", "check_vocoder",
    "fitted_chain_texts", "join_batches", "max_frames_option", "onnx_vocoder", "parse_options", "prepare", "read_wav",
    "run_chain_job", "split_texts", "synth_cli", "synthesize", "synthetic_reference", "text_ids", "torch_vocoder",
    "write_wav",
]
