"""Online e-prop / RFLO: exact against autograd's truncated gradient, feedback variants, training, memory.

The definition of correct (issue 3, item 4): with symmetric feedback the online rule's gradient equals
autograd through ``model(u, detach_recurrent=True)`` of the same loss, to 1e-5 relative error in float64.
"""
from __future__ import annotations

import pytest
import torch

import spikedyn
from spikedyn.experiments.build import build_task
from spikedyn.experiments.eprop_accuracy import ACCURACY_CASES
from spikedyn.learning import RFLO, EProp, make_rule, output_error, task_loss, train
from spikedyn.learning.eprop import loss_normaliser, step_loss_and_error
from spikedyn.models import GRURNN, RateRNN, SpikingRNN

TOL = 1e-5


pytestmark = pytest.mark.usefixtures("one_thread_seeded")


def _batch(T=25, B=4, I=3, O=3, loss="mse", seed=0):
    g = torch.Generator().manual_seed(seed)
    u = 2.0 * torch.randn(T, B, I, generator=g, dtype=torch.float64)
    if loss == "mse":
        target = torch.randn(T, B, O, generator=g, dtype=torch.float64)
        mask = (torch.rand(T, B, O, generator=g) > 0.3).double()
    else:
        target = torch.nn.functional.one_hot(torch.randint(0, O, (T, B), generator=g), O).double()
        mask = (torch.rand(T, B, 1, generator=g) > 0.3).double().expand(T, B, O).clone()
    mask[:3] = 0.0  # some steps the loss never sees
    return u, target, mask


def _truncated_autograd(model, u, target, mask, loss, W_out_feedback=None):
    """Reference: autograd through the detached-recurrence rollout. With ``W_out_feedback`` the hidden
    parameters get ``sum dL/dy B d rbar/dtheta`` (the loss error is computed from the true output)."""
    params = dict(model.named_parameters())
    # an explicit initial state selects the plain step loop (not a fused kernel): pure autograd
    y = model(u, state=model.init_state(u.shape[1]), detach_recurrent=True).y
    value = task_loss(y, target, mask, loss)
    grads = dict(zip(params, torch.autograd.grad(value, list(params.values())), strict=True))
    if W_out_feedback is not None:
        err = output_error(y, target, mask, loss).detach()
        y_fb = torch.func.functional_call(model, {**params, "W_out": W_out_feedback}, (u,),
                                          {"state": model.init_state(u.shape[1]), "detach_recurrent": True}).y
        hidden = [n for n in params if n not in ("W_out", "b_out")]
        g_fb = torch.autograd.grad((y_fb * err).sum(), [params[n] for n in hidden])
        grads.update(dict(zip(hidden, g_fb, strict=True)))
    return value, grads


def _assert_close(ref, got):
    (v0, g0), (v1, g1) = ref, got
    v0, v1 = float(v0.detach()), float(v1)
    assert abs(v0 - v1) <= TOL * abs(v0)
    assert set(g0) == set(g1)
    for name in g0:
        err = float((g0[name] - g1[name]).norm() / g0[name].norm().clamp(min=1e-30))
        assert err < TOL, f"{name}: relative error {err:.2e}"
        assert float(g0[name].norm()) > 0 or name == "b_out"  # a zero gradient would make the check empty


# -- the per-step loss ------------------------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "ce"])
def test_step_losses_sum_to_the_task_loss_and_its_gradient(loss):
    u, target, mask = _batch(loss=loss)
    y = torch.randn(*target.shape, dtype=torch.float64)
    norm = loss_normaliser(mask, loss)
    parts = [step_loss_and_error(y[t], target[t], mask[t], loss, norm) for t in range(len(y))]
    torch.testing.assert_close(sum(p[0] for p in parts), task_loss(y, target, mask, loss))
    torch.testing.assert_close(torch.stack([p[1] for p in parts]), output_error(y, target, mask, loss))


def test_cross_entropy_error_is_exact_for_targets_that_do_not_sum_to_one():
    y = torch.randn(5, 3, 4, dtype=torch.float64, requires_grad=True)
    target, mask = 0.5 * torch.rand(5, 3, 4, dtype=torch.float64), torch.ones(5, 3, 4, dtype=torch.float64)
    (ref,) = torch.autograd.grad(task_loss(y, target, mask, "ce"), y)
    norm = loss_normaliser(mask, "ce")
    got = torch.stack([step_loss_and_error(y[t].detach(), target[t], mask[t], "ce", norm)[1] for t in range(5)])
    torch.testing.assert_close(got, ref)


