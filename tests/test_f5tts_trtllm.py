"""TensorRT-LLM for the F5 DiT, what runs on CPU: checkpoint conversion (layout, names, scale
folding) on the shared upstream fixture, the engine's math on the converted weights through
the shared host side, and the skip path of the engine stages."""

import json
import py_compile

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, upstream_case
from trtllm_reference import reference_runner
from ttskiln.errors import CheckpointError, ConfigError, TtskilnError
from ttskiln.families import get_family
from ttskiln.families.f5tts import trtllm
from ttskiln.families.f5tts.backends import DitVelocity, torch_velocity
from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.host import HostDims
from ttskiln.families.f5tts.sampler import sample
from ttskiln.families.f5tts.weights import load_network_state

F5 = get_family("f5tts")
CASE = "dit_v1_small"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = upstream_case("f5tts", CASE)
    config = F5.read_config(folder, {})
    cfg = F5Config.from_dict(config)
    root = tmp_path_factory.mktemp("trtllm")
    out = {}
    for dtype in ("float32", "float16"):
        trtllm.convert(folder, config, root / dtype, dtype)
        out[dtype] = trtllm.read_checkpoint(root / dtype)
    inputs = dict(np.load(folder / "inputs.npz"))
    outputs = dict(np.load(folder / "outputs.npz"))
    return {"folder": folder, "config": config, "cfg": cfg, "root": root, "ckpt": out, "model": F5.load(folder, config),
            "inputs": inputs, "outputs": outputs, "network": load_network_state(folder / cfg.weights, cfg)}


def test_checkpoint_layout_and_config(case):
    root, cfg = case["root"], case["cfg"]
    assert sorted(p.name for p in (root / "float16").iterdir()) == ["config.json", "rank0.safetensors"]
    modes = {p.name: p.stat().st_mode & 0o777 for p in (root / "float16").iterdir()}
    assert modes["rank0.safetensors"] == modes["config.json"]  # both as the umask makes files
    config = json.loads((root / "float16" / "config.json").read_text())
    assert config["architecture"] == "F5TTS" and config["dtype"] == "float16"
    assert (config["hidden_size"], config["num_hidden_layers"], config["num_attention_heads"], config["dim_head"]) == (
        cfg.dim, cfg.depth, cfg.heads, cfg.dim_head)
    assert (config["mel_dim"], config["text_dim"], config["conv_layers"]) == (100, cfg.text_dim, cfg.conv_layers)
    assert config["mapping"] == {"world_size": 1, "cp_size": 1, "tp_size": 1, "pp_size": 1}
    weights = load_file(str(root / "float16" / "rank0.safetensors"))
    # Exactly the network's weights (read_checkpoint matched names and shapes strictly).
    assert set(weights) == set(trtllm.expected_weights(config))
    assert all(v.dtype == torch.float16 for v in weights.values())
    assert not any(k.startswith(("text_embed.", "rotary_embed.")) for k in weights)
    assert weights["input_embed.conv_pos_embed.conv1d1.weight"].shape == (cfg.dim, cfg.dim // 16, 31, 1)


def test_weight_mapping_and_scale_folding(case):
    network = case["network"]
    _, weights = case["ckpt"]["float32"]
    scale = case["cfg"].dim_head ** -0.25
    pairs = {
        "time_embed.time_mlp.0.weight": "time_embed.mlp1.weight",
        "time_embed.time_mlp.2.bias": "time_embed.mlp2.bias",
        "transformer_blocks.1.attn.to_out.0.weight": "transformer_blocks.1.attn.to_out.weight",
        "transformer_blocks.0.ff.ff.0.0.weight": "transformer_blocks.0.ff.project_in.weight",
        "transformer_blocks.0.ff.ff.2.bias": "transformer_blocks.0.ff.ff.bias",
        "transformer_blocks.0.attn.to_v.weight": "transformer_blocks.0.attn.to_v.weight",
        "norm_out.linear.weight": "norm_out.linear.weight",
        "proj_out.bias": "proj_out.bias",
    }
    for source, target in pairs.items():
        assert torch.equal(weights[target], network[source]), source
    for n in range(case["cfg"].depth):
        for part in ("to_q.weight", "to_q.bias", "to_k.weight", "to_k.bias"):
            name = f"transformer_blocks.{n}.attn.{part}"
            torch.testing.assert_close(weights[name], network[name] * scale, rtol=1e-7, atol=0)
    conv = network["input_embed.conv_pos_embed.conv1d.2.weight"]
    assert torch.equal(weights["input_embed.conv_pos_embed.conv1d2.weight"], conv.unsqueeze(-1))


def _velocity(case, dtype="float32"):
    config, weights = case["ckpt"][dtype]
    run = reference_runner(config, weights, case["model"].text_embed)
    return DitVelocity(HostDims.of(case["cfg"]), run), run


def test_engine_math_on_converted_weights_matches_upstream(case):
    """The converted fp32 checkpoint, through the engine's math and the shared host side
    (text embedding, time sinusoid, RoPE tables, packing), reproduces upstream's DiT output."""
    inp = case["inputs"]
    velocity, run = _velocity(case)
    got = velocity.forward(inp["x"], inp["cond"], inp["text"], inp["time"], None)
    np.testing.assert_allclose(got, case["outputs"]["out_cond_nomask"], atol=1e-4, rtol=0)
    assert run.calls[-1]["cond"] == (2, inp["x"].shape[1], 100 + case["cfg"].text_dim)
    assert run.calls[-1]["rope_cos"] == (2, inp["x"].shape[1], case["cfg"].dim_head)
    # CFG packing: conditional rows first, then unconditional ones, as the recipe feeds them.
    packed = velocity.forward(inp["x"], inp["cond"], inp["text"], inp["time"], None, cfg_infer=True)
    torch_packed = torch_velocity(case["model"]).forward(inp["x"], inp["cond"], inp["text"], inp["time"], None, cfg_infer=True)
    np.testing.assert_allclose(packed, torch_packed, atol=1e-4, rtol=0)
    np.testing.assert_allclose(packed[:2], got, atol=1e-6, rtol=0)


def test_padded_rows_match_key_masked_attention(case):
    """With padding, the plugin masks keys past input_lengths: valid frames equal the PyTorch
    DiT with key masking (upstream v1 attends to padded frames; see trtllm.py)."""
    import dataclasses

    from ttskiln.families.f5tts.modules import DiT

    inp = case["inputs"]
    mask = inp["mask"]
    assert not mask.all()
    velocity, _ = _velocity(case)
    got = velocity.forward(inp["x"], inp["cond"], inp["text"], inp["time"], mask)
    masked = DiT(dataclasses.replace(case["cfg"], attn_mask_enabled=True))
    masked.load_state_dict(case["model"].state_dict())
    want = torch_velocity(masked.eval()).forward(inp["x"], inp["cond"], inp["text"], inp["time"], mask)
    np.testing.assert_allclose(got[mask], want[mask], atol=1e-4, rtol=0)


def test_fp16_checkpoint_stays_close(case):
    inp = case["inputs"]
    velocity, _ = _velocity(case, "float16")
    got = velocity.forward(inp["x"], inp["cond"], inp["text"], inp["time"], None)
    want = case["outputs"]["out_cond_nomask"]
    assert np.max(np.abs(got - want)) < 2e-2 * np.max(np.abs(want))


def test_sampling_loop_is_shared(case):
    """The Euler/CFG loop runs unchanged over the engine runner: same mel as PyTorch."""
    inp = case["inputs"]
    ref = inp["cond"][:1, :12]
    text = inp["text"][:1]
    noise = np.random.default_rng(0).standard_normal((1, 40, 100)).astype(np.float32)
    velocity, run = _velocity(case)
    got = sample(velocity, ref, text, 40, steps=4, noise=noise, keep_trajectory=False)
    want = sample(torch_velocity(case["model"]), ref, text, 40, steps=4, noise=noise, keep_trajectory=False)
    np.testing.assert_allclose(got.out, want.out, atol=1e-4, rtol=0)
    assert len(run.calls) == 4 and run.calls[0]["noise"] == (2, 40, 100)


def test_unsupported_and_bad_settings(case, tmp_path):
    import dataclasses

    with pytest.raises(CheckpointError, match="does not support qk_norm 'rms_norm'"):
        trtllm.check_supported(dataclasses.replace(case["cfg"], qk_norm="rms_norm"), "m")
    with pytest.raises(ConfigError, match="dtype must be one of"):
        trtllm.convert_state(case["network"], case["cfg"], "int4")
    with pytest.raises(ConfigError, match="even number"):
        trtllm.EngineLimits.from_config({"max_batch_size": 3})
    with pytest.raises(ConfigError, match="min_frames <= opt_frames"):
        trtllm.EngineLimits.from_config({"opt_frames": 5000})
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="rank0.safetensors is missing"):
        trtllm.read_checkpoint(tmp_path)


