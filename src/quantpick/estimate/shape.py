"""config.json -> ModelShape, and the parameter count a shape implies. Pure: the caller reads files.

Config keys differ by family (``n_layer`` in old Falcon, ``num_local_experts`` in Mixtral,
``num_experts`` in Qwen-MoE, ``text_config`` in vision-language models); this module knows the
aliases so nothing else has to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from quantpick.errors import UsageError
from quantpick.records import ModelShape

FULL_ATTENTION: Final = "full_attention"
SLIDING_ATTENTION: Final = "sliding_attention"

# transformers' LlamaConfig / MistralConfig defaults: sparse text_configs (llava-1.5) rely on them
_FAMILY_DEFAULTS: Final[Mapping[str, Mapping[str, object]]] = {
    "llama": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "vocab_size": 32000,
    },
    "mistral": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
    },
}
# families whose MLP is up -> act -> down (two matrices) rather than gated (three)
_UNGATED_MLP: Final = frozenset({"falcon", "phi", "gpt2", "gpt_neox", "gpt_bigcode", "starcoder2"})
# families whose intermediate_size counts both gated matrices: Qwen(1)'s modeling_qwen.py builds
# w1, w2 and c_proj at intermediate_size // 2
_HALVED_INTERMEDIATE: Final = frozenset({"qwen"})
# families that tie the output head to the embedding unless the config says otherwise
_TIED_BY_DEFAULT: Final = frozenset({"gemma", "gemma2", "gemma3", "gemma3_text", "falcon"})

_LAYERS: Final = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_HIDDEN: Final = ("hidden_size", "d_model", "n_embd", "dim")
_HEADS: Final = ("num_attention_heads", "n_head", "n_heads", "num_heads")
_KV_HEADS: Final = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "n_kv_heads")
_INTERMEDIATE: Final = ("moe_intermediate_size", "intermediate_size", "ffn_hidden_size", "n_inner")
_EXPERTS: Final = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
_EXPERTS_PER_TOKEN: Final = ("num_experts_per_tok", "num_experts_per_token", "moe_top_k")
_MAX_CONTEXT: Final = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


def _merged(config: Mapping[str, object]) -> dict[str, object]:
    """A VL model keeps its language model under text_config; top-level keys fill the gaps."""
    text = config.get("text_config")
    merged = {key: value for key, value in config.items() if key != "text_config"}
    if isinstance(text, Mapping):
        merged.update({str(key): value for key, value in text.items()})
    family = str(merged.get("model_type", ""))
    for key, value in _FAMILY_DEFAULTS.get(family, {}).items():
        merged.setdefault(key, value)
    return merged


# Past these a config.json describes no model that exists (the largest have ~10^2 layers, ~10^5
# hidden units, ~10^6 tokens of vocabulary): hostile input, refused before anything is sized by it.
_CAPS: Final = {"layers": 10_000, "hidden": 1 << 20, "heads": 1 << 16, "vocab": 1 << 24}
_ANY_CAP: Final = 1 << 40


def _int(config: Mapping[str, object], keys: tuple[str, ...]) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, float) and value > 0 and value.is_integer():
            value = int(value)
        if isinstance(value, int) and value > 0:
            if value > _ANY_CAP:
                raise _absurd(key, value, _ANY_CAP)
            return value
    return None


def _absurd(key: str, value: int, cap: int) -> UsageError:
    shown = str(value) if value < 10**15 else f"a {len(str(value))}-digit number"
    return UsageError(
        f"config.json gives {key} = {shown}, more than any model has (at most {cap})",
        hint="pass the model's own config.json with --config FILE",
    )


def _capped(value: int, what: str, key: str) -> int:
    if value > _CAPS[what]:
        raise _absurd(key, value, _CAPS[what])
    return value


def _required(config: Mapping[str, object], keys: tuple[str, ...]) -> int:
    value = _int(config, keys)
    if value is None:
        raise UsageError(
            f"config.json lacks {keys[0]} (also looked for {', '.join(keys[1:]) or 'no alias'})",
            hint="pass the model's own config.json with --config FILE",
        )
    return value


def _kv_heads(config: Mapping[str, object], family: str, heads: int) -> int:
    explicit = _int(config, _KV_HEADS)
    if explicit is not None:
        return explicit
    # Falcon-7B style: one shared K/V head unless the new decoder architecture names a count
    if family in {"falcon", "RefinedWebModel", "RefinedWeb"} and config.get("multi_query", True):
        return 1
    return heads


def _layer_types(config: Mapping[str, object], family: str, layers: int) -> tuple[str, ...]:
    """Per-layer attention kind, or () when no layer slides."""
    window = _int(config, ("sliding_window",))
    declared = config.get("layer_types")
    if isinstance(declared, list | tuple) and len(declared) == layers:
        return tuple(
            SLIDING_ATTENTION if "sliding" in str(kind) else FULL_ATTENTION for kind in declared
        )
    if window is None:
        return ()
    if family.startswith("qwen"):
        # Qwen2/3 ship a sliding_window but only use it with use_sliding_window, from
        # max_window_layers on
        if not config.get("use_sliding_window", False):
            return ()
        first = _int(config, ("max_window_layers",)) or 0
        return tuple(SLIDING_ATTENTION if i >= first else FULL_ATTENTION for i in range(layers))
    if family == "gemma2":
        # transformers' Gemma2: even layers slide, odd layers see everything
        return tuple(SLIDING_ATTENTION if i % 2 == 0 else FULL_ATTENTION for i in range(layers))
    pattern = _int(config, ("sliding_window_pattern",))
    if family.startswith("gemma3") or pattern is not None:
        period = pattern or 6  # Gemma 3: five local layers, then one global
        return tuple(
            FULL_ATTENTION if (i + 1) % period == 0 else SLIDING_ATTENTION for i in range(layers)
        )
    # Mistral-7B-v0.1, Phi-3: a sliding_window and no per-layer pattern. The attention mask
    # slides, but transformers 5.17 still caches every token (measured on an H100: Phi-3-mini at
    # 4k needed 10.25 GiB, 11% above a window-capped estimate; benchmarks/gpu/), so no cap here:
    # over-estimating is the safe side where a runtime might cap.
    return ()


def shape_from_config(config: Mapping[str, object]) -> ModelShape:
    """Read a Hugging Face config.json (already parsed) into a ModelShape.

    Raises UsageError naming the missing key when the config does not describe a decoder.
    """
    merged = _merged(config)
    family = str(merged.get("model_type", ""))
    layers = _capped(_required(merged, _LAYERS), "layers", _LAYERS[0])
    hidden = _capped(_required(merged, _HIDDEN), "hidden", _HIDDEN[0])
    heads = _capped(_required(merged, _HEADS), "heads", _HEADS[0])
    head_dim = _int(merged, ("head_dim", "attention_head_dim")) or hidden // heads
    intermediate = _int(merged, _INTERMEDIATE)
    if intermediate is None:
        # Falcon and GPT-style configs leave the MLP width implicit: four times the hidden size
        intermediate = 4 * hidden
    elif family in _HALVED_INTERMEDIATE:
        intermediate //= 2
    experts = _int(merged, _EXPERTS) or 1
    layer_types = _layer_types(merged, family, layers)
    tie = merged.get("tie_word_embeddings")
    return ModelShape(
        architecture=family,
        num_layers=layers,
        hidden_size=hidden,
        num_attention_heads=heads,
        num_kv_heads=_kv_heads(merged, family, heads),
        head_dim=head_dim,
        vocab_size=_capped(
            _required(merged, ("vocab_size", "padded_vocab_size", "n_vocab")), "vocab", "vocab_size"
        ),
        intermediate_size=intermediate,
        num_experts=experts,
        num_experts_per_token=min(_int(merged, _EXPERTS_PER_TOKEN) or 1, experts),
        sliding_window_tokens=_int(merged, ("sliding_window",)) if layer_types else None,
        layer_types=layer_types,
        max_context_tokens=_int(merged, _MAX_CONTEXT),
        tie_word_embeddings=tie if isinstance(tie, bool) else family in _TIED_BY_DEFAULT,
    )


def embedding_parameters(shape: ModelShape) -> int:
    return shape.vocab_size * shape.hidden_size


def head_parameters(shape: ModelShape) -> int:
    """The output projection; zero when it shares the embedding's weights."""
    return 0 if shape.tie_word_embeddings else shape.vocab_size * shape.hidden_size


def layer_linear_parameters(shape: ModelShape) -> int:
    """Weights of every quantizable matrix in one decoder layer, all experts counted."""
    q_and_o = 2 * shape.hidden_size * shape.num_attention_heads * shape.head_dim
    k_and_v = 2 * shape.hidden_size * shape.num_kv_heads * shape.head_dim
    matrices = 2 if shape.architecture in _UNGATED_MLP else 3
    mlp = matrices * shape.hidden_size * shape.intermediate_size * shape.num_experts
    router = shape.hidden_size * shape.num_experts if shape.num_experts > 1 else 0
    return q_and_o + k_and_v + mlp + router


def parameter_count(shape: ModelShape) -> int:
    """Total parameters, every expert counted (what must sit in VRAM, not what one token uses).

    A shape that carries a measured count (e.g. from safetensors metadata) keeps it.
    """
    if shape.parameter_count is not None:
        return shape.parameter_count
    norms = (2 * shape.num_layers + 1) * shape.hidden_size
    return (
        shape.num_layers * layer_linear_parameters(shape)
        + embedding_parameters(shape)
        + head_parameters(shape)
        + norms
    )
