"""TensorRT-LLM for the F5 DiT: checkpoint conversion (CPU), engine build and the DiT runner.

The layout follows the released F5-TTS TensorRT-LLM recipe (tensorrt-llm 0.16.0), so an
engine built here and the recipe's runtime agree:

**Checkpoint** (``convert``): a folder with ``config.json`` (``architecture: F5TTS``, the
sizes, ``dtype``, a single-rank ``mapping``) and ``rank0.safetensors`` holding the engine's
weights only (the text embedding and the RoPE buffer stay on the host). Names are upstream's
``transformer.*`` names with these changes:

* ``time_embed.time_mlp.{0,2}`` -> ``time_embed.mlp{1,2}``;
* ``input_embed.conv_pos_embed.conv1d.{0,2}`` -> ``...conv1d{1,2}``, weights gain a trailing
  axis ([C, C/16, 31] -> [C, C/16, 31, 1]: TensorRT-LLM's Conv1d is a 2-D convolution);
* ``transformer_blocks.N.attn.to_out.0`` -> ``...attn.to_out``;
* ``transformer_blocks.N.ff.ff.0.0`` -> ``...ff.project_in``, ``ff.ff.2`` -> ``ff.ff``.

**Attention scale folding:** weight and bias of ``to_q`` and ``to_k`` are multiplied by
``dim_head ** -0.25``, so ``q . k`` already carries ``1 / sqrt(dim_head)``. The network then
calls the BERT attention plugin with ``q_scaling = 1 / sqrt(dim_head)``, whose softmax scale
``1 / (sqrt(dim_head) * q_scaling)`` is 1. Folding before the fp16 cast keeps the q.k products
of an fp16 engine in range.

**Engine** (``build``, GPU machines with tensorrt-llm 0.16): the network
(``trtllm_network.F5TTS``) is registered in-process as ``MODEL_MAP["F5TTS"]`` and built
with the Python build API, one rank, one worker; input padding is kept (``[B, N, *]``
inputs) and the BERT attention plugin masks keys past each row's ``input_lengths``.

**Inputs** (the recipe's): ``noise`` [B, N, mel], ``cond`` [B, N, mel + text_dim] (the
reference mel, then the host's text embedding), ``time`` [B, 256] (the host's sinusoid; the MLP
runs in the engine), ``rope_cos``/``rope_sin`` [B, N, dim_head], ``input_lengths`` [B] int32;
output ``denoised`` [B, N, mel]. The batch is CFG-doubled: conditional rows, then
unconditional ones (``host.dit_inputs`` packs them exactly so for every backend).

**Host side shared with the ONNX chain** (``trtllm_runner``): the same ``DitVelocity``,
``host.dit_inputs`` (time sinusoid, RoPE tables, CFG packing) and ``sampler.sample`` (Euler,
sway, CFG); only the text embedding moves from the graph to the host (the checkpoint's
``text_embed`` run by the PyTorch ``TextEncoder``, once per request since it does not depend
on the step).

**One difference from PyTorch:** upstream F5 v1 attends over padded frames too
(``attn_mask_enabled: false``), but the plugin masks them. With one request, or requests of
equal length, the outputs agree; for padded rows of a batch they differ, as they do in the
released recipe.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError, TtskilnError

ARCHITECTURE = "F5TTS"
TRTLLM_VERSION = "0.16.0"
DTYPES = ("float16", "bfloat16", "float32")
WEIGHTS_FILE = "rank0.safetensors"
CONFIG_FILE = "config.json"
ENGINE_FILE = "rank0.engine"
INPUT_NAMES = ("noise", "cond", "time", "rope_cos", "rope_sin", "input_lengths")
OUTPUT_NAME = "denoised"
HOST_PREFIXES = ("text_embed.", "rotary_embed.")
_RENAMES = (
    (re.compile(r"^time_embed\.time_mlp\.0\."), "time_embed.mlp1."),
    (re.compile(r"^time_embed\.time_mlp\.2\."), "time_embed.mlp2."),
    (re.compile(r"^input_embed\.conv_pos_embed\.conv1d\.0\."), "input_embed.conv_pos_embed.conv1d1."),
    (re.compile(r"^input_embed\.conv_pos_embed\.conv1d\.2\."), "input_embed.conv_pos_embed.conv1d2."),
    (re.compile(r"^(transformer_blocks\.\d+\.attn)\.to_out\.0\."), r"\1.to_out."),
    (re.compile(r"^(transformer_blocks\.\d+\.ff)\.ff\.0\.0\."), r"\1.project_in."),
    (re.compile(r"^(transformer_blocks\.\d+\.ff)\.ff\.2\."), r"\1.ff."),
)
_FOLDED = re.compile(r"^transformer_blocks\.\d+\.attn\.to_[qk]\.(weight|bias)$")
_CONV = re.compile(r"^input_embed\.conv_pos_embed\.conv1d[12]\.weight$")


@dataclass(frozen=True)
class EngineLimits:
    """The engine's optimisation profile: batch (graph rows, CFG-doubled) and frames."""

    max_batch_size: int = 8
    min_frames: int = 100
    opt_frames: int = 1500
    max_frames: int = 3000

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> "EngineLimits":
        data = dict(data or {})
        limits = cls(**{k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__})
        if limits.max_batch_size < 2 or limits.max_batch_size % 2:
            raise ConfigError(f"trtllm.max_batch_size must be an even number >= 2 (CFG doubles the batch), "
                              f"got {limits.max_batch_size}")
        if not 1 <= limits.min_frames <= limits.opt_frames <= limits.max_frames:
            raise ConfigError(f"trtllm frames need 1 <= min_frames <= opt_frames <= max_frames, got "
                              f"{limits.min_frames}, {limits.opt_frames}, {limits.max_frames}")
        return limits


