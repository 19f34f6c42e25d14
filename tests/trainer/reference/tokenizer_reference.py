"""The Hugging Face `tokenizers` library as the reference for HfTokenizer (lm/text).

Run with the project's Python environment (<repo>/.venv/bin/python3, tokenizers from
tests/requirements.txt). No model hub is reachable, so it makes its own tokenizers:

  python3 tokenizer_reference.py --out DIR [--lines N]

(a) writes DIR/corpus.jsonl: N (default 12000, at least 10000) lines generated from a fixed
    seed, one JSON string per line: English with contractions, CJK, Arabic, Devanagari, Hangul,
    emoji with ZWJ sequences and skin tones, combining marks (decomposed accents), runs of
    spaces, tabs, newlines, U+00A0 and U+3000, digits and long numbers, code, special-token
    strings (and near misses) in the middle of text, empty lines, mixed scripts;
(b) trains one BPE tokenizer per style on that corpus with the library's trainer and saves
    DIR/<name>/tokenizer.json and tokenizer_config.json, each in the shape a real model ships:
      llama3     Split(Llama 3 regex) + ByteLevel(use_regex=false), ignore_merges,
                 <|begin_of_text|> template (BOS, no EOS)
      qwen2      NFC + Split(Qwen2 regex) + ByteLevel, no BOS
      gpt2       ByteLevel(use_regex=true), merges written as "a b" strings, plain added tokens
                 with lstrip / rstrip / single_word
      smollm2    Digits(individual) + ByteLevel
      llama2     Prepend("▁") + Replace(" ", "▁") normalizers, byte_fallback, unk, decoders
                 Replace + ByteFallback + Fuse + Strip, <s> template, add_bos_token
      mistral    Metaspace(prepend_scheme=first, split=false), byte_fallback, decoders
                 ByteFallback + Metaspace, <s> $A </s> template (BOS and EOS)
      metaspace  Lowercase + Metaspace(prepend_scheme=always, split=true), a normalized added
                 token, Metaspace decoder
(c) writes DIR/<name>/expected.jsonl, one line per corpus line: {"ids": encode without special
    tokens, "with_special": encode with them, "decoded": decode(ids)}; and DIR/manifest.json
    {"lines": N, "tokenizers": [names]}.
"""
import argparse
import json
import os
import random

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, processors, trainers)

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the quick brown fox jumps over lazy dog model token train loss data learning rate "
         "foo food afoo foo_bar Foo FOO café naïve résumé Straße İstanbul ΣΟΦΙΑ σοφία Ǆemal "
         "ﬁnance Ωmega Kelvin Ångström").split()
CONTRACTIONS = ["don't", "I'LL", "he's", "they're", "we've", "I'm", "she'd", "IT'S", "You'Re",
                "o'clock", "rock'n'roll", "'s", "'T", "'ſ", "it'ſelf", "'ſtory", "'K",
                "’s", "''"]
CJK = ["你好世界", "机器学习模型", "東京タワー", "こんにちは", "カタカナ", "한국어 문장", "大语言模型的训练",
       "漢字とかな", "안녕하세요"]
ARABIC = ["مرحبا بالعالم", "اللغة العربية", "تعلم الآلة", "السلام عليكم"]
INDIC = ["नमस्ते दुनिया", "हिन्दी भाषा", "ক্ষেত্র", "தமிழ்"]
EMOJI = ["😀", "👍🏽", "👍🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇺🇸", "🇯🇵", "❤️", "🧑🏻‍💻", "👩‍❤️‍👨", "🤖", "✨",
         "🫠", "😂😂😂"]
COMBINING = ["e\u0301", "a\u0308", "o\u0302\u0323", "n\u0303", "A\u030a", "\u1100\u1161\u11a8",
             "e\u0301\u0301", "u\u0308\u0304", "\u0915\u093c", "Z\u0335\u0321"]
WHITESPACE = ["  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\u00a0", "\u00a0\u00a0", "\u3000",
              " \n ", "\u2003", "\u200b", " \t \n"]
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<s>", "</s>", "<unk>",
            "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of", "<s", "< s>", "</s",
            "<tool>", " <tool> ", "[[x]]", "[[x]]   ", "Magic", "magic", "MAGIC"]
CODE = ["def f(x):\n    return x**2", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        '{"key": [1, 2.5, null], "s": "v"}', "x = y->z && !w || (a >= b);",
        "#include <vector>", "SELECT * FROM t WHERE id = 42;", "print(f'{x:>10}')",
        "if __name__ == '__main__':", "    \n        ", "https://example.com/a?b=c&d=e",
        "a_b-c.d/e\\f", "$PATH:~/.bashrc", "0x1F 0b1010 1e-9 3.14159"]