def test_build_settings_and_skip_without_tensorrt_llm(case):
    config, _ = case["ckpt"]["float16"]
    limits = trtllm.EngineLimits.from_config({"max_batch_size": 4, "max_frames": 2000})
    settings = trtllm.build_settings(config, limits)
    assert settings["plugins"] == {"bert_attention_plugin": "float16", "remove_input_padding": False}
    assert (settings["max_batch_size"], settings["max_seq_len"], settings["workers"]) == (4, 2000, 1)
    try:
        import tensorrt_llm  # noqa: F401
    except ImportError:
        with pytest.raises(TtskilnError, match="tensorrt_llm 0.16.0 is not importable here"):
            trtllm.require_trtllm()
    else:
        pytest.skip("tensorrt_llm is installed: the skip path does not apply")


def test_network_definition_compiles():
    py_compile.compile(str(REPO / "ttskiln/families/f5tts/trtllm_network.py"), doraise=True)
    source = (REPO / "ttskiln/families/f5tts/trtllm_network.py").read_text()
    # The registration is in-process (trtllm.build), never by writing into site-packages.
    assert "site-packages" not in (REPO / "ttskiln/families/f5tts/trtllm.py").read_text().split('"""')[2]
    for name in trtllm.INPUT_NAMES + (trtllm.OUTPUT_NAME,):
        assert f'"{name}"' in source


def test_a_wrong_scale_fold_is_caught(case):
    """The comparison is sensitive to the folding: un-scaling one q projection breaks it."""
    config, weights = case["ckpt"]["float32"]
    broken = dict(weights)
    scale = case["cfg"].dim_head ** -0.25
    broken["transformer_blocks.0.attn.to_q.weight"] = weights["transformer_blocks.0.attn.to_q.weight"] / scale
    inp = case["inputs"]
    velocity = DitVelocity(HostDims.of(case["cfg"]), reference_runner(config, broken, case["model"].text_embed))
    got = velocity.forward(inp["x"], inp["cond"], inp["text"], inp["time"], None)
    assert np.max(np.abs(got - case["outputs"]["out_cond_nomask"])) > 1e-3
