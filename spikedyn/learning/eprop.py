"""Online e-prop (Bellec et al. 2020) for LIF/ALIF networks and RFLO (Murray 2019) for leaky rate units.

Both rules run the network forward in time once, under ``torch.no_grad()``, carry eligibility traces
in closed form and add ``learning signal x trace`` to the gradient at every step: nothing of the
trajectory is stored, so memory does not grow with the sequence length T. The estimate they compute
is the *truncated* gradient of Liu et al. (App. B, Eq. 8): the gradient of the task loss when each
neuron's recurrent input from the other neurons is treated as a constant while the neuron's own leak,
reset, refractoriness and adaptation are differentiated. With symmetric feedback it equals, to
round-off, what autograd gives through ``model(u, detach_recurrent=True)`` (``tests/test_eprop.py``
checks this in float64 for rate, LIF and ALIF units, with refractoriness, mse and cross-entropy).

Notation: ``s`` is a neuron update (substep), ``t`` an input step; ``P = I + N + 1`` presynaptic
signals per neuron: the inputs ``x``, the recurrent spikes/rates and a constant 1 for the bias, so that
``W_in``, ``W_rec`` and ``b`` share one trace tensor (columns ``[:I]``, ``[I:I+N]``, ``[-1]``).

Learning signal (both rules): ``L_j(s) = sum_k B_kj dLoss/dy_k(s)`` with ``dLoss/dy`` in closed form
(``losses.loss_and_error``; for mse ``2 (y - y*) mask / mask.sum()``), and ``B [O, N]`` the feedback
matrix: ``W_out`` (symmetric), a fixed random matrix (random e-prop) or a matrix that follows
``W_out``'s updates with weight decay (adaptive, Kolen-Pollack; see ``EProp``). The readout
parameters ``W_out``, ``b_out`` always get their exact gradient.

Spiking units (``SpikingRNN``; state ``u, v, a`` per neuron, see ``models/spiking.py``). With the
per-substep constants ``du, dv, rho, beta_j, v_th, kappa`` and ``psi_j(s)`` the pseudo-derivative
of ``z_j(s)`` w.r.t. ``v_j(s) - A_j(s)`` (the model's surrogate; 0 on refractory substeps):

    eps_u(s)     = (1 - du) eps_u(s-1) + pre(s)            synaptic current (du = 1: = pre; bias column: 1)
    eps_a_ji(s)  = psi_j(s-1) eps_v_ji(s-1) + (rho - beta_j psi_j(s-1)) eps_a_ji(s-1)
    eps_v_ji(s)  = Dvv_j(s) eps_v_ji(s-1) + Dva_j(s) eps_a_ji(s-1) + eps_u_i(s)
    e_ji(s)      = psi_j(s) (eps_v_ji(s) - beta_j eps_a_ji(s))               eligibility trace
    ebar_ji(s)   = kappa ebar_ji(s-1) + (1 - kappa) e_ji(s)                  filtered by the readout leak
    grad_ji     += sum_batch L_j(s) ebar_ji(s)                               at substeps the loss sees

``Dvv = 1 - dv`` and ``Dva = 0`` for the subtractive reset with the reset detached (the model's
default, e-prop's LIF); the zero reset gives ``Dvv = (1 - dv)(1 - z_j(s-1))`` and an undetached reset
adds the reset's own surrogate path. With the subtractive detached reset ``eps_v`` depends on the
presynaptic neuron only (``[B, P]``), for LIF and ALIF units alike. With the zero reset it is gated by each
neuron's own spikes and carried per neuron, in chunks too (``_flush_gated``: the adjoint of the pair
``(eps_v, eps_a)`` through each chunk). Only an undetached reset and synaptic delays make the rollout step
``[N, B, P]`` traces substep by substep.

Factorised LIF traces (subtractive detached reset, no adaptation): ``e_ji(s) = psi_j(s) eps_v_i(s)`` is
an outer product, so nothing ``[N, B, P]`` is formed per substep. The substeps are taken in chunks of
``C`` (``TRACE_CHUNK``); within a chunk ``eps_v [C, B, P]``, ``q = (1 - kappa) psi [C, B, N]`` and the
learning signals ``L [C, B, N]`` (0 where the loss does not look) are kept, and at the chunk's end, with
``E = ebar`` at the chunk's start and ``Lrev(c) = sum_(c' >= c) kappa^(c'-c) L(c')`` (exact algebra, only
the order of the sums differs):

    grad  += sum_(c, b) (Lrev q)_bj(c) eps_bi(c)  +  kappa sum_b Lrev_bj(0) E_bji      (two GEMMs)
    E     <- kappa^C E + sum_c kappa^(C-1-c) q(c) (x) eps(c)                          (one batched GEMM)

so the ``[B, N, P]`` filtered trace is touched once per chunk instead of three times per substep, and
memory stays independent of T. Without the readout filter (``kappa = 0``) ``E`` is not needed at all.

Factorised ALIF traces (subtractive detached reset, adaptation): ``eps_v [B, P]`` is still shared, but
``eps_a_ji`` is a filter of it whose gain ``g_j(s) = rho - beta_j psi_j(s)`` depends on the postsynaptic
neuron, so ``A = eps_a [B, N, P]`` must be carried; it is never stepped substep by substep. Within a chunk
every quantity the rule needs is a linear functional ``F = sum_c W(c) e(c)`` of the chunk's traces (the
gradient: ``W = (1 - kappa) Lrev``; the new filtered trace ``E``: ``W = (1 - kappa) kappa^(C-1-c)``; the
regulariser: ``W = 1``), or the new ``A`` itself. Substituting ``eps_a`` and running its adjoint backwards
through the chunk on ``[B, N]`` tensors (exact algebra),

    omega(c) = W(c) psi(c),   lam(c) = omega(c) + g(c) lam(c + 1)   (lam(C) = 0)
    F = sum_(r = -1)^(C-1) [omega(r) - beta psi(r) lam(r + 1)] (x) eps_v(r)  -  beta g(-1) lam(0) A(-1)

(``r = -1``: the previous chunk's last substep, ``omega(-1) = 0``), so the gradient is one GEMM over
``(r, b)`` and ``E``, ``A`` each one batched GEMM per chunk plus one scaling (``_flush_adaptive``).

Rate units (``RateRNN``, state ``x``, ``r = f(x)``): ``x_i(t) = (1-a) x_i(t-1) + a (W_rec r(t-1) + W_in
u(t) + b) + noise``, so with ``a = alpha``

    P_i(t)   = (1 - a) P_i(t-1) + a pre_i(t),   pre = [u(t), r(t-1), 1]     (RFLO's trace; leak shared)
    grad_ji += sum_batch L_j(t) f'(x_j(t)) P_i(t)

Our state variable is the pre-activation ``x``, so ``f'`` multiplies the learning signal where it meets
the trace; Murray writes the same rule for the rate ``h = f(x)``, with ``f'`` inside the trace.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from spikedyn.hardware.neuron import not_refractory, partials, threshold_distance

from ..models.fused import fused_supported
from ..models.rate import RateRNN, activation_derivative, leaky_update
from ..models.spiking import _XP, SpikingRNN, delay_line
from ..models.surrogate import pseudo_derivative
from ..models.triton_support import run_triton, wants_triton
from .losses import LOSSES, loss_and_error, loss_normaliser
from .regularizers import as_regularizer, online_term
from .rules import LearningRule, register_rule

FEEDBACKS = ("symmetric", "random", "adaptive")
# substeps per chunk of the factorised traces (module doc), measured with benchmarks/eprop_chunk.py
# (docs/benchmarks.md). Traces carried per neuron (ALIF's eps_a, the zero reset's eps_v: a batched GEMM each per
# chunk) gain from longer chunks (ALIF, 64: 1.27x faster than 32); the subtractive LIF gains 10% at 64 but its
# chunk buffers then double e-prop's extra memory, so it keeps 32.
TRACE_CHUNK = 32
TRACE_CHUNK_CARRIED = 64
FEEDBACK_SCALES = ("w_out", "murray2019")


def feedback_scale(spec: float | str, n_out: int, n_hidden: int) -> float:
    """The std of random feedback ``B [O, N]``: a number, "w_out" (``1/sqrt(N)``, ``W_out``'s init scale) or
    "murray2019" (``1/sqrt(n_out)``: ``B ~ N(0, 1/n_out)``, Murray 2019)."""
    if spec == "w_out":
        return 1.0 / math.sqrt(n_hidden)
    if spec == "murray2019":
        return 1.0 / math.sqrt(n_out)
    return float(spec)


# -- loss, one step at a time (the one loss-gradient helper, ``losses.loss_and_error``) ---------------------
step_loss_and_error = loss_and_error  # kept name: one step's share of the loss and its gradient


# -- the rules ------------------------------------------------------------------------------------
@register_rule("eprop")
class EProp(LearningRule):
    """Online e-prop: eligibility traces x broadcast learning signal, memory independent of T.

    Works on ``SpikingRNN`` (LIF, ALIF, mixed; refractoriness; subtract or zero reset; ``du <= 1``;
    synaptic delays; ``substeps >= 1``, where the loss sees ``y`` at the last substep of each input
    step) and on ``RateRNN`` (where it is RFLO). Exclude self-connections (``self_connections=False``)
    to match Bellec et al.; with them the self-loop is truncated like any other recurrent input.

    Args:
        feedback: how the learning signal reaches the neurons.
            "symmetric": ``B = W_out`` (the truncated gradient itself).
            "random": a fixed random ``B ~ N(0, feedback_std^2)``, drawn once from ``seed``
            (random e-prop / RFLO's feedback alignment).
            "adaptive": Kolen-Pollack as in the e-prop TIMIT code: ``B`` starts random and receives
            the same update as ``W_out``, and both decay by ``feedback_decay`` per training step, so
            ``B - W_out`` shrinks by ``(1 - feedback_decay)`` each step and ``B`` aligns with
            ``W_out``. The rule cannot see the optimiser, so each call first applies the previous
            step's pending update: ``B <- (1 - d) (B + (W_out - W_out_prev))`` and ``W_out <- (1 - d)
            W_out`` (in place), where ``W_out_prev`` is ``W_out`` as the previous call left it.
        feedback_std: std of the random/adaptive ``B``: a number, "w_out" (``1/sqrt(N)``, ``W_out``'s init
            scale; EProp's default) or "murray2019" (``B ~ N(0, 1/n_out)``, Murray 2019; RFLO's default).
        feedback_decay: the shared weight decay ``d`` of adaptive feedback (TIMIT code: 1e-2).
        seed: seeds the random feedback matrix (the same seed gives the same ``B``).
        regularizer: firing-rate regularisation (``spikedyn.learning.regularizers``; a
            ``FiringRateRegularizer``, a dict of its fields, or None = off): its gradient goes through the
            same eligibility traces (Bellec et al. 2020).

    The rule object keeps the feedback matrix (``feedback_weights``, layout ``[O, N]`` like
    ``W_out``) for the model it was first used with; use a new object for a differently sized model.
    """

    def __init__(
        self,
        feedback: str = "symmetric",
        feedback_std: float | str | None = None,
        feedback_decay: float = 1e-2,
        seed: int = 0,
        regularizer: Any = None,
    ) -> None:
        if feedback not in FEEDBACKS:
            raise ValueError(f"unknown feedback {feedback!r}; choose one of {list(FEEDBACKS)}")
        if isinstance(feedback_std, str) and feedback_std not in FEEDBACK_SCALES:
            raise ValueError(f"feedback_std must be a number or one of {list(FEEDBACK_SCALES)}, got {feedback_std!r}")
        if isinstance(feedback_std, (int, float)) and feedback_std <= 0:
            raise ValueError(f"feedback_std must be > 0, got {feedback_std}")
        if not 0.0 <= feedback_decay < 1.0:
            raise ValueError(f"feedback_decay must be in [0, 1), got {feedback_decay}")
        self.feedback, self.feedback_std, self.feedback_decay, self.seed = (
            feedback, feedback_std, float(feedback_decay), int(seed))  # fmt: skip
        self.regularizer = as_regularizer(regularizer)
        self.feedback_weights: Tensor | None = None
        self._w_out_prev: Tensor | None = None

    def config(self) -> dict[str, Any]:
        out = {"name": self.name, "feedback": self.feedback, "feedback_std": self.feedback_std,
               "feedback_decay": self.feedback_decay, "seed": self.seed}  # fmt: skip
        if self.regularizer is not None:
            out["regularizer"] = self.regularizer.config()
        return out

    @classmethod
    def bellec2020(cls, feedback: str = "symmetric", **kwargs: Any) -> EProp:
        """e-prop as Bellec et al. 2020 train with it: firing-rate regularisation toward 10 Hz (``c_reg = 1``);
        build the network with ``spikedyn.learning.bellec2020.model`` (module doc there)."""
        from .bellec2020 import rule

        return rule(feedback=feedback, cls=cls, **kwargs)

    default_feedback_scale = "w_out"

    # -- feedback ---------------------------------------------------------------------------------
    def feedback_matrix(self, model: torch.nn.Module) -> Tensor:
        """``B [O, N]`` for this call (applies the pending Kolen-Pollack step for adaptive feedback)."""
        W = model.W_out
        if self.feedback == "symmetric":
            return W.detach()
        O, N = W.shape
        if self.feedback_weights is None:
            std = feedback_scale(self.feedback_std or self.default_feedback_scale, O, N)
            gen = torch.Generator().manual_seed(self.seed)
            self.feedback_weights = (torch.randn(O, N, generator=gen, dtype=torch.float64) * std).to(W)
            self._w_out_prev = W.detach().clone()
        elif self.feedback_weights.shape != W.shape:
            raise ValueError(
                f"this {self.name} rule holds feedback weights for a {tuple(self.feedback_weights.shape)} "
                f"readout, the model's is {tuple(W.shape)}: use a new rule object per model"
            )
        B = self.feedback_weights.to(W)
        if self.feedback == "adaptive":
            with torch.no_grad():
                d = self.feedback_decay
                B = (1.0 - d) * (B + (W - self._w_out_prev.to(W)))
                W.mul_(1.0 - d)
                self._w_out_prev = W.detach().clone()
        self.feedback_weights = B
        return B

    # -- gradient ---------------------------------------------------------------------------------
    def loss_and_gradients(
        self, model: torch.nn.Module, u: Tensor, target: Tensor, mask: Tensor, loss: str = "mse"
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if not isinstance(model, (RateRNN, SpikingRNN)):
            raise ValueError(f"{self.name} supports RateRNN and SpikingRNN, not {type(model).__name__}")
        if getattr(model, "quantize", None):
            raise ValueError(f"{self.name} needs the float model: quantize={model.quantize!r} is inference only")
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
        u = model._check_input(u)
        target = torch.as_tensor(target).to(device=model.device, dtype=model.dtype)
        mask = torch.as_tensor(mask).to(device=model.device, dtype=model.dtype)
        want = (u.shape[0], u.shape[1], model.n_out)
        if tuple(target.shape) != want or tuple(mask.shape) != want:
            raise ValueError(f"target and mask must have shape {want} [T, B, O], got "
                             f"{tuple(target.shape)} and {tuple(mask.shape)}")  # fmt: skip
        B_fb = self.feedback_matrix(model)
        with torch.no_grad():
            if isinstance(model, RateRNN):
                value, grads = rflo_rollout(model, u, target, mask, loss, B_fb, self.regularizer)
            else:
                value, grads = eprop_rollout(model, u, target, mask, loss, B_fb, self.regularizer)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        return value, {n: g for n, g in grads.items() if n in names}


@register_rule("rflo")
class RFLO(EProp):
    """Random-feedback local online learning (Murray 2019) for leaky rate units (``RateRNN``).

    The same online rule as ``EProp`` on rate units; the default feedback is symmetric (the
    truncated gradient, as in Liu et al.); ``RFLO(feedback="random")`` is Murray's random feedback,
    ``B ~ N(0, 1/n_out)`` by default (``feedback_std="murray2019"``; "w_out" gives EProp's ``1/sqrt(N)``).
    Arguments as ``EProp``.
    """

    default_feedback_scale = "murray2019"

    def loss_and_gradients(self, model, u, target, mask, loss="mse"):
        if not isinstance(model, RateRNN):
            hint = ("one network at a time: train the members one by one (no --population) or use bptt"
                    if getattr(model, "kind", "") == "population" else f"use EProp for {type(model).__name__}")
            raise ValueError(f"RFLO is for rate units (RateRNN), {hint}")
        return super().loss_and_gradients(model, u, target, mask, loss)


# -- the online rollouts --------------------------------------------------------------------------
def _split(model: torch.nn.Module, G: Tensor) -> dict[str, Tensor]:
    """Split the ``[N, I + N + 1]`` gradient into ``W_in``, ``W_rec``, ``b``."""
    I = model.n_in
    N = model.n_hidden
    return {"W_in": G[:, :I].contiguous(), "W_rec": G[:, I : I + N].contiguous(), "b": G[:, -1].contiguous()}


def _active_steps(mask: Tensor) -> list[bool]:
    """Which input steps the loss sees at all (one host sync; skipped steps cost no learning work)."""
    return mask.reshape(mask.shape[0], -1).ne(0).any(dim=1).tolist()


def rflo_rollout(
    model: RateRNN, u: Tensor, target: Tensor, mask: Tensor, kind: str, B_fb: Tensor, reg: Any = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """RFLO / rate e-prop: loss and gradient estimate in one forward pass (module doc)."""
    T, Bsz, I = u.shape
    N, a = model.n_hidden, model.alpha
    f, W_in, W_rec, b, W_out, b_out = model.f, model.W_in, model.W_rec, model.b, model.W_out, model.b_out
    norm = loss_normaliser(mask, kind)
    active = _active_steps(mask)
    x = model.init_state(Bsz).x
    trace = x.new_zeros(Bsz, I + N + 1)  # P_i(t), shared by every postsynaptic unit (common leak)
    pre = x.new_zeros(Bsz, I + N + 1)
    pre[:, -1] = 1.0
    G = x.new_zeros(N, I + N + 1)
    gW_out, gb_out, value = torch.zeros_like(W_out), torch.zeros_like(b_out), x.new_zeros(())
    noise_scale = model.noise_scale
    reg_term = online_term(reg, model, x)  # firing-rate regulariser (regularizers.py): every step counts
    for t in range(T):
        r_prev = f(x)
        pre[:, :I] = u[t]
        pre[:, I : I + N] = r_prev
        trace.mul_(1.0 - a).add_(pre, alpha=a)
        x = leaky_update(x, r_prev @ W_rec.T, u[t] @ W_in.T + b, a)
        if noise_scale > 0:
            x = x + noise_scale * torch.randn(x.shape, device=x.device, dtype=x.dtype)
        if reg_term is not None:
            reg_term.add_rate(f(x), activation_derivative(model.activation, x), trace)
        if not active[t]:
            continue
        r = f(x)
        step_value, err = loss_and_error(r @ W_out.T + b_out, target[t], mask[t], kind, norm)
        value += step_value
        gW_out += err.T @ r
        gb_out += err.sum(0)
        G += ((err @ B_fb) * activation_derivative(model.activation, x)).T @ trace
    if reg_term is not None:
        value = reg_term.finish(T, Bsz, value, G)
    return value, {**_split(model, G), "W_out": gW_out, "b_out": gb_out}


def own_jacobian(p: Any, state: Any, psi_prev: Tensor, beta: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """``dv(s)/dv(s-1)`` and ``dv(s)/da(s-1)`` [B, N] of each neuron's own update, through its own spike
    ``z(s-1)`` too (from the map's ``partials``; None: the constant ``1 - dv`` and 0 of the detached
    subtractive reset). ``psi_prev`` is the surrogate of ``z(s-1)``."""
    d = partials(p, state.z, state.v)
    if d.v_z is None:  # reset detached: only the leak (gated by z(s-1) for reset="zero")
        return (None if p.reset == "subtract" else d.v_v), None
    return d.v_v + d.v_z * psi_prev, -(d.v_z * beta * psi_prev)


def _flush_factorised(G: Tensor, E: Tensor | None, eps: Tensor, q: Tensor, L: Tensor | None, kappa: float,
                      seen: bool = True) -> None:
    """Add one chunk of factorised LIF traces to ``G [N, P]`` and carry the filtered trace ``E [B, N, P]``
    (module doc): ``eps [C, B, P]``, ``q = (1 - kappa) psi [C, B, N]``, learning signals ``L [C, B, N]``
    (``seen=False``: all zero or None, only E moves on)."""
    C, Bsz, N = q.shape
    P = eps.shape[-1]
    if E is None:  # kappa = 0: e_ji = psi_j eps_i, seen at once
        if seen:
            G.addmm_((L * q).reshape(C * Bsz, N).T, eps.reshape(C * Bsz, P))
        return
    powers = kappa ** torch.arange(C, dtype=torch.float64)
    w = q * powers.flip(0).to(q)[:, None, None]  # kappa^(C - 1 - c) q(c)
    if not seen:
        E.baddbmm_(w.permute(1, 2, 0), eps.transpose(0, 1), beta=kappa**C)
        return
    Lrev = _reverse_filter(L, kappa)
    G.addmm_((Lrev * q).reshape(C * Bsz, N).T, eps.reshape(C * Bsz, P))
    # what E (ebar before the chunk) contributes: sum_c kappa^(c + 1) L(c) = kappa Lrev(0)
    G.add_(torch.einsum("bj,bji->ji", Lrev[0], E), alpha=kappa)
    E.baddbmm_(w.permute(1, 2, 0), eps.transpose(0, 1), beta=kappa**C)


def _reverse_filter(L: Tensor, kappa: float) -> Tensor:
    """``Lrev(c) = sum_(c' >= c) kappa^(c' - c) L(c')`` for ``L [C, ...]``: one GEMM with the upper-triangular
    Toeplitz matrix of the powers (what the readout filter makes of the learning signals of a chunk)."""
    C = L.shape[0]
    lag = torch.arange(C)[None, :] - torch.arange(C)[:, None]
    tri = torch.where(lag >= 0, kappa ** lag.clamp(min=0).double(), 0.0).to(L)
    return (tri @ L.reshape(C, -1)).reshape(L.shape)


def _functional_weights(psi: Tensor, L: Tensor | None, E: Tensor | None, kappa: float, reg: Tensor | None,
                        picks: int) -> tuple[list[str], Tensor | None, Tensor]:
    """The functionals ``F = sum_c W(c) e(c)`` a chunk of ``_flush_adaptive`` / ``_flush_gated`` feeds, and
    their ``omega(c) = W(c) psi(c)``: ``"G"`` (the gradient, weights the learning signals ``L``, filtered
    backwards by ``kappa`` when the trace ``E`` is carried), ``"E"`` (the filtered trace, weights
    ``(1 - kappa) kappa^(C - 1 - c)``), ``"R"`` (the regulariser, weight 1). Returns (their names in order,
    ``Lrev0`` = the reverse-filtered ``L`` at substep 0 or None, ``om [F + picks, C, B, N]``) where the
    ``picks`` rows after the functionals are zero but ``om[F, C - 1] = 1`` (the pick of a carried trace)."""
    C, Bsz, N = psi.shape
    weights: dict[str, Tensor | None] = {}
    Lrev0 = None
    if L is not None:
        if E is not None:
            Lrev = _reverse_filter(L, kappa)
            Lrev0 = Lrev[0].clone()
            weights["G"] = Lrev.mul_(1.0 - kappa)
        else:
            weights["G"] = L
    if E is not None:
        powers = ((1.0 - kappa) * kappa ** torch.arange(C - 1, -1, -1, dtype=torch.float64)).to(psi)
        weights["E"] = powers[:, None, None]
    if reg is not None:
        weights["R"] = None
    F = len(weights)
    om = psi.new_empty(F + picks, C, Bsz, N)
    for f, W in enumerate(weights.values()):
        if W is None:
            om[f].copy_(psi)
        else:
            torch.mul(W, psi, out=om[f])
    om[F:].zero_()
    om[F, C - 1] = 1.0
    return list(weights), Lrev0, om


def _flush_adaptive(G: Tensor, E: Tensor | None, A: Tensor, ev: Tensor, psi: Tensor, psi_prev: Tensor,
                    ev_prev: Tensor, L: Tensor | None, kappa: float, rho: float, beta: Tensor,
                    reg: Tensor | None) -> None:
    """Add one chunk of ALIF traces to ``G [N, P]`` (and ``sum_(b, c) e(c)`` to ``reg [N, P]``, the
    regulariser's), and move the filtered trace ``E [B, N, P]`` and the adaptation trace ``A = eps_a
    [B, N, P]`` (in place) from the previous chunk's last substep to this chunk's (module doc, "Factorised
    ALIF traces"). ``ev [C, B, P]``: the shared ``eps_v`` of the chunk's substeps; ``psi [C, B, N]``;
    ``psi_prev [B, N]`` and ``ev_prev [B, P]``: psi and eps_v at the previous chunk's last substep;
    ``L [C, B, N]``: the learning signals (None: the loss looks at no substep of the chunk)."""
    C, Bsz, N = psi.shape
    P = ev.shape[-1]
    g = psi * -beta + rho  # g(c) = rho - beta psi(c): d eps_a(c + 1) / d eps_a(c)
    g_prev = psi_prev * -beta + rho
    # the functionals F = sum_c W(c) e(c) the chunk feeds: weights W [C, B, N] on e(c) (None: W = 1)
    # omega(c) = W(c) psi(c) per functional; the last row picks eps_a at the chunk's last substep
    weights, Lrev0, om = _functional_weights(psi, L, E, kappa, reg, picks=1)
    F = len(weights)
    # the adjoint of eps_a, backwards through the chunk: lam[i] = sum_(c >= i) omega(c) prod_(i <= m < c) g(m)
    lam = psi.new_empty(F + 1, C + 1, Bsz, N)
    lam[:, C] = 0.0
    for i in range(C - 1, -1, -1):
        torch.addcmul(om[:, i], g[i], lam[:, i + 1], out=lam[:, i])
    # weights on eps_a at the previous chunk's last substep (e-functionals: through -beta)
    on_a = lam[:, 0] * g_prev
    on_a[:F].mul_(-beta)
    # weights on eps_v(r), r = -1 .. C-1: omega(r) - beta psi(r) lam(r + 1) for e-functionals; the pick: psi lam
    nu = lam.mul_(torch.cat([psi_prev[None], psi]))
    nu[:F].mul_(-beta)
    nu[:F, 1:].add_(om[:F])
    evX = torch.cat([ev_prev[None], ev])  # [C + 1, B, P]
    rows, per_trial = evX.reshape(-1, P), evX.transpose(0, 1)  # [(C + 1) B, P] and [B, C + 1, P]
    idx = {name: f for f, name in enumerate(weights)}
    for name, out in (("G", G), ("R", reg)):
        if name in idx:
            out.addmm_(nu[idx[name]].reshape(-1, N).T, rows)
            out.add_(torch.einsum("bj,bji->ji", on_a[idx[name]], A))
    if Lrev0 is not None:  # what E (ebar before the chunk) contributes: sum_c kappa^(c + 1) L(c) E
        G.add_(torch.einsum("bj,bji->ji", Lrev0, E), alpha=kappa)
    if E is not None:  # E <- kappa^C E + sum_c kappa^(C - 1 - c) (1 - kappa) e(c), before A moves on
        f = idx["E"]
        E.mul_(kappa**C).addcmul_(A, on_a[f][:, :, None])
        E.baddbmm_(nu[f].permute(1, 2, 0), per_trial)
    A.mul_(on_a[F][:, :, None]).baddbmm_(nu[F].permute(1, 2, 0), per_trial)


def _flush_gated(G: Tensor, E: Tensor | None, V: Tensor, A: Tensor | None, d: Tensor, D: Tensor, psi: Tensor,
                 psi_prev: Tensor, L: Tensor | None, kappa: float, rho: float, beta: Tensor,
                 reg: Tensor | None) -> None:
    """``_flush_adaptive`` for traces whose ``eps_v`` depends on the postsynaptic neuron through its own
    leak, ``eps_v_ji(c) = D_j(c) eps_v_ji(c-1) + d_i(c)`` (the zero reset: ``D = (1 - dv)(1 - z_j(c-1))``),
    with or without adaptation (``A`` None: LIF). Carries ``V = eps_v``, ``A = eps_a`` and ``E = ebar``
    ``[B, N, P]`` from the previous chunk's last substep to this chunk's, in place. ``d [C, B, P]``: the shared
    drive (presynaptic signals or synaptic current); ``D, psi [C, B, N]``; ``L`` as ``_flush_adaptive``.

    The adjoint of the pair ``(eps_v, eps_a)`` runs backwards through the chunk on ``[B, N]`` tensors:
    ``mu_v(c) = om_v(c) + D(c+1) mu_v(c+1) + psi(c) mu_a(c+1)``, ``mu_a(c) = om_a(c) + g(c) mu_a(c+1)``, with
    ``om_v = W psi``, ``om_a = -beta W psi`` for a functional ``sum_c W(c) e(c)`` and a unit ``om`` at the last
    substep for the carried traces; then ``F = sum_c mu_v(c) (x) d(c) + (D(0) mu_v(0) + psi(-1) mu_a(0)) V(-1)
    + g(-1) mu_a(0) A(-1)`` (exact algebra)."""
    C, Bsz, N = psi.shape
    picks = ["V", "A"] if A is not None else ["V"]
    # om_v; om_a = -beta om_v for the e-functionals. Row F picks eps_v(C - 1); eps_a's pick enters through mu_a
    weights, Lrev0, om = _functional_weights(psi, L, E, kappa, reg, picks=len(picks))
    F = len(weights)
    n = F + len(picks)
    mu_v = psi.new_empty(n, C, Bsz, N)
    mu_v[:, C - 1] = om[:, C - 1]
    if A is not None:
        g = psi * -beta + rho
        om_a = om * -beta
        om_a[F:].zero_()
        om_a[F + 1, C - 1] = 1.0
        mu_a = psi.new_empty(n, C, Bsz, N)
        mu_a[:, C - 1] = om_a[:, C - 1]
        for c in range(C - 2, -1, -1):
            torch.addcmul(om_a[:, c], g[c], mu_a[:, c + 1], out=mu_a[:, c])
            torch.addcmul(om[:, c], D[c + 1], mu_v[:, c + 1], out=mu_v[:, c]).addcmul_(psi[c], mu_a[:, c + 1])
        on_v = (D[0] * mu_v[:, 0]).addcmul_(psi_prev, mu_a[:, 0])
        on_a = mu_a[:, 0] * (psi_prev * -beta + rho)
    else:
        for c in range(C - 2, -1, -1):
            torch.addcmul(om[:, c], D[c + 1], mu_v[:, c + 1], out=mu_v[:, c])
        on_v, on_a = D[0] * mu_v[:, 0], None
    P = d.shape[-1]
    rows, per_trial = d.reshape(-1, P), d.transpose(0, 1)  # [C B, P] and [B, C, P]
    idx = {name: f for f, name in enumerate([*weights, *picks])}

    def carried(f: int) -> Tensor:  # sum_b of the carried traces' share in functional f, [N, P]
        out = torch.einsum("bj,bji->ji", on_v[f], V)
        return out if A is None else out.add_(torch.einsum("bj,bji->ji", on_a[f], A))

    for name, out in (("G", G), ("R", reg)):
        if name in idx:
            out.addmm_(mu_v[idx[name]].reshape(-1, N).T, rows).add_(carried(idx[name]))
    if Lrev0 is not None:
        G.add_(torch.einsum("bj,bji->ji", Lrev0, E), alpha=kappa)
    if E is not None:
        f = idx["E"]
        E.mul_(kappa**C).addcmul_(V, on_v[f][:, :, None])
        if A is not None:
            E.addcmul_(A, on_a[f][:, :, None])
        E.baddbmm_(mu_v[f].permute(1, 2, 0), per_trial)
    if A is not None:  # before V moves on: the new eps_a reads the old eps_v
        f = idx["A"]
        A.mul_(on_a[f][:, :, None]).addcmul_(V, on_v[f][:, :, None]).baddbmm_(mu_v[f].permute(1, 2, 0), per_trial)
    f = idx["V"]
    V.mul_(on_v[f][:, :, None]).baddbmm_(mu_v[f].permute(1, 2, 0), per_trial)


def _leaky_filter(d: Tensor, keep: float, prev: Tensor) -> Tensor:
    """``out[c] = keep out[c-1] + d[c]`` with ``out[-1] = prev``, for ``d [C, ...]``, as one GEMM with the
    lower-triangular Toeplitz matrix of the powers ``keep^(c - c')`` (exact algebra)."""
    C = d.shape[0]
    lag = torch.arange(C)[:, None] - torch.arange(C)[None, :]
    tri = torch.where(lag >= 0, keep ** lag.clamp(min=0).double(), 0.0).to(d)
    first = (keep ** torch.arange(1, C + 1, dtype=torch.float64)).to(d)
    out = (tri @ d.reshape(C, -1)).reshape(d.shape)
    return out.add_(first.reshape(C, *([1] * (d.dim() - 1))) * prev)


def _chunk_forward(p: Any, W_rec: Tensor, b: Tensor, beta: Tensor, i_ext: Tensor, substeps: int, path: str,
                   carry: Any) -> Any:
    """One chunk of the chunked rollout's forward from ``carry``: the Triton forward kernel
    (``models/triton_lif.forward_substeps``) where the kernels are wanted (``wants_triton``: CUDA under
    ``SPIKEDYN_TRITON=auto``, any device under ``=on``) and ``spike_path`` is ``"auto"``, with the same
    fall-back on a kernel failure as every Triton call (``run_triton``); else ``models/fused.forward_substeps``."""
    from ..models.fused import forward_substeps

    if path == "auto" and wants_triton(i_ext):
        from ..models.triton_lif import forward_substeps as triton_forward_substeps

        out = run_triton(lambda: triton_forward_substeps(p, W_rec, b, beta, i_ext, substeps, carry))
        if out is not None:
            return out
    return forward_substeps(p, W_rec, b, beta, i_ext, substeps, path, carry)


def _eprop_chunked(model: SpikingRNN, u: Tensor, target: Tensor, mask: Tensor, kind: str, B_fb: Tensor,
                   chunk: int, reg: Any = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Chunked LIF / ALIF e-prop (detached subtractive or zero reset) on the fused kernel's forward loop
    (``models/fused.forward_substeps``, or the Triton forward kernel: ``_chunk_forward``), one chunk of input
    steps at a time: the chunk's spikes, ``x = v - A`` and refractory masks come from the forward, then every
    trace of the chunk is computed at once (``_leaky_filter``; ``_flush_factorised`` for LIF,
    ``_flush_adaptive`` for ALIF, ``_flush_gated`` for the zero reset)."""
    from ..models.fused import zero_carry

    p, K = model.params, model.substeps
    T, Bsz, I = u.shape
    N, P, O = model.n_hidden, model.n_in + model.n_hidden + 1, model.n_out
    W_in, W_out, b_out = model.W_in, model.W_out, model.b_out
    W_rec, b, beta, path = model.W_rec_eff, model.b, model.beta.to(u), getattr(model, "spike_path", "auto")
    adaptive = p.adaptive and bool((beta != 0).any())
    gated = p.reset == "zero"  # eps_v gated by each neuron's own spikes: carried [B, N, P] (_flush_gated)
    kappa, keep = p.kappa, 1.0 - p.dv
    norm = loss_normaliser(mask, kind)
    active = _active_steps(mask)
    Ct = max(1, int(chunk) // K)  # input steps per chunk
    carry = zero_carry(u.new_zeros(Bsz, N))
    eps_v, eps_u = u.new_zeros(Bsz, P), u.new_zeros(Bsz, P)
    V = u.new_zeros(Bsz, N, P) if gated else None  # eps_v per neuron at the last substep of the previous chunk
    E = u.new_zeros(Bsz, N, P) if kappa > 0 else None
    A = u.new_zeros(Bsz, N, P) if adaptive else None  # eps_a at the last substep of the previous chunk
    psi_prev = u.new_zeros(Bsz, N)
    G = u.new_zeros(N, P)
    gW_out, gb_out, value = torch.zeros_like(W_out), torch.zeros_like(b_out), u.new_zeros(())
    reg_term = online_term(reg, model, u)  # firing-rate regulariser (regularizers.py): every substep counts
    for t0 in range(0, T, Ct):
        u_c = u[t0 : t0 + Ct]
        n_t = u_c.shape[0]
        z_last = carry.z.clone()
        out = _chunk_forward(p, W_rec, b, beta, u_c @ W_in.T, K, path, carry)
        carry, S_c = out.carry, n_t * K
        zs = out.zs if K == 1 else out.zs.to(u.dtype)
        # presynaptic signals of each substep: [x(t), z(s - 1), 1]
        pre = u.new_empty(S_c, Bsz, P)
        pre[:, :, :I] = u_c.repeat_interleave(K, dim=0)
        pre[0, :, I : I + N] = z_last
        pre[1:, :, I : I + N] = zs[:-1]
        pre[:, :, -1] = 1.0
        drive = pre
        if p.du < 1.0:  # synaptic current; the bias enters v directly
            drive = _leaky_filter(pre, 1.0 - p.du, eps_u)
            drive[:, :, -1] = 1.0
            eps_u = drive[-1].clone()
        if not gated:
            eps = _leaky_filter(drive, keep, eps_v)
            ev_prev, eps_v = eps_v, eps[-1].clone()
        psi = pseudo_derivative(torch.stack(out.xs), p.surrogate, p.slope, p.v_th)
        if out.refr is not None:
            psi.masked_fill_(out.refr, 0.0)
        if reg_term is not None and not (adaptive or gated):  # the chunk's substeps and trials at once
            reg_term.add_spiking(zs.reshape(-1, N), psi.reshape(-1, N), eps.reshape(-1, P), None, beta)
        elif reg_term is not None:  # its sum_(b, s) e_ji goes through the flush below
            reg_term.activity += zs.reshape(-1, N).sum(0)
        # the loss sees y at the last substep of each input step
        rbar = out.rbar
        step_value, err = loss_and_error(rbar @ W_out.T + b_out, target[t0 : t0 + n_t], mask[t0 : t0 + n_t],
                                         kind, norm)  # fmt: skip
        value += step_value
        gW_out += err.reshape(-1, O).T @ rbar.reshape(-1, N)
        gb_out += err.sum((0, 1))
        seen = any(active[t0 : t0 + n_t])
        L = None
        if seen and K == 1:
            L = err @ B_fb
        elif seen:
            L = u.new_zeros(S_c, Bsz, N)
            L[K - 1 :: K] = err @ B_fb
        reg_deriv = None if reg_term is None else reg_term.deriv
        if gated:  # D(s) = (1 - dv)(1 - z(s - 1))
            D = torch.sub(1.0, pre[:, :, I : I + N]).mul_(keep)
            _flush_gated(G, E, V, A, drive, D, psi, psi_prev, L, kappa, p.rho, beta, reg_deriv)
            psi_prev = psi[-1]
        elif adaptive:
            _flush_adaptive(G, E, A, eps, psi, psi_prev, ev_prev, L, kappa, p.rho, beta, reg_deriv)
            psi_prev = psi[-1]
        else:
            _flush_factorised(G, E, eps, psi.mul_(1.0 - kappa), L, kappa, seen)
    return _finish(model, value, G, gW_out, gb_out, reg_term, T, Bsz)


def _finish(model: Any, value: Tensor, G: Tensor, gW_out: Tensor, gb_out: Tensor, reg_term: Any, T: int,
            Bsz: int) -> tuple[Tensor, dict[str, Tensor]]:
    """The end of both e-prop rollouts: add the firing-rate term, split ``G`` into the parameters' gradients,
    and keep a no-self-connection network's diagonal at zero."""
    if reg_term is not None:
        value = reg_term.finish(T, Bsz, value, G)
    grads = {**_split(model, G), "W_out": gW_out, "b_out": gb_out}
    if not model.self_connections:
        grads["W_rec"] = grads["W_rec"] * model.rec_mask
    return value, grads

def eprop_rollout(
    model: SpikingRNN, u: Tensor, target: Tensor, mask: Tensor, kind: str, B_fb: Tensor, reg: Any = None,
    chunk: int | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """e-prop for LIF/ALIF: loss and gradient estimate in one forward pass (module doc). ``chunk``:
    substeps per chunk of the factorised LIF/ALIF traces (None: ``TRACE_CHUNK``, or ``TRACE_CHUNK_CARRIED``
    for ALIF and the zero reset)."""
    p = model.params
    T, Bsz, I = u.shape
    N, P = model.n_hidden, model.n_in + model.n_hidden + 1
    W_in, W_out, b_out = model.W_in, model.W_out, model.b_out
    beta = model.beta.to(u)
    adaptive = p.adaptive and bool((beta != 0).any())  # only then does a(s) reach the spikes
    v_post = p.reset == "zero" or not p.detach_reset  # does eps_v's decay depend on the neuron?
    factorised = not v_post and not adaptive  # e_ji = psi_j eps_i (module doc)
    if chunk is None:
        chunk = TRACE_CHUNK_CARRIED if adaptive or p.reset == "zero" else TRACE_CHUNK
    if fused_supported(model) and (not v_post or p.reset == "zero"):  # LIF and ALIF in chunks (module doc)
        return _eprop_chunked(model, u, target, mask, kind, B_fb, chunk, reg)
    kappa, dv = p.kappa, p.dv
    norm = loss_normaliser(mask, kind)
    active = _active_steps(mask)

    state = model.init_state(Bsz)
    psi_prev = u.new_zeros(Bsz, N)  # psi of the previous substep (z(-1) = 0 has no gradient)
    pre = u.new_zeros(Bsz, P)
    pre[:, -1] = 1.0
    x_buf = u.new_zeros(p.delay_in, Bsz, I)  # raw inputs on the delayed input path
    eps_u = u.new_zeros(Bsz, P) if p.du < 1.0 else None
    eps_v = u.new_zeros(N, Bsz, P) if v_post else u.new_zeros(Bsz, P)
    eps_v_n = eps_v if v_post else eps_v[None]  # the same storage, viewed as [N or 1, B, P]
    eps_a = u.new_zeros(N, Bsz, P) if adaptive else None
    ebar = u.new_zeros(N, Bsz, P) if not factorised else None
    if factorised:  # chunk buffers and the carried filtered trace E [B, N, P]
        C = max(1, min(int(chunk), T * model.substeps))
        eps_c, q_c, L_c = u.new_zeros(C, Bsz, P), u.new_zeros(C, Bsz, N), u.new_zeros(C, Bsz, N)
        E = u.new_zeros(Bsz, N, P) if kappa > 0 else None
        c, seen = 0, False  # substeps in the chunk; whether the loss looks at any of them
    beta_t = beta[:, None, None]  # [N, 1, 1]: broadcast over [N, B, P]
    G = u.new_zeros(N, P)
    gW_out, gb_out, value = torch.zeros_like(W_out), torch.zeros_like(b_out), u.new_zeros(())
    reg_term = online_term(reg, model, u)  # firing-rate regulariser (regularizers.py): every substep counts

    for t in range(T):
        i_ext = u[t] @ W_in.T
        for k in range(model.substeps):
            # presynaptic signals of this substep, exactly those the neuron update uses
            x_now, x_buf = delay_line(x_buf, u[t])
            pre[:, :I] = x_now
            pre[:, I : I + N] = state.z_buf[0] if p.delay_rec else state.z
            drive = pre
            if eps_u is not None:
                eps_u.mul_(1.0 - p.du).add_(pre)
                eps_u[:, -1] = 1.0  # the bias enters v directly, not through the synaptic current
                drive = eps_u
            # eps_a and eps_v take one step with the neuron's own Jacobian at the previous substep
            dvv, dva = own_jacobian(p, state, psi_prev, beta)
            psi_p = psi_prev.T[:, :, None]  # [N, B, 1]
            eps_a_old = eps_a.clone() if (adaptive and dva is not None) else eps_a
            if adaptive:  # in place; uses eps_v of the previous substep
                eps_a.mul_(p.rho - beta_t * psi_p).addcmul_(psi_p, eps_v_n)
            eps_v.mul_(1.0 - dv if dvv is None else dvv.T[:, :, None])
            if adaptive and dva is not None:
                eps_v.addcmul_(dva.T[:, :, None], eps_a_old)
            eps_v.add_(drive)
            # the neuron update itself (the model's own code), then this substep's psi
            ref_prev = state.ref
            state = model.substep(state, i_ext)
            psi = pseudo_derivative(threshold_distance(p, state.v, state.a, beta), p.surrogate, p.slope, p.v_th)
            psi = psi * not_refractory(p, _XP, ref_prev, psi.dtype)
            # eligibility trace e = psi (eps_v - beta eps_a), filtered by the readout leak
            if ebar is not None:
                psi_n = psi.T[:, :, None]
                ebar.mul_(kappa).addcmul_(psi_n, eps_v_n, value=1.0 - kappa)
                if adaptive:
                    ebar.addcmul_(psi_n * beta_t, eps_a, value=-(1.0 - kappa))
            else:  # factorised: keep this substep's eps and psi in the chunk
                eps_c[c] = eps_v
                torch.mul(psi, 1.0 - kappa, out=q_c[c])
                L_c[c].zero_()
            psi_prev = psi
            if reg_term is not None:  # sum_b e_ji = psi_j (eps_v - beta_j eps_a), unfiltered
                reg_term.add_spiking(state.z, psi, eps_v, eps_a if adaptive else None, beta)
            looks = k == model.substeps - 1 and active[t]  # the loss sees y at the last substep of a step
            if looks:
                y = state.rbar @ W_out.T + b_out
                step_value, err = loss_and_error(y, target[t], mask[t], kind, norm)
                value += step_value
                gW_out += err.T @ state.rbar
                gb_out += err.sum(0)
                signal = err @ B_fb  # [B, N]
                if ebar is not None:
                    G += torch.bmm(signal.T[:, None, :], ebar)[:, 0, :]
                else:
                    L_c[c] = signal
                    seen = True
            if ebar is None:
                c += 1
                if c == C or (t == T - 1 and k == model.substeps - 1):
                    _flush_factorised(G, E, eps_c[:c], q_c[:c], L_c[:c], kappa, seen)
                    c, seen = 0, False
    return _finish(model, value, G, gW_out, gb_out, reg_term, T, Bsz)
