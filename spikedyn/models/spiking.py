"""Spiking twins of the rate RNN: recurrent LIF / ALIF networks (``SpikingRNN``) and their Loihi-2
fixed-point body (``Loihi2RNN``).

The neuron update is the one map of ``spikedyn/hardware/neuron.py`` (its module doc has the equations:
synaptic current, leak toward ``v_leak``, reset by subtraction or to ``v_reset``, refractoriness, ALIF
adaptation, delays, the readout filter); this module runs it on torch tensors with a surrogate gradient.

Why this form: with ``du = 1`` it is the LIF of e-prop (Bellec et al. 2020) and snntorch's
``RLeaky`` (subtractive reset not decayed); with ``du < 1`` and ``reset="zero"`` it is Lava's
CUBA ``LIF`` exactly (``u = u(1-du) + a_in; v = v(1-dv) + u + bias``, spike if ``v > vth``,
``v = 0``), and ``delay_in = 1`` reproduces the one-step delay of Lava's ``Dense`` on the input
path (the recurrent path's natural one-step delay is already ``z(s-1)``); norse's
``LIFRecurrentCell`` is the same map with weights scaled by ``dv``; ``v_leak``/``v_reset`` give NIR's
LIF. Decays are stored once, as the per-substep constants ``du, dv, rho, kappa`` (not as
``exp(-dt/tau)``), so that float arithmetic can match Lava bit for bit and ``config()`` rebuilds the same
model; the time constants ``tau_mem`` etc. are derived from them.

``Loihi2RNN`` (``model.quantized("loihi2")``) runs the same network in Loihi 2's integer arithmetic,
exactly as Lava 0.10's bit-accurate ``LIF`` + ``Dense`` models do (8-bit weight mantissas with a shared
exponent, 12-bit decays, 24-bit u/v, graded input spikes ``round(x * 2**8)``; see
``spikedyn/hardware/quantize.py``, whose quantiser and fixed-point substep both sides call): a torch run
then equals a fixed-point Lava run spike for spike. Only Lava's neuron (LIF, ``reset="zero"``, no
refractory period, ``v_leak = v_reset = 0``) has a fixed-point form; the readout stays float, computed
from the spikes. It is an inference body: the integer path has no gradient. Its state holds int64
``u``, ``v`` and input buffer, and ``v`` is stored after the reset, as in Lava.

``v`` in the float state is the membrane *before* the reset of its own spike (the reset is applied by
the next update), for both reset modes; Lava stores the value after reset, so compare spikes, not
``v``, across the two. The reset is detached from the graph (``detach_reset``), as in snntorch
and norse.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import torch
from array_api_compat import array_namespace
from torch import Tensor

from spikedyn.hardware import neuron
from spikedyn.hardware.neuron import NeuronConstants, Ops, SpikingState
from spikedyn.hardware.quantize import FixedConstants, fixed_substep, shift

from .base import RecurrentModel, Rollout, rollout
from .fused import eval_rollout, fused_rollout, fused_supported
from .surrogate import DEFAULT_SLOPE, _SpikeFn, check_surrogate
from .validation import check_spiking_args

_XP = array_namespace(torch.zeros(0))

NEURONS = ("lif", "alif")
RESETS = ("subtract", "zero")
QUANTIZE = (None, "loihi2")


@dataclass(frozen=True)
class NeuronParams(NeuronConstants):
    """The map's per-substep constants (``spikedyn.hardware.neuron.NeuronConstants``) plus the surrogate
    gradient of the spike; built by ``SpikingRNN``."""

    surrogate: str = "fast_sigmoid"
    slope: float = DEFAULT_SLOPE["fast_sigmoid"]


@functools.lru_cache(maxsize=64)
def torch_ops(surrogate: str, slope: float, v_th: float) -> Ops:
    """The map's ``Ops`` for torch tensors: the spike with the named surrogate gradient, ``detach``."""
    xp = array_namespace(torch.zeros(0))
    return Ops(xp, lambda x: _SpikeFn.apply(x, surrogate, slope, v_th), Tensor.detach)


def ops_of(p: NeuronParams) -> Ops:
    return torch_ops(p.surrogate, p.slope, p.v_th)


