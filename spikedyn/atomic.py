"""Atomic file writes (standard library only, so torch-free code such as ``spikedyn.hardware`` can use them)."""
from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"  # temp files are ".<name>.<random>.tmp" beside their target
# ours: 12 hex digits; older versions used tempfile.mkstemp's 8 characters [a-z0-9_]
_TEMP_NAME = re.compile(r"\..+\.([0-9a-f]{12}|[a-z0-9_]{8})" + re.escape(TMP_SUFFIX))


def _open_temp(directory: Path, name: str) -> tuple[int, Path]:
    """A new, exclusively created temp file beside ``name``, mode 0666 minus the umask (so the final
    file gets the permissions any other file the user creates gets, typically 0644)."""
    while True:
        tmp = directory / f".{name}.{secrets.token_hex(6)}{TMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover  (a 48-bit name collision)
            continue


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never a torn one.

    A write killed midway leaves at most a ``.<name>.<random>.tmp`` file beside ``path``;
    ``remove_stale_temp_files`` removes those (``spikedyn.train`` does, holding the run's lock)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(directory: Path) -> list[Path]:
    """Delete the temp files that killed ``atomic_write_bytes`` calls left in ``directory``; returns them.
    Only call this while no other process writes there (e.g. holding the run directory's lock)."""
    directory = Path(directory)
    found = directory.glob(f".*{TMP_SUFFIX}") if directory.is_dir() else []
    stale = sorted(p for p in found if _TEMP_NAME.fullmatch(p.name) and p.is_file())
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


def atomic_write_json(path: Path, obj: Any, default: Callable[[Any], Any] | None = None) -> None:
    """``obj`` as indented JSON, written atomically; ``default`` converts what ``json`` cannot."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=default) + "\n").encode())


def atomic_write_npz(path: Path, **arrays: Any) -> Path:
    """Write numpy arrays as one ``.npz`` atomically (``numpy`` imported here: the module stays stdlib-only)."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def atomic_save_figure(fig: Any, path: Path, dpi: int = 120, **savefig_kwargs: Any) -> Path:
    """Save a matplotlib figure as PNG atomically and close it (the format is PNG whatever the suffix)."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, **savefig_kwargs)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
