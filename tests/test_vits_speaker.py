"""YourTTS's speaker encoder: format, front end, export, host embedding and errors."""

import json
import shutil
import wave

import numpy as np
import pytest
import torch

from conftest import upstream_case
from ttskiln.errors import CheckpointError, ConfigError, InputError
from ttskiln.families import get_family
from ttskiln.families.vits import speaker as se
from ttskiln.families.vits.chain import write_wav
from ttskiln.ops.mel import mel_filterbank
from ttskiln.runtime import ort_session, torch_run

VITS = get_family("vits")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("vits_se") / "ckpt"
    VITS.write_synthetic(VITS.synthetic_config("tiny", {}), ckpt, seed=2)
    config = VITS.read_config(ckpt, {})
    return {"ckpt": ckpt, "config": config, "info": VITS.describe(config), "model": VITS.load(ckpt, config)}


def _numpy_mel(x: np.ndarray, cfg: se.SpeakerEncoderConfig) -> np.ndarray:
    """torchaudio's MelSpectrogram after Coqui's PreEmphasis, in float64 with an FFT."""
    x = np.atleast_2d(x).astype(np.float64)
    x = x - cfg.preemphasis * np.concatenate([x[:, 1:2], x[:, :-1]], axis=1)
    pad = cfg.n_fft // 2
    x = np.pad(x, ((0, 0), (pad, pad)), mode="reflect")
    frames = (x.shape[1] - cfg.n_fft) // cfg.hop_length + 1
    index = np.arange(cfg.n_fft)[None, :] + cfg.hop_length * np.arange(frames)[:, None]
    window = np.zeros(cfg.n_fft)
    left = (cfg.n_fft - cfg.win_length) // 2
    window[left:left + cfg.win_length] = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    power = np.abs(np.fft.rfft(x[:, index] * window, axis=-1)) ** 2
    return (power @ mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels).astype(np.float64)).transpose(0, 2, 1)


