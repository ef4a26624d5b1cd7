"""Compile a multi-layer ``NetworkGraph`` into Lava processes and run it (float or bit-accurate fixed point).

Per layer one neuron process (Lava's own ``LIF`` where it expresses the layer exactly — reset to zero,
no adaptation, one du/dv — else ``SpikedynLIF`` in float, per-neuron decays included, and
``SpikedynFixedLIF`` in fixed point for subtractive resets), per projection one ``Dense`` (one trial) or
block-diagonal ``Sparse`` (a batch), a ``DelayDense`` / ``DelaySparse`` where the projection needs more
delay, one ``RingBuffer`` source per input projection and per layer bias channel, and a ``SpikeRecorder``
per layer.

Timing. Every Lava connection delivers at step s what was sent at step s - 1 (``Dense`` sends its
previous accumulation). spikedyn's feed-forward projections act within a step, so the layers are run
*skewed*: layer L computes the network's substep n at Lava step ``n + sigma(L)``, with the smallest
``sigma >= 0`` such that every projection src -> L with delay d satisfies ``sigma(L) >= sigma(src) + 1 -
d`` (a longest-path problem; a feedback loop whose delays are too short for it is refused). A projection
then needs ``sigma(L) - sigma(src) + d - 1 >= 0`` extra steps (``DelayDense``). The input is known in
advance: the source of an input projection sends ``x(j + 1 - sigma(L) - d)`` at step j, and when that
leads by one step (``sigma = d = 0``) the connection's accumulator ``a_buff`` is pre-loaded with the first
input (the single-layer backend's ``delay_in = 0``). The summed projection biases of a layer arrive through
a constant source switched on at the layer's first step (``1.0``; fixed point: the graded ``2**8``), last
among its inputs, the order in which torch adds them. Before its first step a layer receives nothing and
stays at rest, so its spikes are exactly the network's, shifted by ``sigma(L)``; they are recorded and
shifted back. Lava's LIF would integrate a v-bias (or leak toward ``v_leak``) before its first step, so a
late layer with one runs on ``SpikedynLIF`` / ``SpikedynFixedLIF`` with ``start = sigma(L)`` (held at
rest until then).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .lava_backend import PRECISIONS, _connection, chunk_size, lava_available, run_in_chunks, run_recorded
from .network import INPUT, FixedNetwork, NetworkGraph, quantize_network
from .quantize import check_input_range, quantize_input, shift
from .validation import check_chunk, check_inputs


def lava_skew(graph: NetworkGraph) -> dict[str, int]:
    """``sigma(L)``: the Lava step at which layer L computes the network's substep 0 (module doc)."""
    sigma = {L.name: 0 for L in graph.layers}
    layer_proj = [p for p in graph.projections if p.src != INPUT]
    for _ in range(len(graph.layers) + 1):
        changed = False
        for p in layer_proj:
            need = sigma[p.src] + 1 - p.delay
            if sigma[p.dst] < need:
                sigma[p.dst], changed = need, True
        if not changed:
            return sigma
    loop = [p.name for p in layer_proj if sigma[p.dst] < sigma[p.src] + 1 - p.delay or p.delay == 0]
    raise ValueError(f"Lava delays every connection by a step; the feedback through {loop} is too short for that "
                     "(give the feedback projection one more step of delay)")


