"""How far the VRAM estimator is from every VRAM figure we can check it against.

Ground truth:

* every table VRAM figure in ../shared/cards/**/*.expected.json (the cards' own numbers, read by
  hand; figures a card derives from a prose rule - ``vram_gb_derived`` - are not ground truth and
  are skipped, as are "Max RAM" columns, which are system RAM);
* every row of ../shared/gpu/transformers_fp16_h100.json (nvidia-smi total while generating);
* every full-offload row of benchmarks/gpu/llamacpp_h200.json (llama.cpp on an H200, zero-weight
  GGUFs of real shapes; benchmarks/llamacpp_calibrate.py). ``peak`` rows filled the context (the
  CUDA pool at its largest), ``init`` rows are after context creation and warm-up (compared without
  the pool term). Shapes in LLAMACPP_FITTED are the ones the profile's constants were read off;
  the rest are held out, and reported apart.

Each card figure is predicted without using it: ``card-fit`` leaves it out and fits the same row's
other contexts; ``formula`` ignores all of the row's figures and works from the model's shape
(benchmarks/configs) and the card's size or bits. The GPU rows have no card, so only the formula
answers; note that the transformers profile's constants were read off these same rows, so that
part is a calibration residual, not a held-out test.

    .venv/bin/python benchmarks/vram_accuracy.py [--shared ../shared] [--parser] [--rows] [--check]

Target: median |error| <= 3 % and no under-estimate worse than 5 %, per method and runtime.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quantpick.card import names
from quantpick.errors import QuantpickError
from quantpick.estimate.runtimes import llamacpp
from quantpick.estimate.shape import FULL_ATTENTION, SLIDING_ATTENTION, shape_from_config
from quantpick.estimate.vram import default_runtime, estimate_vram
from quantpick.records import (
    GB,
    GIB,
    CacheMode,
    Format,
    ModelShape,
    Source,
    Variant,
    VariantKind,
)

HERE = Path(__file__).resolve().parent
MIB = 1 << 20
MEDIAN_TARGET = 0.03
UNDER_TARGET = -0.05

# card repo (as in expected.json) -> the public config of the model its quants were made from
CARD_CONFIGS = {
    "bartowski/Cerebrum-1.0-8x7b-exl2": "mixtral-8x7b-instruct-v0.1",
    "macadeliccc/laser-dolphin-mixtral-2x7b-dpo": "laser-dolphin-mixtral-2x7b",
    "suparious/mistral-7b-v0.2-layla-v4-exl2": "mistral-7b-v0.2",
    "SanctumAI/Codestral-22B-v0.1-GGUF": "codestral-22b-v0.1",
    "Qwen/Qwen-7B-Chat-Int4": "qwen-7b",
}
# measured model -> config; "mistral-7b" was built without a sliding window (its KV cache grew to
# 32k)
GPU_CONFIGS = {
    "mistral-7b": "mistral-7b-v0.2",
    "llama-2-7b": "llama-2-7b",
    "llama-3-8b": "llama-3-8b",
    "llama-2-13b": "llama-2-13b",
}


@dataclass(frozen=True)
class Check:
    source: str
    variant: str
    method: str
    runtime: str
    context_tokens: int
    truth_bytes: int
    predicted_bytes: int | None
    note: str = ""

    @property
    def error(self) -> float | None:
        if self.predicted_bytes is None:
            return None
        return (self.predicted_bytes - self.truth_bytes) / self.truth_bytes


def load_shape(name: str) -> ModelShape:
    return shape_from_config(json.loads((HERE / "configs" / f"{name}.json").read_text()))


def _card_format(card_format: str) -> Format | None:
    """expected.json's card-level format (exl2-vram, gptq, gguf-thebloke, ...) as a Format."""
    head = card_format.split("-")[0]
    return next((f for f in Format if f.value == head), None)


