"""Build the bundled example Hub: a few small repos whose cards are in examples/cards.

    python examples/make_hub.py ROOT

Weights are small stand-ins (MiB, not GiB) so the demo downloads in a second; the cards' VRAM
tables and the config.json shapes are realistic, so the recommendations are the real ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from quantpick.testing.builder import make_repo

HERE = Path(__file__).resolve().parent
MIB = 1 << 20


def _config(name: str) -> str:
    return (HERE / "configs" / f"{name}.json").read_text()


def _card(name: str) -> str:
    return (HERE / "cards" / f"{name}.md").read_text()


def _exl2_branch(bits: float) -> dict[str, bytes | str | int]:
    shard = int(bits * MIB)
    return {
        "config.json": _config("mixtral-8x7b"),
        "tokenizer.json": json.dumps({"version": "1.0", "model": {"type": "BPE"}}),
        "output-00001-of-00002.safetensors": shard,
        "output-00002-of-00002.safetensors": shard // 2,
    }


def build(root: Path) -> list[str]:
    made = [
        make_repo(
            root,
            "demo/Mixtral-8x7B-Instruct-exl2",
            {
                "main": {"measurement.json": json.dumps({"measurement": {}})},
                **{
                    b: _exl2_branch(float(b.replace("_", ".")))
                    for b in ("6_5", "5_0", "4_25", "3_5", "3_0")
                },
            },
            readme=_card("demo__Mixtral-8x7B-Instruct-exl2"),
        ),
        make_repo(
            root,
            "demo/Mistral-7B-Instruct-GGUF",
            {
                "main": {
                    f"mistral-7b-instruct.{q}.gguf": int(mib * MIB)
                    for q, mib in (("Q3_K_M", 3.5), ("Q4_K_M", 4.4), ("Q5_K_M", 5.1), ("Q8_0", 7.7))
                }
            },
            readme=_card("demo__Mistral-7B-Instruct-GGUF"),
        ),
        make_repo(
            root, "demo/Mistral-7B-Instruct", {"main": {"config.json": _config("mistral-7b")}}
        ),
        make_repo(
            root, "demo/Mixtral-8x7B-Instruct", {"main": {"config.json": _config("mixtral-8x7b")}}
        ),
    ]
    return [r.repo_id for r in made]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python examples/make_hub.py ROOT")
    for repo in build(Path(sys.argv[1])):
        print(repo)
