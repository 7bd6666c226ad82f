"""What the safetensors headers add to a listing: per branch variant, the dtypes, parameter
counts and exact weight bytes, read with huggingface_hub's `get_safetensors_metadata`.

Bounded: a branch's headers cost the index (sharded) and one ranged GET of 100 kB per shard
(a second only for a header beyond that), besides huggingface_hub's one or two existence checks;
at most config_facts.MAX_BRANCHES branches, PARALLEL at a time. Cached under the branch's
commit, like the GGUF headers: a second `list` of the same commit asks the Hub for nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huggingface_hub import HfApi
from huggingface_hub.errors import NotASafetensorsRepoError, SafetensorsParsingError
from pydantic import ValidationError

from quantpick.errors import QuantpickError
from quantpick.hub.config_facts import PARALLEL, own_branches
from quantpick.hub.lookup_cache import cache_leaf
from quantpick.records import (
    BranchListing,
    RepoListing,
    SafetensorsFacts,
    Source,
    Variant,
    VariantKind,
)

if TYPE_CHECKING:
    from huggingface_hub import SafetensorsRepoMetadata

    from quantpick.hub.client import Hub

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
_NONE = "not-safetensors"


class _Api(HfApi):
    """HfApi whose index download lands in quantpick's hub cache, not the import-time default."""

    def __init__(self, cache_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._cache_dir = cache_dir

    def hf_hub_download(self, *args: Any, **kwargs: Any) -> str:  # type: ignore[override]
        kwargs.setdefault("cache_dir", self._cache_dir)
        return str(super().hf_hub_download(*args, **kwargs))


def _holds_safetensors(branch: BranchListing) -> bool:
    paths = {f.path for f in branch.files}
    return SINGLE in paths or INDEX in paths


def _summary(meta: SafetensorsRepoMetadata) -> SafetensorsFacts:
    tensors = [t for f in meta.files_metadata.values() for t in f.tensors.values()]
    return SafetensorsFacts(
        parameters_by_dtype=dict(sorted(meta.parameter_count.items())),
        parameter_count=sum(meta.parameter_count.values()),
        weights_bytes=sum(t.data_offsets[1] - t.data_offsets[0] for t in tensors),
        shards=len(meta.files_metadata),
    )


def read_safetensors(
    hub: Hub, api: HfApi, repo: str, branch: BranchListing
) -> SafetensorsFacts | None:
    """One branch's headers at its commit; None when it holds no readable safetensors."""
    leaf = cache_leaf("safetensors", branch.commit_sha, "json")
    text = hub.cached_text(repo, leaf)
    if text == _NONE:
        return None
    if text:
        try:
            return SafetensorsFacts.model_validate_json(text)
        except ValidationError:
            pass
    if hub.settings.offline:
        # offline answers from the last look-up: what was read then, nothing new
        return None
    try:
        meta = hub.call(
            repo,
            branch.name,
            lambda: api.get_safetensors_metadata(repo, revision=branch.commit_sha),
        )
    except (NotASafetensorsRepoError, SafetensorsParsingError):
        hub.cache_text(repo, leaf, _NONE)
        return None
    except QuantpickError:
        # an unreadable header costs its facts, not the listing
        return None
    facts = _summary(meta)
    hub.cache_text(repo, leaf, facts.model_dump_json())
    return facts


def safetensors_facts(
    hub: Hub, listing: RepoListing, variants: tuple[Variant, ...]
) -> tuple[Variant, ...]:
    branches = {b.name: b for b in listing.branches if _holds_safetensors(b)}
    names = own_branches(variants, set(branches))
    if not names:
        return variants
    s = hub.settings
    # one client for every branch (False: no stored token we did not choose, as Hub's own)
    api = _Api(s.cache_dir, endpoint=s.endpoint, token=s.token or False, library_name="quantpick")
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(names))) as pool:
        read = pool.map(lambda n: read_safetensors(hub, api, listing.repo, branches[n]), names)
        facts = dict(zip(names, read, strict=True))
    out = []
    for v in variants:
        found = facts.get(v.name) if v.kind is VariantKind.BRANCH and v.repo is None else None
        if found is not None:
            v = v.model_copy(
                update={
                    "safetensors": found,
                    "weights_bytes": found.weights_bytes,
                    "weights_source": Source.HEADER,
                }
            )
        out.append(v)
    return tuple(out)
