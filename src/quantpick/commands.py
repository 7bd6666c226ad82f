"""What each command does, free of typer and rich: arguments in, a result record out.

Heavy modules (huggingface_hub behind `hub`, hf_transfer behind `download`) are imported inside the
functions that need them, so `quantpick --help` and `--card` runs start fast.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from quantpick.errors import NetworkError, NothingFitsError, QuantpickError, UsageError
from quantpick.inventory import Inventory, from_card_file, require_variants
from quantpick.records import Budget, HubStatus, Variant, VariantKind
from quantpick.results import (
    FetchResult,
    FileOut,
    ListResult,
    PickResult,
    VerifyResult,
    card_info,
    listed,
)

if TYPE_CHECKING:
    from quantpick.hub import Hub
    from quantpick.plan import FetchPlan
    from quantpick.records import Recommendation
    from quantpick.render import Out

DEFAULT_CONTEXT = "4k"
# Beyond these a figure is a typo, not a GPU or a model: refuse rather than print 27-digit GiB.
MAX_CONTEXT_TOKENS = 1 << 24
MAX_VRAM = 64 << 40

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def split_repo(spec: str) -> tuple[str, str | None]:
    """OWNER/NAME[:BRANCH] -> (repo, branch)."""
    repo, sep, branch = spec.partition(":")
    if not _REPO_ID.match(repo) or ".." in repo:
        raise UsageError(f"not a repo id: {spec!r}", "write it as OWNER/NAME or OWNER/NAME:BRANCH")
    if sep and not branch:
        raise UsageError(f"empty branch in {spec!r}", "write OWNER/NAME:BRANCH")
    return repo, branch or None


@dataclass(frozen=True)
class HubArgs:
    endpoint: str | None
    token: str | None
    cache_dir: Path | None
    offline: bool
    verbose: bool = False

    def connect(self, *, needs_network: bool = False) -> Hub:
        from quantpick.hub import (
            DEFAULT_ENDPOINT,
            Hub,
            HubSettings,
            RedactingFilter,
            default_cache_dir,
            is_offline_env,
            resolve_token,
        )

        offline = self.offline or is_offline_env()
        if needs_network and offline:
            raise NetworkError(
                "this command needs the Hub, and offline mode is on (HF_HUB_OFFLINE)",
                "unset HF_HUB_OFFLINE; `quantpick list --offline` answers from the cache",
            )
        token = resolve_token(self.token)
        if self.verbose:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
            handler.addFilter(RedactingFilter(token))
            http_log = logging.getLogger("httpx2")
            http_log.addHandler(handler)
            http_log.setLevel(logging.INFO)
        return Hub(
            HubSettings(
                endpoint=(self.endpoint or DEFAULT_ENDPOINT).rstrip("/"),
                token=token,
                cache_dir=self.cache_dir or default_cache_dir(),
                offline=offline,
                verbose=self.verbose,
            )
        )


@dataclass(frozen=True)
class BudgetArgs:
    vram: str | None
    ctx: str | None
    cache: str
    runtime: str | None
    reserve: str

    def budget(self) -> Budget:
        from quantpick import units

        if not self.vram:
            raise UsageError("--vram is required here", f"accepted forms: {units.VRAM_FORMS}")
        parsed = units.parse_vram(self.vram)
        source: Literal["user", "nvidia-smi"] = "user"
        if parsed == "auto":
            from quantpick.gpu import detect_vram

            parsed, source = detect_vram(), "nvidia-smi"
        budget = Budget(
            gpu_vram_bytes=parsed,
            reserve_bytes=units.parse_amount_bytes(self.reserve, what="reserve"),
            context_tokens=units.parse_context(self.ctx or DEFAULT_CONTEXT),
            cache_mode=units.parse_cache_mode(self.cache),
            runtime=units.parse_runtime(self.runtime) if self.runtime else None,
            source=source,
        )
        if budget.usable_bytes <= 0:
            raise UsageError(
                f"--reserve {self.reserve} leaves no VRAM to use",
                "the reserve is kept free on each GPU: make it smaller than --vram",
            )
        if budget.context_tokens > MAX_CONTEXT_TOKENS or max(budget.gpu_vram_bytes) > MAX_VRAM:
            raise UsageError(
                "--ctx or --vram is beyond any real GPU or model",
                f"contexts up to {MAX_CONTEXT_TOKENS // (1 << 20)}M tokens, VRAM up to 64 TiB",
            )
        return budget

    @classmethod
    def given(
        cls,
        vram: str | None,
        ctx: str | None,
        cache: str,
        runtime: str | None,
        reserve: str,
        *,
        default_reserve: str,
    ) -> BudgetArgs | None:
        """The budget flags, or None when there is no --vram (then the others must be absent)."""
        if vram:
            return cls(vram, ctx, cache, runtime, reserve)
        stray = [
            flag
            for flag, used in (
                ("--ctx", ctx is not None),
                ("--cache", cache.lower() != "fp16"),
                ("--runtime", runtime is not None),
                ("--reserve", reserve != default_reserve),
            )
            if used
        ]
        if stray:
            verb = "needs" if len(stray) == 1 else "need"
            raise UsageError(f"{', '.join(stray)} {verb} --vram", "e.g. --vram 24 --ctx 16k")
        return None


def load(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
) -> tuple[Inventory, str | None]:
    """The inventory of a local card or a Hub repo, and the branch named as REPO:BRANCH."""
    if card is not None:
        if repo is not None:
            raise UsageError("give either REPO or --card, not both", "drop one of them")
        inv = from_card_file(card, config)
        require_variants(inv)
        return inv, None
    if repo is None:
        raise UsageError("no repo given", "quantpick list OWNER/NAME, or --card README.md")
    repo_id, branch = split_repo(repo)
    from quantpick.inventory import from_hub

    inv = from_hub(hub_args.connect(), repo_id, revision, config)
    require_variants(inv)
    return inv, branch


def recommend_for(inv: Inventory, budget: Budget) -> Recommendation:
    from quantpick.recommend import recommend

    variants = inv.variants
    if inv.listing is not None:
        # checked against the Hub: only what this repo really holds can be fetched from it
        variants = tuple(v for v in variants if downloadable(v))
    return recommend(variants, inv.shape, budget, card_cache_mode=inv.card.vram_cache_mode)


def list_variants(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
    budget_args: BudgetArgs | None,
    out: Out,
) -> ListResult:
    inv, branch = load(repo, card, revision, config, hub_args)
    variants = inv.variants
    if branch is not None:
        variants = tuple(v for v in variants if v.name == branch)
        if not variants:
            from quantpick.errors import RevisionNotFoundError

            raise RevisionNotFoundError(f"{inv.repo} has no variant {branch!r}")
    budget = budget_args.budget() if budget_args else None
    pick_name: str | None = None
    entries = tuple(listed(v) for v in variants)
    if budget is not None:
        rec = recommend_for(inv.model_copy(update={"variants": variants}), budget)
        by_name = {c.variant.name: c for c in rec.candidates}
        pick_name = rec.pick.variant.name if rec.pick else None
        entries = tuple(
            listed(v, by_name.get(v.name), budget, picked=v.name == pick_name) for v in variants
        )
    listing = inv.listing
    return ListResult(
        repo=inv.repo,
        revision=revision,
        source="card-file"
        if card
        else ("hub-cache" if listing and listing.cached_at_unix else "hub"),
        cached_at_unix=listing.cached_at_unix if listing else None,
        card=card_info(inv.card),
        shape_origin=inv.shape_origin,
        budget=budget,
        pick=pick_name,
        variants=entries,
        warnings=inv.warnings,
    )


def pick(
    repo: str | None,
    card: Path | None,
    revision: str | None,
    config: Path | None,
    hub_args: HubArgs,
    budget_args: BudgetArgs,
    out: Out,
) -> PickResult:
    budget = budget_args.budget()
    inv, branch = load(repo, card, revision, config, hub_args)
    if branch is not None:
        raise UsageError(
            f"pick chooses the branch; {repo} names one already",
            f"drop ':{branch}', or run `quantpick list {repo}` to see its estimate",
        )
    rec = recommend_for(inv, budget)
    return pick_result(inv, rec)


def pick_result(inv: Inventory, rec: Recommendation) -> PickResult:
    b = rec.budget
    return PickResult(
        repo=inv.repo,
        budget=b,
        pick=listed(rec.pick.variant, rec.pick, b, picked=True) if rec.pick else None,
        runner_up=listed(rec.runner_up.variant, rec.runner_up, b) if rec.runner_up else None,
        reasons=rec.reasons,
        candidates=tuple(listed(c.variant, c, b) for c in rec.candidates),
    )


def exit_if_nothing_fits(result: PickResult, out: Out | None) -> None:
    from quantpick.units import format_gib

    if result.pick is not None:
        return
    sized = [
        (c.estimate.vram_bytes, c.name)
        for c in result.candidates
        if c.estimate is not None and c.estimate.vram_bytes is not None
    ]
    if not sized:
        causes = sorted(
            {
                c.estimate.reason.removeprefix("no estimate: ")
                for c in result.candidates
                if c.estimate is not None and c.estimate.reason
            }
        )
        hint = (
            "drop --runtime, or choose one that loads this repo's format"
            if any("cannot load" in c for c in causes)
            else "pass --config with the model's config.json so quantpick can estimate"
        )
        raise NothingFitsError(
            "no variant can be sized: " + ("; ".join(causes) or "no VRAM figure or estimate"),
            hint,
        )
    need, name = min(sized)
    usable = result.budget.usable_bytes
    raise NothingFitsError(
        f"nothing fits: the smallest, {name}, needs {format_gib(need)}, "
        f"{format_gib(need - usable)} more than the {format_gib(usable)} usable",
        "try a shorter --ctx, a quantized --cache (q8, q4), or more --vram",
    )


def downloadable(v: Variant) -> bool:
    return v.hub_status in (HubStatus.PRESENT, HubStatus.HUB_ONLY)


@dataclass(frozen=True)
class Choice:
    branch: str | None = None
    file: str | None = None
    # REPO is a base model: fetch the best variant across all its quantized repos
    search: bool = False
    # why this variant, when something other than the command line chose it (a search)
    reasons: tuple[str, ...] = ()


def _search_winner(
    base: str, budget_args: BudgetArgs | None, hub_args: HubArgs
) -> tuple[str, Choice]:
    from quantpick.search import search

    if budget_args is None:
        raise UsageError("--search needs --vram (and --ctx)", "e.g. --search --vram 24 --ctx 16k")
    result = search(base, budget_args, None, 30, hub_args)
    winner = next((h for h in result.hits if h.variant.estimate and h.variant.estimate.fits), None)
    if winner is None:
        raise NothingFitsError(
            f"no quantized variant of {base} fits ({len(result.repos)} repos read)",
            "try a shorter --ctx, a quantized --cache (q8, q4), or more --vram",
        )
    v = winner.variant
    e = v.estimate
    assert e is not None
    why = (
        f"best of {len(result.hits)} variants in {len(result.repos)} quantized repos of {base}: "
        f"{winner.repo} {v.name} needs {(e.vram_bytes or 0) / 2**30:.1f} GiB "
        f"({e.provenance}, {e.runtime}) at {budget_args.ctx or DEFAULT_CONTEXT}",
    )
    if v.kind is VariantKind.FILE:
        return winner.repo, Choice(file=v.name, reasons=why)
    return winner.repo, Choice(branch=v.name, reasons=why)


@dataclass(frozen=True)
class FetchArgs:
    local_dir: Path | None
    revision: str | None
    dry_run: bool
    backend: str
    # None: TransferOptions' default (from the CPU count)
    max_workers: int | None


def choose_variant(
    inv: Inventory, choice: Choice, budget_args: BudgetArgs | None
) -> tuple[Variant, Recommendation | None]:
    """The named branch/file, or the recommendation; never a variant the Hub does not hold."""
    from quantpick.errors import EntryNotFoundError, RevisionNotFoundError

    named = choice.branch or choice.file
    rec = None
    if named is not None:
        found = inv.find(named) or (_bare_branch(inv, named) if choice.branch else None)
        if found is None:
            err = RevisionNotFoundError if choice.branch else EntryNotFoundError
            raise err(f"{inv.repo} has no variant {named!r}")
        variant = found
    elif budget_args is not None:
        rec = recommend_for(inv, budget_args.budget())
        if rec.pick is None:
            exit_if_nothing_fits(pick_result(inv, rec), None)
        assert rec.pick is not None
        variant = rec.pick.variant
    else:
        raise UsageError(
            "which variant? nothing chose one",
            "give --vram and --ctx to let quantpick choose, or --branch / --file / REPO:BRANCH",
        )
    if variant.kind is VariantKind.REPO:
        raise UsageError(
            f"{variant.name} is a repository of its own", f"run: quantpick fetch {variant.name}"
        )
    if not downloadable(variant):
        raise RevisionNotFoundError(
            f"the card lists {variant.name!r} but the Hub does not have it",
            f"run `quantpick list {inv.repo}` to see what exists",
        )
    return variant, rec


def _bare_branch(inv: Inventory, name: str) -> Variant | None:
    """A branch the Hub holds whose name says nothing (`my quant`): named, it is fetched as is."""
    from quantpick.records import Format, Source

    for b in inv.listing.branches if inv.listing else ():
        if b.name == name and b.files:
            return Variant(
                name=name,
                kind=VariantKind.BRANCH,
                format=Format.OTHER,
                size_bytes=b.total_bytes,
                size_source=Source.HUB,
                hub_status=HubStatus.HUB_ONLY,
            )
    return None


def fetch(
    spec: str,
    choice: Choice,
    budget_args: BudgetArgs | None,
    config: Path | None,
    hub_args: HubArgs,
    opts: FetchArgs,
    out: Out,
) -> FetchResult:
    from quantpick.download import execute
    from quantpick.inventory import from_hub
    from quantpick.plan import Backend, plan_fetch
    from quantpick.transfer import TransferOptions

    if choice.search:
        spec, choice = _search_winner(spec, budget_args, hub_args)
    repo, spec_branch = split_repo(spec)
    if spec_branch and (choice.branch or choice.file) and spec_branch != choice.branch:
        raise UsageError(f"{spec} names a branch and so does --branch/--file", "give one of them")
    choice = Choice(branch=choice.branch or spec_branch, file=choice.file, reasons=choice.reasons)
    try:
        backend = Backend(opts.backend)
    except ValueError:
        forms = ", ".join(b.value for b in Backend)
        raise UsageError(f"unknown backend {opts.backend!r}", f"use one of {forms}") from None
    hub = hub_args.connect(needs_network=True)
    inv = from_hub(hub, repo, None, config)
    variant, rec = choose_variant(inv, choice, budget_args)
    _check_revision(inv, variant, opts.revision, out)
    reasons = (
        rec.reasons if rec else (choice.reasons or (f"{variant.name} named on the command line",))
    )
    estimate = rec.pick.estimate if rec and rec.pick else None
    options = (
        TransferOptions()
        if opts.max_workers is None
        else TransferOptions(max_workers=opts.max_workers)
    )
    try:
        plan = plan_fetch(hub, repo, variant, opts.revision, opts.local_dir, backend)
        if opts.dry_run:
            return fetch_result(plan, reasons, dry_run=True, transferred=0)
        done = execute(
            plan, hub, progress=out.progress(), options=options, estimate=estimate, reasons=reasons
        )
    except OSError as exc:
        raise _local_fs_error(exc, opts.local_dir) from None
    return fetch_result(plan, reasons, dry_run=False, transferred=done.transferred_bytes)


_SHA = re.compile(r"^[0-9a-f]{40}$")


def _check_revision(inv: Inventory, variant: Variant, revision: str | None, out: Out) -> None:
    """--revision pins a commit of the chosen variant; it never swaps in another branch."""
    if revision is None or variant.kind is not VariantKind.BRANCH:
        return
    if not _SHA.match(revision):
        if revision != variant.name:
            raise UsageError(
                f"--revision {revision!r} is not a commit of branch {variant.name!r}",
                "--revision pins a commit sha; choose a branch with REPO:BRANCH or --branch",
            )
        return
    heads = {b.name: b.commit_sha for b in inv.listing.branches} if inv.listing else {}
    head = heads.get(variant.name)
    if head is not None and head != revision:
        out.warn(
            f"{revision[:12]} is not the head of {variant.name} ({head[:12]}): "
            "fetching the files of that commit"
        )


def _local_fs_error(exc: OSError, local_dir: Path | None) -> QuantpickError:
    import errno

    from quantpick.errors import DiskSpaceError

    where = exc.filename or local_dir or "the target directory"
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskSpaceError(f"the disk is full writing {where}")
    return UsageError(
        f"cannot write {where}: {exc.strerror or type(exc).__name__}",
        "choose a --local-dir you can write to",
    )


def fetch_result(
    plan: FetchPlan, reasons: tuple[str, ...], *, dry_run: bool, transferred: int
) -> FetchResult:
    files = tuple(
        FileOut(
            path=f.path,
            size_bytes=f.size_bytes,
            sha256=f.sha256,
            status=f"{f.state.value}, {f.backend.value}" if dry_run else "verified",
        )
        for f in plan.files
    )
    return FetchResult(
        repo=plan.repo,
        variant=plan.variant.name,
        revision=plan.revision,
        commit_sha=plan.commit_sha,
        local_dir=str(plan.local_dir.resolve()),
        dry_run=dry_run,
        transferred_bytes=transferred,
        missing_bytes=plan.missing_bytes if dry_run else 0,
        files=files,
        reasons=reasons,
    )


def verify(local_dir: Path) -> VerifyResult:
    from quantpick.errors import NotFoundError
    from quantpick.manifest import verify as verify_dir

    if not local_dir.is_dir():
        raise NotFoundError(f"{local_dir} is not a directory", "give the --local-dir of a fetch")
    report = verify_dir(local_dir, full=True)
    statuses = (
        [(p, "ok") for p in report.ok]
        + [(p, "missing") for p in report.missing]
        + [(p, "wrong size") for p in report.wrong_size]
        + [(p, "wrong sha256") for p in report.wrong_hash]
    )
    sizes = {f.path: f for f in report.manifest.files} if report.manifest else {}
    return VerifyResult(
        local_dir=str(local_dir.resolve()),
        ok=report.passed,
        problem=report.problem,
        files=tuple(
            FileOut(
                path=p,
                size_bytes=sizes[p].size_bytes if p in sizes else 0,
                sha256=sizes[p].sha256 if p in sizes else None,
                status=s,
            )
            for p, s in sorted(statuses)
        ),
    )


def exit_if_corrupt(result: VerifyResult) -> None:
    from quantpick.errors import IntegrityError

    if result.ok:
        return
    if result.problem:
        raise IntegrityError(
            f"cannot verify {result.local_dir}: {result.problem}",
            "only a directory written by `quantpick fetch` has a manifest",
        )
    bad = [f"{f.path} ({f.status})" for f in result.files if f.status != "ok"]
    shown = ", ".join(bad[:3]) + (" ..." if len(bad) > 3 else "")
    raise IntegrityError(f"{len(bad)} files in {result.local_dir} are damaged: {shown}")
