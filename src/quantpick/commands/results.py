"""The versioned JSON envelopes quantpick prints with --json; JSON Schemas live in docs/schema/.

A change that removes or renames a field bumps the `@N` in `schema`; adding a field does not.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, Field

from quantpick.records import (
    Breakdown,
    Budget,
    CacheMode,
    Candidate,
    Format,
    ModelCard,
    Provenance,
    Record,
    Runtime,
    Source,
    Variant,
    VariantKind,
)


class Envelope(Record):
    # `schema` would shadow a BaseModel attribute, hence the alias
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class EstimateOut(Record):
    context_tokens: int
    vram_bytes: int | None
    provenance: Provenance | None
    breakdown: Breakdown | None
    # where the breakdown's weights came from: header (exact tensor bytes), hub, card, estimate
    weights_source: Source | None = None
    fits: bool
    margin_bytes: int | None
    max_context_tokens: int | None
    runtime: Runtime | None
    cache_mode: CacheMode
    warnings: tuple[str, ...] = ()
    # why there is no estimate, or why the variant is never picked
    reason: str = ""
    # llama.cpp: the flash-attention mode assumed; a partial offload's -ngl of total_layers + 1
    # (the output layer counts), what stays in system memory, and each GPU's share
    flash_attn: bool | None = None
    partial: bool = False
    gpu_layers: int | None = None
    total_layers: int | None = None
    host_bytes: int | None = None
    per_gpu_bytes: tuple[int, ...] = ()


class ListedVariant(Variant):
    estimate: EstimateOut | None = None
    picked: bool = False


class Chosen(Record):
    """The variant a command chose (or was told to take): the same field in every envelope."""

    repo: str | None
    name: str
    kind: VariantKind
    format: Format


def chosen(repo: str | None, v: Variant | None) -> Chosen | None:
    return None if v is None else Chosen(repo=repo, name=v.name, kind=v.kind, format=v.format)


class CardInfo(Record):
    base_models: tuple[str, ...]
    vram_context_tokens: int | None
    vram_cache_mode: CacheMode | None
    vram_note: str
    warnings: tuple[str, ...]


class ListResult(Envelope):
    schema_: Literal["quantpick/list@1"] = Field("quantpick/list@1", alias="schema")
    repo: str | None
    revision: str | None
    source: Literal["card-file", "hub", "hub-cache"]
    cached_at_unix: float | None = None
    card: CardInfo
    shape_origin: str | None
    budget: Budget | None = None
    pick: str | None = None
    # the picked variant, the same field in every envelope
    chosen: Chosen | None = None
    variants: tuple[ListedVariant, ...]
    warnings: tuple[str, ...] = ()


class ErrorInfo(Record):
    exit_code: int
    # the error's class of failure, e.g. "not_found", "nothing_fits"
    kind: str
    message: str
    hint: str


class PickResult(Envelope):
    schema_: Literal["quantpick/pick@1"] = Field("quantpick/pick@1", alias="schema")
    repo: str | None
    budget: Budget
    pick: ListedVariant | None
    chosen: Chosen | None = None
    runner_up: ListedVariant | None
    reasons: tuple[str, ...]
    candidates: tuple[ListedVariant, ...]
    # nothing fits (exit 4): the error, in the one document a script reads
    error: ErrorInfo | None = None


class FileStatus(StrEnum):
    # fetch: hashed by this run and in place
    VERIFIED = "verified"
    # fetch: hashed by an earlier run, trusted because its size and mtime have not changed since
    UNCHANGED = "unchanged since checked"
    # fetch --dry-run: what is on disk before the run; fetch: "unverified" = the Hub gave no hash
    COMPLETE = "complete"
    PARTIAL = "partial"
    UNVERIFIED = "unverified"
    MISSING = "missing"
    # verify
    OK = "ok"
    WRONG_SIZE = "wrong size"
    WRONG_SHA256 = "wrong sha256"


class FileOut(Record):
    path: str
    size_bytes: int
    sha256: str | None = None
    status: FileStatus
    # fetch --dry-run: the engine that will move it (ranged, hf_transfer, hub)
    backend: str | None = None


class FetchResult(Envelope):
    schema_: Literal["quantpick/fetch@2"] = Field("quantpick/fetch@2", alias="schema")
    repo: str
    variant: str
    chosen: Chosen
    format: Format
    # the pick's estimate, or the named variant's when --vram was given; None otherwise
    estimate: EstimateOut | None = None
    revision: str
    commit_sha: str
    local_dir: str
    dry_run: bool
    transferred_bytes: int
    # bytes of partly downloaded files an earlier, interrupted run left: this run resumed them
    resumed_bytes: int = 0
    # with --dry-run: what a real run would still transfer
    missing_bytes: int = 0
    files: tuple[FileOut, ...]
    reasons: tuple[str, ...] = ()


class VerifyResult(Envelope):
    schema_: Literal["quantpick/verify@1"] = Field("quantpick/verify@1", alias="schema")
    local_dir: str
    ok: bool
    # why nothing could be checked (no manifest, unreadable manifest)
    problem: str | None = None
    files: tuple[FileOut, ...]
    # a failed check: the error, in the one document a script reads
    error: ErrorInfo | None = None


class Hit(Record):
    rank: int
    repo: str
    variant: ListedVariant


class Skipped(Record):
    repo: str
    reason: str


class SearchResult(Envelope):
    schema_: Literal["quantpick/search@1"] = Field("quantpick/search@1", alias="schema")
    base_model: str
    budget: Budget
    repos: tuple[str, ...]
    hits: tuple[Hit, ...]
    # the best variant that fits, across every repo (`fetch --search` takes it)
    chosen: Chosen | None = None
    skipped: tuple[Skipped, ...] = ()


class ErrorResult(Envelope):
    """What every command prints on stdout with --json when it fails (besides the stderr lines)."""

    schema_: Literal["quantpick/error@1"] = Field("quantpick/error@1", alias="schema")
    command: str
    error: ErrorInfo


def card_info(card: ModelCard) -> CardInfo:
    return CardInfo(
        base_models=card.base_models,
        vram_context_tokens=card.vram_context_tokens,
        vram_cache_mode=card.vram_cache_mode,
        vram_note=card.vram_note,
        warnings=card.warnings,
    )


def listed(
    v: Variant, cand: Candidate | None = None, budget: Budget | None = None, picked: bool = False
) -> ListedVariant:
    est: EstimateOut | None = None
    if cand is not None and budget is not None:
        e = cand.estimate
        est = EstimateOut(
            context_tokens=budget.context_tokens,
            vram_bytes=e.vram_bytes if e else None,
            provenance=e.provenance if e else None,
            breakdown=e.breakdown if e else None,
            weights_source=e.weights_source if e else None,
            fits=cand.fits,
            margin_bytes=cand.margin_bytes,
            max_context_tokens=cand.max_context_tokens,
            runtime=e.runtime if e else None,
            cache_mode=budget.cache_mode,
            warnings=e.warnings if e else (),
            reason="" if e else cand.reason,
            flash_attn=e.flash_attn if e else None,
            partial=cand.partial,
            gpu_layers=e.gpu_layers if e else None,
            total_layers=e.total_layers if e else None,
            host_bytes=e.host_bytes if e else None,
            per_gpu_bytes=e.per_gpu_bytes if e else (),
        )
    return ListedVariant(**v.model_dump(), estimate=est, picked=picked)
