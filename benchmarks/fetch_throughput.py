"""Fetch throughput on the loopback Hub: quantpick's engine vs `hf download`, with curl as ceiling.

    .venv/bin/python benchmarks/fetch_throughput.py [--files 4] [--file-mib 256] [--rounds 3]

Serves one branch of FILES x FILE_MIB sparse LFS files (cheap to create, >= 1 GiB by default) from
a loopback Hub in its own process, so the server does not share a GIL with the client under test.
Each round runs every client once, in rotating order, into a fresh directory; each client is a
fresh process, as a user would run it. Prints the median wall time and GB/s of each client, the
ratio of `hf download` to quantpick (target >= 1.5x), and curl fetching the same files in
parallel: what this machine's loopback can do at all.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.request import Request, urlopen

from quantpick.testing import make_repo

REPO = "bench/throughput-exl2"
BRANCH = "4.0bpw"
VENV_BIN = Path(sys.executable).parent
# quantpick fetch --max-workers; set from the command line (None: quantpick's own default)
WORKERS: int | None = None


def start_hub(root: Path) -> tuple[subprocess.Popen[str], str]:
    hub = subprocess.Popen(
        [sys.executable, "-m", "quantpick.testing", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert hub.stdout is not None
    endpoint = hub.stdout.readline().strip()
    hub.stdout.readline()
    if not endpoint.startswith("http"):
        hub.kill()
        raise SystemExit("the loopback Hub did not start")
    return hub, endpoint


def tree(endpoint: str) -> list[dict[str, object]]:
    url = f"{endpoint}/api/models/{REPO}/tree/{BRANCH}?recursive=true"
    with urlopen(Request(url), timeout=600) as resp:  # first call hashes every file
        entries: list[dict[str, object]] = json.load(resp)
    return [e for e in entries if e["type"] == "file"]


def run_quantpick(endpoint: str, out: Path, scratch: Path, total: int, backend: str) -> None:
    """The real command a user types: `quantpick fetch REPO:BRANCH`."""
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(scratch / "qp-home"),
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    cmd = [
        str(VENV_BIN / "quantpick"),
        "fetch",
        f"{REPO}:{BRANCH}",
        "--local-dir",
        str(out),
        "--backend",
        backend,
        "--quiet",
    ]
    if WORKERS is not None:
        cmd += ["--max-workers", str(WORKERS)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    got = sum(
        p.stat().st_size for p in out.rglob("*") if p.is_file() and ".quantpick" not in p.parts
    )
    assert got >= total, (got, total)


def run_hf(endpoint: str, out: Path, scratch: Path) -> None:
    env = {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(scratch / "hf-home"),
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    cmd = [str(VENV_BIN / "hf"), "download", REPO, "--revision", BRANCH, "--local-dir", str(out)]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)


def run_curl(endpoint: str, out: Path, paths: list[str]) -> None:
    out.mkdir(parents=True)
    cmd = ["curl", "-sSfL", "--no-progress-meter", "--parallel", "--parallel-max", str(len(paths))]
    for i, path in enumerate(paths):
        cmd += ["-o", str(out / f"f{i}"), f"{endpoint}/{REPO}/resolve/{BRANCH}/{path}"]
    subprocess.run(cmd, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--file-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--hf-transfer", action="store_true", help="also time --backend hf_transfer"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary dir")
    parser.add_argument(
        "--max-workers",
        type=int,
        default=None,
        help="quantpick fetch --max-workers (default: quantpick's own)",
    )
    args = parser.parse_args()
    global WORKERS
    WORKERS = args.max_workers

    scratch = Path(tempfile.mkdtemp(prefix="qp-bench-", dir=args.workdir))
    size = args.file_mib << 20
    names = [f"model-{i:05d}-of-{args.files:05d}.safetensors" for i in range(1, args.files + 1)]
    files: dict[str, bytes | str | int] = dict.fromkeys(names, size)
    files["config.json"] = '{"model_type": "llama"}'
    make_repo(scratch / "hub", REPO, {BRANCH: files})
    hub, endpoint = start_hub(scratch / "hub")
    try:
        entries = tree(endpoint)
        total = sum(int(str(e["size"])) for e in entries)
        clients: dict[str, Callable[[Path], None]] = {
            "quantpick": lambda out: run_quantpick(endpoint, out, scratch, total, "auto"),
            "hf download": lambda out: run_hf(endpoint, out, scratch),
            "curl (ceiling)": lambda out: run_curl(endpoint, out, names),
        }
        if args.hf_transfer:
            clients["quantpick hf_transfer"] = lambda out: run_quantpick(
                endpoint, out, scratch, total, "hf_transfer"
            )
        times: dict[str, list[float]] = {name: [] for name in clients}
        # CPU seconds (user + sys) of the client's processes: steadier than wall time on a busy box
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        order = list(clients)
        print(f"{len(names)} x {args.file_mib} MiB = {total / 1e9:.2f} GB, {args.rounds} rounds")
        for r in range(args.rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                out = scratch / "out"
                shutil.rmtree(out, ignore_errors=True)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                began = time.perf_counter()
                clients[name](out)
                times[name].append(time.perf_counter() - began)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[name].append(
                    after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                )
                shutil.rmtree(out, ignore_errors=True)
            print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
        print()
        print(f"{'client':<24}{'median s':>10}{'GB/s':>8}{'best s':>8}{'CPU s':>8}")
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, median in medians.items():
            best, used = min(times[name]), statistics.median(cpu[name])
            print(f"{name:<24}{median:>10.2f}{total / median / 1e9:>8.2f}{best:>8.2f}{used:>8.2f}")
        ratio = medians["hf download"] / medians["quantpick"]
        best_ratio = min(times["hf download"]) / min(times["quantpick"])
        print(
            f"\nquantpick is {ratio:.2f}x hf download (target >= 1.5x; best runs "
            f"{best_ratio:.2f}x); {medians['curl (ceiling)'] / medians['quantpick']:.2f}x "
            "the curl ceiling's speed"
        )
    finally:
        hub.terminate()
        hub.wait(timeout=30)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
