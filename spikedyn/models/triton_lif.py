"""Triton kernels of ``SpikingRNN``'s training path: the whole LIF / ALIF forward in one launch and the
whole BPTT backward in one launch (plus one cuBLAS GEMM for ``dW_rec``); and the same forward without
anything stored for a backward, for evaluation and simulation without gradients (``forward_only``).

The kernels are the fused BPTT of ``fused.py`` (same equations, same stored quantities, same adjoint
recursion; its module doc has them) written as persistent Triton programs that loop over time:

- one program per (member, block of ``BB`` trials): it owns its trials' state for all neurons, so it
  needs no other program's spikes and no grid-wide barrier (``tl.debug_barrier`` orders its own threads
  between substeps);
- per substep it walks over tiles of ``BN`` neurons, accumulating the recurrence ``z(s-1) @ W^T`` with
  ``tl.dot`` over tiles of the previous spikes (read back as bytes from the spike store). When one tile
  holds all neurons (``N <= MAX_RESIDENT``), ``W^T`` is loaded once per program and stays in registers
  for the whole rollout; otherwise its ``TILE x TILE`` tiles are re-read every substep (from L2 on a GPU:
  4 MiB at N = 1024);
- it stores only what the backward needs: the spikes and not-refractory masks as ``int8`` and the
  membrane distance to threshold ``x = v - A`` in the compute dtype, or in ``float16`` / ``bfloat16``
  (``storage=``, half the bytes; the gradient error this costs is measured in ``tests/test_triton.py``
  and ``benchmarks/gpu_check.py``). Without gradients (``STORE = 0``, ``forward_only``) it stores none of
  that: the spikes of the last two substeps (a ring: the recurrence reads only the previous one), the
  counts and readout trace per input step, and the state.

The backward program runs the recursion from the last substep to the first with the same tiling
(``du(s+1) @ W`` over tiles) and writes ``du`` per substep; ``dW_rec = sum_s du(s)^T z(s-1)`` is then one
batched GEMM over all substeps and trials (cuBLAS on a GPU), ``db`` a sum.

Covered: LIF and ALIF (any ``n_adaptive``), the three surrogates, reset ``"subtract"``, ``"zero"`` and
``"subtract_decayed"``, refractoriness, substeps, the e-prop truncation (``detach_recurrent``), float32 and
float64, a leading member axis (``Population``). Everything ``fused_supported`` refuses (delays,
``v_leak``/``v_reset``, a learnable reset, a custom initial state) keeps the torch path. The forward kernel
also starts from a carried state (``forward_substeps``: the chunks of e-prop's rollout, without autograd).
Under ``SPIKEDYN_TRITON=auto`` a backward launch that fails runs the torch adjoint (``fused.py``) on what the
forward stored (``triton_support.run_triton_backward``).

Floating point: the neuron update is the map's operations in the map's order (``neuron.neuron_update``);
only the recurrence's summation order is ``tl.dot``'s, so the spikes equal the map's where that order
does not move a membrane across the threshold (identical on the tests' shapes under the interpreter). In
float32 the dot runs in IEEE float32 by default (``input_precision="ieee"``; TF32 would round ``W`` to 10
bits; ``SPIKEDYN_TRITON_PRECISION=tf32x3`` trades the last bits for tensor cores, ``triton_support``), and
the kernels are compiled without contracting ``a * b + c`` into fused multiply-adds
(``enable_fp_fusion=False``), so each operation rounds as torch's separate operations do.
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from .triton_support import launcher, run_triton_backward, triton_mode

RESET_CODE = {"subtract": 0, "zero": 1, "subtract_decayed": 2}
SURROGATE_CODE = {"fast_sigmoid": 0, "triangle": 1, "atan": 2}
STORAGE = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
BB = 16  # trials per program (tl.dot needs >= 16 rows)
MAX_RESIDENT = 64  # the largest N whose W stays in registers (one tile)
TILE = 64  # neurons per tile above MAX_RESIDENT


@triton.jit
def _program_block(Bsz, BB: tl.constexpr, BN: tl.constexpr):
    """Where a program works: its member ``e = program_id(0)``, its trials ``rows`` (block ``program_id(1)``
    of ``BB``) with their in-range mask, and the ``BN`` neuron offsets of one tile (``triton_rate`` uses it too)."""
    rows = tl.program_id(1) * BB + tl.arange(0, BB)
    return tl.program_id(0), rows, rows < Bsz, tl.arange(0, BN)


@triton.jit
def _map_constants(C):
    """The neuron map's constants shared by the forward and the backward (see ``_constants``):
    ``keep_u, keep_v, rho, kappa, kappa_c``."""
    return tl.load(C + 0), tl.load(C + 1), tl.load(C + 3), tl.load(C + 4), tl.load(C + 5)


@triton.jit
def _resident_w(W, w_base, N, BN: tl.constexpr, TRANSPOSE: tl.constexpr):
    """The member's whole ``W`` (``TRANSPOSE = 0``) or ``W^T`` (``TRANSPOSE = 1``: ``W^T[k, j] = W[j, k]``) as
    one ``[BN, BN]`` tile, zero-padded beyond ``N``: loaded once when it stays in registers for the rollout
    (``W_RESIDENT``; the forward multiplies by ``W^T``, the adjoint by ``W``; ``triton_rate`` uses it too)."""
    rk = tl.arange(0, BN)
    inside = (rk[:, None] < N) & (rk[None, :] < N)
    if TRANSPOSE:
        idx = rk[:, None] + rk[None, :] * N
    else:
        idx = rk[:, None] * N + rk[None, :]
    return tl.load(W + w_base + idx, mask=inside, other=0.0)


@triton.jit
def _dot_rows_w(acc, SRC, src_off, W, w_base, rows, rmask, cols, cmask, N, BN: tl.constexpr,
                PREC: tl.constexpr):
    """``acc + SRC[rows, :] @ W[:, cols]``, summed over tiles of ``BN`` neurons with ``W`` re-read from memory:
    the adjoint through the recurrence when ``W`` does not stay in registers (``triton_rate`` uses it too)."""
    rk = tl.arange(0, BN)
    for k0 in range(0, N, BN):
        kk = k0 + rk
        sk = tl.load(SRC + src_off + rows[:, None] * N + kk[None, :], mask=rmask[:, None] & (kk[None, :] < N),
                     other=0.0)
        wk = tl.load(W + w_base + kk[:, None] * N + cols[None, :], mask=(kk[:, None] < N) & cmask[None, :],
                     other=0.0)
        acc = tl.dot(sk, wk, acc, input_precision=PREC)
    return acc


def _spiking_forward(I, W, Bias, Beta, C, X, Z, Z0, REFR, CNT, RBAR, U, V, A, REF, RB,  # noqa: N803
                     T, E, Bsz, N, n_ref,
                     K: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr, RESET: tl.constexpr,
                     ADAPTIVE: tl.constexpr, HAS_REF: tl.constexpr, SYN: tl.constexpr, FILTER: tl.constexpr,
                     W_RESIDENT: tl.constexpr, PREC: tl.constexpr, FIRST: tl.constexpr, STORE: tl.constexpr):
    """One program: member ``program_id(0)``, trials ``program_id(1) * BB + [0, BB)``, all substeps.
    ``U, V, A, REF, RB`` hold the start state (read, then overwritten substep by substep); the spikes before
    the first substep are 0 (``FIRST = 1``: the recurrence starts at substep 1) or ``Z0`` (``FIRST = 0``:
    a chunk continuing a rollout, ``forward_substeps``). ``STORE = 1``: what the backward needs, ``X`` and
    ``REFR`` per substep and the spikes ``Z`` of every substep; ``STORE = 0`` (forward only, no gradient):
    ``X`` and ``REFR`` are not written and ``Z`` is a ring of two substeps (the recurrence reads only the
    previous one)."""
    e, rows, rmask, rk = _program_block(Bsz, BB, BN)
    keep_u, keep_v, rho, kappa, kappa_c = _map_constants(C)
    v_th = tl.load(C + 2)
    NB = Bsz * N
    st = e.to(tl.int64) * NB  # this member's [B, N] state block
    w_base = e.to(tl.int64) * N * N
    if W_RESIDENT:  # W^T, loaded once for the whole rollout
        wT = _resident_w(W, w_base, N, BN, 1)
    for s in range(0, T * K):
        t = s // K
        k_in = s - t * K
        if STORE:
            zslot = s
            pslot = s - 1
        else:  # a ring of two substeps; (s + 1) % 2 is the previous slot (s - 1 is -1 at s = 0)
            zslot = s % 2
            pslot = (s + 1) % 2
        zprev = Z + (pslot * E + e).to(tl.int64) * NB  # the previous substep's spikes
        if FIRST == 0:
            if s == 0:
                zprev = Z0 + st
        soff = (s * E + e).to(tl.int64) * NB
        zoff = (zslot * E + e).to(tl.int64) * NB
        toff = (t * E + e).to(tl.int64) * NB
        for j0 in range(0, N, BN):
            cols = j0 + rk
            cmask = cols < N
            m2 = rmask[:, None] & cmask[None, :]
            loc = rows[:, None] * N + cols[None, :]
            rec = tl.zeros([BB, BN], dtype=C.dtype.element_ty)
            zp = tl.zeros([BB, BN], dtype=C.dtype.element_ty)
            if s >= FIRST:
                if W_RESIDENT:
                    zp = tl.load(zprev + loc, mask=m2, other=0).to(C.dtype.element_ty)
                    rec = tl.dot(zp, wT, rec, input_precision=PREC)
                else:
                    for k0 in range(0, N, BN):
                        kk = k0 + rk
                        zk = tl.load(zprev + rows[:, None] * N + kk[None, :],
                                     mask=rmask[:, None] & (kk[None, :] < N), other=0).to(C.dtype.element_ty)
                        wk = tl.load(W + w_base + kk[:, None] + cols[None, :] * N,
                                     mask=(kk[:, None] < N) & cmask[None, :], other=0.0)
                        rec = tl.dot(zk, wk, rec, input_precision=PREC)
                    zp = tl.load(zprev + loc, mask=m2, other=0).to(C.dtype.element_ty)
            cur = tl.load(I + toff + loc, mask=m2, other=0.0) + rec
            # the map's neuron update (neuron.neuron_update), operation for operation
            if SYN:
                u = tl.load(U + st + loc, mask=m2, other=0.0) * keep_u + cur
            else:
                u = cur
            v = tl.load(V + st + loc, mask=m2, other=0.0)
            if RESET == 1:
                v = v * (1.0 - zp)
            elif RESET == 2:
                v = v - v_th * zp
            v = v * keep_v + u + tl.load(Bias + e * N + cols, mask=cmask, other=0.0)[None, :]
            if RESET == 0:
                v = v - v_th * zp
            if ADAPTIVE:
                a = rho * tl.load(A + st + loc, mask=m2, other=0.0) + zp
                x = v - (v_th + tl.load(Beta + e * N + cols, mask=cmask, other=0.0)[None, :] * a)
                tl.store(A + st + loc, a, mask=m2)
            else:
                x = v - v_th
            z = (x > 0).to(C.dtype.element_ty)
            if HAS_REF:
                ref = tl.load(REF + st + loc, mask=m2, other=0.0)
                refractory = ref > 0
                z = tl.where(refractory, 0.0, z)
                ref = tl.where(z > 0, n_ref * 1.0, tl.maximum(ref - 1.0, 0.0))
                tl.store(REF + st + loc, ref, mask=m2)
                if STORE:
                    tl.store(REFR + soff + loc, refractory.to(tl.int8), mask=m2)
            tl.store(U + st + loc, u, mask=m2)
            tl.store(V + st + loc, v, mask=m2)
            if STORE:
                tl.store(X + soff + loc, x.to(X.dtype.element_ty), mask=m2)
            tl.store(Z + zoff + loc, z.to(tl.int8), mask=m2)
            if K == 1:
                tl.store(CNT + toff + loc, z, mask=m2)
            else:
                if k_in == 0:
                    tl.store(CNT + toff + loc, z, mask=m2)
                else:
                    tl.store(CNT + toff + loc, tl.load(CNT + toff + loc, mask=m2, other=0.0) + z, mask=m2)
            if FILTER:
                rb = kappa * tl.load(RB + st + loc, mask=m2, other=0.0) + kappa_c * z
                tl.store(RB + st + loc, rb, mask=m2)
            else:
                rb = z
            if k_in == K - 1:
                tl.store(RBAR + toff + loc, rb, mask=m2)
        tl.debug_barrier()  # this substep's spikes are visible to all threads before the next reads them


def _spiking_backward(X, Z, REFR, W, Beta, C, GR, GC, DU, DI, DB, DV, DA, DR,  # noqa: N803
                      T, E, Bsz, N,
                      K: tl.constexpr, BB: tl.constexpr, BN: tl.constexpr, RESET: tl.constexpr,
                      ADAPTIVE: tl.constexpr, HAS_REF: tl.constexpr, SYN: tl.constexpr, FILTER: tl.constexpr,
                      HAS_GR: tl.constexpr, HAS_GC: tl.constexpr, TRUNC: tl.constexpr, SURR: tl.constexpr,
                      W_RESIDENT: tl.constexpr, PREC: tl.constexpr):
    """The adjoint recursion of ``fused.py`` from the last substep to the first (one program per member and
    block of trials); writes ``du`` per substep into ``DU``, ``sum_(s in t) du`` into ``DI`` (substeps > 1)
    and ``sum_s dv`` into ``DB``."""
    e, rows, rmask, rk = _program_block(Bsz, BB, BN)
    keep_u, keep_v, rho, kappa, kappa_c = _map_constants(C)
    c_a = tl.load(C + 6)  # surrogate constants (see _constants)
    c_b = tl.load(C + 7)
    NB = Bsz * N
    st = e.to(tl.int64) * NB
    w_base = e.to(tl.int64) * N * N
    if W_RESIDENT:  # W[k, j]: dz_j = sum_k du_k W_kj
        w = _resident_w(W, w_base, N, BN, 0)
    S = T * K
    for r in range(0, S):
        s = S - 1 - r
        t = s // K
        k_in = s - t * K
        soff = (s * E + e).to(tl.int64) * NB
        noff = ((s + 1) * E + e).to(tl.int64) * NB  # substep s + 1 (read only when r > 0)
        toff = (t * E + e).to(tl.int64) * NB
        for j0 in range(0, N, BN):
            cols = j0 + rk
            cmask = cols < N
            m2 = rmask[:, None] & cmask[None, :]
            loc = rows[:, None] * N + cols[None, :]
            direct = tl.zeros([BB, BN], dtype=C.dtype.element_ty)
            if FILTER:  # dr(s) = g_r(s) + kappa dr(s+1); dz gets (1 - kappa) dr(s)
                dr = tl.load(DR + st + loc, mask=m2, other=0.0)
                if HAS_GR:
                    if k_in == K - 1:
                        dr = dr + tl.load(GR + toff + loc, mask=m2, other=0.0)
                direct = dr * kappa_c
                tl.store(DR + st + loc, dr * kappa, mask=m2)
            else:
                if HAS_GR:
                    if k_in == K - 1:
                        direct = tl.load(GR + toff + loc, mask=m2, other=0.0)
            if HAS_GC:
                direct = direct + tl.load(GC + toff + loc, mask=m2, other=0.0)
            dz = direct
            if not TRUNC:
                if r > 0:
                    if W_RESIDENT:
                        dun = tl.load(DU + noff + loc, mask=m2, other=0.0)
                        dz = tl.dot(dun, w, dz, input_precision=PREC)
                    else:
                        dz = _dot_rows_w(dz, DU, noff, W, w_base, rows, rmask, cols, cmask, N, BN, PREC)
            if ADAPTIVE:
                da_next = tl.load(DA + st + loc, mask=m2, other=0.0)
                dz = dz + da_next
            x = tl.load(X + soff + loc, mask=m2, other=0.0).to(C.dtype.element_ty)
            if SURR == 0:  # fast sigmoid 1 / (1 + slope |x|)^2;  c_a = slope
                q = 1.0 + c_a * tl.abs(x)
                psi = 1.0 / (q * q)
            elif SURR == 1:  # triangle (slope / v_th) max(0, 1 - |x| / v_th);  c_a = slope / v_th, c_b = 1 / v_th
                psi = c_a * tl.maximum(1.0 - tl.abs(x) * c_b, 0.0)
            else:  # atan (slope / 2) / (1 + (pi slope x / 2)^2);  c_a = slope / 2, c_b = pi slope / 2
                q = c_b * x
                psi = c_a / (1.0 + q * q)
            dx = dz * psi
            if HAS_REF:
                dx = tl.where(tl.load(REFR + soff + loc, mask=m2, other=0) != 0, 0.0, dx)
            dv_next = tl.load(DV + st + loc, mask=m2, other=0.0)
            if RESET == 1:  # dv(s+1)/dv(s) = (1 - dv)(1 - z(s))
                zs = tl.load(Z + soff + loc, mask=m2, other=0).to(C.dtype.element_ty)
                dv = dx + keep_v * (1.0 - zs) * dv_next
            else:
                dv = dx + keep_v * dv_next
            if SYN:
                du = dv + keep_u * tl.load(DU + noff + loc, mask=m2 & (r > 0), other=0.0)
            else:
                du = dv
            if ADAPTIVE:
                beta = tl.load(Beta + e * N + cols, mask=cmask, other=0.0)[None, :]
                tl.store(DA + st + loc, rho * da_next - beta * dx, mask=m2)
            tl.store(DV + st + loc, dv, mask=m2)
            tl.store(DU + soff + loc, du, mask=m2)
            tl.store(DB + st + loc, tl.load(DB + st + loc, mask=m2, other=0.0) + dv, mask=m2)
            if K > 1:
                if k_in == K - 1:
                    tl.store(DI + toff + loc, du, mask=m2)
                else:
                    tl.store(DI + toff + loc, tl.load(DI + toff + loc, mask=m2, other=0.0) + du, mask=m2)
        tl.debug_barrier()  # du(s) is visible to all threads before substep s - 1 reads it


def _constants(p: Any, like: Tensor) -> Tensor:
    """The map's per-substep constants as a tensor of the compute dtype (Python floats rounded to it once,
    as torch rounds a Python scalar operand): 1 - du, 1 - dv, v_th, rho, kappa, 1 - kappa, and two
    constants of the surrogate."""
    if p.surrogate == "fast_sigmoid":
        ca, cb = p.slope, 0.0
    elif p.surrogate == "triangle":
        ca, cb = p.slope / p.v_th, 1.0 / p.v_th
    else:
        ca, cb = p.slope / 2.0, math.pi / 2.0 * p.slope
    vals = [1.0 - p.du, 1.0 - p.dv, p.v_th, p.rho if p.adaptive else 0.0, p.kappa, 1.0 - p.kappa, ca, cb]
    return torch.tensor(vals, dtype=like.dtype, device=like.device)


def _tiles(N: int, block_n: int | None) -> tuple[int, bool]:
    """(BN, W resident): one tile of the next power of two >= N (>= 16) when N <= MAX_RESIDENT, else tiles
    of TILE neurons."""
    if block_n is not None:
        return block_n, block_n >= N
    if N <= MAX_RESIDENT:
        return max(16, triton.next_power_of_2(N)), True
    return TILE, False


def _precision(dtype: torch.dtype) -> str:
    """``tl.dot``'s input precision: float64 is IEEE; float32 as ``triton_precision()`` (default IEEE)."""
    from .triton_support import triton_precision

    return "ieee" if dtype == torch.float64 else triton_precision()


