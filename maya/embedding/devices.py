"""Where a model runs and in which floating-point precision.

Device choice: an explicit preference wins; otherwise CUDA, then Apple's MPS, then the CPU.
Precision names are ``"fp32"``, ``"fp16"`` and ``"bf16"``; ``"auto"`` means fp16 on CUDA and
fp32 everywhere else (fp16 matmuls on a CPU are slow or unsupported, bf16 on a CPU is only
fast with native bf16 instructions, so it is opt-in).

torch is imported inside the functions so that ``import maya.embedding.devices`` stays cheap.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

PRECISIONS = ("fp32", "fp16", "bf16")

# Spellings users type for the same precision.
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "full": "fp32",
    "fp16": "fp16", "float16": "fp16", "half": "fp16",
    "bf16": "bf16", "bfloat16": "bf16",
}


def pick_device(pref: str | None = None) -> "torch.device":
    """The torch device to run on.

    ``pref`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, ...) is used as given when set; an
    explicit device that is not available raises ``ValueError`` instead of failing later inside
    the model. ``None``/``""``/``"auto"`` picks CUDA, then MPS, then the CPU.
    """
    import torch

    if pref and pref != "auto":
        device = torch.device(pref)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {pref!r} asked for, but torch sees no CUDA GPU "
                             f"(torch {torch.__version__}); use --device cpu")
        if device.type == "mps" and not _mps_available():
            raise ValueError(f"device {pref!r} asked for, but MPS is not available; use --device cpu")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()


@dataclass(frozen=True)
class HostDevice:
    """The CPU, for a runtime that is not torch (``.type`` and ``str()`` as a ``torch.device("cpu")`` gives)."""

    type: str = "cpu"

    def __str__(self) -> str:
        return self.type


def cpu_only_torch() -> bool:
    """Whether the installed torch is a CPU-only build (its version ends in ``+cpu``), read without importing it."""
    import importlib.metadata

    if platform.system() == "Darwin":  # MPS builds carry no local version
        return False
    try:
        return importlib.metadata.version("torch").endswith("+cpu")
    except importlib.metadata.PackageNotFoundError:
        return False


def gpu_may_be_present() -> bool:
    """Whether ``pick_device(None)`` might choose a GPU, answered without importing torch.

    False on Linux when torch is a CPU-only build or no NVIDIA (``/proc/driver/nvidia/gpus/*``, ``/dev/nvidia0``)
    or ROCm (``/dev/kfd``) device is there; True on Apple silicon (MPS) and wherever it cannot be told.
    """
    system = platform.system()
    if system == "Darwin":
        return platform.machine() == "arm64"
    if cpu_only_torch():
        return False
    if system == "Linux":
        gpus = Path("/proc/driver/nvidia/gpus")
        try:
            if gpus.is_dir() and any(gpus.iterdir()):
                return True
        except OSError:
            return True
        return Path("/dev/nvidia0").exists() or Path("/dev/kfd").exists()
    return True


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """Whether this CPU has native bf16 arithmetic (x86 AVX512-BF16 or AMX-BF16, Arm BF16).

    Without it torch still computes in bf16, but by emulation, usually slower than fp32.
    Read from ``/proc/cpuinfo`` on Linux and ``sysctl`` on macOS; False where unknown.
    """
    system = platform.system()
    if system == "Linux":
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
                text = f.read()
        except OSError:
            return False
        flags: set[str] = set()
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags.update(value.split())
        return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    if system == "Darwin":
        import subprocess

        try:
            out = subprocess.run(["sysctl", "-n", "hw.optional.arm.FEAT_BF16"],
                                 capture_output=True, text=True, timeout=2)
        except (OSError, subprocess.SubprocessError):
            return False
        return out.stdout.strip() == "1"
    return False


def resolve_precision(precision: str, device: "torch.device | str") -> str:
    """Turn a requested precision into one of ``"fp32" | "fp16" | "bf16"`` for ``device``.

    ``"auto"``: fp16 on CUDA, fp32 elsewhere. ``"fp16"`` is refused on the CPU (``ValueError``:
    slow or unsupported there; ``bf16`` is the CPU's half precision). ``"bf16"`` is accepted
    on the CPU and on CUDA GPUs that support it, refused on MPS.
    """
    import torch

    device = torch.device(device)
    requested = (precision or "auto").strip().lower()
    if requested == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if requested not in _PRECISION_ALIASES:
        raise ValueError(f"unknown precision {precision!r}; use one of auto, {', '.join(PRECISIONS)}")
    resolved = _PRECISION_ALIASES[requested]
    if resolved == "fp16" and device.type == "cpu":
        raise ValueError("precision fp16 is not supported on the CPU; use fp32, or bf16 "
                         f"(native bf16 on this CPU: {'yes' if cpu_supports_bf16() else 'no, emulated and slow'})")
    if resolved == "bf16":
        if device.type == "mps":
            raise ValueError("precision bf16 is not supported on MPS here; use fp32 or fp16")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"this GPU ({torch.cuda.get_device_name(device)}) has no bf16 support; use fp16")
    return resolved


def torch_dtype(precision: str) -> "torch.dtype":
    """The torch dtype for a resolved precision name (``"fp32"`` -> ``torch.float32``, ...)."""
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
