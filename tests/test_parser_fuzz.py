"""parse_card never raises: random markdown, random variant tables, mangled fixture cards."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantpick.card.names import describe
from quantpick.card.parser import parse_card
from quantpick.records import ModelCard

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "cards").glob("*.md"))
CARDS = [p.read_text(encoding="utf-8") for p in FIXTURES]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MARKDOWN_ALPHABET = st.sampled_from(
    list("|-:*_`[]()!#>\\~ \n\t.,?/") + list("abcQK0123456789") + ["👈", "\u00a0", "\x00", "\r"]
)
HEADERS = st.sampled_from(
    [
        "Branch", "Bits", "lm_head bits", "VRAM (4k)", "VRAM (16k)", "Size", "File Size", "Size/GB",
        "Name", "Filename", "Link", "Quant", "Quant method", "Type", "GS", "Act Order", "Damp %",
        "Seq Len", "Max RAM required", "Use case", "Description", "Notes", "Split", "Split Files",
        "4 bit cache", "16 bit cache", "Memory (for 32k tokens)", "8k PPL", "",
    ]
)  # fmt: skip
CELLS = st.one_of(
    st.sampled_from(
        [
            "6_5", "main", "4.0bpw_h8", "gptq-4bit-32g-actorder_True", "x.Q4_K_M.gguf", "?", "",
            "None", "Yes", "False", "~3.2 GB", "624 MB", "4.1 GiB", "74.98GB", "-1",
            "**recommended**", "*not* recommended", "👈 my recommendation", "recommended over Q2_K",
            r"a \| b",
            "[6_5](https://huggingface.co/a/b/tree/6_5)",
            "[GGUF](https://huggingface.co/a/b/resolve/main/x.i1-IQ3_XS.gguf)",
            "[x.gguf](https://huggingface.co/a/b/tree/main/x-Q8_0)",
            "[r](https://huggingface.co/a/b-2.4bpw-h6-exl2)", "[bad](http://[::1)",
        ]
    ),
    st.text(MARKDOWN_ALPHABET, max_size=20),
)  # fmt: skip


def assert_clean(parsed: ModelCard) -> None:
    assert isinstance(parsed, ModelCard)
    assert not any(w.startswith("internal parser error") for w in parsed.warnings), parsed.warnings


@st.composite
def tables(draw: st.DrawFn) -> str:
    width = draw(st.integers(1, 7))
    header = [draw(HEADERS) for _ in range(width)]
    rows = [
        [draw(CELLS) for _ in range(draw(st.integers(0, width + 1)))]
        for _ in range(draw(st.integers(0, 6)))
    ]
    outer = draw(st.booleans())

    def line(cells: list[str]) -> str:
        body = " | ".join(c.replace("\n", " ") for c in cells)
        return f"| {body} |" if outer else body

    prose = draw(st.sampled_from(["", "All VRAM requirements estimated from 16k context.", "x"]))
    return "\n".join([line(header), line(["---"] * width), *map(line, rows), prose])


@st.composite
def mangled_cards(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(CARDS))
    for _ in range(draw(st.integers(1, 6))):
        if not text:
            break
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, min(len(text), a + 200)))
        op = draw(st.sampled_from(["delete", "duplicate", "insert", "pipes", "truncate"]))
        if op == "delete":
            text = text[:a] + text[b:]
        elif op == "duplicate":
            text = text[:b] + text[a:b] + text[b:]
        elif op == "insert":
            text = text[:a] + draw(st.text(MARKDOWN_ALPHABET, max_size=40)) + text[a:]
        elif op == "pipes":
            text = text[:a] + text[a:b].replace("|", "").replace(" ", "|") + text[b:]
        else:
            text = text[:a]
    return text


@FUZZ
@given(st.text(MARKDOWN_ALPHABET, max_size=1500))
def test_random_markdown(text: str) -> None:
    assert_clean(parse_card(text))


@FUZZ
@given(tables())
def test_random_variant_tables(text: str) -> None:
    assert_clean(parse_card(text, repo="a/b"))


@FUZZ
@given(mangled_cards())
def test_mangled_fixture_cards(text: str) -> None:
    assert_clean(parse_card(text))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_describe_any_name(name: str) -> None:
    describe(name)