def _per_member(t: Tensor, E: int, N: int) -> Tensor:
    """``b`` / ``beta`` of one network ``[N]`` or of a population ``[E, 1, N]`` as a contiguous ``[E, N]``."""
    return t.detach().reshape(-1, N).expand(E, N).contiguous()


class _Forward(NamedTuple):
    """What the forward kernel leaves: the stored ``X``, ``Z`` (int8), ``REFR`` (int8, or a dummy), spike
    counts and rbar per input step ``[T, E, B, N]``, the final state ``U, V, A, REF, RB [E, B, N]``, the
    constants, the kernel's tiling and the last substep's spikes."""

    X: Tensor
    Z: Tensor
    REFR: Tensor
    CNT: Tensor
    RBAR: Tensor
    U: Tensor
    V: Tensor
    A: Tensor
    REF: Tensor
    RB: Tensor
    C: Tensor
    tiles: tuple[int, bool, str]
    z_last: Tensor  # the last substep's spikes [E, B, N] (int8): Z[-1], or the ring's slot when forward only


def _launch_forward(I4: Tensor, W3: Tensor, b2: Tensor, beta2: Tensor, p: Any, K: int, x_dtype: torch.dtype,  # noqa: N803
                    block_n: int | None, start: Any = None, store: bool = True) -> _Forward:
    """One launch of ``_spiking_forward`` over ``I4 [T, E, B, N]`` with ``W3 [E, N, N]``, ``b2``, ``beta2 [E, N]``,
    from rest or from ``start`` (``fused.Carry`` of ``[E, B, N]`` tensors: u, v, the last spikes z, a, ref,
    rbar), storing ``x`` in ``x_dtype``. ``store=False``: forward only (``STORE = 0``): ``X`` and ``REFR`` are
    one-element dummies and ``Z`` holds two substeps (the last one at ``Z[(T * K - 1) % 2]``, ``last_spikes``)."""
    T, E, B, N = I4.shape
    S = T * K
    dt, dev = I4.dtype, I4.device
    BN, resident = _tiles(N, block_n)
    prec = _precision(dt)
    C = _constants(p, I4)
    X = torch.empty((S, E, B, N) if store else (1,), dtype=x_dtype, device=dev)
    Z = torch.empty((S if store else 2, E, B, N), dtype=torch.int8, device=dev)
    REFR = torch.empty((S, E, B, N) if p.n_ref and store else (1,), dtype=torch.int8, device=dev)
    CNT = torch.empty((T, E, B, N), dtype=dt, device=dev)
    RBAR = torch.empty((T, E, B, N), dtype=dt, device=dev)
    if start is None:
        U, V, A, REF, RB = (torch.zeros((E, B, N), dtype=dt, device=dev) for _ in range(5))
        Z0, first = Z, 1  # Z0 is never read
    else:  # copies: the kernel overwrites its state in place
        U, V, A, REF, RB = (t.detach().to(dt).contiguous().clone() for t in (start.u, start.v, start.a, start.ref,
                                                                             start.rbar))  # fmt: skip
        Z0, first = start.z.detach().to(torch.int8).contiguous(), 0
    grid = (E, triton.cdiv(B, BB))
    launcher(_spiking_forward, I4)[grid](
        I4, W3, b2, beta2, C, X, Z, Z0, REFR, CNT, RBAR, U, V, A, REF, RB, T, E, B, N, int(p.n_ref),
        K=K, BB=BB, BN=BN, RESET=RESET_CODE[p.reset], ADAPTIVE=bool(p.adaptive), HAS_REF=p.n_ref > 0,
        SYN=p.du < 1.0, FILTER=p.kappa != 0.0, W_RESIDENT=resident, PREC=prec, FIRST=first, STORE=store,
        enable_fp_fusion=False)
    z_last = Z[-1] if store else Z[(S - 1) % 2]
    return _Forward(X, Z, REFR, CNT, RBAR, U, V, A, REF, RB, C, (BN, resident, prec), z_last)