def variant_from_expected(entry: dict[str, object], card_format: str = "") -> Variant:
    """A Variant as the card parser should produce it, from the hand-read expected.json entry;
    a branch name that says no format (``main``) takes the card's."""
    name = str(entry["name"])
    info = names.describe(name)
    size_gb = entry.get("size_gb")
    bits = entry.get("bits")
    head = entry.get("lm_head_bits")
    return Variant(
        name=name,
        kind=VariantKind.FILE if name.endswith((".gguf", ".bin")) else VariantKind.BRANCH,
        format=info.format or _card_format(card_format) or Format.OTHER,
        bits=float(bits) if isinstance(bits, int | float) else None,
        bits_source=Source.CARD if bits is not None else None,
        head_bits=float(head) if isinstance(head, int | float) else None,
        size_bytes=round(size_gb * GB) if isinstance(size_gb, int | float) else None,
        size_source=Source.CARD if isinstance(size_gb, int | float) else None,
        quant_method=str(entry["quant_method"]) if entry.get("quant_method") else None,
    )


def parsed_variants(card_path: Path) -> dict[str, Variant]:
    from quantpick.card.parser import parse_card

    card = parse_card(card_path.read_text(encoding="utf-8"))
    return {v.name: v for v in card.variants}


def card_figures(entry: dict[str, object]) -> dict[int, int]:
    raw = entry.get("vram_gb")
    if not isinstance(raw, dict):
        return {}
    return {int(ctx): round(gib * GIB) for ctx, gib in raw.items() if ctx != "unspecified"}


def _predict(variant: Variant, shape: ModelShape | None, ctx: int) -> tuple[int | None, str]:
    try:
        estimate = estimate_vram(variant, shape, ctx)
    except QuantpickError as exc:
        return None, exc.message
    return estimate.vram_bytes, "; ".join(estimate.warnings)


def card_checks(shared: Path, use_parser: bool) -> Iterator[Check]:
    for path in sorted(shared.glob("cards/*/*.expected.json")):
        expected = json.loads(path.read_text())
        repo = expected["repo"]
        config = CARD_CONFIGS.get(repo)
        shape = load_shape(config) if config else None
        parsed = parsed_variants(path.with_name(path.name[: -len(".expected.json")] + ".md"))
        for entry in expected["variants"]:
            figures = card_figures(entry)
            if not figures:
                continue
            base = variant_from_expected(entry, str(expected.get("format", "")))
            if use_parser and entry["name"] in parsed:
                base = parsed[entry["name"]]
            runtime = default_runtime(base.format).value
            for ctx, truth in sorted(figures.items()):
                others = {c: b for c, b in figures.items() if c != ctx}
                clean = base.model_copy(
                    update={"vram_bytes": {}, "vram_derived_bytes": {}, "vram_bytes_by_cache": {}}
                )
                if others:
                    fitted, note = _predict(
                        clean.model_copy(update={"vram_bytes": others}), shape, ctx
                    )
                    yield Check(repo, base.name, "card-fit", runtime, ctx, truth, fitted, note)
                formula, note = _predict(clean, shape, ctx)
                yield Check(repo, base.name, "formula", runtime, ctx, truth, formula, note)


def gpu_checks(shared: Path) -> Iterator[Check]:
    path = shared / "gpu" / "transformers_fp16_h100.json"
    for row in json.loads(path.read_text())["rows"]:
        if not row.get("ok"):
            continue
        weights = Variant(
            name=row["model"],
            kind=VariantKind.REPO,
            format=Format.OTHER,
            size_bytes=row["weights_bytes"],
            size_source=Source.HUB,
        )
        shape = load_shape(GPU_CONFIGS[row["model"]])
        predicted, note = _predict(weights.model_copy(), shape, row["ctx"])
        truth = round(row["smi_used_mib"] * MIB)
        yield Check(
            path.name, row["model"], "formula", "transformers", row["ctx"], truth, predicted, note
        )


LLAMACPP_FITTED = frozenset({"Llama-3-8B", "Qwen2.5-7B", "Qwen3-30B-A3B", "Gemma-2-2B"})


def _measured_shape(row: dict[str, object]) -> ModelShape:
    layers = int(row["layers"])  # type: ignore[call-overload]
    window = row.get("window")
    kinds = (
        tuple(SLIDING_ATTENTION if i % 2 == 0 else FULL_ATTENTION for i in range(layers))
        if window
        else ()
    )
    return ModelShape.model_validate(
        {
            "architecture": row["arch"], "num_layers": layers, "hidden_size": row["hidden"],
            "num_attention_heads": row["heads"], "num_kv_heads": row["kv_heads"],
            "head_dim": row["head_dim"], "vocab_size": row["vocab"],
            "intermediate_size": row["ffn"], "num_experts": row.get("experts", 1),
            "num_experts_per_token": row.get("experts_used", 1),
            "sliding_window_tokens": window, "layer_types": kinds,
            "tie_word_embeddings": row["tied"],
        }
    )  # fmt: skip


