"""Host side of VITS inference (numpy): d-vector normalisation, durations, alignment expansion,
and the whole text -> waveform pipeline around any backend.

A backend is a callable ``run(component, inputs) -> {output: array}`` (PyTorch modules or
ONNX Runtime sessions), so the same host code drives both; see ``synthesize``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ttskiln.errors import InputError

Backend = Callable[[str, dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class HostDims:
    hidden: int
    d_vector_dim: int
    num_chars: int
    num_languages: int
    max_tokens: int
    hop_length: int
    #: ``d_vector`` (input g), ``embedding`` (input sid) or ``none`` (no speaker input).
    speaker_mode: str = "d_vector"
    num_speakers: int = 0


def normalize_d_vector(d_vector: np.ndarray, dims: HostDims) -> np.ndarray:
    """Raw d-vectors [B, D] (or [D]) -> L2-normalised g [B, D] float32 (F.normalize, eps 1e-12)."""
    d = np.asarray(d_vector, dtype=np.float32)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[1] != dims.d_vector_dim:
        raise InputError(f"d-vector must be [batch, {dims.d_vector_dim}], got shape {list(np.shape(d_vector))}")
    if not np.all(np.isfinite(d)):
        raise InputError("d-vector holds NaN or infinite values")
    norm = np.sqrt(np.sum(d * d, axis=1, keepdims=True, dtype=np.float32))
    return (d / np.maximum(norm, np.float32(1e-12))).astype(np.float32)


def speaker_feed(speaker: np.ndarray | None, dims: HostDims, batch: int) -> dict[str, np.ndarray]:
    """The graphs' speaker input: ``{"g": normalised d-vectors}``, ``{"sid": speaker ids}`` or ``{}``."""
    if dims.speaker_mode == "none":
        if speaker is not None:
            raise InputError("this model takes no speaker (no speaker embedding, no d-vectors)")
        return {}
    if speaker is None:
        raise InputError("this model needs a speaker: " + ("a d-vector" if dims.speaker_mode == "d_vector" else "a speaker id"))
    if dims.speaker_mode == "embedding":
        sid = np.asarray(speaker).reshape(-1)
        if not np.issubdtype(sid.dtype, np.integer):
            raise InputError(f"speaker ids must be integers, got {sid.dtype}")
        if sid.shape[0] != batch or sid.min() < 0 or sid.max() >= dims.num_speakers:
            raise InputError(f"speaker ids {sid.tolist()} must be one per row in 0..{dims.num_speakers - 1}")
        return {"sid": sid.astype(np.int64)}
    g = normalize_d_vector(speaker, dims)
    if g.shape[0] != batch:
        raise InputError(f"{g.shape[0]} d-vectors for {batch} token rows")
    return {"g": g}


