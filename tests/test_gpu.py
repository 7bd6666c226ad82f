"""gpu: the nvidia-smi output parser, a real nvidia-smi run (a stand-in script on PATH), and the
no-GPU error when PATH has no nvidia-smi."""

from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

from quantpick.errors import ExitCode, NoGpuError
from quantpick.estimate.gpu import GpuMemory, detect_vram, parse_nvidia_smi, query_gpus

MIB = 1 << 20
HAS_NVML = importlib.util.find_spec("pynvml") is not None
needs_no_nvml = pytest.mark.skipif(HAS_NVML, reason="NVML would answer before nvidia-smi")


def test_parse_one_gpu() -> None:
    assert parse_nvidia_smi("24564, 1024\n") == (
        GpuMemory(total_bytes=24564 * MIB, used_bytes=1024 * MIB),
    )


def test_parse_several_gpus_and_blank_lines() -> None:
    gpus = parse_nvidia_smi("81559, 0\n\n81559, 40000\n")
    assert [g.free_bytes for g in gpus] == [81559 * MIB, 41559 * MIB]


@pytest.mark.parametrize(
    "output", ["", "\n", "[N/A], [N/A]\n", "No devices were found\n", "1, 2, 3"]
)
def test_parse_rejects_what_is_not_memory(output: str) -> None:
    with pytest.raises(NoGpuError):
        parse_nvidia_smi(output)


def _fake_smi(directory: Path, body: str) -> None:
    script = directory / "nvidia-smi"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


@needs_no_nvml
def test_no_nvidia_smi_on_path_is_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NoGpuError) as info:
        detect_vram()
    assert info.value.exit_code is ExitCode.NO_GPU
    assert "--vram" in info.value.hint


@needs_no_nvml
@pytest.mark.skipif(os.name != "posix", reason="a shebang script stands in for nvidia-smi")
def test_runs_nvidia_smi_with_the_query(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_smi(
        tmp_path,
        "import sys\n"
        "assert sys.argv[1:] == ['--query-gpu=memory.total,memory.used',"
        " '--format=csv,noheader,nounits'], sys.argv\n"
        "print('24564, 564')\nprint('12288, 0')",
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    assert query_gpus()[0].total_bytes == 24564 * MIB
    assert detect_vram() == (24000 * MIB, 12288 * MIB)


@needs_no_nvml
@pytest.mark.skipif(os.name != "posix", reason="a shebang script stands in for nvidia-smi")
def test_failing_nvidia_smi_is_no_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_smi(
        tmp_path,
        "import sys\nprint('NVIDIA-SMI has failed because it could not communicate with the "
        "NVIDIA driver.')\nsys.exit(9)",
    )
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NoGpuError, match="could not communicate"):
        detect_vram()
