"""Ask the driver how much VRAM each GPU has: NVML when pynvml is importable, else nvidia-smi;
AMD GPUs through rocm-smi; Apple silicon's unified memory through sysctl.

The only module in the estimate path that does I/O.
"""

from __future__ import annotations

import json
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


def _spawn(exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    # these tools answer in well under a second; a hung driver must not hang quantpick
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=False
    )


def _query_nvidia_smi() -> tuple[GpuMemory, ...]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        raise NoGpuError("no NVIDIA GPU found: NVML is not available and nvidia-smi is not on PATH")
    try:
        done = _spawn(exe, *NVIDIA_SMI_QUERY)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NoGpuError(f"nvidia-smi could not be run: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise NoGpuError(f"nvidia-smi failed: {detail[0] if detail else f'exit {done.returncode}'}")
    return parse_nvidia_smi(done.stdout)


GpuSource = Literal["nvml", "nvidia-smi", "rocm-smi", "sysctl"]
# Metal lets the GPU wire about this share of unified memory by default (recommendedMaxWorkingSet
# Size): two thirds up to 36 GiB of RAM, three quarters above; the rest stays with the system.
APPLE_GPU_SHARE_SMALL = 2 / 3
APPLE_GPU_SHARE_LARGE = 3 / 4
APPLE_LARGE_RAM_BYTES = 36 << 30


def parse_rocm_smi(output: str) -> tuple[GpuMemory, ...]:
    """``rocm-smi --showmeminfo vram --json``: per card, total and used VRAM in bytes."""
    try:
        data = json.loads(output)
    except ValueError:
        raise NoGpuError("rocm-smi printed something that is not JSON") from None
    gpus = []
    for card, fields in sorted(data.items()) if isinstance(data, dict) else ():
        if not card.startswith("card") or not isinstance(fields, dict):
            continue
        try:
            total = int(fields["VRAM Total Memory (B)"])
            used = int(fields["VRAM Total Used Memory (B)"])
        except (KeyError, ValueError, TypeError):
            raise NoGpuError(f"rocm-smi gave no VRAM total/used for {card}") from None
        gpus.append(GpuMemory(total_bytes=total, used_bytes=used))
    if not gpus:
        raise NoGpuError("rocm-smi lists no GPU")
    return tuple(gpus)


def _run(exe: str, *args: str) -> str | None:
    """stdout of a tool that answered, else None."""
    try:
        done = _spawn(exe, *args)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _query_rocm_smi() -> tuple[GpuMemory, ...] | None:
    exe = shutil.which("rocm-smi")
    if exe is None:
        return None
    output = _run(exe, "--showmeminfo", "vram", "--json")
    if output is None:
        raise NoGpuError("rocm-smi failed to report VRAM (--showmeminfo vram --json)")
    return parse_rocm_smi(output)


def _query_apple() -> tuple[GpuMemory, ...] | None:
    """Apple silicon: one GPU sharing the machine's memory, of which Metal lets it wire a share."""
    exe = shutil.which("sysctl")
    if exe is None:
        return None
    arm = _run(exe, "-n", "hw.optional.arm64")
    memsize = _run(exe, "-n", "hw.memsize")
    if arm is None or arm.strip() != "1" or memsize is None:
        return None
    try:
        total = int(memsize.strip())
    except ValueError:
        return None
    share = APPLE_GPU_SHARE_LARGE if total > APPLE_LARGE_RAM_BYTES else APPLE_GPU_SHARE_SMALL
    usable = int(total * share)
    return (GpuMemory(total_bytes=usable, used_bytes=0),)


def query_gpus_with_source() -> tuple[tuple[GpuMemory, ...], GpuSource]:
    """Every GPU's total and used memory, and which interface said so. NoGpuError when none."""
    nvml = _query_nvml()
    if nvml:
        return nvml, "nvml"
    if shutil.which("nvidia-smi") is not None:
        return _query_nvidia_smi(), "nvidia-smi"
    rocm = _query_rocm_smi()
    if rocm:
        return rocm, "rocm-smi"
    apple = _query_apple()
    if apple:
        return apple, "sysctl"
    raise NoGpuError(
        "no GPU found: no NVML, and neither nvidia-smi, rocm-smi nor an Apple-silicon sysctl "
        "answered"
    )


def query_gpus() -> tuple[GpuMemory, ...]:
    """Every GPU's total and used memory. Raises NoGpuError when there is none."""
    return query_gpus_with_source()[0]


def detect_vram_with_source() -> tuple[tuple[int, ...], GpuSource]:
    """``--vram auto``: what each GPU has free now (total less what other processes hold)."""
    gpus, source = query_gpus_with_source()
    return tuple(gpu.free_bytes for gpu in gpus), source


def detect_vram() -> tuple[int, ...]:
    return detect_vram_with_source()[0]
