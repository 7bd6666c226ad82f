"""The cheap word tests that names.describe and values run before a regex give the regex's answer.

A row of a 100k-row table calls describe once; the filters skip the searches a name cannot match.
Each is only sound if no text the regex matches lacks the word, which rests on one fact about
Python's IGNORECASE: only i, k and s match non-ASCII letters (U+0130, U+0131, U+212A, U+017F),
and only U+0130 and U+212A lower-case to ASCII. Both facts and every filter are checked here, on
text rich in the letters, digits, separators and look-alikes that matter.
"""

from __future__ import annotations

import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quantpick.card import names
from quantpick.card import values as cv
from quantpick.records import Format

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LOOKALIKES = ["\u0130", "\u0131", "\u212a", "\u017f", "\u00e9"]
TEXT = st.text(
    st.sampled_from(list("exlgptqawufmbinrcodhvsk23450189") + list("EXLGPTQAWUF") + list("-_./ ")
    + LOOKALIKES),
    max_size=30,
)  # fmt: skip
WORDS = st.sampled_from(
    ["exl3", "EXL2", "gptq", "AWQ", "-awq", "xawq", "GGUF", "ggml", "bpw", "4bit", "int8", "w4a16",
     "128g", "-1g", "act-order-True", "actorder_False", "-00001-of-00003.gguf", ".gguf-split-b",
     ".part1of2", ".bin", "Q4_K_M", "f16", "mmproj", "recommended", "RECOMMEND"]
)  # fmt: skip
NAMES = st.lists(st.one_of(WORDS, TEXT), max_size=4).map("".join)

# the order describe has always given explicit formats in
FORMAT_MARKERS = (
    (re.compile(r"exl3", re.IGNORECASE), Format.EXL3),
    (re.compile(r"exl2", re.IGNORECASE), Format.EXL2),
    (re.compile(r"gptq", re.IGNORECASE), Format.GPTQ),
    (re.compile(r"(?<![a-z])awq", re.IGNORECASE), Format.AWQ),
    (re.compile(r"gguf", re.IGNORECASE), Format.GGUF),
    (re.compile(r"ggml", re.IGNORECASE), Format.GGML),
)
# (pattern, word every match holds, whether the filter is used only on ASCII names)
FILTERS = (
    (names._SPLIT_NUMBERED, names._NUMBERED_WORD, False),
    (names._SPLIT_LETTER, names._LETTER_WORD, False),
    (names._SPLIT_PARTOF, names._PARTOF_WORD, False),
    (names._BPW, "bpw", False),
    (names._GROUP, "g", False),
    (names._ACT_ORDER, "act", False),
    (names._AWQ_WORD, "awq", False),
    (cv._RECOMMEND, "recommend", False),
)


def test_ignorecase_and_lower_reach_ascii_only_through_four_letters() -> None:
    any_letter = re.compile("[a-z]", re.IGNORECASE)
    matched = [c for c in map(chr, range(128, 0x110000)) if any_letter.match(c)]
    lookalikes = {
        letter: [c for c in matched if re.match(letter, c, re.IGNORECASE)]
        for letter in string.ascii_lowercase
    }
    assert {k: v for k, v in lookalikes.items() if v} == {
        "i": ["\u0130", "\u0131"],
        "k": ["\u212a"],
        "s": ["\u017f"],
    }
    to_ascii = [c for c in map(chr, range(128, 0x110000)) if set(c.lower()) & set(string.printable)]
    assert to_ascii == ["\u0130", "\u212a"]


@FUZZ
@given(NAMES)
def test_every_match_holds_its_filter_word(text: str) -> None:
    low = text.lower()
    for pattern, word, ascii_only in FILTERS:
        if pattern.search(text) and not (ascii_only and not text.isascii()):
            assert word in low, (pattern.pattern, text)
    if names._NBIT.search(text) and text.isascii():
        assert "bit" in low or "int" in low or "w" in low
    if names._GGUF_TYPE.search(text):
        assert "q" in low or "f" in low


@FUZZ
@given(NAMES)
def test_explicit_format_is_the_first_marker_that_matches(text: str) -> None:
    first = next((fmt for pattern, fmt in FORMAT_MARKERS if pattern.search(text)), None)
    assert names._explicit_format(text, text.lower()) is first


@FUZZ
@given(NAMES)
def test_describe_reads_split_names_as_the_patterns_do(text: str) -> None:
    name = text + ".gguf"
    base = names._basename(name.strip())
    info = names.describe(name)
    m = names._SPLIT_NUMBERED.search(base)
    if m:
        assert (info.split_part, info.split_total) == (int(m["part"]), int(m["total"]))
    elif not names._SPLIT_LETTER.search(base) and not names._SPLIT_PARTOF.search(base):
        assert info.split_part is None
        assert info.split_group == base