# -- exactness: rate units (RFLO) -----------------------------------------------------------------
@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus", "shifted_tanh"])
@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_rflo_equals_truncated_autograd(activation, alpha, loss):
    model = RateRNN(3, 12, 3, alpha=alpha, activation=activation, gain=1.5).double()
    with torch.no_grad():
        model.b.normal_(0.0, 0.3)
    u, target, mask = _batch(loss=loss)
    _assert_close(_truncated_autograd(model, u, target, mask, loss),
                  RFLO().loss_and_gradients(model, u, target, mask, loss))  # fmt: skip


def test_rflo_with_noise_and_random_initial_state_equals_the_same_noisy_rollout():
    """With recurrent noise and x0 ~ N(0, x0_std^2) the reference is the same detached rollout fed
    the noise the rule draws (one standard-normal [B, N] sample per step, after x0)."""
    model = RateRNN(3, 10, 2, alpha=0.2, activation="tanh", noise_std=0.2, x0_std=0.5).double()
    u, target, mask = _batch(O=2)
    torch.manual_seed(7)
    got = EProp().loss_and_gradients(model, u, target, mask, "mse")
    torch.manual_seed(7)
    x = model.init_state(u.shape[1]).x
    ys = []
    for t in range(u.shape[0]):
        drive = model.f(x).detach() @ model.W_rec.T + u[t] @ model.W_in.T + model.b
        x = (1 - model.alpha) * x + model.alpha * drive
        x = x + (2 * model.alpha) ** 0.5 * model.noise_std * torch.randn(x.shape, dtype=x.dtype)
        ys.append(model.f(x) @ model.W_out.T + model.b_out)
    value = task_loss(torch.stack(ys), target, mask, "mse")
    params = dict(model.named_parameters())
    ref = (value, dict(zip(params, torch.autograd.grad(value, list(params.values())), strict=True)))
    _assert_close(ref, got)


# -- exactness: spiking units (e-prop) ------------------------------------------------------------
SPIKING_CASES = {
    "lif": dict(neuron="lif"),
    "lif_refractory": dict(neuron="lif", refractory=3.0),
    "lif_no_readout_filter": dict(neuron="lif", tau_out=0.0),  # presynaptic-only traces (factorised)
    "lif_zero_reset": dict(neuron="lif", reset="zero", refractory=2.0),
    "lif_reset_not_detached": dict(neuron="lif", detach_reset=False, refractory=2.0),
    "lif_synaptic_current": dict(neuron="lif", du=0.3, refractory=2.0),
    "lif_substeps": dict(neuron="lif", substeps=3, dt=3.0, refractory=2.0),
    "lif_delays": dict(neuron="lif", delay_in=2, delay_rec=1),
    "lif_self_connections": dict(neuron="lif", self_connections=True),
    "lif_fast_sigmoid": dict(neuron="lif", surrogate="fast_sigmoid"),
    "alif": dict(neuron="alif"),
    "alif_refractory": dict(neuron="alif", refractory=3.0),
    "alif_mixed": dict(neuron="alif", n_adaptive=5, refractory=2.0),
    "alif_zero_reset": dict(neuron="alif", reset="zero", refractory=2.0),
    "alif_reset_not_detached": dict(neuron="alif", detach_reset=False, refractory=2.0),
    "alif_synaptic_current_substeps": dict(neuron="alif", du=0.5, substeps=2, dt=2.0, refractory=2.0),
    "alif_atan": dict(neuron="alif", surrogate="atan", tau_out=0.0),
}


def _spiking(**kw):
    base = dict(v_th=0.5, surrogate="triangle", tau_mem=20.0, tau_adapt=50.0, beta_adapt=0.4,
                self_connections=False)  # fmt: skip
    model = SpikingRNN(3, 12, 3, **{**base, **kw}).double()
    with torch.no_grad():  # a regime with plenty of spikes and surrogate activity
        model.W_rec.mul_(3.0)
        model.W_in.mul_(2.0)
        model.b.fill_(0.05)
    return model


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("case", sorted(SPIKING_CASES))
def test_eprop_equals_truncated_autograd(case, loss):
    model = _spiking(**SPIKING_CASES[case])
    u, target, mask = _batch(loss=loss)
    assert model(u).r.sum() > 0  # the network spikes
    _assert_close(_truncated_autograd(model, u, target, mask, loss),
                  EProp().loss_and_gradients(model, u, target, mask, loss))  # fmt: skip


