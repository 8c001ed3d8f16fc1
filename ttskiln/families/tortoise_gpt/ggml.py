"""The GPT-2 of a Tortoise model as the ggml model file tortoise.cpp loads (``ggml-model.bin``).

Layout (the legacy ggml binary file, not GGUF; little-endian): the uint32 magic ``0x67676d6c``,
no hyperparameters, then per tensor ``int32 n_dims``, ``int32 name length``, ``int32 ftype``
(0 fp32, 1 fp16), ``n_dims`` int32 dimensions innermost first (the numpy shape reversed), the
UTF-8 name and the raw row-major data. The runtime's loader knows the released sizes (30
layers, dim 1024, 16 heads) from its own code; it refuses a name it does not know and a
tensor whose shape or byte size differs from what it allocated.

Names (the runtime's, after upstream's ``GPT2InferenceModel``): the blocks and ``ln_f`` of
``gpt`` under ``inference_model.transformer.``; ``final_norm`` and ``mel_head`` as
``inference_model.lm_head.0`` / ``.1``; the text and mel embeddings and both position tables
under their own names. Left out (the runtime reads none of them): the conditioning encoder
(the runtime takes the conditioning latent as an input) and ``text_head``. That is
``12 * layers + 10`` tensors.

``float16`` stores the 2-D ``.weight`` tensors (projections, embeddings, position tables, the
mel head) as fp16 and everything else (norms, biases) as fp32. tortoise.cpp's loader as
published allocates every tensor as F32 and checks the byte size, so it loads the float32 file;
the float16 file needs a loader that allocates those tensors as F16.

Nothing here imports torch at module level: the reader works on numpy alone.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ttskiln.errors import CheckpointError, ConfigError

MAGIC = 0x67676D6C
FILE_NAME = "ggml-model.bin"
META_NAME = "ggml-model.json"
#: dtype name -> (ftype written in the header, storage of the 2-D weights)
DTYPES = {"float32": 0, "float16": 1}
FTYPE_NUMPY = {0: np.dtype("<f4"), 1: np.dtype("<f2")}
#: Tensors kept under their own names.
EMBEDDINGS = ("text_embedding.weight", "text_pos_embedding.emb.weight", "mel_embedding.weight", "mel_pos_embedding.emb.weight")
#: Prefix renames, ours -> the runtime's.
PREFIXES = (
    ("gpt.", "inference_model.transformer."),
    ("final_norm.", "inference_model.lm_head.0."),
    ("mel_head.", "inference_model.lm_head.1."),
)
#: A block's tensors, in the runtime's names (under ``inference_model.transformer.h.N.``).
BLOCK_TENSORS = (
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
    "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias",
)
#: The runtime reads at most two dimensions per tensor.
MAX_DIMS = 2
MAX_NAME = 4096


def runtime_name(name: str) -> str | None:
    """The runtime's name of one of our state-dict tensors, or None where it reads none."""
    if name in EMBEDDINGS:
        return name
    for ours, theirs in PREFIXES:
        if name.startswith(ours):
            return theirs + name[len(ours):]
    return None


def our_name(name: str) -> str | None:
    """The inverse of ``runtime_name``."""
    if name in EMBEDDINGS:
        return name
    for ours, theirs in PREFIXES:
        if name.startswith(theirs):
            return ours + name[len(theirs):]
    return None


@dataclass(frozen=True)
class Entry:
    """One tensor of the file: runtime name, numpy shape, ftype (0 fp32, 1 fp16)."""

    name: str
    shape: tuple[int, ...]
    ftype: int

    @property
    def ne(self) -> tuple[int, ...]:
        """ggml's dimensions (innermost first)."""
        return tuple(reversed(self.shape))

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * FTYPE_NUMPY[self.ftype].itemsize

    @property
    def header_bytes(self) -> int:
        return 4 * (3 + len(self.shape)) + len(self.name.encode("utf-8"))


def ftype_of(name: str, shape: tuple[int, ...], dtype: str) -> int:
    """fp16 only for 2-D ``.weight`` tensors in float16 mode."""
    if dtype not in DTYPES:
        raise ConfigError(f"ggml.dtype {dtype!r} is not one of {sorted(DTYPES)}")
    return DTYPES[dtype] if name.endswith(".weight") and len(shape) == 2 else 0


def tensor_table(shapes: dict[str, tuple[int, ...]], dtype: str) -> list[tuple[str, Entry]]:
    """(our name, file entry) for every tensor the file holds, in state-dict order; from shapes
    alone, so the full-size table needs no weights."""
    table = []
    for name, shape in shapes.items():
        target = runtime_name(name)
        if target is None:
            continue
        shape = tuple(int(d) for d in shape)
        if not 1 <= len(shape) <= MAX_DIMS:
            raise CheckpointError(f"{name}: {len(shape)} dimensions; the ggml runtime reads 1 or 2")
        table.append((name, Entry(target, shape, ftype_of(target, shape, dtype))))
    return table


