"""Hostile input through the real CLI against the loopback Hub: odd branch names, huge or garbage
cards, repo file names that would write outside the target, and CDN answers that lie about their
length or drip. Each run ends verified or with a specific exit code, never a traceback, never a
final-named partial file."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.faults import Fault
from quantpick.testing.server import HubServer

ODD_BRANCHES = ("4.0bpw/h8", "my quant", "q4-ü")
ROW = "| [{b}](https://huggingface.co/o/odd/tree/{href}) | {bits} | 5.0 GB |\n"
ODD_CARD = (
    "| Branch | Bits | VRAM (16k) |\n|---|---|---|\n"
    + ROW.format(b="4.0bpw/h8", href="4.0bpw%2Fh8", bits="4.0")
    + ROW.format(b="my quant", href="my%20quant", bits="5.0")
    + ROW.format(b="q4-ü", href="q4-%C3%BC", bits="4.5")
)
WEIGHTS = os.urandom(300_000)


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    root.mkdir()
    branches: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for i, b in enumerate(ODD_BRANCHES):
        branches[b] = {"config.json": "{}", "model.safetensors": WEIGHTS[i:], "sub/n.txt": b}
    make_repo(root, "o/odd", branches, readme=ODD_CARD)
    # the same branches, no card: only names (and the command line) say what they are
    make_repo(root, "o/bare", branches)
    with HubServer(root) as server:
        yield server


def _qp(server: HubServer, tmp_path: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf")}
    return run_qp(*args, env=env, cwd=tmp_path, timeout=60)


def _files_under(d: Path) -> set[str]:
    return {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()}


def _assert_clean_failure(r: subprocess.CompletedProcess[str], code: int) -> None:
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    assert r.stderr.startswith("error: "), r.stderr
    assert "Traceback" not in r.stderr


def test_list_shows_branches_with_slash_space_and_unicode(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "list", "o/odd", "--json")
    assert r.returncode == 0, r.stderr
    variants = {v["name"]: v for v in json.loads(r.stdout)["variants"]}
    assert set(variants) == set(ODD_BRANCHES)
    assert all(v["hub_status"] == "present" for v in variants.values())
    human = _qp(qhub, tmp_path, "list", "o/odd")
    assert human.returncode == 0, human.stderr
    for b in ODD_BRANCHES:
        assert b in human.stdout


def test_a_slashed_branch_name_says_what_it_is_without_a_card(
    qhub: HubServer, tmp_path: Path
) -> None:
    r = _qp(qhub, tmp_path, "list", "o/bare", "--json")
    assert r.returncode == 0, r.stderr
    (v,) = json.loads(r.stdout)["variants"]
    assert (v["name"], v["format"], v["bits"], v["head_bits"]) == ("4.0bpw/h8", "exl2", 4.0, 8.0)
    assert v["hub_status"] == "hub-only"


@pytest.mark.parametrize("branch", ODD_BRANCHES)
@pytest.mark.parametrize("repo", ["o/odd", "o/bare"])
def test_fetch_odd_branch_gets_exactly_it_inside_the_target(
    qhub: HubServer, tmp_path: Path, repo: str, branch: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    r = _qp(qhub, work, "fetch", f"{repo}:{branch}", "--local-dir", "D", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    target = work / "D"
    assert doc["local_dir"] == str(target.resolve())
    want = {"config.json", "model.safetensors", "sub/n.txt"} | (
        {"README.md"} if repo == "o/odd" else set()
    )
    assert {f["path"] for f in doc["files"]} == want
    assert (target / "sub" / "n.txt").read_text() == branch
    # nothing was written next to D, or anywhere named after the branch
    assert {p.name for p in work.iterdir()} == {"D", "hf"}
    assert _files_under(target) - {".quantpick/lock"} == want | {"quantpick.json"}
    assert json.loads((target / "quantpick.json").read_text())["revision"] == branch
    # only that branch's weights moved
    weights = qhub.requests.filter(path="*/model.safetensors", method="GET", origin="cdn")
    assert weights
    assert all(branch in rec.path or doc["commit_sha"] in rec.path for rec in weights)
    assert _qp(qhub, work, "verify", "D").returncode == 0


def test_default_dir_of_a_slashed_branch_stays_in_the_cwd(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "o/odd:4.0bpw/h8")
    assert r.returncode == 0, r.stderr
    target = Path(r.stdout.splitlines()[-1])
    assert target.parent == tmp_path.resolve()
    assert target.name == "o__odd-4.0bpw_h8"


# Names a file system can hold but a target dir must not: the server serves them as they are.
@pytest.mark.parametrize(
    "name", ["quantpick.json", ".quantpick/lock", "a\\..\\..\\evil.txt", "line\nbreak.txt"]
)
def test_a_repo_file_name_that_could_escape_or_clobber_is_refused(
    qhub: HubServer, tmp_path: Path, name: str
) -> None:
    make_repo(qhub.root, "o/evil", {"4_0": {"model.safetensors": WEIGHTS, name: "pwned"}})
    r = _qp(qhub, tmp_path, "fetch", "o/evil:4_0", "--local-dir", "D")
    _assert_clean_failure(r, 8)
    assert "refusing the repo file name" in r.stderr
    assert not (tmp_path / "D" / "quantpick.json").exists()
    assert not (tmp_path / "D" / "model.safetensors").exists()
    assert not qhub.requests.filter(path="*/model.safetensors", method="GET")


# Names no disk can hold: the loopback Hub lists (and would serve) a real file under them, as a
# malicious server or mirror could.
@pytest.mark.parametrize(
    "shown",
    ["../escape.txt", "/etc/quantpick-evil", "a/../../escape.txt", "nul\x00byte.txt", "x" * 300],
    ids=["dotdot", "absolute", "nested-dotdot", "nul", "overlong"],
)
def test_hostile_names_from_the_server_never_write_outside(
    qhub: HubServer, tmp_path: Path, shown: str
) -> None:
    make_repo(
        qhub.root,
        "o/evil",
        {"4_0": {"model.safetensors": WEIGHTS, "notes.txt": "pwned"}},
        served_as={shown: "notes.txt"},
    )
    before = set(tmp_path.rglob("*"))
    r = _qp(qhub, tmp_path, "fetch", "o/evil:4_0", "--local-dir", "D")
    _assert_clean_failure(r, 8)
    assert "refusing the repo file name" in r.stderr
    written = set(tmp_path.rglob("*")) - before
    outside = [p for p in written if "D" not in p.relative_to(tmp_path).parts[:1]]
    assert [p for p in outside if "hf" not in p.relative_to(tmp_path).parts[:1]] == []
    assert not Path("/etc/quantpick-evil").exists()
    assert not qhub.requests.filter(path="*/model.safetensors", method="GET")


def _table_card(tables: int) -> str:
    return "".join(
        f"| Branch | Bits |\n|---|---|\n"
        f"| [{i % 7 + 2}_{i % 9}](https://huggingface.co/o/m/tree/{i % 7 + 2}_{i % 9}) "
        f"| {i % 7 + 2}.{i % 9} |\n\n"
        for i in range(tables)
    )


def _ten_mb_card() -> str:
    row = "| [4_0](https://huggingface.co/o/m/tree/4_0) | 4.0 | 5.0 GB |\n"
    prose = ("lorem ipsum dolor sit amet, | pipes | and `ticks` " * 40 + "\n\n") * 4700
    return "| Branch | Bits | VRAM (16k) |\n|---|---|---|\n" + row + prose


@pytest.mark.parametrize(
    ("readme", "want"),
    [
        (_ten_mb_card(), {"4_0"}),
        (_table_card(10_000), {"4_0", "5_5"}),
        # binary garbage with invalid UTF-8, in front matter and body
        (b"---\n\xff\xfe\x00base_model: \xc3(\n---\n" + bytes(range(256)) * 4000, {"4_0", "5_5"}),
        ("---\nbase_model: [[[ {{\n: : -\n---\n| a |\n|---|\n| \x00 |\n", {"4_0", "5_5"}),
    ],
    ids=["10MB", "10k-tables", "binary", "broken-front-matter"],
)
def test_hostile_cards_list_in_bounded_time(
    qhub: HubServer, tmp_path: Path, readme: str | bytes, want: set[str]
) -> None:
    w: dict[str, bytes | str | int] = {"model.safetensors": 100}
    make_repo(qhub.root, "o/m", {"main": {"README.md": readme}, "4_0": w, "5_5": w})
    began = time.monotonic()
    r = _qp(qhub, tmp_path, "list", "o/m", "--json")
    assert time.monotonic() - began < 20
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    names = {v["name"] for v in json.loads(r.stdout)["variants"]}
    # the card's rows and the Hub's branches meet; rows for branches that do not exist are flagged
    assert want <= names
    missing = {v["name"] for v in json.loads(r.stdout)["variants"] if v["hub_status"] == "missing"}
    assert not (want & missing)


def test_a_garbage_card_with_nothing_named_exits_3(qhub: HubServer, tmp_path: Path) -> None:
    garbage = b"\x89PNG\r\n\x1a\n\xff\xd8" + bytes(range(256)) * 100
    make_repo(qhub.root, "o/junk", {"main": {"README.md": garbage, "notes.txt": "x"}})
    _assert_clean_failure(_qp(qhub, tmp_path, "list", "o/junk"), 3)


# --- CDN answers that lie: a wrong Content-Length, a slow drip --------------------------------

BIG = os.urandom((1 << 20) + 4321)
SMALL = os.urandom(150_000)
LYING_FILES: dict[str, bytes | str | int] = {
    "big.safetensors": BIG,
    "small.safetensors": SMALL,
    "config.json": "{}",
}


def _assert_verified(target: Path) -> None:
    manifest = json.loads((target / "quantpick.json").read_text())
    for name, data in (("big.safetensors", BIG), ("small.safetensors", SMALL)):
        assert (target / name).read_bytes() == data
        (entry,) = (f for f in manifest["files"] if f["path"] == name)
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("delta", [1000, -1000])
@pytest.mark.parametrize("name", ["big.safetensors", "small.safetensors"])
def test_a_wrong_content_length_once_still_ends_verified(
    qhub: HubServer, tmp_path: Path, name: str, delta: int
) -> None:
    make_repo(qhub.root, "o/lie", {"4_0": LYING_FILES})
    qhub.faults.add(f"*/{name}", Fault(length_delta=delta, origin="cdn", method="GET", times=1))
    r = _qp(qhub, tmp_path, "fetch", "o/lie:4_0", "--local-dir", "D")
    assert r.returncode == 0, r.stderr
    assert qhub.faults.fired(f"*/{name}") == 1
    _assert_verified(tmp_path / "D")
    assert _qp(qhub, tmp_path, "verify", "D").returncode == 0


def test_a_content_length_that_always_lies_fails_without_a_final_file(
    qhub: HubServer, tmp_path: Path
) -> None:
    make_repo(qhub.root, "o/lie", {"4_0": LYING_FILES})
    qhub.faults.add("*/small.safetensors", Fault(length_delta=-1000, origin="cdn"))
    r = _qp(qhub, tmp_path, "fetch", "o/lie:4_0", "--local-dir", "D")
    _assert_clean_failure(r, 7)
    assert "small.safetensors" in r.stderr
    target = tmp_path / "D"
    assert not (target / "small.safetensors").exists()
    assert not (target / "quantpick.json").exists()
    # whatever did land under a final name is whole
    whole = {"big.safetensors": BIG, "config.json": b"{}"}
    for name in _files_under(target):
        if not name.startswith(".quantpick/"):
            assert (target / name).read_bytes() == whole[name], name
    again = _qp(qhub, tmp_path, "verify", "D")
    # no fetch completed there, so no manifest: nothing to verify (5), said as such
    assert again.returncode == 5
    assert "no quantpick.json manifest" in again.stderr


def test_a_slow_drip_ends_verified(qhub: HubServer, tmp_path: Path) -> None:
    make_repo(qhub.root, "o/lie", {"4_0": LYING_FILES})
    # ~1.5 s for the small file at this rate: slow, but never a stall
    qhub.faults.add("*/small.safetensors", Fault(rate_bps=100_000, origin="cdn", method="GET"))
    r = _qp(qhub, tmp_path, "fetch", "o/lie:4_0", "--local-dir", "D")
    assert r.returncode == 0, r.stderr
    assert qhub.faults.fired("*/small.safetensors") >= 1
    _assert_verified(tmp_path / "D")
