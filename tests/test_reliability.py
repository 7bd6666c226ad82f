"""Integrity and safety under faults, driven through the real CLI against the loopback Hub, for
issue 16 and issue 15 item 1: what is called verified was hashed against the Hub's own hash,
nothing is written through a link quantpick did not make, and hostile input ends in one line.

Every guarantee about a download runs on both storages the Hub serves: plain LFS (`lfs`: the path
issue 16's audit broke, files from the CDN) and Xet (`xet`: the Hub's default, LFS files through
the bridge URL, or through hf_xet and the CAS with `--backend hub`), and on each engine it
concerns."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qp import EXAMPLES, REPO_ROOT, live_files, run_qp
from quantpick.testing import Fault, HubProcess, make_repo
from tmpfs import mounted_tmpfs

WEIGHTS = os.urandom(2 << 20)
CONFIG = '{"model_type": "llama", "num_hidden_layers": 2}'


def _qp(
    hub: HubProcess, cwd: Path, *args: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(cwd / "hf"), **(env or {})}
    return run_qp(*args, env=full, cwd=cwd, timeout=90)


def _flip_byte_keep_mtime(path: Path, offset: int = 1000) -> None:
    """Bit rot: one byte changes, size and mtime do not."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.fixture(params=[False, True], ids=["lfs", "xet"])
def xet(request: pytest.FixtureRequest) -> bool:
    """The storage the loopback Hub serves LFS files with."""
    value: bool = request.param
    return value


@pytest.fixture
def repo(hub: HubProcess, hub_root: Path, xet: bool) -> str:
    make_repo(
        hub_root, "o/m", {"main": {"config.json": CONFIG, "model.safetensors": WEIGHTS}}, xet=xet
    )
    return "o/m"


def _statuses(stdout: str) -> dict[str, str]:
    return {f["path"]: f["status"] for f in json.loads(stdout)["files"]}


# -- issue 15.1: a corrupt file is never called verified ------------------------------------------


@pytest.mark.parametrize("backend", ["auto", "hub"])
def test_a_file_verify_found_bad_is_downloaded_again(
    hub: HubProcess, repo: str, tmp_path: Path, backend: str
) -> None:
    fetch = ("fetch", f"{repo}:main", "--local-dir", "D", "--backend", backend)
    assert _qp(hub, tmp_path, *fetch).returncode == 0
    _flip_byte_keep_mtime(tmp_path / "D" / "model.safetensors")
    bad = _qp(hub, tmp_path, "verify", "D")
    assert bad.returncode == 8, bad.stderr
    again = _qp(hub, tmp_path, *fetch, "--json")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "D" / "model.safetensors").read_bytes() == WEIGHTS
    doc = json.loads(again.stdout)
    assert doc["transferred_bytes"] >= len(WEIGHTS)
    assert _statuses(again.stdout)["model.safetensors"] == "verified"
    assert _qp(hub, tmp_path, "verify", "D").returncode == 0


def test_fetch_says_unchanged_for_what_it_did_not_hash_and_verify_rehashes(
    hub: HubProcess, repo: str, tmp_path: Path
) -> None:
    assert _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D").returncode == 0
    _flip_byte_keep_mtime(tmp_path / "D" / "model.safetensors")
    trusted = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--json")
    assert trusted.returncode == 0, trusted.stderr
    # nothing was hashed, so nothing is called verified
    assert set(_statuses(trusted.stdout).values()) == {"unchanged since checked"}
    human = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D")
    assert "0 hashed and verified" in human.stderr
    assert "--verify" in human.stderr
    full = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--verify", "--json")
    assert full.returncode == 0, full.stderr
    assert set(_statuses(full.stdout).values()) == {"verified"}
    assert (tmp_path / "D" / "model.safetensors").read_bytes() == WEIGHTS