def check_supported(cfg: Any, source: str) -> None:
    """The TensorRT-LLM F5 network covers the released v1 and v0 DiTs; refuse the rest."""
    problems = []
    if cfg.qk_norm is not None:
        problems.append(f"qk_norm {cfg.qk_norm!r}")
    if cfg.long_skip_connection:
        problems.append("long_skip_connection")
    if cfg.pe_attn_head is not None and cfg.pe_attn_head != 1:
        problems.append(f"pe_attn_head {cfg.pe_attn_head} (only all heads or head 0)")
    if problems:
        raise CheckpointError(f"{source}: the TensorRT-LLM F5 network does not support {', '.join(problems)}")


def trtllm_name(name: str) -> str:
    for pattern, replacement in _RENAMES:
        if pattern.search(name):
            return pattern.sub(replacement, name)
    return name


def convert_state(network: dict[str, Any], cfg: Any, dtype: str) -> dict[str, Any]:
    """The DiT state_dict (``transformer.`` stripped, float32) -> the engine's weights."""
    import torch

    if dtype not in DTYPES:
        raise ConfigError(f"TensorRT-LLM dtype must be one of {list(DTYPES)}, got {dtype!r}")
    target = getattr(torch, dtype)
    scale = float(cfg.dim_head) ** -0.25
    out = {}
    for name, value in network.items():
        if name.startswith(HOST_PREFIXES):
            continue
        tensor = value.detach().to(torch.float32)
        if _FOLDED.match(name):
            tensor = tensor * scale
        new = trtllm_name(name)
        if _CONV.match(new):
            tensor = tensor.unsqueeze(-1)
        out[new] = tensor.to(target).contiguous()
    return out


