"""One place that turns a user's device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``) into a ``torch.device``.

Used by ``spikedyn.train(device=...)``, the experiments and every ``--device`` option of the CLI, so that
asking for CUDA on a machine without it gives the same one-line error everywhere.
"""
from __future__ import annotations

from typing import Any

import torch


class DeviceError(ValueError):
    """The asked-for device does not exist here (a user error: one line, exit code 2 in the CLI)."""


def resolve_device(device: Any = None, *, default: str = "cpu") -> torch.device:
    """``torch.device`` for ``device`` (None -> ``default``; ``"auto"`` -> cuda when available, else cpu).

    Raises ``DeviceError`` with one line when CUDA (or CUDA device N) is asked for but absent.
    """
    if device is None:
        device = default
    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} asked for, but torch sees no CUDA device here; use --device cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"device {device!r} asked for, but this machine has {count} CUDA device(s) "
                              f"(cuda:0..cuda:{count - 1})")
    elif dev.type != "cpu":
        raise DeviceError(f"unsupported device {device!r}; use cpu, cuda or cuda:N")
    return dev
