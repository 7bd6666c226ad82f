"""Costs that must grow linearly: card parsing by table rows, and a big fetch's bookkeeping.

    .venv/bin/python benchmarks/reliability_cost.py [--rows 0,8000,30000,100000] [--files 5000]

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
import json, resource, sys, time, tracemalloc
from quantpick.card.parser import parse_card
sys.path.insert(0, sys.argv[3])
from parse_speed import build_card
n, mode = int(sys.argv[1]), sys.argv[2]
if n:
    # every row names its own branch, so no cache of cells or names flatters the figure
    row = "| [{b}_{q}-r{i}](https://huggingface.co/o/m/tree/{b}_{q}-r{i}) | {b}.{q} | {g}.0 GB |\\n"
    rows = "".join(row.format(i=i, b=i % 7 + 2, q=i % 9, g=i % 20 + 1) for i in range(n))
    card = "| Branch | Bits | VRAM (4k) |\\n|---|---|---|\\n" + rows
else:
    card = build_card(100 * 1024)
parse_card("| Branch | Bits |\\n|---|---|\\n| [a](https://huggingface.co/o/m/tree/a) | 4 |\\n")
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if mode == "mem":
    tracemalloc.start()
t, cpu = time.perf_counter(), time.process_time()
parsed = parse_card(card, repo="o/m")
elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
peak = tracemalloc.get_traced_memory()[1] if mode == "mem" else 0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"rows": n, "bytes": len(card), "s": elapsed, "cpu": cpu, "peak": peak,
                  "rss_growth": (rss - rss0) * 1024, "variants": len(parsed.variants)}))
"""


def _child(n: int, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _CARD_CHILD, str(n), mode, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def card_costs(sizes: list[int]) -> None:
    """Each size in fresh processes: one timed, one under tracemalloc (which slows allocation
    2-3x, so its run is not the timed one). Row 0 is the ~100 KB realistic card of
    benchmarks/parse_speed.py (fixture layouts, then benchmark tables, code and prose)."""
    print(
        f"{'rows':>8} {'card MB':>8} {'variants':>8} {'parse s':>8} {'cpu s':>6} {'us/row':>7} "
        f"{'py peak MiB':>11} {'RSS +MiB':>8}"
    )
    for n in sizes:
        timed, mem = _child(n, "time"), _child(n, "mem")
        per_row = f"{timed['s'] / n * 1e6:>7.0f}" if n else f"{'-':>7}"
        label = f"{n:>8}" if n else f"{'100 KB':>8}"
        print(
            f"{label} {timed['bytes'] / 1e6:>8.2f} {timed['variants']:>8.0f} {timed['s']:>8.2f} "
            f"{timed['cpu']:>6.2f} {per_row} {mem['peak'] / 2**20:>11.1f} "
            f"{timed['rss_growth'] / 2**20:>8.0f}"
        )


def fetch_costs(files: int) -> None:
    """A real `quantpick fetch` of a branch of `files` small files against the in-process loopback
    Hub, beside `hf download` of the same branch, then quantpick's re-run over the finished dir
    (where the record of checked files saves the re-hash). Same server, same machine, one after
    the other; the server's snapshots are memoized (benchmarks/scale.py) so its stat walk per
    request does not count against either client."""
    from scale import memoize_snapshots, run

    from quantpick.testing.builder import make_repo
    from quantpick.testing.server import HubServer

    memoize_snapshots()
    hf = Path(sys.executable).with_name("hf")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tree = {f"shards/{i // 100:02d}/f-{i:05d}.json": f'{{"i": {i}}}' for i in range(files)}
        make_repo(root / "hub", "bench/many", {"main": {"config.json": "{}", **tree}})
        with HubServer(root / "hub") as hub:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))},
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(root / "hf"),
                "HF_HUB_DISABLE_UPDATE_CHECK": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
            }
            fetch = ["fetch", "bench/many:main", "--local-dir", str(root / "qp")]
            runs = [
                ("quantpick fetch", run(hub, env, fetch, None)),
                ("quantpick fetch, again", run(hub, env, fetch, None)),
            ]
            t = time.perf_counter()
            proc = subprocess.run(
                [str(hf), "download", "bench/many", "--revision", "main", "--local-dir",
                 str(root / "hfd"), "--quiet"],
                env={**env, "HF_HOME": str(root / "hf2")},
                capture_output=True,
                check=False,
            )  # fmt: skip
            hf_s = time.perf_counter() - t
            got = sum(1 for p in tree if (root / "qp" / p).is_file())
            if hub.errors:
                raise SystemExit("the loopback hub raised:\n" + "\n".join(hub.errors))
    print(f"\nfetch of {files} small files + config.json (one branch); quantpick got {got}")
    for label, r in runs:
        print(
            f"  {label:<24} exit {r.returncode}  {r.wall_s:7.1f} s wall  {r.cpu_s:6.1f} s CPU  "
            f"{sum(r.requests.values()):6d} requests  peak RSS {r.peak_rss_mib:.0f} MiB"
        )
    print(f"  {'hf download':<24} exit {proc.returncode}  {hf_s:7.1f} s wall")


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
    ap.add_argument("--rows", default="0,8000,30000,100000")
    ap.add_argument("--files", type=int, default=5000)
    args = ap.parse_args()
    if args.rows:
        card_costs([int(n) for n in args.rows.split(",")])
    if args.files:
        fetch_costs(args.files)
        bookkeeping_costs(args.files)


if __name__ == "__main__":
    main()
