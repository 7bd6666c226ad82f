"""Shared fixtures: an isolated HF_HOME and the loopback Hub (quantpick.testing).

huggingface_hub reads HF_HOME and friends once, at import, so they are set here, before any test
module imports it. The Hub runs in a child process (HubProcess) because hf_transfer holds the GIL:
an in-process server thread could never answer it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantpick.testing import DEFAULT_TOKEN, HubProcess

_HF_HOME = Path(tempfile.mkdtemp(prefix="quantpick-hf-home-"))
os.environ["HF_HOME"] = str(_HF_HOME)
os.environ["HF_HUB_DISABLE_UPDATE_CHECK"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# a developer's own login must never reach a test: token=None would read it
for _name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
    os.environ.pop(_name, None)
# huggingface_hub fetches this registry from the real Hub once a day; a fresh copy stops it trying
(_HF_HOME / ".agent_harnesses.json").write_text(
    json.dumps({"standardEnvVars": [], "harnesses": {}}), encoding="utf-8"
)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_HF_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def _hub_idle_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Served between tests, so no test sees another's repositories."""
    return tmp_path_factory.mktemp("hub-idle")


@pytest.fixture(scope="session")
def _hub_process(
    tmp_path_factory: pytest.TempPathFactory, _hub_idle_root: Path
) -> Iterator[HubProcess]:
    log = tmp_path_factory.mktemp("hub-log") / "stderr.txt"
    with HubProcess(_hub_idle_root, stderr=log) as hub:
        yield hub


@pytest.fixture
def hub_root(tmp_path: Path) -> Path:
    """Where a test builds its repositories (quantpick.testing.make_repo); the hub serves it."""
    root = tmp_path / "hub"
    root.mkdir()
    return root


@pytest.fixture
def hub(_hub_process: HubProcess, _hub_idle_root: Path, hub_root: Path) -> Iterator[HubProcess]:
    """The session's loopback Hub, serving `hub_root`, with no faults, requests or errors yet.

    A test that hits a bug in the server fails here, with the server's traceback.
    """
    _hub_process.reset(root=hub_root)
    yield _hub_process
    errors = _hub_process.errors
    _hub_process.reset(root=_hub_idle_root)
    if errors:
        pytest.fail("loopback hub raised:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def hub_token() -> str:
    """Valid on the hub, with access to no private or gated repo unless a .repo.json grants it."""
    return DEFAULT_TOKEN


@pytest.fixture
def hf_cache(tmp_path: Path) -> Path:
    """A fresh huggingface_hub cache_dir."""
    return tmp_path / "hf-cache"