def test_eprop_differs_from_full_bptt():
    """Sanity of the reference: the truncation is a real approximation (not BPTT in disguise)."""
    model = _spiking(neuron="alif")
    u, target, mask = _batch()
    full = make_rule("bptt").gradients(model, u, target, mask, "mse")
    online = EProp().gradients(model, u, target, mask, "mse")
    assert float((full["W_rec"] - online["W_rec"]).norm() / full["W_rec"].norm()) > 1e-3
    torch.testing.assert_close(full["W_out"], online["W_out"])  # the readout's gradient is exact in both


# -- feedback -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rate", "alif"])
def test_random_feedback_equals_autograd_through_the_feedback_matrix(kind):
    model = RateRNN(3, 12, 3, alpha=0.3, activation="tanh").double() if kind == "rate" else _spiking(neuron="alif")
    u, target, mask = _batch(loss="ce")
    rule = EProp(feedback="random", seed=3)
    got = rule.loss_and_gradients(model, u, target, mask, "ce")
    B = rule.feedback_weights
    assert B.shape == model.W_out.shape and not torch.allclose(B, model.W_out)
    _assert_close(_truncated_autograd(model, u, target, mask, "ce", W_out_feedback=B), got)


def test_random_feedback_is_seeded_and_fixed():
    model = RateRNN(3, 12, 2).double()
    a, b, c = EProp("random", seed=1), EProp("random", seed=1), EProp("random", seed=2)
    Ba, Bb, Bc = (r.feedback_matrix(model) for r in (a, b, c))
    torch.testing.assert_close(Ba, Bb)
    assert not torch.allclose(Ba, Bc)
    with torch.no_grad():
        model.W_out.add_(1.0)
    torch.testing.assert_close(a.feedback_matrix(model), Ba)  # fixed: does not follow W_out
    assert abs(float(Ba.std()) - 12**-0.5) < 0.15  # default scale: W_out's init, N(0, 1/N)


def test_adaptive_feedback_follows_w_out_updates_with_shared_decay():
    """Kolen-Pollack: B gets W_out's update and both decay by d, so B - W_out shrinks by (1 - d) per step."""
    task = build_task("2af")
    torch.manual_seed(0)
    model = RateRNN(task.n_inputs, 16, task.n_outputs, alpha=0.1)
    W0 = model.W_out.detach().clone()
    d, steps = 0.05, 6
    rule = EProp(feedback="adaptive", feedback_decay=d, seed=4)
    train(model, task, rule=rule, steps=steps, batch_size=8, lr=1e-2, eval_every=steps, eval_trials=16,
          progress=False)  # fmt: skip
    B = rule.feedback_matrix(model)  # applies the last optimiser step's pending update
    B0 = torch.randn(W0.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64) / 16**0.5
    torch.testing.assert_close(B - model.W_out.detach(), (1 - d) ** (steps + 1) * (B0.float() - W0))
    assert float((B - model.W_out.detach()).norm()) < float((B0.float() - W0).norm())


# -- errors -----------------------------------------------------------------------------------------
def test_unsupported_models_and_settings_raise_one_line_errors():
    u, target, mask = (x.float() for x in _batch(O=2))
    with pytest.raises(ValueError, match="RateRNN and SpikingRNN"):
        EProp().gradients(GRURNN(3, 8, 2), u, target, mask)
    with pytest.raises(ValueError, match="RFLO is for rate units"):
        RFLO().gradients(SpikingRNN(3, 8, 2), u, target, mask)
    with pytest.raises(ValueError, match="unknown feedback"):
        EProp(feedback="transpose")
    with pytest.raises(ValueError, match="shape"):
        EProp().gradients(RateRNN(3, 8, 2), u, target[:, :, :1], mask[:, :, :1])
    rule = EProp("random")
    rule.gradients(RateRNN(3, 8, 2), u, target, mask)
    with pytest.raises(ValueError, match="new rule object"):
        rule.gradients(RateRNN(3, 9, 2), u, target, mask)


def test_rules_are_registered_for_spikedyn_train():
    assert isinstance(make_rule("eprop"), EProp) and isinstance(make_rule("rflo"), RFLO)
    assert make_rule("eprop", feedback="random").feedback == "random"
    assert spikedyn.learning.EProp is EProp


