"""PyTorch re-implementation of Tortoise's UnifiedVoice (inference paths only).

Parameter names follow upstream's ``state_dict`` so the released file loads strictly. The GPT-2
stack is written out here (no transformers dependency): pre-LN blocks, GELU (tanh form),
HF ``Conv1D`` projections stored ``[in, out]``, no token or position embedding of its own.

Cache layout: one stacked tensor ``[layers, 2 (key, value), batch, heads, length, head_dim]``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ttskiln.families.tortoise_gpt.config import COND_ATTN_BLOCKS, SPEC_DIM, TortoiseConfig, group_count

LN_EPS = 1e-5


class HFConv1D(nn.Module):
    """HF GPT-2's ``Conv1D``: a linear layer whose weight is stored ``[in, out]``."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x, self.weight) + self.bias


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.c_attn = HFConv1D(dim, 3 * dim)
        self.c_proj = HFConv1D(dim, dim)

    def forward(
        self, x: torch.Tensor, past_k: torch.Tensor | None, past_v: torch.Tensor | None, causal: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n = x.shape[0], x.shape[1]
        d = self.dim
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (t.reshape(b, n, self.heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if past_k is not None:
            k = torch.cat([past_k, k], dim=2)
            v = torch.cat([past_v, v], dim=2)
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if causal:
            # query i sits at absolute position (keys - n + i) and sees keys up to there
            total = k.shape[2]
            qpos = torch.arange(n, device=x.device) + (total - n)
            future = torch.arange(total, device=x.device)[None, :] > qpos[:, None]
            scores = scores.masked_fill(future, float("-inf"))
        attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d)
        return self.c_proj(out), k, v


class MLP(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.c_fc = HFConv1D(dim, 4 * dim)
        self.c_proj = HFConv1D(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(gelu_tanh(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.attn = SelfAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = MLP(dim)

    def forward(self, x, past_k, past_v, causal):  # type: ignore[no-untyped-def]
        h, k, v = self.attn(self.ln_1(x), past_k, past_v, causal)
        x = x + h
        return x + self.mlp(self.ln_2(x)), k, v


class GPT2Stack(nn.Module):
    def __init__(self, cfg: TortoiseConfig) -> None:
        super().__init__()
        self.h = nn.ModuleList(Block(cfg.model_dim, cfg.heads) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(cfg.model_dim, eps=LN_EPS)


class PositionTable(nn.Module):
    """Upstream's ``LearnedPositionEmbeddings`` (its table is ``.emb``)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.emb = nn.Embedding(rows, dim)


class CondAttentionBlock(nn.Module):
    """Conditioning-encoder block: GroupNorm (fp32), legacy QKV attention, residual."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(group_count(dim), dim)
        self.qkv = nn.Conv1d(dim, 3 * dim, 1)
        self.proj_out = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        qkv = self.qkv(self.norm(x.float()).to(x.dtype))
        ch = c // self.heads
        # legacy layout: per head, [q | k | v] channel blocks
        q, k, v = qkv.reshape(b * self.heads, 3 * ch, t).split(ch, dim=1)
        scale = ch ** -0.25
        weight = torch.softmax(torch.matmul((q * scale).transpose(1, 2), k * scale).float(), dim=-1).to(q.dtype)
        a = torch.matmul(v, weight.transpose(1, 2)).reshape(b, c, t)
        return x + self.proj_out(a)


class ConditioningEncoder(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.init = nn.Conv1d(SPEC_DIM, dim, 1)
        self.attn = nn.Sequential(*(CondAttentionBlock(dim, heads) for _ in range(COND_ATTN_BLOCKS)))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.attn(self.init(mel))[:, :, 0]


class UnifiedVoice(nn.Module):
    """The weights of upstream's UnifiedVoice and its inference computations."""

    def __init__(self, cfg: TortoiseConfig) -> None:
        super().__init__()
        d = cfg.model_dim
        self.cfg = cfg
        self.conditioning_encoder = ConditioningEncoder(d, cfg.heads)
        self.text_embedding = nn.Embedding(cfg.text_vocab, d)
        self.mel_embedding = nn.Embedding(cfg.number_mel_codes, d)
        self.gpt = GPT2Stack(cfg)
        self.mel_pos_embedding = PositionTable(cfg.mel_positions, d)
        self.text_pos_embedding = PositionTable(cfg.text_positions, d)
        self.final_norm = nn.LayerNorm(d, eps=LN_EPS)
        self.text_head = nn.Linear(d, cfg.text_vocab)
        self.mel_head = nn.Linear(d, cfg.number_mel_codes)

    # -- pieces --------------------------------------------------------------------------------
    def conditioning(self, mels: torch.Tensor) -> torch.Tensor:
        """Conditioning latent [B, D] from mels [B, 80, S] or [B, clips, 80, S] (clip mean)."""
        if mels.dim() == 3:
            mels = mels[:, None]
        return torch.stack([self.conditioning_encoder(mels[:, j]) for j in range(mels.shape[1])], 1).mean(1)

    def text_inputs(self, text_ids: torch.Tensor) -> torch.Tensor:
        """[start_text, ids..., 0] embedded with text positions 0..T+1: [B, T+2, D]."""
        b = text_ids.shape[0]
        start = torch.full((b, 1), self.cfg.start_text, dtype=text_ids.dtype, device=text_ids.device)
        stop = torch.zeros((b, 1), dtype=text_ids.dtype, device=text_ids.device)
        ids = torch.cat([start, text_ids, stop], dim=1)
        positions = torch.arange(ids.shape[1], device=ids.device)
        return self.text_embedding(ids) + self.text_pos_embedding.emb(positions)[None]

    def mel_inputs(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.mel_embedding(tokens) + self.mel_pos_embedding.emb(positions)

    def transformer(
        self, x: torch.Tensor, past: torch.Tensor | None, causal: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """GPT-2 blocks, ln_f and final_norm over x [B, N, D]; returns (hidden, present)."""
        presents = []
        for i, block in enumerate(self.gpt.h):
            pk = None if past is None else past[i, 0]
            pv = None if past is None else past[i, 1]
            x, k, v = block(x, pk, pv, causal)
            presents.append(torch.stack([k, v], dim=0))
        return self.final_norm(self.gpt.ln_f(x)), torch.stack(presents, dim=0)

    # -- entry points --------------------------------------------------------------------------
    def prefill(
        self, cond_latent: torch.Tensor, text_ids: torch.Tensor, start_token: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(next logits [B, V], hidden [B, T+4, D], present [L, 2, B, H, T+4, hd])."""
        start = self.mel_embedding(start_token) + self.mel_pos_embedding.emb.weight[0]
        x = torch.cat([cond_latent[:, None], self.text_inputs(text_ids), start[:, None]], dim=1)
        hidden, present = self.transformer(x, None, causal=True)
        return self.mel_head(hidden[:, -1]), hidden, present

    def decode(
        self, token: torch.Tensor, position: torch.Tensor, past: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One token per row at mel position ``position`` -> (logits [B, V], hidden [B, D], present)."""
        x = self.mel_inputs(token, position)[:, None]
        hidden, present = self.transformer(x, past, causal=False)
        return self.mel_head(hidden[:, 0]), hidden[:, 0], present

    def full(
        self, cond_latent: torch.Tensor, text_ids: torch.Tensor, mel_tokens: torch.Tensor, mel_positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uncached forward over [cond, text, mel tokens at given positions]: (logits, hidden) of
        the mel part, [B, M, V] and [B, M, D]."""
        x = torch.cat([cond_latent[:, None], self.text_inputs(text_ids), self.mel_inputs(mel_tokens, mel_positions)], 1)
        hidden, _ = self.transformer(x, None, causal=True)
        mel = hidden[:, -mel_tokens.shape[1]:]
        return self.mel_head(mel), mel

    def latents(self, cond_latent: torch.Tensor, text_ids: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Upstream ``forward(..., return_latent=True)``: hidden states at [start, c_1..c_{N-1}]
        with mel positions 0..N-1 -> [B, N, D]."""
        b, n = codes.shape
        start = torch.full((b, 1), self.cfg.start_mel_token, dtype=codes.dtype, device=codes.device)
        tokens = torch.cat([start, codes[:, :-1]], dim=1)
        positions = torch.arange(n, device=codes.device)[None].expand(b, n)
        return self.full(cond_latent, text_ids, tokens, positions)[1]


class Prefill(nn.Module):
    """Component ``prefill``: (cond_latent, text_ids, start_token) -> (logits, hidden, present)."""

    def __init__(self, model: UnifiedVoice) -> None:
        super().__init__()
        self.model = model

    def forward(self, cond_latent, text_ids, start_token):  # type: ignore[no-untyped-def]
        return self.model.prefill(cond_latent, text_ids, start_token)


class Decode(nn.Module):
    """Component ``decode``: (token, position, past) -> (logits, hidden, present)."""

    def __init__(self, model: UnifiedVoice) -> None:
        super().__init__()
        self.model = model

    def forward(self, token, position, past):  # type: ignore[no-untyped-def]
        return self.model.decode(token, position, past)