def file_size(table: list[tuple[str, Entry]]) -> int:
    """Bytes of the file ``write`` makes from this table."""
    return 4 + sum(e.header_bytes + e.nbytes for _, e in table)


def model_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """State-dict shapes of a family config's UnifiedVoice, without allocating weights."""
    import torch

    from ttskiln.families.tortoise_gpt.config import TortoiseConfig
    from ttskiln.families.tortoise_gpt.modules import UnifiedVoice

    with torch.device("meta"):
        model = UnifiedVoice(TortoiseConfig.from_dict(config))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# -- writing -------------------------------------------------------------------------------------
def _write_tensor(fh: BinaryIO, entry: Entry, data: np.ndarray) -> None:
    name = entry.name.encode("utf-8")
    fh.write(struct.pack("<iii", len(entry.shape), len(name), entry.ftype))
    fh.write(struct.pack(f"<{len(entry.shape)}i", *entry.ne))
    fh.write(name)
    fh.write(np.ascontiguousarray(data, dtype=FTYPE_NUMPY[entry.ftype]).tobytes())


def write(state: dict[str, Any], path: str | Path, dtype: str) -> dict[str, Any]:
    """Write the file from a UnifiedVoice state dict (tensors or arrays) atomically; returns
    a summary (dtype, tensor count, bytes, the fp16 tensor count)."""
    from ttskiln.atomic import atomic_path

    arrays = {k: _numpy(v) for k, v in state.items()}
    table = tensor_table({k: a.shape for k, a in arrays.items()}, dtype)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(struct.pack("<I", MAGIC))
        for name, entry in table:
            _write_tensor(fh, entry, arrays[name])
    size = Path(path).stat().st_size
    if size != file_size(table):
        raise RuntimeError(f"{path}: wrote {size} bytes, expected {file_size(table)}")
    return {
        "format": "ggml (legacy, magic 0x67676d6c)",
        "dtype": dtype,
        "tensors": len(table),
        "fp16_tensors": sum(e.ftype == 1 for _, e in table),
        "bytes": size,
    }


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().float().numpy()
    return np.asarray(value)


# -- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GGMLFile:
    """A parsed file: its entries in file order and their data (as stored)."""

    path: str
    entries: tuple[Entry, ...]
    data: dict[str, np.ndarray]

    def state_dict(self) -> dict[str, np.ndarray]:
        """Our names -> fp32 arrays."""
        out = {}
        for entry in self.entries:
            name = our_name(entry.name)
            if name is None:
                raise CheckpointError(f"{self.path}: tensor {entry.name!r} is not one the Tortoise GPT runtime reads")
            out[name] = self.data[entry.name].astype(np.float32)
        return out


def read(path: str | Path) -> GGMLFile:
    """Parse a ggml model file: magic, then every tensor's header and data (strictly)."""
    path = Path(path)
    raw = memoryview(path.read_bytes())
    where = f"ggml file {path}"
    if len(raw) < 4 or struct.unpack_from("<I", raw, 0)[0] != MAGIC:
        raise CheckpointError(f"{where}: no ggml magic 0x67676d6c at the start")
    offset, entries, data = 4, [], {}
    while offset < len(raw):
        if offset + 12 > len(raw):
            raise CheckpointError(f"{where}: truncated tensor header at byte {offset}")
        n_dims, length, ftype = struct.unpack_from("<iii", raw, offset)
        offset += 12
        if not 1 <= n_dims <= MAX_DIMS:
            raise CheckpointError(f"{where}: tensor at byte {offset - 12} has {n_dims} dimensions (1 or 2)")
        if not 0 < length <= MAX_NAME:
            raise CheckpointError(f"{where}: tensor at byte {offset - 12} has a name of {length} bytes")
        if ftype not in FTYPE_NUMPY:
            raise CheckpointError(f"{where}: tensor at byte {offset - 12} has ftype {ftype} (0 fp32 or 1 fp16)")
        if offset + 4 * n_dims + length > len(raw):
            raise CheckpointError(f"{where}: truncated tensor header at byte {offset - 12}")
        ne = struct.unpack_from(f"<{n_dims}i", raw, offset)
        offset += 4 * n_dims
        name = bytes(raw[offset:offset + length]).decode("utf-8")
        offset += length
        if any(d < 1 for d in ne):
            raise CheckpointError(f"{where}: {name}: dimensions {list(ne)}")
        if name in data:
            raise CheckpointError(f"{where}: tensor {name!r} appears twice")
        entry = Entry(name, tuple(reversed(ne)), ftype)
        if offset + entry.nbytes > len(raw):
            raise CheckpointError(f"{where}: {name}: data runs past the end of the file")
        data[name] = np.frombuffer(raw, FTYPE_NUMPY[ftype], int(np.prod(entry.shape)), offset).reshape(entry.shape)
        offset += entry.nbytes
        entries.append(entry)
    return GGMLFile(str(path), tuple(entries), data)


