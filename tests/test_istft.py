import numpy as np
import pytest
import torch

from ttskiln.ops.istft import InverseSTFT, hann_window, overlap_add


def _fold_istft(real, imag, n_fft, hop, trim):
    """The reference: irfft, window, F.fold overlap-add, envelope, trim (Vocos 'same' path)."""
    spec = torch.complex(real, imag).transpose(1, 2)
    frames = torch.fft.irfft(spec, n_fft, dim=1) * torch.hann_window(n_fft)[None, :, None]
    n = frames.shape[-1]
    length = (n - 1) * hop + n_fft
    audio = torch.nn.functional.fold(frames, (1, length), (1, n_fft), stride=(1, hop))[:, 0, 0]
    env = torch.nn.functional.fold(
        torch.hann_window(n_fft).square().expand(1, n, -1).transpose(1, 2), (1, length), (1, n_fft), stride=(1, hop)
    ).squeeze()
    return audio[:, trim:-trim] / env[trim:-trim]


@pytest.mark.parametrize("n_fft,hop", [(1024, 256), (256, 64), (1280, 320)])
@pytest.mark.parametrize("frames", [2, 5, 37])
def test_center_matches_torch_istft(n_fft, hop, frames):
    torch.manual_seed(frames)
    bins = n_fft // 2 + 1
    real, imag = torch.randn(2, frames, bins), torch.randn(2, frames, bins)
    got = InverseSTFT(n_fft, hop, "center")(real, imag)
    want = torch.istft(torch.complex(real, imag).transpose(1, 2), n_fft, hop, n_fft, torch.hann_window(n_fft), center=True)
    assert got.shape == want.shape == (2, (frames - 1) * hop)
    assert torch.max(torch.abs(got - want)) < 1e-6


@pytest.mark.parametrize("frames", [1, 4, 37])
def test_same_matches_fold_reference(frames):
    torch.manual_seed(0)
    real, imag = torch.randn(3, frames, 513), torch.randn(3, frames, 513)
    got = InverseSTFT(1024, 256, "same")(real, imag)
    want = _fold_istft(real, imag, 1024, 256, (1024 - 256) // 2)
    assert got.shape == want.shape == (3, frames * 256)
    assert torch.max(torch.abs(got - want)) < 1e-6


def test_imaginary_dc_and_nyquist_are_ignored():
    istft = InverseSTFT(256, 64, "center")
    real, imag = torch.randn(1, 6, 129), torch.zeros(1, 6, 129)
    base = istft(real, imag)
    imag[..., 0] = 5.0
    imag[..., -1] = -3.0
    assert torch.equal(istft(real, imag), base)


def test_overlap_add_matches_naive_loop():
    rng = np.random.default_rng(3)
    frames = rng.standard_normal((2, 7, 16)).astype(np.float32)
    hop = 4
    naive = np.zeros((2, (7 - 1) * hop + 16), np.float32)
    for t in range(7):
        naive[:, t * hop : t * hop + 16] += frames[:, t]
    got = overlap_add(torch.from_numpy(frames), hop).numpy()
    np.testing.assert_allclose(got, naive, atol=1e-6)


def test_loaded_window_is_used():
    istft = InverseSTFT(64, 16, "center")
    real, imag = torch.randn(1, 5, 33), torch.randn(1, 5, 33)
    base = istft(real, imag)
    istft.use_window(hann_window(64) * 0.5)
    # Synthesis window halves, envelope quarters: the output doubles.
    torch.testing.assert_close(istft(real, imag), 2 * base, atol=1e-5, rtol=1e-5)


def test_rejects_bad_geometry():
    with pytest.raises(ValueError, match="multiple"):
        InverseSTFT(1000, 256, "center")
    with pytest.raises(ValueError, match="padding"):
        InverseSTFT(1024, 256, "valid")