class TritonSpikingBPTT(torch.autograd.Function):
    """Drop-in for ``fused.FusedSpikingBPTT`` (same inputs and outputs; ``storage`` replaces ``path``): the
    forward and the backward each one Triton launch."""

    @staticmethod
    def forward(ctx, i_ext: Tensor, W_rec: Tensor, b: Tensor, beta: Tensor, p: Any, substeps: int,  # type: ignore[override]
                truncated: bool, storage: str = "float32", block_n: int | None = None) -> tuple[Tensor, ...]:
        batched = W_rec.dim() == 3
        I4 = (i_ext if batched else i_ext[:, None]).contiguous()  # [T, E, B, N]
        W3 = (W_rec if batched else W_rec[None]).detach().contiguous()  # [E, N, N]
        E, N = I4.shape[1], I4.shape[3]
        K = int(substeps)
        dt = I4.dtype
        b2, beta2 = _per_member(b, E, N), _per_member(beta, E, N)
        f = _launch_forward(I4, W3, b2, beta2, p, K, dt if dt == torch.float64 else STORAGE[storage], block_n)
        X, Z, REFR, CNT, RBAR, U, V, A, REF, _RB, C, tiles, _z_last = f
        ctx.save_for_backward(X, Z, REFR, W3, beta2, C)
        ctx.p, ctx.K, ctx.truncated, ctx.batched, ctx.b_shape = p, K, truncated, batched, b.shape
        ctx.tiles = tiles
        ctx.strict = triton_mode() == "on"  # a backward failure raises (else: the torch adjoint, warned once)
        ctx.set_materialize_grads(False)

        def out(t: Tensor) -> Tensor:
            return t if batched else t[:, 0] if t.dim() == 4 else t[0]

        final = tuple(out(t) for t in (U, V, Z[-1].to(dt), A, REF))
        ctx.mark_non_differentiable(*final)
        return (out(RBAR), out(CNT), *final)

    @staticmethod
    def backward(ctx, g_rbar: Tensor | None, g_counts: Tensor | None, *_final: Tensor):  # type: ignore[override]
        X, Z, REFR, W3, beta2, C = ctx.saved_tensors
        p, K = ctx.p, ctx.K
        S, E, B, N = Z.shape
        T = S // K
        dt, dev = W3.dtype, W3.device

        def four(g: Tensor | None) -> Tensor:
            if g is None:
                return C  # any pointer: HAS_G* = False never reads it
            return (g if ctx.batched else g[:, None]).contiguous()

        GR, GC = four(g_rbar), four(g_counts)
        DU = torch.empty((S, E, B, N), dtype=dt, device=dev)
        DI = torch.empty((T, E, B, N), dtype=dt, device=dev) if K > 1 else DU
        DB, DV, DA, DR = (torch.zeros((E, B, N), dtype=dt, device=dev) for _ in range(4))
        BN, resident, prec = ctx.tiles
        grid = (E, triton.cdiv(B, BB))

        def kernel() -> tuple[Tensor, ...]:
            launcher(_spiking_backward, DU)[grid](
                X, Z, REFR, W3, beta2, C, GR, GC, DU, DI, DB, DV, DA, DR, T, E, B, N,
                K=K, BB=BB, BN=BN, RESET=RESET_CODE[p.reset], ADAPTIVE=bool(p.adaptive), HAS_REF=p.n_ref > 0,
                SYN=p.du < 1.0, FILTER=p.kappa != 0.0, HAS_GR=g_rbar is not None, HAS_GC=g_counts is not None,
                TRUNC=bool(ctx.truncated), SURR=SURROGATE_CODE[p.surrogate], W_RESIDENT=resident,
                PREC=prec, enable_fp_fusion=False)
            return _gradients(ctx, DU, DI, DB, Z)

        return run_triton_backward(kernel, lambda: _torch_adjoint(ctx, g_rbar, g_counts), ctx.strict)


