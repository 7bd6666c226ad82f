"""Each branch variant's config.json `quantization_config`, read in parallel and applied."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from quantpick.errors import QuantpickError
from quantpick.hub.quant_config import apply_quant_config, read_quant_config
from quantpick.records import HubStatus, RepoListing, Variant, VariantKind

if TYPE_CHECKING:
    from quantpick.hub.client import Hub

PARALLEL = 8
# a repo with more branches than this keeps what card and names say for the rest
MAX_BRANCHES = 48


def own_branches(variants: tuple[Variant, ...], holding: set[str]) -> list[str]:
    """This repo's branch variants the Hub holds, among the branches `holding` names, bounded."""
    return [
        v.name
        for v in variants
        if v.kind is VariantKind.BRANCH
        and v.repo is None
        and v.hub_status in (HubStatus.PRESENT, HubStatus.HUB_ONLY)
        and v.name in holding
    ][:MAX_BRANCHES]


def config_facts(
    hub: Hub, listing: RepoListing, variants: tuple[Variant, ...]
) -> tuple[Variant, ...]:
    with_config = {
        b.name for b in listing.branches if any(f.path == "config.json" for f in b.files)
    }
    names = own_branches(variants, with_config)
    if not names:
        return variants

    def one(branch: str) -> dict[str, Any] | None:
        try:
            return hub.config(listing.repo, branch)
        except QuantpickError:
            # an unreadable config.json costs its facts, not the listing
            return None

    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(names))) as pool:
        configs = dict(zip(names, pool.map(one, names), strict=True))
    out = []
    for v in variants:
        data = configs.get(v.name) if v.kind is VariantKind.BRANCH and v.repo is None else None
        qc = read_quant_config(data) if data else None
        if qc is not None:
            v = apply_quant_config(v, qc, f"{v.name}/config.json")
        out.append(v)
    return tuple(out)
