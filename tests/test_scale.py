"""Request counts at scale, small enough for the suite (benchmarks/scale.py runs the big version):
`list` costs one tree request per branch whatever the files, `fetch` a bounded few per file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qp import run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer


def _branch(i: int) -> str:
    return f"{2 + i * 0.01:.2f}bpw_h{6 + 2 * (i % 2)}"


@pytest.mark.parametrize("files_per_branch", [2, 49])
def test_list_requests_grow_with_branches_not_files(tmp_path: Path, files_per_branch: int) -> None:
    branches = 40
    tree: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for i in range(branches):
        tree[_branch(i)] = {f"out-{k:03d}.safetensors": f"{i}/{k}" for k in range(files_per_branch)}
    make_repo(tmp_path / "hub", "o/many", tree)
    with HubServer(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}
        r = run_qp("list", "o/many", "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["variants"]) == branches
        assert hub.requests.count(path="/api/models/o/many/refs") == 1
        # one page per branch: 49 files fit in one page of 1000
        assert hub.requests.count(path="/api/models/o/many/tree/*") == branches + 1
        # README and config.json probes, huggingface_hub's agent-harnesses registry
        assert len(hub.requests) <= branches + 1 + 1 + 6
        assert not hub.requests.filter(path="*/resolve/*/out-*")


def test_fetch_of_many_small_files_costs_a_few_requests_each(tmp_path: Path) -> None:
    files = 200
    shards = {f"s/{k // 50}/p-{k:04d}.safetensors": f"p{k}" for k in range(files)}
    make_repo(tmp_path / "hub", "o/shards", {"4.0bpw": {"config.json": "{}", **shards}})
    with HubServer(tmp_path / "hub") as hub:
        hub.tree_page_size = 64
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}
        r = run_qp("fetch", "o/shards:4.0bpw", "--local-dir", tmp_path / "d", "--json", env=env)
        assert r.returncode == 0, r.stderr
        assert len(json.loads(r.stdout)["files"]) == files + 1
        # each file: at most a HEAD on the Hub and a GET (a CDN GET for LFS files)
        per_file = hub.requests.filter(path="*/p-*.safetensors")
        assert len(per_file) <= 2 * files
        assert hub.requests.count(path="*/p-*.safetensors", method="GET") == files
        # trees are paged (64 a page here), a handful of times, never per file
        pages = hub.requests.count(path="/api/models/o/shards/tree/*")
        assert pages <= 3 * (files // 64 + 1)
        assert len(hub.requests) <= 2 * files + pages + 12
        hub.requests.clear()
        again = run_qp("fetch", "o/shards:4.0bpw", "--local-dir", tmp_path / "d", env=env)
        assert again.returncode == 0, again.stderr
        assert not hub.requests.filter(path="*/p-*.safetensors")
