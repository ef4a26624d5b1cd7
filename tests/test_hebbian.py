"""Miconi's (2017) node-perturbation Hebbian rule: the eligibility trace and the end-of-trial update
against hand-written loops, reproducibility, and accuracy on RDM / CDI with the McMahan et al. network."""
from __future__ import annotations

import math

import numpy as np
import pytest
import spikedyn.tasks as tasks
import torch

from spikedyn.learning.hebbian import Hebbian, trial_types
from spikedyn.models import RateRNN

pytestmark = pytest.mark.usefixtures("one_thread_seeded")  # tiny matrices: threads only add overhead


def seed002_net(task, activation: str = "tanh", alpha: float = 0.1, seed: int = 0, dtype=torch.float32,
                bias: bool = False) -> RateRNN:
    """The network of McMahan et al. 2024 Sec. 2.1: N = 50, W_rec ~ N(0, 1/N), W_in ~ N(0, 0.5),
    W_out ~ N(0, 0.1), x0 ~ N(0, 0.3) (variances), here with tau = 100 ms at 10 ms steps."""
    torch.manual_seed(seed)
    m = RateRNN(task.n_inputs, 50, task.n_outputs, alpha=alpha, activation=activation, x0_std=math.sqrt(0.3), bias=bias)
    with torch.no_grad():
        m.W_rec.normal_(0, 1 / math.sqrt(50))
        m.W_in.normal_(0, math.sqrt(0.5))
        m.W_out.normal_(0, math.sqrt(0.1))
    return m.to(dtype)


def hand_rollout(W_in, W_rec, b, alpha, x0, u, kicks, xbar_decay):
    """Plain numpy loops over units and synapses: McMahan et al. 2024 Eq. 1 with kicks, Miconi's trace."""
    T, I = u.shape
    N = W_rec.shape[0]
    x, xbar = x0.copy(), x0.copy()
    e = np.zeros((N, N))
    eb = np.zeros(N)
    xs = []
    for t in range(T):
        r_prev = np.tanh(x)
        new = np.zeros(N)
        for i in range(N):
            drive = sum(W_rec[i, j] * r_prev[j] for j in range(N)) + sum(W_in[i, k] * u[t, k] for k in range(I)) + b[i]
            new[i] = (1 - alpha) * x[i] + alpha * drive + kicks[t, i]
        dx = new - xbar
        for i in range(N):
            eb[i] += dx[i] ** 3
            for j in range(N):
                e[i, j] += (r_prev[j] * dx[i]) ** 3
        xbar = xbar_decay * xbar + (1 - xbar_decay) * new
        x = new
        xs.append(x.copy())
    return np.array(xs), e, eb


