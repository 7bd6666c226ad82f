"""Planning and fetching a variant against the loopback Hub: selection, manifest, no-op re-runs,
access errors, pre-flight, locks and the target-dir guards."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantpick.download.execute import (
    Backend,
    FetchResult,
    TransferOptions,
    default_local_dir,
    execute,
    plan_fetch,
    verify,
)
from quantpick.download.localfs import check_hub_path
from quantpick.download.plan import FileRole, FileState, select_files
from quantpick.errors import (
    AuthError,
    DiskSpaceError,
    EntryNotFoundError,
    IntegrityError,
    LockedError,
    NetworkError,
    RepoNotFoundError,
    RevisionNotFoundError,
    UsageError,
)
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import Format, RemoteFile, Role, Variant, VariantKind
from quantpick.testing import DEFAULT_TOKEN, Fault, HubServer, make_repo

MIB = 1 << 20
# low, so that a few-MiB file takes the ranged engine in several chunks
SMALL = 64 << 10
OPTIONS = TransferOptions(chunk_bytes=256 << 10, max_workers=4, stall_timeout_s=5, backoff_s=0.01)


def blob(n: int, seed: int = 0) -> bytes:
    """Incompressible-looking, reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    with HubServer(tmp_path_factory.mktemp("hub")) as srv:
        yield srv


@pytest.fixture
def hub_server(server: HubServer) -> Iterator[HubServer]:
    server.reset()
    yield server
    assert not server.errors, server.errors


@pytest.fixture
def hub(hub_server: HubServer, tmp_path: Path) -> Hub:
    return Hub(
        HubSettings(
            endpoint=hub_server.endpoint,
            token=DEFAULT_TOKEN,
            cache_dir=tmp_path / "cache",
            retry_backoff_s=0.01,
        )
    )


def branch(name: str = "4.0bpw") -> Variant:
    return Variant(name=name, kind=VariantKind.BRANCH, format=Format.EXL2)


def fetch(hub: Hub, repo: str, variant: Variant, out: Path, **kwargs: Any) -> FetchResult:
    plan_kw = {k: kwargs.pop(k) for k in ("revision", "backend", "recheck") if k in kwargs}
    plan = plan_fetch(hub, repo, variant, local_dir=out, small_file_bytes=SMALL, **plan_kw)
    return execute(plan, hub, options=kwargs.pop("options", OPTIONS), **kwargs)


EXL2_FILES = {
    "model.safetensors": blob(3 * MIB + 17, 1),
    "output.safetensors": blob(2 * MIB, 2),
    "config.json": '{"model_type": "llama"}',
    "tokenizer.json": blob(100_000, 3).hex()[:150_000],
    "sub/notes.txt": "hello",
}


@pytest.fixture
def exl2_repo(hub_server: HubServer, request: pytest.FixtureRequest) -> str:
    repo = f"alice/{request.node.name[:40].replace('[', '-').replace(']', '')}-exl2"
    make_repo(hub_server.root, repo, {"4.0bpw": EXL2_FILES, "6.0bpw": {"x.safetensors": 10}})
    return repo


def test_default_local_dir_is_owner_name_dash_variant() -> None:
    # the owner is in the name: two owners' repos of one name never share a directory
    assert default_local_dir("turboderp/Llama-3-8B-exl2", "4.0bpw") == Path(
        "turboderp__Llama-3-8B-exl2-4.0bpw"
    )
    assert default_local_dir("o/M-GGUF", "M.Q4_K_M.gguf") == Path("o__M-GGUF-M.Q4_K_M")
    assert default_local_dir("o/m", "4.0bpw/h8 x") == Path("o__m-4.0bpw_h8_x")
    assert default_local_dir("o/m", "../..") == Path("o__m-.._..")
    assert default_local_dir("o/m", "m") == Path("o__m")


def test_a_models_root_lays_out_owner_name_variant() -> None:
    root = Path("/models")
    assert default_local_dir("o/m", "4.0bpw", root) == root / "o" / "m" / "4.0bpw"
    assert (
        default_local_dir("o/M-GGUF", "M.Q4_K_M.gguf", root) == root / "o" / "M-GGUF" / "M.Q4_K_M"
    )
    assert default_local_dir("o/m", "../..", root) == root / "o" / "m" / "_.."


