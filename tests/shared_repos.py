"""Repos for the loopback Hub built from ../shared/cards: each card's README plus small stand-in
files for every branch or file its ground truth lists, so `list` can cross-check card and Hub."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantpick.testing.builder import make_repo

SHARED_CARDS = Path(
    os.environ.get(
        "QUANTPICK_SHARED_CARDS", Path(__file__).resolve().parents[1].parent / "shared" / "cards"
    )
)
MIB = 1 << 20


@dataclass(frozen=True)
class SharedCard:
    stem: str
    card: Path
    expected: dict[str, Any]

    @property
    def repo(self) -> str:
        return str(self.expected["repo"])


def shared_cards() -> list[SharedCard]:
    if not SHARED_CARDS.is_dir():
        return []
    out = []
    for exp in sorted(SHARED_CARDS.glob("*/*.expected.json")):
        card = exp.with_name(exp.name.replace(".expected.json", ".md"))
        out.append(
            SharedCard(exp.name[: -len(".expected.json")], card, json.loads(exp.read_text()))
        )
    return out


def build_shared_repo(root: Path, sc: SharedCard, *, drop: str | None = None) -> str:
    """The card's repo; `drop` leaves one listed variant off the Hub (a renamed/missing branch)."""
    exp = sc.expected
    readme = sc.card.read_text(encoding="utf-8")
    branches: dict[str, dict[str, bytes | str | int]] = {"main": {}}
    if exp["kind"] == "branches":
        branches["main"] = {"measurement.json": "{}"}
        for v in exp["variants"]:
            # branches of another repo (a card that describes someone else's quants) stay off
            if v["name"] != drop and not v.get("extra", {}).get("branch_repo"):
                branches[v["name"]] = {"config.json": "{}", "model.safetensors": MIB}
    elif exp["kind"] == "files":
        for v in exp["variants"]:
            if v["name"] == drop:
                continue
            extra = v.get("extra", {})
            parts = extra.get("split_files") or [v["name"]]
            target = str(extra.get("url_target", ""))
            if target.startswith("folder:"):
                # bartowski: a split quant is a folder of -0000N-of-0000M.gguf parts
                folder = target.removeprefix("folder:")
                parts = [f"{folder}/{folder}-0000{i}-of-00002.gguf" for i in (1, 2)]
            elif not re.search(r"\.(gguf|bin)$", v["name"], re.IGNORECASE):
                # a card that names quants by type only: the Hub's files carry the model's name
                stem = re.sub(r"-gguf$", "", sc.repo.split("/")[1], flags=re.IGNORECASE)
                parts = [f"{stem}-{v['name']}.gguf"]
            elif "split-a" in v.get("notes", ""):
                # TheBloke: files over 50 GB are uploaded as NAME-split-a, NAME-split-b
                parts = [f"{v['name']}-split-a", f"{v['name']}-split-b"]
            for part in parts:
                branches["main"][part] = MIB // 4
    make_repo(root, sc.repo, branches, readme=readme)
    return sc.repo