def trtllm_config(cfg: Any, dtype: str, limits: EngineLimits | None = None) -> dict[str, Any]:
    """``config.json`` of the TensorRT-LLM checkpoint (a ``PretrainedConfig`` dict)."""
    data: dict[str, Any] = {
        "architecture": ARCHITECTURE,
        "dtype": dtype,
        "hidden_size": cfg.dim,
        "num_hidden_layers": cfg.depth,
        "num_attention_heads": cfg.heads,
        "dim_head": cfg.dim_head,
        "dropout": 0.0,
        "ff_mult": cfg.ff_mult,
        "mel_dim": cfg.mel_dim,
        "text_dim": cfg.text_dim,
        "text_mask_padding": cfg.text_mask_padding,
        "conv_layers": cfg.conv_layers,
        "pe_attn_head": cfg.pe_attn_head,
        "mapping": {"world_size": 1, "cp_size": 1, "tp_size": 1, "pp_size": 1},
    }
    if limits is not None:
        data.update(min_frames=limits.min_frames, opt_frames=limits.opt_frames, max_frames=limits.max_frames)
    return data


def convert(checkpoint: Path, config: dict[str, Any], output: Path, dtype: str = "float16",
            limits: EngineLimits | None = None) -> dict[str, Any]:
    """Write the TensorRT-LLM checkpoint folder ``output`` (atomically: a temporary sibling
    renamed into place). Returns its ``config.json``."""
    from safetensors.torch import save_file

    from ttskiln.atomic import output_mode
    from ttskiln.families.f5tts.config import F5Config
    from ttskiln.families.f5tts.weights import load_network_state

    cfg = F5Config.from_dict(config)
    check_supported(cfg, str(checkpoint))
    checkpoint = Path(checkpoint)
    network = load_network_state(checkpoint / cfg.weights if checkpoint.is_dir() else checkpoint, cfg)
    weights = convert_state(network, cfg, dtype)
    data = trtllm_config(cfg, dtype, limits)
    output = Path(output)
    tmp = output.with_name(output.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_file(weights, str(tmp / WEIGHTS_FILE))
        (tmp / WEIGHTS_FILE).chmod(output_mode())  # safetensors writes 0600 whatever the umask
        (tmp / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(output, ignore_errors=True)
        tmp.rename(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


def expected_weights(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Every weight the TensorRT-LLM F5 network declares, with its shape, from a
    ``config.json`` dict: the contract between ``convert`` and ``trtllm_network.F5TTS``."""
    dim, heads, dh = config["hidden_size"], config["num_attention_heads"], config["dim_head"]
    inner, ff = heads * dh, int(dim * config["ff_mult"])
    mel, text = config["mel_dim"], config["text_dim"]
    groups = 16
    shapes: dict[str, tuple[int, ...]] = {
        "time_embed.mlp1.weight": (dim, 256), "time_embed.mlp1.bias": (dim,),
        "time_embed.mlp2.weight": (dim, dim), "time_embed.mlp2.bias": (dim,),
        "input_embed.proj.weight": (dim, 2 * mel + text), "input_embed.proj.bias": (dim,),
        "input_embed.conv_pos_embed.conv1d1.weight": (dim, dim // groups, 31, 1),
        "input_embed.conv_pos_embed.conv1d1.bias": (dim,),
        "input_embed.conv_pos_embed.conv1d2.weight": (dim, dim // groups, 31, 1),
        "input_embed.conv_pos_embed.conv1d2.bias": (dim,),
        "norm_out.linear.weight": (2 * dim, dim), "norm_out.linear.bias": (2 * dim,),
        "proj_out.weight": (mel, dim), "proj_out.bias": (mel,),
    }
    for n in range(config["num_hidden_layers"]):
        p = f"transformer_blocks.{n}."
        shapes.update({
            p + "attn_norm.linear.weight": (6 * dim, dim), p + "attn_norm.linear.bias": (6 * dim,),
            p + "attn.to_q.weight": (inner, dim), p + "attn.to_q.bias": (inner,),
            p + "attn.to_k.weight": (inner, dim), p + "attn.to_k.bias": (inner,),
            p + "attn.to_v.weight": (inner, dim), p + "attn.to_v.bias": (inner,),
            p + "attn.to_out.weight": (dim, inner), p + "attn.to_out.bias": (dim,),
            p + "ff.project_in.weight": (ff, dim), p + "ff.project_in.bias": (ff,),
            p + "ff.ff.weight": (dim, ff), p + "ff.ff.bias": (dim,),
        })
    return shapes


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.json, weights) of a converted checkpoint, checked against the network."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file():
            raise CheckpointError(f"{folder} is not a TensorRT-LLM F5 checkpoint: {name} is missing")
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    if config.get("architecture") != ARCHITECTURE:
        raise CheckpointError(f"{folder / CONFIG_FILE}: architecture {config.get('architecture')!r}, expected {ARCHITECTURE!r}")
    weights = load_file(str(folder / WEIGHTS_FILE))
    from ttskiln.checkpoint import match_state_dict

    match_state_dict(weights, expected_weights(config), str(folder / WEIGHTS_FILE))
    return config, weights


# -- engine build (GPU machines) -------------------------------------------------------------
def require_trtllm() -> str:
    """The installed tensorrt_llm version, or a TtskilnError saying why the stage cannot run."""
    try:
        import tensorrt_llm  # noqa: F401
    except Exception as exc:  # ImportError, or CUDA/driver errors raised at import
        raise TtskilnError(
            f"TensorRT-LLM F5 engine: tensorrt_llm {TRTLLM_VERSION} is not importable here "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no message'}); "
            "use envs/tensorrt-llm.yaml on a CUDA machine"
        ) from exc
    version = str(getattr(tensorrt_llm, "__version__", "unknown"))
    if version != TRTLLM_VERSION:
        raise TtskilnError(f"TensorRT-LLM F5 engine: tensorrt_llm {version} is installed; the F5 network is built "
                           f"and tested with {TRTLLM_VERSION} (the engine backend was removed from later releases)")
    return version


def build_settings(config: dict[str, Any], limits: EngineLimits) -> dict[str, Any]:
    """The builder settings, as plain data (what ``build`` passes to BuildConfig/PluginConfig)."""
    return {
        "max_batch_size": limits.max_batch_size,
        "max_seq_len": limits.max_frames,
        "max_input_len": limits.max_frames,
        "opt_frames": limits.opt_frames,
        "min_frames": limits.min_frames,
        "plugins": {"bert_attention_plugin": config["dtype"], "remove_input_padding": False},
        "workers": 1,
        "rank": 0,
    }


def build(checkpoint_dir: Path, engine_dir: Path, limits: EngineLimits, tag: str | None = None) -> dict[str, Any]:
    """Build ``engine_dir/rank0.engine`` (+ config.json) from a converted checkpoint with
    the TensorRT-LLM Python build API, the F5 network registered in-process. ``tag``: the
    engine path's GPU/TensorRT-LLM tag, checked against this node first."""
    require_trtllm()
    if tag is not None:
        from ttskiln.gpu import check_node

        check_node(tag, "trtllm")
    import tensorrt_llm
    from tensorrt_llm.builder import BuildConfig
    from tensorrt_llm.builder import build as trtllm_build
    from tensorrt_llm.models import MODEL_MAP, PretrainedConfig

    from ttskiln.families.f5tts.trtllm_network import F5TTS

    MODEL_MAP[ARCHITECTURE] = F5TTS  # in-process registration; site-packages stay untouched
    config, _ = read_checkpoint(checkpoint_dir)
    settings = build_settings(config, limits)
    pretrained = PretrainedConfig.from_json_file(str(Path(checkpoint_dir) / CONFIG_FILE))
    pretrained.set_rank(0)
    pretrained.min_frames, pretrained.opt_frames = limits.min_frames, limits.opt_frames
    model = F5TTS.from_checkpoint(str(checkpoint_dir), rank=0, config=pretrained)
    build_config = BuildConfig.from_dict({
        "max_batch_size": settings["max_batch_size"],
        "max_input_len": settings["max_input_len"],
        "max_seq_len": settings["max_seq_len"],
        "plugin_config": settings["plugins"],
    })
    engine = trtllm_build(model, build_config)
    engine_dir = Path(engine_dir)
    tmp = engine_dir.with_name(engine_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        engine.save(str(tmp))
        shutil.rmtree(engine_dir, ignore_errors=True)
        tmp.rename(engine_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"tensorrt_llm": tensorrt_llm.__version__, **settings}


# -- the DiT runner --------------------------------------------------------------------------
def engine_inputs(inputs: dict[str, np.ndarray], text_embedding: np.ndarray) -> dict[str, np.ndarray]:
    """``host.dit_inputs`` output + the host text embedding [B, N, text_dim] -> the engine's
    inputs (float32 here; the runner casts to the engine dtype)."""
    x = np.asarray(inputs["x"], dtype=np.float32)
    batch, frames, _ = x.shape
    rope_cos = np.broadcast_to(inputs["rope_cos"][None], (batch, frames, inputs["rope_cos"].shape[-1]))
    rope_sin = np.broadcast_to(inputs["rope_sin"][None], (batch, frames, inputs["rope_sin"].shape[-1]))
    return {
        "noise": x,
        "cond": np.concatenate([inputs["cond"], text_embedding], axis=-1).astype(np.float32),
        "time": np.asarray(inputs["time_sinusoid"], dtype=np.float32),
        "rope_cos": np.ascontiguousarray(rope_cos, dtype=np.float32),
        "rope_sin": np.ascontiguousarray(rope_sin, dtype=np.float32),
        "input_lengths": np.asarray(inputs["mask"], dtype=np.float32).sum(axis=1).astype(np.int32),
    }


class TextEmbeddingCache:
    """The host text embedding (``TextEncoder`` from the checkpoint's ``text_embed``), cached
    for the last (ids, drop flags, mask) seen: every step of one request reuses it."""

    def __init__(self, text_encoder: Any) -> None:
        self.module = text_encoder.eval()
        self._key: tuple[bytes, ...] | None = None
        self._value: np.ndarray | None = None

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        parts = [np.ascontiguousarray(inputs[k]) for k in ("text", "drop_text", "mask")]
        key = tuple(p.tobytes() for p in parts) + tuple(str(p.shape).encode() for p in parts)
        if key != self._key:
            pos = inputs.get("text_pos")
            with torch.inference_mode():
                value = self.module(*(torch.from_numpy(p) for p in parts),
                                    None if pos is None else torch.from_numpy(np.ascontiguousarray(pos)))
            self._key, self._value = key, value.numpy()
        return self._value


def engine_dtype(engine_dir: str | Path) -> str:
    """The dtype an engine folder was built in (its ``config.json``)."""
    path = Path(engine_dir) / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        dtype = (config.get("pretrained_config") or config)["dtype"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a TensorRT-LLM engine config ({exc})") from exc
    if dtype not in DTYPES:
        raise CheckpointError(f"{path}: dtype {dtype!r} is not one of {list(DTYPES)}")
    return dtype


def trtllm_runner(engine_dir: Path, text_encoder: Any) -> Any:
    """A ``GraphRunner`` (``backends.DitVelocity``) over a TensorRT-LLM F5 engine: host text
    embedding, then one ``ttskiln.runners.TrtllmRunner`` call (engine inputs on the GPU in the
    engine's types, ``denoised`` back as float32)."""
    require_trtllm()
    from ttskiln.runners import TrtllmRunner

    runner = TrtllmRunner(Path(engine_dir) / ENGINE_FILE, [OUTPUT_NAME]).activate()
    embed = TextEmbeddingCache(text_encoder)

    def run(inputs: dict[str, np.ndarray]) -> np.ndarray:
        return runner.infer(engine_inputs(inputs, embed(inputs)))[OUTPUT_NAME]

    return run
