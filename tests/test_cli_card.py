"""`quantpick list/pick --card`: a local card, no network, real subprocess runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qp import EXAMPLES, run_qp

EXL2 = EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md"
GGUF = EXAMPLES / "cards" / "demo__Mistral-7B-Instruct-GGUF.md"
MISTRAL = EXAMPLES / "configs" / "mistral-7b.json"


def test_list_card_json_envelope() -> None:
    r = run_qp("list", "--card", EXL2, "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "quantpick/list@1"
    assert doc["source"] == "card-file"
    names = [v["name"] for v in doc["variants"]]
    assert names == ["6_5", "5_0", "4_25", "3_5", "3_0"]
    first = doc["variants"][0]
    assert first["vram_bytes"] == {
        "4096": round(38.9 * 2**30),
        "16384": round(40.4 * 2**30),
        "32768": round(42.4 * 2**30),
    }
    assert first["recommended_by_card"] is True
    assert first["kind"] == "branch"
    assert first["format"] == "exl2"


def test_list_card_human_output_is_plain_when_piped() -> None:
    r = run_qp("list", "--card", EXL2)
    assert r.returncode == 0, r.stderr
    assert "\x1b[" not in r.stdout + r.stderr
    assert "VRAM@16k" in r.stdout
    assert "(card)" in r.stdout


def test_pick_prints_only_the_name_on_stdout() -> None:
    r = run_qp("pick", "--card", EXL2, "--vram", "24", "--ctx", "16k", "--reserve", "0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "3_5\n"
    assert "not 4_25" in r.stderr


def test_pick_json_names_winner_and_runner_up() -> None:
    r = run_qp("pick", "--card", EXL2, "--vram", "48", "--ctx", "32k", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "quantpick/pick@1"
    assert doc["pick"]["name"] == "6_5"
    assert doc["pick"]["estimate"]["provenance"] == "card"
    assert doc["pick"]["estimate"]["fits"] is True


def test_nothing_fits_exit_code_and_shortfall() -> None:
    r = run_qp("pick", "--card", EXL2, "--vram", "16", "--ctx", "4k")
    assert r.returncode == 4
    assert r.stdout == ""
    assert "error: nothing fits: the smallest, 3_0, needs 18.9 GiB" in r.stderr
    assert "hint:" in r.stderr


def test_formula_estimate_with_config() -> None:
    r = run_qp("list", "--card", GGUF, "--config", MISTRAL, "--vram", "8", "--ctx", "16k", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    est = {v["name"]: v["estimate"] for v in doc["variants"]}
    q4 = est["mistral-7b-instruct.Q4_K_M.gguf"]
    assert q4["provenance"] == "formula"
    assert q4["breakdown"]["kv_cache_bytes"] == 16384 * 2 * 32 * 8 * 128 * 2
    assert doc["pick"] is not None


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("list", "--card", "/nonexistent/README.md"), 2, "does not exist"),
        (("pick", "--card", str(EXL2), "--vram", "lots"), 2, "accepted forms"),
        (("pick", "--card", str(EXL2), "--vram", "24", "--ctx", "-3"), 2, "accepted forms"),
        (("pick", "--card", str(EXL2), "--vram", "24", "--cache", "q3"), 2, "accepted forms"),
        (("list", "not-a-repo-id"), 2, "OWNER/NAME"),
        (("list",), 2, "no repo given"),
    ],
)
def test_bad_input_is_one_error_line(args: tuple[str, ...], code: int, needle: str) -> None:
    r = run_qp(*args)
    assert r.returncode == code
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ")
    assert needle in r.stderr


def test_card_without_variants_exits_3(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text("# A model\n\nNo tables here, just prose.\n")
    r = run_qp("list", "--card", card)
    assert r.returncode == 3
    assert r.stderr.startswith("error: no quantized variants")


def test_card_is_a_directory(tmp_path: Path) -> None:
    r = run_qp("list", "--card", tmp_path)
    assert r.returncode == 2
    assert "is a directory" in r.stderr


def test_runtime_that_cannot_load_the_format_is_never_picked() -> None:
    r = run_qp("pick", "--card", EXL2, "--vram", "24", "--runtime", "llama.cpp")
    assert r.returncode == 4
    assert "llama.cpp cannot load exl2 weights" in r.stderr
    assert "hint: drop --runtime" in r.stderr


def test_one_card_figure_without_a_shape_still_fits(tmp_path: Path) -> None:
    card = tmp_path / "README.md"
    card.write_text(
        "| Branch | Bits | lm_head bits | Size | Description |\n|---|---|---|---|---|\n"
        "| [6_5](https://huggingface.co/o/m/tree/6_5) | 6.5 | 8.0 | 8.6 GB | good |\n"
        "| [4_0](https://huggingface.co/o/m/tree/4_0) | 4.0 | 6.0 | 6.5 GB | small |\n\n"
        "All VRAM requirements estimated from 16k context.\n"
    )
    r = run_qp("pick", "--card", card, "--vram", "8", "--ctx", "16k", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["pick"]["name"] == "4_0"
    assert doc["pick"]["estimate"]["provenance"] == "card"
    # the inverse question needs a shape this card does not give: unknown, not a failure
    assert doc["pick"]["estimate"]["max_context_tokens"] is None
