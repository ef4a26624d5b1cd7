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
