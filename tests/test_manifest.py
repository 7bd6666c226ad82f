"""The manifest and `verify`: what a fetch records, what verify finds, and fetch repairing it."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantpick.download.context import TransferOptions
from quantpick.download.execute import execute, plan_fetch, require_verified, verify
from quantpick.download.manifest import Manifest, ManifestFile, read_manifest, write_manifest
from quantpick.download.plan import FileState
from quantpick.errors import IntegrityError
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import CacheMode, Estimate, Format, Provenance, Runtime, Variant, VariantKind
from quantpick.testing import DEFAULT_TOKEN, HubServer, make_repo

MIB = 1 << 20
OPTIONS = TransferOptions(chunk_bytes=256 << 10, max_workers=4, stall_timeout_s=5, backoff_s=0.01)
VARIANT = Variant(name="4.0bpw", kind=VariantKind.BRANCH, format=Format.EXL2)
FILES = {
    "model.safetensors": bytes(range(256)) * (8 * 1024) + b"tail",
    "config.json": '{"model_type": "llama"}',
}
ESTIMATE = Estimate(
    variant="4.0bpw",
    context_tokens=8192,
    cache_mode=CacheMode.FP16,
    runtime=Runtime.EXLLAMAV2,
    vram_bytes=6 << 30,
    provenance=Provenance.FORMULA,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = tmp_path_factory.mktemp("hub")
    make_repo(root, "dana/m-exl2", {"4.0bpw": FILES})
    with HubServer(root) as srv:
        yield srv


@pytest.fixture
def hub(server: HubServer, tmp_path: Path) -> Iterator[Hub]:
    server.reset()
    yield Hub(HubSettings(endpoint=server.endpoint, token=DEFAULT_TOKEN, cache_dir=tmp_path / "c"))
    assert not server.errors


def fetch(hub: Hub, out: Path, *, recheck: bool = False) -> Manifest:
    plan = plan_fetch(
        hub, "dana/m-exl2", VARIANT, local_dir=out, small_file_bytes=64 << 10, recheck=recheck
    )
    return execute(plan, hub, options=OPTIONS, estimate=ESTIMATE, reasons=("r1",)).manifest


@pytest.fixture
def fetched(hub: Hub, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    fetch(hub, out)
    return out


def flip_byte(path: Path, offset: int, *, keep_mtime: bool) -> None:
    st = os.stat(path)
    with path.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    else:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_manifest_records_the_fetch(fetched: Path) -> None:
    raw = json.loads((fetched / "quantpick.json").read_text())
    assert raw["schema"] == "quantpick/manifest@1"
    assert raw["variant"]["name"] == "4.0bpw"
    assert raw["estimate"]["vram_bytes"] == 6 << 30
    assert raw["reasons"] == ["r1"]
    assert raw["created_unix"] > 0
    by_path = {f["path"]: f for f in raw["files"]}
    model = FILES["model.safetensors"]
    assert isinstance(model, bytes)
    assert by_path["model.safetensors"]["sha256"] == hashlib.sha256(model).hexdigest()
    assert by_path["model.safetensors"]["size_bytes"] == len(model)
    assert by_path["model.safetensors"]["lfs"] is True
    assert by_path["config.json"]["lfs"] is False
    manifest = read_manifest(fetched)
    assert manifest is not None
    assert Manifest.model_validate_json(manifest.dump_json()) == manifest


def test_verify_passes_a_fresh_download(fetched: Path) -> None:
    report = verify(fetched)
    assert report.passed
    assert set(report.ok) == set(FILES)
    assert require_verified(fetched).passed
    quick = verify(fetched, full=False)
    assert quick.passed
    assert set(quick.unhashed) == set(FILES)


def test_verify_finds_missing_wrong_size_and_wrong_hash(fetched: Path) -> None:
    (fetched / "config.json").unlink()
    with (fetched / "model.safetensors").open("ab") as f:
        f.write(b"x")
    report = verify(fetched)
    assert not report.passed
    assert report.missing == ("config.json",)
    assert report.wrong_size == ("model.safetensors",)
    with pytest.raises(IntegrityError, match="2 files"):
        require_verified(fetched)


def test_verify_finds_a_flipped_byte_even_with_mtime_kept(fetched: Path) -> None:
    flip_byte(fetched / "model.safetensors", 1000, keep_mtime=True)
    assert verify(fetched).wrong_hash == ("model.safetensors",)
    # the quick check trusts size and mtime: that is what it is for
    assert verify(fetched, full=False).passed


def test_verify_refuses_a_symlink_in_place_of_a_file(fetched: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "copy"
    elsewhere.write_bytes((fetched / "config.json").read_bytes())
    (fetched / "config.json").unlink()
    (fetched / "config.json").symlink_to(elsewhere)
    assert verify(fetched).missing == ("config.json",)


def test_verify_without_a_manifest(tmp_path: Path) -> None:
    report = verify(tmp_path)
    assert report.manifest is None
    assert not report.passed
    assert report.problem is not None
    (tmp_path / "quantpick.json").write_text("{not json")
    assert verify(tmp_path).problem is not None
    with pytest.raises(IntegrityError, match="cannot verify"):
        require_verified(tmp_path)


def test_fetch_repairs_a_file_that_changed(hub: Hub, server: HubServer, fetched: Path) -> None:
    flip_byte(fetched / "model.safetensors", 5, keep_mtime=False)
    assert not verify(fetched).passed
    plan = plan_fetch(hub, "dana/m-exl2", VARIANT, local_dir=fetched, small_file_bytes=64 << 10)
    assert {f.path: f.state for f in plan.files}["model.safetensors"] is FileState.UNVERIFIED
    server.requests.clear()
    fetch(hub, fetched)
    assert verify(fetched).passed
    assert server.requests.count(path="*/model.safetensors") >= 1


def test_recheck_repairs_silent_corruption(hub: Hub, fetched: Path) -> None:
    flip_byte(fetched / "model.safetensors", 7, keep_mtime=True)
    fetch(hub, fetched)  # size and mtime unchanged: the fast path trusts it
    assert verify(fetched).wrong_hash == ("model.safetensors",)
    fetch(hub, fetched, recheck=True)
    assert verify(fetched).passed


def test_write_manifest_is_atomic_and_readable(tmp_path: Path) -> None:
    manifest = Manifest(
        repo="o/m",
        variant=VARIANT,
        revision="4.0bpw",
        commit_sha="a" * 40,
        files=(ManifestFile(path="a.bin", size_bytes=1, sha256="b" * 64),),
    )
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == ["quantpick.json"]
    assert manifest.total_bytes == 1