# -- training (done-when: >= 90% held-out accuracy) --------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ACCURACY_CASES))
def test_online_rules_train_to_90_percent(case):
    """e-prop trains LIF and ALIF nets on 2af and rdm (rdm's optimum is ~92%), RFLO trains rate nets on 2af,
    romo and dms; settings in ``ACCURACY_CASES`` (64 units, batch 32, Adam; docs/eprop.md)."""
    from spikedyn.experiments.eprop_accuracy import run_accuracy_case

    row = run_accuracy_case(case, seed=0, held_out=2000)
    assert row["accuracy"] >= 0.9, row
    assert row["steps_run"] <= ACCURACY_CASES[case]["steps"]


# -- memory independent of T ------------------------------------------------------------------------
@pytest.mark.slow
def test_eprop_memory_is_flat_in_sequence_length_and_bptt_grows():
    from spikedyn.experiments.eprop_memory import measure_in_subprocess

    kw = dict(kind="lif", hidden=128, batch=16, device="cpu", threads=1)
    e_short, e_long = (measure_in_subprocess(rule="eprop", T=T, **kw) for T in (100, 2000))
    b_short, b_long = (measure_in_subprocess(rule="bptt", T=T, **kw) for T in (100, 2000))
    assert e_long["peak_mb"] <= 1.1 * e_short["peak_mb"]
    assert e_long["extra_mb"] - e_short["extra_mb"] < 5.0  # MB: traces do not grow with T
    assert b_long["extra_mb"] > 10 * max(e_long["extra_mb"], 1.0)  # BPTT stores the trajectory


# -- Liu et al.'s Fig. 3: max Lyapunov exponent before / after training (`spikedyn bench eprop-gain`) ------
def test_gain_study_command_writes_the_lyapunov_figure_and_json(tmp_path, capsys):
    """Tiny sizes: both rules, two gains, one seed; BPTT with its own (shorter) budget."""
    import json

    from spikedyn.cli import main

    args = ["bench", "eprop-gain", "--gains", "0.5,1.5", "--lrs", "1e-3", "--seeds", "1", "--iterations", "203",
            "--bptt-iterations", "201", "--hidden", "6", "--batch", "2", "--workers", "1",
            "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--json"]  # fmt: skip
    assert main(args) == 0
    capsys.readouterr()
    assert (tmp_path / "out" / "figures" / "eprop_gain_lyapunov.png").stat().st_size > 10_000
    data = json.loads((tmp_path / "out" / "results" / "eprop_gain.json").read_text())
    assert data["config"]["iterations_per_rule"] == {"eprop": 203, "bptt": 201}
    rows = {(r["rule"], r["gain"]): r for r in data["summary"]}
    for g in (0.5, 1.5):  # the same initial network for both rules: the same exponent before training
        assert rows["eprop", g]["lyapunov_before"] == rows["bptt", g]["lyapunov_before"]
        assert rows["eprop", g]["lyapunov_after"] != rows["eprop", g]["lyapunov_before"]
    assert rows["bptt", 0.5]["lyapunov_before"] < rows["bptt", 1.5]["lyapunov_before"]  # larger gain, less stable
    assert main(args) == 0  # a rerun reads every run from the cache


# -- firing-rate regulariser (Bellec et al. 2020; spikedyn/learning/regularizers.py) -----------------------
def _hand_rate_penalty(model, r, strength, target):
    """Written out independently: (c/2) sum_j (f_j - f*)^2, f_j = spikes per ms (spiking) or mean rate."""
    T, B = r.shape[0], r.shape[1]
    if isinstance(model, SpikingRNN):
        f = r.sum(dim=(0, 1)) / (T * B * model.dt)
        target = target / 1000.0
    else:
        f = r.sum(dim=(0, 1)) / (T * B)
    return 0.5 * strength * ((f - target) ** 2).sum()


def _regularised_autograd(model, u, target, mask, loss, strength, f_target, detach):
    params = dict(model.named_parameters())
    roll = model(u, state=model.init_state(u.shape[1]), detach_recurrent=detach)
    value = task_loss(roll.y, target, mask, loss) + _hand_rate_penalty(model, roll.r, strength, f_target)
    return value, dict(zip(params, torch.autograd.grad(value, list(params.values())), strict=True))


def test_rate_penalty_gradient_in_closed_form_equals_autograd():
    from spikedyn.learning.regularizers import FiringRateRegularizer

    reg = FiringRateRegularizer(strength=3.0, target=10.0)
    model = _spiking(neuron="lif")
    rates = (0.05 * torch.rand(12, dtype=torch.float64)).requires_grad_()
    (ref,) = torch.autograd.grad(reg.penalty(model, rates), rates)
    torch.testing.assert_close(reg.rate_error(model, rates.detach()), ref)
    r = torch.rand(7, 4, 12, dtype=torch.float64)
    torch.testing.assert_close(reg.loss(model, r), _hand_rate_penalty(model, r, 3.0, 10.0))


