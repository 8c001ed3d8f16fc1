"""``python -m ttskiln synth``: text to WAV files with an F5-TTS model and a Vocos vocoder on
ONNX Runtime, PyTorch or a TensorRT-LLM engine (see ``chain`` for the steps).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.audio_io import read_audio
from ttskiln.errors import ConfigError, InputError
from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.request import Prepared, join_batches, max_frames_option, prepare, split_texts, write_wav
from ttskiln.families.f5tts.synthesis import (
    VOCODER_COMPONENT, check_vocoder, onnx_vocoder, synthesize, torch_vocoder, vocoder_family,
)

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
            from ttskiln.families import get_family
            from ttskiln.onnx_export import export_family_component

            if dit_onnx is None:
                dit_onnx = str(Path(tmp) / "dit.onnx")
                log(f"exporting the DiT to {dit_onnx} (give --dit-onnx to reuse an export)")
                export_family_component(get_family("f5tts"), checkpoint=str(checkpoint), options=f5_options, component="dit",
                                 opset=18, output=dit_onnx)
            if vocoder_onnx is None:
                vocoder_onnx = str(Path(tmp) / "vocoder.onnx")
                log(f"exporting the vocoder to {vocoder_onnx} (give --vocoder-onnx to reuse an export)")
                export_family_component(vocoder_family(), checkpoint=str(vocoder), options={}, component=VOCODER_COMPONENT,
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
            from ttskiln.families.f5tts.trtllm import require_trtllm

            require_trtllm()  # before loading anything
            velocity = DitVelocity(HostDims.of(cfg), fam.tensorrt_llm.runner(Path(trtllm_engine), fam.load(checkpoint, config)))
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
