"""recommend: the issue's done-when cases, ranking, exclusions, multi-GPU budgets, max context."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantpick.estimate.recommend import (
    DEFAULT_RESERVE_BYTES,
    effective_bits,
    quality_key,
    recommend,
)
from quantpick.estimate.shape import shape_from_config
from quantpick.estimate.vram import TORCH_CUDA_CONTEXT_BYTES
from quantpick.records import (
    GIB,
    Budget,
    CacheMode,
    Format,
    HubStatus,
    ModelShape,
    Role,
    Runtime,
    Source,
    Variant,
    VariantKind,
)
from quantpick.units import parse_context, parse_vram
from variants import gptq

CONFIGS = Path(__file__).parent / "fixtures" / "configs"
CTX = (4096, 16384, 32768)


@pytest.fixture
def mixtral() -> ModelShape:
    return shape_from_config(json.loads((CONFIGS / "mixtral-8x7b.json").read_text()))


def exl2(name: str, bits: float, head: float, gib: tuple[float, ...], rec: bool = False) -> Variant:
    return Variant(
        name=name,
        kind=VariantKind.BRANCH,
        format=Format.EXL2,
        bits=bits,
        bits_source=Source.CARD,
        head_bits=head,
        vram_bytes={c: round(g * GIB) for c, g in zip(CTX, gib, strict=True)},
        recommended_by_card=rec,
    )


# bartowski/Cerebrum-1.0-8x7b-exl2: VRAM (4k / 16k / 32k) in the card's "GB" (GiB)
CEREBRUM = (
    exl2("6_5", 6.5, 8.0, (38.9, 40.4, 42.4), rec=True),
    exl2("4_25", 4.25, 6.0, (25.9, 27.4, 29.4)),
    exl2("3_75", 3.5, 6.0, (23.0, 24.5, 26.5)),  # the card's Bits cell says 3.5
    exl2("3_5", 3.5, 6.0, (21.5, 23.0, 25.0)),
    exl2("3_0", 3.0, 6.0, (18.9, 20.4, 22.4)),
)


# TheBloke/Mixtral-8x7B-v0.1-GPTQ: branch sizes in SI GB
MIXTRAL_GPTQ = (
    gptq("main", 4, None, 23.81),
    gptq("gptq-4bit-128g-actorder_True", 4, 128, 24.7),
    gptq("gptq-4bit-32g-actorder_True", 4, 32, 27.42),
    gptq("gptq-3bit--1g-actorder_True", 3, None, 18.01),
    gptq("gptq-3bit-128g-actorder_True", 3, 128, 18.85),
    gptq("gptq-8bit--1g-actorder_True", 8, None, 47.04),
    gptq("gptq-8bit-128g-actorder_True", 8, 128, 48.1),
)


def budget(vram: str, ctx: str, reserve: int = DEFAULT_RESERVE_BYTES, **extra: object) -> Budget:
    sizes = parse_vram(vram)
    assert sizes != "auto"
    return Budget.model_validate(
        {"gpu_vram_bytes": sizes, "reserve_bytes": reserve, "context_tokens": parse_context(ctx),
         **extra}
    )  # fmt: skip


# --- done-when -------------------------------------------------------------------------------


def test_cerebrum_24gb_16k_no_reserve_picks_3_5(mixtral: ModelShape) -> None:
    result = recommend(CEREBRUM, mixtral, budget("24", "16k", reserve=0))
    assert result.pick is not None
    assert result.pick.variant.name == "3_5"
    assert result.pick.margin_bytes == pytest.approx(1.0 * GIB, abs=1)
    # the next better variant missed by half a GiB: 24.5 GB on the card never fits a 24 GB GPU
    assert result.runner_up is not None
    assert result.runner_up.variant.name == "3_75"
    assert result.runner_up.margin_bytes == pytest.approx(-0.5 * GIB, abs=1)
    assert any("3_75" in r and "0.5 GiB over" in r for r in result.reasons)


def test_cerebrum_picks_3_5_without_a_shape_too() -> None:
    result = recommend(CEREBRUM, None, budget("24GB", "16K", reserve=0))
    assert result.pick is not None
    assert result.pick.variant.name == "3_5"


def test_cerebrum_48gb_32k_picks_6_5(mixtral: ModelShape) -> None:
    result = recommend(CEREBRUM, mixtral, budget("48", "32k"))
    assert result.pick is not None
    assert result.pick.variant.name == "6_5"
    assert result.runner_up is None
    assert result.pick.margin_bytes == pytest.approx((47.5 - 42.4) * GIB, abs=1)


def test_cerebrum_16gb_4k_nothing_fits(mixtral: ModelShape) -> None:
    result = recommend(CEREBRUM, mixtral, budget("16", "4k"))
    assert result.pick is None
    assert not any(c.fits for c in result.candidates)
    assert result.runner_up is not None
    assert result.runner_up.variant.name == "3_0"  # the closest to fitting
    assert result.reasons[0].startswith("nothing fits")


def test_mixtral_gptq_24gb_16k_picks_3bit_and_says_why_main_does_not_fit(
    mixtral: ModelShape,
) -> None:
    result = recommend(MIXTRAL_GPTQ, mixtral, budget("24", "16k"))
    assert result.pick is not None
    assert result.pick.variant.bits == 3
    main = next(c for c in result.candidates if c.variant.name == "main")
    assert not main.fits
    assert main.margin_bytes is not None
    assert main.margin_bytes < 0
    why = [r for r in result.reasons if r.startswith("not main")]
    assert len(why) == 1
    assert "over the 23.5 GiB usable" in why[0]
    assert "16k" in why[0]
    # main is the next better variant: the runner-up
    assert result.runner_up is not None
    assert result.runner_up.variant.name == "main"


# --- ranking ---------------------------------------------------------------------------------


def test_ranking_bits_then_group_then_act_order_then_card() -> None:
    def key(**fields: object) -> tuple[float, float, int, int, int]:
        base: dict[str, object] = {"name": "x", "kind": VariantKind.BRANCH, "format": Format.GPTQ}
        return quality_key(Variant.model_validate({**base, **fields}))

    assert key(bits=8) > key(bits=4, group_size=32)
    assert key(bits=4, group_size=32) > key(bits=4, group_size=128) > key(bits=4)
    assert key(bits=4, group_size=128, act_order=True) > key(bits=4, group_size=128)
    assert key(bits=4, recommended_by_card=True) > key(bits=4)
    assert key(bits=4, head_bits=8) > key(bits=4, head_bits=6, recommended_by_card=True)


def test_effective_bits_sources(mixtral: ModelShape) -> None:
    def variant(**fields: object) -> Variant:
        return Variant.model_validate({"kind": VariantKind.FILE, "format": Format.GGUF, **fields})

    assert effective_bits(variant(name="m.Q5_K_M.gguf", quant_method="Q5_K_M", bits=5)) == 5.69
    # the name alone says the type
    assert effective_bits(variant(name="m.Q5_K_S.gguf")) == 5.54
    named = Variant(name="4.0bpw_h6", kind=VariantKind.BRANCH, format=Format.EXL2)
    assert effective_bits(named) == 4.0
    sized = variant(name="weird", size_bytes=46_702_792_704)
    assert effective_bits(sized, mixtral) == pytest.approx(8.0)
    assert effective_bits(sized) is None


def test_gguf_types_rank_above_their_integer_bits() -> None:
    q4km = Variant(name="a.Q4_K_M.gguf", kind=VariantKind.FILE, format=Format.GGUF, bits=4)
    q4ks = Variant(name="a.Q4_K_S.gguf", kind=VariantKind.FILE, format=Format.GGUF, bits=4)
    assert quality_key(q4km) > quality_key(q4ks)


# --- exclusions ------------------------------------------------------------------------------


def test_companions_repos_and_missing_branches_are_never_picked(mixtral: ModelShape) -> None:
    big = 1000.0
    odd = (
        exl2("mmproj", 16.0, 16.0, (1.0, 1.0, 1.0)).model_copy(update={"role": Role.COMPANION}),
        exl2("other/repo-8bpw", 8.0, 8.0, (big, big, big)).model_copy(
            update={"kind": VariantKind.REPO, "vram_bytes": {4096: GIB}}
        ),
        exl2("8_0", 8.0, 8.0, (1.0, 1.0, 1.0)).model_copy(update={"hub_status": HubStatus.MISSING}),
    )
    result = recommend((*odd, *CEREBRUM), mixtral, budget("48", "4k"))
    assert result.pick is not None
    assert result.pick.variant.name == "6_5"
    reasons = {c.variant.name: c.reason for c in result.candidates if c.estimate is None}
    assert "companion" in reasons["mmproj"]
    assert "separate repository" in reasons["other/repo-8bpw"]
    assert "missing on the Hub" in reasons["8_0"]


def test_a_variant_that_cannot_be_sized_is_skipped_not_fatal() -> None:
    unsized = Variant(name="gptq-8bit", kind=VariantKind.BRANCH, format=Format.GPTQ, bits=8)
    result = recommend((unsized, *CEREBRUM), None, budget("24", "16k", reserve=0))
    assert result.pick is not None
    assert result.pick.variant.name == "3_5"
    skipped = next(c for c in result.candidates if c.variant.name == "gptq-8bit")
    assert not skipped.fits
    assert "no estimate" in skipped.reason
    assert any(r.startswith("skipped gptq-8bit") for r in result.reasons)


# --- budgets ---------------------------------------------------------------------------------


def test_two_gpus_pool_their_vram(mixtral: ModelShape) -> None:
    result = recommend(CEREBRUM, mixtral, budget("24,24", "32k"))
    assert result.pick is not None
    assert result.pick.variant.name == "6_5"
    expected = 48 * GIB - 2 * DEFAULT_RESERVE_BYTES - TORCH_CUDA_CONTEXT_BYTES - round(42.4 * GIB)
    assert result.pick.margin_bytes == pytest.approx(expected, abs=1)


def test_each_extra_gpu_pays_its_cuda_context(mixtral: ModelShape) -> None:
    one = recommend(CEREBRUM, mixtral, budget("43", "32k", reserve=0))
    two = recommend(CEREBRUM, mixtral, budget("21.5,21.5", "32k", reserve=0))
    assert one.pick is not None
    assert one.pick.variant.name == "6_5"
    assert two.pick is not None
    assert two.pick.variant.name == "4_25"


def test_reserve_is_per_gpu(mixtral: ModelShape) -> None:
    tight = recommend(CEREBRUM, mixtral, budget("24", "16k"))  # 23.5 usable
    assert tight.pick is not None
    assert tight.pick.variant.name == "3_5"
    none = recommend(CEREBRUM, mixtral, budget("23.5", "16k", reserve=0))
    assert none.pick is not None
    assert none.pick.margin_bytes == tight.pick.margin_bytes


def test_cache_mode_in_the_budget_changes_the_pick(mixtral: ModelShape) -> None:
    fp16 = recommend(MIXTRAL_GPTQ, mixtral, budget("32", "32k"))
    q4 = recommend(MIXTRAL_GPTQ, mixtral, budget("32", "32k", cache_mode=CacheMode.Q4))
    assert fp16.pick is not None
    assert q4.pick is not None
    assert (fp16.pick.variant.bits, q4.pick.variant.bits) == (3, 4)


# --- the inverse question ----------------------------------------------------------------------


def test_every_candidate_reports_its_max_context(mixtral: ModelShape) -> None:
    result = recommend(CEREBRUM, mixtral, budget("24", "16k", reserve=0))
    max_ctx = {c.variant.name: c.max_context_tokens for c in result.candidates}
    assert max_ctx == {"6_5": 0, "4_25": 0, "3_75": 12288, "3_5": 24576, "3_0": 32768}


def test_candidates_are_in_quality_order(mixtral: ModelShape) -> None:
    result = recommend(MIXTRAL_GPTQ, mixtral, budget("80", "4k"))
    names = [c.variant.name for c in result.candidates]
    assert names[:3] == [
        "gptq-8bit-128g-actorder_True",
        "gptq-8bit--1g-actorder_True",
        "gptq-4bit-32g-actorder_True",
    ]
    assert names[-1] == "gptq-3bit--1g-actorder_True"
    assert result.pick is not None
    assert result.pick.variant.name == names[0]


def test_exl3_defaults_to_exllamav3_and_exllamav2_never_loads_it() -> None:
    exl3 = Variant(
        name="4.0bpw", kind=VariantKind.BRANCH, format=Format.EXL3, bits=4.0,
        size_bytes=5 * GIB, size_source=Source.HUB,
    )  # fmt: skip
    llama = shape_from_config(json.loads((CONFIGS / "llama-3-8b.json").read_text()))
    auto = recommend(
        [exl3], llama, Budget(gpu_vram_bytes=(24 * GIB,), reserve_bytes=0, context_tokens=4096)
    )
    assert auto.pick is not None
    assert auto.pick.estimate is not None
    assert auto.pick.estimate.runtime is Runtime.EXLLAMAV3
    forced = recommend(
        [exl3], llama,
        Budget(gpu_vram_bytes=(24 * GIB,), reserve_bytes=0, context_tokens=4096,
               runtime=Runtime.EXLLAMAV2),
    )  # fmt: skip
    assert forced.pick is None
    assert "exllamav2 cannot load exl3 weights" in forced.candidates[0].reason
