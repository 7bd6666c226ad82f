"""The card parser on small hand-written cards, one per layout and trap (tests/fixtures/cards)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantpick.card.parser import parse_card
from quantpick.records import GIB, CacheMode, Format, ModelCard, Role, Source, Variant, VariantKind

FIXTURES = Path(__file__).parent / "fixtures" / "cards"


def card(name: str, repo: str | None = None) -> ModelCard:
    return parse_card((FIXTURES / f"{name}.md").read_text(encoding="utf-8"), repo=repo)


def variants(name: str, repo: str | None = None) -> dict[str, Variant]:
    return {v.name: v for v in card(name, repo).variants}


def gib(x: float) -> int:
    return round(x * GIB)


class TestExl2Tables:
    def test_any_subset_of_vram_columns_keyed_by_context(self) -> None:
        v = variants("exl2_vram_columns")
        assert list(v) == ["6_5", "5_0", "4_25"]
        assert v["6_5"].vram_bytes == {8192: gib(7.9), 32768: gib(9.4)}
        assert v["6_5"].head_bits == 8.0
        assert v["6_5"].format is Format.EXL2

    def test_approximate_and_unknown_cells(self) -> None:
        # "~5.9 GB" is a figure; "?" is no figure, never zero
        assert variants("exl2_vram_columns")["4_25"].vram_bytes == {8192: gib(5.9)}

    def test_perplexity_columns_are_not_vram(self) -> None:
        v = variants("exl2_vram_columns")["5_0"]
        assert set(v.vram_bytes) == {8192, 32768}
        assert v.extra["8k_ppl"] == "5.95"

    def test_recommendation_markers(self) -> None:
        v = variants("exl2_vram_columns")
        assert v["6_5"].recommended_by_card  # "👈 my recommendation"
        assert not v["5_0"].recommended_by_card  # "Recommended over 4_25"
        assert not v["4_25"].recommended_by_card  # "*not* recommended"

    def test_bits_cell_contradicting_the_branch_is_kept_and_warned(self) -> None:
        v = variants("exl2_vram_columns")["4_25"]
        assert (v.bits, v.bits_source) == (4.0, Source.CARD)
        assert any("4.25" in w for w in v.warnings)

    def test_benchmark_table_is_ignored(self) -> None:
        assert "arc" not in variants("exl2_vram_columns")

    def test_branch_comes_from_the_link_target_and_repo_from_the_link(self) -> None:
        v = variants("exl2_vram_columns", repo="someone/Tiny-Base-7B-exl2")["6_5"]
        assert (v.kind, v.repo) == (VariantKind.BRANCH, None)
        other = variants("exl2_vram_columns", repo="me/elsewhere")["6_5"]
        assert other.repo == "someone/Tiny-Base-7B-exl2"

    def test_front_matter_base_model(self) -> None:
        assert card("exl2_vram_columns").base_models == ("example-org/Tiny-Base-7B",)


class TestSizeColumnDeclaredVram:
    def test_size_is_vram_at_the_stated_context(self) -> None:
        parsed = card("exl2_size_is_vram")
        v = {x.name: x for x in parsed.variants}
        assert v["8_0"].size_bytes is None
        assert v["8_0"].vram_bytes == {8192: gib(9.0)}
        assert parsed.vram_context_tokens == 8192
        assert "8k context" in parsed.vram_note

    def test_prose_rule_gives_derived_figures(self) -> None:
        v = variants("exl2_size_is_vram")["4_0"]
        assert v.vram_derived_bytes == {32768: gib(5.5) + gib(3.0)}
        assert v.recommended_by_card

    def test_the_prose_line_after_the_table_is_not_a_row(self) -> None:
        assert list(variants("exl2_size_is_vram")) == ["8_0", "4_0"]

    def test_without_the_sentence_size_stays_a_file_size(self) -> None:
        text = (FIXTURES / "exl2_size_is_vram.md").read_text(encoding="utf-8")
        text = text.split("Every VRAM")[0]
        v = {x.name: x for x in parse_card(text).variants}
        assert v["8_0"].size_bytes == 9_000_000_000
        assert v["8_0"].vram_bytes == {}


class TestCacheColumns:
    def test_cache_columns_at_the_prose_context(self) -> None:
        v = variants("exl2_cache_columns")["3_5"]
        assert v.vram_bytes_by_cache == {
            CacheMode.Q4: {32768: gib(9.0)},
            CacheMode.FP16: {32768: gib(13.2)},
        }
        assert v.vram_bytes == {}

    def test_context_and_cache_in_the_header_and_a_second_table_merges(self) -> None:
        v = variants("exl2_cache_columns")["5_0"]
        assert v.vram_bytes_by_cache[CacheMode.Q8] == {8192: gib(11.0)}
        assert v.vram_bytes_by_cache[CacheMode.Q4] == {32768: gib(12.1)}
        assert card("exl2_cache_columns").vram_context_tokens == 32768


class TestLinkLists:
    def test_branches_from_tree_links_several_per_line(self) -> None:
        parsed = card("exl_link_list", repo="someone/Some-Model-exl3")
        assert [v.name for v in parsed.variants] == ["2.00bpw_H4", "2.00bpw_H4_V4", "4.00bpw"]
        h4, v4, plain = parsed.variants
        assert all(
            v.format is Format.EXL3 and v.kind is VariantKind.BRANCH for v in parsed.variants
        )
        assert (h4.bits, h4.head_bits, h4.bits_source) == (2.0, 4.0, Source.NAME)
        assert v4.extra["vision_bits"] == 4
        assert plain.head_bits is None

    def test_other_repos_each_holding_one_quant(self) -> None:
        parsed = card("other_repos", repo="someone/Merge-120b")
        assert [v.name for v in parsed.variants] == [
            "someone/Merge-120b-2.4bpw-h6-exl2",
            "someone/Merge-120b-3.0bpw-h6-exl2",
        ]
        first = parsed.variants[0]
        assert (first.kind, first.repo, first.bits, first.head_bits) == (
            VariantKind.REPO,
            "someone/Merge-120b-2.4bpw-h6-exl2",
            2.4,
            6.0,
        )
        assert parsed.base_models == ("example-org/Part-A-70b", "example-org/Part-B-70b")

    def test_branches_of_another_repo_in_a_table(self) -> None:
        parsed = card("foreign_branches", repo="me/Fine-Tune")
        assert [v.name for v in parsed.variants] == ["8_0", "4_25"]
        assert {v.repo for v in parsed.variants} == {"friend/Fine-Tune-exl2"}
        assert parsed.variants[1].vram_bytes == {4096: gib(8.2)}


class TestGptqAwq:
    def test_new_header_unlinked_branches(self) -> None:
        v = variants("gptq_branches", repo="someone/Base-13B-GPTQ")
        main = v["main"]
        assert (main.kind, main.format, main.bits, main.group_size, main.act_order) == (
            VariantKind.BRANCH,
            Format.GPTQ,
            4.0,
            None,
            True,
        )
        assert main.size_bytes == 7_260_000_000
        assert main.size_source is Source.CARD
        assert main.extra == {
            "damp_pct": 0.1,
            "gptq_dataset": "wikitext",
            "seq_len": 4096,
            "exllama_compatible": True,
        }
        assert main.description == "4-bit, no group size."

    def test_row_without_trailing_pipe(self) -> None:
        v = variants("gptq_branches")["gptq-4bit-32g-actorder_True"]
        assert (v.group_size, v.size_bytes) == (32, 8_000_000_000)

    def test_act_order_cell_against_the_name(self) -> None:
        v = variants("gptq_branches")["gptq-8bit--1g-actorder_True"]
        assert v.act_order is False
        assert v.warnings

    def test_old_header(self) -> None:
        v = variants("gptq_branches")["gptq-4bit-128g-actorder_False"]
        assert (v.group_size, v.act_order, v.size_bytes) == (128, False, 7_450_000_000)
        assert v.extra == {"exllama_compatible": True, "made_with": "AutoGPTQ"}

    def test_front_matter_inline_list(self) -> None:
        assert card("gptq_branches").base_models == (
            "example-org/Base-13B",
            "example-org/Other-13B",
        )

    def test_awq_single_row_without_trailing_pipe(self) -> None:
        (v,) = card("awq_branch", repo="someone/Base-7B-AWQ").variants
        assert (v.name, v.format, v.bits, v.group_size) == ("main", Format.AWQ, 4.0, 128)
        assert v.extra["awq_dataset"] == "pile"


class TestGgufTables:
    def test_sizes_are_si_ram_is_gib(self) -> None:
        v = variants("gguf_files")
        q2 = v["chat-7b.Q2_K.gguf"]
        assert (q2.size_bytes, q2.max_ram_bytes) == (2_830_000_000, gib(5.33))
        assert (q2.quant_method, q2.bits, q2.format) == ("Q2_K", 2.0, Format.GGUF)
        assert v["chat-7b.Q4_K_M.gguf"].size_bytes == gib(4.08)  # written GiB
        assert v["chat-7b-mmproj-f16.gguf"].size_bytes == 624_000_000  # written MB

    def test_unlinked_bold_name_tilde_and_question_mark(self) -> None:
        v = variants("gguf_files")["chat-7b.Q8_0.gguf"]
        assert (v.size_bytes, v.max_ram_bytes) == (7_160_000_000, None)

    def test_escaped_pipe_stays_in_its_cell(self) -> None:
        v = variants("gguf_files")["chat-7b.Q5_K_S.gguf"]
        assert v.description == "large | low loss - recommended"

    def test_recommendations(self) -> None:
        rec = {name: v.recommended_by_card for name, v in variants("gguf_files").items()}
        assert rec == {
            "chat-7b.Q2_K.gguf": False,  # "not recommended"
            "chat-7b.Q5_K_S.gguf": True,  # "- recommended"
            "chat-7b.Q3_K_M.gguf": False,  # prose "recommended over Q2_K" names no pick
            "chat-7b.Q4_K_M.gguf": True,  # prose "I would recommend the `Q4_K_M` version"
            "chat-7b.Q8_0.gguf": False,
            "chat-7b-mmproj-f16.gguf": False,
        }

    def test_size_out_of_order_with_bits_is_warned(self) -> None:
        v = variants("gguf_files")
        assert any("out of order" in w for w in v["chat-7b.Q5_K_S.gguf"].warnings)
        assert not v["chat-7b.Q3_K_M.gguf"].warnings

    def test_projector_is_a_companion(self) -> None:
        assert variants("gguf_files")["chat-7b-mmproj-f16.gguf"].role is Role.COMPANION

    def test_parts_to_join_are_noted(self) -> None:
        v = variants("gguf_files")["chat-7b.Q8_0.gguf"]
        assert v.files == ("chat-7b.Q8_0.gguf-split-a", "chat-7b.Q8_0.gguf-split-b")
        assert v.extra["join_required"] is True
        assert any("concatenated" in w for w in v.warnings)

    def test_front_matter_indented_block_list(self) -> None:
        assert card("gguf_files").base_models == ("example-org/Chat-7B",)

    def test_ggml_bin(self) -> None:
        v = variants("ggml_bin")["old-13b.ggmlv3.q4_K_M.bin"]
        assert (v.format, v.quant_method, v.bits) == (Format.GGML, "q4_K_M", 4.0)
        assert not v.recommended_by_card  # "Not recommended for most users."

    def test_memory_header_with_context_and_plain_vram(self) -> None:
        parsed = card("memory_column")
        v = parsed.variants[0]
        assert v.vram_bytes == {32768: gib(16.02)}
        assert v.vram_unspecified_bytes == gib(15)
        assert parsed.variants[1].vram_bytes == {}
        assert parsed.vram_context_tokens == 32768


class TestOtherGgufLayouts:
    def test_no_outer_pipes_and_split_links_in_one_cell(self) -> None:
        v = variants("gguf_layouts", repo="someone/Big-GGUF")
        q2 = v["Q2_K"]
        assert q2.files == (
            "big-Q2_K-split-00001-of-00002.gguf",
            "big-Q2_K-split-00002-of-00002.gguf",
        )
        assert (q2.quant_method, q2.size_bytes, q2.repo) == ("Q2_K", 112_400_000_000, None)

    def test_emoji_marker_next_to_the_name(self) -> None:
        v = variants("gguf_layouts")["Q4_K_M"]
        assert v.recommended_by_card

    def test_generic_link_text_name_from_url(self) -> None:
        v = variants("gguf_layouts")
        assert v["Big.i1-IQ3_XS.gguf"].quant_method == "i1-IQ3_XS"
        assert v["Big.i1-IQ3_XS.gguf"].size_bytes == 5_400_000_000  # unit from "Size/GB"
        assert v["Big.i1-Q4_K_M.gguf"].recommended_by_card

    def test_split_folder(self) -> None:
        v = variants("gguf_layouts")["Big-Q8_0.gguf"]
        assert (v.folder, v.files, v.extra["split"]) == ("Big-Q8_0", (), True)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n",
        "---\n",
        "---\nbase_model: x/y\n",
        "| a |\n|---|\n",
        "| Branch | Bits |\n|---|---|\n| | |\n",
        "| Name | Size |\n|---|---|\n| Alice | 3 GB |\n",
        "\x00\x01\ufffd" * 10,
        "[x](https://huggingface.co/)",
        "[x](https://huggingface.co/a/b/tree/)",
        "[x](http://[::1)",
        "> | Branch | Bits |\n> |---|---|\n> | [6_5](https://huggingface.co/a/b/tree/6_5) | 6.5 |",
        # numbers too big for a float or an int must not escape as OverflowError/ValueError
        "| Name | Size |\n|---|---|\n| x.Q4_K_M.gguf | " + "9" * 400 + " GB |",
        "| Branch | Bits | VRAM (" + "9" * 400 + "k) |\n|---|---|---|\n| 6_5 | 6.5 | 3 GB |",
        "| Branch | Bits | GS |\n|---|---|---|\n| 6_5 | " + "9" * 400 + " | -" + "9" * 400 + " |",
        "[a](https://huggingface.co/a/b/tree/" + "9" * 400 + "bpw)",
        "[a](https://huggingface.co/a/b/resolve/main/x.gguf.part" + "9" * 5000 + "of2)",
    ],
)
def test_garbage_gives_an_empty_card(text: str) -> None:
    parsed = parse_card(text)
    assert not any(w.startswith("internal parser error") for w in parsed.warnings)
    assert all(v.name for v in parsed.variants)


def test_no_variants_is_a_warning_not_an_error() -> None:
    parsed = parse_card("# Just a model\n\nNothing to see.", repo="a/b")
    assert parsed.variants == ()
    assert parsed.warnings
    assert parsed.repo == "a/b"


def test_front_matter_quotes_and_comments() -> None:
    text = "---\nbase_model: 'org/model' # the parent\nbase_model_relation: quantized\n---\n# T\n"
    assert parse_card(text).base_models == ("org/model",)


def test_crlf_line_endings() -> None:
    text = (FIXTURES / "gptq_branches.md").read_text(encoding="utf-8").replace("\n", "\r\n")
    assert len(parse_card(text).variants) == 4


def test_raw_html_table_reads_like_a_pipe_table() -> None:
    card = parse_card((FIXTURES / "html_table_exl3.md").read_text(), repo="someone/Thing-9B-exl3")
    assert [v.name for v in card.variants] == ["2.5bpw", "4.0bpw", "6.0bpw"]
    assert [v.bits for v in card.variants] == [2.5, 4.0, 6.0]
    assert [v.size_bytes for v in card.variants] == [3_100_000_000, 4_900_000_000, 7_000_000_000]
    assert [v.recommended_by_card for v in card.variants] == [False, True, False]
    assert {v.format.value for v in card.variants} == {"exl3"}


def test_columns_read_from_cells_when_header_words_are_not_english() -> None:
    card = parse_card((FIXTURES / "foreign_headers.md").read_text(), repo="o/ding-GGUF")
    assert [v.name for v in card.variants] == [
        "ding-q4_k_m.gguf",
        "ding-q5_k_m.gguf",
        "ding-q8_0.gguf",
    ]
    assert [v.quant_method for v in card.variants] == ["q4_K_M", "q5_K_M", "q8_0"]
    assert [v.size_bytes for v in card.variants] == [4_370_000_000, 5_130_000_000, 7_700_000_000]
    # the peak-memory table names no file and no quant: not variants
    assert all(not v.vram_bytes for v in card.variants)


def test_no_pipe_table_with_cache_columns_and_context_in_prose() -> None:
    card = parse_card((FIXTURES / "nopipe_cache_columns.md").read_text(), repo="o/Thing-20B-exl2")
    assert [(v.name, v.bits, v.head_bits) for v in card.variants] == [
        ("4.0bpw", 4.0, 6.0),
        ("6.0bpw", 6.0, 8.0),
    ]
    q4 = card.variants[0].vram_bytes_by_cache[CacheMode.Q4]
    assert q4 == {8192: round(11.2 * GIB)}
    assert card.variants[1].vram_bytes_by_cache[CacheMode.FP16] == {8192: round(17.3 * GIB)}


def test_the_json_of_a_parse_does_not_depend_on_the_hash_seed() -> None:
    """Scripts diff `list --json`: the same card must give the same bytes in every process."""
    code = (
        "import sys; from quantpick.card.parser import parse_card; "
        "print(parse_card(open(sys.argv[1], encoding='utf-8').read()).model_dump_json())"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code, str(FIXTURES / "exl2_cache_columns.md")],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(8)
    }
    assert len(outputs) == 1


_MARKED = """\
| File | Quant | Size | {header} |
|---|---|---|---|
| [m-Q4_K_M.gguf](https://huggingface.co/o/m-GGUF/blob/main/m-Q4_K_M.gguf) | Q4_K_M | 4.9 GB | {a} |
| [m-Q5_K_M.gguf](https://huggingface.co/o/m-GGUF/blob/main/m-Q5_K_M.gguf) | Q5_K_M | 5.7 GB | {b} |
| [m-Q8_0.gguf](https://huggingface.co/o/m-GGUF/blob/main/m-Q8_0.gguf) | Q8_0 | 8.5 GB | {c} |
"""


@pytest.mark.parametrize(
    ("header", "cells", "want"),
    [
        ("Recommended", ("✅", "", ""), {"m-Q4_K_M.gguf"}),
        ("Rec.", ("yes", "no", ""), {"m-Q4_K_M.gguf"}),
        ("⭐", ("", "⭐", ""), {"m-Q5_K_M.gguf"}),
        ("", ("", "", "★"), {"m-Q8_0.gguf"}),
        # Japanese tables grade with ◎ (best) and ○ (good): both are recommendations
        ("おすすめ", ("◎", "○", ""), {"m-Q4_K_M.gguf", "m-Q5_K_M.gguf"}),
        ("推荐", ("✅", "", "❌"), {"m-Q4_K_M.gguf"}),
        # a mark on every row singles none out
        ("Recommended", ("✅", "✅", "✅"), set()),
        # a column of checks under a header that names something else is not a recommendation
        ("imatrix", ("✅", "", ""), set()),
    ],
)
def test_a_column_of_marks_says_which_rows_the_card_recommends(
    header: str, cells: tuple[str, str, str], want: set[str]
) -> None:
    a, b, c = cells
    card = parse_card(_MARKED.format(header=header, a=a, b=b, c=c), repo="o/m-GGUF")
    assert [v.name for v in card.variants] == ["m-Q4_K_M.gguf", "m-Q5_K_M.gguf", "m-Q8_0.gguf"]
    assert {v.name for v in card.variants if v.recommended_by_card} == want
    # the marks are read, not kept as an unknown column's text
    if want:
        assert all(not v.extra for v in card.variants)
