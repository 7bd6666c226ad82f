"""Start-up time: `quantpick --help` and an offline `quantpick list --card` beside `hf --help`.

    .venv/bin/python benchmarks/startup.py [--runs 15]

A CLI in shell loops must start fast: the target is under half of `hf --help`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CARD = ROOT / "examples" / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md"


def timed(cmd: list[str], runs: int) -> float:
    env = {**os.environ, "HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_OFFLINE": "1"}
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True
        )
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    runs = parser.parse_args().runs
    rows = [
        ("hf --help (reference)", [str(BIN / "hf"), "--help"]),
        ("quantpick --help", [str(BIN / "quantpick"), "--help"]),
        ("quantpick list --help", [str(BIN / "quantpick"), "list", "--help"]),
        ("quantpick list --card (offline)", [str(BIN / "quantpick"), "list", "--card", str(CARD)]),
    ]
    times = {name: timed(cmd, runs) for name, cmd in rows}
    ref = times["hf --help (reference)"]
    print(f"median of {runs} runs each, same machine, same run")
    for name, t in times.items():
        print(f"  {name:34s} {t * 1000:7.0f} ms   {t / ref:5.2f} x hf --help")
    verdict = "PASS" if times["quantpick --help"] < ref / 2 else "FAIL"
    print(f"target: quantpick --help under half of hf --help: {verdict}")


if __name__ == "__main__":
    main()
