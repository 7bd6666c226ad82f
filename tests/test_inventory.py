"""The Hub's inventory grouped into variants, and other repos' variants a card lists: `quantpick
list REPO --json` (and `pick`) against the loopback Hub serving small repos of each kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qp import run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

K = 1 << 10
CONFIG = json.dumps(
    {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
    }
)


@pytest.fixture(scope="module")
def qhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub")) as server:
        yield server


def _run(qhub: HubServer, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    r = run_qp(*args, env={"HF_ENDPOINT": qhub.endpoint, "HF_HOME": str(tmp_path / "hf")})
    return r.returncode, r.stdout, r.stderr


def _variants(qhub: HubServer, tmp_path: Path, repo: str, *args: str) -> dict[str, Any]:
    code, out, err = _run(qhub, tmp_path, "list", repo, "--json", *args)
    assert code == 0, err
    return {v["name"]: v for v in json.loads(out)["variants"]}


def test_file_repo_groups_parts_folders_joins_and_companions(
    qhub: HubServer, tmp_path: Path
) -> None:
    files = {
        "m-Q4_K_M-00001-of-00003.gguf": 3 * K,
        "m-Q4_K_M-00002-of-00003.gguf": 3 * K,
        "m-Q4_K_M-00003-of-00003.gguf": K,
        "m-Q8_0/m-Q8_0-00001-of-00002.gguf": 5 * K,
        "m-Q8_0/m-Q8_0-00002-of-00002.gguf": 4 * K,
        "m.Q6_K.gguf-split-a": 2 * K,
        "m.Q6_K.gguf-split-b": 2 * K,
        "m-IQ4_XS.gguf": 2 * K,
        "mmproj-m-f16.gguf": K,
        "imatrix.dat": K,
        "m.imatrix.gguf": K,
    }
    make_repo(qhub.root, "o/inv-GGUF", {"main": files}, readme="# m\n")
    got = _variants(qhub, tmp_path, "o/inv-GGUF")
    assert set(got) == {
        "m-Q4_K_M.gguf",
        "m-Q8_0.gguf",
        "m.Q6_K.gguf",
        "m-IQ4_XS.gguf",
        "mmproj-m-f16.gguf",
    }
    split = got["m-Q4_K_M.gguf"]
    assert split["files"] == [f"m-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert split["size_bytes"] == 7 * K
    folder = got["m-Q8_0.gguf"]
    assert (folder["folder"], folder["size_bytes"]) == ("m-Q8_0", 9 * K)
    assert folder["files"] == [f"m-Q8_0/m-Q8_0-0000{i}-of-00002.gguf" for i in (1, 2)]
    joined = got["m.Q6_K.gguf"]
    assert joined["files"] == ["m.Q6_K.gguf-split-a", "m.Q6_K.gguf-split-b"]
    assert any("concatenated" in w for w in joined["warnings"])
    assert got["mmproj-m-f16.gguf"]["role"] == "companion"
    assert {v["role"] for n, v in got.items() if n != "mmproj-m-f16.gguf"} == {"model"}
    assert {v["quant_method"] for v in got.values()} >= {"Q4_K_M", "Q8_0", "Q6_K", "IQ4_XS"}


def test_branch_repo_one_variant_per_branch(qhub: HubServer, tmp_path: Path) -> None:
    shards = {
        "config.json": CONFIG,
        "model-00001-of-00002.safetensors": 3 * K,
        "model-00002-of-00002.safetensors": 2 * K,
        "model.safetensors.index.json": "{}",
    }
    make_repo(
        qhub.root,
        "o/inv-exl2",
        {
            "main": {"measurement.json": "{}"},
            "4.0bpw": shards,
            "6.0bpw": {"config.json": CONFIG, "output.safetensors": 4 * K},
            "docs": {"notes.md": "only text"},
        },
    )
    got = _variants(qhub, tmp_path, "o/inv-exl2")
    # main holds only the measurement, `docs` no weights: neither is a variant
    assert set(got) == {"4.0bpw", "6.0bpw"}
    four = got["4.0bpw"]
    assert four["kind"] == "branch"
    # a branch is downloaded whole: its shards are not variants of their own
    assert four["files"] == []
    assert four["size_bytes"] == sum(len(v) if isinstance(v, str) else v for v in shards.values())
    assert (four["bits"], four["bits_source"]) == (4.0, "name")


def test_single_variant_repo_is_main(qhub: HubServer, tmp_path: Path) -> None:
    files = {
        "config.json": CONFIG,
        "model-00001-of-00002.safetensors": 3 * K,
        "model-00002-of-00002.safetensors": 2 * K,
        "model.safetensors.index.json": "{}",
        "tokenizer.json": "{}",
    }
    make_repo(qhub.root, "o/inv-7B-AWQ-4bit", {"main": files}, readme="# m\n")
    got = _variants(qhub, tmp_path, "o/inv-7B-AWQ-4bit")
    assert set(got) == {"main"}
    (main,) = got.values()
    assert (main["kind"], main["format"], main["bits"]) == ("branch", "awq", 4)
    assert main["hub_status"] == "present"
    # the whole branch is the variant: every file, README included
    readme_bytes = len("# m\n")
    assert main["size_bytes"] == readme_bytes + sum(
        len(v) if isinstance(v, str) else v for v in files.values()
    )


def test_other_repos_links_are_repo_variants_never_offered(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        "# Merge-70b\n\nQuants by others:\n\n"
        "- EXL2: [2.4bpw](https://huggingface.co/q/Merge-70b-2.4bpw-h6-exl2) | "
        "[4.0bpw](https://huggingface.co/q/Merge-70b-4.0bpw-h6-exl2)\n"
    )
    make_repo(
        qhub.root,
        "o/Merge-70b",
        {"main": {"config.json": CONFIG, "model.safetensors": 4 * K}},
        readme=readme,
    )
    got = _variants(qhub, tmp_path, "o/Merge-70b", "--vram", "24", "--ctx", "4k")
    others = {n: v for n, v in got.items() if v["kind"] == "repo"}
    assert set(others) == {"q/Merge-70b-2.4bpw-h6-exl2", "q/Merge-70b-4.0bpw-h6-exl2"}
    assert {v["repo"] for v in others.values()} == set(others)
    assert all(not v["picked"] and v["size_bytes"] is None for v in others.values())
    code, out, err = _run(qhub, tmp_path, "pick", "o/Merge-70b", "--vram", "24", "--ctx", "4k")
    # the only variant this repo holds is its own main
    assert (code, out.strip()) == (0, "main"), err


def test_another_repos_branch_table_is_never_offered(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        "# Fine-Tune\n\nQuantized by a friend:\n\n| Branch | Bits | VRAM (4k) |\n|---|---|---|\n"
        "| [8_0](https://huggingface.co/f/Fine-Tune-exl2/tree/8_0) | 8.0 | 13.7 GB |\n"
        "| [4_25](https://huggingface.co/f/Fine-Tune-exl2/tree/4_25) | 4.25 | 8.2 GB |\n"
    )
    make_repo(
        qhub.root,
        "o/Fine-Tune",
        {"main": {"config.json": CONFIG, "model.safetensors": 4 * K}},
        readme=readme,
    )
    got = _variants(qhub, tmp_path, "o/Fine-Tune", "--vram", "24", "--ctx", "4k")
    for name in ("8_0", "4_25"):
        assert got[name]["repo"] == "f/Fine-Tune-exl2"
        assert got[name]["picked"] is False
        assert got[name]["estimate"] is None
    code, out, err = _run(qhub, tmp_path, "pick", "o/Fine-Tune", "--vram", "24", "--ctx", "4k")
    # 4_25's card figure (8.2 GB at 4k) would fit: it is another repo's, so it is passed over
    assert (code, out.strip()) == (0, "main"), err
