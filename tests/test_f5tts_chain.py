"""The F5-TTS synth chain (text -> waveform with a Vocos vocoder): job rows, CLI, bad inputs, pipeline."""

import json
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import FAST_BENCH, snakemake, write_config
from ttskiln.__main__ import main
from ttskiln.errors import ConfigError, InputError
from ttskiln.export import export_component
from ttskiln.families import get_family
from ttskiln.families.base import ChainJob
from ttskiln.families.f5tts.chain import (
    CHAIN_TOLERANCES,
    WAV_GAP_SECONDS,
    chain_layout,
    chain_tolerances,
    prepare,
    read_wav,
    synthetic_reference,
    write_wav,
)
from ttskiln.families.f5tts import trtllm
from ttskiln.families.f5tts.config import F5Config
from ttskiln.families.f5tts.sampler import estimate_duration
from ttskiln.families.f5tts.vocab import spoken_reference

F5 = get_family("f5tts")
VOCOS = get_family("vocos")
#: The tiny Vocos preset has hop 64; the F5 mel is 100 bands at hop 256.
VOCOS_MATCH = {"hop_length": 256, "n_fft": 1024}
pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")
REF_TEXT = "A BAD CAFE."  # the tiny vocabulary: space, ASCII 33..71 (punctuation, digits, A-G)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("f5chain")
    f5, voc = root / "f5", root / "voc"
    F5.write_synthetic(F5.synthetic_config("tiny", {}), f5, seed=7)
    VOCOS.write_synthetic(VOCOS.synthetic_config("tiny", VOCOS_MATCH), voc, seed=3)
    export_component(family="f5tts", checkpoint=str(f5), options={}, component="dit", opset=18, output=str(root / "dit.onnx"))
    export_component(family="vocos", checkpoint=str(voc), options={}, component="vocoder", opset=18,
                     output=str(root / "vocoder.onnx"))
    ref = root / "ref.wav"
    write_wav(ref, 4 * synthetic_reference(40, seed=1))  # 40 hops = 0.43 s
    return {"root": root, "f5": f5, "voc": voc, "dit": root / "dit.onnx", "vocoder": root / "vocoder.onnx", "ref": ref}


def _samples(path: Path) -> int:
    with wave.open(str(path), "rb") as fh:
        assert (fh.getframerate(), fh.getsampwidth(), fh.getnchannels()) == (24000, 2, 1)
        return fh.getnframes()


