"""Single-variant repos and the model a card quantizes.

A repo whose name states one quant (`Qwen-7B-Chat-Int4`, `...-GPTQ-4bit`, `...-AWQ`) holds that
quant in `main`; its card's tables compare it with other repos (BF16 / Int8 / Int4 rows) and only
the row labelled like the repo describes it. Its base model is linked, declared in front-matter,
or, for a first-party quant (`microsoft/phi-4-gguf`), the owner's repo of the same stem.
"""

from __future__ import annotations

import re

from quantpick.card import values as cv
from quantpick.card.links import TargetKind, hub_target, same_repo
from quantpick.card.markdown import Block, front_matter_list, parse_inline
from quantpick.card.names import describe
from quantpick.records import Format, Source, Variant, VariantKind

# formats whose repos hold many variants (files or branches), never one in main
_MULTI = (Format.GGUF, Format.GGML, Format.EXL2, Format.EXL3)
_GROUP_PROSE = re.compile(r"group[_ ]?size\s*(?:=|:|of)?\s*(-?\d{1,4})\b", re.IGNORECASE)
_ACT_PROSE = re.compile(r"(?:desc_act|act[_ ]?order)\s*[=:]\s*(true|false)", re.IGNORECASE)
_THIRD_PARTY = re.compile(r"\bquant(?:s|izations?)\s+(?:of|for)\b", re.IGNORECASE)
_SUFFIX_WORDS = {"i1", "imat", "imatrix", "quantized", "quant", "quants", "mlx", "bnb", "fp8"}
_LEADING_BLOCKS = 12


def _basename(repo: str | None) -> str:
    return (repo or "").rsplit("/", 1)[-1]


def repo_stem(repo: str | None) -> str:
    """The model a quant repo is named after: `Qwen-7B-Chat-Int4` -> `Qwen-7B-Chat`."""
    parts = _basename(repo).split("-")
    while len(parts) > 1:
        tail = parts[-1]
        info = describe(tail)
        says_quant = (info.format is not None and not info.format_guessed) or (
            info.bits is not None and info.quant_method is None
        )
        if not (says_quant or tail.lower() in _SUFFIX_WORDS):
            break
        parts.pop()
    return "-".join(parts)


def single_quant(repo: str | None) -> Variant | None:
    """`main` as the one variant of a repo whose name states bits outside multi-variant formats."""
    info = describe(_basename(repo))
    if repo is None or info.bits is None or info.format in _MULTI:
        return None
    return Variant(
        name="main",
        kind=VariantKind.BRANCH,
        format=info.format or Format.OTHER,
        bits=info.bits,
        bits_source=Source.NAME,
        group_size=info.group_size,
        act_order=info.act_order,
    )


def labels_repo(label: str, repo: str | None) -> bool:
    """A table row labelled like the repo's own quant ('Int4' in `Qwen-7B-Chat-Int4`)."""
    words = {w.lower() for w in _basename(repo).split("-")}
    return label.strip().lower() in words


def with_prose_parameters(v: Variant, blocks: list[Block]) -> Variant:
    """'via GPTQ to 4bits with group_size=128': what the prose of a one-quant card states."""
    update: dict[str, object] = {}
    for block in blocks[:_LEADING_BLOCKS]:
        text = parse_inline(block.raw).text
        if v.group_size is None and "group_size" not in update and (m := _GROUP_PROSE.search(text)):
            size = int(m[1])
            update["group_size"] = size if size > 0 else None
        if v.act_order is None and "act_order" not in update and (m := _ACT_PROSE.search(text)):
            update["act_order"] = m[1].lower() == "true"
    return v.model_copy(update=update) if update else v


def _linked_repos(front_matter: str, blocks: list[Block]) -> list[str]:
    repos: list[str] = []
    hrefs = re.findall(r"https?://[^\s)\"'<>]+", front_matter)
    for block in blocks:
        if "huggingface.co" in block.raw or "hf.co" in block.raw:
            hrefs.extend(link.href for link in parse_inline(block.raw).links)
    for href in hrefs:
        target = hub_target(href)
        if target is not None and target.repo not in repos:
            repos.append(target.repo)
    return repos


def base_models(front_matter: str, blocks: list[Block], repo: str | None) -> tuple[str, ...]:
    declared = front_matter_list(front_matter, "base_model")
    stem = repo_stem(repo)
    linked = [r for r in _linked_repos(front_matter, blocks) if not same_repo(r, repo)]
    # the repo the quant is named after wins over a declared pretrain it was fine-tuned from
    named = [r for r in linked if stem != _basename(repo) and _basename(r).lower() == stem.lower()]
    if named:
        return (named[0],)
    if declared:
        return declared
    for key in ("model_link", "original_model"):
        for value in front_matter_list(front_matter, key):
            target = hub_target(value) if "://" in value else None
            if target is not None and target.kind is TargetKind.REPO:
                return (target.repo,)
    return _first_party(repo, stem, linked, blocks)


def _first_party(
    repo: str | None, stem: str, linked: list[str], blocks: list[Block]
) -> tuple[str, ...]:
    """`microsoft/phi-4-gguf` quantizes `microsoft/phi-4`: no other model is linked and the card
    never calls itself someone's quantizations."""
    if repo is None or "/" not in repo or stem == _basename(repo):
        return ()
    owner = repo.split("/", 1)[0]
    others = [r for r in linked if r.split("/", 1)[0].lower() != owner.lower()]
    lead = " ".join(parse_inline(b.raw).text for b in blocks[:_LEADING_BLOCKS])
    if others or _THIRD_PARTY.search(lead) or cv.is_unknown(stem):
        return ()
    return (f"{owner}/{stem}",)