def load_model(path: str | Path, config: dict[str, Any]) -> Any:
    """Rebuild the family's UnifiedVoice from the file's tensors, for the model ``config``
    describes (the file holds no hyperparameters; heads come from the config). The parts the
    file leaves out (conditioning encoder, text head) are filled with NaN, so a computation
    that touched them would show. Raises CheckpointError when the file's tensors are not
    exactly the ones this config's model needs."""
    import torch

    from ttskiln.families.tortoise_gpt.config import TortoiseConfig
    from ttskiln.families.tortoise_gpt.modules import UnifiedVoice

    parsed = read(path)
    state = parsed.state_dict()
    model = UnifiedVoice(TortoiseConfig.from_dict(config))
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items() if runtime_name(name)}
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [f"{k} {list(state[k].shape)} != {list(expected[k])}" for k in expected if k in state and state[k].shape != expected[k]]
    if missing or extra or wrong:
        parts = [f"missing {[runtime_name(k) for k in missing][:4]}" if missing else "",
                 f"unexpected {[runtime_name(k) for k in extra][:4]}" if extra else "",
                 f"shape mismatches {wrong[:4]}" if wrong else ""]
        raise CheckpointError(f"ggml file {path} does not fit this model: " + "; ".join(p for p in parts if p))
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name in state:
                tensor.copy_(torch.from_numpy(state[name]))
            else:
                tensor.fill_(float("nan"))
    return model.eval()


# -- pipeline stages -----------------------------------------------------------------------------
#: The float32 file holds the checkpoint's values exactly: its latents may differ by this much.
FP32_MAX_ABS_ERR = 1e-6
#: Limits that apply to the GPT's tensors (the audio metrics do not).
TENSOR_METRICS = ("max_abs_err", "mse", "cosine", "snr_db")


def tolerances(model: Any, dtype: str) -> dict[str, float]:
    """A model plan's limits for one file: float16 takes the model's fp16 limits (as the fp16
    ONNX rows), float32 its fp32 limits with max_abs_err at most ``FP32_MAX_ABS_ERR``."""
    base = model.tolerances_for("fp16" if dtype == "float16" else "fp32")
    limits = {k: v for k, v in base.items() if k in TENSOR_METRICS}
    if dtype == "float32":
        limits["max_abs_err"] = min(float(limits.get("max_abs_err", FP32_MAX_ABS_ERR)), FP32_MAX_ABS_ERR)
    return limits


def convert(*, family: Any, checkpoint: str, config: dict[str, Any], dtype: str, output: str, meta_output: str) -> dict[str, Any]:
    """Stage ``ggml``: the checkpoint's GPT as ``output``, and beside it (``meta_output``) what
    it was made from: the checkpoint's content hash and the ttskiln version."""
    import ttskiln
    from ttskiln.atomic import write_json
    from ttskiln.fingerprint import sha256_files

    model = family.load(Path(checkpoint), config)
    summary = write(model.state_dict(), output, dtype)
    cache = Path(".snakemake") / "ttskiln" / "sha256-cache.json"
    meta = {
        **summary,
        "file": Path(output).name,
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": sha256_files(family.checkpoint_files(Path(checkpoint)), cache),
        "ttskiln_version": ttskiln.__version__,
        "runtime": "tortoise.cpp (autoregressive_model_load)",
        "runtime_loads": dtype == "float32",
        "note": None if dtype == "float32" else (
            "tortoise.cpp's published loader allocates every tensor as F32 and checks byte sizes: "
            "this file needs a loader that allocates the 2-D weights as F16"),
    }
    write_json(meta_output, meta)
    print(f"ttskiln ggml: {output}: {summary['tensors']} tensors ({summary['fp16_tensors']} fp16), {summary['bytes']} bytes")
    return meta


