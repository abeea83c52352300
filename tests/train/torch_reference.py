#!/usr/bin/python3
"""PyTorch reference for rv::train::TrainModel (oracle for tests/train/model_test.cpp
and the baseline of bench/train_vs_torch.sh).

A Qwen2 decoder written from its definitions (not transformers): RMSNorm
x * rsqrt(mean(x^2) + eps) * w, rotate_half RoPE with inv_freq =
theta^(-2i/head_dim), grouped-query causal attention with q/k/v biases and a
packing mask (same row, same segment, earlier or same token; segment -1 is
padding), SwiGLU MLP, final norm, LM head (tied to the embeddings when
tie_word_embeddings). Loss: summed token cross-entropy (double log-softmax,
targets < 0 ignored) divided by a normalizer. Gradients by autograd, then one
torch.optim.AdamW step (weight decay on 2-D tensors only).

Usage:
  torch_reference.py grad MODEL_DIR BATCH_JSON OUT_SAFETENSORS
      BATCH_JSON: rows, T, tokens, pos, seg, targets (flat, rows*T), normalizer,
      lr, beta1, beta2, eps, weight_decay, threads.
      OUT: "loss" (F64 [1]), "logits" (F32), "grad.NAME" and "param.NAME"
      (after the AdamW step) for every tensor of the checkpoint.
  torch_reference.py bench THREADS STEPS ROWS T VOCAB HIDDEN LAYERS HEADS KV_HEADS INTER
      Prints "tokens_per_s X" for forward + backward + AdamW on random data.

Always run with /usr/bin/python3 (Debian's python3-torch).
"""
import json
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "BF16": (torch.bfloat16, 2),
          "F16": (torch.float16, 2)}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt, _ = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        buf = bytearray(blob[8 + n + b:8 + n + e])
        t = torch.frombuffer(buf, dtype=dt) if e > b else torch.zeros(0, dtype=dt)
        out[name] = t.reshape(info["shape"]).float()
    return out


