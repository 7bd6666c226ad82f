"""Mentions outside tables (headings, prose, admonitions, code, shell commands) as annotations of
the Hub's variants: `quantpick list --json` against the loopback Hub serving small repos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qp import list_json, run_qp
from quantpick.card.parser import parse_card
from quantpick.testing.builder import make_repo
from quantpick.testing.gguf_files import GgufModel
from quantpick.testing.server import HubServer

MIB = 1 << 20
TABLE = "| File | Size |\n|---|---|\n| m-Q8_0.gguf | 8 GB |\n"


@pytest.fixture(scope="module")
def qhub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub")) as server:
        yield server


def _variants(
    qhub: HubServer, tmp_path: Path, repo: str, readme: str, files: list[str]
) -> dict[str, Any]:
    make_repo(qhub.root, repo, {"main": dict.fromkeys(files, MIB)}, readme=readme)
    return {v["name"]: v for v in list_json(qhub, tmp_path, repo)["variants"]}


def test_mentions_outside_the_table_annotate_hub_files(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        f"# m\n\n{TABLE}\n### m-IQ4_XS.gguf\n\nSmall and fast.\n\n"
        "We recommend Q5_K_M for most users.\n\n"
        "```sh\nllama-cli -m m-Q5_K_M.gguf -p hi\n```\n"
    )
    files = ["m-Q8_0.gguf", "m-Q5_K_M.gguf", "m-IQ4_XS.gguf", "m-Q2_K.gguf"]
    files += ["m-Q6_K-00001-of-00002.gguf", "m-Q6_K-00002-of-00002.gguf"]
    readme += "\n```\nllama-server -m m-Q6_K-00001-of-00002.gguf\n```\n"
    got = _variants(qhub, tmp_path, "o/mentions", readme, files)
    # the first part names the whole split file
    assert [m["place"] for m in got["m-Q6_K.gguf"]["mentions"]] == ["command"]
    q5 = got["m-Q5_K_M.gguf"]
    assert q5["hub_status"] == "present"
    assert q5["recommended_by_card"] is True
    places = {(m["place"], m["recommended"]) for m in q5["mentions"]}
    assert places == {("prose", True), ("command", False)}
    (said,) = (m for m in q5["mentions"] if m["recommended"])
    assert said["source"] == "card"
    assert said["text"] == "We recommend Q5_K_M for most users."
    assert [m["place"] for m in got["m-IQ4_XS.gguf"]["mentions"]] == ["heading"]
    assert got["m-IQ4_XS.gguf"]["recommended_by_card"] is False
    # named nowhere: still the Hub's, not the card's
    assert got["m-Q2_K.gguf"]["hub_status"] == "hub-only"
    assert got["m-Q2_K.gguf"]["mentions"] == []
    # a mention creates no variant of its own
    assert set(got) == {*files[:4], "m-Q6_K.gguf"}


@pytest.mark.parametrize(
    ("said", "hub_file"),
    [
        ("Q4_K", "m-Q4_K_M.gguf"),
        ("IQ4_XS", "m-IQ4_NL.gguf"),
        ("Q4_K_M", "m.i1-Q4_K_M.gguf"),
        ("m-Q4_K_M.gguf", "m-V2-Q4_K_M.gguf"),
        ("m.Q4_K_M.gguf", "m.i1-Q4_K_M.gguf"),
    ],
)
def test_a_mention_never_lands_on_a_near_miss(
    qhub: HubServer, tmp_path: Path, said: str, hub_file: str
) -> None:
    readme = f"# m\n\n{TABLE}\nWe recommend {said}.\n\n```\nllama-server -m {said}\n```\n"
    repo = f"o/near-mention-{abs(hash((said, hub_file)))}"
    got = _variants(qhub, tmp_path, repo, readme, ["m-Q8_0.gguf", hub_file])
    near = got[hub_file]
    assert near["mentions"] == []
    assert near["recommended_by_card"] is False
    assert near["hub_status"] == "hub-only"
    assert set(got) == {"m-Q8_0.gguf", hub_file}


@pytest.mark.parametrize(
    ("said", "lands_on"),
    [
        ("Q4_K_M", "m-Q4_K_M.gguf"),
        ("i1-Q4_K_M", "m.i1-Q4_K_M.gguf"),
        ("m-Q4_K_M.gguf", "m-Q4_K_M.gguf"),
        ("m-V2-Q4_K_M.gguf", "m-V2-Q4_K_M.gguf"),
        ("IQ4_NL", "m-IQ4_NL.gguf"),
    ],
)
def test_beside_its_near_misses_a_mention_finds_its_own(
    qhub: HubServer, tmp_path: Path, said: str, lands_on: str
) -> None:
    readme = f"# m\n\n{TABLE}\nWe recommend {said}.\n"
    files = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m.i1-Q4_K_M.gguf", "m-IQ4_NL.gguf", "m-IQ4_XS.gguf"]
    if said.startswith("m-"):
        files.append("m-V2-Q4_K_M.gguf")
    repo = f"o/beside-{abs(hash(said))}"
    got = _variants(qhub, tmp_path, repo, readme, files)
    assert {n for n, v in got.items() if v["recommended_by_card"]} == {lands_on}


def test_a_bare_type_two_uploads_share_lands_nowhere(qhub: HubServer, tmp_path: Path) -> None:
    readme = f"# m\n\n{TABLE}\nWe recommend Q4_K_M.\n"
    files = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-V2-Q4_K_M.gguf"]
    got = _variants(qhub, tmp_path, "o/two-uploads", readme, files)
    assert not [n for n, v in got.items() if v["recommended_by_card"] or v["mentions"]]


def test_mention_that_matches_nothing_is_not_offered(qhub: HubServer, tmp_path: Path) -> None:
    readme = f"# m\n\n{TABLE}\nWe recommend Q6_K.\n"
    got = _variants(qhub, tmp_path, "o/ghost", readme, ["m-Q8_0.gguf"])
    assert set(got) == {"m-Q8_0.gguf"}
    assert got["m-Q8_0.gguf"]["recommended_by_card"] is False


def test_admonition_reads_like_prose(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        f"# m\n\n{TABLE}\n> [!TIP]\n> Best balance of speed and quality: `Q4_K_M`.\n\n"
        "> [!NOTE]\n> Q3_K_S is not recommended.\n"
    )
    files = ["m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-Q3_K_S.gguf"]
    got = _variants(qhub, tmp_path, "o/admonition", readme, files)
    (tip,) = got["m-Q4_K_M.gguf"]["mentions"]
    assert (tip["place"], tip["recommended"]) == ("admonition", True)
    assert got["m-Q4_K_M.gguf"]["recommended_by_card"] is True
    (note,) = got["m-Q3_K_S.gguf"]["mentions"]
    assert (note["place"], note["recommended"]) == ("admonition", False)


def test_command_naming_another_repo_is_not_this_repos(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        f"# m\n\n{TABLE}\n```\nllama-cli -hf o/commands:Q6_K\n"
        "llama-cli -hf someone/else-GGUF:Q4_K_M\n"
        "see someone/else-GGUF:Q4_K_M too\n"
        "huggingface-cli download o/commands --include m-IQ3_M.gguf\n```\n"
    )
    files = ["m-Q8_0.gguf", "m-Q6_K.gguf", "m-Q4_K_M.gguf", "m-IQ3_M.gguf"]
    got = _variants(qhub, tmp_path, "o/commands", readme, files)
    assert [m["place"] for m in got["m-Q6_K.gguf"]["mentions"]] == ["command"]
    assert [m["place"] for m in got["m-IQ3_M.gguf"]["mentions"]] == ["command"]
    assert got["m-Q4_K_M.gguf"]["mentions"] == []
    assert got["m-Q4_K_M.gguf"]["hub_status"] == "hub-only"


def test_branch_named_in_a_command_and_prose(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        "| Branch | Bits |\n|---|---|\n| [6_5](https://huggingface.co/o/br/tree/6_5) | 6.5 |\n\n"
        "The 4.0bpw branch is recommended for 24 GB cards.\n\n"
        "```\nhuggingface-cli download o/br --revision 4.0bpw\n```\n"
    )
    make_repo(
        qhub.root,
        "o/br",
        {
            "main": {"measurement.json": "{}"},
            "6_5": {"model.safetensors": 2 * MIB},
            "4.0bpw": {"model.safetensors": MIB},
            "3.0bpw": {"model.safetensors": MIB},
        },
        readme=readme,
    )
    got = {v["name"]: v for v in list_json(qhub, tmp_path, "o/br")["variants"]}
    four = got["4.0bpw"]
    assert four["hub_status"] == "present"
    assert four["recommended_by_card"] is True
    assert {m["place"] for m in four["mentions"]} == {"prose", "command"}
    assert got["3.0bpw"]["hub_status"] == "hub-only"


def test_the_picks_why_quotes_the_cards_recommendation(qhub: HubServer, tmp_path: Path) -> None:
    # two files of one type: the card's word decides between them, and the pick says so
    readme = f"# m\n\n{TABLE}\n- `m-Q4_K_M-a.gguf`: recommended, the best balance.\n"
    model = GgufModel()
    files = {"m-Q4_K_M-a.gguf": model, "m-Q4_K_M-b.gguf": model}
    make_repo(qhub.root, "o/why", {"main": files}, readme=readme)
    r = run_qp(
        "pick",
        "o/why",
        "--vram",
        "24",
        "--ctx",
        "4k",
        env={"HF_ENDPOINT": qhub.endpoint, "HF_HOME": str(tmp_path / "hf")},
    )
    assert r.returncode == 0, r.stderr
    # without the card, names break the tie: -b would win
    assert r.stdout.strip() == "m-Q4_K_M-a.gguf"
    assert (
        'recommended by the card (prose, line 7: "m-Q4_K_M-a.gguf: recommended, the best balance.")'
        in r.stderr
    )


def test_a_link_target_wins_over_its_text(qhub: HubServer, tmp_path: Path) -> None:
    # the label alone names two files (no match); the link says which
    readme = (
        f"# m\n\n{TABLE}\nWe recommend "
        "[Q4_K_M](https://huggingface.co/o/linked/resolve/main/b-Q4_K_M.gguf).\n\n"
        "```\nmake\n./main -m a-Q4_K_M.gguf\n```\n"
    )
    files = ["m-Q8_0.gguf", "a-Q4_K_M.gguf", "b-Q4_K_M.gguf"]
    got = _variants(qhub, tmp_path, "o/linked", readme, files)
    assert got["b-Q4_K_M.gguf"]["recommended_by_card"] is True
    assert got["a-Q4_K_M.gguf"]["recommended_by_card"] is False
    (cmd,) = got["a-Q4_K_M.gguf"]["mentions"]
    # a fence's content starts on the line after the fence
    assert (cmd["place"], cmd["line"]) == ("command", 11)


def test_card_only_mentions_stay_annotations_of_table_rows() -> None:
    card = parse_card(
        "| File | Size |\n|---|---|\n| m-Q4_K_M.gguf | 4 GB |\n| m-Q8_0.gguf | 8 GB |\n\n"
        "## m-Q6_K.gguf\n\nI would recommend Q4_K_M over Q8_0.\n"
    )
    assert [v.name for v in card.variants] == ["m-Q4_K_M.gguf", "m-Q8_0.gguf"]
    rec = {v.name: v.recommended_by_card for v in card.variants}
    assert rec == {"m-Q4_K_M.gguf": True, "m-Q8_0.gguf": False}
    assert {m.name for m in card.mentions} >= {"m-Q6_K.gguf", "Q4_K_M", "Q8_0"}


@pytest.mark.parametrize(
    ("prose", "recommended"),
    [
        ("We recommend Q5_K_M for most users.", {"m-Q5_K_M.gguf"}),
        ("For most people Q5_K_M is the sweet spot, not Q8_0.", {"m-Q5_K_M.gguf"}),
        ("### m-Q8_0.gguf (recommended)", {"m-Q8_0.gguf"}),
        ("Best balance: `Q4_K_M`.", {"m-Q4_K_M.gguf"}),
        ("> [!TIP]\n> Q4_K_M is the best choice.", {"m-Q4_K_M.gguf"}),
        # ambiguous, negated or comparative: no single pick
        ("Use Q4_K_M or Q5_K_M; both are recommended.", set()),
        ("Q4_K_M is not the best choice here.", set()),
        ("Q2_K is not recommended, use Q4_K_M.", set()),
        ("Q5_K_M is recommended over Q4_K_M.", set()),
        ("Q4_K is recommended.", set()),
        ("We recommend i1-Q4_K_M.", set()),
    ],
)
def test_prose_recommendations_by_sentence_structure(prose: str, recommended: set[str]) -> None:
    table = "| File | Size |\n|---|---|\n" + "".join(
        f"| m-{q}.gguf | 4 GB |\n" for q in ("Q4_K_M", "Q5_K_M", "Q8_0")
    )
    card = parse_card(f"# m\n\n{table}\n{prose}\n")
    assert {v.name for v in card.variants if v.recommended_by_card} == recommended
    assert len(card.variants) == 3


def test_a_prose_link_names_the_branch_it_points_at(qhub: HubServer, tmp_path: Path) -> None:
    readme = (
        "| Branch | Bits |\n|---|---|\n| [6_5](https://huggingface.co/o/br2/tree/6_5) | 6.5 |\n\n"
        "For 12 GB we recommend [the smaller one](https://huggingface.co/o/br2/tree/3.0bpw); "
        "[a friend's](https://huggingface.co/f/br2/tree/4.0bpw) is bigger.\n"
    )
    make_repo(
        qhub.root,
        "o/br2",
        {
            "main": {"measurement.json": "{}"},
            "6_5": {"model.safetensors": 2 * MIB},
            "3.0bpw": {"model.safetensors": MIB},
            "4.0bpw": {"model.safetensors": MIB},
        },
        readme=readme,
    )
    got = {v["name"]: v for v in list_json(qhub, tmp_path, "o/br2")["variants"]}
    assert got["3.0bpw"]["recommended_by_card"] is True
    assert got["3.0bpw"]["hub_status"] == "present"
    # the friend's repo has a 4.0bpw too: this one's stays the Hub's, unannotated
    assert (got["4.0bpw"]["hub_status"], got["4.0bpw"]["mentions"]) == ("hub-only", [])


def test_a_recommended_row_missing_on_the_hub_keeps_its_recommendation(
    qhub: HubServer, tmp_path: Path
) -> None:
    readme = (
        "| File | Size |\n|---|---|\n| m-Q4_K_M.gguf | 4 GB |\n| m-Q8_0.gguf | 8 GB |\n\n"
        "We recommend Q4_K_M.\n"
    )
    got = _variants(qhub, tmp_path, "o/gone", readme, ["m-Q8_0.gguf", "m-V2-Q4_K_M.gguf"])
    row = got["m-Q4_K_M.gguf"]
    assert (row["hub_status"], row["recommended_by_card"]) == ("missing", True)
    # the re-upload is the Hub's, not the row the card recommended
    assert got["m-V2-Q4_K_M.gguf"]["recommended_by_card"] is False
    assert got["m-V2-Q4_K_M.gguf"]["hub_status"] == "hub-only"
