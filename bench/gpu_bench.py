"""tuneledger-train beside Hugging Face transformers + PEFT on one NVIDIA GPU.

Driven by bench/gpu_bench.sh, which builds tuneledger-train against this Python's torch first.
For each model shape it makes a random-init Llama (transformers, bf16, save_pretrained) and
pre-tokenized data of batch x seq_len tokens, then runs the same LoRA job both ways (r 16,
alpha 32, dropout 0.1 on all seven projections, AdamW lr 2e-4, clip 1.0, bf16 base weights):
  - HF + PEFT: get_peft_model, a plain training loop, in a child process of its own;
  - tuneledger-train: the spec below, its progress lines read as they come.
Both report tokens/s over the timed steps after the warm-up steps, and peak GPU memory as the
CUDA caching allocator counts it since the process started (torch.cuda.max_memory_allocated();
the trainer's `gpu_peak_mib`). Then the adapter tuneledger wrote is loaded with
PeftModel.from_pretrained and scored on the validation batch: its loss must equal the trainer's
own final eval loss (the PEFT-load check). Everything measured goes to one JSON file.

Two more cases of issue 14, tuneledger alone:
  - "<shape>-qlora" (e.g. 7b-qlora): the NF4-quantized base with gradient checkpointing at
    batch 1 x 2048, for its peak GPU memory (HF's QLoRA needs bitsandbytes, which is not here);
    "<shape>-qlora-dq" the same with double quantization (NF4_DQ);
  - --fp32-reference: the same job once more with fp32 activations and weights, and how far
    the fast path's eval loss is from that run's (the issue's bound: 0.5%); not for 7b at
    batch 8 x 1024, which does not fit one GPU in fp32 (7b-qlora has it).

Shape legend: B batch, T tokens, V vocab.

  python3 bench/gpu_bench.py run --trainer BIN --out FILE [--models 1b,7b] [--work DIR]
  python3 bench/gpu_bench.py run --trainer BIN --out FILE --models 7b-qlora --fp32-reference
  python3 bench/gpu_bench.py run --trainer BIN --out FILE --models smoke,smoke-qlora \
      --fp32-reference                                                    (CPU, seconds)
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
SHAPES = {
    # TinyLlama-1.1B.
    "1b": dict(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
               num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
               rms_norm_eps=1e-5, tie_word_embeddings=False),
    # Llama-2-7B.
    "7b": dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
               rms_norm_eps=1e-5, tie_word_embeddings=False),
    # A check of this script itself, on the CPU in seconds.
    "smoke": dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                  rms_norm_eps=1e-5, tie_word_embeddings=False),
}
# (batch, seq_len, warm-up steps, timed steps) per shape.
RUNS = {"1b": (8, 1024, 3, 10), "7b": (8, 1024, 3, 8), "smoke": (2, 64, 2, 3),
        "1b-qlora": (1, 2048, 2, 4), "7b-qlora": (1, 2048, 2, 4), "smoke-qlora": (1, 128, 2, 3)}
RUNS.update({f"{shape}-dq": run for shape, run in RUNS.items() if shape.endswith("-qlora")})
# The quantize_base of each QLoRA suffix; QLoRA runs use gradient checkpointing.
QLORA_SCHEMES = {"-qlora": "NF4", "-qlora-dq": "NF4_DQ"}


def split_shape(shape):
    """'7b-qlora-dq' -> ('7b', 'NF4_DQ'); '7b' -> ('7b', None)."""
    for suffix, scheme in QLORA_SCHEMES.items():
        if shape.endswith(suffix):
            return shape.removesuffix(suffix), scheme
    return shape, None
BYTE_TOKENIZER = {"type": "byte", "pad_id": 0, "bos_id": 1, "eos_id": 2, "byte_offset": 3}


def device():
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_model(shape, out):
    import transformers

    config = transformers.LlamaConfig(**SHAPES[shape])
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    with torch.device(device()):
        model = transformers.LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(out)
    # tuneledger-train wants a tokenizer; the data is pre-tokenized, so the byte one will do.
    with open(os.path.join(out, "byte_tokenizer.json"), "w") as f:
        json.dump(BYTE_TOKENIZER, f)
    del model
    if device() == "cuda":
        torch.cuda.empty_cache()


def write_data(path, lines, seq_len, vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    with open(path, "w") as f:
        for _ in range(lines):
            ids = torch.randint(3, vocab, (seq_len,), generator=generator).tolist()
            f.write(json.dumps({"input_ids": ids}) + "\n")


def read_batches(path, batch):
    with open(path) as f:
        rows = [json.loads(line)["input_ids"] for line in f if line.strip()]
    return [torch.tensor(rows[i:i + batch]) for i in range(0, len(rows) - batch + 1, batch)]


def hf_peft_step(args):
    """Child process: the HF + PEFT run; prints one JSON line."""
    import peft
    import transformers

    dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model.to(device())
    config = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.1, target_modules=TARGETS,
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, config)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0)
    batches = read_batches(args.data, args.batch)
    times, tokens = [], 0
    for step in range(args.warmup + args.steps):
        ids = batches[step % len(batches)].to(device())  # [B,T]
        if device() == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device() == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
            tokens += ids.numel()
    peak = torch.cuda.max_memory_allocated() / 2**20 if device() == "cuda" else None
    print(json.dumps({"tokens_per_sec": tokens / sum(times), "peak_mib": peak,
                      "last_loss": float(loss)}))


def peft_eval(args):
    """Child process: the tuneledger adapter through PeftModel.from_pretrained."""
    import peft
    import transformers

    dtype = torch.bfloat16 if device() == "cuda" else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype)
    model = peft.PeftModel.from_pretrained(model.to(device()), args.adapter)
    model.eval()
    loss_sum, targets = 0.0, 0
    with torch.no_grad():
        for ids in read_batches(args.data, 1):
            ids = ids.to(device())  # [1,T]
            logits = model(input_ids=ids).logits[0].float()  # [T,V]
            loss_sum += float(torch.nn.functional.cross_entropy(logits[:-1], ids[0, 1:],
                                                                reduction="sum"))
            targets += ids.size(1) - 1
    print(json.dumps({"eval_loss": loss_sum / targets}))


def child(command, *args):
    """Runs this script's `command` in a fresh process; returns its last stdout line as JSON."""
    result = subprocess.run([sys.executable, os.path.abspath(__file__), command, *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def tuneledger_run(trainer, model, train, valid, out, batch, seq_len, warmup, steps,
                   lora_extra=None, training_extra=None):
    total = warmup + steps
    spec = {
        "name": "gpu-bench", "model_path": model, "train_path": train, "valid_path": valid,
        "lora": {"r": 16, "alpha": 32, "dropout": 0.1, "target_modules": TARGETS},
        "training": {"max_steps": total, "batch_size": batch, "learning_rate": 2e-4,
                     "seq_len": seq_len, "seed": 1, "max_grad_norm": 1.0,
                     "precision": "BF16" if device() == "cuda" else "FP32",
                     "checkpoint_every_steps": 1000000, "eval_every_steps": total},
    }
    spec["lora"].update(lora_extra or {})
    spec["training"].update(training_extra or {})
    spec_path = out + ".spec.json"
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    started = time.perf_counter()
    process = subprocess.Popen([trainer, "--spec", spec_path, "--out", out],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for text in process.stdout:
        line = json.loads(text)
        lines.append(line)
        if line["type"] == "progress":
            print(f"  tuneledger step {line['step']}/{total}: loss {line['loss']:.4f}",
                  flush=True)
    stderr = process.stderr.read()
    if process.wait() != 0:
        raise RuntimeError(f"tuneledger-train failed:\n{stderr[-4000:]}")
    progress = [line for line in lines if line["type"] == "progress"]
    first, last = progress[warmup - 1], progress[-1]
    done = lines[-1]
    return {
        "tokens_per_sec": (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"]),
        "peak_mib": last.get("gpu_peak_mib"),
        "last_loss": last["loss"],
        "eval_loss": done["eval_loss"],
        "adapter_dir": done["adapter_dir"],
        "wall_s": time.perf_counter() - started,
    }


def run(args):
    work = args.work or tempfile.mkdtemp(prefix="tuneledger-gpu-bench-")
    os.makedirs(work, exist_ok=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(0) if device() == "cuda" else "cpu",
        "torch": torch.__version__, "python": platform.python_version(),
        "trainer": args.trainer, "models": {},
    }
    try:
        import peft
        import transformers
        report["transformers"], report["peft"] = transformers.__version__, peft.__version__
    except ImportError as error:
        raise SystemExit(f"gpu_bench.py needs transformers and peft: {error}")
    for shape in args.models.split(","):
        batch, seq_len, warmup, steps = RUNS[shape]
        base_shape, scheme = split_shape(shape)
        qlora = scheme is not None
        print(f"== {shape}: B {batch} x T {seq_len}, {warmup} warm-up + {steps} timed steps",
              flush=True)
        model = os.path.join(work, f"model-{base_shape}")
        train = os.path.join(work, f"train-{shape}.jsonl")
        valid = os.path.join(work, f"valid-{shape}.jsonl")
        started = time.perf_counter()
        if not os.path.isdir(model):
            make_model(base_shape, model)
        vocab = SHAPES[base_shape]["vocab_size"]
        write_data(train, batch * (warmup + steps), seq_len, vocab, seed=1)
        write_data(valid, batch, seq_len, vocab, seed=2)
        result = {"batch": batch, "seq_len": seq_len, "warmup_steps": warmup,
                  "timed_steps": steps, "setup_s": time.perf_counter() - started}
        lora_extra, training_extra = (({"quantize_base": scheme}, {"gradient_checkpointing": True})
                                      if qlora else ({}, {}))
        if not qlora:
            print("  HF + PEFT ...", flush=True)
            result["hf_peft"] = child("hf-step", "--model", model, "--data", train, "--batch",
                                      str(batch), "--warmup", str(warmup), "--steps", str(steps))
            print(f"  HF + PEFT: {result['hf_peft']}", flush=True)
        result["tuneledger"] = tuneledger_run(args.trainer, model, train, valid,
                                              os.path.join(work, f"out-{shape}"), batch, seq_len,
                                              warmup, steps, lora_extra, training_extra)
        print(f"  tuneledger: {result['tuneledger']}", flush=True)
        # fp32 7B at batch 8 x 1024 needs more memory than one GPU has.
        if args.fp32_reference and shape == "7b":
            result["fp32_reference"] = None
        elif args.fp32_reference:
            print("  tuneledger, fp32 reference ...", flush=True)
            reference = tuneledger_run(args.trainer, model, train, valid,
                                       os.path.join(work, f"out-{shape}-fp32"), batch, seq_len,
                                       warmup, steps, lora_extra,
                                       dict(training_extra, precision="FP32"))
            result["fp32_reference"] = {
                "eval_loss": reference["eval_loss"],
                "fast_eval_loss": result["tuneledger"]["eval_loss"],
                "relative_diff": abs(result["tuneledger"]["eval_loss"] - reference["eval_loss"]) /
                abs(reference["eval_loss"]),
                "tokens_per_sec": reference["tokens_per_sec"],
                "peak_mib": reference["peak_mib"],
            }
            print(f"  fp32 reference: {result['fp32_reference']}", flush=True)
        if not qlora:
            check = child("peft-eval", "--model", model, "--adapter",
                          result["tuneledger"]["adapter_dir"], "--data", valid)
            result["peft_load_check"] = {
                "trainer_eval_loss": result["tuneledger"]["eval_loss"],
                "peft_eval_loss": check["eval_loss"],
                "abs_diff": abs(check["eval_loss"] - result["tuneledger"]["eval_loss"]),
            }
            ours, theirs = result["tuneledger"], result["hf_peft"]
            result["speed_ratio"] = ours["tokens_per_sec"] / theirs["tokens_per_sec"]
            if ours["peak_mib"] and theirs["peak_mib"]:
                result["memory_ratio"] = ours["peak_mib"] / theirs["peak_mib"]
        report["models"][shape] = result
        with open(args.out, "w") as f:  # after each model, so a timeout keeps what was done
            json.dump(report, f, indent=2)
        later = args.models.split(",")[args.models.split(",").index(shape) + 1:]
        if not args.keep and all(split_shape(s)[0] != base_shape for s in later):
            shutil.rmtree(model, ignore_errors=True)
    print("\n| model | tuneledger tok/s | HF+PEFT tok/s | ratio | tuneledger peak MiB | "
          "HF+PEFT peak MiB | PEFT-load loss (trainer / PEFT) | eval loss vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for shape, r in report["models"].items():
        ours = r["tuneledger"]
        theirs = r.get("hf_peft", {})
        check = r.get("peft_load_check")
        reference = r.get("fp32_reference")
        print(f"| {shape} | {ours['tokens_per_sec']:,.0f} | "
              f"{theirs.get('tokens_per_sec', 0):,.0f} | {r.get('speed_ratio', 0):.2f}x | "
              f"{ours['peak_mib'] or 0:,.0f} | {theirs.get('peak_mib') or 0:,.0f} | "
              + (f"{check['trainer_eval_loss']:.5f} / {check['peft_eval_loss']:.5f}"
                 if check else "-")
              + " | " + (f"{100 * reference['relative_diff']:.3f}%" if reference else "-") + " |")
    print(f"\nwrote {args.out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("run")
    p.add_argument("--trainer", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="1b,7b")
    p.add_argument("--work")
    p.add_argument("--keep", action="store_true", help="keep the model folders")
    p.add_argument("--fp32-reference", action="store_true",
                   help="also run each case with fp32 activations and weights")
    p.set_defaults(run=run)
    p = commands.add_parser("hf-step")
    p.add_argument("--model", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--warmup", type=int, required=True)
    p.add_argument("--steps", type=int, required=True)
    p.set_defaults(run=hf_peft_step)
    p = commands.add_parser("peft-eval")
    p.add_argument("--model", required=True)
    p.add_argument("--adapter", required=True)
    p.add_argument("--data", required=True)
    p.set_defaults(run=peft_eval)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