def tau_from_decay(d: float, dt_ms: float) -> float:
    """The time constant of a per-step decay increment ``d = 1 - exp(-dt/tau)`` (inverse of ``decay_from_tau``)."""
    if d >= 1.0:
        return 0.0
    if d <= 0.0:
        return math.inf
    return -dt_ms / math.log1p(-d)


def tau_from_retention(r: float, dt_ms: float) -> float:
    """The time constant of a per-step retention ``r = exp(-dt/tau)`` (rho, kappa); r = 0 -> 0."""
    if r <= 0.0:
        return 0.0
    if r >= 1.0:
        return math.inf
    return -dt_ms / math.log(r)


def retention_from_tau(tau_ms: float, dt_ms: float) -> float:
    """``exp(-dt/tau)``: the fraction kept per step (rho, kappa); tau = 0 -> 0."""
    if tau_ms < 0:
        raise ValueError(f"time constants must be >= 0 ms, got {tau_ms}")
    return math.exp(-dt_ms / tau_ms) if tau_ms > 0 else 0.0


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
    """One step of a synaptic delay of ``len(buffer)`` steps (``spikedyn.hardware.neuron.delay_line``)."""
    return neuron.delay_line(_XP, buffer, value)


def spiking_substep(
    p: NeuronParams, W_rec: Tensor, b: Tensor, beta: Tensor, s: SpikingState, i_ext: Tensor
) -> SpikingState:
    """Pure neuron update: state and the input current ``i_ext = W_in x`` [B, N] -> next state (the one
    map, ``spikedyn.hardware.neuron.substep``, on torch tensors). ``mT``: also for a Population's stacked
    ``[E, N, N]`` weights with ``[E, B, N]`` states."""
    return neuron.substep(p, ops_of(p), s, i_ext, W_rec.mT, b, beta)


class Loihi2Tensors(NamedTuple):
    """Integer parameters of the ``Loihi2RNN`` body (from ``spikedyn.hardware.quantize.quantize_loihi2``)."""

    w_in: Tensor  # [N, I] float64 holding Lava's integer weights (2 * mantissa)
    w_in_exp: int
    w_rec: Tensor  # [N, N] float64, integers
    w_rec_exp: int
    bias: Tensor  # [N] int64: bias_mant << bias_exp
    vth: int  # effective threshold vth << 6
    du: int
    dv: int
    input_frac_bits: int


def loihi2_input(q: Loihi2Tensors, x: Tensor) -> Tensor:
    """Integer activation ``W_in X`` sent by the input Dense for inputs ``x [..., I]`` (graded spikes
    ``X = round(x * 2**input_frac_bits)``, 24-bit); int64 ``[..., N]``."""
    X = torch.round(x.double() * float(2**q.input_frac_bits))  # a power of two: exact
    X = X.clamp(-(2**23 - 1), 2**23 - 1)
    return shift((X @ q.w_in.T).long(), q.w_in_exp)  # float64 sums of integers < 2**53: exact


def loihi2_substep(
    p: NeuronParams, q: Loihi2Tensors, s: SpikingState, a_ext: Tensor, kappa: float
) -> SpikingState:
    """One substep of Lava 0.10's bit-accurate LIF fed by two Dense processes (input, recurrent):
    ``spikedyn.hardware.quantize.fixed_substep`` on torch tensors. ``a_ext`` is ``loihi2_input`` of the
    current input; ``u``, ``v`` and ``in_buf`` are int64."""

    def recurrent(z_rec: Tensor) -> Tensor:  # float64 sums of integers < 2**53: exact, and fast on CPU/GPU
        return shift((z_rec.double() @ q.w_rec.T).long(), q.w_rec_exp)

    return fixed_substep(FixedConstants(q.du, q.dv, q.vth, kappa), s, a_ext, recurrent, q.bias)


_QUANTIZE_WARNED = False


def _warn_quantize_once() -> None:
    global _QUANTIZE_WARNED
    if not _QUANTIZE_WARNED:
        _QUANTIZE_WARNED = True
        import warnings

        warnings.warn("SpikingRNN(quantize='loihi2') / model.quantize = ... is deprecated: use "
                      "model.quantized('loihi2') (a Loihi2RNN) or Loihi2RNN(...)", DeprecationWarning, stacklevel=3)


