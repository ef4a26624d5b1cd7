"""Fused BPTT for ``SpikingRNN``: a forward loop without autograd and a hand-derived backward loop.

Autograd records ~10 small ops per neuron update; on a CPU, or a GPU at small batch, the bookkeeping
costs more than the arithmetic. This ``autograd.Function`` is a kernel of the one neuron map
(``spikedyn/hardware/neuron.py``): its forward loop repeats the map's float operations in the same order
(so the spikes are identical; ``tests/test_fused.py`` pins it to the map) under ``no_grad``, in place,
and keeps only what the backward needs: the membrane distance to threshold ``x = v - A`` per substep
(float) and the spikes ``z`` and not-refractory masks ``m`` as bytes (bool). The gradient is the adjoint
recursion below (reset detached, as in the autograd path):

    dr(s)  = g_r(s) + kappa dr(s+1)                                  readout filter
    dz(s)  = (1 - kappa) dr(s) + g_c(s) + W^T du(s+1) [unless truncated] + da(s+1)
    dx(s)  = dz(s) psi(x(s)) m(s)                                     m: not refractory
    dv(s)  = dx(s) + P_vv(s+1) dv(s+1)                                P = neuron.partials (the map's derivatives)
    du(s)  = dv(s) + P_uu du(s+1)
    da(s)  = -beta dx(s) + P_aa da(s+1)                               ALIF adaptation
    dW_rec = sum_s du(s)^T z(s-1),  d i_ext(t) = sum_(s in t) du(s),  db = sum_s dv(s)

Per substep the backward does one GEMM (``W^T du``) and a few in-place updates; ``psi(x)`` is computed for
all substeps at once before the loop, and ``dW_rec`` is one GEMM over all substeps and trials after it
(or the sparse sum over the spikes, ``kernels.py``). The recurrence ``z @ W^T`` of the forward is the
dense GEMM or, at low firing rates on the CPU, the sparse sum of the active neurons' columns
(``kernels.recurrence``; equal to round-off, ``tests/test_kernels.py``).

A leading member axis (``spikedyn.Population``): ``i_ext [T, E, B, N]``, ``W_rec [E, N, N]``, ``b`` and
``beta`` ``[E, 1, N]``; the dense kernels then run batched over members.

``tests/test_fused.py`` checks spikes and every gradient against the autograd loop in float64.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from spikedyn.hardware.neuron import partials

from .kernels import RECHECK, SPARSE_RATE, check_path, recurrence, use_sparse, weight_gradient
from .surrogate import pseudo_derivative, scalar
from .triton_support import run_triton, wants_triton


class Carry(NamedTuple):
    """The state ``forward_substeps`` carries between calls (tensors updated in place): u, v, the last
    spikes z (float), a, ref and the readout trace rbar, each ``[(E,)B,N]``."""

    u: Tensor
    v: Tensor
    z: Tensor
    a: Tensor
    ref: Tensor
    rbar: Tensor


class Substeps(NamedTuple):
    """What ``forward_substeps`` returns: x = v - A per substep (a list of ``[(E,)B,N]``), the spikes per
    substep ``zs`` (float with one substep: the same tensor as ``counts``; bool otherwise), the refractory
    masks (bool, or None), spike counts and rbar at each input step ``[T,(E,)B,N]``, and the carry."""

    xs: list[Tensor]
    zs: Tensor
    refr: Tensor | None
    counts: Tensor
    rbar: Tensor
    carry: Carry


def zero_carry(like: Tensor) -> Carry:
    return Carry(*(like.new_zeros(like.shape) for _ in range(6)))


def forward_substeps(p: Any, W_rec: Tensor, b: Tensor, beta: Tensor, i_ext: Tensor, substeps: int,
                     path: str = "auto", carry: Carry | None = None) -> Substeps:
    """The forward loop of the one neuron map, without autograd, over ``i_ext [T,(E,)B,N]`` (held for
    ``substeps`` substeps each) from ``carry`` (default: the zero state), which it updates in place."""
    T, shape = i_ext.shape[0], i_ext.shape[1:]
    K = substeps
    S = T * K
    if W_rec.dim() == 3:
        path = "dense"  # the sparse kernels are for one network
    u, v, zf, a, ref, rbar = zero_carry(i_ext[0]) if carry is None else carry
    xs = []  # x per substep: small tensors the allocator reuses (a fresh [S, B, N] costs page faults)
    # spikes per substep: with one substep they are the counts the forward returns anyway (float, what
    # the dW GEMM multiplies); with substeps, bytes. Refractory masks as bytes.
    counts = i_ext.new_zeros((T, *shape))
    zs = counts if K == 1 else torch.empty((S, *shape), dtype=torch.bool, device=i_ext.device)
    refr = torch.empty((S, *shape), dtype=torch.bool, device=i_ext.device) if p.n_ref else None
    raw_readout = p.kappa == 0.0 and K == 1  # rbar(t) = z(t): no filter state to carry
    rbar_t = None if raw_readout else i_ext.new_empty((T, *shape))
    # constants as 0-dim tensors: the map's float arithmetic without a scalar conversion per op
    decay_u, keep, v_th = scalar(1.0 - p.du, zf), scalar(1.0 - p.dv, zf), scalar(p.v_th, zf)
    rho, kappa = scalar(p.rho, zf), scalar(p.kappa, zf)
    WT = W_rec.mT
    zero_reset, adaptive, n_ref, syn = p.reset == "zero", p.adaptive, p.n_ref, p.du < 1.0
    subtract, decayed = p.reset == "subtract", p.reset == "subtract_decayed"
    sparse, s = False, 0
    for t in range(T):
        i_t = i_ext[t]
        for _ in range(K):
            # u = (1 - du) u + (i_ext + z @ W^T)   [u * 0 + cur == cur when du = 1]
            if s % RECHECK == 0:
                sparse = use_sparse(path, zf, SPARSE_RATE)
            cur = recurrence(zf, WT, sparse).add_(i_t)
            if syn:
                u.mul_(decay_u).add_(cur)
            else:
                u = cur
            if zero_reset:
                v.mul_(1.0 - zf)  # v (1 - z), as the map
            elif decayed:
                v.sub_(zf, alpha=p.v_th)  # subtracted before the leak
            v.mul_(keep).add_(u).add_(b)
            if subtract:
                v.sub_(zf, alpha=p.v_th)
            if adaptive:
                a.mul_(rho).add_(zf)
                x = torch.sub(v, (beta * a).add_(v_th))
            else:
                x = torch.sub(v, v_th)
            xs.append(x)
            # z = H(x) (strict >) as floats: sign(x) clamped at 0 (4x cheaper than bool -> float)
            zf = torch.sign(x, out=zs[s]) if K == 1 else torch.sign(x)
            zf.clamp_(min=0.0)
            if n_ref:
                zf.masked_fill_(torch.gt(ref, 0.0, out=refr[s]), 0.0)
                ref.sub_(1.0).clamp_(min=0.0).masked_fill_(zf > 0, float(n_ref))
            if K > 1:
                zs[s].copy_(zf)
                counts[t].add_(zf)
            if not raw_readout:
                rbar.mul_(kappa).add_(zf, alpha=1.0 - p.kappa)
            s += 1
        if rbar_t is not None:
            rbar_t[t] = rbar
    if raw_readout:
        rbar_t = counts.clone()
        rbar = rbar_t[-1].clone()
    # z: a copy (otherwise a view of the spike storage)
    return Substeps(xs, zs, refr, counts, rbar_t, Carry(u, v, zf.clone(), a, ref, rbar))


class FusedSpikingBPTT(torch.autograd.Function):
    """(i_ext [T,(E,)B,N], W_rec [(E,)N,N], b, beta) -> (rbar at each input step [T,(E,)B,N], spike counts
    [T,(E,)B,N], and the final u, v, z, a, ref [(E,)B,N] without gradient)."""

    @staticmethod
    def forward(ctx, i_ext: Tensor, W_rec: Tensor, b: Tensor, beta: Tensor, p: Any, substeps: int,
                truncated: bool, path: str = "auto") -> tuple[Tensor, ...]:  # type: ignore[override]
        out = forward_substeps(p, W_rec, b, beta, i_ext, substeps, path)
        zs, refr = out.zs, out.refr
        ctx.save_for_backward(zs, refr if refr is not None else zs.new_empty(0), W_rec, beta, *out.xs)
        ctx.p, ctx.substeps, ctx.truncated, ctx.b_shape = p, substeps, truncated, b.shape
        ctx.path = "dense" if W_rec.dim() == 3 else path
        final = tuple(out.carry[:5])
        ctx.mark_non_differentiable(*final)
        ctx.set_materialize_grads(False)
        return (out.rbar, out.counts, *final)

    @staticmethod
    def backward(ctx, g_rbar: Tensor, g_counts: Tensor, *_final: Tensor):  # type: ignore[override]
        zs, refr, W_rec, beta, *xs = ctx.saved_tensors
        p, K = ctx.p, ctx.substeps
        S, shape = len(xs), xs[0].shape
        T, N, dtype = S // K, shape[-1], xs[0].dtype
        batched = W_rec.dim() == 3
        x0 = xs[0]
        DV = x0.new_empty((S, *shape))
        DU = DV if p.du == 1.0 else x0.new_empty((S, *shape))  # du(s) = dv(s) without a synaptic current
        u_u = 1.0 - p.du
        zero = x0.new_zeros(shape)
        du_next, dv_next, da_next = zero, zero, zero
        dr = x0.new_zeros(shape) if p.kappa else None
        if g_rbar is None:  # set_materialize_grads(False): an output the loss does not use has no gradient
            g_rbar = x0.new_zeros((T, *shape))
        no_counts = g_counts is None
        for s in range(S - 1, -1, -1):
            t, k = divmod(s, K)
            last = k == K - 1
            # dz(s) from the readout and the spike counts, then through the recurrence and adaptation
            owned = True  # whether ``direct`` is a tensor of our own (not a view of the incoming gradient)
            if dr is None:
                if no_counts:
                    direct, owned = (g_rbar[t], False) if last else (zero, False)
                else:
                    direct, owned = (g_rbar[t] + g_counts[t], True) if last else (g_counts[t], False)
            else:
                if last:
                    dr.add_(g_rbar[t])
                direct = dr * (1.0 - p.kappa) if no_counts else torch.add(g_counts[t], dr, alpha=1.0 - p.kappa)
                dr.mul_(p.kappa)
            if ctx.truncated:
                dz = direct if owned else direct.clone()
            elif batched:
                dz = torch.baddbmm(direct, du_next, W_rec)
            else:
                dz = torch.addmm(direct, du_next, W_rec)
            if p.adaptive:
                dz.add_(da_next)
            dx = dz.mul_(pseudo_derivative(xs[s], p.surrogate, p.slope, p.v_th))  # per substep: in cache
            if p.n_ref:
                dx.masked_fill_(refr[s], 0.0)
            d = partials(p, zs[s].to(dtype) if p.reset == "zero" else None)  # of substep s + 1 w.r.t. s
            if p.reset == "zero":
                torch.addcmul(dx, d.v_v, dv_next, out=DV[s])
            else:
                torch.add(dx, dv_next, alpha=d.v_v, out=DV[s])
            if DU is not DV:
                torch.add(DV[s], du_next, alpha=u_u, out=DU[s])
            if p.adaptive:
                da_next = torch.addcmul(d.a_a * da_next, beta, dx, value=-1.0)
            du_next, dv_next = DU[s], DV[s]
        d_iext = DU if K == 1 else DU.view(T, K, *shape).sum(1)
        dW = None
        if ctx.needs_input_grad[1]:
            if S == 1:
                dW = torch.zeros_like(W_rec)
            elif batched:  # [S, E, B, N] -> per member: sum over substeps and trials
                du_m = DU[1:].transpose(0, 1).reshape(W_rec.shape[0], -1, N)
                dW = du_m.mT @ zs[:-1].transpose(0, 1).reshape(W_rec.shape[0], -1, N).to(dtype)
            else:
                dW = weight_gradient(DU[1:].reshape(-1, N), zs[:-1].reshape(-1, N), dtype, ctx.path)
        db = DV.sum(0).sum(-2).reshape(ctx.b_shape) if ctx.needs_input_grad[2] else None
        return d_iext, dW, db, None, None, None, None, None


def fused_rollout(model: Any, i_ext: Tensor, truncated: bool = False) -> tuple[Tensor, ...]:
    """(rbar at each input step, spike counts, final u, v, z, a, ref) of ``model`` (a SpikingRNN) driven by
    ``i_ext = W_in u`` from the zero state; ``model.spike_path`` picks the recurrence kernel."""
    path = check_path(getattr(model, "spike_path", "auto"))
    if path == "auto" and wants_triton(i_ext):  # the Triton kernels (triton_lif.py): CUDA, or SPIKEDYN_TRITON=on
        from .triton_lif import spiking_apply

        out = run_triton(lambda: spiking_apply(i_ext, model.W_rec_eff, model.b, model.beta, model.params,
                                               model.substeps, truncated))  # fmt: skip
        if out is not None:
            return out
    return FusedSpikingBPTT.apply(i_ext, model.W_rec_eff, model.b, model.beta, model.params, model.substeps,
                                  truncated, path)


def eval_rollout(model: Any, u: Tensor) -> tuple[Tensor, ...] | None:
    """``fused_rollout``'s outputs for inputs ``u [T, B, I]`` without gradients (``SpikingRNN(u)`` under
    ``torch.no_grad()``) by the Triton forward kernel with nothing stored for a backward
    (``triton_lif.forward_only``), where the kernels are wanted (``wants_triton``: CUDA, or SPIKEDYN_TRITON=on)
    and ``model.spike_path`` is "auto"; None elsewhere, or where the kernel failed under "auto" (warned once):
    the caller then runs the map's loop."""
    if check_path(getattr(model, "spike_path", "auto")) != "auto" or not wants_triton(u):
        return None
    from .triton_lif import forward_only

    return run_triton(lambda: forward_only(u @ model.W_in.T, model.W_rec_eff, model.b, model.beta, model.params,
                                           model.substeps))  # fmt: skip


