"""Writes the fuzz targets' seed corpora (tests/fuzz/README.md): tests/fuzz/<target>/seeds/.

Run with the project's Python environment (deploy/install-deps.sh --test: numpy, safetensors,
tokenizers) from the repository root; protoc (Debian's protobuf-compiler) encodes the binary
specs:

  .venv/bin/python3 tests/fuzz/make_seeds.py

The seeds are checked in; rerun this only to change them. Each is small and real-looking: files
the reference libraries write (safetensors, tokenizers) or that the trainer's documentation
describes (JSONL formats, job specs), so that libFuzzer starts from inputs that pass the first
checks and mutates its way into the deeper ones.
"""
import json
import os
import struct
import subprocess
import sys

import numpy as np
from safetensors.numpy import save as safetensors_save
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,
                        pre_tokenizers, processors, trainers)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FUZZ = os.path.join(REPO, "tests", "fuzz")
sys.path.insert(0, os.path.join(REPO, "tests", "trainer", "reference"))
import tokenizer_reference  # noqa: E402  (the parity test's tokenizer shapes and regexes)


def write(target, name, data):
    folder = os.path.join(FUZZ, target, "seeds")
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


# ---- safetensors_header ----

def safetensors_by_hand(tensors, metadata=None):
    """The format from its description (worker/trainer/model/safetensors_header.h), for dtypes
    numpy has no type for (BF16): tensors is [(name, dtype, shape, raw bytes)]."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    rng = np.random.default_rng(7)
    write("safetensors_header", "numpy_f32_i64.safetensors", safetensors_save({
        "model.embed_tokens.weight": rng.standard_normal((4, 3)).astype(np.float32),
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((3, 3)).astype(np.float32),
        "model.norm.weight": np.ones(3, dtype=np.float16),
        "position_ids": np.arange(5, dtype=np.int64),
    }, metadata={"format": "pt"}))
    write("safetensors_header", "peft_adapter_bf16.safetensors", safetensors_by_hand([
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "BF16", [2, 3],
         bytes(range(12))),
        ("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "BF16", [3, 2],
         bytes(range(12, 24))),
        ("scalar", "F64", [], struct.pack("<d", 0.5)),
        ("empty", "F32", [0, 4], b""),
        ("flags", "BOOL", [3], b"\x01\x00\x01"),
        ("bytes", "U8", [2], b"\xff\x00"),
    ], metadata={"format": "pt", "note": "seed"}))
    write("safetensors_header", "empty_header.safetensors", safetensors_by_hand([]))


# ---- jsonl_dataset ----

def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def jsonl_seeds():
    with open(os.path.join(REPO, "models", "demo", "train.jsonl"), encoding="utf-8") as f:
        demo = [next(f) for _ in range(3)]
    write("jsonl_dataset", "prompt_completion.jsonl", "".join(demo))
    write("jsonl_dataset", "text.jsonl", jsonl([
        {"text": "The quick brown fox jumps over the lazy dog."},
        {"text": "caf\u00e9 na\u00efve \u4f60\u597d \U0001F44D", "id": 7},
        {"text": "x" * 40},
    ]))
    write("jsonl_dataset", "messages.jsonl", jsonl([
        {"messages": [{"role": "system", "content": "Answer briefly."},
                      {"role": "user", "content": "Capital of France?"},
                      {"role": "assistant", "content": "Paris."}]},
        {"messages": [{"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"},
                      {"role": "user", "content": "and 3+3?"},
                      {"role": "assistant", "content": "6"}]},
    ]))
    write("jsonl_dataset", "input_ids.jsonl", jsonl([
        {"input_ids": [1, 75, 104, 111, 2]},
        {"input_ids": [1, 100, 101, 102, 2], "labels": [-100, -100, 101, 102, 2]},
    ]))
    write("jsonl_dataset", "mixed_with_blank_lines.jsonl",
          jsonl([{"text": "one"}]) + "\n   \n" +
          jsonl([{"prompt": "Q: ", "completion": "A\n", "source": "seed"},
                 {"input_ids": [3, 4, 5]}]) + "\r\n")


# ---- hf_tokenizer ----

SENTENCES = tokenizer_reference.corpus(10000)[:400]


def tokenizer_seed(name, tok, config=None):
    data = json.loads(tok.to_str())
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if config is not None:
        text += "\0" + json.dumps(config)
    write("hf_tokenizer", name, text)


def hf_tokenizer_seeds():
    # The unit test's hand-written BPE (tests/trainer/text_hf_tokenizer_test.cc).
    small = {
        "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"},
        "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": False,
                  "vocab": {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "c": 5, "ab": 6,
                            "abc": 7},
                  "merges": ["a b", ["ab", "c"]]},
        "decoder": None,
        "added_tokens": [{"id": 1, "content": "<s>", "special": True},
                         {"id": 2, "content": "</s>", "special": True}],
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
    }
    write("hf_tokenizer", "small_bpe.json", json.dumps(small))

    # Qwen2-style byte-level BPE with a split regex and an EOS-only config.
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tokenizer_reference.QWEN2_REGEX), behavior="isolated",
                             invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(SENTENCES, tokenizer_reference.byte_level_trainer(
        300, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    tokenizer_seed("qwen2_byte_level.json", tok,
                   {"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>"})

    # Llama 2-style: Prepend/Replace normalizers, byte fallback, <s> template.
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"),
                                           normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=90, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=40,
        show_progress=False))
    tok = tokenizer_reference.reload(tok, tokenizer_reference.with_byte_tokens)
    tok.post_processor = tokenizer_reference.template("<s> $A", tok, ["<s>"])
    tokenizer_seed("llama2_byte_fallback.json", tok,
                   {"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": True})

    # Metaspace with lowercase normalizer and a normalized added token; no config.
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    tok.train_from_iterator(SENTENCES, trainers.BpeTrainer(
        vocab_size=80, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=40,
        show_progress=False))
    tok.add_tokens([AddedToken("Magic", normalized=True)])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 1), ("</s>", 2)])
    tokenizer_seed("metaspace_template.json", tok)


# ---- job_spec (the trainer) and job_spec_validator (the server) ----

def spec_seeds():
    with open(os.path.join(REPO, "models", "demo", "spec.json"), encoding="utf-8") as f:
        demo = f.read()
    full = {
        "name": "seed-full", "model_path": "/data/models/tiny", "train_path": "/data/train.jsonl",
        "valid_path": "valid.jsonl",
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "down_proj"]},
        "training": {"epochs": 2, "batch_size": 4, "grad_accum_steps": 2,
                     "learning_rate": 0.001, "warmup_steps": 3, "lr_schedule": "LINEAR",
                     "seq_len": 64, "seed": 9, "precision": "BF16",
                     "gradient_checkpointing": True, "checkpoint_every_steps": 10,
                     "eval_every_steps": 5, "weight_decay": 0.01, "max_grad_norm": 0.5,
                     "save_merged_model": True, "sample_prompt": "Hi", "sample_max_tokens": 8},
        "budget": {"usd": 12.5, "thresholds": [0.25, 0.5, 1.0], "policy": "ALERT_ONLY"},
        "priority": 5, "labels": {"team": "nlp", "run": "seed"},
        "inherited_costs": [{"kind": "BASE_MODEL_PRETRAINING", "usd": 100.0,
                             "source": "vendor", "description": "pretraining share"}],
        "client_request_id": "req-1", "gpus": 1, "max_attempts": 2,
    }
    # The JSON mapping's other spellings: lowerCamel names, integers as strings, enum numbers.
    camel = {"name": "seed-camel", "modelPath": "m", "trainPath": "t.jsonl",
             "lora": {"r": "8", "targetModules": ["v_proj"]},
             "training": {"maxSteps": "20", "learningRate": "2e-4", "lrSchedule": 3,
                          "seqLen": 32, "maxGradNorm": 0},
             "budget": {"usd": "3"}}
    minimal = {"model_path": "m", "train_path": "t.jsonl"}
    for target in ("job_spec", "job_spec_validator"):
        write(target, "demo_spec.json", demo)
        write(target, "full.json", json.dumps(full, indent=1))
        write(target, "camel_case.json", json.dumps(camel))
        write(target, "minimal.json", json.dumps(minimal))
    # The binary form the server receives over gRPC, encoded from text format by protoc.
    text_spec = """
      name: "seed-binary" model_path: "/data/m" train_path: "/data/t.jsonl"
      lora { r: 16 alpha: 32 target_modules: "q_proj" target_modules: "v_proj" }
      training { max_steps: 100 batch_size: 8 learning_rate: 0.0002 seq_len: 128
                 lr_schedule: COSINE weight_decay: 0 }
      budget { usd: 5 thresholds: 0.5 thresholds: 1.0 policy: CANCEL }
      labels { key: "team" value: "a" } priority: -3
      inherited_costs { kind: DATA usd: 1.5 source: "s" description: "d" }
    """
    encoded = subprocess.run(
        ["protoc", "--proto_path=" + os.path.join(REPO, "proto"),
         "--encode=tuneledger.v1.JobSpec", "tuneledger/v1/jobs.proto"],
        input=text_spec.encode(), capture_output=True, check=True).stdout
    write("job_spec_validator", "binary.pb", encoded)


def main():
    safetensors_seeds()
    jsonl_seeds()
    hf_tokenizer_seeds()
    spec_seeds()


if __name__ == "__main__":
    main()
