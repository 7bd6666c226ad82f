"""Transfers that go wrong, against the loopback Hub's injected faults: dropped and stalled
connections, short and corrupted bodies, expired signed URLs, and a fetch killed or interrupted
mid-file and run again."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import quantpick
from quantpick.download.context import TransferOptions
from quantpick.download.execute import FetchResult, execute, plan_fetch, verify
from quantpick.download.partial import partial_dir
from quantpick.download.plan import FileState
from quantpick.errors import ExitCode, IntegrityError, NetworkError
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import Format, Variant, VariantKind
from quantpick.testing import DEFAULT_TOKEN, Fault, HubServer, make_repo

MIB = 1 << 20
CHUNK = 256 << 10
BIG = 4 * MIB + 1234
MAIN = Variant(name="main", kind=VariantKind.BRANCH, format=Format.OTHER)
REPO = "erin/faulty"


def blob(n: int, seed: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}/{i}".encode()).digest()
        i += 1
    return bytes(out[:n])


FILES = {"big.safetensors": blob(BIG, 1), "config.json": '{"a": 1}', "empty.txt": ""}
BIG_SHA = hashlib.sha256(FILES["big.safetensors"]).hexdigest()  # type: ignore[arg-type]


def options(**kw: float) -> TransferOptions:
    base = {"chunk_bytes": CHUNK, "max_workers": 4, "stall_timeout_s": 5.0, "backoff_s": 0.01}
    return TransferOptions(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module", params=[True, False], ids=["xet", "plain-lfs"])
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[HubServer]:
    """Every fault twice: a Xet-backed repo (as on the real Hub) and a plain-LFS mirror."""
    root = tmp_path_factory.mktemp("hub")
    make_repo(root, REPO, {"main": FILES}, xet=request.param)
    with HubServer(root) as srv:
        yield srv


@pytest.fixture
def srv(server: HubServer) -> Iterator[HubServer]:
    server.reset()
    yield server
    assert not server.errors, server.errors
    # Xet files too go over the Hub's bridge (the CDN), where the faults are: never the CAS
    assert not server.requests.filter(origin="cas")


@pytest.fixture
def hub(srv: HubServer, tmp_path: Path) -> Hub:
    settings = HubSettings(
        endpoint=srv.endpoint, token=DEFAULT_TOKEN, cache_dir=tmp_path / "c", retry_backoff_s=0.01
    )
    return Hub(settings)


def fetch(hub: Hub, out: Path, opts: TransferOptions | None = None) -> FetchResult:
    plan = plan_fetch(hub, REPO, MAIN, local_dir=out, small_file_bytes=64 << 10)
    return execute(plan, hub, options=opts or options())


def assert_complete(out: Path) -> None:
    assert verify(out).passed
    assert (out / "big.safetensors").read_bytes() == FILES["big.safetensors"]


def test_dropped_connections_mid_file_still_complete(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    srv.faults.add("*/big.safetensors", Fault(drop_after_bytes=100_000, origin="cdn", times=3))
    fetch(hub, tmp_path / "out")
    assert srv.faults.fired() == 3
    assert_complete(tmp_path / "out")


def test_short_bodies_and_server_errors_are_retried(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    srv.faults.add("*/big.safetensors", Fault(truncate_bytes=5000, origin="cdn", times=2))
    srv.faults.add("*/big.safetensors", Fault(status=503, origin="cdn", times=2))
    srv.faults.add("*/config.json", Fault(status=502, method="GET", times=1))
    fetch(hub, tmp_path / "out")
    assert srv.faults.fired() == 5
    assert_complete(tmp_path / "out")


def test_a_stalled_connection_is_dropped_and_retried(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    srv.faults.add("*/big.safetensors", Fault(stall_s=3.0, origin="cdn", method="GET", times=1))
    began = time.monotonic()
    fetch(hub, tmp_path / "out", options(stall_timeout_s=0.3))
    assert time.monotonic() - began < 2.5
    assert_complete(tmp_path / "out")


def test_a_corrupted_transfer_is_downloaded_again(hub: Hub, srv: HubServer, tmp_path: Path) -> None:
    srv.faults.add("*/big.safetensors", Fault(corrupt_at=CHUNK + 10, origin="cdn", times=1))
    # one chunk for the whole file, so the one corrupting answer covers the flipped offset
    result = fetch(hub, tmp_path / "out", options(chunk_bytes=8 * MIB))
    assert srv.faults.fired() == 1
    assert result.transferred_bytes >= 2 * BIG
    assert_complete(tmp_path / "out")


def test_corruption_that_persists_fails_without_a_final_file(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    srv.faults.add("*/big.safetensors", Fault(corrupt_at=10, origin="cdn"))
    out = tmp_path / "out"
    with pytest.raises(IntegrityError):
        fetch(hub, out)
    assert not (out / "big.safetensors").exists()
    assert not (out / "quantpick.json").exists()


def test_an_expired_signed_url_is_resolved_again(hub: Hub, srv: HubServer, tmp_path: Path) -> None:
    srv.faults.add("/lfs/*/big.safetensors", Fault(status=403, origin="cdn", times=1))
    fetch(hub, tmp_path / "out")
    assert srv.requests.count(method="HEAD", path="*/resolve/*/big.safetensors") >= 2
    assert_complete(tmp_path / "out")


def test_signed_urls_that_always_expire_fail_cleanly(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    srv.cdn_ttl_s = -60
    out = tmp_path / "out"
    with pytest.raises(NetworkError):
        fetch(hub, out, options(retries=2))
    assert not (out / "big.safetensors").exists()
    assert not (out / "quantpick.json").exists()


def test_the_token_never_reaches_the_cdn(hub: Hub, srv: HubServer, tmp_path: Path) -> None:
    fetch(hub, tmp_path / "out")
    assert srv.requests.count(origin="cdn") > 0
    assert not [r for r in srv.requests.filter(origin="cdn") if r.authorized]
    assert all(r.authorized for r in srv.requests.filter(origin="hub", path="*/resolve/*"))


# -- a fetch in another process, killed or interrupted mid-file ------------------------------------

CHILD = """
import json, sys
from pathlib import Path
from quantpick.download.execute import execute, plan_fetch
from quantpick.errors import QuantpickError
from quantpick.download.context import TransferOptions
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import Format, Variant, VariantKind
a = json.loads(sys.argv[1])
hub = Hub(HubSettings(endpoint=a["endpoint"], token=a["token"], cache_dir=Path(a["cache"])))
variant = Variant(name="main", kind=VariantKind.BRANCH, format=Format.OTHER)
plan = plan_fetch(hub, a["repo"], variant, local_dir=Path(a["out"]), small_file_bytes=65536)
opts = TransferOptions(chunk_bytes=a["chunk"], max_workers=2, stall_timeout_s=5.0)
try:
    execute(plan, hub, options=opts)