def population_eval_rollout(p: Any, substeps: int, i_ext: Tensor, W_rec: Tensor, b: Tensor,
                            beta: Tensor) -> tuple[Tensor, Tensor, Any] | None:
    """``fused_population_rollout`` without gradients (a spiking ``Population(u)`` under ``torch.no_grad()``) by
    the forward-only kernel, member axis, where the kernels are wanted; None elsewhere or after a failure under
    "auto" (the caller then runs the map's loop)."""
    from spikedyn.hardware.neuron import SpikingState

    if not wants_triton(i_ext):
        return None
    from .triton_lif import forward_only

    out = run_triton(lambda: forward_only(i_ext.transpose(0, 1), W_rec, b, beta, p, substeps))
    if out is None:
        return None
    rbar, counts, *final = out
    empty = final[0].new_zeros((0, *final[0].shape))
    return counts.transpose(0, 1), rbar.transpose(0, 1), SpikingState(*final, rbar[-1], empty, empty)


def fused_population_rollout(p: Any, substeps: int, i_ext: Tensor, W_rec: Tensor, b: Tensor,
                             beta: Tensor) -> tuple[Tensor, Tensor, Any]:
    """A ``Population`` of SpikingRNNs in the fused kernel: ``i_ext [E, T, B, N]``, ``W_rec [E, N, N]``,
    ``b``, ``beta [E, 1, N]`` -> (spike counts, rbar ``[E, T, B, N]``, final ``SpikingState [E, B, N]``)."""
    from spikedyn.hardware.neuron import SpikingState

    args = (i_ext.transpose(0, 1), W_rec, b, beta, p, substeps, False)
    out = None
    if wants_triton(i_ext):  # the Triton kernels, a member axis in their grid (triton_lif.py)
        from .triton_lif import spiking_apply

        out = run_triton(lambda: spiking_apply(*args))
    rbar, counts, *final = FusedSpikingBPTT.apply(*args, "dense") if out is None else out
    empty = final[0].new_zeros((0, *final[0].shape))
    return counts.transpose(0, 1), rbar.transpose(0, 1), SpikingState(*final, rbar[-1].detach(), empty, empty)


def fused_supported(model: Any) -> bool:
    """The fused path covers every float configuration except extra synaptic delays, a learnable path
    through the reset, NIR's ``v_leak``/``v_reset`` and a custom initial state (the caller checks the last)."""
    p = model.params
    return (p.delay_rec == 0 and p.delay_in == 0 and p.detach_reset and not p.v_leak and not p.v_reset
            and getattr(model, "quantize", None) is None)
