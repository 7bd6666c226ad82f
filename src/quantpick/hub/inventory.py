"""What quantpick knows about one model repo: the card's variants, checked against the Hub, and the
model's shape. The one place that strings card.parser, hub.client and reconcile together."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.card.parser import parse_card
from quantpick.errors import CardError, QuantpickError, UsageError
from quantpick.estimate.shape import shape_from_config
from quantpick.hub.config_facts import config_facts
from quantpick.hub.gguf_facts import gguf_facts
from quantpick.hub.reconcile import branch_is_variant, reconcile
from quantpick.hub.safetensors_facts import safetensors_facts
from quantpick.records import (
    HubStatus,
    ModelCard,
    ModelShape,
    Record,
    RepoListing,
    Variant,
    VariantKind,
)

if TYPE_CHECKING:
    from quantpick.hub.client import Hub


class Inventory(Record):
    repo: str | None
    revision: str | None = None
    card: ModelCard
    variants: tuple[Variant, ...]
    listing: RepoListing | None = None
    shape: ModelShape | None = None
    # where the shape came from: "--config FILE", "REPO@BRANCH/config.json", ...
    shape_origin: str | None = None
    warnings: tuple[str, ...] = ()

    def find(self, name: str) -> Variant | None:
        for v in self.variants:
            if v.name == name or name in v.files:
                return v
        return None


# A card of 100k table rows is ~10 MB; anything far beyond is not a model card or config.
MAX_LOCAL_FILE_BYTES = 64 << 20


def read_text(path: Path, what: str) -> str:
    """A user's --card/--config: a regular file, bounded in size, never a FIFO or a device."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang before the type check
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(
                    f"{what} {path} is not a regular file", "give the path of a file on disk"
                )
            data = f.read(MAX_LOCAL_FILE_BYTES + 1)
        if len(data) > MAX_LOCAL_FILE_BYTES:
            raise UsageError(
                f"{what} {path} is larger than {MAX_LOCAL_FILE_BYTES >> 20} MiB",
                "give a model card or config.json, not another file",
            )
        return data.decode("utf-8", errors="replace")
    except FileNotFoundError:
        raise UsageError(f"{what} {path} does not exist", "check the path") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path} is a directory", "give the path of a file") from None
    except OSError as exc:
        raise UsageError(
            f"cannot read {what} {path}: {exc.strerror}", "check its permissions"
        ) from None


def load_config_file(path: Path) -> ModelShape:
    text = read_text(path, "config file")
    try:
        data = json.loads(text)
    except RecursionError:
        raise UsageError(f"{path} is nested too deeply", "give a model's config.json") from None
    except ValueError:
        raise UsageError(f"{path} is not JSON", "give a model's config.json") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path} is not a config.json object", "give a model's config.json")
    try:
        return shape_from_config(data)
    except QuantpickError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(
            f"{path} lacks what a model shape needs ({exc})", "give a transformer's config.json"
        ) from None


def from_card_file(path: Path, config: Path | None = None, repo: str | None = None) -> Inventory:
    card = parse_card(read_text(path, "card"), repo=repo)
    shape = load_config_file(config) if config else None
    return Inventory(
        repo=card.repo or repo,
        card=card,
        variants=card.variants,
        shape=shape,
        shape_origin=f"--config {config}" if config else None,
    )


def from_hub(
    hub: Hub,
    repo: str,
    revision: str | None = None,
    config: Path | None = None,
    *,
    safetensors_headers: bool = True,
) -> Inventory:
    """`safetensors_headers=False` (search's many repos, a fetch that sizes nothing) skips the
    branches' safetensors headers: they refine a listing's facts and estimates, nothing else."""
    # the listing first: an API call that fails fast when the Hub is unreachable, where the card's
    # download would sit through huggingface_hub's own retries
    listing = hub.listing(repo)
    text = hub.card_text(repo, revision)
    card = parse_card(text or "", repo=repo)
    variants = reconcile(card, listing)
    warnings: list[str] = []
    if text is None:
        warnings.append(f"{repo} has no model card: variants come from branch and file names")
    shape: ModelShape | None
    origin: str | None
    if config is not None:
        shape, origin = load_config_file(config), f"--config {config}"
    else:
        shape, origin = _shape_from_hub(hub, card, listing, variants)
    variants = config_facts(hub, listing, variants)
    if safetensors_headers:
        variants = safetensors_facts(hub, listing, variants)
    variants, header_shape, header_origin = gguf_facts(hub, listing, variants)
    if shape is None and header_shape is not None:
        shape, origin = header_shape, header_origin
    if shape is None:
        warnings.append("no config.json found: estimates use card figures only")
    warnings.extend(hub.warnings)
    return Inventory(
        repo=repo,
        revision=revision,
        card=card,
        variants=variants,
        listing=listing,
        shape=shape,
        shape_origin=origin,
        warnings=tuple(warnings),
    )


def require_variants(inv: Inventory) -> None:
    if not inv.variants:
        where = inv.repo or "this card"
        raise CardError(
            f"no quantized variants found in {where}",
            "the card has no variant table and no branch/file names that say what they are",
        )


def _shape_from_hub(
    hub: Hub, card: ModelCard, listing: RepoListing, variants: tuple[Variant, ...]
) -> tuple[ModelShape | None, str | None]:
    """config.json from a variant's branch, else from main, else from the base model."""
    candidates: list[tuple[str, str]] = []
    for v in variants:
        # a branch the card does not list still holds the same model's config.json
        if v.kind is VariantKind.BRANCH and v.hub_status in (HubStatus.PRESENT, HubStatus.HUB_ONLY):
            candidates.append((listing.repo, v.name))
            break
    for b in listing.branches:
        if b.name == listing.default_branch and any(f.path == "config.json" for f in b.files):
            candidates.append((listing.repo, b.name))
    candidates.extend((base, "main") for base in card.base_models)
    for repo, rev in candidates:
        if repo == listing.repo and not _has_config(listing, rev):
            continue
        try:
            data = hub.config(repo, rev)
        except QuantpickError:
            # a base model we cannot reach only costs us the formula estimate
            data = None
        if data is None:
            continue
        try:
            return shape_from_config(data), f"{repo}@{rev}/config.json"
        except (KeyError, TypeError, ValueError, QuantpickError):
            # an unreadable config.json costs the formula estimate, not the listing
            continue
    return None, None


def _has_config(listing: RepoListing, branch: str) -> bool:
    for b in listing.branches:
        if b.name == branch:
            return branch_is_variant(b) or any(f.path == "config.json" for f in b.files)
    return False
