"""Which files a variant needs, where they go, and what is already there. Selection is pure.

`select_files` and `default_local_dir` do no I/O. `plan_fetch` asks the Hub for the commit and its
tree and looks at the target dir (never writing to it), so a dry run is `plan_fetch` alone.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from quantpick.download.localfs import check_hub_path, regular_file_stat
from quantpick.download.manifest import ManifestFile, known_good, still_good
from quantpick.download.partial import PartialState
from quantpick.errors import EntryNotFoundError, UsageError
from quantpick.hub.client import Hub
from quantpick.records import Record, RemoteFile, Role, Variant, VariantKind

# Below this a file goes through huggingface_hub: one request, and nothing to resume.
DEFAULT_SMALL_FILE_BYTES = 16 << 20
# Root files a runtime wants next to a GGUF/single-file quant (chat template, tokenizer, licence).
COMPANION_ROOT_FILES = frozenset(
    {
        "README.md",
        "LICENSE",
        "LICENSE.md",
        "LICENSE.txt",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "tokenizer.model",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "chat_template.json",
        "preprocessor_config.json",
    }
)
COMPANION_ROOT_MAX_BYTES = 64 << 20
# when a repo offers one projector in several precisions, the first that exists is taken
_MMPROJ_PREFERENCE = ("f16", "bf16", "f32", "q8_0")


class Backend(StrEnum):
    AUTO = "auto"
    # quantpick's own resumable ranged-GET engine (transfer.py)
    RANGED = "ranged"
    HF_TRANSFER = "hf_transfer"
    # huggingface_hub's hf_hub_download: small files, and everything behind a proxy
    HUB = "hub"
    # huggingface_hub handing a Xet-backed file to hf_xet (what `hub` means for such a file)
    HF_XET = "hf_xet"


class FileState(StrEnum):
    COMPLETE = "complete"
    # a .part with some chunks already checked into it
    PARTIAL = "partial"
    # present with the right size but never checked by quantpick: hashed locally before any download
    UNVERIFIED = "unverified"
    MISSING = "missing"


class FileRole(StrEnum):
    MODEL = "model"
    COMPANION = "companion"
    # small root files that come with a single-file variant
    EXTRA = "extra"


class PlannedFile(Record):
    path: str
    size_bytes: int
    sha256: str | None = None
    git_oid: str | None = None
    role: FileRole = FileRole.MODEL
    # Xet-backed on the Hub: the bridge (ranged) or hf_xet moves it
    xet: bool = False
    backend: Backend = Backend.HUB
    state: FileState = FileState.MISSING
    # bytes already on disk that will not move again (the whole file when COMPLETE)
    have_bytes: int = 0

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def hashless(self) -> bool:
        """The Hub gave no hash for it: its bytes can be taken, never verified."""
        return self.sha256 is None and self.git_oid is None

    @property
    def missing_bytes(self) -> int:
        return 0 if self.state is FileState.COMPLETE else self.size_bytes - self.have_bytes


class FetchPlan(Record):
    repo: str
    variant: Variant
    revision: str
    commit_sha: str
    local_dir: Path
    files: tuple[PlannedFile, ...]
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES
    # earlier checks are not trusted: files already present are hashed again
    recheck: bool = False

    @property
    def total_bytes(self) -> int:
        return sum(f.size_bytes for f in self.files)

    @property
    def missing_bytes(self) -> int:
        return sum(f.missing_bytes for f in self.files)

    @property
    def complete(self) -> bool:
        return all(f.state is FileState.COMPLETE for f in self.files)


# -- pure selection -------------------------------------------------------------------------------


def _component(text: str) -> str:
    """One safe file-name component: anything but plain file-name characters replaced."""
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text).lstrip(".-")[:200] or "model"


def default_local_dir(repo: str, variant_name: str, models_root: Path | None = None) -> Path:
    """./OWNER__NAME-VARIANT, or MODELS_ROOT/OWNER/NAME/VARIANT under a models root.

    The owner is part of the name: two owners' repos of one name must not share a directory.
    """
    owner, _, name = repo.strip("/").rpartition("/")
    variant = re.sub(r"\.gguf$", "", variant_name, flags=re.IGNORECASE)
    if models_root is not None:
        return models_root / _component(owner) / _component(name) / _component(variant or name)
    text = f"{owner}__{name}" if owner else name
    text = f"{text}-{variant}" if variant and variant != name else text
    return Path(_component(text))


def default_revision(variant: Variant) -> str:
    return variant.name if variant.kind is VariantKind.BRANCH else "main"


def variant_repo(repo: str, variant: Variant) -> str:
    return variant.repo if variant.kind is VariantKind.REPO and variant.repo else repo


def select_files(
    variant: Variant, tree: tuple[RemoteFile, ...]
) -> tuple[tuple[RemoteFile, FileRole], ...]:
    """The files a variant needs from a tree: the whole tree for a branch or repo; for a file
    variant its files, a projector (mmproj) next to it where the repo has one, small root files."""
    for f in tree:
        check_hub_path(f.path)
    if variant.role is Role.COMPANION:
        raise UsageError(
            f"{variant.name} is a companion file (e.g. a vision projector), not a model",
            "pick a model variant: it brings its companion files with it",
        )
    if variant.kind is not VariantKind.FILE:
        return tuple((f, FileRole.MODEL) for f in sorted(tree, key=lambda f: f.path))
    by_path = {f.path: f for f in tree}
    models = _variant_files(variant, by_path)
    chosen: dict[str, tuple[RemoteFile, FileRole]] = {f.path: (f, FileRole.MODEL) for f in models}
    folders = {PurePosixPath(f.path).parent.as_posix() for f in models}
    projector = _projector(tree, folders | {"."})
    if projector is not None and projector.path not in chosen:
        chosen[projector.path] = (projector, FileRole.COMPANION)
    for f in tree:
        if (
            f.path in COMPANION_ROOT_FILES
            and f.size_bytes <= COMPANION_ROOT_MAX_BYTES
            and f.path not in chosen
        ):
            chosen[f.path] = (f, FileRole.EXTRA)
    return tuple(chosen[p] for p in sorted(chosen))


def _variant_files(variant: Variant, by_path: dict[str, RemoteFile]) -> list[RemoteFile]:
    prefix = f"{variant.folder.strip('/')}/" if variant.folder else ""
    if variant.files:
        found: list[RemoteFile] = []
        absent: list[str] = []
        for name in variant.files:
            hit = by_path.get(name) or by_path.get(prefix + name)
            if hit is None:
                absent.append(name)
            else:
                found.append(hit)
        if absent:
            raise EntryNotFoundError(f"{absent[0]} (part of {variant.name}) is not in the repo")
        return found
    for candidate in (prefix + variant.name, variant.name):
        if candidate in by_path:
            return [by_path[candidate]]
    if prefix:
        inside = [
            f
            for p, f in sorted(by_path.items())
            if p.startswith(prefix) and "mmproj" not in p.lower()
        ]
        if inside:
            return inside
    raise EntryNotFoundError(f"{variant.name} is not in the repo")


def _projector(tree: tuple[RemoteFile, ...], folders: set[str]) -> RemoteFile | None:
    candidates = [
        f
        for f in tree
        if "mmproj" in PurePosixPath(f.path).name.lower()
        and PurePosixPath(f.path).parent.as_posix() in folders
    ]
    if not candidates:
        return None

    def rank(f: RemoteFile) -> tuple[int, str]:
        low = PurePosixPath(f.path).name.lower()
        for i, tag in enumerate(_MMPROJ_PREFERENCE):
            if re.search(rf"(?<![a-z0-9]){tag}(?![a-z0-9])", low):
                return i, f.path
        return len(_MMPROJ_PREFERENCE), f.path

    return min(candidates, key=rank)


def choose_backend(
    size_bytes: int, requested: Backend, small_file_bytes: int, *, xet: bool = False
) -> Backend:
    """By default every file goes through the ranged engine; hf_transfer takes large ones only.

    A Xet-backed file goes, whatever its size, through the ranged engine over the Hub's bridge URL
    (resumable, hashed as it arrives, under quantpick's stall watchdog; why, measured: README
    "Downloads"), unless huggingface_hub/hf_xet or hf_transfer is asked for. Small plain files go
    there too: huggingface_hub's per-file HEAD, file locks and metadata writes cost a branch of
    1,000 small files several times the CPU of one GET each (benchmarks/small_files.py).
    """
    if requested in (Backend.HUB, Backend.HF_XET):
        # huggingface_hub hands a Xet-backed file to hf_xet
        return Backend.HF_XET if xet else Backend.HUB
    if requested is Backend.HF_TRANSFER and size_bytes >= max(small_file_bytes, 1):
        return Backend.HF_TRANSFER
    return Backend.RANGED


# -- the plan -------------------------------------------------------------------------------------


def plan_fetch(
    hub: Hub,
    repo: str,
    variant: Variant,
    revision: str | None = None,
    local_dir: Path | None = None,
    backend: Backend = Backend.AUTO,
    *,
    small_file_bytes: int = DEFAULT_SMALL_FILE_BYTES,
    recheck: bool = False,
) -> FetchPlan:
    """What a fetch of `variant` would do; reads the Hub and the target dir, writes nothing.

    `revision` defaults to the variant's branch (or main); a commit sha pins the download.
    `recheck` distrusts earlier checks, so every file already present is hashed again.
    """
    repo = variant_repo(repo, variant)
    revision = revision or default_revision(variant)
    commit = hub.commit_sha(repo, revision)
    tree = hub.files(repo, commit)
    selected = tuple(
        (_with_hash(hub, repo, commit, f), role) for f, role in select_files(variant, tree)
    )
    target = Path(local_dir) if local_dir is not None else default_local_dir(repo, variant.name)
    known = {} if recheck else known_good(target, commit)
    if backend is Backend.AUTO and _proxied(hub.settings.endpoint):
        # the ranged engine speaks plain HTTP to the origin; huggingface_hub honours proxies
        backend = Backend.HUB
    files = tuple(
        local_state(
            target,
            PlannedFile(
                path=f.path,
                size_bytes=f.size_bytes,
                sha256=f.sha256,
                git_oid=f.git_oid,
                role=role,
                xet=f.xet,
                backend=choose_backend(f.size_bytes, backend, small_file_bytes, xet=f.xet),
            ),
            known.get(f.path),
        )
        for f, role in selected
    )
    return FetchPlan(
        repo=repo,
        variant=variant,
        revision=revision,
        commit_sha=commit,
        local_dir=target,
        files=files,
        small_file_bytes=small_file_bytes,
        recheck=recheck,
    )


def _with_hash(hub: Hub, repo: str, commit: str, f: RemoteFile) -> RemoteFile:
    """A file the listing gave no hash for (a partial mirror): ask a fresh HEAD for one."""
    if f.sha256 is not None or f.git_oid is not None:
        return f
    sha256, git_oid = hub.file_hashes(repo, commit, f.path)
    return f.model_copy(update={"sha256": sha256, "git_oid": git_oid})


def _proxied(endpoint: str) -> bool:
    host = urlsplit(endpoint).hostname or ""
    scheme = urlsplit(endpoint).scheme
    return scheme in getproxies() and not proxy_bypass(host)


def local_state(local_dir: Path, planned: PlannedFile, record: ManifestFile | None) -> PlannedFile:
    """How much of one file is already in `local_dir`."""
    path = local_dir / planned.path
    st = regular_file_stat(path)
    if st is not None and st.st_size == planned.size_bytes:
        if record is not None and _same_content(record, planned) and still_good(local_dir, record):
            return planned.model_copy(
                update={"state": FileState.COMPLETE, "have_bytes": planned.size_bytes}
            )
        return planned.model_copy(update={"state": FileState.UNVERIFIED})
    partial = PartialState.load(local_dir, planned.path)
    if partial is not None and partial.matches(planned.size_bytes, planned.sha256, planned.git_oid):
        return planned.model_copy(
            update={"state": FileState.PARTIAL, "have_bytes": partial.done_bytes}
        )
    return planned


def _same_content(record: ManifestFile, planned: PlannedFile) -> bool:
    if record.size_bytes != planned.size_bytes:
        return False
    if planned.sha256 is not None:
        return record.sha256 == planned.sha256
    return planned.git_oid is not None and record.git_oid == planned.git_oid
