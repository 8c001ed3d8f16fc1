"""The F5 DiT as a TensorRT-LLM 0.16 network (``MODEL_MAP["F5TTS"]``; see ``trtllm.py``).

Imported only by ``trtllm.build`` on a machine with tensorrt_llm 0.16.0. The math is the
ttskiln PyTorch ``DiT`` with the text embedding on the host and the attention in the BERT
attention plugin:

* ``time`` [B, 256] (host sinusoid) -> ``mlp2(silu(mlp1(.)))`` -> t [B, D];
* ``proj(cat[noise, cond])`` + the masked grouped-conv position embedding (Mish) -> x;
* per block: AdaLN-zero (6 chunks of ``linear(silu(t))``), RoPE on q and k from the
  ``rope_cos``/``rope_sin`` inputs (interleaved pairs; all heads, or head 0 when
  ``pe_attn_head`` is 1), the plugin over the fused ``[q | k | v]`` with ``input_lengths``
  (q and k come pre-scaled by ``dim_head ** -0.25``: ``q_scaling = 1 / sqrt(dim_head)``), the
  tanh-GELU feed-forward;
* ``proj_out(LayerNorm(x) * (1 + scale) + shift)`` -> ``denoised`` [B, N, mel].

Not runnable where tensorrt_llm is absent; the weight contract is ``trtllm.expected_weights``
and the same math is exercised on CPU by the test suite's engine-semantics reference.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import tensorrt as trt
from tensorrt_llm._utils import str_dtype_to_trt
from tensorrt_llm.functional import (
    Tensor,
    arange,
    bert_attention,
    cast,
    chunk,
    concat,
    constant,
    gelu,
    layer_norm,
    lt,
    shape,
    silu,
    softplus,
    split,
    tanh,
    unsqueeze,
)
from tensorrt_llm.layers import Conv1d, Linear
from tensorrt_llm.models.modeling_utils import PretrainedConfig, PretrainedModel
from tensorrt_llm.module import Module, ModuleList

NORM_EPS = 1e-6
CONV_KERNEL = 31
CONV_GROUPS = 16
TIME_SINUSOID_DIM = 256


def _mish(x: Tensor) -> Tensor:
    return x * tanh(softplus(x, 1.0, 20.0))


def _rotate_pairs(x: Tensor, heads: int, dim_head: int) -> Tensor:
    """(x0, x1, x2, x3, ...) -> (-x1, x0, -x3, x2, ...) over each head's last axis."""
    pairs = x.view([0, 0, heads, dim_head // 2, 2])
    first, second = split(pairs, 1, dim=4)
    return concat([second * -1.0, first], dim=4).view([0, 0, heads, dim_head])


def _rope(x: Tensor, cos: Tensor, sin: Tensor, heads: int, dim_head: int) -> Tensor:
    """x [B, N, heads, dh]; cos/sin [B, N, 1, dh]."""
    return x * cos + _rotate_pairs(x, heads, dim_head) * sin


class TimeEmbedding(Module):
    def __init__(self, dim: int, dtype: str) -> None:
        super().__init__()
        self.mlp1 = Linear(TIME_SINUSOID_DIM, dim, bias=True, dtype=dtype)
        self.mlp2 = Linear(dim, dim, bias=True, dtype=dtype)

    def forward(self, sinusoid: Tensor) -> Tensor:
        return self.mlp2(silu(self.mlp1(sinusoid)))


class ConvPositionEmbedding(Module):
    def __init__(self, dim: int, dtype: str) -> None:
        super().__init__()
        pad = CONV_KERNEL // 2
        self.conv1d1 = Conv1d(dim, dim, CONV_KERNEL, groups=CONV_GROUPS, padding=pad, dtype=dtype)
        self.conv1d2 = Conv1d(dim, dim, CONV_KERNEL, groups=CONV_GROUPS, padding=pad, dtype=dtype)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        """x [B, N, D], mask [B, N, 1] (0/1 in the network dtype)."""
        channel_mask = mask.permute([0, 2, 1])
        h = (x * mask).permute([0, 2, 1])
        h = _mish(self.conv1d1(h) * channel_mask)
        h = _mish(self.conv1d2(h) * channel_mask)
        return h.permute([0, 2, 1])


class InputEmbedding(Module):
    def __init__(self, dim: int, mel_dim: int, text_dim: int, dtype: str) -> None:
        super().__init__()
        self.proj = Linear(2 * mel_dim + text_dim, dim, bias=True, dtype=dtype)
        self.conv_pos_embed = ConvPositionEmbedding(dim, dtype)

    def forward(self, noise: Tensor, cond: Tensor, mask: Tensor) -> Tensor:
        h = self.proj(concat([noise, cond], dim=2))
        return self.conv_pos_embed(h, mask) + h


class AdaptiveNorm(Module):
    def __init__(self, dim: int, chunks: int, dtype: str) -> None:
        super().__init__()
        self.chunks = chunks
        self.linear = Linear(dim, chunks * dim, bias=True, dtype=dtype)

    def forward(self, t: Tensor) -> list[Tensor]:
        return [unsqueeze(c, 1) for c in chunk(self.linear(silu(t)), self.chunks, dim=1)]


class Attention(Module):
    def __init__(self, dim: int, heads: int, dim_head: int, rope_heads: int | None, dtype: str) -> None:
        super().__init__()
        self.heads, self.dim_head, self.rope_heads = heads, dim_head, rope_heads
        inner = heads * dim_head
        self.to_q = Linear(dim, inner, bias=True, dtype=dtype)
        self.to_k = Linear(dim, inner, bias=True, dtype=dtype)
        self.to_v = Linear(dim, inner, bias=True, dtype=dtype)
        self.to_out = Linear(inner, dim, bias=True, dtype=dtype)

    def _positions(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        h, dh = self.heads, self.dim_head
        x = x.view([0, 0, h, dh])
        if self.rope_heads is None:
            x = _rope(x, cos, sin, h, dh)
        else:
            first, rest = split(x, [self.rope_heads, h - self.rope_heads], dim=2)
            x = concat([_rope(first, cos, sin, self.rope_heads, dh), rest], dim=2)
        return x.view([0, 0, h * dh])

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, input_lengths: Tensor) -> Tensor:
        q = self._positions(self.to_q(x), cos, sin)
        k = self._positions(self.to_k(x), cos, sin)
        qkv = concat([q, k, self.to_v(x)], dim=2)
        out = bert_attention(qkv, input_lengths, self.heads, self.dim_head, q_scaling=1.0 / math.sqrt(self.dim_head))
        return self.to_out(out)


class FeedForward(Module):
    def __init__(self, dim: int, inner: int, dtype: str) -> None:
        super().__init__()
        self.project_in = Linear(dim, inner, bias=True, dtype=dtype)
        self.ff = Linear(inner, dim, bias=True, dtype=dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self.ff(gelu(self.project_in(x)))


class DiTBlock(Module):
    def __init__(self, config: PretrainedConfig, dtype: str) -> None:
        super().__init__()
        dim = config.hidden_size
        self.dim = dim
        self.attn_norm = AdaptiveNorm(dim, 6, dtype)
        self.attn = Attention(dim, config.num_attention_heads, config.dim_head, config.pe_attn_head, dtype)
        self.ff = FeedForward(dim, int(dim * config.ff_mult), dtype)

    def forward(self, x: Tensor, t: Tensor, cos: Tensor, sin: Tensor, input_lengths: Tensor) -> Tensor:
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = self.attn_norm(t)
        h = layer_norm(x, self.dim, eps=NORM_EPS) * (scale_a + 1.0) + shift_a
        x = x + gate_a * self.attn(h, cos, sin, input_lengths)
        h = layer_norm(x, self.dim, eps=NORM_EPS) * (scale_f + 1.0) + shift_f
        return x + gate_f * self.ff(h)


class FinalNorm(Module):
    def __init__(self, dim: int, dtype: str) -> None:
        super().__init__()
        self.dim = dim
        self.linear = Linear(dim, 2 * dim, bias=True, dtype=dtype)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        scale, shift = [unsqueeze(c, 1) for c in chunk(self.linear(silu(t)), 2, dim=1)]
        return layer_norm(x, self.dim, eps=NORM_EPS) * (scale + 1.0) + shift


class F5TTS(PretrainedModel):
    """``MODEL_MAP["F5TTS"]``: the DiT without its text embedding (the host supplies it in ``cond``)."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        dtype = config.dtype
        self.dtype = str_dtype_to_trt(dtype)
        dim = config.hidden_size
        self.mel_dim, self.text_dim, self.dim_head = config.mel_dim, config.text_dim, config.dim_head
        self.time_embed = TimeEmbedding(dim, dtype)
        self.input_embed = InputEmbedding(dim, config.mel_dim, config.text_dim, dtype)
        self.transformer_blocks = ModuleList([DiTBlock(config, dtype) for _ in range(config.num_hidden_layers)])
        self.norm_out = FinalNorm(dim, dtype)
        self.proj_out = Linear(dim, config.mel_dim, bias=True, dtype=dtype)

    def forward(self, noise: Tensor, cond: Tensor, time: Tensor, rope_cos: Tensor, rope_sin: Tensor,
                input_lengths: Tensor) -> Tensor:
        positions = arange(constant(np.array(0, dtype=np.int32)), cast(shape(noise, 1), "int32"), "int32")
        valid = lt(unsqueeze(positions, 0), unsqueeze(input_lengths, 1))  # [B, N] bool
        mask = unsqueeze(cast(valid, self.dtype), 2)
        t = self.time_embed(time)
        x = self.input_embed(noise, cond, mask)
        cos, sin = unsqueeze(rope_cos, 2), unsqueeze(rope_sin, 2)
        for block in self.transformer_blocks:
            x = block(x, t, cos, sin, input_lengths)
        out = self.proj_out(self.norm_out(x, t))
        out.mark_output("denoised", self.dtype)
        return out

    def prepare_inputs(self, max_batch_size: int = 8, **kwargs) -> dict[str, Tensor]:
        """Padded inputs; batch 2 .. max_batch_size (CFG-doubled rows), frames from the
        checkpoint config (``min_frames``/``opt_frames``/``max_frames``)."""
        config = self.config
        frames = [int(getattr(config, "min_frames", 100)), int(getattr(config, "opt_frames", 1500)),
                  int(getattr(config, "max_frames", 3000))]
        batch = [2, 2, int(max_batch_size)]

        def tensor(name: str, width: int | None, dtype: trt.DataType) -> Tensor:
            if width is None:
                return Tensor(name=name, dtype=dtype, shape=[-1], dim_range=OrderedDict([("batch_size", [batch])]))
            dims = OrderedDict([("batch_size", [batch]), ("frames", [frames]), (f"{name}_dim", [width])])
            return Tensor(name=name, dtype=dtype, shape=[-1, -1, width], dim_range=dims)

        time = Tensor(name="time", dtype=self.dtype, shape=[-1, TIME_SINUSOID_DIM],
                      dim_range=OrderedDict([("batch_size", [batch]), ("time_dim", [TIME_SINUSOID_DIM])]))
        return {
            "noise": tensor("noise", self.mel_dim, self.dtype),
            "cond": tensor("cond", self.mel_dim + self.text_dim, self.dtype),
            "time": time,
            "rope_cos": tensor("rope_cos", self.dim_head, self.dtype),
            "rope_sin": tensor("rope_sin", self.dim_head, self.dtype),
            "input_lengths": tensor("input_lengths", None, trt.int32),
        }