def _teacher_forced(runner: Any, cfg: Any, cond: np.ndarray, text: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Logits and latents at [start, c_1..c_{N-1}], mel positions 0..N-1 (prefill + decode)."""
    b, n = codes.shape
    logits, hidden = runner.prefill(cond, text, np.full(b, cfg.start_mel_token, dtype=np.int64))
    out_logits, out_hidden = [logits], [hidden[:, -1]]
    for k in range(1, n):
        logits, h = runner.decode(codes[:, k - 1], np.full(b, k, dtype=np.int64))
        out_logits.append(logits)
        out_hidden.append(h)
    return {"latents": np.stack(out_hidden, 1), "logits": np.stack(out_logits, 1), "prefill_hidden": hidden}


def compare(reference: Any, candidate: Any, cfg: Any, cond: np.ndarray, text: np.ndarray, steps: int) -> dict[str, Any]:
    """Greedy cached generation on both models, then the same codes teacher-forced through
    both (so the latents stay comparable where greedy tokens part)."""
    from ttskiln.families.tortoise_gpt.generate import TorchRunner, generate_batch
    from ttskiln.metrics import tensor_metrics

    ref_gen = generate_batch(TorchRunner(reference), cfg, cond, text, steps, stop_early=False)
    got_gen = generate_batch(TorchRunner(candidate), cfg, cond, text, steps, stop_early=False)
    same = ref_gen.tokens == got_gen.tokens
    diverged = np.flatnonzero(~same.all(axis=0))
    codes = ref_gen.tokens
    ref_tf = _teacher_forced(TorchRunner(reference), cfg, cond, text, codes)
    got_tf = _teacher_forced(TorchRunner(candidate), cfg, cond, text, codes)
    return {
        "tokens_identical": bool(same.all()),
        "token_agreement": float(same.mean()),
        "first_divergence": int(diverged[0]) if diverged.size else None,
        "tokens": {"reference": ref_gen.tokens, "ggml": got_gen.tokens},
        "outputs": {name: tensor_metrics(ref_tf[name], got_tf[name]) for name in ref_tf},
        "arrays": got_tf,
    }


def validate(*, family: Any, checkpoint: str, config: dict[str, Any], artifact: str, dtype: str,
             sizes: dict[str, int], steps: int, tolerances: dict[str, float], seed: int, output: str,
             labels: dict[str, str]) -> dict[str, Any]:
    """Stage ``validate_ggml``: the file's model against PyTorch from the checkpoint at one
    point (batch x text tokens), greedy for ``steps`` tokens. float32 must give identical
    tokens; float16 reports its token agreement. The latents, logits and prefill hidden states
    are held to ``tolerances`` (the record's shape is ``ttskiln.validate``'s)."""
    import torch

    from ttskiln.atomic import write_json
    from ttskiln.metrics import failures, non_finite, worst
    from ttskiln.metrics import log_verdict

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    info = family.describe(config)
    cfg = family.config_of(config)
    inputs = family.make_inputs(info, "prefill", sizes, np.random.default_rng(seed))
    cond, text = inputs["cond_latent"], inputs["text_ids"]
    steps = max(1, min(int(steps), cfg.max_new_tokens))
    facts = read(artifact)
    base = {
        **labels,
        "artifact": artifact,
        "backend": "pytorch (ggml tensors)",
        "shape": {"cond_latent": list(cond.shape), "text_ids": list(text.shape)},
        "tolerances": tolerances,
        "file_bytes": Path(artifact).stat().st_size,
        "tensors": len(facts.entries),
        "fp16_tensors": sum(e.ftype == 1 for e in facts.entries),
        "decode_steps": steps,
    }
    try:
        reference = family.load(Path(checkpoint), config)
        candidate = load_model(artifact, config)
        result = compare(reference, candidate, cfg, cond, text, steps)
    except Exception as exc:  # the file does not rebuild or run: a verdict, not a crash
        reason = f"cannot run the ggml file: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        record = {**base, "status": "error", "error": reason, "metrics": {}, "outputs": {}, "passed": False, "failures": [reason]}
        write_json(output, record)
        log_verdict(record)
        return record
    metrics = {**worst(list(result["outputs"].values())), "token_agreement": result["token_agreement"]}
    broken = non_finite(result["arrays"], "the ggml model's output") + failures(metrics, tolerances)
    if dtype == "float32" and not result["tokens_identical"]:
        broken.append(f"greedy tokens differ from PyTorch from step {result['first_divergence']}")
    record = {
        **base,
        "status": "ok",
        "metrics": metrics,
        "outputs": result["outputs"],
        "tokens_identical": result["tokens_identical"],
        "first_divergence": result["first_divergence"],
        "tokens": {k: v.tolist() for k, v in result["tokens"].items()},
        "passed": not broken,
        "failures": broken,
    }
    write_json(output, record)
    log_verdict(record)
    print(f"  greedy tokens: {'identical' if result['tokens_identical'] else 'differ'} "
          f"(agreement {result['token_agreement']:.3f} over {steps} steps)")
    return record