@pytest.mark.parametrize(
    "path",
    [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "a\\b",
        "a\0b",
        "",
        "a//b",
        "./a",
        "x" * 300,
        ".quantpick/lock",
        "quantpick.json",
        "C:/x",
        "a\nb",
    ],
)
def test_hostile_hub_paths_are_refused(path: str) -> None:
    with pytest.raises(IntegrityError):
        check_hub_path(path)
    tree = (RemoteFile(path="ok.bin", size_bytes=1), RemoteFile(path=path, size_bytes=1))
    with pytest.raises(IntegrityError):
        select_files(branch(), tree)


def test_ordinary_hub_paths_pass() -> None:
    for path in ["a.gguf", "Q8_0/m-00001-of-00002.gguf", ".gitattributes", "ünï/cødé.json"]:
        assert str(check_hub_path(path)) == path


def _tree(*paths: str) -> tuple[RemoteFile, ...]:
    return tuple(RemoteFile(path=p, size_bytes=100, sha256="0" * 64) for p in paths)


def test_file_variant_brings_projector_and_root_files_only() -> None:
    tree = _tree(
        "M.Q4_K_M.gguf",
        "M.Q8_0.gguf",
        "mmproj-M-f16.gguf",
        "mmproj-M-f32.gguf",
        "README.md",
        "config.json",
        "tokenizer.json",
        "imatrix.dat",
        "sub/config.json",
    )
    variant = Variant(name="M.Q4_K_M.gguf", kind=VariantKind.FILE, format=Format.GGUF)
    picked = {f.path: role for f, role in select_files(variant, tree)}
    assert picked == {
        "M.Q4_K_M.gguf": FileRole.MODEL,
        "mmproj-M-f16.gguf": FileRole.COMPANION,
        "README.md": FileRole.EXTRA,
        "config.json": FileRole.EXTRA,
        "tokenizer.json": FileRole.EXTRA,
    }


def test_split_set_and_folder_variants() -> None:
    tree = _tree(
        "Q8_0/M-Q8_0-00001-of-00002.gguf",
        "Q8_0/M-Q8_0-00002-of-00002.gguf",
        "Q4/M-Q4.gguf",
    )
    split = Variant(
        name="M-Q8_0",
        kind=VariantKind.FILE,
        format=Format.GGUF,
        folder="Q8_0",
        files=("Q8_0/M-Q8_0-00001-of-00002.gguf", "Q8_0/M-Q8_0-00002-of-00002.gguf"),
    )
    assert [f.path for f, _ in select_files(split, tree)] == list(split.files)
    folder = Variant(name="Q4", kind=VariantKind.FILE, format=Format.GGUF, folder="Q4")
    assert [f.path for f, _ in select_files(folder, tree)] == ["Q4/M-Q4.gguf"]
    gone = split.model_copy(update={"files": ("Q8_0/M-Q8_0-00003-of-00003.gguf",)})
    with pytest.raises(EntryNotFoundError):
        select_files(gone, tree)
    projector = Variant(
        name="mmproj", kind=VariantKind.FILE, format=Format.GGUF, role=Role.COMPANION
    )
    with pytest.raises(UsageError):
        select_files(projector, tree)


