"""`quantpick fetch` of Xet-backed files against the loopback Hub's Xet storage: the default path
(the ranged engine over the Hub's bridge), `--backend hub` (huggingface_hub handing the file to
hf_xet), a CAS that fails or stalls forever, mirrors with and without Xet, kill -9 and SIGINT."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import fresh, live_files, run_qp
from quantpick.download.context import TransferOptions
from quantpick.download.execute import execute, plan_fetch
from quantpick.download.plan import Backend
from quantpick.download.progress import NullProgress
from quantpick.hub.client import Hub, HubSettings
from quantpick.records import Format, Variant, VariantKind
from quantpick.testing import DEFAULT_TOKEN, Fault, HubServer, make_repo

MIB = 1 << 20
REPO = "xet/model"
# random (not sparse) bytes over several xorbs
DATA = random.Random(5).randbytes(20 * MIB + 4321)
DATA_SHA = hashlib.sha256(DATA).hexdigest()
FILES = {"model.safetensors": DATA, "config.json": '{"a": 1}'}
# each run ends a stall in seconds: `quantpick` reads these (README, Environment)
FAST = {"QUANTPICK_STALL_TIMEOUT": "1", "QUANTPICK_RETRIES": "1"}
HF_XET = ("--backend", "hub")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    root = tmp_path_factory.mktemp("hub")
    make_repo(root, REPO, {"main": FILES})
    make_repo(root, "plain/model", {"main": FILES}, xet=False)
    with HubServer(root) as srv:
        yield srv


@pytest.fixture
def srv(server: HubServer) -> Iterator[HubServer]:
    yield from fresh(server)


def qp(
    srv: HubServer, tmp_path: Path, *args: str, repo: str = REPO, **env: str
) -> subprocess.CompletedProcess[str]:
    return run_qp(
        "fetch",
        f"{repo}:main",
        "--local-dir",
        tmp_path / "out",
        *args,
        env={"HF_ENDPOINT": srv.endpoint, "HF_HOME": str(tmp_path / "hf"), **env},
        cwd=tmp_path,
        timeout=120,
    )


def manifest_backends(out: Path) -> dict[str, str]:
    doc = json.loads((out / "quantpick.json").read_text())
    return {f["path"]: f["backend"] for f in doc["files"]}


def assert_failed_cleanly(r: subprocess.CompletedProcess[str], out: Path, code: int = 7) -> None:
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith("error: ")
    assert "hint: " in r.stderr
    assert "Traceback" not in r.stderr
    assert "signature=" not in r.stderr
    assert not (out / "model.safetensors").exists()
    assert not (out / "quantpick.json").exists()


# --- the two paths, named as taken ---------------------------------------------------------------


def _dry_row(stdout: str, path: str) -> list[str]:
    """The --dry-run table's row of one file: path, size, state, backend."""
    return next(line.split() for line in stdout.splitlines() if line.startswith(path + " "))