def check_tokens(tokens: np.ndarray, lengths: np.ndarray, dims: HostDims) -> None:
    if tokens.ndim != 2:
        raise InputError(f"token ids must be [batch, tokens], got shape {list(tokens.shape)}")
    if tokens.shape[1] > dims.max_tokens:
        raise InputError(
            f"token sequence of {tokens.shape[1]} ids is longer than the model's maximum of {dims.max_tokens}; "
            "split the text into sentences"
        )
    if tokens.shape[1] == 0 or np.any(lengths < 1) or np.any(lengths > tokens.shape[1]):
        raise InputError(f"token lengths {lengths.tolist()} must lie in 1..{tokens.shape[1]}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= dims.num_chars):
        raise InputError(f"token ids must lie in 0..{dims.num_chars - 1}, got {tokens.min()}..{tokens.max()}")


def durations(logw: np.ndarray, x_mask: np.ndarray, length_scale: float = 1.0) -> np.ndarray:
    """w_ceil = ceil(exp(logw) * x_mask * length_scale), [B, 1, T] float32."""
    w = np.exp(logw.astype(np.float32)) * x_mask.astype(np.float32) * np.float32(length_scale)
    return np.ceil(w).astype(np.float32)


def expand(w_ceil: np.ndarray, x_mask: np.ndarray, m_p: np.ndarray, logs_p: np.ndarray) -> dict[str, np.ndarray]:
    """Hard monotonic path from integer durations and the expansion of the prior statistics.

    Returns ``y_mask`` [B, 1, F], ``alignments`` [B, T, F], ``m_p`` and ``logs_p`` [B, C, F]
    with F = max(1, max over rows of sum(w_ceil)).
    """
    w = w_ceil[:, 0].astype(np.int64)  # [B, T]
    y_lengths = np.maximum(w.sum(axis=1), 1)
    frames = int(y_lengths.max())
    y_mask = (np.arange(frames)[None, :] < y_lengths[:, None]).astype(np.float32)[:, None, :]
    ends = np.cumsum(w, axis=1)
    starts = ends - w
    f = np.arange(frames)[None, None, :]
    path = ((f >= starts[:, :, None]) & (f < ends[:, :, None])).astype(np.float32)
    path *= x_mask[:, 0, :, None] * y_mask
    m = np.einsum("btf,bct->bcf", path, m_p.astype(np.float32)).astype(np.float32)
    logs = np.einsum("btf,bct->bcf", path, logs_p.astype(np.float32)).astype(np.float32)
    return {"y_mask": y_mask, "alignments": path, "m_p": m, "logs_p": logs, "y_lengths": y_lengths}


def synthesize(
    run: Backend,
    dims: HostDims,
    tokens: np.ndarray,
    lengths: np.ndarray,
    speaker: np.ndarray | None,
    language_id: np.ndarray | None,
    noise_dp: np.ndarray,
    noise_z: Callable[[int], np.ndarray] | np.ndarray,
    length_scale: float = 1.0,
) -> dict[str, np.ndarray]:
    """Text ids -> waveform through ``run``; every boundary tensor is returned.

    ``speaker``: raw d-vectors [B, D] (normalised here), speaker ids [B], or None, as the
    model's ``speaker_mode`` says; ``language_id`` [B] (None or ignored without a language
    embedding).

    ``noise_dp`` [B, 2, T] and ``noise_z`` [B, C, F] (or a function of F, since F is known only
    after the durations) are already multiplied by their noise scales.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    check_tokens(tokens, lengths, dims)
    batch = tokens.shape[0]
    cond = speaker_feed(speaker, dims, batch)
    if dims.num_languages:
        if language_id is None:
            raise InputError("this model needs a language id per row")
        language_id = np.asarray(language_id, dtype=np.int64).reshape(-1)
        if language_id.shape[0] != batch or language_id.min() < 0 or language_id.max() >= dims.num_languages:
            raise InputError(f"language ids {language_id.tolist()} must be one per row in 0..{dims.num_languages - 1}")
        cond["language_id"] = language_id
    # Each backend feeds a graph only the inputs it declares.
    enc = run("text_encoder", {"tokens": tokens, "lengths": lengths, **cond})
    logw = run("duration_predictor", {"x": enc["x"], "x_mask": enc["x_mask"], **cond,
                                      "noise": np.asarray(noise_dp, dtype=np.float32)})["logw"]
    w_ceil = durations(logw, enc["x_mask"], length_scale)
    ex = expand(w_ceil, enc["x_mask"], enc["m_p"], enc["logs_p"])
    frames = ex["y_mask"].shape[-1]
    nz = noise_z(frames) if callable(noise_z) else np.asarray(noise_z, dtype=np.float32)
    if nz.shape != ex["m_p"].shape:
        raise InputError(f"z noise must be {list(ex['m_p'].shape)}, got {list(nz.shape)}")
    flow = run("flow", {"m_p": ex["m_p"], "logs_p": ex["logs_p"], "noise": nz, "y_mask": ex["y_mask"], **cond})
    decoder_input = (flow["z"] * ex["y_mask"]).astype(np.float32)
    audio = run("decoder", {"z": decoder_input, **cond})["audio"]
    return {
        **({"g": cond["g"]} if "g" in cond else {}),
        "enc_x": enc["x"],
        "enc_m_p": enc["m_p"],
        "enc_logs_p": enc["logs_p"],
        "enc_x_mask": enc["x_mask"],
        "dp_logw": logw,
        "durations": w_ceil,
        "y_mask": ex["y_mask"],
        "alignments": ex["alignments"],
        "m_p_expanded": ex["m_p"],
        "logs_p_expanded": ex["logs_p"],
        "z_p": flow["z_p"],
        "z": flow["z"],
        "decoder_input": decoder_input,
        "waveform": audio,
        "y_lengths": ex["y_lengths"],
    }