def test_ci_fetch_script_repairs_a_corrupt_cached_model(tmp_path: Path) -> None:
    from quantpick.testing import HubServer

    venv_bin = REPO_ROOT / ".venv" / "bin"
    subprocess.run(
        [str(venv_bin / "python"), str(EXAMPLES / "make_hub.py"), str(tmp_path / "hub")],
        check=True,
        capture_output=True,
    )
    with HubServer(tmp_path / "hub") as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))},
            "PATH": f"{venv_bin}:{os.environ['PATH']}",
            "MODEL": "demo/Mixtral-8x7B-Instruct-exl2",
            "VRAM": "24",
            "CTX": "16k",
            "HF_ENDPOINT": server.endpoint,
            "HF_HOME": str(tmp_path / "hf"),
        }

        def run() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["bash", str(EXAMPLES / "ci-fetch.sh")],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,
                timeout=120,
                check=False,
            )

        first = run()
        assert first.returncode == 0, first.stderr
        model_dir = tmp_path / first.stdout.strip()
        biggest = max(
            (p for p in model_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
        )
        good = biggest.read_bytes()
        _flip_byte_keep_mtime(biggest, offset=len(good) // 2)
        second = run()
        assert second.returncode == 0, second.stderr
        assert "cache hit" not in second.stderr
        assert biggest.read_bytes() == good
        third = run()
        assert third.returncode == 0, third.stderr
        assert "cache hit" in third.stderr


# -- 16.1: nothing is written through a link quantpick did not create -----------------------------


def _staging(target: Path, path: str) -> Path:
    from quantpick.download.partial import partial_key

    return target / ".quantpick" / "hub" / partial_key(path)


@pytest.mark.parametrize("backend", ["auto", "hub"])
@pytest.mark.parametrize(
    ("planted", "is_dir"), [("config.json", False), (".cache", True), ("sub", True)]
)
def test_a_link_planted_in_the_staging_dir_is_refused_before_any_byte(
    hub: HubProcess,
    hub_root: Path,
    tmp_path: Path,
    planted: str,
    is_dir: bool,
    xet: bool,
    backend: str,
) -> None:
    make_repo(
        hub_root,
        "o/s",
        {"main": {"config.json": CONFIG, "sub/big.bin": WEIGHTS, "model.safetensors": WEIGHTS}},
        xet=xet,
    )
    victim = tmp_path / "victim"
    if is_dir:
        victim.mkdir()
    else:
        victim.write_text("mine")
    target = tmp_path / "D"
    name = "sub/big.bin" if planted == "sub" else "config.json"
    staging = _staging(target, name)
    staging.mkdir(parents=True)
    (staging / planted).symlink_to(victim)
    hub.requests.clear()
    r = _qp(hub, tmp_path, "fetch", "o/s:main", "--local-dir", "D", "--backend", backend)
    assert r.returncode == 8, r.stderr
    assert r.stderr.startswith("error: ")
    assert "did not create" in r.stderr
    assert "Traceback" not in r.stderr
    # no weights were asked for (config.json is read into the HF cache, outside D, to size the
    # model), and the victim is as it was
    assert hub.requests.count(method="GET", path="*/model.safetensors") == 0
    assert hub.requests.count(method="GET", path="*/sub/big.bin") == 0
    assert hub.requests.count(origin="cas") == 0
    if is_dir:
        assert list(victim.iterdir()) == []
    else:
        assert victim.read_text() == "mine"
    assert not (target / "config.json").exists()


def test_a_stale_staging_dir_is_emptied_before_a_fetch(
    hub: HubProcess, repo: str, tmp_path: Path
) -> None:
    target = tmp_path / "D"
    staging = _staging(target, "config.json")
    staging.mkdir(parents=True)
    # what a killed run leaves: huggingface_hub's metadata of another answer
    (staging / "config.json").write_text('{"stale": true}')
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D")
    assert r.returncode == 0, r.stderr
    assert (target / "config.json").read_text() == CONFIG
    assert not (target / ".quantpick" / "hub").exists()


# -- 16.2: nothing is called verified without a hash from the Hub ---------------------------------

TOKENIZER = '{"version": "1.0", "model": {"vocab": {"a": 0, "b": 1}}}' * 50


def _mirror_repo(hub_root: Path, xet: bool, *modes: str) -> str:
    files = {"config.json": CONFIG, "tokenizer.json": TOKENIZER, "model.safetensors": WEIGHTS}
    make_repo(
        hub_root, "o/mirror", {"main": files}, mirror=("no_tree", "no_blob_ids", *modes), xet=xet
    )
    return "o/mirror"


def test_a_mirror_without_hashes_still_verifies_small_files_by_a_fresh_head(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    repo = _mirror_repo(hub_root, xet)
    hub.faults.add("*/tokenizer.json", Fault(corrupt_at=10, times=1, method="GET"))
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--json")
    assert r.returncode == 0, r.stderr
    assert hub.faults.fired() == 1
    assert (tmp_path / "D" / "tokenizer.json").read_text() == TOKENIZER
    assert _statuses(r.stdout)["tokenizer.json"] == "verified"


def test_a_file_with_no_hash_anywhere_is_refused_or_taken_as_unverified(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    repo = _mirror_repo(hub_root, xet, "opaque_etag")
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D")
    assert r.returncode == 8, r.stderr
    assert "--allow-unverified" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "D" / "tokenizer.json").exists()
    ok = _qp(
        hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--allow-unverified", "--json"
    )
    assert ok.returncode == 0, ok.stderr
    statuses = _statuses(ok.stdout)
    # the weights keep their LFS sha256 in the model info; the small files have nothing
    assert statuses["model.safetensors"] == "verified"
    assert statuses["tokenizer.json"] == statuses["config.json"] == "unverified"
    manifest = json.loads((tmp_path / "D" / "quantpick.json").read_text())
    flags = {f["path"]: f["unverified"] for f in manifest["files"]}
    assert flags == {"config.json": True, "tokenizer.json": True, "model.safetensors": False}
    human = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--allow-unverified")
    assert "UNVERIFIED" in human.stderr


# -- 16.3: every network call has a timeout; local inputs are regular, bounded files --------------


@pytest.mark.parametrize("command", ["list", "fetch"])
def test_a_server_that_never_answers_ends_in_exit_7_in_bounded_time(
    tmp_path: Path, command: str
) -> None:
    import time

    from quantpick.testing import SilentServer

    args = ["o/m:main", "--local-dir", "D"] if command == "fetch" else ["o/m"]
    with SilentServer() as silent:
        began = time.monotonic()
        r = run_qp(
            command,
            *args,
            env={
                "HF_ENDPOINT": silent.endpoint,
                "HF_HOME": str(tmp_path / "hf"),
                "QUANTPICK_TIMEOUT": "1",
            },
            cwd=tmp_path,
            timeout=120,
        )
        elapsed = time.monotonic() - began
        assert silent.accepted >= 1
    assert r.returncode == 7, r.stderr
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr
    assert elapsed < 60


def test_a_bad_timeout_is_a_usage_error(tmp_path: Path) -> None:
    r = run_qp("list", "o/m", "--timeout", "soon", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "--timeout" in r.stderr


@pytest.mark.parametrize("source", ["fifo", "/dev/zero", "/dev/urandom", "big"])
@pytest.mark.parametrize("option", ["--card", "--config"])
def test_card_and_config_must_be_regular_bounded_files(
    tmp_path: Path, source: str, option: str
) -> None:
    card = tmp_path / "README.md"
    card.write_text("| Branch | Bits |\n|---|---|\n| [main](x) | 4.0 |\n")
    if source == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    elif source == "big":
        path = tmp_path / "big.md"
        with open(path, "wb") as f:
            f.truncate(100 << 20)
    else:
        path = Path(source)
    args = (
        ["--card", str(path)]
        if option == "--card"
        else ["--card", str(card), "--config", str(path)]
    )
    r = run_qp("list", *args, cwd=tmp_path, timeout=30)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ")
    assert "Traceback" not in r.stderr


# -- 16.4: hostile input is bounded before use, each with one line and a documented code ----------

DEEP = "[" * 200_000 + "]" * 200_000
CARD = (
    "| Branch | Bits | VRAM (4k) |\n|---|---|---|\n"
    "| [4_0](https://huggingface.co/o/h/tree/4_0) | 4.0 | 5.0 GB |\n"
)


def _clean(r: subprocess.CompletedProcess[str], code: int) -> None:
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith(("error: ", "warning: ", "note: ")) or code == 0, r.stderr


def test_a_lone_surrogate_in_a_hub_file_name_is_refused_before_any_byte(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    make_repo(
        hub_root,
        "o/sur",
        {"4_0": {"model.safetensors": WEIGHTS, "notes.txt": "x"}},
        served_as={"\ud800evil.txt": "notes.txt"},
        xet=xet,
    )
    r = _qp(hub, tmp_path, "fetch", "o/sur:4_0", "--local-dir", "D")
    _clean(r, 8)
    assert "surrogate" in r.stderr
    assert hub.requests.count(method="GET", path="*/model.safetensors") == 0
    listed = _qp(hub, tmp_path, "list", "o/sur", "--json")
    assert "Traceback" not in listed.stderr
    assert listed.returncode in (0, 8), listed.stderr


@pytest.mark.parametrize("command", ["list", "pick", "fetch"])
def test_a_deeply_nested_config_on_the_hub_is_no_traceback(
    hub: HubProcess, hub_root: Path, tmp_path: Path, command: str
) -> None:
    make_repo(
        hub_root,
        "o/h",
        {"main": {"config.json": DEEP}, "4_0": {"model.safetensors": WEIGHTS}},
        readme=CARD,
        xet=False,
    )
    extra = {"list": [], "pick": ["--vram", "24"], "fetch": ["--vram", "24", "--local-dir", "D"]}
    r = _qp(hub, tmp_path, command, "o/h", *extra[command])
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "config",
    [
        DEEP,
        '{"num_hidden_layers": 1e9, "hidden_size": 4096, "num_attention_heads": 32, '
        '"vocab_size": 32000}',
        '{"num_hidden_layers": 100000000, "hidden_size": 4096, "num_attention_heads": 32, '
        '"vocab_size": 32000}',
        '{"num_hidden_layers": 32, "hidden_size": 1' + "0" * 400 + ', "num_attention_heads": 32, '
        '"vocab_size": 32000}',
    ],
    ids=["deep", "layers-1e9", "layers-1e8", "hidden-400-digits"],
)
def test_a_hostile_config_file_is_a_usage_error(tmp_path: Path, config: str) -> None:
    import time

    (tmp_path / "README.md").write_text(CARD)
    (tmp_path / "config.json").write_text(config)
    began = time.monotonic()
    r = run_qp(
        "list", "--card", "README.md", "--config", "config.json", "--vram", "24", cwd=tmp_path
    )
    _clean(r, 2)
    assert time.monotonic() - began < 20


def test_an_absurd_config_on_the_hub_costs_the_estimate_not_the_run(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    # gemma2 with a window: sizing it lists every layer (1e9 of them: MemoryError on main)
    big = (
        '{"model_type": "gemma2", "sliding_window": 4096, "num_hidden_layers": 1000000000, '
        '"hidden_size": 4096, "num_attention_heads": 32, "vocab_size": 32000}'
    )
    make_repo(
        hub_root,
        "o/h",
        {"main": {"config.json": big}, "4_0": {"model.safetensors": WEIGHTS}},
        readme=CARD,
        xet=False,
    )
    # 16k: the card has no figure for it, so only the config could size the variant
    r = _qp(hub, tmp_path, "pick", "o/h", "--vram", "24", "--ctx", "16k")
    assert "Traceback" not in r.stderr
    # nothing can be sized without a shape: the documented nothing-fits/cannot-size code
    assert r.returncode in (4, 12), r.stderr
    assert "no model shape" in r.stderr


@pytest.mark.parametrize("option", ["--vram", "--ctx"])
def test_figures_of_300_digits_are_usage_errors(tmp_path: Path, option: str) -> None:
    (tmp_path / "README.md").write_text(CARD)
    r = run_qp("list", "--card", "README.md", option, "9" * 320, cwd=tmp_path)
    _clean(r, 2)
    assert len(r.stderr) < 400


def test_a_token_with_a_non_ascii_character_is_a_usage_error(
    hub: HubProcess, repo: str, tmp_path: Path
) -> None:
    token = "hf_sécret_token_value"
    r = _qp(hub, tmp_path, "list", repo, "--token", token)
    _clean(r, 2)
    assert token not in r.stderr
    assert "ASCII" in r.stderr


# -- 16.5: the codes say what happened, and the hints work ----------------------------------------

MIB = 1 << 20


def test_a_corrupted_small_file_in_the_hf_cache_is_fetched_again(
    hub: HubProcess, repo: str, tmp_path: Path
) -> None:
    hub.faults.add("*/config.json", Fault(corrupt_at=5, times=1, method="GET"))
    first = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D")
    assert hub.faults.fired() == 1
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "D" / "config.json").read_text() == CONFIG
    # and the cache holds the right bytes for every later run
    again = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "E")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "E" / "config.json").read_text() == CONFIG


def _refuse_weights(hub: HubProcess, xet: bool, backend: str, fault: Fault) -> None:
    """Where the weights' bytes come from: the CDN (plain LFS), the bridge (on the CDN origin) for
    the ranged engine, or the CAS's reconstruction for hf_xet."""
    if xet and backend == "hub":
        hub.faults.add("/v1/reconstructions/*", dataclasses.replace(fault, origin="cas"))
    else:
        hub.faults.add("*/model.safetensors", dataclasses.replace(fault, origin="cdn"))


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("backend", ["auto", "hub"])
def test_a_cdn_refusal_on_the_huggingface_hub_path_re_resolves(
    hub: HubProcess, repo: str, tmp_path: Path, status: int, backend: str, xet: bool
) -> None:
    # the 2 MiB weights are LFS and small: on plain LFS huggingface_hub fetches them from the CDN
    _refuse_weights(hub, xet, backend, Fault(status=status, times=1))
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--backend", backend)
    assert hub.faults.fired() == 1
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "D" / "model.safetensors").read_bytes() == WEIGHTS


def test_a_cdn_that_always_refuses_is_a_network_error_not_an_auth_error(
    hub: HubProcess, repo: str, tmp_path: Path, xet: bool
) -> None:
    _refuse_weights(hub, xet, "hub", Fault(status=403))
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D", "--backend", "hub")
    assert r.returncode == 7, r.stderr
    assert "token" not in r.stderr.lower()


# forever, or once: a proxy that ignores Range now and then, while the other workers' chunks
# arrive; the fallback removes the .part only once they are out of it (ranged.py, `enter`)
@pytest.mark.parametrize("times", [None, 1], ids=["always", "once"])
def test_a_server_that_ignores_range_falls_back_to_one_stream(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool, times: int | None
) -> None:
    import hashlib

    built = make_repo(hub_root, "o/big", {"main": {"model.safetensors": 40 * MIB}}, xet=xet)
    want = hashlib.sha256((built.branch_dir() / "model.safetensors").read_bytes()).hexdigest()
    hub.faults.add("*/model.safetensors", Fault(ignore_range=1, origin="cdn", times=times))
    r = _qp(
        hub, tmp_path, "fetch", "o/big:main", "--local-dir", "D", "--json", "--max-workers", "8"
    )
    assert r.returncode == 0, r.stderr
    assert hub.faults.fired() >= 1
    got = hashlib.sha256((tmp_path / "D" / "model.safetensors").read_bytes()).hexdigest()
    assert got == want
    assert _statuses(r.stdout)["model.safetensors"] == "verified"
    # no chunk's worker wrote a sidecar back after the .part was given up
    assert not (tmp_path / "D" / ".quantpick" / "partial").exists()


@pytest.fixture
def tight_fs(tmp_path: Path) -> Iterator[Path]:
    with mounted_tmpfs(tmp_path / "tight", "32m") as mnt:
        yield mnt


def _fill_to(fs: Path, free_bytes: int) -> None:
    import shutil

    extra = shutil.disk_usage(fs).free - free_bytes
    with open(fs / "filler", "ab", buffering=0) as f:
        while extra > 0:
            n = min(extra, MIB)
            try:
                f.write(b"\0" * n)
            except OSError:
                return  # full: the fetch is writing at the same time
            extra -= n


def _spawn_fetch(hub: HubProcess, cwd: Path, *args: str | Path) -> subprocess.Popen[str]:
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))},
        "HF_ENDPOINT": hub.endpoint,
        "HF_HOME": str(cwd / "hf"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "quantpick", "fetch", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


def _part_blocks(target: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in (target / ".quantpick").rglob("*.part"))


def test_resume_on_a_tight_disk_counts_the_bytes_already_written(
    hub: HubProcess, hub_root: Path, tmp_path: Path, tight_fs: Path, xet: bool
) -> None:
    import signal
    import time

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=xet)
    target = tight_fs / "m"
    hub.faults.add("*/model.safetensors", Fault(rate_bps=4 * MIB, origin="cdn"))
    proc = _spawn_fetch(hub, tmp_path, "o/big:main", "--local-dir", target, "--max-workers", "1")
    deadline = time.monotonic() + 30
    while _part_blocks(target) < 12 * MIB and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _part_blocks(target) >= 12 * MIB
    hub.faults.clear()
    # room for what is left (8 MiB), not for the whole file again
    _fill_to(tight_fs, 10 * MIB)
    r = _qp(hub, tmp_path, "fetch", "o/big:main", "--local-dir", target)
    assert r.returncode == 0, r.stderr
    assert _qp(hub, tmp_path, "verify", target).returncode == 0


