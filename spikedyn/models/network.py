"""Multi-layer spiking networks: ``SpikingNetwork`` (float, surrogate gradients) and its Loihi-2 fixed-point
body ``Loihi2Network``.

A network is a ``spikedyn.hardware.network.NetworkGraph``: spiking layers (LIF, CubaLIF, IF, ALIF: the
one map of ``spikedyn/hardware/neuron.py``, with ``reset="zero" | "subtract" | "subtract_decayed"``),
affine projections between them with delays (feed-forward within a step, recurrent and feedback
projections from earlier steps) and a readout (a leaky-integrated layer through an affine map, or a
spiking output layer's spikes). The substep is ``spikedyn.hardware.network.network_substep``, written
once against the array API: this module runs it on torch tensors (autograd BPTT through the surrogate
gradient; ``detach_recurrent=True`` gives e-prop's truncated gradient), the numpy reference and Lava's
float processes run the same equations. ``Loihi2Network`` runs ``fixed_network_substep``, Lava 0.10's
bit-accurate LIF + Dense integer arithmetic.

Build one from a NIR graph (``spikedyn.export.from_nir``), from layer descriptions
(``SpikingNetwork.build``), from a ``SpikingRNN`` (``SpikingNetwork.from_rnn``: the same network, spike
for spike) or from a ``NetworkGraph``. It follows the body protocol: ``dt`` in ms per input step,
``init_state`` / ``step`` / ``forward -> Rollout(y [T, B, O], r [T, B, N], state)`` with ``r`` the spike
counts of all layers (concatenated in execution order, ``N = n_hidden``).
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from array_api_compat import array_namespace
from torch import Tensor, nn

from spikedyn.hardware import network as hn
from spikedyn.hardware.network import INPUT, Layer, NetworkGraph, NetworkState, Projection, Readout

from .base import RecurrentModel, Rollout
from .spiking import decay_from_tau, retention_from_tau, torch_ops
from .surrogate import DEFAULT_SLOPE, check_surrogate

_XP = array_namespace(torch.zeros(0))


def _t(a: Any, like: Tensor) -> Tensor:
    return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)


class SpikingNetwork(RecurrentModel):
    """A multi-layer spiking network (module doc) with trainable projection weights and biases, layer
    biases and readout.

    Args:
        graph: the network (``NetworkGraph``; its arrays initialise the parameters).
        surrogate: "fast_sigmoid" | "triangle" | "atan"; surrogate_slope: its slope (None: default).
        detach_reset: no gradient through the reset (as snnTorch, norse and ``SpikingRNN``).
        structure: instead of ``graph``, ``NetworkGraph.structure()`` (what ``config()`` writes): the same
            network with zero weights, for ``from_config``.
    """

    kind = "network"

    def __init__(self, graph: NetworkGraph | None = None, surrogate: str = "fast_sigmoid",
                 surrogate_slope: float | None = None, detach_reset: bool = True,
                 structure: dict[str, Any] | None = None) -> None:
        if graph is None:
            if structure is None:
                raise ValueError("SpikingNetwork needs a NetworkGraph (or a structure from config())")
            graph = graph_from_structure(structure)
        check_surrogate(surrogate)
        super().__init__(graph.n_in, graph.n_hidden, graph.n_out)
        self.dt, self.substeps = graph.dt_ms, graph.substeps
        self.surrogate, self.surrogate_slope, self.detach_reset = surrogate, surrogate_slope, bool(detach_reset)
        self.slope = DEFAULT_SLOPE[surrogate] if surrogate_slope is None else float(surrogate_slope)
        # the structure without arrays that become parameters (constants stay in the graph)
        self._graph = graph
        self.weights = nn.ParameterList([nn.Parameter(torch.as_tensor(p.weight, dtype=torch.get_default_dtype()))
                                         for p in graph.projections])
        self.biases = nn.ParameterDict({str(j): nn.Parameter(torch.as_tensor(p.bias, dtype=torch.get_default_dtype()))
                                        for j, p in enumerate(graph.projections) if p.bias is not None})
        self.layer_bias = nn.ParameterList([nn.Parameter(torch.as_tensor(L.bias, dtype=torch.get_default_dtype()))
                                            for L in graph.layers])
        for i, L in enumerate(graph.layers):
            self.register_buffer(f"beta_{i}", torch.as_tensor(L.beta, dtype=torch.get_default_dtype()))
        self.identity_readout = graph.readout.weight is None
        self.W_out = nn.Parameter(torch.as_tensor(graph.readout_weight(), dtype=torch.get_default_dtype()),
                                  requires_grad=not self.identity_readout)
        self.b_out = nn.Parameter(torch.as_tensor(graph.readout_bias(), dtype=torch.get_default_dtype()),
                                  requires_grad=not self.identity_readout and graph.readout.bias is not None)
        self.plan = hn.plan_of(graph)

    # -- construction ---------------------------------------------------------------------------------
    @classmethod
    def build(cls, n_in: int, layers: list[dict[str, Any]], n_out: int | None = None, dt: float = 1.0,
              substeps: int = 1, tau_out: float = 0.0, seed: int | None = None, **kwargs: Any) -> SpikingNetwork:
        """A stack of layers with random weights (``W ~ N(0, gain^2 / n_src)``).

        Each layer is a dict: ``size``; ``neuron`` "lif" | "cubalif" | "if" | "alif"; time constants in
        ms ``tau_mem`` (default 20), ``tau_syn`` (CubaLIF, default 5), ``tau_adapt`` / ``beta_adapt``
        (ALIF); or ``du`` / ``dv`` directly; ``v_th`` (1), ``reset`` ("zero"), ``recurrent`` (False: a
        feed-forward layer; True adds an all-to-all recurrent projection), ``gain`` (1), ``bias`` (True:
        a trainable current bias on its input projection), ``name``. Layer k is fed by layer k - 1 (the
        first by the input). ``n_out``: an affine readout of the last layer's spikes, low-pass filtered
        with ``tau_out`` ms (0: the raw spikes); None: the last layer's spikes are the output.
        """
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        dt_sub = dt / substeps
        out_layers, projections, prev, n_prev = [], [], INPUT, n_in
        for k, spec in enumerate(layers):
            spec = dict(spec)
            size, neuron = int(spec.pop("size")), str(spec.pop("neuron", "lif"))
            name = str(spec.pop("name", f"layer{k}"))
            if neuron not in ("lif", "cubalif", "if", "alif"):
                raise ValueError(f"layer {name!r}: unknown neuron {neuron!r}; choose lif, cubalif, if or alif")
            tau_mem = float(spec.pop("tau_mem", 20.0))
            tau_syn = float(spec.pop("tau_syn", 5.0 if neuron == "cubalif" else 0.0))
            du = spec.pop("du", None)
            dv = spec.pop("dv", None)
            du = decay_from_tau(tau_syn, dt_sub) if du is None else float(du)
            dv = (0.0 if neuron == "if" else decay_from_tau(tau_mem, dt_sub)) if dv is None else float(dv)
            beta = np.full(size, float(spec.pop("beta_adapt", 0.07))) if neuron == "alif" else None
            rho = retention_from_tau(float(spec.pop("tau_adapt", 200.0)), dt_sub) if neuron == "alif" else 0.0
            spec.pop("beta_adapt", None), spec.pop("tau_adapt", None)
            recurrent, gain = bool(spec.pop("recurrent", False)), float(spec.pop("gain", 1.0))
            bias = spec.pop("bias", True)
            layer = Layer(name=name, size=size, du=du, dv=dv, v_th=float(spec.pop("v_th", 1.0)),
                          reset=str(spec.pop("reset", "zero")), beta=beta, rho=rho,
                          n_ref=int(round(float(spec.pop("refractory", 0.0)) / dt_sub)))
            if spec:
                raise ValueError(f"layer {name!r}: unknown settings {sorted(spec)}")
            out_layers.append(layer)
            W = torch.randn(size, n_prev, generator=gen) / n_prev**0.5
            projections.append(Projection(prev, name, W.double().numpy(), np.zeros(size) if bias else None, 0))
            if recurrent:
                Wr = torch.randn(size, size, generator=gen) * gain / size**0.5
                projections.append(Projection(name, name, Wr.double().numpy(), None, 1))
            prev, n_prev = name, size
        if n_out is None:
            readout = Readout(prev)
        else:
            kappa = retention_from_tau(tau_out, dt_sub)
            W_out = (torch.randn(n_out, n_prev, generator=gen) / n_prev**0.5).double().numpy()
            readout = Readout(prev, kappa=kappa, weight=W_out, bias=np.zeros(n_out))
        return cls(NetworkGraph(n_in, out_layers, projections, readout, dt_ms=dt, substeps=substeps), **kwargs)

    @classmethod
    def from_rnn(cls, rnn: Any) -> SpikingNetwork:
        """The one-layer network of a ``SpikingRNN`` (same weights, constants and delays): equal spikes."""
        p = rnn.params
        t = lambda x: x.detach().cpu().double().numpy().copy()  # noqa: E731
        layer = Layer("rnn", rnn.n_hidden, du=p.du, dv=p.dv, v_th=p.v_th, reset=p.reset, v_leak=p.v_leak,
                      v_reset=p.v_reset, bias=t(rnn.b), beta=t(rnn.beta), rho=p.rho if p.adaptive else 0.0,
                      n_ref=p.n_ref)
        projections = [Projection(INPUT, "rnn", t(rnn.W_in), None, p.delay_in, "w_in"),
                       Projection("rnn", "rnn", t(rnn.W_rec_eff), None, 1 + p.delay_rec, "w_rec")]
        graph = NetworkGraph(rnn.n_in, [layer], projections,
                             Readout("rnn", kappa=p.kappa, weight=t(rnn.W_out), bias=t(rnn.b_out)),
                             dt_ms=rnn.dt, substeps=rnn.substeps)
        net = cls(graph, surrogate=p.surrogate, surrogate_slope=rnn.surrogate_slope, detach_reset=p.detach_reset)
        return net.to(dtype=rnn.dtype, device=rnn.device)

    def to_rnn(self) -> Any:
        """This network as a ``SpikingRNN``, when it is one (the inverse of ``from_rnn``): one layer, one input
        projection, at most one recurrent projection (delay >= 1), no projection biases, one du/dv, a reset
        ``SpikingRNN`` has, ALIF only on its first neurons with one beta. For what is written for
        ``SpikingRNN`` only: the online ``eprop`` rule, the fused backward, ``Population``."""
        from .spiking import SpikingRNN

        g = self.to_graph()
        L = g.layers[0]
        ins = [p for p in g.projections if p.src == INPUT]
        recs = [p for p in g.projections if p.src != INPUT]
        why = []
        if len(g.layers) != 1:
            why.append(f"{len(g.layers)} layers")
        if len(ins) != 1 or len(recs) > 1 or any(p.delay < 1 for p in recs):
            why.append("not one input and at most one delayed recurrent projection")
        if any(p.bias is not None and np.any(p.bias != 0) for p in g.projections):
            why.append("a projection bias (SpikingRNN's bias adds to v)")
        if L.per_neuron_decays or L.reset not in ("zero", "subtract"):
            why.append("per-neuron decays" if L.per_neuron_decays else f"reset={L.reset!r}")
        nz = np.flatnonzero(L.beta)
        if nz.size and not (np.array_equal(nz, np.arange(nz.size)) and np.all(L.beta[nz] == L.beta[nz[0]])):
            why.append("adaptation other than one beta on the first neurons")
        if why:
            raise ValueError(f"this network is not a SpikingRNN: {'; '.join(why)}")
        dt_sub = g.dt_ms / g.substeps
        kw: dict[str, Any] = dict(
            dt=g.dt_ms, substeps=g.substeps, du=L.du, dv=L.dv, v_th=L.v_th, reset=L.reset,
            refractory=L.n_ref * dt_sub, kappa=g.readout.kappa, rho=L.rho, delay_in=ins[0].delay,
            delay_rec=recs[0].delay - 1 if recs else 0, v_leak=L.v_leak, v_reset=L.v_reset,
            surrogate=self.surrogate, surrogate_slope=self.surrogate_slope, detach_reset=self.detach_reset,
        )  # fmt: skip
        if nz.size:
            kw.update(neuron="alif", n_adaptive=int(nz.size), beta_adapt=float(L.beta[nz[0]]))
        m = SpikingRNN(g.n_in, L.size, g.n_out, **kw).to(dtype=self.dtype, device=self.device)
        with torch.no_grad():
            for name, value in (("W_in", ins[0].weight), ("W_rec", recs[0].weight if recs else np.zeros((L.size,) * 2)),
                                ("b", L.bias), ("W_out", g.readout_weight()), ("b_out", g.readout_bias())):
                getattr(m, name).copy_(torch.as_tensor(value, dtype=m.dtype))
        return m

    # -- the network as data ---------------------------------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        return self._graph.layers

    @property
    def layer_names(self) -> list[str]:
        return [L.name for L in self._graph.layers]

    def to_graph(self) -> NetworkGraph:
        """The network with the current parameters as a ``NetworkGraph`` (numpy float64)."""
        g = self._graph
        t = lambda x: x.detach().cpu().double().numpy().copy()  # noqa: E731
        projections = [replace(p, weight=t(self.weights[j]), bias=t(self.biases[str(j)]) if str(j) in self.biases
                               else None) for j, p in enumerate(g.projections)]
        layers = [replace(L, bias=t(self.layer_bias[i])) for i, L in enumerate(g.layers)]
        r = g.readout
        readout = Readout(r.src, r.kappa, None if self.identity_readout else t(self.W_out),
                          None if self.identity_readout or r.bias is None else t(self.b_out))
        return NetworkGraph(g.n_in, layers, projections, readout, g.dt_ms, g.substeps, dict(g.meta))

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "structure": self._graph.structure(), "surrogate": self.surrogate,
                "surrogate_slope": self.surrogate_slope, "detach_reset": self.detach_reset}

    def extra_repr(self) -> str:
        parts = [f"{L.name}: {L.size} ({L.reset})" for L in self._graph.layers]
        return f"{self.n_in} -> [{', '.join(parts)}] -> {self.n_out}, dt={self.dt:g} ms, substeps={self.substeps}"

    def quantized(self, kind: str = "loihi2") -> Loihi2Network:
        """The Loihi-2 fixed-point body of this network (a copy of the weights)."""
        if kind != "loihi2":
            raise ValueError(f"unknown fixed-point body {kind!r}; spikedyn has 'loihi2'")
        q = Loihi2Network(self.to_graph(), surrogate=self.surrogate, surrogate_slope=self.surrogate_slope,
                          detach_reset=self.detach_reset)
        return q.to(device=self.device)

    # -- protocol --------------------------------------------------------------------------------------
    def init_state(self, batch: int, generator: torch.Generator | None = None) -> NetworkState:
        return hn.init_state(_XP, self.plan, [L.size for L in self._graph.layers], self.n_in, batch, self.dtype,
                             device=self.device)

    def _substep_fn(self, detach_recurrent: bool = False) -> Any:
        like = self.W_out
        consts = tuple(replace(L.constants(lambda a: _t(a, like)), detach_reset=self.detach_reset)
                       for L in self._graph.layers)
        ops = tuple(torch_ops(self.surrogate, self.slope, L.v_th) for L in self._graph.layers)
        W_T = tuple(W.T for W in self.weights)
        biases = tuple(self.biases[str(j)] if str(j) in self.biases else None for j in range(len(self.weights)))
        lb = tuple(self.layer_bias)
        betas = tuple(getattr(self, f"beta_{i}") for i in range(len(lb)))
        kappa, plan = self._graph.readout.kappa, self.plan

        def sub(s: NetworkState, x: Tensor) -> NetworkState:
            return hn.network_substep(plan, consts, kappa, ops, s, x, W_T, biases, lb, betas, detach_recurrent)

        return sub

    def _run(self, u: Tensor, state: NetworkState, detach_recurrent: bool = False,
             keep_spikes: bool = False) -> tuple[list[Tensor], list[Tensor], NetworkState, list[list[Tensor]]]:
        return self._rollout(u, state, self._substep_fn(detach_recurrent), keep_spikes)

    def _rollout(self, xs: Tensor, state: NetworkState, sub: Any, keep_spikes: bool,
                 ) -> tuple[list[Tensor], list[Tensor], NetworkState, list[list[Tensor]]]:  # fmt: skip
        """The loop of every rollout: ``substeps`` calls of ``sub(state, x_t)`` per input step; the outputs,
        the spike counts per input step, and (``keep_spikes``) every substep's spikes by layer."""
        ys, rs, trains = [], [], []
        for x_t in xs.unbind(0):
            counts = None
            for _ in range(self.substeps):
                state = sub(state, x_t)
                z = torch.cat([ls.z for ls in state.layers], dim=-1)
                counts = z if counts is None else counts + z
                if keep_spikes:
                    trains.append([ls.z for ls in state.layers])
            rs.append(counts)
            ys.append(self.output(state))
        return ys, rs, state, trains

    def step(self, state: NetworkState, u_t: Tensor) -> tuple[NetworkState, Tensor]:
        _, (r,), state, _ = self._run(u_t[None], state)
        return state, r

    def output(self, state: NetworkState) -> Tensor:
        return state.rbar @ self.W_out.T + self.b_out

    def forward(self, u: Tensor, state: NetworkState | None = None, detach_recurrent: bool = False) -> Rollout:
        """Roll out over ``u [T, B, I]``: ``y [T, B, O]``, spike counts ``r [T, B, n_hidden]`` per input step
        (layers concatenated). ``detach_recurrent=True`` cuts the gradient through every delayed (recurrent,
        feedback) projection: e-prop's truncated gradient (Bellec et al. 2020), computed by autograd."""
        u = self._check_input(u)
        state = self.init_state(u.shape[1]) if state is None else state
        ys, rs, state, _ = self._run(u, state, detach_recurrent)
        return Rollout(torch.stack(ys), torch.stack(rs), state)

    def layer_spikes(self, u: Tensor) -> dict[str, Tensor]:
        """Every layer's spikes at every substep ``{name: [T * substeps, B, n]}`` (no gradient)."""
        u = self._check_input(u)
        with torch.no_grad():
            _, _, _, trains = self._run(u, self.init_state(u.shape[1]), keep_spikes=True)
        return {L.name: torch.stack([zs[i] for zs in trains]) for i, L in enumerate(self._graph.layers)}

    def spike_trains(self, u: Tensor) -> Tensor:
        """All layers' spikes ``[T * substeps, B, n_hidden]`` (concatenated in execution order; no gradient)."""
        return torch.cat(list(self.layer_spikes(u).values()), dim=-1)


