"""The README's main job (examples/demo.sh) and the CI example script, run for real."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from qp import EXAMPLES, REPO_ROOT
from quantpick.testing.server import HubServer

VENV_BIN = REPO_ROOT / ".venv" / "bin"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "QUANTPICK_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.mark.skipif(
    not (VENV_BIN / "quantpick").exists(), reason="needs the .venv made by scripts/setup.sh"
)
def test_demo_runs_list_and_fetch() -> None:
    r = subprocess.run(
        ["bash", str(EXAMPLES / "demo.sh")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "▶ 3_5" in r.stdout
    assert "pick 3_5" in r.stderr
    assert "ok: " in r.stdout


@pytest.fixture
def demo_hub(tmp_path: Path) -> Iterator[HubServer]:
    subprocess.run(
        [str(VENV_BIN / "python"), str(EXAMPLES / "make_hub.py"), str(tmp_path / "hub")],
        check=True,
        capture_output=True,
    )
    with HubServer(tmp_path / "hub") as server:
        yield server


@pytest.mark.skipif(
    not (VENV_BIN / "quantpick").exists(), reason="needs the .venv made by scripts/setup.sh"
)
def test_ci_fetch_script_picks_fetches_and_caches(demo_hub: HubServer, tmp_path: Path) -> None:
    env = _env(
        MODEL="demo/Mixtral-8x7B-Instruct-exl2",
        VRAM="24",
        CTX="16k",
        HF_ENDPOINT=demo_hub.endpoint,
        HF_HOME=str(tmp_path / "hf"),
    )
    run = lambda: subprocess.run(  # noqa: E731
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
    model_dir = Path(tmp_path, first.stdout.strip())
    assert (model_dir / "quantpick.json").is_file()
    second = run()
    assert second.returncode == 0, second.stderr
    assert "cache hit" in second.stderr
    # and it fails, with quantpick's code, when nothing fits
    env["VRAM"] = "8"
    failed = run()
    assert failed.returncode == 4
    assert "error: nothing fits" in failed.stderr
