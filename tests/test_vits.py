import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, upstream_case
from ttskiln.chains import run_chain
from ttskiln.errors import CheckpointError, ConfigError, InputError
from ttskiln.families import get_family
from ttskiln.families.vits.backends import COMPONENTS, export_components, onnx_backend, torch_backend
from ttskiln.families.vits.chain import chain_request
from ttskiln.families.vits.host import synthesize
from ttskiln.families.vits.weights import fold_weight_norm, unfold_weight_norm
from ttskiln.runtime import ort_session, torch_run

VITS = get_family("vits")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
CASE = "yourtts_small"


def _writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("vits")
    ckpt = root / "ckpt"
    VITS.write_synthetic(VITS.synthetic_config("tiny", {}), ckpt, seed=5)
    config = VITS.read_config(ckpt, {})
    info = VITS.describe(config)
    model = VITS.load(ckpt, config)
    paths = export_components(VITS, model, info, root)
    return {"root": root, "ckpt": ckpt, "config": config, "info": info, "model": model, "paths": paths}


# -- loading -----------------------------------------------------------------------------
def test_fixture_checkpoint_loads_strictly():
    case = upstream_case("vits", CASE)
    config = VITS.read_config(case, {})
    VITS.check_checkpoint(case, config)
    model = VITS.load(case, config)
    info = VITS.describe(config)
    assert [c.name for c in info.components] == list(COMPONENTS)
    assert info.hop_length == 256 and info.sample_rate == 16000
    assert model.emb_l.weight.shape == (3, 4)
    assert len(VITS.speakers(case, config)) > 0


def test_weight_norm_folding_matches_definition():
    case = upstream_case("vits", CASE)
    raw = torch.load(case / "model_file.pth", weights_only=True)["model"]
    folded = fold_weight_norm({k: v for k, v in raw.items() if not k.startswith("speaker_encoder.")}, "test")
    for base in ("waveform_decoder.ups.0", "flow.flows.0.enc.in_layers.1"):
        g, v = raw[f"{base}.weight_g"], raw[f"{base}.weight_v"]
        norm = torch.sqrt((v.double() ** 2).sum(dim=tuple(range(1, v.dim())), keepdim=True))
        torch.testing.assert_close(folded[f"{base}.weight"].double(), g.double() * v.double() / norm, rtol=1e-6, atol=1e-7)
        assert f"{base}.weight_g" not in folded
    assert raw["waveform_decoder.ups.0.weight_g"].shape[0] == raw["waveform_decoder.ups.0.weight_v"].shape[0]
    # Round trip through the legacy layout (what synthetic checkpoints are written in).
    again = fold_weight_norm(unfold_weight_norm(folded), "test")
    for key, value in folded.items():
        torch.testing.assert_close(again[key], value, rtol=1e-5, atol=1e-6)
    # The parametrization layout folds the same way.
    param = {k.replace(".weight_g", ".parametrizations.weight.original0").replace(".weight_v", ".parametrizations.weight.original1"): v
             for k, v in raw.items() if not k.startswith("speaker_encoder.")}
    torch.testing.assert_close(fold_weight_norm(param, "test")["waveform_decoder.ups.0.weight"], folded["waveform_decoder.ups.0.weight"])


def _edit_checkpoint(folder: Path, edit) -> None:
    data = torch.load(folder / "model_file.pth", weights_only=True)
    edit(data["model"])
    torch.save(data, folder / "model_file.pth")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.pop("text_encoder.proj.bias"), "missing keys"),
        (lambda s: s.update({"text_encoder.extra": torch.zeros(1)}), "unexpected keys"),
        (lambda s: s.pop("waveform_decoder.ups.1.weight_v"), "lacks its weight_v"),
        (lambda s: s.update({"emb_l.weight": torch.zeros(5, 4)}), "shape mismatches"),
    ],
)
def test_loader_is_strict(tmp_path, edit, message):
    folder = _writable_copy(upstream_case("vits", CASE), tmp_path / "ckpt")
    _edit_checkpoint(folder, edit)
    config = VITS.read_config(folder, {})
    with pytest.raises(CheckpointError, match=message):
        VITS.load(folder, config)


def test_loader_ignores_discriminator_and_speaker_encoder_keys(tmp_path):
    folder = _writable_copy(upstream_case("vits", CASE), tmp_path / "ckpt")
    _edit_checkpoint(folder, lambda s: s.update({"disc.nets.0.weight": torch.zeros(3)}))
    VITS.check_checkpoint(folder, VITS.read_config(folder, {}))


