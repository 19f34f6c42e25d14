"""Makes what a test job needs, in a temp dir, with numpy only: a random tiny Llama model
folder (Hugging Face layout, byte-level tokenizer) and prompt/completion JSONL data.

The model learns nothing useful; it only has to load and train long enough for Prometheus to
scrape loss, throughput and cost. Written independently of the trainer's own model writer, from
the public formats (config.json, safetensors).
"""

import json
import pathlib
import struct

import numpy as np

# Byte-level tokenizer of the bundled demo model (models/README.md): 0 PAD, 1 BOS, 2 EOS,
# 3 + b for byte b.
BYTE_TOKENIZER = {"type": "byte", "pad_id": 0, "bos_id": 1, "eos_id": 2, "byte_offset": 3}
VOCAB_SIZE = 259

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 256,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "torch_dtype": "float32",
}

# tunectl submit flags shared by the test jobs.
COMMON_FLAGS = ["--batch-size", "4", "--seq-len", "64", "--lora-r", "4", "--lora-alpha", "8",
                "--seed", "1"]
# A job that runs until cancelled (far more steps than a test waits for), evaluating often.
LONG_JOB_FLAGS = COMMON_FLAGS + ["--max-steps", "1000000", "--eval-every", "5"]


def write_safetensors(path, tensors):
    """Writes {name: float32 ndarray} in the safetensors format (little-endian, 8-aligned)."""
    header, offset, blobs = {}, 0, []
    for name, array in sorted(tensors.items()):
        data = np.ascontiguousarray(array, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for blob in blobs:
            f.write(blob)


def random_llama_tensors(config, seed):
    rng = np.random.default_rng(seed)
    d = config["hidden_size"]
    ff = config["intermediate_size"]
    head_dim = d // config["num_attention_heads"]
    kv = config["num_key_value_heads"] * head_dim

    def normal(*shape):
        return rng.normal(0.0, 0.02, size=shape).astype(np.float32)

    tensors = {
        "model.embed_tokens.weight": normal(config["vocab_size"], d),
        "model.norm.weight": np.ones(d, np.float32),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        tensors.update({
            p + "self_attn.q_proj.weight": normal(d, d),
            p + "self_attn.k_proj.weight": normal(kv, d),
            p + "self_attn.v_proj.weight": normal(kv, d),
            p + "self_attn.o_proj.weight": normal(d, d),
            p + "mlp.gate_proj.weight": normal(ff, d),
            p + "mlp.up_proj.weight": normal(ff, d),
            p + "mlp.down_proj.weight": normal(d, ff),
            p + "input_layernorm.weight": np.ones(d, np.float32),
            p + "post_attention_layernorm.weight": np.ones(d, np.float32),
        })
    return tensors


def prompt_completion_lines(count, offset=0):
    words = ["cat", "dog", "sun", "map", "cup", "hat", "pen", "box"]
    lines = []
    for i in range(offset, offset + count):
        a, b = words[i % 8], words[(i // 8) % 8]
        lines.append(json.dumps({"prompt": f"copy {a} {b}:", "completion": f" {b} {a}"}))
    return "\n".join(lines) + "\n"


def make(directory, seed=7):
    """Returns (model_dir, train_path, valid_path) under `directory`."""
    directory = pathlib.Path(directory)
    model_dir = directory / "tiny-llama"
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    (model_dir / "byte_tokenizer.json").write_text(json.dumps(BYTE_TOKENIZER, indent=2) + "\n")
    write_safetensors(model_dir / "model.safetensors", random_llama_tensors(CONFIG, seed))
    train_path = directory / "train.jsonl"
    valid_path = directory / "valid.jsonl"
    train_path.write_text(prompt_completion_lines(256))
    valid_path.write_text(prompt_completion_lines(16, offset=256))
    return model_dir, train_path, valid_path
