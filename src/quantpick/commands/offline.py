"""`fetch` with HF_HUB_OFFLINE=1 (or --offline): a directory a fetch completed is the answer,
re-checked against its manifest; nothing else can be fetched without the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from quantpick.commands.results import FetchResult, FileOut, FileStatus, chosen
from quantpick.errors import IntegrityError, NetworkError

if TYPE_CHECKING:
    from quantpick.commands.args import BudgetArgs, HubArgs
    from quantpick.commands.fetch import Choice, FetchArgs
    from quantpick.commands.report import Reporter


def offline_fetch(
    repo: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
    opts: FetchArgs,
    out: Reporter,
) -> FetchResult:
    from quantpick.download.manifest import read_manifest, verify
    from quantpick.download.plan import default_local_dir

    named = choice.branch or choice.file
    target = opts.local_dir
    if target is None:
        name = named or _cached_pick(repo, choice, budget_args, config, hub_args)
        from quantpick.commands.fetch import models_dir
        from quantpick.records import Format, Variant, VariantKind

        stand_in = Variant(name=name, kind=VariantKind.BRANCH, format=Format.OTHER)
        target = models_dir(repo, stand_in) or default_local_dir(repo, name)
    manifest = read_manifest(target)
    wanted = f"{repo} {named}" if named else repo
    if manifest is None or manifest.repo != repo or (named and not _same(manifest.variant, named)):
        raise NetworkError(
            f"offline (HF_HUB_OFFLINE), and {target} holds no completed fetch of {wanted}",
            "run the same fetch once online; offline, only a completed directory is re-checked",
        )
    report = verify(target, full=True)
    if not report.passed:
        raise IntegrityError(
            f"offline, and {len(report.failed)} files in {target} are damaged: "
            + ", ".join(report.failed[:3]),
            "run the fetch online to repair it",
        )
    out.info(f"offline: {target} holds {repo} {manifest.variant.name}, re-checked (sha256)")
    chose = chosen(manifest.repo, manifest.variant)
    assert chose is not None
    return FetchResult(
        repo=manifest.repo,
        variant=manifest.variant.name,
        chosen=chose,
        format=manifest.variant.format,
        revision=manifest.revision,
        commit_sha=manifest.commit_sha,
        local_dir=str(target.resolve()),
        dry_run=False,
        transferred_bytes=0,
        files=tuple(
            FileOut(
                path=f.path, size_bytes=f.size_bytes, sha256=f.sha256, status=FileStatus.VERIFIED
            )
            for f in manifest.files
        ),
        reasons=manifest.reasons,
    )


def _same(variant: object, named: str) -> bool:
    from quantpick.records import Variant

    return isinstance(variant, Variant) and (variant.name == named or named in variant.files)


def _cached_pick(
    repo: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
) -> str:
    """The variant the last look-up recommends, for the default directory's name."""
    from quantpick.commands.fetch import choose_variant
    from quantpick.hub.inventory import from_hub

    inv = from_hub(hub_args.connect(), repo, None, config)
    variant, _ = choose_variant(inv, choice, budget_args)
    return variant.name