def test_bad_checkpoint_folders(tmp_path):
    with pytest.raises(CheckpointError, match="not a folder"):
        VITS.read_config(tmp_path / "missing", {})
    folder = _writable_copy(upstream_case("vits", CASE), tmp_path / "ckpt")
    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        VITS.read_config(folder, {})
    (folder / "model_file.pth").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="unknown vits options"):
        VITS.read_config(folder, {"speaker_id": 3})
    (folder / "config.json").write_text('{"model_args": {}}')
    with pytest.raises(CheckpointError):
        VITS.read_config(folder, {})


# -- parity ------------------------------------------------------------------------------
def test_parity_cli_passes():
    case = upstream_case("vits", CASE)
    proc = subprocess.run([sys.executable, "-m", "ttskiln", "parity", str(case)], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1].startswith("worst max_abs_err=")
    compared = {line.split()[0] for line in lines[:-1]}
    for name in ("enc_x", "enc_m_p", "enc_logs_p", "dp_logw", "durations", "z_p", "z", "waveform", "noisy_dp_logw",
                 "noisy_durations", "noisy_z", "noisy_waveform"):
        assert name in compared
    assert sum("onnxruntime" in line for line in lines) >= 28


# -- export ------------------------------------------------------------------------------
@pytest.mark.parametrize("component", COMPONENTS)
@pytest.mark.parametrize("sizes", [{"batch": 1, "tokens": 5, "frames": 7}, {"batch": 3, "tokens": 30, "frames": 41}])
def test_tiny_components_dynamic_axes_match_torch(tiny, component, sizes):
    info = tiny["info"]
    spec = info.component(component)
    inputs = VITS.make_inputs(info, component, sizes, np.random.default_rng(1))
    expected = torch_run(VITS.component_module(tiny["model"], component), spec, inputs)
    session = ort_session(tiny["paths"][component])
    got = dict(zip(spec.output_names, session.run(spec.output_names, inputs)))
    for name in spec.output_names:
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=0)
    if component == "decoder":
        assert got["audio"].shape == (sizes["batch"], sizes["frames"] * info.hop_length)


def test_onnx_graphs_hold_no_forbidden_ops(tiny):
    import onnx

    from ttskiln.export import FORBIDDEN_OPS

    for path in tiny["paths"].values():
        ops = {node.op_type for node in onnx.load(str(path)).graph.node}
        assert not ops & FORBIDDEN_OPS


# -- chain -------------------------------------------------------------------------------
def test_tiny_chain_rows_and_wav(tiny, tmp_path):
    rows = run_chain(
        model="vits_tiny", family="vits", chain="tts", point="p", sizes={"batch": 1, "tokens": 15, "frames": 40},
        checkpoint=str(tiny["ckpt"]), options={}, artifacts={k: str(v) for k, v in tiny["paths"].items()}, linked={},
        tolerances={}, bench={"threads": 1, "warmup": 0, "repeats": 2}, seed=3, directory=str(tmp_path / "chain"),
    )
    by_backend = {r["backend"]: r for r in rows}
    assert set(by_backend) == {"pytorch-eager", "onnxruntime-cpu"}
    ort = by_backend["onnxruntime-cpu"]
    assert ort["component"] == "tts" and ort["variant"] == "fp32"
    assert ort["passed"] is True, ort["failures"]
    for key in ("max_abs_err", "cosine", "snr_db", "mrstft", "logmel_l1", "p50_ms", "p90_ms", "p99_ms", "rtf", "speedup_vs_torch"):
        assert ort[key] is not None
    assert ort["boundary_max_abs_err"]["durations"] == 0.0
    # The tiny preset has a speaker encoder: the d-vector came from reference.wav on each backend.
    assert ort["boundary_max_abs_err"]["d_vector"] < 1e-5
    with wave.open(ort["speaker_reference"], "rb") as fh:
        assert fh.getframerate() == 16000 and fh.getnframes() == 48000
    with wave.open(ort["audio"], "rb") as fh:
        assert fh.getsampwidth() == 2 and fh.getnchannels() == 1
        assert fh.getframerate() == tiny["info"].sample_rate and fh.getnframes() > 0
    assert (tmp_path / "chain" / "rows.json").is_file()


def test_chain_fails_on_tight_tolerance(tiny, tmp_path):
    rows = run_chain(
        model="vits_tiny", family="vits", chain="tts", point="p", sizes={"batch": 1, "tokens": 9, "frames": 40},
        checkpoint=str(tiny["ckpt"]), options={}, artifacts={k: str(v) for k, v in tiny["paths"].items()}, linked={},
        tolerances={"snr_db": 1e9}, bench={"threads": 1, "warmup": 0, "repeats": 1}, seed=3, directory=str(tmp_path),
    )
    ort = next(r for r in rows if r["backend"] == "onnxruntime-cpu")
    assert ort["passed"] is False and any("snr_db" in f for f in ort["failures"])