def llamacpp_checks() -> Iterator[Check]:
    path = HERE / "gpu" / "llamacpp_h200.json"
    for row in json.loads(path.read_text()):
        if "error" in row or row["n_gpu_layers"] != 999 or row["n_ubatch"] != 512:
            continue
        shape = _measured_shape(row)
        variant = Variant(
            name=f"{row['model']}-{row['quant']}.gguf", kind=VariantKind.FILE,
            format=Format.GGUF, quant_method=row["quant"], size_bytes=row["file_bytes"],
            size_source=Source.HUB,
        )  # fmt: skip
        mode = CacheMode.Q8 if row["type_k"] == "q8_0" else CacheMode.FP16
        fa = bool(row["flash_attn"])
        estimate = estimate_vram(variant, shape, row["n_ctx"], mode, flash_attn=fa)
        predicted = estimate.vram_bytes
        if row["fill"]:
            method, truth = "peak", row["peak_bytes"]
        else:
            method, truth = "init", row["warm_bytes"]
            predicted -= llamacpp.pool_bytes(shape, row["n_ctx"], fa)
        split = "fitted" if row["model"] in LLAMACPP_FITTED else "held-out"
        runtime = f"llama.cpp fa={'on' if fa else 'off'} {row['type_k']}"
        yield Check(
            f"{path.name} ({split})", variant.name, f"{method}/{split}", runtime, row["n_ctx"],
            truth, predicted, "",
        )  # fmt: skip


def llamacpp_partial_checks() -> Iterator[Check]:
    """-ngl rows: the GPU holds the last ngl - 1 layers and the output. Llama-3-8B's rows are
    the ones the partial term was read off; llamacpp_h200_partial.json's shapes are held out."""
    for name in ("llamacpp_h200.json", "llamacpp_h200_partial.json"):
        path = HERE / "gpu" / name
        for row in json.loads(path.read_text()):
            if "error" in row or row["n_gpu_layers"] == 999:
                continue
            shape = _measured_shape(row)
            fa = bool(row["flash_attn"])
            full = llamacpp.footprint(
                shape, row["file_bytes"], row["quant"], row["n_ctx"], CacheMode.FP16, fa
            )
            head = min(llamacpp.head_bytes(shape, row["quant"]), full.weights_bytes)
            weights = llamacpp.layer_weight_bytes(shape, row["quant"], full.weights_bytes - head)
            on_gpu = row["n_gpu_layers"] - 1  # -ngl counts the output layer
            kv = full.kv_cache_bytes / shape.num_layers * on_gpu
            predicted = round(
                sum(weights[shape.num_layers - on_gpu :]) + kv + head + full.compute_buffer_bytes
                + full.pool_bytes + full.fixed_bytes + llamacpp.partial_extra_bytes(full)
            )  # fmt: skip
            if row["fill"]:
                truth = row["peak_bytes"]
            else:
                truth, predicted = row["warm_bytes"], predicted - full.pool_bytes
            split = "fitted" if row["model"] == "Llama-3-8B" else "held-out"
            yield Check(
                f"{name} ({split})", f"{row['model']}-{row['quant']} -ngl {row['n_gpu_layers']}",
                f"partial/{split}", f"llama.cpp fa={'on' if fa else 'off'} f16", row["n_ctx"],
                truth, predicted, "",
            )  # fmt: skip


EXL3_FITTED = frozenset({"Llama-3-8B", "Qwen2.5-7B", "Qwen3-30B-A3B"})
# the GGUF architecture names benchmarks/llamacpp_calibrate.SHAPES uses -> config.json model_type
# (Mistral is exllamav3's LlamaModel, as "llama")
_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "qwen3moe": "qwen3_moe"}
_EXL3_CACHES = {
    None: CacheMode.FP16,
    (8, 8): CacheMode.Q8,
    (6, 6): CacheMode.Q6,
    (4, 4): CacheMode.Q4,
}


