#!/usr/bin/env python3
"""A fine-tune of the real pretrained model through the whole service, checked with PEFT.

tuneledger-server (with one local worker) on free loopback ports fine-tunes
models/smollm2-135m-instruct on the demo card task, submitted and watched with tunectl. Then:
  - the adapter the job wrote loads with PeftModel.from_pretrained and gives the job's own final
    eval loss on the validation set (pre-tokenized here with the model's tokenizer, so both
    sides score the same tokens);
  - tuneledger-generate's greedy completions with that adapter equal transformers' greedy
    generate() with PEFT, token for token.
About 2 minutes on 2 cores. Run by ctest (tests/models/CMakeLists.txt) with the project's
Python; TUNELEDGER_BIN_DIR names the built executables.
"""

import json
import os
import subprocess
import tempfile
import time
import unittest

REPO = os.environ.get("TUNELEDGER_SOURCE_DIR",
                      os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BIN = os.environ.get("TUNELEDGER_BIN_DIR", os.path.join(REPO, "build", "bin"))
MODEL_DIR = os.environ.get("SMOLLM2_DIR", os.path.join(REPO, "models", "smollm2-135m-instruct"))
DEMO = os.path.join(REPO, "models", "demo")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def read_jsonl(path, count):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()][:count]


class SmolLM2ServiceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.isfile(os.path.join(MODEL_DIR, "model.safetensors")):
            raise AssertionError(f"{MODEL_DIR} is missing: run ./deploy/install-deps.sh")
        import torch
        from transformers import AutoTokenizer
        torch.set_num_threads(min(2, os.cpu_count() or 1))
        cls.tmp = tempfile.TemporaryDirectory(prefix="tl-smollm2-service-")
        cls.dir = cls.tmp.name
        cls.tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR, local_files_only=True)
        cls.server = None
        try:
            cls.prepare_data()
            cls.start_server()
            cls.run_job()
        except BaseException:
            cls.stop_server()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.stop_server()
        cls.tmp.cleanup()

    # ---- setup ----

    @classmethod
    def prepare_data(cls):
        tok = cls.tokenizer
        with open(os.path.join(cls.dir, "train.jsonl"), "w") as f:
            for record in read_jsonl(os.path.join(DEMO, "train.jsonl"), 256):
                f.write(json.dumps(record) + "\n")
        # The trainer's {"prompt", "completion"} layout for this tokenizer (no BOS: SmolLM2
        # adds none): prompt tokens without loss, completion tokens and EOS with loss.
        cls.valid_path = os.path.join(cls.dir, "valid.jsonl")
        with open(cls.valid_path, "w") as f:
            for record in read_jsonl(os.path.join(DEMO, "valid.jsonl"), 16):
                prompt = tok.encode(record["prompt"], add_special_tokens=False)
                completion = tok.encode(record["completion"], add_special_tokens=False)
                ids = prompt + completion + [tok.eos_token_id]
                labels = [-100] * len(prompt) + completion + [tok.eos_token_id]
                f.write(json.dumps({"input_ids": ids, "labels": labels}) + "\n")
        cls.heldout_path = os.path.join(cls.dir, "heldout.jsonl")
        with open(cls.heldout_path, "w") as f:
            for record in read_jsonl(os.path.join(DEMO, "heldout.jsonl"), 3):
                f.write(json.dumps(record) + "\n")

    @classmethod
    def start_server(cls):
        ready = os.path.join(cls.dir, "ready.json")
        cls.server_log = open(os.path.join(cls.dir, "server.log"), "w")
        cls.server = subprocess.Popen(
            [os.path.join(BIN, "tuneledger-server"), "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0", "--db", os.path.join(cls.dir, "db.sqlite"),
             "--local-workers", "1", "--work-dir", os.path.join(cls.dir, "work"),
             "--price-per-gpu-hour", "2.5", "--ready-file", ready,
             "--data-root", os.path.dirname(os.path.realpath(MODEL_DIR)),
             "--data-root", cls.dir],
            stdout=cls.server_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while not (os.path.exists(ready) and os.path.getsize(ready) > 0):
            if cls.server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("tuneledger-server did not become ready")
            time.sleep(0.1)
        with open(ready) as f:
            cls.grpc = json.load(f)["grpc"]

    @classmethod
    def stop_server(cls):
        if cls.server is not None and cls.server.poll() is None:
            cls.server.terminate()
            try:
                cls.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                cls.server.kill()
                cls.server.wait()
        cls.server = None

    @classmethod
    def tunectl(cls, *args, timeout=600):
        return subprocess.run([os.path.join(BIN, "tunectl"), "--server", cls.grpc, *args],
                              capture_output=True, text=True, timeout=timeout)

    @classmethod
    def run_job(cls):
        spec = {
            "name": "smollm2-service-test", "model_path": MODEL_DIR,
            "train_path": os.path.join(cls.dir, "train.jsonl"), "valid_path": cls.valid_path,
            "lora": {"r": 8, "alpha": 16, "dropout": 0.05,
                     "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                        "up_proj", "down_proj"]},
            "training": {"max_steps": 12, "batch_size": 8, "learning_rate": 0.002,
                         "warmup_steps": 2, "seq_len": 48, "eval_every_steps": 12,
                         "checkpoint_every_steps": 6},
        }
        spec_path = os.path.join(cls.dir, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        submitted = cls.tunectl("--output", "json", "submit", "--spec", spec_path)
        if submitted.returncode != 0:
            raise AssertionError(f"submit failed: {submitted.stderr}")
        cls.job_id = json.loads(submitted.stdout)["id"]
        watched = cls.tunectl("watch", cls.job_id)
        if watched.returncode != 0:
            raise AssertionError(f"job {cls.job_id} did not succeed: {watched.stdout[-2000:]}")
        cls.job = json.loads(cls.tunectl("--output", "json", "get", cls.job_id).stdout)

    # ---- checks ----

    def peft_model(self):
        import peft
        import torch
        from transformers import AutoModelForCausalLM
        base = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32,
                                                    local_files_only=True)
        return peft.PeftModel.from_pretrained(base, self.job["adapter_path"]).eval()

    def test_job_succeeded_with_an_adapter(self):
        self.assertEqual(self.job["state"], "SUCCEEDED")
        self.assertTrue(os.path.isfile(os.path.join(self.job["adapter_path"],
                                                    "adapter_model.safetensors")))

    def test_adapter_loads_in_peft_with_the_jobs_eval_loss(self):
        import torch
        model = self.peft_model()
        loss_sum, targets = 0.0, 0
        for record in read_jsonl(self.valid_path, 1000):
            ids = torch.tensor([record["input_ids"]])
            labels = torch.tensor(record["labels"][1:])
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, :-1].float()
            keep = labels != -100
            loss_sum += float(torch.nn.functional.cross_entropy(logits[keep], labels[keep],
                                                                reduction="sum"))
            targets += int(keep.sum())
        peft_loss = loss_sum / targets
        job_loss = self.job["progress"]["eval_loss"]
        print(f"eval loss: job {job_loss:.6f}, PEFT-loaded adapter {peft_loss:.6f}")
        self.assertAlmostEqual(peft_loss, job_loss, delta=1e-3)

    def test_generate_equals_transformers_greedy_decoding(self):
        import torch
        scored = subprocess.run(
            [os.path.join(BIN, "tuneledger-generate"), "--model", MODEL_DIR, "--adapter",
             self.job["adapter_path"], "--data", self.heldout_path, "--max-new-tokens", "12",
             "--threads", "2"], capture_output=True, text=True, timeout=600)
        self.assertEqual(scored.returncode, 0, scored.stderr)
        ours = [json.loads(line) for line in scored.stdout.splitlines()]
        ours = [line for line in ours if line["type"] == "example"]
        model = self.peft_model()
        tok = self.tokenizer
        for line in ours:
            ids = torch.tensor([tok.encode(line["prompt"], add_special_tokens=False)])
            with torch.no_grad():
                out = model.generate(input_ids=ids, max_new_tokens=12, do_sample=False,
                                     eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
            theirs = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            self.assertEqual(line["generated"], theirs, line["prompt"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