def test_chain_job_rows_and_wav(tiny, tmp_path):
    frames, batch = 48, 4
    job = ChainJob(
        model="f5", chain="synth", point="p", sizes={"batch": batch, "frames": frames}, checkpoint=tiny["f5"],
        config=F5.read_config(tiny["f5"], {}), options={"vocoder": "voc"}, artifacts={"dit": str(tiny["dit"])},
        linked={"vocoder": {"model": "voc", "family": "vocos", "checkpoint": str(tiny["voc"]), "options": {},
                            "artifacts": {"vocoder": str(tiny["vocoder"])}}},
        tolerances=dict(F5.default_tolerances), bench=dict(FAST_BENCH), seed=0, directory=tmp_path,
    )
    rows = F5.run_chain(job)
    keys = [(r["variant"], r["backend"]) for r in rows]
    assert len(set(keys)) == len(keys)
    assert {v for v, _ in keys} == {"fp32-mel", "fp32", "fp32-step", "fp32-nfe16", "fp32-nfe32"}
    checks = [r for r in rows if r["passed"] is not None]
    assert [r["variant"] for r in checks] == ["fp32-mel", "fp32"]
    for row in checks:  # ONNX chain vs PyTorch chain after 32 steps and the vocoder
        assert row["passed"], row["failures"]
        assert row["max_abs_err"] < 1e-3 and row["cosine"] > 0.9999
    assert checks[1]["mrstft"] is not None and checks[1]["logmel_l1"] is not None
    ort = {r["variant"]: r for r in rows if r["backend"] == "onnxruntime-cpu"}
    assert all(ort[v]["speedup_vs_torch"] > 0 for v in ("fp32-step", "fp32-nfe16", "fp32-nfe32"))
    assert ort["fp32-nfe32"]["rtf"] > 0 and ort["fp32-step"]["p50_ms"] > 0
    # the WAV: every text (one batch each here) in turn with gaps between them, each the point's
    # frames after the reference cut, 256 samples each (Vocos with 'center' padding, as
    # released: one hop fewer)
    requests, ref_len = chain_layout(frames, batch)
    assert requests == 2 and ort["fp32"]["audio"] == str(tmp_path / "synth.wav")
    texts = len(ort["fp32"]["texts"])
    assert ort["fp32"]["text_batches"] == [1] * texts and ort["fp32"]["batch_groups"] == -(-texts // requests)
    assert _samples(tmp_path / "synth.wav") == texts * (frames - ref_len - 1) * 256 + (texts - 1) * int(WAV_GAP_SECONDS * 24000)
    assert ort["fp32"]["shape"]["dit"] == [4, frames, 100]


def test_chain_tolerances_merge_only_given_keys():
    limits = chain_tolerances({**F5.default_tolerances, "snr_db": 20.0, "mrstft": 0.5}, F5.default_tolerances)
    assert limits["mel"] == {**CHAIN_TOLERANCES["mel"], "snr_db": 20.0}
    assert limits["wave"] == {**CHAIN_TOLERANCES["wave"], "snr_db": 20.0, "mrstft": 0.5}


def _synth(tiny, out: Path, *extra: str, texts=("FADE 4 5 6, ACE 7.",), backend="onnx") -> int:
    args = ["synth", "--f5", str(tiny["f5"]), "--vocoder", str(tiny["voc"]), "--backend", backend,
            "--ref-text", REF_TEXT, "--nfe", "8", "--seed", "3", "--out", str(out)]
    if backend == "onnx":
        args += ["--dit-onnx", str(tiny["dit"]), "--vocoder-onnx", str(tiny["vocoder"])]
    if not any(a in ("--ref-audio", "--ref-mel") for a in extra):
        args += ["--ref-audio", str(tiny["ref"])]
    for text in texts:
        args += ["--text", text]
    return main(args + list(extra))


def test_cli_onnx_and_torch_agree(tiny, tmp_path):
    texts = ("FADE 4 5 6, ACE 7.", "BEAD 9 8.")
    assert _synth(tiny, tmp_path / "ort.wav", texts=texts) == 0
    assert _synth(tiny, tmp_path / "pt.wav", texts=texts, backend="torch") == 0
    ref_samples = 40 * 256
    for i, text in enumerate(texts):
        # as upstream: the estimate reads the reference text as prepared ("... " ending)
        frames = estimate_duration(ref_samples, spoken_reference(REF_TEXT), text) - ref_samples // 256
        a, b = read_wav(tmp_path / f"ort_{i}.wav"), read_wav(tmp_path / f"pt_{i}.wav")
        assert a.size == b.size == (frames - 1) * 256
        assert np.abs(a - b).max() <= 2 / 32768  # 16-bit rounding of nearly equal waves
    # a fixed duration (total seconds, reference included) and a mel reference
    mel = tmp_path / "ref.npy"
    from ttskiln.families.f5tts.audio import log_mel, normalize_reference

    np.save(mel, log_mel(normalize_reference(read_wav(tiny["ref"]), 24000)[0])[0])
    assert _synth(tiny, tmp_path / "fixed.wav", "--ref-mel", str(mel), "--duration", "1.0") == 0
    assert _samples(tmp_path / "fixed.wav") == (int(24000 / 256) - 40 - 1) * 256


@pytest.mark.parametrize(
    "extra, texts, message",
    [
        ((), ("FADE xyz",), "missing from the model's vocab.txt: 'x' 'y' 'z'"),
        ((), ("  ",), "the text is empty"),
        (("--duration", "40"), ("FADE",), "beyond max_frames 3000"),
        (("--f5-option", "max_frames=60"), ("FADE 4 5 6, ACE 7 8 9, BAD CAFE 1 2 3.",), "beyond max_frames 60"),
        (("--f5-option", "max_frames=30"), ("FADE",), "give a shorter reference"),
        (("--f5-option", "max_frames=99999"), ("FADE",), "options.max_frames: must be at most"),
        (("--duration", "0.1"), ("FADE",), "ask for a duration longer than the reference"),
    ],
)
def test_bad_inputs_end_with_one_clear_error(tiny, tmp_path, capsys, extra, texts, message):
    assert _synth(tiny, tmp_path / "x.wav", *extra, texts=texts) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.wav"))


def test_reference_audio_at_another_rate_and_depth_is_resampled(tiny, tmp_path, capsys):
    import soundfile as sf

    path = tmp_path / "ref16k.wav"
    mono = 4 * synthetic_reference(40, seed=1, sample_rate=16000, hop=256)
    sf.write(str(path), np.stack([mono, 0.5 * mono], axis=1), 16000, subtype="PCM_24")
    assert _synth(tiny, tmp_path / "x.wav", "--ref-audio", str(path)) == 0
    out = capsys.readouterr().out
    assert "16000 Hz, 2 channel(s), PCM_24" in out and "resampled to 24000 Hz" in out
    assert "text: 1 batch(es)" in out
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as fh:
        fh.setnchannels(2)
        fh.setsampwidth(2)
        fh.setframerate(24000)
        fh.writeframes(np.array([1000, 3000] * 10, dtype="<i2").tobytes())
    assert np.allclose(read_wav(stereo), 2000 / 32768)


def test_prepare_checks_directly(tiny):
    cfg = F5Config.from_dict(F5.read_config(tiny["f5"], {}))
    vocab = F5.vocab(tiny["f5"], F5.read_config(tiny["f5"], {}))
    ref = synthetic_reference(10, 0)
    with pytest.raises(InputError, match="no text"):
        prepare(cfg, vocab, ref, REF_TEXT, [])
    with pytest.raises(InputError, match="reference text is empty"):
        prepare(cfg, vocab, ref, "", ["FADE"])
    with pytest.raises(InputError, match="at least 768"):
        prepare(cfg, vocab, ref[:700], REF_TEXT, ["FADE"])
    with pytest.raises(ConfigError, match="at least 5 frames"):
        chain_layout(4, 2)


@pytest.mark.e2e
def test_synth_chain_in_the_pipeline(tmp_path):
    """tiny F5 + tiny Vocos (hop 256): the chain job runs, the report has its rows, the WAV exists."""
    config = {
        "benchmark": FAST_BENCH,
        "models": {
            "voc": {
                "family": "vocos",
                "checkpoint": {"synthetic": "tiny", "seed": 1, "overrides": VOCOS_MATCH},
                "profiles": {"p": {"batch": {"min": 1, "opt": 1, "max": 1}, "frames": {"min": 8, "opt": 8, "max": 16}}},
            },
            "f5": {
                "family": "f5tts",
                "checkpoint": {"synthetic": "tiny", "seed": 0},
                "options": {"vocoder": "voc"},
                "profiles": {"p": {"batch": {"min": 2, "opt": 2, "max": 2}, "frames": {"min": 24, "opt": 24, "max": 32}}},
                "tolerances": {"max_abs_err": 1e-3, "cosine": 0.9999, "snr_db": 50},
                "trtllm": {"max_batch_size": 2, "min_frames": 16, "opt_frames": 24, "max_frames": 32},
            },
        },
        "gpu": {"stages": "off"},
    }
    write_config(tmp_path, config)
    snakemake(tmp_path)
    summary = json.loads((tmp_path / "reports" / "summary.json").read_text())
    # The TensorRT-LLM checkpoint is converted on this CPU machine; the engine stages are skipped.
    ck = summary["models"]["f5"]["trtllm_checkpoint"]
    assert ck["dtype"] == "float16" and ck["path"] == "artifacts/f5/trtllm/checkpoint/float16"
    converted = json.loads((tmp_path / ck["path"] / "config.json").read_text())
    assert ck["tensors"] == len(trtllm.expected_weights(converted)) and converted["max_frames"] == 32
    assert "tensorrt_llm: skipped, gpu.stages is off in the config" in summary["skipped_stages"]
    assert "TensorRT-LLM checkpoint `artifacts/f5/trtllm/checkpoint/float16`" in (tmp_path / "reports" / "summary.md").read_text()
    rows = [r for r in summary["rows"] if r["model"] == "f5" and r["component"] == "synth"]
    points = sorted({r["point"] for r in rows})
    assert len(points) >= 1
    for point in points:
        here = {(r["variant"], r["backend"]) for r in rows if r["point"] == point}
        assert {("fp32", "onnxruntime-cpu"), ("fp32-mel", "onnxruntime-cpu"), ("fp32-nfe32", "pytorch-eager")} <= here
    audio = [r["audio"] for r in rows if r.get("audio")]
    assert len(audio) == len(points) and all((tmp_path / a).is_file() for a in audio)
    assert all(r["passed"] for r in rows if r["passed"] is not None)
    assert (tmp_path / "artifacts" / "f5" / "validation.ok").is_file()


def test_vocoder_must_read_the_f5_mel(tiny):
    from ttskiln.families.f5tts.chain import check_vocoder

    cfg = F5Config.from_dict(F5.read_config(tiny["f5"], {}))
    check_vocoder(cfg, VOCOS.read_config(tiny["voc"], {}), "voc")
    with pytest.raises(ConfigError, match="hop 64.*overrides"):
        check_vocoder(cfg, VOCOS.synthetic_config("tiny", {}), "tiny vocos")


def test_chain_job_over_a_trtllm_engine_folder(tiny, tmp_path, monkeypatch):
    """The synth chain with ``trtllm_engine`` set: the same host code drives the engine runner.
    The runner here is the test suite's engine-semantics reference on the converted fp16
    weights (no TensorRT-LLM on this machine); the rows are what the GPU job reports."""
    import json as json_

    from trtllm_reference import reference_runner

    config = F5.read_config(tiny["f5"], {})
    ckpt = tmp_path / "ckpt"
    trtllm.convert(tiny["f5"], config, ckpt, "float16")
    engine = tmp_path / "engine"
    engine.mkdir()
    converted, weights = trtllm.read_checkpoint(ckpt)
    (engine / "config.json").write_text(json_.dumps({"pretrained_config": converted, "build_config": {}}))
    # The chain runs the engine through the family's declared capability (its ``runner``).
    opened = []

    def runner(self, engine_dir, model):
        opened.append(Path(engine_dir))
        return reference_runner(converted, weights, model.text_embed)

    monkeypatch.setattr(type(F5.tensorrt_llm), "runner", runner)
    job = ChainJob(
        model="f5", chain="synth", point="p", sizes={"batch": 2, "frames": 40}, checkpoint=tiny["f5"], config=config,
        options={"vocoder": "voc"}, artifacts={"dit": str(tiny["dit"]), "trtllm_engine": str(engine)},
        linked={"vocoder": {"model": "voc", "family": "vocos", "checkpoint": str(tiny["voc"]), "options": {},
                            "artifacts": {"vocoder": str(tiny["vocoder"])}}},
        tolerances=dict(F5.default_tolerances), bench=dict(FAST_BENCH), seed=0, directory=tmp_path,
    )
    rows = F5.run_chain(job)
    assert opened == [engine]
    assert {r["backend"] for r in rows} == {"tensorrt-llm"}
    assert [r["variant"] for r in rows] == ["fp16-mel", "fp16", "fp16-step", "fp16-nfe16", "fp16-nfe32"]
    checks = rows[:2]
    assert checks[0]["tolerances"]["snr_db"] == 25.0 and checks[1]["tolerances"]["mrstft"] == 0.2
    assert all(r["passed"] for r in checks), [r["failures"] for r in checks]
    assert all(r["torch_device"] == "cpu" and r["speedup_vs_torch"] > 0 for r in rows[2:])


def test_cli_trtllm_backend_without_tensorrt_llm(tiny, tmp_path, capsys):
    assert _synth(tiny, tmp_path / "x.wav", backend="trtllm") == 1
    assert "--backend trtllm needs --trtllm-engine DIR" in capsys.readouterr().err
    try:
        import tensorrt_llm  # noqa: F401
    except ImportError:
        assert _synth(tiny, tmp_path / "x.wav", "--trtllm-engine", str(tmp_path), backend="trtllm") == 1
        err = capsys.readouterr().err
        assert "tensorrt_llm 0.16.0 is not importable here" in err and "Traceback" not in err
    assert not list(tmp_path.glob("*.wav"))
