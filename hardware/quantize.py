"""Loihi 2 fixed-point formats for a spiking RNN, as Lava 0.10's bit-accurate models define them.

Integer units. Membrane ``v`` and current ``u`` are 24-bit integers; one real unit of ``v`` is
``scale = 64 * vth / v_th`` integer units, so that the real threshold ``v_th`` lands exactly on
Lava's effective threshold ``vth << 6``. With the default ``vth = 4096`` the integer range
``±(2**23 - 1)`` covers ``±32 v_th`` (headroom for inhibited membranes and large currents) at a
resolution of ``v_th / 2**18``. What limits precision is the 8-bit weight mantissa, not the state.

What Lava's models do with these integers (``lava/proc/lif/models.py`` ``AbstractPyLifModelFixed``,
``lava/proc/dense/models.py`` ``AbstractPyDenseModelBitAcc``):

* ``Dense``: mixed-sign weights are clipped to [-256, 255] and their least significant bit dropped,
  i.e. ``w = 2 m`` with an 8-bit mantissa ``m`` in [-128, 127]; the accumulated ``sum(w s)`` is
  shifted by ``weight_exp`` (left if > 0, else an arithmetic right shift, i.e. floor) and sent one
  step later.
* ``LIF``: ``u = trunc(u (4096 - (du + 1)) / 4096) + (a_in << 6)`` with a 24-bit wrap;
  ``v = trunc(v (4096 - dv) / 4096) + u + (bias_mant << bias_exp)`` clipped to ±(2**23 - 1);
  spike if ``v > vth << 6``; ``v = 0`` on a spike. du, dv are 12-bit, bias_mant 13-bit signed,
  bias_exp 3-bit, vth 17-bit.

So a recurrent weight ``W`` contributes ``m 2**(weight_exp + 7)`` integer units per spike and
``m = round(W * scale / 2**(weight_exp + 7))``; an input weight sees graded input spikes
``X = round(x * 2**input_frac_bits)`` and gets ``m = round(W_in * scale / 2**(weight_exp + 7 +
input_frac_bits))``. Each matrix takes the smallest shared exponent that fits its largest weight in
the mantissa. numpy only: the torch side (``SpikingRNN(quantize="loihi2")``) calls this same function,
so both sides always hold the same integers.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import array_namespace

from .neuron import SpikingState, delay_line, readout_filter

DECAY_UNITY = 4096  # 12-bit decays: factor (4096 - d) / 4096
ACT_SHIFT = 6  # a_in << 6 and vth << 6 (MSB alignment in Lava's LIF)
UV_MAX = 2**23  # u, v are 24-bit
MANT_MAX = 127  # 8-bit signed weight mantissa (Lava stores 2 * mantissa for mixed-sign weights)
BIAS_MANT_MAX = 4095  # 13-bit signed
BIAS_EXP_MAX = 7  # 3-bit unsigned
VTH_MAX = 2**17 - 1  # 17-bit unsigned
GRADED_MAX = 2**23 - 1  # 24-bit graded spike payload
DEFAULT_VTH = 4096
DEFAULT_INPUT_FRAC_BITS = 8


@dataclass(frozen=True)
class Loihi2Params:
    """Integer parameters of one network as Lava's bit-accurate processes take them.

    ``w_in [N, I]`` and ``w_rec [N, N]`` are the integers handed to ``Dense`` (even numbers,
    ``2 * mantissa``), with shared exponents ``w_in_exp`` and ``w_rec_exp``; ``bias_mant``,
    ``bias_exp [N]``, ``vth``, ``du``, ``dv`` go to ``LIF``. ``scale`` is integer units of v per
    real unit; ``input_frac_bits`` the fixed-point position of the graded input spikes.
    ``report`` lists what did not fit (saturated values) and the effective decays.
    """

    w_in: np.ndarray
    w_in_exp: int
    w_rec: np.ndarray
    w_rec_exp: int
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    vth: int
    du: int
    dv: int
    scale: float
    input_frac_bits: int
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_bias(self) -> np.ndarray:
        """``bias_mant << bias_exp`` in integer units of v."""
        return self.bias_mant.astype(np.int64) * (2 ** self.bias_exp.astype(np.int64))


def _shared_exponent(max_abs_units: float, mant_max: int = MANT_MAX) -> int:
    """Smallest integer k with ``max_abs_units / 2**k <= mant_max`` (exact power-of-two checks)."""
    if max_abs_units == 0.0:
        return 0
    k = math.ceil(math.log2(max_abs_units / mant_max))
    while math.ldexp(max_abs_units, -k) > mant_max:  # log2 may be off by one ulp: fix exactly
        k += 1
    while math.ldexp(max_abs_units, -(k - 1)) <= mant_max:
        k -= 1
    return k


def _mantissas(W: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Round ``W / 2**k`` to the 8-bit mantissa; returns (mantissa, number clipped)."""
    m = np.round(np.ldexp(W, -k))
    clipped = int(np.count_nonzero((m > MANT_MAX) | (m < -MANT_MAX - 1)))
    return np.clip(m, -MANT_MAX - 1, MANT_MAX).astype(np.int64), clipped


