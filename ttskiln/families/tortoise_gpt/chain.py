"""The ``generate`` chain: text -> prefill + N decode steps over the exported graphs.

Text: ``options.chain_texts`` (default ``DEFAULT_TEXTS``) through Tortoise's front end
(``text.py``) with the model's tokenizer: ``options.tokenizer`` (a tokenizer.json), else the
``tokenizer.json`` beside the checkpoint (a synthetic checkpoint writes one over the letters
and punctuation, ``text.synthetic_tokenizer_json``). A text's prompt is its ids plus the 0
upstream appends, in every row of the point's batch. The prompt length is the text's, not the
point's: the profile's ``tokens`` range is what the graphs are built for, and every prompt must
fit in its largest point and the model's max_text_tokens (checked when the plan is built, with
the characters the tokenizer spells: ``resolve_texts``; a default text is cut after a word to
fit).

Validation (one row, variant ``fp32``): for each text, greedy generation on ONNX Runtime with
I/O binding (seeded conditioning latent), then the full uncached PyTorch forward over the same
token sequence at the same mel positions. Every step's logits and final-norm hidden state are
compared; the row records the per-step max abs error over the texts (``step_max_abs_err``) and
the worst over all steps as ``max_abs_err`` (plus cosine / SNR over all steps), checked
against the model's tolerances, and ``texts`` and ``text_tokens`` (prompt lengths).

Benchmark (four rows, the first text): ``fp32-prefill`` (prefill at its prompt length) and
``fp32-decode`` (one decode step with the cache fed back, every step of a few N-step
generations; p50 per token and tokens/s for the whole batch), each on ONNX Runtime (I/O binding) and PyTorch eager
(with its cache). ``speedup_vs_torch`` is on the ONNX Runtime rows.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from pathlib import Path

from ttskiln.errors import ConfigError, InputError
from ttskiln.families.base import ChainJob, shortest_fit
from ttskiln.families.tortoise_gpt.config import SAMPLE_RATE, TortoiseConfig
from ttskiln.families.tortoise_gpt.generate import generated_position
from ttskiln.rows import REFERENCE_BACKEND, accuracy_row, latency_row
from ttskiln.runners import label

DEFAULT_STEPS = 16
ORT_BACKEND = label("ort-cpu")
TORCH_BACKEND = REFERENCE_BACKEND
#: What the chain says when ``options.chain_texts`` is not given (28 ids + the pad: 29 tokens).
DEFAULT_TEXTS = ("hello world, this is a test.",)


def load_tokenizer(config: dict[str, Any], options: dict[str, Any], checkpoint: Path | str | None) -> Any:
    """The model's tokenizer: ``options.tokenizer``, else ``tokenizer.json`` beside the
    checkpoint, else (a synthetic checkpoint not yet written) the one it will write."""
    from ttskiln.families.tortoise_gpt.text import TOKENIZER_FILE, TortoiseTokenizer, synthetic_tokenizer_json

    given = options.get("tokenizer")
    if given is not None:
        if not Path(given).is_file():
            raise ConfigError(f"options.tokenizer: {given} not found (the model's tokenizer.json)")
        try:
            return TortoiseTokenizer(given)
        except InputError as exc:
            raise ConfigError(f"options.tokenizer: {exc}") from None
    if checkpoint is None:
        cfg = TortoiseConfig.from_dict(config)
        return TortoiseTokenizer("synthetic " + TOKENIZER_FILE, synthetic_tokenizer_json(cfg.number_text_tokens))
    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    if not (folder / TOKENIZER_FILE).is_file():
        raise ConfigError(f"the generate chain reads text with the model's tokenizer: no {TOKENIZER_FILE} beside "
                          f"the checkpoint in {folder}; give options.tokenizer (Tortoise's tokenizer.json)")
    try:
        return TortoiseTokenizer(folder / TOKENIZER_FILE)
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def resolve_texts(config: dict[str, Any], options: dict[str, Any], checkpoint: Path | str | None,
                  budget: int | None = None) -> tuple[list[str], list[list[int]]]:
    """(texts, prompt ids per text: the tokenizer's ids and upstream's trailing 0). ConfigError
    for a text with characters the tokenizer has no token for, ids beyond the model's text
    vocabulary, or a prompt longer than max_text_tokens or ``budget`` (the profile's largest
    tokens: the graphs are built for prompts up to it). A default text longer than that is cut
    after a word (``shortest_fit``)."""
    from ttskiln.families.tortoise_gpt.text import PAD_ID

    cfg = TortoiseConfig.from_dict(config)
    texts = options.get("chain_texts")
    texts = list(DEFAULT_TEXTS) if texts is None else texts
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ConfigError(f"options.chain_texts must be a non-empty list of texts, got {texts!r}")
    tokenizer = load_tokenizer(config, options, checkpoint)
    limit = cfg.max_text_tokens if budget is None else min(cfg.max_text_tokens, budget)
    given = options.get("chain_texts") is not None

    def prompt_of(text: str) -> list[int]:
        return tokenizer.encode(text) + [PAD_ID]

    if not given:
        texts = [shortest_fit(t, lambda t: len(prompt_of(t)), limit) for t in texts]
    prompts = []
    for i, text in enumerate(texts):
        where = f"options.chain_texts[{i}] {text!r}"
        unknown = tokenizer.unknown(text)
        if unknown:
            shown = " ".join(repr(c) for c in unknown[:20])
            raise ConfigError(f"{where}: characters the tokenizer ({tokenizer.path.name}) has no token for, after "
                              f"Tortoise's cleaners: {shown}; remove or replace them")
        prompt = prompt_of(text)
        if len(prompt) < 2:
            raise ConfigError(f"{where}: gives no tokens; give some words to speak")
        if max(prompt) >= cfg.number_text_tokens:
            raise ConfigError(f"{where}: the tokenizer gives ids up to {max(prompt)}; the model has {cfg.number_text_tokens} "
                              "text tokens (is the tokenizer the model's own?)")
        if len(prompt) > limit:
            what = "the model's max_text_tokens" if limit == cfg.max_text_tokens else "the profile's largest tokens"
            raise ConfigError(f"{where}: a prompt of {len(prompt)} tokens, above {what} {limit}; "
                              "shorten the text (or raise the profile's tokens)")
        prompts.append(prompt)
    return list(texts), prompts


def chain_prompts(cfg: TortoiseConfig, batch: int, tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded conditioning latents [B, D] and text ids [B, tokens] (the graphs' test inputs; the
    chain speaks text, ``resolve_texts``)."""
    rng = np.random.default_rng([seed, batch, tokens])
    cond = (0.6 * rng.standard_normal((batch, cfg.model_dim))).astype(np.float32)
    text = rng.integers(1, cfg.number_text_tokens, size=(batch, tokens)).astype(np.int64)
    return cond, text


