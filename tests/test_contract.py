"""The scripting contract: committed JSON Schemas, every exit code from a real run, TTY manners."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
from filelock import FileLock

from qp import EXAMPLES, REPO_ROOT, run_qp
from quantpick.cli.schema import ENVELOPES, schema_text
from quantpick.testing.builder import make_repo
from quantpick.testing.faults import Fault
from quantpick.testing.server import HubServer
from tmpfs import mounted_tmpfs

SCHEMAS = REPO_ROOT / "docs" / "schema"
EXL2 = EXAMPLES / "cards" / "demo__Mixtral-8x7B-Instruct-exl2.md"
MIB = 1 << 20


@pytest.mark.parametrize("name", sorted(ENVELOPES))
def test_committed_schema_matches_the_code(name: str) -> None:
    committed = (SCHEMAS / f"{name}.schema.json").read_text()
    assert committed == schema_text(ENVELOPES[name]), (
        "run: python -m quantpick.cli.schema docs/schema"
    )


def _validate(kind: str, stdout: str) -> dict[str, object]:
    doc = json.loads(stdout)
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    jsonschema.validate(doc, schema)
    # fetch@2: the dry-run status split from its engine (issue 15)
    assert doc["schema"] == f"quantpick/{kind}@{2 if kind == 'fetch' else 1}"
    return doc  # type: ignore[no-any-return]


def _serve(tmp_path: Path, *, xet: bool = True) -> Iterator[HubServer]:
    root = tmp_path / "hub"
    branches: dict[str, dict[str, bytes | str | int]] = {"main": {"measurement.json": "{}"}}
    for b in ("6_5", "5_0", "4_25", "3_5", "3_0"):
        branches[b] = {"model.safetensors": os.urandom(3 * MIB)}
    make_repo(root, "demo/mix-exl2", branches, readme=EXL2.read_text(), xet=xet)
    with HubServer(root) as server:
        yield server


@pytest.fixture
def qhub(tmp_path: Path) -> Iterator[HubServer]:
    yield from _serve(tmp_path)


# The paths a fetch can take: a Xet-backed repo (the default: the ranged engine over the Hub's
# bridge), a plain-LFS mirror, and a Xet repo with --backend hub (hf_xet through the CAS).
# Each: (xet on the server, extra fetch arguments, where a slowing fault goes).
PATHS = {
    "xet": (True, (), ("*/model.safetensors", None)),
    "plain-lfs": (False, (), ("*/model.safetensors", None)),
    "hf_xet": (True, ("--backend", "hub"), ("/xorbs/*", "cas")),
}


@pytest.fixture(params=sorted(PATHS))
def route(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[HubServer, tuple[str, ...]]]:
    xet, extra, (glob, origin) = PATHS[request.param]
    for server in _serve(tmp_path, xet=xet):
        server.slow_glob = (glob, origin)  # type: ignore[attr-defined]
        yield server, extra


def _env(server: HubServer, tmp_path: Path) -> dict[str, str]:
    return {"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf")}


def test_real_outputs_validate_against_schemas(qhub: HubServer, tmp_path: Path) -> None:
    env = _env(qhub, tmp_path)
    budget = ("--vram", "24", "--ctx", "16k")
    _validate("list", run_qp("list", "--card", EXL2, "--json").stdout)
    _validate("list", run_qp("list", "demo/mix-exl2", *budget, "--json", env=env).stdout)
    _validate("pick", run_qp("pick", "demo/mix-exl2", *budget, "--json", env=env).stdout)
    _validate("pick", run_qp("pick", "--card", EXL2, "--vram", "8", "--json").stdout)
    r = run_qp("fetch", "demo/mix-exl2", *budget, "--json", env=env, cwd=tmp_path)
    doc = _validate("fetch", r.stdout)
    _validate("fetch", run_qp("fetch", "demo/mix-exl2:3_0", "--dry-run", "--json", env=env).stdout)
    _validate("verify", run_qp("verify", str(doc["local_dir"]), "--json").stdout)


def test_no_gpu_for_vram_auto_exits_11(tmp_path: Path) -> None:
    r = run_qp("pick", "--card", EXL2, "--vram", "auto", env={"PATH": str(tmp_path)})
    assert r.returncode == 11
    assert r.stderr.startswith("error: ")
    assert "--vram 24" in r.stderr


def test_locked_directory_exits_10(
    route: tuple[HubServer, tuple[str, ...]], tmp_path: Path
) -> None:
    qhub, extra = route
    target = tmp_path / "locked"
    (target / ".quantpick").mkdir(parents=True)
    with FileLock(str(target / ".quantpick" / "lock")):
        r = run_qp(
            "fetch", "demo/mix-exl2:3_0", *extra, "--local-dir", target, env=_env(qhub, tmp_path)
        )
    assert r.returncode == 10, r.stderr
    assert r.stderr.startswith("error: ")


def _fetch_in_flight(
    qhub: HubServer, tmp_path: Path, target: Path, *, rate_bps: int, extra: tuple[str, ...] = ()
) -> subprocess.Popen[str]:
    """A fetch of 3_0 slowed by a drip, returned once its first bytes are on disk."""
    glob, origin = getattr(qhub, "slow_glob", ("*/model.safetensors", None))
    qhub.faults.add(glob, Fault(rate_bps=rate_bps, origin=origin))
    env = {**os.environ, **_env(qhub, tmp_path), "HF_HUB_DISABLE_UPDATE_CHECK": "1"}
    cmd = [sys.executable, "-m", "quantpick", "fetch", "demo/mix-exl2:3_0", *extra, "--local-dir"]
    proc = subprocess.Popen(
        [*cmd, str(target)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _partial_bytes(target):
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupted_fetch_exits_130_or_143_and_resumes(
    route: tuple[HubServer, tuple[str, ...]], tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    qhub, extra = route
    target = tmp_path / "sig"
    proc = _fetch_in_flight(qhub, tmp_path, target, rate_bps=64 * 1024, extra=extra)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    assert not (target / "model.safetensors").exists()
    assert "error: " in err
    qhub.faults.clear()
    again = run_qp(
        "fetch", "demo/mix-exl2:3_0", *extra, "--local-dir", target, env=_env(qhub, tmp_path)
    )
    assert again.returncode == 0, again.stderr
    assert run_qp("verify", target).returncode == 0


def _partial_bytes(target: Path) -> int:
    state = target / ".quantpick"
    if not state.is_dir():
        return 0
    return sum(p.stat().st_size for p in state.rglob("*") if p.is_file() and p.name != "lock")


def test_no_ansi_when_piped_even_with_force_terminal_unset(tmp_path: Path) -> None:
    for args in (("list", "--card", str(EXL2)), ("pick", "--card", str(EXL2), "--vram", "8")):
        r = run_qp(*args)
        assert "\x1b[" not in r.stdout + r.stderr


def test_no_color_is_honoured_on_a_terminal() -> None:
    r = run_qp(
        "list", "--card", EXL2, env={"NO_COLOR": "1", "TTY_COMPATIBLE": "1", "FORCE_COLOR": ""}
    )
    assert "\x1b[3" not in r.stdout


def test_quiet_silences_warnings() -> None:
    card = REPO_ROOT / "tests" / "fixtures" / "cards"
    noisy = run_qp("list", "--card", EXL2)
    quiet = run_qp("list", "--card", EXL2, "--quiet")
    assert quiet.returncode == noisy.returncode == 0
    assert quiet.stderr == ""
    assert card.is_dir()


def test_env_defaults_for_flags() -> None:
    r = run_qp(
        "pick",
        "--card",
        EXL2,
        "--reserve",
        "0",
        env={"QUANTPICK_VRAM": "24", "QUANTPICK_CTX": "16k"},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "3_5\n"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs: a real full disk, where the test may mount one (root on Linux)."""
    with mounted_tmpfs(tmp_path / "small", "4m") as mnt:
        yield mnt


