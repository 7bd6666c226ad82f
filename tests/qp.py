"""Run the real `quantpick` in a subprocess: separate stdout/stderr, a real exit code, no TTY."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from quantpick.testing import HubServer

REPO_ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = REPO_ROOT / "examples"
SENTINEL_TOKEN = "hf_SENTINELsentinelSENTINEL0123456789"


def run_qp_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a quantpick run: the caller's, less Hub, quantpick and width settings."""
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "QUANTPICK_", "HUGGING_FACE")) and k != "COLUMNS"
    }
    full_env.update({"HF_HUB_DISABLE_UPDATE_CHECK": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
    full_env.update(env or {})
    return full_env


def run_qp(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    full_env = run_qp_env(env)
    return subprocess.run(
        [sys.executable, "-m", "quantpick", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def list_json(server: HubServer, tmp_path: Path, repo: str, *args: str) -> dict[str, Any]:
    """`quantpick list REPO --json` against a loopback Hub, which must succeed."""
    r = run_qp(
        "list",
        repo,
        "--json",
        *args,
        env={"HF_ENDPOINT": server.endpoint, "HF_HOME": str(tmp_path / "hf")},
    )
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def fresh(server: HubServer) -> Iterator[HubServer]:
    """A module's in-process Hub for one test: reset first, and the test fails if it raised."""
    server.reset()
    yield server
    assert not server.errors, server.errors


def live_files(root: Path, pattern: str) -> list[Path]:
    """Regular files under ROOT whose name matches PATTERN, walked while a child process is still
    creating and removing them: a directory or file that vanishes mid-walk is skipped, not raised
    (Path.rglob raises FileNotFoundError when a directory it listed is gone)."""
    found = []
    for top, _dirs, names in os.walk(root):
        for name in fnmatch.filter(names, pattern):
            path = Path(top, name)
            with contextlib.suppress(OSError):
                if path.is_file():
                    found.append(path)
    return found
