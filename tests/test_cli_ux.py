"""What a user of `hf download`, `gh` and `uv` expects of a CLI (issue 15 items 2-13): the real
`quantpick` on pseudo-terminals of 80 and 200 columns (tests/tty.py) and in pipes (tests/qp.py),
against the loopback Hub."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from tty import run_tty

import jsonschema
import pytest

from qp import EXAMPLES, REPO_ROOT, run_qp
from quantpick.download.partial import partial_key
from quantpick.testing.builder import make_repo
from quantpick.testing.faults import Fault
from quantpick.testing.server import HubServer

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
    # a base model with one quantized repo whose name is long (search must not fold it)
    card = EXL2_CARD.replace("base_model: demo/Mixtral-8x7B-Instruct", "base_model: demo/Basey-7B")
    long_name = "a-quantizer-with-long-name/Basey-7B-Instruct-v0.1-exl2"
    make_repo(root, long_name, branches, readme=card)
    make_repo(root, "demo/Basey-7B", {"main": {"config.json": CONFIG}}, readme="# base\n")
    with HubServer(root) as server:
        yield server


def _slow_repo(tmp_path: Path) -> None:
    """Weights above the small-file threshold go through quantpick's resumable ranged engine."""
    big = {"main": {}, "3_0": {"config.json": CONFIG, "model.safetensors": bytes(17 << 20)}}
    make_repo(tmp_path / "hub", "demo/slow-exl2", big, readme=EXL2_CARD)


def _env(server: HubServer, tmp_path: Path, **more: str) -> dict[str, str]:
    return {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf"), **more}


def _qp(server: HubServer, tmp_path: Path, *args: str | Path, **env: str):  # type: ignore[no-untyped-def]
    return run_qp(*args, env=_env(server, tmp_path, **env), cwd=tmp_path)


def _lines_fit(lines: list[str], columns: int) -> None:
    from rich.cells import cell_len

    too_long = [line for line in lines if cell_len(line) > columns]
    assert not too_long, too_long


def _manifest(d: Path) -> dict[str, object]:
    return json.loads((d / "quantpick.json").read_text())  # type: ignore[no-any-return]


# -- item 2: a directory belongs to one repo and variant ------------------------------------------


def test_another_variant_into_a_fetched_dir_exits_13(qhub: HubServer, tmp_path: Path) -> None:
    d = tmp_path / "d"
    assert _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", "--local-dir", d).returncode == 0
    before = (d / "model.safetensors").read_bytes()
    for spec in ("demo/mix-exl2:3_5", "other/mix-exl2:3_0"):
        r = _qp(qhub, tmp_path, "fetch", spec, "--local-dir", d)
        assert r.returncode == 13, r.stderr
        assert "holds demo/mix-exl2 3_0" in r.stderr
        assert "--replace" in r.stderr.splitlines()[-1]
    assert (d / "model.safetensors").read_bytes() == before
    assert _manifest(d)["variant"]["name"] == "3_0"  # type: ignore[index]
    assert _qp(qhub, tmp_path, "verify", d).returncode == 0


def test_replace_removes_the_old_variant_and_keeps_the_users_files(
    qhub: HubServer, tmp_path: Path
) -> None:
    d = tmp_path / "g"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    first = _qp(qhub, tmp_path, "fetch", "demo/mis-gguf", "--file", "Q4_K_M", "--local-dir", d)
    assert first.returncode == 0, first.stderr
    r = _qp(
        qhub, tmp_path, "fetch", "demo/mis-gguf", "--file", "Q5_K_M", "--local-dir", d, "--replace"
    )
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in d.iterdir() if not p.name.startswith("."))
    assert names == ["README.md", "mistral-7b-instruct.Q5_K_M.gguf", "notes.txt", "quantpick.json"]
    assert (d / "notes.txt").read_text() == "mine"
    assert "removed mistral-7b-instruct.Q4_K_M.gguf" in r.stderr
    assert _manifest(d)["variant"]["name"] == "mistral-7b-instruct.Q5_K_M.gguf"  # type: ignore[index]
    assert _qp(qhub, tmp_path, "verify", d).returncode == 0


