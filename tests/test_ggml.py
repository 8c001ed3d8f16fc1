"""The tortoise_gpt ggml model file: layout, the tensor set tortoise.cpp's loader asks for,
round trips, validation against PyTorch, and the pipeline stage."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
import yaml

from conftest import planned_jobs, snakemake, upstream_case, write_config
from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.families import get_family
from ttskiln.families.tortoise_gpt import ggml
from ttskiln.families.tortoise_gpt.generate import TorchRunner, generate_batch
from ttskiln.plan import build_plan

TG = get_family("tortoise_gpt")


def loader_table() -> dict[str, tuple[int, ...]]:
    """What tortoise.cpp's ``autoregressive_model_load`` allocates (ggml dimensions, innermost
    first), written out from its source: released sizes, 30 layers, dim 1024."""
    table = {
        "text_embedding.weight": (1024, 256),
        "text_pos_embedding.emb.weight": (1024, 404),
        "mel_embedding.weight": (1024, 8194),
        "mel_pos_embedding.emb.weight": (1024, 608),
        "inference_model.transformer.ln_f.weight": (1024,),
        "inference_model.transformer.ln_f.bias": (1024,),
        "inference_model.lm_head.0.weight": (1024,),
        "inference_model.lm_head.0.bias": (1024,),
        "inference_model.lm_head.1.weight": (1024, 8194),
        "inference_model.lm_head.1.bias": (8194,),
    }
    block = {
        "ln_1.weight": (1024,), "ln_1.bias": (1024,),
        "attn.c_attn.weight": (3072, 1024), "attn.c_attn.bias": (3072,),
        "attn.c_proj.weight": (1024, 1024), "attn.c_proj.bias": (1024,),
        "ln_2.weight": (1024,), "ln_2.bias": (1024,),
        "mlp.c_fc.weight": (4096, 1024), "mlp.c_fc.bias": (4096,),
        "mlp.c_proj.weight": (1024, 4096), "mlp.c_proj.bias": (1024,),
    }
    for i in range(30):
        table.update({f"inference_model.transformer.h.{i}.{k}": v for k, v in block.items()})
    return table


def test_full_size_tensor_set_is_what_the_runtime_loader_asks_for():
    shapes = ggml.model_shapes(TG.synthetic_config("tortoise_v2", {}))  # meta tensors: no weights
    expected = loader_table()
    assert len(expected) == 370
    for dtype in ("float32", "float16"):
        table = ggml.tensor_table(shapes, dtype)
        got = {entry.name: entry.ne for _, entry in table}
        assert len(got) == len(table) == 370
        assert got == expected
        fp16 = {entry.name for _, entry in table if entry.ftype == 1}
        if dtype == "float32":
            assert not fp16
        else:  # the 2-D weights only: 4 per block, 4 tables, the mel head
            assert fp16 == {n for n, ne in expected.items() if len(ne) == 2 and n.endswith(".weight")}
            assert len(fp16) == 4 * 30 + 5
        # the file's size: magic, per tensor 3 + n_dims int32 and the name, then the data
        values = sum(int(np.prod(ne)) for ne in expected.values())
        headers = sum(4 * (3 + len(ne)) + len(n) for n, ne in expected.items())
        data = 4 * values if dtype == "float32" else 4 * values - 2 * sum(int(np.prod(expected[n])) for n in fp16)
        assert ggml.file_size(table) == 4 + headers + data
    # what the runtime does not read stays out
    names = {name for name, _ in ggml.tensor_table(shapes, "float32")}
    assert not any(n.startswith(("conditioning_encoder.", "text_head.")) for n in names)
    assert sum(1 for n in shapes if n.startswith(("conditioning_encoder.", "text_head."))) > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ggml")
    ckpt = root / "ckpt"
    TG.write_synthetic(TG.synthetic_config("tiny", {}), ckpt, seed=5)
    config = TG.read_config(ckpt, {})
    return {"root": root, "ckpt": ckpt, "config": config, "model": TG.load(ckpt, config)}


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_write_read_round_trip_and_byte_layout(tiny, dtype):
    path = tiny["root"] / dtype / "ggml-model.bin"
    state = tiny["model"].state_dict()
    summary = ggml.write(state, path, dtype)
    raw = path.read_bytes()
    assert summary["bytes"] == len(raw)
    # the first tensor by hand: magic, n_dims, name length, ftype, dims innermost first, name, data
    assert struct.unpack_from("<I", raw, 0)[0] == 0x67676D6C
    n_dims, length, ftype = struct.unpack_from("<iii", raw, 4)
    dims = struct.unpack_from(f"<{n_dims}i", raw, 16)
    name = raw[16 + 4 * n_dims:16 + 4 * n_dims + length].decode()
    assert name == "text_embedding.weight"
    assert dims == tuple(reversed(state[name].shape))
    assert ftype == (1 if dtype == "float16" else 0)
    first = np.frombuffer(raw, "<f2" if ftype else "<f4", 4, 16 + 4 * n_dims + length)
    np.testing.assert_array_equal(first, state[name].numpy().ravel()[:4].astype(first.dtype))

    parsed = ggml.read(path)
    assert [e.name for e in parsed.entries] == [ggml.runtime_name(k) for k in state if ggml.runtime_name(k)]
    assert len(parsed.entries) == 12 * tiny["config"]["unified_voice"]["layers"] + 10
    back = parsed.state_dict()
    for key, value in back.items():
        entry = next(e for e in parsed.entries if e.name == ggml.runtime_name(key))
        want = state[key].numpy()
        if entry.ftype == 1:
            assert want.ndim == 2 and key.endswith(".weight")
            want = want.astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(value, want)
    assert (sum(e.ftype for e in parsed.entries) > 0) == (dtype == "float16")


def test_reader_and_rebuild_refuse_broken_files(tiny, tmp_path):
    path = tmp_path / "ggml-model.bin"
    state = tiny["model"].state_dict()
    ggml.write(state, path, "float32")
    raw = path.read_bytes()
    (tmp_path / "magic.bin").write_bytes(b"GGUF" + raw[4:])
    with pytest.raises(CheckpointError, match="magic"):
        ggml.read(tmp_path / "magic.bin")
    (tmp_path / "short.bin").write_bytes(raw[:-10])
    with pytest.raises(CheckpointError, match="past the end"):
        ggml.read(tmp_path / "short.bin")
    bad = bytearray(raw)
    struct.pack_into("<i", bad, 12, 7)  # ftype of the first tensor
    (tmp_path / "ftype.bin").write_bytes(bytes(bad))
    with pytest.raises(CheckpointError, match="ftype 7"):
        ggml.read(tmp_path / "ftype.bin")
    partial = {k: v for k, v in state.items() if k != "mel_head.bias"}
    ggml.write(partial, tmp_path / "partial.bin", "float32")
    with pytest.raises(CheckpointError, match=r"missing \['inference_model.lm_head.1.bias'\]"):
        ggml.load_model(tmp_path / "partial.bin", tiny["config"])
    other = TG.synthetic_config("tiny", {"model_dim": 32})
    with pytest.raises(CheckpointError, match="shape mismatches"):
        ggml.load_model(path, other)


def _validate(tiny, artifact, dtype, tmp_path):
    return ggml.validate(
        family=TG, checkpoint=str(tiny["ckpt"]), config=tiny["config"], artifact=str(artifact), dtype=dtype,
        sizes={"batch": 2, "tokens": 6}, steps=8, tolerances={"max_abs_err": 1e-6, "cosine": 0.99999},
        seed=0, output=str(tmp_path / f"{dtype}.json"),
        labels={"model": "m", "component": "ggml", "variant": dtype, "point": "p-opt"},
    )


def test_fp32_file_validates_with_identical_tokens_and_a_changed_one_fails(tiny, tmp_path):
    path = tmp_path / "ggml-model.bin"
    ggml.convert(family=TG, checkpoint=str(tiny["ckpt"]), config=tiny["config"], dtype="float32",
                 output=str(path), meta_output=str(tmp_path / "ggml-model.json"))
    meta = json.loads((tmp_path / "ggml-model.json").read_text())
    assert meta["tensors"] == len(ggml.read(path).entries) and meta["bytes"] == path.stat().st_size
    assert len(meta["checkpoint_sha256"]) == 64 and meta["ttskiln_version"]
    record = _validate(tiny, path, "float32", tmp_path)
    assert json.loads((tmp_path / "float32.json").read_text()) == json.loads(json.dumps(record))
    assert record["passed"] and record["tokens_identical"] and record["status"] == "ok"
    assert record["metrics"]["max_abs_err"] <= 1e-6 and record["metrics"]["token_agreement"] == 1.0
    assert set(record["outputs"]) == {"latents", "logits", "prefill_hidden"}
    assert {"model", "component", "variant", "point", "artifact", "metrics", "tolerances", "passed", "failures"} <= set(record)
    # a file whose weights are not the checkpoint's fails
    state = dict(tiny["model"].state_dict())
    state["gpt.h.0.mlp.c_fc.bias"] = state["gpt.h.0.mlp.c_fc.bias"] + 1e-3
    ggml.write(state, tmp_path / "changed.bin", "float32")
    changed = _validate(tiny, tmp_path / "changed.bin", "float32", tmp_path)
    assert not changed["passed"] and any("max_abs_err" in f for f in changed["failures"])


def test_fp16_file_reports_token_agreement(tiny, tmp_path):
    path = tmp_path / "ggml-model.bin"
    ggml.write(tiny["model"].state_dict(), path, "float16")
    record = _validate(tiny, path, "float16", tmp_path)
    assert 0.0 <= record["metrics"]["token_agreement"] <= 1.0
    assert record["metrics"]["max_abs_err"] > 0  # fp16 weights do round
    assert record["fp16_tensors"] == 4 * 2 + 5
    assert record["passed"] == (not record["failures"])


def test_parity_fixture_round_trips_with_identical_greedy_tokens(tmp_path):
    case = upstream_case("tortoise_gpt", "uv_small")
    config = TG.read_config(case / "autoregressive.pth", {"preset": "tiny"})
    model = TG.load(case, config)
    path = tmp_path / "ggml-model.bin"
    ggml.write(model.state_dict(), path, "float32")
    rebuilt = ggml.load_model(path, config)
    inputs = np.load(case / "inputs.npz")
    outputs = np.load(case / "outputs.npz")
    cfg = TG.config_of(config)
    cond, text = inputs["cond_latent"].astype(np.float32), inputs["text_ids"].astype(np.int64)
    steps = int(outputs["decode_tokens"].shape[1])
    got = generate_batch(TorchRunner(rebuilt), cfg, cond, text, steps, stop_early=False)
    want = generate_batch(TorchRunner(model), cfg, cond, text, steps, stop_early=False)
    np.testing.assert_array_equal(got.tokens, outputs["decode_tokens"].astype(np.int64))
    np.testing.assert_array_equal(got.tokens, want.tokens)
    np.testing.assert_allclose(got.step_logits, outputs["decode_step_logits"], atol=1e-4)


# -- planning and the pipeline ---------------------------------------------------------------
def _tortoise_entry(**extra):
    return {
        "family": "tortoise_gpt",
        "checkpoint": {"synthetic": "tiny", "seed": 0},
        "options": {"decode_steps": 4},
        "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "tokens": {"min": 4, "opt": 8, "max": 8}}},
        **extra,
    }


def test_plan_reads_ggml_and_refuses_other_families(tmp_path):
    plan = build_plan({"models": {"t": _tortoise_entry(ggml={"dtype": ["float32", "float16"]})}}, tmp_path, False)
    assert plan.models["t"].ggml == {"dtypes": ["float32", "float16"]}
    assert build_plan({"models": {"t": _tortoise_entry()}}, tmp_path, False).models["t"].ggml is None
    vocos = {"family": "vocos", "checkpoint": {"synthetic": "tiny"}, "ggml": {"dtype": "float16"}}
    with pytest.raises(ConfigError, match="model 'v': ggml: .*tortoise_gpt models.*this model is vocos"):
        build_plan({"models": {"v": vocos}}, tmp_path, False)
    with pytest.raises(ConfigError, match="ggml"):
        build_plan({"models": {"t": _tortoise_entry(ggml={"dtype": "int8"})}}, tmp_path, False)


DIRECTORY_RULES = ("synthetic_checkpoint", "chain")


def test_dtype_change_plans_only_the_ggml_jobs(tmp_path):
    """Every output of a first plan stands in (empty files, marked done), then the dtype changes."""
    config = {"benchmark": {"threads": 1, "warmup": 1, "repeats": 3}, "gpu": {"stages": "off"},
              "models": {"t": _tortoise_entry(ggml={"dtype": "float32"})}}
    write_config(tmp_path, config)
    first = planned_jobs(tmp_path)
    assert {"ggml", "validate_ggml"} <= {rule for rule, _ in first}
    for rule, outputs in first:
        for out in outputs.split(", "):
            target = tmp_path / out
            if rule in DIRECTORY_RULES:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
    snakemake(tmp_path, "--touch", "--forceall")  # marks each done, with its provenance
    assert planned_jobs(tmp_path) == []
    config["models"]["t"]["ggml"]["dtype"] = "float16"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    jobs = planned_jobs(tmp_path)
    # the new file and its validation, and the two jobs that read every record
    assert sorted({rule for rule, _ in jobs}) == ["gate", "ggml", "report", "validate_ggml"]
    assert all("/ggml/float16/" in out or "/ggml/validate/float16/" in out for rule, out in jobs if "ggml" in rule)