def exl3_checks() -> Iterator[Check]:
    """benchmarks/gpu/exllamav3_h200*.json: peak device memory with the context filled (the _extra
    file: 6-bit layers, 128k contexts, the 6-bit cache; made after the profile was written)."""
    sys.path.insert(0, str(HERE))
    from llamacpp_calibrate import SHAPES

    paths = [HERE / "gpu" / "exllamav3_h200.json", HERE / "gpu" / "exllamav3_h200_extra.json"]
    for path, row in ((p, r) for p in paths for r in json.loads(p.read_text())["rows"]):
        if "error" in row:
            continue
        arch, p = SHAPES[row["shape"]]
        shape = _measured_shape(
            {**p, "arch": _MODEL_TYPES[arch], "experts_used": p.get("experts_used", 1)}
        )
        variant = Variant(
            name=f"{row['shape']}-exl3-{row['bits']}.0bpw-h{row['head_bits']}",
            kind=VariantKind.BRANCH, format=Format.EXL3, bits=float(row["bits"]),
            head_bits=float(row["head_bits"]), size_bytes=row["tensor_bytes"],
            size_source=Source.HUB,
        )  # fmt: skip
        cache = row["cache"]
        mode = _EXL3_CACHES[None if cache is None else tuple(cache)]
        predicted = estimate_vram(variant, shape, row["ctx"], mode).vram_bytes
        split = "fitted" if row["shape"] in EXL3_FITTED else "held-out"
        yield Check(
            f"{path.name} ({split})", variant.name, f"peak/{split}",
            f"exllamav3 {mode.value}", row["ctx"], row["peak_bytes"], predicted, "",
        )  # fmt: skip


def summarize(checks: list[Check]) -> bool:
    ok = True
    groups: dict[tuple[str, str], list[Check]] = {}
    for check in checks:
        groups.setdefault((check.method, check.runtime), []).append(check)
    print(
        f"{'method':13} {'runtime':22} {'n':>3} {'median|e|':>9} {'worst|e|':>9} "
        f"{'under':>7} {'worst under':>11}"
    )
    for (method, runtime), group in sorted(groups.items()):
        errors = [c.error for c in group if c.error is not None]
        missing = len(group) - len(errors)
        if not errors:
            print(f"{method:13} {runtime:22} {len(group):3}   (no prediction: {missing})")
            continue
        median = statistics.median(abs(e) for e in errors)
        worst = max(errors, key=abs)
        unders = [e for e in errors if e < 0]
        worst_under = min(unders, default=0.0)
        passed = median <= MEDIAN_TARGET and worst_under >= UNDER_TARGET
        ok = ok and passed
        print(
            f"{method:13} {runtime:22} {len(errors):3} {median:9.1%} {worst:+9.1%} "
            f"{len(unders) / len(errors):7.0%} {worst_under:+11.1%}"
            f"{'' if passed else '  MISSES TARGET'}"
            f"{f'  ({missing} unpredictable)' if missing else ''}"
        )
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=HERE.parents[1] / "shared")
    parser.add_argument(
        "--parser", action="store_true", help="size variants as card_parser reads them"
    )
    parser.add_argument("--rows", action="store_true", help="print every check")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    card = list(card_checks(args.shared, args.parser))
    gpu = [*gpu_checks(args.shared), *llamacpp_checks(), *llamacpp_partial_checks()]
    gpu += list(exl3_checks())
    if args.rows:
        for c in card + gpu:
            err = "n/a" if c.error is None else f"{c.error:+.1%}"
            pred = "-" if c.predicted_bytes is None else f"{c.predicted_bytes / GIB:.2f}"
            print(
                f"{c.source:45} {c.variant:32} {c.method:8} {c.context_tokens:6} "
                f"truth {c.truth_bytes / GIB:6.2f} pred {pred:>6} {err:>7} {c.note}"
            )
        print()
    figures = {(c.source, c.variant, c.context_tokens) for c in card}
    print(f"cards: {len(card)} checks of {len(figures)} figures")
    ok_cards = summarize(card)
    print(
        f"\nGPU measurements (device memory; transformers H100, llama.cpp + exllamav3 H200): "
        f"{len(gpu)} rows"
    )
    ok_gpu = summarize(gpu)
    return 0 if (ok_cards and ok_gpu) or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
