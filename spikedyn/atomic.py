"""Atomic file writes (standard library only, so torch-free code such as ``spikedyn.hardware`` can use them)."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a torn one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """``obj`` as indented JSON, written atomically; ``default`` converts what ``json`` cannot."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=default) + "\n").encode())


def atomic_save_figure(fig: Any, path: Path, dpi: int = 120, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure as PNG atomically and close it (the format is PNG whatever the suffix)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
