"""Triton kernels of the leaky ``RateRNN`` rollout: the forward in one launch, the BPTT backward in one
launch (plus one GEMM for ``dW_rec``), with the same layout as ``triton_lif.py`` (one persistent program
per member and block of trials, tiles of neurons, ``tl.debug_barrier`` between steps; ``W`` held in
registers when one tile covers all neurons).

The map (``rate.leaky_update``, in its operation order), for k = 0 .. T-1 with ``X[-1] = x0``:

    X[k] = (1 - alpha) X[k-1] + alpha (f(X[k-1]) @ W^T + d[k]) [+ xi[k]]      d = W_in u + b (autograd outside)

and its adjoint, ``lam[k] = dL/dX[k]`` from the incoming ``g[k]`` (``r = f(X)`` is taken outside, so
autograd has already applied ``f'`` to the output's gradient):

    lam[k] = g[k] + (1 - alpha) lam[k+1] + alpha f'(X[k]) (lam[k+1] @ W)      (the last term: not truncated)
    dL/dd[k] = alpha lam[k],   dL/dxi[k] = lam[k],   dW = alpha sum_k lam[k]^T f(X[k-1])

Activations: ``tanh``, ``relu``, ``shifted_tanh`` (``2 sigmoid(2x)``, as ``rate.shifted_tanh``) and
``softplus`` (linear above 20, as torch's), computed in the kernel from ``exp``; ``detach_recurrent`` (the
RFLO / e-prop truncation) drops the recurrent term of the adjoint.
"""
from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl
from torch import Tensor

from .triton_lif import BB, _dot_rows_w, _precision, _program_block, _resident_w, _tiles
from .triton_support import launcher, run_triton_backward, triton_mode

ACT_CODE = {"tanh": 0, "relu": 1, "shifted_tanh": 2, "softplus": 3}


def _rate_forward(X0, D, XI, W, X, T, E, Bsz, N, alpha,  # noqa: N803
                  BB: tl.constexpr, BN: tl.constexpr, ACT: tl.constexpr, HAS_NOISE: tl.constexpr,
                  W_RESIDENT: tl.constexpr, PREC: tl.constexpr):
    e, rows, rmask, rk = _program_block(Bsz, BB, BN)
    NB = Bsz * N
    w_base = e.to(tl.int64) * N * N
    x0_base = e.to(tl.int64) * NB
    a = tl.load(alpha)
    if W_RESIDENT:
        wT = _resident_w(W, w_base, N, BN, 1)
    for k in range(0, T):
        koff = (k * E + e).to(tl.int64) * NB
        poff = ((k - 1) * E + e).to(tl.int64) * NB
        for j0 in range(0, N, BN):
            cols = j0 + rk
            cmask = cols < N
            m2 = rmask[:, None] & cmask[None, :]
            loc = rows[:, None] * N + cols[None, :]
            rec = tl.zeros([BB, BN], dtype=X.dtype.element_ty)
            for k0 in range(0, N, BN):
                kk = k0 + rk
                km = rmask[:, None] & (kk[None, :] < N)
                kloc = rows[:, None] * N + kk[None, :]
                if k == 0:
                    xp = tl.load(X0 + x0_base + kloc, mask=km, other=0.0)
                else:
                    xp = tl.load(X + poff + kloc, mask=km, other=0.0)
                if ACT == 0:
                    r = 1.0 - 2.0 / (tl.exp(2.0 * xp) + 1.0)
                elif ACT == 1:
                    r = tl.maximum(xp, 0.0)
                elif ACT == 2:
                    r = 2.0 / (1.0 + tl.exp(-2.0 * xp))
                else:
                    r = tl.where(xp > 20.0, xp, tl.log(1.0 + tl.exp(tl.minimum(xp, 20.0))))
                r = tl.where(km, r, 0.0)
                if W_RESIDENT:
                    rec = tl.dot(r, wT, rec, input_precision=PREC)
                else:
                    wk = tl.load(W + w_base + kk[:, None] + cols[None, :] * N,
                                 mask=(kk[:, None] < N) & cmask[None, :], other=0.0)
                    rec = tl.dot(r, wk, rec, input_precision=PREC)
            if k == 0:
                x = tl.load(X0 + x0_base + loc, mask=m2, other=0.0)
            else:
                x = tl.load(X + poff + loc, mask=m2, other=0.0)
            x = (1.0 - a) * x + a * (rec + tl.load(D + koff + loc, mask=m2, other=0.0))
            if HAS_NOISE:
                x = x + tl.load(XI + koff + loc, mask=m2, other=0.0)
            tl.store(X + koff + loc, x, mask=m2)
        tl.debug_barrier()