def test_front_end_is_torchaudio_mel_after_pre_emphasis():
    cfg = se.SpeakerEncoderConfig.from_dict(se.make_config_dict(proj_dim=16))
    x = se.synthetic_reference(cfg.sample_rate, 1.3, seed=4)
    module = se.ResNetSpeakerEncoder(cfg).eval()
    with torch.no_grad():
        got = module.torch_spec(torch.from_numpy(x[None])).double().numpy()
    want = _numpy_mel(x, cfg)
    assert got.shape == want.shape == (1, cfg.n_mels, x.size // cfg.hop_length + 1)
    assert np.max(np.abs(got - want)) / np.max(want) < 1e-5


def test_upstream_encoder_state_dict_loads_strictly():
    """The fixture's model_file.pth carries upstream's ResNetSpeakerEncoder state_dict (the
    speaker-consistency encoder, without the torchaudio buffers): its layout is read from the
    weights and loads strictly into the ttskiln module."""
    raw = torch.load(upstream_case("vits", "yourtts_small") / "model_file.pth", weights_only=True)["model"]
    state = {k[len("speaker_encoder."):]: v for k, v in raw.items() if k.startswith("speaker_encoder.")}
    layers, filters, kind = se.architecture_of(state, "fixture")
    assert (layers, filters, kind) == ((1, 1, 1, 1), (4, 8, 8, 16), "ASP")
    cfg = se.SpeakerEncoderConfig.from_dict(se.make_config_dict(proj_dim=64)).with_architecture(layers, filters, kind)
    module = se.ResNetSpeakerEncoder(cfg)
    defaults = module.state_dict()
    for key in se.FRONT_END_KEYS:
        assert key not in state
        state[key] = defaults[key]
    module.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = module.eval()(torch.from_numpy(se.windows(se.synthetic_reference(16000, 3.0, 0), cfg)))
    assert out.shape == (10, 64)
    np.testing.assert_allclose(out.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_synthetic_checkpoint_has_released_files_and_component(tiny):
    names = {p.name for p in tiny["ckpt"].iterdir()}
    assert {"model_se.pth", "config_se.json", "model_file.pth", "config.json"} <= names
    assert "_speaker_encoder" not in json.loads((tiny["ckpt"] / "config.json").read_text())
    data = torch.load(tiny["ckpt"] / "model_se.pth", weights_only=True)
    assert {"torch_spec.0.filter", "torch_spec.1.spectrogram.window", "torch_spec.1.mel_scale.fb"} <= set(data["model"])
    spec = tiny["info"].component("speaker_encoder")
    assert spec.input_names == ["waveform"] and spec.outputs[0].shape == ("batch", 8)
    assert tiny["info"].axis_defaults["ref_samples"]["opt"] == 250 * 160
    # The released layout: upstream's default depth and widths.
    released = VITS.describe(VITS.synthetic_config("yourtts", {}))
    assert released.summary["speaker_encoder"]["proj_dim"] == 512
    assert 7_500_000 < released.summary["speaker_encoder"]["parameters"] < 8_500_000  # H/ASP: about 8M


def test_export_matches_torch_on_dynamic_lengths(tiny, tmp_path):
    from ttskiln.export import FORBIDDEN_OPS, export_module, finish_onnx

    info = tiny["info"]
    spec = info.component("speaker_encoder")
    module = VITS.component_module(tiny["model"], "speaker_encoder")
    example = VITS.make_inputs(info, "speaker_encoder", spec.trace_sizes, np.random.default_rng(0))
    path = tmp_path / "se.onnx"
    export_module(module, spec, example, path, 18, "dynamo")
    finish_onnx(path, spec, {})
    import onnx

    assert not {n.op_type for n in onnx.load(str(path)).graph.node} & (FORBIDDEN_OPS | {"STFT", "DFT"})
    session = ort_session(path)
    for sizes in ({"batch": 1, "ref_samples": 4000}, {"batch": 10, "ref_samples": 40000}):
        inputs = VITS.make_inputs(info, "speaker_encoder", sizes, np.random.default_rng(1))
        want = torch_run(module, spec, inputs)["d_vector"]
        got = session.run(["d_vector"], inputs)[0]
        assert got.shape == (sizes["batch"], 8)
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_host_embedding_follows_coqui_windows(tiny):
    cfg = VITS.speaker_encoder_config(tiny["config"])
    x = np.arange(100_000, dtype=np.float32)
    batch = se.windows(x, cfg)
    assert batch.shape == (10, 40_000)
    starts = batch[:, 0].astype(int)
    assert starts.tolist() == [int(o) for o in np.linspace(0, 60_000, 10)]
    assert se.windows(x[:9000], cfg).shape == (10, 9000)  # shorter than a window: the whole clip
    loud = se.rms_normalize(np.full(1000, 0.3, np.float32), -27.0)
    assert np.sqrt(np.mean(loud.astype(np.float64) ** 2)) == pytest.approx(10 ** (-27 / 20), rel=1e-5)
    seen = []

    def run(batch):
        seen.append(batch.shape)
        return np.stack([np.eye(8, dtype=np.float32)[i % 2] for i in range(batch.shape[0])])

    vector = se.embed(run, se.synthetic_reference(16000, 3.0, 1), cfg)
    assert seen == [(10, 40_000)] and vector.shape == (1, 8)
    np.testing.assert_allclose(vector[0, :2], [0.5, 0.5])


def test_bad_reference_audio(tiny, tmp_path):
    cfg = VITS.speaker_encoder_config(tiny["config"])
    with pytest.raises(InputError, match="too short"):
        se.windows(np.ones(100, np.float32), cfg)
    with pytest.raises(InputError, match="silent"):
        se.embed(lambda b: b, np.zeros(20_000, np.float32), cfg)
    wav = tmp_path / "ref22k.wav"
    write_wav(wav, np.zeros(2205), 22050)
    assert se.read_wav(wav, 16000).size == 1600  # resampled to the encoder's rate
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as fh:
        fh.setnchannels(2)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        fh.writeframes(np.array([[16384, -16384], [8192, 8192]], "<i2").tobytes())
    np.testing.assert_allclose(se.read_wav(stereo, 16000), [0.0, 0.25])


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_checkpoint_errors(tiny, tmp_path):
    # Only half of the encoder's files.
    half = _copy(tiny["ckpt"], tmp_path / "half")
    (half / "config_se.json").unlink()
    with pytest.raises(CheckpointError, match="config_se.json is missing"):
        VITS.read_config(half, {})
    # ... which the option leaves out.
    config = VITS.read_config(half, {"speaker_encoder": False})
    assert "speaker_encoder" not in [c.name for c in VITS.describe(config).components]
    with pytest.raises(ConfigError, match="true or false"):
        VITS.read_config(tiny["ckpt"], {"speaker_encoder": "yes"})
    # d-vectors of the wrong size.
    wrong = _copy(tiny["ckpt"], tmp_path / "wrong")
    data = json.loads((wrong / "config_se.json").read_text())
    data["model_params"]["proj_dim"] = 12
    (wrong / "config_se.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="12-dim d-vectors, the model takes d_vector_dim 8"):
        VITS.read_config(wrong, {})
    # An LSTM encoder.
    data["model_params"].update(proj_dim=8, model_name="lstm")
    (wrong / "config_se.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="'lstm' is not supported"):
        VITS.read_config(wrong, {})
    # Weights that do not fit the config.
    bad = _copy(tiny["ckpt"], tmp_path / "bad")
    trainer = torch.load(bad / "model_se.pth", weights_only=True)
    trainer["model"]["attention.0.weight"] = torch.zeros(128, 5, 1)
    torch.save(trainer, bad / "model_se.pth")
    config = VITS.read_config(bad, {})
    with pytest.raises(CheckpointError, match="model_se.pth"):
        VITS.check_checkpoint(bad, config)