def check_lava_network(graph: NetworkGraph, precision: str) -> None:
    """One-line ``ValueError`` for what the Lava compiler cannot run exactly."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    lava_skew(graph)
    if precision == "fixed":
        bad = graph.fixed_reason()
        if bad:
            raise ValueError(f"fixed point runs Lava's LIF (reset to zero, or by subtraction through "
                             f"SpikedynFixedLIF) only; {bad}; use precision='float'")


def _stream(x_sub: np.ndarray, lead: int, steps: int) -> np.ndarray:
    """``out[j] = x_sub[j + lead]`` where that exists, else 0; ``[steps, B, I]``."""
    S = x_sub.shape[0]
    out = np.zeros((steps,) + x_sub.shape[1:], dtype=x_sub.dtype)
    lo, hi = max(0, -lead), min(steps, S - lead)
    if hi > lo:
        out[lo:hi] = x_sub[lo + lead:hi + lead]
    return out


def _run_chunk(graph: NetworkGraph, x: np.ndarray, fx: FixedNetwork | None, hardware: str,
               stats: dict[str, float], spikedyn_fixed: bool = False) -> dict[str, np.ndarray]:
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from .lava_neuron import SpikedynFixedLIF, SpikedynLIF

    T, B, _ = x.shape
    fixed = fx is not None
    sigma = lava_skew(graph)
    S = T * graph.substeps
    total = S + max(sigma.values())
    x_sub = np.repeat(x, graph.substeps, axis=0)
    neurons = {}
    for i, L in enumerate(graph.layers):
        shape = (B * L.size,)
        # a layer that starts late must not integrate its v-bias (or leak toward v_leak) before then
        start = sigma[L.name] if (np.any(L.bias != 0) or L.v_leak) else 0
        if fixed and (L.lava_lif_reason() or spikedyn_fixed or start):  # a subtractive reset, a late bias
            fl = fx.layers[i]
            neurons[L.name] = SpikedynFixedLIF(shape=shape, du=fl.c.du, dv=fl.c.dv, vth=fl.c.vth,
                                               bias=np.tile(fl.bias, B), reset=L.reset, start=start)
        elif not L.lava_lif_reason() and not start:
            if fixed:
                fl = fx.layers[i]
                neurons[L.name] = LIF(shape=shape, du=fl.c.du, dv=fl.c.dv, vth=fl.c.vth >> 6,
                                      bias_mant=np.tile(fl.bias_mant, B), bias_exp=np.tile(fl.bias_exp, B))
            else:
                neurons[L.name] = LIF(shape=shape, du=L.du, dv=L.dv, vth=L.v_th, bias_mant=np.tile(L.bias, B))
        else:
            per_neuron = (lambda d: np.tile(d, B) if isinstance(d, np.ndarray) else d)  # noqa: E731
            neurons[L.name] = SpikedynLIF(shape=shape, du=per_neuron(L.du), dv=per_neuron(L.dv), v_th=L.v_th,
                                          bias=np.tile(L.bias, B),
                                          beta=np.tile(L.beta, B), rho=L.rho, n_ref=L.n_ref, reset=L.reset,
                                          v_leak=L.v_leak, v_reset=L.v_reset, start=start)

    def source(stream: np.ndarray) -> Source:  # [total, B, I] -> trial-major channels, time last
        data = stream.transpose(1, 2, 0).reshape(-1, total)
        return Source(data=data.astype(np.int32) if fixed else data)

    keep = []  # the processes (Lava keeps weak references in places)
    for j, p in enumerate(graph.projections):
        dst = neurons[p.dst]
        fp = fx.projections[j] if fixed else None
        W = fp.w if fixed else p.weight
        exp = fp.exp if fixed else 0
        if p.src == INPUT:
            lead = 1 - sigma[p.dst] - p.delay
            stream = _stream(x_sub, lead, total)
            preload = None
            if lead == 1:
                first = x_sub[0]
                if fixed:
                    first_q = quantize_input(first, fx.input_frac_bits)
                    preload = shift(first_q @ fp.w.T.astype(np.int64), fp.exp).astype(np.int32).reshape(-1)
                else:
                    preload = (first @ p.weight.T).reshape(-1)
            if fixed:
                stream = quantize_input(stream, fx.input_frac_bits)
            src = source(stream)
            conn = _connection(W, B, graded=True, fixed=fixed, exp=exp, a_buff=preload)
            src.s_out.connect(conn.s_in)
            keep.append(src)
        else:
            extra = sigma[p.dst] - sigma[p.src] + p.delay - 1
            conn = _connection(W, B, graded=B > 1, fixed=fixed, exp=exp, delay=extra)
            neurons[p.src].s_out.connect(conn.s_in)
        conn.a_out.connect(dst.a_in)
        keep.append(conn)
    for i, L in enumerate(graph.layers):  # the layer's summed projection biases, last
        total_bias = sum((p.bias for p in graph.into(L.name) if p.bias is not None), np.zeros(L.size))
        if not np.any(total_bias != 0):
            continue
        lead = 1 - sigma[L.name]
        on = _stream(np.ones((S, B, 1)), lead, total)
        if fixed:
            cb = fx.layers[i].current_bias
            W, exp = cb.w, cb.exp
            on = quantize_input(on, fx.input_frac_bits)
            preload = shift(np.full((B, 1), 1 << fx.input_frac_bits, dtype=np.int64) @ cb.w.T.astype(np.int64),
                            cb.exp).astype(np.int32).reshape(-1) if lead == 1 else None
        else:
            W, exp = total_bias[:, None], 0
            preload = np.tile(total_bias, B) if lead == 1 else None
        src = source(on)
        conn = _connection(W, B, graded=True, fixed=fixed, exp=exp, a_buff=preload)
        src.s_out.connect(conn.s_in)
        conn.a_out.connect(neurons[L.name].a_in)
        keep += [src, conn]
    recorded = {L.name: (neurons[L.name], B * L.size) for L in graph.layers}
    got = run_recorded(neurons[graph.layers[0].name], recorded, total, fixed, hardware, stats)
    return {L.name: got[L.name].reshape(total, B, L.size)[sigma[L.name]:sigma[L.name] + S].copy()
            for L in graph.layers}


def run_network_lava(graph: NetworkGraph, x: np.ndarray, precision: str = "float", hardware: str = "sim",
                     chunk: int | None = None, progress: Callable[[int, int], None] | None = None,
                     stats: dict[str, float] | None = None, spikedyn_fixed: bool = False) -> dict[str, np.ndarray]:
    """Run ``graph`` on Lava for inputs ``x [T, B, I]``; every layer's spikes ``{name: [T * substeps, B, n]}``
    (uint8). ``precision``: "float" or "fixed" (Lava's bit-accurate models; the integers of
    ``network.quantize_network``, which torch's ``Loihi2Network`` uses too; layers that reset to zero run
    on Lava's ``LIF``, subtractive resets on ``SpikedynFixedLIF``, and ``spikedyn_fixed=True`` puts every
    fixed-point layer on ``SpikedynFixedLIF``: a check of that process against Lava's own LIF); other
    arguments as ``run_lava``."""
    if not lava_available():
        raise RuntimeError("lava-nc is not importable in this Python; use the Lava environment (make lava)")
    check_lava_network(graph, precision)
    x, chunk = check_inputs(x, graph.n_in), check_chunk(chunk)
    fx = quantize_network(graph) if precision == "fixed" else None
    if fx is not None:  # Lava sums graded inputs in int32
        X = quantize_input(x, fx.input_frac_bits)
        for p, fp in zip(graph.projections, fx.projections, strict=True):
            if p.src == INPUT:
                check_input_range(X, fp.w, fp.exp)
    T, B, _ = x.shape
    S = T * graph.substeps
    recorded = S + max(lava_skew(graph).values(), default=0)  # each sink also records the layers' skew
    stats = stats if stats is not None else {}
    out = {L.name: np.zeros((S, B, L.size), dtype=np.uint8) for L in graph.layers}

    def run(start: int, stop: int) -> None:
        for name, z in _run_chunk(graph, x[:, start:stop], fx, hardware, stats, spikedyn_fixed).items():
            out[name][:, start:stop] = z

    run_in_chunks(B, chunk or chunk_size(graph.n_hidden, recorded, B), run, progress)
    return out