def _gradients(ctx: Any, DU: Tensor, DI: Tensor, DB: Tensor, Z: Tensor) -> tuple[Tensor | None, ...]:
    """The backward's outputs from the kernel's ``du`` per substep, ``sum_(s in t) du`` and ``sum_s dv``."""
    E, N, dt = Z.shape[1], Z.shape[3], DU.dtype
    d_iext = DI if ctx.batched else DI[:, 0]
    dW = None
    if ctx.needs_input_grad[1]:
        # dW_rec[e] = sum_s du(s)^T z(s-1): one batched GEMM over all substeps and trials
        du_m = DU[1:].transpose(0, 1).reshape(E, -1, N)
        z_m = Z[:-1].transpose(0, 1).reshape(E, -1, N).to(dt)
        dW = du_m.mT @ z_m
        dW = dW if ctx.batched else dW[0]
    db = DB.sum(1).reshape(ctx.b_shape) if ctx.needs_input_grad[2] else None
    return d_iext, dW, db, None, None, None, None, None, None


def _torch_adjoint(ctx: Any, g_rbar: Tensor | None, g_counts: Tensor | None) -> tuple[Tensor | None, ...]:
    """The torch path's backward (``fused.FusedSpikingBPTT.backward``, the same adjoint recursion in torch ops)
    on what the Triton forward stored: where the backward kernel failed to compile or launch under "auto".
    The stored tensors are handed over in the layout ``FusedSpikingBPTT.forward`` saves them in (spikes as
    floats with one substep, else bool; ``x`` per substep in the compute dtype), through a stand-in for its
    ``ctx``."""
    from types import SimpleNamespace

    from .fused import FusedSpikingBPTT

    X, Z, REFR, W3, beta2, _C = ctx.saved_tensors
    dt = W3.dtype

    def one(t: Tensor) -> Tensor:  # [S, E, B, N] -> [S, (E,) B, N]
        return t if ctx.batched else t[:, 0]

    zs = one(Z).to(dt) if ctx.K == 1 else one(Z).bool()
    refr = one(REFR).bool() if ctx.p.n_ref else zs.new_empty(0)
    W, beta = (W3, beta2[:, None]) if ctx.batched else (W3[0], beta2[0])
    shim = SimpleNamespace(saved_tensors=(zs, refr, W, beta, *one(X).to(dt).unbind(0)), p=ctx.p, substeps=ctx.K,
                           truncated=ctx.truncated, b_shape=ctx.b_shape, path="dense",
                           needs_input_grad=ctx.needs_input_grad[:8])  # fmt: skip
    return (*FusedSpikingBPTT.backward(shim, g_rbar, g_counts), None)


