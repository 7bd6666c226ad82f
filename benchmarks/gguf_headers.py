"""What reading the GGUF headers of a 25-file repo costs: requests and bytes, against the bytes
a download of the same files would move. Loopback Hub, real GGUF files (testing/gguf_files.py).

Run: python benchmarks/gguf_headers.py [--files 25] [--vocab 150000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from quantpick.testing.builder import make_repo
from quantpick.testing.gguf_files import GgufModel, gguf_bytes
from quantpick.testing.server import HubServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=25)
    # a real vocabulary makes a multi-megabyte header, longer than the first range
    parser.add_argument("--vocab", type=int, default=150_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = gguf_bytes(GgufModel(vocab=args.vocab, hidden=32, tied=True))
        files = {f"m-{i:02d}-Q8_0.gguf": data for i in range(args.files)}
        make_repo(Path(tmp, "hub"), "o/bench-GGUF", {"main": files}, readme="# m\n")
        with HubServer(Path(tmp, "hub")) as hub:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(Path(tmp, "hf")),
            }
            cmd = [sys.executable, "-m", "quantpick", "list", "o/bench-GGUF", "--json"]
            start = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, env=env, check=False)
            first_s = time.perf_counter() - start
            reads = [x for x in hub.requests.filter(path="*.gguf") if x.range is not None]
            served = [x for x in reads if x.status == 206]
            hub.requests.clear()
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=False)
            again_s = time.perf_counter() - start
            again = len(hub.requests.filter(path="*.gguf"))
    assert r.returncode == 0, r.stderr
    total = len(data) * args.files
    print(f"{args.files} GGUF files of {len(data) / 1e6:.1f} MB, vocabulary {args.vocab}")
    print(
        f"  header reads : {len(reads)} requests ({len(served)} ranged 206), "
        f"{sum(x.bytes_sent for x in served) / 1e6:.1f} MB"
    )
    print(f"  download all : {args.files} files, {total / 1e6:.1f} MB")
    print(
        f"  list, first  : {first_s:.2f} s;  again (cached by commit): {again_s:.2f} s, "
        f"{again} GGUF requests"
    )


if __name__ == "__main__":
    main()
