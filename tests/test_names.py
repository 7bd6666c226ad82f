"""What branch, file and repo names say (quantpick.card.names)."""

from __future__ import annotations

import pytest

from quantpick.card.names import NameInfo, describe, is_variant_file, variants_from_names
from quantpick.records import Format, Role, Source, VariantKind


@pytest.mark.parametrize(
    ("name", "fmt", "bits", "head_bits"),
    [
        ("6_5", Format.EXL2, 6.5, None),
        ("4_25", Format.EXL2, 4.25, None),
        ("3_0", Format.EXL2, 3.0, None),
        ("4.0bpw", Format.EXL2, 4.0, None),
        ("4.0bpw_h8", Format.EXL2, 4.0, 8.0),
        ("SC_2.00bpw_H3_V3", Format.EXL2, 2.0, 3.0),
        ("someone/Merge-120b-2.4bpw-h6-exl2", Format.EXL2, 2.4, 6.0),
        ("someone/Model-v2.0-3.5bpw-exl3", Format.EXL3, 3.5, None),
        # an underscore for the decimal point beside "bpw" (Zoyd's repo names)
        ("Zoyd/Model-3_75bpw_exl2", Format.EXL2, 3.75, None),
        ("Zoyd/Model-2_2bpw_exl2", Format.EXL2, 2.2, None),
        ("Model-4_0bpw-h6-exl2", Format.EXL2, 4.0, 6.0),
        ("Model_8bpw_exl2", Format.EXL2, 8.0, None),
    ],
)
def test_exllama_names(name: str, fmt: Format, bits: float, head_bits: float | None) -> None:
    info = describe(name)
    assert (info.format, info.bits, info.head_bits) == (fmt, bits, head_bits)


def test_bpw_without_a_format_marker_is_only_a_guess() -> None:
    assert describe("4.0bpw").format_guessed
    assert not describe("x-4.0bpw-exl2").format_guessed


def test_vision_bits_and_version_numbers_do_not_mix() -> None:
    assert describe("SC_4.00bpw_H5_V6").vision_bits == 6
    assert describe("someone/miquliz-120b-v2.0-2.4bpw-h6-exl2").vision_bits is None


@pytest.mark.parametrize(
    ("name", "bits", "group", "act"),
    [
        ("gptq-4bit-32g-actorder_True", 4.0, 32, True),
        ("gptq-4bit-128g-actorder_False", 4.0, 128, False),
        ("gptq-3bit--1g-actorder_True", 3.0, None, True),
        ("gptq-8bit-64g-actorder_True", 8.0, 64, True),
    ],
)
def test_gptq_branches(name: str, bits: float, group: int | None, act: bool) -> None:
    info = describe(name)
    assert info.format is Format.GPTQ
    assert (info.bits, info.group_size, info.act_order) == (bits, group, act)


def test_main_says_nothing() -> None:
    assert describe("main") == NameInfo(name="main", split_group="main")
    assert not describe("main").says_anything


@pytest.mark.parametrize(
    ("name", "fmt", "quant", "imatrix"),
    [
        ("x.Q4_K_M.gguf", Format.GGUF, "Q4_K_M", False),
        ("Model-7B-IQ3_XXS.gguf", Format.GGUF, "IQ3_XXS", False),
        ("x.i1-IQ3_XS.gguf", Format.GGUF, "IQ3_XS", True),
        ("x.ggmlv3.q4_K_M.bin", Format.GGML, "q4_K_M", False),
        ("Meta-Llama-Q6_K_L.gguf", Format.GGUF, "Q6_K_L", False),
        ("Meta-Llama-Q3_K_XL.gguf", Format.GGUF, "Q3_K_XL", False),
        ("llava-mmproj-model-f16.gguf", Format.GGUF, "f16", False),
        ("Q4_K_M", Format.GGUF, "Q4_K_M", False),
        # ik_llama.cpp's types and repacks are types of their own
        ("Qwen3-235B-A22B-IQ4_KS.gguf", Format.GGUF, "IQ4_KS", False),
        ("x-IQ2_KL-00001-of-00002.gguf", Format.GGUF, "IQ2_KL", False),
        ("x-IQ4_K_R4.gguf", Format.GGUF, "IQ4_K_R4", False),
        ("x-IQ1_S_R4.gguf", Format.GGUF, "IQ1_S_R4", False),
    ],
)
def test_gguf_and_ggml_files(name: str, fmt: Format, quant: str, imatrix: bool) -> None:
    info = describe(name)
    assert (info.format, info.quant_method, info.imatrix) == (fmt, quant, imatrix)
    # a GGUF type's nominal digit is not its bits per weight (Q4_K_M is ~4.8)
    assert info.bits is None


