#!/usr/bin/python3
"""Converts a llama GGUF file (llama.cpp's format) into a Hugging Face model folder.

  import_gguf.py MODEL.gguf OUT_DIR [--force] [--quiet]

OUT_DIR receives what transformers and tuneledger-train load:
  config.json             LlamaForCausalLM, from the GGUF's llama.* metadata
  model.safetensors       every tensor dequantized and stored as bf16 (round to nearest even)
  tokenizer.json          the `tokenizers` library's byte-level BPE (tokenizer.ggml.* metadata)
  tokenizer_config.json   special tokens, chat template (tokenizer.chat_template)
  generation_config.json  bos / eos / pad ids
  README.md               a model card whose front matter gives the licence (general.license,
                          else "unknown") and the source (general.organization/basename/size,
                          and the GGUF file): tuneledger's cost card reads it
  .import_gguf.json       stamp: the GGUF's sha256 and this script's, and the files written

Supported: GGUF v2/v3, architecture llama, tokenizer.ggml.model gpt2 (pre-tokenizer smollm or
gpt-2), tensor types F32, F16, Q8_0 and Q4_1; anything else is refused with an error that
names the file, the tensor or key, and what is wrong.

Quantized weights are dequantized exactly (Q8_0: d*q; Q4_1: d*q + m, in fp32) and then rounded
to bf16, so the result is the quantized model, not the original full-precision release.
llama.cpp stores the rows of attn_q / attn_k permuted for its RoPE layout; they are put back in
Hugging Face's order.

The folder is written into a temporary sibling and renamed into place at the end. When OUT_DIR
already holds a conversion of the same GGUF by the same version of this script, nothing is
done (--force converts anyway).

Needs only Python 3 and numpy (Debian: python3, python3-numpy).
"""

import argparse
import hashlib
import json
import mmap
import os
import shutil
import struct
import sys
import time

import numpy as np

STAMP_NAME = ".import_gguf.json"
GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types.
(T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY,
 T_UINT64, T_INT64, T_FLOAT64) = range(13)
SCALAR_FORMATS = {
    T_UINT8: "<B", T_INT8: "<b", T_UINT16: "<H", T_INT16: "<h", T_UINT32: "<I", T_INT32: "<i",
    T_FLOAT32: "<f", T_UINT64: "<Q", T_INT64: "<q", T_FLOAT64: "<d",
}
VALUE_TYPE_NAMES = {
    T_UINT8: "uint8", T_INT8: "int8", T_UINT16: "uint16", T_INT16: "int16", T_UINT32: "uint32",
    T_INT32: "int32", T_FLOAT32: "float32", T_BOOL: "bool", T_STRING: "string", T_ARRAY: "array",
    T_UINT64: "uint64", T_INT64: "int64", T_FLOAT64: "float64",
}

# ggml tensor types: id -> name (all that exist, for error messages), and the ones we read:
# id -> (weights per block, bytes per block).
GGML_TYPE_NAMES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
    10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS",
    17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S",
    23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16",
    34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}
GGML_F32, GGML_F16, GGML_Q4_1, GGML_Q8_0 = 0, 1, 3, 8
SUPPORTED_TYPES = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q8_0: (32, 34), GGML_Q4_1: (32, 20)}

# Block layouts (little-endian, packed). Q8_0: fp16 scale d, 32 int8 q; w = d*q.
# Q4_1: fp16 scale d, fp16 minimum m, 16 bytes of nibbles; weight j < 16 is the low nibble of
# byte j, weight j + 16 its high nibble; w = d*q + m.
Q8_0_BLOCK = np.dtype([("d", "<f2"), ("q", "i1", (32,))])
Q4_1_BLOCK = np.dtype([("d", "<f2"), ("m", "<f2"), ("q", "u1", (16,))])
assert Q8_0_BLOCK.itemsize == 34 and Q4_1_BLOCK.itemsize == 20

# Tokenizer token types (tokenizer.ggml.token_type).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = range(1, 7)

# llama.cpp tensor names -> Hugging Face LlamaForCausalLM names.
GLOBAL_TENSORS = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
LAYER_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}

# tokenizer.ggml.pre -> the `tokenizers` pre-tokenizer that splits text the same way.
BYTE_LEVEL_PRE = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}
PRE_TOKENIZERS = {
    # llama.cpp's "smollm": \p{N} one digit at a time, then the GPT-2 regex.
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, BYTE_LEVEL_PRE]},
    "gpt-2": BYTE_LEVEL_PRE,
}


