"""Spiking twins of the rate RNN: recurrent LIF / ALIF networks.

One neuron update (a *substep*, of length ``dt / substeps`` ms), for neuron i:

    I(s)  = W_in x(s - delay_in) + W_rec z(s - 1 - delay_rec)        synaptic input
    u(s)  = (1 - du) u(s-1) + I(s)                                      synaptic current (du = 1: none)
    a(s)  = rho a(s-1) + z(s-1);   A(s) = v_th + beta a(s)              ALIF adaptive threshold (beta = 0: LIF)
    v(s)  = (1 - dv) v(s-1) + u(s) + b - v_th z(s-1)                    reset="subtract"
    v(s)  = (1 - dv) v(s-1) (1 - z(s-1)) + u(s) + b                     reset="zero"
    z(s)  = H(v(s) - A(s))  (strict >),  forced to 0 for ``refractory`` ms after a spike
    rbar(s) = kappa rbar(s-1) + (1 - kappa) z(s);  y = W_out rbar + b_out   leaky-integrator readout

Why this form: with ``du = 1`` it is the LIF of e-prop (Bellec et al. 2020) and snntorch's
``RLeaky`` (subtractive reset not decayed); with ``du < 1`` and ``reset="zero"`` it is Lava's
CUBA ``LIF`` exactly (``u = u(1-du) + a_in; v = v(1-dv) + u + bias``, spike if ``v > vth``,
``v = 0``), and ``delay_in = 1`` reproduces the one-step delay of Lava's ``Dense`` on the input
path (the recurrent path's natural one-step delay is already ``z(s-1)``); norse's
``LIFRecurrentCell`` is the same map with weights scaled by ``dv``. Decays are stored as ``du``/``dv``
(not as ``exp(-dt/tau)``) so that float arithmetic can match Lava bit for bit.

``quantize="loihi2"`` runs the same network in Loihi 2's integer arithmetic, exactly as Lava 0.10's
bit-accurate ``LIF`` + ``Dense`` models do (8-bit weight mantissas with a shared exponent, 12-bit
decays, 24-bit u/v, graded input spikes ``round(x * 2**8)``; see ``spikedyn/hardware/quantize.py``,
whose numpy quantiser both sides call): a torch run then equals a fixed-point Lava run spike for
spike. Only Lava's neuron (LIF, ``reset="zero"``, no refractory period) has a fixed-point form; the
readout stays float, computed from the spikes. It is an inference mode: the integer path has no
gradient. In that mode ``u``, ``v`` and the input buffer of the state are int64 tensors and ``v``
is stored after the reset, as in Lava.

``v`` in the state is the membrane *before* the reset of its own spike (the reset is applied by
the next update), for both reset modes; Lava stores the value after reset, so compare spikes, not
``v``, across the two. The reset is detached from the graph (``detach_reset``), as in snntorch
and norse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .base import RecurrentModel, Rollout
from .fused import fused_rollout, fused_supported
from .surrogate import DEFAULT_SLOPE, check_surrogate, spike
from .validation import check_spiking_args

NEURONS = ("lif", "alif")
RESETS = ("subtract", "zero")
QUANTIZE = (None, "loihi2")


class SpikingState(NamedTuple):
    u: Tensor  # synaptic current [B, N]
    v: Tensor  # membrane potential [B, N]
    z: Tensor  # spikes of the last substep [B, N]
    a: Tensor  # adaptation variable [B, N] (zeros for LIF)
    ref: Tensor  # refractory steps left [B, N]
    rbar: Tensor  # readout-filtered spikes [B, N]
    in_buf: Tensor  # delayed input currents [delay_in, B, N]
    z_buf: Tensor  # delayed spikes [delay_rec, B, N]


@dataclass(frozen=True)
class NeuronParams:
    """Per-substep constants of the neuron map (see module doc); built by ``SpikingRNN``."""

    du: float
    dv: float
    v_th: float
    reset: str
    rho: float
    n_ref: int
    kappa: float
    surrogate: str
    slope: float
    detach_reset: bool
    delay_in: int
    delay_rec: int
    adaptive: bool
    detach_recurrent: bool = False  # cut gradients through other neurons' spikes (e-prop's truncation)


def decay_from_tau(tau_ms: float, dt_ms: float) -> float:
    """Per-step decay increment ``1 - exp(-dt/tau)``; tau = 0 -> 1 (no memory), tau = inf -> 0."""
    if tau_ms == 0:
        return 1.0
    if math.isinf(tau_ms):
        return 0.0
    if tau_ms < 0:
        raise ValueError(f"time constants must be >= 0 ms, got {tau_ms}")
    return 1.0 - math.exp(-dt_ms / tau_ms)


def delay_line(buffer: Tensor, value: Tensor) -> tuple[Tensor, Tensor]:
    """One step of a synaptic delay of ``len(buffer)`` steps (Lava's ``Dense``/``DelayDense`` timing):
    returns (the value that arrives now, the new buffer). An empty buffer ``[0, B, N]`` is no delay."""
    if len(buffer) == 0:
        return value, buffer
    return buffer[0], torch.cat([buffer[1:], value[None]])


def spiking_substep(
    p: NeuronParams, W_rec: Tensor, b: Tensor, beta: Tensor, s: SpikingState, i_ext: Tensor
) -> SpikingState:
    """Pure neuron update: state and the input current ``i_ext = W_in x`` [B, N] -> next state."""
    i_now, in_buf = delay_line(s.in_buf, i_ext)
    z_rec, z_buf = delay_line(s.z_buf, s.z)
    if p.detach_recurrent:
        z_rec = z_rec.detach()
    u = s.u * (1.0 - p.du) + (i_now + z_rec @ W_rec.T)
    z_reset = s.z.detach() if p.detach_reset else s.z
    if p.reset == "zero":
        v = (s.v * (1.0 - z_reset)) * (1.0 - p.dv) + u + b
    else:
        v = s.v * (1.0 - p.dv) + u + b - p.v_th * z_reset
    if p.adaptive:
        a = p.rho * s.a + s.z
        threshold = p.v_th + beta * a
    else:
        a, threshold = s.a, p.v_th
    z = spike(v - threshold, p.surrogate, p.slope, p.v_th)
    ref = s.ref
    if p.n_ref:
        z = z * (s.ref <= 0).to(z.dtype)
        ref = torch.where(z.detach() > 0, torch.full_like(ref, p.n_ref), (ref - 1).clamp(min=0))
    rbar = p.kappa * s.rbar + (1.0 - p.kappa) * z
    return SpikingState(u, v, z, a, ref, rbar, in_buf, z_buf)


class Loihi2Tensors(NamedTuple):
    """Integer parameters of ``quantize="loihi2"`` (from ``spikedyn.hardware.quantize.quantize_loihi2``)."""

    w_in: Tensor  # [N, I] float64 holding Lava's integer weights (2 * mantissa)
    w_in_exp: int
    w_rec: Tensor  # [N, N] float64, integers
    w_rec_exp: int
    bias: Tensor  # [N] int64: bias_mant << bias_exp
    vth: int  # effective threshold vth << 6
    du: int
    dv: int
    input_frac_bits: int


def _shift(acc: Tensor, exp: int) -> Tensor:
    """Lava Dense's weight exponent: left shift, or arithmetic (floor) right shift for exp <= 0."""
    return acc * (2**exp) if exp > 0 else torch.div(acc, 2 ** (-exp), rounding_mode="floor")


def _decay(x: Tensor, d_complement: int) -> Tensor:
    """``sign(x * d) * (|x * d| >> 12)``: Lava's fixed-point decay, truncating toward zero."""
    return torch.div(x * d_complement, 4096, rounding_mode="trunc")


def loihi2_input(q: Loihi2Tensors, x: Tensor) -> Tensor:
    """Integer activation ``W_in X`` sent by the input Dense for inputs ``x [..., I]`` (graded spikes
    ``X = round(x * 2**input_frac_bits)``, 24-bit); int64 ``[..., N]``."""
    X = torch.round(x.double() * float(2**q.input_frac_bits))  # a power of two: exact
    X = X.clamp(-(2**23 - 1), 2**23 - 1)
    return _shift((X @ q.w_in.T).long(), q.w_in_exp)  # float64 sums of integers < 2**53: exact


def loihi2_substep(
    p: NeuronParams, q: Loihi2Tensors, s: SpikingState, a_ext: Tensor, kappa: float
) -> SpikingState:
    """One substep of Lava 0.10's bit-accurate LIF fed by two Dense processes (input, recurrent).

    ``a_ext`` is ``loihi2_input`` of the current input; ``u``, ``v`` and ``in_buf`` are int64. The
    operations are those of ``AbstractPyLifModelFixed.subthr_dynamics`` (see the hardware docs).
    """
    a_now, in_buf = delay_line(s.in_buf, a_ext)
    z_rec, z_buf = delay_line(s.z_buf, s.z)
    a_in = a_now + _shift((z_rec.double() @ q.w_rec.T).long(), q.w_rec_exp)
    u = _decay(s.u, 4096 - q.du - 1) + a_in * 64
    wrapped = torch.where(u > 2**23, u - 2**24, u)  # Lava's 24-bit wrap, written as Lava writes it
    u = torch.where(wrapped <= -(2**23), u + 2**24, wrapped)
    v = (_decay(s.v, 4096 - q.dv) + u + q.bias).clamp(-(2**23) + 1, 2**23 - 1)
    spiked = v > q.vth
    z = spiked.to(s.rbar.dtype)
    v = torch.where(spiked, torch.zeros_like(v), v)
    rbar = kappa * s.rbar + (1.0 - kappa) * z
    return SpikingState(u, v, z, s.a, s.ref, rbar, in_buf, z_buf)


class SpikingRNN(RecurrentModel):
    """Recurrent LIF / ALIF network with the same parameters and interface as ``RateRNN``.

    Args:
        n_in, n_hidden, n_out: sizes I, N, O.
        neuron: "lif" or "alif" (adaptive threshold as in e-prop's LSNN).
        dt: length of one *input* step in ms (the task's dt).
        substeps: neuron updates per input step (input held); neurons run at ``dt / substeps`` ms.
            ``r_t`` from ``step``/``forward`` is the spike count over the substeps.
        tau_mem: membrane time constant in ms (``inf`` = non-leaky integrate-and-fire).
        tau_syn: synaptic current time constant in ms (0 = no current variable, e-prop/snntorch LIF).
        du, dv: per-substep decays given directly (Lava's parameters); override tau_syn / tau_mem.
        v_th: firing threshold. reset: "subtract" | "zero". refractory: dead time after a spike, ms.
        tau_adapt: adaptation time constant in ms; beta_adapt: threshold increase per spike (ALIF).
        n_adaptive: number of ALIF units (the first ones); default all when neuron="alif".
        tau_out: readout filter time constant in ms (0 = readout of the raw spikes).
        surrogate: "fast_sigmoid" | "triangle" | "atan"; surrogate_slope: its slope (None = default).
        delay_in, delay_rec: extra synaptic delays in substeps on the input / recurrent path.
        self_connections: keep the diagonal of W_rec (e-prop and norse exclude it).
        gain: W_rec ~ N(0, gain^2 / N) at initialisation; W_in ~ N(0, 1 / I).
        quantize: None (float) or "loihi2": run in Loihi 2's integer arithmetic, bit-exact with Lava's
            fixed-point LIF (inference only; needs neuron="lif", reset="zero", refractory=0).
    """

    kind = "spiking"

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        neuron: str = "lif",
        dt: float = 1.0,
        substeps: int = 1,
        tau_mem: float = 20.0,
        tau_syn: float = 0.0,
        du: float | None = None,
        dv: float | None = None,
        v_th: float = 1.0,
        reset: str = "subtract",
        refractory: float = 0.0,
        tau_adapt: float = 2000.0,
        beta_adapt: float = 0.07,
        n_adaptive: int | None = None,
        tau_out: float = 20.0,
        surrogate: str = "fast_sigmoid",
        surrogate_slope: float | None = None,
        delay_in: int = 0,
        delay_rec: int = 0,
        self_connections: bool = True,
        detach_reset: bool = True,
        gain: float = 1.0,
        bias: bool = True,
        quantize: str | None = None,
    ) -> None:
        super().__init__(n_in, n_hidden, n_out)
        check_spiking_args(dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, tau_adapt=tau_adapt, tau_out=tau_out,
                           refractory=refractory, v_th=v_th, gain=gain, beta_adapt=beta_adapt,
                           surrogate_slope=surrogate_slope)
        if neuron not in NEURONS:
            raise ValueError(f"unknown neuron {neuron!r}; choose one of {list(NEURONS)}")
        if reset not in RESETS:
            raise ValueError(f"unknown reset {reset!r}; choose one of {list(RESETS)}")
        check_surrogate(surrogate)
        if dt <= 0 or int(substeps) != substeps or substeps < 1:
            raise ValueError(f"dt must be > 0 ms and substeps a positive integer, got dt={dt}, substeps={substeps}")
        if v_th <= 0:
            raise ValueError(f"v_th must be > 0, got {v_th}")
        if delay_in < 0 or delay_rec < 0 or int(delay_in) != delay_in or int(delay_rec) != delay_rec:
            raise ValueError("delay_in and delay_rec are non-negative integers (substeps)")
        for name, val in (("du", du), ("dv", dv)):
            if val is not None and not 0.0 <= val <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {val}")
        self.neuron, self.dt, self.substeps = neuron, float(dt), int(substeps)
        self.tau_mem, self.tau_syn, self.tau_adapt, self.tau_out = tau_mem, tau_syn, tau_adapt, tau_out
        self.v_th, self.reset, self.refractory = float(v_th), reset, float(refractory)
        self.beta_adapt = float(beta_adapt) if neuron == "alif" else 0.0
        self.n_adaptive = (n_hidden if n_adaptive is None else int(n_adaptive)) if neuron == "alif" else 0
        if not 0 <= self.n_adaptive <= n_hidden:
            raise ValueError(f"n_adaptive must be in [0, n_hidden], got {n_adaptive}")
        self.surrogate, self.surrogate_slope = surrogate, surrogate_slope
        self.delay_in, self.delay_rec = int(delay_in), int(delay_rec)
        self.self_connections, self.detach_reset = bool(self_connections), bool(detach_reset)
        self.gain, self.has_bias = float(gain), bool(bias)
        self._q_cache: tuple[Any, Loihi2Tensors] | None = None
        self._du_arg, self._dv_arg = du, dv
        dt_sub = self.dt / self.substeps
        self.params = NeuronParams(
            du=float(du) if du is not None else decay_from_tau(tau_syn, dt_sub),
            dv=float(dv) if dv is not None else decay_from_tau(tau_mem, dt_sub),
            v_th=self.v_th,
            reset=reset,
            rho=math.exp(-dt_sub / tau_adapt) if tau_adapt > 0 else 0.0,
            n_ref=int(round(refractory / dt_sub)),
            kappa=math.exp(-dt_sub / tau_out) if tau_out > 0 else 0.0,
            surrogate=surrogate,
            slope=DEFAULT_SLOPE[surrogate] if surrogate_slope is None else float(surrogate_slope),
            detach_reset=self.detach_reset,
            delay_in=self.delay_in,
            delay_rec=self.delay_rec,
            adaptive=self.n_adaptive > 0,
        )
        self._init_input_and_recurrent(gain, bias)
        beta = torch.zeros(n_hidden)
        beta[: self.n_adaptive] = self.beta_adapt
        self.register_buffer("beta", beta)
        self.register_buffer("rec_mask", 1.0 - torch.eye(n_hidden) if not self_connections else torch.ones(0))
        if not self_connections:
            with torch.no_grad():
                self.W_rec.mul_(self.rec_mask)
        self.quantize = quantize
        self._check_quantize()

    # -- Loihi 2 fixed point ------------------------------------------------------------------
    def _check_quantize(self) -> None:
        if self.quantize not in QUANTIZE:
            raise ValueError(f"unknown quantize {self.quantize!r}; choose None or 'loihi2'")
        if self.quantize and (self.n_adaptive or self.reset != "zero" or self.params.n_ref):
            raise ValueError(
                "quantize='loihi2' is Lava's fixed-point LIF: it needs neuron='lif', reset='zero' and "
                f"refractory=0 (got neuron={self.neuron!r}, reset={self.reset!r}, "
                f"refractory={self.refractory})"
            )

    def loihi2_params(self) -> Loihi2Tensors:
        """The integer parameters of the current weights (cached until a parameter changes)."""
        from spikedyn.hardware.quantize import quantize_loihi2

        key = tuple((t.data_ptr(), t._version) for t in (self.W_in, self.W_rec, self.b))
        if self._q_cache is not None and self._q_cache[0] == key:
            return self._q_cache[1]
        q = quantize_loihi2(
            *(t.detach().cpu().double().numpy() for t in (self.W_in, self.W_rec_eff, self.b)),
            v_th=self.v_th, du=self.params.du, dv=self.params.dv,
        )  # fmt: skip
        dev = self.device
        qt = Loihi2Tensors(
            w_in=torch.as_tensor(q.w_in, dtype=torch.float64, device=dev), w_in_exp=q.w_in_exp,
            w_rec=torch.as_tensor(q.w_rec, dtype=torch.float64, device=dev), w_rec_exp=q.w_rec_exp,
            bias=torch.as_tensor(q.effective_bias, dtype=torch.int64, device=dev), vth=q.vth * 64,
            du=q.du, dv=q.dv, input_frac_bits=q.input_frac_bits,
        )  # fmt: skip
        self._q_cache = (key, qt)
        return qt

    def _input_current(self, u: Tensor) -> Tensor:
        """What the input synapses deliver for inputs ``u [..., I]``: ``W_in u`` (float) or Lava's
        integer activation (quantize="loihi2")."""
        self._check_quantize()
        return loihi2_input(self.loihi2_params(), u) if self.quantize else u @ self.W_in.T

    # -- protocol -------------------------------------------------------------------------
    @property
    def W_rec_eff(self) -> Tensor:
        """W_rec as the network uses it (diagonal masked when self-connections are excluded)."""
        return self.W_rec if self.self_connections else self.W_rec * self.rec_mask

    def config(self) -> dict[str, Any]:
        return {
            **super().config(),
            "neuron": self.neuron, "dt": self.dt, "substeps": self.substeps,
            "tau_mem": self.tau_mem, "tau_syn": self.tau_syn, "du": self._du_arg, "dv": self._dv_arg,
            "v_th": self.v_th, "reset": self.reset, "refractory": self.refractory,
            "tau_adapt": self.tau_adapt, "beta_adapt": self.beta_adapt,
            "n_adaptive": self.n_adaptive if self.neuron == "alif" else None,
            "tau_out": self.tau_out, "surrogate": self.surrogate, "surrogate_slope": self.surrogate_slope,
            "delay_in": self.delay_in, "delay_rec": self.delay_rec,
            "self_connections": self.self_connections, "detach_reset": self.detach_reset,
            "gain": self.gain, "bias": self.has_bias, "quantize": self.quantize,
        }  # fmt: skip

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> SpikingState:
        zeros = torch.zeros(batch, self.n_hidden, device=self.device, dtype=self.dtype)
        if self.quantize:
            ints = torch.zeros(batch, self.n_hidden, device=self.device, dtype=torch.int64)
            return SpikingState(
                ints, ints, zeros, zeros, zeros, zeros,
                ints.new_zeros((self.delay_in, batch, self.n_hidden)),
                zeros.new_zeros((self.delay_rec, batch, self.n_hidden)),
            )  # fmt: skip
        return SpikingState(
            zeros, zeros, zeros, zeros, zeros, zeros,
            zeros.new_zeros((self.delay_in, batch, self.n_hidden)),
            zeros.new_zeros((self.delay_rec, batch, self.n_hidden)),
        )  # fmt: skip

    def substep(self, state: SpikingState, i_ext: Tensor) -> SpikingState:
        """One neuron update given the input current ``i_ext = W_in x`` [B, N] (quantized: the
        integer activation from ``loihi2_input``)."""
        if self.quantize:
            return loihi2_substep(self.params, self.loihi2_params(), state, i_ext, self.params.kappa)
        return spiking_substep(self.params, self.W_rec_eff, self.b, self.beta, state, i_ext)

    def step(self, state: SpikingState, u_t: Tensor) -> tuple[SpikingState, Tensor]:
        i_ext = self._input_current(u_t)
        count = torch.zeros_like(state.z)
        for _ in range(self.substeps):
            state = self.substep(state, i_ext)
            count = count + state.z
        return state, count

    def output(self, state: SpikingState) -> Tensor:
        return state.rbar @ self.W_out.T + self.b_out

    def forward(self, u: Tensor, state: SpikingState | None = None, detach_recurrent: bool = False) -> Rollout:
        """Roll out over ``u [T, B, I]``; ``r`` holds spike counts per input step [T, B, N].

        ``detach_recurrent=True`` cuts the gradient through the recurrent spikes ``W_rec z`` (each
        neuron keeps its own leak, reset and adaptation paths): autograd then computes e-prop's
        truncated gradient (Bellec et al. 2020), the reference the online rule is tested against.
        """
        u = self._check_input(u)
        if state is None and torch.is_grad_enabled() and fused_supported(self):
            return self._forward_fused(u, detach_recurrent)
        state = self.init_state(u.shape[1]) if state is None else state
        if self.quantize:
            return self.loop(u, state)
        # unbind, not i_ext[t]: each indexing's backward would allocate a zero [T, B, N] (O(T^2) time)
        i_ext = (u @ self.W_in.T).unbind(0)
        params = replace(self.params, detach_recurrent=True) if detach_recurrent else self.params
        W_rec, counts, rbars = self.W_rec_eff, [], []
        for i_t in i_ext:
            count = None
            for _ in range(self.substeps):
                state = spiking_substep(params, W_rec, self.b, self.beta, state, i_t)
                count = state.z if count is None else count + state.z
            counts.append(count)
            rbars.append(state.rbar)
        return Rollout(torch.stack(rbars) @ self.W_out.T + self.b_out, torch.stack(counts), state)

    def _forward_fused(self, u: Tensor, detach_recurrent: bool) -> Rollout:
        """Training path: same spikes as the loop, gradients from the hand-derived backward in ``fused.py``
        (2-4x faster than autograd through the loop on CPU)."""
        rbar, counts, *final = fused_rollout(self, u @ self.W_in.T, truncated=detach_recurrent)
        B, N = u.shape[1], self.n_hidden
        state = SpikingState(*final, rbar[-1].detach(), final[0].new_zeros((0, B, N)), final[0].new_zeros((0, B, N)))
        return Rollout(rbar @ self.W_out.T + self.b_out, counts, state)

    def spike_trains(self, u: Tensor) -> Tensor:
        """Spikes at every substep ``[T * substeps, B, N]`` (no gradient), for raster plots and parity checks."""
        u = self._check_input(u)
        with torch.no_grad():
            state, out = self.init_state(u.shape[1]), []
            for i_t in self._input_current(u).unbind(0):
                for _ in range(self.substeps):
                    state = self.substep(state, i_t)
                    out.append(state.z)
        return torch.stack(out)

    def filtered_spikes(self, u: Tensor) -> Tensor:
        """The readout's low-pass-filtered spikes ``r̄`` ``[T, B, N]`` at the end of each input step (no
        gradient), so that ``y = r̄ W_outᵀ + b_out``. For a mirrored twin, ``mirror_scale * r̄`` is its
        estimate of the rate net's ``f(x)``."""
        u = self._check_input(u)
        with torch.no_grad():
            state, out = self.init_state(u.shape[1]), []
            for i_t in self._input_current(u).unbind(0):
                for _ in range(self.substeps):
                    state = self.substep(state, i_t)
                out.append(state.rbar)
        return torch.stack(out)
