"""full-FORCE (DePasquale et al. 2018; spiking student with a rate teacher, DePasquale et al. 2016):
the block RLS step against batch least squares and one-sample RLS, the dense target, the rate pass
against a hand-written loop, and accuracy on RDM / CDI (rate) and RDM (LIF twin)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import spikedyn.tasks as tasks
import torch

from spikedyn.learning.full_force import FullForce, dense_target, rls_step
from spikedyn.models import RateRNN

from .test_hebbian import seed002_net

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # tiny matrices: threads only add overhead


@pytest.mark.parametrize("chunks", [[1] * 40, [3, 7, 30], [40], [2, 38]])
def test_rls_equals_batch_least_squares(chunks):
    """From P = I / a and W0, RLS over all samples = argmin sum |W r - y|^2 + a |W - W0|^2, in any
    chunking (B <= n uses Woodbury, B > n the information form)."""
    rng = np.random.default_rng(0)
    n, m, K, a = 6, 3, sum(chunks), 0.7
    R, Y, W0 = rng.normal(size=(K, n)), rng.normal(size=(K, m)), rng.normal(size=(m, n))
    P, W = torch.eye(n, dtype=torch.float64) / a, torch.as_tensor(W0)
    i = 0
    for c in chunks:
        P, W = rls_step(P, W, torch.as_tensor(R[i : i + c]), torch.as_tensor(Y[i : i + c]))
        i += c
    W_ls = (Y.T @ R + a * W0) @ np.linalg.inv(R.T @ R + a * np.eye(n))
    np.testing.assert_allclose(W.numpy(), W_ls, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(P.numpy(), np.linalg.inv(R.T @ R + a * np.eye(n)), rtol=1e-9, atol=1e-12)


def test_one_sample_rls_is_the_classic_update():
    """B = 1: k = P r / (1 + r' P r), P -= k r' P, W -= e k' (DePasquale et al.'s demo code)."""
    rng = np.random.default_rng(1)
    n = 5
    P = np.eye(n) * 2.0
    W = rng.normal(size=(2, n))
    r, y = rng.normal(size=n), rng.normal(size=2)
    Pr = P @ r
    k = Pr / (1 + r @ Pr)
    P_ref, W_ref = P - np.outer(k, Pr), W - np.outer(W @ r - y, k)
    P_t, W_t = rls_step(torch.as_tensor(P), torch.as_tensor(W), torch.as_tensor(r[None]), torch.as_tensor(y[None]))
    np.testing.assert_allclose(P_t.numpy(), P_ref, rtol=1e-12)
    np.testing.assert_allclose(W_t.numpy(), W_ref, rtol=1e-12)


def test_dense_target_interpolates_between_supervised_steps():
    task = tasks.make("rdm", dt=50.0, response_ms=100.0)
    b = task.sample(5, 0)
    target, mask = torch.as_tensor(b.targets, dtype=torch.float64), torch.as_tensor(b.mask, dtype=torch.float64)
    d = dense_target(target, mask)
    t = np.arange(task.n_steps)
    for j in range(5):
        known = np.nonzero(b.mask[:, j, 0])[0]
        np.testing.assert_allclose(d[:, j, 0].numpy(), np.interp(t, known, b.targets[known, j, 0]), atol=1e-12)
    nxt = dense_target(target, mask, "next")
    assert torch.all(nxt[1:] == target[-1]) and torch.all(nxt[0] == 0)
    with pytest.raises(ValueError, match="fill"):
        dense_target(target, mask, "cubic")


def test_rate_pass_equals_hand_loop():
    """One update with a random teacher, re-done by hand: teacher drive, RLS on [W_rec] and the readout."""
    task = tasks.make("rdm", dt=50.0)
    m = seed002_net(task, dtype=torch.float64)
    rule = FullForce(hint_scale=0.5, rls_alpha=2.0)
    st = rule.init_state(m, task, seed=3)
    W, Wo, bo = m.W_rec.detach().clone().numpy(), m.W_out.detach().clone().numpy(), m.b_out.detach().clone().numpy()
    batch = task.sample(4, 9)
    from spikedyn.learning.hebbian import rule_generator

    x = m.init_state(4, rule_generator(3, 1, m.device)).x.numpy()
    xT = x.copy()
    u = batch.inputs.astype(np.float64)
    d = dense_target(*(torch.as_tensor(a, dtype=torch.float64) for a in (batch.targets, batch.mask))).numpy()
    J, uo, uh = (st[k].numpy() for k in ("J_D", "u_out", "u_hint"))
    Win, a = m.W_in.detach().numpy(), m.alpha
    P, Po = np.eye(50) / 2.0, np.eye(51) / 2.0
    for t in range(task.n_steps):
        r = np.tanh(x)
        cur = np.tanh(xT) @ J.T + d[t] @ uo.T + 0.5 * d[t] @ uh.T
        xT = (1 - a) * xT + a * (cur + u[t] @ Win.T)
        for k in range(4):  # one sample at a time: the classic RLS
            Pr = P @ r[k]
            kk = Pr / (1 + r[k] @ Pr)
            P -= np.outer(kk, Pr)
            W -= np.outer(W @ r[k] - cur[k], kk)
        x = (1 - a) * x + a * (np.tanh(x) @ W.T + u[t] @ Win.T)
        ra = np.c_[np.tanh(x), np.ones(4)]
        Wa = np.c_[Wo, bo]
        for k in range(4):
            Pr = Po @ ra[k]
            kk = Pr / (1 + ra[k] @ Pr)
            Po -= np.outer(kk, Pr)
            Wa -= np.outer(Wa @ ra[k] - d[t, k], kk)
        Wo, bo = Wa[:, :-1], Wa[:, -1]
    rule.update(m, batch, st, step=1)
    np.testing.assert_allclose(m.W_rec.detach().numpy(), W, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.W_out.detach().numpy(), Wo, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(m.b_out.detach().numpy(), bo, rtol=1e-8, atol=1e-10)


def test_checks_and_reproducibility():
    task = tasks.make("rdm", dt=50.0)
    with pytest.raises(ValueError, match="tanh"):
        FullForce().init_state(seed002_net(task, activation="shifted_tanh"), task, seed=0)
    with pytest.raises(TypeError, match="RateRNN"):
        FullForce(teacher=torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="rls_alpha"):
        FullForce(rls_alpha=0.0)
    from spikedyn.models import SpikingRNN

    with pytest.raises(ValueError, match="teacher"):
        FullForce().init_state(SpikingRNN(1, 8, 1, dt=50.0), task, seed=0)
    with pytest.raises(ValueError, match="sizes"):
        FullForce(teacher=RateRNN(1, 9, 1)).init_state(SpikingRNN(1, 8, 1, dt=50.0), task, seed=0)
    ws = []
    for _ in range(2):
        m = seed002_net(task)
        rule = FullForce()
        st = rule.init_state(m, task, seed=1)
        for s in (1, 2):
            rule.update(m, task.sample(8, s), st, step=s)
        ws.append(m.W_rec.detach().clone())
    assert torch.equal(ws[0], ws[1])


def test_spiking_student_takes_the_mirror_input_map():
    """A SpikingRNN student gets mirror's input weights and bias (the map full-FORCE does not learn);
    its learned matrices start at zero and one update fits them (finite, the record names the spikes)."""
    import spikedyn

    task = tasks.make("rdm", dt=50.0)
    teacher = seed002_net(task, activation="shifted_tanh")
    ref = spikedyn.mirror(teacher, substeps=5, dt=task.dt)
    student = spikedyn.models.SpikingRNN(1, 50, 1, dt=task.dt, substeps=5, tau_mem=float("inf"), du=ref.params.du,
                                         reset="subtract", tau_out=ref.tau_out)
    rule = FullForce(teacher=teacher)
    st = rule.init_state(student, task, seed=0)
    torch.testing.assert_close(student.W_in, ref.W_in)
    torch.testing.assert_close(student.b, ref.b)
    assert st["map"] == [2.0, 0.5, 0.5] and float(student.W_rec.abs().sum()) == 0.0
    rec = rule.update(student, task.sample(8, 0), st, step=1)
    assert rec["spikes_per_unit_step"] > 0 and math.isfinite(rec["loss"])
    assert float(student.W_rec.abs().sum()) > 0 and torch.isfinite(student.W_rec).all()


def _fit(model, task, rule, batch, steps, every=2, seed=0):
    from spikedyn.learning.train import evaluate

    st = rule.init_state(model, task, seed=seed)
    val = task.sample(2000, np.random.default_rng([seed, 10**6]))
    acc = 0.0
    for s in range(1, steps + 1):
        rule.update(model, task.sample(batch, np.random.default_rng([seed, s])), st, step=s)
        if s % every == 0:
            acc = evaluate(model, task, val)["accuracy"]
            if acc >= 0.9:
                break
    return acc, s


@pytest.mark.slow
def test_full_force_learns_rdm():
    task = tasks.make("rdm", dt=10.0)
    acc, steps = _fit(seed002_net(task), task, FullForce(), 50, 20)
    assert acc >= 0.9, f"accuracy {acc} after {steps} batches of 50 trials"


@pytest.mark.slow
def test_full_force_learns_cdi():
    """CDI: with tau = 50 ms (alpha = 0.2 at 10 ms steps) and the coming target as d(t); with tau = 100 ms
    full-FORCE plateaus near 0.88-0.89 (docs/training.md)."""
    task = tasks.make("cdi", dt=10.0)
    acc, steps = _fit(seed002_net(task, alpha=0.2), task, FullForce(target_fill="next"), 50, 20)
    assert acc >= 0.9, f"accuracy {acc} after {steps} batches of 50 trials"


@pytest.mark.slow
def test_full_force_spiking_twin_of_a_trained_rate_net_learns_rdm():
    """DePasquale et al. 2016: a LIF student of a BPTT-trained 1 + tanh rate net reaches 90 % on RDM."""
    import spikedyn

    task = tasks.make("rdm", dt=10.0)
    teacher = seed002_net(task, activation="shifted_tanh")
    spikedyn.train(teacher, task, steps=400, batch_size=64, lr=3e-3, eval_every=25, eval_trials=2000,
                   target_accuracy=0.91, progress=False)  # fmt: skip
    student = spikedyn.mirror(teacher, substeps=10, dt=task.dt)
    acc, steps = _fit(student, task, FullForce(teacher=teacher), 50, 6)
    assert acc >= 0.9, f"spiking twin accuracy {acc} after {steps} batches"


@pytest.mark.parametrize("student", ["rate", "rate_trained_teacher", "lif"])
def test_population_members_equal_the_networks_trained_alone(student):
    """train(Population, rule=FullForce(...)): the RLS steps of all members are one batched solve, and
    member i ends as the same network trained alone on the same batches (float64)."""
    import spikedyn
    from spikedyn.models import SpikingRNN
    from spikedyn.models.population import Population

    from .test_hebbian import _max_rel_diff

    task = tasks.make("rdm", dt=50.0)
    teacher = seed002_net(task, activation="shifted_tanh", dtype=torch.float64, seed=9)
    if student == "rate":
        nets = [seed002_net(task, seed=s, dtype=torch.float64, bias=True) for s in range(3)]
        nets[2].noise_std = 0.05
        make_rule = FullForce
    elif student == "rate_trained_teacher":
        nets = [seed002_net(task, activation="shifted_tanh", seed=s, dtype=torch.float64) for s in range(3)]
        make_rule = lambda: FullForce(teacher=teacher)  # noqa: E731
    else:
        ref = spikedyn.mirror(teacher, substeps=2, dt=task.dt)
        nets = []
        for s in range(3):
            torch.manual_seed(s)
            nets.append(SpikingRNN(1, 50, 1, dt=task.dt, substeps=2, tau_mem=float("inf"), du=ref.params.du,
                                   reset="subtract", tau_out=ref.tau_out).double())
        make_rule = lambda: FullForce(teacher=teacher, zero_init=False)  # noqa: E731
    pop = Population.stack(nets)
    kw = dict(steps=3, batch_size=8, seed=5, eval_every=3, eval_trials=16, progress=False)
    res = spikedyn.train(pop, task, rule=make_rule(), **kw)
    for i, net in enumerate(nets):
        alone = spikedyn.train(net, task, rule=make_rule(), **kw)
        rel = _max_rel_diff(net, pop.member(i))
        assert max(rel.values()) <= 1e-6, f"member {i}: {rel}"
        assert res.history[-1]["member_loss"][i] == pytest.approx(alone.history[-1]["loss"], rel=1e-6)
    assert len({float(pop.W_rec.detach()[i].abs().sum()) for i in range(3)}) == 3  # the members differ


def test_population_substep_equals_each_members_substep():
    """The public spiking API full-FORCE steps a Population with: ``spiking_state`` is every member's
    ``init_state``, ``substep`` is every member's own ``substep`` (no self-connections masked as alone)."""
    from spikedyn.models import SpikingRNN
    from spikedyn.models.population import Population

    nets = []
    for s in range(3):
        torch.manual_seed(s)
        nets.append(SpikingRNN(2, 6, 1, self_connections=False).double())
    pop = Population.stack(nets)
    s_pop = pop.spiking_state(4)
    assert all(torch.equal(a[i], b) for i in range(3) for a, b in zip(s_pop, nets[i].init_state(4)) if a.dim() == 3)
    i_ext = torch.randn(3, 4, 6, dtype=torch.float64)
    for _ in range(3):
        s_pop = pop.substep(s_pop, i_ext)
    for i, net in enumerate(nets):
        s = net.init_state(4)
        for _ in range(3):
            s = net.substep(s, i_ext[i])
        assert torch.allclose(s_pop.v[i], s.v, rtol=1e-12, atol=1e-12) and torch.equal(s_pop.z[i], s.z)