# -- errors ------------------------------------------------------------------------------
def test_too_long_tokens_and_wrong_d_vector(tiny):
    dims = VITS.host_dims(tiny["config"])
    run = torch_backend(VITS, tiny["model"], tiny["info"])
    req = chain_request({"batch": 1, "tokens": 9}, dims, 3, 0)
    zeros = lambda f: np.zeros((1, dims.hidden, f), np.float32)  # noqa: E731
    with pytest.raises(InputError, match="wrong|must be \\[batch, 8\\]"):
        synthesize(run, dims, req["tokens"], req["lengths"], np.zeros((1, 7), np.float32), req["language_id"], req["noise_dp"], zeros)
    long = np.zeros((1, dims.max_tokens + 1), np.int64)
    with pytest.raises(InputError, match="longer than the model's maximum"):
        synthesize(run, dims, long, np.array([long.shape[1]]), req["d_vector"], req["language_id"],
                   np.zeros((1, 2, long.shape[1]), np.float32), zeros)
    with pytest.raises(InputError, match="token ids must lie"):
        synthesize(run, dims, req["tokens"] + 100, req["lengths"], req["d_vector"], req["language_id"], req["noise_dp"], zeros)


def test_max_tokens_option(tiny):
    config = VITS.read_config(tiny["ckpt"], {"max_tokens": 12})
    assert VITS.host_dims(config).max_tokens == 12


def test_onnx_and_torch_backends_agree_on_synthesis(tiny):
    dims = VITS.host_dims(tiny["config"])
    req = chain_request({"batch": 2, "tokens": 11}, dims, 3, 4)
    zeros = lambda f: np.zeros((2, dims.hidden, f), np.float32)  # noqa: E731
    args = (dims, req["tokens"], np.array([11, 7]), req["d_vector"], req["language_id"], req["noise_dp"], zeros)
    a = synthesize(torch_backend(VITS, tiny["model"], tiny["info"]), *args)
    b = synthesize(onnx_backend(tiny["paths"], tiny["info"]), *args)
    np.testing.assert_array_equal(a["durations"], b["durations"])
    assert a["durations"][1, 0, 7:].sum() == 0  # padded tokens get no frames
    np.testing.assert_allclose(a["waveform"], b["waveform"], atol=1e-4)


def test_trainer_file_with_numpy_scalars_loads_without_pickled_code(tmp_path):
    from ttskiln.families.vits.weights import read_trainer_file

    path = tmp_path / "model_file.pth"
    torch.save({"model": {"a": torch.zeros(2)}, "model_loss": np.float64(1.5), "step": np.int64(3)}, path)
    data = read_trainer_file(path)
    assert float(data["model_loss"]) == 1.5 and int(data["step"]) == 3

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    torch.save({"model": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights-only"):
        read_trainer_file(path)


def test_presets_describe():
    counts = {p: VITS.describe(VITS.synthetic_config(p, {})).summary["parameters"] for p in ("yourtts", "tiny", "demo")}
    assert counts["tiny"] < counts["demo"] < counts["yourtts"]
    with pytest.raises(CheckpointError, match="unknown vits preset"):
        VITS.synthetic_config("huge", {})


def test_chain_embeds_a_given_reference_wav(tiny, tmp_path):
    from ttskiln.families.vits.chain import write_wav
    from ttskiln.families.vits.speaker import synthetic_reference

    wav = tmp_path / "voice.wav"
    write_wav(wav, synthetic_reference(16000, 2.0, seed=11), 16000)

    def run(options, name):
        rows = run_chain(model="v", family="vits", chain="tts", point="p", sizes={"batch": 1, "tokens": 9},
                         checkpoint=str(tiny["ckpt"]), options=options,
                         artifacts={k: str(v) for k, v in tiny["paths"].items()}, linked={}, tolerances={},
                         bench={"threads": 1, "warmup": 0, "repeats": 1}, seed=3, directory=str(tmp_path / name))
        return next(r for r in rows if r["backend"] == "onnxruntime-cpu")

    given, default = run({"reference_wav": str(wav)}, "given"), run({}, "default")
    assert given["speaker_reference"] == str(wav) and given["passed"], given["failures"]
    assert default["speaker_reference"].endswith("reference.wav")
    # Another voice, another d-vector: the waveform differs.
    frames = [np.frombuffer(wave.open(r["audio"], "rb").readframes(10**6), "<i2") for r in (given, default)]
    assert frames[0].shape != frames[1].shape or not np.array_equal(*frames)
    with pytest.raises(ConfigError, match="reference_wav needs a speaker encoder"):
        VITS.chains(VITS.describe(VITS.read_config(tiny["ckpt"], {"speaker_encoder": False})), {"reference_wav": str(wav)})