def test_imatrix_prefix_is_kept_for_display() -> None:
    assert describe("x.i1-Q4_K_M.gguf").display_quant == "i1-Q4_K_M"


@pytest.mark.parametrize(
    ("name", "part", "total", "group"),
    [
        ("grok-1-Q2_K-split-00001-of-00009.gguf", 1, 9, "grok-1-Q2_K.gguf"),
        ("Model-Q8_0-00002-of-00003.gguf", 2, 3, "Model-Q8_0.gguf"),
        ("llama.Q6_K.gguf-split-b", 2, None, "llama.Q6_K.gguf"),
        ("llama.Q8_0.gguf.part1of2", 1, 2, "llama.Q8_0.gguf"),
        ("plain.Q4_0.gguf", None, None, "plain.Q4_0.gguf"),
    ],
)
def test_split_parts(name: str, part: int | None, total: int | None, group: str) -> None:
    info = describe(name)
    assert (info.split_part, info.split_total, info.split_group) == (part, total, group)


def test_companion_files() -> None:
    assert describe("llava-v1.5-7b-mmproj-model-f16.gguf").companion
    assert not describe("llava-v1.5-7b-Q4_K_M.gguf").companion


@pytest.mark.parametrize(
    "name", ["", "   ", "Mixtral-8x7B", "Qwen3.8-27B", "README.md", "🤖", "a" * 5000, "/"]
)
def test_unknown_names_say_nothing_and_never_raise(name: str) -> None:
    assert not describe(name).says_anything


@pytest.mark.parametrize(
    ("name", "is_variant"),
    [
        ("x.Q4_K_M.gguf", True),
        ("folder/x-Q8_0-00001-of-00002.gguf", True),
        ("x.ggmlv3.q4_0.bin", True),
        ("x.Q6_K.gguf-split-a", True),
        ("pytorch_model.bin", False),
        ("README.md", False),
        ("measurement.json", False),
        ("config.json", False),
        ("tokenizer.model", False),
        ("imatrix.dat", False),
        ("model.safetensors", False),
    ],
)
def test_variant_files(name: str, is_variant: bool) -> None:
    assert is_variant_file(name) is is_variant


def test_file_variants_group_split_sets_and_skip_metadata() -> None:
    variants = variants_from_names(
        [
            "README.md",
            "config.json",
            "m-Q8_0/m-Q8_0-00002-of-00002.gguf",
            "m-Q8_0/m-Q8_0-00001-of-00002.gguf",
            "m.Q4_K_M.gguf",
            "m-mmproj-f16.gguf",
            "m.Q6_K.gguf-split-a",
            "m.Q6_K.gguf-split-b",
        ],
        VariantKind.FILE,
    )
    by_name = {v.name: v for v in variants}
    assert list(by_name) == ["m-Q8_0.gguf", "m.Q4_K_M.gguf", "m-mmproj-f16.gguf", "m.Q6_K.gguf"]
    split = by_name["m-Q8_0.gguf"]
    assert split.files == ("m-Q8_0/m-Q8_0-00001-of-00002.gguf", "m-Q8_0/m-Q8_0-00002-of-00002.gguf")
    assert split.folder == "m-Q8_0"
    assert split.quant_method == "Q8_0"
    assert by_name["m.Q4_K_M.gguf"].files == ()
    assert by_name["m-mmproj-f16.gguf"].role is Role.COMPANION
    assert by_name["m.Q6_K.gguf"].files == ("m.Q6_K.gguf-split-a", "m.Q6_K.gguf-split-b")
    assert by_name["m.Q6_K.gguf"].warnings
    assert all(v.kind is VariantKind.FILE and v.format is Format.GGUF for v in variants)


def test_branch_variants_from_names() -> None:
    variants = variants_from_names(
        ["main", "6_5", "4.0bpw_h8", "gptq-4bit-32g-actorder_True"], VariantKind.BRANCH
    )
    assert [v.name for v in variants] == ["6_5", "4.0bpw_h8", "gptq-4bit-32g-actorder_True"]
    assert all(v.bits_source is Source.NAME for v in variants)
    assert variants[1].head_bits == 8.0
    assert (variants[2].format, variants[2].group_size, variants[2].act_order) == (
        Format.GPTQ,
        32,
        True,
    )


def test_a_lone_main_branch_is_the_variant() -> None:
    (only,) = variants_from_names(["main"], VariantKind.BRANCH)
    assert (only.name, only.format, only.bits) == ("main", Format.OTHER, None)


def test_repo_variants_from_names() -> None:
    (variant,) = variants_from_names(["someone/M-120b-2.65bpw-h6-exl2"], VariantKind.REPO)
    assert (variant.kind, variant.repo, variant.bits, variant.head_bits) == (
        VariantKind.REPO,
        "someone/M-120b-2.65bpw-h6-exl2",
        2.65,
        6.0,
    )
