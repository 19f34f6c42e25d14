"""The real libraries as the reference: Hugging Face transformers, PEFT and safetensors.

Run with the project's Python environment (<repo>/.venv/bin/python3, which ./tests/run.sh
fills from tests/requirements.txt). The trainer's tests (model_hf_reference_test.cc,
recipe_hf_reference_test.cc) call it and compare what tuneledger computes with what these
libraries compute on the same files. Tensors travel as safetensors files written and read with
the `safetensors` package.

Shape legend: B batch, T tokens, V vocab.

Commands:
  make-model --arch llama|qwen2|mistral --tie 0|1 --seed S --out DIR
             [--rope-parameters JSON] [--max-position-embeddings N]
      A random small model made by transformers (save_pretrained). The weights are drawn at a
      scale that gives logits of order one (HF's 0.02 init gives near-uniform logits that hide
      errors), RMSNorm weights around 1 and non-zero biases, so every tensor matters.
      --rope-parameters sets transformers 5's rope_parameters (RoPE type, theta, scaling).
  logits --model-dir DIR --input IN --out OUT [--dtypes float32,bfloat16] [--adapter DIR]
      IN holds "input_ids" [B,T] I64; OUT gets one F32 tensor [B,T,V] per dtype, named after it,
      the logits of the model loaded in that dtype. With --adapter, the model is
      PeftModel.from_pretrained(base, DIR).
  eval-loss --model-dir DIR --data FILE --dtype float32|bfloat16 [--adapter DIR]
      FILE is pre-tokenized JSONL ({"input_ids", "labels"}, HF convention: labels[t] is the
      token at t, -100 = no loss). Prints {"eval_loss": sum of next-token cross-entropy over all
      targets / number of targets, "targets": n}, the trainer's definition (causal_lm_loss.h).
  make-adapter --model-dir DIR --out DIR --r R --alpha A --targets q_proj,v_proj --seed S
      A LoRA adapter written by PEFT (get_peft_model + save_pretrained) with random A and B
      (init_lora_weights=False), so that it changes the model's outputs.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def make_model(args):
    import transformers

    common = dict(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2,
                  max_position_embeddings=args.max_position_embeddings, rms_norm_eps=1e-5,
                  tie_word_embeddings=bool(args.tie), initializer_range=0.15)
    default_theta = {"llama": 500000.0, "qwen2": 1000000.0, "mistral": 1000000.0}[args.arch]
    common["rope_parameters"] = (json.loads(args.rope_parameters) if args.rope_parameters else
                                 {"rope_type": "default", "rope_theta": default_theta})
    if args.arch == "llama":
        config = transformers.LlamaConfig(**common)
        model_class = transformers.LlamaForCausalLM
    elif args.arch == "qwen2":
        config = transformers.Qwen2Config(**common)
        model_class = transformers.Qwen2ForCausalLM
    else:
        config = transformers.MistralConfig(sliding_window=64, **common)
        model_class = transformers.MistralForCausalLM
    torch.manual_seed(args.seed)
    model = model_class(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1.0 + 0.2 * torch.randn_like(parameter))
            elif name.endswith(".bias"):
                parameter.copy_(0.3 * torch.randn_like(parameter))
    model.save_pretrained(args.out)


def load_model(model_dir, dtype, adapter):
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=DTYPES[dtype])
    if adapter:
        import peft

        model = peft.PeftModel.from_pretrained(model, adapter)
    model.eval()
    return model


def logits(args):
    input_ids = load_file(args.input)["input_ids"]  # [B,T]
    outputs = {}
    for dtype in args.dtypes.split(","):
        model = load_model(args.model_dir, dtype, args.adapter)
        with torch.no_grad():
            outputs[dtype] = model(input_ids=input_ids).logits.float().contiguous()  # [B,T,V]
    save_file(outputs, args.out)


def eval_loss(args):
    model = load_model(args.model_dir, args.dtype, args.adapter)
    loss_sum, targets = 0.0, 0
    with open(args.data) as f:
        for line in f:
            if not line.strip():
                continue
            record = json.loads(line)
            input_ids = torch.tensor([record["input_ids"]])  # [1,T]
            labels = torch.tensor(record.get("labels", record["input_ids"]))  # [T]
            with torch.no_grad():
                out = model(input_ids=input_ids).logits[0].float()  # [T,V]
            shifted = labels[1:]  # the target of position t is labels[t+1]
            keep = shifted != -100
            losses = torch.nn.functional.cross_entropy(out[:-1][keep], shifted[keep],
                                                       reduction="sum")
            loss_sum += float(losses)
            targets += int(keep.sum())
    print(json.dumps({"eval_loss": loss_sum / targets, "targets": targets}))


def make_adapter(args):
    import peft
    import transformers

    torch.manual_seed(args.seed)
    base = transformers.AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32)
    config = peft.LoraConfig(r=args.r, lora_alpha=args.alpha, lora_dropout=0.0,
                             target_modules=args.targets.split(","), init_lora_weights=False,
                             task_type="CAUSAL_LM")
    model = peft.get_peft_model(base, config)
    model.save_pretrained(args.out)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("make-model")
    p.add_argument("--arch", choices=["llama", "qwen2", "mistral"], required=True)
    p.add_argument("--tie", type=int, choices=[0, 1], required=True)
    p.add_argument("--rope-parameters")
    p.add_argument("--max-position-embeddings", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(run=make_model)
    p = commands.add_parser("logits")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--dtypes", default="float32")
    p.add_argument("--adapter")
    p.set_defaults(run=logits)
    p = commands.add_parser("eval-loss")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--adapter")
    p.set_defaults(run=eval_loss)
    p = commands.add_parser("make-adapter")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--r", type=int, required=True)
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--targets", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=make_adapter)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
