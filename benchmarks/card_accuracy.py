"""Variant accuracy over ../shared/cards, card-only and online, by format.

Card-only: `parse_card` against each card's hand-read ground truth; a variant counts when its name
is right and every figure the ground truth states (bits, lm_head bits, group size, act order,
GGUF type, size, VRAM by context, max RAM, recommendation) matches. Online: the card's repo is
built on the loopback Hub with the files its ground truth names, `quantpick list REPO --json`
runs, and a variant counts when it is offered under the right name (present on the Hub) with the
card's figures attached; every Hub-only or phantom variant counts as one wrong.

Run: python benchmarks/card_accuracy.py [--cards ../shared/cards] [--card-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from quantpick.card.parser import parse_card
from quantpick.records import GIB
from quantpick.testing.server import HubServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from shared_repos import SharedCard, build_shared_repo  # noqa: E402


def _close(got: float | None, want: float | None, tol: float) -> bool:
    if got is None or want is None:
        return got is want
    return abs(got - want) <= tol


def _figures_match(got: dict[str, Any], want: dict[str, Any], *, sizes: bool) -> bool:
    def f(x: Any) -> float | None:
        return None if x is None else float(x)

    if (f(got.get("bits")), f(got.get("head_bits"))) != (f(want["bits"]), f(want["lm_head_bits"])):
        return False
    if (got.get("group_size"), got.get("act_order")) != (want["group_size"], want["act_order"]):
        return False
    if got.get("quant_method") != want["quant_method"]:
        return False
    if bool(got.get("recommended_by_card")) != bool(want["recommended"]):
        return False
    if sizes:
        size = None if want["size_gb"] is None else want["size_gb"] * 1e9
        if not _close(got.get("size_bytes"), size, (size or 0) * 0.005):
            return False
    vram = {str(k): v for k, v in (got.get("vram_bytes") or {}).items()}
    if got.get("vram_unspecified_bytes") is not None:
        vram["unspecified"] = got["vram_unspecified_bytes"]
    wanted = {k: v * GIB for k, v in want["vram_gb"].items()}
    if vram.keys() != wanted.keys():
        return False
    return all(_close(vram[k], wanted[k], 1 << 20) for k in wanted)


def card_only(sc: SharedCard) -> tuple[int, int]:
    card = parse_card(sc.card.read_text(encoding="utf-8"), repo=sc.repo)
    got = {v.name: v.model_dump(mode="json") for v in card.variants}
    wanted = sc.expected["variants"]
    right = sum(
        1 for w in wanted if w["name"] in got and _figures_match(got[w["name"]], w, sizes=True)
    )
    phantom = len(set(got) - {w["name"] for w in wanted})
    if not wanted:
        # a card that lists nothing is right when nothing is made up
        return int(not phantom), 1
    return right, len(wanted) + phantom


def online(sc: SharedCard, tmp: Path) -> tuple[int, int]:
    root = tmp / sc.stem
    root.mkdir()
    with HubServer(root) as hub:
        repo = build_shared_repo(root, sc)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
            "HF_ENDPOINT": hub.endpoint,
            "HF_HOME": str(tmp / sc.stem / ".hf"),
        }
        r = subprocess.run(
            [sys.executable, "-m", "quantpick", "list", repo, "--json"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    wanted = sc.expected["variants"]
    if r.returncode != 0:
        return (1, 1) if not wanted and r.returncode == 3 else (0, max(len(wanted), 1))
    listed = {v["name"]: v for v in json.loads(r.stdout)["variants"]}
    own = sc.expected["kind"] != "repos"
    right = 0
    for w in wanted:
        v = listed.get(w["name"])
        present = v is not None and (not own or v["repo"] or v["hub_status"] == "present")
        if present and v is not None and _figures_match(v, w, sizes=False):
            right += 1
    phantom = len(set(listed) - {w["name"] for w in wanted})
    return right, len(wanted) + phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cards", type=Path, default=ROOT.parent / "shared" / "cards")
    parser.add_argument("--card-only", action="store_true")
    args = parser.parse_args()
    os.environ["QUANTPICK_SHARED_CARDS"] = str(args.cards)
    cards = []
    for exp in sorted(args.cards.glob("*/*.expected.json")):
        md = exp.with_name(exp.name.replace(".expected.json", ".md"))
        cards.append(
            SharedCard(exp.name[: -len(".expected.json")], md, json.loads(exp.read_text()))
        )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    with tempfile.TemporaryDirectory() as tmp:
        for sc in cards:
            fmt = sc.expected["format"]
            a, b = card_only(sc)
            c, d = (0, 0) if args.card_only else online(sc, Path(tmp))
            for key in (fmt, "all"):
                t = totals[key]
                t[0], t[1], t[2], t[3] = t[0] + a, t[1] + b, t[2] + c, t[3] + d
    print(f"{'format':<16} {'card-only':>16} {'online':>16}")
    for fmt in sorted(totals, key=lambda k: (k == "all", k)):
        a, b, c, d = totals[fmt]
        on = "-" if args.card_only else f"{c}/{d} {100 * c / max(d, 1):5.1f}%"
        print(f"{fmt:<16} {f'{a}/{b} {100 * a / max(b, 1):5.1f}%':>16} {on:>16}")


if __name__ == "__main__":
    main()
