"""Cross-check a card's variants against what the Hub really holds. Pure.

The Hub is the truth for what exists and how big it is; the card is the only source for VRAM
figures and the author's intent. Card rows with no branch/file on the Hub stay listed (flagged)
but are never offered for download; Hub branches/files the card does not mention are shown with
what their names say.
"""

from __future__ import annotations

from collections.abc import Iterable

from quantpick.card.annotate import attach
from quantpick.card.names import variants_from_names
from quantpick.hub.matching import near_files
from quantpick.records import (
    BranchListing,
    HubStatus,
    ModelCard,
    RemoteFile,
    RepoListing,
    Source,
    Variant,
    VariantKind,
)
from quantpick.units import format_si_size

# Files that make a branch a non-variant when they are all it holds (bartowski's `main`).
_NON_WEIGHT_NAMES = frozenset(
    {"measurement.json", "readme.md", ".gitattributes", "license", "license.txt", "license.md"}
)
_NOT_IN_CARD = "on the Hub but not in the card"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".ggml")


def is_weight_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1].lower()
    return name.endswith(_WEIGHT_SUFFIXES) or ".gguf-split-" in name or ".gguf.part" in name


def branch_is_variant(branch: BranchListing) -> bool:
    """A branch with no weights (only measurement.json, README, ...) is no variant."""
    return any(is_weight_file(f.path) for f in branch.files)


def reconcile(card: ModelCard, listing: RepoListing) -> tuple[Variant, ...]:
    branches = {b.name: b for b in listing.branches}
    main = branches.get(listing.default_branch)
    own = listing.repo.lower()
    out: list[Variant] = []
    claimed_files: set[str] = set()
    claimed_branches: set[str] = set()
    tree = list(main.files) if main else []
    # exact matches first, so a near-name rule never takes a file another row names outright
    exact = {
        i: _files_of(v, tree)
        for i, v in enumerate(card.variants)
        if v.kind is VariantKind.FILE and (v.repo is None or v.repo.lower() == own)
    }
    claimed_files.update(f.path for files in exact.values() for f in files)
    for i, v in enumerate(card.variants):
        if v.kind is VariantKind.REPO:
            out.append(v)
            continue
        if v.repo is not None and v.repo.lower() != own:
            here = (
                v.name in branches
                if v.kind is VariantKind.BRANCH
                else bool(main and _files_of(v, main.files))
            )
            if not here:
                # the card describes another repo's quants (an original model's card)
                out.append(v)
                continue
            # a card copied from, or links left over from, a renamed repo: the variant is here
            v = v.model_copy(update={"repo": None})
        if v.kind is VariantKind.BRANCH:
            claimed_branches.add(v.name)
            out.append(_check_branch(v, branches.get(v.name)))
        else:
            files = exact.get(i) or _files_of(v, tree)
            if not files:
                files = near_files(v, tree, claimed_files)
            claimed_files.update(f.path for f in files)
            out.append(_check_files(v, files))
    out.extend(_hub_only_branches(listing, claimed_branches, card))
    if main is not None:
        out.extend(_hub_only_files(main, claimed_files, card))
    # a mention the card's own rows already hold stays with them, even one missing on the Hub:
    # the card meant that row, not the nearest file the Hub happens to have
    held = {m for v in out for m in v.mentions}
    loose = [m for m in card.mentions if m not in held]
    return tuple(_named_outside_tables(attach(out, loose, listing.repo)))


def _named_outside_tables(variants: list[Variant]) -> list[Variant]:
    """A Hub variant the card names only outside its tables (its figures from its name)."""
    out = []
    for v in variants:
        if v.hub_status is HubStatus.HUB_ONLY and v.mentions:
            places = ", ".join(sorted({m.place.value for m in v.mentions}))
            kept = tuple(w for w in v.warnings if not w.startswith(_NOT_IN_CARD))
            v = v.model_copy(
                update={
                    "hub_status": HubStatus.PRESENT,
                    "warnings": (*kept, f"the card names it only outside its tables ({places})"),
                }
            )
        out.append(v)
    return out


