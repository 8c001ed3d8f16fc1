"""The F5-TTS DiT in PyTorch, written for export: its forward is the ``dit`` graph.

Attribute names follow the released state_dict (below the ``transformer.`` prefix), so a
released checkpoint loads strictly. Everything position- or time-shaped is an input computed
on the host (see ``host.py``): the graph has no sin/cos/exp of large angles, no data-dependent
shapes, no in-place slice assignment, and every LayerNorm, softmax and reduction runs in the
input precision (fp32) as written here.

Graph inputs (B = rows of the packed batch, N = frames, M = mel bins):
  x [B, N, M], cond [B, N, M]      noised mel, reference mel (zeros where dropped)
  text [B, N] int64                token id + 1 laid out over frames, 0 = filler
  drop_text [B] float              1 = unconditional row (every token becomes the filler)
  time_sinusoid [B, 256]           [sin | cos] of 1000 t times the frequencies
  mask [B, N] float                1 = valid frame of that row
  rope_cos, rope_sin [N, dim_head] RoPE table, each angle repeated for its pair
  text_pos [N, text_dim]           text position table [cos | sin] (only when conv_layers > 0)
Output: flow [B, N, M].
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ttskiln.families.f5tts.config import (
    CONV_POS_GROUPS,
    CONV_POS_KERNEL,
    TEXT_CONV_KERNEL,
    TIME_SINUSOID_DIM,
    F5Config,
)

NORM_EPS = 1e-6
GRN_EPS = 1e-6


def mish(x: torch.Tensor) -> torch.Tensor:
    """x * tanh(softplus(x)), spelled out so the graph holds Softplus/Tanh/Mul."""
    return x * torch.tanh(F.softplus(x))


class GlobalResponseNorm(nn.Module):
    """ConvNeXt-V2 GRN over the time axis: [B, N, C] -> [B, N, C].

    The L2 norm runs over all N frames (padding included), then is divided by its mean over
    channels plus 1e-6; out = gamma * (x * n) + beta + x.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, channels))
        self.beta = nn.Parameter(torch.zeros(1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        scaled = norm / (norm.mean(dim=-1, keepdim=True) + GRN_EPS)
        return self.gamma * (x * scaled) + self.beta + x


class TextConvBlock(nn.Module):
    """ConvNeXt-V2 block on text features: depthwise conv k7 -> LayerNorm -> Linear ->
    GELU(erf) -> GRN -> Linear, plus the input. [B, N, C] -> [B, N, C]."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        pad = (TEXT_CONV_KERNEL - 1) // 2
        self.dwconv = nn.Conv1d(channels, channels, TEXT_CONV_KERNEL, padding=pad, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=NORM_EPS)
        self.pwconv1 = nn.Linear(channels, hidden)
        self.grn = GlobalResponseNorm(hidden)
        self.pwconv2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        y = F.gelu(self.pwconv1(self.norm(y)))
        return x + self.pwconv2(self.grn(y))


class TextEncoder(nn.Module):
    """Token embedding (+ position table and ConvNeXt blocks when conv_layers > 0).

    text [B, N] int64 (0 = filler), drop_text [B], mask [B, N], text_pos [N, C] -> [B, N, C].
    Filler positions are those of the given ids, also on dropped rows (as upstream, which
    computes them before dropping the text).
    """

    def __init__(self, cfg: F5Config) -> None:
        super().__init__()
        self.mask_padding = cfg.text_mask_padding
        self.text_embed = nn.Embedding(cfg.text_num_embeds + 1, cfg.text_dim)
        self.text_blocks = nn.ModuleList(TextConvBlock(cfg.text_dim, cfg.text_inner) for _ in range(cfg.conv_layers))

    def forward(
        self, text: torch.Tensor, drop_text: torch.Tensor, mask: torch.Tensor, text_pos: torch.Tensor | None
    ) -> torch.Tensor:
        valid = mask.unsqueeze(-1)
        dropped = (drop_text > 0.5).view(-1, 1, 1)
        filler = self.text_embed.weight[0]
        h = torch.where(dropped, filler, self.text_embed(text)) * valid
        if len(self.text_blocks) == 0:
            return h
        h = h + text_pos.unsqueeze(0) * valid
        if not self.mask_padding:
            for block in self.text_blocks:
                h = block(h)
            return h
        keep = (text != 0).unsqueeze(-1).to(h.dtype)
        h = h * keep
        for block in self.text_blocks:
            h = block(h) * keep
        return h


class ConvPositionEmbedding(nn.Module):
    """Two grouped Conv1d (k31, 16 groups) + Mish, padded frames zeroed: [B, N, D] -> [B, N, D]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        pad = CONV_POS_KERNEL // 2
        self.conv1d = nn.Sequential(
            nn.Conv1d(dim, dim, CONV_POS_KERNEL, groups=CONV_POS_GROUPS, padding=pad),
            nn.Identity(),  # upstream's Mish sits here; kept for the state_dict indices
            nn.Conv1d(dim, dim, CONV_POS_KERNEL, groups=CONV_POS_GROUPS, padding=pad),
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.unsqueeze(1)
        h = x.transpose(1, 2) * m
        h = mish(self.conv1d[0](h) * m)
        h = mish(self.conv1d[2](h) * m)
        return h.transpose(1, 2)


class InputEmbedding(nn.Module):
    """Linear over cat[x, cond, text] plus the conv position embedding: -> [B, N, D]."""

    def __init__(self, cfg: F5Config) -> None:
        super().__init__()
        self.proj = nn.Linear(2 * cfg.mel_dim + cfg.text_dim, cfg.dim)
        self.conv_pos_embed = ConvPositionEmbedding(cfg.dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, text: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.proj(torch.cat((x, cond, text), dim=-1))
        return self.conv_pos_embed(h, mask) + h


class TimeEmbedding(nn.Module):
    """MLP on the time sinusoid: [B, 256] -> Linear -> SiLU -> Linear -> [B, D]."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.time_mlp = nn.Sequential(nn.Linear(TIME_SINUSOID_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, sinusoid: torch.Tensor) -> torch.Tensor:
        return self.time_mlp(sinusoid)


class RotaryBuffer(nn.Module):
    """Holds the released ``rotary_embed.inv_freq`` buffer; the tables come from the host."""

    def __init__(self, dim_head: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", torch.zeros(dim_head // 2))


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...) on the last axis (interleaved RoPE)."""
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [B, H, N, dh] rotated by tables [N, dh]."""
    return x * cos + rotate_pairs(x) * sin


class HeadRMSNorm(nn.Module):
    """RMS norm over dim_head with a weight (qk_norm='rms_norm'): x / sqrt(mean(x^2) + eps) * w."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + NORM_EPS) * self.weight


class Attention(nn.Module):
    """Multi-head self-attention with RoPE, written as MatMul/Softmax/MatMul in fp32.

    Keys are not masked unless ``attn_mask_enabled``; outputs at padded frames are zeroed.
    """

    def __init__(self, cfg: F5Config) -> None:
        super().__init__()
        self.heads, self.dim_head = cfg.heads, cfg.dim_head
        self.rope_heads = cfg.pe_attn_head
        self.mask_keys = cfg.attn_mask_enabled
        inner = cfg.inner_dim
        self.to_q = nn.Linear(cfg.dim, inner)
        self.to_k = nn.Linear(cfg.dim, inner)
        self.to_v = nn.Linear(cfg.dim, inner)
        if cfg.qk_norm == "rms_norm":
            self.q_norm: nn.Module | None = HeadRMSNorm(cfg.dim_head)
            self.k_norm: nn.Module | None = HeadRMSNorm(cfg.dim_head)
        else:
            self.q_norm = self.k_norm = None
        self.to_out = nn.ModuleList([nn.Linear(inner, cfg.dim)])
        self.scale = 1.0 / math.sqrt(cfg.dim_head)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        if self.rope_heads is None:
            return apply_rope(x, cos, sin)
        pn = self.rope_heads
        return torch.cat((apply_rope(x[:, :pn], cos, sin), x[:, pn:]), dim=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.to_q(x)), self._split(self.to_k(x)), self._split(self.to_v(x))
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if self.mask_keys:
            keep = (mask > 0.5).view(mask.shape[0], 1, 1, -1)
            scores = scores.masked_fill(~keep, float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        out = out.transpose(1, 2).flatten(2)
        return self.to_out[0](out) * mask.unsqueeze(-1)


class AdaptiveNorm(nn.Module):
    """LayerNorm (no affine, eps 1e-6) modulated by the time embedding.

    ``linear`` maps SiLU(t) [B, D] to 6 chunks: shift/scale/gate for attention, then for the FF.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 6 * dim)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(c.unsqueeze(1) for c in self.linear(F.silu(t)).chunk(6, dim=-1))


class FeedForward(nn.Module):
    """Linear -> GELU(tanh) -> Linear, keyed like upstream (``ff.0.0`` and ``ff.2``)."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.ff = nn.Sequential(nn.Sequential(nn.Linear(dim, inner)), nn.Identity(), nn.Linear(inner, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff[2](F.gelu(self.ff[0][0](x), approximate="tanh"))


class DiTBlock(nn.Module):
    """AdaLN-zero transformer block: x [B, N, D], t [B, D] -> [B, N, D]."""

    def __init__(self, cfg: F5Config) -> None:
        super().__init__()
        self.dim = cfg.dim
        self.attn_norm = AdaptiveNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.ff = FeedForward(cfg.dim, cfg.ff_inner)

    def _norm(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (self.dim,), eps=NORM_EPS)

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, mask: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.attn_norm(t)
        h = self._norm(x) * (1 + scale_a) + shift_a
        x = x + gate_a * self.attn(h, mask, cos, sin)
        h = self._norm(x) * (1 + scale_f) + shift_f
        return x + gate_f * self.ff(h)


class FinalNorm(nn.Module):
    """LayerNorm modulated by (scale, shift) from SiLU(t), in that order."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.linear = nn.Linear(dim, 2 * dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(F.silu(t)).unsqueeze(1).chunk(2, dim=-1)
        return F.layer_norm(x, (self.dim,), eps=NORM_EPS) * (1 + scale) + shift


class DiT(nn.Module):
    """The F5-TTS transformer; ``forward`` is the exported ``dit`` graph (see module docstring)."""

    def __init__(self, cfg: F5Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.time_embed = TimeEmbedding(cfg.dim)
        self.text_embed = TextEncoder(cfg)
        self.input_embed = InputEmbedding(cfg)
        self.rotary_embed = RotaryBuffer(cfg.dim_head)
        self.transformer_blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        if cfg.long_skip_connection:
            self.long_skip_connection: nn.Module | None = nn.Linear(2 * cfg.dim, cfg.dim, bias=False)
        else:
            self.long_skip_connection = None
        self.norm_out = FinalNorm(cfg.dim)
        self.proj_out = nn.Linear(cfg.dim, cfg.mel_dim)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        text: torch.Tensor,
        drop_text: torch.Tensor,
        time_sinusoid: torch.Tensor,
        mask: torch.Tensor,
        rope_cos: torch.Tensor,
        rope_sin: torch.Tensor,
        text_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        t = self.time_embed(time_sinusoid)
        text_h = self.text_embed(text, drop_text, mask, text_pos)
        h = self.input_embed(x, cond, text_h, mask)
        residual = h
        for block in self.transformer_blocks:
            h = block(h, t, mask, rope_cos, rope_sin)
        if self.long_skip_connection is not None:
            h = self.long_skip_connection(torch.cat((h, residual), dim=-1))
        return self.proj_out(self.norm_out(h, t))
