"""`quantpick fetch` and `verify` end to end: real subprocesses against the loopback Hub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import EXAMPLES, SENTINEL_TOKEN, run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

EXL2_CARD = (EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md").read_text()
GGUF_CARD = (EXAMPLES / "cards" / "demo__Mistral-7B-Instruct-GGUF.md").read_text()
MIB = 1 << 20


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    root.mkdir()
    branches: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for b in ("6_5", "5_0", "4_25", "3_5", "3_0"):
        branches[b] = {
            "config.json": (EXAMPLES / "configs" / "mixtral-8x7b.json").read_text(),
            "model.safetensors": bytes(range(256)) * (MIB // 256) * 2,
        }
    make_repo(root, "demo/mix-exl2", branches, readme=EXL2_CARD, tokens=[SENTINEL_TOKEN])
    make_repo(
        root,
        "demo/mis-gguf",
        {
            "main": {
                f"mistral-7b-instruct.{q}.gguf": MIB for q in ("Q3_K_M", "Q4_K_M", "Q5_K_M", "Q8_0")
            }
        },
        readme=GGUF_CARD,
    )
    make_repo(
        root, "demo/priv-exl2", branches, readme=EXL2_CARD, private=True, tokens=[SENTINEL_TOKEN]
    )
    with HubServer(root, tokens=[SENTINEL_TOKEN]) as server:
        yield server


def _qp(server: HubServer, tmp_path: Path, *args: str | Path, **env: str):  # type: ignore[no-untyped-def]
    return run_qp(
        *args,
        env={"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf"), **env},
        cwd=tmp_path,
    )


def test_fetch_recommends_downloads_and_verifies(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", "--vram", "24", "--ctx", "16k", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "quantpick/fetch@2"
    assert doc["variant"] == "3_5"
    target = Path(doc["local_dir"])
    assert target == (tmp_path / "demo__mix-exl2-3_5").resolve()
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "quantpick.json",
    ]
    manifest = json.loads((target / "quantpick.json").read_text())
    assert manifest["commit_sha"] == doc["commit_sha"]
    assert any("pick 3_5" in reason for reason in manifest["reasons"])
    # the other branches' weights never moved (config.json of one is read for the shape)
    assert not qhub.requests.filter(path="*/resolve/6_5/model.safetensors")
    v = _qp(qhub, tmp_path, "verify", target, "--json")
    assert v.returncode == 0, v.stderr
    assert json.loads(v.stdout)["ok"] is True


def test_second_fetch_is_a_no_op_and_path_is_last_line(qhub: HubServer, tmp_path: Path) -> None:
    first = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:4_25", "--local-dir", "m")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[-1] == str((tmp_path / "m").resolve())
    qhub.requests.clear()
    again = _qp(
        qhub, tmp_path, "fetch", "demo/mix-exl2", "--branch", "4_25", "--local-dir", "m", "--json"
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["transferred_bytes"] == 0
    assert not qhub.requests.filter(path="*/model.safetensors")


def test_gguf_file_variant_fetches_only_that_file(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(
        qhub,
        tmp_path,
        "fetch",
        "demo/mis-gguf",
        "--file",
        "mistral-7b-instruct.Q4_K_M.gguf",
        "--local-dir",
        "g",
    )
    assert r.returncode == 0, r.stderr
    got = sorted(p.name for p in (tmp_path / "g").iterdir() if not p.name.startswith("."))
    assert got == ["README.md", "mistral-7b-instruct.Q4_K_M.gguf", "quantpick.json"]


def test_dry_run_transfers_nothing(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:6_5", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["dry_run"] is True
    assert doc["missing_bytes"] > 0
    assert not (tmp_path / "mix-exl2-6_5").exists()
    assert not qhub.requests.filter(path="*/resolve/*/model.safetensors", method="GET")


def test_corruption_is_caught_by_verify_and_repaired_by_fetch(
    qhub: HubServer, tmp_path: Path
) -> None:
    assert _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", "--local-dir", "c").returncode == 0
    weights = tmp_path / "c" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0xFF
    weights.write_bytes(bytes(data))
    bad = _qp(qhub, tmp_path, "verify", "c")
    assert bad.returncode == 8
    assert "model.safetensors" in bad.stderr
    fixed = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", "--local-dir", "c")
    assert fixed.returncode == 0, fixed.stderr
    assert _qp(qhub, tmp_path, "verify", "c").returncode == 0


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("fetch", "demo/mix-exl2:9_9"), {}, 5),
        (("fetch", "demo/mis-gguf", "--file", "nope.gguf"), {}, 5),
        (("fetch", "demo/mix-exl2", "--vram", "8", "--ctx", "16k"), {}, 4),
        (("fetch", "demo/mix-exl2"), {}, 2),
        (("fetch", "demo/mix-exl2:3_0", "--backend", "carrier-pigeon"), {}, 2),
        (("fetch", "demo/priv-exl2:3_0"), {}, 5),
        (("fetch", "demo/priv-exl2:3_0", "--token", "hf_nope"), {}, 6),
        (("verify", "nowhere"), {}, 5),
    ],
)
def test_fetch_failures_never_exit_zero(
    qhub: HubServer, tmp_path: Path, args: tuple[str, ...], env: dict[str, str], code: int
) -> None:
    r = _qp(qhub, tmp_path, *args, **env)
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("backend", ["auto", "hub"], ids=["bridge", "hf_xet"])
def test_sentinel_token_never_written_anywhere(
    qhub: HubServer, tmp_path: Path, backend: str
) -> None:
    env = {"HF_TOKEN": SENTINEL_TOKEN}
    outputs = []
    fetch = ("fetch", "demo/priv-exl2:3_0", "--local-dir", "p", "--backend", backend)
    for args in (
        ("list", "demo/priv-exl2", "--json", "--verbose"),
        (*fetch, "--json", "--verbose"),
        ("verify", "p", "--json"),
        ("fetch", "demo/priv-exl2:nope", "--verbose"),
    ):
        r = _qp(qhub, tmp_path, *args, **env)
        outputs += [r.stdout, r.stderr]
    assert (tmp_path / "p" / "quantpick.json").exists()
    assert all(SENTINEL_TOKEN not in text for text in outputs)
    for path in tmp_path.rglob("*"):
        if path.is_file() and "hub" not in path.relative_to(tmp_path).parts[:1]:
            assert SENTINEL_TOKEN.encode() not in path.read_bytes(), path
    if backend == "hub":
        # hf_xet's own logs are among the files scanned above
        assert list((tmp_path / "hf" / "xet" / "logs").iterdir())
        assert qhub.requests.count(origin="cas") > 0
    # and the CDN origin never saw an Authorization header
    assert not [r for r in qhub.requests if r.origin == "cdn" and r.authorized]
