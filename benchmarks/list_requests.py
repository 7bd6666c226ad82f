"""How many HTTP requests `quantpick list` makes on a 10-branch repo, and how long it takes.

    .venv/bin/python benchmarks/list_requests.py [--branches 10] [--runs 5]

Expected per run: 1 refs + 1 tree per branch, main included (concurrent, bounded pool) + README
(HEAD + GET) + config.json of one branch (HEAD + GET) + huggingface_hub's once-per-process
/api/agent-harnesses = branches + 7, independent of the files per branch (trees are recursive).
A second run against the same HF_HOME answers the README and config.json from huggingface_hub's
cache with a HEAD each.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

ROOT = Path(__file__).resolve().parents[1]
CARD = (ROOT / "examples" / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md").read_text()
CONFIG = (ROOT / "examples" / "configs" / "mixtral-8x7b.json").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        branches: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
        for i in range(args.branches):
            name = f"{2 + i * 0.5:.1f}".replace(".", "_")
            branches[name] = {
                "config.json": CONFIG,
                **{f"output-{k:05d}-of-00008.safetensors": 1 << 20 for k in range(1, 9)},
            }
        make_repo(Path(tmp, "hub"), "bench/ten-branch-exl2", branches, readme=CARD)
        with HubServer(Path(tmp, "hub")) as hub:
            env = {
                **os.environ,
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(Path(tmp, "hf")),
                "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            }
            cmd = [sys.executable, "-m", "quantpick", "list", "bench/ten-branch-exl2", "--json"]
            times, counts = [], []
            for run in range(args.runs):
                hub.requests.clear()
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
                times.append(time.perf_counter() - t0)
                counts.append(len(hub.requests))
                if run == 0:
                    kinds = collections.Counter(f"{r.method} {_kind(r.path)}" for r in hub.requests)
            print(f"repo: {args.branches} variant branches + main, 9 files each")
            print(f"requests, first run (cold cache): {counts[0]}")
            for kind, n in sorted(kinds.items()):
                print(f"  {n:3d}  {kind}")
            print(f"requests, later runs (warm cache): {counts[1:]}")
            print(
                f"bound: {args.branches + 7} = refs + a tree per branch (main too)"
                " + README and config.json (HEAD + GET each) + agent-harnesses"
            )
            print(
                f"wall time, median of {args.runs} (process start included): "
                f"{statistics.median(times) * 1000:.0f} ms"
            )


def _kind(path: str) -> str:
    if "/refs" in path:
        return "refs"
    if "/tree/" in path:
        return "tree (per branch)"
    if "/resolve/" in path:
        return "resolve " + path.rsplit("/", 1)[-1]
    return path


if __name__ == "__main__":
    main()
