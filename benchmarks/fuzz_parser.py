"""Throw >=10,000 generated and mangled cards at parse_card; exit 1 if any of them breaks it.

Run: python benchmarks/fuzz_parser.py [--cards N] [--seed S]
Seeds come from tests/fixtures/cards and, when present, ../shared/cards (read, never copied).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from quantpick.card import parser as card_parser
from quantpick.card.parser import parse_card

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("QUANTPICK_SHARED_CARDS", ROOT.parent / "shared" / "cards"))
ALPHABET = "|-:*_`[]()!#>\\~ \n\t.,?/abcQK0123456789👈\u00a0\x00\r<>&;"
HEADERS = [
    "Branch", "Bits", "lm_head bits", "VRAM (4k)", "VRAM (16k)", "VRAM (32k)", "Size", "File Size",
    "Size/GB", "Name", "Filename", "Link", "Quant", "Quant method", "Quant type", "Type", "GS",
    "Act Order", "Damp %", "GPTQ Dataset", "Seq Len", "Max RAM required", "Use case",
    "Description", "Notes", "Split", "Split Files", "4 bit cache", "16 bit cache",
    "Memory (RAM, vRAM) required (for full context of 32k tokens)", "8k PPL", "ExLlama", "",
]  # fmt: skip
CELLS = [
    "6_5", "main", "4.0bpw_h8", "SC_2.00bpw_H3_V3", "gptq-3bit--1g-actorder_True", "x.Q4_K_M.gguf",
    "x.ggmlv3.q4_K_M.bin", "`IQ3_XS`", "?", "", "None", "Yes", "False", "~3.2 GB", "624 MB",
    "4.1 GiB", "74.98GB", "-1", "1e308", "99999999999999999999 GB", "**recommended**",
    "*not* recommended", "👈 my recommendation", "recommended over Q2_K", r"a \| b",
    "[6_5](https://huggingface.co/a/b/tree/6_5)", "[m](https://huggingface.co/a/b/tree/main)",
    "[GGUF](https://huggingface.co/a/b/resolve/main/x.i1-IQ3_XS.gguf)",
    "[x.gguf](https://huggingface.co/a/b/tree/main/x-Q8_0)",
    "[1-of-2](https://huggingface.co/a/b/resolve/main/x-Q2_K-00001-of-00002.gguf), "
    "[2-of-2](https://huggingface.co/a/b/resolve/main/x-Q2_K-00002-of-00002.gguf)",
    "[r](https://huggingface.co/a/b-2.4bpw-h6-exl2)", "[bad](http://[::1)", "[e](https://hf.co/%ZZ)",
]  # fmt: skip
PROSE = [
    "All VRAM requirements estimated from 16k context. For 32k context add ~2 GB.",
    "I would recommend the `Q4_K_M` version.",
    "* `x.Q8_0.gguf-split-a`",
    "---\nbase_model: [a/b, 'c/d']\n---",
    "<details>\n<summary>x</summary>",
    "```\n| Branch | Bits |\n|---|---|\n```",
]


def seed_cards() -> list[str]:
    paths = sorted((ROOT / "tests" / "fixtures" / "cards").glob("*.md"))
    if SHARED.is_dir():
        paths += sorted(SHARED.glob("**/*.md"))
    return [p.read_text(encoding="utf-8") for p in paths if p.name != "README.md"]


def random_table(rng: random.Random) -> str:
    width = rng.randint(1, 8)
    outer = rng.random() < 0.7

    def line(cells: list[str]) -> str:
        body = " | ".join(c.replace("\n", " ") for c in cells)
        return f"| {body} |" if outer else body

    rows = [
        line([rng.choice(CELLS) for _ in range(rng.randint(0, width + 2))])
        for _ in range(rng.randint(0, 12))
    ]
    head = line([rng.choice(HEADERS) for _ in range(width)])
    return "\n".join([rng.choice(PROSE), head, line(["---"] * width), *rows, rng.choice(PROSE)])


def mutate(rng: random.Random, text: str) -> str:
    for _ in range(rng.randint(1, 8)):
        if not text:
            return text
        a = rng.randrange(len(text) + 1)
        b = min(len(text), a + rng.randint(0, 400))
        op = rng.randrange(8)
        if op == 0:
            text = text[:a] + text[b:]
        elif op == 1:
            text = text[:b] + text[a:b] * rng.randint(1, 3) + text[b:]
        elif op == 2:
            junk = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 60)))
            text = text[:a] + junk + text[a:]
        elif op == 3:
            text = text[:a] + text[a:b].replace("|", "") + text[b:]
        elif op == 4:
            text = text[:a] + text[a:b].replace(" ", "|") + text[b:]
        elif op == 5:
            lines = text.split("\n")
            rng.shuffle(lines)
            text = "\n".join(lines)
        elif op == 6:
            text = text[:a] + random_table(rng) + text[a:]
        else:
            text = text[:a]
    return text


def generators(rng: random.Random, seeds: list[str]) -> list[Callable[[], str]]:
    return [
        lambda: mutate(rng, rng.choice(seeds)),
        lambda: "\n\n".join(random_table(rng) for _ in range(rng.randint(1, 4))),
        lambda: "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 3000))),
        lambda: bytes(rng.randrange(256) for _ in range(rng.randint(0, 2000))).decode("latin-1"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    gens = generators(rng, seed_cards())
    counts: Counter[str] = Counter(exceptions=0)
    start = time.perf_counter()
    for i in range(args.cards):
        text = gens[i % len(gens)]()
        card = parse_card(text)
        counts["cards"] += 1
        counts["with variants"] += bool(card.variants)
        counts["variants"] += len(card.variants)
        counts["card warnings"] += len(card.warnings)
        counts["variant warnings"] += sum(len(v.warnings) for v in card.variants)
        if any(w.startswith("internal parser error") for w in card.warnings):
            counts["exceptions"] += 1
            if counts["exceptions"] <= 3:
                print(f"--- card {i} broke the parser; input: {text[:300]!r}", file=sys.stderr)
                try:
                    card_parser._parse(text, None)
                except Exception:
                    traceback.print_exc()
    elapsed = time.perf_counter() - start
    print(", ".join(f"{k}: {v}" for k, v in counts.items()) + f"; {elapsed:.1f} s")
    return 1 if counts["exceptions"] else 0


if __name__ == "__main__":
    sys.exit(main())
