"""The Tortoise-TTS autoregressive model (neonbjb/tortoise-tts ``UnifiedVoice``, a GPT-2 over
conditioning latent + text tokens + mel codes).

Checkpoint: the released ``autoregressive.pth`` (a plain ``torch.save`` state_dict, loaded
weights-only), either the file itself or a folder holding it. The file carries no
configuration: a folder may hold ``config.json`` (``{"unified_voice": {...}}``, written for
synthetic checkpoints); otherwise ``options: {preset: tortoise_v2}`` (the default, the
arguments ``tortoise/api.py`` uses) or ``options: {unified_voice: {<UnifiedVoice kwargs>}}``
(over the preset). ``options: {decode_steps: N}`` sets the chain's generated tokens (16);
``chain_texts`` (list of texts) what the chain says; ``tokenizer`` the tokenizer.json it reads
them with (default: ``tokenizer.json`` beside the checkpoint; a synthetic checkpoint writes one).
Loading is strict; the ``gpt.h.N.attn.bias`` / ``attn.masked_bias`` buffers older transformers
saved are accepted and dropped. Presets: ``tortoise_v2`` (released), ``tiny`` (the parity
fixture's size) and ``demo`` (pipeline demo).

Components (axes ``batch`` and ``tokens`` shared, so one profile sets both):

* ``prefill``: ``cond_latent [B, D]``, ``text_ids [B, tokens]`` (raw text ids; the graph adds
  the start text token and the stop id 0), ``start_token [B]`` -> ``logits [B, V]`` (next mel
  token), ``hidden [B, tokens+4, D]`` (after ``gpt.ln_f`` and ``final_norm``: the latents the
  diffusion decoder consumes), ``present [layers, 2, B, heads, tokens+4, head_dim]``.
* ``decode``: ``token [B]``, ``position [B]`` (mel position row), ``past [layers, 2, B, heads,
  tokens, head_dim]`` -> ``logits [B, V]``, ``hidden [B, D]``, ``present`` (past + 1 row).

KV cache: one stacked tensor (key and value of every layer; the fixture's layout). Generation
(``generate.py``) binds ``present`` of one call as ``past`` of the next with ONNX Runtime I/O
binding, so it stays where the provider put it. For a profile point, ``tokens`` is the text
length for ``prefill`` and the cache length for ``decode``.

Upstream's cached-generation position quirk (reproduced): ``inference_speech`` hands HF
``generate`` T+4 dummy ids while the cached prefix holds T+3 rows plus the start token; the
position of each new token is ``attention_mask_len - (T+3)``, so the start token uses mel
position 0 and the k-th generated token is fed back at position k+1 (1 is never used). The
uncached path (``kv_cache=False``) and ``forward(return_latent=True)`` use 0, 1, 2, ... —
``UnifiedVoice.latents`` does the latter. ``decode`` takes the position as an input, so both
are one graph.

Text (``text.py``): Tortoise's English cleaners and the BPE of the user's tokenizer.json;
``python -m ttskiln tortoise-generate`` runs text -> mel codes and latents (``cli.py``).

Chain ``generate``: text through the tokenizer, then greedy prefill + N decode steps on ONNX Runtime against the full
(uncached) PyTorch forward at every step, and prefill / per-token decode latency (ORT I/O
binding vs PyTorch with cache); see ``chain.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError, InputError
from ttskiln.families.base import GGML, ChainJob, ComponentSpec, Family, ModelInfo, Option, ParityCase, ParityCheck, TensorSpec
from ttskiln.families.tortoise_gpt.config import (
    PRESETS,
    SAMPLE_RATE,
    WEIGHTS_FILE,
    TortoiseConfig,
    parameter_count,
    preset_config,
)

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
COMPONENTS = ("prefill", "decode")
CHAIN = "generate"
#: Buffers the released file carries (saved by an older transformers); upstream ignores them.
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
TRACE_SIZES = {"batch": 2, "tokens": 7}


class TortoiseGGML(GGML):
    """The GPT-2 as the legacy ggml model file tortoise.cpp loads (``ggml.py``), validated by
    greedy cached generation and teacher-forced latents against PyTorch."""

    graph = "tortoise.cpp's GPT-2"
    modules = ("ttskiln.families.tortoise_gpt.ggml",)

    def convert(self, **kwargs: Any) -> dict[str, Any]:
        from ttskiln.families.tortoise_gpt.ggml import convert

        return convert(**kwargs)

    def validate(self, **kwargs: Any) -> dict[str, Any]:
        from ttskiln.families.tortoise_gpt.ggml import validate

        return validate(**kwargs)

    def tolerances(self, model: Any, dtype: str) -> dict[str, float]:
        from ttskiln.families.tortoise_gpt.ggml import tolerances

        return tolerances(model, dtype)

    def steps(self, model: Any) -> int:
        """The model's ``decode_steps`` (the generate chain's)."""
        from ttskiln.families.tortoise_gpt.chain import DEFAULT_STEPS

        return int(model.options.get("decode_steps", model.config.get("decode_steps", DEFAULT_STEPS)))


class TortoiseGPTFamily(Family):
    name = "tortoise_gpt"
    parity_mode = "host"
    command_module = "ttskiln.families.tortoise_gpt.commands"
    ggml = TortoiseGGML()
    chain_modules = ("ttskiln.families.tortoise_gpt.chain",)
    parity_modules = ("ttskiln.families.tortoise_gpt.parity",)
    option_specs = {"preset": Option(str, checkpoint_only=True), "unified_voice": Option(dict, checkpoint_only=True),
                    "weights": Option(str, checkpoint_only=True), "decode_steps": Option(int, 1),
                    "chain_texts": Option(list, item=str), "tokenizer": Option(str)}
    presets = PRESETS
    default_tolerances = {"max_abs_err": 1e-3, "cosine": 0.99999, "snr_db": 60.0}
    default_profiles = {
        "speech": {"batch": {"min": 1, "opt": 1, "max": 4}, "tokens": {"min": 4, "opt": 32, "max": 96}},
    }
    # fp16: norms, softmax and the tanh of GELU in fp32
    fp16_defaults = {
        "keep_fp32_ops": ["LayerNormalization", "Softmax", "Tanh", "ReduceMean", "Pow", "Sqrt", "Exp", "Log"],
        "keep_fp32_nodes": [],
    }
    int8_defaults = {"method": "dynamic", "op_types": ["MatMul", "Gemm"], "exclude_nodes": [], "per_channel": True}

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir():
            weights = [p for p in sorted(checkpoint.glob("*.pth")) if not p.name.startswith(".")]
            extra = [checkpoint / n for n in (CONFIG_FILE, TOKENIZER_FILE) if (checkpoint / n).is_file()]
            return weights + extra
        return [checkpoint]

    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir():
            folder, weights = checkpoint, str(options.get("weights", WEIGHTS_FILE))
        elif checkpoint.is_file():
            folder, weights = checkpoint.parent, checkpoint.name
            if options.get("weights") not in (None, weights):
                raise ConfigError(f"options.weights {options['weights']!r} conflicts with checkpoint file {checkpoint}")
        else:
            raise CheckpointError(f"checkpoint {checkpoint} not found (expected {WEIGHTS_FILE} or a folder holding it)")
        if not (folder / weights).is_file():
            raise CheckpointError(f"{folder / weights} not found (a Tortoise checkpoint is {WEIGHTS_FILE})")
        overrides = options.get("unified_voice") or {}
        if not isinstance(overrides, dict):
            raise ConfigError("options.unified_voice must be a mapping of UnifiedVoice arguments")
        stored = folder / CONFIG_FILE
        if "preset" not in options and stored.is_file():
            try:
                data = json.loads(stored.read_text())
            except json.JSONDecodeError as exc:
                raise CheckpointError(f"{stored} is not valid JSON: {exc}") from exc
            block = data.get("unified_voice") if isinstance(data, dict) else None
            if not isinstance(block, dict):
                raise CheckpointError(f"{stored}: no 'unified_voice' mapping")
            config = {"unified_voice": {**block, **overrides}, "weights": weights}
        else:
            config = preset_config(str(options.get("preset", "tortoise_v2")), overrides)
            config["weights"] = weights
        TortoiseConfig.from_dict(config, str(folder / weights))
        steps = options.get("decode_steps")
        if steps is not None:
            if int(steps) < 1:
                raise ConfigError(f"options.decode_steps must be at least 1, got {steps}")
            config["decode_steps"] = int(steps)
        return config

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        return preset_config(preset, overrides)

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        import torch

        from ttskiln.atomic import atomic_path, write_text
        from ttskiln.families.tortoise_gpt.modules import UnifiedVoice

        cfg = TortoiseConfig.from_dict(config)
        torch.manual_seed(seed)
        model = UnifiedVoice(cfg)
        with torch.no_grad():
            # GPT-2's init (normal 0.02, zero biases, unit LayerNorms), then a seeded perturbation
            for name, param in model.named_parameters():
                if param.dim() >= 2:
                    param.normal_(0.0, 0.02)
                elif name.endswith("weight"):
                    param.fill_(1.0)
                else:
                    param.zero_()
                param.add_(0.02 * torch.randn_like(param))
        state = dict(model.state_dict())
        p = cfg.n_positions
        for i in range(cfg.layers):  # the released file's layout: older transformers saved these
            state[f"gpt.h.{i}.attn.bias"] = torch.tril(torch.ones(p, p, dtype=torch.bool))[None, None]
            state[f"gpt.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        with atomic_path(destination / str(config.get("weights", WEIGHTS_FILE))) as tmp:
            torch.save(state, tmp)
        write_text(destination / CONFIG_FILE, json.dumps({"unified_voice": config["unified_voice"]}, indent=1) + "\n")
        from ttskiln.families.tortoise_gpt.text import synthetic_tokenizer_json

        write_text(destination / TOKENIZER_FILE, synthetic_tokenizer_json(cfg.number_text_tokens))

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = TortoiseConfig.from_dict(config)
        d, v, cache = cfg.model_dim, cfg.number_mel_codes, (cfg.layers, 2)
        common = dict(
            profile_axes=("batch", "tokens"),
            time_axis="tokens",
            axis_min={"batch": 1, "tokens": 1},
            audio_output=None,
            trace_sizes=dict(TRACE_SIZES),
        )
        prefill = ComponentSpec(
            name="prefill",
            inputs=(
                TensorSpec("cond_latent", ("batch", d)),
                TensorSpec("text_ids", ("batch", "tokens"), "int64"),
                TensorSpec("start_token", ("batch",), "int64"),
            ),
            outputs=(
                TensorSpec("logits", ("batch", v)),
                TensorSpec("hidden", ("batch", "sequence", d)),
                TensorSpec("present", (*cache, "batch", cfg.heads, "sequence", cfg.head_dim)),
            ),
            **common,
        )
        decode = ComponentSpec(
            name="decode",
            inputs=(
                TensorSpec("token", ("batch",), "int64"),
                TensorSpec("position", ("batch",), "int64"),
                TensorSpec("past", (*cache, "batch", cfg.heads, "tokens", cfg.head_dim)),
            ),
            outputs=(
                TensorSpec("logits", ("batch", v)),
                TensorSpec("hidden", ("batch", d)),
                TensorSpec("present", (*cache, "batch", cfg.heads, "present_tokens", cfg.head_dim)),
            ),
            **common,
        )
        return ModelInfo(
            family=self.name,
            sample_rate=SAMPLE_RATE,
            hop_length=cfg.mel_length_compression,
            components=(prefill, decode),
            summary={
                "parameters": parameter_count(cfg),
                "layers": cfg.layers,
                "model_dim": cfg.model_dim,
                "heads": cfg.heads,
                "head_dim": cfg.head_dim,
                "max_text_tokens": cfg.max_text_tokens,
                "max_mel_tokens": cfg.max_mel_tokens,
                "number_text_tokens": cfg.number_text_tokens,
                "number_mel_codes": cfg.number_mel_codes,
                "start_mel_token": cfg.start_mel_token,
                "stop_mel_token": cfg.stop_mel_token,
                "n_positions": cfg.n_positions,
                "mel_positions": cfg.mel_positions,
                "kv_cache": "[layers, 2, batch, heads, length, head_dim]",
            },
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        self._state_dict(Path(checkpoint), config)

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        from ttskiln.families.tortoise_gpt.modules import UnifiedVoice

        state = self._state_dict(Path(checkpoint), config)
        model = UnifiedVoice(TortoiseConfig.from_dict(config))
        model.load_state_dict(state, strict=True)
        return model.eval()

    def _state_dict(self, checkpoint: Path, config: dict[str, Any]) -> dict[str, Any]:
        import torch

        from ttskiln.checkpoint import load_tensors, match_state_dict, shapes_of
        from ttskiln.families.tortoise_gpt.modules import UnifiedVoice

        cfg = TortoiseConfig.from_dict(config)
        path = checkpoint / str(config.get("weights", WEIGHTS_FILE)) if checkpoint.is_dir() else checkpoint
        state = load_tensors(path)
        state = {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}
        with torch.device("meta"):
            expected = shapes_of(UnifiedVoice(cfg))
        match_state_dict(state, expected, str(path))
        return state

    def config_of(self, config: dict[str, Any]) -> TortoiseConfig:
        return TortoiseConfig.from_dict(config)

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        from ttskiln.families.tortoise_gpt.modules import Decode, Prefill

        if component == "prefill":
            return Prefill(model).eval()
        if component == "decode":
            return Decode(model).eval()
        raise KeyError(f"tortoise_gpt components are {list(COMPONENTS)}; got {component!r}")

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        s = info.summary
        b, n = int(sizes["batch"]), int(sizes["tokens"])
        if component == "prefill":
            if n > s["max_text_tokens"]:
                raise InputError(f"prefill of {n} text tokens exceeds the model's maximum of {s['max_text_tokens']} (max_text_tokens)")
            return {
                "cond_latent": (0.6 * rng.standard_normal((b, s["model_dim"]))).astype(np.float32),
                "text_ids": rng.integers(1, s["number_text_tokens"], size=(b, n)).astype(np.int64),
                "start_token": np.full(b, s["start_mel_token"], dtype=np.int64),
            }
        if component == "decode":
            if n + 1 > s["n_positions"]:
                raise InputError(f"decode with a cache of {n} exceeds the model's {s['n_positions']} positions")
            shape = (s["layers"], 2, b, s["heads"], n, s["head_dim"])
            return {
                "token": rng.integers(0, s["start_mel_token"], size=b).astype(np.int64),
                "position": np.full(b, min(max(2, n // 2), s["mel_positions"] - 1), dtype=np.int64),
                "past": (0.5 * rng.standard_normal(shape)).astype(np.float32),
            }
        raise KeyError(f"tortoise_gpt components are {list(COMPONENTS)}; got {component!r}")

    # -- chains ------------------------------------------------------------------------------
    def chains(self, info: ModelInfo, options: dict[str, Any]) -> list[str]:
        return [CHAIN]

    def check_plan(self, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                   points: list[Any], checkpoint: Path | None) -> None:
        """The generate chain's limits: each point's text tokens within max_text_tokens, the
        chain texts spelled by the tokenizer within the profiles' largest tokens, and the decode steps
        within the mel positions (the chain would fail or cut them)."""
        from ttskiln.families.tortoise_gpt.chain import DEFAULT_STEPS, resolve_texts

        cfg = TortoiseConfig.from_dict(config)
        for point in points:
            tokens = int(point.sizes.get("tokens", 0))
            if tokens > cfg.max_text_tokens:
                raise ConfigError(
                    f"point {point.name} has {tokens} text tokens, above the model's max_text_tokens "
                    f"{cfg.max_text_tokens}; lower the profile's tokens"
                )
        budgets = [int(p.sizes["tokens"]) for p in points if "tokens" in p.sizes]
        resolve_texts(config, options, checkpoint, max(budgets) if budgets else None)
        steps = int(options.get("decode_steps", config.get("decode_steps", DEFAULT_STEPS)))
        if steps > cfg.max_new_tokens:
            raise ConfigError(
                f"options.decode_steps {steps} is above the {cfg.max_new_tokens} mel tokens the model generates "
                f"(max_mel_tokens {cfg.max_mel_tokens} - 1; mel positions {cfg.mel_positions})"
            )

    def run_chain(self, job: ChainJob) -> list[dict[str, Any]]:
        from ttskiln.families.tortoise_gpt.chain import run_generate_chain

        if job.chain != CHAIN:
            raise ConfigError(f"tortoise_gpt has one chain, {CHAIN!r}; got {job.chain!r}")
        return run_generate_chain(self, job)

    # -- upstream parity ---------------------------------------------------------------------
    def parity_config(self, case: ParityCase) -> dict[str, Any]:
        kwargs = (case.manifest.get("config") or {}).get("UnifiedVoice_kwargs")
        if not isinstance(kwargs, dict):
            raise InputError(f"{case.directory}: manifest config has no UnifiedVoice_kwargs")
        base = preset_config("tortoise_v2")["unified_voice"]
        config = {"unified_voice": {**base, **kwargs}, "weights": WEIGHTS_FILE}
        TortoiseConfig.from_dict(config, str(case.directory / "manifest.json"))
        return config

    def parity(self, case: ParityCase) -> list[ParityCheck]:
        """Conditioning, prefill, cached greedy decode and latents on PyTorch and ONNX Runtime."""
        from ttskiln.families.tortoise_gpt.parity import run_case

        return run_case(self, case)

    def frontend_parity(self, folder: Path) -> list[tuple[str, bool, str]]:
        """Tortoise's ``VoiceBpeTokenizer.encode`` on recorded texts with the folder's tokenizer.json
        (the manifest's ``vocabulary``; see ``text.py``)."""
        from ttskiln.families.tortoise_gpt.text import frontend_parity

        manifest = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
        return frontend_parity(folder, str(manifest.get("vocabulary") or "tokenizer.json"))