def test_a_breaking_rls_alpha_is_refused_and_a_divergence_is_training_diverged():
    """D1 of review 2: an rls_alpha the solver cannot use is refused up front (one line); an RLS fit
    that breaks down in training is a ``TrainingDiverged``, not a raw FloatingPointError/LinAlgError."""
    import spikedyn
    from spikedyn.learning import TrainingDiverged

    for bad in (1e-320, 1e-13, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="rls_alpha"):
            FullForce(rls_alpha=bad)
    task = tasks.make("rdm", dt=50.0)
    net = seed002_net(task)
    with torch.no_grad():
        net.W_in.fill_(float("nan"))  # what a broken-down fit leaves: non-finite currents
    with pytest.raises(TrainingDiverged, match=r"full_force: (W_rec became NaN/Inf|the RLS solve failed) at "
                       r"step 1 \(no checkpoint was written\); raise rls_alpha"):
        spikedyn.train(net, task, rule="full_force", steps=2, batch_size=4, eval_every=2, eval_trials=10,
                       progress=False)


def test_the_run_config_records_the_trained_teachers_weights(tmp_path, caplog):
    """D3 of review 2: a run taught by a trained teacher records a digest of its weights, so resuming it
    with another trained teacher of the same shape is refused like a changed setting; a run recorded
    before the digest resumes with a warning (it cannot be checked)."""
    import json
    import logging

    import spikedyn
    from spikedyn.learning.checkpoint import RunError, checkpoint_path, load_checkpoint, save_checkpoint

    task = tasks.make("rdm", dt=50.0)
    teacher, other = seed002_net(task, activation="shifted_tanh"), seed002_net(task, activation="shifted_tanh")
    with torch.no_grad():
        other.W_rec.mul_(1.01)
    kw = dict(steps=4, batch_size=4, eval_every=2, eval_trials=10, progress=False, run_dir=tmp_path)

    def interrupt(step, record):  # a kill after step 3 (checkpoint: step 2)
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        spikedyn.train(seed002_net(task), task, rule=FullForce(teacher=teacher), callback=interrupt, **kw)
    digest = json.loads((tmp_path / "config.json").read_text())["rule"]["teacher_weights_sha256"]
    assert len(digest) == 64 and FullForce(teacher=teacher).config()["teacher_weights_sha256"] == digest
    with pytest.raises(RunError, match="rule.teacher_weights_sha256"):
        spikedyn.train(seed002_net(task), task, rule=FullForce(teacher=other), **kw)
    # a run written before the digest was recorded: resumed, with a warning
    ck = load_checkpoint(checkpoint_path(tmp_path, 2))
    del ck["config"]["rule"]["teacher_weights_sha256"]
    save_checkpoint(tmp_path, 2, ck)
    with caplog.at_level(logging.WARNING, logger="spikedyn.runs"):
        res = spikedyn.train(seed002_net(task), task, rule=FullForce(teacher=teacher), **kw)
    assert res.history[-1]["step"] == 4 and "teacher_weights_sha256" in caplog.text