def _rate_backward(X, G, W, LAM, T, E, Bsz, N, alpha,  # noqa: N803
                   BB: tl.constexpr, BN: tl.constexpr, ACT: tl.constexpr, TRUNC: tl.constexpr,
                   W_RESIDENT: tl.constexpr, PREC: tl.constexpr):
    e, rows, rmask, rk = _program_block(Bsz, BB, BN)
    NB = Bsz * N
    w_base = e.to(tl.int64) * N * N
    a = tl.load(alpha)
    if W_RESIDENT:
        w = _resident_w(W, w_base, N, BN, 0)
    for i in range(0, T):
        k = T - 1 - i
        koff = (k * E + e).to(tl.int64) * NB
        noff = ((k + 1) * E + e).to(tl.int64) * NB
        for j0 in range(0, N, BN):
            cols = j0 + rk
            cmask = cols < N
            m2 = rmask[:, None] & cmask[None, :]
            loc = rows[:, None] * N + cols[None, :]
            lam = tl.load(G + koff + loc, mask=m2, other=0.0)
            if i > 0:
                lam = lam + (1.0 - a) * tl.load(LAM + noff + loc, mask=m2, other=0.0)
                if not TRUNC:
                    acc = tl.zeros([BB, BN], dtype=X.dtype.element_ty)
                    if W_RESIDENT:
                        acc = tl.dot(tl.load(LAM + noff + loc, mask=m2, other=0.0), w, acc, input_precision=PREC)
                    else:
                        acc = _dot_rows_w(acc, LAM, noff, W, w_base, rows, rmask, cols, cmask, N, BN, PREC)
                    x = tl.load(X + koff + loc, mask=m2, other=0.0)
                    if ACT == 0 or ACT == 2:  # 1 - tanh(x)^2 (shifted_tanh = 1 + tanh)
                        th = 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0)
                        df = 1.0 - th * th
                    elif ACT == 1:
                        df = (x > 0).to(X.dtype.element_ty)
                    else:
                        df = tl.where(x > 20.0, 1.0, 1.0 / (1.0 + tl.exp(-x)))
                    lam = lam + a * df * acc
            tl.store(LAM + koff + loc, lam, mask=m2)
        tl.debug_barrier()


def _act(name: str, x: Tensor) -> Tensor:
    from .rate import activation_fn

    return activation_fn(name)(x)


def _torch_adjoint(X: Tensor, g: Tensor, W: Tensor, alpha: float, activation: str, truncated: bool) -> Tensor:
    """``lam [T, E, B, N]`` of the module doc by autograd through the torch step (``rate.leaky_update``, the
    activation's own derivative) at the states the forward kernel stored, one step at a time: where the
    backward kernel failed to compile or launch under "auto"."""
    from .rate import leaky_update

    LAM = torch.empty_like(X)
    LAM[-1] = g[-1]
    for k in range(X.shape[0] - 2, -1, -1):  # lam[k] = g[k] + (d X[k+1] / d X[k])^T lam[k+1]
        with torch.enable_grad():
            x = X[k].detach().requires_grad_()
            r = _act(activation, x)
            x_next = leaky_update(x, (r.detach() if truncated else r) @ W.mT, torch.zeros_like(x), alpha)
            (back,) = torch.autograd.grad(x_next, x, LAM[k + 1])
        torch.add(g[k], back, out=LAM[k])
    return LAM


