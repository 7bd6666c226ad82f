"""Mentions outside tables as annotations: every name a heading, prose sentence, admonition or
shell command gives, where it stands, and whether the card recommends it there. Pure.

A mention is never a variant of its own (but for a card with nothing else, see mentions.py): it
lands on the one variant the rules of matchkeys.py single out, in the card's own variants
card-only and in the Hub's online, or nowhere. A name on a line that names another repo
(`-hf other/repo:Q8_0`, a link into it) belongs to that repo and is never this repo's.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from quantpick.card import values as cv
from quantpick.card.links import TargetKind, hub_target, same_repo
from quantpick.card.markdown import Block, Inline, parse_inline, sentences
from quantpick.card.matchkeys import single_match
from quantpick.card.names import describe, is_quant_label
from quantpick.records import HubStatus, Mention, MentionPlace, Variant, VariantKind

# cheap tests before inline parsing, literals first: most blocks of a long card name no variant
_MAY_NAME_LOWER = re.compile(r"_|bpw|bit|\.gguf|gptq|awq|exl|int[248]|w[48]a|f16|f32|mxfp4")
_MAY_NAME = re.compile(
    r"\d(?:_\d|bpw|[-_]?bit)|[IiTt]?[Qq]\d_|\.gguf|[Ii][Nn][Tt]\d|[Ww]\d[Aa]\d"
    r"|[Gg][Pp][Tt][Qq]|AWQ|awq|[Ee][Xx][Ll][23]|BF16|F16|FP16|F32|MXFP4|bf16|f16|fp16|f32",
)

_TOKEN = re.compile(r"[\w][\w.\-+]*")
# a shell command that names what to load or fetch (llama.cpp, huggingface-cli, ollama)
_COMMAND = re.compile(
    r"(?:^|\s)(?:-m|--model|-hf|-hfr|--hf-repo|-hff|--hf-file|--include|--revision|-b)\s"
    r"|\b(?:download|ollama|llama-\w+)\b"
)
_ADMONITION = re.compile(r"^\s*\[!\w+\]")
# the repo a command or prose line names: `-hf o/r:TAG`, `download o/r`, `hf.co/o/r`
_REPO_ARG = re.compile(
    r"(?:(?:^|\s)(?:-hf|--hf-repo|-hfr|--repo|--model-id|download)\s+"
    r"[\"']?(?:https?://)?(?:(?:www\.)?huggingface\.co/|hf\.co/)?"
    r"|(?:huggingface\.co|hf\.co)/|repo_id\s*=\s*[\"']|from_pretrained\(\s*[\"']"
    # `owner/name:branch` (text-generation-webui, ollama tags)
    r"|(?<![\w/.:-])(?=[A-Za-z0-9][\w.\-]*/[\w.\-]*[\w]:\w))"
    r"(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]*[\w])"
)
# positive words beside `recommend` that single out one quant ("best balance: Q4_K_M")
_ALSO_POSITIVE = re.compile(
    r"\b(?:suggested|best (?:balance|choice|trade-?off)|sweet spot|good default)\b", re.I
)
_NEGATED = re.compile(r"(?:\bnot|n't|\bnever|\bno)\W+(?:\w+\W+){0,2}$", re.I)
# a positive word as the predicate of the name before it: 'is recommended', 'is the sweet spot'
_PREDICATE = re.compile(r"(?:\b(?:is|are|'s)\s+(?:\w+\s+){0,2}|\(\s*)$", re.I)
_UNTIL_RIVAL = re.compile(r"\b(?:over|instead of|rather than|than|vs\.?|versus)\b", re.I)
MAX_MENTIONS = 256
MAX_PER_VARIANT = 8
_MAX_TEXT = 200


def _may_name(text: str) -> bool:
    return bool(_MAY_NAME_LOWER.search(text.lower()) and _MAY_NAME.search(text))


@lru_cache(maxsize=8192)
def _name(token: str) -> str | None:
    """A token that names a variant: a model file, a llama.cpp type, a branch-like quant name."""
    token = token.rstrip(".-+")
    low = token.lower()
    if low.endswith(".gguf") or ".gguf-split-" in low:
        return token
    if is_quant_label(token):
        return token
    info = describe(token)
    if info.bits is not None and not re.fullmatch(r"[\d.]+", token):
        return token
    return None


@dataclass(frozen=True, slots=True)
class _LinkTo:
    text: str
    repo: str
    # what the link points at: a file's name or a branch, when it points at one
    target: str | None


def _foreign(
    repo_args: Sequence[tuple[int, str]],
    links: Sequence[_LinkTo],
    token: str,
    at: int,
    own: str | None,
) -> str | None:
    """The other repo a token at `at` is named for: a link into it, or a repo argument (offset,
    repo) of its sentence before it."""
    for link in links:
        if (token in link.text or token == link.target) and not same_repo(link.repo, own):
            return link.repo
    named = [repo for start, repo in repo_args if start < at]
    if named and not same_repo(named[-1], own):
        return named[-1]
    return None


def _linked(links: Sequence[_LinkTo], token: str) -> str:
    """What a link the token labels points at wins over its text (`[Q4_K_M](.../x-Q4_K_M.gguf)`)."""
    for link in links:
        if link.target and token in link.text:
            return link.target
    return token


def _link_targets(inline: Inline) -> list[_LinkTo]:
    out = []
    for link in inline.links:
        t = hub_target(link.href)
        if t is None:
            continue
        if t.kind is TargetKind.FILE and _name(t.basename):
            target: str | None = t.basename
        elif t.kind is TargetKind.TREE and not t.path and t.revision:
            target = t.revision
        else:
            target = None
        out.append(_LinkTo(link.text, t.repo, target))
    return out


def _positive_spans(sentence: str) -> list[tuple[int, int]]:
    low = sentence.lower()
    spans = [(low.rfind("recommend", 0, end), end) for end in cv.recommendation_spans(sentence)]
    spans += [
        m.span()
        for m in _ALSO_POSITIVE.finditer(sentence)
        if not _NEGATED.search(sentence[max(0, m.start() - 30) : m.start()])
    ]
    return sorted(spans)


def _chosen(sentence: str, found: list[tuple[int, str]]) -> set[int]:
    """Which names the sentence's positive words single out: the subject of a predicate ('X is
    recommended', 'X is the sweet spot', 'X (recommended)'), else the first name after the word
    ('we recommend X', 'best balance: X'), up to a rival ('over', 'rather than')."""
    spans = _positive_spans(sentence)
    chosen: set[int] = set()
    for start, end in spans:
        if _PREDICATE.search(sentence[max(0, start - 40) : start]):
            # the clause's one subject; 'X or Y; both are recommended' names no single one
            clause = max(sentence.rfind(p, 0, start) for p in ";:,")
            before = [i for i, (at, _) in enumerate(found) if clause < at < start]
            if len(before) == 1:
                chosen.add(before[0])
            continue
        rival = _UNTIL_RIVAL.search(sentence, end)
        stop = rival.start() if rival else len(sentence)
        after = [i for i, (at, _) in enumerate(found) if end <= at < stop]
        if after:
            chosen.add(after[0])
    # one name and a positive word anywhere: '- `Q5_K_M`: recommended, the best balance'
    if spans and not chosen and len({n.lower() for _, n in found}) == 1:
        chosen.add(0)
    return chosen


def _sentence_mentions(
    sentence: str, place: MentionPlace, line: int, links: list[_LinkTo], own: str | None
) -> Iterator[Mention]:
    found = [(m.start(), n) for m in _TOKEN.finditer(sentence) if (n := _name(m[0]))]
    # a link whose text names nothing ('[the 4.0 bits version](.../tree/4.0bpw)') names its target
    labelled: dict[int, _LinkTo] = {}
    for link in links:
        at = sentence.find(link.text) if link.text and link.target else -1
        if at >= 0 and not any(at <= t < at + len(link.text) for t, _ in found):
            labelled[at] = link
    if labelled:
        found = sorted([*found, *((at, str(link.target)) for at, link in labelled.items())])
    if not found:
        return
    if place is MentionPlace.CODE and _COMMAND.search(sentence):
        place = MentionPlace.COMMAND
    in_code = place in (MentionPlace.CODE, MentionPlace.COMMAND)
    chosen = set() if in_code else _chosen(sentence, found)
    text = sentence if len(sentence) <= _MAX_TEXT else sentence[: _MAX_TEXT - 1] + "\u2026"
    repo_args = [(m.start("repo"), m["repo"]) for m in _REPO_ARG.finditer(sentence)]
    for i, (at, name) in enumerate(found):
        yield Mention(
            name=_linked(links, name),
            place=place,
            line=line,
            recommended=i in chosen,
            text=text if i in chosen else "",
            repo=_foreign(repo_args, [labelled[at]] if at in labelled else links, name, at, own),
        )


def _may_name_blocks(blocks: list[Block]) -> Iterator[Block]:
    """The blocks that may name a variant: one scan of the whole text, then a closer look at
    the blocks it hit (a long card's prose is mostly nothing of the kind)."""
    joined = "\n".join(b.raw for b in blocks).lower()
    starts, at = [], 0
    for b in blocks:
        starts.append(at)
        at += len(b.raw) + 1
    starts.append(len(joined) + 1)
    pos = 0
    while m := _MAY_NAME_LOWER.search(joined, pos):
        i = bisect_right(starts, m.start()) - 1
        if _MAY_NAME.search(blocks[i].raw):
            yield blocks[i]
        # on to the next block: one hit is enough to look closer at this one
        pos = starts[i + 1]


def card_mentions(blocks: list[Block], code: list[Block], own: str | None) -> tuple[Mention, ...]:
    """Every name outside tables, in card order, once per place and line."""
    out: dict[tuple[str, str, int, str | None], Mention] = {}
    code_ids = {id(c) for c in code}
    for block in _may_name_blocks(sorted([*blocks, *code], key=lambda b: b.line)):
        pieces: list[tuple[int, str, MentionPlace, list[_LinkTo]]]
        if id(block) in code_ids:
            # fenced code (nearly all code on cards) starts on the line after its fence
            pieces = [
                (block.line + 1 + n, line, MentionPlace.CODE, [])
                for n, line in enumerate(block.raw.split("\n"))
            ]
        else:
            inline = parse_inline(block.raw)
            place = (
                MentionPlace.HEADING
                if block.heading
                else MentionPlace.ADMONITION
                if _ADMONITION.match(block.raw)
                else MentionPlace.PROSE
            )
            links = _link_targets(inline)
            pieces = [(block.line, s, place, links) for s in sentences(inline.text)]
        for line, text, place, links in pieces:
            if not _may_name(text) and not any(link.target for link in links):
                continue
            for m in _sentence_mentions(text, place, line, links, own):
                key = (m.name.lower(), m.place.value, m.line, m.repo)
                if key not in out or (m.recommended and not out[key].recommended):
                    out[key] = m
                if len(out) >= MAX_MENTIONS:
                    return tuple(out.values())
    return tuple(out.values())


def mention_target(m: Mention, variants: Sequence[Variant], own: str | None) -> int | None:
    """The index of the one variant a mention names; None for none, two, or another repo's."""
    where = m.repo or own

    def same_place(v: Variant) -> bool:
        # a card read with no repo (--card) cannot tell its own links from another repo's
        there = v.repo or own
        return where is None or there is None or same_repo(where, there)

    pool = [
        (i, v)
        for i, v in enumerate(variants)
        if v.kind is not VariantKind.REPO
        and v.hub_status is not HubStatus.MISSING
        and same_place(v)
        and (m.repo is None or same_repo(m.repo, own) or v.repo is not None)
    ]
    want = m.name.lower()
    branches = [i for i, v in pool if v.kind is VariantKind.BRANCH and v.name.lower() == want]
    if branches:
        return branches[0] if len(branches) == 1 else None
    files = [(i, v.files or (v.name,)) for i, v in pool if v.kind is VariantKind.FILE]
    return single_match(m.name, files)


def attach(
    variants: Sequence[Variant], mentions: Sequence[Mention], own: str | None
) -> list[Variant]:
    """Each mention onto the variant it names (its recommendation with it), or onto none."""
    out = list(variants)
    for m in mentions:
        i = mention_target(m, out, own)
        if i is None:
            continue
        v = out[i]
        if m in v.mentions:
            continue
        kept = (*v.mentions, m)
        if len(kept) > MAX_PER_VARIANT:
            # a long card names a quant many times: keep its recommendations and the first others
            plain = [x for x in kept if not x.recommended]
            drop = plain[MAX_PER_VARIANT - (len(kept) - len(plain)) :] if plain else []
            kept = tuple(x for x in kept if x not in drop)
        out[i] = v.model_copy(
            update={
                "mentions": kept,
                "recommended_by_card": v.recommended_by_card or m.recommended,
            }
        )
    return out