def test_a_users_file_at_a_name_the_repo_needs_is_refused(qhub: HubServer, tmp_path: Path) -> None:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "config.json").write_text('{"mine": true}')
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", "--local-dir", d)
    assert r.returncode == 13, r.stderr
    assert "config.json was not written by quantpick" in r.stderr
    assert (d / "config.json").read_text() == '{"mine": true}'
    assert not qhub.requests.filter(path="*/resolve/*/model.safetensors")


def test_default_dir_carries_the_owner_and_a_models_root_nests(
    qhub: HubServer, tmp_path: Path
) -> None:
    for owner in ("demo", "other"):
        r = _qp(qhub, tmp_path, "fetch", f"{owner}/mix-exl2:3_0")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[-1] == str((tmp_path / f"{owner}__mix-exl2-3_0").resolve())
    models = tmp_path / "models"
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_5", QUANTPICK_MODELS=str(models))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str((models / "demo" / "mix-exl2" / "3_5").resolve())


# -- item 3 and 4: one progress display, and the reasons before the first byte --------------------


@pytest.mark.parametrize("columns", [80, 200])
def test_no_tqdm_bars_and_quiet_is_quiet_on_a_terminal(
    qhub: HubServer, tmp_path: Path, columns: int
) -> None:
    env = _env(qhub, tmp_path)
    cold = run_tty("list", "demo/mix-exl2", columns=columns, env=env, cwd=tmp_path)
    assert cold.returncode == 0, cold.stderr
    fetched = run_tty(
        "fetch", "demo/mis-gguf", "-f", "Q3_K_M", columns=columns, env=env, cwd=tmp_path
    )
    assert fetched.returncode == 0, fetched.stderr
    for r in (cold, fetched):
        assert "it/s" not in r.stderr, r.stderr
        assert "%|" not in r.stderr, r.stderr
    quiet = run_tty(
        "fetch", "demo/mis-gguf", "-f", "Q8_0", "--quiet", columns=columns, env=env, cwd=tmp_path
    )
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert quiet.stdout_lines == [
        str((tmp_path / "demo__mis-gguf-mistral-7b-instruct.Q8_0").resolve())
    ]


