"""Networks of Lava LIF neurons with per-synapse conduction delays, and their Lava deployment.

This is the hardware side of ``spikedyn.circuits.HeadDirectionCircuit`` (numpy + lava-nc, never torch).
A :class:`DelayNetwork` is a plain description: neuron constants and a synapse list with integer
latencies. Three things run it and must agree spike for spike:

* :func:`simulate_reference`: a slow, obvious numpy loop (the independent reference for tests);
* ``spikedyn.circuits.delay_sim`` on torch (batched, CPU or GPU);
* :func:`run_lava`: Lava processes (``LIF`` + ``DelayDense``) in Lava's CPU simulator, float mode.

Neuron (Lava's float ``LIF`` exactly, per step ``t``)::

    a(t) = sum over synapses s with post(s) = i of  w(s) z_pre(s)(t - latency(s))  +  ext_i(t)
    u(t) = u(t-1) (1 - du) + a(t)
    v(t) = v(t-1) (1 - dv) + u(t) + bias        (held at 0 for ``refractory`` steps after a spike)
    z(t) = v(t) > vth;   v(t) = 0 where z(t)

``refractory > 0`` is Lava's ``LIFRefractory`` (during the R steps after a spike ``v`` stays 0 and ignores
its input and bias; ``u`` keeps integrating).

``latency >= 1`` step: a Lava ``DelayDense`` with ``delays = latency - 1`` (Lava's connections deliver a
spike of step t at step t + 1 + delay). A neuron with ``du = 0, dv = 1`` and a self-synapse of weight
``-vth`` and latency 1 is a non-leaky integrate-and-fire neuron with reset by subtraction
(``u`` is its membrane): Lava's LIF resets to zero, so subtraction is built from the self-synapse.

Command line (used by the torch side through :func:`run_lava_subprocess`)::

    python -m spikedyn.hardware.delay_network BUNDLE.npz OUT.npz
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

MAX_LOIHI_DELAY = 63  # DelayDense's bit-accurate model (Loihi 2: 6 delay bits)


@dataclass
class DelayNetwork:
    """Neurons (Lava float LIF constants, one entry per neuron) and synapses with integer latencies.

    Attributes:
        names: one label per neuron (for rasters and errors).
        du, dv, vth, bias: per-neuron LIF constants (see module doc); ``du``/``dv`` in [0, 1].
        pre, post: synapse endpoints (neuron indices), ``weight`` its weight, ``latency`` its delay in
            steps (>= 1). Two synapses may join the same pair with different latencies.
        perturb: synapses that weight noise applies to (False for a neuron's built-in reset synapse).
        axonal: synapses whose latency takes the per-spike conduction jitter of their presynaptic neuron
            (torch simulator only; S-type noise experiments).
        refractory: per-neuron refractory period in steps (default 0: none).
    """

    names: list[str]
    du: np.ndarray
    dv: np.ndarray
    vth: np.ndarray
    bias: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    weight: np.ndarray
    latency: np.ndarray
    perturb: np.ndarray = field(default=None)  # type: ignore[assignment]
    axonal: np.ndarray = field(default=None)  # type: ignore[assignment]
    refractory: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.names)
        for name in ("du", "dv", "vth", "bias"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            setattr(self, name, np.broadcast_to(value, (n,)).copy())
        self.pre = np.asarray(self.pre, dtype=np.int64)
        self.post = np.asarray(self.post, dtype=np.int64)
        self.latency = np.asarray(self.latency, dtype=np.int64)
        self.weight = np.asarray(self.weight, dtype=np.float64)
        s = self.pre.shape[0]
        self.perturb = np.ones(s, bool) if self.perturb is None else np.asarray(self.perturb, bool)
        self.axonal = np.zeros(s, bool) if self.axonal is None else np.asarray(self.axonal, bool)
        ref = np.zeros(n, np.int64) if self.refractory is None else np.asarray(self.refractory, np.int64)
        self.refractory = np.broadcast_to(ref, (n,)).copy()
        if self.refractory.min(initial=0) < 0:
            raise ValueError("DelayNetwork refractory periods must be >= 0 steps")
        for name in ("post", "weight", "latency", "perturb", "axonal"):
            if getattr(self, name).shape != (s,):
                raise ValueError(f"DelayNetwork.{name} must have one entry per synapse ({s})")
        if s and (self.pre.min() < 0 or self.pre.max() >= n or self.post.min() < 0 or self.post.max() >= n):
            raise ValueError(f"DelayNetwork synapse endpoints must be neuron indices in [0, {n})")
        if s and self.latency.min() < 1:
            raise ValueError("DelayNetwork latencies must be >= 1 step (Lava delivers spikes a step later)")
        if np.any((self.du < 0) | (self.du > 1) | (self.dv < 0) | (self.dv > 1)):
            raise ValueError("DelayNetwork du and dv must lie in [0, 1]")

    @property
    def n_neurons(self) -> int:
        return len(self.names)

    @property
    def n_synapses(self) -> int:
        return int(self.pre.shape[0])

    @property
    def max_latency(self) -> int:
        return int(self.latency.max()) if self.n_synapses else 1

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ValueError(f"no neuron named {name!r} in this network") from None

    def with_weights(self, weight: np.ndarray) -> DelayNetwork:
        """The same network with another weight vector (e.g. one weight-noise realisation)."""
        return self.replace(weight=np.asarray(weight, dtype=np.float64))

    def replace(self, **changes: np.ndarray) -> DelayNetwork:
        """The same network with some fields replaced (weights, latencies, du/dv/vth/bias of one
        perturbed instance)."""
        kwargs = {f.name: getattr(self, f.name) for f in fields(self)}
        unknown = set(changes) - set(kwargs)
        if unknown:
            raise ValueError(f"DelayNetwork has no field(s) {sorted(unknown)}")
        kwargs.update(changes)
        return DelayNetwork(**kwargs)

    # -- bundle files (torch side <-> Lava interpreter) ------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out = {f.name: np.asarray(getattr(self, f.name)) for f in fields(self) if f.name != "names"}
        out["names"] = np.asarray(self.names, dtype=str)
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> DelayNetwork:
        kwargs = {f.name: arrays.get(f.name) for f in fields(cls) if f.name != "names"}
        return cls(names=[str(s) for s in arrays["names"]], **kwargs)


def _check_ext(net: DelayNetwork, ext: np.ndarray) -> np.ndarray:
    ext = np.asarray(ext, dtype=np.float64)
    if ext.ndim != 2 or ext.shape[1] != net.n_neurons:
        raise ValueError(f"external input must be [T, {net.n_neurons}] (steps x neurons), got {ext.shape}")
    return ext


def simulate_reference(net: DelayNetwork, ext: np.ndarray) -> np.ndarray:
    """Spikes ``[T, N]`` (bool) of ``net`` driven by ``ext`` ``[T, N]``: a plain numpy loop that *pulls*
    each synapse's input from the spike history (the torch simulator pushes into a ring buffer instead;
    two different algorithms for the same equations)."""
    ext = _check_ext(net, ext)
    T, N = ext.shape
    z = np.zeros((T, N), dtype=bool)
    u = np.zeros(N)
    v = np.zeros(N)
    ref_end = np.full(N, -1)
    for t in range(T):
        a = np.zeros(N)
        src = t - net.latency
        live = src >= 0
        hit = live.copy()
        hit[live] = z[src[live], net.pre[live]]
        for s in np.flatnonzero(hit):  # in emission order, as Lava's buffers accumulate
            a[net.post[s]] += net.weight[s]
        a = a + ext[t]
        u = u * (1 - net.du) + a
        live = ref_end < t
        v = np.where(live, v * (1 - net.dv) + u + net.bias, v)
        z[t] = v > net.vth
        v[z[t]] = 0.0
        ref_end[z[t]] = t + net.refractory[z[t]]
    return z


# -- Lava ----------------------------------------------------------------------------------------------
def _groups(net: DelayNetwork) -> list[np.ndarray]:
    """Neuron indices grouped by (du, dv, vth, refractory): Lava's LIF shares these scalars within one
    process."""
    keys: dict[tuple[float, float, float, int], list[int]] = {}
    for i in range(net.n_neurons):
        keys.setdefault((net.du[i], net.dv[i], net.vth[i], int(net.refractory[i])), []).append(i)
    return [np.asarray(v) for v in keys.values()]


def _layers(pre: np.ndarray, post: np.ndarray) -> list[np.ndarray]:
    """Split synapses (indices) into layers in which each (pre, post) pair occurs at most once:
    ``DelayDense`` holds one weight and one delay per pair."""
    layers: list[list[int]] = []
    taken: list[set[tuple[int, int]]] = []
    for s, pair in enumerate(zip(pre.tolist(), post.tolist(), strict=True)):
        for layer, used in zip(layers, taken, strict=True):
            if pair not in used:
                layer.append(s)
                used.add(pair)
                break
        else:
            layers.append([s])
            taken.append({pair})
    return [np.asarray(x) for x in layers]


def run_lava(net: DelayNetwork, ext: np.ndarray, loihi_delays: bool = False) -> np.ndarray:
    """Run ``net`` in Lava's CPU simulator (float models) for ``T`` steps; spikes ``[T, N]`` (bool).

    One ``LIF`` process per group of neurons sharing (du, dv, vth); one ``DelayDense`` per (source group,
    target group, layer) with ``delays = latency - 1``; ``ext`` reaches each group through a
    ``RingBuffer`` source wired straight into ``a_in`` (no delay; none where ``ext`` is all zero);
    spikes are recorded per group and run as the other Lava backends run (``lava_backend.run_recorded``).
    ``loihi_delays=True`` refuses delays above Loihi 2's 63 steps (the float model has no limit).
    """
    from lava.proc.dense.process import DelayDense
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF, LIFRefractory

    from .lava_backend import run_recorded

    ext = _check_ext(net, ext)
    T = ext.shape[0]
    if T < 1:
        raise ValueError("run_lava needs at least one step")
    if loihi_delays and net.max_latency - 1 > MAX_LOIHI_DELAY:
        raise ValueError(f"a latency of {net.max_latency} steps exceeds Loihi 2's DelayDense limit "
                         f"({MAX_LOIHI_DELAY + 1} steps)")
    groups = _groups(net)
    group_of = np.empty(net.n_neurons, dtype=np.int64)
    slot_of = np.empty(net.n_neurons, dtype=np.int64)
    for g, idx in enumerate(groups):
        group_of[idx] = g
        slot_of[idx] = np.arange(idx.size)
    procs, sources = [], []
    for idx in groups:
        i0 = idx[0]
        kw = dict(shape=(idx.size,), du=float(net.du[i0]), dv=float(net.dv[i0]), vth=float(net.vth[i0]),
                  bias_mant=net.bias[idx].copy(), bias_exp=0)
        lif = (LIFRefractory(refractory_period=int(net.refractory[i0]), **kw) if net.refractory[i0] > 0
               else LIF(**kw))
        if np.any(ext[:, idx]):  # every process costs time per step: no source for silent inputs
            src = Source(data=np.ascontiguousarray(ext[:, idx].T))
            src.s_out.connect(lif.a_in)
            sources.append(src)
        procs.append(lif)
    conns = []
    for g_pre in range(len(groups)):
        for g_post in range(len(groups)):
            syn = np.flatnonzero((group_of[net.pre] == g_pre) & (group_of[net.post] == g_post))
            if syn.size == 0:
                continue
            for layer in _layers(net.pre[syn], net.post[syn]):
                s = syn[layer]
                W = np.zeros((groups[g_post].size, groups[g_pre].size))
                D = np.zeros(W.shape, dtype=np.int64)
                W[slot_of[net.post[s]], slot_of[net.pre[s]]] = net.weight[s]
                D[slot_of[net.post[s]], slot_of[net.pre[s]]] = net.latency[s] - 1
                conn = DelayDense(weights=W, delays=D, num_message_bits=0)
                procs[g_pre].s_out.connect(conn.s_in)
                conn.a_out.connect(procs[g_post].a_in)
                conns.append(conn)
    recorded = run_recorded(procs[0], {g: (procs[g], idx.size) for g, idx in enumerate(groups)}, T, fixed=False,
                            hardware="sim", stats={})
    spikes = np.zeros((T, net.n_neurons), dtype=bool)
    for g, idx in enumerate(groups):
        spikes[:, idx] = recorded[g] > 0
    return spikes


# -- running Lava from the torch environment -------------------------------------------------------------
def lava_importable() -> bool:
    """True when this interpreter can import lava-nc (then Lava runs in-process): ``lava_available``."""
    from .lava_backend import lava_available

    return lava_available()


def run_lava_subprocess(net: DelayNetwork, ext: np.ndarray, python: str | None = None,
                        timeout: float = 1800.0) -> np.ndarray:
    """:func:`run_lava` in the Lava interpreter (a separate Python 3.10 environment), through a bundle
    file; spikes ``[T, N]`` (bool). Raises ``RuntimeError`` with one actionable line when there is no
    Lava runtime or the run fails."""
    from .runtime import find_lava_python

    python = python or find_lava_python()  # raises LavaNotFound (one line: what to install) when there is none
    ext = _check_ext(net, ext)
    with tempfile.TemporaryDirectory(prefix="spikedyn-lava-") as tmp:
        bundle, out = Path(tmp) / "bundle.npz", Path(tmp) / "out.npz"
        np.savez(bundle, ext=ext, **net.to_arrays())
        proc = subprocess.run([python, "-m", "spikedyn.hardware.delay_network", str(bundle), str(out)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
            raise RuntimeError(f"the Lava run failed ({python}): {tail[0]}")
        with np.load(out) as f:
            return f["spikes"].astype(bool)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m spikedyn.hardware.delay_network BUNDLE.npz OUT.npz", file=sys.stderr)
        return 2
    with np.load(argv[0]) as f:
        arrays = {k: f[k] for k in f.files}
    net = DelayNetwork.from_arrays(arrays)
    spikes = run_lava(net, arrays["ext"])
    tmp = Path(argv[1]).with_suffix(".tmp.npz")
    np.savez(tmp, spikes=spikes)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
