"""``NetworkSpec`` <-> NIR graph (numpy + nir; no torch).

The graph spikedyn writes, for a network whose neurons update every ``dt`` seconds::

    input -> [delay_in: Delay] -> w_in: Linear -> lif <-> w_rec: Affine (bias)
                                                   lif -> [readout_filter: LI] -> w_out: Affine -> output

(``[delay_rec: Delay]`` sits before ``w_rec`` when ``delay_rec > 0``.) Discrete-time maps are written
as NIR's continuous-time neurons with forward-Euler constants, the convention snnTorch and norse
use: ``LIF`` with ``tau = dt/dv`` and ``r = 1/dv`` (so that ``r dt/tau = 1``: a unit current adds 1
to v); ``CubaLIF`` (when ``du < 1``) with ``tau_syn = dt/du``, ``w_in = 1/du``; ``IF`` when
``dv = 0``; the readout filter ``LI`` with ``tau = dt/(1 - kappa)``, ``r = 1``. A cycle carries the
previous step's spikes (as in snnTorch, norse and nirtorch), which is spikedyn's and Lava's recurrent
step. The bias enters as the bias of the input ``Affine`` (for ``LIF``, where the input current
*is* the synaptic current) or as ``v_leak = bias/dv`` (``CubaLIF``). NIR's own LIF semantics are the
map's: ``v_leak`` (leak toward it) and ``v_reset`` (reset to it) are written and read as such; a graph
whose ``v_leak`` differs between neurons is read with the differences folded into the bias.

What NIR cannot say, spikedyn puts in metadata (other tools ignore it and lose the feature):
``lif.metadata`` holds ``reset`` ("subtract": NIR only resets to ``v_reset``), ``beta`` and ``rho``
(ALIF: NIR has no adaptive threshold) and ``n_ref`` (refractory substeps); ``graph.metadata
["spikedyn"]`` holds the exact discrete constants (JSON) so that spikedyn -> NIR -> spikedyn and
NIR -> Lava are bit-exact, not just ``dt/(dt/dv)``-exact.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import nir_checks as checks
from .spec import NetworkSpec
from .validation import check_finite_number

METADATA_KEY = "spikedyn"
FORMAT_VERSION = 1
_NEURONS = ("LIF", "CubaLIF", "IF")


def _nir() -> Any:
    try:
        import nir
    except ImportError as e:  # pragma: no cover - nir is a dependency of both environments
        raise ImportError("the nir package is needed for NIR export/import: pip install 'nir>=1.0.4'") from e
    return nir


def spec_to_nir(spec: NetworkSpec, dt: float, fold_r: bool = False, nested: bool = False) -> Any:
    """The NIR graph of ``spec`` with neuron constants expressed for a step of ``dt`` seconds.

    ``fold_r=True`` writes ``r = 1`` and multiplies the incoming weights (and bias) by ``r`` instead:
    the same network, in the form norse's importer needs (it ignores ``r``). ``nested=True`` puts the
    recurrent layer (``lif``, ``w_rec``) in a sub-graph ``rnn``: snnTorch 1.0's importer mis-wires a
    flat recurrent cycle (it feeds the layer's input through ``w_rec``) but runs a nested one right.
    """
    nir = _nir()
    if dt <= 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    N, I = spec.n_hidden, spec.n_in
    ones = np.ones(N)
    W_in, W_rec, bias = spec.W_in.copy(), spec.W_rec.copy(), spec.bias.copy()
    if spec.dv == 0 and spec.du < 1:
        raise ValueError("NIR has no current-based non-leaky neuron: du < 1 needs dv > 0")
    if spec.du == 0:
        raise ValueError("du = 0 (a current that never decays) has no NIR CubaLIF form (tau_syn = inf)")
    if spec.kappa >= 1:
        raise ValueError("a readout filter with kappa = 1 never integrates (tau_out = inf)")
    meta = {"reset": spec.reset, "beta": spec.beta.copy(), "rho": spec.rho, "n_ref": spec.n_ref,
            "bias": spec.bias.copy()}
    v_th, v_reset, v_leak = spec.v_th * ones, spec.v_reset * ones, spec.v_leak * ones
    if spec.dv == 0:  # IF: v += r I
        lif = nir.IF(r=ones.copy(), v_threshold=v_th, v_reset=v_reset, metadata=meta)
        current_bias = bias
    elif spec.du == 1:
        r = ones / spec.dv
        if fold_r:
            W_in, W_rec, bias, r = W_in / spec.dv, W_rec / spec.dv, bias / spec.dv, ones.copy()
        lif = nir.LIF(tau=ones * (dt / spec.dv), r=r, v_leak=v_leak, v_threshold=v_th, v_reset=v_reset,
                      metadata=meta)
        current_bias = bias
    else:
        r, w_in_scale = ones / spec.dv, ones / spec.du
        if fold_r:
            W_in, W_rec = W_in / (spec.dv * spec.du), W_rec / (spec.dv * spec.du)
            r, w_in_scale = ones.copy(), ones.copy()
        lif = nir.CubaLIF(tau_syn=ones * (dt / spec.du), tau_mem=ones * (dt / spec.dv), r=r,
                          v_leak=bias / spec.dv + v_leak, v_threshold=v_th, v_reset=v_reset, w_in=w_in_scale,
                          metadata=meta)
        current_bias = np.zeros(N)
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([I])})}
    edges: list[tuple[str, str]] = []
    prev = "input"
    if spec.delay_in:
        nodes["delay_in"] = nir.Delay(delay=np.full(I, spec.delay_in * dt))
        edges.append((prev, "delay_in"))
        prev = "delay_in"
    # A current bias rides on the input Affine: tools that run the graph (nirtorch) give a cycle zeros
    # at the first step, so a bias on the recurrent Affine would be missing at t = 0.
    nodes["w_in"] = nir.Affine(weight=W_in, bias=current_bias)
    nodes["lif"] = lif
    nodes["w_rec"] = nir.Linear(weight=W_rec)
    edges += [(prev, "w_in"), ("w_in", "lif"), ("w_rec", "lif")]
    if spec.delay_rec:
        nodes["delay_rec"] = nir.Delay(delay=np.full(N, spec.delay_rec * dt))
        edges += [("lif", "delay_rec"), ("delay_rec", "w_rec")]
    else:
        edges.append(("lif", "w_rec"))
    prev = "lif"
    if spec.kappa > 0:
        tau_out = ones * (dt / (1.0 - spec.kappa))
        nodes["readout_filter"] = nir.LI(tau=tau_out, r=ones.copy(), v_leak=np.zeros(N))
        edges.append((prev, "readout_filter"))
        prev = "readout_filter"
    nodes["w_out"] = nir.Affine(weight=spec.W_out.copy(), bias=spec.b_out.copy())
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.n_out])})
    edges += [(prev, "w_out"), ("w_out", "output")]
    exact = {"version": FORMAT_VERSION, "dt_s": dt, "fold_r": bool(fold_r), **spec.scalars()}
    metadata = {METADATA_KEY: json.dumps(exact)}
    if nested:
        nodes, edges = _nest_recurrent(nir, nodes, edges, N)
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _nest_recurrent(nir: Any, nodes: dict[str, Any], edges: list[tuple[str, str]],
                    N: int) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Move ``lif``, ``w_rec`` (and ``delay_rec``) into a sub-graph ``rnn`` with its own Input/Output."""
    inner = [k for k in ("lif", "delay_rec", "w_rec") if k in nodes]
    sub_nodes = {"input": nir.Input(input_type={"input": np.array([N])}),
                 **{k: nodes.pop(k) for k in inner}, "output": nir.Output(output_type={"output": np.array([N])})}
    sub_edges = [("input", "lif"), *[(a, b) for a, b in edges if a in inner and b in inner], ("lif", "output")]
    outer = [(a if a not in inner else "rnn", b if b not in inner else "rnn") for a, b in edges
             if not (a in inner and b in inner)]
    nodes["rnn"] = nir.NIRGraph(nodes=sub_nodes, edges=sub_edges)
    order = ["input", "delay_in", "w_in", "rnn", "readout_filter", "w_out", "output"]
    return {k: nodes[k] for k in order if k in nodes}, outer


# -- reading ------------------------------------------------------------------------------------------
def flatten(graph: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Nodes and edges of ``graph`` with nested sub-graphs inlined (their Input/Output removed)."""
    nir = _nir()
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}  # sub-graph name -> inner nodes fed by its input
    exit_: dict[str, list[str]] = {}  # sub-graph name -> inner nodes feeding its output
    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            inner_nodes, inner_edges = flatten(node)
            ins = {k for k, n in inner_nodes.items() if isinstance(n, nir.Input)}
            outs = {k for k, n in inner_nodes.items() if isinstance(n, nir.Output)}
            entry[name] = [f"{name}.{b}" for a, b in inner_edges if a in ins]
            exit_[name] = [f"{name}.{a}" for a, b in inner_edges if b in outs]
            for k, n in inner_nodes.items():
                if k not in ins and k not in outs:
                    nodes[f"{name}.{k}"] = n
            edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in inner_edges
                      if a not in ins and b not in outs]
        else:
            nodes[name] = node
    for a, b in graph.edges:
        for src in exit_.get(a, [a]):
            for dst in entry.get(b, [b]):
                edges.append((src, dst))
    return nodes, list(dict.fromkeys(edges))


def _uniform(values: Any, what: str) -> float:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.all(arr == arr[0]):
        raise ValueError(f"spikedyn needs one {what} shared by all neurons; got {np.unique(arr)[:5]}")
    return float(arr[0])


def _linear(node: Any) -> tuple[np.ndarray, np.ndarray | None]:
    weight = np.asarray(node.weight, dtype=np.float64)
    bias = getattr(node, "bias", None)
    return weight, (None if bias is None else np.asarray(bias, dtype=np.float64))


def _delay_steps(node: Any, dt: float) -> int:
    steps = np.asarray(node.delay, dtype=np.float64) / dt
    k = int(round(float(_uniform(steps, "delay"))))
    if k < 0 or abs(float(steps.reshape(-1)[0]) - k) > 1e-6:
        raise ValueError(f"delays must be whole steps of dt = {dt} s; got {node.delay} s")
    return k


def spec_from_nir(graph: Any, dt: float | None = None, reset: str | None = None, tau_scale: float = 1.0,
                  substeps: int | None = None, dt_ms: float | None = None) -> NetworkSpec:
    """A ``NetworkSpec`` from a NIR graph with one recurrent spiking layer.

    Accepted: ``input -> [Delay] -> Linear|Affine -> (LIF|CubaLIF|IF) [<-> Linear|Affine, opt. Delay]
    -> [LI] -> [Linear|Affine] -> [LI] -> output``, nested sub-graphs (snnTorch's ``RLeaky``) included.

    Args:
        dt: seconds per step used to read time constants; defaults to spikedyn's metadata. Graphs from
            other tools carry no dt: snnTorch exports assume 1e-4 s, norse's ``to_nir`` 1e-3 s.
        reset: "zero" (NIR's reset-to-``v_reset``) or "subtract"; default from metadata, else "zero".
            snnTorch's default ``RLeaky`` resets by subtraction but exports plain NIR LIF nodes.
        tau_scale: multiplies every time constant read from the graph. norse 1.1's ``to_nir`` writes
            ``tau = dt * tau_mem`` (``dt / tau_mem_inv``; fixed after 1.1): read its graphs with
            ``tau_scale = 1 / dt``.
        substeps, dt_ms: input-step structure (spikedyn metadata or 1 substep of ``dt``).
    """
    nir = _nir()
    exact = checks.metadata_json(graph, METADATA_KEY)
    if exact is not None and dt is not None and not np.isclose(float(dt), float(exact["dt_s"]), rtol=1e-12):
        raise ValueError(f"dt={dt} s disagrees with the graph's spikedyn metadata (dt_s = {exact['dt_s']}); "
                         "omit dt= for spikedyn's own graphs")
    if exact is not None and dt is None:
        dt = float(exact["dt_s"])
    if dt is None:
        raise ValueError(
            "this NIR graph has no spikedyn metadata, so its time step is unknown; pass dt= (seconds per "
            "step: snnTorch exports assume 1e-4, norse 1e-3)"
        )
    dt = check_finite_number(dt, "dt (seconds per step)", low=0.0)
    tau_scale = check_finite_number(tau_scale, "tau_scale", low=0.0)
    nodes, edges = flatten(graph)

    def tau(values: Any, what: str, node: str | None = None) -> float:
        return checks.time_constant(values, node or lif_name, what, tau_scale)

    succ: dict[str, list[str]] = {k: [] for k in nodes}
    pred: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    spiking = [k for k, n in nodes.items() if type(n).__name__ in _NEURONS]
    unsupported = sorted({type(n).__name__ for n in nodes.values()} - {"Input", "Output", "Linear", "Affine",
                                                                      "Delay", "LI", *_NEURONS})
    if unsupported:
        raise ValueError(f"spikedyn cannot import NIR nodes of type {unsupported} (it reads one recurrent "
                         "LIF/CubaLIF/IF layer with a linear or leaky-integrator readout)")
    if len(spiking) != 1:
        raise ValueError(f"spikedyn reads graphs with exactly one spiking layer; this one has {len(spiking)} "
                         f"({spiking}); spikedyn.export.from_nir reads it as a SpikingNetwork")
    lif_name = spiking[0]
    lif = nodes[lif_name]
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    outputs = [k for k, n in nodes.items() if isinstance(n, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"expected one Input and one Output node, found {len(inputs)} and {len(outputs)}")

    # input path: input -> [Delay] -> Linear/Affine -> [Delay] -> lif
    path, cur, delay_in, W_in, b_in, w_in_name = [], inputs[0], 0, None, None, ""
    while cur != lif_name:
        nxt = succ[cur]
        if len(nxt) != 1:
            raise ValueError(f"the input path must be a chain into the spiking layer; {cur!r} feeds {nxt}")
        cur = nxt[0]
        node = nodes[cur]
        if isinstance(node, nir.Delay):
            delay_in += _delay_steps(node, dt)
        elif isinstance(node, (nir.Linear, nir.Affine)):
            if W_in is not None:
                raise ValueError("the input path has two weight layers; spikedyn has one input matrix")
            W_in, b_in = _linear(node)
            w_in_name = cur
        elif cur != lif_name:
            raise ValueError(f"unexpected {type(node).__name__} node {cur!r} on the input path")
        path.append(cur)
    if W_in is None:
        raise ValueError("no input weights (Linear/Affine) between the Input node and the spiking layer")
    W_in = checks.finite_array(W_in, w_in_name, "weight")
    if W_in.ndim != 2:
        raise ValueError(f"NIR node {w_in_name!r}: input weight must be a matrix, got shape {W_in.shape}")
    N = W_in.shape[0]
    checks.check_io(nodes, inputs[0], "input_type", W_in.shape[1], "inputs")
    if b_in is not None:
        checks.check_shape(b_in, (N,), w_in_name, "bias", f"its weight feeds {N} neurons")

    # recurrent loop(s): lif -> [Delay] -> Linear/Affine -> [Delay] -> lif
    W_rec, b_rec, delay_rec, readout_start = np.zeros((N, N)), np.zeros(N), 0, []
    for first in succ[lif_name]:
        chain, cur, ok = [first], first, False
        while True:
            if cur == lif_name:
                ok = True
                break
            if len(succ[cur]) != 1 or type(nodes[cur]).__name__ not in ("Delay", "Linear", "Affine"):
                break
            cur = succ[cur][0]
            chain.append(cur)
        if not ok:
            readout_start.append(first)
            continue
        weights = [c for c in chain[:-1] if isinstance(nodes[c], (nir.Linear, nir.Affine))]
        if len(weights) != 1:
            raise ValueError(f"a recurrent loop must hold exactly one weight matrix; found {weights}")
        W, b = _linear(nodes[weights[0]])
        checks.check_shape(W, (N, N), weights[0], "weight", f"the spiking layer {lif_name!r} has {N} neurons")
        W_rec = W_rec + checks.finite_array(W, weights[0], "weight")
        if b is not None:
            b_rec = b_rec + b
        delay_rec = max(delay_rec, sum(_delay_steps(nodes[c], dt) for c in chain[:-1]
                                       if isinstance(nodes[c], nir.Delay)))
    if len(readout_start) > 1:
        raise ValueError(f"the spiking layer feeds {len(readout_start)} readout branches; spikedyn has one")

    # neuron constants; ``gain`` scales incoming currents (NIR's r, w_in) to spikedyn's "v += u"
    kind = type(lif).__name__
    node_meta = getattr(lif, "metadata", None) or {}
    v_th = _uniform(lif.v_threshold, "threshold")
    checks.check_shape(lif.v_threshold, (N,), lif_name, "v_threshold", f"the input weights feed {N} neurons")
    if not (np.isfinite(v_th) and v_th > 0):
        raise ValueError(f"NIR node {lif_name!r}: v_threshold must be finite and > 0, got {v_th}")
    v_reset = _uniform(lif.v_reset, "reset value v_reset")
    if kind == "IF":
        du, dv = 1.0, 0.0
        gain = _uniform(lif.r, "resistance r")
        v_leak = np.zeros(N)
    elif kind == "LIF":
        du, dv = 1.0, dt / tau(lif.tau, "tau (membrane time constant)")
        gain = _uniform(lif.r, "resistance r") * dv
        v_leak = np.asarray(lif.v_leak, dtype=np.float64) * np.ones(N)
    else:
        du = dt / tau(lif.tau_syn, "tau_syn (synaptic time constant)")
        dv = dt / tau(lif.tau_mem, "tau_mem (membrane time constant)")
        gain = _uniform(lif.r, "resistance r") * dv * _uniform(lif.w_in, "input weight w_in") * du
        v_leak = np.asarray(lif.v_leak, dtype=np.float64) * np.ones(N)
    if exact is not None:  # spikedyn's own graph: the discrete constants exactly, not dt/(dt/dv) ...
        du = checks.agree(du, exact["du"], lif_name, "du")  # ... once the graph's own say the same
        dv = checks.agree(dv, exact["dv"], lif_name, "dv")
        v_th = checks.agree(v_th, exact["v_th"], lif_name, "v_th")
        if not exact.get("fold_r"):
            gain = 1.0
        elif kind != "IF":
            gain = dv * (du if kind == "CubaLIF" else 1.0)
    current_bias = (b_in if b_in is not None else 0.0) + b_rec
    if du < 1 and np.any(current_bias != 0):
        raise ValueError("a bias on the synaptic current of a CubaLIF has no spikedyn form; use v_leak")
    W_in, W_rec = W_in * gain, W_rec * gain
    # v_leak: one shared value is the map's own leak target; per-neuron values fold into the bias (dv v_leak)
    if exact is not None:
        v_leak_map = float(exact.get("v_leak", 0.0))
    else:
        v_leak_map = float(v_leak[0]) if kind != "IF" and np.all(v_leak == v_leak[0]) else 0.0
    bias = current_bias * gain + dv * (v_leak - v_leak_map)
    if exact is not None and not exact.get("fold_r") and "bias" in node_meta:
        bias = checks.agree_arrays(bias, node_meta["bias"], lif_name, "bias")

    # readout: [LI] -> [Linear/Affine] -> [LI] -> output
    kappa, W_out, b_out, filter_gain = 0.0, None, None, None
    cur = readout_start[0] if readout_start else None
    while cur is not None and cur not in outputs:
        node = nodes[cur]
        if isinstance(node, nir.LI):
            if filter_gain is not None:
                raise ValueError("two leaky-integrator readout filters; spikedyn has one")
            if not np.allclose(np.asarray(node.v_leak, dtype=np.float64), 0.0):
                raise ValueError("a readout leaky integrator with v_leak != 0 is not spikedyn's readout")
            kappa = 1.0 - dt / tau(node.tau, "tau (readout time constant)", cur)
            filter_gain = np.asarray(node.r, dtype=np.float64)  # LI: v += d (r I - v): r scales the input
            size = N if W_out is None else W_out.shape[0]
            checks.check_shape(filter_gain, (size,), cur, "r", f"it filters {size} values")
            filter_gain = filter_gain * np.ones(size)
            if W_out is not None:  # filter after the weights: exact only without a bias
                if np.any(b_out != 0):
                    raise ValueError("a leaky integrator after a biased readout is not spikedyn's readout")
                W_out = W_out * filter_gain[:, None]
        elif isinstance(node, (nir.Linear, nir.Affine)):
            if W_out is not None:
                raise ValueError("two readout weight layers; spikedyn's readout is one affine map")
            W_out, b_out = _linear(node)
            if W_out.ndim != 2 or W_out.shape[1] != N:
                raise ValueError(f"NIR node {cur!r}: readout weight has shape {W_out.shape}, expected [O, {N}] "
                                 f"(the spiking layer {lif_name!r} has {N} neurons)")
            W_out = checks.finite_array(W_out, cur, "weight")
            if filter_gain is not None:
                W_out = W_out * filter_gain[None, :]
        else:
            raise ValueError(f"unexpected {type(node).__name__} node {cur!r} in the readout")
        nxt = succ[cur]
        cur = nxt[0] if len(nxt) == 1 else None
    if W_out is None:  # the spikes (or their filtered trace) are the output
        W_out = np.eye(N) * (filter_gain if filter_gain is not None else 1.0)
    b_out = np.zeros(W_out.shape[0]) if b_out is None else b_out
    readout_node = readout_start[0] if readout_start else lif_name
    if W_out.ndim != 2 or W_out.shape[1] != N:
        raise ValueError(f"NIR readout (from node {readout_node!r}): weight has shape {W_out.shape}, expected "
                         f"[O, {N}] (the spiking layer {lif_name!r} has {N} neurons)")
    checks.check_shape(b_out, (W_out.shape[0],), readout_node, "readout bias", f"{W_out.shape[0]} outputs")
    checks.check_io(nodes, outputs[0], "output_type", W_out.shape[0], "outputs")

    beta = np.asarray(node_meta.get("beta", np.zeros(N)), dtype=np.float64)
    if (exact is not None and reset is None and "reset" in node_meta and "reset" in exact
            and node_meta["reset"] != exact["reset"]):
        raise ValueError(f"NIR node {lif_name!r} says reset={node_meta['reset']!r}, the graph's spikedyn "
                         f"metadata reset={exact['reset']!r}: {checks.METADATA_HINT}")
    reset = reset or str(node_meta.get("reset", "zero"))
    if reset == "subtract" and v_reset != 0:
        raise ValueError(f"a subtractive reset has no v_reset; this graph resets to v_reset = {v_reset}")
    kwargs: dict[str, Any] = dict(
        W_in=W_in, W_rec=W_rec, bias=bias, W_out=W_out, b_out=b_out, du=du, dv=dv, v_th=v_th,
        reset=reset, beta=beta, rho=float(node_meta.get("rho", 0.0)),
        n_ref=int(node_meta.get("n_ref", 0)), kappa=kappa, delay_in=delay_in, delay_rec=delay_rec,
        substeps=1, dt_ms=dt * 1000.0, v_leak=v_leak_map, v_reset=0.0 if reset == "subtract" else v_reset,
    )  # fmt: skip
    if exact is not None:
        kwargs.update(kappa=checks.agree(kappa, exact["kappa"], readout_node, "kappa (readout decay)"),
                      substeps=int(exact["substeps"]), dt_ms=float(exact["dt_ms"]))
        for name, value in (("delay_in", delay_in), ("delay_rec", delay_rec)):
            if int(exact.get(name, value)) != value:
                raise ValueError(f"the graph's Delay nodes give {name} = {value} steps, but the spikedyn metadata "
                                 f"says {exact[name]}: {checks.METADATA_HINT}")
    if substeps is not None:
        kwargs["substeps"] = int(substeps)
    if dt_ms is not None:
        kwargs["dt_ms"] = float(dt_ms)
    return NetworkSpec(**kwargs)


def graph_bytes(graph: Any) -> bytes:
    """``graph`` as the bytes of a ``.nir`` (HDF5) file, for atomic writes."""
    import io

    buf = io.BytesIO()
    _nir().write(buf, graph)
    return buf.getvalue()


def read_graph(graph_or_path: Any) -> Any:
    """A ``nir.NIRGraph`` from a graph or a path to a ``.nir`` file."""
    nir = _nir()
    if isinstance(graph_or_path, nir.NIRGraph):
        return graph_or_path
    from pathlib import Path

    if not isinstance(graph_or_path, (str, Path)):
        raise TypeError(f"expected a nir.NIRGraph or a path to a .nir file, got {type(graph_or_path).__name__}")
    path = Path(graph_or_path)
    if not path.is_file():
        raise FileNotFoundError(f"no NIR file at {path}")
    try:
        graph = nir.read(str(path))
    except Exception as e:  # h5py/nir raise many types for a damaged file: one line with the path
        graph = _read_repaired(path)
        if graph is None:
            text = str(e).strip().splitlines()
            raise ValueError(f"cannot read NIR file {path}: {type(e).__name__}"
                             f"{': ' + text[0] if text else ''} (not a NIR/HDF5 graph, or damaged)") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"{path} holds a single NIR {type(graph).__name__} node, not a graph")
    return graph


class NIRRepairWarning(UserWarning):
    """``read_graph`` renamed a node so that a sub-graph's edges name it (listed in the message)."""


def _repair_names(d: dict[str, Any], where: str, repairs: list[str]) -> None:
    """In a graph dict (``nir.serialization.hdf2dict``), rename the one node that no edge names to the one
    name the edges use but no node has: the NIR paper's Braille sub-graph files call the neuron
    ``lif1`` in ``nodes`` and ``lif`` in ``edges`` (written by ``extras/Subgraph_rnn.ipynb`` under NIR
    0.2, whose reader did not check). Anything less clear-cut is left alone (and then refused)."""
    nodes = d.get("nodes")
    if not isinstance(nodes, dict):
        return
    for name, node in nodes.items():
        if isinstance(node, dict) and node.get("type") == "NIRGraph":
            _repair_names(node, f"{where}{name}.", repairs)
    edges = [tuple(x.decode() if isinstance(x, bytes) else str(x) for x in e)
             for e in np.asarray(d.get("edges", np.zeros((0, 2)))).reshape(-1, 2).tolist()]
    named = {x for e in edges for x in e}
    missing = sorted(named - set(nodes))
    unused = sorted(set(nodes) - named)
    if len(missing) == 1 and len(unused) == 1:
        nodes[missing[0]] = nodes.pop(unused[0])
        repairs.append(f"node '{where}{unused[0]}' renamed '{where}{missing[0]}' (the name its edges use)")


def _read_repaired(path: Any) -> Any:
    """The graph of a file ``nir.read`` refuses only because a sub-graph's edges misname one node; else None."""
    import warnings

    nir = _nir()
    try:
        import h5py
        from nir.serialization import hdf2dict

        with h5py.File(str(path), "r") as f:
            data = hdf2dict(f["node"])
        repairs: list[str] = []
        _repair_names(data, "", repairs)
        if not repairs:
            return None
        graph = nir.dict2NIRNode({**data, "type_check": True})
    except (OSError, KeyError, ValueError, TypeError):  # not a file this repair understands: nir.read decides
        return None
    warnings.warn(f"{path}: {'; '.join(repairs)}", NIRRepairWarning, stacklevel=3)
    return graph