class Loihi2Network(SpikingNetwork):
    """The Loihi-2 fixed-point body of a ``SpikingNetwork``: Lava 0.10's bit-accurate LIF + Dense arithmetic
    (``spikedyn.hardware.network.fixed_network_substep``; integers from ``quantize_network``, the same
    function the Lava backend calls), for inference. Layers must be Lava's LIF (no adaptation or refractory
    period, ``v_leak = v_reset = 0``, one du/dv per layer), resetting to zero or by subtraction
    (``fixed_layer_update``). The readout stays float, computed from the spikes."""

    kind = "loihi2_network"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        bad = self._graph.fixed_reason()
        if bad:
            raise ValueError(f"the Loihi-2 body is Lava's fixed-point LIF (reset to zero or by subtraction); {bad}")

    def fixed(self) -> hn.FixedNetwork:
        """The integers of the current weights (``quantize_network``; cached until a parameter changes)."""
        return self._fixed_tensors()[0]

    def _fixed_tensors(self) -> tuple[hn.FixedNetwork, list[Tensor | None], tuple[Tensor, ...]]:
        """``(fixed network, projection and current-bias matrices as float64 tensors, v-biases as int64)`` of
        the current weights, quantised once and kept until a parameter is changed in place, replaced or
        moved (the key: every parameter's storage and version counter, and the parameter objects themselves,
        held by the cache, so a new tensor at a reused address is never mistaken for the old one), as
        ``Loihi2RNN.loihi2_params``."""
        params = list(self.parameters())
        key = (str(self.device), *((t.data_ptr(), t._version) for t in params))
        cache = getattr(self, "_fixed_cache", None)
        if (cache is not None and cache[0] == key and len(cache[2]) == len(params)
                and all(a is b for a, b in zip(cache[2], params))):
            return cache[1]
        fx, dev = hn.quantize_network(self.to_graph()), self.device
        mats = [torch.as_tensor(fp.w, dtype=torch.float64, device=dev) for fp in fx.projections]
        mats += [torch.as_tensor(fl.current_bias.w, dtype=torch.float64, device=dev)
                 if fl.current_bias is not None else None for fl in fx.layers]
        v_bias = tuple(torch.as_tensor(fl.bias, dtype=torch.int64, device=dev) for fl in fx.layers)
        self._fixed_cache = (key, (fx, mats, v_bias), params)
        return fx, mats, v_bias

    def as_float(self) -> SpikingNetwork:
        return SpikingNetwork(self.to_graph(), surrogate=self.surrogate, surrogate_slope=self.surrogate_slope,
                              detach_reset=self.detach_reset)

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> NetworkState:
        return hn.init_state(_XP, self.plan, [L.size for L in self._graph.layers], self.n_in, batch, self.dtype,
                             device=self.device, int_dtype=torch.int64)

    def _run(self, u: Tensor, state: NetworkState, detach_recurrent: bool = False,
             keep_spikes: bool = False) -> tuple[list[Tensor], list[Tensor], NetworkState, list[list[Tensor]]]:
        fx, mats, v_bias = self._fixed_tensors()  # quantised once, not at every step() call
        dev = self.device
        ones = torch.full((u.shape[1], 1), float(1 << fx.input_frac_bits), dtype=torch.float64, device=dev)
        kappa, plan = self._graph.readout.kappa, self.plan

        def matmul(src: Tensor, j: int) -> Tensor:  # float64 sums of integers < 2**53: exact
            return (src.double() @ mats[j].T).long()

        with torch.no_grad():
            X = torch.round(u.double() * float(2**fx.input_frac_bits)).clamp(-(2**23 - 1), 2**23 - 1).long()
            return self._rollout(X, state, lambda st, x_t: hn.fixed_network_substep(plan, fx, kappa, st, x_t, matmul,
                                                                                    ones, v_bias), keep_spikes)


def graph_from_structure(structure: dict[str, Any]) -> NetworkGraph:
    """A ``NetworkGraph`` of the given structure (``NetworkGraph.structure()``) with zero weights."""
    s = copy.deepcopy(structure)
    layers = [Layer(**{k: (np.asarray(v) if k in ("du", "dv") and isinstance(v, list) else v)
                       for k, v in L.items()}) for L in s["layers"]]
    sizes = {INPUT: int(s["n_in"]), **{L.name: L.size for L in layers}}
    projections = [Projection(p["src"], p["dst"], np.zeros((sizes[p["dst"]], sizes[p["src"]])),
                              np.zeros(sizes[p["dst"]]) if p["bias"] else None, p["delay"], p["name"])
                   for p in s["projections"]]
    r = s["readout"]
    n = sizes[r["src"]]
    readout = Readout(r["src"], r["kappa"], np.zeros((int(r.get("n_out", n)), n)) if r["weight"] else None,
                      np.zeros(int(r.get("n_out", n))) if r["bias"] else None)
    return NetworkGraph(int(s["n_in"]), layers, projections, readout, float(s["dt_ms"]), int(s["substeps"]))
