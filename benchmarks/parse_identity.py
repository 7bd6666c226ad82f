"""Write what parse_card gives for a fixed corpus, one line per card, to diff before and after a
change that must not change the parser's output (a speed-up):

    PYTHONHASHSEED=0 python benchmarks/parse_identity.py before.txt     # on the old tree
    PYTHONHASHSEED=0 python benchmarks/parse_identity.py after.txt      # on the new one
    cmp before.txt after.txt

The corpus: every fixture and shared card with its repo, with none and with another, the
benchmark tables of reliability_cost.py and parse_speed.py, --cards generated and mutated cards of
fuzz_parser.py (their output hashed), and what names.describe and links.hub_target say of every
word those cards hold. PYTHONHASHSEED fixes the order of the few dicts parse_card builds from sets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

import fuzz_parser as fz
from parse_speed import build_card

from quantpick.card.links import hub_target
from quantpick.card.names import describe
from quantpick.card.parser import parse_card

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--cards", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    lines: list[str] = []
    paths = sorted((ROOT / "tests" / "fixtures" / "cards").glob("*.md"))
    if fz.SHARED.is_dir():
        paths += sorted(p for p in fz.SHARED.glob("**/*.md") if p.name != "README.md")
    for p in paths:
        text = p.read_text(encoding="utf-8")
        expected = p.with_name(p.name.replace(".md", ".expected.json"))
        repo = json.loads(expected.read_text())["repo"] if expected.exists() else None
        for label, r in (("", repo), ("/none", None), ("/other", "a/b")):
            lines.append(f"{p.name}{label}\t{parse_card(text, repo=r).model_dump_json()}")
    row = "| [{b}_{q}-r{i}](https://huggingface.co/o/m/tree/{b}_{q}-r{i}) | {b}.{q} | {g}.0 GB |\n"
    rows = "".join(row.format(i=i, b=i % 7 + 2, q=i % 9, g=i % 20 + 1) for i in range(3000))
    table = "| Branch | Bits | VRAM (4k) |\n|---|---|---|\n" + rows
    lines.append(f"rows\t{parse_card(table, repo='o/m').model_dump_json()}")
    lines.append(f"100 KiB\t{parse_card(build_card(100 * 1024), repo='o/m').model_dump_json()}")
    rng = random.Random(args.seed)
    gens = fz.generators(rng, fz.seed_cards())
    words: set[str] = set(fz.CELLS + fz.HEADERS)
    for i in range(args.cards):
        text = gens[i % len(gens)]()
        card = parse_card(text, repo=rng.choice([None, "a/b", "TheBloke/x-GPTQ", "o/m-exl2"]))
        lines.append(f"fuzz {i}\t{hashlib.sha256(card.model_dump_json().encode()).hexdigest()}")
        for ch in "|()":
            text = text.replace(ch, " ")
        words.update(text.split()[:200])
    for word in sorted(words):
        lines.append(f"name {word[:80]!r}\t{describe(word).model_dump_json()} {hub_target(word)!r}")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{len(lines)} lines to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
