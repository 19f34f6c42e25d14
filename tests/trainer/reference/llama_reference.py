#!/usr/bin/python3
"""An independent float64 NumPy implementation of the Hugging Face Llama equations.

Used by tests/trainer/model_parity_test.cc to check the C++ model. It shares no code with the
trainer: it has its own safetensors reader and writer, reads config.json itself, and writes
the equations differently where it can (RoPE rotates explicit (i, i + Dh/2) pairs; attention
loops over heads and maps each to its kv head).

Shape legend: B batch, T tokens, D hidden, H heads, Hkv kv heads, Dh head dim, V vocab,
F intermediate, r LoRA rank.

Commands (all tensors travel as safetensors files):
  forward --model-dir DIR --input IN --out OUT [--adapter DIR]
      IN holds "input_ids" [B,T] I64; OUT gets "logits" [B,T,V] F32. With --adapter, the PEFT
      adapter in DIR (read from its own files) is applied as W + (alpha/r) B A.
  rmsnorm --input IN --out OUT --eps E          IN: "x" [..,D], "weight" [D]; OUT: "y"
  rope --input IN --out OUT --theta THETA       IN: "x" [B,H,T,Dh]; OUT: "y"
  attention --input IN --out OUT                IN: "q" [B,H,T,Dh], "k", "v" [B,Hkv,T,Dh];
                                                OUT: "y" [B,H,T,Dh] (causal, GQA)
  check-adapter --adapter DIR --model-dir DIR [--expect-r R --expect-alpha A]
      Checks PEFT key names, dtypes, shapes ([r,in] A, [out,r] B) and adapter_config.json
      fields; prints a JSON summary; exit status 1 with a message on any mismatch.
"""
import argparse
import json
import re
import struct
import sys

import numpy as np

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}


def read_safetensors(path):
    """Returns (tensors: name -> np.ndarray, dtypes: name -> str, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    tensors, dtypes = {}, {}
    metadata = header.pop("__metadata__", {})
    for name, info in header.items():
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        shape = tuple(info["shape"])
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32).reshape(shape)
        else:
            array = np.frombuffer(raw, dtype=np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
            array = array.reshape(shape)
        tensors[name] = array
        dtypes[name] = info["dtype"]
    return tensors, dtypes, metadata


def write_safetensors(path, tensors):
    """tensors: name -> np.ndarray (float32 or int64)."""
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)


# ----------------------------------------------------------------------------- the equations

def rms_norm(x, weight, eps):
    """y = weight * x / sqrt(mean(x^2) + eps) over the last dim."""
    x = x.astype(np.float64)
    return weight.astype(np.float64) * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def rope(x, theta):
    """x [B,H,T,Dh]: rotate each pair (i, i + Dh/2) at position t by t / theta^(2i/Dh)."""
    x = x.astype(np.float64)
    dh = x.shape[-1]
    half = dh // 2
    tokens = x.shape[-2]
    # HF computes the frequencies in float32; mirror that so theta != 10000 is exact too.
    inv_freq = (1.0 / (np.float32(theta) ** (np.arange(0, dh, 2).astype(np.float32) / np.float32(dh)))).astype(np.float32)
    y = np.empty_like(x)
    for t in range(tokens):
        angle = (np.float32(t) * inv_freq).astype(np.float64)  # [Dh/2]
        c, s = np.cos(angle), np.sin(angle)
        first, second = x[..., t, :half], x[..., t, half:]
        y[..., t, :half] = first * c - second * s
        y[..., t, half:] = second * c + first * s
    return y


def attention(q, k, v):
    """Causal softmax attention; query head h reads kv head h // (H / Hkv)."""
    q, k, v = (a.astype(np.float64) for a in (q, k, v))
    batch, heads, tokens, dh = q.shape
    group = heads // k.shape[1]
    out = np.zeros_like(q)
    causal = np.tril(np.ones((tokens, tokens), dtype=bool))
    for b in range(batch):
        for h in range(heads):
            kv = h // group
            scores = q[b, h] @ k[b, kv].T / np.sqrt(dh)  # [T,T]
            scores = np.where(causal, scores, -np.inf)
            scores -= scores.max(axis=-1, keepdims=True)
            weights = np.exp(scores)
            weights /= weights.sum(axis=-1, keepdims=True)
            out[b, h] = weights @ v[b, kv]
    return out


