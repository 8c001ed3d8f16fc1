"""Host side of the ``dit`` graph: turn DiT.forward-style arguments into graph inputs.

Everything here is numpy (no torch), so the same code feeds the PyTorch module, an ONNX
Runtime session, or a TensorRT engine. It does what upstream does around the network:

* text: ids + 1 (so -1 padding becomes the filler 0), cropped or zero-padded to the frame
  count, zeroed past each row's valid length (``mask.sum``), as upstream's TextEmbedding does;
* time: the 256-d sinusoid ``[sin | cos](1000 t * exp(-ln(1e4) i / 127))``;
* RoPE: ``cos``/``sin`` of ``position * inv_freq`` with each angle repeated for its
  interleaved pair; text positions: ``[cos | sin](position * 1e4^(-2i/text_dim))``;
* CFG packing: conditional rows, then unconditional rows (cond zeroed, text dropped).

Sinusoids are computed in float32 in upstream's operation order; frequency vectors are
float32-rounded float64 values (torch's own float32 exp/pow differ in the last bit for at most
a few of them). All sin/cos of large angles therefore run on the host in fp32, which keeps an
fp16 engine of the graph from evaluating 1000-radian angles in half precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.f5tts.config import TIME_SINUSOID_DIM, F5Config

TIME_SCALE = 1000.0
POSITION_BASE = 10000.0


@dataclass(frozen=True)
class HostDims:
    """The sizes the host needs (no weights): taken from a config or a ModelInfo summary."""

    mel_dim: int
    dim_head: int
    text_dim: int
    conv_layers: int
    text_num_embeds: int

    @classmethod
    def of(cls, config: F5Config | dict[str, Any]) -> "HostDims":
        cfg = config if isinstance(config, F5Config) else F5Config.from_dict(config)
        return cls(cfg.mel_dim, cfg.dim_head, cfg.text_dim, cfg.conv_layers, cfg.text_num_embeds)

    @property
    def uses_text_pos(self) -> bool:
        return self.conv_layers > 0


def _frequencies(count: int, dim: int) -> np.ndarray:
    """``1 / base^(2i/dim)`` for i < count, float32 (upstream's RoPE / text position rule)."""
    exponent = np.arange(0, 2 * count, 2, dtype=np.float32) / np.float32(dim)
    power = (POSITION_BASE ** exponent.astype(np.float64)).astype(np.float32)
    return np.float32(1.0) / power


def time_frequencies() -> np.ndarray:
    """[128] float32: exp(-ln(10000) * i / 127)."""
    half = TIME_SINUSOID_DIM // 2
    exponent = np.arange(half, dtype=np.float32) * np.float32(-math.log(10000.0) / (half - 1))
    return np.exp(exponent.astype(np.float64)).astype(np.float32)


def time_sinusoid(time: np.ndarray) -> np.ndarray:
    """Flow times [B] -> [B, 256] float32 ``[sin | cos]``."""
    t = np.asarray(time, dtype=np.float32).reshape(-1)
    angles = (np.float32(TIME_SCALE) * t)[:, None] * time_frequencies()[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=-1).astype(np.float32)


def rotary_inv_freq(dim_head: int) -> np.ndarray:
    """[dim_head / 2] float32: the ``rotary_embed.inv_freq`` a released checkpoint stores."""
    return _frequencies(dim_head // 2, dim_head)


def rope_tables(frames: int, dim_head: int) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin), each [frames, dim_head] float32, angle of pair i at columns 2i and 2i+1."""
    angles = np.arange(frames, dtype=np.float32)[:, None] * rotary_inv_freq(dim_head)[None, :]
    angles = np.repeat(angles, 2, axis=-1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def text_positions(frames: int, text_dim: int) -> np.ndarray:
    """[frames, text_dim] float32: ``[cos | sin]`` of position times the text frequencies."""
    angles = np.arange(frames, dtype=np.float32)[:, None] * _frequencies(text_dim // 2, text_dim)[None, :]
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=-1).astype(np.float32)


def position_tables(dims: HostDims, frames: int) -> dict[str, np.ndarray]:
    """The position inputs of the graph for ``frames`` (shared by every row and step)."""
    cos, sin = rope_tables(frames, dims.dim_head)
    tables = {"rope_cos": cos, "rope_sin": sin}
    if dims.uses_text_pos:
        tables["text_pos"] = text_positions(frames, dims.text_dim)
    return tables


def layout_text(text: np.ndarray, lengths: np.ndarray, frames: int) -> np.ndarray:
    """Upstream ids [B, nt] (-1 = pad) -> graph ids [B, frames] int64: id + 1, cropped or
    padded with the filler 0, and 0 from each row's valid length on."""
    ids = np.asarray(text, dtype=np.int64)
    if ids.ndim != 2:
        raise InputError(f"text ids must be [batch, tokens], got shape {list(ids.shape)}")
    out = np.zeros((ids.shape[0], frames), dtype=np.int64)
    width = min(frames, ids.shape[1])
    out[:, :width] = ids[:, :width] + 1
    out[np.arange(frames)[None, :] >= np.asarray(lengths).reshape(-1, 1)] = 0
    return out


def dit_inputs(
    dims: HostDims,
    x: np.ndarray,
    cond: np.ndarray,
    text: np.ndarray,
    time: np.ndarray | float,
    mask: np.ndarray | None = None,
    *,
    drop_audio_cond: bool = False,
    drop_text: bool = False,
    cfg_infer: bool = False,
    tables: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Graph inputs for one DiT.forward call (same arguments and meaning as upstream).

    x, cond [B, N, M] float; text [B, nt] ids (-1 = pad); time scalar or [B]; mask [B, N]
    (bool or 0/1) or None for all frames. With ``cfg_infer`` the graph batch is 2B: the
    conditional rows, then the unconditional ones (the output splits the same way).
    """
    x = np.asarray(x, dtype=np.float32)
    cond = np.asarray(cond, dtype=np.float32)
    if x.ndim != 3 or x.shape != cond.shape or x.shape[-1] != dims.mel_dim:
        raise InputError(
            f"x and cond must both be [batch, frames, {dims.mel_dim}], got {list(x.shape)} and {list(cond.shape)}"
        )
    batch, frames, _ = x.shape
    if mask is None:
        valid = np.ones((batch, frames), dtype=np.float32)
    else:
        valid = np.asarray(mask).astype(np.float32)
        if valid.shape != (batch, frames):
            raise InputError(f"mask must be [{batch}, {frames}], got {list(valid.shape)}")
    ids = layout_text(text, valid.sum(axis=1).astype(np.int64), frames)
    if ids.shape[0] != batch:
        raise InputError(f"text has {ids.shape[0]} rows, x has {batch}")
    t = np.broadcast_to(np.asarray(time, dtype=np.float32).reshape(-1), (batch,))
    if cfg_infer:
        rows = {
            "x": np.concatenate([x, x]),
            "cond": np.concatenate([cond, np.zeros_like(cond)]),
            "text": np.concatenate([ids, ids]),
            "drop_text": np.repeat(np.float32([0.0, 1.0]), batch),
            "time": np.concatenate([t, t]),
            "mask": np.concatenate([valid, valid]),
        }
    else:
        rows = {
            "x": x,
            "cond": np.zeros_like(cond) if drop_audio_cond else cond,
            "text": ids,
            "drop_text": np.full(batch, 1.0 if drop_text else 0.0, dtype=np.float32),
            "time": t,
            "mask": valid,
        }
    inputs = {
        "x": np.ascontiguousarray(rows["x"]),
        "cond": np.ascontiguousarray(rows["cond"]),
        "text": np.ascontiguousarray(rows["text"]),
        "drop_text": rows["drop_text"],
        "time_sinusoid": time_sinusoid(rows["time"]),
        "mask": np.ascontiguousarray(rows["mask"]),
    }
    inputs.update(tables if tables is not None else position_tables(dims, frames))
    return inputs


def input_names(dims: HostDims) -> list[str]:
    """The graph's inputs, in order."""
    names = ["x", "cond", "text", "drop_text", "time_sinusoid", "mask", "rope_cos", "rope_sin"]
    return names + (["text_pos"] if dims.uses_text_pos else [])
