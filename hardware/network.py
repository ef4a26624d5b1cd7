"""``NetworkGraph``: multi-layer spiking networks (any DAG of spiking layers, plus recurrent and feedback
projections) as plain numpy arrays, and their one step function, float and Loihi-2 fixed point.

A network is a list of spiking *layers* (each a population of LIF / CubaLIF / IF / ALIF neurons of
spikedyn's one map, ``neuron.neuron_update``), *projections* between them (``W x + b`` from the input or
from a layer's spikes into another layer's synaptic current, with a delay in substeps) and a *readout*
(the leaky-integrated spikes of one layer through an affine map; a spiking output layer is the readout
with ``kappa = 0`` and the identity). Per substep ``s`` every layer ``L``, in order, gets

    I_L(s) = sum_p W_p src_p(s - d_p)  +  sum_p b_p     (over the projections p into L, in list order)

and updates with the one map; ``d_p = 0`` reads the source's value of this substep (the source comes
earlier in the order: NIR's feed-forward edges, which snnTorch, norse and nirtorch evaluate within one
step), ``d_p >= 1`` its value ``d_p`` substeps ago (recurrence: a NIR cycle carries the previous step's
spikes, ``d = 1``). The input is held for ``substeps`` updates; ``y = W_out rbar + b_out`` at the end of
each input step. A ``SpikingRNN`` is the network of one layer with projections input->L (``d =
delay_in``) and L->L (``d = 1 + delay_rec``) and its readout.

``network_substep`` (float, any array library through ``neuron.Ops``) and ``fixed_network_substep``
(Lava 0.10's bit-accurate integer arithmetic, via ``quantize.fixed_neuron_update``) are written once,
against the array API: the numpy references here, torch's ``SpikingNetwork`` body and its Loihi-2
fixed-point body run these functions. numpy only; nothing here imports torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import numpy as np
from array_api_compat import array_namespace

from .neuron import RESETS, NeuronConstants, Ops, neuron_update, numpy_ops, readout_filter
from .quantize import (
    ACT_SHIFT,
    BIAS_EXP_MAX,
    BIAS_MANT_MAX,
    DECAY_UNITY,
    DEFAULT_INPUT_FRAC_BITS,
    DEFAULT_VTH,
    UV_MAX,
    FixedConstants,
    _mantissas,
    _shared_exponent,
    decay,
    fixed_neuron_update,
    quantize_decays,
    quantize_input,
    shift,
    wrap24,
)

INPUT = "input"


@dataclass
class Layer:
    """One population of spiking neurons (the one map's constants, per substep).

    ``du`` / ``dv`` are floats or per-neuron arrays ``[size]`` (1 = no current memory; dv = 0 is IF);
    ``bias [size]`` adds to v every substep (NIR: ``dv * v_leak``), ``beta [size]`` is the ALIF threshold
    increase per unit of adaptation (zeros: LIF), ``rho`` its retention, ``n_ref`` refractory substeps.
    ``kind`` records the NIR node type it came from or goes to ("LIF", "CubaLIF", "IF"; "" = by du/dv).
    """

    name: str
    size: int
    du: Any = 1.0
    dv: Any = 0.05
    v_th: float = 1.0
    reset: str = "zero"
    v_leak: float = 0.0
    v_reset: float = 0.0
    bias: Any = None
    beta: Any = None
    rho: float = 0.0
    n_ref: int = 0

    def __post_init__(self) -> None:
        self.size = int(self.size)
        if self.size < 1:
            raise ValueError(f"layer {self.name!r}: size must be >= 1, got {self.size}")
        if self.name == INPUT or not self.name:
            raise ValueError(f"a layer cannot be called {self.name!r}")
        self.bias = np.zeros(self.size) if self.bias is None else np.asarray(self.bias, dtype=np.float64)
        self.beta = np.zeros(self.size) if self.beta is None else np.asarray(self.beta, dtype=np.float64)
        for attr in ("du", "dv"):
            value = np.asarray(getattr(self, attr), dtype=np.float64)
            if value.size > 1 and np.all(value == value.reshape(-1)[0]):
                value = value.reshape(-1)[:1]
            if value.size == 1:
                setattr(self, attr, float(value.reshape(-1)[0]))
            elif value.shape != (self.size,):
                raise ValueError(f"layer {self.name!r}: {attr} must be a number or [{self.size}], got {value.shape}")
            else:
                setattr(self, attr, value)
            if not np.all((np.asarray(getattr(self, attr)) >= 0) & (np.asarray(getattr(self, attr)) <= 1)):
                raise ValueError(f"layer {self.name!r}: {attr} must be in [0, 1]")
        if self.bias.shape != (self.size,) or self.beta.shape != (self.size,):
            raise ValueError(f"layer {self.name!r}: bias and beta must have shape [{self.size}]")
        if self.reset not in RESETS:
            raise ValueError(f"layer {self.name!r}: unknown reset {self.reset!r}; choose one of {list(RESETS)}")
        if self.v_reset and self.reset != "zero":
            raise ValueError(f"layer {self.name!r}: v_reset is what reset='zero' resets to; {self.reset!r} subtracts")
        if not (np.isfinite(self.v_th) and self.v_th > 0):
            raise ValueError(f"layer {self.name!r}: v_th must be finite and > 0, got {self.v_th}")
        self.v_th, self.v_leak, self.v_reset = float(self.v_th), float(self.v_leak), float(self.v_reset)
        self.rho, self.n_ref = float(self.rho), int(self.n_ref)
        if not (np.all(np.isfinite(self.bias)) and np.all(np.isfinite(self.beta))):
            raise ValueError(f"layer {self.name!r}: bias and beta must be finite")

    @property
    def adaptive(self) -> bool:
        return bool(np.any(self.beta != 0))

    @property
    def per_neuron_decays(self) -> bool:
        return isinstance(self.du, np.ndarray) or isinstance(self.dv, np.ndarray)

    def constants(self, convert: Any = None) -> NeuronConstants:
        """The map's constants; ``convert`` turns per-neuron decay arrays into the caller's array type."""
        conv = convert or (lambda a: a)
        du = conv(self.du) if isinstance(self.du, np.ndarray) else self.du
        dv = conv(self.dv) if isinstance(self.dv, np.ndarray) else self.dv
        return NeuronConstants(du=du, dv=dv, v_th=self.v_th, reset=self.reset, rho=self.rho, n_ref=self.n_ref,
                               adaptive=self.adaptive, v_leak=self.v_leak, v_reset=self.v_reset)

    def lava_lif_reason(self) -> str:
        """Why Lava's own ``LIF`` (reset to 0, no leak target, no adaptation, scalar decays) cannot run this
        layer ('' when it can)."""
        return ", ".join(([f"reset={self.reset!r}"] if self.reset != "zero" else []) + self._fixed_obstacles())

    def fixed_reason(self) -> str:
        """Why the Loihi-2 fixed-point arithmetic cannot run this layer ('' when it can): Lava's LIF, or the
        same integer neuron with a subtractive reset (``fixed_layer_update``)."""
        return ", ".join(self._fixed_obstacles())

    def _fixed_obstacles(self) -> list[str]:
        why = []
        if self.adaptive:
            why.append("adaptive thresholds (ALIF)")
        if self.n_ref:
            why.append(f"a refractory period of {self.n_ref} substeps")
        if self.v_leak or self.v_reset:
            why.append(f"v_leak={self.v_leak:g} / v_reset={self.v_reset:g}")
        if self.per_neuron_decays:
            why.append("per-neuron time constants")
        return why

    def scalars(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("name", "size", "v_th", "reset", "v_leak", "v_reset", "rho", "n_ref")}
        out["du"] = self.du.tolist() if isinstance(self.du, np.ndarray) else self.du
        out["dv"] = self.dv.tolist() if isinstance(self.dv, np.ndarray) else self.dv
        if self.adaptive:
            out["beta"] = self.beta.tolist()
        return out


@dataclass
class Projection:
    """``W src(s - delay) + bias`` into ``dst``'s synaptic current. ``src`` is ``"input"`` or a layer name;
    ``weight [n_dst, n_src]``, ``bias [n_dst]`` or None; ``delay`` in substeps (0: same substep)."""

    src: str
    dst: str
    weight: Any
    bias: Any = None
    delay: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        self.weight = np.asarray(self.weight, dtype=np.float64)
        if self.weight.ndim != 2:
            raise ValueError(f"projection {self.label!r}: weight must be a matrix, got shape {self.weight.shape}")
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
            if self.bias.shape != (self.weight.shape[0],):
                raise ValueError(f"projection {self.label!r}: bias must have shape [{self.weight.shape[0]}]")
        self.delay = int(self.delay)
        if self.delay < 0:
            raise ValueError(f"projection {self.label!r}: delay must be >= 0 substeps, got {self.delay}")
        if not (np.all(np.isfinite(self.weight)) and (self.bias is None or np.all(np.isfinite(self.bias)))):
            raise ValueError(f"projection {self.label!r}: weights must be finite")
        self.name = self.name or f"w_{self.src}_{self.dst}"

    @property
    def label(self) -> str:
        return self.name or f"w_{self.src}_{self.dst}"


@dataclass
class Readout:
    """``rbar = kappa rbar + (1 - kappa) z_src`` every substep, ``y = weight rbar + bias`` per input step;
    ``weight`` None is the identity (the layer's spikes are the output)."""

    src: str
    kappa: float = 0.0
    weight: Any = None
    bias: Any = None

    def __post_init__(self) -> None:
        if self.weight is not None:
            self.weight = np.asarray(self.weight, dtype=np.float64)
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float64).reshape(-1)
        self.kappa = float(self.kappa)
        if not 0.0 <= self.kappa < 1.0:
            raise ValueError(f"readout: kappa must be in [0, 1), got {self.kappa}")


@dataclass
class NetworkGraph:
    """A multi-layer spiking network (module doc). ``layers`` are kept in execution order (re-sorted so
    every zero-delay projection runs forward); ``dt_ms`` is one input step in ms, held for ``substeps``
    neuron updates."""

    n_in: int
    layers: list[Layer]
    projections: list[Projection]
    readout: Readout
    dt_ms: float = 1.0
    substeps: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.n_in, self.substeps, self.dt_ms = int(self.n_in), int(self.substeps), float(self.dt_ms)
        if self.n_in < 1 or self.substeps < 1 or not (np.isfinite(self.dt_ms) and self.dt_ms > 0):
            raise ValueError("n_in and substeps must be >= 1 and dt_ms a finite number > 0")
        names = [L.name for L in self.layers]
        if len(set(names)) != len(names) or not names:
            raise ValueError(f"layer names must be unique and at least one layer given; got {names}")
        sizes = {INPUT: self.n_in, **{L.name: L.size for L in self.layers}}
        for p in self.projections:
            if p.src not in sizes or p.dst not in sizes or p.dst == INPUT:
                raise ValueError(f"projection {p.label!r}: unknown source or target (layers: {names})")
            if p.weight.shape != (sizes[p.dst], sizes[p.src]):
                raise ValueError(f"projection {p.label!r}: weight has shape {p.weight.shape}, expected "
                                 f"[{sizes[p.dst]}, {sizes[p.src]}] ({p.dst} has {sizes[p.dst]} neurons, "
                                 f"{p.src} {sizes[p.src]})")
        self.layers = _execution_order(self.layers, self.projections)
        r = self.readout
        if r.src not in sizes or r.src == INPUT:
            raise ValueError(f"readout: unknown layer {r.src!r}")
        n = sizes[r.src]
        if r.weight is not None and (r.weight.ndim != 2 or r.weight.shape[1] != n):
            raise ValueError(f"readout: weight has shape {r.weight.shape}, expected [O, {n}] (layer {r.src!r})")
        if r.bias is not None and r.bias.shape != (self.n_out,):
            raise ValueError(f"readout: bias has shape {r.bias.shape}, expected [{self.n_out}]")

    # -- sizes --------------------------------------------------------------------------------------
    def layer(self, name: str) -> Layer:
        for L in self.layers:
            if L.name == name:
                return L
        raise KeyError(name)

    @property
    def n_hidden(self) -> int:
        return sum(L.size for L in self.layers)

    @property
    def n_out(self) -> int:
        r = self.readout
        return self.layer(r.src).size if r.weight is None else r.weight.shape[0]

    def readout_weight(self) -> np.ndarray:
        return np.eye(self.layer(self.readout.src).size) if self.readout.weight is None else self.readout.weight

    def readout_bias(self) -> np.ndarray:
        return np.zeros(self.n_out) if self.readout.bias is None else self.readout.bias

    def into(self, name: str) -> list[Projection]:
        return [p for p in self.projections if p.dst == name]

    def max_delays(self) -> dict[str, int]:
        """The longest delay read from each source (input and layers): the history each must keep."""
        out = {INPUT: 0, **{L.name: 0 for L in self.layers}}
        for p in self.projections:
            out[p.src] = max(out[p.src], p.delay)
        return out

    def lava_lif_reason(self) -> str:
        return "; ".join(f"layer {L.name!r} has {r}" for L in self.layers if (r := L.lava_lif_reason()))

    def fixed_reason(self) -> str:
        return "; ".join(f"layer {L.name!r} has {r}" for L in self.layers if (r := L.fixed_reason()))

    # -- serialisation ------------------------------------------------------------------------------
    def structure(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-able data (NIR metadata, configs)."""
        return {
            "n_in": self.n_in, "dt_ms": self.dt_ms, "substeps": self.substeps,
            "layers": [L.scalars() for L in self.layers],
            "projections": [{"name": p.name, "src": p.src, "dst": p.dst, "delay": p.delay,
                             "bias": p.bias is not None} for p in self.projections],
            "readout": {"src": self.readout.src, "kappa": self.readout.kappa, "n_out": self.n_out,
                        "weight": self.readout.weight is not None, "bias": self.readout.bias is not None},
        }  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(self.structure())


def _execution_order(layers: list[Layer], projections: list[Projection]) -> list[Layer]:
    """``layers`` sorted so every zero-delay projection goes from an earlier layer to a later one (stable:
    the given order wherever it already is one); a zero-delay cycle (an algebraic loop) is an error."""
    names = [L.name for L in layers]
    deps = {n: {p.src for p in projections if p.dst == n and p.delay == 0 and p.src != INPUT} for n in names}
    order: list[str] = []
    while len(order) < len(names):
        ready = [n for n in names if n not in order and deps[n] <= set(order)]
        if not ready:
            loop = [n for n in names if n not in order]
            raise ValueError(f"the zero-delay projections among layers {loop} form a loop (each would need the "
                             "other's spikes of the same step); give one of them a delay >= 1")
        order.append(ready[0])
    by_name = {L.name: L for L in layers}
    return [by_name[n] for n in order]


# -- the one step (array API) ------------------------------------------------------------------------
class LayerState(NamedTuple):
    u: Any  # synaptic current [B, n]
    v: Any  # membrane [B, n] (float: before the reset of its own spike; fixed: after, as Lava)
    z: Any  # spikes of the last substep [B, n]
    a: Any  # adaptation [B, n]
    ref: Any  # refractory substeps left [B, n]


class NetworkState(NamedTuple):
    """State between substeps: one ``LayerState`` per layer (execution order), the history of every
    source that a delayed projection reads (``hist[k][j]`` = its value ``j + 1`` substeps ago; ``k = 0``
    is the input, ``k = i + 1`` layer ``i``) and the readout trace ``rbar``."""

    layers: tuple
    hist: tuple
    rbar: Any


class Plan(NamedTuple):
    """The static structure ``network_substep`` walks: for layer i, its projections as (source index,
    delay, projection index); source index 0 is the input, i + 1 layer i."""

    into: tuple
    depth: tuple  # history length kept per source
    readout: int  # source index of the readout layer


def plan_of(graph: NetworkGraph) -> Plan:
    index = {INPUT: 0, **{L.name: i + 1 for i, L in enumerate(graph.layers)}}
    into = tuple(tuple((index[p.src], p.delay, j) for j, p in enumerate(graph.projections) if p.dst == L.name)
                 for L in graph.layers)
    md = graph.max_delays()
    depth = tuple(md[n] for n in [INPUT, *[L.name for L in graph.layers]])
    return Plan(into, depth, index[graph.readout.src])


def init_state(xp: Any, plan: Plan, sizes: list[int], n_in: int, batch: int, dtype: Any, device: Any = None,
               int_dtype: Any = None) -> NetworkState:
    """Rest: zeros everywhere (``int_dtype`` for u, v and the input history of the fixed-point body)."""
    kw = {} if device is None else {"device": device}

    def z(n: int, dt: Any = dtype) -> Any:
        return xp.zeros((batch, n), dtype=dt, **kw)

    layers = tuple(LayerState(z(n, int_dtype or dtype), z(n, int_dtype or dtype), z(n), z(n), z(n)) for n in sizes)
    src_sizes = [n_in, *sizes]
    hist = tuple(tuple(z(src_sizes[k], (int_dtype or dtype) if k == 0 else dtype) for _ in range(plan.depth[k]))
                 for k in range(len(src_sizes)))
    return NetworkState(layers, hist, z(src_sizes[plan.readout]))


def _push(hist: tuple, value: Any) -> tuple:
    return (value, *hist[:-1]) if hist else hist


def network_substep(plan: Plan, constants: tuple, kappa: float, ops: Ops | tuple, s: NetworkState, x: Any,
                    weights_T: tuple, biases: tuple, layer_bias: tuple, layer_beta: tuple,
                    detach_recurrent: bool = False) -> NetworkState:
    """One substep of the float network (module doc): every layer in order gets the sum of its projections
    ``src @ W.T (+ b)`` (list order) and updates with the one map ``neuron.neuron_update``. ``x [B, I]`` is
    this substep's input; ``weights_T[j]`` / ``biases[j]`` (None: no bias) of projection j.
    ``detach_recurrent`` stops the gradient through delayed (recurrent/feedback) spikes (e-prop's
    truncation). ``ops`` is one ``neuron.Ops`` or one per layer (torch: the surrogate scales with v_th)."""
    now: list[Any] = [x]
    new_layers = []
    for i, c in enumerate(constants):
        st = s.layers[i]
        ops_i = ops if isinstance(ops, Ops) else ops[i]
        cur = bias = None
        for k, d, j in plan.into[i]:
            if d == 0:
                src = now[k]
            else:
                src = s.hist[k][d - 1]
                if detach_recurrent and k > 0:
                    src = ops_i.stop_gradient(src)
            term = src @ weights_T[j]
            cur = term if cur is None else cur + term
            if biases[j] is not None:
                bias = biases[j] if bias is None else bias + biases[j]
        if cur is None:
            cur = ops_i.xp.zeros_like(st.v)
        if bias is not None:  # the projections' biases, summed, come last (Lava: one bias channel per layer)
            cur = cur + bias
        u, v, z, a, ref = neuron_update(c, ops_i, st.u, st.v, st.z, st.a, st.ref, cur, layer_bias[i], layer_beta[i])
        new_layers.append(LayerState(u, v, z, a, ref))
        now.append(z)
    hist = tuple(_push(h, now[k]) for k, h in enumerate(s.hist))
    return NetworkState(tuple(new_layers), hist, readout_filter(kappa, s.rbar, now[plan.readout]))


# -- Loihi 2 fixed point ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixedProjection:
    """A projection's integers as Lava's bit-accurate ``Dense`` takes them: ``w = 2 m`` (8-bit mantissa
    m, int), shared ``exp``; graded sources (the input, the bias channel) carry ``round(x 2**frac_bits)``."""

    w: np.ndarray
    exp: int
    graded: bool


@dataclass(frozen=True)
class FixedLayer:
    c: FixedConstants
    bias: np.ndarray  # int64 v-bias: bias_mant << bias_exp
    bias_mant: np.ndarray
    bias_exp: np.ndarray
    current_bias: FixedProjection | None  # the summed projection biases, as a Dense from a constant input 1
    scale: float
    reset: str = "zero"


@dataclass(frozen=True)
class FixedNetwork:
    layers: tuple
    projections: tuple
    input_frac_bits: int
    report: dict


def quantize_weight(W: np.ndarray, scale: float, graded_frac_bits: int | None) -> tuple[FixedProjection, int]:
    """Smallest shared exponent that fits ``W * scale`` (integer units of the target's v) in the 8-bit
    mantissa; returns the projection and the number of clipped weights."""
    units = np.asarray(W, dtype=np.float64) * scale
    k = _shared_exponent(float(np.max(np.abs(units), initial=0.0)))
    m, clipped = _mantissas(units, k)
    exp = k - (ACT_SHIFT + 1) - (int(graded_frac_bits) if graded_frac_bits is not None else 0)
    return FixedProjection((2 * m).astype(np.int64), int(exp), graded_frac_bits is not None), clipped


def quantize_network(graph: NetworkGraph, input_frac_bits: int = DEFAULT_INPUT_FRAC_BITS,
                     vth: int = DEFAULT_VTH) -> FixedNetwork:
    """Lava 0.10 / Loihi 2 integers for every layer and projection (``quantize.quantize_loihi2``'s
    formats, per layer: one unit of v is ``v_th / (64 vth)``). Layers must be Lava's LIF, or that neuron
    with a subtractive reset (``fixed_layer_update``)."""
    bad = graph.fixed_reason()
    if bad:
        raise ValueError(f"fixed point runs Lava's LIF (reset to zero or by subtraction) only; {bad}; "
                         "use precision='float'")
    scales = {L.name: float(2**ACT_SHIFT * vth) / L.v_th for L in graph.layers}
    projections, report = [], {"clipped": {}}
    for p in graph.projections:
        fp, clipped = quantize_weight(p.weight, scales[p.dst], input_frac_bits if p.src == INPUT else None)
        projections.append(fp)
        report["clipped"][p.name] = clipped
    layers = []
    for L in graph.layers:
        scale = scales[L.name]
        B = L.bias * scale
        bias_exp = np.zeros(B.shape, dtype=np.int64)
        for _ in range(BIAS_EXP_MAX):
            bias_exp = np.where(np.abs(np.round(np.ldexp(B, -bias_exp))) > BIAS_MANT_MAX, bias_exp + 1, bias_exp)
        bias_mant = np.clip(np.round(np.ldexp(B, -bias_exp)), -BIAS_MANT_MAX - 1, BIAS_MANT_MAX).astype(np.int64)
        total = sum((p.bias for p in graph.into(L.name) if p.bias is not None), np.zeros(L.size))
        current = None
        if np.any(total != 0):
            current, _ = quantize_weight(total[:, None], scale, input_frac_bits)
        du, dv = quantize_decays(L.du, L.dv)
        layers.append(FixedLayer(FixedConstants(du, dv, vth << ACT_SHIFT, 0.0),
                                 bias_mant * (2**bias_exp), bias_mant, bias_exp, current, scale, L.reset))
    return FixedNetwork(tuple(layers), tuple(projections), int(input_frac_bits), report)


def fixed_network_substep(plan: Plan, fixed: FixedNetwork, kappa: float, s: NetworkState, X: Any,
                          matmul: Any, ones: Any, v_bias: tuple) -> NetworkState:
    """One substep of the network in Lava's bit-accurate arithmetic: each layer receives the sum, in
    projection order, of its Dense activations ``shift(src @ w.T, exp)`` (graded integer input ``X``,
    binary spikes) and then its current-bias channel, and updates with ``quantize.fixed_neuron_update``
    (reset to zero, v stored after the reset). ``matmul(src, j)`` computes ``src @ w_j.T`` exactly in the
    caller's library (int64 sums; ``j >= len(projections)``: layer ``j - len(projections)``'s bias channel);
    ``ones [B, 1]`` is the bias channel's graded payload, ``v_bias[i]`` layer i's integer v-bias."""
    xp = array_namespace(X)
    now: list[Any] = [X]
    new_layers = []
    n_proj = len(fixed.projections)
    for i, fl in enumerate(fixed.layers):
        st = s.layers[i]
        a_in = None
        for k, d, j in plan.into[i]:
            src = now[k] if d == 0 else s.hist[k][d - 1]
            if k > 0:
                src = xp.astype(src, xp.int64)
            term = shift(matmul(src, j), fixed.projections[j].exp)
            a_in = term if a_in is None else a_in + term
        if fl.current_bias is not None:
            term = shift(matmul(ones, n_proj + i), fl.current_bias.exp)
            a_in = term if a_in is None else a_in + term
        if a_in is None:
            a_in = xp.zeros_like(st.u)
        u, v, spiked = fixed_layer_update(fl.c, fl.reset, st.u, st.v, st.z, a_in, v_bias[i])
        z = xp.astype(spiked, st.z.dtype)
        new_layers.append(LayerState(u, v, z, st.a, st.ref))
        now.append(z)
    hist = tuple(_push(h, now[k]) for k, h in enumerate(s.hist))
    return NetworkState(tuple(new_layers), hist, readout_filter(kappa, s.rbar, now[plan.readout]))


def fixed_layer_update(c: FixedConstants, reset: str, u: Any, v: Any, z_prev: Any, a_in: Any,
                       bias: Any) -> tuple[Any, Any, Any]:
    """One substep of the integer neuron: ``reset="zero"`` is Lava 0.10's bit-accurate ``LIF``
    (``quantize.fixed_neuron_update``); the subtractive resets are the same arithmetic with ``vth << 6``
    subtracted instead of v set to 0 — ``"subtract_decayed"`` from the stored v of a spiking neuron (so it
    decays with v), ``"subtract"`` after the next decay (``z_prev``, the last spikes). v is stored after the
    reset and clipped to 24 bits; returns ``(u, v, spiked)`` (int64 arrays, numpy or torch)."""
    if reset == "zero":
        return fixed_neuron_update(c, u, v, a_in, bias)
    xp = array_namespace(u)
    u = wrap24(decay(u, DECAY_UNITY - c.du - 1) + (a_in << ACT_SHIFT))
    v = decay(v, DECAY_UNITY - c.dv) + u + bias
    if reset == "subtract":
        v = v - xp.astype(z_prev, xp.int64) * c.vth
    v = xp.clip(v, min=-UV_MAX + 1, max=UV_MAX - 1)
    spiked = v > c.vth
    if reset == "subtract_decayed":
        v = xp.where(spiked, v - c.vth, v)
    return u, v, spiked


# -- numpy references ------------------------------------------------------------------------------
def _check_x(graph: NetworkGraph, x: Any) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[-1] != graph.n_in:
        raise ValueError(f"input must have shape [T, B, {graph.n_in}] (time, batch, inputs), got {x.shape}")
    return x


def _collect(graph: NetworkGraph, T: int, B: int) -> dict[str, np.ndarray]:
    return {L.name: np.zeros((T * graph.substeps, B, L.size), dtype=np.uint8) for L in graph.layers}


def simulate_network_float(graph: NetworkGraph, x: Any) -> dict[str, np.ndarray]:
    """Spikes of every layer ``{name: [T * substeps, B, n]}`` (uint8) of the float network for inputs
    ``x [T, B, I]``: ``network_substep`` on numpy arrays, float64."""
    x = _check_x(graph, x).astype(np.float64)
    T, B, _ = x.shape
    plan, ops = plan_of(graph), numpy_ops()
    consts = tuple(L.constants() for L in graph.layers)
    W_T = tuple(p.weight.T for p in graph.projections)
    biases = tuple(p.bias for p in graph.projections)
    s = init_state(np, plan, [L.size for L in graph.layers], graph.n_in, B, np.float64)
    out = _collect(graph, T, B)
    for t in range(T):
        for k in range(graph.substeps):
            s = network_substep(plan, consts, graph.readout.kappa, ops, s, x[t], W_T, biases,
                                tuple(L.bias for L in graph.layers), tuple(L.beta for L in graph.layers))
            for i, L in enumerate(graph.layers):
                out[L.name][t * graph.substeps + k] = s.layers[i].z
    return out


def simulate_network_fixed(graph: NetworkGraph, fixed: FixedNetwork, x: Any) -> dict[str, np.ndarray]:
    """Spikes of every layer of Lava's bit-accurate LIF + Dense arithmetic (``fixed_network_substep``)."""
    x = _check_x(graph, x)
    X = quantize_input(x, fixed.input_frac_bits)
    T, B, _ = x.shape
    plan = plan_of(graph)
    mats = [fp.w.astype(np.int64) for fp in fixed.projections]
    mats += [fl.current_bias.w.astype(np.int64) if fl.current_bias is not None else None for fl in fixed.layers]
    ones = np.full((B, 1), 1 << fixed.input_frac_bits, dtype=np.int64)
    s = init_state(np, plan, [L.size for L in graph.layers], graph.n_in, B, np.float64, int_dtype=np.int64)
    v_bias = tuple(fl.bias for fl in fixed.layers)

    def matmul(src: np.ndarray, j: int) -> np.ndarray:
        return src @ mats[j].T

    out = _collect(graph, T, B)
    for t in range(T):
        for k in range(graph.substeps):
            s = fixed_network_substep(plan, fixed, graph.readout.kappa, s, X[t], matmul, ones, v_bias)
            for i, L in enumerate(graph.layers):
                out[L.name][t * graph.substeps + k] = s.layers[i].z
    return out


def network_readout(graph: NetworkGraph, spikes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``[T, B, n_hidden]`` per input step (layers concatenated in order) and outputs ``y [T, B,
    O]`` from every layer's spikes: the torch body's readout, computed on the host."""
    K = graph.substeps
    z = spikes[graph.readout.src].astype(np.float64)
    S, B, n = z.shape
    rbar, rbars = np.zeros((B, n)), np.zeros((S // K, B, n))
    for s in range(S):
        rbar = readout_filter(graph.readout.kappa, rbar, z[s])
        if (s + 1) % K == 0:
            rbars[s // K] = rbar
    counts = np.concatenate([spikes[L.name].astype(np.float64).reshape(S // K, K, B, L.size).sum(axis=1)
                             for L in graph.layers], axis=-1)
    return counts, rbars @ graph.readout_weight().T + graph.readout_bias()


def with_layers(graph: NetworkGraph, **changes: Any) -> NetworkGraph:
    """A copy of ``graph`` with every layer changed (e.g. ``reset="zero"``)."""
    return replace(graph, layers=[replace(L, **changes) for L in graph.layers])
