"""What a branch's config.json says about its quant: `quantization_config` (GPTQ, AWQ,
compressed-tensors, FP8, bitsandbytes, exl2/exl3) or MLX's top-level `quantization`. Pure.

The files say exactly what a card often leaves out (single-variant AWQ/GPTQ/FP8/W4A16/bnb/MLX
repos); a figure the card or name already gives is kept and a contradiction is warned about.
"""

from __future__ import annotations

from typing import Any

from quantpick.records import Format, Record, Source, Variant

_FORMATS = {
    "gptq": Format.GPTQ,
    "awq": Format.AWQ,
    "exl2": Format.EXL2,
    "exl3": Format.EXL3,
}


class QuantConfig(Record):
    method: str
    bits: float | None = None
    head_bits: float | None = None
    group_size: int | None = None
    act_order: bool | None = None
    # compressed-tensors' strategy (group / channel / tensor / block), FP8's activation scheme
    scheme: str | None = None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _group(value: Any) -> int | None:
    n = _num(value)
    return int(n) if n is not None and n > 0 else None


def _actorder(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        # compressed-tensors: "group" / "weight" orderings are act-order, "static"/None are not
        return value.lower() not in ("", "none", "false", "static")
    return None


def _compressed(qc: dict[str, Any]) -> QuantConfig:
    groups = qc.get("config_groups")
    weights: dict[str, Any] = {}
    if isinstance(groups, dict):
        for group in groups.values():
            if isinstance(group, dict) and isinstance(group.get("weights"), dict):
                weights = group["weights"]
                break
    return QuantConfig(
        method="compressed-tensors",
        bits=_num(weights.get("num_bits")),
        group_size=_group(weights.get("group_size")),
        act_order=_actorder(weights.get("actorder")),
        scheme=str(weights["strategy"]) if isinstance(weights.get("strategy"), str) else None,
    )


def read_quant_config(config: dict[str, Any]) -> QuantConfig | None:
    """The quant a config.json describes; None when it describes none."""
    qc = config.get("quantization_config")
    if not isinstance(qc, dict):
        mlx = config.get("quantization")
        if isinstance(mlx, dict) and _num(mlx.get("bits")) is not None:
            return QuantConfig(
                method="mlx", bits=_num(mlx.get("bits")), group_size=_group(mlx.get("group_size"))
            )
        return None
    method = str(qc.get("quant_method") or "").lower()
    if method == "compressed-tensors":
        return _compressed(qc)
    if method == "bitsandbytes":
        bits = 4.0 if qc.get("load_in_4bit") else 8.0 if qc.get("load_in_8bit") else None
        kind = qc.get("bnb_4bit_quant_type")
        return QuantConfig(method=method, bits=bits, scheme=kind if isinstance(kind, str) else None)
    if method == "fp8":
        act = qc.get("activation_scheme")
        return QuantConfig(method=method, bits=8.0, scheme=act if isinstance(act, str) else None)
    if not method:
        return None
    return QuantConfig(
        method=method,
        bits=_num(qc.get("bits", qc.get("w_bit"))),
        head_bits=_num(qc.get("head_bits")),
        group_size=_group(qc.get("group_size", qc.get("q_group_size"))),
        act_order=_actorder(qc.get("desc_act")),
    )


def apply_quant_config(v: Variant, qc: QuantConfig, where: str) -> Variant:
    """Fill what the card and name left out; warn where they contradict the files."""
    update: dict[str, object] = {}
    warnings = list(v.warnings)
    fmt = _FORMATS.get(qc.method)
    if v.format is Format.OTHER and fmt is not None:
        update["format"] = fmt
    pairs = (
        ("bits", qc.bits),
        ("head_bits", qc.head_bits),
        ("group_size", qc.group_size),
        ("act_order", qc.act_order),
    )
    for field, value in pairs:
        if value is None:
            continue
        have = getattr(v, field)
        if have is None:
            update[field] = value
            if field == "bits":
                update["bits_source"] = Source.CONFIG
        elif have != value:
            warnings.append(f"{where} says {field} {value}, the card or name {have}; check it")
    extra = {**v.extra, "config_quant_method": qc.method}
    if qc.scheme:
        extra["config_scheme"] = qc.scheme
    update["extra"] = extra
    update["warnings"] = tuple(warnings)
    return v.model_copy(update=update)
