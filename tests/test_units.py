"""units: every accepted and rejected form of --vram, --ctx, --reserve, --cache and --runtime."""

from __future__ import annotations

import pytest

from quantpick.errors import UsageError
from quantpick.records import GIB, CacheMode, Runtime
from quantpick.units import (
    CONTEXT_FORMS,
    VRAM_FORMS,
    format_context,
    format_gib,
    parse_amount_bytes,
    parse_cache_mode,
    parse_context,
    parse_runtime,
    parse_vram,
)

MIB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24", (24 * GIB,)),
        ("24GB", (24 * GIB,)),
        ("24gb", (24 * GIB,)),
        ("24 GB", (24 * GIB,)),
        ("24GiB", (24 * GIB,)),
        ("24576MiB", (24 * GIB,)),
        ("24576MB", (24 * GIB,)),
        ("24,24", (24 * GIB, 24 * GIB)),
        ("24GB, 12GB", (24 * GIB, 12 * GIB)),
        ("7.5", (round(7.5 * GIB),)),
    ],
)
def test_vram_forms(text: str, expected: tuple[int, ...]) -> None:
    assert parse_vram(text) == expected


@pytest.mark.parametrize("text", ["auto", "AUTO", " auto "])
def test_vram_auto(text: str) -> None:
    assert parse_vram(text) == "auto"


@pytest.mark.parametrize("text", ["", "0", "24TB", "-24", "twenty", "24,", ",24", "24;24", "0,24"])
def test_vram_rejected_lists_accepted_forms(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_vram(text)
    assert VRAM_FORMS in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16k", 16384),
        ("16K", 16384),
        ("16384", 16384),
        ("32k", 32768),
        ("4k", 4096),
        ("1M", 1 << 20),
        ("1.5k", 1536),
        (" 8k ", 8192),
    ],
)
def test_context_forms(text: str, expected: int) -> None:
    assert parse_context(text) == expected


@pytest.mark.parametrize("text", ["", "0", "0k", "-4k", "16kb", "16 tokens", "1.0001k", "k"])
def test_context_rejected_lists_accepted_forms(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_context(text)
    assert CONTEXT_FORMS in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("0.5", GIB // 2), ("0.5GiB", GIB // 2), ("512MiB", 512 * MIB), ("1GB", GIB)],
)
def test_amounts(text: str, expected: int) -> None:
    assert parse_amount_bytes(text, what="reserve") == expected


def test_amount_rejected_names_what() -> None:
    with pytest.raises(UsageError, match="invalid reserve"):
        parse_amount_bytes("half", what="reserve")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fp16", CacheMode.FP16),
        ("f16", CacheMode.FP16),
        ("FP8", CacheMode.FP8),
        ("q8", CacheMode.Q8),
        ("q8_0", CacheMode.Q8),
        ("q6", CacheMode.Q6),
        ("q4", CacheMode.Q4),
        ("q4_0", CacheMode.Q4),
    ],
)
def test_cache_modes(text: str, expected: CacheMode) -> None:
    assert parse_cache_mode(text) is expected


def test_cache_mode_rejected() -> None:
    with pytest.raises(UsageError, match=r"accepted forms: .*q4_0"):
        parse_cache_mode("q3")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("exllamav2", Runtime.EXLLAMAV2),
        ("transformers", Runtime.TRANSFORMERS),
        ("llama.cpp", Runtime.LLAMACPP),
        ("llamacpp", Runtime.LLAMACPP),
        ("vLLM", Runtime.VLLM),
        ("exllamav3", Runtime.EXLLAMAV3),
        # a serving stack: the engine is chosen per format (estimate.vram.serving_runtime)
        ("tabbyapi", Runtime.TABBYAPI),
        ("TabbyAPI", Runtime.TABBYAPI),
    ],
)
def test_runtimes(text: str, expected: Runtime) -> None:
    assert parse_runtime(text) is expected


def test_runtime_rejected() -> None:
    with pytest.raises(UsageError, match="accepted forms"):
        parse_runtime("ollama")


def test_formatting() -> None:
    assert format_gib(round(23.04 * GIB)) == "23.0 GiB"
    assert format_context(16384) == "16k"
    assert format_context(12345) == "12345"
    assert format_context(512) == "512"


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (3000, "3.00 kB"), (624_000_000, "624.00 MB"),
     (4_920_000_000, "4.92 GB"), (2 * 10**12, "2.00 TB")],
)  # fmt: skip
def test_si_sizes_choose_a_readable_unit(size: int, shown: str) -> None:
    from quantpick.units import format_si_size

    assert format_si_size(size) == shown
