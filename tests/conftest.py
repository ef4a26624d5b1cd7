"""Shared fixtures."""
from __future__ import annotations

import functools
import os

import pytest
import torch

# Triton's kernels (spikedyn/models/triton_*.py) run on CPU tensors only in Triton's interpreter, which must
# be chosen before triton is imported: on a machine without CUDA, tests/test_triton.py runs them there.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def one_thread_seeded():
    """One torch thread and seed 0 for the test, restored afterwards: the networks in these tests are
    small, so extra threads only add overhead on a shared 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)


# -- kill and resume -----------------------------------------------------------------------------------
class Killed(Exception):
    """Raised from a training callback to stop a run mid-way, as a kill would."""


@pytest.fixture
def interrupt_and_resume():
    """``go(run, run_dir, kill_at) -> (reference, resumed)``. ``run(run_dir=None, callback=None)`` trains one
    run: once uninterrupted, once into ``run_dir`` stopped after step ``kill_at``, then resumed there. Every
    weight of the resumed run must equal the uninterrupted run's."""

    def go(run, run_dir, kill_at):
        reference = run()

        def kill(step, record):
            if step == kill_at:
                raise Killed

        with pytest.raises(Killed):
            run(run_dir, kill)
        resumed = run(run_dir)
        for (n, p), (_, q) in zip(reference.model.named_parameters(), resumed.model.named_parameters()):
            assert torch.equal(p, q), f"{n} differs after resume"
        return reference, resumed

    return go


# -- the Lava runtime -------------------------------------------------------------------------------
# Lava 0.10 runs only in its own Python 3.10 interpreter (`make lava` builds .venv-lava). Tests marked
# `lava` need it. On a machine without Python 3.10 they are skipped with that reason; CI sets
# SPIKEDYN_REQUIRE_LAVA=1 (see .ci/run), and then a missing runtime fails them instead of skipping.
REQUIRE_LAVA = os.environ.get("SPIKEDYN_REQUIRE_LAVA") == "1"


@functools.cache
def _lava_python() -> str | None:
    from spikedyn.hardware.runtime import lava_python_or_none

    return lava_python_or_none()


def pytest_collection_modifyitems(config, items):
    lava_items = [item for item in items if item.get_closest_marker("lava")]
    if lava_items and not REQUIRE_LAVA and _lava_python() is None:
        reason = "Lava runtime missing: no Python 3.10 with lava-nc (run `make lava`)"
        for item in lava_items:
            item.add_marker(pytest.mark.skip(reason=reason))
    # the same for headless Chromium (tests/browser.py): skipped with the reason on a user's machine without
    # it; CI sets SPIKEDYN_REQUIRE_BROWSER=1 (.ci/run installs it), and then a missing browser fails them.
    browser_items = [item for item in items if item.get_closest_marker("browser")]
    if browser_items and os.environ.get("SPIKEDYN_REQUIRE_BROWSER") != "1" and _browser() is None:
        reason = "headless Chromium missing: apt-get install chromium chromium-driver; pip install selenium"
        for item in browser_items:
            item.add_marker(pytest.mark.skip(reason=reason))


def _browser():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    import browser  # tests/browser.py

    return browser.find_browser()


@pytest.fixture
def lava_python() -> str:
    """The Lava interpreter; raises ``LavaNotFound`` (what to install, one line) when there is none."""
    from spikedyn.hardware.runtime import find_lava_python

    return _lava_python() or find_lava_python()


# -- sweeps ------------------------------------------------------------------------------------------------
GAIN_STUDY = {  # Liu et al.'s initial-gain study (Fig. 1) at a tiny budget: 4 gains x 2 rules x 3 seeds on romo
    "name": "gain-tiny",
    "base": {"task": "romo", "model": "rate", "hidden": 8, "steps": 6, "batch_size": 8, "eval_every": 3,
             "eval_trials": 32, "lr": 3e-3, "task_params": {"dt": 20.0, "mask": "decision"}, "lyapunov": 3},
    "grid": {"model_params.gain": [0.2, 0.5, 1.0, 1.5], "rule": ["bptt", "rflo"], "seed": [0, 1, 2]},
}  # fmt: skip


@pytest.fixture(scope="session")
def gain_study(tmp_path_factory):
    """(spec, SweepResult) of GAIN_STUDY swept once, locally (tests/test_sweep.py, tests/test_report.py)."""
    import spikedyn

    return GAIN_STUDY, spikedyn.sweep(GAIN_STUDY, out_dir=tmp_path_factory.mktemp("gain_study"), progress=False)
