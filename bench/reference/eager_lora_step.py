#!/usr/bin/env python3
"""Baseline for trainer_step_bench: the same LoRA training step in eager PyTorch.

A plain Llama (RMSNorm, RoPE, causal attention, SwiGLU MLP, untied or tied lm_head) with LoRA
on the named projections, written here from the architecture, not from the C++ trainer, and the
same step: forward in train mode (LoRA dropout on), mean next-token cross-entropy, backward,
global-norm clip at 1.0, AdamW (lr 2e-4, betas 0.9/0.999, eps 1e-8, no decay) on the LoRA
weights. fp32 on the CPU, torch threads = cores unless --threads says otherwise.

Run with the project's Python environment (the pinned torch the trainer links, from
deploy/install-deps.sh), so that both sides run the same ATen kernels:
    .venv/bin/python3 bench/reference/eager_lora_step.py               # GEMM peak + tiny
    .venv/bin/python3 bench/reference/eager_lora_step.py --llama110m   # + the 110M case

Prints one JSON object per measurement (gemm, then each case): tokens_per_second,
model_flops (same formula as trainer_step_bench's ModelFlopsPerToken), of_gemm_peak and
peak_rss_mib (the case alone: the peak is reset through /proc/self/clear_refs before it).
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEMM_SIZE = 2048
SEED = 1234

# Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab,
# F intermediate, r LoRA rank.


class LoraLinear(nn.Module):
    """y = x W^T + (dropout(x) A^T B^T) * alpha / r; W frozen [out,in], A [r,in], B [out,r]."""

    def __init__(self, d_in, d_out, lora):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in), requires_grad=False)
        self.lora = lora
        if lora is not None:
            self.lora_a = nn.Parameter(torch.empty(lora["r"], d_in))
            nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
            self.lora_b = nn.Parameter(torch.zeros(d_out, lora["r"]))
            self.scale = lora["alpha"] / lora["r"]
            self.dropout = lora["dropout"]

    def forward(self, x):  # [...,in] -> [...,out]
        y = F.linear(x, self.weight)
        if self.lora is None:
            return y
        x_in = F.dropout(x, self.dropout, self.training)
        return y + F.linear(F.linear(x_in, self.lora_a), self.lora_b) * self.scale


class RmsNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim), requires_grad=False)
        self.eps = eps

    def forward(self, x):  # [...,D]
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rotate_half(x):  # [...,Dh]
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DecoderLayer(nn.Module):
    def __init__(self, cfg, lora_for):
        super().__init__()
        d, h, hkv, dh, f = cfg["D"], cfg["H"], cfg["Hkv"], cfg["Dh"], cfg["F"]
        self.h, self.hkv, self.dh = h, hkv, dh
        self.q_proj = LoraLinear(d, h * dh, lora_for("q_proj"))
        self.k_proj = LoraLinear(d, hkv * dh, lora_for("k_proj"))
        self.v_proj = LoraLinear(d, hkv * dh, lora_for("v_proj"))
        self.o_proj = LoraLinear(h * dh, d, lora_for("o_proj"))
        self.gate_proj = LoraLinear(d, f, lora_for("gate_proj"))
        self.up_proj = LoraLinear(d, f, lora_for("up_proj"))
        self.down_proj = LoraLinear(f, d, lora_for("down_proj"))
        self.input_layernorm = RmsNorm(d, cfg["eps"])
        self.post_attention_layernorm = RmsNorm(d, cfg["eps"])

    def attention(self, x, cos, sin, future):  # x [B,T,D]
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.h, self.dh).transpose(1, 2)  # [B,H,T,Dh]
        k = self.k_proj(x).view(b, t, self.hkv, self.dh).transpose(1, 2)  # [B,Hkv,T,Dh]
        v = self.v_proj(x).view(b, t, self.hkv, self.dh).transpose(1, 2)  # [B,Hkv,T,Dh]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.hkv != self.h:
            k = k.repeat_interleave(self.h // self.hkv, dim=1)  # [B,H,T,Dh]
            v = v.repeat_interleave(self.h // self.hkv, dim=1)  # [B,H,T,Dh]
        scores = q @ k.transpose(2, 3) / math.sqrt(self.dh)  # [B,H,T,T]
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(b, t, self.h * self.dh)  # [B,T,H*Dh]
        return self.o_proj(out)  # [B,T,D]

    def forward(self, x, cos, sin, future):
        h = x + self.attention(self.input_layernorm(x), cos, sin, future)
        n = self.post_attention_layernorm(h)
        return h + self.down_proj(F.silu(self.gate_proj(n)) * self.up_proj(n))


class Llama(nn.Module):
    def __init__(self, cfg, lora):
        super().__init__()
        self.cfg = cfg

        def lora_for(name):
            return lora if name in lora["targets"] else None

        self.embed_tokens = nn.Parameter(torch.empty(cfg["V"], cfg["D"]), requires_grad=False)
        self.layers = nn.ModuleList(DecoderLayer(cfg, lora_for) for _ in range(cfg["L"]))
        self.norm = RmsNorm(cfg["D"], cfg["eps"])
        self.lm_head = None
        if not cfg["tied"]:
            self.lm_head = nn.Parameter(torch.empty(cfg["V"], cfg["D"]), requires_grad=False)
        inv_freq = 1.0 / (cfg["theta"] ** (torch.arange(0, cfg["Dh"], 2).float() / cfg["Dh"]))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, ids):  # ids [B,T] -> logits [B,T,V]
        t = ids.shape[1]
        freqs = torch.outer(torch.arange(t).float(), self.inv_freq)  # [T,Dh/2]
        emb = torch.cat((freqs, freqs), dim=-1)  # [T,Dh]
        cos, sin = emb.cos(), emb.sin()
        future = torch.ones(t, t, dtype=torch.bool).triu(1)  # [T,T]
        x = F.embedding(ids, self.embed_tokens)  # [B,T,D]
        for layer in self.layers:
            x = layer(x, cos, sin, future)
        head = self.embed_tokens if self.lm_head is None else self.lm_head
        return F.linear(self.norm(x), head)


def init_base(model, std, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                continue  # LoRA
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.normal_(0.0, std, generator=gen)


def config_from_hf(hf):
    h = hf["num_attention_heads"]
    return {
        "V": hf["vocab_size"],
        "D": hf["hidden_size"],
        "F": hf["intermediate_size"],
        "L": hf["num_hidden_layers"],
        "H": h,
        "Hkv": hf.get("num_key_value_heads", h),
        "Dh": hf.get("head_dim", hf["hidden_size"] // h),
        "eps": hf.get("rms_norm_eps", 1e-6),
        "theta": hf.get("rope_theta", 10000.0),
        "tied": hf.get("tie_word_embeddings", False),
        "std": hf.get("initializer_range", 0.02),
    }


ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def cases(llama110m, steps_110m):
    with open(os.path.join(REPO, "models", "tiny_llama_config.json")) as f:
        tiny = config_from_hf(json.load(f))
    out = [{
        "name": "tiny", "cfg": tiny, "B": 16, "T": 128, "steps": None,
        "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "targets": ALL_PROJECTIONS},
    }]
    if llama110m:
        large = config_from_hf({
            "vocab_size": 32000, "hidden_size": 768, "intermediate_size": 2048,
            "num_hidden_layers": 12, "num_attention_heads": 12, "rms_norm_eps": 1e-6,
        })
        out.append({
            "name": "llama110m", "cfg": large, "B": 8, "T": 256, "steps": steps_110m,
            "lora": {"r": 16, "alpha": 32, "dropout": 0.1,
                     "targets": ["q_proj", "k_proj", "v_proj", "o_proj"]},
        })
    return out


def model_flops_per_token(case):
    """Same formula as trainer_step_bench's ModelFlopsPerToken (matmuls only)."""
    c, r, t = case["cfg"], case["lora"]["r"], case["T"]
    q_out, kv_out = c["H"] * c["Dh"], c["Hkv"] * c["Dh"]
    shapes = {
        "q_proj": (c["D"], q_out), "k_proj": (c["D"], kv_out), "v_proj": (c["D"], kv_out),
        "o_proj": (q_out, c["D"]), "gate_proj": (c["D"], c["F"]), "up_proj": (c["D"], c["F"]),
        "down_proj": (c["F"], c["D"]),
    }
    base = c["V"] * c["D"] + sum(i * o for i, o in shapes.values()) * c["L"]
    lora = sum(r * (i + o) for n, (i, o) in shapes.items() if n in case["lora"]["targets"])
    attention = 12.0 * t * c["H"] * c["Dh"] * c["L"]
    return 4 * base + 6 * lora * c["L"] + attention


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def gemm_peak_flops(n=GEMM_SIZE, reps=5):
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    return 2.0 * n ** 3 / best


