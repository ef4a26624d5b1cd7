"""The one neuron map of spikedyn: the LIF / ALIF substep, its partial derivatives, delays, the readout filter.

One neuron update (a *substep*, of length ``dt / substeps`` ms), for neuron i:

    I(s)  = W_in x(s - delay_in) + W_rec z(s - 1 - delay_rec)             synaptic input
    u(s)  = (1 - du) u(s-1) + I(s)                                           synaptic current (du = 1: none)
    a(s)  = rho a(s-1) + z(s-1);   A(s) = v_th + beta a(s)                   ALIF adaptive threshold (beta = 0: LIF)
    v'    = v(s-1) (1 - z(s-1)) + v_reset z(s-1)                             reset="zero" (to v_reset, default 0)
    v'    = v(s-1)                                                           reset="subtract"
    v'    = v(s-1) - v_th z(s-1)                                             reset="subtract_decayed"
    v(s)  = (1 - dv) (v' - v_leak) + v_leak + u(s) + b [- v_th z(s-1)]       leak toward v_leak [subtract]
    z(s)  = H(v(s) - A(s))  (strict >),  forced to 0 for ``n_ref`` substeps after a spike
    rbar(s) = kappa rbar(s-1) + (1 - kappa) z(s);  y = W_out rbar + b_out    leaky-integrator readout

``reset="subtract"`` subtracts the threshold after the leak (snnTorch's default ``reset_delay=True``);
``"subtract_decayed"`` subtracts it from the membrane before the leak, so the subtraction decays with v
(snnTorch's ``reset_delay=False``, norse's ``reset_subtract``: the NIR paper's Braille "noDelay subtract").

``v`` is kept *before* the reset of its own spike (the reset is applied by the next update). With
``v_leak = v_reset = 0`` (the defaults) the leak term is written ``(1 - dv) v'`` so that float arithmetic
is the same as Lava's ``LIF`` bit for bit; ``v_leak``/``v_reset`` are NIR's LIF semantics (leak toward
``v_leak``, reset to ``v_reset``).

Written once, against the Python array API (``array_api_compat``): the same functions run on numpy
arrays here (the references in ``reference.py``, Lava's float process in ``lava_neuron.py``) and on torch
tensors in ``spikedyn.models`` (the float body, autograd BPTT, e-prop, the analysis Jacobians). What
differs between the two beyond the array API is passed in ``Ops``: the spike nonlinearity (torch adds
its surrogate gradient) and stop-gradient (identity in numpy). ``partials`` is the one definition of the
map's derivatives, used by the fused backward (``spikedyn/models/fused.py``), e-prop's eligibility
traces and the Jacobians of the Lyapunov analysis.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from array_api_compat import array_namespace

RESETS = ("subtract", "zero", "subtract_decayed")


@dataclass(frozen=True)
class NeuronConstants:
    """Per-substep constants of the map (module doc). Decays are per substep: ``du``, ``dv`` in [0, 1] are
    Lava's (a fraction lost per substep), ``rho`` and ``kappa`` the fractions kept. ``detach_reset`` /
    ``detach_recurrent`` only matter where gradients exist (torch)."""

    du: float
    dv: float
    v_th: float
    reset: str = "subtract"
    rho: float = 0.0
    n_ref: int = 0
    kappa: float = 0.0
    delay_in: int = 0
    delay_rec: int = 0
    adaptive: bool = False
    v_leak: float = 0.0
    v_reset: float = 0.0
    detach_reset: bool = True
    detach_recurrent: bool = False  # cut gradients through other neurons' spikes (e-prop's truncation)


class SpikingState(NamedTuple):
    """State of a spiking network between substeps (arrays of one library: numpy or torch)."""

    u: Any  # synaptic current [B, N]
    v: Any  # membrane potential [B, N] (before the reset of its own spike)
    z: Any  # spikes of the last substep [B, N]
    a: Any  # adaptation variable [B, N] (zeros for LIF)
    ref: Any  # refractory substeps left [B, N]
    rbar: Any  # readout-filtered spikes [B, N]
    in_buf: Any  # delayed input currents [delay_in, B, N]
    z_buf: Any  # delayed spikes [delay_rec, B, N]


class Ops(NamedTuple):
    """What the map needs from an array library beyond the array API namespace ``xp``."""

    xp: Any
    spike: Callable[[Any], Any]  # Heaviside H(x) (strict >); torch: with the surrogate gradient
    stop_gradient: Callable[[Any], Any]  # identity without autograd


def _identity(x: Any) -> Any:
    return x


def numpy_ops() -> Ops:
    """``Ops`` for numpy arrays (no gradients)."""
    import numpy as np

    xp = array_namespace(np.zeros(1))
    return Ops(xp, lambda x: xp.astype(x > 0, x.dtype), _identity)


def delay_line(xp: Any, buffer: Any, value: Any) -> tuple[Any, Any]:
    """One step of a synaptic delay of ``buffer.shape[0]`` steps (Lava's ``Dense``/``DelayDense`` timing):
    returns (the value that arrives now, the new buffer). An empty buffer ``[0, B, N]`` is no delay."""
    if buffer.shape[0] == 0:
        return value, buffer
    return buffer[0], xp.concat([buffer[1:], value[None, ...]], axis=0)


def threshold_distance(c: NeuronConstants, v: Any, a: Any, beta: Any) -> Any:
    """``x = v - A``: the membrane's distance above the (adaptive) threshold; ``z = H(x)``."""
    return v - (c.v_th + beta * a) if c.adaptive else v - c.v_th


def not_refractory(c: NeuronConstants, xp: Any, ref: Any, dtype: Any) -> Any:
    """1 where a neuron may spike this substep (``ref <= 0`` before the update), else 0; 1.0 without a
    refractory period."""
    return xp.astype(ref <= 0, dtype) if c.n_ref else 1.0


def neuron_update(
    c: NeuronConstants, ops: Ops, u: Any, v: Any, z: Any, a: Any, ref: Any, current: Any, bias: Any, beta: Any
) -> tuple[Any, Any, Any, Any, Any]:
    """One substep of the neurons given their summed synaptic input ``current`` [B, N]; returns the new
    ``(u, v, z, a, ref)``. ``z`` on input is the previous substep's spike (module doc for the equations)."""
    xp = ops.xp
    z_reset = ops.stop_gradient(z) if c.detach_reset else z
    u = u * (1.0 - c.du) + current
    if c.reset == "zero":
        v = v * (1.0 - z_reset)
        if c.v_reset:
            v = v + c.v_reset * z_reset
    elif c.reset == "subtract_decayed":
        v = v - c.v_th * z_reset
    if c.v_leak:
        v = (v - c.v_leak) * (1.0 - c.dv) + c.v_leak + u + bias
    else:
        v = v * (1.0 - c.dv) + u + bias
    if c.reset == "subtract":
        v = v - c.v_th * z_reset
    if c.adaptive:
        a = c.rho * a + z
    z_new = ops.spike(threshold_distance(c, v, a, beta))
    if c.n_ref:
        z_new = z_new * not_refractory(c, xp, ref, z_new.dtype)
        ref = xp.where(ops.stop_gradient(z_new) > 0, xp.full_like(ref, float(c.n_ref)), xp.clip(ref - 1, min=0.0))
    return u, v, z_new, a, ref


def readout_filter(kappa: float, rbar: Any, z: Any) -> Any:
    """``rbar(s) = kappa rbar(s-1) + (1 - kappa) z(s)``: the readout's leaky integral of the spikes."""
    return kappa * rbar + (1.0 - kappa) * z


def substep(
    c: NeuronConstants, ops: Ops, s: SpikingState, i_ext: Any, W_rec_T: Any, bias: Any, beta: Any
) -> SpikingState:
    """One substep of the network: delays, the recurrent input ``z_rec @ W_rec_T``, the neurons, the
    readout filter. ``i_ext = W_in x`` [B, N] is the input current of this input step."""
    xp = ops.xp
    i_now, in_buf = delay_line(xp, s.in_buf, i_ext)
    z_rec, z_buf = delay_line(xp, s.z_buf, s.z)
    if c.detach_recurrent:
        z_rec = ops.stop_gradient(z_rec)
    u, v, z, a, ref = neuron_update(c, ops, s.u, s.v, s.z, s.a, s.ref, i_now + z_rec @ W_rec_T, bias, beta)
    return SpikingState(u, v, z, a, ref, readout_filter(c.kappa, s.rbar, z), in_buf, z_buf)


class Partials(NamedTuple):
    """Partial derivatives of one substep w.r.t. the previous substep's state, at fixed spikes.

    The others are constants: ``du(s)/dI(s) = 1``, ``dv(s)/du(s) = dv(s)/db = 1``, ``da(s)/dz(s-1) = 1``,
    ``dx/dv = 1``, ``dx/da = -beta`` (``x = v - A``) and ``dz/dx = psi(x)`` (the surrogate, 0 on refractory
    substeps). ``v_z`` is ``None`` when the reset is detached (no gradient through it).
    """

    u_u: float  # du(s)/du(s-1) = 1 - du
    v_v: Any  # dv(s)/dv(s-1): (1 - dv)(1 - z(s-1)) for reset="zero", 1 - dv for the subtractive resets
    v_z: Any  # dv(s)/dz(s-1) through the reset: (1 - dv)(v_reset - v(s-1)) "zero", -v_th "subtract",
    #           -(1 - dv) v_th "subtract_decayed"
    a_a: float  # da(s)/da(s-1) = rho (0 without adaptation)


def partials(c: NeuronConstants, z_prev: Any, v_prev: Any = None) -> Partials:
    """The map's partial derivatives at a substep whose previous spikes / membrane are ``z_prev`` /
    ``v_prev`` (``v_prev`` is only needed for an undetached zero reset)."""
    keep = 1.0 - c.dv
    if c.reset == "zero":
        v_v = keep * (1.0 - z_prev)
        v_z = None if c.detach_reset else keep * (c.v_reset - v_prev)
    else:
        v_v = keep
        scale = keep if c.reset == "subtract_decayed" else 1.0
        v_z = None if c.detach_reset else -c.v_th * scale
    return Partials(1.0 - c.du, v_v, v_z, c.rho if c.adaptive else 0.0)