except QuantpickError as exc:
    print(type(exc).__name__, exc, file=sys.stderr)
    sys.exit(int(exc.exit_code))
"""


def start_child(srv: HubServer, tmp_path: Path, out: Path) -> subprocess.Popen[bytes]:
    args = {
        "endpoint": srv.endpoint,
        "token": DEFAULT_TOKEN,
        "cache": str(tmp_path / "child-cache"),
        "repo": REPO,
        "out": str(out),
        "chunk": CHUNK,
    }
    src = str(Path(quantpick.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": src}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_chunks(out: Path, child: subprocess.Popen[bytes], count: int) -> int:
    """Poll (bounded) until the child's sidecar records `count` finished chunks; returns them."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        for sidecar in partial_dir(out).glob("*.part.json") if partial_dir(out).is_dir() else []:
            try:
                done = bin(int(json.loads(sidecar.read_text())["done"], 16)).count("1")
            except (OSError, ValueError, KeyError):
                continue
            if done >= count:
                return done
        time.sleep(0.02)
    raise AssertionError("the child never got going")


@pytest.fixture
def slow(srv: HubServer) -> None:
    # ~0.25 s per chunk per connection: slow enough to stop the child mid-file
    srv.faults.add("*/big.safetensors", Fault(rate_bps=1 * MIB, origin="cdn", method="GET"))


@pytest.mark.usefixtures("slow")
def test_killed_fetch_resumes_without_starting_over(
    hub: Hub, srv: HubServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    child = start_child(srv, tmp_path, out)
    wait_for_chunks(out, child, 4)
    child.kill()
    child.communicate()
    assert not (out / "big.safetensors").exists()
    plan = plan_fetch(hub, REPO, MAIN, local_dir=out, small_file_bytes=64 << 10)
    big = {f.path: f for f in plan.files}["big.safetensors"]
    assert big.state is FileState.PARTIAL
    assert big.have_bytes >= 4 * CHUNK
    srv.faults.clear()
    srv.requests.clear()
    result = execute(plan, hub, options=options())
    assert result.transferred_bytes < BIG
    moved = sum(r.bytes_sent for r in srv.requests.filter(path="*/big.safetensors"))
    assert moved <= BIG - big.have_bytes
    assert_complete(out)
    assert {f.path: f for f in result.manifest.files}["big.safetensors"].sha256 == BIG_SHA


@pytest.mark.usefixtures("slow")
@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGINT, ExitCode.INTERRUPTED), (signal.SIGTERM, ExitCode.TERMINATED)],
)
def test_interrupted_fetch_exits_with_its_code_and_resumes(
    hub: Hub, srv: HubServer, tmp_path: Path, signum: int, code: int
) -> None:
    out = tmp_path / "out"
    child = start_child(srv, tmp_path, out)
    wait_for_chunks(out, child, 2)
    child.send_signal(signum)
    _, err = child.communicate(timeout=30)
    assert child.returncode == code, err
    assert not (out / "big.safetensors").exists()
    assert not (out / "quantpick.json").exists()
    srv.faults.clear()
    plan = plan_fetch(hub, REPO, MAIN, local_dir=out, small_file_bytes=64 << 10)
    result = execute(plan, hub, options=options())
    assert result.transferred_bytes < BIG
    assert_complete(out)
