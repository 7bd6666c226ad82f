"""shape: config.json of every common family -> ModelShape, and parameter counts against the
published totals (Mixtral 46.7B, Mistral 7.24B, Llama-3-8B 8.03B: the measured counts in
../shared/gpu match to the parameter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantpick.errors import UsageError
from quantpick.estimate.shape import (
    FULL_ATTENTION,
    SLIDING_ATTENTION,
    parameter_count,
    shape_from_config,
)
from quantpick.records import ModelShape

CONFIGS = Path(__file__).parent / "fixtures" / "configs"


def load(name: str) -> ModelShape:
    return shape_from_config(json.loads((CONFIGS / f"{name}.json").read_text()))


def test_mixtral_shape_and_all_experts_counted() -> None:
    shape = load("mixtral-8x7b")
    assert (shape.num_layers, shape.num_kv_heads, shape.head_dim) == (32, 8, 128)
    assert (shape.num_experts, shape.num_experts_per_token) == (8, 2)
    assert shape.sliding_window_tokens is None
    assert shape.layer_types == ()
    # mistralai/Mixtral-8x7B-v0.1 safetensors metadata: 46,702,792,704 parameters
    assert parameter_count(shape) == 46_702_792_704


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # the "params" field of ../shared/gpu/transformers_fp16_h100.json (counted by torch)
        ("mistral-7b-v0.1", 7_241_732_096),
        ("llama-3-8b", 8_030_261_248),
        ("llama-2-13b", 13_015_864_320),
        # published: Llama-2-70B 68.98B, Falcon-7B 6.92B (tied head), Gemma-2-9B 9.24B (tied),
        # Qwen3-30B-A3B 30.5B (128 experts), Phi-3-mini 3.82B
        ("llama-2-70b", 68_976_648_192),
    ],
)
def test_parameter_counts_exact(name: str, expected: int) -> None:
    assert parameter_count(load(name)) == expected


@pytest.mark.parametrize(
    ("name", "billions"),
    [("falcon-7b", 6.92), ("gemma-2-9b", 9.24), ("qwen3-30b-a3b", 30.5), ("phi-3-mini-4k", 3.82)],
)
def test_parameter_counts_published(name: str, billions: float) -> None:
    assert parameter_count(load(name)) / 1e9 == pytest.approx(billions, rel=0.01)


def test_moe_counts_every_expert_not_the_active_ones() -> None:
    shape = load("mixtral-8x7b")
    dense = shape.model_copy(update={"num_experts": 1})
    # seven more experts' MLPs (3 matrices each) and the router in every layer
    extra = shape.num_layers * (7 * 3 * 4096 * 14336 + 4096 * 8)
    assert parameter_count(shape) - parameter_count(dense) == extra


def test_explicit_parameter_count_wins() -> None:
    shape = load("llama-3-8b").model_copy(update={"parameter_count": 123})
    assert parameter_count(shape) == 123


def test_a_window_without_a_layer_pattern_caches_every_token() -> None:
    # Mistral-7B-v0.1 and Phi-3 declare sliding_window and no layer_types: transformers masks
    # the window but caches everything (measured, benchmarks/gpu/transformers_fp16_heldout.json)
    for name in ("mistral-7b-v0.1", "phi-3-mini-4k"):
        assert load(name).layer_types == ()


def test_gemma2_alternates_sliding_and_full_layers() -> None:
    shape = load("gemma-2-9b")
    assert shape.head_dim == 256  # stated, not hidden / heads (224)
    assert shape.tie_word_embeddings
    assert shape.layer_types[:4] == (SLIDING_ATTENTION, FULL_ATTENTION) * 2
    assert shape.layer_types.count(SLIDING_ATTENTION) == 21


def test_gemma3_vl_reads_text_config_and_five_local_one_global() -> None:
    shape = load("gemma-3-12b")
    assert (shape.num_layers, shape.hidden_size, shape.vocab_size) == (48, 3840, 262208)
    assert shape.sliding_window_tokens == 1024
    assert shape.layer_types[:6] == (SLIDING_ATTENTION,) * 5 + (FULL_ATTENTION,)
    assert shape.layer_types.count(FULL_ATTENTION) == 8


def test_qwen_sliding_window_ignored_unless_enabled() -> None:
    assert load("qwen2-7b").layer_types == ()
    assert load("qwen2-7b").sliding_window_tokens is None
    config = json.loads((CONFIGS / "qwen2-7b.json").read_text())
    config.update(use_sliding_window=True, max_window_layers=20, sliding_window=4096)
    shape = shape_from_config(config)
    assert shape.layer_types.count(SLIDING_ATTENTION) == 8
    assert shape.layer_types[19:21] == (FULL_ATTENTION, SLIDING_ATTENTION)


def test_layer_types_in_config_win() -> None:
    config = json.loads((CONFIGS / "qwen3-8b.json").read_text())
    config.update(
        sliding_window=4096,
        layer_types=["sliding_attention", "full_attention"] * 18,
    )
    shape = shape_from_config(config)
    assert shape.layer_types.count(SLIDING_ATTENTION) == 18


def test_llava_text_config_falls_back_to_llama_defaults() -> None:
    shape = load("llava-1.5-7b")
    assert shape.architecture == "llama"
    assert (shape.num_layers, shape.hidden_size, shape.intermediate_size) == (32, 4096, 11008)
    assert shape.num_kv_heads == 32
    assert shape.vocab_size == 32064


def test_falcon_aliases_multi_query_and_implicit_mlp() -> None:
    shape = load("falcon-7b")
    assert shape.num_kv_heads == 1
    assert shape.head_dim == 64
    assert shape.intermediate_size == 4 * 4544


def test_old_falcon_keys() -> None:
    shape = shape_from_config(
        {"model_type": "RefinedWeb", "n_layer": 60, "n_head": 128, "n_head_kv": 8,
         "hidden_size": 8192, "vocab_size": 65024}
    )  # fmt: skip
    assert (shape.num_layers, shape.num_attention_heads, shape.num_kv_heads) == (60, 128, 8)


def test_head_dim_fallback_and_null_head_dim() -> None:
    config = json.loads((CONFIGS / "llama-3-8b.json").read_text())
    config["head_dim"] = None
    assert shape_from_config(config).head_dim == 128


def test_missing_key_is_a_usage_error_naming_it() -> None:
    with pytest.raises(UsageError, match="num_hidden_layers"):
        shape_from_config({"model_type": "bert", "hidden_size": 768})
