"""Host-side generation over the ``prefill`` and ``decode`` graphs.

A *runner* owns the KV cache between calls and exposes two methods:

* ``prefill(cond_latent [B, D], text_ids [B, T], start_token [B]) -> (logits [B, V], hidden [B, T+4, D])``
* ``decode(token [B], position [B]) -> (logits [B, V], hidden [B, D])``

Both runners are two ``ttskiln.runners`` runners (one per graph) and the cache between them.
``OrtRunner`` runs the exported graphs with ONNX Runtime I/O binding: the ``present`` output
is left where the provider allocated it (an ``OrtValue``; host memory on CPU, device memory on
CUDA/TensorRT) and bound as the next call's ``past`` input as is, so the cache never travels
through numpy. Only the small ``logits``/``hidden`` outputs come back to the host. ``TorchRunner``
does the same over the PyTorch model's ``prefill``/``decode``, the cache kept as a tensor. ``generate`` runs greedy or seeded sampling for a list
of prompts (prompts of equal text length share one batch).

Mel positions (upstream's cached-generation quirk, see the family docstring): the start token
sits at mel position 0 (in the prefill); the k-th generated token (k = 1, 2, ...) is fed back at
position k + 1, so position 1 is never used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ttskiln.errors import InputError
from ttskiln.families.tortoise_gpt.config import TortoiseConfig
from ttskiln.runners import CPU_PROVIDER
from ttskiln.runners import OrtRunner as OrtGraphRunner
from ttskiln.runners import Runner as GraphRunner
from ttskiln.runners import TorchRunner as TorchGraphRunner


def generated_position(k: int) -> int:
    """Mel position at which the k-th generated token (k >= 1) is fed back (upstream: k + 1)."""
    return k + 1


class Runner(Protocol):
    def prefill(self, cond_latent: np.ndarray, text_ids: np.ndarray, start_token: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def decode(self, token: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


PREFILL_INPUTS = ("cond_latent", "text_ids", "start_token")
DECODE_INPUTS = ("token", "position", "past")
OUTPUTS = ("logits", "hidden", "present")


class CachedRunner:
    """prefill/decode over two graph runners (``ttskiln.runners``), the KV cache between them
    kept as the runners return it (``present``, bound as the next call's ``past``)."""

    def __init__(self, prefill: GraphRunner, decode: GraphRunner) -> None:
        self.prefill_runner, self.decode_runner = prefill.activate(), decode.activate()
        self.past: Any = None

    def _run(self, runner: GraphRunner, feed: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        out = runner.infer(feed)
        self.past = out["present"]
        return out["logits"], out["hidden"]

    def prefill(self, cond_latent: np.ndarray, text_ids: np.ndarray, start_token: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feed = {"cond_latent": np.ascontiguousarray(cond_latent, dtype=np.float32),
                "text_ids": np.ascontiguousarray(text_ids, dtype=np.int64),
                "start_token": np.ascontiguousarray(start_token, dtype=np.int64)}
        return self._run(self.prefill_runner, feed)

    def decode(self, token: np.ndarray, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.past is None:
            raise InputError("decode before prefill: no KV cache")
        feed = {"token": np.ascontiguousarray(token, dtype=np.int64),
                "position": np.ascontiguousarray(position, dtype=np.int64), "past": self.past}
        return self._run(self.decode_runner, feed)

    def cache(self) -> np.ndarray:
        return self.past.numpy()


class OrtRunner(CachedRunner):
    """prefill/decode on ONNX Runtime with I/O binding; ``device`` ("cpu", "cuda") is where
    ``present``/``past`` live between calls."""

    def __init__(self, prefill: Any, decode: Any, device: str = "cpu", device_id: int = 0) -> None:
        provider = CPU_PROVIDER if device == "cpu" else "CUDAExecutionProvider"

        def graph(model: Any) -> OrtGraphRunner:
            runner = OrtGraphRunner(model, provider=provider, outputs=OUTPUTS, keep=("present",), device_id=device_id)
            runner.device = device
            return runner

        super().__init__(graph(prefill), graph(decode))
        self.device, self.device_id = device, device_id

    @classmethod
    def open(cls, prefill: str | Path, decode: str | Path, threads: int | None = None,
             providers: Sequence[str] = (CPU_PROVIDER,)) -> "OrtRunner":
        from ttskiln.runtime import ort_session

        device = "cuda" if any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in providers) else "cpu"
        # Spinning stays on: the host work between decode steps is tiny, and the busy-waiting
        # threads answer the next step sooner (1.0-1.4 ms per token vs 1.3-1.7 ms without).
        return cls(ort_session(prefill, threads, providers), ort_session(decode, threads, providers), device)


class TorchRunner(CachedRunner):
    """prefill/decode over the PyTorch model with its cache kept as a tensor."""

    def __init__(self, model: Any) -> None:
        self.model = model
        super().__init__(TorchGraphRunner(model.prefill, PREFILL_INPUTS, OUTPUTS, keep=("present",)),
                         TorchGraphRunner(model.decode, DECODE_INPUTS, OUTPUTS, keep=("present",)))


@dataclass(frozen=True)
class Sampling:
    """Greedy when ``do_sample`` is False; otherwise temperature / top-k / top-p sampling from a
    generator seeded with ``seed``. ``repetition_penalty`` follows HF's rule (divide positive,
    multiply negative logits of ids already in the sequence, incl. upstream's dummy prompt ids)."""

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0


@dataclass
class Generation:
    tokens: np.ndarray  # [B, N] int64 (rows that stopped are padded with the stop token)
    step_logits: np.ndarray  # [B, N, V] raw logits of every step
    step_hidden: np.ndarray  # [B, N, D] final-norm hidden state that produced each token
    prefill_hidden: np.ndarray  # [B, T+4, D]
    positions: list[int] = field(default_factory=list)  # mel position fed at each decode call


def check_lengths(cfg: TortoiseConfig, text_length: int, max_new_tokens: int) -> None:
    """Raise InputError before anything runs when a request exceeds the model's positions."""
    if text_length > cfg.max_text_tokens:
        raise InputError(
            f"text of {text_length} tokens exceeds the model's maximum of {cfg.max_text_tokens} text tokens "
            f"(max_text_tokens; text positions {cfg.text_positions})"
        )
    if text_length < 1:
        raise InputError("text must hold at least one token")
    if max_new_tokens > cfg.max_new_tokens:
        raise InputError(
            f"{max_new_tokens} mel tokens requested; the model generates at most {cfg.max_new_tokens} "
            f"(max_mel_tokens {cfg.max_mel_tokens} - 1; mel positions {cfg.mel_positions})"
        )
    if max_new_tokens < 1:
        raise InputError("max_new_tokens must be at least 1")


def _choose(logits: np.ndarray, seen: list[set[int]], sampling: Sampling, rng: np.random.Generator | None) -> np.ndarray:
    scores = logits.astype(np.float64)
    if sampling.repetition_penalty != 1.0:
        for row, ids in enumerate(seen):
            idx = np.fromiter(ids, dtype=np.int64)
            vals = scores[row, idx]
            scores[row, idx] = np.where(vals < 0, vals * sampling.repetition_penalty, vals / sampling.repetition_penalty)
    if not sampling.do_sample:
        return scores.argmax(axis=-1).astype(np.int64)
    assert rng is not None
    scores = scores / sampling.temperature
    if sampling.top_k > 0:
        kth = np.sort(scores, axis=-1)[:, -min(sampling.top_k, scores.shape[-1])][:, None]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    if sampling.top_p < 1.0:
        order = np.argsort(-probs, axis=-1, kind="stable")
        sorted_p = np.take_along_axis(probs, order, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (at least one token)
        drop = np.cumsum(sorted_p, axis=-1) - sorted_p >= sampling.top_p
        sorted_p = np.where(drop, 0.0, sorted_p)
        probs = np.zeros_like(probs)
        np.put_along_axis(probs, order, sorted_p, axis=-1)
        probs /= probs.sum(axis=-1, keepdims=True)
    draws = rng.random(probs.shape[0])
    cdf = np.cumsum(probs, axis=-1)
    return np.minimum((cdf < draws[:, None]).sum(axis=-1), probs.shape[-1] - 1).astype(np.int64)


def generate_batch(
    runner: Runner,
    cfg: TortoiseConfig,
    cond_latent: np.ndarray,
    text_ids: np.ndarray,
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    stop_early: bool = True,
    rng: np.random.Generator | None = None,
) -> Generation:
    """Generate up to ``max_new_tokens`` for a batch of prompts with equal text length."""
    text_ids = np.asarray(text_ids, dtype=np.int64)
    if text_ids.ndim != 2:
        raise InputError(f"text_ids must be [batch, tokens], got shape {list(text_ids.shape)}")
    b, t = text_ids.shape
    check_lengths(cfg, t, max_new_tokens)
    if text_ids.size and (text_ids.min() < 0 or text_ids.max() >= cfg.text_vocab):
        raise InputError(f"text ids must lie in 0..{cfg.text_vocab - 1} (text_embedding rows), got {text_ids.min()}..{text_ids.max()}")
    if sampling.do_sample and rng is None:
        rng = np.random.default_rng(sampling.seed)
    start = np.full(b, cfg.start_mel_token, dtype=np.int64)
    logits, prefill_hidden = runner.prefill(np.asarray(cond_latent, dtype=np.float32), text_ids, start)
    hidden = prefill_hidden[:, -1]
    # HF's repetition penalty sees upstream's dummy prompt ids (all 1, then the start token)
    seen = [{1, cfg.start_mel_token} for _ in range(b)]
    done = np.zeros(b, dtype=bool)
    tokens, all_logits, all_hidden, positions = [], [], [], []
    for k in range(1, max_new_tokens + 1):
        token = _choose(logits, seen, sampling, rng)
        token = np.where(done, cfg.stop_mel_token, token)
        tokens.append(token)
        all_logits.append(logits)
        all_hidden.append(hidden)
        for row, tok in enumerate(token):
            seen[row].add(int(tok))
        done |= token == cfg.stop_mel_token
        if k == max_new_tokens or (stop_early and done.all()):
            break
        position = np.full(b, generated_position(k), dtype=np.int64)
        positions.append(int(position[0]))
        logits, hidden = runner.decode(token, position)
    return Generation(np.stack(tokens, 1), np.stack(all_logits, 1), np.stack(all_hidden, 1), prefill_hidden, positions)


def generate(
    runner: Runner,
    cfg: TortoiseConfig,
    prompts: Sequence[tuple[np.ndarray, np.ndarray]],
    max_new_tokens: int,
    sampling: Sampling = Sampling(),
    stop_early: bool = True,
) -> list[np.ndarray]:
    """Tokens for each (cond_latent [D], text_ids [T]) prompt; prompts of equal text length run
    as one batch. Every length is checked before anything runs."""
    for _, ids in prompts:
        check_lengths(cfg, int(np.asarray(ids).shape[-1]), max_new_tokens)
    rng = np.random.default_rng(sampling.seed) if sampling.do_sample else None
    groups: dict[int, list[int]] = {}
    for i, (_, ids) in enumerate(prompts):
        groups.setdefault(int(np.asarray(ids).shape[-1]), []).append(i)
    result: list[np.ndarray] = [np.empty(0, np.int64)] * len(prompts)
    for members in groups.values():
        cond = np.stack([np.asarray(prompts[i][0], np.float32).reshape(-1) for i in members])
        ids = np.stack([np.asarray(prompts[i][1], np.int64).reshape(-1) for i in members])
        gen = generate_batch(runner, cfg, cond, ids, max_new_tokens, sampling, stop_early, rng)
        for row, i in enumerate(members):
            tokens = gen.tokens[row]
            stops = np.flatnonzero(tokens == cfg.stop_mel_token)
            result[i] = tokens[: stops[0] + 1] if stops.size else tokens
    return result
