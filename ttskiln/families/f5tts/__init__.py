"""The F5-TTS family (SWivid/F5-TTS; DiT flow-matching text-to-mel, v1 and v0 releases).

Checkpoint (the ``checkpoint`` of a model entry) is either

* a folder holding one weights file (``model_*.safetensors`` or ``.pt``; name it with
  ``options: {weights: file}`` when there are several), ``vocab.txt`` and, optionally,
  ``config.yaml`` (upstream's ``model:`` block; the parity fixtures and synthetic checkpoints
  have one), or
* the weights file itself, with ``vocab.txt`` (and optionally ``config.yaml``) beside it.

The released models ship no config file: give the architecture with
``options: {preset: F5TTS_v1_Base}`` (or ``F5TTS_Base``), or ``options: {config: path}`` to an
upstream YAML (``src/f5_tts/configs/*.yaml``); ``options: {vocab: path}`` points at another
vocabulary. Option paths are relative to the checkpoint's folder. Options win over a
``config.yaml`` found beside the weights. Synthetic checkpoints are folders in the released
layout: ``model_1250000.safetensors`` (``model_1200000`` for F5TTS_Base), ``vocab.txt``,
``config.yaml``.

One component, ``dit``: the transformer incl. the text embedding and its ConvNeXt blocks, for
a packed batch of rows (conditional and unconditional rows for CFG). The host computes the
time sinusoid, RoPE and text position tables, lays the text out over frames and packs CFG
(``host.py``); ``sampler.sample`` runs the Euler/CFG/sway loop around any backend
(``backends.torch_velocity`` / ``backends.onnx_velocity``); ``audio.py`` turns reference audio
into the conditioning mel; ``vocab.py`` maps tokens to ids. See ``modules.py`` for the graph
inputs.

Synthesis in a few calls::

    family = get_family("f5tts")
    config = family.read_config(ckpt, options)
    velocity = torch_velocity(family.load(ckpt, config))     # or onnx_velocity("dit.onnx", config)
    wave, gain = normalize_reference(ref_audio_24k, 24000)
    ref_mel = log_mel(wave)                                   # [1, n_ref, 100]
    ids = batch_ids([tokens], family.vocab(ckpt, config))     # tokens of ref_text + gen_text
    frames = estimate_duration(len(wave), ref_text, gen_text)
    result = sample(velocity, ref_mel, ids, frames, rng=np.random.default_rng(seed))
    mel = result.out[:, len(wave) // 256:]                    # [1, T, 100] log-mel for Vocos

Text -> waveform: with ``options: {vocoder: <a vocos model of the config>}`` the model runs the
``synth`` chain at every profile point (``chain_job.py``, the loop in ``synthesis.py``: ONNX DiT + ONNX Vocos against PyTorch, from
the same noise; drift rows, per-step DiT latency, end-to-end RTF at NFE 16/32, a WAV);
``options: {max_frames: N}`` bounds a request's total frames (default 3000, the released range);
``options: {reference_text: ..., chain_texts: [...], reference_audio: FILE}`` choose what the
chain says and in which voice (by default texts the checkpoint's vocab.txt can spell and a
synthetic voice); texts may be Chinese, English or mixed (``frontend.py``: upstream's pinyin
front end) and long ones are split into batches as upstream splits them. The plan checks all
of this (every text's front-end tokens against vocab.txt) before any job runs.
``python -m ttskiln synth`` is the same chain on the command line.

Presets: F5TTS_v1_Base (337,096,804 parameters), F5TTS_Base (v0 options, same size),
``tiny`` (the parity fixture's size, 188,644) and ``demo`` (835,492, for the pipeline demo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families.base import (
    ChainJob,
    Command,
    ComponentSpec,
    Family,
    LinkedModel,
    ModelInfo,
    Option,
    ParityCase,
    ParityCheck,
    TensorRTLLM,
    TensorSpec,
)
from ttskiln.families.f5tts.config import (
    PRESETS,
    TEXT_MAX_POSITIONS,
    TIME_SINUSOID_DIM,
    F5Config,
    model_block,
    parameter_count,
    preset_config,
)
from ttskiln.families.f5tts.vocab import read_vocab

COMPONENT = "dit"
CONFIG_FILE = "config.yaml"
VOCAB_FILE = "vocab.txt"
WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
SYNTHETIC_STEP = 1250000


class F5TensorRTLLM(TensorRTLLM):
    """The DiT as a TensorRT-LLM engine (``trtllm.py``): the model entry's ``trtllm`` block
    gives its dtype and profile (``EngineLimits``); the synth chain runs over it."""

    graph = "the F5 DiT"
    chain = "synth"
    uses = "the synth chain over it"
    modules = ("ttskiln.families.f5tts.trtllm", "ttskiln.families.f5tts.trtllm_network")

    def check(self, config: dict[str, Any], settings: dict[str, Any], points: Any) -> dict[str, Any]:
        from ttskiln.families.f5tts.trtllm import EngineLimits, check_supported

        settings = {"dtype": "float16", **settings}
        limits = EngineLimits.from_config(settings)
        check_supported(F5Config.from_dict(config), "trtllm")
        for p in points:  # the synth chain runs the engine at every point
            frames, rows = p.sizes.get("frames", 0), p.sizes.get("batch", 2)
            if not limits.min_frames <= frames <= limits.max_frames or rows > limits.max_batch_size:
                raise ConfigError(
                    f"point {p.name} ({rows} rows x {frames} frames) is outside the TensorRT-LLM engine profile "
                    f"(batch <= {limits.max_batch_size}, frames {limits.min_frames}..{limits.max_frames}); widen trtllm"
                )
        return {"dtype": settings["dtype"], **limits.__dict__}

    def convert(self, checkpoint: Path, config: dict[str, Any], output: Path, dtype: str,
                settings: dict[str, Any]) -> None:
        from ttskiln.families.f5tts.trtllm import EngineLimits, convert

        convert(Path(checkpoint), config, Path(output), dtype, EngineLimits.from_config(_limits(settings)))

    def build(self, checkpoint_dir: Path, engine_dir: Path, settings: dict[str, Any], tag: str | None) -> dict[str, Any]:
        from ttskiln.families.f5tts.trtllm import EngineLimits, build

        return build(Path(checkpoint_dir), Path(engine_dir), EngineLimits.from_config(_limits(settings)), tag=tag)

    def runner(self, engine_dir: Path, model: Any) -> Any:
        from ttskiln.families.f5tts.trtllm import trtllm_runner

        return trtllm_runner(Path(engine_dir), model.text_embed)


def _limits(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in dict(settings).items() if k != "dtype"}


class F5TTSFamily(Family):
    name = "f5tts"
    parity_mode = "host"
    command_module = "ttskiln.families.f5tts.commands"
    tensorrt_llm = F5TensorRTLLM()
    #: The synth chain's modules (``chain.py`` names them all, with the command line's).
    chain_modules = (
        "ttskiln.families.f5tts.chain_inputs", "ttskiln.families.f5tts.request", "ttskiln.families.f5tts.chain_job")
    parity_modules = ("ttskiln.families.f5tts.parity",)
    #: Architecture options, then the synth chain's (``chain.py``: a linked Vocos model, the
    #: largest total duration in frames, the texts it speaks).
    option_specs = {
        "preset": Option(str, checkpoint_only=True), "config": Option(str, checkpoint_only=True),
        "vocab": Option(str, checkpoint_only=True), "weights": Option(str, checkpoint_only=True),
        "vocoder": Option(str), "max_frames": Option(int, 2, TEXT_MAX_POSITIONS),
        "chain_texts": Option(list, item=str), "reference_text": Option(str), "reference_audio": Option(str),
    }
    link_families = {"vocoder": "vocos"}
    presets = PRESETS
    default_tolerances = {"max_abs_err": 1e-4, "cosine": 0.99999, "snr_db": 60.0}
    default_profiles = {
        # Released frame range; batch counts graph rows (2 per request with CFG).
        "speech": {
            "batch": {"min": 1, "opt": 2, "max": 8},
            "frames": {"min": 100, "opt": 1500, "max": 3000},
        }
    }

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint_files(self, checkpoint: Path) -> list[Path]:
        checkpoint = Path(checkpoint)
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        weights = _weight_files(folder) if checkpoint.is_dir() else [checkpoint]
        extras = [folder / name for name in (VOCAB_FILE, CONFIG_FILE) if (folder / name).is_file()]
        return weights + extras

    def config_from_checkpoint(self, checkpoint: Path, options: dict[str, Any]) -> dict[str, Any]:
        checkpoint = Path(checkpoint)
        if checkpoint.is_dir():
            folder = checkpoint
            weights = _pick_weights(folder, options.get("weights"))
        elif checkpoint.is_file():
            folder = checkpoint.parent
            if options.get("weights") not in (None, checkpoint.name):
                raise ConfigError(f"options.weights {options['weights']!r} conflicts with checkpoint file {checkpoint}")
            if checkpoint.suffix not in WEIGHT_SUFFIXES:
                raise CheckpointError(f"{checkpoint}: F5-TTS weights are a .safetensors or .pt file")
            weights = checkpoint.name
        else:
            raise CheckpointError(f"checkpoint {checkpoint} not found")
        model = self._model_block(folder, options)
        vocab = str(options.get("vocab", VOCAB_FILE))
        mapping = read_vocab(folder / vocab)
        config = {"model": model, "text_num_embeds": len(mapping), "weights": weights, "vocab": vocab}
        F5Config.from_dict(config, str(folder))
        return config

    def _model_block(self, folder: Path, options: dict[str, Any]) -> dict[str, Any]:
        if "preset" in options and "config" in options:
            raise ConfigError("f5tts options give both preset and config; give one")
        if "preset" in options:
            preset = str(options["preset"])
            if preset not in PRESETS:
                raise ConfigError(f"unknown f5tts preset {preset!r}; choose from {sorted(PRESETS)}")
            return model_block(preset, PRESETS[preset]["arch"])
        source = folder / str(options["config"]) if "config" in options else folder / CONFIG_FILE
        if not source.is_file():
            if "config" in options:
                raise CheckpointError(f"options.config {source} not found")
            raise CheckpointError(
                f"{folder} has no {CONFIG_FILE} and the model entry gives no architecture; add "
                f"options: {{preset: F5TTS_v1_Base}} (presets: {sorted(PRESETS)}) or options: {{config: <upstream yaml>}}"
            )
        try:
            data = yaml.safe_load(source.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CheckpointError(f"{source} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("model"), dict):
            raise CheckpointError(f"{source}: no 'model' block (expected upstream's config layout)")
        model = dict(data["model"])
        keep = ("name", "tokenizer", "tokenizer_path", "backbone", "arch", "mel_spec")
        return {k: model[k] for k in keep if k in model}

    def synthetic_config(self, preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
        return preset_config(preset, overrides)

    def write_synthetic(self, config: dict[str, Any], destination: Path, seed: int) -> None:
        from ttskiln.atomic import write_text
        from ttskiln.families.f5tts.vocab import synthetic_tokens, write_vocab
        from ttskiln.families.f5tts.weights import synthetic_network_state, write_released_safetensors

        cfg = F5Config.from_dict(config, "synthetic f5tts config")
        destination = Path(destination)
        destination.mkdir(parents=True, exist_ok=True)
        write_released_safetensors(synthetic_network_state(cfg, seed), destination / cfg.weights, SYNTHETIC_STEP)
        write_vocab(synthetic_tokens(cfg.text_num_embeds), destination / cfg.vocab)
        write_text(destination / CONFIG_FILE, yaml.safe_dump({"model": config["model"]}, sort_keys=False))

    def describe(self, config: dict[str, Any]) -> ModelInfo:
        cfg = F5Config.from_dict(config)
        m = cfg.mel_dim
        inputs = [
            TensorSpec("x", ("batch", "frames", m)),
            TensorSpec("cond", ("batch", "frames", m)),
            TensorSpec("text", ("batch", "frames"), "int64"),
            TensorSpec("drop_text", ("batch",)),
            TensorSpec("time_sinusoid", ("batch", TIME_SINUSOID_DIM)),
            TensorSpec("mask", ("batch", "frames")),
            TensorSpec("rope_cos", ("frames", cfg.dim_head)),
            TensorSpec("rope_sin", ("frames", cfg.dim_head)),
        ]
        if cfg.conv_layers > 0:
            inputs.append(TensorSpec("text_pos", ("frames", cfg.text_dim)))
        dit = ComponentSpec(
            name=COMPONENT,
            inputs=tuple(inputs),
            outputs=(TensorSpec("flow", ("batch", "frames", m)),),
            profile_axes=("batch", "frames"),
            time_axis="frames",
            axis_min={"batch": 1, "frames": 2},
            audio_output=None,
            trace_sizes={"batch": 2, "frames": 37},
        )
        return ModelInfo(
            family=self.name,
            sample_rate=cfg.sample_rate,
            hop_length=cfg.hop_length,
            components=(dit,),
            summary={
                "name": cfg.name,
                "parameters": parameter_count(cfg),
                "dim": cfg.dim,
                "depth": cfg.depth,
                "heads": cfg.heads,
                "dim_head": cfg.dim_head,
                "ff_mult": cfg.ff_mult,
                "text_dim": cfg.text_dim,
                "conv_layers": cfg.conv_layers,
                "text_mask_padding": cfg.text_mask_padding,
                "pe_attn_head": cfg.pe_attn_head,
                "qk_norm": cfg.qk_norm,
                "attn_mask_enabled": cfg.attn_mask_enabled,
                "text_num_embeds": cfg.text_num_embeds,
                "mel_dim": cfg.mel_dim,
                "mel_spec_type": cfg.mel_spec_type,
            },
        )

    def check_checkpoint(self, checkpoint: Path, config: dict[str, Any]) -> None:
        from ttskiln.families.f5tts.weights import load_network_state

        cfg = F5Config.from_dict(config)
        load_network_state(self._weights_path(Path(checkpoint), cfg), cfg)

    def load(self, checkpoint: Path, config: dict[str, Any]) -> Any:
        from ttskiln.families.f5tts.modules import DiT
        from ttskiln.families.f5tts.weights import load_network_state

        cfg = F5Config.from_dict(config)
        state = load_network_state(self._weights_path(Path(checkpoint), cfg), cfg)
        model = DiT(cfg)
        model.load_state_dict(state, strict=True)
        return model.eval()

    @staticmethod
    def _weights_path(checkpoint: Path, cfg: F5Config) -> Path:
        return checkpoint / cfg.weights if checkpoint.is_dir() else checkpoint

    def vocab(self, checkpoint: Path, config: dict[str, Any]) -> dict[str, int]:
        """token -> id of a checkpoint's vocabulary (see ``vocab.py``)."""
        checkpoint = Path(checkpoint)
        folder = checkpoint if checkpoint.is_dir() else checkpoint.parent
        return read_vocab(folder / F5Config.from_dict(config).vocab)

    # -- components --------------------------------------------------------------------------
    def component_module(self, model: Any, component: str) -> Any:
        if component != COMPONENT:
            raise KeyError(f"f5tts has one component, {COMPONENT!r}; got {component!r}")
        return model

    def make_inputs(
        self, info: ModelInfo, component: str, sizes: dict[str, int], rng: np.random.Generator
    ) -> dict[str, np.ndarray]:
        from ttskiln.families.f5tts.examples import example_inputs
        from ttskiln.families.f5tts.host import HostDims

        if component != COMPONENT:
            raise KeyError(f"f5tts has one component, {COMPONENT!r}; got {component!r}")
        s = info.summary
        dims = HostDims(s["mel_dim"], s["dim_head"], s["text_dim"], s["conv_layers"], s["text_num_embeds"])
        inputs = example_inputs(dims, int(sizes["batch"]), int(sizes["frames"]), rng)
        return {name: inputs[name] for name in info.component(component).input_names}

    # -- chains ------------------------------------------------------------------------------
    def links(self, options: dict[str, Any]) -> dict[str, str]:
        """``options.vocoder`` names the Vocos model of the config the synth chain uses."""
        vocoder = (options or {}).get("vocoder")
        if vocoder is None:
            return {}
        if not isinstance(vocoder, str) or not vocoder:
            raise ConfigError(f"options.vocoder must name a vocos model of this config, got {vocoder!r}")
        return {"vocoder": vocoder}

    def chains(self, info: ModelInfo, options: dict[str, Any]) -> list[str]:
        """``synth`` (text -> waveform, ``chain_job.py``) when a vocoder is linked."""
        from ttskiln.families.f5tts.chain_inputs import CHAIN
        from ttskiln.families.f5tts.request import max_frames_option

        if not self.links(options):
            return []
        max_frames_option(options or {})  # a bad max_frames fails at plan time
        return [CHAIN]

    def input_limits(self, info: ModelInfo, component: str) -> dict[str, tuple[int, int]]:
        """The graph's text ids: 0 (filler) .. text_num_embeds (vocab.txt ids shifted by one)."""
        return {"text": (0, int(info.summary["text_num_embeds"]))}

    def check_links(self, config: dict[str, Any], options: dict[str, Any],
                    linked: dict[str, LinkedModel]) -> None:
        """The linked vocoder reads this model's mel: same bands, hop and sample rate."""
        from ttskiln.families.f5tts.config import F5Config
        from ttskiln.families.f5tts.vocoder_link import VOCODER_ROLE, check_vocoder_info

        vocoder = linked.get(VOCODER_ROLE)
        if vocoder is None:
            return
        try:
            check_vocoder_info(F5Config.from_dict(config), vocoder.info, repr(vocoder.name))
        except ConfigError as exc:
            raise ConfigError(f"options.{VOCODER_ROLE}: {exc}") from None

    def check_plan(self, info: ModelInfo, config: dict[str, Any], options: dict[str, Any],
                   points: list[Any], checkpoint: Path | None) -> None:
        """The synth chain's limits: every point's frames within ``options.max_frames`` and
        long enough for a reference, and the chain texts spelt with the model's vocab.txt."""
        from ttskiln.families.f5tts.chain_inputs import chain_layout, chain_texts, check_chain_fit, fitted_chain_texts
        from ttskiln.families.f5tts.request import DEFAULT_MAX_FRAMES, max_frames_option
        from ttskiln.families.f5tts.config import F5Config
        from ttskiln.families.f5tts.vocab import synthetic_tokens

        if not self.chains(info, options):
            return
        for point in points:
            frames = int(point.sizes.get("frames", 0))
            chain_layout(frames, int(point.sizes.get("batch", 1)))
            limit = max_frames_option(options, max(DEFAULT_MAX_FRAMES, frames))
            if frames > limit:
                raise ConfigError(f"point {point.name} has {frames} frames, beyond options.max_frames {limit}")
        if checkpoint is None:
            vocab = {t: i for i, t in enumerate(synthetic_tokens(int(config["text_num_embeds"])))}
        else:
            vocab = self.vocab(checkpoint, config)
        chain_texts(options, vocab)  # spelt with the vocabulary (one line naming the option otherwise)
        cfg = F5Config.from_dict(config)
        for point in points:
            if "frames" in point.sizes:
                frames = int(point.sizes["frames"])
                ref_text, texts = fitted_chain_texts(options, vocab, frames)
                check_chain_fit(cfg, vocab, ref_text, texts, frames, int(point.sizes.get("batch", 1)), f"point {point.name}")
        reference = options.get("reference_audio")
        if reference is not None and not Path(reference).is_file():
            raise ConfigError(f"options.reference_audio: {reference} not found (an audio file soundfile reads)")

    def frontend_parity(self, folder: Path) -> list[tuple[str, bool, str]]:
        """The text front end against upstream's ``convert_char_to_pinyin`` and ``chunk_text``
        outputs recorded in ``folder`` (``frontend.json``; ``frontend.check_frontend``)."""
        from ttskiln.families.f5tts.frontend import check_frontend

        return check_frontend(folder)

    def run_chain(self, job: ChainJob) -> list[dict[str, Any]]:
        """ONNX DiT + ONNX Vocos against PyTorch DiT + PyTorch Vocos from the same noise:
        drift rows (final mel, waveform), per-step DiT latency, end-to-end RTF at NFE 16/32."""
        from ttskiln.families.f5tts.chain_job import run_chain_job

        return run_chain_job(job, self.default_tolerances)

    # -- upstream parity ---------------------------------------------------------------------
    def parity(self, case: ParityCase) -> list[ParityCheck]:
        """DiT.forward and CFM.sample cases on PyTorch and ONNX Runtime (``parity.py``)."""
        from ttskiln.families.f5tts.parity import run_case

        return run_case(self, case)


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES and not p.name.startswith("."))


def _pick_weights(folder: Path, wanted: str | None) -> str:
    found = _weight_files(folder)
    if wanted is not None:
        if not (folder / wanted).is_file():
            raise CheckpointError(f"options.weights {wanted!r} not found in {folder}")
        return str(wanted)
    if not found:
        raise CheckpointError(f"{folder} holds no F5-TTS weights file (*.safetensors or *.pt)")
    if len(found) > 1:
        raise CheckpointError(
            f"{folder} holds several weights files {[p.name for p in found]}; choose one with options: {{weights: <name>}}"
        )
    return found[0].name