def spiking_apply(i_ext: Tensor, W_rec: Tensor, b: Tensor, beta: Tensor, p: Any, substeps: int,
                  truncated: bool) -> tuple[Tensor, ...]:
    """``FusedSpikingBPTT.apply``'s signature, run by the Triton kernels (storage from ``triton_storage``)."""
    from .triton_support import triton_storage

    return TritonSpikingBPTT.apply(i_ext, W_rec, b, beta, p, substeps, truncated, triton_storage())


def _final_state(f: _Forward, p: Any) -> tuple[Tensor, ...]:
    """The state a launch leaves, in ``fused.Carry``'s order: u, v, the last substep's spikes (in the
    compute dtype), a, ref and the readout trace (``RB``, or the last rbar without a readout filter)."""
    return (f.U, f.V, f.z_last.to(f.U.dtype), f.A, f.REF, f.RB if p.kappa != 0.0 else f.RBAR[-1])


def forward_substeps(p: Any, W_rec: Tensor, b: Tensor, beta: Tensor, i_ext: Tensor, substeps: int,
                     carry: Any = None) -> Any:
    """``fused.forward_substeps`` (one network: ``i_ext [T, B, N]``, ``W_rec [N, N]``) by the forward kernel,
    without autograd: the same ``Substeps`` (``x`` per substep in the compute dtype, spikes as floats with
    one substep, else bool) from ``carry`` (default: rest), which it updates in place. What the chunked
    e-prop rollout runs chunk by chunk (``learning/eprop.py``)."""
    from .fused import Substeps, zero_carry

    carry = zero_carry(i_ext[0]) if carry is None else carry
    N, K, dt = W_rec.shape[-1], int(substeps), i_ext.dtype
    f = _launch_forward(i_ext.detach()[:, None].contiguous(), W_rec.detach()[None].contiguous(),
                        _per_member(b, 1, N), _per_member(beta, 1, N), p, K, dt, None,
                        type(carry)(*(t[None] for t in carry)))  # fmt: skip
    counts = f.CNT[:, 0]
    for mine, new in zip(carry, _final_state(f, p)):
        mine.copy_(new[0])
    return Substeps(list(f.X[:, 0].unbind(0)), counts if K == 1 else f.Z[:, 0].bool(),
                    f.REFR[:, 0].bool() if p.n_ref else None, counts, f.RBAR[:, 0], carry)


