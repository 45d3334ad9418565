"""The CPU's theoretical fp32 peak, from what the OS says about it: cores x FMA units x fp32
lanes per vector x 2 FLOPs per FMA x clock.

The vector width comes from the instruction-set flags (AVX-512F: 512 bits; AVX2 + FMA: 256;
else 128 bits). Two FMA units per core is what every server core of the last decade has
(Intel Skylake-SP and later Gold/Platinum, AMD Zen 1-5), and AMD's Zen 4 (family 0x19) runs
a 512-bit FMA as two 256-bit halves, so it counts as 256 bits wide. Some parts have one
512-bit FMA unit (a few Xeon Bronze/Silver): there the figure is twice the truth, and the
result says the unit count is assumed. The clock is the highest the OS reports: cpufreq's
cpuinfo_max_freq, else lscpu's "CPU max MHz", else the rated clock in the model name
("@ 2.80GHz"), else /proc/cpuinfo's current "cpu MHz"; none readable: no figure. Cores are
the physical cores this process may run on (its CPU affinity over threads per core).
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path
from typing import Optional

__all__ = ["CpuPeak", "cpu_peak", "read_cpu_facts"]


@dataclasses.dataclass(frozen=True)
class CpuPeak:
    cores: int
    fma_units: int  # per core
    vector_bits: int  # effective width of one FMA
    ghz: float
    clock_source: str  # where the clock came from
    model: str

    @property
    def gflops(self) -> float:
        """fp32 GFLOP/s: cores x FMA units x (vector_bits / 32) lanes x 2 x clock."""
        return self.cores * self.fma_units * (self.vector_bits // 32) * 2 * self.ghz

    def describe(self) -> dict:
        return {**dataclasses.asdict(self), "gflops": self.gflops, "fma_units_assumed": True}


def _first_block(cpuinfo: str) -> dict[str, str]:
    """The key: value lines of the first processor in /proc/cpuinfo's text."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def read_cpu_facts() -> dict[str, Optional[str]]:
    """The raw facts `cpu_peak` needs, read from this machine (None where unreadable)."""

    def read(path: str) -> Optional[str]:
        try:
            return Path(path).read_text()
        except OSError:
            return None

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = None
    try:
        cpus = str(len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = str(os.cpu_count() or 1)
    return {
        "cpuinfo": read("/proc/cpuinfo"),
        "lscpu": lscpu,
        "max_khz": read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"),
        "cpus": cpus,
    }


def _clock_ghz(info: dict[str, str], lscpu: Optional[str], max_khz: Optional[str]) -> tuple[float, str] | None:
    if max_khz and max_khz.strip().isdigit() and int(max_khz) > 0:
        return int(max_khz) / 1e6, "cpufreq cpuinfo_max_freq"
    match = re.search(r"^CPU max MHz:\s*([\d.]+)", lscpu or "", re.MULTILINE)
    if match and float(match.group(1)) > 0:
        return float(match.group(1)) / 1e3, "lscpu CPU max MHz"
    match = re.search(r"@\s*([\d.]+)\s*GHz", info.get("model name", ""))
    if match:
        return float(match.group(1)), "model name"
    try:
        mhz = float(info.get("cpu MHz", ""))
    except ValueError:
        return None
    return (mhz / 1e3, "/proc/cpuinfo cpu MHz (current)") if mhz > 0 else None


def cpu_peak(facts: Optional[dict[str, Optional[str]]] = None) -> Optional[CpuPeak]:
    """The theoretical fp32 peak of the cores this process may use (None when /proc/cpuinfo or a
    clock cannot be read). facts: `read_cpu_facts()`'s dict (read here when None)."""
    facts = read_cpu_facts() if facts is None else facts
    info = _first_block(facts.get("cpuinfo") or "")
    if not info:
        return None
    clock = _clock_ghz(info, facts.get("lscpu"), facts.get("max_khz"))
    if clock is None:
        return None
    flags = set(info.get("flags", "").split())
    if "avx512f" in flags:
        bits = 512
    elif "avx2" in flags and "fma" in flags:
        bits = 256
    else:
        bits = 128
    if info.get("vendor_id") == "AuthenticAMD" and bits == 512 and info.get("cpu family") == "25":
        bits = 256  # Zen 4: 512-bit FMAs issue as two 256-bit halves
    try:
        siblings, cores_per_package = int(info["siblings"]), int(info["cpu cores"])
        threads_per_core = max(1, siblings // max(1, cores_per_package))
    except (KeyError, ValueError):
        threads_per_core = 1
    cpus = int(facts.get("cpus") or 1)
    return CpuPeak(
        cores=max(1, cpus // threads_per_core), fma_units=2, vector_bits=bits, ghz=clock[0], clock_source=clock[1],
        model=info.get("model name", "?"),
    )  # fmt: skip