def test_hf_transfer_on_a_full_disk_is_exit_9_at_once(
    hub: HubProcess, hub_root: Path, tmp_path: Path, tight_fs: Path, xet: bool
) -> None:
    import time

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=xet)
    target = tight_fs / "m"
    hub.faults.add("*/model.safetensors", Fault(rate_bps=2 * MIB, origin="cdn", skip=1))
    began = time.monotonic()
    proc = _spawn_fetch(
        hub, tmp_path, "o/big:main", "--local-dir", target, "--backend", "hf_transfer"
    )
    deadline = time.monotonic() + 30
    while _part_blocks(target) < MIB and time.monotonic() < deadline:
        time.sleep(0.05)
    # another program takes the rest of the disk while the transfer runs
    _fill_to(tight_fs, 0)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 9, err
    assert err.startswith("error: ") or "\nerror: " in err
    assert "retrying" not in err
    assert time.monotonic() - began < 30


def test_hf_xet_on_a_full_disk_is_exit_9(
    hub: HubProcess, hub_root: Path, tmp_path: Path, tight_fs: Path
) -> None:
    import time

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=True)
    target = tight_fs / "m"
    hub.faults.add("/xorbs/*", Fault(rate_bps=2 * MIB, origin="cas"))
    proc = _spawn_fetch(hub, tmp_path, "o/big:main", "--local-dir", target, "--backend", "hub")
    # hf_xet may hold a xorb in memory and write the file in one burst, too fast to watch for:
    # the disk fills once the reconstruction is answered, while its xorb still trickles in
    deadline = time.monotonic() + 60
    while not hub.requests.count(origin="cas", path="/v1/reconstructions/*"):
        assert proc.poll() is None, "the fetch ended before hf_xet asked the CAS"
        assert time.monotonic() < deadline, "hf_xet never asked the CAS"
        time.sleep(0.02)
    _fill_to(tight_fs, 0)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode == 9, err
    assert "\nerror: " in f"\n{err}"
    assert "Traceback" not in err
    assert not (target / "model.safetensors").exists()


