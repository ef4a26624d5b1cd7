"""Fused BPTT for ``SpikingRNN``: a forward loop without autograd and a hand-derived backward loop.

Autograd records ~10 small ops per neuron update; on a CPU, or a GPU at small batch, the bookkeeping
costs more than the arithmetic. This ``autograd.Function`` is a kernel of the one neuron map
(``spikedyn/hardware/neuron.py``): its forward loop repeats the map's float operations in the same order
(so the spikes are identical; ``tests/test_fused.py`` pins it to the map) under ``no_grad``, keeps
only the membrane distance to threshold ``x = v - A`` and the spikes ``z`` per substep,
and computes the gradient with the adjoint recursion below (reset detached, as in the autograd path):

    dr(s)  = g_r(s) + kappa dr(s+1)                                  readout filter
    dz(s)  = (1 - kappa) dr(s) + g_c(s) + W^T du(s+1) [unless truncated] + da(s+1)
    dx(s)  = dz(s) psi(x(s)) m(s)                                     m: not refractory
    dv(s)  = dx(s) + P_vv(s+1) dv(s+1)                                P = neuron.partials (the map's derivatives)
    du(s)  = dv(s) + P_uu du(s+1)
    da(s)  = -beta dx(s) + P_aa da(s+1)                               ALIF adaptation
    dW_rec += du(s)^T z(s-1),  d i_ext(t) += du(s),  db += dv(s)

``tests/test_fused.py`` checks spikes and every gradient against the autograd loop in float64.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from spikedyn.hardware.neuron import partials

from .surrogate import pseudo_derivative


class FusedSpikingBPTT(torch.autograd.Function):
    """(i_ext [T,B,N], W_rec [N,N], b [N], beta [N]) -> (rbar at each input step [T,B,N], counts [T,B,N],
    and the final u, v, z, a, ref [B,N] without gradient)."""

    @staticmethod
    def forward(ctx, i_ext: Tensor, W_rec: Tensor, b: Tensor, beta: Tensor, p: Any, substeps: int,
                truncated: bool) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        T, B, N = i_ext.shape
        S = T * substeps
        zeros = i_ext.new_zeros(B, N)
        u, v, z, a, ref, rbar = zeros, zeros, zeros, zeros, zeros, zeros
        xs = i_ext.new_empty(S, B, N)
        zs = i_ext.new_empty(S, B, N)
        ms = i_ext.new_empty(S, B, N) if p.n_ref else None
        rbar_t, counts = i_ext.new_empty(T, B, N), i_ext.new_zeros(T, B, N)
        decay_u, decay_v = 1.0 - p.du, 1.0 - p.dv
        WT = W_rec.T
        s = 0
        for t in range(T):
            for _ in range(substeps):
                u = u * decay_u + (i_ext[t] + z @ WT)
                if p.reset == "zero":
                    v = (v * (1.0 - z)) * decay_v + u + b
                else:
                    v = v * decay_v + u + b - p.v_th * z
                if p.adaptive:
                    a = p.rho * a + z
                    x = v - (p.v_th + beta * a)
                else:
                    x = v - p.v_th
                z = (x > 0).to(x.dtype)
                if p.n_ref:
                    m = (ref <= 0).to(x.dtype)
                    z = z * m
                    ref = torch.where(z > 0, torch.full_like(ref, p.n_ref), (ref - 1).clamp(min=0))
                    ms[s] = m
                rbar = p.kappa * rbar + (1.0 - p.kappa) * z
                xs[s], zs[s] = x, z
                counts[t] += z
                s += 1
            rbar_t[t] = rbar
        ctx.save_for_backward(xs, zs, ms if ms is not None else zs.new_empty(0), W_rec, beta)
        ctx.p, ctx.substeps, ctx.truncated = p, substeps, truncated
        final = (u, v, z, a, ref)
        ctx.mark_non_differentiable(*final)
        return (rbar_t, counts, *final)

    @staticmethod
    def backward(ctx, g_rbar: Tensor, g_counts: Tensor, *_final: Tensor):  # type: ignore[override]
        xs, zs, ms, W_rec, beta = ctx.saved_tensors
        p, K = ctx.p, ctx.substeps
        S, B, N = xs.shape
        T = S // K
        d_iext = xs.new_zeros(T, B, N)
        dW = torch.zeros_like(W_rec)
        db = xs.new_zeros(N)
        dr = xs.new_zeros(B, N)
        du_next = xs.new_zeros(B, N)  # du(s+1)
        dv_next = xs.new_zeros(B, N)  # dv(s+1)
        da_next = xs.new_zeros(B, N)  # da(s+1)
        for s in range(S - 1, -1, -1):
            t, last = divmod(s, K)
            if last == K - 1:
                dr = dr + g_rbar[t]
            dz = (1.0 - p.kappa) * dr + g_counts[t]
            if not ctx.truncated:
                dz = dz + du_next @ W_rec
            if p.adaptive:
                dz = dz + da_next
            dx = dz * pseudo_derivative(xs[s], p.surrogate, p.slope, p.v_th)
            if p.n_ref:
                dx = dx * ms[s]
            d = partials(p, zs[s])  # of substep s + 1 w.r.t. substep s (the map's one definition)
            dv_s = dx + d.v_v * dv_next
            du_s = dv_s + d.u_u * du_next
            if p.adaptive:
                da_next = -beta * dx + d.a_a * da_next
            if s > 0:
                dW += du_s.T @ zs[s - 1]
            d_iext[t] += du_s
            db += dv_s.sum(0)
            dr = p.kappa * dr
            du_next, dv_next = du_s, dv_s
        return d_iext, dW, db, None, None, None, None


def fused_rollout(model: Any, i_ext: Tensor, truncated: bool = False) -> tuple[Tensor, ...]:
    """(rbar at each input step, spike counts, final u, v, z, a, ref) of ``model`` (a SpikingRNN) driven by
    ``i_ext = W_in u`` from the zero state."""
    return FusedSpikingBPTT.apply(i_ext, model.W_rec_eff, model.b, model.beta, model.params, model.substeps,
                                  truncated)


def fused_supported(model: Any) -> bool:
    """The fused path covers every float configuration except extra synaptic delays, a learnable path
    through the reset, NIR's ``v_leak``/``v_reset`` and a custom initial state (the caller checks the last)."""
    p = model.params
    return (p.delay_rec == 0 and p.delay_in == 0 and p.detach_reset and not p.v_leak and not p.v_reset
            and getattr(model, "quantize", None) is None)
