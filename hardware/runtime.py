"""Finding the Lava interpreter (Python 3.10 with lava-nc) and running bundles in it (stdlib only).

Lava 0.10 (the last release; its repositories are archived) installs only on Python 3.10, while
spikedyn's torch side runs on newer Pythons, so deployment crosses a process boundary: the torch side
writes a bundle and runs ``<lava python> -m spikedyn.hardware.run BUNDLE``.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

ENV_VAR = "SPIKEDYN_LAVA_PYTHON"
_PROBE = "import lava.magma.core.run_configs, nir, spikedyn.hardware.run"
SEARCHED = (
    f"{ENV_VAR}, .venv-lava/bin/python in the spikedyn checkout, python3.10 on PATH, pyenv's 3.10 versions, "
    "`uv python find 3.10`"
)


class LavaNotFound(RuntimeError):
    """The Lava runtime asked for is not installed: no interpreter with lava-nc (and spikedyn), or, for
    ``backend="lava-loihi"``, no lava-loihi. Something the user installs (``spikedyn deploy``: exit code 2)."""


class LavaRunFailed(RuntimeError):
    """A Lava run started but gave no result: the runner's one-line error (or its exit code), and where the
    bundle was kept (``spikedyn deploy``: exit code 1)."""


def repo_root() -> Path:
    """The checkout that holds ``hardware/`` (``spikedyn.hardware`` maps to it)."""
    return Path(__file__).resolve().parent.parent


def _candidates() -> list[str]:
    found: list[str] = []
    env = os.environ.get(ENV_VAR)
    if env:
        found.append(env)
    found.append(str(repo_root() / ".venv-lava" / "bin" / "python"))
    which = shutil.which("python3.10")
    if which:
        found.append(which)
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found += [str(p) for p in sorted((pyenv_root / "versions").glob("3.10*/bin/python"))]
    uv = shutil.which("uv")
    if uv:
        try:
            out = subprocess.run([uv, "python", "find", "3.10"], capture_output=True, text=True, timeout=30)
            if out.returncode == 0 and out.stdout.strip():
                found.append(out.stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return list(dict.fromkeys(found))


def has_lava(python: str) -> bool:
    """True when ``python`` imports lava-nc, nir and spikedyn.hardware."""
    if not Path(python).exists() and shutil.which(python) is None:
        return False
    try:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


@functools.cache
def find_lava_python() -> str:
    """The first interpreter (in the order of ``SEARCHED``) that has lava-nc, nir and spikedyn."""
    env = os.environ.get(ENV_VAR)
    if env and not has_lava(env):
        raise LavaNotFound(f"{ENV_VAR}={env} cannot import lava-nc, nir and spikedyn.hardware; run `make lava` "
                           "or point it to a Python 3.10 that has them")
    for python in _candidates():
        if has_lava(python):
            return python
    raise LavaNotFound(f"no Python with lava-nc found (tried {SEARCHED}); run `make lava` (needs Python 3.10) "
                       f"or set {ENV_VAR}=/path/to/python3.10")


def lava_python_or_none() -> str | None:
    """``find_lava_python()``, or None when there is no Lava interpreter (for optional Lava steps)."""
    try:
        return find_lava_python()
    except LavaNotFound:
        return None


def describe_lava_python(python: str) -> str:
    """Which of the places in ``SEARCHED`` ``python`` is, in words without its local path (for results files
    that travel: ``SPIKEDYN_LAVA_PYTHON``, ``.venv-lava``, ``python3.10 on PATH``, ``pyenv 3.10``)."""
    where = os.path.abspath(python)
    env = os.environ.get(ENV_VAR)
    if env and os.path.abspath(env) == where:
        return ENV_VAR
    if where == os.path.abspath(repo_root() / ".venv-lava" / "bin" / "python"):
        return ".venv-lava"
    which = shutil.which("python3.10")
    if which and os.path.abspath(which) == where:
        return "python3.10 on PATH"
    if "pyenv" in Path(where).parts or ".pyenv" in Path(where).parts:
        return "pyenv 3.10"
    return "a Python 3.10 with lava-nc"


def lava_version(python: str) -> str | None:
    """lava-nc's version in ``python`` (None when it has none or cannot be started)."""
    code = "import importlib.metadata as m; print(m.version('lava-nc'))"
    try:
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def lava_runtime(python: str) -> dict[str, str | None]:
    """What a results file records about the Lava interpreter: ``{"lava_nc": version, "lava_python": where}``
    (``describe_lava_python``; never a local path)."""
    return {"lava_nc": lava_version(python), "lava_python": describe_lava_python(python)}


def loihi_installed(python: str) -> bool:
    """True when Intel's lava-loihi is importable in ``python`` (needed for ``Loihi2HwCfg``)."""
    code = "import sys; from lava.utils.loihi import is_installed; sys.exit(0 if is_installed() else 1)"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def run_bundle_subprocess(directory: Path, python: str | None = None, timeout: float | None = None) -> None:
    """Run ``python -m spikedyn.hardware.run directory``; progress is shown on this process's stderr."""
    python = python or find_lava_python()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    try:
        proc = subprocess.run([python, "-m", "spikedyn.hardware.run", str(directory)], env=env, timeout=timeout,
                              stdout=subprocess.DEVNULL)
    except OSError as e:
        raise LavaNotFound(f"cannot start the Lava interpreter {python}: {e.strerror or e}; run `make lava` "
                           f"or set {ENV_VAR}") from None
    if proc.returncode not in (0, 1):  # 1: the runner's own failure, reported in result.json
        raise LavaRunFailed(f"the Lava runner ({python}) exited with code {proc.returncode}; see the messages above")