def write_safetensors(path, tensors):
    header, chunks, off = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        code = {torch.float32: "F32", torch.float64: "F64"}[t.dtype]
        data = t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        chunks.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(P, cfg, tokens, pos, seg):
    """Logits [rows, T, vocab] for token/pos/seg tensors [rows, T]."""
    H, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd, eps = H // nh, cfg["rms_norm_eps"]
    R, T = tokens.shape
    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    ang = pos.double()[..., None] * inv_freq  # [R, T, hd/2]
    cos = torch.cat((ang.cos(), ang.cos()), -1).float()[:, None]  # [R, 1, T, hd]
    sin = torch.cat((ang.sin(), ang.sin()), -1).float()[:, None]
    i = torch.arange(T)
    allowed = (i[None, :, None] >= i[None, None, :]) & (seg[:, :, None] == seg[:, None, :]) & \
        (seg[:, :, None] >= 0)  # [R, T(query), T(key)]
    allowed = allowed[:, None]
    x = P["model.embed_tokens.weight"][tokens]
    for l in range(L):
        p = f"model.layers.{l}."
        xn = rms_norm(x, P[p + "input_layernorm.weight"], eps)
        q = F.linear(xn, P[p + "self_attn.q_proj.weight"], P[p + "self_attn.q_proj.bias"])
        k = F.linear(xn, P[p + "self_attn.k_proj.weight"], P[p + "self_attn.k_proj.bias"])
        v = F.linear(xn, P[p + "self_attn.v_proj.weight"], P[p + "self_attn.v_proj.bias"])
        q = q.view(R, T, nh, hd).transpose(1, 2)
        k = k.view(R, T, nkv, hd).transpose(1, 2)
        v = v.view(R, T, nkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(nh // nkv, dim=1)  # query head h uses kv head h // group
        v = v.repeat_interleave(nh // nkv, dim=1)
        s = (q @ k.transpose(-1, -2)) * (1.0 / hd ** 0.5)
        # A large finite fill (not -inf) keeps padding rows, which attend to
        # nothing, free of NaN; the mask product then zeroes them.
        prob = torch.softmax(s.masked_fill(~allowed, -1e30), dim=-1) * allowed
        att = (prob @ v).transpose(1, 2).reshape(R, T, nh * hd)
        x = x + F.linear(att, P[p + "self_attn.o_proj.weight"])
        xn = rms_norm(x, P[p + "post_attention_layernorm.weight"], eps)
        mlp = F.silu(F.linear(xn, P[p + "mlp.gate_proj.weight"])) * F.linear(xn, P[p + "mlp.up_proj.weight"])
        x = x + F.linear(mlp, P[p + "mlp.down_proj.weight"])
    x = rms_norm(x, P["model.norm.weight"], eps)
    head = P["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else P["lm_head.weight"]
    return F.linear(x, head)


def loss_of(logits, targets, normalizer):
    V = logits.shape[-1]
    return F.cross_entropy(logits.double().reshape(-1, V), targets.reshape(-1), ignore_index=-1,
                           reduction="sum") / normalizer


def make_optimizer(P, lr, b1, b2, eps, wd):
    decay = [t for t in P.values() if t.dim() == 2]
    rest = [t for t in P.values() if t.dim() != 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(b1, b2), eps=eps, foreach=False)


def grad_main(model_dir, batch_json, out_path):
    cfg = json.load(open(f"{model_dir}/config.json"))
    b = json.load(open(batch_json))
    torch.set_num_threads(int(b.get("threads", 1)))
    P = read_safetensors(f"{model_dir}/model.safetensors")
    for t in P.values():
        t.requires_grad_(True)
    shape = (b["rows"], b["T"])
    tokens = torch.tensor(b["tokens"], dtype=torch.long).view(shape)
    pos = torch.tensor(b["pos"], dtype=torch.long).view(shape)
    seg = torch.tensor(b["seg"], dtype=torch.long).view(shape)
    targets = torch.tensor(b["targets"], dtype=torch.long).view(shape)
    logits = forward(P, cfg, tokens, pos, seg)
    loss = loss_of(logits, targets, b["normalizer"])
    loss.backward()
    out = {"loss": loss.detach().reshape(1), "logits": logits.detach().reshape(-1, logits.shape[-1])}
    for name, t in P.items():
        out["grad." + name] = t.grad.clone()
    opt = make_optimizer(P, b["lr"], b["beta1"], b["beta2"], b["eps"], b["weight_decay"])
    opt.step()
    for name, t in P.items():
        out["param." + name] = t.detach().clone()
    write_safetensors(out_path, out)


def bench_main(threads, steps, rows, T, vocab, hidden, layers, heads, kv_heads, inter):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv_heads, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
           "tie_word_embeddings": True}
    hd = hidden // heads
    P = {"model.embed_tokens.weight": torch.randn(vocab, hidden) * 0.02}
    for l in range(layers):
        p = f"model.layers.{l}."
        P[p + "input_layernorm.weight"] = torch.ones(hidden)
        P[p + "self_attn.q_proj.weight"] = torch.randn(heads * hd, hidden) * 0.02
        P[p + "self_attn.q_proj.bias"] = torch.zeros(heads * hd)
        P[p + "self_attn.k_proj.weight"] = torch.randn(kv_heads * hd, hidden) * 0.02
        P[p + "self_attn.k_proj.bias"] = torch.zeros(kv_heads * hd)
        P[p + "self_attn.v_proj.weight"] = torch.randn(kv_heads * hd, hidden) * 0.02
        P[p + "self_attn.v_proj.bias"] = torch.zeros(kv_heads * hd)
        P[p + "self_attn.o_proj.weight"] = torch.randn(hidden, heads * hd) * 0.02
        P[p + "post_attention_layernorm.weight"] = torch.ones(hidden)
        P[p + "mlp.gate_proj.weight"] = torch.randn(inter, hidden) * 0.02
        P[p + "mlp.up_proj.weight"] = torch.randn(inter, hidden) * 0.02
        P[p + "mlp.down_proj.weight"] = torch.randn(hidden, inter) * 0.02
    P["model.norm.weight"] = torch.ones(hidden)
    for t in P.values():
        t.requires_grad_(True)
    opt = make_optimizer(P, 1e-3, 0.9, 0.999, 1e-8, 0.1)
    tokens = torch.randint(0, vocab, (rows, T))
    pos = torch.arange(T).repeat(rows, 1)
    seg = torch.zeros(rows, T, dtype=torch.long)
    targets = torch.roll(tokens, -1, 1)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = loss_of(forward(P, cfg, tokens, pos, seg), targets, rows * T)
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    dt = time.perf_counter() - t0
    print(f"tokens_per_s {rows * T * steps / dt:.1f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "grad":
        grad_main(*sys.argv[2:])
    elif len(sys.argv) == 12 and sys.argv[1] == "bench":
        bench_main(*map(int, sys.argv[2:]))
    else:
        sys.exit(__doc__)
