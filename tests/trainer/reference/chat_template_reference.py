"""transformers' apply_chat_template as the reference for tuneledger's chat templates
(lm/text/hf_chat_template.h and the Jinja subset under it).

Run with the project's Python environment (<repo>/.venv/bin/python3: transformers, tokenizers,
jinja2 from tests/requirements.txt). No model hub is reachable, so it makes its own folders:

  python3 chat_template_reference.py --out DIR [--smollm2-dir MODEL_DIR]

(a) writes DIR/conversations.json: every non-empty prefix of a fixed set of conversations
    (system/user/assistant mixes, multi-turn, unicode, empty content, whitespace at the edges,
    Jinja syntax inside content, a tool call, a null-valued key, role-order mistakes);
(b) for each template in tests/trainer/chat_templates/ (smollm2, llama3, qwen2_5, mistral,
    phi3, features, unsupported) writes DIR/<name>/ with a small byte-level tokenizer.json
    holding the family's special tokens and a tokenizer_config.json naming them, the template
    placed the three ways transformers reads it: a "chat_template" string (most), a list of
    named templates (phi3), a chat_template.jinja file (mistral); bos_token as
    {"content": ...} (llama3);
    with --smollm2-dir, also DIR/smollm2_model/ with that model's own tokenizer files;
(c) loads each folder with AutoTokenizer and writes DIR/<name>/expected.jsonl, one line per
    conversation and add_generation_prompt (false, then true):
      {"conversation": i, "add_generation_prompt": b, "text": apply_chat_template(...,
       tokenize=False)}  or  {..., "error": str(exception), "error_type": name};
    and DIR/manifest.json {"templates": [names], "conversations": N}.
"""
import argparse
import json
import os
import shutil

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(os.path.dirname(HERE), "chat_templates")

# name -> (special tokens for tokenizer_config.json, added tokens, how the template is stored)
FAMILIES = {
    "smollm2": ({"bos_token": "<|im_start|>", "eos_token": "<|im_end|>",
                 "unk_token": "<|endoftext|>", "pad_token": "<|im_end|>"},
                ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "string"),
    "llama3": ({"bos_token": {"__type": "AddedToken", "content": "<|begin_of_text|>",
                              "lstrip": False, "normalized": False, "rstrip": False,
                              "single_word": False},
                "eos_token": "<|eot_id|>"},
               ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
                "<|end_header_id|>", "<|eot_id|>"], "string"),
    "qwen2_5": ({"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
                ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "string"),
    "mistral": ({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
                ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"], "file"),
    "phi3": ({"bos_token": "<s>", "eos_token": "<|endoftext|>", "unk_token": "<unk>",
              "pad_token": "<|endoftext|>"},
             ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|system|>", "<|user|>",
              "<|assistant|>", "<|end|>"], "list"),
    "features": ({"bos_token": "<s>", "eos_token": "</s>"}, ["<s>", "</s>"], "string"),
    "unsupported": ({"bos_token": "<s>", "eos_token": "</s>"}, ["<s>", "</s>"], "string"),
}


def S(content):
    return {"role": "system", "content": content}


def U(content):
    return {"role": "user", "content": content}


def A(content):
    return {"role": "assistant", "content": content}


CONVERSATIONS = [
    [S("You are terse."), U("Hello!"), A("Hi. How can I help?")],
    [U("What is 2+2?"), A("4")],
    [S("Answer in French."), U("Good morning"), A("Bonjour"), U("And goodbye?"),
     A("Au revoir"), U("Thanks"), A("De rien!")],
    [U("Héllo wörld: 你好, مرحبا, नमस्ते, 👨‍👩‍👧 and 🤖, e\u0301 vs é"),
     A("Unicode back: ½ ∑ 日本語 \u00a0nbsp\u3000ideographic space")],
    [U(""), A("")],
    [S(""), U("   leading and trailing spaces   "), A("\n\nnewlines around\n\n")],
    [U("\ttab first"), A("tab last\t"), U(" one space"), A("ends with space ")],
    [U("Jinja in data: {{ x }} {% if %} {# c #} and 'quotes' \"double\" \\ backslash"),
     A("<|im_end|> and [INST] as plain text")],
    [S("System only, then a question"), U("Is this the last message?")],
    [U("Hello?")],
    [U("What is the weather in Zürich?"),
     {"role": "assistant", "content": "",
      "tool_calls": [{"type": "function",
                      "function": {"name": "get_weather",
                                   "arguments": {"city": "Zürich", "days": 3,
                                                 "units": ["°C", None, True, 1.5]}}}]},
     {"role": "tool", "content": "{\"temp\": 21}"},
     A("It is 21 °C.")],
    [U("Null keys are dropped"), {"role": "assistant", "content": "ok", "tool_calls": None}],
    [U("first"), U("second in a row"), A("answer")],
    [S("sys"), A("assistant speaks first"), U("then the user")],
    [U("line one\nline two\r\nline three"), A("multi\nline\nanswer")],
]


def prefixes(conversations):
    seen = set()
    out = []
    for conversation in conversations:
        for end in range(1, len(conversation) + 1):
            prefix = conversation[:end]
            key = json.dumps(prefix, sort_keys=True)
            if key not in seen:
                seen.add(key)
                out.append(prefix)
    return out


def write_tokenizer(folder, added):
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in added])
    tokenizer.save(os.path.join(folder, "tokenizer.json"))


def read_fixture(name):
    with open(os.path.join(FIXTURES, name + ".jinja"), encoding="utf-8") as f:
        return f.read()


def make_family(out, name):
    specials, added, placement = FAMILIES[name]
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    write_tokenizer(folder, added)
    template = read_fixture(name)
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False,
              "add_eos_token": False, "model_max_length": 4096}
    config.update(specials)
    if placement == "string":
        config["chat_template"] = template
    elif placement == "list":
        config["chat_template"] = [{"name": "tool_use", "template": "{{ 'not this one' }}"},
                                   {"name": "default", "template": template}]
    else:
        with open(os.path.join(folder, "chat_template.jinja"), "w", encoding="utf-8") as f:
            f.write(template)
        config["chat_template"] = "{{ 'the chat_template.jinja file wins' }}"
    with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    return folder


def make_smollm2_model(out, model_dir):
    folder = os.path.join(out, "smollm2_model")
    os.makedirs(folder, exist_ok=True)
    for file in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(model_dir, file), folder)
    return folder


def render_all(folder, conversations):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lines = []
    for index, conversation in enumerate(conversations):
        for add_generation_prompt in (False, True):
            line = {"conversation": index, "add_generation_prompt": add_generation_prompt}
            try:
                line["text"] = tokenizer.apply_chat_template(
                    conversation, tokenize=False, add_generation_prompt=add_generation_prompt)
            except Exception as e:  # noqa: BLE001 - any failure is part of the parity
                line["error"] = str(e)
                line["error_type"] = type(e).__name__
            lines.append(line)
    with open(os.path.join(folder, "expected.jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--smollm2-dir", default="")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    conversations = prefixes(CONVERSATIONS)
    with open(os.path.join(args.out, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump(conversations, f, ensure_ascii=False, indent=1)
    names = []
    for name in FAMILIES:
        render_all(make_family(args.out, name), conversations)
        names.append(name)
    if args.smollm2_dir and os.path.exists(os.path.join(args.smollm2_dir,
                                                        "tokenizer_config.json")):
        render_all(make_smollm2_model(args.out, args.smollm2_dir), conversations)
        names.append("smollm2_model")
    with open(os.path.join(args.out, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump({"templates": names, "conversations": len(conversations)}, f)


if __name__ == "__main__":
    main()