class SpikingRNN(RecurrentModel):
    """Recurrent LIF / ALIF network with the same parameters and interface as ``RateRNN`` (the float body).

    Args:
        n_in, n_hidden, n_out: sizes I, N, O.
        neuron: "lif" or "alif" (adaptive threshold as in e-prop's LSNN).
        dt: length of one *input* step in ms (the task's dt).
        substeps: neuron updates per input step (input held); neurons run at ``dt / substeps`` ms.
            ``r_t`` from ``step``/``forward`` is the spike count over the substeps.
        tau_mem: membrane time constant in ms (``inf`` = non-leaky integrate-and-fire).
        tau_syn: synaptic current time constant in ms (0 = no current variable, e-prop/snntorch LIF).
        du, dv: per-substep decays given directly (Lava's parameters); override tau_syn / tau_mem.
        v_th: firing threshold. reset: "subtract" | "zero" (to ``v_reset``). refractory: dead time after
            a spike, ms (rounded to whole substeps).
        tau_adapt: adaptation time constant in ms; beta_adapt: threshold increase per spike (ALIF).
        n_adaptive: number of ALIF units (the first ones); default all when neuron="alif".
        tau_out: readout filter time constant in ms (0 = readout of the raw spikes).
        surrogate: "fast_sigmoid" | "triangle" | "atan"; surrogate_slope: its slope (None = default).
        delay_in, delay_rec: extra synaptic delays in substeps on the input / recurrent path.
        self_connections: keep the diagonal of W_rec (e-prop and norse exclude it).
        gain: W_rec ~ N(0, gain^2 / N) at initialisation; W_in ~ N(0, 1 / I).
        quantize: deprecated (warns once); ``quantize="loihi2"`` builds a ``Loihi2RNN``.
        rho, kappa: per-substep adaptation / readout retentions given directly; override tau_adapt / tau_out.
        v_leak: the membrane leaks toward ``v_leak`` (NIR's LIF); v_reset: the value ``reset="zero"``
            resets to (NIR's ``v_reset``; 0 = Lava's LIF).

    The decays ``du, dv, rho, kappa`` (``model.params``) are what the model stores; ``tau_mem``,
    ``tau_syn``, ``tau_adapt``, ``tau_out`` are derived from them, and ``config()`` writes the decays, so
    ``from_config(model.config())`` rebuilds exactly the same map.
    """

    kind = "spiking"
    # the recurrence / dW kernel of the training path (``kernels.py``): "auto" picks the sparse-spike
    # kernels at low firing rates on the CPU, "dense" / "sparse" force one (a runtime setting, not config)
    spike_path: str = "auto"

    def __new__(cls, *args: Any, quantize: str | None = None, **kwargs: Any) -> SpikingRNN:
        if quantize is not None and cls is SpikingRNN:
            if quantize not in QUANTIZE:
                raise ValueError(f"unknown quantize {quantize!r}; choose None or 'loihi2'")
            _warn_quantize_once()
            cls = Loihi2RNN
        return super().__new__(cls)

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
        rho: float | None = None,
        kappa: float | None = None,
        v_leak: float = 0.0,
        v_reset: float = 0.0,
    ) -> None:
        super().__init__(n_in, n_hidden, n_out)
        check_spiking_args(dt=dt, tau_mem=tau_mem, tau_syn=tau_syn, tau_adapt=tau_adapt, tau_out=tau_out,
                           refractory=refractory, v_th=v_th, gain=gain, beta_adapt=beta_adapt,
                           surrogate_slope=surrogate_slope, v_leak=v_leak, v_reset=v_reset)
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
        for name, val in (("du", du), ("dv", dv), ("rho", rho), ("kappa", kappa)):
            if val is not None and not 0.0 <= val <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {val}")
        if v_reset and reset != "zero":
            raise ValueError(f"v_reset is the value reset='zero' resets to; reset={reset!r} subtracts v_th")
        self.neuron, self.dt, self.substeps = neuron, float(dt), int(substeps)
        self.beta_adapt = float(beta_adapt) if neuron == "alif" else 0.0
        self.n_adaptive = (n_hidden if n_adaptive is None else int(n_adaptive)) if neuron == "alif" else 0
        if not 0 <= self.n_adaptive <= n_hidden:
            raise ValueError(f"n_adaptive must be in [0, n_hidden], got {n_adaptive}")
        self.surrogate_slope = surrogate_slope
        self.self_connections = bool(self_connections)
        self.gain, self.has_bias = float(gain), bool(bias)
        dt_sub = self.dt / self.substeps
        self.params = NeuronParams(
            du=float(du) if du is not None else decay_from_tau(tau_syn, dt_sub),
            dv=float(dv) if dv is not None else decay_from_tau(tau_mem, dt_sub),
            v_th=float(v_th),
            reset=reset,
            rho=float(rho) if rho is not None else retention_from_tau(tau_adapt, dt_sub),
            n_ref=int(round(refractory / dt_sub)),
            kappa=float(kappa) if kappa is not None else retention_from_tau(tau_out, dt_sub),
            surrogate=surrogate,
            slope=DEFAULT_SLOPE[surrogate] if surrogate_slope is None else float(surrogate_slope),
            detach_reset=bool(detach_reset),
            delay_in=int(delay_in),
            delay_rec=int(delay_rec),
            adaptive=self.n_adaptive > 0,
            v_leak=float(v_leak),
            v_reset=float(v_reset),
        )
        self._init_input_and_recurrent(gain, bias)
        beta = torch.zeros(n_hidden)
        beta[: self.n_adaptive] = self.beta_adapt
        self.register_buffer("beta", beta)
        self.register_buffer("rec_mask", 1.0 - torch.eye(n_hidden) if not self_connections else torch.ones(0))
        if not self_connections:
            with torch.no_grad():
                self.W_rec.mul_(self.rec_mask)

    # -- the stored constants and what is derived from them ----------------------------------------
    @property
    def dt_sub(self) -> float:
        """Length of one neuron update (substep) in ms."""
        return self.dt / self.substeps

    v_th = property(lambda self: self.params.v_th, doc="firing threshold")
    reset = property(lambda self: self.params.reset, doc='"subtract" | "zero"')
    surrogate = property(lambda self: self.params.surrogate, doc="surrogate gradient name")
    delay_in = property(lambda self: self.params.delay_in, doc="input delay, substeps")
    delay_rec = property(lambda self: self.params.delay_rec, doc="recurrent delay, substeps")
    detach_reset = property(lambda self: self.params.detach_reset, doc="no gradient through the reset")
    v_leak = property(lambda self: self.params.v_leak, doc="the membrane's resting value")
    v_reset = property(lambda self: self.params.v_reset, doc='the value reset="zero" resets to')
    tau_mem = property(lambda self: tau_from_decay(self.params.dv, self.dt_sub), doc="membrane tau, ms (from dv)")
    tau_syn = property(lambda self: tau_from_decay(self.params.du, self.dt_sub), doc="synaptic tau, ms (from du)")
    tau_adapt = property(lambda self: tau_from_retention(self.params.rho, self.dt_sub), doc="adaptation tau, ms")
    tau_out = property(lambda self: tau_from_retention(self.params.kappa, self.dt_sub), doc="readout tau, ms")
    refractory = property(lambda self: self.params.n_ref * self.dt_sub, doc="refractory period, ms")

    @property
    def quantize(self) -> str | None:
        """None for the float body, "loihi2" for ``Loihi2RNN`` (setting it is deprecated)."""
        return None

    @quantize.setter
    def quantize(self, value: str | None) -> None:
        if value not in QUANTIZE:
            raise ValueError(f"unknown quantize {value!r}; choose None or 'loihi2'")
        _warn_quantize_once()
        self.__class__ = SpikingRNN if value is None else Loihi2RNN
        if value is not None:
            self._check_loihi2()

    def quantized(self, kind: str = "loihi2") -> Loihi2RNN:
        """This network's Loihi-2 fixed-point body: a ``Loihi2RNN`` with the same config and a copy of the
        weights (on the same device)."""
        if kind != "loihi2":
            raise ValueError(f"unknown fixed-point body {kind!r}; spikedyn has 'loihi2'")
        cfg = self.config()
        cfg.pop("kind")
        q = Loihi2RNN(**cfg).to(device=self.device, dtype=self.dtype)
        q.load_state_dict(self.state_dict())
        if hasattr(self, "mirror_scale"):
            q.mirror_scale = self.mirror_scale
        return q

    @property
    def W_rec_eff(self) -> Tensor:
        """W_rec as the network uses it (diagonal masked when self-connections are excluded)."""
        return self.W_rec if self.self_connections else self.W_rec * self.rec_mask

    def config(self) -> dict[str, Any]:
        p = self.params
        return {
            **super().config(),
            "neuron": self.neuron, "dt": self.dt, "substeps": self.substeps,
            "du": p.du, "dv": p.dv, "rho": p.rho, "kappa": p.kappa,
            "v_th": p.v_th, "reset": p.reset, "refractory": self.refractory,
            "beta_adapt": self.beta_adapt, "n_adaptive": self.n_adaptive if self.neuron == "alif" else None,
            "surrogate": p.surrogate, "surrogate_slope": self.surrogate_slope,
            "delay_in": p.delay_in, "delay_rec": p.delay_rec,
            "self_connections": self.self_connections, "detach_reset": p.detach_reset,
            "gain": self.gain, "bias": self.has_bias, "v_leak": p.v_leak, "v_reset": p.v_reset,
        }  # fmt: skip

    def extra_repr(self) -> str:
        p = self.params
        out = (f"{self.n_in}, {self.n_hidden}, {self.n_out}, neuron={self.neuron!r}, dt={self.dt:g} ms, "
               f"substeps={self.substeps}, tau_mem={self.tau_mem:.4g} ms, tau_syn={self.tau_syn:.4g} ms, "
               f"v_th={p.v_th:g}, reset={p.reset!r}, tau_out={self.tau_out:.4g} ms")  # fmt: skip
        if self.n_adaptive:
            out += f", n_adaptive={self.n_adaptive}, tau_adapt={self.tau_adapt:.4g} ms, beta={self.beta_adapt:g}"
        if p.n_ref:
            out += f", refractory={self.refractory:g} ms"
        if p.v_leak or p.v_reset:
            out += f", v_leak={p.v_leak:g}, v_reset={p.v_reset:g}"
        if p.delay_in or p.delay_rec:
            out += f", delay_in={p.delay_in}, delay_rec={p.delay_rec}"
        return out

    # -- protocol -------------------------------------------------------------------------
    def init_state(self, batch: int, generator: torch.Generator | None = None) -> SpikingState:
        zeros = torch.zeros(batch, self.n_hidden, device=self.device, dtype=self.dtype)
        return SpikingState(
            zeros, zeros, zeros, zeros, zeros, zeros,
            zeros.new_zeros((self.delay_in, batch, self.n_hidden)),
            zeros.new_zeros((self.delay_rec, batch, self.n_hidden)),
        )  # fmt: skip

    def _input_current(self, u: Tensor) -> Tensor:
        """What the input synapses deliver for inputs ``u [..., I]``: ``W_in u``."""
        return u @ self.W_in.T

    def substep(self, state: SpikingState, i_ext: Tensor) -> SpikingState:
        """One neuron update (a substep, ``dt / substeps`` ms) given the input current ``i_ext = W_in x``
        [B, N], in units of the membrane potential (of ``v_th``; added to the synaptic current ``u``)."""
        return spiking_substep(self.params, self.W_rec_eff, self.b, self.beta, state, i_ext)

    def _substep_fn(self, detach_recurrent: bool = False) -> Any:
        """``substep`` with the weights bound once for a whole rollout."""
        params = replace(self.params, detach_recurrent=True) if detach_recurrent else self.params
        W_rec, b, beta = self.W_rec_eff, self.b, self.beta
        return lambda s, i_t: spiking_substep(params, W_rec, b, beta, s, i_t)

    def _rollout(self, u: Tensor, state: SpikingState, detach_recurrent: bool = False) -> tuple[list, list, Any]:
        """The one rollout of every loop (``step``, ``forward``, ``spike_trains``, ``filtered_spikes``):
        per input step the readout trace r̄ and the spikes of each substep, and the final state."""
        sub, K = self._substep_fn(detach_recurrent), self.substeps

        def input_step(s: SpikingState, i_t: Tensor) -> tuple[SpikingState, list[Tensor]]:
            zs = []
            for _ in range(K):
                s = sub(s, i_t)
                zs.append(s.z)
            return s, zs

        # unbind, not i_ext[t]: each indexing's backward would allocate a zero [T, B, N] (O(T^2) time)
        return rollout(input_step, lambda s: s.rbar, self._input_current(u).unbind(0), state)

    def step(self, state: SpikingState, u_t: Tensor) -> tuple[SpikingState, Tensor]:
        _, (zs,), state = self._rollout(u_t[None], state)
        return state, sum(zs[1:], zs[0])

    def output(self, state: SpikingState) -> Tensor:
        return state.rbar @ self.W_out.T + self.b_out

    def forward(self, u: Tensor, state: SpikingState | None = None, detach_recurrent: bool = False) -> Rollout:
        """Roll out over ``u [T, B, I]``; ``r`` holds spike counts per input step [T, B, N].

        ``detach_recurrent=True`` cuts the gradient through the recurrent spikes ``W_rec z`` (each
        neuron keeps its own leak, reset and adaptation paths): autograd then computes e-prop's
        truncated gradient (Bellec et al. 2020), the reference the online rule is tested against.
        From rest, the fused path runs: with gradients ``fused_rollout``; without (``torch.no_grad()``,
        evaluation) the Triton forward-only kernel where the kernels are wanted (``fused.eval_rollout``: CUDA,
        or ``SPIKEDYN_TRITON=on``), else the map's loop below.
        """
        u = self._check_input(u)
        if state is None and fused_supported(self):
            if torch.is_grad_enabled():
                return self._forward_fused(u, detach_recurrent)
            out = eval_rollout(self, u)  # no gradient: the Triton forward-only kernel where wanted
            if out is not None:
                return self._rollout_of(*out)
        state = self.init_state(u.shape[1]) if state is None else state
        rbars, zs, state = self._rollout(u, state, detach_recurrent)
        counts = torch.stack([sum(z[1:], z[0]) for z in zs])
        return Rollout(torch.stack(rbars) @ self.W_out.T + self.b_out, counts, state)

    def _forward_fused(self, u: Tensor, detach_recurrent: bool) -> Rollout:
        """Training path: same spikes as the loop, gradients from the hand-derived backward in ``fused.py``
        (2-4x faster than autograd through the loop on CPU)."""
        return self._rollout_of(*fused_rollout(self, u @ self.W_in.T, truncated=detach_recurrent))

    def _rollout_of(self, rbar: Tensor, counts: Tensor, *final: Tensor) -> Rollout:
        """The ``Rollout`` of the fused paths' outputs: rbar and counts ``[T, B, N]``, the final u, v, z, a, ref."""
        B, N = rbar.shape[1], self.n_hidden
        state = SpikingState(*final, rbar[-1].detach(), final[0].new_zeros((0, B, N)), final[0].new_zeros((0, B, N)))
        return Rollout(rbar @ self.W_out.T + self.b_out, counts, state)

    def spike_trains(self, u: Tensor) -> Tensor:
        """Spikes at every substep ``[T * substeps, B, N]`` (no gradient), for raster plots and parity checks."""
        u = self._check_input(u)
        with torch.no_grad():
            _, zs, _ = self._rollout(u, self.init_state(u.shape[1]))
        return torch.stack([z for z_t in zs for z in z_t])

    def filtered_spikes(self, u: Tensor) -> Tensor:
        """The readout's low-pass-filtered spikes ``r̄`` ``[T, B, N]`` at the end of each input step (no
        gradient), so that ``y = r̄ W_outᵀ + b_out``. For a mirrored twin, ``mirror_scale * r̄`` is its
        estimate of the rate net's ``f(x)``."""
        u = self._check_input(u)
        with torch.no_grad():
            rbars, _, _ = self._rollout(u, self.init_state(u.shape[1]))
        return torch.stack(rbars)

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Any:
        """The surrogate Jacobian of the membrane dynamics (``spikedyn.models.tangent.SpikingDynamics``)."""
        if detach_recurrent:
            return super().tangent_dynamics(detach_recurrent)
        from .tangent import SpikingDynamics

        return SpikingDynamics(self)


