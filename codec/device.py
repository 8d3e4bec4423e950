"""Where networks and resampling run: --device auto|cpu|cuda resolved to a torch device name."""

from __future__ import annotations

import sys
from pathlib import Path

from vcodec.errors import InputError

# without NVIDIA's kernel driver no CUDA device can be there: `auto` is then the CPU, decided
# without importing torch
NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


def resolve_device(name: str) -> str:
    """``cpu`` or ``cuda`` (torch takes either name wherever it takes a device)."""
    if name not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {name!r}")
    if name == "cpu" or (name == "auto" and "torch" not in sys.modules and not _driver()):
        return "cpu"
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise InputError("--device cuda was asked for, but no CUDA device is available")
    return name


def _driver() -> bool:
    return NVIDIA_DRIVER.exists()
