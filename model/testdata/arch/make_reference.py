#!/usr/bin/env python3
"""Tiny random checkpoints of the families golora supports, and their logits.

Each family gets a directory <name>/ with config.json and model.safetensors
(F32, random weights, seeded) and golden.json: the token ids and the logits of
every position, computed here in float64 by a forward pass written from
transformers' modeling files (modeling_llama.py, modeling_mistral.py,
modeling_qwen2.py, modeling_qwen3.py, modeling_phi3.py and
_compute_llama3_parameters in modeling_rope_utils.py), not from golora.

Run from this directory with Debian's numpy (python3-numpy):
    /usr/bin/python3 make_reference.py
"""
import json
import math
import os
import struct

import numpy as np

VOCAB, HIDDEN, INTER, LAYERS = 64, 32, 48, 2
TOKENS = [1, 17, 42, 5, 63, 0, 29, 8, 51, 33, 12, 7]


# ---- safetensors (https://huggingface.co/docs/safetensors) -----------------
def write_safetensors(path, tensors):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ---- the forward pass ------------------------------------------------------
def rms_norm(x, w, eps):
    # LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def inv_freq(cfg, dim):
    base = cfg.get("rope_theta", 10000.0)
    f = 1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "longrope":
        # _compute_longrope_parameters; the sequence is shorter than
        # original_max_position_embeddings, so the short factors apply.
        f = 1.0 / (np.asarray(rs["short_factor"], dtype=np.float64) * base ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    elif kind == "linear":
        f = f / rs["factor"]
    elif kind == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / lo, old / hi
        wavelen = 2 * math.pi / f
        scaled = np.where(wavelen > low_wavelen, f / factor, f)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
        f = np.where(medium, smoothed, scaled)
    return f


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def apply_rope(x, cos, sin, rot):
    # x [T, heads, head_dim]; cos, sin [T, rot]; Phi-3 rotates the first rot values only.
    xr, xp = x[..., :rot], x[..., rot:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([xr * c + rotate_half(xr) * s, xp], axis=-1)


def forward(cfg, W, tokens):
    mt = cfg["model_type"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    eps = cfg["rms_norm_eps"]
    rot = int(hd * cfg.get("partial_rotary_factor", 1.0))
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    freqs = np.outer(pos, inv_freq(cfg, rot))
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb), np.sin(emb)
    rs = cfg.get("rope_scaling") or {}
    if rs.get("type", rs.get("rope_type")) == "longrope":
        # attention_scaling multiplies cos and sin (Phi3RotaryEmbedding).
        factor = cfg["max_position_embeddings"] / cfg["original_max_position_embeddings"]
        scale = math.sqrt(1 + math.log(factor) / math.log(cfg["original_max_position_embeddings"]))
        cos, sin = cos * scale, sin * scale
    mask = np.tril(np.ones((T, T), dtype=bool))
    if cfg.get("sliding_window") and mt in ("mistral", "phi3"):
        i, j = np.arange(T)[:, None], np.arange(T)[None, :]
        mask &= (i - j) < cfg["sliding_window"]
    x = W["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)
        if mt == "phi3":
            qkv = h @ W[p + "self_attn.qkv_proj.weight"].T
            q, k, v = np.split(qkv, [H * hd, H * hd + KV * hd], axis=-1)
        else:
            q = h @ W[p + "self_attn.q_proj.weight"].T
            k = h @ W[p + "self_attn.k_proj.weight"].T
            v = h @ W[p + "self_attn.v_proj.weight"].T
            if mt == "qwen2":
                q = q + W[p + "self_attn.q_proj.bias"]
                k = k + W[p + "self_attn.k_proj.bias"]
                v = v + W[p + "self_attn.v_proj.bias"]
        q, k, v = q.reshape(T, H, hd), k.reshape(T, KV, hd), v.reshape(T, KV, hd)
        if mt == "qwen3":
            q = rms_norm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = apply_rope(q, cos, sin, rot), apply_rope(k, cos, sin, rot)
        rep = H // KV
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)  # repeat_kv
        scores = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd)
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        a = np.einsum("hts,shd->thd", scores, v).reshape(T, H * hd)
        x = x + a @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if mt == "phi3":
            gate, up = np.split(h @ W[p + "mlp.gate_up_proj.weight"].T, 2, axis=-1)
        else:
            gate, up = h @ W[p + "mlp.gate_proj.weight"].T, h @ W[p + "mlp.up_proj.weight"].T
        silu = gate / (1 + np.exp(-gate))
        x = x + (silu * up) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def llama_cpp_rope_freqs(cfg):
    """The rope_freqs.weight tensor llama.cpp's convert_hf_to_gguf.py writes
    for a llama3 rope_scaling: one divisor per frequency."""
    rs = cfg["rope_scaling"]
    dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    freqs = 1.0 / (cfg["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < old / hi:
            out.append(1.0)
        elif wavelen > old / lo:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1 / ((1 - smooth) / factor + smooth))
    return [float(np.float32(v)) for v in out]


# ---- the checkpoints -------------------------------------------------------
def weights(cfg, rng):
    mt = cfg["model_type"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // H
    D, I = cfg["hidden_size"], cfg["intermediate_size"]
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # the file holds float32
    mat = lambda o, i: f32(rng.normal(0, 1 / math.sqrt(i), (o, i)))
    norm = lambda n: f32(1 + 0.2 * rng.normal(size=n))
    W = {"model.embed_tokens.weight": f32(rng.normal(0, 0.3, (VOCAB, D)))}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        W[p + "input_layernorm.weight"] = norm(D)
        W[p + "post_attention_layernorm.weight"] = norm(D)
        if mt == "phi3":
            W[p + "self_attn.qkv_proj.weight"] = mat((H + 2 * KV) * hd, D)
            W[p + "mlp.gate_up_proj.weight"] = mat(2 * I, D)
        else:
            W[p + "self_attn.q_proj.weight"] = mat(H * hd, D)
            W[p + "self_attn.k_proj.weight"] = mat(KV * hd, D)
            W[p + "self_attn.v_proj.weight"] = mat(KV * hd, D)
            W[p + "mlp.gate_proj.weight"] = mat(I, D)
            W[p + "mlp.up_proj.weight"] = mat(I, D)
        if mt == "qwen2":
            for n, o in (("q", H * hd), ("k", KV * hd), ("v", KV * hd)):
                W[p + f"self_attn.{n}_proj.bias"] = f32(rng.normal(0, 0.5, o))
        if mt == "qwen3":
            W[p + "self_attn.q_norm.weight"] = norm(hd)
            W[p + "self_attn.k_norm.weight"] = norm(hd)
        W[p + "self_attn.o_proj.weight"] = mat(D, H * hd)
        W[p + "mlp.down_proj.weight"] = mat(D, I)
    W["model.norm.weight"] = norm(D)
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = mat(VOCAB, D)
    return W


def base(model_type, arch, **kw):
    cfg = {"architectures": [arch], "model_type": model_type, "hidden_size": HIDDEN,
           "intermediate_size": INTER, "num_hidden_layers": LAYERS, "num_attention_heads": 4,
           "num_key_value_heads": 2, "vocab_size": VOCAB, "max_position_embeddings": 128,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "hidden_act": "silu", "torch_dtype": "float32"}
    cfg.update(kw)
    return cfg


FAMILIES = {
    # head_dim 16: wavelengths 6.3 … 19869 straddle 64/4 and 64/1, so the
    # llama3 formula's three branches (kept, blended, divided) all occur.
    "llama3": base("llama", "LlamaForCausalLM", hidden_size=64, rope_theta=10000.0,
                   rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
    "llama_linear": base("llama", "LlamaForCausalLM", rope_scaling={"type": "linear", "factor": 4.0}),
    "qwen2": base("qwen2", "Qwen2ForCausalLM", tie_word_embeddings=True, attention_bias=True,
                  use_sliding_window=False, sliding_window=4096),
    "qwen3": base("qwen3", "Qwen3ForCausalLM", head_dim=16, rope_theta=1000000.0,
                  attention_bias=False, use_sliding_window=False, sliding_window=None),
    "mistral": base("mistral", "MistralForCausalLM", sliding_window=16, num_key_value_heads=1),
    "phi3": base("phi3", "Phi3ForCausalLM", rms_norm_eps=1e-5, partial_rotary_factor=0.5,
                 sliding_window=64, num_key_value_heads=4),
}
# Phi-4-mini's form: longrope, partial rotary 0.75 of head_dim 16 (6
# frequencies), tied embeddings, original_max_position_embeddings at the top
# level (factor 128/32 = 4).
FAMILIES["phi4_longrope"] = base(
    "phi3", "Phi3ForCausalLM", hidden_size=64, rms_norm_eps=1e-5, partial_rotary_factor=0.75,
    tie_word_embeddings=True, original_max_position_embeddings=32, sliding_window=None,
    rope_scaling={"type": "longrope",
                  "short_factor": [1.0, 1.25, 1.5, 2.0, 2.5, 3.0],
                  "long_factor": [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]})

# A window shorter than the sequence: each position attends to the last 4.
FAMILIES["mistral_window"] = base("mistral", "MistralForCausalLM", sliding_window=4, num_key_value_heads=2)

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    for i, (name, cfg) in enumerate(FAMILIES.items()):
        rng = np.random.default_rng(1000 + i)
        W = weights(cfg, rng)
        d = os.path.join(here, name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        write_safetensors(os.path.join(d, "model.safetensors"), W)
        logits = forward(cfg, W, TOKENS)
        extra = {}
        if (cfg.get("rope_scaling") or {}).get("rope_type") == "llama3":
            extra["rope_freqs"] = llama_cpp_rope_freqs(cfg)
        with open(os.path.join(d, "golden.json"), "w") as f:
            hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
            rot = int(hd * cfg.get("partial_rotary_factor", 1.0))
            json.dump({**extra, "tokens": TOKENS, "inv_freq": [float("%.17g" % v) for v in inv_freq(cfg, rot)],
                       "logits": [[float("%.9g" % v) for v in row] for row in logits]}, f)
            f.write("\n")
        print(name, "logits", logits.shape, "max |logit|", float(np.abs(logits).max()))


if __name__ == "__main__":
    main()
