"""What reading the safetensors headers of a branch repo costs: requests and bytes, against the
bytes a download of the same branches would move. Loopback Hub, real safetensors headers
(testing/safetensors_files.py), GPTQ's packed layout of an 80-layer model.

Run: python benchmarks/safetensors_headers.py [--branches 4] [--shards 8] [--layers 80]
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

from quantpick.testing.builder import make_repo
from quantpick.testing.safetensors_files import SafetensorsModel, llama_tensors, safetensors_files
from quantpick.testing.server import HubServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--branches", type=int, default=4)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--layers", type=int, default=80)
    args = parser.parse_args()
    tensors = llama_tensors(args.layers, hidden=512, ff=1536, vocab=32000, gptq_bits=4)
    files = safetensors_files(tensors, shards=args.shards)
    weights = sum(f.data_bytes for f in files.values() if isinstance(f, SafetensorsModel))
    config = json.dumps({"quantization_config": {"quant_method": "gptq", "bits": 4}})
    names = [f"gptq-4bit-{32 << i}g" for i in range(args.branches)]
    branches = {name: {"config.json": config, **files} for name in names}
    with tempfile.TemporaryDirectory() as tmp:
        make_repo(Path(tmp, "hub"), "o/bench-GPTQ", {"main": {}, **branches}, readme="# m\n")
        with HubServer(Path(tmp, "hub")) as hub:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("HF_")},
                "HF_ENDPOINT": hub.endpoint,
                "HF_HOME": str(Path(tmp, "hf")),
            }
            cmd = [sys.executable, "-m", "quantpick", "list", "o/bench-GPTQ", "--json"]
            start = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, env=env, check=False)
            first_s = time.perf_counter() - start
            asked = [x for x in hub.requests if "safetensors" in x.path]
            moved = sum(x.bytes_sent for x in asked)
            hub.requests.clear()
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, env=env, check=False)
            again_s = time.perf_counter() - start
            again = len([x for x in hub.requests if "safetensors" in x.path])
    assert r.returncode == 0, r.stderr
    print(
        f"{args.branches} branches x {args.shards} shards, {len(tensors)} tensors, "
        f"{weights / 1e6:.1f} MB of weights per branch"
    )
    print(
        f"  header reads : {len(asked)} requests "
        f"({len(asked) / args.branches:.0f} per branch: existence checks, the index, a ranged GET "
        f"and its redirect per shard), {moved / 1e6:.2f} MB"
    )
    print(f"  download all : {weights * args.branches / 1e6:.1f} MB")
    print(
        f"  list, first  : {first_s:.2f} s;  again (cached by commit): {again_s:.2f} s, "
        f"{again} safetensors requests"
    )


if __name__ == "__main__":
    main()