class Loihi2RNN(SpikingRNN):
    """The Loihi-2 fixed-point body of a ``SpikingRNN``: the same network in Lava 0.10's bit-accurate
    integer arithmetic (module doc), for inference. Build it with ``model.quantized("loihi2")`` or with
    ``SpikingRNN``'s arguments (needs ``neuron="lif"``, ``reset="zero"``, ``refractory=0``,
    ``v_leak = v_reset = 0``). Weights are float parameters, quantised on use (cached until they change)
    by ``spikedyn.hardware.quantize.quantize_loihi2``, the function the Lava backend also calls."""

    kind = "loihi2"

    def __init__(self, *args: Any, quantize: str | None = "loihi2", **kwargs: Any) -> None:
        if quantize not in (None, "loihi2"):
            raise ValueError(f"unknown quantize {quantize!r}; a Loihi2RNN is 'loihi2'")
        super().__init__(*args, **kwargs)
        self._check_loihi2()

    @property
    def quantize(self) -> str | None:
        return "loihi2"

    @quantize.setter
    def quantize(self, value: str | None) -> None:
        SpikingRNN.quantize.fset(self, value)

    def as_float(self) -> SpikingRNN:
        """The float body with the same config and a copy of the weights."""
        cfg = self.config()
        cfg.pop("kind")
        m = SpikingRNN(**cfg).to(device=self.device, dtype=self.dtype)
        m.load_state_dict(self.state_dict())
        return m

    def _check_loihi2(self) -> None:
        p = self.params
        if self.n_adaptive or p.reset != "zero" or p.n_ref or p.v_leak or p.v_reset:
            raise ValueError(
                "the Loihi-2 body is Lava's fixed-point LIF: it needs neuron='lif', reset='zero', "
                f"refractory=0 and v_leak = v_reset = 0 (got neuron={self.neuron!r}, reset={p.reset!r}, "
                f"refractory={self.refractory}, v_leak={p.v_leak}, v_reset={p.v_reset})"
            )

    def loihi2_params(self) -> Loihi2Tensors:
        """The integer parameters of the current weights (cached until a parameter changes)."""
        from spikedyn.hardware.quantize import quantize_loihi2

        key = tuple((t.data_ptr(), t._version) for t in (self.W_in, self.W_rec, self.b))
        cache = getattr(self, "_q_cache", None)
        if cache is not None and cache[0] == key and cache[1].w_in.device == self.device:
            return cache[1]
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

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> SpikingState:
        zeros = torch.zeros(batch, self.n_hidden, device=self.device, dtype=self.dtype)
        ints = torch.zeros(batch, self.n_hidden, device=self.device, dtype=torch.int64)
        return SpikingState(
            ints, ints, zeros, zeros, zeros, zeros,
            ints.new_zeros((self.delay_in, batch, self.n_hidden)),
            zeros.new_zeros((self.delay_rec, batch, self.n_hidden)),
        )  # fmt: skip

    def _input_current(self, u: Tensor) -> Tensor:
        """Lava's integer input activation ``W_in X`` (``loihi2_input``)."""
        return loihi2_input(self.loihi2_params(), u)

    def substep(self, state: SpikingState, i_ext: Tensor) -> SpikingState:
        """One fixed-point update given the integer activation ``i_ext`` from ``loihi2_input``."""
        return loihi2_substep(self.params, self.loihi2_params(), state, i_ext, self.params.kappa)

    def _substep_fn(self, detach_recurrent: bool = False) -> Any:
        q, p = self.loihi2_params(), self.params
        return lambda s, i_t: loihi2_substep(p, q, s, i_t, p.kappa)

    def forward(self, u: Tensor, state: SpikingState | None = None, detach_recurrent: bool = False) -> Rollout:
        """Roll out in integer arithmetic (no gradient through the network; ``detach_recurrent`` has no
        effect); the float readout of the spikes keeps its gradient w.r.t. ``W_out``, ``b_out``."""
        u = self._check_input(u)
        with torch.no_grad():
            state = self.init_state(u.shape[1]) if state is None else state
            rbars, zs, state = self._rollout(u, state)
            counts = torch.stack([sum(z[1:], z[0]) for z in zs])
        return Rollout(torch.stack(rbars) @ self.W_out.T + self.b_out, counts, state)  # the float readout

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Any:
        raise ValueError("the Loihi-2 body is integer arithmetic and has no Jacobian; analyse its float body "
                         "(model.as_float())")