def test_eligibility_trace_equals_hand_loop():
    torch.manual_seed(3)
    m = RateRNN(2, 4, 1, alpha=0.3, activation="tanh", x0_std=0.5).double()
    with torch.no_grad():
        m.b.normal_()
    rule = Hebbian(xbar_decay=0.4)
    T, B = 7, 3
    u = torch.randn(T, B, 2, dtype=torch.float64)
    kicks = rule.draw_perturbations(T, B, 4, 1.0, torch.device("cpu"), torch.float64,
                                    torch.Generator().manual_seed(1)) + 0.3 * torch.randn(T, B, 4, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    x0 = m.init_state(B, torch.Generator().manual_seed(5)).x
    out = rule.rollout(m, u, dt=1.0, generator=g, perturb=kicks)
    for b in range(B):
        xs, e, eb = hand_rollout(*(t.detach().numpy() for t in (m.W_in, m.W_rec, m.b)), m.alpha, x0[b].numpy(),
                                 u[:, b].numpy(), kicks[:, b].numpy(), 0.4)
        np.testing.assert_allclose(out["x"][:, b].numpy(), xs, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(out["e_rec"][b].numpy(), e, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(out["e_bias"][b].numpy(), eb, rtol=1e-10, atol=1e-14)
    # the unit readout: y is unit 0's rate
    rule.init_state(m, tasks.make("rdm", dt=10.0), seed=0)
    y = rule.rollout(m, u, dt=1.0, generator=torch.Generator().manual_seed(5), perturb=kicks)["y"]
    np.testing.assert_allclose(y[..., 0].numpy(), np.tanh(out["x"][..., 0].numpy()), rtol=1e-12)


def test_perturbation_statistics():
    rule = Hebbian(perturb_rate=0.003, perturb_amp=1.0, perturb_after_ms=30.0)
    k = rule.draw_perturbations(76, 400, 50, 10.0, torch.device("cpu"), torch.float64, torch.Generator().manual_seed(0))
    assert torch.all(k[:3] == 0)  # none in the first 30 ms
    hit = (k[3:] != 0).double().mean().item()
    p = 1 - (1 - 0.003) ** 10
    assert abs(hit - p) < 5 * math.sqrt(p * (1 - p) / k[3:].numel())
    assert k.abs().max() <= 1.0 and abs(k[k != 0].mean().item()) < 0.02  # U(-1, 1)


def test_update_equals_hand_computation():
    """Second batch (baselines set): dW = sum_b clip(-eta * Rbar * e_b * (R_b - Rbar)), baselines decay."""
    task = tasks.make("cdi", dt=50.0)
    m = seed002_net(task, dtype=torch.float64, bias=True)
    rule = Hebbian(lr=0.05, max_dw=3e-4)
    state = rule.init_state(m, task, seed=4)
    assert torch.equal(m.W_out, torch.eye(1, 50, dtype=torch.float64)) and float(m.b_out.detach()) == 0.0
    rule.update(m, task.sample(32, 1), state, step=1)
    baseline = dict(state["baseline"])
    assert len(baseline) == 4  # context x choice, as in Miconi's code
    batch = task.sample(32, 2)
    W0, b0 = m.W_rec.detach().clone(), m.b.detach().clone()
    # replay the update's rollout with the same random stream
    from spikedyn.learning.hebbian import batch_tensors, rule_generator

    u, target, mask = batch_tensors(m, batch)
    roll = rule.rollout(m, u, dt=task.dt, generator=rule_generator(4, 2, m.device))
    R = (((roll["y"] - target) ** 2 * mask).sum((0, 2)) / mask.sum((0, 2))).numpy()
    types = trial_types(batch)
    Rbar = np.array([baseline[t] for t in types])
    coef = -0.05 * Rbar * (R - Rbar)
    dW = sum(np.clip(coef[i] * roll["e_rec"][i].numpy(), -3e-4, 3e-4) for i in range(32))
    db = sum(np.clip(coef[i] * roll["e_bias"][i].numpy(), -3e-4, 3e-4) for i in range(32))
    rec = rule.update(m, batch, state, step=2)
    np.testing.assert_allclose(m.W_rec.detach().numpy() - W0.numpy(), dW, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(m.b.detach().numpy() - b0.numpy(), db, rtol=1e-9, atol=1e-15)
    assert rec["loss"] == pytest.approx(R.mean())
    for t in baseline:
        mean_t = R[[i for i, ti in enumerate(types) if ti == t]].mean()
        assert state["baseline"][t] == pytest.approx(0.75 * baseline[t] + 0.25 * mean_t)


def test_same_seed_same_weights_and_checks():
    task = tasks.make("rdm", dt=50.0)
    runs = []
    for _ in range(2):
        m = seed002_net(task)
        rule = Hebbian()
        st = rule.init_state(m, task, seed=7)
        for s in range(1, 4):
            rule.update(m, task.sample(16, s), st, step=s)
        runs.append(m.W_rec.detach().clone())
    assert torch.equal(runs[0], runs[1])
    assert set(trial_types(task.sample(64, 0))) == {"context=0,choice=1", "context=0,choice=-1"}
    with pytest.raises(ValueError, match="tanh"):
        Hebbian().init_state(seed002_net(task, activation="shifted_tanh"), task, seed=0)
    with pytest.raises(ValueError, match="readout"):
        Hebbian(readout="both")
    assert Hebbian(max_dw="none").max_dw is None  # the CLI's --rule-param max_dw=none
    with pytest.raises(ValueError, match="max_dw must be a number"):
        Hebbian(max_dw="abc")


def _train_hebbian(task_name: str, steps: int, batch: int, rule: Hebbian, seed: int = 0) -> tuple[float, int]:
    from spikedyn.learning.train import evaluate

    task = tasks.make(task_name, dt=10.0)
    m = seed002_net(task, seed=seed)
    st = rule.init_state(m, task, seed=seed)
    val = task.sample(2000, np.random.default_rng([seed, 10**6]))
    acc = 0.0
    for s in range(1, steps + 1):
        rule.update(m, task.sample(batch, np.random.default_rng([seed, s])), st, step=s)
        if s % 50 == 0:
            acc = evaluate(m, task, val)["accuracy"]
            if acc >= 0.9:
                return acc, s
    return acc, steps


@pytest.mark.slow
def test_hebbian_learns_rdm():
    acc, steps = _train_hebbian("rdm", 1000, 100, Hebbian(reduce="mean", max_dw=None, lr=0.3))
    assert acc >= 0.9, f"accuracy {acc} after {steps} steps"


def test_linear_readout_stays_fixed_and_abs_reward():
    task = tasks.make("rdm", dt=50.0)
    m = seed002_net(task)
    W_out = m.W_out.detach().clone()
    rule = Hebbian(readout="linear", reward="abs", scale_by_baseline=False)
    st = rule.init_state(m, task, seed=0)
    W_rec = m.W_rec.detach().clone()
    for s in (1, 2):
        rec = rule.update(m, task.sample(16, s), st, step=s)
    assert torch.equal(m.W_out, W_out) and not torch.equal(m.W_rec, W_rec)
    b = task.sample(16, 2)
    assert rec["loss"] > 0 and len(st["baseline"]) == len(set(trial_types(b)))


def test_leave_one_out_baseline():
    R = torch.tensor([1.0, 2.0, 4.0, 8.0, 3.0])
    types = ["a", "a", "a", "b", "c"]
    fallback = torch.tensor([9.0, 9.0, 9.0, 7.0, 5.0])
    out = Hebbian.leave_one_out(R, types, fallback)
    assert out.tolist() == [3.0, 2.5, 1.5, 7.0, 5.0]
    with pytest.raises(ValueError, match="baseline"):
        Hebbian(baseline="global")


def test_paired_baseline_compares_each_trial_with_its_twin():
    """baseline="paired": each trial runs twice (same inputs and x0, other kicks) and is scored against its
    twin's loss: dW = mean over the 2B runs of -eta * Rbar * e_b * (R_b - R_twin(b)); no kicks, no change."""
    from spikedyn.learning.hebbian import batch_tensors, rule_generator

    task = tasks.make("cdi", dt=50.0)
    m = seed002_net(task, dtype=torch.float64)
    still = Hebbian(baseline="paired", reduce="mean", max_dw=None, lr=0.1, perturb_amp=0.0)
    st = still.init_state(m, task, seed=1)
    W0 = m.W_rec.detach().clone()
    for s in (1, 2):
        rec = still.update(m, task.sample(8, s), st, step=s)
    assert torch.equal(m.W_rec, W0) and rec["advantage"] == 0.0  # twins without exploration are identical
    rule = Hebbian(baseline="paired", reduce="mean", max_dw=None, lr=0.1, perturb_rate=0.05)
    st = rule.init_state(m, task, seed=1)
    rule.update(m, task.sample(8, 1), st, step=1)
    Rbar0 = dict(st["baseline"])
    batch = task.sample(8, 2)
    u, target, mask = (torch.cat([a, a], 1) for a in batch_tensors(m, batch))
    roll = rule.rollout(m, u, dt=task.dt, generator=rule_generator(1, 2, m.device), repeat_x0=2)
    R = (((roll["y"] - target) ** 2 * mask).sum((0, 2)) / mask.sum((0, 2))).numpy()
    Rbar = np.array([Rbar0[t] for t in trial_types(batch) * 2])
    coef = -0.1 * Rbar * (R - np.roll(R, 8))
    W0 = m.W_rec.detach().clone()
    rule.update(m, batch, st, step=2)
    np.testing.assert_allclose(m.W_rec.detach().numpy() - W0.numpy(),
                               sum(coef[i] * roll["e_rec"][i].numpy() for i in range(16)) / 16, rtol=1e-9, atol=1e-15)
    assert not np.allclose(R[:8], R[8:])  # the twins explored differently
    with pytest.raises(ValueError, match="repeat_x0"):
        rule.rollout(m, u[:, :3], dt=task.dt, repeat_x0=2)


def test_antithetic_baseline_flips_the_twins_kicks():
    """baseline="antithetic": the twin runs the trial's own kicks with the opposite sign (same x0, inputs)."""
    from spikedyn.learning.hebbian import batch_tensors, rule_generator

    task = tasks.make("rdm", dt=50.0)
    m = seed002_net(task, dtype=torch.float64)
    rule = Hebbian(baseline="antithetic", reduce="mean", max_dw=None, lr=0.1, perturb_rate=0.05)
    st = rule.init_state(m, task, seed=2)
    rule.update(m, task.sample(6, 1), st, step=1)
    Rbar0, batch = dict(st["baseline"]), task.sample(6, 2)
    u, target, mask = batch_tensors(m, batch)
    g = rule_generator(2, 2, m.device)
    kicks = rule.draw_perturbations(u.shape[0], 6, 50, task.dt, m.device, m.dtype, g)
    assert kicks.abs().sum() > 0
    u2, target2, mask2 = (torch.cat([a, a], 1) for a in (u, target, mask))
    roll = rule.rollout(m, u2, dt=task.dt, generator=g, perturb=torch.cat([kicks, -kicks], 1), repeat_x0=2)
    R = (((roll["y"] - target2) ** 2 * mask2).sum((0, 2)) / mask2.sum((0, 2))).numpy()
    coef = -0.1 * np.array([Rbar0[t] for t in trial_types(batch) * 2]) * (R - np.roll(R, 6))
    W0 = m.W_rec.detach().clone()
    rule.update(m, batch, st, step=2)
    np.testing.assert_allclose(m.W_rec.detach().numpy() - W0.numpy(),
                               sum(coef[i] * roll["e_rec"][i].numpy() for i in range(12)) / 12, rtol=1e-9, atol=1e-15)


def _max_rel_diff(a: torch.nn.Module, b: torch.nn.Module) -> dict[str, float]:
    return {n: float(((p - q).abs().max() / p.abs().max().clamp(min=1e-12)).detach())
            for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters())}  # fmt: skip


@pytest.mark.parametrize("baseline", ["running", "batch", "paired", "antithetic"])
def test_population_members_equal_the_networks_trained_alone(baseline):
    """train(Population, rule="hebbian"): one batched rollout for all members, member i ends as the same
    network trained alone on the same batches (float64; own eta per member, noisy members, a learned bias,
    the firing-rate regulariser on each trial's loss)."""
    import spikedyn
    from spikedyn.models.population import Population

    task = tasks.make("cdi", dt=50.0)
    nets = [seed002_net(task, seed=s, dtype=torch.float64, bias=True) for s in range(3)]
    nets[1].noise_std = 0.05
    lrs = [0.02, 0.05, 0.1]
    pop = Population.stack(nets, lr=lrs)
    W0 = pop.W_rec.detach().clone()
    kw = dict(rule="hebbian", steps=4, batch_size=16, seed=3, eval_every=2, eval_trials=32, progress=False)
    rk = {"baseline": baseline, "max_dw": 1e-3, "regularizer": {"strength": 2.0, "target": 0.1}}
    res = spikedyn.train(pop, task, rule_kwargs=rk, **kw)
    for i, net in enumerate(nets):
        alone = spikedyn.train(net, task, rule_kwargs={**rk, "lr": lrs[i]}, **kw)
        rel = _max_rel_diff(net, pop.member(i))
        assert max(rel.values()) <= 1e-9, f"member {i}: {rel}"
        assert res.history[-1]["member_loss"][i] == pytest.approx(alone.history[-1]["loss"], rel=1e-9)
    assert (pop.W_rec - W0).abs().amax((1, 2)).min() > 0  # every member learned
    with pytest.raises(TypeError, match="Population of SpikingRNN"):
        from spikedyn.models import SpikingRNN

        Hebbian().init_state(Population.stack([SpikingRNN(1, 4, 1), SpikingRNN(1, 4, 1)]), task, seed=0)


def test_a_diverging_run_is_training_diverged_one_line(tmp_path, capsys):
    """D1 of review 2: W_rec turning NaN/Inf is a ``TrainingDiverged`` (what ``train`` rewraps with the
    checkpoint hint, the CLI prints as one line and the study records as "diverged"), for one network and
    for a Population (naming its members)."""
    import spikedyn
    from spikedyn.cli import main
    from spikedyn.learning import TrainingDiverged
    from spikedyn.models.population import Population

    task = tasks.make("rdm", dt=50.0)
    kw = dict(rule="hebbian", rule_kwargs={"lr": 1e12, "max_dw": None}, steps=4, batch_size=8, eval_every=2,
              eval_trials=20, progress=False)
    with pytest.raises(TrainingDiverged, match=r"hebbian: W_rec became NaN/Inf at step \d .*lower lr or set max_dw"):
        spikedyn.train(seed002_net(task), task, run_dir=tmp_path / "one", **kw)
    pop = Population.stack([seed002_net(task, seed=s) for s in (0, 1)])
    with pytest.raises(TrainingDiverged, match=r"at step \d \(members \[0, 1\]\)"):
        spikedyn.train(pop, task, **kw)
    argv = ["train", "--rule", "hebbian", "--model-param", "activation=tanh", "--rule-param", "lr=1e12",
            "--rule-param", "max_dw=none", "--task-param", "dt=50", "--steps", "4", "--hidden", "8",
            "--batch-size", "8", "--eval-trials", "20", "--eval-every", "1", "--no-progress",
            "--run-dir", str(tmp_path / "cli")]
    assert main(argv) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert len(err) == 1 and err[0].startswith("spikedyn: error: hebbian: W_rec became NaN/Inf"), err
    assert "last good checkpoint: " in err[0] and "step_" in err[0], err