def number(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return str(rng.randrange(10))
    if kind == 1:
        return str(rng.randrange(10 ** rng.randrange(2, 25)))
    if kind == 2:
        return "{:,}".format(rng.randrange(10 ** 9))
    if kind == 3:
        return "%.*f" % (rng.randrange(1, 8), rng.random() * 1000)
    return "".join(rng.choice("0123456789٠١٢٣४५६௭") for _ in range(rng.randrange(1, 12)))


def fragment(rng):
    pools = [WORDS, WORDS, WORDS, CONTRACTIONS, CJK, ARABIC, INDIC, EMOJI, COMBINING, SPECIALS,
             CODE]
    kind = rng.randrange(len(pools) + 2)
    if kind == len(pools):
        return number(rng)
    if kind == len(pools) + 1:
        return rng.choice(WHITESPACE)
    return rng.choice(pools[kind])


def make_line(rng):
    kind = rng.randrange(20)
    if kind == 0:
        return ""
    if kind == 1:
        return rng.choice(WHITESPACE) * rng.randrange(1, 4)
    if kind == 2:
        return rng.choice(CODE)
    parts = []
    for _ in range(rng.randrange(1, 25)):
        parts.append(fragment(rng))
        parts.append(rng.choice([" ", " ", " ", "", ", ", ". ", rng.choice(WHITESPACE)]))
    line = "".join(parts)
    if rng.randrange(10) == 0:
        line = line.upper()
    if rng.randrange(15) == 0:
        line = " " + line
    return line


def corpus(lines):
    rng = random.Random(20240607)
    return [make_line(rng) for _ in range(lines)]


def byte_level_trainer(vocab_size, specials):
    return trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def reload(tokenizer, edit):
    """Applies `edit` to the tokenizer's JSON and loads it back (fields the trainer resets)."""
    data = json.loads(tokenizer.to_str())
    edit(data)
    return Tokenizer.from_str(json.dumps(data))


def template(text, tokenizer, names):
    return processors.TemplateProcessing(
        single=text, special_tokens=[(n, tokenizer.token_to_id(n)) for n in names])


def make_llama3(lines):
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
                "<|end_header_id|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, byte_level_trainer(3000, specials))
    tok = reload(tok, lambda d: d["model"].update(ignore_merges=True))
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        template("<|begin_of_text|> $A", tok, ["<|begin_of_text|>"])])
    return tok, {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>"}


def make_qwen2(lines):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.train_from_iterator(lines, byte_level_trainer(2500, specials))
    return tok, {"bos_token": None, "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
                 "add_prefix_space": False}


def make_gpt2(lines):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.train_from_iterator(lines, byte_level_trainer(2000, ["<|endoftext|>"]))
    tok.add_tokens([AddedToken("<tool>", lstrip=True, normalized=False),
                    AddedToken("[[x]]", rstrip=True, normalized=False),
                    AddedToken("foo", single_word=True, normalized=False)])
    return tok, {"bos_token": {"content": "<|endoftext|>", "lstrip": False},
                 "eos_token": {"content": "<|endoftext|>", "lstrip": False},
                 "add_bos_token": False}


def make_smollm2(lines):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(lines, byte_level_trainer(2000, specials))
    return tok, {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>"}


def with_byte_tokens(data):
    """Puts <0x00>..<0xFF> into the vocab right after the special tokens, as Llama 2 has them."""
    vocab = data["model"]["vocab"]
    specials = sorted((i, t) for t, i in vocab.items() if i < 3)
    rest = sorted((i, t) for t, i in vocab.items() if i >= 3)
    new = {t: i for i, t in specials}
    for b in range(256):
        new["<0x%02X>" % b] = len(new)
    for _, t in rest:
        if t not in new:
            new[t] = len(new)
    data["model"]["vocab"] = new
    data["model"]["byte_fallback"] = True
    data["model"]["fuse_unk"] = True
    data["model"]["unk_token"] = "<unk>"


def sentencepiece_trainer(vocab_size):
    # limit_alphabet keeps rare characters out, so that byte fallback is exercised.
    return trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>"],
                               limit_alphabet=150, show_progress=False)


def make_llama2(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.train_from_iterator(lines, sentencepiece_trainer(2500))
    tok = reload(tok, with_byte_tokens)
    tok.post_processor = template("<s> $A", tok, ["<s>"])
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                 "add_bos_token": True, "add_eos_token": False, "pad_token": None}


def make_mistral(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first",
                                                 split=False)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement="▁", prepend_scheme="first",
                                                        split=False)])
    tok.train_from_iterator(lines, sentencepiece_trainer(2500))
    tok = reload(tok, with_byte_tokens)
    tok.post_processor = template("<s> $A </s>", tok, ["<s>", "</s>"])
    return tok, {"bos_token": "<s>", "eos_token": "</s>"}


def make_metaspace(lines):
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always",
                                                 split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.train_from_iterator(lines, sentencepiece_trainer(2000))
    tok.add_tokens([AddedToken("Magic", normalized=True)])
    return tok, {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>"}


MAKERS = {"llama3": make_llama3, "qwen2": make_qwen2, "gpt2": make_gpt2,
          "smollm2": make_smollm2, "llama2": make_llama2, "mistral": make_mistral,
          "metaspace": make_metaspace}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--lines", type=int, default=12000)
    parser.add_argument("--only", default="", help="comma-separated tokenizer names")
    args = parser.parse_args()
    if args.lines < 10000:
        parser.error("--lines must be at least 10000")
    lines = corpus(args.lines)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "corpus.jsonl"), "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
    names = [n for n in MAKERS if not args.only or n in args.only.split(",")]
    for name in names:
        tok, config = MAKERS[name](lines)
        folder = os.path.join(args.out, name)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "tokenizer.json")
        tok.save(path)
        if name == "gpt2":  # the older merges spelling, which the library still reads
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            data["model"]["merges"] = [" ".join(pair) for pair in data["model"]["merges"]]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(data, f, ensure_ascii=False)
        tok = Tokenizer.from_file(path)  # the reference is what the saved file gives
        with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=1)
        plain = tok.encode_batch(lines, add_special_tokens=False)
        special = tok.encode_batch(lines, add_special_tokens=True)
        decoded = tok.decode_batch([e.ids for e in plain], skip_special_tokens=True)
        with open(os.path.join(folder, "expected.jsonl"), "w", encoding="utf-8") as f:
            for p, s, d in zip(plain, special, decoded):
                f.write(json.dumps({"ids": p.ids, "with_special": s.ids, "decoded": d},
                                   ensure_ascii=False) + "\n")
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump({"lines": len(lines), "tokenizers": names}, f)


if __name__ == "__main__":
    main()
