"""Fetch throughput on the loopback Hub, on both paths: Xet storage and plain LFS.

    .venv/bin/python benchmarks/fetch_throughput.py [--files 4] [--file-mib 256] [--rounds 3]

Serves one branch of FILES x FILE_MIB random (not sparse) files twice from a loopback Hub in its
own process (the server does not share a GIL with the client under test): in a Xet-backed repo,
as on the real Hub, where `hf download` takes hf_xet through the CAS and quantpick by default its
ranged engine over the bridge URL; and in a plain-LFS repo (a mirror without Xet), where both use
the CDN. The two repos hard-link the same bytes. Each round runs every client once, in rotating
order, into a fresh directory; each client is a fresh process, as a user would run it. Prints per
client the median wall time, GB/s, CPU seconds and peak RSS, the ratios to `hf download` on each
path (targets: >= 1.0x on Xet, >= 1.5x on plain LFS), curl fetching the plain files in parallel
(what this machine's loopback can do at all), and a resume probe: each Xet-path client killed with
SIGKILL halfway, then run again, counting the bytes the second run moved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.request import Request, urlopen

from quantpick.testing import HubProcess, make_repo

XET_REPO = "bench/throughput-xet"
PLAIN_REPO = "bench/throughput-lfs"
BRANCH = "4.0bpw"
VENV_BIN = Path(sys.executable).parent
# quantpick fetch --max-workers; set from the command line (None: quantpick's own default)
WORKERS: int | None = None


def tree(endpoint: str, repo: str) -> list[dict[str, object]]:
    url = f"{endpoint}/api/models/{repo}/tree/{BRANCH}?recursive=true"
    with urlopen(Request(url), timeout=600) as resp:  # first call hashes every file
        entries: list[dict[str, object]] = json.load(resp)
    return [e for e in entries if e["type"] == "file"]


def _env(endpoint: str, home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HF_ENDPOINT": endpoint,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }


def quantpick_cmd(repo: str, out: Path, backend: str) -> list[str]:
    """The real command a user types: `quantpick fetch REPO:BRANCH`."""
    cmd = [str(VENV_BIN / "quantpick"), "fetch", f"{repo}:{BRANCH}", "--local-dir", str(out)]
    cmd += ["--backend", backend, "--quiet"]
    if WORKERS is not None:
        cmd += ["--max-workers", str(WORKERS)]
    return cmd


def hf_cmd(repo: str, out: Path) -> list[str]:
    return [str(VENV_BIN / "hf"), "download", repo, "--revision", BRANCH, "--local-dir", str(out)]


def curl_cmd(endpoint: str, out: Path, paths: list[str]) -> list[str]:
    out.mkdir(parents=True)
    cmd = ["curl", "-sSfL", "--no-progress-meter", "--parallel", "--parallel-max", str(len(paths))]
    for i, path in enumerate(paths):
        cmd += ["-o", str(out / f"f{i}"), f"{endpoint}/{PLAIN_REPO}/resolve/{BRANCH}/{path}"]
    return cmd


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, int]:
    """Wall s, CPU s (user + sys) and peak RSS (KiB) of one process (and its reaped children)."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def landed_bytes(out: Path) -> int:
    return sum(
        p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and ".quantpick" not in p.parts and ".cache" not in p.parts
    )


def written_bytes(out: Path) -> int:
    """Bytes really written under `out`, partial files included (allocated blocks: a .part is
    sparse until its chunks land)."""
    total = 0
    for folder, _, names in os.walk(out):  # files come and go under it: skip what vanished
        for name in names:
            with contextlib.suppress(OSError):
                total += os.stat(os.path.join(folder, name)).st_blocks * 512
    return total


