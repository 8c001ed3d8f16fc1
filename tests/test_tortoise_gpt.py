import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

from conftest import REPO, upstream_case
from ttskiln.chains import run_chain
from ttskiln.errors import CheckpointError, ConfigError, InputError
from ttskiln.export import FORBIDDEN_OPS, export_component
from ttskiln.families import get_family
from ttskiln.families.tortoise_gpt.config import TortoiseConfig, parameter_count
from ttskiln.families.tortoise_gpt.generate import OrtRunner, Sampling, TorchRunner, generate, generate_batch
from ttskiln.runtime import ort_session, torch_run

TG = get_family("tortoise_gpt")
# TorchScript tracing notes on shape arithmetic; nothing to act on.
pytestmark = pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
CASE = "uv_small"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A synthetic tiny checkpoint, both graphs exported, the PyTorch model and config."""
    root = tmp_path_factory.mktemp("tortoise")
    ckpt = root / "ckpt"
    TG.write_synthetic(TG.synthetic_config("tiny", {}), ckpt, seed=3)
    paths = {}
    for component in ("prefill", "decode"):
        paths[component] = root / f"{component}.onnx"
        # the TorchScript exporter keeps the test fast; the parity test covers the dynamo export
        export_component(family="tortoise_gpt", checkpoint=str(ckpt), options={}, component=component, opset=18,
                         output=str(paths[component]), exporter="torchscript")
    config = TG.read_config(ckpt, {})
    return {"root": root, "ckpt": ckpt, "paths": paths, "config": config, "cfg": TortoiseConfig.from_dict(config),
            "model": TG.load(ckpt, config)}


# -- loading -----------------------------------------------------------------------------
def test_fixture_loads_strictly_and_counts_parameters():
    case = upstream_case("tortoise_gpt", CASE)
    manifest = json.loads((case / "manifest.json").read_text())
    config = TG.read_config(case / "autoregressive.pth", {"preset": "tiny"})
    assert config["unified_voice"]["model_dim"] == manifest["config"]["UnifiedVoice_kwargs"]["model_dim"]
    model = TG.load(case, config)
    assert sum(p.numel() for p in model.parameters()) == parameter_count(TortoiseConfig.from_dict(config))
    assert TG.describe(TG.synthetic_config("tortoise_v2", {})).summary["n_positions"] == 1012
    # the released architecture does not fit the small file: shapes are named
    with pytest.raises(CheckpointError, match="shape mismatches"):
        TG.check_checkpoint(case, TG.read_config(case, {"preset": "tortoise_v2"}))


def test_loader_rejects_missing_unexpected_and_foreign_files(tmp_path):
    case = upstream_case("tortoise_gpt", CASE)
    config = TG.read_config(case, {"preset": "tiny"})
    state = torch.load(case / "autoregressive.pth", weights_only=True)
    assert any(k.endswith(".attn.masked_bias") for k in state)  # accepted and dropped
    broken = dict(state)
    del broken["mel_head.weight"]
    broken["gpt.wte.weight"] = torch.zeros(3, 3)
    torch.save(broken, tmp_path / "autoregressive.pth")
    with pytest.raises(CheckpointError, match=r"missing keys \[mel_head.weight\].*unexpected keys \[gpt.wte.weight\]"):
        TG.load(tmp_path, config)
    torch.save({"not": "tensors", "model": {}}, tmp_path / "autoregressive.pth")
    with pytest.raises(CheckpointError):
        TG.load(tmp_path, config)
    with pytest.raises(ConfigError, match="unknown tortoise_gpt options"):
        TG.read_config(case, {"presett": "tiny"})
    with pytest.raises(ConfigError, match="unknown tortoise_gpt preset"):
        TG.read_config(case, {"preset": "huge"})
    with pytest.raises(CheckpointError, match="not found"):
        TG.read_config(tmp_path / "nothing", {})


def test_package_import_does_not_import_torch():
    code = "import sys, ttskiln.families; ttskiln.families.get_family('tortoise_gpt'); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_synthetic_checkpoint_round_trips(tiny):
    assert sorted(p.name for p in tiny["ckpt"].iterdir()) == ["autoregressive.pth", "config.json", "tokenizer.json"]
    assert tiny["config"]["unified_voice"] == TG.synthetic_config("tiny", {})["unified_voice"]
    info = TG.describe(tiny["config"])
    assert [c.name for c in info.components] == ["prefill", "decode"]
    assert all(c.profile_axes == ("batch", "tokens") for c in info.components)


# -- upstream parity ---------------------------------------------------------------------
def test_parity_cli_matches_upstream():
    case = upstream_case("tortoise_gpt", CASE)
    proc = subprocess.run([sys.executable, "-m", "ttskiln", "parity", str(case)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("decode_tokens", "decode_step_logits", "latents", "prefill_present_kv"):
        for backend in ("pytorch", "onnxruntime"):
            assert any(line.startswith(name) and backend in line and line.endswith("ok") for line in lines), (name, backend)
    assert lines[-1].startswith("worst max_abs_err=")


# -- export ------------------------------------------------------------------------------
def test_graphs_have_dynamic_axes_and_match_torch(tiny):
    info = TG.describe(tiny["config"])
    for component, path in tiny["paths"].items():
        graph = onnx.load(str(path))
        assert not {n.op_type for n in graph.graph.node} & FORBIDDEN_OPS
        dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input}
        assert "batch" in dims[info.component(component).inputs[0].name]
        assert "tokens" in (dims.get("text_ids") or dims.get("past"))
        spec = info.component(component)
        module = TG.component_module(tiny["model"], component)
        session = ort_session(path)
        for sizes in ({"batch": 1, "tokens": 3}, {"batch": 3, "tokens": 11}):
            inputs = TG.make_inputs(info, component, sizes, np.random.default_rng(1))
            expected = torch_run(module, spec, inputs)
            got = dict(zip(spec.output_names, session.run(spec.output_names, inputs)))
            for name in spec.output_names:
                assert got[name].shape == expected[name].shape
                np.testing.assert_allclose(got[name], expected[name], atol=1e-4)
        if component == "decode":
            assert got["present"].shape[4] == sizes["tokens"] + 1


# -- generation --------------------------------------------------------------------------
def _prompts(cfg, lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [((0.6 * rng.standard_normal(cfg.model_dim)).astype(np.float32),
             rng.integers(1, cfg.number_text_tokens, size=n).astype(np.int64)) for n in lengths]


def test_greedy_generation_equal_on_ort_with_binding_and_torch(tiny):
    cfg = tiny["cfg"]
    ort = OrtRunner.open(tiny["paths"]["prefill"], tiny["paths"]["decode"], threads=1)
    torch_runner = TorchRunner(tiny["model"])
    prompts = _prompts(cfg, [5, 9, 5])
    got_ort = generate(ort, cfg, prompts, 10, stop_early=False)
    got_torch = generate(torch_runner, cfg, prompts, 10, stop_early=False)
    assert len(got_ort) == 3
    for a, b in zip(got_ort, got_torch):
        np.testing.assert_array_equal(a, b)
    # a batch run step by step: logits agree too, and the cache grows by one per step
    cond = np.stack([p[0] for p in prompts[::2]])
    text = np.stack([p[1] for p in prompts[::2]])
    g_ort = generate_batch(ort, cfg, cond, text, 6, stop_early=False)
    g_torch = generate_batch(torch_runner, cfg, cond, text, 6, stop_early=False)
    np.testing.assert_array_equal(g_ort.tokens, g_torch.tokens)
    np.testing.assert_allclose(g_ort.step_logits, g_torch.step_logits, atol=1e-4)
    assert g_ort.positions == [2, 3, 4, 5, 6]  # upstream's cached positions (1 is skipped)
    assert ort.cache().shape == (cfg.layers, 2, 2, cfg.heads, 5 + 4 + 5, cfg.head_dim)


def test_seeded_sampling_is_reproducible(tiny):
    cfg = tiny["cfg"]
    ort = OrtRunner.open(tiny["paths"]["prefill"], tiny["paths"]["decode"], threads=1)
    prompts = _prompts(cfg, [6, 6])
    sampling = Sampling(do_sample=True, temperature=1.5, top_p=0.9, top_k=20, repetition_penalty=2.0, seed=11)
    first = generate(ort, cfg, prompts, 12, sampling, stop_early=False)
    again = generate(ort, cfg, prompts, 12, sampling, stop_early=False)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    greedy = generate(ort, cfg, prompts, 12, stop_early=False)
    assert any(not np.array_equal(a, b) for a, b in zip(first, greedy))


class _Recorder:
    calls = 0

    def prefill(self, *args):
        self.calls += 1
        raise AssertionError("must not run")

    decode = prefill


def test_over_long_requests_fail_before_running(tiny):
    cfg = tiny["cfg"]
    runner = _Recorder()
    too_long = _prompts(cfg, [4, cfg.max_text_tokens + 1])
    with pytest.raises(InputError, match=f"maximum of {cfg.max_text_tokens} text tokens"):
        generate(runner, cfg, too_long, 4)
    with pytest.raises(InputError, match=rf"at most {cfg.max_mel_tokens - 1}.*max_mel_tokens"):
        generate(runner, cfg, _prompts(cfg, [4]), cfg.max_mel_tokens)
    assert runner.calls == 0
    with pytest.raises(InputError, match="max_text_tokens"):
        TG.make_inputs(TG.describe(tiny["config"]), "prefill", {"batch": 1, "tokens": cfg.max_text_tokens + 1},
                       np.random.default_rng(0))


# -- chain -------------------------------------------------------------------------------
def test_generate_chain_rows(tiny):
    rows = run_chain(
        model="tg_tiny", family="tortoise_gpt", chain="generate", point="p-opt", sizes={"batch": 2, "tokens": 6},
        checkpoint=str(tiny["ckpt"]), options={"decode_steps": 5},
        artifacts={k: str(v) for k, v in tiny["paths"].items()}, linked={}, tolerances={"max_abs_err": 1e-4},
        bench={"threads": 1, "warmup": 1, "repeats": 2}, seed=0, directory=str(tiny["root"] / "chain"),
    )
    assert TG.chains(TG.describe(tiny["config"]), {}) == ["generate"]
    assert [(r["variant"], r["backend"]) for r in rows] == [
        ("fp32", "onnxruntime-cpu"),
        ("fp32-prefill", "pytorch-eager"), ("fp32-prefill", "onnxruntime-cpu"),
        ("fp32-decode", "pytorch-eager"), ("fp32-decode", "onnxruntime-cpu"),
    ]
    check = rows[0]
    assert check["passed"] is True and check["failures"] == [] and check["component"] == "generate"
    assert len(check["step_max_abs_err"]) == 5 and check["max_abs_err"] == max(check["step_max_abs_err"])
    assert check["tokens_equal_torch_cached"] is True
    assert all(r["p50_ms"] > 0 for r in rows[1:])
    assert rows[4]["speedup_vs_torch"] > 0 and rows[4]["tokens_per_s"] > 0
    assert (tiny["root"] / "chain" / "rows.json").is_file()


def test_one_profile_sets_both_components(tmp_path):
    from ttskiln.plan import build_plan

    entry = {"family": "tortoise_gpt", "checkpoint": {"synthetic": "tiny", "seed": 0},
             "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 2}, "tokens": {"min": 4, "opt": 8, "max": 16}}}}
    plan = build_plan({"models": {"tg": entry}}, tmp_path, check_files=False).models["tg"]
    assert [p.sizes for p in plan.points] == [{"batch": 1, "tokens": 8}, {"batch": 2, "tokens": 16}]
    assert plan.chains == ("generate",)
