"""A branch of many small files, fetched by `quantpick fetch` and by `hf download`, on both paths.

    .venv/bin/python benchmarks/small_files.py [--files 1000] [--file-bytes 2048] [--rounds 1]
        [--before-src DIR]

One branch of FILES small LFS files (config.json beside them) is served from the in-process
loopback Hub twice: in a Xet-backed repo and in a plain-LFS one (`xet=False`). Each client is a
fresh process, as a user would run it, into a fresh directory: `quantpick fetch` (default engine),
`quantpick fetch --backend hub` (huggingface_hub per file: what the default did for small plain
files before), `hf download`, and with `--before-src` the quantpick source tree of an earlier
commit (a `git worktree`), run with PYTHONPATH pointing at it. Prints wall time, CPU seconds (user
+ sys of the process and its children), CPU per file and the requests the server saw, side by
side. The server's snapshots are memoized (benchmarks/scale.py) so its per-request stat walk does
not count against any client.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scale import memoize_snapshots

from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

VENV_BIN = Path(sys.executable).parent


def _client(
    hub: HubServer, cmd: list[str], env: dict[str, str], out: Path, count: int
) -> tuple[float, float, int]:
    hub.requests.clear()
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{err.decode(errors='replace')[-2000:]}")
    got = sum(1 for p in out.rglob("*.bin") if ".cache" not in p.parts)
    if got != count:
        raise SystemExit(f"{cmd[:3]} left {got} of {count} files")
    return wall, usage.ru_utime + usage.ru_stime, len(hub.requests)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--file-bytes", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--before-src", type=Path, default=None)
    args = ap.parse_args()
    memoize_snapshots()
    n, size = args.files, args.file_bytes
    tree = {
        f"shards/{i // 100:02d}/f-{i:05d}.bin": (f"{i:08d}" * (size // 8 + 1)).encode()[:size]
        for i in range(n)
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for xet in (True, False):
            make_repo(
                root / "hub",
                f"bench/many-{'xet' if xet else 'lfs'}",
                {"main": {"config.json": "{}", **tree}},
                xet=xet,
                lfs_threshold_bytes=min(1024, size),
            )
        with HubServer(root / "hub") as hub:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))},
                "HF_ENDPOINT": hub.endpoint,
                "HF_HUB_DISABLE_UPDATE_CHECK": "1",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            }
            qp = [sys.executable, "-m", "quantpick", "fetch"]
            # (label, argv, extra arguments, PYTHONPATH)
            clients: list[tuple[str, list[str], list[str], str | None]] = [
                ("quantpick fetch", qp, [], None),
                ("quantpick fetch --backend hub", qp, ["--backend", "hub"], None),
                ("hf download", [str(VENV_BIN / "hf"), "download"], [], None),
            ]
            if args.before_src is not None:
                before = str(args.before_src / "src")
                clients.insert(1, ("quantpick fetch (before)", qp, [], before))
            print(f"{n} files of {size} B + config.json, one branch; {os.cpu_count()} CPUs")
            print(f"{'repo':<6} {'client':<31} {'wall s':>7} {'CPU s':>7} {'CPU ms/file':>12} "
                  f"{'requests':>9}")  # fmt: skip
            results: dict[tuple[str, str], list[tuple[float, float, int]]] = (
                collections.defaultdict(list)
            )
            for r in range(args.rounds):
                for kind in ("xet", "lfs"):
                    repo = f"bench/many-{kind}"
                    # warm the server's listing so the first client does not pay for it
                    subprocess.run(
                        [*qp[:-1], "list", repo], env=env, capture_output=True, check=False
                    )
                    for i in range(len(clients)):
                        label, cmd, extra, pythonpath = clients[(i + r) % len(clients)]
                        out = root / f"out-{kind}-{r}-{i}"
                        cenv = {**env, "HF_HOME": str(root / f"home-{kind}-{r}-{i}")}
                        if label == "hf download":
                            full = [*cmd, repo, "--local-dir", str(out), "--quiet"]
                        else:
                            full = [*cmd, f"{repo}:main", "--local-dir", str(out), "--quiet"]
                            full += extra
                        if pythonpath is not None:
                            cenv["PYTHONPATH"] = pythonpath
                        results[(kind, label)].append(_client(hub, full, cenv, out, n))
                        shutil.rmtree(out, ignore_errors=True)
            for kind in ("xet", "lfs"):
                for label, *_ in clients:
                    runs = sorted(results[(kind, label)])
                    wall, cpu, reqs = runs[len(runs) // 2]
                    print(f"{kind:<6} {label:<31} {wall:7.1f} {cpu:7.1f} {cpu / n * 1e3:12.1f} "
                          f"{reqs:9d}")  # fmt: skip
            if hub.errors:
                raise SystemExit("the loopback hub raised:\n" + "\n".join(hub.errors))


if __name__ == "__main__":
    main()