def _launch_forward(x0: Tensor, d: Tensor, xi: Tensor | None, W_rec: Tensor, alpha: float, activation: str,
                    block_n: int | None = None) -> tuple[Tensor, Tensor, tuple[int, bool, str]]:
    """One launch of ``_rate_forward`` (``x0 [E, B, N]``, ``d``, ``xi [T, E, B, N]``, ``W_rec [E, N, N]``): the states
    ``X [T, E, B, N]``, ``alpha`` as a tensor and the tiling (what the backward reads)."""
    T, E, B, N = d.shape
    dt = d.dtype
    x0c, dc, Wc = x0.detach().contiguous(), d.detach().contiguous(), W_rec.detach().contiguous()
    xic = xi.detach().contiguous() if xi is not None else dc
    X = torch.empty((T, E, B, N), dtype=dt, device=d.device)
    a = torch.tensor([alpha], dtype=dt, device=d.device)
    BN, resident = _tiles(N, block_n)
    prec = _precision(dt)
    grid = (E, triton.cdiv(B, BB))
    launcher(_rate_forward, dc)[grid](x0c, dc, xic, Wc, X, T, E, B, N, a, BB=BB, BN=BN,
                                      ACT=ACT_CODE[activation], HAS_NOISE=xi is not None,
                                      W_RESIDENT=resident, PREC=prec, enable_fp_fusion=False)
    return X, a, (BN, resident, prec)


