"""Ask the driver how much VRAM each GPU has: NVML when pynvml is importable, else nvidia-smi.

The only module in the estimate path that does I/O.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from typing import Final, Literal

from quantpick.errors import NoGpuError

MIB: Final = 1 << 20
NVIDIA_SMI_QUERY: Final = (
    "--query-gpu=memory.total,memory.used",
    "--format=csv,noheader,nounits",
)
# nvidia-smi answers in well under a second; a hung driver must not hang quantpick
NVIDIA_SMI_TIMEOUT_S: Final = 15.0


@dataclass(frozen=True)
class GpuMemory:
    total_bytes: int
    used_bytes: int

    @property
    def free_bytes(self) -> int:
        return max(self.total_bytes - self.used_bytes, 0)


def parse_nvidia_smi(output: str) -> tuple[GpuMemory, ...]:
    """``memory.total, memory.used`` in MiB, one GPU a line (``--format=csv,noheader,nounits``)."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        try:
            total, used = (int(float(field)) for field in fields[:2])
        except ValueError:
            raise NoGpuError(f"nvidia-smi printed something unexpected: {line.strip()!r}") from None
        if len(fields) != 2:
            raise NoGpuError(f"nvidia-smi printed something unexpected: {line.strip()!r}")
        gpus.append(GpuMemory(total_bytes=total * MIB, used_bytes=used * MIB))
    if not gpus:
        raise NoGpuError("nvidia-smi lists no GPU")
    return tuple(gpus)


def _query_nvml() -> tuple[GpuMemory, ...] | None:
    try:
        import pynvml  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index))
            gpus.append(GpuMemory(total_bytes=int(info.total), used_bytes=int(info.used)))
        return tuple(gpus) or None
    finally:
        pynvml.nvmlShutdown()


def _query_nvidia_smi() -> tuple[GpuMemory, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise NoGpuError("no NVIDIA GPU found: NVML is not available and nvidia-smi is not on PATH")
    try:
        done = subprocess.run(
            [exe, *NVIDIA_SMI_QUERY],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NoGpuError(f"nvidia-smi could not be run: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NoGpuError(f"nvidia-smi failed: {detail[0] if detail else f'exit {done.returncode}'}")
    return parse_nvidia_smi(done.stdout)


def query_gpus_with_source() -> tuple[tuple[GpuMemory, ...], Literal["nvml", "nvidia-smi"]]:
    """Every GPU's total and used memory, and which interface said so. NoGpuError when none."""
    nvml = _query_nvml()
    if nvml:
        return nvml, "nvml"
    return _query_nvidia_smi(), "nvidia-smi"


def query_gpus() -> tuple[GpuMemory, ...]:
    """Every GPU's total and used memory. Raises NoGpuError when there is none."""
    return query_gpus_with_source()[0]


def detect_vram_with_source() -> tuple[tuple[int, ...], Literal["nvml", "nvidia-smi"]]:
    """``--vram auto``: what each GPU has free now (total less what other processes hold)."""
    gpus, source = query_gpus_with_source()
    return tuple(gpu.free_bytes for gpu in gpus), source


def detect_vram() -> tuple[int, ...]:
    return detect_vram_with_source()[0]
