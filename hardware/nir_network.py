"""``NetworkGraph`` <-> NIR graph: any DAG of NIR nodes spikedyn's neurons express, with cycles (numpy + nir).

Reading. The graph is flattened (nested sub-graphs inlined, ``nir_io.flatten``) and split into *state*
nodes — the ``Input``, the spiking neurons (``LIF``, ``CubaLIF``, ``IF``: one layer each), the readout's
leaky integrator (``LI``) and the ``Output`` — and *wires* (``Affine``, ``Linear``, ``Scale``, ``Delay``).
Every path of wires from a source (the input or a layer) to a layer becomes one projection, the wires'
affine maps composed and their delays summed; paths into the same layer add. Time: NIR's neurons are
continuous-time; spikedyn reads them with forward Euler for a step of ``dt`` seconds (the convention of
snnTorch, norse and the NIR paper's graphs): ``LIF``: ``dv = dt/tau``, incoming weights times ``r dv``;
``CubaLIF``: ``du = dt/tau_syn``, ``dv = dt/tau_mem``, weights times ``w_in du r dv``; ``IF``: ``dv = 0``,
weights times ``r`` — per-neuron values included. ``v_leak`` is the leak target (one per layer; per-neuron
values become ``dv v_leak`` of bias), ``v_reset`` the value reset to. Feed-forward edges act within a
step; an edge that closes a cycle (found by a depth-first walk from the input, in edge order) carries the
previous step's spikes, as snnTorch, norse and nirtorch run cycles: that projection gets one more step of
delay. What cannot be expressed is one ``ValueError`` naming the node.

Writing. One neuron node per layer (``LIF`` when ``du = 1``, ``CubaLIF`` when ``du < 1``, ``IF`` when
``dv = 0``; the layer's bias as ``v_leak + bias/dv``), one ``Affine`` / ``Linear`` per projection (plus a
``Delay`` for delays the cycle does not already give), the readout as ``[LI] -> [Affine] -> Output``.
``graph.metadata["spikedyn_network"]`` holds the exact discrete constants; on reading they are used only
after the graph's own fields agree with them (``nir_checks.agree``).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import nir_checks as checks
from .network import INPUT, Layer, NetworkGraph, Projection, Readout
from .nir_io import _nir, flatten

NETWORK_KEY = "spikedyn_network"
FORMAT_VERSION = 1
NEURONS = ("LIF", "CubaLIF", "IF")
WIRES = ("Affine", "Linear", "Scale", "Delay")


def _arr(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _per_neuron(values: Any, n: int, node: str, field: str) -> np.ndarray:
    arr = _arr(values)
    if arr.size == 1:
        arr = np.full(n, arr[0])
    if arr.shape != (n,):
        raise ValueError(f"NIR node {node!r}: {field} has {arr.size} values, the layer has {n} neurons")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"NIR node {node!r}: {field} holds NaN or Inf")
    return arr


def _tau(values: Any, n: int, node: str, field: str, scale: float) -> np.ndarray:
    arr = _per_neuron(values, n, node, field) * scale
    if np.any(arr <= 0):
        raise ValueError(f"NIR node {node!r}: {field} must be a time constant > 0 s, got {arr[arr <= 0][0]}")
    return arr


def _uniform(values: Any, node: str, field: str) -> float:
    arr = _arr(values)
    if arr.size == 0 or not np.all(arr == arr[0]):
        raise ValueError(f"NIR node {node!r}: spikedyn needs one {field} per layer; got {np.unique(arr)[:5]}")
    return float(arr[0])


def _neuron_size(node: Any) -> int:
    return int(_arr(node.v_threshold).size)


def graph_dt(graph: Any, dt: float | None) -> float | None:
    """The step in seconds: ``dt``, else spikedyn's metadata, else a ``dt`` entry of the graph's metadata."""
    meta = graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}
    exact = _exact(graph)
    if exact is not None:
        if dt is not None and not np.isclose(float(dt), float(exact["dt_s"]), rtol=1e-12):
            raise ValueError(f"dt={dt} s disagrees with the graph's spikedyn metadata (dt_s = {exact['dt_s']}); "
                             "omit dt= for spikedyn's own graphs")
        return float(exact["dt_s"])
    if dt is not None:
        return float(dt)
    for key in ("dt", "dt_s"):
        if key in meta:
            return float(np.asarray(meta[key]).reshape(-1)[0])
    return None


def _exact(graph: Any) -> dict[str, Any] | None:
    exact = checks.metadata_json(graph, NETWORK_KEY)
    if exact is not None and "structure" not in exact:
        raise ValueError(f"graph.metadata[{NETWORK_KEY!r}] has no network structure; delete that entry to import "
                         "the graph's own constants")
    return exact


def graph_from_nir(graph: Any, dt: float | None = None, reset: str | dict[str, str] | None = None,
                   tau_scale: float = 1.0) -> NetworkGraph:
    """A ``NetworkGraph`` from a NIR graph (module doc).

    Args:
        dt: seconds per step (default: spikedyn's metadata, else ``graph.metadata["dt"]``; the NIR paper's
            Braille graphs use 1e-4).
        reset: "zero" (NIR's reset to ``v_reset``), "subtract" (threshold subtracted after the leak) or
            "subtract_decayed" (subtracted before the leak: snnTorch ``reset_delay=False``); one for all
            layers or a dict by layer name; default: the node's spikedyn metadata, else "zero".
        tau_scale: multiplies every time constant read (norse 1.1's ``to_nir`` needs ``1 / dt``).
    """
    _nir()  # a clear ImportError without the nir package
    step = graph_dt(graph, dt)
    if step is None:
        raise ValueError("this NIR graph carries no time step; pass dt= (seconds per step: the NIR paper's "
                         "graphs and snnTorch use 1e-4, norse 1e-3)")
    dt = checks.finite_array(step, "graph", "dt").item()
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    exact = _exact(graph)
    ex_layers = {L["name"]: L for L in exact["structure"]["layers"]} if exact else {}
    ex_proj = {p["name"]: p for p in exact["structure"]["projections"]} if exact else {}
    nodes, edges = flatten(graph)
    kinds = {k: type(n).__name__ for k, n in nodes.items()}
    for k, kind in kinds.items():
        if kind not in (*NEURONS, *WIRES, "LI", "Input", "Output"):
            raise ValueError(f"NIR node {k!r} is a {kind}, which spikedyn cannot express (it reads LIF, CubaLIF "
                             "and IF layers, Affine/Linear/Scale/Delay projections and an LI readout)")
    inputs = [k for k, t in kinds.items() if t == "Input"]
    outputs = [k for k, t in kinds.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"spikedyn reads graphs with one Input and one Output node; found {inputs} and {outputs}")
    succ: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        succ[a].append(b)
    layer_names = [k for k, t in kinds.items() if t in NEURONS]
    if not layer_names:
        raise ValueError("the NIR graph has no spiking layer (LIF, CubaLIF or IF)")
    n_in = checks.io_size(nodes[inputs[0]], "input_type") or checks.io_size(nodes[inputs[0]], "output_type")
    sizes = {inputs[0]: n_in, **{k: _neuron_size(nodes[k]) for k in layer_names}}

    # every path of wires from a source to a layer / the readout
    found: list[tuple[str, str, np.ndarray | None, np.ndarray | None, int, list[str]]] = []
    biased_paths: dict[str, int] = {}

    def walk(src: str, cur: str, W: np.ndarray | None, b: np.ndarray | None, delay: int, via: list[str]) -> None:
        for nxt in succ[cur]:
            kind = kinds[nxt]
            if kind in NEURONS or kind in ("LI", "Output"):
                found.append((src, nxt, W, b, delay, via))
                continue
            if kind == "Input":
                raise ValueError(f"NIR node {cur!r} feeds the Input node {nxt!r}")
            if nxt in via:
                raise ValueError(f"NIR nodes {via} form a cycle without a neuron; spikedyn needs a spiking layer "
                                 "on every cycle")
            node = nodes[nxt]
            W2, b2, d2 = W, b, delay
            if kind in ("Affine", "Linear"):
                A = checks.finite_array(node.weight, nxt, "weight")
                if A.ndim != 2:
                    raise ValueError(f"NIR node {nxt!r}: weight must be a matrix, got shape {A.shape}")
                n_src = sizes.get(src) if W is None else W.shape[0]
                if n_src is None:
                    n_src = A.shape[1]
                    sizes[src] = n_src
                if A.shape[1] != n_src:
                    raise ValueError(f"NIR node {nxt!r}: weight has {A.shape[1]} columns, but its input has {n_src} "
                                     f"values (from {src!r})")
                W2 = A if W is None else A @ W
                b2 = None if b is None else A @ b
                if kind == "Affine" and getattr(node, "bias", None) is not None:
                    bias = checks.finite_array(node.bias, nxt, "bias").reshape(-1)
                    checks.check_shape(bias, (A.shape[0],), nxt, "bias", f"its weight has {A.shape[0]} rows")
                    biased_paths[nxt] = biased_paths.get(nxt, 0) + 1  # a zero bias too: spikedyn's bias flag
                    b2 = (b2 if b2 is not None else 0.0) + bias * np.ones(A.shape[0])
            elif kind == "Scale":
                s = checks.finite_array(node.scale, nxt, "scale").reshape(-1)
                W2 = np.diag(s) if W is None else s[:, None] * W
                b2 = None if b is None else s * b
            else:  # Delay
                steps = _arr(node.delay) / dt
                k = int(round(float(steps[0]))) if steps.size else 0
                if steps.size == 0 or np.any(np.abs(steps - k) > 1e-6) or k < 0:
                    raise ValueError(f"NIR node {nxt!r}: delays must be one whole number of steps of dt = {dt} s; "
                                     f"got {node.delay} s")
                d2 = delay + k
            walk(src, nxt, W2, b2, d2, [*via, nxt])

    for src in [inputs[0], *layer_names]:
        walk(src, src, None, None, 0, [])
    for name, count in biased_paths.items():
        if count > 1 and np.any(_arr(nodes[name].bias) != 0):
            raise ValueError(f"NIR node {name!r}: a biased Affine reached by {count} paths has no single place for "
                             "its bias in spikedyn (give it one input, or move the bias)")
    # an Affine's bias, zero included, becomes the bias of the one projection through it (the round trip keeps
    # spikedyn's bias flags); a zero bias reached by several paths has no single place and adds nothing: dropped
    found = [(s, d, W, None if b is not None and all(biased_paths[v] > 1 for v in via if v in biased_paths) else b,
              k, via) for s, d, W, b, k, via in found]

    # execution order: depth-first from the input; an edge to a layer on the stack closes a cycle
    proj = [f for f in found if kinds[f[1]] in NEURONS]
    out_of: dict[str, list[int]] = {}
    for i, f in enumerate(proj):
        out_of.setdefault(f[0], []).append(i)
    back, state, order = set(), {}, []

    def dfs(n: str) -> None:
        state[n] = 1
        for i in out_of.get(n, []):
            dst = proj[i][1]
            if state.get(dst) == 1:
                back.add(i)
            elif dst not in state:
                dfs(dst)
        state[n] = 2
        if n != inputs[0]:
            order.append(n)

    dfs(inputs[0])
    unreached = [n for n in layer_names if n not in state]
    if unreached:
        raise ValueError(f"NIR nodes {unreached} are not reached from the Input node")
    order.reverse()

    # layers: constants, and the gain NIR's r / w_in apply to their incoming currents
    layers, gains = [], {}
    reset_of = (lambda n: reset.get(n)) if isinstance(reset, dict) else (lambda n: reset)
    for name in order:
        node, kind, n = nodes[name], kinds[name], sizes[name]
        meta = getattr(node, "metadata", None) or {}
        if kind == "IF":
            du, dv = np.ones(n), np.zeros(n)
            gain = _per_neuron(node.r, n, name, "r")
            v_leak = np.zeros(n)
        elif kind == "LIF":
            du = np.ones(n)
            dv = dt / _tau(node.tau, n, name, "tau", tau_scale)
            gain = _per_neuron(node.r, n, name, "r") * dv
            v_leak = _per_neuron(node.v_leak, n, name, "v_leak")
        else:
            du = dt / _tau(node.tau_syn, n, name, "tau_syn", tau_scale)
            dv = dt / _tau(node.tau_mem, n, name, "tau_mem", tau_scale)
            w_in = _per_neuron(getattr(node, "w_in", 1.0), n, name, "w_in")
            gain = _per_neuron(node.r, n, name, "r") * dv * w_in * du
            v_leak = _per_neuron(node.v_leak, n, name, "v_leak")
        if np.any(du > 1) or np.any(dv > 1):
            raise ValueError(f"NIR node {name!r}: a time constant shorter than dt = {dt} s has no forward-Euler "
                             "form; pass a smaller dt")
        v_th = _uniform(node.v_threshold, name, "v_threshold")
        v_reset = _uniform(getattr(node, "v_reset", 0.0), name, "v_reset")
        ex = ex_layers.get(name)
        if ex is not None:
            du = np.asarray(ex["du"], dtype=np.float64) * np.ones(n) if np.allclose(du, ex["du"], rtol=checks.RTOL) \
                else _disagree(name, "du", du, ex["du"])
            dv = np.asarray(ex["dv"], dtype=np.float64) * np.ones(n) if np.allclose(dv, ex["dv"], rtol=checks.RTOL,
                                                                                      atol=1e-15) \
                else _disagree(name, "dv", dv, ex["dv"])
            v_th = checks.agree(v_th, ex["v_th"], name, "v_th")
            if not exact.get("fold_r"):
                gain = np.ones(n)  # spikedyn writes r = 1/dv, w_in = 1/du: the weights are the map's own
            elif kind != "IF":
                gain = dv * (du if kind == "CubaLIF" else 1.0)
        layer_reset = reset_of(name) or (ex["reset"] if ex else None) or str(meta.get("reset", "zero"))
        if ex is not None and reset_of(name) is None and meta.get("reset", ex["reset"]) != ex["reset"]:
            raise ValueError(f"NIR node {name!r} says reset={meta['reset']!r}, the graph's spikedyn metadata "
                             f"{ex['reset']!r}: {checks.METADATA_HINT}")
        if layer_reset != "zero" and v_reset != 0:
            raise ValueError(f"NIR node {name!r}: reset={layer_reset!r} has no v_reset; this node resets to {v_reset}")
        uniform_leak = bool(np.all(v_leak == v_leak[0]))
        leak = float(v_leak[0]) if uniform_leak and kind != "IF" else 0.0
        if ex is not None:
            leak = float(ex.get("v_leak", 0.0))
        bias = dv * (v_leak - leak)
        if ex is not None and "bias" in meta:
            bias = checks.agree_arrays(bias, meta["bias"], name, "bias")
        beta = meta.get("beta", ex.get("beta") if ex else None)
        beta = np.zeros(n) if beta is None else np.asarray(beta, dtype=np.float64) * np.ones(n)
        layers.append(Layer(name=name, size=n, du=du, dv=dv, v_th=v_th, reset=layer_reset, v_leak=leak,
                            v_reset=v_reset if layer_reset == "zero" else 0.0, bias=bias, beta=beta,
                            rho=float(meta.get("rho", ex.get("rho", 0.0) if ex else 0.0)),
                            n_ref=int(meta.get("n_ref", ex.get("n_ref", 0) if ex else 0))))
        gains[name] = gain

    if exact is not None:  # spikedyn's own graph: its layer order (a valid execution order)
        rank = {L["name"]: i for i, L in enumerate(exact["structure"]["layers"])}
        layers.sort(key=lambda L: rank.get(L.name, len(rank)))
    projections = []
    for i, (src, dst, W, b, delay, via) in enumerate(proj):
        n_src = sizes[src]
        if W is None:
            if n_src != sizes[dst]:
                raise ValueError(f"NIR node {src!r} ({n_src} values) feeds {dst!r} ({sizes[dst]} neurons) without "
                                 "a weight")
            W = np.eye(n_src)
        if W.shape[0] != sizes[dst]:
            raise ValueError(f"NIR node {via[-1]!r}: {W.shape[0]} outputs into {dst!r}, which has {sizes[dst]} "
                             "neurons")
        g = gains[dst]
        weights = [v for v in via if kinds[v] != "Delay"]
        name = "+".join(weights) if weights else f"w_{src}_{dst}"
        d = delay + (1 if i in back else 0)
        ex = ex_proj.get(name)
        if ex is not None and int(ex["delay"]) != d:
            raise ValueError(f"NIR projection {name!r} has {d} steps of delay, the spikedyn metadata says "
                             f"{ex['delay']}: {checks.METADATA_HINT}")
        projections.append(Projection(INPUT if src == inputs[0] else src, dst, W * g[:, None],
                                      None if b is None else b * g, d, name))
    readout = _readout(nodes, kinds, succ, found, outputs[0], dt, tau_scale, sizes)
    dt_ms, substeps = dt * 1000.0, 1
    if exact is not None:
        dt_ms, substeps = float(exact["structure"]["dt_ms"]), int(exact["structure"]["substeps"])
        readout.kappa = checks.agree(readout.kappa, exact["structure"]["readout"]["kappa"], "readout", "kappa")
    checks.check_io(nodes, outputs[0], "output_type", readout.weight.shape[0] if readout.weight is not None
                    else sizes[readout.src], "outputs")
    return NetworkGraph(int(sizes[inputs[0]]), layers, projections, readout, dt_ms=dt_ms, substeps=substeps)


def _disagree(node: str, field: str, graph_value: Any, exact: Any) -> Any:
    raise ValueError(f"NIR node {node!r} gives {field} = {np.asarray(graph_value).reshape(-1)[0]:.12g}, but the "
                     f"spikedyn metadata says {np.asarray(exact).reshape(-1)[0]:.12g}: {checks.METADATA_HINT}")


def _readout(nodes: dict, kinds: dict, succ: dict, found: list, output: str, dt: float, tau_scale: float,
             sizes: dict) -> Readout:
    """``[LI] -> [wires] -> Output`` after one layer (or a wire path straight into the Output)."""
    starts = [f for f in found if kinds[f[1]] in ("LI", "Output")]
    if len(starts) != 1:
        where = [f"{f[0]} -> {f[1]}" for f in starts]
        raise ValueError(f"spikedyn reads one readout path from a spiking layer to the Output; found {where or 'none'}")
    src, first, W, b, delay, via = starts[0]
    if kinds[src] not in NEURONS:
        raise ValueError(f"the Output is fed straight from the input ({via}); spikedyn reads a spiking layer")
    if delay:
        raise ValueError(f"NIR Delay nodes in the readout ({via}) are not supported")
    if first == output:
        return Readout(src, 0.0, W, b)
    li = nodes[first]
    if W is not None and b is not None and np.any(b != 0):
        raise ValueError(f"NIR node {first!r}: a leaky integrator after a biased readout is not spikedyn's readout")
    n = sizes[src] if W is None else W.shape[0]
    tau = _tau(li.tau, n, first, "tau", tau_scale)
    if not np.all(tau == tau[0]):
        raise ValueError(f"NIR node {first!r}: the readout filter needs one tau")
    if np.any(_per_neuron(li.v_leak, n, first, "v_leak") != 0):
        raise ValueError(f"NIR node {first!r}: a readout leaky integrator with v_leak != 0 is not spikedyn's readout")
    kappa = 1.0 - dt / float(tau[0])
    if not 0 <= kappa < 1:
        raise ValueError(f"NIR node {first!r}: tau = {tau[0]} s is shorter than dt = {dt} s")
    r = _per_neuron(li.r, n, first, "r")
    W = np.diag(r) if W is None else r[:, None] * W
    # after the LI: wires to the Output
    cur, W2, b2 = first, None, None
    while True:
        nxt = succ[cur]
        if len(nxt) != 1:
            raise ValueError(f"NIR node {cur!r}: the readout after the leaky integrator must be one chain")
        cur = nxt[0]
        if kinds[cur] == "Output":
            break
        if kinds[cur] not in ("Affine", "Linear"):
            raise ValueError(f"NIR node {cur!r} ({kinds[cur]}) in the readout after {first!r} is not supported")
        A = checks.finite_array(nodes[cur].weight, cur, "weight")
        W2 = A if W2 is None else A @ W2
        bb = getattr(nodes[cur], "bias", None)
        b2 = (None if b2 is None else A @ b2)
        if bb is not None:
            b2 = (b2 if b2 is not None else 0.0) + checks.finite_array(bb, cur, "bias")
    W_total = W if W2 is None else W2 @ W
    return Readout(src, kappa, W_total, b2)


def graph_to_nir(g: NetworkGraph, dt: float | None = None, fold_r: bool = False) -> Any:
    """The NIR graph of ``g`` with time constants for a step of ``dt`` seconds (default: the network's
    neuron step). ``fold_r`` writes ``r = 1`` (and ``w_in = 1``) and scales the incoming weights instead:
    the same network, for importers that ignore ``r`` (norse's ``LIF``)."""
    nir = _nir()
    dt = g.dt_ms / g.substeps / 1000.0 if dt is None else float(dt)
    if not dt > 0:
        raise ValueError(f"dt must be > 0 seconds, got {dt}")
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array([g.n_in])})}
    edges: list[tuple[str, str]] = []
    index = {INPUT: -1, **{L.name: i for i, L in enumerate(g.layers)}}
    scale_of, current_bias = {}, {}
    for L in g.layers:
        n = L.size
        ones = np.ones(n)
        du, dv = np.asarray(L.du) * ones, np.asarray(L.dv) * ones
        meta = {"reset": L.reset, "beta": L.beta.copy(), "rho": L.rho, "n_ref": L.n_ref, "bias": L.bias.copy()}
        v_th, v_reset = L.v_th * ones, L.v_reset * ones
        if np.all(dv == 0):
            if np.any(du != 1):
                raise ValueError(f"layer {L.name!r}: NIR has no current-based non-leaky neuron (du < 1 needs dv > 0)")
            node = nir.IF(r=ones.copy(), v_threshold=v_th, v_reset=v_reset, metadata=meta)
            scale = ones.copy()
            current_bias[L.name] = L.bias
        elif np.any(dv == 0):
            raise ValueError(f"layer {L.name!r}: mixes leaky and non-leaky neurons; NIR has one node type per layer")
        elif np.all(du == 1):
            r = ones if fold_r else 1.0 / dv
            scale = 1.0 / dv if fold_r else ones
            node = nir.LIF(tau=dt / dv, r=r, v_leak=L.v_leak + L.bias / dv, v_threshold=v_th, v_reset=v_reset,
                           metadata=meta)
        else:
            if np.any(du == 0):
                raise ValueError(f"layer {L.name!r}: du = 0 (a current that never decays) has no CubaLIF form")
            r, w_in = (ones, ones) if fold_r else (1.0 / dv, 1.0 / du)
            scale = 1.0 / (dv * du) if fold_r else ones
            node = nir.CubaLIF(tau_syn=dt / du, tau_mem=dt / dv, r=r, w_in=w_in, v_leak=L.v_leak + L.bias / dv,
                               v_threshold=v_th, v_reset=v_reset, metadata=meta)
        nodes[L.name] = node
        scale_of[L.name] = scale
    names = set(nodes)
    for j, p in enumerate(sorted(g.projections, key=lambda p: (index[p.src], index[p.dst]))):
        back = index[p.src] >= index[p.dst]
        extra = p.delay - (1 if back else 0)
        if extra < 0:
            raise ValueError(f"projection {p.name!r}: a zero-delay projection must run forward")
        pname = _node_name(p.name, names, f"w_{p.src}_{p.dst}")
        W = p.weight * scale_of[p.dst][:, None]
        bias = p.bias
        if p.dst in current_bias and np.any(current_bias[p.dst] != 0):  # an IF layer's v-bias is a current bias
            bias = (0.0 if bias is None else bias) + current_bias.pop(p.dst)
        if bias is not None:
            nodes[pname] = nir.Affine(weight=W, bias=bias * scale_of[p.dst])
        else:
            nodes[pname] = nir.Linear(weight=W)
        src = "input" if p.src == INPUT else p.src
        if extra:
            dname = _node_name(f"{pname}_delay", names | {pname}, f"delay_{j}")
            n_src = g.n_in if p.src == INPUT else g.layer(p.src).size
            nodes[dname] = nir.Delay(delay=np.full(n_src, extra * dt))
            edges += [(src, dname), (dname, pname)]
        else:
            edges.append((src, pname))
        edges.append((pname, p.dst))
        names.add(pname)
    for name, b in current_bias.items():
        if np.any(b != 0):
            raise ValueError(f"layer {name!r}: an IF layer's bias needs an incoming projection to carry it in NIR")
    r = g.readout
    prev = r.src
    if r.kappa > 0:
        n = g.layer(r.src).size
        nodes["readout_filter"] = nir.LI(tau=np.full(n, dt / (1.0 - r.kappa)), r=np.ones(n), v_leak=np.zeros(n))
        edges.append((prev, "readout_filter"))
        prev = "readout_filter"
    if r.weight is not None:
        nodes["w_out"] = (nir.Affine(weight=r.weight.copy(), bias=r.bias.copy()) if r.bias is not None
                          else nir.Linear(weight=r.weight.copy()))
        edges.append((prev, "w_out"))
        prev = "w_out"
    nodes["output"] = nir.Output(output_type={"output": np.array([g.n_out])})
    edges.append((prev, "output"))
    exact = {"version": FORMAT_VERSION, "dt_s": dt, "fold_r": bool(fold_r), "structure": g.structure()}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={NETWORK_KEY: json.dumps(exact)})


def _node_name(wanted: str, taken: set[str], fallback: str) -> str:
    name = wanted if wanted and "/" not in wanted and "->" not in wanted and "+" not in wanted else fallback
    while name in taken:
        name += "_"
    return name
