"""What the GGUF headers add to a listing: exact weight bytes per variant, and the model's shape
when no config.json gives it (most GGUF repos have none, and their base model is often gated)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from quantpick.hub.gguf_header import shape_from_header
from quantpick.hub.headers import read_headers
from quantpick.records import (
    Format,
    HubStatus,
    ModelShape,
    RemoteFile,
    RepoListing,
    Role,
    Source,
    Variant,
)

if TYPE_CHECKING:
    from quantpick.hub.client import Hub


def _gguf_files(v: Variant) -> tuple[str, ...]:
    if v.format is not Format.GGUF or v.hub_status not in (HubStatus.PRESENT, HubStatus.HUB_ONLY):
        return ()
    return tuple(p for p in (v.files or (v.name,)) if p.lower().endswith(".gguf"))


def gguf_facts(
    hub: Hub, listing: RepoListing, variants: tuple[Variant, ...]
) -> tuple[tuple[Variant, ...], ModelShape | None, str | None]:
    main = next((b for b in listing.branches if b.name == listing.default_branch), None)
    if main is None or hub.settings.offline:
        return variants, None, None
    by_path: dict[str, RemoteFile] = {f.path: f for f in main.files}
    wanted = [by_path[p] for v in variants for p in _gguf_files(v) if p in by_path]
    if not wanted:
        return variants, None, None
    headers, _ = read_headers(hub, listing.repo, main.name, main.commit_sha, wanted)
    out = []
    shape: ModelShape | None = None
    origin: str | None = None
    for v in variants:
        paths = [p for p in _gguf_files(v) if p in by_path]
        if paths and all(p in headers for p in paths):
            total = sum(headers[p].tensor_bytes for p in paths)
            v = v.model_copy(update={"weights_bytes": total, "weights_source": Source.HEADER})
            if shape is None and v.role is Role.MODEL:
                shape = shape_from_header(headers[sorted(paths)[0]])
                if shape is not None:
                    origin = f"{listing.repo}@{main.name}/{sorted(paths)[0]} (GGUF header)"
        out.append(v)
    return tuple(out), shape, origin
