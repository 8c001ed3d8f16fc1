import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from conftest import REPO, upstream_case
from ttskiln.errors import CheckpointError, ConfigError
from ttskiln.export import FORBIDDEN_OPS, export_component
from ttskiln.families import get_family
from ttskiln.families.f5tts.backends import onnx_velocity, torch_velocity
from ttskiln.families.f5tts.config import F5Config, parameter_count, preset_config
from ttskiln.families.f5tts.modules import DiT
from ttskiln.families.f5tts.sampler import time_grid
from ttskiln.families.f5tts.sampler import sample as run_sampler
from ttskiln.families.f5tts.vocab import batch_ids, char_tokens, prompt_text, read_vocab, tokens_to_ids
from ttskiln.families.f5tts.weights import write_released_pt
from ttskiln.runtime import ort_session, torch_run

F5 = get_family("f5tts")
# The exporter notes that inputs share the batch/frames axes; nothing to act on.
pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")
WEIGHTS = "model_1250000.safetensors"


def _writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture
def fixture_copy(tmp_path):
    return _writable_copy(upstream_case("f5tts", "dit_v1_small"), tmp_path / "ckpt")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A synthetic tiny checkpoint, its exported dit graph, the PyTorch model and config."""
    root = tmp_path_factory.mktemp("f5")
    ckpt = root / "ckpt"
    F5.write_synthetic(F5.synthetic_config("tiny", {}), ckpt, seed=7)
    onnx_path = root / "dit.onnx"
    export_component(family="f5tts", checkpoint=str(ckpt), options={}, component="dit", opset=18,
                     output=str(onnx_path), metadata={"model": "tiny"})
    config = F5.read_config(ckpt, {})
    return {"ckpt": ckpt, "onnx": onnx_path, "config": config, "model": F5.load(ckpt, config)}


# -- loading -----------------------------------------------------------------------------
def test_fixture_checkpoint_loads_strictly():
    case = upstream_case("f5tts", "dit_v1_small")
    config = F5.read_config(case, {})
    assert config["weights"] == WEIGHTS and config["text_num_embeds"] == 40
    model = F5.load(case, config)
    info = F5.describe(config)
    assert sum(p.numel() for p in model.parameters()) == info.summary["parameters"] == 188_644
    # the same weights file with the architecture from a preset instead of config.yaml
    assert F5.read_config(case / WEIGHTS, {"preset": "tiny"})["model"]["arch"] == preset_config("tiny")["model"]["arch"]


def test_released_sizes_are_counted():
    for preset in ("F5TTS_v1_Base", "F5TTS_Base"):
        assert F5.describe(F5.synthetic_config(preset, {})).summary["parameters"] == 337_096_804
    for overrides in ({}, {"pe_attn_head": 1, "text_mask_padding": False, "qk_norm": "rms_norm"},
                      {"conv_layers": 0, "long_skip_connection": True, "ff_mult": 4}):
        cfg = F5Config.from_dict(preset_config("tiny", overrides))
        with torch.device("meta"):
            module = DiT(cfg)
        assert sum(p.numel() for p in module.parameters()) == parameter_count(cfg)


def test_synthetic_checkpoint_is_in_released_layout(tiny):
    ckpt = tiny["ckpt"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["config.yaml", WEIGHTS, "vocab.txt"]
    raw = load_file(str(ckpt / WEIGHTS))
    assert raw["initted"].item() is True and raw["step"].item() == 1250000
    assert all(k.startswith("ema_model.transformer.") for k in raw if k not in ("initted", "step"))
    assert "ema_model.transformer.rotary_embed.inv_freq" in raw
    assert read_vocab(ckpt / "vocab.txt")[" "] == 0
    assert F5.read_config(ckpt, {}) == F5.synthetic_config("tiny", {})


def test_pt_ema_layout_round_trip(tiny, tmp_path):
    state = {k: v.clone() for k, v in tiny["model"].state_dict().items()}
    folder = tmp_path / "pt"
    folder.mkdir()
    shutil.copy(tiny["ckpt"] / "vocab.txt", folder / "vocab.txt")
    write_released_pt(state, folder / "model_1200000.pt", step=1200000)
    # a training checkpoint keeps more top-level entries; only the EMA copy is read
    data = torch.load(folder / "model_1200000.pt", weights_only=True)
    data.update({"model_state_dict": {"x": torch.zeros(1)}, "step": 5})
    torch.save(data, folder / "model_1200000.pt")
    config = F5.read_config(folder / "model_1200000.pt", {"preset": "tiny"})
    loaded = F5.load(folder / "model_1200000.pt", config).state_dict()
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_pt_without_ema_entry_is_named(tiny, tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    shutil.copy(tiny["ckpt"] / "vocab.txt", folder / "vocab.txt")
    torch.save({"model_state_dict": tiny["model"].state_dict()}, folder / "model.pt")
    with pytest.raises(CheckpointError, match=r"no 'ema_model_state_dict' entry .*model_state_dict"):
        F5.check_checkpoint(folder, F5.read_config(folder, {"preset": "tiny"}))


def test_missing_key_is_named(fixture_copy):
    raw = load_file(str(fixture_copy / WEIGHTS))
    del raw["ema_model.transformer.norm_out.linear.bias"]
    save_file(raw, str(fixture_copy / WEIGHTS))
    with pytest.raises(CheckpointError, match=r"1 missing keys \[transformer\.norm_out\.linear\.bias\]"):
        F5.load(fixture_copy, F5.read_config(fixture_copy, {}))


def test_config_that_disagrees_with_weights(fixture_copy):
    data = yaml.safe_load((fixture_copy / "config.yaml").read_text())
    data["model"]["arch"]["dim"] = 128
    (fixture_copy / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match=r"35 shape mismatches \(transformer\.input_embed\.conv_pos_embed\.conv1d\.0\.bias: expected \[128\], got \[64\]"):
        F5.check_checkpoint(fixture_copy, F5.read_config(fixture_copy, {}))


def test_vocabulary_with_a_different_size_is_refused(fixture_copy):
    with (fixture_copy / "vocab.txt").open("a") as fh:
        fh.write("extra\n")
    with pytest.raises(CheckpointError, match=r"text_embed\.text_embed\.weight: expected \[42, 32\], got \[41, 32\]"):
        F5.check_checkpoint(fixture_copy, F5.read_config(fixture_copy, {}))


def test_architecture_source_is_required(fixture_copy):
    (fixture_copy / "config.yaml").unlink()
    with pytest.raises(CheckpointError, match=r"no config.yaml .*preset: F5TTS_v1_Base"):
        F5.read_config(fixture_copy, {})
    with pytest.raises(ConfigError, match="unknown f5tts options"):
        F5.read_config(fixture_copy, {"presett": "tiny"})
    shutil.copy(fixture_copy / WEIGHTS, fixture_copy / "model_1200000.safetensors")
    with pytest.raises(CheckpointError, match="several weights files"):
        F5.read_config(fixture_copy, {"preset": "tiny"})
    config = F5.read_config(fixture_copy, {"preset": "tiny", "weights": WEIGHTS})
    F5.check_checkpoint(fixture_copy, config)


def test_vocab_is_read_like_upstream(tmp_path):
    path = tmp_path / "vocab.txt"
    # CRLF line ends, a space and a tab token, a duplicate, a last line without newline
    path.write_bytes(b" \r\n\t\r\na\r\nni3\r\na\r\nzz")
    vocab = read_vocab(path)
    assert vocab == {" ": 0, "\t": 1, "a": 4, "ni3": 3, "z": 5}
    assert tokens_to_ids([" ", "a", "?", "ni3", "\t"], vocab).tolist() == [0, 4, 0, 3, 1]
    assert batch_ids([["a"], ["ni3", "x", " "]], vocab).tolist() == [[4, -1, -1], [3, 0, 0]]
    assert prompt_text("Hello there", "Bye.") == "Hello there.  Bye."
    assert char_tokens("a;b \u201cc\u201d") == ["a", ",", "b", " ", '"', "c", '"']
    fixture = read_vocab(upstream_case("f5tts", "dit_v1_small") / "vocab.txt")
    case = upstream_case("f5tts", "cfm_sample_small")
    import json

    manifest = json.loads((case / "manifest.json").read_text())
    ids = tokens_to_ids(manifest["text_tokens"][0], fixture)
    assert ids.tolist() == np.load(case / "inputs.npz")["text"][0].tolist()


# -- parity ------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["dit_v1_small", "cfm_sample_small"])
def test_parity_cli(case):
    proc = subprocess.run([sys.executable, "-m", "ttskiln", "parity", str(upstream_case("f5tts", case))],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("worst max_abs_err=")
    backends = {line.split()[1] for line in lines[:-1]}
    assert backends == {"pytorch", "onnxruntime"}
    if case == "cfm_sample_small":
        assert {line.split()[0] for line in lines[:-1]} >= {"out", "trajectory", "t_grid"}


# -- export ------------------------------------------------------------------------------
def test_export_has_dynamic_batch_and_frames(tiny):
    model = onnx.load(tiny["onnx"])
    assert not {n.op_type for n in model.graph.node} & FORBIDDEN_OPS
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims == {
        "x": ["batch", "frames", 100], "cond": ["batch", "frames", 100], "text": ["batch", "frames"],
        "drop_text": ["batch"], "time_sinusoid": ["batch", 256], "mask": ["batch", "frames"],
        "rope_cos": ["frames", 32], "rope_sin": ["frames", 32], "text_pos": ["frames", 32],
    }
    assert [o.name for o in model.graph.output] == ["flow"]
    info = F5.describe(tiny["config"])
    session = ort_session(tiny["onnx"])
    for batch, frames in [(1, 3), (4, 80), (3, 33)]:
        inputs = F5.make_inputs(info, "dit", {"batch": batch, "frames": frames}, np.random.default_rng(batch))
        (got,) = session.run(None, inputs)
        want = torch_run(tiny["model"], info.component("dit"), inputs)["flow"]
        assert got.shape == want.shape == (batch, frames, 100)
        assert np.abs(got - want).max() < 1e-4


# -- sampler -----------------------------------------------------------------------------
def test_time_grids():
    assert np.allclose(time_grid(16, None), np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32]) / 32)
    assert np.allclose(time_grid(32, None), np.linspace(0, 1, 33))
    assert np.allclose(time_grid(4, -1.0), 1 - np.cos(np.pi / 2 * np.linspace(0, 1, 5)), atol=1e-7)
    assert np.allclose(time_grid(16, None, use_epss=False), np.linspace(0, 1, 17))


def test_sampler_onnx_matches_pytorch(tiny):
    rng = np.random.default_rng(3)
    cond = rng.normal(size=(2, 20, 100)).astype(np.float32)
    text = np.full((2, 25), -1, dtype=np.int64)
    text[0], text[1, :12] = rng.integers(0, 40, 25), rng.integers(0, 40, 12)
    kwargs = dict(lens=[20, 9], steps=5, cfg_strength=2.0, sway_sampling_coef=-1.0, rng=None)
    velocities = [torch_velocity(tiny["model"]), onnx_velocity(tiny["onnx"], tiny["config"])]
    calls = []
    results = [
        run_sampler(v, cond, text, [48, 30], noise=np.random.default_rng(0).normal(size=(2, 48, 100)).astype(np.float32),
                    on_step=lambda k, t, x, flow: calls.append(flow.shape), **kwargs)
        for v in velocities
    ]
    assert calls == [(4, 48, 100)] * 10  # EPSS 5 steps, CFG packed
    a, b = results
    assert a.out.shape == (2, 48, 100) and a.trajectory.shape == (6, 2, 48, 100)
    assert a.durations.tolist() == [48, 30]
    assert np.array_equal(a.out[0, :20], cond[0]) and np.array_equal(a.out[1, :9], cond[1, :9])
    assert np.abs(a.out - b.out).max() < 1e-4
    # without guidance only the conditional rows run
    plain = run_sampler(velocities[1], cond[:1], text[:1], 30, steps=3, cfg_strength=0.0,
                        rng=np.random.default_rng(1), keep_trajectory=False)
    assert plain.out.shape == (1, 30, 100) and plain.trajectory is None


# -- host-side helpers -------------------------------------------------------------------
def test_reference_mel_matches_torch_stft():
    from ttskiln.families.f5tts.audio import log_mel, normalize_reference
    from ttskiln.ops.mel import mel_filterbank

    wave = (0.05 * np.random.default_rng(0).normal(size=(2, 6000))).astype(np.float32)
    spec = torch.stft(torch.from_numpy(wave), 1024, 256, 1024, torch.hann_window(1024), center=True,
                      pad_mode="reflect", return_complex=True).abs()
    want = (spec.transpose(1, 2) @ torch.from_numpy(mel_filterbank(24000, 1024, 100))).clamp(min=1e-5).log()
    got = log_mel(wave)
    assert got.shape == (2, 6000 // 256 + 1, 100)
    assert np.abs(got - want.numpy()).max() < 1e-4
    quiet, gain = normalize_reference(wave, 24000)
    assert gain > 1 and np.isclose(np.sqrt(np.mean(quiet**2)), 0.1, rtol=1e-4)
    with pytest.raises(Exception, match="resample"):
        normalize_reference(wave, 16000)


def test_family_import_does_not_import_torch():
    code = ("import sys, ttskiln.families.f5tts, ttskiln.families.f5tts.sampler, ttskiln.families.f5tts.backends, "
            "ttskiln.families.f5tts.host, ttskiln.families.f5tts.audio; "
            "import ttskiln.families.f5tts.examples; assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr


class _Boom:
    def __reduce__(self):
        return (Path("/tmp/ttskiln-f5-pickle-ran").touch, ())


def test_pt_pickle_code_never_runs(tiny, tmp_path):
    import pickle

    marker = Path("/tmp/ttskiln-f5-pickle-ran")
    marker.unlink(missing_ok=True)
    shutil.copy(tiny["ckpt"] / "vocab.txt", tmp_path / "vocab.txt")
    with open(tmp_path / "model.pt", "wb") as fh:
        pickle.dump({"ema_model_state_dict": _Boom()}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="weights-only"):
        F5.check_checkpoint(tmp_path, F5.read_config(tmp_path, {"preset": "tiny"}))
    assert not marker.exists()
