"""``python -m ttskiln tts``: text -> WAV with a Coqui VITS / YourTTS checkpoint folder.

The text goes through the checkpoint's own front end (``text.py``), the language by name
through ``language_ids.json`` (models with a language embedding only), the speaker by the
model's kind: a d-vector model takes a reference WAV through its speaker encoder
(``model_se.pth`` + ``config_se.json``) or a speaker name from ``speakers.json`` (the mean of
that speaker's d-vectors); a speaker-id model takes a name from ``speakers.pth``; a
single-speaker model takes neither. The graphs run on ONNX Runtime (exported graphs from a
folder, or exported on the fly) or in PyTorch, through the same host code as the ``tts``
chain (noise scales 0.667 and 0.8, length scale 1, seeded noise).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, InputError


def languages_of(checkpoint: Path, dims: Any) -> dict[str, int] | None:
    """name -> language id from ``language_ids.json`` (None for a model without a language embedding)."""
    from ttskiln.families.vits import LANGUAGES_FILE

    if not dims.num_languages:
        return None
    path = Path(checkpoint) / LANGUAGES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: the model has a language embedding but its language ids are not readable ({exc})") from exc
    if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
        raise CheckpointError(f"{path}: expected a mapping of language name to integer id")
    return data


def speaker_by_name(family: Any, checkpoint: Path, config: dict[str, Any], dims: Any, name: str) -> np.ndarray:
    """A d-vector model: the mean d-vector of the clips of ``name`` in speakers.json (a clip key
    also works); a speaker-id model: the id of ``name`` in speakers.pth."""
    if dims.speaker_mode == "embedding":
        from ttskiln.families.vits import _speaker_ids

        ids = _speaker_ids(Path(checkpoint)) or {}
        if name not in ids:
            raise InputError(f"speaker {name!r} is not in speakers.pth; known: {sorted(ids)[:20]}")
        return np.array([ids[name]], dtype=np.int64)
    path = Path(checkpoint) / "speakers.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: speaker d-vectors not readable ({exc})") from exc
    if name in data:
        vectors = [data[name]["embedding"]]
    else:
        vectors = [v["embedding"] for v in data.values() if isinstance(v, dict) and v.get("name") == name]
    if not vectors:
        names = sorted({str(v.get("name")) for v in data.values() if isinstance(v, dict)})
        raise InputError(f"speaker {name!r} is not in speakers.json; known: {names[:20]}")
    return np.asarray(vectors, dtype=np.float32).mean(axis=0, keepdims=True)


def text_to_wav(
    checkpoint: str | Path,
    text: str,
    out: str | Path,
    *,
    language: str | None = None,
    speaker: str | None = None,
    speaker_wav: str | Path | None = None,
    backend: str = "onnx",
    onnx_dir: str | Path | None = None,
    options: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int | None = None,
) -> dict[str, Any]:
    """Synthesise ``text`` into a 16-bit WAV at ``out``; returns what was done (ids, dropped
    characters, language and speaker used, seconds, real-time factor)."""
    from ttskiln.families import get_family
    from ttskiln.families.vits.backends import components, export_components, onnx_backend, torch_backend
    from ttskiln.families.vits.chain import NOISE_SCALE, NOISE_SCALE_DP, _z_noise, write_wav
    from ttskiln.families.vits.host import synthesize
    from ttskiln.families.vits.text import check_vocabulary, front_end, language_id

    if backend not in ("onnx", "torch"):
        raise InputError(f"backend must be 'onnx' or 'torch', got {backend!r}")
    checkpoint = Path(checkpoint)
    family = get_family("vits")
    config = family.read_config(checkpoint, options or {})
    info = family.describe(config)
    dims = family.host_dims(config)
    source = str(checkpoint / "config.json")
    front = front_end(config, source)
    check_vocabulary(front, dims.num_chars, source)
    ids = front.text_to_ids(text)
    dropped = front.dropped(text)
    if not [i for i in ids if i != front.blank_id]:
        raise InputError(f"text {text!r} holds no character the model reads (after cleaning: {front.clean(text)!r})")
    lang = language_id(languages_of(checkpoint, dims), language)
    if dims.speaker_mode == "none" and (speaker or speaker_wav):
        raise InputError("this model has a single voice; leave the speaker and the reference WAV out")
    if speaker and speaker_wav:
        raise InputError("give a speaker name or a reference WAV, not both")
    if dims.speaker_mode != "none" and not (speaker or speaker_wav):
        raise InputError("this model needs a speaker: a name (speakers.json / speakers.pth) or, with a speaker encoder, "
                         "a reference WAV")
    se = family.speaker_encoder_config(config)
    if speaker_wav and se is None:
        raise InputError("a reference WAV needs the model's speaker encoder (model_se.pth + config_se.json in the folder)")

    spk = speaker_by_name(family, checkpoint, config, dims, speaker) if speaker else None
    with tempfile.TemporaryDirectory() as tmp:
        model = None
        if backend == "torch" or onnx_dir is None:
            model = family.load(checkpoint, config)
        if backend == "torch":
            from ttskiln.runtime import set_torch_threads

            if threads:
                set_torch_threads(threads)
            run = torch_backend(family, model, info)
        else:
            if onnx_dir is None:
                paths: dict[str, Any] = export_components(family, model, info, Path(tmp))
            else:
                paths = {c: Path(onnx_dir) / f"{c}.onnx" for c in components(info)}
                missing = [str(p) for p in paths.values() if not p.is_file()]
                if missing:
                    raise InputError(f"exported graphs not found: {missing}")
            run = onnx_backend(paths, info, threads)
        if speaker_wav:
            from ttskiln.families.vits.speaker import embed, read_wav

            clip = read_wav(Path(speaker_wav), se.sample_rate)
            spk = embed(lambda w: run("speaker_encoder", {"waveform": w})["d_vector"], clip, se)
        tokens = np.asarray([ids], dtype=np.int64)
        lengths = np.array([len(ids)], dtype=np.int64)
        rng = np.random.default_rng(seed)
        noise_dp = (NOISE_SCALE_DP * rng.standard_normal((1, 2, len(ids)))).astype(np.float32)
        noise_z = _z_noise(int(rng.integers(0, 2**31 - 1)), 1, dims.hidden)
        languages = None if lang is None else np.array([lang], dtype=np.int64)
        start = time.perf_counter()
        got = synthesize(run, dims, tokens, lengths, spk, languages, noise_dp, noise_z)
        seconds_taken = time.perf_counter() - start
    audio = got["waveform"][0, : int(got["y_lengths"][0]) * info.hop_length]
    write_wav(Path(out), audio, info.sample_rate)
    seconds = audio.size / info.sample_rate
    return {"ids": ids, "dropped": dropped, "language": language, "language_id": lang,
            "speaker": speaker or (str(speaker_wav) if speaker_wav else None), "backend": backend,
            "audio_seconds": seconds, "rtf": seconds_taken / seconds if seconds else None, "out": str(out),
            "noise_scales": (NOISE_SCALE, NOISE_SCALE_DP)}