class TritonRateBPTT(torch.autograd.Function):
    """(x0 [E,B,N], drive d [T,E,B,N], noise xi [T,E,B,N] or None, W_rec [E,N,N], alpha, activation,
    truncated) -> X [T,E,B,N], the states after each step."""

    @staticmethod
    def forward(ctx, x0: Tensor, d: Tensor, xi: Tensor | None, W_rec: Tensor, alpha: float, activation: str,  # type: ignore[override]
                truncated: bool, block_n: int | None = None) -> Tensor:
        x0c, Wc = x0.detach().contiguous(), W_rec.detach().contiguous()
        X, a, tiles = _launch_forward(x0c, d, xi, Wc, alpha, activation, block_n)
        ctx.save_for_backward(x0c, X, Wc, a)
        ctx.alpha, ctx.activation, ctx.truncated, ctx.tiles = alpha, activation, truncated, tiles
        ctx.strict = triton_mode() == "on"  # a backward failure raises (else: the torch adjoint, warned once)
        return X

    @staticmethod
    def backward(ctx, g: Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x0, X, W, a = ctx.saved_tensors
        T, E, B, N = X.shape
        alpha = ctx.alpha
        BN, resident, prec = ctx.tiles
        grid = (E, triton.cdiv(B, BB))
        g = g.contiguous()

        def kernel() -> Tensor:
            LAM = torch.empty_like(X)
            launcher(_rate_backward, X)[grid](X, g, W, LAM, T, E, B, N, a, BB=BB, BN=BN,
                                              ACT=ACT_CODE[ctx.activation], TRUNC=bool(ctx.truncated),
                                              W_RESIDENT=resident, PREC=prec, enable_fp_fusion=False)
            return LAM

        LAM = run_triton_backward(kernel, lambda: _torch_adjoint(X, g, W, alpha, ctx.activation, ctx.truncated),
                                  ctx.strict)  # fmt: skip
        lam0 = LAM[0]
        dx0 = dW = None
        if ctx.needs_input_grad[0]:
            dx0 = (1.0 - alpha) * lam0
            if not ctx.truncated:
                with torch.enable_grad():
                    x0g = x0.detach().requires_grad_()
                    fx0 = _act(ctx.activation, x0g)
                    (df,) = torch.autograd.grad(fx0, x0g, alpha * (lam0 @ W))
                dx0 = dx0 + df
        if ctx.needs_input_grad[3]:
            r_prev = _act(ctx.activation, torch.cat([x0[None], X[:-1]]))  # f(X[k-1]) [T, E, B, N]
            dW = alpha * (LAM.transpose(0, 1).reshape(E, -1, N).mT @ r_prev.transpose(0, 1).reshape(E, -1, N))
        d_drive = alpha * LAM if ctx.needs_input_grad[1] else None
        d_noise = LAM if ctx.needs_input_grad[2] else None
        return dx0, d_drive, d_noise, dW, None, None, None, None


def rate_rollout(x0: Tensor, drive: Tensor, noise: Tensor | None, W_rec: Tensor, alpha: float, activation: str,
                 truncated: bool = False) -> Tensor:
    """The states ``X [T, B, N]`` of a ``RateRNN`` rollout (module doc) from ``x0 [B, N]``, ``drive = W_in u
    + b [T, B, N]`` and the scaled noise ``[T, B, N]`` (or None), by the Triton kernels. With a member axis:
    ``x0 [E, B, N]``, ``drive``/``noise`` ``[T, E, B, N]``, ``W_rec [E, N, N]`` -> ``[T, E, B, N]``."""
    if W_rec.dim() == 3:
        return TritonRateBPTT.apply(x0, drive, noise, W_rec, float(alpha), activation, truncated)
    X = TritonRateBPTT.apply(x0[None], drive[:, None], None if noise is None else noise[:, None], W_rec[None],
                             float(alpha), activation, truncated)
    return X[:, 0]


def population_rollout(pop: Any, u: Tensor, x0: Tensor, xi: Tensor | None,
                       scale: Tensor | None) -> tuple[Tensor, Tensor, Any]:
    """``Population._rate_rollout`` by the kernels, the members in the grid's member axis: ``(y [E, T, B, O],
    r [E, T, B, N], RateState(x_T [E, B, N]))`` of a rate ``Population`` ``pop`` from ``x0 [E, B, N]``, with the
    population's draws: the standard-normal noise ``xi`` (``[T, B, N]`` shared or ``[E, T, B, N]``, or None)
    and each member's drive scale ``sqrt(2 alpha) sigma / alpha`` (``scale [E]``), so that the noise enters
    ``x`` as ``sqrt(2 alpha) sigma xi``, as a lone ``RateRNN`` adds it."""
    from .rate import RateState, activation_fn

    body = pop.body
    alpha = float(body.alpha)
    drive, noise = _drive_and_noise(pop, u, xi, alpha, scale)
    X = rate_rollout(x0, drive, noise, pop.W_rec, alpha, body.activation)  # [T, E, B, N]
    r = activation_fn(body.activation)(X).transpose(0, 1)
    return pop._readout(r), r, RateState(X[-1])


def _drive_and_noise(pop: Any, u: Tensor, xi: Tensor | None, alpha: float,
                     scale: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """A rate population's drive ``W_in u + b`` and noise drive ``alpha scale xi`` (None without ``xi``),
    time-major ``[T, E, B, N]``, for ``u`` and ``xi`` shared (``[T, B, .]``) or per member (``[E, T, B, .]``)."""
    drive = (pop._input_projection(u, pop.W_in) + pop.b[:, None, None]).transpose(0, 1)
    if xi is None:
        return drive, None
    xi4 = xi if xi.dim() == 4 else xi[None]
    return drive, (xi4 * (alpha * scale)[:, None, None, None]).transpose(0, 1)


def population_outputs(pop: Any, u: Tensor, x0: Tensor, xi: Tensor | None, scale: Tensor | None,
                       chunk: int) -> Tensor:
    """``Population.outputs`` of a rate ``pop`` (``y [E, T, B, O]``) by the forward kernel without autograd, from
    ``x0 [E, B, N]`` with the population's draws (``xi``, ``scale`` as ``population_rollout``), ``chunk`` steps
    per launch, each chunk starting from the last state of the previous one: at most ``chunk`` steps of drive,
    noise and states are held at a time besides the outputs."""
    from .rate import activation_fn

    body = pop.body
    alpha, f = float(body.alpha), activation_fn(body.activation)
    T, B = u.shape[-3], u.shape[-2]
    y = u.new_empty((pop.size, T, B, pop.n_out))
    x = x0
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        u_c = u[t0:t1] if u.dim() == 3 else u[:, t0:t1]
        xi_c = None if xi is None else xi[t0:t1] if xi.dim() == 3 else xi[:, t0:t1]
        drive, noise = _drive_and_noise(pop, u_c, xi_c, alpha, scale)
        X, _, _ = _launch_forward(x, drive, noise, pop.W_rec, alpha, body.activation)
        y[:, t0:t1] = pop._readout(f(X).transpose(0, 1))
        x = X[-1]
    return y
