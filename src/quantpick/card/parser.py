"""A quantizer's model card (markdown) -> ModelCard with typed variants. Pure: no I/O.

Layers: card_markdown (tokens), card_values (one cell's meaning), card_columns (which table is a
variant table), card_tables (one variant per row), card_checks (contradictions), card_links (link
lists, Hub URLs), names (what a name says). This module reads what the prose says
about the tables (context of VRAM figures, rules like "for 32k add ~2 GB", recommendations) and
falls back from tables to link lists to other repos.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from quantpick.card import values as cv
from quantpick.card.annotate import attach, card_mentions
from quantpick.card.columns import wants_table
from quantpick.card.links import block_links, branch_and_file_variants, repo_variants
from quantpick.card.markdown import Block, parse_document, parse_inline, sentences
from quantpick.card.mentions import bare_label, file_mentions, label_mentions, same_quant
from quantpick.card.single import base_models, labels_repo, single_quant, with_prose_parameters
from quantpick.card.tables import CardContext, no_cycle_collection, table_variants
from quantpick.records import CacheMode, Format, ModelCard, Variant

__all__ = ["parse_card"]

_MEASURE_WORDS = re.compile(r"\b(?:vram|memory)\b", re.IGNORECASE)
_CONTEXT_WORDS = re.compile(r"\b(?:context|ctx|tokens)\b", re.IGNORECASE)
_ESTIMATE_WORDS = re.compile(r"\b(?:estimated|measured|calculated|assum\w*|based on)\b", re.I)
_DERIVED_RULES = (
    re.compile(
        r"for\s+(?P<ctx>\d+(?:\.\d+)?\s*k)\s+context,?\s+add\s+(?:about\s+|~\s*)?"
        r"(?P<add>\d+(?:\.\d+)?)\s*(?:GB|GiB)?",
        re.IGNORECASE,
    ),
    re.compile(
        r"add\s+(?:about\s+|~\s*)?(?P<add>\d+(?:\.\d+)?)\s*(?:GB|GiB)?\s+for\s+"
        r"(?P<ctx>\d+(?:\.\d+)?\s*k)\s+context",
        re.IGNORECASE,
    ),
)
_JOINED_PART = re.compile(r"([\w.\-]+?\.(?:gguf|bin))-split-([a-z])\b", re.IGNORECASE)
_FORMAT_HINTS: tuple[tuple[re.Pattern[str], Format], ...] = (
    (re.compile(r"exl3|exllama\s*v?3", re.IGNORECASE), Format.EXL3),
    (re.compile(r"exl2|exllama\s*v?2", re.IGNORECASE), Format.EXL2),
    (re.compile(r"gptq", re.IGNORECASE), Format.GPTQ),
    (re.compile(r"\bawq\b", re.IGNORECASE), Format.AWQ),
    (re.compile(r"gguf", re.IGNORECASE), Format.GGUF),
    (re.compile(r"ggml", re.IGNORECASE), Format.GGML),
)
# the title and first paragraphs say what a card is about; later ones link to everything else
_LEADING_BLOCKS = 12


@dataclass(slots=True)
class _ProseFacts:
    vram_context: int | None = None
    size_is_vram: bool = False
    cache_mode: CacheMode | None = None
    derived: tuple[int, float] | None = None
    note: str = ""


def parse_card(text: str, repo: str | None = None) -> ModelCard:
    """Read a card. Never raises: garbage in gives a card with no variants and maybe warnings."""
    try:
        with no_cycle_collection():
            return _parse(text, repo)
    except Exception as exc:  # a bug here must not break listing; tests assert it never happens
        return ModelCard(
            repo=repo if isinstance(repo, str) else None,
            warnings=(f"internal parser error: {type(exc).__name__}: {exc}",),
        )


def _parse(text: str, repo: str | None) -> ModelCard:
    doc = parse_document(text, want_table=wants_table)
    facts = _prose_facts(doc.blocks)
    card = CardContext(
        repo=repo,
        text_format=_text_format(doc.blocks),
        vram_context=facts.vram_context,
        size_is_vram=facts.size_is_vram,
    )
    tabled = [v for table in doc.tables for v in table_variants(table, card)]
    single = single_quant(repo)
    if single is not None:
        # the card's tables compare this repo with others; its own row is labelled like it
        variants = [with_prose_parameters(single, doc.blocks)]
        for v in tabled:
            if labels_repo(v.name, repo):
                variants[0] = _merge(variants[0], v)
    else:
        variants = _fold_labels(_dedupe(tabled))
        if not variants:
            links = block_links(doc.blocks)
            variants = branch_and_file_variants(links, repo) or repo_variants(links, repo)
        if not variants:
            variants = file_mentions(doc.blocks, doc.code) or label_mentions(doc.blocks)
    variants = _dedupe(variants)
    variants = _apply_derived(variants, facts)
    mentions = card_mentions(doc.blocks, doc.code, repo)
    variants = attach(variants, mentions, repo)
    variants = _joined_parts(variants, doc.blocks)
    warnings = () if variants else ("no variant table or variant links found in the card",)
    return ModelCard(
        repo=repo,
        base_models=base_models(doc.front_matter, doc.blocks, repo),
        variants=tuple(variants),
        vram_context_tokens=facts.vram_context or _shared_context(variants),
        vram_cache_mode=facts.cache_mode,
        vram_note=facts.note,
        mentions=mentions,
        warnings=warnings,
    )


def _sentences(blocks: list[Block], needle: re.Pattern[str]) -> list[str]:
    found = []
    for block in blocks:
        if needle.search(block.raw):
            found.extend(sentences(parse_inline(block.raw).text))
    return found


def _prose_facts(blocks: list[Block]) -> _ProseFacts:
    facts = _ProseFacts()
    notes = []
    for sentence in _sentences(blocks, re.compile(r"vram|memory|context", re.IGNORECASE)):
        if facts.vram_context is None and _MEASURE_WORDS.search(sentence):
            context = cv.context_tokens(sentence) if _CONTEXT_WORDS.search(sentence) else None
            if context is not None:
                facts.vram_context = context
                facts.size_is_vram = bool(_ESTIMATE_WORDS.search(sentence))
                facts.cache_mode = cv.cache_mode(sentence)
                notes.append(sentence)
                continue
        if facts.derived is None:
            for rule in _DERIVED_RULES:
                m = rule.search(sentence)
                context = cv.context_tokens(f"{m['ctx']} context") if m else None
                if m and context is not None:
                    facts.derived = (context, float(m["add"]))
                    notes.append(sentence)
                    break
    facts.note = " ".join(notes)
    return facts


def _text_format(blocks: list[Block]) -> Format | None:
    for block in blocks[:_LEADING_BLOCKS]:
        hits = [(m.start(), fmt) for rx, fmt in _FORMAT_HINTS if (m := rx.search(block.raw))]
        if hits:
            return min(hits, key=lambda h: h[0])[1]
    return None


def _dedupe(variants: list[Variant]) -> list[Variant]:
    """One variant per name; a second table about the same branch adds its figures to the first."""
    index: dict[tuple[str, str, str], int] = {}
    out: list[Variant] = []
    for v in variants:
        key = (v.kind.value, (v.repo or "").lower(), v.name)
        if key not in index:
            index[key] = len(out)
            out.append(v)
        else:
            out[index[key]] = _merge(out[index[key]], v)
    return out


def _fold_labels(variants: list[Variant]) -> list[Variant]:
    """A table listing quants by type only ('| Q4_K_M | 78.66GB |') beside a table of files adds
    to the file of exactly that type; it lists no variant of its own."""
    named = [v for v in variants if not bare_label(v)]
    if not named or len(named) == len(variants):
        return variants
    out = list(named)
    for label in (v for v in variants if bare_label(v)):
        hit = next((i for i, v in enumerate(out) if same_quant(v.name, label.name)), None)
        if hit is not None:
            out[hit] = _merge(out[hit], label)
    return out


def _merge(first: Variant, later: Variant) -> Variant:
    by_cache = {
        mode: {**later.vram_bytes_by_cache.get(mode, {}), **first.vram_bytes_by_cache.get(mode, {})}
        # a list, not a set: the JSON's key order must not depend on the hash seed
        for mode in dict.fromkeys([*first.vram_bytes_by_cache, *later.vram_bytes_by_cache])
    }
    update: dict[str, object] = {
        "vram_bytes": {**later.vram_bytes, **first.vram_bytes},
        "vram_bytes_by_cache": by_cache,
        "recommended_by_card": first.recommended_by_card or later.recommended_by_card,
    }
    for field in ("size_bytes", "size_source", "vram_unspecified_bytes", "max_ram_bytes"):
        if getattr(first, field) is None:
            update[field] = getattr(later, field)
    return first.model_copy(update=update)


def _apply_derived(variants: list[Variant], facts: _ProseFacts) -> list[Variant]:
    """'For 32k context add ~2 GB' on top of figures at the stated context."""
    if facts.derived is None or facts.vram_context is None:
        return variants
    target, add_gib = facts.derived
    out = []
    for v in variants:
        base = v.vram_bytes.get(facts.vram_context)
        if base is not None and target not in v.vram_bytes:
            derived = {**v.vram_derived_bytes, target: base + round(add_gib * 2**30)}
            v = v.model_copy(update={"vram_derived_bytes": derived})
        out.append(v)
    return out


def _joined_parts(variants: list[Variant], blocks: list[Block]) -> list[Variant]:
    """TheBloke uploaded >50 GB files as '-split-a'/'-split-b' parts to concatenate by hand."""
    parts: dict[str, set[str]] = {}
    for block in blocks:
        if "-split-" in block.raw:
            for m in _JOINED_PART.finditer(block.raw):
                parts.setdefault(m[1].lower(), set()).add(m[0])
    if not parts:
        return variants
    out = []
    for v in variants:
        found = parts.get(v.name.lower())
        if found and not v.files:
            v = v.model_copy(
                update={
                    "files": tuple(sorted(found)),
                    "warnings": (
                        *v.warnings,
                        f"{v.name} is uploaded as {len(found)} parts that must be concatenated "
                        "after download",
                    ),
                    "extra": {**v.extra, "join_required": True},
                }
            )
        out.append(v)
    return out


def _shared_context(variants: list[Variant]) -> int | None:
    contexts = {c for v in variants for c in v.vram_bytes}
    return contexts.pop() if len(contexts) == 1 else None