def train_step(model, optimizer, trainable, ids):
    optimizer.zero_grad(set_to_none=True)
    logits = model(ids)  # [B,T,V]
    v = logits.shape[-1]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, v), ids[:, 1:].reshape(-1))
    loss.backward()
    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
    optimizer.step()
    return loss.item()


def run_case(case, gemm_peak, min_seconds):
    own_peak = reset_peak_rss()
    torch.manual_seed(SEED)
    model = Llama(case["cfg"], case["lora"])
    init_base(model, case["cfg"]["std"], SEED)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-4, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=0.0)
    ids = torch.randint(case["cfg"]["V"], (case["B"], case["T"]))  # [B,T]
    train_step(model, optimizer, trainable, ids)  # warm-up
    steps, start = 0, time.perf_counter()
    while True:
        train_step(model, optimizer, trainable, ids)
        steps += 1
        elapsed = time.perf_counter() - start
        if case["steps"] is not None and steps >= case["steps"]:
            break
        if case["steps"] is None and elapsed >= min_seconds:
            break
    tokens_per_second = steps * case["B"] * case["T"] / elapsed
    flops = tokens_per_second * model_flops_per_token(case)
    return {
        "case": case["name"], "steps": steps, "seconds": round(elapsed, 3),
        "step_ms": round(1000 * elapsed / steps, 2),
        "tokens_per_second": round(tokens_per_second, 1),
        "model_gflops": round(flops / 1e9, 2), "of_gemm_peak": round(flops / gemm_peak, 3),
        "lora_params": sum(p.numel() for p in trainable),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_rss_scope": "case" if own_peak else "process",
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llama110m", action="store_true", help="add the ~110M Llama case")
    parser.add_argument("--steps", type=int, default=3, help="timed steps of the 110M case")
    parser.add_argument("--min-seconds", type=float, default=2.0,
                        help="time the tiny case for at least this long")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = gemm_peak_flops()
    print(json.dumps({"gemm_n": GEMM_SIZE, "gemm_gflops": round(peak / 1e9, 2),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}))
    sys.stdout.flush()
    for case in cases(args.llama110m, args.steps):
        print(json.dumps(run_case(case, peak, args.min_seconds)))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
