#!/usr/bin/python3
"""Deterministic data for the bundled tiny model (run by models/build_tiny_llama.sh).

Writes, from a fixed seed and nothing else:
  <pretrain-dir>/pretrain_train.jsonl, pretrain_valid.jsonl   {"text": ...} short stories and
      facts in a small English world (names, animals, colours, places, counting) on which the
      base model is pre-trained from scratch;
  <demo-dir>/train.jsonl, valid.jsonl, heldout.jsonl   the demo LoRA task, {"prompt", "completion"}: turn a
      sentence into a "card"  (Mia | 5 | green | kites). The card format (the "Make a card:"
      instruction, the "|" separators, number words as digits) never occurs in the
      pre-training text, so the base model cannot do it and a LoRA adapter visibly learns it.

Only the standard library is used; random.Random(seed) makes the output identical run to run.
"""
import argparse
import json
import os
import random

NAMES = ["Anna", "Ben", "Mia", "Tom", "Lea", "Sam", "Ida", "Max", "Eva", "Leo", "Zoe", "Noah",
         "Emma", "Finn", "Lina", "Paul", "Rosa", "Jan", "Nora", "Omar", "Tara", "Ugo", "Vera",
         "Karl"]
ANIMALS = ["dog", "cat", "bird", "fox", "horse", "duck", "goat", "frog", "mouse", "bear"]
THINGS = ["apple", "ball", "book", "kite", "cup", "hat", "shoe", "box", "pen", "stone",
          "flower", "boat", "key", "coin", "cake"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "pink", "brown", "orange", "gray"]
PLACES = ["park", "garden", "market", "school", "forest", "river", "farm", "kitchen", "town",
          "beach"]
ADJECTIVES = ["happy", "small", "big", "old", "young", "quick", "slow", "tired", "funny", "kind"]
VERBS_PAST = ["saw", "found", "liked", "took", "made", "bought", "lost", "painted"]
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine"]  # 2..9


def plural(noun):
    if noun.endswith(("x", "s", "sh", "ch")):
        return noun + "es"
    return noun + "s"


def article(word):
    return "an" if word[0] in "aeiou" else "a"


class World:
    def __init__(self, rng):
        self.rng = rng

    def pick(self, items):
        return self.rng.choice(items)

    def story(self):
        r = self.rng
        a, b = r.sample(NAMES, 2)
        animal, place, adj = self.pick(ANIMALS), self.pick(PLACES), self.pick(ADJECTIVES)
        color, thing = self.pick(COLORS), self.pick(THINGS)
        n = r.randrange(len(NUMBER_WORDS))
        count_word = NUMBER_WORDS[n]
        sentences = [
            f"{a} and {b} went to the {place}.",
            f"{a} saw {article(color)} {color} {animal}.",
            f"{b} said that the {animal} was {adj}.",
            f"{a} has {count_word} {color} {plural(thing)}.",
            f"{b} took one {thing} and {a} smiled.",
            f"Then {a} and {b} went home.",
        ]
        k = r.randrange(3, len(sentences) + 1)
        return " ".join(sentences[:k])

    def fact(self):
        r = self.rng
        kind = r.randrange(5)
        if kind == 0:
            animal = self.pick(ANIMALS)
            return f"The {animal} is an animal. {article(animal).capitalize()} {animal} can run."
        if kind == 1:
            n = r.randrange(len(NUMBER_WORDS))
            return " ".join(NUMBER_WORDS[: n + 1]).capitalize() + "."
        if kind == 2:
            name, age = self.pick(NAMES), r.randrange(3, 12)
            return f"{name} is {age} years old. {name} lives near the {self.pick(PLACES)}."
        if kind == 3:
            color, thing = self.pick(COLORS), self.pick(THINGS)
            return f"This {thing} is {color}. The {color} {thing} is on the table."
        name = self.pick(NAMES)
        verb, thing = self.pick(VERBS_PAST), self.pick(THINGS)
        return f"{name} {verb} {article(thing)} {thing} in the {self.pick(PLACES)}."

    def document(self):
        parts = [self.story() if self.rng.random() < 0.6 else self.fact()
                 for _ in range(self.rng.randrange(1, 3))]
        return " ".join(parts)

    def card_example(self):
        """One demo example: a sentence and its card."""
        r = self.rng
        name, color, thing, place = (self.pick(NAMES), self.pick(COLORS), self.pick(THINGS),
                                     self.pick(PLACES))
        n = r.randrange(len(NUMBER_WORDS))
        count_word, digit = NUMBER_WORDS[n], str(n + 2)
        things = plural(thing)
        templates = [
            f"{name} has {count_word} {color} {things}.",
            f"{name} found {count_word} {color} {things} in the {place}.",
            f"In the {place}, {name} saw {count_word} {color} {things}.",
            f"{name} bought {count_word} {color} {things}.",
        ]
        sentence = self.pick(templates)
        return {"prompt": f"Make a card: {sentence}\n",
                "completion": f"{name} | {digit} | {color} | {thing}\n"}


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-dir", required=True)
    parser.add_argument("--demo-dir", required=True)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--pretrain-docs", type=int, default=24000)
    parser.add_argument("--demo-train", type=int, default=2400)
    parser.add_argument("--demo-valid", type=int, default=200)
    parser.add_argument("--demo-heldout", type=int, default=100)
    args = parser.parse_args()

    world = World(random.Random(args.seed))
    os.makedirs(args.pretrain_dir, exist_ok=True)
    os.makedirs(args.demo_dir, exist_ok=True)
    docs = [{"text": world.document()} for _ in range(args.pretrain_docs)]
    n_valid = max(1, len(docs) // 50)
    write_jsonl(os.path.join(args.pretrain_dir, "pretrain_train.jsonl"), docs[n_valid:])
    write_jsonl(os.path.join(args.pretrain_dir, "pretrain_valid.jsonl"), docs[:n_valid])

    demo_world = World(random.Random(args.seed + 1))
    train = [demo_world.card_example() for _ in range(args.demo_train)]
    write_jsonl(os.path.join(args.demo_dir, "train.jsonl"), train)
    valid = [demo_world.card_example() for _ in range(args.demo_valid)]
    write_jsonl(os.path.join(args.demo_dir, "valid.jsonl"), valid)
    # A test set no training or validation example shares a prompt with, from its own stream:
    # what tuneledger-generate scores after the demo fine-tune (deploy/quickstart.sh).
    seen = {example["prompt"] for example in train + valid}
    heldout_world = World(random.Random(args.seed + 2))
    heldout = []
    while len(heldout) < args.demo_heldout:
        example = heldout_world.card_example()
        if example["prompt"] not in seen:
            seen.add(example["prompt"])
            heldout.append(example)
    write_jsonl(os.path.join(args.demo_dir, "heldout.jsonl"), heldout)


if __name__ == "__main__":
    main()