class GGUFError(Exception):
    """A problem with the input file or its contents; the message says which and what."""


def fail(path, message):
    raise GGUFError(f"{path}: {message}")


class Progress:
    def __init__(self, quiet):
        self.quiet = quiet
        self.start = time.monotonic()

    def __call__(self, message):
        if not self.quiet:
            print(f"import_gguf: [{time.monotonic() - self.start:5.1f}s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# GGUF reading

class Tensor:
    def __init__(self, name, dims, ggml_type, offset):
        self.name = name
        self.dims = dims            # ggml's ne[]: innermost (contiguous) dimension first
        self.ggml_type = ggml_type
        self.offset = offset        # from the start of the data section
        self.start = None           # absolute file offset, set once the data section is known

    @property
    def shape(self):                # row-major (numpy / torch) shape
        return tuple(reversed(self.dims))

    @property
    def numel(self):
        n = 1
        for d in self.dims:
            n *= d
        return n

    @property
    def type_name(self):
        return GGML_TYPE_NAMES.get(self.ggml_type, f"unknown type {self.ggml_type}")


class GGUFFile:
    """The parsed header of a GGUF file; tensor data is read lazily from a memory map."""

    def __init__(self, path):
        self.path = path
        self._file = open(path, "rb")
        self.size = os.fstat(self._file.fileno()).st_size
        if self.size == 0:
            fail(path, "empty file (not a GGUF file)")
        self.buf = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        self.pos = 0
        self.metadata = {}
        self.metadata_types = {}
        self.tensors = []
        self._parse()

    def close(self):
        try:
            self.buf.close()
        except BufferError:  # a numpy view still refers to it; the map goes with the view
            pass
        self._file.close()

    # --- primitive reads, each checking the file is long enough
    def _need(self, n, what):
        if self.pos + n > self.size:
            fail(self.path, f"truncated: {what} needs {n} bytes at offset {self.pos}, but the file "
                            f"ends at {self.size}")

    def _scalar(self, fmt, what):
        n = struct.calcsize(fmt)
        self._need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def _string(self, what):
        length = self._scalar("<Q", f"length of {what}")
        self._need(length, what)
        raw = self.buf[self.pos:self.pos + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            fail(self.path, f"{what} is not valid UTF-8 ({e})")

    def _value(self, value_type, what):
        if value_type in SCALAR_FORMATS:
            return self._scalar(SCALAR_FORMATS[value_type], what)
        if value_type == T_BOOL:
            b = self._scalar("<B", what)
            if b > 1:
                fail(self.path, f"{what}: bool value {b} is neither 0 nor 1")
            return bool(b)
        if value_type == T_STRING:
            return self._string(what)
        if value_type == T_ARRAY:
            item_type = self._scalar("<I", f"item type of {what}")
            count = self._scalar("<Q", f"length of {what}")
            if item_type in SCALAR_FORMATS:
                dtype = np.dtype(SCALAR_FORMATS[item_type])
                self._need(count * dtype.itemsize, f"{what} ({count} items)")
                items = np.frombuffer(self.buf, dtype, count, self.pos).tolist()
                self.pos += count * dtype.itemsize
                return items
            if item_type not in VALUE_TYPE_NAMES:
                fail(self.path, f"{what}: unknown array item type {item_type}")
            # A string can not be shorter than its 8-byte length, nor a bool than 1 byte, nor an
            # array than 12 bytes: rejects absurd counts before looping over them.
            smallest = {T_STRING: 8, T_BOOL: 1, T_ARRAY: 12}[item_type]
            self._need(count * smallest, f"{what} ({count} items)")
            return [self._value(item_type, f"{what}[{i}]") for i in range(count)]
        fail(self.path, f"{what}: unknown value type {value_type}")

    def _parse(self):
        path = self.path
        self._need(4, "the magic number")
        magic = bytes(self.buf[0:4])
        if magic != GGUF_MAGIC:
            fail(path, f"not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r})")
        self.pos = 4
        self.version = self._scalar("<I", "the version")
        if self.version not in (2, 3):
            fail(path, f"GGUF version {self.version} is not supported (2 and 3 are)")
        tensor_count = self._scalar("<Q", "the tensor count")
        kv_count = self._scalar("<Q", "the metadata count")
        for i in range(kv_count):
            key = self._string(f"metadata key {i}")
            value_type = self._scalar("<I", f"the type of metadata {key!r}")
            if key in self.metadata:
                fail(path, f"metadata key {key!r} appears twice")
            self.metadata[key] = self._value(value_type, f"metadata {key!r}")
            self.metadata_types[key] = value_type
        alignment = self.metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            fail(path, f"general.alignment {alignment!r} is not a positive power of two")
        self.alignment = alignment
        names = set()
        for i in range(tensor_count):
            name = self._string(f"the name of tensor {i}")
            if name in names:
                fail(path, f"tensor {name!r} appears twice")
            names.add(name)
            n_dims = self._scalar("<I", f"the rank of tensor {name!r}")
            if not 1 <= n_dims <= 4:
                fail(path, f"tensor {name!r} has {n_dims} dimensions (1 to 4 allowed)")
            dims = [self._scalar("<Q", f"the shape of tensor {name!r}") for _ in range(n_dims)]
            ggml_type = self._scalar("<I", f"the type of tensor {name!r}")
            offset = self._scalar("<Q", f"the data offset of tensor {name!r}")
            if offset % alignment:
                fail(path, f"tensor {name!r}: data offset {offset} is not a multiple of the "
                           f"alignment {alignment}")
            self.tensors.append(Tensor(name, dims, ggml_type, offset))
        self.data_start = (self.pos + alignment - 1) // alignment * alignment
        for t in self.tensors:
            t.start = self.data_start + t.offset

    def check_tensor(self, t):
        """Refuses a type we can not dequantize, a bad block count, or data past the end."""
        if t.ggml_type not in SUPPORTED_TYPES:
            fail(self.path, f"tensor {t.name!r} has type {t.type_name}, which import_gguf can "
                            f"not dequantize (supported: F32, F16, Q8_0, Q4_1)")
        block, block_bytes = SUPPORTED_TYPES[t.ggml_type]
        if t.dims[0] % block:
            fail(self.path, f"tensor {t.name!r}: row length {t.dims[0]} is not a multiple of the "
                            f"{t.type_name} block size {block}")
        nbytes = t.numel // block * block_bytes
        if t.start + nbytes > self.size:
            fail(self.path, f"truncated: tensor {t.name!r} ({t.type_name}, shape "
                            f"{list(t.shape)}) needs bytes {t.start}..{t.start + nbytes}, but the "
                            f"file ends at {self.size}")
        return nbytes

    def dequantize_rows(self, t, first, count):
        """Rows [first, first + count) of tensor t (rows of dims[0] weights) as fp32."""
        row = t.dims[0]
        block, block_bytes = SUPPORTED_TYPES[t.ggml_type]
        blocks = row // block * count
        start = t.start + first * (row // block) * block_bytes
        if t.ggml_type == GGML_F32:
            out = np.frombuffer(self.buf, "<f4", row * count, start).astype(np.float32)
        elif t.ggml_type == GGML_F16:
            out = np.frombuffer(self.buf, "<f2", row * count, start).astype(np.float32)
        elif t.ggml_type == GGML_Q8_0:
            b = np.frombuffer(self.buf, Q8_0_BLOCK, blocks, start)
            out = b["d"].astype(np.float32)[:, None] * b["q"].astype(np.float32)
        else:  # Q4_1
            b = np.frombuffer(self.buf, Q4_1_BLOCK, blocks, start)
            q = np.concatenate([b["q"] & 0x0F, b["q"] >> 4], axis=1).astype(np.float32)
            out = b["d"].astype(np.float32)[:, None] * q + b["m"].astype(np.float32)[:, None]
        return out.reshape(count, row)


# ---------------------------------------------------------------------------------------------
# Conversion

def to_bf16_bits(x):
    """fp32 -> bf16 bit patterns (uint16): the upper 16 bits, rounded to nearest even."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32)
    rounded = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    bits = rounded.astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():  # keep NaN a (quiet) NaN instead of letting the carry turn it into Inf/0
        bits[nan] = ((u[nan] >> np.uint32(16)) | np.uint32(0x0040)).astype(np.uint16)
    return bits


def unpermute_rows(w, n_heads):
    """Undoes llama.cpp's Q/K row permutation: per head, rows (pairs, halves) -> (halves, pairs)."""
    out_dim, in_dim = w.shape
    return (w.reshape(n_heads, out_dim // n_heads // 2, 2, in_dim)
             .swapaxes(1, 2).reshape(out_dim, in_dim))


def meta_int(g, key, default=None):
    value = g.metadata.get(key, default)
    if value is None:
        fail(g.path, f"metadata {key!r} is missing")
    if isinstance(value, bool) or not isinstance(value, int):
        fail(g.path, f"metadata {key!r} must be an integer, got {value!r}"[:300])
    return value


def meta_float(g, key, default=None):
    value = g.metadata.get(key, default)
    if value is None:
        fail(g.path, f"metadata {key!r} is missing")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail(g.path, f"metadata {key!r} must be a number, got {value!r}"[:300])
    if g.metadata_types.get(key) == T_FLOAT32:  # 1e-05, not 9.999999747378752e-06
        return float(str(np.float32(value)))
    return float(value)


def meta_str(g, key, default=None):
    value = g.metadata.get(key, default)
    if value is None:
        fail(g.path, f"metadata {key!r} is missing")
    if not isinstance(value, str):
        fail(g.path, f"metadata {key!r} must be a string, got {value!r}"[:300])
    return value


def build_config(g):
    arch = meta_str(g, "general.architecture")
    if arch != "llama":
        fail(g.path, f"general.architecture is {arch!r}; import_gguf converts llama only")
    p = "llama."
    hidden = meta_int(g, p + "embedding_length")
    n_head = meta_int(g, p + "attention.head_count")
    n_head_kv = meta_int(g, p + "attention.head_count_kv", n_head)
    if n_head <= 0 or n_head_kv <= 0 or n_head % n_head_kv:
        fail(g.path, f"attention heads {n_head} / key-value heads {n_head_kv} are not valid")
    head_dim = meta_int(g, p + "attention.key_length", hidden // n_head)
    value_dim = meta_int(g, p + "attention.value_length", head_dim)
    rope_dim = meta_int(g, p + "rope.dimension_count", head_dim)
    if value_dim != head_dim or rope_dim != head_dim or head_dim % 2:
        fail(g.path, f"head sizes key {head_dim} / value {value_dim} / rope {rope_dim} differ or "
                     "are odd (partial rotary embeddings are not supported)")
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": meta_int(g, p + "feed_forward_length"),
        "num_hidden_layers": meta_int(g, p + "block_count"),
        "num_attention_heads": n_head,
        "num_key_value_heads": n_head_kv,
        "head_dim": head_dim,
        "max_position_embeddings": meta_int(g, p + "context_length"),
        "rms_norm_eps": meta_float(g, p + "attention.layer_norm_rms_epsilon"),
        "rope_theta": meta_float(g, p + "rope.freq_base", 10000.0),
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": 0.02,
        "torch_dtype": "bfloat16",
    }
    scaling = g.metadata.get(p + "rope.scaling.type", "none")
    factor = g.metadata.get(p + "rope.scaling.factor", g.metadata.get(p + "rope.scale_linear"))
    if scaling == "none" and factor not in (None, 1, 1.0) and p + "rope.scale_linear" in g.metadata:
        scaling = "linear"
    if scaling == "linear" and factor not in (None, 1, 1.0):
        config["rope_scaling"] = {"rope_type": "linear", "factor": float(factor)}
    elif scaling not in ("none", "linear"):
        fail(g.path, f"rope scaling {scaling!r} is not supported (none or linear)")
    return config


def map_tensors(g, config):
    """[(hf name, tensor, heads to un-permute or 0)] in the order they are written."""
    by_name = {t.name: t for t in g.tensors}
    n_layers = config["num_hidden_layers"]
    hidden, ffn = config["hidden_size"], config["intermediate_size"]
    q_dim = config["num_attention_heads"] * config["head_dim"]
    kv_dim = config["num_key_value_heads"] * config["head_dim"]
    if "rope_freqs.weight" in by_name:
        fail(g.path, "tensor 'rope_freqs.weight' (llama3-style RoPE frequency factors) is not "
                     "supported")
    embed = by_name.get("token_embd.weight")
    if embed is None:
        fail(g.path, "tensor 'token_embd.weight' is missing")
    vocab = embed.shape[0]
    expected = [("token_embd.weight", (vocab, hidden), 0)]
    for i in range(n_layers):
        b = f"blk.{i}."
        expected += [
            (b + "attn_norm.weight", (hidden,), 0),
            (b + "attn_q.weight", (q_dim, hidden), config["num_attention_heads"]),
            (b + "attn_k.weight", (kv_dim, hidden), config["num_key_value_heads"]),
            (b + "attn_v.weight", (kv_dim, hidden), 0),
            (b + "attn_output.weight", (hidden, q_dim), 0),
            (b + "ffn_norm.weight", (hidden,), 0),
            (b + "ffn_gate.weight", (ffn, hidden), 0),
            (b + "ffn_up.weight", (ffn, hidden), 0),
            (b + "ffn_down.weight", (hidden, ffn), 0),
        ]
    expected.append(("output_norm.weight", (hidden,), 0))
    if "output.weight" in by_name:
        expected.append(("output.weight", (vocab, hidden), 0))
    known = {name for name, _, _ in expected}
    for t in g.tensors:
        if t.name not in known:
            fail(g.path, f"tensor {t.name!r} has no counterpart in a {n_layers}-layer "
                         "LlamaForCausalLM")
    result = []
    for name, shape, heads in expected:
        t = by_name.get(name)
        if t is None:
            fail(g.path, f"tensor {name!r} is missing")
        if t.shape != shape:
            fail(g.path, f"tensor {name!r} has shape {list(t.shape)}, expected {list(shape)} "
                         "from the llama.* metadata")
        if name in GLOBAL_TENSORS:
            hf = GLOBAL_TENSORS[name]
        else:
            layer, rest = name[len("blk."):].split(".", 1)
            hf = f"model.layers.{layer}.{LAYER_TENSORS[rest]}"
        result.append((hf, t, heads))
    config["vocab_size"] = vocab
    config["tie_word_embeddings"] = "output.weight" not in by_name
    return result


def write_safetensors(g, mapped, path, progress):
    """Writes the tensors as bf16 safetensors, streaming row chunks to keep memory small."""
    header = {"__metadata__": {"format": "pt"}}
    offset = 0
    for hf, t, _ in mapped:
        size = t.numel * 2
        header[hf] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        offset += size
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-(8 + len(header_bytes)) % 8)
    chunk_weights = 1 << 22
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for i, (hf, t, heads) in enumerate(mapped):
            rows = t.numel // t.dims[0]
            if heads:  # the whole matrix, to reorder its rows
                w = unpermute_rows(g.dequantize_rows(t, 0, rows), heads)
                f.write(to_bf16_bits(w).tobytes())
            else:
                step = max(1, chunk_weights // t.dims[0])
                for first in range(0, rows, step):
                    w = g.dequantize_rows(t, first, min(step, rows - first))
                    f.write(to_bf16_bits(w).tobytes())
            if (i + 1) % 45 == 0 or i + 1 == len(mapped):
                progress(f"tensors {i + 1}/{len(mapped)} written")
        if f.tell() != 8 + len(header_bytes) + offset:
            raise AssertionError("safetensors size mismatch")
    return offset


def build_tokenizer(g, config):
    """(tokenizer.json, tokenizer_config.json, generation_config.json) contents."""
    model = meta_str(g, "tokenizer.ggml.model")
    if model != "gpt2":
        fail(g.path, f"tokenizer.ggml.model is {model!r}; import_gguf converts byte-level BPE "
                     "('gpt2') tokenizers only")
    pre = meta_str(g, "tokenizer.ggml.pre", "")
    if pre not in PRE_TOKENIZERS:
        fail(g.path, f"tokenizer.ggml.pre {pre!r} is not supported (supported: "
                     f"{', '.join(sorted(PRE_TOKENIZERS))})")
    tokens = g.metadata.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens or not all(isinstance(s, str) for s in tokens):
        fail(g.path, "metadata 'tokenizer.ggml.tokens' is missing or not a list of strings")
    types = g.metadata.get("tokenizer.ggml.token_type", [TOKEN_NORMAL] * len(tokens))
    if not isinstance(types, list) or len(types) != len(tokens):
        fail(g.path, "metadata 'tokenizer.ggml.token_type' does not have one entry per token")
    merges = g.metadata.get("tokenizer.ggml.merges", [])
    if not isinstance(merges, list) or not all(isinstance(s, str) for s in merges):
        fail(g.path, "metadata 'tokenizer.ggml.merges' is not a list of strings")
    if len(tokens) > config["vocab_size"]:
        fail(g.path, f"{len(tokens)} tokens but token_embd has only {config['vocab_size']} rows")

    vocab = {}
    for i, token in enumerate(tokens):
        if token in vocab:
            fail(g.path, f"token {token!r} appears twice in tokenizer.ggml.tokens "
                         f"(ids {vocab[token]} and {i})")
        vocab[token] = i
    pairs = []
    for i, merge in enumerate(merges):
        parts = merge.split(" ")
        if len(parts) != 2 or not all(parts):
            fail(g.path, f"tokenizer.ggml.merges[{i}] {merge!r} is not two tokens separated by "
                         "one space")
        for piece in (parts[0], parts[1], parts[0] + parts[1]):
            if piece not in vocab:
                fail(g.path, f"tokenizer.ggml.merges[{i}] {merge!r}: {piece!r} is not a token")
        pairs.append(parts)

    added = []
    for i, (token, kind) in enumerate(zip(tokens, types)):
        if kind in (TOKEN_CONTROL, TOKEN_USER_DEFINED):
            added.append({"id": i, "content": token, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False,
                          "special": kind == TOKEN_CONTROL})
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZERS[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": pairs},
    }

    def special(key):
        if key not in g.metadata:
            return None, None
        i = meta_int(g, key)
        if not 0 <= i < len(tokens):
            fail(g.path, f"metadata {key!r} = {i} is not a token id (0..{len(tokens) - 1})")
        return i, tokens[i]

    bos_id, bos = special("tokenizer.ggml.bos_token_id")
    eos_id, eos = special("tokenizer.ggml.eos_token_id")
    unk_id, unk = special("tokenizer.ggml.unknown_token_id")
    pad_id, pad = special("tokenizer.ggml.padding_token_id")
    for key, value in (("bos_token_id", bos_id), ("eos_token_id", eos_id), ("pad_token_id", pad_id)):
        if value is not None:
            config[key] = value
    add_bos = g.metadata.get("tokenizer.ggml.add_bos_token", False)
    add_eos = g.metadata.get("tokenizer.ggml.add_eos_token", False)
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": bool(add_bos),
        "add_eos_token": bool(add_eos),
        "clean_up_tokenization_spaces": False,
        "model_max_length": config["max_position_embeddings"],
    }
    for key, value in (("bos_token", bos), ("eos_token", eos), ("unk_token", unk),
                       ("pad_token", pad)):
        if value is not None:
            tokenizer_config[key] = value
    if "tokenizer.chat_template" in g.metadata:
        tokenizer_config["chat_template"] = meta_str(g, "tokenizer.chat_template")
    generation = {k: config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")
                  if k in config}
    return tokenizer, tokenizer_config, generation


# ---------------------------------------------------------------------------------------------
# Driver

def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def read_stamp(out_dir):
    try:
        with open(os.path.join(out_dir, STAMP_NAME), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def up_to_date(out_dir, stamp):
    """The folder holds a complete conversion with the given hashes."""
    old = read_stamp(out_dir)
    if not isinstance(old, dict) or not isinstance(old.get("files"), dict):
        return False
    if any(old.get(k) != stamp[k] for k in ("gguf_sha256", "converter_sha256")):
        return False
    for name, size in old["files"].items():
        try:
            if os.path.getsize(os.path.join(out_dir, name)) != size:
                return False
        except OSError:
            return False
    return True


def remove_stale(parent, base):
    """Removes .BASE.tmp-PID / .BASE.old-PID folders left by a run that was killed."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        for kind in (".tmp-", ".old-"):
            prefix = f".{base}{kind}"
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                pid = int(name[len(prefix):])
                try:
                    os.kill(pid, 0)
                    continue  # that run is still going
                except ProcessLookupError:
                    pass
                except OSError:
                    continue
                shutil.rmtree(os.path.join(parent, name), ignore_errors=True)


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")


def model_card(g, gguf_path):
    """README.md text: Hugging Face front matter with the GGUF's licence and source."""
    meta = g.metadata

    def text(key):
        value = meta.get(key)
        return value if isinstance(value, str) and value.strip() else None

    license_id = text("general.license") or "unknown"
    parts = [p for p in (text("general.organization"), text("general.basename"),
                         text("general.size_label")) if p]
    source = "/".join(parts[:1] + ["-".join(parts[1:])]) if len(parts) > 1 else (
        text("general.name") or os.path.basename(gguf_path))
    source = f"{source} (from the GGUF file {os.path.basename(gguf_path)})"
    quoted = json.dumps  # a JSON string is a valid YAML scalar
    return (f"---\nlicense: {quoted(license_id)}\nbase_model: {quoted(source)}\n---\n"
            f"# {text('general.name') or os.path.basename(gguf_path)}\n\n"
            f"Converted by tuneledger's deploy/import_gguf.py from {os.path.basename(gguf_path)}: "
            f"weights dequantized to bf16 (not bit-identical to the original release). "
            f"Licence as the GGUF file's metadata states it: {license_id}.\n")


def convert(gguf_path, out_dir, force=False, quiet=False):
    progress = Progress(quiet)
    gguf_path = os.path.abspath(gguf_path)
    out_dir = os.path.abspath(out_dir.rstrip("/") or "/")
    if not os.path.isfile(gguf_path):
        raise GGUFError(f"{gguf_path}: no such file")
    progress(f"reading {gguf_path} ({os.path.getsize(gguf_path) / 1e6:.1f} MB)")
    stamp = {"gguf_sha256": sha256_of(gguf_path),
             "converter_sha256": sha256_of(os.path.abspath(__file__))}
    if not force and up_to_date(out_dir, stamp):
        progress(f"{out_dir} is up to date (GGUF sha256 {stamp['gguf_sha256'][:16]}...)")
        return False

    g = GGUFFile(gguf_path)
    try:
        progress(f"GGUF v{g.version}: {len(g.metadata)} metadata keys, {len(g.tensors)} tensors, "
                 f"'{g.metadata.get('general.name', '?')}'")
        config = build_config(g)
        mapped = map_tensors(g, config)
        for _, t, _ in mapped:
            g.check_tensor(t)
        tokenizer, tokenizer_config, generation = build_tokenizer(g, config)
        counts = {}
        for _, t, _ in mapped:
            counts[t.type_name] = counts.get(t.type_name, 0) + 1
        progress(f"llama: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
                 f"heads {config['num_attention_heads']}/{config['num_key_value_heads']}, vocab "
                 f"{config['vocab_size']}, tied embeddings {config['tie_word_embeddings']}; "
                 f"tensor types {', '.join(f'{k} x{v}' for k, v in sorted(counts.items()))}")

        parent = os.path.dirname(out_dir)
        os.makedirs(parent, exist_ok=True)
        remove_stale(parent, os.path.basename(out_dir))
        tmp = os.path.join(parent, f".{os.path.basename(out_dir)}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        try:
            data_bytes = write_safetensors(g, mapped, os.path.join(tmp, "model.safetensors"),
                                           progress)
            params = data_bytes // 2
            write_json(os.path.join(tmp, "config.json"), config)
            with open(os.path.join(tmp, "tokenizer.json"), "w", encoding="utf-8") as f:
                json.dump(tokenizer, f, ensure_ascii=False, separators=(",", ":"))
            write_json(os.path.join(tmp, "tokenizer_config.json"), tokenizer_config)
            write_json(os.path.join(tmp, "generation_config.json"), generation)
            with open(os.path.join(tmp, "README.md"), "w", encoding="utf-8") as f:
                f.write(model_card(g, gguf_path))
            stamp["gguf"] = gguf_path
            stamp["parameters"] = params
            stamp["files"] = {name: os.path.getsize(os.path.join(tmp, name))
                              for name in sorted(os.listdir(tmp))}
            write_json(os.path.join(tmp, STAMP_NAME), stamp)
            # Swap the finished folder in: the old one (if any) is moved aside first, since a
            # directory can not be renamed over a non-empty one.
            old = None
            if os.path.lexists(out_dir):
                old = os.path.join(parent, f".{os.path.basename(out_dir)}.old-{os.getpid()}")
                os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            if old:
                if os.path.isdir(old) and not os.path.islink(old):
                    shutil.rmtree(old)
                else:
                    os.remove(old)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        g.close()
    progress(f"wrote {out_dir}: {params:,} parameters, model.safetensors "
             f"{stamp['files']['model.safetensors'] / 1e6:.1f} MB (bf16)")
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="import_gguf.py",
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("gguf", help="the GGUF file to read")
    parser.add_argument("out_dir", help="the Hugging Face folder to (re)write")
    parser.add_argument("--force", action="store_true",
                        help="convert even when OUT_DIR's stamp says it is up to date")
    parser.add_argument("--quiet", action="store_true", help="print errors only")
    args = parser.parse_args(argv)
    try:
        convert(args.gguf, args.out_dir, force=args.force, quiet=args.quiet)
    except GGUFError as e:
        print(f"import_gguf: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"import_gguf: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
