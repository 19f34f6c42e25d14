#!/usr/bin/env python3
"""deploy/import_gguf.py on GGUF files this test writes itself.

A random 2-layer llama (GQA, untied and tied variants) is quantized by the test's own
quantizer (Q8_0, Q4_1) or stored as F16 / F32, with attn_q / attn_k rows permuted the way
llama.cpp's converter stores them, and written by the test's own GGUF writer together with a
small byte-level BPE tokenizer. The converter's folder must load in transformers
(AutoModelForCausalLM, AutoTokenizer, offline), and every weight must equal the test's
dequantized reference rounded to bf16, exactly. A tensor of an unsupported type, a truncated
file and a file that is not GGUF are clear errors that leave no output behind.

Run by ctest (tests/models/CMakeLists.txt) with the project's Python (TUNELEDGER_PYTHON:
torch, transformers); the converter runs under IMPORT_GGUF_PYTHON (default /usr/bin/python3,
as deploy/install-deps.sh runs it).
"""

import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

REPO = os.environ.get("TUNELEDGER_SOURCE_DIR",
                      os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
CONVERTER = os.path.join(REPO, "deploy", "import_gguf.py")
CONVERTER_PYTHON = os.environ.get("IMPORT_GGUF_PYTHON", "/usr/bin/python3")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# ---------------------------------------------------------------------------------------------
# A minimal GGUF v3 writer (little-endian), from the format description.

U8, I8, U16, I16, U32, I32, F32V, BOOL, STR, ARR, U64, I64, F64V = range(13)
SCALAR = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32V: "<f",
          U64: "<Q", I64: "<q", F64V: "<d", BOOL: "<?"}
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q4_1, GGML_Q8_0 = 0, 1, 2, 3, 8
ALIGN = 32


def gguf_string(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def gguf_value(vtype, value):
    if vtype == STR:
        return gguf_string(value)
    if vtype == ARR:
        item_type, items = value
        return (struct.pack("<IQ", item_type, len(items))
                + b"".join(gguf_value(item_type, v) for v in items))
    return struct.pack(SCALAR[vtype], value)


def write_gguf(path, metadata, tensors):
    """metadata: [(key, type, value)]; tensors: [(name, ggml_type, ne (innermost first), bytes)]."""
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata)))
    for key, vtype, value in metadata:
        out += gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)
    offset = 0
    offsets = []
    for name, ggml_type, ne, data in tensors:
        offsets.append(offset)
        out += gguf_string(name) + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", ggml_type, offset)
        offset += (len(data) + ALIGN - 1) // ALIGN * ALIGN
    out += b"\0" * (-len(out) % ALIGN)
    for (_, _, _, data), off in zip(tensors, offsets):
        out += data + b"\0" * (-len(data) % ALIGN)
    with open(path, "wb") as f:
        f.write(out)


# ---------------------------------------------------------------------------------------------
# The test's quantizers: each returns (GGUF bytes, the dequantized values as fp32).

def quantize_q8_0(w):
    blocks = w.reshape(-1, 32).astype(np.float32)
    d = (np.abs(blocks).max(axis=1) / 127).astype(np.float16)
    d32 = d.astype(np.float32)
    q = np.clip(np.round(blocks / np.where(d32 == 0, 1, d32)[:, None]), -127, 127).astype(np.int8)
    raw = b"".join(struct.pack("<e", float(d[i])) + q[i].tobytes() for i in range(len(q)))
    ref = d32[:, None] * q.astype(np.float32)
    return raw, ref.reshape(w.shape)


def quantize_q4_1(w):
    blocks = w.reshape(-1, 32).astype(np.float32)
    lo, hi = blocks.min(axis=1), blocks.max(axis=1)
    d = ((hi - lo) / 15).astype(np.float16)
    m = lo.astype(np.float16)
    d32, m32 = d.astype(np.float32), m.astype(np.float32)
    q = np.clip(np.round((blocks - m32[:, None]) / np.where(d32 == 0, 1, d32)[:, None]), 0, 15)
    q = q.astype(np.uint8)
    raw = bytearray()
    for i in range(len(q)):
        raw += struct.pack("<ee", float(d[i]), float(m[i]))
        # byte j: weight j in the low nibble, weight j + 16 in the high one
        raw += bytes(int(q[i, j]) | int(q[i, j + 16]) << 4 for j in range(16))
    ref = d32[:, None] * q.astype(np.float32) + m32[:, None]
    return bytes(raw), ref.reshape(w.shape)


def store_f16(w):
    h = w.astype(np.float16)
    return h.astype("<f2").tobytes(), h.astype(np.float32)


def store_f32(w):
    f = w.astype(np.float32)
    return f.astype("<f4").tobytes(), f


