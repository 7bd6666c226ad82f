"""Every real card under ../shared/cards against its hand-read ground truth (*.expected.json)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from quantpick.card.parser import parse_card
from quantpick.records import GIB, Variant

_DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "cards"
SHARED = Path(os.environ.get("QUANTPICK_SHARED_CARDS", _DEFAULT))
CASES = sorted(SHARED.glob("**/*.expected.json")) if SHARED.is_dir() else []
# card sizes carry 2-4 significant digits; VRAM figures one decimal of a GiB
SIZE_TOLERANCE = 0.005
MEMORY_TOLERANCE_BYTES = 1 << 20

pytestmark = pytest.mark.skipif(
    not CASES, reason=f"shared cards directory {SHARED} is absent (set QUANTPICK_SHARED_CARDS)"
)


def _load(expected_path: Path) -> tuple[dict[str, Any], list[Variant]]:
    expected = json.loads(expected_path.read_text(encoding="utf-8"))
    card_path = expected_path.with_name(expected_path.name.replace(".expected.json", ".md"))
    card = parse_card(card_path.read_text(encoding="utf-8"), repo=expected["repo"])
    assert not any(w.startswith("internal parser error") for w in card.warnings), card.warnings
    return expected, list(card.variants)


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _memory(expected_gb: dict[str, float]) -> dict[int | None, int]:
    return {
        None if key == "unspecified" else int(key): round(gb * GIB)
        for key, gb in expected_gb.items()
    }


def _close(got: int | None, want: int | None, tolerance: float) -> bool:
    if got is None or want is None:
        return got is want
    return abs(got - want) <= tolerance


@pytest.fixture(params=CASES, ids=[p.name.removesuffix(".expected.json") for p in CASES])
def case(request: pytest.FixtureRequest) -> tuple[dict[str, Any], list[Variant]]:
    path: Path = request.param
    return _load(path)


def test_variant_names_in_order(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    assert [v.name for v in variants] == [v["name"] for v in expected["variants"]]


def test_variant_kind(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    kind = {"branches": "branch", "files": "file", "repos": "repo"}[expected["kind"]]
    # a card that lists nothing (a template with no file list) has no kind to check
    assert {v.kind.value for v in variants} == ({kind} if expected["variants"] else set())


def test_quant_parameters(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    got = {v.name: v for v in variants}
    for want in expected["variants"]:
        v = got[want["name"]]
        assert (v.bits, v.head_bits) == (_float(want["bits"]), _float(want["lm_head_bits"])), v.name
        assert (v.group_size, v.act_order) == (want["group_size"], want["act_order"]), v.name
        assert v.quant_method == want["quant_method"], v.name


def test_sizes_are_si_bytes(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    got = {v.name: v for v in variants}
    for want in expected["variants"]:
        size = None if want["size_gb"] is None else round(want["size_gb"] * 1e9)
        tolerance = (size or 0) * SIZE_TOLERANCE
        assert _close(got[want["name"]].size_bytes, size, tolerance), want["name"]


def test_memory_figures_are_gib_by_context(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    got = {v.name: v for v in variants}
    for want in expected["variants"]:
        v = got[want["name"]]
        vram: dict[int | None, int] = dict(v.vram_bytes.items())
        if v.vram_unspecified_bytes is not None:
            vram[None] = v.vram_unspecified_bytes
        wanted = _memory(want["vram_gb"])
        assert vram.keys() == wanted.keys(), v.name
        for context, figure in wanted.items():
            assert _close(vram[context], figure, MEMORY_TOLERANCE_BYTES), (v.name, context)
        ram = None if want["max_ram_gb"] is None else round(want["max_ram_gb"] * GIB)
        assert _close(v.max_ram_bytes, ram, MEMORY_TOLERANCE_BYTES), v.name
        derived = want.get("extra", {}).get("vram_gb_derived", {})
        assert v.vram_derived_bytes.keys() == {int(k) for k in derived}, v.name


def test_recommended_only_on_positive_markers(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, variants = case
    got = {v.name: v.recommended_by_card for v in variants}
    assert got == {v["name"]: v["recommended"] for v in expected["variants"]}


def _expected_base_models(note: str | None) -> tuple[str, ...]:
    """The ground truth writes a plain repo id, null, or a repo id with a note in parentheses."""
    if note is None or re.search(r"\b(?:no|not stated in) (?:base_model )?front-matter", note):
        return ()
    ids = note.split(" (", 1)[0]
    return tuple(part.strip() for part in ids.split(" + "))


def test_base_model_from_front_matter(case: tuple[dict[str, Any], list[Variant]]) -> None:
    expected, _ = case
    card_path = next(SHARED.glob(f"**/{expected['repo'].replace('/', '__')}.md"))
    card = parse_card(card_path.read_text(encoding="utf-8"), repo=expected["repo"])
    assert card.base_models == _expected_base_models(expected.get("base_model"))