def quantize_decays(du: float, dv: float) -> tuple[int, int]:
    """12-bit ``du``, ``dv`` for Lava's fixed LIF: u decays by ``(4096 - du - 1) / 4096``, v by
    ``(4096 - dv) / 4096``."""
    du_int = int(np.clip(np.round(du * DECAY_UNITY) - 1, 0, DECAY_UNITY - 1))
    dv_int = int(np.clip(np.round(dv * DECAY_UNITY), 0, DECAY_UNITY - 1))
    return du_int, dv_int


def quantize_loihi2(
    W_in: np.ndarray,
    W_rec: np.ndarray,
    bias: np.ndarray,
    v_th: float,
    du: float,
    dv: float,
    input_frac_bits: int = DEFAULT_INPUT_FRAC_BITS,
    vth: int = DEFAULT_VTH,
) -> Loihi2Params:
    """Quantise a network's float parameters (float64 numpy arrays) to Loihi 2's formats.

    Args:
        W_in [N, I], W_rec [N, N], bias [N]: float weights and bias (bias adds to v every substep).
        v_th: float threshold; du, dv: float per-substep decays in [0, 1].
        input_frac_bits: graded input spikes carry ``round(x * 2**input_frac_bits)``.
        vth: the 17-bit threshold mantissa; sets ``scale = 64 * vth / v_th``.
    """
    if not 1 <= vth <= VTH_MAX:
        raise ValueError(f"vth must be in [1, {VTH_MAX}] (17-bit), got {vth}")
    if v_th <= 0:
        raise ValueError(f"v_th must be > 0, got {v_th}")
    W_in, W_rec, bias = (np.asarray(a, dtype=np.float64) for a in (W_in, W_rec, bias))
    scale = float(2**ACT_SHIFT * vth) / float(v_th)
    base = ACT_SHIFT + 1  # a_in << 6, and the mixed-sign weight is 2 * mantissa

    k_rec = _shared_exponent(float(np.max(np.abs(W_rec * scale), initial=0.0)))
    m_rec, clip_rec = _mantissas(W_rec * scale, k_rec)
    k_in = _shared_exponent(float(np.max(np.abs(W_in * scale), initial=0.0)))
    m_in, clip_in = _mantissas(W_in * scale, k_in)

    B = bias * scale  # integer units of v
    bias_exp = np.zeros(B.shape, dtype=np.int64)
    for _ in range(BIAS_EXP_MAX):  # smallest exponent whose mantissa fits 13 bits
        bias_exp = np.where(np.abs(np.round(np.ldexp(B, -bias_exp))) > BIAS_MANT_MAX, bias_exp + 1, bias_exp)
    bias_mant_f = np.round(np.ldexp(B, -bias_exp))
    clip_bias = int(np.count_nonzero((bias_mant_f > BIAS_MANT_MAX) | (bias_mant_f < -BIAS_MANT_MAX - 1)))
    bias_mant = np.clip(bias_mant_f, -BIAS_MANT_MAX - 1, BIAS_MANT_MAX).astype(np.int64)

    du_int, dv_int = quantize_decays(du, dv)
    report = {
        "scale": scale,
        "w_rec_clipped": clip_rec,
        "w_in_clipped": clip_in,
        "bias_clipped": clip_bias,
        "du_effective": (du_int + 1) / DECAY_UNITY,
        "dv_effective": dv_int / DECAY_UNITY,
        "w_rec_step": math.ldexp(1.0, k_rec) / scale,  # real weight per mantissa unit
        "w_in_step": math.ldexp(1.0, k_in) / scale,
    }
    return Loihi2Params(
        w_in=(2 * m_in).astype(np.int32), w_in_exp=k_in - base - int(input_frac_bits),
        w_rec=(2 * m_rec).astype(np.int32), w_rec_exp=k_rec - base,
        bias_mant=bias_mant, bias_exp=bias_exp, vth=int(vth), du=du_int, dv=dv_int,
        scale=scale, input_frac_bits=int(input_frac_bits), report=report,
    )  # fmt: skip