@pytest.mark.parametrize("kind", ["rate", "lif"])
def test_bptt_regularised_gradient_equals_autograd_of_task_plus_rate_term(kind):
    model = RateRNN(3, 12, 3, alpha=0.3, activation="relu").double() if kind == "rate" else _spiking(neuron="lif")
    u, target, mask = _batch(loss="ce")
    reg = {"strength": 2.0, "target": 0.3 if kind == "rate" else 20.0}
    got = make_rule("bptt", regularizer=reg).loss_and_gradients(model, u, target, mask, "ce")
    ref = _regularised_autograd(model, u, target, mask, "ce", reg["strength"], reg["target"], detach=False)
    _assert_close(ref, got)
    plain = make_rule("bptt").gradients(model, u, target, mask, "ce")
    assert float((plain["W_rec"] - got[1]["W_rec"]).norm()) > 1e-3 * float(plain["W_rec"].norm())  # it acts


REG_CASES = {
    "rate_relu": None,
    "lif": dict(neuron="lif", refractory=2.0),
    "lif_no_readout_filter": dict(neuron="lif", tau_out=0.0),
    "lif_substeps_zero_reset": dict(neuron="lif", substeps=2, dt=2.0, reset="zero"),
    "alif_mixed": dict(neuron="alif", n_adaptive=5, refractory=2.0),
    "alif_reset_not_detached": dict(neuron="alif", detach_reset=False),
}


@pytest.mark.parametrize("case", sorted(REG_CASES))
def test_eprop_regularised_gradient_equals_truncated_autograd(case):
    """The rate term goes through the same eligibility traces: with symmetric feedback the online gradient of
    task + rate term equals autograd's through the detached-recurrence rollout."""
    kw = REG_CASES[case]
    model = RateRNN(3, 12, 3, alpha=0.3, activation="relu").double() if kw is None else _spiking(**kw)
    u, target, mask = _batch(loss="mse")
    f_target = 0.2 if kw is None else 30.0
    rule = (RFLO if kw is None else EProp)(regularizer={"strength": 5.0, "target": f_target})
    _assert_close(_regularised_autograd(model, u, target, mask, "mse", 5.0, f_target, detach=True),
                  rule.loss_and_gradients(model, u, target, mask, "mse"))  # fmt: skip


def test_rate_term_does_not_depend_on_the_feedback():
    model = _spiking(neuron="alif")
    u, target, mask = _batch()
    reg = {"strength": 5.0, "target": 30.0}
    delta = []
    for fb in ("symmetric", "random"):
        with_reg = EProp(fb, seed=2, regularizer=reg).gradients(model, u, target, mask)
        without = EProp(fb, seed=2).gradients(model, u, target, mask)
        delta.append(with_reg["W_rec"] - without["W_rec"])
    torch.testing.assert_close(delta[0], delta[1])
    assert float(delta[0].norm()) > 0


def test_ga_and_hebbian_add_the_rate_term_to_their_losses():
    from spikedyn.learning.ga import GA
    from spikedyn.learning.hebbian import Hebbian
    from spikedyn.learning.regularizers import FiringRateRegularizer, population_penalty, trial_penalty
    from spikedyn.models.population import Population

    reg = FiringRateRegularizer(strength=4.0, target=0.1)
    task = build_task("rdm", {"dt": 50.0})
    torch.manual_seed(0)
    pop = Population.stack([RateRNN(task.n_inputs, 8, task.n_outputs, activation="tanh") for _ in range(3)])
    batch = task.sample(6, 0)
    u = torch.as_tensor(batch.inputs, dtype=torch.float32)
    per_member = torch.stack([_hand_rate_penalty(m, m(u).r, 4.0, 0.1) for m in (pop.member(i) for i in range(3))])
    torch.testing.assert_close(population_penalty(reg, pop, u, chunk=4).float(), per_member, rtol=1e-5, atol=1e-6)
    r = torch.rand(5, 6, 8)
    torch.testing.assert_close(trial_penalty(reg, pop.member(0), r),
                               torch.stack([_hand_rate_penalty(pop.member(0), r[:, b : b + 1], 4.0, 0.1)
                                            for b in range(6)]))  # fmt: skip
    # the GA ranks by loss + rate term: its reported best loss includes the penalty
    ga_plain = GA(population=3, parents=1, children=2)
    rec_plain = ga_plain.update(pop, batch, ga_plain.init_state(pop, task, seed=0), step=1)
    ga = GA(population=3, parents=1, children=2, regularizer=reg.config())
    rec = ga.update(pop, batch, ga.init_state(pop, task, seed=0), step=1)
    assert rec["loss"] > rec_plain["loss"] and ga.config()["regularizer"] == {"strength": 4.0, "target": 0.1}
    import copy

    net = RateRNN(task.n_inputs, 8, task.n_outputs, activation="tanh")
    twin = copy.deepcopy(net)
    heb, plain = Hebbian(regularizer={"strength": 4.0, "target": 0.1}), Hebbian()
    rec = heb.update(net, batch, heb.init_state(net, task, seed=0), step=1)
    rec_plain = plain.update(twin, batch, plain.init_state(twin, task, seed=0), step=1)  # the same kicks
    assert rec["loss"] > rec_plain["loss"] and not torch.equal(net.W_rec, twin.W_rec)
    with pytest.raises(ValueError, match="strength and target"):
        EProp(regularizer={"c_reg": 1.0})


