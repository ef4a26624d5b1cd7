"""spikedyn.Population: one batched body equals its members run alone (rollouts, gradients, training)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import spikedyn.tasks as T
import torch

import spikedyn
from spikedyn.learning import evaluate
from spikedyn.models import GRURNN, RateRNN, SpikingRNN, from_config
from spikedyn.models.population import Population
from spikedyn.models.rate import RateState


def _rate(gain=1.0, noise_std=0.0, n_in=2):
    return RateRNN(n_in, 6, 1, alpha=0.2, activation="shifted_tanh", x0_std=0.5, gain=gain, noise_std=noise_std)


BODIES = {
    "rate_noisy": (_rate, {"gain": [0.8, 1.0, 1.5], "noise_std": [0.0, 0.1, 0.3]}),
    "rate_vanilla_tanh": (lambda: RateRNN(2, 6, 1, alpha=1.0, activation="tanh"), None),
    "rate_relu": (lambda: RateRNN(2, 6, 1, alpha=0.3, activation="relu"), None),
    "rate_softplus": (lambda: RateRNN(2, 6, 1, alpha=0.5, activation="softplus"), None),
    "lif": (lambda: SpikingRNN(2, 6, 1, gain=3.0, tau_mem=10.0), None),
    "alif_substeps": (lambda: SpikingRNN(2, 6, 1, neuron="alif", gain=3.0, substeps=2, self_connections=False,
                                         delay_rec=1), None),
    "gru": (lambda: GRURNN(2, 6, 1), None),
}  # fmt: skip


@pytest.mark.parametrize("body", sorted(BODIES))
def test_rollout_and_gradients_equal_the_members_alone(body):
    factory, per_member = BODIES[body]
    torch.set_default_dtype(torch.float64)
    try:
        pop = Population.init(factory, 3, seed=5, per_member=per_member)
        u = torch.randn(12, 4, 2, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(11)
        out = pop(u)
        loss = (out.y**2).sum() + 0.01 * (out.r**2).sum()
        grads = dict(zip([n for n, _ in pop.named_parameters()], torch.autograd.grad(loss, list(pop.parameters()))))
        torch.manual_seed(11)
        torch.testing.assert_close(pop.outputs(u), out.y.detach(), rtol=0, atol=1e-12)
        for i in range(3):
            m = pop.member(i)
            torch.manual_seed(11)  # the same draws (x0, noise) as the population's
            alone = m(u)
            torch.testing.assert_close(alone.y, out.y[i], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(alone.r, out.r[i], rtol=1e-12, atol=1e-12)
            l_i = (alone.y**2).sum() + 0.01 * (alone.r**2).sum()
            g_i = torch.autograd.grad(l_i, list(m.parameters()))
            for (name, _), g in zip(m.named_parameters(), g_i):
                torch.testing.assert_close(g, grads[name][i], rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


RATE_BODIES = sorted(k for k in BODIES if k.startswith("rate"))


@pytest.mark.parametrize("body", RATE_BODIES)
def test_rate_kernel_final_and_initial_state_gradients_equal_autograd_per_member(body):
    """The rate Population kernel's backward with a loss on the final state ``x_T`` (its ``g_x`` branch)
    and a given ``x0`` that requires grad (its ``g0`` output): every member's parameter and ``x0``
    gradients equal autograd through the member alone (float64)."""
    factory, per_member = BODIES[body]
    torch.set_default_dtype(torch.float64)
    try:
        pop = Population.init(factory, 3, seed=5, per_member=per_member)
        u = torch.randn(9, 4, 2, generator=torch.Generator().manual_seed(0))
        x0 = torch.randn(3, 4, 6, generator=torch.Generator().manual_seed(1)).requires_grad_()
        torch.manual_seed(11)
        out = pop(u, state=RateState(x0))
        loss = (out.state.x**2).sum() + 0.3 * (out.y**2).sum() + 0.01 * (out.r**2).sum()
        names = [n for n, _ in pop.named_parameters()]
        *g_params, g_x0 = torch.autograd.grad(loss, [*pop.parameters(), x0])
        grads = dict(zip(names, g_params))
        for i in range(3):
            m = pop.member(i)
            x0_i = x0.detach()[i].clone().requires_grad_()
            torch.manual_seed(11)  # the same noise draws as the population's
            alone = m(u, state=RateState(x0_i))
            torch.testing.assert_close(alone.state.x, out.state.x[i], rtol=1e-12, atol=1e-12)
            l_i = (alone.state.x**2).sum() + 0.3 * (alone.y**2).sum() + 0.01 * (alone.r**2).sum()
            *g_i, g0_i = torch.autograd.grad(l_i, [*m.parameters(), x0_i])
            torch.testing.assert_close(g0_i, g_x0[i], rtol=1e-10, atol=1e-12)
            for (name, _), g in zip(m.named_parameters(), g_i):
                torch.testing.assert_close(g, grads[name][i], rtol=1e-10, atol=1e-12)
        # the final state alone (no loss on y or r: only the g_x branch carries a gradient)
        torch.manual_seed(11)
        g_only = torch.autograd.grad((pop(u, state=RateState(x0)).state.x ** 3).sum(), [pop.W_rec, x0])
        m = pop.member(1)
        x0_1 = x0.detach()[1].clone().requires_grad_()
        torch.manual_seed(11)
        ref = torch.autograd.grad((m(u, state=RateState(x0_1)).state.x ** 3).sum(), [m.W_rec, x0_1])
        torch.testing.assert_close(ref[0], g_only[0][1], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ref[1], g_only[1][1], rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


def test_stack_member_config_round_trip():
    models = []
    for s, g in enumerate([0.5, 1.0, 2.0]):
        torch.manual_seed(s)
        models.append(_rate(gain=g))
    pop = Population.stack(models)
    assert pop.W_rec.shape == (3, 6, 6) and pop.W_in.shape == (3, 6, 2) and pop.b_out.shape == (3, 1)
    for i, m in enumerate(models):
        twin = pop.member(i)
        assert twin.config() == m.config()
        for (n, p), (_, q) in zip(m.named_parameters(), twin.named_parameters()):
            assert torch.equal(p, q), n
    rebuilt = from_config(pop.config())
    rebuilt.load_state_dict(pop.state_dict())
    assert torch.equal(rebuilt.W_rec, pop.W_rec) and rebuilt.member_configs == pop.member_configs
    # init(): member i is the model built under torch.manual_seed(seed + i)
    pop2 = Population.init(_rate, 2, seed=7, per_member={"gain": [1.0, 3.0]})
    torch.manual_seed(8)
    expected = _rate(gain=3.0)
    assert torch.equal(pop2.member(1).W_rec, expected.W_rec)


def test_population_refuses_mixed_bodies():
    with pytest.raises(ValueError, match="differs from member 0"):
        Population.stack([_rate(), RateRNN(2, 7, 1)])
    with pytest.raises(ValueError, match="differs from member 0"):
        Population.stack([_rate(), SpikingRNN(2, 6, 1)])
    pop = Population.init(_rate, 2)
    with pytest.raises(ValueError, match=r"\[T, B, 2\]"):
        pop(torch.zeros(5, 3, 3))
    with pytest.raises(ValueError, match="values for 2 members"):
        Population.init(_rate, 2, per_member={"gain": [1.0]})


def _task():
    return T.make("rdm", dt=50.0)


EQUIVALENCE = {
    "rate": lambda noise_std=0.1: RateRNN(1, 8, 1, alpha=0.2, activation="shifted_tanh", x0_std=0.3**0.5,
                                          noise_std=noise_std),
    "lif": lambda: SpikingRNN(1, 8, 1, dt=50.0, tau_mem=100.0, tau_out=50.0, gain=2.0),
}  # fmt: skip


@pytest.mark.parametrize("body", sorted(EQUIVALENCE))
def test_member_trained_in_a_population_equals_the_model_trained_alone(body):
    """Issue 11: member i of a 4-member Population trained for 20 steps equals the same model trained
    alone (float64, relative difference <= 1e-6 on every weight), with per-member lr, noise and early
    stopping."""
    task, factory = _task(), EQUIVALENCE[body]
    per_member = {"noise_std": [0.0, 0.05, 0.1, 0.2]} if body == "rate" else None
    lrs = [3e-3, 1e-2, 2e-2, 5e-3]
    torch.set_default_dtype(torch.float64)
    try:
        pop = Population.init(factory, 4, seed=3, per_member=per_member, lr=lrs)
        alone = [pop.member(i) for i in range(4)]
        kw = dict(steps=20, batch_size=16, seed=9, eval_every=4, eval_trials=64, target_accuracy=0.6,
                  progress=False)  # fmt: skip
        res = spikedyn.train(pop, task, **kw)
        stopped = [r["step"] for r in res.history if r.get("members_active", 4) < 4]
        for i, m in enumerate(alone):  # alone: autograd through the model's own forward (not the kernel)
            spikedyn.train(m, task, lr=lrs[i], rule_kwargs={"fused": False}, **kw)
            trained = pop.member(i)
            for (n, p), (_, q) in zip(m.named_parameters(), trained.named_parameters()):
                rel = float(((p - q).abs().max() / p.abs().max().clamp(min=1e-12)).detach())
                assert rel <= 1e-6, f"{body} member {i} {n}: relative difference {rel:.2e}"
    finally:
        torch.set_default_dtype(torch.float32)
    assert all(len(r["member_loss"]) == 4 for r in res.history)
    assert stopped, "some member reached the target and stopped early (the case this test covers)"


def test_a_diverging_member_is_frozen_and_the_others_train_on(tmp_path):
    """``train(pop, on_member_divergence="freeze")``: the member whose loss turns NaN/Inf (lr 1e6, no clip,
    relu) is frozen at its last finite weights and flagged in ``member_diverged``; the others end exactly
    as in a Population where nobody diverges (whose members equal the models trained alone: the tests
    above); a resumed run replays it; by default the whole run still raises ``TrainingDiverged`` naming
    the member."""
    from spikedyn.learning import TrainingDiverged

    task = T.make("rdm", dt=50.0)

    def nets():
        return Population.init(lambda: RateRNN(task.n_inputs, 8, task.n_outputs, alpha=0.5, activation="relu"),
                               3, seed=1, lr=[1e-2, 1e6, 1e-2]).members()

    kw = dict(steps=6, batch_size=8, eval_every=3, eval_trials=20, progress=False, clip=None, seed=3)
    with pytest.raises(TrainingDiverged, match=r"at step 2 \(members \[1\]\)") as raised:
        spikedyn.train(Population.stack(nets(), lr=[1e-2, 1e6, 1e-2]), task, **kw)
    assert raised.value.members == [1]
    start = nets()
    pop = Population.stack(start, lr=[1e-2, 1e6, 1e-2])
    res = spikedyn.train(pop, task, on_member_divergence="freeze", run_dir=tmp_path / "run", **kw)
    assert [r.get("member_diverged") for r in res.history] == [None] + [[False, True, False]] * 5
    assert all(r["member_loss"][1] is None and np.isfinite(r["loss"]) for r in res.history[1:])
    assert "NaN" not in (tmp_path / "run" / "metrics.jsonl").read_text()  # means over the others, None for it
    assert res.final["eval_loss"] == pytest.approx(np.mean([res.final["member_eval_loss"][i] for i in (0, 2)]))
    healthy = Population.stack(nets(), lr=[1e-2, 1e-2, 1e-2])
    spikedyn.train(healthy, task, **kw)
    for i in (0, 2):
        for p, q in zip(healthy.member(i).parameters(), pop.member(i).parameters()):
            assert torch.equal(p, q)
    first = Population.stack(nets(), lr=[1e-2, 1e6, 1e-2])  # member 1 after its one finite step
    spikedyn.train(first, task, **{**kw, "steps": 1})
    for p, q in zip(first.member(1).parameters(), pop.member(1).parameters()):
        assert torch.equal(p, q)
    resumed = Population.stack(nets(), lr=[1e-2, 1e6, 1e-2])  # killed after step 4 (checkpoint 3), resumed

    def kill(step, record):
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        spikedyn.train(resumed, task, on_member_divergence="freeze", run_dir=tmp_path / "resumed", callback=kill, **kw)
    again = spikedyn.train(resumed, task, on_member_divergence="freeze", run_dir=tmp_path / "resumed", **kw)
    assert again.history == res.history
    assert all(torch.equal(p, q) for p, q in zip(resumed.parameters(), pop.parameters()))
    with pytest.raises(ValueError, match="gradient rule"):
        spikedyn.train(start[0], task, on_member_divergence="freeze", **kw)


def test_members_with_their_own_seeds_equal_the_models_trained_alone():
    """train(pop, seed=[...]): member i sees the batches, held-out trials, x_0 and noise of
    train(member, seed=seed[i]) (how a sweep runs same-shaped trials with different seeds); float64,
    relative difference <= 1e-6 on every weight, and the same held-out scores."""
    task, seeds, lrs = _task(), [4, 9, 11], [1e-2, 2e-2, 5e-3]
    torch.set_default_dtype(torch.float64)
    try:
        pop = Population.init(EQUIVALENCE["rate"], 3, seed=3, per_member={"noise_std": [0.0, 0.1, 0.2]}, lr=lrs)
        alone = [pop.member(i) for i in range(3)]
        kw = dict(steps=8, batch_size=8, eval_every=4, eval_trials=32, progress=False)
        res = spikedyn.train(pop, task, seed=seeds, **kw)
        for i, m in enumerate(alone):
            own = spikedyn.train(m, task, seed=seeds[i], lr=lrs[i], rule_kwargs={"fused": False}, **kw)
            assert abs(own.final["eval_loss"] - res.final["member_eval_loss"][i]) <= 1e-9
            assert own.final["accuracy"] == res.final["member_accuracy"][i]
            for (n, p), (_, q) in zip(m.named_parameters(), pop.member(i).named_parameters()):
                rel = float(((p - q).abs().max() / p.abs().max().clamp(min=1e-12)).detach())
                assert rel <= 1e-6, f"member {i} {n}: relative difference {rel:.2e}"
    finally:
        torch.set_default_dtype(torch.float32)
    with pytest.raises(ValueError, match="2 seeds for a Population of 3"):
        spikedyn.train(pop, task, seed=[1, 2], **kw)


def test_population_checkpoint_resume(tmp_path, interrupt_and_resume):
    task = _task()

    def run(run_dir=None, callback=None):
        pop = Population.init(EQUIVALENCE["rate"], 3, seed=1)
        return spikedyn.train(pop, task, steps=10, batch_size=8, lr=1e-2, seed=2, run_dir=run_dir, eval_every=4,
                              eval_trials=32, progress=False, callback=callback)  # fmt: skip

    interrupt_and_resume(run, tmp_path, kill_at=6)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["config"]["model"]["kind"] == "population" and saved["model"]["W_rec"].shape == (3, 8, 8)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(json.loads(lines[-1])["member_loss"]) == 3


def test_evaluate_population_equals_members():
    task = _task()
    pop = Population.init(EQUIVALENCE["rate"], 3, seed=4)
    batch = task.sample(50, np.random.default_rng(0), split="test")
    scores = evaluate(pop, task, batch, chunk=20, seed=5)
    for i in range(3):
        alone = evaluate(pop.member(i), task, batch, chunk=20, seed=5)
        assert abs(alone["accuracy"] - scores["member_accuracy"][i]) < 1e-9
        assert abs(alone["eval_loss"] - scores["member_eval_loss"][i]) < 1e-5


def test_rollout_buffers_are_not_reused_while_held():
    """The rate rollout keeps its big buffer between calls; a buffer still held (a returned ``r``, a
    graph not yet backpropagated) is never written by the next rollout."""
    pop = Population.init(lambda: RateRNN(2, 6, 1, alpha=0.2, activation="shifted_tanh"), 3, seed=0)
    u1 = torch.randn(10, 4, 2, generator=torch.Generator().manual_seed(1))
    u2 = torch.randn(10, 4, 2, generator=torch.Generator().manual_seed(2))
    first = pop(u1)
    kept = first.r.detach().clone()
    second = pop(u2)  # first's graph and r are alive: a fresh buffer
    assert torch.equal(first.r.detach(), kept) and not torch.equal(second.r.detach(), kept)
    g1 = torch.autograd.grad(first.y.sum(), pop.W_rec)[0]
    del first, second
    again = pop(u1, rates=False)  # the buffer is free again: reused, same result
    assert again.r is None  # shifted_tanh stores r / 2: rates=False skips making r
    torch.testing.assert_close(torch.autograd.grad(again.y.sum(), pop.W_rec)[0], g1, rtol=0, atol=0)
    with pytest.raises(ValueError, match="non-finite"):
        pop(torch.full((3, 2, 2), float("nan")))


LONE = {
    "shifted_tanh_noisy": lambda: RateRNN(2, 7, 2, alpha=0.1, activation="shifted_tanh", x0_std=0.5,
                                          noise_std=0.2),
    "tanh": lambda: RateRNN(2, 7, 2, alpha=0.5, activation="tanh"),
    "relu_noisy_vanilla": lambda: RateRNN(2, 7, 2, alpha=1.0, activation="relu", noise_std=0.1),
    "softplus": lambda: RateRNN(2, 7, 2, alpha=0.3, activation="softplus", bias=False),
}  # fmt: skip


@pytest.mark.parametrize("body", sorted(LONE))
def test_bptt_on_a_lone_rate_net_uses_the_kernel_and_equals_autograd(body, monkeypatch):
    """BPTT on one RateRNN runs the population kernel with E = 1 (lone_rate_rollout; a counter on the
    kernel's entry checks that fused=True reaches it and fused=False does not); its loss and gradients equal
    autograd through RateRNN.forward under the same torch seed (same x_0 and noise draws), float64."""
    from spikedyn.learning.rules import make_rule
    from spikedyn.models import population
    from spikedyn.models.population import lone_rate_rollout

    calls = []
    real_apply = population._RatePopulationBPTT.apply

    def counted(*args):
        calls.append(fused)
        return real_apply(*args)

    monkeypatch.setattr(population._RatePopulationBPTT, "apply", counted)

    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(2)
        model = LONE[body]()
        u = torch.randn(15, 5, 2, generator=torch.Generator().manual_seed(3))
        target = torch.randn(15, 5, 2, generator=torch.Generator().manual_seed(4))
        mask = (torch.arange(15) >= 9).double()[:, None, None].expand(15, 5, 2)
        got, ref = [], []
        for fused, out in ((True, got), (False, ref)):
            torch.manual_seed(5)
            out.append(make_rule("bptt", fused=fused).loss_and_gradients(model, u, target, mask, "mse"))
        assert calls == [True], calls  # the kernel ran for fused=True only
        torch.testing.assert_close(got[0][0], ref[0][0], rtol=1e-12, atol=1e-12)
        assert set(got[0][1]) == set(ref[0][1])
        for n in ref[0][1]:
            torch.testing.assert_close(got[0][1][n], ref[0][1][n], rtol=1e-10, atol=1e-12, msg=n)
        torch.manual_seed(5)
        roll = lone_rate_rollout(model, u)
        torch.manual_seed(5)
        torch.testing.assert_close(roll.y, model(u).y, rtol=1e-12, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)
    # the vanilla tanh net keeps RateRNN.forward's native RNN kernel; other bodies are not taken
    assert lone_rate_rollout(RateRNN(2, 4, 1, alpha=1.0, activation="tanh"), torch.zeros(3, 2, 2)) is None
    assert lone_rate_rollout(GRURNN(2, 4, 1), torch.zeros(3, 2, 2)) is None


def test_population_benchmark_sides_run_and_summarise():
    """benchmarks/population.py at toy size: every side trains and reports its time and memory, and the
    summary's speed-ups are the ratios of the sides' network-steps per second."""
    import argparse
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "population.py"
    spec = importlib.util.spec_from_file_location("population_benchmark", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(members=3, batch=4, steps=1, threads=torch.get_num_threads(), device="cpu",
                              sequential_members=2)  # fmt: skip
    cell = {side: bench.child(side, args) for side in bench.SIDES}
    assert cell["population"]["networks"] == 3 and cell["sequential"]["networks"] == 2
    for side in bench.SIDES:
        assert cell[side]["network_steps"] == cell[side]["networks"] and cell[side]["T"] == 75
        assert cell[side]["wall_s"] > 0 and cell[side]["cpu_s"] > 0 and cell[side]["peak_rss_mb"] > 0
    th = str(args.threads)
    summary = bench.summarise([{th: cell}], [args.threads], list(bench.SIDES))[th]
    rate = {s: cell[s]["network_steps"] / cell[s]["wall_s"] for s in bench.SIDES}
    assert summary["speedup_vs_sequential_wall"] == pytest.approx(rate["population"] / rate["sequential"])
    assert summary["speedup_vs_autograd_wall"] == pytest.approx(rate["population"] / rate["autograd"])


def test_population_profile_parts_at_toy_size():
    """benchmarks/population_profile.py at toy size: the phases of a Population step and of a lone step
    add up to their totals, the operator shares to 1, and the GEMM roofline reports positive times."""
    import importlib.util
    from pathlib import Path

    import spikedyn.tasks as tasks

    from spikedyn.learning.presets import get

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "population_profile.py"
    spec = importlib.util.spec_from_file_location("population_profile", path)
    prof = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prof)
    task = tasks.make("rdm", dt=10.0, duration_ms=740.0)
    p = get("mcmahan2024")
    pop = Population.stack([p.build_model(task, seed=i) for i in range(2)])
    for model in (pop, p.build_model(task, seed=0)):
        ph = prof.phases(model, task, reps=1, eval_every=5)
        assert set(ph) == {"sample batch", "forward", "loss", "backward", "norms, clip, Adam", "evaluation", "total"}
        assert ph["total"] == pytest.approx(sum(v for k, v in ph.items() if k != "total"))
        assert ph["forward"] > 0 and ph["backward"] > 0
    ops = prof.operators(pop, task)
    assert sum(v for v in ops.values() if isinstance(v, float)) == pytest.approx(1.0)
    assert ops["batched GEMMs (bmm, baddbmm)"] > 0
    roof = prof.roofline(2, 8, 6, 5, reps=1)
    assert roof["gemm_step_hot_s"] > 0 and roof["gemm_step_streamed_s"] > 0
    assert roof["gemm_flop_per_step"] == 3 * 2 * 2 * 8 * 36


def test_a_frozen_member_stays_out_of_the_training_means_when_its_loss_is_finite_again():
    """A member frozen after one non-finite loss (here forced at the second call only) stays out of
    ``loss``/``member_loss`` on every later step, not only on steps where its loss is non-finite."""
    from spikedyn.learning.rules import BPTT

    task = T.make("rdm", dt=50.0)
    calls = [0]

    class OneBadStep(BPTT):
        def loss_and_gradients(self, model, u, target, mask, loss):
            value, grads = super().loss_and_gradients(model, u, target, mask, loss)
            calls[0] += 1
            if calls[0] == 2:
                value = value.clone()
                value[1] = float("nan")
            return value, grads

    torch.manual_seed(0)
    pop = Population.stack([RateRNN(task.n_inputs, 6, task.n_outputs, alpha=0.5) for _ in range(3)])
    res = spikedyn.train(pop, task, rule=OneBadStep(), steps=4, batch_size=4, eval_every=2, eval_trials=8,
                         progress=False, on_member_divergence="freeze")
    assert res.history[0]["member_loss"][1] is not None and "member_diverged" not in res.history[0]
    for rec in res.history[1:]:
        assert rec["member_diverged"] == [False, True, False]
        assert rec["member_loss"][1] is None and rec["member_grad_norm"][1] is None
        others = [rec["member_loss"][0], rec["member_loss"][2]]
        assert rec["loss"] == pytest.approx(sum(others) / 2)
