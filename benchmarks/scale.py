"""`quantpick list` on a repo with many branches and files, and `fetch` of a branch with many files.

    .venv/bin/python benchmarks/scale.py [--branches 300] [--files 20000] [--fetch-files 2000]
    .venv/bin/python benchmarks/scale.py --profile DIR   # also writes cProfile stats per command

Runs the real CLI in a subprocess against an in-process loopback Hub, and prints for each command
its wall time (process start included), the requests the Hub saw by kind, and the peak RSS of the
quantpick process (os.wait4's rusage of that one child). Files are tiny, so the figures show
per-request and per-file overheads, not bandwidth; the server hashes each file once, on the first
tree request, before the clock of the command that triggered it stops (run 1 is "cold").

The loopback Hub as shipped caches each branch's snapshot under a stat stamp of its files and
remembers which directory a commit sha belongs to, so a request costs a stat walk of one branch,
not a re-hash of all of them (this took `list` at 300 branches from 170 s to about 5 s). By default
this benchmark goes further and memoizes snapshots outright (its repos never change), so that the
figures measure quantpick; `--plain-server` measures the server as shipped, where the per-request
stat walk still costs the 2,000-file fetch about 45 s of server time.
"client CPU" is the quantpick
process's own user + system time, whatever the server does.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer
from quantpick.testing.store import Repo, Snapshot

ROOT = Path(__file__).resolve().parents[1]
CONFIG = (ROOT / "examples" / "configs" / "mixtral-8x7b.json").read_text()
LIST_REPO = "bench/many-branches-exl2"
FETCH_REPO = "bench/many-files-exl2"
FETCH_BRANCH = "4.0bpw"


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_rss_mib: float
    returncode: int
    requests: collections.Counter[str]


def branch_name(i: int) -> str:
    # every name says what it is (bits, head bits), so every branch is a variant
    return f"{2 + i * 0.01:.2f}bpw_h{6 + 2 * (i % 2)}"


def build(root: Path, branches: int, files: int, fetch_files: int) -> None:
    per_branch = max(1, files // branches - 1)
    tree: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for i in range(branches):
        tree[branch_name(i)] = {
            "config.json": CONFIG,
            **{f"output-{k:05d}.safetensors": f"{i}/{k}" for k in range(per_branch)},
        }
    make_repo(root, LIST_REPO, tree)
    shards = {f"shards/{k // 100:02d}/s-{k:05d}.safetensors": f"s{k}" for k in range(fetch_files)}
    make_repo(root, FETCH_REPO, {FETCH_BRANCH: {"config.json": CONFIG, **shards}})


def run(hub: HubServer, env: dict[str, str], args: list[str], profile: Path | None) -> Run:
    pre = ["-m", "cProfile", "-o", str(profile)] if profile else []
    cmd = [sys.executable, *pre, "-m", "quantpick", *args]
    hub.requests.clear()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    kinds = collections.Counter(f"{r.method} {_kind(r.path)} ({r.origin})" for r in hub.requests)
    # ru_maxrss is in KiB on Linux
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss / 1024, proc.returncode, kinds)


def memoize_snapshots() -> None:
    """One snapshot per branch directory for the server's life: these repos never change."""
    plain = Repo._snapshot
    memo: dict[Path, Snapshot] = {}

    def cached(self: Repo, directory: Path) -> Snapshot:
        if directory not in memo:
            memo[directory] = plain(self, directory)
        return memo[directory]

    Repo._snapshot = cached  # type: ignore[method-assign]


def _kind(path: str) -> str:
    if path.endswith("/refs"):
        return "refs"
    if "/tree/" in path:
        return "tree page"
    if "/revision/" in path or "/paths-info/" in path:
        return "info"
    if "/resolve/" in path or path.startswith("/lfs/"):
        return "file"
    return path


def report(title: str, runs: list[Run]) -> None:
    print(f"\n{title}")
    for n, r in enumerate(runs, 1):
        total = sum(r.requests.values())
        print(
            f"  run {n}: exit {r.returncode}, {r.wall_s:6.2f} s wall, {r.cpu_s:5.2f} s client CPU, "
            f"{total} requests, peak RSS {r.peak_rss_mib:.0f} MiB"
        )
    for kind, n in sorted(runs[0].requests.items()):
        print(f"    {n:6d}  {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--branches", type=int, default=300)
    parser.add_argument("--files", type=int, default=20_000, help="in all, over the branches")
    parser.add_argument("--fetch-files", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--plain-server", action="store_true", help="no snapshot memo")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of run 1 here")
    args = parser.parse_args()
    if not args.plain_server:
        memoize_snapshots()
    print("server: " + ("as shipped" if args.plain_server else "snapshots memoized per branch"))
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build(Path(tmp, "hub"), args.branches, args.files, args.fetch_files)
        print(f"built the repos in {time.perf_counter() - t0:.1f} s")
        with HubServer(Path(tmp, "hub")) as hub:
            env = {
                **os.environ,
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(Path(tmp, "hf")),
                "HF_HUB_DISABLE_UPDATE_CHECK": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
            }
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
            lists = []
            for i in range(args.runs):
                prof = args.profile / "list.prof" if args.profile and i == 0 else None
                lists.append(run(hub, env, ["list", LIST_REPO, "--json"], prof))
            report(f"list: {args.branches} branches + main, {args.files} files", lists)
            fetches = []
            for i in range(args.runs):
                target = Path(tmp, f"fetched-{i}")
                prof = args.profile / "fetch.prof" if args.profile and i == 0 else None
                spec = f"{FETCH_REPO}:{FETCH_BRANCH}"
                fetches.append(run(hub, env, ["fetch", spec, "--local-dir", str(target)], prof))
            report(f"fetch: one branch of {args.fetch_files + 1} files, fresh dir", fetches)
            if hub.errors:
                raise SystemExit("the loopback hub raised:\n" + "\n".join(hub.errors))


if __name__ == "__main__":
    main()