def test_not_enough_disk_exits_9_before_any_byte(
    route: tuple[HubServer, tuple[str, ...]], tmp_path: Path, small_fs: Path
) -> None:
    qhub, extra = route
    (small_fs / "filler").write_bytes(b"\0" * (2 * MIB))
    r = run_qp(
        "fetch",
        "demo/mix-exl2:3_0",
        *extra,
        "--local-dir",
        small_fs / "m",
        env=_env(qhub, tmp_path),
    )
    assert r.returncode == 9, r.stderr
    assert r.stderr.startswith("error: ")
    assert not qhub.requests.filter(path="*/model.safetensors", method="GET")
    assert not qhub.requests.filter(origin="cas")


def test_disk_full_mid_transfer_exits_9_then_resumes(
    route: tuple[HubServer, tuple[str, ...]], tmp_path: Path, small_fs: Path
) -> None:
    qhub, extra = route
    target = small_fs / "m"
    proc = _fetch_in_flight(qhub, tmp_path, target, rate_bps=256 * 1024, extra=extra)
    # another program fills the disk while the transfer runs
    filler = small_fs / "filler"
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 9, err
    assert "error: " in err
    assert not (target / "model.safetensors").exists()
    filler.unlink()
    qhub.faults.clear()
    again = run_qp(
        "fetch", "demo/mix-exl2:3_0", *extra, "--local-dir", target, env=_env(qhub, tmp_path)
    )
    assert again.returncode == 0, again.stderr
    assert run_qp("verify", target).returncode == 0
