"""TheBloke's -split-a/-split-b parts: fetched, checked, joined in place, recorded, verified."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantpick.download.execute import TransferOptions, execute, plan_fetch, verify
from quantpick.download.join import staging_path
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import Format, Variant, VariantKind
from quantpick.testing import DEFAULT_TOKEN, HubServer, make_repo

MIB = 1 << 20
OPTIONS = TransferOptions(chunk_bytes=256 << 10, max_workers=4, stall_timeout_s=5, backoff_s=0.01)
REPO = "TheBloke/Big-GGUF"
NAME = "big.Q6_K.gguf"
PART_A = b"".join(hashlib.sha256(b"a%d" % i).digest() for i in range(70_000))  # ~2.1 MiB
PART_B = b"".join(hashlib.sha256(b"b%d" % i).digest() for i in range(40_000))  # ~1.2 MiB
JOINED = PART_A + PART_B


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[Hub, HubServer]]:
    root = tmp_path / "hub"
    make_repo(
        root,
        REPO,
        {
            "main": {
                f"{NAME}-split-a": PART_A,
                f"{NAME}-split-b": PART_B,
                "big.Q4_K_M.gguf": 1 * MIB,
                "config.json": "{}",
            }
        },
    )
    srv = HubServer(root)
    srv.__enter__()
    hub = Hub(
        HubSettings(
            endpoint=srv.endpoint, token=DEFAULT_TOKEN, cache_dir=tmp_path / "cache", offline=False
        )
    )
    yield hub, srv
    srv.__exit__(None, None, None)
    assert not srv.errors, srv.errors


def variant() -> Variant:
    return Variant(
        name=NAME,
        kind=VariantKind.FILE,
        format=Format.GGUF,
        files=(f"{NAME}-split-a", f"{NAME}-split-b"),
        extra={"join_required": True},
    )


def run(hub: Hub, out: Path) -> None:
    plan = plan_fetch(hub, REPO, variant(), local_dir=out, small_file_bytes=64 << 10)
    execute(plan, hub, options=OPTIONS)


def test_parts_are_joined_recorded_and_verified(hub: tuple[Hub, HubServer], tmp_path: Path) -> None:
    out = tmp_path / "out"
    run(hub[0], out)
    assert (out / NAME).read_bytes() == JOINED
    assert not (out / f"{NAME}-split-a").exists()
    assert not (out / f"{NAME}-split-b").exists()
    manifest = json.loads((out / "quantpick.json").read_text())
    entry = {f["path"]: f for f in manifest["files"]}[NAME]
    assert entry["size_bytes"] == len(JOINED)
    assert entry["sha256"] == hashlib.sha256(JOINED).hexdigest()
    assert not any(
        p.endswith(("-split-a", "-split-b")) for p in (f["path"] for f in manifest["files"])
    )
    report = verify(out)
    assert report.passed
    assert NAME in report.ok


def test_rerun_moves_no_byte_and_verify_catches_damage(
    hub: tuple[Hub, HubServer], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run(hub[0], out)
    hub[1].requests.clear()
    run(hub[0], out)
    assert hub[1].requests.count(method="GET", origin="cdn") == 0
    assert (out / NAME).read_bytes() == JOINED
    with open(out / NAME, "r+b") as f:
        f.seek(len(PART_A) + 5)
        f.write(b"\xff")
    report = verify(out)
    assert NAME in report.wrong_hash


def test_a_killed_join_is_resumed_without_downloading_part_a(
    hub: tuple[Hub, HubServer], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run(hub[0], out)
    # what a join killed halfway leaves: part a plus some of part b under the staging name, part b
    (out / NAME).unlink()
    (out / "quantpick.json").unlink()
    staging = staging_path(out, NAME)
    staging.write_bytes(PART_A + PART_B[:1000])
    (out / f"{NAME}-split-b").write_bytes(PART_B)
    hub[1].requests.clear()
    run(hub[0], out)
    assert (out / NAME).read_bytes() == JOINED
    assert not staging.exists()
    gets = hub[1].requests.filter(method="GET")
    assert not any(r.path.endswith("-split-a") for r in gets)
    assert verify(out).passed


def test_a_part_that_changed_on_disk_is_not_joined(
    hub: tuple[Hub, HubServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import quantpick.download.join as join
    from quantpick.errors import IntegrityError

    real = join.join_parts

    def tamper(local_dir: Path, *args: object, **kwargs: object) -> object:
        part_b = local_dir / f"{NAME}-split-b"
        data = bytearray(part_b.read_bytes())
        data[0] ^= 1
        part_b.write_bytes(bytes(data))
        os.utime(part_b)
        return real(local_dir, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("quantpick.download.execute.join_parts", tamper)
    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        run(hub[0], out)
    assert not (out / NAME).exists()
    # the next run puts part a back, fetches part b again, and joins
    monkeypatch.setattr("quantpick.download.execute.join_parts", real)
    run(hub[0], out)
    assert (out / NAME).read_bytes() == JOINED


def test_a_dry_run_after_the_join_has_nothing_to_move(
    hub: tuple[Hub, HubServer], tmp_path: Path
) -> None:
    from quantpick.download.execute import settle_joins

    client, _ = hub
    out = tmp_path / "out"
    before = plan_fetch(client, REPO, variant(), local_dir=out, small_file_bytes=64 << 10)
    assert settle_joins(before).missing_bytes == before.missing_bytes > 0
    run(client, out)
    after = plan_fetch(client, REPO, variant(), local_dir=out, small_file_bytes=64 << 10)
    # the parts are gone (joined): the raw plan thinks they are missing, the settled one knows
    assert after.missing_bytes > 0
    assert settle_joins(after).missing_bytes == 0
