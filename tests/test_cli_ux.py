"""What a user of `hf download`, `gh` and `uv` expects of a CLI (issue 15 items 2-13): the real
`quantpick` on pseudo-terminals of 80 and 200 columns (tests/tty.py) and in pipes (tests/qp.py),
against the loopback Hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import EXAMPLES, run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer
from tty import run_tty

EXL2_CARD = (EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md").read_text()
GGUF_CARD = (EXAMPLES / "cards" / "demo__Mistral-7B-Instruct-GGUF.md").read_text()
CONFIG = (EXAMPLES / "configs" / "mixtral-8x7b.json").read_text()
KIB = 1 << 10
BUDGET = ("--vram", "24", "--ctx", "16k")
GGUF_QUANTS = ("Q3_K_M", "Q4_K_M", "Q5_K_M", "Q8_0")


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    root.mkdir()
    branches: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for i, b in enumerate(("6_5", "5_0", "4_25", "3_5", "3_0")):
        branches[b] = {"config.json": CONFIG, "model.safetensors": bytes([i]) * (64 * KIB)}
    make_repo(root, "demo/mix-exl2", branches, readme=EXL2_CARD)
    # another owner, the same repo name: the default directory must tell them apart
    make_repo(root, "other/mix-exl2", branches, readme=EXL2_CARD)
    gguf = {f"mistral-7b-instruct.{q}.gguf": 32 * KIB for q in GGUF_QUANTS}
    make_repo(root, "demo/mis-gguf", {"main": gguf}, readme=GGUF_CARD)
    make_repo(root, "demo/base-model", {"main": {"config.json": CONFIG}}, readme="# a base model\n")
    with HubServer(root) as server:
        yield server


def _env(server: HubServer, tmp_path: Path, **more: str) -> dict[str, str]:
    return {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf"), **more}


def _qp(server: HubServer, tmp_path: Path, *args: str | Path, **env: str):  # type: ignore[no-untyped-def]
    return run_qp(*args, env=_env(server, tmp_path, **env), cwd=tmp_path)


def test_show(qhub: HubServer, tmp_path: Path) -> None:
    for cols in (80, 200):
        r = run_tty("list", "demo/mix-exl2", *BUDGET, columns=cols, env=_env(qhub, tmp_path))
        print(r.stdout)
        print(r.stderr)
        r = run_tty("list", "demo/mis-gguf", *BUDGET, columns=cols, env=_env(qhub, tmp_path))
        print(r.stdout)
        print(r.stderr)