# -- 16.6: cost and leftovers ---------------------------------------------------------------------


def test_the_verified_record_is_appended_one_line_per_file_and_resumes(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    import signal
    import time

    files = {f"f{i:02d}.txt": f"file {i} " * 1000 for i in range(20)}
    # stored as LFS files, so that on Xet they are Xet files (the ranged engine over the bridge)
    make_repo(hub_root, "o/many", {"main": files}, xet=xet, lfs_threshold_bytes=1000)
    # the second half drips: the fetch is killed with the first half recorded
    hub.faults.add("*/f1[0-9].txt", Fault(rate_bps=1000, method="GET"))
    target = tmp_path / "D"
    record = target / ".quantpick" / "verified.json"
    proc = _spawn_fetch(hub, tmp_path, "o/many:main", "--local-dir", target)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if record.exists() and record.read_text().count("\n") >= 6:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    lines = record.read_text().splitlines()
    header = json.loads(lines[0])
    assert set(header) == {"commit_sha"}
    recorded = [json.loads(line)["path"] for line in lines[1:]]
    assert len(recorded) >= 5
    assert all(p.startswith("f0") for p in recorded)
    hub.faults.clear()
    hub.requests.clear()
    r = _qp(hub, tmp_path, "fetch", "o/many:main", "--local-dir", "D", "--json")
    assert r.returncode == 0, r.stderr
    statuses = _statuses(r.stdout)
    # what the record vouches for is neither fetched nor hashed again
    assert all(statuses[p] == "unchanged since checked" for p in recorded)
    for p in recorded:
        assert hub.requests.count(method="GET", path=f"*/{p}") == 0
    assert not record.exists()


def test_a_stale_sidecar_left_by_a_kill_after_install_is_cleaned_up(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    from quantpick.download.partial import partial_key

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=xet)
    assert _qp(hub, tmp_path, "fetch", "o/big:main", "--local-dir", "D").returncode == 0
    # what a kill between the rename into place and the sidecar's removal leaves
    partial = tmp_path / "D" / ".quantpick" / "partial"
    partial.mkdir()
    sidecar = partial / f"{partial_key('model.safetensors')}.part.json"
    sidecar.write_text('{"v": 1, "path": "model.safetensors"}')
    r = _qp(hub, tmp_path, "fetch", "o/big:main", "--local-dir", "D")
    assert r.returncode == 0, r.stderr
    assert not sidecar.exists()
    assert not partial.exists()


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_local_dir_is_a_usage_error(
    hub: HubProcess, repo: str, tmp_path: Path, value: str
) -> None:
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", value)
    _clean(r, 2)
    assert "--local-dir" in r.stderr
    assert not (tmp_path / "model.safetensors").exists()


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def test_an_hf_transfer_child_dies_with_its_parent(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    import signal
    import time

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=xet)
    hub.faults.add("*/model.safetensors", Fault(rate_bps=MIB, origin="cdn", skip=1))
    proc = _spawn_fetch(hub, tmp_path, "o/big:main", "--local-dir", "D", "--backend", "hf_transfer")
    deadline = time.monotonic() + 30
    kids: set[int] = set()
    while not kids and time.monotonic() < deadline:
        kids = _children(proc.pid)
        time.sleep(0.05)
    assert kids
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    time.sleep(0.3)
    alive = [k for k in kids if Path(f"/proc/{k}").exists() and "Z" not in _state(k)]
    assert alive == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except (OSError, IndexError):
        return "Z"


# -- 16.4: quantpick's own JSON, damaged, is no traceback --------------------------------------


def test_a_sidecar_nested_too_deep_is_taken_as_no_state(
    hub: HubProcess, repo: str, tmp_path: Path
) -> None:
    from quantpick.download.partial import partial_key

    partial = tmp_path / "D" / ".quantpick" / "partial"
    partial.mkdir(parents=True)
    (partial / f"{partial_key('model.safetensors')}.part.json").write_text(DEEP)
    (partial / f"{partial_key('config.json')}.part.json").write_text("[1, 2]")
    r = _qp(hub, tmp_path, "fetch", f"{repo}:main", "--local-dir", "D")
    _clean(r, 0)
    assert (tmp_path / "D" / "model.safetensors").read_bytes() == WEIGHTS


@pytest.mark.parametrize("damage", [DEEP, "[1, 2]"])
def test_a_lookup_cache_nested_too_deep_is_no_cached_answer(
    hub: HubProcess, repo: str, tmp_path: Path, damage: str
) -> None:
    assert _qp(hub, tmp_path, "list", repo).returncode == 0
    listings = list(tmp_path.rglob("listing.json"))
    assert listings
    for path in listings:
        path.write_text(damage)
    r = _qp(hub, tmp_path, "list", repo, "--offline")
    _clean(r, 7)
    assert "hint: " in r.stderr


def test_a_size_the_hub_disagrees_with_is_said_in_a_readable_unit(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    card = (
        "| Name | Quant method | Size |\n|---|---|---|\n"
        "| [w.Q4_K_M.gguf](https://huggingface.co/o/w/blob/main/w.Q4_K_M.gguf) | Q4_K_M "
        "| 5.0 GB |\n"
    )
    make_repo(hub_root, "o/w", {"main": {"README.md": card, "w.Q4_K_M.gguf": "x" * 3000}})
    r = _qp(hub, tmp_path, "list", "o/w", "--json")
    assert r.returncode == 0, r.stderr
    warnings = [w for v in json.loads(r.stdout)["variants"] for w in v["warnings"]]
    assert any("the card says 5.00 GB, the Hub holds 3.00 kB" in w for w in warnings), warnings


# -- 16.6: what `--backend hub` can keep across a kill ----------------------------------------

_HF_DOWNLOAD = """
import sys
from huggingface_hub import hf_hub_download
hf_hub_download("o/big", "model.safetensors", revision="main", endpoint=sys.argv[1],
                local_dir=sys.argv[2], cache_dir=sys.argv[3])
"""


def _incomplete(root: Path) -> list[Path]:
    return live_files(root, "*.incomplete")


def _kill_when_incomplete_or(
    proc: subprocess.Popen[str],
    root: Path,
    at_bytes: int,
    then: Callable[[], None] | None = None,
    ready: Callable[[], bool] | None = None,
) -> list[Path]:
    """Once huggingface_hub/hf_xet has written `at_bytes` under `root` (and `ready()` holds):
    `then`, or a SIGKILL."""
    import signal
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the download ended before the moment it was to be killed at"
        found = _incomplete(root)
        with contextlib.suppress(OSError):
            if (
                found
                and sum(p.stat().st_size for p in found) >= at_bytes
                and (ready is None or ready())
            ):
                break
        time.sleep(0.05)
    if then is not None:
        then()
        return []
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return _incomplete(root)


def _kill_when_incomplete(proc: subprocess.Popen[str], root: Path, at_bytes: int) -> list[Path]:
    return _kill_when_incomplete_or(proc, root, at_bytes)


def test_huggingface_hub_never_resumes_what_a_killed_download_left(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    """Why quantpick may empty its staging dir each run: huggingface_hub 2.4 downloads into a
    `<name>.<uuid8>.incomplete` of its own per process, opened "wb", and never reads an earlier
    one back; kept or not, the bytes a killed run left are not resumed (hf_xet keeps no chunk
    cache either: shared/HUB_API.md). Driven with huggingface_hub alone, the orphan kept."""
    import sys

    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=False)
    hub.faults.add("*/model.safetensors", Fault(rate_bps=4 * MIB, origin="cdn", times=1))
    args = [hub.endpoint, str(tmp_path / "L"), str(tmp_path / "cache")]
    first = subprocess.Popen(
        [sys.executable, "-c", _HF_DOWNLOAD, *args], text=True, stderr=subprocess.PIPE
    )
    orphans = _kill_when_incomplete(first, tmp_path / "L", 6 * MIB)
    assert len(orphans) == 1
    assert orphans[0].stat().st_size >= 6 * MIB
    hub.requests.clear()
    subprocess.run([sys.executable, "-c", _HF_DOWNLOAD, *args], check=True, capture_output=True)
    gets = hub.requests.filter(method="GET", path="*/model.safetensors", origin="cdn")
    # the whole file again, from its first byte, and the orphan still there beside it (the
    # killed run's own GET may be logged late, as it ends, with nothing more sent)
    assert all(g.range is None for g in gets)
    assert [g.bytes_sent for g in gets if g.bytes_sent] == [20 * MIB]
    assert orphans[0].exists()


def test_a_killed_backend_hub_fetch_frees_what_it_left_and_completes(
    hub: HubProcess, hub_root: Path, tmp_path: Path, xet: bool
) -> None:
    make_repo(hub_root, "o/big", {"main": {"model.safetensors": 20 * MIB}}, xet=xet)
    glob, origin = ("/xorbs/*", "cas") if xet else ("*/model.safetensors", "cdn")
    hub.faults.add(glob, Fault(rate_bps=(1 if xet else 4) * MIB, origin=origin))
    target = tmp_path / "D"
    proc = _spawn_fetch(hub, tmp_path, "o/big:main", "--local-dir", target, "--backend", "hub")
    if xet:
        # hf_xet writes a file in bursts as whole terms arrive (the last burst is followed by the
        # rename at once), so its size is no clock: kill once huggingface_hub has opened its
        # .incomplete and the CAS is serving xorbs, seconds before the first xorb ends
        orphans = _kill_when_incomplete_or(proc, target, 0, ready=lambda: hub.faults.fired() > 0)
    else:
        orphans = _kill_when_incomplete(proc, target, 4 * MIB)
    # what hf_hub_download / hf_xet was writing, in quantpick's staging dir
    assert orphans
    assert all(".quantpick/hub/" in str(p) for p in orphans)
    hub.faults.clear()
    r = _qp(hub, tmp_path, "fetch", "o/big:main", "--local-dir", "D", "--backend", "hub")
    assert r.returncode == 0, r.stderr
    assert _incomplete(target) == []
    assert not (target / ".quantpick" / "hub").exists()
    assert _qp(hub, tmp_path, "verify", "D").returncode == 0


def test_kills_at_random_moments_never_leave_a_wrong_file_and_the_rerun_converges(
    hub: HubProcess, hub_root: Path, tmp_path: Path
) -> None:
    """kill -9 at seeded random moments of a fetch of 40 small Xet files (each its own
    install-then-clean-up through the ranged engine, dozens of those windows per second), so
    some kills land between a file's install and its sidecar's removal; after every kill no final
    name holds wrong bytes, and the run after the last kill ends with the exact tree, a clean
    state dir and a manifest `verify` agrees with."""
    import random
    import signal
    import time

    from quantpick.download.partial import partial_key

    rng = random.Random(16)
    files = {f"w/{i:02d}.bin": rng.randbytes(192 << 10) for i in range(40)}
    make_repo(hub_root, "o/k", {"main": files}, xet=True, lfs_threshold_bytes=1000)
    hub.faults.add("*/w/*.bin", Fault(rate_bps=384 << 10, origin="cdn"))
    target = tmp_path / "D"
    for _ in range(8):
        proc = _spawn_fetch(hub, tmp_path, "o/k:main", "--local-dir", target)
        time.sleep(rng.uniform(0.6, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        for path, data in files.items():
            final = target / path
            if final.exists():
                assert final.read_bytes() == data, path
        partial = target / ".quantpick" / "partial"
        # the window is microseconds wide (os.replace of the .part, the record, the sidecar's
        # unlink) and random kills rarely land in it: what they would leave, a sidecar beside an
        # installed file with no .part, is added to this real killed run for two installed files
        installed = [p for p in files if (target / p).exists()]
        for path in installed[:2]:
            partial.mkdir(parents=True, exist_ok=True)
            sidecar = partial / f"{partial_key(path)}.part.json"
            sidecar.write_text(json.dumps({"v": 1, "path": path}))
    hub.faults.clear()
    r = _qp(hub, tmp_path, "fetch", "o/k:main", "--local-dir", "D", "--json")
    assert r.returncode == 0, r.stderr
    for path, data in files.items():
        assert (target / path).read_bytes() == data, path
    assert not (target / ".quantpick" / "partial").exists()
    assert not (target / ".quantpick" / "verified.json").exists()
    assert _qp(hub, tmp_path, "verify", "D").returncode == 0
