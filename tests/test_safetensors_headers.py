"""safetensors headers read remotely (huggingface_hub's get_safetensors_metadata over Range,
through the loopback Hub's CDN / Xet bridge): dtypes, parameter counts and exact weight bytes per
variant, with provenance `header`, bounded requests, cached by commit."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import list_json, run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.safetensors_files import (
    DTYPE_BYTES,
    Tensor,
    llama_tensors,
    safetensors_files,
)
from quantpick.testing.server import HubServer

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 256,
    "max_position_embeddings": 4096,
}
GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": False}


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    root.mkdir()
    with HubServer(root) as server:
        yield server


def _by_dtype(tensors: tuple[Tensor, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    for _, dtype, shape in tensors:
        out[dtype] = out.get(dtype, 0) + math.prod(shape)
    return out


def _bytes(tensors: tuple[Tensor, ...]) -> int:
    return sum(math.prod(shape) * DTYPE_BYTES[dtype] for _, dtype, shape in tensors)


@pytest.mark.parametrize("xet", [True, False], ids=["xet-bridge", "plain-lfs"])
def test_sharded_single_variant_repo(qhub: HubServer, tmp_path: Path, xet: bool) -> None:
    tensors = llama_tensors(gptq_bits=4, group_size=32)
    config = json.dumps({**CONFIG, "quantization_config": GPTQ})
    files = {"config.json": config, "tokenizer.json": "x" * 50_000}
    files |= safetensors_files(tensors, shards=3)
    make_repo(qhub.root, "o/m-GPTQ-4bit", {"main": files}, readme="# m\n", xet=xet)
    doc = list_json(qhub, tmp_path, "o/m-GPTQ-4bit", "--vram", "24", "--ctx", "4k")
    (v,) = doc["variants"]
    facts = v["safetensors"]
    assert facts["parameters_by_dtype"] == _by_dtype(tensors)
    assert facts["parameter_count"] == sum(_by_dtype(tensors).values())
    assert facts["weights_bytes"] == _bytes(tensors)
    assert (facts["shards"], facts["source"]) == (3, "header")
    assert (v["weights_bytes"], v["weights_source"]) == (_bytes(tensors), "header")
    # the estimate counts the tensors, not the branch's files (tokenizer, config, index)
    assert v["size_bytes"] > _bytes(tensors) + 50_000
    assert v["estimate"]["breakdown"]["weights_bytes"] == _bytes(tensors)
    assert v["estimate"]["weights_source"] == "header"
    # bounded: the index (existence checks, HEAD + GET) and one ranged GET per shard
    shard_gets = [r for r in qhub.requests if r.origin == "hub" and r.path.endswith(".safetensors")]
    assert len([r for r in shard_gets if r.method == "GET"]) == 3
    assert all(r.range == "bytes=0-100000" for r in shard_gets if r.method == "GET")
    st_requests = [r for r in qhub.requests if "safetensors" in r.path]
    assert len(st_requests) <= 3 * 2 + 4
    # cached under the commit: a second look-up reads no header
    qhub.requests.clear()
    again = list_json(qhub, tmp_path, "o/m-GPTQ-4bit")
    assert again["variants"][0]["safetensors"] == facts
    assert not [r for r in qhub.requests if "safetensors" in r.path]
    # offline, from the last look-up: the same facts, from the cache
    offline = list_json(qhub, tmp_path, "o/m-GPTQ-4bit", "--offline")
    assert offline["variants"][0]["safetensors"] == facts


def test_branch_variants_read_their_own_branch(qhub: HubServer, tmp_path: Path) -> None:
    four = llama_tensors(gptq_bits=4, group_size=32)
    eight = llama_tensors(gptq_bits=8, group_size=32)
    config = json.dumps(CONFIG)
    make_repo(
        qhub.root,
        "o/m-GPTQ",
        {
            "main": {"README.md": "# m\n"},
            "gptq-4bit-32g": {"config.json": config, **safetensors_files(four)},
            "gptq-8bit-32g": {"config.json": config, **safetensors_files(eight, shards=2)},
            "gptq-3bit-32g": {"config.json": config, "model.bin": 4096},
        },
    )
    got = {v["name"]: v for v in list_json(qhub, tmp_path, "o/m-GPTQ")["variants"]}
    assert got["gptq-4bit-32g"]["safetensors"]["weights_bytes"] == _bytes(four)
    assert got["gptq-4bit-32g"]["safetensors"]["shards"] == 1
    assert got["gptq-8bit-32g"]["safetensors"]["weights_bytes"] == _bytes(eight)
    assert got["gptq-8bit-32g"]["safetensors"]["parameters_by_dtype"] == _by_dtype(eight)
    # no safetensors in the branch: nothing made up
    assert got["gptq-3bit-32g"]["safetensors"] is None
    assert got["gptq-3bit-32g"]["weights_source"] is None
    # each branch's headers are read at that branch's commit, never at main
    revisions = {
        r.path.split("/resolve/")[1].split("/")[0]
        for r in qhub.requests
        if "/resolve/" in r.path and "safetensors" in r.path
    }
    # the two safetensors branches, each by commit; the .bin branch is not asked
    assert len(revisions) == 2
    assert not revisions & {"main", "gptq-4bit-32g", "gptq-8bit-32g"}


def test_unreadable_header_costs_only_its_facts(qhub: HubServer, tmp_path: Path) -> None:
    make_repo(
        qhub.root,
        "o/m-AWQ",
        {"main": {"config.json": json.dumps(CONFIG), "model.safetensors": b"\xff" * 64}},
        readme="# m\n",
    )
    (v,) = list_json(qhub, tmp_path, "o/m-AWQ")["variants"]
    assert v["safetensors"] is None
    assert v["size_source"] == "hub"


def test_table_shows_header_weights_only_where_they_fit(qhub: HubServer, tmp_path: Path) -> None:
    tensors = llama_tensors(gptq_bits=4, group_size=32)
    branches = {
        "main": {"README.md": "# m\n"},
        "gptq-4bit-32g": {"config.json": json.dumps(CONFIG), **safetensors_files(tensors)},
    }
    make_repo(qhub.root, "o/m-table-GPTQ", branches)
    env = {"HF_ENDPOINT": qhub.endpoint, "HF_HOME": str(tmp_path / "hf")}
    wide = run_qp("list", "o/m-table-GPTQ", env={**env, "COLUMNS": "200"})
    assert wide.returncode == 0, wide.stderr
    head, row = wide.stdout.splitlines()[1:3]
    # one row: the source is said once, in the column's header
    assert "weights (header)" in head
    assert f"{_bytes(tensors) / 1e3:.2f} kB" in row
    assert "(header) = the tensors' bytes in the files' own headers" in wide.stdout
    narrow = run_qp(
        "list", "o/m-table-GPTQ", "--vram", "24", "--ctx", "4k", env={**env, "COLUMNS": "80"}
    )
    assert narrow.returncode == 0, narrow.stderr
    assert "(header)" not in narrow.stdout
    assert all(len(line) <= 80 for line in narrow.stdout.splitlines())


def test_server_errors_on_a_header_read_are_retried_then_cost_only_the_facts(
    qhub: HubServer, tmp_path: Path
) -> None:
    from quantpick.testing.faults import Fault

    tensors = llama_tensors()
    files = {"config.json": json.dumps(CONFIG), **safetensors_files(tensors)}
    make_repo(qhub.root, "o/flaky-AWQ", {"main": files}, readme="# m\n")
    make_repo(qhub.root, "o/down-AWQ", {"main": files}, readme="# m\n")
    glob = "/o/{}/resolve/*/model.safetensors"
    qhub.faults.add(glob.format("flaky-AWQ"), Fault(status=503, times=1, method="GET"))
    qhub.faults.add(glob.format("down-AWQ"), Fault(status=503, method="GET"))
    (flaky,) = list_json(qhub, tmp_path, "o/flaky-AWQ")["variants"]
    assert flaky["safetensors"]["weights_bytes"] == _bytes(tensors)
    (down,) = list_json(qhub, tmp_path, "o/down-AWQ")["variants"]
    assert down["safetensors"] is None
    assert (down["size_source"], down["size_bytes"]) == ("hub", flaky["size_bytes"])
