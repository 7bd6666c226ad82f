"""The layers of src/quantpick point one way: ruff refuses an upward import in every layer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = Path(sys.executable).with_name("ruff")
# lowest first; records, errors and units ("") sit under all of them
LAYERS = ["", "card", "estimate", "hub", "download", "commands", "cli"]
EXTERNAL_HOME = {
    "huggingface_hub": "hub",
    "httpx2": "hub",
    "hf_transfer": "download/engines",
    "rich": "cli",
    "typer": "cli",
}


def _ruff(module_path: str, source: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(RUFF),
            "check",
            "--select",
            "TID251",
            "--no-cache",
            "--stdin-filename",
            module_path,
            "-",
        ],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


def _path(layer: str) -> str:
    return f"src/quantpick/{layer}/probe.py" if layer else "src/quantpick/probe.py"


UPWARD = [
    (low, high) for i, low in enumerate(LAYERS) for high in [*LAYERS[i + 1 :], "testing"] if high
]
DOWNWARD = [(high, low) for i, high in enumerate(LAYERS) for low in LAYERS[:i] if low]


@pytest.mark.parametrize(("layer", "upper"), UPWARD)
def test_an_upward_import_is_refused(layer: str, upper: str) -> None:
    got = _ruff(_path(layer), f"from quantpick.{upper} import anything\n")
    assert got.returncode == 1, got.stdout
    assert f"`quantpick.{upper}` is banned" in got.stdout


@pytest.mark.parametrize(("layer", "lower"), DOWNWARD)
def test_a_downward_import_is_allowed(layer: str, lower: str) -> None:
    got = _ruff(_path(layer), f"from quantpick.{lower} import anything\n")
    assert got.returncode == 0, got.stdout


@pytest.mark.parametrize("layer", ["card", "estimate", "hub", "download", "commands", "cli"])
def test_the_loopback_hub_stands_alone(layer: str) -> None:
    got = _ruff("src/quantpick/testing/probe.py", f"import quantpick.{layer}\n")
    assert got.returncode == 1, got.stdout


@pytest.mark.parametrize("module", sorted(EXTERNAL_HOME))
def test_a_library_is_imported_only_in_its_home(module: str) -> None:
    home = EXTERNAL_HOME[module]
    assert _ruff(f"src/quantpick/{home}/probe.py", f"import {module}\n").returncode == 0
    for layer in LAYERS:
        if layer and home.startswith(layer):
            continue
        got = _ruff(_path(layer), f"import {module}\n")
        assert got.returncode == 1, (layer, got.stdout)


def test_click_is_never_imported() -> None:
    assert _ruff("src/quantpick/cli/probe.py", "import click\n").returncode == 1


def test_the_tree_shows_the_layers() -> None:
    src = ROOT / "src" / "quantpick"
    packages = {p.name for p in src.iterdir() if (p / "__init__.py").exists()}
    assert {"card", "estimate", "hub", "download", "commands", "cli", "testing"} <= packages
    top = {p.stem for p in src.glob("*.py")} - {"__init__", "__main__"}
    assert top == {"records", "errors", "units"}
