"""Inverse STFT written with real matmuls and reshapes only.

Exported graphs hold MatMul, Transpose, Pad, Reshape, Slice, ReduceSum, Mul and Div: no DFT,
no complex tensors, no Col2Im/ScatterND, so ONNX Runtime and TensorRT both run them.

Shapes: ``real``/``imag`` are (B, T, n_fft // 2 + 1) channels-last spectra; the result is
(B, samples) with ``samples = T * hop`` for padding ``same`` and ``(T - 1) * hop`` for ``center``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PADDINGS = ("same", "center")


def hann_window(n_fft: int) -> torch.Tensor:
    """Periodic Hann window, the one ``torch.hann_window(n_fft)`` returns (float64)."""
    n = torch.arange(n_fft, dtype=torch.float64)
    return 0.5 - 0.5 * torch.cos(2.0 * math.pi * n / n_fft)


def inverse_rdft_basis(n_fft: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed inverse real-DFT matrices (bins, n_fft) for the real and imaginary parts.

    Bins 1..n_fft/2-1 count twice (their conjugate twins), DC and Nyquist once, and the
    imaginary parts of DC and Nyquist are ignored, exactly as ``irfft`` does. The 1/n_fft
    ("backward") scale and the synthesis window are folded in. Computed in float64.
    """
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None, :]
    # Reduce k*n modulo n_fft before the angle so large products keep full precision.
    angle = 2.0 * math.pi * torch.remainder(k * n, n_fft) / n_fft
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    weight[-1] = 1.0
    cos = weight * torch.cos(angle) / n_fft
    sin = -weight * torch.sin(angle) / n_fft
    sin[0] = 0.0
    sin[-1] = 0.0
    w = window.to(torch.float64)[None, :]
    return cos * w, sin * w


def overlap_add(frames: torch.Tensor, hop: int) -> torch.Tensor:
    """Overlap-add (B, T, n_fft) frames with stride ``hop`` into (B, (T + R - 1) * hop).

    ``R = n_fft // hop`` must be an integer. Each frame is cut into R hop-long pieces; piece r of
    frame t lands in output block t + r. The shift by r is done for all pieces at once with the
    skew trick: pad the T axis by R, flatten, drop the last R blocks and reshape, which moves
    row r right by r blocks. Then the R rows are summed.
    """
    batch, n_frames, n_fft = frames.shape
    ratio = n_fft // hop
    pieces = frames.reshape(batch, n_frames, ratio, hop).transpose(1, 2)  # (B, R, T, hop)
    padded = nn.functional.pad(pieces, (0, 0, 0, ratio))  # (B, R, T + R, hop)
    flat = padded.reshape(batch, ratio * (n_frames + ratio), hop)
    skewed = flat[:, : ratio * (n_frames + ratio - 1)].reshape(batch, ratio, n_frames + ratio - 1, hop)
    return skewed.sum(dim=1).reshape(batch, (n_frames + ratio - 1) * hop)


class InverseSTFT(nn.Module):
    """ISTFT with a Hann synthesis window and window-envelope normalisation.

    ``padding='center'`` matches ``torch.istft(center=True)`` without a length argument;
    ``padding='same'`` trims (n_fft - hop) / 2 on both sides, as Vocos does for that mode.
    """

    def __init__(self, n_fft: int, hop_length: int, padding: str = "center") -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"ISTFT padding must be one of {PADDINGS}, got {padding!r}")
        if n_fft % hop_length:
            raise ValueError(f"n_fft ({n_fft}) must be a multiple of hop_length ({hop_length})")
        if padding == "same" and (n_fft - hop_length) % 2:
            raise ValueError(f"padding 'same' needs an even n_fft - hop, got {n_fft} - {hop_length}")
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.padding = padding
        self.register_buffer("basis_real", torch.empty(0), persistent=False)
        self.register_buffer("basis_imag", torch.empty(0), persistent=False)
        self.register_buffer("window_sq", torch.empty(0), persistent=False)
        self.use_window(hann_window(n_fft))

    def use_window(self, window: torch.Tensor) -> None:
        """Rebuild the synthesis matrices for ``window`` (e.g. one loaded from a checkpoint)."""
        if tuple(window.shape) != (self.n_fft,):
            raise ValueError(f"window must have shape ({self.n_fft},), got {tuple(window.shape)}")
        cos, sin = inverse_rdft_basis(self.n_fft, window)
        self.basis_real = cos.to(torch.float32)
        self.basis_imag = sin.to(torch.float32)
        self.window_sq = (window.to(torch.float64) ** 2).to(torch.float32)

    @property
    def trim(self) -> int:
        return self.n_fft // 2 if self.padding == "center" else (self.n_fft - self.hop_length) // 2

    def output_length(self, n_frames: int) -> int:
        return (n_frames - 1) * self.hop_length if self.padding == "center" else n_frames * self.hop_length

    def forward(self, real: torch.Tensor, imag: torch.Tensor) -> torch.Tensor:
        """(B, T, bins) real and imaginary parts -> (B, samples)."""
        frames = real @ self.basis_real + imag @ self.basis_imag  # (B, T, n_fft)
        audio = overlap_add(frames, self.hop_length)
        # The window^2 envelope depends only on T: overlap-add the same window for every frame.
        ones = torch.ones_like(real[:1, :, :1])  # (1, T, 1)
        envelope = overlap_add(ones * self.window_sq, self.hop_length)
        end = audio.shape[-1] - self.trim
        return audio[:, self.trim : end] / envelope[:, self.trim : end]
