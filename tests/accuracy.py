"""benchmarks/vram_accuracy.py as a module: tests read the measured rows the way it does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).parent.parent


def accuracy_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "vram_accuracy", ROOT / "benchmarks" / "vram_accuracy.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module