def _check_branch(v: Variant, branch: BranchListing | None) -> Variant:
    if branch is None:
        return v.model_copy(
            update={
                "hub_status": HubStatus.MISSING,
                "warnings": (*v.warnings, f"the card lists branch {v.name!r}, the Hub has none"),
            }
        )
    warnings = v.warnings
    if not branch_is_variant(branch):
        warnings = (*warnings, f"branch {v.name!r} holds no weight files on the Hub")
    return v.model_copy(
        update={
            "hub_status": HubStatus.PRESENT if branch_is_variant(branch) else HubStatus.MISSING,
            "size_bytes": branch.total_bytes,
            "size_source": Source.HUB,
            "warnings": (*warnings, *_size_warning(v, branch.total_bytes)),
        }
    )


def _files_of(v: Variant, tree: Iterable[RemoteFile]) -> list[RemoteFile]:
    """The Hub files behind a file variant: its parts, its folder, or its name (+ split parts)."""
    tree = list(tree)
    if v.files:
        wanted = set(v.files)
        found = [f for f in tree if f.path in wanted or f.path.rsplit("/", 1)[-1] in wanted]
        if found:
            return found
    if v.folder:
        prefix = v.folder.rstrip("/") + "/"
        found = [f for f in tree if f.path.startswith(prefix) and is_weight_file(f.path)]
        if found:
            return found
    exact = [f for f in tree if f.path == v.name or f.path.rsplit("/", 1)[-1] == v.name]
    if exact:
        return exact
    # TheBloke uploads files over 50 GB as NAME-split-a, NAME-split-b
    return [f for f in tree if f.path.rsplit("/", 1)[-1].startswith(v.name + "-split-")]


def _check_files(v: Variant, files: list[RemoteFile]) -> Variant:
    if not files:
        return v.model_copy(
            update={
                "hub_status": HubStatus.MISSING,
                "warnings": (*v.warnings, f"the card lists {v.name!r}, the Hub has no such file"),
            }
        )
    total = sum(f.size_bytes for f in files)
    update: dict[str, object] = {
        "hub_status": HubStatus.PRESENT,
        "size_bytes": total,
        "size_source": Source.HUB,
        "files": tuple(sorted(f.path for f in files)),
        "warnings": (*v.warnings, *_size_warning(v, total)),
    }
    return v.model_copy(update=update)


def _size_warning(v: Variant, hub_bytes: int) -> tuple[str, ...]:
    if v.size_bytes is None or v.size_source is not Source.CARD or hub_bytes == 0:
        return ()
    ratio = v.size_bytes / hub_bytes
    if abs(ratio - 1) <= 0.05:
        return ()
    card, hub = format_si_size(v.size_bytes), format_si_size(hub_bytes)
    return (f"the card says {card}, the Hub holds {hub} (Hub figure used)",)


def _hub_only_branches(listing: RepoListing, claimed: set[str], card: ModelCard) -> list[Variant]:
    names = [
        b.name
        for b in listing.branches
        if b.name not in claimed and branch_is_variant(b) and not _is_file_repo_main(card, b)
    ]
    sizes = {b.name: b.total_bytes for b in listing.branches}
    return [
        v.model_copy(
            update={
                "hub_status": HubStatus.HUB_ONLY,
                "size_bytes": sizes[v.name],
                "size_source": Source.HUB,
                "warnings": (*v.warnings, f"{_NOT_IN_CARD}: figures from its name"),
            }
        )
        for v in variants_from_names(names, VariantKind.BRANCH)
    ]


def _is_file_repo_main(card: ModelCard, branch: BranchListing) -> bool:
    """The main branch of a file-per-variant (GGUF) repo is not itself a variant."""
    if branch.name != "main":
        return False
    return any(v.kind is VariantKind.FILE for v in card.variants) or any(
        _is_quant_file(f.path) for f in branch.files
    )


def _hub_only_files(main: BranchListing, claimed: set[str], card: ModelCard) -> list[Variant]:
    if any(v.kind is VariantKind.BRANCH for v in card.variants):
        return []
    loose = [f for f in main.files if f.path not in claimed and _is_quant_file(f.path)]
    sizes = {f.path: f.size_bytes for f in main.files}
    out = []
    for v in variants_from_names([f.path for f in loose], VariantKind.FILE):
        paths = v.files or (v.name,)
        out.append(
            v.model_copy(
                update={
                    "hub_status": HubStatus.HUB_ONLY,
                    "size_bytes": sum(sizes.get(p, 0) for p in paths),
                    "size_source": Source.HUB,
                    "warnings": (*v.warnings, _NOT_IN_CARD),
                }
            )
        )
    return out


def _is_quant_file(path: str) -> bool:
    name = path.lower()
    return name.endswith((".gguf", ".ggml")) or ".gguf-split-" in name