def test_dry_run_plans_without_writing(hub: Hub, exl2_repo: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    plan = plan_fetch(hub, exl2_repo, branch(), local_dir=out, small_file_bytes=SMALL)
    assert not out.exists()
    by_path = {f.path: f for f in plan.files}
    assert set(by_path) == set(EXL2_FILES)
    assert by_path["model.safetensors"].backend is Backend.RANGED
    assert by_path["config.json"].backend is Backend.RANGED
    assert by_path["model.safetensors"].sha256 == sha(EXL2_FILES["model.safetensors"])  # type: ignore[arg-type]
    assert plan.missing_bytes == plan.total_bytes == sum(f.size_bytes for f in plan.files)
    assert all(f.state is FileState.MISSING for f in plan.files)
    hub_plan = plan_fetch(hub, exl2_repo, branch(), local_dir=out, backend=Backend.HUB)
    # the loopback Hub stores LFS files with Xet, as the real one does: hub means hf_xet for them
    by_path = {f.path: f for f in hub_plan.files}
    assert by_path["model.safetensors"].xet
    assert by_path["model.safetensors"].backend is Backend.HF_XET
    assert by_path["config.json"].backend is Backend.HUB


def test_fetch_branch_gets_exactly_its_files_checked(
    hub: Hub, hub_server: HubServer, exl2_repo: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = fetch(hub, exl2_repo, branch(), out, reasons=("fits in 24 GiB",))
    on_disk = {
        p.relative_to(out).as_posix()
        for p in out.rglob("*")
        if p.is_file() and ".quantpick" not in p.parts
    }
    assert on_disk == set(EXL2_FILES) | {"quantpick.json"}
    for rel, content in EXL2_FILES.items():
        data = content.encode() if isinstance(content, str) else content
        assert (out / rel).read_bytes() == data
    raw = json.loads((out / "quantpick.json").read_text())
    assert raw["schema"] == "quantpick/manifest@1"
    assert raw["repo"] == exl2_repo
    assert raw["revision"] == "4.0bpw"
    assert raw["commit_sha"] == result.manifest.commit_sha
    assert raw["reasons"] == ["fits in 24 GiB"]
    files = {f["path"]: f for f in raw["files"]}
    assert files["model.safetensors"]["sha256"] == sha(EXL2_FILES["model.safetensors"])  # type: ignore[arg-type]
    assert files["model.safetensors"]["backend"] == "ranged"
    assert files["config.json"]["backend"] == "ranged"
    assert result.transferred_bytes >= result.manifest.total_bytes
    assert result.files_transferred == len(EXL2_FILES)
    assert verify(out).passed
    # the pre-signed CDN never sees the token, and every big file was fetched in ranges
    cdn = hub_server.requests.filter(origin="cdn")
    assert cdn
    assert not any(r.authorized for r in cdn)
    assert all(r.range for r in cdn if r.method == "GET")
    # nothing left behind but the lock
    assert sorted(p.name for p in (out / ".quantpick").iterdir()) == ["lock"]


def test_second_fetch_moves_no_byte(
    hub: Hub, hub_server: HubServer, exl2_repo: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fetch(hub, exl2_repo, branch(), out)
    hub_server.requests.clear()
    again = fetch(hub, exl2_repo, branch(), out)
    assert again.transferred_bytes == 0
    assert again.files_transferred == 0
    assert again.reused_bytes == again.manifest.total_bytes
    assert hub_server.requests.count(path="*/resolve/*") == 0
    assert hub_server.requests.count(origin="cdn") == 0
    assert len(hub_server.requests) <= 2  # the commit and its tree


def test_files_from_elsewhere_are_hashed_not_downloaded(
    hub: Hub, hub_server: HubServer, exl2_repo: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    fetch(hub, exl2_repo, branch(), out)
    (out / "quantpick.json").unlink()
    (out / "config.json").write_text("{}" + " " * 21)  # same size, other content
    hub_server.requests.clear()
    result = fetch(hub, exl2_repo, branch(), out)
    assert result.files_transferred == 1
    assert hub_server.requests.count(path="*/resolve/*/config.json") >= 1
    assert hub_server.requests.count(origin="cdn") == 0
    assert verify(out).passed


def test_file_variant_fetch(hub: Hub, hub_server: HubServer, tmp_path: Path) -> None:
    files = {
        "M.Q4_K_M.gguf": blob(MIB, 4),
        "M.Q8_0.gguf": blob(2 * MIB, 5),
        "mmproj-M-f16.gguf": blob(300_000, 6),
        "config.json": "{}",
        "README.md": "# M",
    }
    make_repo(hub_server.root, "bob/M-GGUF", {"main": files})
    variant = Variant(name="M.Q4_K_M.gguf", kind=VariantKind.FILE, format=Format.GGUF)
    out = tmp_path / "gguf"
    result = fetch(hub, "bob/M-GGUF", variant, out)
    assert {f.path for f in result.manifest.files} == set(files) - {"M.Q8_0.gguf"}
    assert not (out / "M.Q8_0.gguf").exists()
    assert hub_server.requests.count(path="*M.Q8_0.gguf") == 0


def test_revision_sha_pins_the_commit(hub: Hub, hub_server: HubServer, tmp_path: Path) -> None:
    old = {"model.safetensors": blob(MIB, 8), "config.json": '{"v": 1}'}
    new = {"model.safetensors": blob(MIB, 9), "config.json": '{"v": 2}'}
    make_repo(hub_server.root, "carol/pinned", {"4.0bpw": new, "v1": old})
    old_sha = hub.commit_sha("carol/pinned", "v1")
    result = fetch(hub, "carol/pinned", branch(), tmp_path / "pinned", revision=old_sha)
    assert result.manifest.commit_sha == old_sha
    assert result.manifest.revision == old_sha
    assert (tmp_path / "pinned" / "model.safetensors").read_bytes() == old["model.safetensors"]
    assert hub_server.requests.count(path="*/resolve/4.0bpw/*") == 0
    # a sha the repo never had is a revision error, raised before anything is written
    with pytest.raises(RevisionNotFoundError):
        fetch(hub, "carol/pinned", branch(), tmp_path / "never", revision="0" * 40)
    assert not (tmp_path / "never").exists()


def test_access_errors(hub: Hub, hub_server: HubServer, tmp_path: Path) -> None:
    files = {"m.safetensors": blob(MIB, 7)}
    make_repo(hub_server.root, "corp/private", {"main": files}, private=True, tokens=["hf_ok"])
    make_repo(hub_server.root, "corp/gated", {"main": files}, gated=True, tokens=["hf_ok"])
    main = Variant(name="main", kind=VariantKind.BRANCH, format=Format.OTHER)
    anonymous = Hub(HubSettings(endpoint=hub_server.endpoint, cache_dir=tmp_path / "c"))
    with pytest.raises(RepoNotFoundError, match="no token"):
        fetch(anonymous, "corp/private", main, tmp_path / "a")
    with pytest.raises(AuthError):
        fetch(anonymous, "corp/gated", main, tmp_path / "a")
    with pytest.raises(RepoNotFoundError):
        fetch(hub, "corp/private", main, tmp_path / "b")
    with pytest.raises(RepoNotFoundError):
        fetch(hub, "corp/nothing-here", main, tmp_path / "c")
    with pytest.raises(RevisionNotFoundError):
        fetch(hub, "corp/gated", branch("8.0bpw"), tmp_path / "d")
    # a gated repo lists its files to anyone: the pre-flight HEAD is what finds the gate
    hub_server.requests.clear()
    with pytest.raises(AuthError):
        fetch(hub, "corp/gated", main, tmp_path / "e")
    assert hub_server.requests.count(origin="cdn") == 0
    assert not (tmp_path / "e" / "m.safetensors").exists()
    allowed = Hub(
        HubSettings(endpoint=hub_server.endpoint, token="hf_ok", cache_dir=tmp_path / "c")
    )
    assert fetch(allowed, "corp/gated", main, tmp_path / "f").files_transferred == 1
    assert fetch(allowed, "corp/private", main, tmp_path / "g").files_transferred == 1


def test_not_enough_disk_fails_before_any_byte(
    hub: Hub, hub_server: HubServer, exl2_repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.disk_usage

    def tiny(path: Any) -> Any:
        return real(path)._replace(free=MIB)

    monkeypatch.setattr(shutil, "disk_usage", tiny)
    with pytest.raises(DiskSpaceError):
        fetch(hub, exl2_repo, branch(), tmp_path / "out")
    assert hub_server.requests.count(origin="cdn") == 0
    assert not (tmp_path / "out" / "quantpick.json").exists()


def test_second_fetch_into_a_locked_dir_fails_fast(
    hub: Hub, exl2_repo: str, tmp_path: Path
) -> None:
    from filelock import FileLock

    out = tmp_path / "out"
    (out / ".quantpick").mkdir(parents=True)
    with FileLock(out / ".quantpick" / "lock"), pytest.raises(LockedError):
        fetch(hub, exl2_repo, branch(), out)
    with FileLock(out / ".quantpick" / "lock"), pytest.raises(LockedError):
        fetch(hub, exl2_repo, branch(), out, lock_timeout_s=0.2)
    assert fetch(hub, exl2_repo, branch(), out).files_transferred == len(EXL2_FILES)


def test_symlink_planted_in_target_dir_is_not_followed(
    hub: Hub, exl2_repo: str, tmp_path: Path
) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "sub").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(UsageError):
        fetch(hub, exl2_repo, branch(), out)
    assert list(elsewhere.iterdir()) == []
    # a symlink where a file goes is replaced, never written through
    (out / "sub").unlink()
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (out / "config.json").symlink_to(victim)
    fetch(hub, exl2_repo, branch(), out)
    assert victim.read_bytes() == b"keep"
    assert not (out / "config.json").is_symlink()


@pytest.mark.parametrize("backend", [Backend.HUB, Backend.HF_TRANSFER])
def test_other_backends_give_the_same_checked_files(
    hub: Hub, exl2_repo: str, tmp_path: Path, backend: Backend
) -> None:
    out = tmp_path / "out"
    result = fetch(hub, exl2_repo, branch(), out, backend=backend)
    used = {f.path: f.backend for f in result.manifest.files}
    # a Xet-backed file asked of huggingface_hub goes to hf_xet, and the manifest says so
    expected = Backend.HF_XET if backend is Backend.HUB else backend
    assert used["model.safetensors"] == expected.value
    assert verify(out).passed
    assert not list((out / ".quantpick").glob("**/*.part"))


def test_a_failed_fetch_never_leaves_a_final_named_partial(
    hub: Hub, hub_server: HubServer, exl2_repo: str, tmp_path: Path
) -> None:
    hub_server.faults.add("*/model.safetensors", Fault(status=500, origin="cdn"))
    out = tmp_path / "out"
    with pytest.raises(NetworkError, match=r"model\.safetensors"):
        fetch(hub, exl2_repo, branch(), out)
    assert not (out / "model.safetensors").exists()
    assert not (out / "quantpick.json").exists()
    for f in out.rglob("*"):
        if f.is_file() and ".quantpick" not in f.parts:
            content = EXL2_FILES[f.relative_to(out).as_posix()]
            assert f.read_bytes() == (content.encode() if isinstance(content, str) else content)


def test_many_small_plain_files_each_one_get_checked_and_repaired_in_flight(
    hub: Hub, hub_server: HubServer, tmp_path: Path
) -> None:
    """A plain-LFS branch of small files takes the ranged engine, one GET per file: a byte
    flipped in transit, a 503 and a server that ignores Range are each caught and end verified."""
    small = {f"s/f{i:02d}.bin": blob(3000 + i, seed=i) for i in range(24)}
    files: dict[str, str | bytes | int] = {"config.json": '{"a": 1}', "empty.txt": "", **small}
    repo = "alice/many-small-plain"
    make_repo(hub_server.root, repo, {"main": files}, xet=False, lfs_threshold_bytes=1024)
    hub_server.faults.add("*/s/f03.bin", Fault(corrupt_at=10, times=1, method="GET"))
    hub_server.faults.add("*/s/f07.bin", Fault(status=503, times=1, method="GET"))
    hub_server.faults.add("*/s/f11.bin", Fault(ignore_range=1, times=1, method="GET"))
    out = tmp_path / "out"
    result = fetch(hub, repo, branch("main"), out)
    for rel, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        assert (out / rel).read_bytes() == data, rel
    backends = {f.path: f.backend for f in result.manifest.files}
    # the one whose server ignored Range went to one stream (huggingface_hub); every other file
    # of the branch, small plain and git-stored alike, to the ranged engine
    assert backends.pop("s/f11.bin") == "hub"
    assert set(backends.values()) == {"ranged"}, backends
    assert hub_server.faults.fired() == 3
    gets = [r for r in hub_server.requests if r.method == "GET" and "f05.bin" in r.path]
    assert len(gets) == 1
    assert verify(out).passed
    assert not (out / ".quantpick").exists() or not any((out / ".quantpick").rglob("*.part"))
