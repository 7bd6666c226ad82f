"""`quantpick list REPO` against the loopback Hub serving repos built from ../shared/cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import SENTINEL_TOKEN, run_qp
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer
from shared_repos import SHARED_CARDS, SharedCard, build_shared_repo, shared_cards

CARDS = shared_cards()
needs_cards = pytest.mark.skipif(not CARDS, reason=f"no shared cards at {SHARED_CARDS}")


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    root.mkdir()
    with HubServer(root, tokens=[SENTINEL_TOKEN]) as server:
        yield server


def _list(server: HubServer, tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    r = run_qp(
        "list",
        *args,
        env={"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf"), **env},
    )
    return r.returncode, r.stdout, r.stderr


@needs_cards
@pytest.mark.parametrize("sc", CARDS, ids=[c.stem for c in CARDS])
def test_every_shared_card_lists_against_the_hub(
    qhub: HubServer, tmp_path: Path, sc: SharedCard
) -> None:
    repo = build_shared_repo(qhub.root, sc)
    code, out, err = _list(qhub, tmp_path, repo, "--json")
    if not sc.expected["variants"]:
        # a card that lists nothing over a repo that holds nothing: the documented exit 3, and no
        # phantom variant made up from the card's prose
        assert code == 3, err
        # with --json, the error document (issue 15): no variant list, made up or otherwise
        doc = json.loads(out)
        assert doc["schema"] == "quantpick/error@1"
        assert doc["error"]["exit_code"] == 3
        assert err.startswith("error: no quantized variants"), err
        return
    assert code == 0, err
    doc = json.loads(out)
    assert not [v["name"] for v in doc["variants"] if v["hub_status"] == "hub-only"], doc
    by_name = {v["name"]: v for v in doc["variants"]}
    for want in sc.expected["variants"]:
        got = by_name[want["name"]] if sc.expected["kind"] != "repos" else None
        if got is None:
            continue
        if sc.expected["kind"] == "branches" and not got.get("repo"):
            assert got["hub_status"] == "present", got
            assert got["size_source"] == "hub"
        if sc.expected["kind"] == "files":
            assert got["hub_status"] == "present", (want["name"], got["warnings"])
            assert got["files"], got


@needs_cards
def test_missing_branch_is_flagged_never_offered(qhub: HubServer, tmp_path: Path) -> None:
    sc = next(c for c in CARDS if c.stem == "bartowski__Cerebrum-1.0-8x7b-exl2")
    repo = build_shared_repo(qhub.root, sc, drop="3_5")
    code, out, err = _list(
        qhub, tmp_path, repo, "--json", "--vram", "24", "--ctx", "16k", "--reserve", "0"
    )
    assert code == 0, err
    doc = json.loads(out)
    v35 = next(v for v in doc["variants"] if v["name"] == "3_5")
    assert v35["hub_status"] == "missing"
    assert any("Hub has none" in w for w in v35["warnings"])
    # 3_5 would be the pick at 24 GiB/16k; missing, it is passed over for 3_0
    assert doc["pick"] == "3_0"


def test_hub_only_branch_and_measurement_main(qhub: HubServer, tmp_path: Path) -> None:
    card = (
        "| Branch | Bits | VRAM (16k) |\n|---|---|---|\n"
        "| [6_5](https://huggingface.co/o/m/tree/6_5) | 6.5 | 9.0 GB |\n"
    )
    make_repo(
        qhub.root,
        "o/m-exl2",
        {
            "main": {"measurement.json": "{}"},
            "6_5": {"model.safetensors": 2 * (1 << 20)},
            "4.0bpw_h6": {"model.safetensors": 1 << 20},
        },
        readme=card,
    )
    code, out, err = _list(qhub, tmp_path, "o/m-exl2", "--json")
    assert code == 0, err
    variants = {v["name"]: v for v in json.loads(out)["variants"]}
    assert set(variants) == {"6_5", "4.0bpw_h6"}
    assert variants["6_5"]["size_bytes"] == 2 * (1 << 20) + len(card.encode())
    extra = variants["4.0bpw_h6"]
    assert extra["hub_status"] == "hub-only"
    assert (extra["bits"], extra["head_bits"], extra["bits_source"]) == (4.0, 6.0, "name")


def test_repo_without_card_falls_back_to_names(qhub: HubServer, tmp_path: Path) -> None:
    make_repo(
        qhub.root, "o/bare", {"main": {}, "gptq-4bit-32g-actorder_True": {"model.safetensors": 10}}
    )
    code, out, err = _list(qhub, tmp_path, "o/bare", "--json")
    assert code == 0, err
    doc = json.loads(out)
    (v,) = doc["variants"]
    assert (v["format"], v["bits"], v["group_size"], v["act_order"]) == ("gptq", 4, 32, True)
    assert any("no model card" in w for w in doc["warnings"])


@pytest.mark.parametrize(
    ("setup", "args", "code", "needle"),
    [
        ("none", ("nobody/nothing",), 5, "not found"),
        ("public", ("o/pub", "--revision", "no-such-branch"), 5, "revision"),
        ("public", ("o/pub:no-such-branch",), 5, "no variant"),
        ("private", ("o/priv",), 5, "no token was given"),
        ("private", ("o/priv", "--token", "hf_wrong"), 6, "refused the token"),
        ("gated", ("o/gate",), 6, ""),
    ],
)
def test_errors_map_to_exit_codes(
    qhub: HubServer, tmp_path: Path, setup: str, args: tuple[str, ...], code: int, needle: str
) -> None:
    files = {"main": {}, "4_0": {"model.safetensors": 10}}
    if setup == "public":
        make_repo(qhub.root, "o/pub", files)
    if setup == "private":
        make_repo(qhub.root, "o/priv", files, private=True)
    if setup == "gated":
        make_repo(qhub.root, "o/gate", files, gated=True)
    got, out, err = _list(qhub, tmp_path, *args)
    assert got == code, err
    assert out == ""
    assert err.startswith("error: ")
    assert needle in err
    assert "hint: " in err
    assert "Traceback" not in err


def test_private_repo_with_token_and_no_leak(qhub: HubServer, tmp_path: Path) -> None:
    make_repo(
        qhub.root,
        "o/priv",
        {"main": {}, "4_0": {"model.safetensors": 10}},
        private=True,
        tokens=[SENTINEL_TOKEN],
    )
    code, out, err = _list(qhub, tmp_path, "o/priv", "--json", HF_TOKEN=SENTINEL_TOKEN)
    assert code == 0, err
    assert SENTINEL_TOKEN not in out + err
    bad, out, err = _list(qhub, tmp_path, "o/priv", "--token", SENTINEL_TOKEN + "x", "--verbose")
    assert bad == 6
    assert SENTINEL_TOKEN not in out + err


def test_offline_answers_from_last_lookup(qhub: HubServer, tmp_path: Path) -> None:
    make_repo(qhub.root, "o/pub", {"main": {}, "4_0": {"model.safetensors": 10}})
    assert _list(qhub, tmp_path, "o/pub")[0] == 0
    qhub.requests.clear()
    code, out, err = _list(qhub, tmp_path, "o/pub", "--json", HF_HUB_OFFLINE="1")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == "hub-cache"
    assert [v["name"] for v in doc["variants"]] == ["4_0"]
    assert len(qhub.requests) == 0
    human = _list(qhub, tmp_path, "o/pub", "--offline")[1]
    assert "cached" in human


def test_offline_without_cache_is_a_network_error(qhub: HubServer, tmp_path: Path) -> None:
    code, _, err = _list(qhub, tmp_path, "o/never", "--offline")
    assert code == 7
    assert "no earlier look-up" in err


def test_server_errors_are_retried(qhub: HubServer, tmp_path: Path) -> None:
    from quantpick.testing.faults import Fault

    make_repo(qhub.root, "o/pub", {"main": {}, "4_0": {"model.safetensors": 10}})
    qhub.faults.add("/api/models/o/pub/refs", Fault(status=503, times=2))
    code, _, err = _list(qhub, tmp_path, "o/pub")
    assert code == 0, err
    qhub.faults.add("/api/models/o/pub/refs", Fault(status=503, times=10))
    code, _, err = _list(qhub, tmp_path, "o/pub")
    assert code == 7
    assert "503" in err


def test_network_down(tmp_path: Path) -> None:
    r = run_qp("list", "o/pub", "--endpoint", "http://127.0.0.1:9", env={"HF_HOME": str(tmp_path)})
    assert r.returncode == 7
    assert r.stderr.startswith("error: could not reach")


@needs_cards
def test_renamed_branch_shows_card_row_missing_and_hub_branch(
    qhub: HubServer, tmp_path: Path
) -> None:
    sc = next(c for c in CARDS if c.stem == "bartowski__Cerebrum-1.0-8x7b-exl2")
    repo = build_shared_repo(qhub.root, sc, drop="4_25")
    # the quantizer renamed 4_25 to 4.25bpw on the Hub and never updated the card
    make_repo(qhub.root, repo, {"4.25bpw": {"model.safetensors": 1 << 20}})
    code, out, err = _list(qhub, tmp_path, repo, "--json")
    assert code == 0, err
    variants = {v["name"]: v for v in json.loads(out)["variants"]}
    assert variants["4_25"]["hub_status"] == "missing"
    renamed = variants["4.25bpw"]
    assert renamed["hub_status"] == "hub-only"
    assert (renamed["bits"], renamed["bits_source"], renamed["size_source"]) == (
        4.25,
        "name",
        "hub",
    )
    assert (
        "warning: 4_25: the card lists branch '4_25', the Hub has none"
        in _list(qhub, tmp_path, repo)[2]
    )


def test_partial_mirror_degrades_with_a_warning(qhub: HubServer, tmp_path: Path) -> None:
    from quantpick.testing.faults import Fault

    make_repo(
        qhub.root,
        "o/mirrored",
        {"main": {"model.safetensors": 3000, "config.json": "{}"}},
        readme="# no table\n",
    )
    # a self-hosted mirror with neither branch listings nor tree listings
    qhub.faults.add("/api/models/o/mirrored/refs", Fault(status=404))
    qhub.faults.add("/api/models/o/mirrored/tree/*", Fault(status=404))
    code, out, err = _list(qhub, tmp_path, "o/mirrored", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert any("does not list branches" in w for w in doc["warnings"])
    assert any("no tree listing" in w for w in doc["warnings"])
    assert "warning: " in _list(qhub, tmp_path, "o/mirrored")[2]
