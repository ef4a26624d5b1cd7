"""full-FORCE (DePasquale et al. 2018, PLOS ONE) and its spiking form with a rate teacher
(DePasquale et al. 2016, arXiv:1601.07620).

**Rate student, random teacher (2018).** A second, randomly connected tanh network of the same size
(the *target-generating* network, recurrent weights ``J_D ~ N(0, g_D^2 / N)``) is driven by the task
input through the student's own ``W_in``, and by the target output ``d(t)`` and a hint ``h(t)``
through fixed random weights ``u_out``, ``u_hint`` (``U(-1, 1)``). Its recurrent currents

    c(t) = J_D f(x_D(t-1)) + u_out d(t) + u_hint h(t)

are what the student's recurrent currents ``W_rec f(x(t-1)) + b`` must become, so that the student
alone behaves like the driven teacher; the readout ``W_out f(x) + b_out`` must produce ``d(t)``.
Both are fitted online by recursive least squares (RLS) while the student runs with its current
weights. The hint is the target scaled by ``hint_scale`` (the task's only hint; DePasquale et al. use
task-specific hints). Where the task supervises only some steps (RDM/CDI: t = 0 and the last step),
``d(t)`` is the masked target interpolated linearly in time between the supervised steps (a ramp
from 0 to +-1 for RDM).

**Any student, trained teacher (2016).** With ``teacher=<trained RateRNN>`` there is no
target-generating network to build: the targets are the teacher's own recurrent currents
``W_rec^T f(x^T) + b^T`` on the same trials, and the readout target is the teacher's output. A rate
student of the same size then learns the teacher's dynamics (distillation); a ``SpikingRNN`` student
becomes a spiking twin of the teacher. The spiking student uses the rate-to-spike map of
``spikedyn.mirror`` (``f(x) ~= lam clip(k x + c, 0, 1)``, integrate-and-fire neurons with the rate
net's leak in the synaptic current): its input weights and bias are the mirror's, and its recurrent
weights are fitted so that ``W_rec^s rho(t)`` (``rho``: spikes per substep in step t) matches the
teacher's current in twin units ``du k W_rec^T f(x^T(t-1))``, and ``W_out^s rbar + b_out`` matches the
teacher's output. So ``mirror`` converts the recurrent weights; full-FORCE learns them from the
spikes the network actually emits.

**Batched RLS.** The B trials of a batch run in parallel; at each update step the B samples enter one
block RLS step (information form), which equals B sequential one-sample RLS steps exactly:

    P <- (P^-1 + R^T R)^-1,    W <- W - (W R^T - Y^T) R P

(``R [B, n]`` regressors, ``Y [B, m]`` targets). Started from ``P = I / rls_alpha`` and ``W_0``, RLS
holds the minimiser of ``sum_k |W r_k - y_k|^2 + rls_alpha |W - W_0|^2`` over all samples seen.

**Populations.** A ``Population`` of rate or spiking students trains in one batched pass: every tensor
gets a leading member axis (``P [E, n, n]``, ``W_rec [E, N, N]``, states ``[E, B, N]``), and the RLS
steps of all members are one batched solve. The teacher (random or trained), ``x0`` and any noise are
drawn once and shared (common random numbers), so member i ends exactly as the same network trained
alone on the same batches with the same seed.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .hebbian import rate_output, rate_step, rule_generator
from .rules import TrainingDiverged, batch_tensors, body_of, is_population, nonfinite_members

FILLS = ("linear", "next")
MIN_RLS_ALPHA = 1e-12  # P_0 = I / rls_alpha: below this the block RLS solve is ill-conditioned in float64


def rls_step(P: Tensor, W: Tensor, R: Tensor, Y: Tensor, forget: float = 1.0) -> tuple[Tensor, Tensor]:
    """One block RLS step: regressors ``R [B, n]``, targets ``Y [B, m]``, weights ``W [m, n]``,
    inverse correlation ``P [n, n]`` -> (P', W'). Equals B one-sample RLS steps applied in order.
    ``forget`` < 1 discounts the past by that factor per step: ``P'^-1 = forget P^-1 + R^T R``.
    Leading batch dimensions (a Population's members: ``P [E, n, n]``, ``R [E, B, n]``, ...) broadcast."""
    B, n = R.shape[-2:]
    if B <= n:  # Woodbury: a B x B solve
        PR = P @ R.mT  # [n, B]
        S = forget * torch.eye(B, dtype=P.dtype, device=P.device) + R @ PR
        K = torch.linalg.solve(S, PR.mT)  # [B, n] = S^-1 R P
        P_new = (P - PR @ K) / forget
    else:  # information form: an n x n inverse
        P_new = torch.linalg.inv(forget * torch.linalg.inv(P) + R.mT @ R)
    P_new = 0.5 * (P_new + P_new.mT)
    W_new = W - (W @ R.mT - Y.mT) @ R @ P_new
    return P_new, W_new


def dense_target(target: Tensor, mask: Tensor, fill: str = "linear") -> Tensor:
    """Fill the unsupervised steps of ``target [T, B, O]`` between the supervised ones (``mask > 0``):
    ``fill="linear"`` interpolates linearly in time, ``"next"`` takes the next supervised value (the
    value that is coming); held constant before the first and after the last."""
    if fill not in FILLS:
        raise ValueError(f"target fill must be one of {list(FILLS)}, got {fill!r}")
    T = target.shape[0]
    t = torch.arange(T, dtype=target.dtype, device=target.device)
    out = torch.empty_like(target)
    flat_t, flat_m = target.reshape(T, -1), mask.reshape(T, -1) > 0
    res = out.reshape(T, -1)
    for j in range(flat_t.shape[1]):
        idx = torch.nonzero(flat_m[:, j]).flatten()
        if len(idx) == 0:
            res[:, j] = 0.0
            continue
        known_t, known_v = t[idx], flat_t[idx, j]
        pos = torch.searchsorted(known_t, t).clamp(1, max(1, len(idx) - 1))
        if len(idx) == 1:
            res[:, j] = known_v[0]
            continue
        t0, t1 = known_t[pos - 1], known_t[pos]
        v0, v1 = known_v[pos - 1], known_v[pos]
        w = ((t - t0) / (t1 - t0)).clamp(0.0, 1.0)
        if fill == "next":
            w = (w > 0).to(w.dtype)
        res[:, j] = v0 + w * (v1 - v0)
    return res.reshape(target.shape)


def evidence_hint(batch: Any, coherence_max: float | None = None) -> Tensor:
    """A hint for the evidence-integration tasks (RDM, CDI, N-CDI): the running sum of the relevant
    noisy stream, ``sum_{s<=t} u_s / (T * coherence_max)`` (about +-1 at the end of a trial at the
    highest coherence; ``coherence_max``: the task's, default ``spikedyn.tasks.decision.COHERENCE_MAX``).
    Inputs are laid out as in ``spikedyn.tasks.decision``: ``[stream]`` or ``[context_1..N, stream_1..N]``.
    Returns ``[T, B, 1]``."""
    from spikedyn.tasks.decision import COHERENCE_MAX

    coherence_max = COHERENCE_MAX if coherence_max is None else float(coherence_max)
    u = torch.as_tensor(batch.inputs, dtype=torch.float64)
    T, B, I = u.shape
    if I == 1:
        stream = u[..., 0]
    else:
        ctx = torch.as_tensor(batch.meta["context"], dtype=torch.long)
        stream = u[:, torch.arange(B), I // 2 + ctx]
    return (torch.cumsum(stream, 0) / (T * coherence_max))[..., None]


def _augment(r: Tensor) -> Tensor:
    """``[r, 1]``: the regressor that fits a weight matrix and a bias together."""
    return torch.cat([r, torch.ones_like(r[..., :1])], dim=-1)


@dataclass
class FullForce:
    """full-FORCE by recursive least squares (see the module doc).

    Args:
        teacher: a trained ``RateRNN`` whose currents and output are the targets (DePasquale et al.
            2016); None = a random target-generating network driven by the target (2018).
        hint: "target" (the hint is the dense target ``d(t)``), "evidence" (``evidence_hint``: the running
            relevant evidence of RDM/CDI/N-CDI) or a function ``hint(batch) -> [T, B, H]``.
        teacher_gain: g_D of the random target-generating network, ``J_D ~ N(0, g_D^2 / N)``.
        target_scale: scale of the target input weights ``u_out ~ target_scale * U(-1, 1)``.
        hint_scale: the hint is scaled by this and enters through ``u_hint ~ U(-1, 1)`` (0 = none).
        rls_alpha: RLS regulariser, ``P_0 = I / rls_alpha`` (DePasquale et al.'s demo: 1).
        forget: RLS forgetting factor per update (1 = none, DePasquale et al.; < 1 lets the fit follow
            the student's changing trajectories).
        update_every: input steps between RLS updates (1 = every step).
        fit_from_ms: RLS updates only at t = 0 and from this time in the trial on (ms); McMahan et al.'s
            code (``FF_Demo.py``, ``errorTrigger``) fits from 200 of 750 ms. 0 = every step.
        train_readout: fit ``W_out``/``b_out`` by RLS (else only the recurrent weights learn).
        readout_on: "all" steps or only the supervised ("mask") steps for the readout fit (rate student).
        target_fill: how ``d(t)`` fills unsupervised steps: "linear" (interpolation) or "next" (the coming
            target); see ``dense_target``.
        zero_init: start the learned matrices (W_rec, W_out) at zero, as DePasquale et al.'s code does
            (default for a spiking student); otherwise RLS starts from the model's weights.
        percentile: activity percentile of the rate-to-spike map for relu/softplus teachers.
    """

    teacher: torch.nn.Module | None = None
    hint: str | Callable[[Any], Any] = "target"
    teacher_gain: float = 1.0
    target_scale: float = 1.0
    hint_scale: float = 1.0
    rls_alpha: float = 1.0
    forget: float = 1.0
    update_every: int = 1
    fit_from_ms: float = 0.0
    train_readout: bool = True
    readout_on: str = "all"
    target_fill: str = "linear"
    zero_init: bool | None = None
    percentile: float = 99.0

    name = "full_force"
    divergence_hint = "raise rls_alpha"  # what ``train`` adds to a TrainingDiverged of this rule
    trains_members = True  # a Population's members train as independent networks (rules.py doc)

    def __post_init__(self) -> None:
        if not 0 < self.forget <= 1:
            raise ValueError(f"full_force forget must be in (0, 1], got {self.forget}")
        if self.readout_on not in ("all", "mask"):
            raise ValueError(f"full_force readout_on must be 'all' or 'mask', got {self.readout_on!r}")
        if self.target_fill not in FILLS:
            raise ValueError(f"full_force target_fill must be one of {list(FILLS)}, got {self.target_fill!r}")
        if not (math.isfinite(self.rls_alpha) and self.rls_alpha >= MIN_RLS_ALPHA):
            raise ValueError(f"full_force rls_alpha (the RLS regulariser, P_0 = I / rls_alpha) must be a finite number "
                             f">= {MIN_RLS_ALPHA:g} (smaller ones break the solver in float64), got {self.rls_alpha}")
        if not self.fit_from_ms >= 0:
            raise ValueError(f"full_force fit_from_ms must be >= 0, got {self.fit_from_ms}")
        if int(self.update_every) != self.update_every or self.update_every < 1:
            raise ValueError(f"full_force update_every must be a positive integer, got {self.update_every}")
        if not (self.hint in ("target", "evidence") or callable(self.hint)):
            raise ValueError(f"full_force hint must be 'target', 'evidence' or a function of a batch: {self.hint!r}")
        if self.teacher is not None:
            from spikedyn.models import RateRNN

            if not isinstance(self.teacher, RateRNN):
                raise TypeError(f"full_force teacher must be a trained RateRNN, got {type(self.teacher).__name__}")

    def config(self) -> dict[str, Any]:
        keys = ("teacher_gain", "target_scale", "hint_scale", "rls_alpha", "forget", "update_every", "fit_from_ms",
                "train_readout", "readout_on", "target_fill", "zero_init", "percentile")
        cfg = {k: getattr(self, k) for k in keys if k != "fit_from_ms" or self.fit_from_ms}  # older runs resume
        cfg["teacher"] = None if self.teacher is None else self.teacher.config()
        if self.teacher is not None:  # its weights too: a resume with another trained teacher is refused
            from .checkpoint import state_digest

            cfg["teacher_weights_sha256"] = state_digest(self.teacher)
        cfg["hint"] = self.hint if isinstance(self.hint, str) else getattr(self.hint, "__name__", "custom")
        return {"name": self.name, **cfg}

    # -- protocol ---------------------------------------------------------------------------------
    def init_state(self, model: torch.nn.Module, task: Any, *, seed: int) -> dict:
        """Check shapes, build the random teacher (or map a trained one), set up the RLS matrices."""
        from spikedyn.models import RateRNN, SpikingRNN

        N, dev = model.n_hidden, model.device
        state: dict[str, Any] = {"seed": int(seed), "dt": float(getattr(task, "dt", getattr(model, "dt", 1.0)))}
        if getattr(task, "coherence_max", None) is not None:  # scales the evidence hint to this task's inputs
            state["coherence_max"] = float(task.coherence_max)
        g = rule_generator(seed, 2**31 - 1, dev)  # a stream no update step uses
        body = body_of(model)
        spiking = isinstance(body, SpikingRNN)
        if not (spiking or isinstance(body, RateRNN)):
            what = f"a Population of {type(body).__name__}" if body is not model else type(model).__name__
            raise TypeError(f"full_force trains a RateRNN or a SpikingRNN (or a Population of them), got {what}")
        if spiking and body.quantize:
            raise ValueError("full_force trains float spiking bodies; build the SpikingRNN with quantize=None")
        if isinstance(body, RateRNN) and body.activation != "tanh" and self.teacher is None:
            raise ValueError(
                f"full_force with a random teacher needs tanh units (McMahan et al. 2024: 1 + tanh failed "
                f"to train), got activation={body.activation!r}; use activation='tanh' (CLI: --model-param "
                "activation=tanh) or give a trained teacher"
            )
        zero_init = spiking if self.zero_init is None else self.zero_init
        if self.teacher is None:
            if spiking:
                raise ValueError(
                    "full_force on a SpikingRNN needs a rate teacher: rule=FullForce(teacher=<trained RateRNN>)"
                )
            kw = {"device": dev, "dtype": torch.float64, "generator": g}
            state["J_D"] = torch.randn(N, N, **kw) * (self.teacher_gain / math.sqrt(N))
            state["u_out"] = (2 * torch.rand(N, model.n_out, **kw) - 1) * self.target_scale
            state["u_hint"] = 2 * torch.rand(N, self._hint_width(model, task, seed), **kw) - 1
        else:
            T = self.teacher.to(dev)
            if (T.n_in, T.n_hidden, T.n_out) != (model.n_in, N, model.n_out):
                raise ValueError(
                    f"full_force teacher has sizes (in, hidden, out) = {(T.n_in, T.n_hidden, T.n_out)}, the "
                    f"student {(model.n_in, N, model.n_out)}; they must match"
                )
            with torch.no_grad():
                if spiking:
                    lam, k, c = self._spike_map(model, task, seed)
                    state["map"] = [lam, k, c]
                    du = body.params.du
                    model.W_in.copy_((du * k * T.W_in).expand_as(model.W_in))
                    model.b.copy_((k * T.b + c).expand_as(model.b))
                else:
                    model.W_in.copy_(T.W_in.expand_as(model.W_in))
        if zero_init:
            with torch.no_grad():
                model.W_rec.zero_()
                if self.train_readout:
                    model.W_out.zero_()
        # P_rec: regressor f(x(t-1)) (+ 1 when b learns; spikes: rho, no bias, it enters v directly);
        # P_out: regressor f(x(t)) or the filtered spikes rbar (+ 1 when b_out learns)
        n_rec = N + (0 if spiking or not isinstance(model.b, torch.nn.Parameter) else 1)
        n_out = N + (1 if isinstance(model.b_out, torch.nn.Parameter) else 0)
        lead = (model.size,) if is_population(model) else ()
        state["P_rec"] = (torch.eye(n_rec, dtype=torch.float64, device=dev) / self.rls_alpha).repeat(*lead, 1, 1)
        if self.train_readout:
            state["P_out"] = (torch.eye(n_out, dtype=torch.float64, device=dev) / self.rls_alpha).repeat(*lead, 1, 1)
        state["samples"] = 0
        return state

    def _hint_width(self, model: torch.nn.Module, task: Any, seed: int) -> int:
        if self.hint == "target":
            return model.n_out
        if self.hint == "evidence":
            return 1
        import numpy as np

        h = np.asarray(self.hint(task.sample(2, np.random.default_rng([seed, 78]))))
        if h.ndim != 3 or h.shape[1] != 2:
            raise ValueError(f"full_force hint(batch) must return [T, B, H], got shape {h.shape}")
        return int(h.shape[-1])

    def _spike_map(self, model: torch.nn.Module, task: Any, seed: int) -> tuple[float, float, float]:
        """(lam, k, c) of the rate-to-spike map: the student's own when ``mirror`` built it, else
        ``mirror``'s choice for the teacher's activation (calibrated on task trials for relu)."""
        import numpy as np

        from spikedyn.models.conversion import activation_linearisation

        if hasattr(model, "mirror_scale"):
            return tuple(float(v) for v in model.mirror_scale)
        calib = None
        if self.teacher.activation in ("relu", "softplus"):
            calib = torch.as_tensor(task.sample(256, np.random.default_rng([seed, 77])).inputs,
                                    dtype=self.teacher.dtype, device=model.device)
        return activation_linearisation(self.teacher, calib, self.percentile)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, batch: Any, state: dict, *, step: int) -> dict:
        """Run one batch of trials, fitting the weights by RLS as the student runs."""
        from spikedyn.models import SpikingRNN

        u, target, mask = batch_tensors(model, batch)
        g = rule_generator(state["seed"], step, model.device)
        try:
            if isinstance(body_of(model), SpikingRNN):
                rec = self._spiking_pass(model, u, target, mask, state, g)
            else:
                rec = self._rate_pass(model, u, target, mask, state, g, batch)
        except torch.linalg.LinAlgError as e:  # a singular RLS system: the fit broke down
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TrainingDiverged(f"full_force: the RLS solve failed at step {step} ({first})") from None
        for name in ("W_rec", "W_out"):
            w = getattr(model, name)
            if not torch.isfinite(w).all():
                bad = nonfinite_members(w) if is_population(model) else None
                raise TrainingDiverged(f"full_force: {name} became NaN/Inf at step {step}"
                                       f"{'' if bad is None else f' (members {bad})'}", members=bad)
        return rec

    # -- the two passes ---------------------------------------------------------------------------
    def _fit(self, state: dict, key: str, W: Tensor, b: Tensor | None, R: Tensor, Y: Tensor) -> None:
        """RLS step on ``W`` (and the bias ``b`` when given, with a constant regressor) fitting
        ``R [..., B, n] -> Y [..., B, m]``; updates the parameters in place and ``state[key]`` (P)."""
        R, Y = R.double(), Y.double()
        if b is None:
            state[key], Wn = rls_step(state[key], W.double(), R, Y, self.forget)
            W.copy_(Wn.to(W.dtype))
            return
        Wa = torch.cat([W.double(), b.double()[..., None]], dim=-1)
        state[key], Wa = rls_step(state[key], Wa, _augment(R), Y, self.forget)
        W.copy_(Wa[..., :-1].to(W.dtype))
        b.copy_(Wa[..., -1].to(b.dtype))

    @staticmethod
    def _learned(p: Tensor) -> Tensor | None:
        return p if isinstance(p, torch.nn.Parameter) else None

    def hint_signal(self, batch: Any, d: Tensor, coherence_max: float | None = None) -> Tensor:
        """The hint ``h [T, B, H]`` fed to the target-generating network: ``hint_scale * d(t)`` for
        ``hint="target"``, else ``hint_scale * hint(batch)`` (a function of the TaskBatch; the evidence hint
        divides by ``coherence_max``, the task's, recorded by ``init_state``)."""
        if self.hint == "target":
            return self.hint_scale * d
        if self.hint == "evidence":
            return self.hint_scale * evidence_hint(batch, coherence_max).to(d)
        return self.hint_scale * torch.as_tensor(self.hint(batch)).to(d)

    def _rate_pass(self, model, u, target, mask, state, g, batch_hint=None) -> dict:
        from spikedyn.models.rate import RateState, leaky_update

        T, B = u.shape[:2]
        body = body_of(model)
        x = body.init_state(B, g).x  # shared by a Population's members; [E, B, N] after the first step
        b, b_out = self._learned(model.b), self._learned(model.b_out)
        teach = self.teacher
        if teach is None:
            d = dense_target(target, mask, self.target_fill).double()
            J_D, u_out, u_hint = state["J_D"], state["u_out"], state["u_hint"]
            h = self.hint_signal(batch_hint, d, state.get("coherence_max"))
            x_T, W_in = x.double(), model.W_in.double()
        else:
            x_T = teach.init_state(B, g).x.to(model.dtype)
        err_rec = err_out = 0.0
        ys = []
        for t in range(T):
            r_s = body.f(x)
            if teach is None:  # the target-generating network, driven by the (dense) target and hint
                cur = torch.tanh(x_T) @ J_D.T + d[t] @ u_out.T + h[t] @ u_hint.T
                x_T = leaky_update(x_T, cur, u[t].double() @ W_in.mT, body.alpha)
                y_target = d[t]
            else:  # a trained teacher: its own recurrent currents and output
                cur = teach.f(x_T) @ teach.W_rec.T + teach.b
                x_T = teach.step(RateState(x_T), u[t])[0].x
                y_target = teach.output(RateState(x_T))
            learn = self._learns(t, state)
            if learn:
                bias = model.b[..., None, :]
                err_rec += float(((r_s @ model.W_rec.mT + bias - cur) ** 2).mean() / (cur**2).mean().clamp(min=1e-30))
                cur_fit = cur if b is not None else cur - bias  # a fixed bias: fit W_rec alone
                self._fit(state, "P_rec", model.W_rec, b, r_s, cur_fit)
                state["samples"] += B
            x = rate_step(model, x, u[t])
            y = rate_output(model, x)
            if learn and self.train_readout and (self.readout_on == "all" or bool(mask[t].any())):
                err_out += float(((y - y_target) ** 2).mean())
                y_fit = y_target if b_out is not None else y_target - model.b_out[..., None, :]
                self._fit(state, "P_out", model.W_out, b_out, body.f(x), y_fit)
            ys.append(y)
        n_up = max(1, sum(self._learns(t, state) for t in range(T)))
        return {**self._loss_record(model, torch.stack(ys, -3), target, mask), "current_rel_err": err_rec / n_up,
                "readout_mse": err_out / n_up}  # fmt: skip

    def _learns(self, t: int, state: dict) -> bool:
        """Whether step t is an RLS update step (``update_every``, ``fit_from_ms``)."""
        return t % self.update_every == 0 and (t == 0 or t * state.get("dt", 1.0) >= self.fit_from_ms)

    @staticmethod
    def _loss_record(model, y: Tensor, target: Tensor, mask: Tensor) -> dict:
        """The task's masked MSE (and each member's, for a Population) of outputs ``y [..., T, B, O]``."""
        per = (((y - target) ** 2) * mask).sum((-3, -2, -1)) / mask.sum().clamp(min=1)
        rec = {"loss": float(per.mean())}
        if is_population(model):
            rec["member_loss"] = per.tolist()
        return rec

    def _spiking_pass(self, model, u, target, mask, state, g) -> dict:
        from spikedyn.models.rate import RateState

        teach = self.teacher
        T, B = u.shape[:2]
        lam, k, c = state["map"]
        body, pop = body_of(model), is_population(model)
        du, S = body.params.du, body.substeps
        x_T = teach.init_state(B, g).x.to(model.dtype)
        s = model.spiking_state(B) if pop else model.init_state(B)

        b_out = self._learned(model.b_out)
        err_rec = err_out = 0.0
        n_spikes = 0.0
        ys = []
        for t in range(T):
            cur = du * k * (teach.f(x_T) @ teach.W_rec.T)  # the teacher's recurrent current per substep
            i_t = u[t] @ model.W_in.mT
            count = torch.zeros_like(s.z)
            for _ in range(S):  # the weights as they are now (RLS changes W_rec within the pass)
                s = model.substep(s, i_t)
                count = count + s.z
            rho = count / S  # spikes per substep in this step: the twin's estimate of f(x) / lam
            n_spikes += float(count.sum())
            x_T = teach.step(RateState(x_T), u[t])[0].x
            y_T = teach.output(RateState(x_T))
            if self._learns(t, state):
                err_rec += float(((rho @ model.W_rec.mT - cur) ** 2).mean() / (cur**2).mean().clamp(min=1e-30))
                self._fit(state, "P_rec", model.W_rec, None, rho, cur)
                if self.train_readout:
                    y_s = s.rbar @ model.W_out.mT + model.b_out[..., None, :]
                    err_out += float(((y_s - y_T) ** 2).mean())
                    self._fit(state, "P_out", model.W_out, b_out, s.rbar,
                              y_T - (0 if b_out is not None else model.b_out[..., None, :]))
                state["samples"] += B
            ys.append(s.rbar @ model.W_out.mT + model.b_out[..., None, :])
        n_up = max(1, sum(self._learns(t, state) for t in range(T)))
        E = model.size if pop else 1
        return {**self._loss_record(model, torch.stack(ys, -3), target, mask), "current_rel_err": err_rec / n_up,
                "teacher_output_mse": err_out / n_up,
                "spikes_per_unit_step": n_spikes / (T * B * model.n_hidden * E)}  # fmt: skip
