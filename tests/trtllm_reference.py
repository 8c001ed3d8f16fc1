"""The TensorRT-LLM F5 network's math in PyTorch, from a converted checkpoint (tests only).

It mirrors ``ttskiln.families.f5tts.trtllm_network`` operation for operation, on the
converted weights (renamed, q/k pre-scaled, 4-D conv kernels) and the engine's inputs, with the
BERT attention plugin's semantics: softmax scale 1 (the scale is folded into q and k) and keys
past ``input_lengths`` masked. It checks the conversion and the host-side input packing on
CPU; it is not TensorRT-LLM and never produces a report row.
"""

import numpy as np
import torch
from torch.nn import functional as F


def _linear(w, name, x):
    return F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])


def _rotate_pairs(x):
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def engine_forward(config, weights, feed):
    w = {k: v.float() for k, v in weights.items()}
    noise, cond, time = (torch.from_numpy(np.asarray(feed[k], np.float32)) for k in ("noise", "cond", "time"))
    cos = torch.from_numpy(np.asarray(feed["rope_cos"], np.float32)).unsqueeze(2)
    sin = torch.from_numpy(np.asarray(feed["rope_sin"], np.float32)).unsqueeze(2)
    lengths = torch.from_numpy(np.asarray(feed["input_lengths"])).long()
    dim, heads, dh = config["hidden_size"], config["num_attention_heads"], config["dim_head"]
    rope_heads = config["pe_attn_head"]
    batch, frames, _ = noise.shape
    valid = torch.arange(frames)[None, :] < lengths[:, None]
    mask = valid.float().unsqueeze(2)

    t = _linear(w, "time_embed.mlp2", F.silu(_linear(w, "time_embed.mlp1", time)))
    h = _linear(w, "input_embed.proj", torch.cat([noise, cond], dim=2))
    c = (h * mask).transpose(1, 2)
    for conv in ("conv1d1", "conv1d2"):
        p = f"input_embed.conv_pos_embed.{conv}"
        c = F.conv1d(c, w[f"{p}.weight"].squeeze(-1), w[f"{p}.bias"], padding=15, groups=16)
        c = F.mish(c * mask.transpose(1, 2))
    x = c.transpose(1, 2) + h

    def positions(y):
        y = y.unflatten(-1, (heads, dh))
        if rope_heads is None:
            y = y * cos + _rotate_pairs(y) * sin
        else:
            first = y[:, :, :rope_heads]
            y = torch.cat([first * cos + _rotate_pairs(first) * sin, y[:, :, rope_heads:]], dim=2)
        return y.transpose(1, 2)  # [B, H, N, dh]

    keep = valid[:, None, None, :]
    for n in range(config["num_hidden_layers"]):
        b = f"transformer_blocks.{n}"
        mod = [m.unsqueeze(1) for m in _linear(w, f"{b}.attn_norm.linear", F.silu(t)).chunk(6, dim=1)]
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = mod
        a = F.layer_norm(x, (dim,), eps=1e-6) * (1 + scale_a) + shift_a
        q, k = positions(_linear(w, f"{b}.attn.to_q", a)), positions(_linear(w, f"{b}.attn.to_k", a))
        v = _linear(w, f"{b}.attn.to_v", a).unflatten(-1, (heads, dh)).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(-1, -2)).masked_fill(~keep, float("-inf"))  # softmax scale 1
        att = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).flatten(2)
        x = x + gate_a * _linear(w, f"{b}.attn.to_out", att)
        f = F.layer_norm(x, (dim,), eps=1e-6) * (1 + scale_f) + shift_f
        f = _linear(w, f"{b}.ff.ff", F.gelu(_linear(w, f"{b}.ff.project_in", f), approximate="tanh"))
        x = x + gate_f * f
    scale, shift = [m.unsqueeze(1) for m in _linear(w, "norm_out.linear", F.silu(t)).chunk(2, dim=1)]
    out = _linear(w, "proj_out", F.layer_norm(x, (dim,), eps=1e-6) * (1 + scale) + shift)
    return out.numpy()


def reference_runner(config, weights, text_encoder):
    """A ``GraphRunner`` with the same host side as ``trtllm.trtllm_runner``."""
    from ttskiln.families.f5tts.trtllm import TextEmbeddingCache, engine_inputs

    embed = TextEmbeddingCache(text_encoder)
    calls = []

    def run(inputs):
        feed = engine_inputs(inputs, embed(inputs))
        calls.append({k: v.shape for k, v in feed.items()})
        return engine_forward(config, weights, feed)

    run.calls = calls
    return run