def resume_probe(
    hub: HubProcess, cmd: list[str], env: dict[str, str], out: Path, total: int
) -> tuple[int, int]:
    """SIGKILL `cmd` once half the bytes are on disk, run it again: (bytes the rerun moved, at
    the kill)."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while written_bytes(out) < total // 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    at_kill = written_bytes(out)
    proc.kill()
    proc.wait()
    hub.requests.clear()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    moved = sum(r.bytes_sent for r in hub.requests if r.origin in ("cdn", "cas"))
    return moved, at_kill


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
    names = [f"model-{i:05d}-of-{args.files:05d}.safetensors" for i in range(1, args.files + 1)]
    files: dict[str, bytes | str | int] = dict.fromkeys(names, 0)
    files["config.json"] = '{"model_type": "llama"}'
    built = make_repo(scratch / "hub", XET_REPO, {BRANCH: files})
    for name in names:
        # random bytes, written piece by piece: this process stays small, so the peak RSS each
        # forked client reports is its own
        with (built.branch_dir(BRANCH) / name).open("wb") as f:
            for _ in range(args.file_mib):
                f.write(os.urandom(1 << 20))
    plain = make_repo(scratch / "hub", PLAIN_REPO, {BRANCH: {}}, xet=False).branch_dir(BRANCH)
    for f in built.branch_dir(BRANCH).iterdir():
        os.link(f, plain / f.name)  # the same bytes, no second copy on disk
    hub = HubProcess(scratch / "hub").start()
    try:
        endpoint = hub.endpoint
        total = sum(int(str(e["size"])) for e in tree(endpoint, XET_REPO))
        tree(endpoint, PLAIN_REPO)
        qp_env, hf_env = _env(endpoint, scratch / "qp-home"), _env(endpoint, scratch / "hf-home")
        out = scratch / "out"
        clients: dict[str, Callable[[], list[str]]] = {
            "xet: quantpick": lambda: quantpick_cmd(XET_REPO, out, "auto"),
            "xet: quantpick --backend hub": lambda: quantpick_cmd(XET_REPO, out, "hub"),
            "xet: hf download": lambda: hf_cmd(XET_REPO, out),
            "lfs: quantpick": lambda: quantpick_cmd(PLAIN_REPO, out, "auto"),
            "lfs: hf download": lambda: hf_cmd(PLAIN_REPO, out),
            "lfs: curl (ceiling)": lambda: curl_cmd(endpoint, out, names),
        }
        if args.hf_transfer:
            clients["lfs: quantpick hf_transfer"] = lambda: quantpick_cmd(
                PLAIN_REPO, out, "hf_transfer"
            )
        envs = {name: hf_env if "hf download" in name else qp_env for name in clients}
        times: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, list[float]] = {name: [] for name in clients}
        rss: dict[str, list[int]] = {name: [] for name in clients}
        order = list(clients)
        gb = total / 1e9
        print(f"{len(names)} x {args.file_mib} MiB random = {gb:.2f} GB, {args.rounds} rounds")
        for r in range(args.rounds):
            for name in order[r % len(order) :] + order[: r % len(order)]:
                shutil.rmtree(out, ignore_errors=True)
                wall, used, peak = run(clients[name](), envs[name])
                if "curl" not in name:
                    assert landed_bytes(out) >= total, (name, landed_bytes(out), total)
                times[name].append(wall)
                cpu[name].append(used)
                rss[name].append(peak)
                shutil.rmtree(out, ignore_errors=True)
            print(f"round {r + 1}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
        print()
        print(f"{'client':<32}{'median s':>9}{'GB/s':>7}{'best s':>8}{'CPU s':>7}{'RSS MiB':>9}")
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, median in medians.items():
            best, used = min(times[name]), statistics.median(cpu[name])
            peak_mib = max(rss[name]) / 1024
            print(
                f"{name:<32}{median:>9.2f}{total / median / 1e9:>7.2f}{best:>8.2f}"
                f"{used:>7.2f}{peak_mib:>9.0f}"
            )
        for path, target in (("xet", 1.0), ("lfs", 1.5)):
            ratio = medians[f"{path}: hf download"] / medians[f"{path}: quantpick"]
            print(f"{path}: quantpick is {ratio:.2f}x hf download (target >= {target}x)")
        print(f"\nresume: SIGKILL at about half of {gb:.2f} GB, then the same command again")
        for name in ("xet: quantpick", "xet: quantpick --backend hub", "xet: hf download"):
            shutil.rmtree(out, ignore_errors=True)
            moved, at_kill = resume_probe(hub, clients[name](), envs[name], out, total)
            print(
                f"  {name:<30} {at_kill / 1e6:7.1f} MB on disk at the kill, "
                f"rerun moved {moved / 1e6:7.1f} MB (missing: {(total - at_kill) / 1e6:.1f} MB)"
            )
        shutil.rmtree(out, ignore_errors=True)
    finally:
        hub.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