def forward_only(i_ext: Tensor, W_rec: Tensor, b: Tensor, beta: Tensor, p: Any, substeps: int,
                 carry: Any = None) -> tuple[Tensor, ...]:
    """``spiking_apply``'s outputs without autograd and with nothing stored for a backward: rbar and the spike
    counts at each input step ``[T, (E,) B, N]`` and the final u, v, z, a, ref ``[(E,) B, N]``, by one launch of
    the forward kernel with ``STORE = 0`` (``_spiking_forward``: no ``x``, no refractory masks, the spikes of
    two substeps). For evaluation and simulation without gradients (``fused.eval_rollout``, ``Population``).
    From rest, or from ``carry`` (``fused.Carry`` of ``[(E,) B, N]`` tensors: a rollout continued chunk by chunk,
    ``population_outputs``), which it then updates in place, rbar included. ``W_rec [E, N, N]``: a member axis
    (``i_ext [T, E, B, N]``, ``b``, ``beta`` ``[E, 1, N]``), as ``spiking_apply``."""
    batched = W_rec.dim() == 3
    I4 = (i_ext if batched else i_ext[:, None]).detach().contiguous()  # [T, E, B, N]
    W3 = (W_rec if batched else W_rec[None]).detach().contiguous()
    E, N, dt = I4.shape[1], I4.shape[3], I4.dtype
    start = None if carry is None else type(carry)(*(t if batched else t[None] for t in carry))
    f = _launch_forward(I4, W3, _per_member(b, E, N), _per_member(beta, E, N), p, int(substeps), dt, None, start,
                        store=False)  # fmt: skip
    final = _final_state(f, p)
    if carry is not None:
        for mine, new in zip(carry, final):
            mine.copy_(new if batched else new[0])

    def out(t: Tensor) -> Tensor:
        return t if batched else t[:, 0] if t.dim() == 4 else t[0]

    return (out(f.RBAR), out(f.CNT), *(out(t) for t in final[:5]))


def population_outputs(pop: Any, u: Tensor, chunk: int) -> Tensor:
    """``Population.outputs`` of a spiking ``pop`` (``y [E, T, B, O]``) by the forward-only kernel, ``chunk`` input
    steps per launch, each chunk continuing from the state the previous one left (``forward_only``'s carry): at
    most ``chunk`` steps of input currents, counts and rbar are held at a time besides the outputs."""
    from .fused import zero_carry

    body = pop.body
    W_rec, b, beta = pop._spiking_tensors()
    T, B = u.shape[-3], u.shape[-2]
    carry = zero_carry(u.new_zeros((pop.size, B, pop.n_hidden)))
    y = u.new_empty((pop.size, T, B, pop.n_out))
    for t0 in range(0, T, chunk):
        u_c = u[t0 : t0 + chunk] if u.dim() == 3 else u[:, t0 : t0 + chunk]
        i_ext = pop._input_projection(u_c, pop.W_in).transpose(0, 1)  # [Tc, E, B, N]
        rbar, *_ = forward_only(i_ext, W_rec, b, beta, body.params, body.substeps, carry)
        y[:, t0 : t0 + chunk] = pop._readout(rbar.transpose(0, 1))
    return y