def silu(x):
    return x / (1.0 + np.exp(-x))


def linear(x, weights, name, bias_name=None):
    y = x @ weights[name].T
    if bias_name is not None and bias_name in weights:
        y = y + weights[bias_name]
    return y


def forward(config, weights, input_ids):
    """input_ids [B,T] -> logits [B,T,V] (float64)."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    dh = config.get("head_dim") or config["hidden_size"] // heads
    eps = config.get("rms_norm_eps", 1e-6)
    theta = config.get("rope_theta", 10000.0)
    batch, tokens = input_ids.shape
    h = weights["model.embed_tokens.weight"][input_ids]  # [B,T,D]
    for layer in range(config["num_hidden_layers"]):
        p = "model.layers.%d." % layer
        x = rms_norm(h, weights[p + "input_layernorm.weight"], eps)
        a = p + "self_attn."
        q = linear(x, weights, a + "q_proj.weight", a + "q_proj.bias")
        k = linear(x, weights, a + "k_proj.weight", a + "k_proj.bias")
        v = linear(x, weights, a + "v_proj.weight", a + "v_proj.bias")
        q = q.reshape(batch, tokens, heads, dh).transpose(0, 2, 1, 3)
        k = k.reshape(batch, tokens, kv_heads, dh).transpose(0, 2, 1, 3)
        v = v.reshape(batch, tokens, kv_heads, dh).transpose(0, 2, 1, 3)
        o = attention(rope(q, theta), rope(k, theta), v)
        o = o.transpose(0, 2, 1, 3).reshape(batch, tokens, heads * dh)
        h = h + linear(o, weights, a + "o_proj.weight", a + "o_proj.bias")
        x = rms_norm(h, weights[p + "post_attention_layernorm.weight"], eps)
        m = p + "mlp."
        gate = linear(x, weights, m + "gate_proj.weight", m + "gate_proj.bias")
        up = linear(x, weights, m + "up_proj.weight", m + "up_proj.bias")
        h = h + linear(silu(gate) * up, weights, m + "down_proj.weight", m + "down_proj.bias")
    h = rms_norm(h, weights["model.norm.weight"], eps)
    head = weights.get("lm_head.weight")
    if config.get("tie_word_embeddings", False) or head is None:
        head = weights["model.embed_tokens.weight"]
    return h @ head.T


# ----------------------------------------------------------------------------- model folders

def load_model(model_dir):
    with open(model_dir + "/config.json") as f:
        config = json.load(f)
    try:
        with open(model_dir + "/model.safetensors.index.json") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
    except FileNotFoundError:
        shards = ["model.safetensors"]
    weights = {}
    for shard in shards:
        tensors, _, _ = read_safetensors(model_dir + "/" + shard)
        weights.update({k: v.astype(np.float64) for k, v in tensors.items()})
    return config, weights


def read_adapter(adapter_dir):
    with open(adapter_dir + "/adapter_config.json") as f:
        adapter_config = json.load(f)
    tensors, dtypes, _ = read_safetensors(adapter_dir + "/adapter_model.safetensors")
    return adapter_config, tensors, dtypes


_KEY = re.compile(r"^base_model\.model\.(model\.layers\.(\d+)\.(self_attn|mlp)\."
                  r"(q|k|v|o|gate|up|down)_proj)\.lora_(A|B)\.weight$")


def apply_adapter(weights, adapter_dir):
    adapter_config, tensors, _ = read_adapter(adapter_dir)
    scale = float(adapter_config["lora_alpha"]) / float(adapter_config["r"])
    pairs = {}
    for key, value in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise ValueError("not a PEFT LoRA key: " + key)
        pairs.setdefault(match.group(1), {})[match.group(5)] = value.astype(np.float64)
    for module, ab in pairs.items():
        weights[module + ".weight"] = weights[module + ".weight"] + scale * (ab["B"] @ ab["A"])


def check_adapter(args):
    problems = []
    adapter_config, tensors, dtypes = read_adapter(args.adapter)
    config, weights = load_model(args.model_dir)
    expected_fields = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True,
    }
    for field, value in expected_fields.items():
        if adapter_config.get(field) != value:
            problems.append("adapter_config.json %s: expected %r, got %r"
                            % (field, value, adapter_config.get(field)))
    for field, kind in (("r", int), ("lora_alpha", (int, float)), ("lora_dropout", (int, float)),
                        ("target_modules", list), ("base_model_name_or_path", str)):
        if not isinstance(adapter_config.get(field), kind) or isinstance(adapter_config.get(field), bool):
            problems.append("adapter_config.json %s: missing or of the wrong type (%r)"
                            % (field, adapter_config.get(field)))
    r = adapter_config.get("r")
    if args.expect_r is not None and r != args.expect_r:
        problems.append("r: expected %d, got %r" % (args.expect_r, r))
    if args.expect_alpha is not None and adapter_config.get("lora_alpha") != args.expect_alpha:
        problems.append("lora_alpha: expected %r, got %r"
                        % (args.expect_alpha, adapter_config.get("lora_alpha")))
    targets = set(adapter_config.get("target_modules") or [])
    seen = set()
    for key, value in sorted(tensors.items()):
        match = _KEY.match(key)
        if match is None:
            problems.append("bad key " + key)
            continue
        module, proj, ab = match.group(1), match.group(4) + "_proj", match.group(5)
        if proj not in targets:
            problems.append("%s: %s is not in target_modules" % (key, proj))
        if dtypes[key] != "F32":
            problems.append("%s: expected F32, got %s" % (key, dtypes[key]))
        out_features, in_features = weights[module + ".weight"].shape
        expected = (r, in_features) if ab == "A" else (out_features, r)
        if tuple(value.shape) != expected:
            problems.append("%s: expected shape %s, got %s" % (key, expected, tuple(value.shape)))
        seen.add((module, ab))
    for layer in range(config["num_hidden_layers"]):
        for proj in targets:
            part = "mlp" if proj in ("gate_proj", "up_proj", "down_proj") else "self_attn"
            module = "model.layers.%d.%s.%s" % (layer, part, proj)
            for ab in ("A", "B"):
                if (module, ab) not in seen:
                    problems.append("missing base_model.model.%s.lora_%s.weight" % (module, ab))
    print(json.dumps({"tensors": len(tensors), "problems": problems}))
    return 1 if problems else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["forward", "rmsnorm", "rope", "attention",
                                            "check-adapter"])
    parser.add_argument("--model-dir")
    parser.add_argument("--adapter")
    parser.add_argument("--input")
    parser.add_argument("--out")
    parser.add_argument("--eps", type=float, default=1e-6)
    parser.add_argument("--theta", type=float, default=10000.0)
    parser.add_argument("--expect-r", type=int)
    parser.add_argument("--expect-alpha", type=float)
    args = parser.parse_args()

    if args.command == "check-adapter":
        return check_adapter(args)
    inputs, _, _ = read_safetensors(args.input)
    if args.command == "forward":
        config, weights = load_model(args.model_dir)
        if args.adapter:
            apply_adapter(weights, args.adapter)
        result = {"logits": forward(config, weights, inputs["input_ids"])}
    elif args.command == "rmsnorm":
        result = {"y": rms_norm(inputs["x"], inputs["weight"], args.eps)}
    elif args.command == "rope":
        result = {"y": rope(inputs["x"], args.theta)}
    else:
        result = {"y": attention(inputs["q"], inputs["k"], inputs["v"])}
    write_safetensors(args.out, {k: v.astype(np.float32) for k, v in result.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
