import math

import numpy as np
import pytest

from ttskiln.metrics import failures, tensor_metrics, worst
from ttskiln.validate import compare_outputs


def test_identical_signals():
    x = np.sin(np.linspace(0, 20, 1000)).astype(np.float32)
    m = tensor_metrics(x, x)
    assert m["max_abs_err"] == 0 and m["mse"] == 0 and m["cosine"] == pytest.approx(1.0)
    assert math.isinf(m["snr_db"])


def test_known_noise_level():
    x = np.ones(10_000)
    y = x + 0.01 * np.where(np.arange(10_000) % 2, 1.0, -1.0)
    m = tensor_metrics(x, y)
    assert m["max_abs_err"] == pytest.approx(0.01)
    assert m["mse"] == pytest.approx(1e-4)
    assert m["snr_db"] == pytest.approx(40.0)


def test_scaled_signal_keeps_cosine_but_not_error():
    x = np.random.default_rng(0).standard_normal(500)
    m = tensor_metrics(x, 2 * x)
    assert m["cosine"] == pytest.approx(1.0)
    assert m["max_abs_err"] == pytest.approx(np.abs(x).max())


def test_polygraphy_comparison_agrees_with_numpy():
    rng = np.random.default_rng(1)
    ref = {"audio": rng.standard_normal((2, 300)).astype(np.float32)}
    got = {"audio": ref["audio"] + 1e-3 * rng.standard_normal((2, 300)).astype(np.float32)}
    poly = compare_outputs(ref, got, "onnxrt")["audio"]
    mine = tensor_metrics(ref["audio"], got["audio"])
    for name in ("max_abs_err", "mse", "cosine", "snr_db"):
        assert poly[name] == pytest.approx(mine[name], rel=1e-4), name


def test_shape_mismatch_is_an_error():
    res = compare_outputs({"audio": np.zeros((1, 10))}, {"audio": np.zeros((1, 12))}, "onnxrt")
    assert "shape [1, 12] != reference [1, 10]" in res["audio"]["error"]


def test_failures_name_metric_and_direction():
    broken = failures({"max_abs_err": 3e-3, "cosine": 0.9, "snr_db": 80.0}, {"max_abs_err": 1e-4, "cosine": 0.99, "snr_db": 60})
    assert broken == ["max_abs_err 0.003 > 0.0001", "cosine 0.9 < 0.99"]
    assert worst([{"max_abs_err": 1.0, "cosine": 0.5}, {"max_abs_err": 2.0, "cosine": 0.9}]) == {"max_abs_err": 2.0, "cosine": 0.5}


def _tone(sr=24000, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * 220 * t) + 0.1 * np.sin(2 * np.pi * 1250 * t) + 0.01 * rng.standard_normal(t.size))[None]


def test_audio_metrics_identical_is_zero():
    from ttskiln.audio_metrics import audio_metrics

    x = _tone()
    assert audio_metrics(x, x, 24000) == {"mrstft": 0.0, "logmel_l1": 0.0}


def test_audio_metrics_of_a_scaled_signal():
    from ttskiln.audio_metrics import audio_metrics

    x = _tone()
    m = audio_metrics(x, 2 * x, 24000)
    # log-mel L1 is |ln 2| exactly; MR-STFT is spectral convergence |1 - 2| plus |ln 2|.
    assert m["logmel_l1"] == pytest.approx(math.log(2), rel=1e-6)
    assert m["mrstft"] == pytest.approx(1 + math.log(2), rel=1e-6)


def test_audio_metrics_grow_with_delay():
    from ttskiln.audio_metrics import audio_metrics

    x = _tone()
    small = audio_metrics(x, np.roll(x, 10, axis=-1), 24000)
    large = audio_metrics(x, np.roll(x, 240, axis=-1), 24000)
    assert 0 < small["mrstft"] < large["mrstft"]
    assert 0 < small["logmel_l1"] < large["logmel_l1"]
    # A waveform can be far off sample by sample and close in the spectrum, or the reverse.
    assert tensor_metrics(x, np.roll(x, 10, axis=-1))["max_abs_err"] > 0.1