def time_generation(runner: Any, cfg: TortoiseConfig, cond: np.ndarray, text: np.ndarray, steps: int,
                    warmup: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(prefill, per-token decode) latency. Prefill: ``repeats`` timed calls after ``warmup``.
    Decode: every step of ceil(repeats / 4) generations of ``steps`` tokens after a prefill
    (one untimed generation first), each step feeding its cache and greedy token to the next."""
    from ttskiln.timing import latency_stats, time_calls

    b = text.shape[0]
    start = np.full(b, cfg.start_mel_token, dtype=np.int64)
    prefill = time_calls(lambda: runner.prefill(cond, text, start), warmup, repeats)
    decode_ms = []
    runs = max(1, math.ceil(repeats / 4))
    for r in range(1 + runs):
        logits, _ = runner.prefill(cond, text, start)
        for k in range(1, steps + 1):
            token = logits.argmax(-1).astype(np.int64)
            position = np.full(b, generated_position(k), dtype=np.int64)
            s0 = time.perf_counter()
            logits, _ = runner.decode(token, position)
            if r:
                decode_ms.append((time.perf_counter() - s0) * 1e3)
    # Steps at growing cache lengths are different calls: their spread is the work's, not noise.
    return prefill, {**latency_stats(np.array(decode_ms)), "varied_calls": True}


def run_generate_chain(family: Any, job: ChainJob) -> list[dict[str, Any]]:
    import torch

    from ttskiln.families.tortoise_gpt.generate import OrtRunner, TorchRunner, check_lengths, generate_batch
    from ttskiln.metrics import failures, tensor_metrics
    from ttskiln.runtime import set_torch_threads

    cfg = TortoiseConfig.from_dict(job.config)
    missing = [c for c in ("prefill", "decode") if c not in job.artifacts]
    if missing:
        raise ConfigError(f"chain generate needs the fp32 ONNX of {missing}")
    batch = int(job.sizes.get("batch", 1))
    # The points' token budget is checked when the plan is built; here the model's limits.
    texts, prompts = resolve_texts(job.config, job.options, job.checkpoint)
    steps = min(int(job.options.get("decode_steps", job.config.get("decode_steps", DEFAULT_STEPS))), cfg.max_new_tokens)
    for prompt in prompts:
        check_lengths(cfg, len(prompt), steps)
    threads = int(job.bench.get("threads", 1))
    warmup, repeats = int(job.bench.get("warmup", 1)), int(job.bench.get("repeats", 3))
    tolerances = {**family.default_tolerances, **job.tolerances}

    set_torch_threads(threads)
    model = family.load(job.checkpoint, job.config)
    ort_runner = OrtRunner.open(job.artifacts["prefill"], job.artifacts["decode"], threads)
    torch_runner = TorchRunner(model)
    cond, _ = chain_prompts(cfg, batch, 1, job.seed)
    requests = [np.asarray([prompt] * batch, dtype=np.int64) for prompt in prompts]
    text, tokens = requests[0], requests[0].shape[1]
    shape = {"cond_latent": [batch, cfg.model_dim], "text_ids": [batch, tokens]}

    # -- accuracy: cached ONNX generation vs the full PyTorch forward, at every step, every text
    step_err: list[float] = []
    refs, gots, generated = [], [], []
    same = True
    for request in requests:
        gen = generate_batch(ort_runner, cfg, cond, request, steps, stop_early=False)
        n = gen.tokens.shape[1]
        fed = np.concatenate([np.full((batch, 1), cfg.start_mel_token, np.int64), gen.tokens[:, :-1]], 1)
        positions = np.array([0] + [k + 1 for k in range(1, n)], dtype=np.int64)[None].repeat(batch, 0)
        with torch.inference_mode():
            ref_logits, ref_hidden = model.full(torch.from_numpy(cond), torch.from_numpy(request),
                                                torch.from_numpy(fed), torch.from_numpy(positions))
        ref_logits, ref_hidden = ref_logits.numpy(), ref_hidden.numpy()
        errs = [float(max(np.abs(gen.step_logits[:, k] - ref_logits[:, k]).max(),
                          np.abs(gen.step_hidden[:, k] - ref_hidden[:, k]).max())) for k in range(n)]
        step_err = [max(a, b) for a, b in zip(step_err, errs)] if step_err else errs
        refs += [ref_logits.ravel(), ref_hidden.ravel()]
        gots += [gen.step_logits.ravel(), gen.step_hidden.ravel()]
        generated.append(gen.tokens.tolist())
        torch_tokens = generate_batch(torch_runner, cfg, cond, request, steps, stop_early=False).tokens
        same = same and bool(np.array_equal(torch_tokens, gen.tokens))
    metrics = tensor_metrics(np.concatenate(refs), np.concatenate(gots))
    metrics["max_abs_err"] = max(step_err)
    broken = failures(metrics, tolerances)
    rows: list[dict[str, Any]] = [accuracy_row(
        component=job.chain, variant="fp32", backend=ORT_BACKEND, metrics=metrics, failures=broken, tolerances=tolerances,
        io_binding=True, shape=shape, step_max_abs_err=step_err, steps=len(step_err), texts=texts,
        text_tokens=[len(p) for p in prompts], tokens=generated[0] if len(generated) == 1 else generated,
        tokens_equal_torch_cached=same,
    ).to_dict()]

    # -- latency: prefill and per-token decode, ORT (I/O binding) vs PyTorch with cache --------
    timings = {
        backend: time_generation(runner, cfg, cond, text, steps, warmup, repeats)
        for backend, runner in ((TORCH_BACKEND, torch_runner), (ORT_BACKEND, ort_runner))
    }
    step_audio = batch * cfg.mel_length_compression / SAMPLE_RATE  # seconds of audio one step adds
    for index, variant in enumerate(("fp32-prefill", "fp32-decode")):
        base = timings[TORCH_BACKEND][index]["p50_ms"]
        for backend in (TORCH_BACKEND, ORT_BACKEND):
            stats = timings[backend][index]
            # latency rows; the fp32 row above carries the accuracy verdict
            more = ({"steps": steps, "tokens_per_s": batch * 1e3 / stats["p50_ms"]} if index == 1
                    else {"prompt_tokens": tokens})
            rows.append(latency_row(
                component=job.chain, variant=variant, backend=backend, timing=stats, reference_ms=base, all_stats=True,
                audio_seconds=step_audio if index == 1 else None, io_binding=backend == ORT_BACKEND,
                shape=shape if index == 0 else {**shape, "past": [cfg.layers, 2, batch, cfg.heads, f"{tokens + 4}..{tokens + 3 + steps}", cfg.head_dim]},
                threads=threads, warmup=warmup, repeats=repeats, **more,
            ).to_dict())
    return rows
