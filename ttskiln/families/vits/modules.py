"""PyTorch re-implementation of Coqui's VITS (YourTTS configuration), written for export.

Parameter names follow Coqui's state_dict once weight norm is folded (``weight_g``/``weight_v``
become one ``weight``), so a released checkpoint loads strictly. The export-relevant rewrites:

* relative-position attention uses a one-hot relative-offset table built from ``arange``
  instead of upstream's pad/reshape skewing (same values, no data-dependent reshapes);
* the rational-quadratic spline of the stochastic duration predictor is computed on every
  element with ``where`` for the linear tails (no boolean indexing, no in-place scatter);
  bin lookup is a sum of comparisons and ``gather``;
* noise is an input; nothing draws random numbers.

The component wrappers at the bottom are what gets exported (see ``__init__.py``).
"""

from __future__ import annotations

import functools
import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from ttskiln.families.vits.config import graph_inputs  # noqa: F401 (re-exported)
from ttskiln.families.vits.config import (
    REL_WINDOW,
    SDP_CHANNELS,
    SDP_FLOWS,
    SDP_KERNEL,
    SPLINE_BINS,
    SPLINE_TAIL,
    VitsConfig,
)

LRELU_SLOPE = 0.1
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
SEARCH_EPS = 1e-6


def sequence_mask(lengths: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """[B] lengths -> [B, 1, size] float mask."""
    steps = torch.arange(size, device=lengths.device)
    return (steps[None, :] < lengths[:, None]).to(torch.float32)[:, None, :]


class ChannelNorm(nn.Module):
    """LayerNorm over the channel axis of [B, C, T] (Coqui's LayerNorm2)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.transpose(1, -1), (x.shape[1],), self.gamma, self.beta, self.eps)
        return y.transpose(1, -1)


# -- text encoder --------------------------------------------------------------------------
class RelativeAttention(nn.Module):
    def __init__(self, channels: int, heads: int, window: int = REL_WINDOW) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.head_dim = channels // heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_dim))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.head_dim))

    def offsets(self, length: int | torch.Tensor, device: torch.device) -> torch.Tensor:
        """[T, T, 2W+1] one-hot of the offset j - i (zero outside the window)."""
        pos = torch.arange(length, device=device)
        rel = pos[None, :] - pos[:, None] + self.window
        slots = torch.arange(2 * self.window + 1, device=device)
        return (rel[:, :, None] == slots[None, None, :]).to(torch.float32)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        q = self.conv_q(x).reshape(b, self.heads, self.head_dim, t).transpose(2, 3)
        k = self.conv_k(x).reshape(b, self.heads, self.head_dim, t).transpose(2, 3)
        v = self.conv_v(x).reshape(b, self.heads, self.head_dim, t).transpose(2, 3)
        scale = math.sqrt(self.head_dim)
        scores = torch.matmul(q, k.transpose(-2, -1)) / scale
        onehot = self.offsets(t, x.device)
        rel_k = torch.matmul(q, self.emb_rel_k[0].transpose(0, 1))  # [b, h, t, 2W+1]
        rel_scores = torch.einsum("bhir,ijr->bhij", rel_k, onehot)
        scores = scores + rel_scores / scale
        scores = torch.where(mask == 0, torch.full_like(scores, -1e4), scores)
        p = torch.softmax(scores, dim=-1)
        out = torch.matmul(p, v)
        rel_p = torch.einsum("bhij,ijr->bhir", p, onehot)
        out = out + torch.matmul(rel_p, self.emb_rel_v[0])
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class FeedForward(nn.Module):
    def __init__(self, channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv_1 = nn.Conv1d(channels, hidden, kernel)
        self.conv_2 = nn.Conv1d(hidden, channels, kernel)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel == 1:
            return x
        return F.pad(x, ((self.kernel - 1) // 2, self.kernel // 2))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(self._pad(x * mask)))
        return self.conv_2(self._pad(x * mask)) * mask


class Transformer(nn.Module):
    def __init__(self, channels: int, ffn: int, heads: int, layers: int, kernel: int) -> None:
        super().__init__()
        self.attn_layers = nn.ModuleList(RelativeAttention(channels, heads) for _ in range(layers))
        self.norm_layers_1 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))
        self.ffn_layers = nn.ModuleList(FeedForward(channels, ffn, kernel) for _ in range(layers))
        self.norm_layers_2 = nn.ModuleList(ChannelNorm(channels) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        for attn, norm1, ffn, norm2 in zip(self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2):
            x = x * mask
            x = norm1(x + attn(x, attn_mask))
            x = norm2(x + ffn(x, mask))
        return x * mask


class TextEncoder(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.hidden = cfg.hidden
        self.emb = nn.Embedding(cfg.num_chars, cfg.hidden)
        self.encoder = Transformer(cfg.text_channels, cfg.ffn, cfg.heads, cfg.layers, cfg.kernel_text)
        self.proj = nn.Conv1d(cfg.text_channels, 2 * cfg.hidden, 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, lang_emb: torch.Tensor | None):
        x = self.emb(tokens) * math.sqrt(self.hidden)  # [b, t, h]
        if lang_emb is not None:
            x = torch.cat([x, lang_emb[:, None, :].expand(-1, x.shape[1], -1)], dim=-1)
        x = x.transpose(1, 2)
        mask = sequence_mask(lengths, x.shape[2])
        x = self.encoder(x * mask, mask)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.hidden, dim=1)
        return x, m, logs, mask


# -- WaveNet, coupling flows, posterior encoder --------------------------------------------
class WN(nn.Module):
    def __init__(self, hidden: int, kernel: int, dilation_rate: int, layers: int, cond: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.layers = layers
        self.in_layers = nn.ModuleList()
        self.res_skip_layers = nn.ModuleList()
        if cond > 0:
            self.cond_layer = nn.Conv1d(cond, 2 * hidden * layers, 1)
        for i in range(layers):
            d = dilation_rate**i
            self.in_layers.append(nn.Conv1d(hidden, 2 * hidden, kernel, dilation=d, padding=(kernel * d - d) // 2))
            self.res_skip_layers.append(nn.Conv1d(hidden, 2 * hidden if i < layers - 1 else hidden, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        out = torch.zeros_like(x)
        cond = self.cond_layer(g) if g is not None else None
        h = self.hidden
        for i in range(self.layers):
            a = self.in_layers[i](x)
            if cond is not None:
                a = a + cond[:, 2 * h * i : 2 * h * (i + 1)]
            acts = torch.tanh(a[:, :h]) * torch.sigmoid(a[:, h:])
            rs = self.res_skip_layers[i](acts)
            if i < self.layers - 1:
                x = (x + rs[:, :h]) * mask
                out = out + rs[:, h:]
            else:
                out = out + rs
        return out * mask


class CouplingBlock(nn.Module):
    """Mean-only residual coupling (Coqui's ResidualCouplingBlock, mean_only=True)."""

    def __init__(self, channels: int, hidden: int, kernel: int, dilation: int, layers: int, cond: int) -> None:
        super().__init__()
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.enc = WN(hidden, kernel, dilation, layers, cond)
        self.post = nn.Conv1d(hidden, self.half, 1)

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        h = self.enc(self.pre(x0) * mask, mask, g)
        m = self.post(h) * mask
        return torch.cat([x0, (x1 - m) * mask], dim=1)


class Flow(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.flows = nn.ModuleList(
            CouplingBlock(cfg.hidden, cfg.hidden, cfg.flow_kernel, cfg.flow_dilation, cfg.flow_layers, cfg.speaker_dim)
            for _ in range(cfg.flows)
        )

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        for flow in reversed(self.flows):
            x = flow.reverse(torch.flip(x, [1]), mask, g)
        return x


class PosteriorEncoder(nn.Module):
    """Training-only; present so that checkpoints load strictly."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.pre = nn.Conv1d(cfg.spec_channels, cfg.hidden, 1)
        self.enc = WN(cfg.hidden, cfg.posterior_kernel, cfg.posterior_dilation, cfg.posterior_layers, cfg.speaker_dim)
        self.proj = nn.Conv1d(cfg.hidden, 2 * cfg.hidden, 1)


# -- stochastic duration predictor ---------------------------------------------------------
class DDSConv(nn.Module):
    def __init__(self, channels: int, kernel: int, layers: int) -> None:
        super().__init__()
        self.convs_sep = nn.ModuleList()
        self.convs_1x1 = nn.ModuleList()
        self.norms_1 = nn.ModuleList()
        self.norms_2 = nn.ModuleList()
        for i in range(layers):
            d = kernel**i
            self.convs_sep.append(nn.Conv1d(channels, channels, kernel, groups=channels, dilation=d, padding=(kernel * d - d) // 2))
            self.convs_1x1.append(nn.Conv1d(channels, channels, 1))
            self.norms_1.append(ChannelNorm(channels))
            self.norms_2.append(ChannelNorm(channels))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None) -> torch.Tensor:
        if g is not None:
            x = x + g
        for sep, pw, n1, n2 in zip(self.convs_sep, self.convs_1x1, self.norms_1, self.norms_2):
            y = F.gelu(n1(sep(x * mask)))
            y = F.gelu(n2(pw(y)))
            x = x + y
        return x * mask


class ElementwiseAffine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.translation = nn.Parameter(torch.zeros(channels, 1))
        self.log_scale = nn.Parameter(torch.zeros(channels, 1))

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (x - self.translation) * torch.exp(-self.log_scale) * mask


def _knots(unnormalized: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Bin edges [..., bins+1] from unnormalised bin sizes, with the ends pinned to low/high."""
    bins = unnormalized.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * bins) * torch.softmax(unnormalized, dim=-1)
    inner = (high - low) * torch.cumsum(sizes, dim=-1)[..., :-1] + low
    ends = torch.ones_like(inner[..., :1])
    return torch.cat([ends * low, inner, ends * high], dim=-1)


def inverse_spline(
    inputs: torch.Tensor, widths_u: torch.Tensor, heights_u: torch.Tensor, derivs_u: torch.Tensor, bound: float
) -> torch.Tensor:
    """Inverse of the rational-quadratic spline with linear tails on [-bound, bound]."""
    inside = (inputs >= -bound) & (inputs <= bound)
    y = torch.clamp(inputs, -bound, bound)
    const = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
    pad = torch.full_like(derivs_u[..., :1], const)
    derivs = MIN_DERIVATIVE + F.softplus(torch.cat([pad, derivs_u, pad], dim=-1))
    cumw = _knots(widths_u, -bound, bound)
    cumh = _knots(heights_u, -bound, bound)
    widths = cumw[..., 1:] - cumw[..., :-1]
    heights = cumh[..., 1:] - cumh[..., :-1]
    search = torch.cat([cumh[..., :-1], cumh[..., -1:] + SEARCH_EPS], dim=-1)
    idx = (torch.sum((y[..., None] >= search).to(torch.int64), dim=-1) - 1)[..., None]
    idx = torch.clamp(idx, 0, widths.shape[-1] - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return torch.gather(t, -1, idx)[..., 0]

    in_cumw, in_w = pick(cumw[..., :-1]), pick(widths)
    in_cumh, in_h = pick(cumh[..., :-1]), pick(heights)
    delta = heights / widths
    in_delta = pick(delta)
    d0 = pick(derivs[..., :-1])
    d1 = pick(derivs[..., 1:])
    dy = y - in_cumh
    s = d0 + d1 - 2 * in_delta
    a = dy * s + in_h * (in_delta - d0)
    b = in_h * d0 - dy * s
    c = -in_delta * dy
    disc = torch.clamp(b * b - 4 * a * c, min=0.0)
    root = (2 * c) / (-b - torch.sqrt(disc))
    out = root * in_w + in_cumw
    return torch.where(inside, out, inputs)


class ConvFlow(nn.Module):
    def __init__(self, channels: int, hidden: int, kernel: int, layers: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.half = channels // 2
        self.pre = nn.Conv1d(self.half, hidden, 1)
        self.convs = DDSConv(hidden, kernel, layers)
        self.proj = nn.Conv1d(hidden, self.half * (3 * SPLINE_BINS - 1), 1)

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = x[:, : self.half], x[:, self.half :]
        h = self.convs(self.pre(x0), mask, g)
        h = self.proj(h) * mask
        b, c, t = x0.shape
        h = h.reshape(b, c, -1, t).permute(0, 1, 3, 2)
        scale = math.sqrt(self.hidden)
        w = h[..., :SPLINE_BINS] / scale
        hh = h[..., SPLINE_BINS : 2 * SPLINE_BINS] / scale
        d = h[..., 2 * SPLINE_BINS :]
        x1 = inverse_spline(x1, w, hh, d, SPLINE_TAIL)
        return torch.cat([x0, x1], dim=1) * mask


class StochasticDurationPredictor(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        c, k = SDP_CHANNELS, SDP_KERNEL
        self.pre = nn.Conv1d(cfg.text_channels, c, 1)
        self.convs = DDSConv(c, k, 3)
        self.proj = nn.Conv1d(c, c, 1)
        self.flows = nn.ModuleList([ElementwiseAffine(2)] + [ConvFlow(2, c, k, 3) for _ in range(SDP_FLOWS)])
        self.post_pre = nn.Conv1d(1, c, 1)
        self.post_convs = DDSConv(c, k, 3)
        self.post_proj = nn.Conv1d(c, c, 1)
        self.post_flows = nn.ModuleList([ElementwiseAffine(2)] + [ConvFlow(2, c, k, 3) for _ in range(SDP_FLOWS)])
        if cfg.dp_speaker:
            self.cond = nn.Conv1d(cfg.speaker_dim, c, 1)
        if cfg.language_dim:
            self.cond_lang = nn.Conv1d(cfg.language_dim, c, 1)

    def reverse(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None, lang: torch.Tensor | None,
                noise: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        if g is not None and hasattr(self, "cond"):
            x = x + self.cond(g)
        if lang is not None:
            x = x + self.cond_lang(lang)
        x = self.proj(self.convs(x, mask)) * mask
        flows = list(reversed(self.flows))
        flows = flows[:-2] + [flows[-1]]  # upstream skips the last ConvFlow in reverse
        z = noise
        for flow in flows:
            z = flow.reverse(torch.flip(z, [1]), mask, x)
        return z[:, :1]


# -- HiFi-GAN decoder ----------------------------------------------------------------------
def _same(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=_same(k, d)) for d in dilations[:3])
        self.convs2 = nn.ModuleList(nn.Conv1d(ch, ch, k, padding=_same(k, 1)) for _ in dilations[:3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class ResBlock2(nn.Module):
    def __init__(self, ch: int, k: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, k, dilation=d, padding=_same(k, d)) for d in dilations[:2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, LRELU_SLOPE))
        return x


class HifiGan(nn.Module):
    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        init = cfg.upsample_initial
        self.num_kernels = len(cfg.resblock_kernels)
        self.conv_pre = nn.Conv1d(cfg.hidden, init, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(init // 2**i, init // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernels))
        )
        block = ResBlock1 if cfg.resblock_type == "1" else ResBlock2
        self.resblocks = nn.ModuleList(
            block(init // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(cfg.resblock_kernels, cfg.resblock_dilations)
        )
        self.conv_post = nn.Conv1d(init // 2 ** len(self.ups), 1, 7, padding=3, bias=False)
        if cfg.speaker_dim:
            self.cond_layer = nn.Conv1d(cfg.speaker_dim, init, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor | None) -> torch.Tensor:
        o = self.conv_pre(x)
        if g is not None:
            o = o + self.cond_layer(g)
        for i, up in enumerate(self.ups):
            o = up(F.leaky_relu(o, LRELU_SLOPE))
            blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
            total = blocks[0](o)
            for blk in blocks[1:]:
                total = total + blk(o)
            o = total / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(o)))


class Vits(nn.Module):
    """The inference-relevant part of Coqui's ``Vits`` (plus the posterior encoder)."""

    def __init__(self, cfg: VitsConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.text_encoder = TextEncoder(cfg)
        self.posterior_encoder = PosteriorEncoder(cfg)
        self.flow = Flow(cfg)
        self.duration_predictor = StochasticDurationPredictor(cfg)
        self.waveform_decoder = HifiGan(cfg)
        if cfg.speaker_mode == "embedding":
            self.emb_g = nn.Embedding(cfg.num_speakers, cfg.speaker_embedding_dim)
        if cfg.language_dim:
            self.emb_l = nn.Embedding(cfg.num_languages, cfg.language_dim)

    def language(self, language_id: torch.Tensor | None) -> torch.Tensor | None:
        return self.emb_l(language_id) if hasattr(self, "emb_l") and language_id is not None else None

    def speaker(self, g: torch.Tensor | None = None, sid: torch.Tensor | None = None) -> torch.Tensor | None:
        """The conditioning [B, C, 1]: the (normalised) d-vector g [B, D], or emb_g(sid [B]); None without speakers."""
        if sid is not None:
            return self.emb_g(sid)[:, :, None]
        return None if g is None else g[:, :, None]


# -- exported components -------------------------------------------------------------------
#: The speaker input of each speaker mode (``config.SPEAKER_MODES``).
class _Graph(nn.Module):
    """A component's computation (``compute``, keyword inputs) behind a positional ``forward``
    whose parameters are the component's input names (see ``graph``)."""

    input_names: tuple[str, ...] = ()

    def __init__(self, model: Vits) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: torch.Tensor):
        return self.compute(**dict(zip(self.input_names, args)))


@functools.lru_cache(maxsize=None)
def _signed(cls: type, names: tuple[str, ...]) -> type:
    """``cls`` with ``input_names`` set and a forward whose signature names them, so that the
    exporter binds each graph input (and its dynamic axes) by name."""

    def forward(self, *args: torch.Tensor):
        return cls.forward(self, *args)

    positional = inspect.Parameter.POSITIONAL_OR_KEYWORD
    forward.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("self", positional)] + [inspect.Parameter(n, positional) for n in names]
    )
    return type(cls.__name__, (cls,), {"forward": forward, "input_names": names, "__doc__": cls.__doc__})


def graph(model: Vits, component: str) -> nn.Module:
    """The exported module of ``component``; its forward takes ``graph_inputs(model.cfg, component)``."""
    classes = {"text_encoder": TextEncoderGraph, "duration_predictor": DurationGraph, "flow": FlowGraph,
               "decoder": DecoderGraph}
    return _signed(classes[component], graph_inputs(model.cfg, component))(model)


class TextEncoderGraph(_Graph):
    """tokens [B, T] int64, lengths [B] int64, (language_id [B] int64) -> x, m_p, logs_p, x_mask."""

    def compute(self, tokens, lengths, language_id=None):
        outs = self.model.text_encoder(tokens, lengths, self.model.language(language_id))
        return tuple(t.contiguous() for t in outs)


class DurationGraph(_Graph):
    """x, x_mask, (g [B, D] | sid [B]), (language_id), noise [B, 2, T] (already scaled) -> logw [B, 1, T]."""

    def compute(self, x, x_mask, noise, g=None, sid=None, language_id=None):
        lang = self.model.language(language_id)
        return self.model.duration_predictor.reverse(
            x, x_mask, self.model.speaker(g, sid), None if lang is None else lang[:, :, None], noise
        ).contiguous()


class FlowGraph(_Graph):
    """m_p, logs_p, noise [B, C, F] (already scaled), y_mask [B, 1, F], (g [B, D] | sid [B]) -> z_p, z."""

    def compute(self, m_p, logs_p, noise, y_mask, g=None, sid=None):
        z_p = m_p + noise * torch.exp(logs_p)
        return z_p.contiguous(), self.model.flow.reverse(z_p, y_mask, self.model.speaker(g, sid)).contiguous()


class DecoderGraph(_Graph):
    """z [B, C, F], (g [B, D] | sid [B]) -> audio [B, F * hop]."""

    def compute(self, z, g=None, sid=None):
        return self.model.waveform_decoder(z, self.model.speaker(g, sid))[:, 0].contiguous()
