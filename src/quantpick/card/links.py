"""Hub link targets, and the variants a card lists as links rather than table rows.

The branch a link points at is the part after `/tree/` in its URL, never its text: turboderp writes
"[2.40 bits per weight](.../tree/2.4bpw)", mradermacher writes "[GGUF](.../x.i1-Q4_K_M.gguf)".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from quantpick.card.markdown import Block, Link, parse_inline
from quantpick.card.names import describe, is_variant_file, variants_from_names
from quantpick.records import Format, Source, Variant, VariantKind

_HUB_HOSTS = {"huggingface.co", "www.huggingface.co", "hf.co"}
# first path segments that are Hub pages, not model owners
_NOT_OWNERS = {
    "datasets",
    "spaces",
    "docs",
    "blog",
    "papers",
    "models",
    "collections",
    "organizations",
    "settings",
    "join",
    "login",
    "pricing",
    "learn",
    "chat",
    "tasks",
    "api",
}


class TargetKind(StrEnum):
    REPO = "repo"
    TREE = "tree"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class HubTarget:
    repo: str
    kind: TargetKind
    revision: str | None = None
    # a path inside the repo: a file (blob/resolve) or a folder (tree/<rev>/<folder>)
    path: str = ""

    @property
    def basename(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


# a lowercase Hub URL with nothing urlsplit would drop (tabs, newlines) or read as more than
# host and path: its path is the text up to `?` or `#`, read without urlsplit (a 100k-row table
# calls this per row)
_PLAIN_HUB_URL = re.compile(
    r"https?://(?:www\.huggingface\.co|huggingface\.co|hf\.co)(/[^?#\t\r\n]*)?"
)


def _url_path(href: str) -> str | None:
    """The path of a http(s) Hub URL, None for another URL."""
    plain = _PLAIN_HUB_URL.match(href)
    if plain is not None and (plain.end() == len(href) or href[plain.end()] in "?#"):
        return plain[1] or ""
    try:
        parts = urlsplit(href)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or (parts.hostname or "") not in _HUB_HOSTS:
        return None
    return parts.path


def hub_target(href: str) -> HubTarget | None:
    """What a huggingface.co model link points at; None for anything else."""
    path = _url_path(href.strip())
    if path is None:
        return None
    # unquote returns a segment without '%' as it is; skipping the call saves a 100k-row table
    # 400k calls
    if "%" in path:
        segments = [unquote(s) for s in path.split("/") if s]
    else:
        segments = [s for s in path.split("/") if s]
    if len(segments) < 2 or segments[0].lower() in _NOT_OWNERS:
        return None
    repo = f"{segments[0]}/{segments[1]}"
    if len(segments) == 2:
        return HubTarget(repo, TargetKind.REPO)
    if len(segments) < 4 or segments[2] not in ("tree", "blob", "resolve"):
        return None
    revision, path = segments[3], "/".join(segments[4:])
    if segments[2] == "tree":
        return HubTarget(repo, TargetKind.TREE, revision, path)
    if not path:
        return None
    return HubTarget(repo, TargetKind.FILE, revision, path)


def same_repo(a: str | None, b: str | None) -> bool:
    # the Hub resolves repo ids case-insensitively; cards spell them both ways
    return a is not None and b is not None and a.lower() == b.lower()


def foreign_repo(target_repo: str, card_repo: str | None) -> str | None:
    """The repo to record on a variant: None when it is the card's own."""
    return None if same_repo(target_repo, card_repo) else target_repo


def _may_hold_links(raw: str) -> bool:
    # cheap filter before inline parsing: most paragraphs of a long card hold no Hub link
    return "huggingface.co" in raw or "hf.co" in raw


def block_links(blocks: list[Block]) -> list[Link]:
    links: list[Link] = []
    for block in blocks:
        if _may_hold_links(block.raw):
            links.extend(parse_inline(block.raw).links)
    return links


def branch_and_file_variants(links: list[Link], card_repo: str | None) -> list[Variant]:
    """Branches (`/tree/<rev>`) and model files (`/blob/`, `/resolve/`) linked from prose."""
    variants: list[Variant] = []
    files_by_repo: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for link in links:
        target = hub_target(link.href)
        if target is None:
            continue
        if target.kind is TargetKind.TREE and not target.path and target.revision != "main":
            info = describe((target.revision or "").replace("/", "_"))
            key = (target.repo.lower(), target.revision or "")
            if not info.says_anything or key in seen:
                continue
            seen.add(key)
            explicit = None if info.format_guessed else info.format
            variants.append(
                Variant(
                    name=target.revision or "",
                    kind=VariantKind.BRANCH,
                    format=explicit or repo_format(target.repo) or info.format or Format.OTHER,
                    bits=info.bits,
                    bits_source=_name_source(info.bits),
                    head_bits=info.head_bits,
                    repo=foreign_repo(target.repo, card_repo),
                    extra=_vision(info.vision_bits),
                )
            )
        elif target.kind is TargetKind.FILE and is_variant_file(target.path):
            files_by_repo.setdefault(target.repo, []).append(target.path)
    for repo, paths in files_by_repo.items():
        for variant in variants_from_names(dict.fromkeys(paths), VariantKind.FILE):
            variants.append(variant.model_copy(update={"repo": foreign_repo(repo, card_repo)}))
    return variants


def repo_variants(links: list[Link], card_repo: str | None) -> list[Variant]:
    """Other repos that each hold one quant (wolfram's '-2.4bpw-h6-exl2' repos)."""
    variants: list[Variant] = []
    seen: set[str] = set()
    for link in links:
        target = hub_target(link.href)
        if target is None or target.kind is not TargetKind.REPO:
            continue
        info = describe(target.repo)
        # only a repo whose name pins down a format and bits is one variant; "-GGUF" repos hold
        # many, and "2-bit-LLMs" is a collection
        if (
            info.bits is None
            or info.format is None
            or same_repo(target.repo, card_repo)
            or target.repo.lower() in seen
        ):
            continue
        seen.add(target.repo.lower())
        variants.append(
            Variant(
                name=target.repo,
                kind=VariantKind.REPO,
                format=info.format or Format.OTHER,
                bits=info.bits,
                bits_source=_name_source(info.bits),
                head_bits=info.head_bits,
                group_size=info.group_size,
                act_order=info.act_order,
                repo=target.repo,
            )
        )
    return variants


# a table's rows name the same repo or two over and over; reading the name costs ~20 us
@lru_cache(maxsize=256)
def repo_format(repo: str | None) -> Format | None:
    """A format the repo id states outright ('...-exl2', '...-GPTQ'), not one guessed."""
    if not repo:
        return None
    info = describe(repo)
    return None if info.format_guessed else info.format


def _name_source(bits: float | None) -> Source | None:
    return Source.NAME if bits is not None else None


def _vision(bits: int | None) -> dict[str, str | int | float | bool | None]:
    return {"vision_bits": bits} if bits is not None else {}
