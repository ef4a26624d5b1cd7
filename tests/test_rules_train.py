"""``spikedyn.train(model, task, rule="hebbian" | "full_force")``: the common loop (evaluation, run
directory, resume) drives the rules' ``init_state``/``update``; a run resumed from its checkpoint ends with
the weights of an uninterrupted one."""
from __future__ import annotations

import pytest
import torch

import spikedyn

pytestmark = pytest.mark.usefixtures("one_thread_seeded")


@pytest.mark.parametrize("rule, kwargs, batch", [
    ("hebbian", {"reduce": "mean", "max_dw": None, "lr": 0.3}, 32),
    ("full_force", {}, 16),
])  # fmt: skip
def test_train_drives_the_rule_and_resumes(tmp_path, rule, kwargs, batch):
    from spikedyn.learning.presets import get

    p = get("mcmahan2024")
    task = p.task("rdm", dt=50.0)
    common = dict(rule=rule, rule_kwargs=kwargs, batch_size=batch, eval_every=3, eval_trials=200, progress=False)
    full = spikedyn.train(p.build_model(task, seed=0, rule=rule), task, steps=6, run_dir=tmp_path / "a", **common)
    assert {"loss", "accuracy"} <= set(full.final) and full.final["step"] == 6

    def crash(step, record):  # an interrupted run: killed after the checkpoint of step 3
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        spikedyn.train(p.build_model(task, seed=0, rule=rule), task, steps=6, run_dir=tmp_path / "b", callback=crash,
                       **common)  # fmt: skip
    resumed = spikedyn.train(p.build_model(task, seed=0, rule=rule), task, steps=6, run_dir=tmp_path / "b", **common)
    assert torch.equal(resumed.model.W_rec, full.model.W_rec)
    assert torch.equal(resumed.model.W_out, full.model.W_out)
