"""`quantpick search BASE`: all quantized repos of one base model, ranked together."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from qp import EXAMPLES, REPO_ROOT, run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

CONFIG = (EXAMPLES / "configs" / "mixtral-8x7b.json").read_text()
BASE = "demo/Mixtral-8x7B-Instruct-v0.1"
URL = "https://huggingface.co/x/y/blob/main/"

GPTQ_CARD = f"""---
base_model: {BASE}
---
| Branch | Bits | GS | Act Order | Damp % | Size | Desc |
| ------ | ---- | -- | --------- | ------ | ---- | ---- |
| main | 4 | None | Yes | 0.1 | 23.81 GB | 4-bit, no group size |
| gptq-3bit-128g-actorder_True | 3 | 128 | Yes | 0.1 | 18.85 GB | 3-bit |
"""
GGUF_CARD = f"""---
base_model: {BASE}
---
| Name | Quant method | Bits | Size | Max RAM required | Use case |
| ---- | ---- | ---- | ---- | ---- | ----- |
| [mixtral.Q3_K_M.gguf]({URL}mixtral.Q3_K_M.gguf) | Q3_K_M | 3 | 20.36 GB | 22.86 GB | small |
| [mixtral.Q4_K_M.gguf]({URL}mixtral.Q4_K_M.gguf) | Q4_K_M | 4 | 26.44 GB | 28.94 GB | medium |
"""


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    exl2_card = (EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md").read_text()
    exl2_card = exl2_card.replace("base_model: demo/Mixtral-8x7B-Instruct", f"base_model: {BASE}")
    # stand-in weights are KBs: GPTQ/GGUF estimates (formula, from the Hub's sizes) all fit, while
    # the exl2 rows carry the card's own VRAM figures, where 6_5 does not fit
    exl2 = {b: {"config.json": CONFIG, "model.safetensors": 1000} for b in ("6_5", "3_5", "3_0")}
    make_repo(
        root,
        "q1/Mixtral-8x7B-Instruct-exl2",
        {"main": {"measurement.json": "{}"}, **exl2},
        readme=exl2_card,
    )
    gptq = {
        "main": {"config.json": CONFIG, "model.safetensors": 1000},
        "gptq-3bit-128g-actorder_True": {"config.json": CONFIG, "model.safetensors": 1000},
    }
    make_repo(root, "q2/Mixtral-8x7B-Instruct-GPTQ", gptq, readme=GPTQ_CARD)
    gguf = {"main": {"mixtral.Q3_K_M.gguf": 1000, "mixtral.Q4_K_M.gguf": 1000}}
    make_repo(root, "q3/Mixtral-8x7B-Instruct-GGUF", gguf, readme=GGUF_CARD)
    make_repo(
        root,
        "q4/Mixtral-8x7B-Instruct-broken",
        {"main": {}},
        readme=f"---\nbase_model: {BASE}\n---\nprose only\n",
    )
    make_repo(root, "q5/Mixtral-8x7B-Instruct-gated", gptq, readme=GPTQ_CARD, gated=True)
    make_repo(root, "demo/Mixtral-8x7B-Instruct-v0.1", {"main": {"config.json": CONFIG}})
    make_repo(
        root, "other/Llama-3-8B-GGUF", gguf, readme=GGUF_CARD.replace(BASE, "meta/Llama-3-8B")
    )
    with HubServer(root) as server:
        yield server


def _search(server: HubServer, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    return run_qp(
        "search",
        BASE,
        "--vram",
        "24",
        "--ctx",
        "16k",
        *args,
        env={"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf")},
    )


def test_ranks_every_repo_of_the_base_model(qhub: HubServer, tmp_path: Path) -> None:
    r = _search(qhub, tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "quantpick/search@1"
    jsonschema.validate(doc, json.loads((REPO_ROOT / "docs/schema/search.schema.json").read_text()))
    assert "other/Llama-3-8B-GGUF" not in doc["repos"]
    assert BASE not in doc["repos"]
    hits = doc["hits"]
    assert {h["repo"] for h in hits} == {
        "q1/Mixtral-8x7B-Instruct-exl2",
        "q2/Mixtral-8x7B-Instruct-GPTQ",
        "q3/Mixtral-8x7B-Instruct-GGUF",
    }
    fits = [h for h in hits if h["variant"]["estimate"]["fits"]]
    # fitting variants come first, best quality (effective bits per weight) first, across formats:
    # Q4_K_M ~4.85 bpw, GPTQ 4-bit, Q3_K_M ~3.9, exl2 3.5, then the 3-bit ones; exl2 6_5 needs
    # 40.4 GiB by its card and comes after every variant that fits
    assert hits[: len(fits)] == fits
    order = [(h["repo"].split("/")[0], h["variant"]["name"]) for h in hits]
    assert order == [
        ("q3", "mixtral.Q4_K_M.gguf"),
        ("q2", "main"),
        ("q3", "mixtral.Q3_K_M.gguf"),
        ("q1", "3_5"),
        # a tie at 3 bits: exl2's 6-bit head beats GPTQ's unstated one
        ("q1", "3_0"),
        ("q2", "gptq-3bit-128g-actorder_True"),
        ("q1", "6_5"),
    ]
    runtimes = {h["variant"]["format"]: h["variant"]["estimate"]["runtime"] for h in hits}
    assert runtimes == {"exl2": "exllamav2", "gptq": "transformers", "gguf": "llama.cpp"}
    skipped = {s["repo"]: s["reason"] for s in doc["skipped"]}
    assert set(skipped) == {"q4/Mixtral-8x7B-Instruct-broken", "q5/Mixtral-8x7B-Instruct-gated"}


def test_format_filter_and_bounded_requests(qhub: HubServer, tmp_path: Path) -> None:
    r = _search(qhub, tmp_path, "--json", "--format", "gguf")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["hits"]
    assert hits
    assert {h["variant"]["format"] for h in hits} == {"gguf"}
    # per repo: refs, a tree per branch, README (HEAD+GET), one config.json (HEAD+GET)
    per_repo = len(qhub.requests.filter(path="/api/models/q1/*")) + len(
        qhub.requests.filter(path="/q1/*")
    )
    assert per_repo <= 4 + 4 + 4


def test_human_output_and_bad_format(qhub: HubServer, tmp_path: Path) -> None:
    r = _search(qhub, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "q1/Mixtral-8x7B-Instruct-exl2" in r.stdout
    assert "warning: skipped q5/Mixtral-8x7B-Instruct-gated" in r.stderr
    bad = _search(qhub, tmp_path, "--format", "safetensors")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: unknown format")


def test_fetch_search_fetches_the_winner(qhub: HubServer, tmp_path: Path) -> None:
    r = run_qp(
        "fetch",
        BASE,
        "--search",
        "--vram",
        "24",
        "--ctx",
        "16k",
        "--json",
        env={"HF_ENDPOINT": qhub.endpoint, "HF_HOME": str(tmp_path / "hf")},
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["repo"], doc["variant"]) == ("q3/Mixtral-8x7B-Instruct-GGUF", "mixtral.Q4_K_M.gguf")
    assert Path(doc["local_dir"], "mixtral.Q4_K_M.gguf").is_file()


def test_finds_quants_filed_as_finetunes_or_by_config_not_plain_finetunes(
    qhub: HubServer, tmp_path: Path
) -> None:
    exl2 = {b: {"config.json": CONFIG, "model.safetensors": 1000} for b in ("4_0",)}
    make_repo(
        qhub.root,
        "q6/Mixtral-8x7B-Instruct-v0.1-exl2",
        {"main": {"measurement.json": "{}"}, **exl2},
        readme=f"---\nbase_model: {BASE}\nbase_model_relation: finetune\n---\nexl2 quants\n",
    )
    awq = json.dumps(
        {
            **json.loads(CONFIG),
            "quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128},
        }
    )
    make_repo(
        qhub.root,
        "q7/Mixtral-8x7B-Instruct-small",
        {"main": {"config.json": awq, "model.safetensors": 1000}},
        readme="# small\n",
    )
    make_repo(
        qhub.root,
        "q8/Mixtral-8x7B-Instruct-roleplay",
        {"main": {"config.json": CONFIG, "model.safetensors": 1000}},
        readme=f"---\nbase_model: {BASE}\nbase_model_relation: finetune\n---\na finetune\n",
    )
    r = _search(qhub, tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    repos = json.loads(r.stdout)["repos"]
    assert "q6/Mixtral-8x7B-Instruct-v0.1-exl2" in repos
    assert "q7/Mixtral-8x7B-Instruct-small" in repos
    assert "q8/Mixtral-8x7B-Instruct-roleplay" not in repos