def test_default_path_is_the_bridge_and_dry_run_and_manifest_say_so(
    srv: HubServer, tmp_path: Path
) -> None:
    dry = qp(srv, tmp_path, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _dry_row(dry.stdout, "model.safetensors")[-2:] == ["missing", "ranged"]
    r = qp(srv, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA
    assert manifest_backends(tmp_path / "out")["model.safetensors"] == "ranged"
    assert srv.requests.count(origin="cdn", path="*/model.safetensors", method="GET") >= 1
    assert srv.requests.count(origin="cas") == 0


def test_backend_hub_takes_hf_xet_and_dry_run_and_manifest_say_so(
    srv: HubServer, tmp_path: Path
) -> None:
    dry = qp(srv, tmp_path, *HF_XET, "--dry-run")
    assert _dry_row(dry.stdout, "model.safetensors")[-2:] == ["missing", "hf_xet"]
    r = qp(srv, tmp_path, *HF_XET)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA
    assert manifest_backends(tmp_path / "out")["model.safetensors"] == "hf_xet"
    assert srv.requests.count(origin="cas", path="/xorbs/*") >= 3
    assert srv.requests.count(origin="cdn", method="GET") == 0


@pytest.mark.parametrize("backend", ["ranged", "hf_transfer"])
def test_a_forced_backend_is_honoured_for_xet_files(
    srv: HubServer, tmp_path: Path, backend: str
) -> None:
    r = qp(srv, tmp_path, "--backend", backend)
    assert r.returncode == 0, r.stderr
    assert manifest_backends(tmp_path / "out")["model.safetensors"] == backend
    assert srv.requests.count(origin="cas") == 0


class Recorder(NullProgress):
    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []

    def advance(self, path: str, nbytes: int) -> None:
        self.events.append((path, nbytes))


def test_hf_xet_progress_moves_within_the_file(srv: HubServer, tmp_path: Path) -> None:
    # the last xorb slow (about 4 s): the file's first 16 MiB are written and reported before it
    srv.faults.add("/xorbs/*/2", Fault(rate_bps=MIB, origin="cas"))
    hub = Hub(HubSettings(endpoint=srv.endpoint, token=DEFAULT_TOKEN, cache_dir=tmp_path / "c"))
    main = Variant(name="main", kind=VariantKind.BRANCH, format=Format.OTHER)
    plan = plan_fetch(hub, REPO, main, local_dir=tmp_path / "out", backend=Backend.HUB)
    progress = Recorder()
    execute(plan, hub, progress=progress, options=TransferOptions())
    steps = [n for path, n in progress.events if path == "model.safetensors"]
    assert len(steps) >= 2
    assert max(steps) < len(DATA)
    assert sum(steps) == len(DATA)


# --- a CAS that fails ----------------------------------------------------------------------------


def test_cas_503_forever_exits_7_on_hf_xet_and_is_never_asked_by_default(
    srv: HubServer, tmp_path: Path
) -> None:
    srv.faults.add("/v1/*", Fault(status=503, origin="cas"))
    assert_failed_cleanly(qp(srv, tmp_path, *HF_XET, **FAST), tmp_path / "out")
    assert srv.faults.fired() >= 1
    r = qp(srv, tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA


@pytest.mark.parametrize(
    "fault",
    [Fault(status=404, origin="cas"), Fault(status=403, origin="cas")],
    ids=["missing-xorb", "refused-xorb"],
)
def test_xorb_failures_map_to_exit_7(srv: HubServer, tmp_path: Path, fault: Fault) -> None:
    srv.faults.add("/xorbs/*", fault)
    assert_failed_cleanly(qp(srv, tmp_path, *HF_XET, **FAST), tmp_path / "out")


def test_wrong_or_cut_xorb_bytes_on_hf_xet(srv: HubServer, tmp_path: Path) -> None:
    # a dropped and a short xorb body are retried by hf_xet; bytes flipped once are caught by
    # quantpick's sha256 and fetched again; flipped every time: exit 8, nothing under a final name
    srv.faults.add("/xorbs/*", Fault(drop_after_bytes=5000, times=1, origin="cas"))
    srv.faults.add("/xorbs/*", Fault(truncate_bytes=100, times=1, origin="cas"))
    srv.faults.add("/xorbs/*/0", Fault(corrupt_at=100, times=1, origin="cas"))
    r = qp(srv, tmp_path, *HF_XET, **FAST)
    assert r.returncode == 0, r.stderr
    assert srv.faults.fired() == 3
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA
    srv.faults.clear()
    srv.faults.add("/xorbs/*/0", Fault(corrupt_at=100, origin="cas"))
    (tmp_path / "b").mkdir()
    assert_failed_cleanly(qp(srv, tmp_path / "b", *HF_XET, **FAST), tmp_path / "b" / "out", 8)


def test_a_cas_stalling_forever_is_bounded(srv: HubServer, tmp_path: Path) -> None:
    srv.faults.add("/xorbs/*", Fault(stall_s=600, origin="cas"))
    began = time.monotonic()
    assert_failed_cleanly(qp(srv, tmp_path, *HF_XET, **FAST), tmp_path / "out")
    assert time.monotonic() - began < 60
    began = time.monotonic()
    assert qp(srv, tmp_path, **FAST).returncode == 0
    assert time.monotonic() - began < 60


def test_cas_tokens_that_are_always_expired_exit_7(srv: HubServer, tmp_path: Path) -> None:
    # hf_xet asks xet-read-token again, gets another dead token, and gives up
    srv.xet_token_ttl_s = -1
    assert_failed_cleanly(qp(srv, tmp_path, *HF_XET, **FAST), tmp_path / "out")
    assert srv.requests.count(path="/api/models/xet/model/xet-read-token/*") >= 2
    assert srv.requests.count(origin="cas", status=401) >= 1


# --- mirrors -------------------------------------------------------------------------------------


def test_a_mirror_without_xet_takes_the_plain_path(srv: HubServer, tmp_path: Path) -> None:
    for args in ((), HF_XET):
        r = qp(srv, tmp_path, *args, repo="plain/model")
        assert r.returncode == 0, r.stderr
        assert manifest_backends(tmp_path / "out")["model.safetensors"] in ("ranged", "hub")
    assert srv.requests.count(origin="cas") == 0


def test_a_mirror_passing_xet_headers_with_an_unreachable_cas(
    srv: HubServer, tmp_path: Path
) -> None:
    real = srv.cas.endpoint
    srv.cas.endpoint = (
        "http://127.0.0.1:9"  # what hf-mirror advertises: an upstream we cannot reach
    )
    try:
        began = time.monotonic()
        assert_failed_cleanly(qp(srv, tmp_path, *HF_XET, **FAST), tmp_path / "out")
        assert time.monotonic() - began < 60
        r = qp(srv, tmp_path, **FAST)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA
    finally:
        srv.cas.endpoint = real


# --- killed and interrupted on the hf_xet path ----------------------------------------------------


def start(srv: HubServer, tmp_path: Path) -> subprocess.Popen[str]:
    # slow (about 25 s for the file) so that a loaded machine still catches it mid-file
    srv.faults.add("/xorbs/*", Fault(rate_bps=256 << 10, origin="cas"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))},
        "HF_ENDPOINT": srv.endpoint,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }
    cmd = [sys.executable, "-m", "quantpick", "fetch", f"{REPO}:main", *HF_XET, "--local-dir"]
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not incomplete(tmp_path / "out"):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    assert incomplete(tmp_path / "out"), "hf_xet never started on the weights"
    return proc


def incomplete(out: Path) -> list[Path]:
    """The weights' `.incomplete` (named with their sha256), not config.json's passing one."""
    return live_files(out / ".quantpick" / "hub", f"*{DATA_SHA}*.incomplete")


def test_kill_9_on_hf_xet_leaves_an_orphan_the_next_fetch_removes(
    srv: HubServer, tmp_path: Path
) -> None:
    proc = start(srv, tmp_path)
    proc.kill()
    proc.communicate()
    assert incomplete(tmp_path / "out")
    srv.faults.clear()
    r = qp(srv, tmp_path, *HF_XET)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "out" / ".quantpick" / "hub").exists()
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA


def test_sigint_on_hf_xet_exits_130_and_the_rerun_completes(srv: HubServer, tmp_path: Path) -> None:
    proc = start(srv, tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "model.safetensors").exists()
    srv.faults.clear()
    r = qp(srv, tmp_path, *HF_XET)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == DATA
