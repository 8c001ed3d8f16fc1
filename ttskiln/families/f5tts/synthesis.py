"""The synthesis loop of one batch of prepared requests: the sampler (Euler/CFG/sway over a
velocity backend), the reference frames cut, the vocoder (mel -> audio) and the reference's
gain undone; and the vocoders it runs (PyTorch, ONNX Runtime) with their check against the
F5 mel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.request import DEFAULT_MAX_FRAMES, Prepared
from ttskiln.families.f5tts.sampler import sample
from ttskiln.families.f5tts.vocoder_link import VOCODER_COMPONENT, VOCODER_ROLE, check_vocoder_info

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
    check_vocoder_info(cfg, info, where)


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