def test_the_evidence_hint_is_scaled_by_the_tasks_own_coherence_max():
    from spikedyn.learning.full_force import evidence_hint

    wide = tasks.make("rdm", dt=50.0, coherence_max=2 * tasks.decision.COHERENCE_MAX)
    batch = wide.sample(4, 0)
    assert torch.allclose(evidence_hint(batch, wide.coherence_max), evidence_hint(batch) / 2)
    rule = FullForce(hint="evidence")
    st = rule.init_state(seed002_net(wide), wide, seed=0)
    assert st["coherence_max"] == wide.coherence_max
    d = torch.zeros(batch.inputs.shape[0], 4, 1, dtype=torch.float64)
    h = rule.hint_signal(batch, d, st["coherence_max"])
    assert torch.allclose(h, rule.hint_scale * evidence_hint(batch) / 2)


def test_a_singular_rls_solve_is_training_diverged(monkeypatch):
    """The RLS solve itself failing (``torch.linalg.LinAlgError``, forced here) ends the run with the
    one-line ``TrainingDiverged`` naming the solve, not a raw LinAlgError."""
    import spikedyn
    from spikedyn.learning import TrainingDiverged

    def singular(*args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.solve: The solver failed because the input matrix is singular.")

    monkeypatch.setattr(torch.linalg, "solve", singular)
    task = tasks.make("rdm", dt=50.0)
    with pytest.raises(TrainingDiverged, match=r"full_force: the RLS solve failed at step 1 \(linalg.solve: The "
                       r"solver failed.*\(no checkpoint was written\); raise rls_alpha"):
        spikedyn.train(seed002_net(task), task, rule="full_force", steps=2, batch_size=4, eval_every=2,
                       eval_trials=10, progress=False)