# -- the Bellec et al. 2020 preset ------------------------------------------------------------------------
def test_bellec2020_preset_sets_the_papers_network_and_rule():
    from spikedyn.learning import bellec2020

    net = bellec2020.model(3, 10, 2, dt=1.0, neuron="alif")
    p = net.params
    assert (p.surrogate, p.slope, p.v_th, p.n_ref, net.self_connections) == ("triangle", 0.3, 0.6, 5, False)
    assert net.n_adaptive == 5 and abs(net.tau_adapt - 2000.0) < 1e-6
    import math

    beta = 1.7 * (1 - math.exp(-1 / 2000.0)) / (1 - math.exp(-1 / 20.0))
    assert abs(net.beta_adapt - beta) < 1e-9 and abs(net.beta_adapt - 0.0174) < 1e-3  # NEST's value
    assert torch.all(torch.diagonal(net.W_rec) == 0)
    coarse = bellec2020.model(3, 10, 2, dt=10.0)
    assert coarse.params.n_ref == 1 and coarse.refractory == 10.0  # at least one substep
    rule = EProp.bellec2020()
    assert isinstance(rule, EProp) and rule.config()["regularizer"] == {"strength": 1.0, "target": 10.0}
    assert EProp.bellec2020(feedback="random").feedback == "random"


@pytest.mark.parametrize("rule", ["eprop", "bptt"])
def test_no_self_connections_stay_zero_through_training(rule):
    from spikedyn.learning import bellec2020

    task = build_task("2af")
    torch.manual_seed(1)
    net = bellec2020.model(task.n_inputs, 12, task.n_outputs, dt=100.0, substeps=2, tau_mem=200.0, tau_out=100.0)
    r = EProp.bellec2020() if rule == "eprop" else make_rule("bptt", regularizer={"strength": 1.0, "target": 10.0})
    train(net, task, rule=r, steps=4, batch_size=8, lr=1e-2, eval_every=4, eval_trials=16, progress=False,
          weight_decay=1e-3)  # fmt: skip
    assert torch.all(torch.diagonal(net.W_rec.detach()) == 0) and float(net.W_rec.detach().abs().sum()) > 0


# -- RFLO's random feedback as Murray 2019: B ~ N(0, 1/n_out) ------------------------------------------------
def test_rflo_random_feedback_has_murrays_statistics_and_eprop_keeps_w_out_scale():
    from scipy import stats

    model = RateRNN(3, 500, 4).double()
    B = RFLO("random", seed=5).feedback_matrix(model)
    assert B.shape == (4, 500)
    x = B.flatten().numpy()
    assert abs(x.mean()) < 3 * (0.25 / x.size) ** 0.5  # mean 0 within 3 standard errors
    assert abs(x.var() / 0.25 - 1.0) < 4 * (2.0 / x.size) ** 0.5  # variance 1/n_out = 0.25 within 4 s.e.
    assert stats.kstest(x / 0.5, "norm").pvalue > 1e-3  # Gaussian
    old = RFLO("random", seed=5, feedback_std="w_out").feedback_matrix(model)  # the previous scale, kept
    assert abs(float(old.var()) * 500 - 1.0) < 0.1
    assert abs(float(EProp("random", seed=5).feedback_matrix(model).var()) * 500 - 1.0) < 0.1
    with pytest.raises(ValueError, match="feedback_std"):
        RFLO("random", feedback_std="murray")