def test_reasons_come_before_the_first_byte(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", *BUDGET, "--verbose")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    pick = next(i for i, line in enumerate(lines) if line.startswith("pick 3_5"))
    first_byte = next(i for i, line in enumerate(lines) if line.startswith(("fetch ", "start ")))
    assert pick < first_byte, lines
    assert not any("pick 3_5" in line for line in lines[first_byte:])


# -- item 5: tables that fit ----------------------------------------------------------------------


def test_list_fits_80_columns_and_200_shows_every_column(qhub: HubServer, tmp_path: Path) -> None:
    env = _env(qhub, tmp_path)
    narrow = run_tty("list", "demo/mix-exl2", *BUDGET, columns=80, env=env)
    assert narrow.returncode == 0, narrow.stderr
    lines = narrow.stdout_lines
    _lines_fit(lines, 80)
    header = next(line for line in lines if line.startswith("variant"))
    assert header.split() == [
        "variant",
        "bits",
        "(card)",
        "size",
        "(hub)",
        "VRAM@16k",
        "hub",
        "estimate",
        "fits",
        "max",
        "ctx",
    ]
    rows = [
        line
        for line in lines
        if line.split()[:1] and line.split()[0] in {"6_5", "5_0", "4_25", "▶", "3_0"}
    ]
    assert len(rows) == 5
    assert all(line.split()[-2:][0] in {"yes", "no"} or "yes" in line for line in rows)
    assert "2 more columns with --wide" in narrow.stdout_text
    wide = run_tty("list", "demo/mix-exl2", *BUDGET, columns=200, env=env)
    header = next(line for line in wide.stdout_lines if line.startswith("variant"))
    assert all(h in header for h in ("VRAM@4k", "VRAM@16k", "VRAM@32k", "max ctx"))
    assert "--wide" not in wide.stdout
    _lines_fit(wide.stdout_lines, 200)
    forced = run_tty("list", "demo/mix-exl2", *BUDGET, "--wide", columns=80, env=env)
    assert "VRAM@4k" in forced.stdout
    assert "VRAM@32k" in forced.stdout


def test_gguf_names_never_fold_at_80_columns(qhub: HubServer, tmp_path: Path) -> None:
    r = run_tty("list", "demo/mis-gguf", *BUDGET, columns=80, env=_env(qhub, tmp_path))
    assert r.returncode == 0, r.stderr
    _lines_fit(r.stdout_lines, 80)
    for q in GGUF_QUANTS:
        assert sum(f"mistral-7b-instruct.{q}.gguf" in line for line in r.stdout_lines) == 1


@pytest.mark.parametrize("columns", [80, 200])
def test_search_does_not_wrap_repo_names(qhub: HubServer, tmp_path: Path, columns: int) -> None:
    r = run_tty("search", "demo/Basey-7B", *BUDGET, columns=columns, env=_env(qhub, tmp_path))
    assert r.returncode == 0, r.stderr
    repo = "a-quantizer-with-long-name/Basey-7B-Instruct-v0.1-exl2"
    assert sum(repo in line for line in r.stdout_lines) == 5
    _lines_fit(r.stdout_lines, max(columns, 80))


# -- item 6: search that finds nothing ------------------------------------------------------------


def test_search_finding_nothing_exits_5_with_a_hint(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "search", "nobody/Nothing-1B", *BUDGET)
    assert r.returncode == 5, r.stderr
    assert r.stdout == ""
    assert "no quantized repos of nobody/Nothing-1B" in r.stderr
    assert "hint: " in r.stderr
    quant = _qp(qhub, tmp_path, "search", "demo/mix-exl2", *BUDGET)
    assert quant.returncode == 5
    assert "demo/mix-exl2 is itself a quantized repo" in quant.stderr
    assert "quantpick list demo/mix-exl2" in quant.stderr
    fetch = _qp(qhub, tmp_path, "fetch", "nobody/Nothing-1B", "--search", *BUDGET)
    assert fetch.returncode == 5
    assert "--ctx" not in fetch.stderr


# -- item 7, 8: --revision BRANCH; --vram with a named branch; --endpoint ------------------------


def test_revision_names_a_branch_as_hf_download_takes_it(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", "--revision", "3_0", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["variant"] == "3_0"
    assert doc["revision"] == "3_0"


def test_vram_with_a_named_branch_is_checked_not_ignored(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(
        qhub,
        tmp_path,
        "fetch",
        "demo/mix-exl2:6_5",
        "--vram",
        "8",
        "--ctx",
        "16k",
        "--dry-run",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert "warning: 6_5 needs 40.4 GiB at 16k (card): 32.9 GiB over the 7.5 GiB usable" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["estimate"]["fits"] is False
    assert doc["estimate"]["vram_bytes"] > 40 << 30


def test_endpoint_that_is_not_a_url_is_a_usage_error_at_once(tmp_path: Path) -> None:
    started = time.monotonic()
    r = run_qp("list", "demo/mix-exl2", "--endpoint", "not-a-url", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "is not a URL" in r.stderr
    assert time.monotonic() - started < 20


# -- item 9: pasted forms, --file by a part of the name, hints ------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "https://huggingface.co/demo/mix-exl2/tree/3_0",
        "hf.co/demo/mix-exl2:3_0",
        "demo/mix-exl2@3_0",
        "hf://demo/mix-exl2@3_0",
        "https://hf.co/demo/mix-exl2/tree/3_0/",
    ],
)
def test_pasted_forms_are_normalised(qhub: HubServer, tmp_path: Path, spec: str) -> None:
    r = _qp(qhub, tmp_path, "fetch", spec, "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["repo"], doc["variant"]) == ("demo/mix-exl2", "3_0")


def test_at_sha_and_a_url_for_list(qhub: HubServer, tmp_path: Path) -> None:
    sha = json.loads(
        _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", "--dry-run", "--json").stdout
    )["commit_sha"]
    pinned = _qp(
        qhub, tmp_path, "fetch", f"hf://demo/mix-exl2@{sha}", "-b", "3_0", "--dry-run", "--json"
    )
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout)["commit_sha"] == sha
    listed = _qp(qhub, tmp_path, "list", "https://huggingface.co/demo/mix-exl2", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["repo"] == "demo/mix-exl2"


def test_file_by_a_unique_part_of_its_name(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mis-gguf", "--file", "Q4_K_M", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["variant"] == "mistral-7b-instruct.Q4_K_M.gguf"
    many = _qp(qhub, tmp_path, "fetch", "demo/mis-gguf", "--file", "K_M", "--dry-run")
    assert many.returncode == 5
    assert "matches 3 files" in many.stderr
    assert "mistral-7b-instruct.Q3_K_M.gguf" in many.stderr


def test_hints_name_the_repo_and_its_branches(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:9_9")
    assert r.returncode == 5
    assert "hint: demo/mix-exl2 has the branches 3_0, 3_5, 4_25, 5_0, 6_5, main" in r.stderr
    assert "REPO" not in r.stderr
    base = _qp(qhub, tmp_path, "list", "demo/base-model")
    assert base.returncode == 3
    assert "quantpick search demo/base-model" in base.stderr


# -- item 10: --version, --include/--exclude, --force-download, --format, Examples ----------------


def test_version_and_examples_in_help() -> None:
    from importlib.metadata import version

    r = run_qp("--version")
    assert r.returncode == 0
    assert r.stdout == f"quantpick {version('quantpick')}\n"
    for command in ("list", "pick", "fetch", "search", "verify"):
        h = run_qp(command, "--help", env={"COLUMNS": "100"})
        assert h.returncode == 0
        assert "Examples:" in h.stdout
        assert f"quantpick {command} " in h.stdout
        assert "{repo}" not in h.stdout
        assert "<str>" not in h.stdout
    assert "Usage: python -m quantpick fetch [OPTIONS] REPO_ID" in run_qp("fetch", "--help").stdout


def test_include_exclude_and_force_download(qhub: HubServer, tmp_path: Path) -> None:
    d = tmp_path / "x"
    args = ("fetch", "demo/mis-gguf", "-f", "Q4_K_M", "--local-dir", d, "--json")
    r = _qp(qhub, tmp_path, *args, "--include", "*Q3_K_M*", "--exclude", "README.md")
    assert r.returncode == 0, r.stderr
    assert sorted(f["path"] for f in json.loads(r.stdout)["files"]) == [
        "mistral-7b-instruct.Q3_K_M.gguf",
        "mistral-7b-instruct.Q4_K_M.gguf",
    ]
    assert not (d / "README.md").exists()
    again = _qp(qhub, tmp_path, *args, "--include", "*Q3_K_M*", "--exclude", "README.md")
    assert json.loads(again.stdout)["transferred_bytes"] == 0
    forced = _qp(
        qhub, tmp_path, *args, "--include", "*Q3_K_M*", "--exclude", "README.md", "--force-download"
    )
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["transferred_bytes"] == 2 * 32 * KIB
    assert _qp(qhub, tmp_path, "verify", d).returncode == 0


def test_format_quiet_json_and_a_bad_format(qhub: HubServer, tmp_path: Path) -> None:
    q = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", *BUDGET, "--format", "quiet")
    assert q.returncode == 0, q.stderr
    assert q.stderr == ""
    assert q.stdout == f"{(tmp_path / 'demo__mix-exl2-3_5').resolve()}\n"
    names = _qp(qhub, tmp_path, "list", "demo/mix-exl2", "--format", "quiet", "--quiet")
    assert names.stdout.split() == ["6_5", "5_0", "4_25", "3_5", "3_0"]
    as_json = _qp(qhub, tmp_path, "pick", "demo/mix-exl2", *BUDGET, "--format", "json")
    assert json.loads(as_json.stdout)["chosen"]["name"] == "3_5"
    bad = _qp(qhub, tmp_path, "list", "demo/mix-exl2", "--format", "yaml")
    assert bad.returncode == 2
    assert "auto, human, json, quiet" in bad.stderr


# -- item 11: one field names the choice; enums; error documents ---------------------------------


def _schema(name: str) -> dict[str, object]:
    return json.loads((REPO_ROOT / "docs" / "schema" / f"{name}.schema.json").read_text())  # type: ignore[no-any-return]


def test_chosen_is_one_field_in_every_envelope(qhub: HubServer, tmp_path: Path) -> None:
    docs = {
        "list": _qp(qhub, tmp_path, "list", "demo/mix-exl2", *BUDGET, "--json"),
        "pick": _qp(qhub, tmp_path, "pick", "demo/mix-exl2", *BUDGET, "--json"),
        "fetch": _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", *BUDGET, "--dry-run", "--json"),
        "search": _qp(qhub, tmp_path, "search", "demo/Basey-7B", *BUDGET, "--json"),
    }
    for name, r in docs.items():
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        jsonschema.validate(doc, _schema(name))
        assert doc["chosen"]["name"] == "3_5", name
        assert doc["chosen"]["format"] == "exl2"
    fetch = json.loads(docs["fetch"].stdout)
    assert fetch["format"] == "exl2"
    assert fetch["estimate"]["provenance"] == "card"
    statuses = _schema("fetch")["$defs"]["FileStatus"]["enum"]  # type: ignore[index]
    assert {f["status"] for f in fetch["files"]} <= set(statuses)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("fetch", "demo/nope", "--json"), 5),
        (("pick", "demo/mix-exl2", "--vram", "1", "--json"), 4),
        (("list", "demo/base-model", "--json"), 3),
        (("search", "nobody/Nothing-1B", *BUDGET, "--json"), 5),
        (("verify", "empty-dir", "--format", "json"), 5),
    ],
)
def test_every_json_command_prints_an_error_document(
    qhub: HubServer, tmp_path: Path, args: tuple[str, ...], code: int
) -> None:
    (tmp_path / "empty-dir").mkdir()
    r = _qp(qhub, tmp_path, *args)
    assert r.returncode == code, r.stderr
    assert any(line.startswith("error: ") for line in r.stderr.splitlines()), r.stderr
    # one document on stdout: the error's own, or (pick) the command's, which carries the error
    doc = json.loads(r.stdout)
    own = args[0] in ("pick", "verify")
    jsonschema.validate(doc, _schema(args[0] if own else "error"))
    assert doc["error"]["exit_code"] == code
    if not own:
        assert doc["command"] == args[0]


# -- item 12: cache manners -----------------------------------------------------------------------


def test_lookup_cache_lives_beside_the_hub_cache_and_hf_hub_cache_is_honoured(
    qhub: HubServer, tmp_path: Path
) -> None:
    hub_cache = tmp_path / "elsewhere"
    r = _qp(qhub, tmp_path, "list", "demo/mix-exl2", HF_HUB_CACHE=str(hub_cache))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hf" / "quantpick" / "demo" / "mix-exl2" / "listing.json").is_file()
    assert not (tmp_path / "hf" / "hub").exists()
    assert (hub_cache / "models--demo--mix-exl2").is_dir()
    assert not (hub_cache / "quantpick").exists()
    offline = _qp(qhub, tmp_path, "list", "demo/mix-exl2", "--offline", HF_HUB_CACHE=str(hub_cache))
    assert offline.returncode == 0, offline.stderr


def test_offline_fetch_of_a_complete_directory_exits_0(qhub: HubServer, tmp_path: Path) -> None:
    done = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2", *BUDGET)
    assert done.returncode == 0, done.stderr
    for args in (("demo/mix-exl2", *BUDGET), ("demo/mix-exl2:3_5",)):
        r = _qp(qhub, tmp_path, "fetch", *args, HF_HUB_OFFLINE="1")
        assert r.returncode == 0, r.stderr
        assert r.stdout == done.stdout
    (tmp_path / "demo__mix-exl2-3_5" / "model.safetensors").write_bytes(b"rot")
    rotten = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_5", HF_HUB_OFFLINE="1")
    assert rotten.returncode == 8, rotten.stderr
    never = _qp(qhub, tmp_path, "fetch", "demo/mix-exl2:3_0", HF_HUB_OFFLINE="1")
    assert never.returncode == 7


# -- item 13: the smaller list --------------------------------------------------------------------


def test_kv_cache_is_the_name_and_cache_still_works() -> None:
    card = EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md"
    config = EXAMPLES / "configs" / "mixtral-8x7b.json"
    args = ("pick", "--card", card, "--config", config, "--vram", "24", "--ctx", "32k", "--json")
    new = run_qp(*args, "--kv-cache", "q4")
    old = run_qp(*args, "--cache", "q4")
    assert new.returncode == old.returncode == 0, new.stderr
    assert json.loads(new.stdout)["budget"]["cache_mode"] == "q4"
    assert new.stdout == old.stdout
    stray = run_qp("list", "--card", card, "--kv-cache", "q4")
    assert stray.returncode == 2
    assert "--kv-cache needs --vram" in stray.stderr
    assert "--kv-cache, --cache MODE" in run_qp("list", "--help", env={"COLUMNS": "100"}).stdout


def test_legend_says_only_what_the_table_uses(qhub: HubServer, tmp_path: Path) -> None:
    plain = run_tty("list", "demo/mix-exl2", columns=200, env=_env(qhub, tmp_path))
    assert "VRAM@ctx: the card's own figures" in plain.stdout_text
    assert "estimates at" not in plain.stdout_text
    assert "card-fit" not in plain.stdout_text
    assert "(config)" not in plain.stdout_text
    assert "(name)" not in plain.stdout_text
    budget = run_tty("list", "demo/mix-exl2", *BUDGET, columns=200, env=_env(qhub, tmp_path))
    assert "estimates at 16k context" in budget.stdout_text
    assert "formula =" not in budget.stdout_text
    assert "flash attention" not in budget.stdout_text
    gguf_budget = run_tty("list", "demo/mis-gguf", *BUDGET, columns=200, env=_env(qhub, tmp_path))
    assert "llama.cpp flash attention on" in gguf_budget.stdout_text
    gguf = run_tty("list", "demo/mis-gguf", columns=200, env=_env(qhub, tmp_path))
    assert "VRAM@ctx" not in gguf.stdout_text


def test_stderr_wraps_at_words_on_a_terminal_and_not_in_a_pipe(
    qhub: HubServer, tmp_path: Path
) -> None:
    r = run_tty("list", "demo/mis-gguf", *BUDGET, columns=80, env=_env(qhub, tmp_path))
    piped = _qp(qhub, tmp_path, "list", "demo/mis-gguf", *BUDGET)
    long = [line for line in piped.stderr.splitlines() if len(line) > 80]
    assert long, piped.stderr
    _lines_fit(r.stderr_lines, 80)
    for line in long:
        # every word whole, in order: the terminal lines are the piped line, broken at spaces
        assert " ".join(line.split()) in r.stderr_text


def test_ctrl_c_message_starts_on_a_fresh_line(qhub: HubServer, tmp_path: Path) -> None:
    _slow_repo(tmp_path)
    qhub.faults.add("*/model.safetensors", Fault(rate_bps=256 * KIB))
    sent: list[bool] = []

    def interrupt_once_moving(stderr: str, proc: subprocess.Popen[bytes]) -> bool:
        if "model.safetensors" in stderr and "\r" in stderr:
            os.killpg(proc.pid, signal.SIGINT)
            sent.append(True)
            return True
        return False

    r = run_tty(
        "fetch",
        "demo/slow-exl2:3_0",
        columns=80,
        env=_env(qhub, tmp_path),
        cwd=tmp_path,
        on_output=interrupt_once_moving,
    )
    assert sent, r.stderr
    assert r.returncode == 130, r.stderr
    errors = [line for line in r.stderr_lines if "error: " in line]
    assert errors, r.stderr_lines
    assert errors[0].startswith("error: interrupted"), r.stderr_lines


def test_a_resumed_fetch_says_so(qhub: HubServer, tmp_path: Path) -> None:
    # two 32 MiB chunks and a bit: a fetch killed after its first chunk has something to resume
    big = {"main": {}, "b": {"config.json": CONFIG, "model.safetensors": bytes(65 << 20)}}
    make_repo(tmp_path / "hub", "demo/big-exl2", big, readme=EXL2_CARD)
    target = tmp_path / "r"
    qhub.faults.add("*/model.safetensors", Fault(rate_bps=16 << 20))
    env = {**os.environ, **_env(qhub, tmp_path)}
    cmd = [sys.executable, "-m", "quantpick", "fetch", "demo/big-exl2:b", "--max-workers", "1"]
    proc = subprocess.Popen(
        [*cmd, "--local-dir", target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    part = target / ".quantpick" / "partial"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        # the big file's own sidecar: config.json's (one chunk, done at once) says nothing
        big_sidecar = part / f"{partial_key('model.safetensors')}.part.json"
        sidecars = [big_sidecar] if big_sidecar.is_file() else []
        if any(int(json.loads(p.read_text() or "{}").get("done", "0"), 16) for p in sidecars):
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    qhub.faults.clear()
    r = _qp(qhub, tmp_path, "fetch", "demo/big-exl2:b", "--local-dir", target)
    assert r.returncode == 0, r.stderr
    # one or two whole 32 MiB chunks, as the kill landed: said before the bytes, and in the summary
    said = re.search(r"resuming: (\d+\.\d\d) MB of 1 partly downloaded file already in", r.stderr)
    assert said, r.stderr
    assert said.group(1) in {"33.55", "67.11"}
    assert f"(resumed: {said.group(1)} MB were already here)" in r.stderr


def test_summary_lines_are_whole_at_200_columns(qhub: HubServer, tmp_path: Path) -> None:
    r = run_tty("fetch", "demo/mix-exl2:3_0", columns=200, env=_env(qhub, tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = [line for line in r.stderr_lines if line.startswith("demo/mix-exl2@3_0 (")]
    assert len(summary) == 1
    assert summary[0].rstrip().endswith("transferred, 3 hashed and verified")
    assert "…" not in summary[0]


def test_verify_of_an_empty_directory_says_what_is_wrong(tmp_path: Path) -> None:
    r = run_qp("verify", tmp_path)
    assert r.returncode == 5
    assert f"error: {tmp_path.resolve()} has no quantpick.json manifest" in r.stderr


def test_a_whole_gguf_branch_is_fetched_with_a_warning(qhub: HubServer, tmp_path: Path) -> None:
    r = _qp(qhub, tmp_path, "fetch", "demo/mis-gguf", "--branch", "main", "--dry-run")
    assert r.returncode == 0, r.stderr
    assert "branch main of demo/mis-gguf holds 4 quantized files" in r.stderr
    assert "--file NAME takes one" in r.stderr


def test_the_workflow_installs_quantpick_from_its_repository() -> None:
    text = (EXAMPLES / "github" / "fetch-model.yml").read_text()
    installs = [line.strip() for line in text.splitlines() if "pip install" in line]
    assert installs == ['- run: pip install "${QUANTPICK_SOURCE:-.}"']


def _fake_tool(directory: Path, name: str, body: str) -> None:
    script = directory / name
    script.write_text(f"#!{sys.executable}\nimport sys\n{body}\n")
    script.chmod(0o755)


ROCM_JSON = {
    "card0": {"VRAM Total Memory (B)": str(24 << 30), "VRAM Total Used Memory (B)": str(1 << 30)},
    "card1": {"VRAM Total Memory (B)": str(16 << 30), "VRAM Total Used Memory (B)": "0"},
}


@pytest.mark.parametrize(
    ("tool", "body", "source", "vram"),
    [
        (
            "rocm-smi",
            "assert sys.argv[1:] == ['--showmeminfo', 'vram', '--json'], sys.argv\n"
            f"print({json.dumps(json.dumps(ROCM_JSON))})",
            "rocm-smi",
            [23 << 30, 16 << 30],
        ),
        (
            "sysctl",
            "answers = {'hw.optional.arm64': '1', 'hw.memsize': str(64 << 30)}\n"
            "assert sys.argv[1] == '-n', sys.argv\nprint(answers[sys.argv[2]])",
            "sysctl",
            [48 << 30],
        ),
    ],
)
def test_vram_auto_knows_rocm_and_apple_unified_memory(
    tmp_path: Path, tool: str, body: str, source: str, vram: list[int]
) -> None:
    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("NVML would answer first")
    _fake_tool(tmp_path, tool, body)
    card = EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md"
    r = run_qp("pick", "--card", card, "--vram", "auto", "--json", env={"PATH": str(tmp_path)})
    assert r.returncode in (0, 4), r.stderr
    budget = json.loads(r.stdout)["budget"]
    assert budget["source"] == source
    assert budget["gpu_vram_bytes"] == vram
