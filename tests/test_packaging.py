"""Packaging: the torch-free parts import without torch; the README's commands exist."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=120)


def test_tasks_and_hardware_import_without_torch():
    p = _run("import spikedyn, spikedyn.tasks as T, spikedyn.hardware\n"
             "b = T.make('rdm', dt=10.0).sample(2, rng=0)\n"
             "assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
             "print(b.inputs.shape)")
    assert p.returncode == 0, p.stderr
    assert "(76, 2, 1)" in p.stdout


def test_torch_names_fail_loudly_without_torch():
    p = _run("import spikedyn\nspikedyn.RateRNN")
    assert p.returncode != 0 and "torch" in p.stderr


def test_lazy_top_level_names_resolve():
    import spikedyn

    assert spikedyn.RateRNN.__name__ == "RateRNN"
    assert callable(spikedyn.train) and callable(spikedyn.mirror)
    assert "tasks" in dir(spikedyn)


def test_readme_and_ci_use_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_wheel_holds_every_package_and_the_cached_maps(tmp_path):
    """A regular (non-editable) install: tasks/ and hardware/ land as spikedyn.tasks / spikedyn.hardware,
    every sub-package is listed in pyproject.toml, and the PTA region maps ship as package data."""
    import shutil
    import zipfile

    root = tmp_path / "src"  # a copy: an in-tree build would reuse a stale build/ directory
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("spikedyn", "tasks", "hardware"):
        shutil.copytree(ROOT / d, root / d, ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, root / f)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(root)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "absent from the `packages` configuration" not in done.stderr
    (wheel,) = tmp_path.glob("spikedyn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in ("models", "learning", "cli", "analysis", "circuits", "export", "experiments", "tasks", "hardware"):
        assert f"spikedyn/{pkg}/__init__.py" in names, pkg
    source = {p.relative_to(root).as_posix() for d in ("spikedyn", "tasks", "hardware")
              for p in (root / d).rglob("*.py")}  # fmt: skip
    wheel_py = {n for n in names if n.endswith(".py")}
    for path in source:  # every source module is shipped (a sub-package missing from the list would not be)
        mapped = "spikedyn/" + path if not path.startswith("spikedyn/") else path
        assert mapped in wheel_py, path
    assert any(n.startswith("spikedyn/analysis/data/") and n.endswith(".npz") for n in names)