def quantize_q4_0_bytes(numel):  # an unsupported type: only the size matters
    return b"\x11" * (numel // 32 * 18)


def llama_cpp_permute(w, heads):
    """What llama.cpp's converter does to attn_q / attn_k rows (HF order -> GGUF order)."""
    return (w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:])
             .swapaxes(1, 2).reshape(w.shape))


# ---------------------------------------------------------------------------------------------
# The tiny model

HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, HEAD_DIM = 64, 96, 2, 4, 2, 16
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
                 "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
                 "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MERGES = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a", "Ġ c", "a t", "Ġc at"]


def byte_level_alphabet():
    """GPT-2's byte -> printable character table, in byte order."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    chars, extra = [], 0
    for b in range(256):
        if b in printable:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tokenizer_vocab():
    tokens = CONTROL + byte_level_alphabet()
    for merge in MERGES:
        tokens.append(merge.replace(" ", ""))
    return tokens


def make_model(rng, tied, bad_type_tensor=None):
    """(metadata, tensors, reference {hf name: fp32 array})."""
    tokens = tokenizer_vocab()
    vocab = len(tokens)
    metadata = [
        ("general.architecture", STR, "llama"),
        ("general.name", STR, "tiny test llama"),
        ("general.license", STR, "mit" if tied else ""),
        ("general.organization", STR, "tuneledger-tests"),
        ("general.basename", STR, "tiny"),
        ("general.alignment", U32, ALIGN),
        ("general.file_type", U32, 3),
        ("general.tags", ARR, (STR, ["test", "tiny"])),
        ("test.nested", ARR, (ARR, [(I16, [1, -2]), (F64V, [0.5])])),
        ("test.flags", ARR, (BOOL, [True, False])),
        ("test.small", ARR, (U8, [1, 2, 3])),
        ("test.int8", I8, -3), ("test.uint16", U16, 7), ("test.int16", I16, -7),
        ("test.int64", I64, -1), ("test.uint64", U64, 1 << 40), ("test.float64", F64V, 0.25),
        ("llama.block_count", U32, LAYERS),
        ("llama.context_length", U32, 512),
        ("llama.embedding_length", U32, HIDDEN),
        ("llama.feed_forward_length", U32, FFN),
        ("llama.attention.head_count", U32, HEADS),
        ("llama.attention.head_count_kv", U32, KV_HEADS),
        ("llama.rope.freq_base", F32V, 50000.0),
        ("llama.rope.dimension_count", U32, HEAD_DIM),
        ("llama.attention.layer_norm_rms_epsilon", F32V, 1e-5),
        ("llama.vocab_size", U32, vocab),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.pre", STR, "smollm"),
        ("tokenizer.ggml.tokens", ARR, (STR, tokens)),
        ("tokenizer.ggml.token_type", ARR, (I32, [3] * len(CONTROL) + [1] * (vocab - len(CONTROL)))),
        ("tokenizer.ggml.merges", ARR, (STR, MERGES)),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
        ("tokenizer.ggml.unknown_token_id", U32, 0),
        ("tokenizer.ggml.padding_token_id", U32, 2),
        ("tokenizer.ggml.add_bos_token", BOOL, False),
        ("tokenizer.chat_template", STR, CHAT_TEMPLATE),
    ]
    tensors, reference = [], {}

    def add(gguf_name, hf_name, w, store, heads=0):
        if heads:  # stored permuted; reference row perm[i] is stored row i
            perm = llama_cpp_permute(np.arange(w.shape[0]), heads)
            stored = w[perm]
            assert np.array_equal(stored, llama_cpp_permute(w, heads))
        else:
            perm, stored = None, w
        if gguf_name == bad_type_tensor:
            raw, deq, ggml_type = quantize_q4_0_bytes(w.size), stored, GGML_Q4_0
        else:
            raw, deq = store(stored)
            ggml_type = {quantize_q8_0: GGML_Q8_0, quantize_q4_1: GGML_Q4_1,
                         store_f16: GGML_F16, store_f32: GGML_F32}[store]
        ref = np.empty_like(deq)
        if perm is None:
            ref = deq
        else:
            ref[perm] = deq
        tensors.append((gguf_name, ggml_type, list(reversed(w.shape)), raw))
        reference[hf_name] = ref

    def matrix(rows, cols):
        return rng.standard_normal((rows, cols)).astype(np.float32) * 0.2

    def norm():
        return (1 + 0.1 * rng.standard_normal(HIDDEN)).astype(np.float32)

    add("token_embd.weight", "model.embed_tokens.weight", matrix(vocab, HIDDEN), quantize_q8_0)
    for i in range(LAYERS):
        b, h = f"blk.{i}.", f"model.layers.{i}."
        add(b + "attn_norm.weight", h + "input_layernorm.weight", norm(), store_f32)
        add(b + "attn_q.weight", h + "self_attn.q_proj.weight", matrix(HEADS * HEAD_DIM, HIDDEN),
            quantize_q4_1, HEADS)
        add(b + "attn_k.weight", h + "self_attn.k_proj.weight",
            matrix(KV_HEADS * HEAD_DIM, HIDDEN), quantize_q4_1, KV_HEADS)
        add(b + "attn_v.weight", h + "self_attn.v_proj.weight",
            matrix(KV_HEADS * HEAD_DIM, HIDDEN), quantize_q8_0)
        add(b + "attn_output.weight", h + "self_attn.o_proj.weight",
            matrix(HIDDEN, HEADS * HEAD_DIM), store_f16)
        add(b + "ffn_norm.weight", h + "post_attention_layernorm.weight", norm(), store_f32)
        add(b + "ffn_gate.weight", h + "mlp.gate_proj.weight", matrix(FFN, HIDDEN), quantize_q4_1)
        add(b + "ffn_up.weight", h + "mlp.up_proj.weight", matrix(FFN, HIDDEN), quantize_q8_0)
        add(b + "ffn_down.weight", h + "mlp.down_proj.weight", matrix(HIDDEN, FFN), store_f16)
    add("output_norm.weight", "model.norm.weight", norm(), store_f32)
    if not tied:
        add("output.weight", "lm_head.weight", matrix(vocab, HIDDEN), store_f16)
    return metadata, tensors, reference


def run_converter(gguf, out, *extra):
    return subprocess.run([CONVERTER_PYTHON, CONVERTER, gguf, out, *extra],
                          capture_output=True, text=True, timeout=120)


class GGUFImportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="gguf_import_test.")
        cls.dir = cls.tmp.name
        rng = np.random.default_rng(1234)
        cls.models = {}
        for name, tied in (("untied", False), ("tied", True)):
            metadata, tensors, reference = make_model(rng, tied)
            path = os.path.join(cls.dir, f"{name}.gguf")
            write_gguf(path, metadata, tensors)
            out = os.path.join(cls.dir, f"{name}-hf")
            r = run_converter(path, out)
            if r.returncode != 0:
                raise AssertionError(f"import_gguf.py failed on {path}:\n{r.stdout}{r.stderr}")
            cls.models[name] = (path, out, reference)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def check_weights_and_forward(self, name):
        import torch
        from transformers import AutoModelForCausalLM
        _, out, reference = self.models[name]
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16,
                                                     local_files_only=True)
        self.assertEqual(type(model).__name__, "LlamaForCausalLM")
        state = model.state_dict()
        expected_names = set(reference)
        if name == "tied":
            self.assertTrue(model.config.tie_word_embeddings)
            self.assertIs(model.lm_head.weight, model.model.embed_tokens.weight)
            expected_names.add("lm_head.weight")
            reference = dict(reference, **{"lm_head.weight": reference["model.embed_tokens.weight"]})
        else:
            self.assertFalse(model.config.tie_word_embeddings)
        self.assertEqual(set(state), expected_names)
        for key, ref in reference.items():
            want = torch.from_numpy(ref).to(torch.bfloat16)  # torch's round-to-nearest-even
            got = state[key]
            self.assertEqual(got.dtype, torch.bfloat16, key)
            self.assertEqual(tuple(got.shape), ref.shape, key)
            if not torch.equal(got, want):
                diff = (got.float() - want.float()).abs()
                self.fail(f"{name}: {key} differs from the dequantized reference: "
                          f"{int((diff > 0).sum())} of {diff.numel()} values, max {diff.max():.4g}")
        config = model.config
        self.assertEqual((config.hidden_size, config.intermediate_size, config.num_hidden_layers,
                          config.num_attention_heads, config.num_key_value_heads, config.head_dim),
                         (HIDDEN, FFN, LAYERS, HEADS, KV_HEADS, HEAD_DIM))
        self.assertEqual((config.bos_token_id, config.eos_token_id, config.pad_token_id), (1, 2, 2))
        with open(os.path.join(out, "config.json")) as f:
            raw_config = json.load(f)
        self.assertEqual(raw_config["rope_theta"], 50000.0)
        self.assertEqual(raw_config["rms_norm_eps"], 1e-5)
        self.assertEqual(raw_config["max_position_embeddings"], 512)
        self.assertEqual(raw_config["torch_dtype"], "bfloat16")
        with torch.no_grad():
            logits = model(torch.tensor([[1, 50, 60, 70]])).logits
        self.assertEqual(tuple(logits.shape), (1, 4, len(tokenizer_vocab())))
        self.assertTrue(torch.isfinite(logits.float()).all())

    def test_untied_model_weights_equal_reference(self):
        self.check_weights_and_forward("untied")

    def test_tied_model_weights_equal_reference(self):
        self.check_weights_and_forward("tied")

    def test_model_card_front_matter_states_the_licence_and_source(self):
        # The tied model's GGUF declares a licence; the untied one's is empty, so "unknown".
        for name, license_id in (("tied", "mit"), ("untied", "unknown")):
            _, out, _ = self.models[name]
            with open(os.path.join(out, "README.md"), encoding="utf-8") as f:
                lines = f.read().split("\n")
            self.assertEqual(lines[0], "---", name)
            front = dict(line.split(": ", 1) for line in lines[1:lines.index("---", 1)])
            self.assertEqual(json.loads(front["license"]), license_id, name)
            self.assertTrue(json.loads(front["base_model"]).startswith("tuneledger-tests/tiny"),
                            front)

    def test_tokenizer(self):
        from transformers import AutoTokenizer
        _, out, _ = self.models["untied"]
        tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
        vocab = {t: i for i, t in enumerate(tokenizer_vocab())}
        ids = tok.encode("the cat in the 42", add_special_tokens=True)
        # merges applied by rank, digits one at a time, no BOS added
        expected = ["t", "he", "Ġcat", "Ġ", "in", "Ġthe", "Ġ", "4", "2"]
        self.assertEqual(tok.convert_ids_to_tokens(ids), expected)
        self.assertEqual(ids, [vocab[t] for t in expected])
        self.assertEqual(tok.encode("<|im_start|>user<|im_end|>", add_special_tokens=False)[0], 1)
        self.assertEqual(tok.encode("<|im_start|>user<|im_end|>", add_special_tokens=False)[-1], 2)
        text = "Grüße, café — naïve 😀 日本\n\tx = 12345 <|im_end|>"
        self.assertEqual(tok.decode(tok.encode(text, add_special_tokens=False)), text)
        self.assertEqual((tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token),
                         ("<|im_start|>", "<|im_end|>", "<|im_end|>", "<|endoftext|>"))
        self.assertEqual(tok.decode([1, vocab["Ġthe"], 2], skip_special_tokens=True), " the")
        prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                         add_generation_prompt=True)
        self.assertEqual(prompt, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")

    def test_rerun_is_a_no_op_and_a_changed_file_reconverts(self):
        path, out, _ = self.models["untied"]
        weights = os.path.join(out, "model.safetensors")
        before = os.stat(weights).st_mtime_ns
        r = run_converter(path, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("up to date", r.stdout)
        self.assertEqual(os.stat(weights).st_mtime_ns, before)
        # another file at the same path: converted again, into the same folder
        copy_out = os.path.join(self.dir, "rerun-hf")
        self.assertEqual(run_converter(path, copy_out, "--quiet").returncode, 0)
        other, _, _ = self.models["tied"]
        r = run_converter(other, copy_out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("up to date", r.stdout)
        with open(os.path.join(copy_out, "config.json")) as f:
            self.assertTrue(json.load(f)["tie_word_embeddings"])
        self.assertEqual(sorted(p for p in os.listdir(self.dir) if p.startswith(".")), [])

    def assert_clear_error(self, path, *needles):
        out = path + "-hf"
        r = run_converter(path, out)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertIn(f"import_gguf: error: {path}: ", r.stderr)
        for needle in needles:
            self.assertIn(needle, r.stderr)
        self.assertFalse(os.path.exists(out), "a failed import left its output folder behind")
        self.assertEqual([p for p in os.listdir(self.dir) if p.startswith(".")], [],
                         "a failed import left a temporary folder behind")
        return r.stderr

    def test_unsupported_tensor_type_is_a_clear_error(self):
        metadata, tensors, _ = make_model(np.random.default_rng(7), tied=True,
                                          bad_type_tensor="blk.1.ffn_up.weight")
        path = os.path.join(self.dir, "q4_0.gguf")
        write_gguf(path, metadata, tensors)
        self.assert_clear_error(path, "'blk.1.ffn_up.weight'", "type Q4_0",
                                "supported: F32, F16, Q8_0, Q4_1")

    def test_truncated_file_is_a_clear_error(self):
        good, _, _ = self.models["untied"]
        with open(good, "rb") as f:
            data = f.read()
        # inside the last tensor's data, inside the token list, inside the fixed header
        in_tokens = data.index("Ġcat".encode()) + 2
        for cut in (len(data) - 100, in_tokens, 10):
            path = os.path.join(self.dir, f"truncated-{cut}.gguf")
            with open(path, "wb") as f:
                f.write(data[:cut])
            err = self.assert_clear_error(path, "truncated", f"the file ends at {cut}")
            if cut == len(data) - 100:
                self.assertIn("tensor 'output.weight'", err)

    def test_not_a_gguf_file_is_a_clear_error(self):
        path = os.path.join(self.dir, "not.gguf")
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04" + b"\0" * 100)
        self.assert_clear_error(path, "not a GGUF file")


if __name__ == "__main__":
    unittest.main(verbosity=2)
