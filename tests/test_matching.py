"""Card rows attached to the Hub's files when the names differ, and never to a near miss.

Each case runs the real `quantpick list --json` against the loopback Hub serving a small repo.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qp import list_json
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

MIB = 1 << 20


@pytest.fixture(scope="module")
def qhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = tmp_path_factory.mktemp("hub")
    with HubServer(root) as server:
        yield server


def _card(*rows: tuple[str, str]) -> str:
    lines = ["| Filename | Size | Description |", "| --- | --- | --- |"]
    lines += [f"| {name} | {size} | {desc} |" for name, size, desc in ((*r, "x") for r in rows)]
    return "\n".join(lines) + "\n"


def _listed(qhub: HubServer, tmp_path: Path, repo: str, readme: str, files: list[str]) -> Any:
    make_repo(qhub.root, repo, {"main": dict.fromkeys(files, MIB)}, readme=readme)
    return {v["name"]: v for v in list_json(qhub, tmp_path, repo)["variants"]}


def test_author_prefix_the_link_text_dropped(qhub: HubServer, tmp_path: Path) -> None:
    readme = _card(("GLM-4-Q4_K_M.gguf", "4.00 GB"), ("GLM-4-Q4_K_S.gguf", "3.50 GB"))
    got = _listed(
        qhub, tmp_path, "o/prefixed", readme, ["THUDM_GLM-4-Q4_K_S.gguf", "THUDM_GLM-4-Q4_K_M.gguf"]
    )
    assert got["GLM-4-Q4_K_M.gguf"]["files"] == ["THUDM_GLM-4-Q4_K_M.gguf"]
    assert got["GLM-4-Q4_K_S.gguf"]["files"] == ["THUDM_GLM-4-Q4_K_S.gguf"]
    assert {v["hub_status"] for v in got.values()} == {"present"}


def test_case_extension_and_split_parts(qhub: HubServer, tmp_path: Path) -> None:
    readme = _card(("M-q8_0", "8 GB"), ("m-Q6_K.gguf", "6 GB"))
    files = ["m-Q8_0.gguf", "m-Q6_K-00001-of-00002.gguf", "m-Q6_K-00002-of-00002.gguf"]
    got = _listed(qhub, tmp_path, "o/case", readme, files)
    assert got["M-q8_0"]["files"] == ["m-Q8_0.gguf"]
    assert got["m-Q6_K.gguf"]["files"] == files[1:]
    assert got["m-Q6_K.gguf"]["size_bytes"] == 2 * MIB


def test_quant_type_label_finds_its_one_file(qhub: HubServer, tmp_path: Path) -> None:
    readme = "# m\n\n- Quantization: q4_K_M, q8_0\n"
    got = _listed(qhub, tmp_path, "o/labels", readme, ["m-Q4_K_M.gguf", "m-Q8_0.gguf"])
    assert got["q4_K_M"]["files"] == ["m-Q4_K_M.gguf"]
    assert got["q8_0"]["files"] == ["m-Q8_0.gguf"]
    assert set(got) == {"q4_K_M", "q8_0"}


@pytest.mark.parametrize(
    ("card_name", "hub_file"),
    [
        ("m-Q4_K.gguf", "m-Q4_K_M.gguf"),
        ("m-IQ4_XS.gguf", "m-IQ4_NL.gguf"),
        ("m.Q4_K_M.gguf", "m.i1-Q4_K_M.gguf"),
        ("m-Q4_K_M.gguf", "m-V2-Q4_K_M.gguf"),
        ("Q4_K", "m-Q4_K_M.gguf"),
        ("IQ4_XS", "m-IQ4_NL.gguf"),
        ("Q4_K_M", "m.i1-Q4_K_M.gguf"),
    ],
)
def test_near_miss_stays_missing(
    qhub: HubServer, tmp_path: Path, card_name: str, hub_file: str
) -> None:
    repo = f"o/near-{abs(hash((card_name, hub_file)))}"
    got = _listed(qhub, tmp_path, repo, _card((card_name, "4 GB")), [hub_file])
    assert got[card_name]["hub_status"] == "missing"
    assert got[card_name]["files"] == []
    # the Hub's file is offered under its own name, without the card's figures
    (extra,) = (v for n, v in got.items() if n != card_name)
    assert extra["hub_status"] == "hub-only"
    assert extra["size_source"] == "hub"


def test_a_label_two_files_carry_is_no_match(qhub: HubServer, tmp_path: Path) -> None:
    readme = "# m\n\n- Quantization: Q4_K_M, Q8_0\n"
    got = _listed(
        qhub, tmp_path, "o/ambiguous", readme, ["a-Q4_K_M.gguf", "b-Q4_K_M.gguf", "a-Q8_0.gguf"]
    )
    assert got["Q4_K_M"]["hub_status"] == "missing"
    assert got["Q8_0"]["files"] == ["a-Q8_0.gguf"]
