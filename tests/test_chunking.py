import numpy as np
import pytest
import torch

from ttskiln.chunking import Chunking, boundary_errors, chunked_run
from ttskiln.errors import ConfigError
from ttskiln.families import get_family

VOCOS = get_family("vocos")


@pytest.fixture(scope="module")
def vocoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt")
    config = VOCOS.synthetic_config("tiny", {"num_layers": 2})
    VOCOS.write_synthetic(config, path, seed=2)
    module = VOCOS.component_module(VOCOS.load(path, config), "vocoder")
    info = VOCOS.describe(config)

    def run(mel: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(mel)).numpy()

    return run, info


def test_spans_cover_the_input_with_full_windows():
    spans = Chunking(100, 20, 4).spans(330)
    assert spans[0] == (0, 100) and spans[-1] == (230, 330)
    assert all(b - a == 100 for a, b in spans)
    assert all(nxt[0] < prev[1] for prev, nxt in zip(spans, spans[1:]))
    assert Chunking(100, 20, 4).spans(60) == [(0, 60)]


@pytest.mark.parametrize("window, overlap, crossfade", [(0, 0, 0), (10, 10, 0), (10, 4, 6), (10, 5, 2)])
def test_impossible_chunking_is_refused(window, overlap, crossfade):
    with pytest.raises(ConfigError, match="chunking needs"):
        Chunking(window, overlap, crossfade)


def test_enough_overlap_reproduces_full_length(vocoder):
    run, info = vocoder
    mel = VOCOS.make_inputs(info, "vocoder", {"batch": 2, "frames": 700}, np.random.default_rng(0))["mel"]
    full = run(mel)
    # tiny preset, 2 layers: receptive field 3 + 2*3 + 2 = 11 frames each side < (40 - 8) / 2.
    audio, boundary = chunked_run(run, mel, Chunking(200, 40, 8), info.hop_length)
    assert audio.shape == full.shape
    assert np.abs(audio - full).max() < 1e-5
    assert boundary.any() and not boundary.all()


def test_too_little_overlap_shows_at_the_boundaries(vocoder):
    run, info = vocoder
    mel = VOCOS.make_inputs(info, "vocoder", {"batch": 1, "frames": 500}, np.random.default_rng(1))["mel"]
    full = run(mel)
    audio, boundary = chunked_run(run, mel, Chunking(200, 4, 0), info.hop_length)
    errors = boundary_errors(full, audio, boundary)
    # The error sits at the cuts and fades with distance (the receptive field reaches 11 frames).
    assert errors["boundary_max_abs_err"] > 1e-3
    assert errors["interior_max_abs_err"] < errors["boundary_max_abs_err"] / 5