def quantize_input(x: np.ndarray, frac_bits: int = DEFAULT_INPUT_FRAC_BITS) -> np.ndarray:
    """Graded input spikes ``round(x * 2**frac_bits)`` as int64, clipped to the 24-bit payload."""
    X = np.round(np.ldexp(np.asarray(x, dtype=np.float64), int(frac_bits)))
    return np.clip(X, -GRADED_MAX, GRADED_MAX).astype(np.int64)


def check_input_range(X: np.ndarray, w_in: np.ndarray, exp: int = 0) -> None:
    """Lava's bit-accurate ``Dense``/``Sparse`` accumulate ``w @ X`` (then ``<< exp``) in int32, where numpy
    wraps silently (torch's ``Loihi2RNN`` would not): refuse graded inputs ``X [..., I]`` that could overflow it."""
    worst = float(np.abs(X).sum(axis=-1).max(initial=0)) * float(np.abs(w_in).max(initial=0)) * 2.0 ** max(0, exp)
    if worst >= 2**31:
        raise ValueError(
            f"inputs too large for Loihi's 32-bit input accumulator (|w| * sum|X| = {worst:.3g} >= 2**31); "
            "scale the inputs down or lower input_frac_bits"
        )


def shift(acc: Any, exp: int) -> Any:
    """Lava Dense's exponent on integer arrays (numpy or torch): left shift for exp > 0, arithmetic
    (floor) right shift otherwise."""
    return acc << exp if exp > 0 else acc >> (-exp)


def decay(x: Any, d_complement: int) -> Any:
    """``sign(x) * (|x * d_complement| >> 12)``: Lava's decay with truncation toward zero (integer arrays,
    numpy or torch)."""
    xp = array_namespace(x)
    prod = xp.astype(x, xp.int64) * int(d_complement)
    return xp.sign(prod) * (xp.abs(prod) >> 12)


def wrap24(u: Any) -> Any:
    """Lava's 24-bit wrap of the current (exactly as ``AbstractPyLifModelFixed`` writes it)."""
    xp = array_namespace(u)
    wrapped = xp.where(u > UV_MAX, u - 2 * UV_MAX, u)
    return xp.where(wrapped <= -UV_MAX, u + 2 * UV_MAX, wrapped)


class FixedConstants(NamedTuple):
    """The integers Lava's fixed-point ``LIF`` uses every substep (from ``Loihi2Params``)."""

    du: int
    dv: int
    vth: int  # effective threshold vth << 6
    kappa: float  # the float readout filter (computed on the host)


def fixed_constants(q: Loihi2Params, kappa: float) -> FixedConstants:
    return FixedConstants(q.du, q.dv, q.vth << ACT_SHIFT, float(kappa))


def fixed_neuron_update(c: FixedConstants, u: Any, v: Any, a_in: Any, bias: Any) -> tuple[Any, Any, Any]:
    """One substep of Lava 0.10's bit-accurate ``LIF`` (``AbstractPyLifModelFixed.subthr_dynamics`` and
    its spike / reset) on int64 arrays (numpy or torch): returns ``(u, v, spiked)``, ``v`` stored after
    the reset as in Lava. The fixed-point counterpart of ``neuron.neuron_update`` (reset="zero", LIF)."""
    xp = array_namespace(u)
    u = wrap24(decay(u, DECAY_UNITY - c.du - 1) + (a_in << ACT_SHIFT))
    v = xp.clip(decay(v, DECAY_UNITY - c.dv) + u + bias, min=-UV_MAX + 1, max=UV_MAX - 1)
    spiked = v > c.vth
    return u, xp.where(spiked, xp.zeros_like(v), v), spiked


def fixed_substep(
    c: FixedConstants, s: SpikingState, a_ext: Any, recurrent: Callable[[Any], Any], bias: Any
) -> SpikingState:
    """One substep of the fixed-point network with the map's structure (``neuron.substep``): delays, the
    recurrent activation ``recurrent(z_rec)`` (the integer Dense output), the neurons, the float readout
    filter. ``u``, ``v``, ``in_buf`` are int64; ``z`` has the dtype of ``rbar``."""
    xp = array_namespace(s.u)
    a_now, in_buf = delay_line(xp, s.in_buf, a_ext)
    z_rec, z_buf = delay_line(xp, s.z_buf, s.z)
    u, v, spiked = fixed_neuron_update(c, s.u, s.v, a_now + recurrent(z_rec), bias)
    z = xp.astype(spiked, s.rbar.dtype)
    return SpikingState(u, v, z, s.a, s.ref, readout_filter(c.kappa, s.rbar, z), in_buf, z_buf)
