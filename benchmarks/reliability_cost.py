"""Costs that must grow linearly: card parsing by table rows, and a big fetch's bookkeeping.

    .venv/bin/python benchmarks/reliability_cost.py [--rows 1000,10000,30000,100000] [--files 5000]

Card: one table of N variant rows (the shape of a GGUF repo's quant table, repeated), parsed by
`parse_card`; prints wall time, time per row and the peak of Python allocations (tracemalloc), so
a quadratic step shows as a growing per-row figure. Each size runs in a fresh process.

Bookkeeping: what a fetch of F files records while it runs (DIR/.quantpick/verified.json, so a
killed fetch does not re-hash what it finished). Quantpick appends one JSON line per file; the
figure beside it is the whole-file rewrite per file it replaced (quadratic: at 50,000 records each
rewrite took ~200 ms). Then the resume's read of the record, and the manifest write.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CARD_CHILD = """
import json, sys, time, tracemalloc
from quantpick.card.parser import parse_card
n = int(sys.argv[1])
row = "| [{b}_{q}](https://huggingface.co/o/m/tree/{b}_{q}) | {b}.{q} | {g}.0 GB |\\n"
rows = "".join(row.format(b=i % 7 + 2, q=i % 9, g=i % 20 + 1) for i in range(n))
card = "| Branch | Bits | VRAM (4k) |\\n|---|---|---|\\n" + rows
tracemalloc.start()
t = time.perf_counter()
parsed = parse_card(card, repo="o/m")
elapsed = time.perf_counter() - t
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"rows": n, "bytes": len(card), "s": elapsed, "peak": peak,
                  "variants": len(parsed.variants)}))
"""


def card_costs(sizes: list[int]) -> None:
    print(f"{'rows':>8} {'card MB':>8} {'parse s':>8} {'us/row':>7} {'peak MiB':>9}")
    for n in sizes:
        out = subprocess.run(
            [sys.executable, "-c", _CARD_CHILD, str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out)
        print(
            f"{n:>8} {r['bytes'] / 1e6:>8.1f} {r['s']:>8.2f} {r['s'] / n * 1e6:>7.0f} "
            f"{r['peak'] / 2**20:>9.0f}"
        )


def bookkeeping_costs(files: int) -> None:
    from quantpick.download.localfs import STATE_DIR, atomic_write_text
    from quantpick.download.manifest import ManifestFile, VerifiedLog, read_verified

    records = [
        ManifestFile(path=f"shard/{i:06d}.bin", size_bytes=1000, sha256="ab" * 32, mtime_ns=i)
        for i in range(files)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / STATE_DIR).mkdir()
        t = time.perf_counter()
        log = VerifiedLog(d, "c" * 40, [])
        for r in records:
            log.append(r)
        append_s = time.perf_counter() - t
        t = time.perf_counter()
        back = read_verified(d, "c" * 40)
        read_s = time.perf_counter() - t
        assert len(back) == files
        # the replaced scheme: the whole record rewritten after every file
        t = time.perf_counter()
        done: list[ManifestFile] = []
        for r in records:
            done.append(r)
            data = {"commit_sha": "c" * 40, "files": [f.model_dump(mode="json") for f in done]}
            atomic_write_text(d / STATE_DIR / "old.json", json.dumps(data))
        rewrite_s = time.perf_counter() - t
        size = os.path.getsize(d / STATE_DIR / "verified.json")
    print(f"{files} files: verified.json {size / 1e6:.1f} MB")
    for label, s in (
        ("append, one line per file", append_s),
        ("rewrite per file (before)", rewrite_s),
    ):
        print(f"  {label:<27} {s:8.2f} s  ({s / files * 1e6:.0f} us/file)")
    print(f"  read back on resume         {read_s:8.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="1000,10000,30000,100000")
    ap.add_argument("--files", type=int, default=5000)
    args = ap.parse_args()
    card_costs([int(n) for n in args.rows.split(",")])
    bookkeeping_costs(args.files)


if __name__ == "__main__":
    main()
