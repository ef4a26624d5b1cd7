"""Batched torch simulation of a :class:`~spikedyn.hardware.delay_network.DelayNetwork`.

Why a dedicated step function and not ``SpikingRNN``: the head-direction circuit needs a different
conduction delay on almost every synapse (its period is made of delays), while ``SpikingRNN`` has one
input delay and one recurrent delay for all synapses. The neuron map is Lava's float LIF (see
``hardware/delay_network.py``), so the same network runs on Lava spike for spike; with ``du = 0, dv = 1``
and a ``-vth`` self-synapse it is ``SpikingRNN``'s non-leaky neuron with ``reset="subtract"``.

Delays are a ring buffer of future input: a spike of neuron j at step t *pushes* ``w`` into slot
``(t + latency) mod H`` of its target (``H = max latency + 2``), and step t reads and clears slot
``t mod H``. Every tensor carries a leading batch axis B: B independent instances of the same wiring,
each with its own weight vector (frozen weight-noise realisations), run in one pass on CPU or GPU.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from ..hardware.delay_network import DelayNetwork

PROGRESS_EVERY = 4096  # steps between progress-bar updates


class TorchNet(NamedTuple):
    """A DelayNetwork's constants as tensors on one device (built by :func:`to_torch`)."""

    du: Tensor  # [N]
    dv: Tensor  # [N]
    vth: Tensor  # [N]
    bias: Tensor  # [N]
    pre: Tensor  # [S] long
    post: Tensor  # [S] long
    latency: Tensor  # [S] long
    axonal: Tensor  # [S] bool
    n: int
    slots: int  # H, the ring-buffer length
    refractory: Tensor | None = None  # [N] long, refractory steps (None: no neuron is refractory)


class DelayState(NamedTuple):
    u: Tensor  # [B, N] synaptic current (the membrane of du=0 integrators)
    v: Tensor  # [B, N] membrane after reset
    z: Tensor  # [B, N] spikes of the last step (bool)
    buf: Tensor  # [B, H, N] input arriving in the next H steps (updated in place)
    t: int  # index of the next step
    ref_end: Tensor | None = None  # [B, N] long: v is held until after this step (refractory)


def to_torch(net: DelayNetwork, device: torch.device | str | None = None,
             dtype: torch.dtype = torch.float32) -> TorchNet:
    def f(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x, dtype=np.float64), dtype=dtype, device=device)

    def i(x: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.long, device=device)

    refractory = i(net.refractory) if np.any(net.refractory > 0) else None
    return TorchNet(f(net.du), f(net.dv), f(net.vth), f(net.bias), i(net.pre), i(net.post), i(net.latency),
                    torch.as_tensor(net.axonal, device=device), net.n_neurons, net.max_latency + 2, refractory)


def init_state(tn: TorchNet, batch: int) -> DelayState:
    zeros = torch.zeros(batch, tn.n, dtype=tn.du.dtype, device=tn.du.device)
    ref_end = None if tn.refractory is None else torch.full_like(zeros, -1, dtype=torch.long)
    return DelayState(zeros, zeros, zeros.bool(), zeros.new_zeros(batch, tn.slots, tn.n), 0, ref_end)


def delay_lif_step(tn: TorchNet, weight: Tensor, state: DelayState, ext: Tensor | None = None,
                   jitter: Tensor | None = None) -> DelayState:
    """One step of every instance: read the input due now, update the LIF neurons, push the new spikes.

    Args:
        tn: the network (``to_torch``); ``weight`` [B, S] (or [S]) synaptic weights per instance.
        state: the current state; its ``buf`` is updated in place (a ring buffer), the rest is new.
        ext: external input current [B, N] for this step (added after the synaptic input, as Lava's
            ``RingBuffer`` source into ``a_in``), or None.
        jitter: [B, N] integer latency offsets (steps) for this step's spikes on axonal synapses, or None.
    Returns the next state (``state.z`` holds this step's spikes).
    """
    B, H, N = state.buf.shape
    slot = state.t % H
    a = state.buf[:, slot].clone()
    state.buf[:, slot] = 0
    if ext is not None:
        a = a + ext
    u = state.u * (1.0 - tn.du) + a
    v = state.v * (1.0 - tn.dv) + u + tn.bias
    ref_end = state.ref_end
    if tn.refractory is not None and ref_end is not None:  # Lava's LIFRefractory: v held after a spike
        v = torch.where(ref_end < state.t, v, state.v)
    z = v > tn.vth
    v = v.masked_fill(z, 0.0)
    if tn.refractory is not None and ref_end is not None:
        ref_end = torch.where(z, state.t + tn.refractory, ref_end)
    contrib = z[:, tn.pre].to(weight.dtype) * weight
    lat = tn.latency if jitter is None else (tn.latency + jitter[:, tn.pre] * tn.axonal).clamp(min=1)
    index = ((state.t + lat) % H) * N + tn.post
    state.buf.view(B, H * N).scatter_add_(1, index.expand(B, -1), contrib.expand(B, -1))
    return DelayState(u, v, z, state.buf, state.t + 1, ref_end)


@contextmanager
def one_thread(device: torch.device):
    """Run tiny per-step ops on one CPU thread: a thread pool costs more than it saves here (and much more
    on a busy machine). Restores the previous setting."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SimResult(NamedTuple):
    spikes: Tensor | None  # [T, B, R] bool, the neurons in ``record``
    counts: Tensor | None  # [T_bins, B, K] spikes pooled by ``pool`` per bin of ``bin_steps`` steps
    last_spike: Tensor | None  # [T_bins, B, L] step of the last spike of each neuron in ``track`` (-1: none)
    total: Tensor  # [B, N] spike count per neuron


def _run_chunk(t0: int, ext: Tensor, jitter: Tensor | None, u: Tensor, v: Tensor, buf: Tensor,
               acc: Tensor, last: Tensor, keep_u: Tensor, keep_v: Tensor, bias: Tensor, vth: Tensor,
               pre: Tensor, weight: Tensor, index_table: Tensor, latency: Tensor, post_offset: Tensor,
               axonal: Tensor, rec_idx: Tensor | None, rec_out: Tensor | None, trk_idx: Tensor | None,
               bin_steps: int, pool: Tensor | None, counts: Tensor | None, last_out: Tensor | None,
               total: Tensor, refr: Tensor | None, ref_end: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                           Tensor]:
    """Steps ``t0 .. t0 + K - 1`` of :func:`delay_lif_step`, fused (TorchScript) for speed.

    ``buf`` is the flat ring buffer [H * B * N]; ``index_table[t % H]`` [B * S] is where step t's spikes
    land (``jitter`` [K, B, N] shifts axonal latencies instead). ``refr`` (refractory steps per neuron)
    holds ``v`` at 0 until step ``ref_end``. Outputs are written in place."""
    K, B, N = ext.shape[0], ext.shape[1], ext.shape[2]
    H = index_table.shape[0]
    BN = B * N
    for k in range(K):
        t = t0 + k
        s0 = (t % H) * BN
        a = buf[s0:s0 + BN].view(B, N) + ext[k]
        buf[s0:s0 + BN] = 0.0
        u = u * keep_u + a
        if refr is None:
            v = v * keep_v + u + bias
        else:
            v = torch.where(ref_end < t, v * keep_v + u + bias, v)
        z = v > vth
        v = v.masked_fill(z, 0.0)
        if refr is not None:
            ref_end = torch.where(z, t + refr, ref_end)
        zf = z.to(weight.dtype)
        contrib = zf.index_select(1, pre) * weight
        if jitter is None:
            index = index_table[t % H]
        else:
            lat = (latency + jitter[k].index_select(1, pre) * axonal).clamp(min=1)
            index = (((lat + t) % H) * BN + post_offset).view(-1)
        buf.scatter_add_(0, index, contrib.view(-1))
        acc += zf
        if rec_idx is not None and rec_out is not None:
            rec_out[t] = z.index_select(1, rec_idx)
        if trk_idx is not None:
            last = torch.where(z.index_select(1, trk_idx), t, last)
        if (t + 1) % bin_steps == 0:
            b = (t + 1) // bin_steps - 1
            if counts is not None and pool is not None and b < counts.shape[0]:
                counts[b] = acc @ pool
            if last_out is not None and b < last_out.shape[0]:
                last_out[b] = last
            total += acc
            acc.zero_()
    return u, v, acc, last, ref_end


_run_chunk_eager = _run_chunk  # the same loop without TorchScript (benchmarks/hd_circuit.py times both)
with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.13 but cuts the per-step overhead
    warnings.simplefilter("ignore")
    _run_chunk = torch.jit.script(_run_chunk)


def simulate(
    net: DelayNetwork,
    n_steps: int,
    weight: Tensor | np.ndarray | None = None,
    batch: int | None = None,
    drive: Tensor | np.ndarray | None = None,
    drive_index: list[int] | None = None,
    hold: int = 1,
    pulses: Tensor | np.ndarray | None = None,
    input_noise: float = 0.0,
    jitter: float = 0.0,
    seed: int = 0,
    record: list[int] | None = None,
    pool: Tensor | np.ndarray | None = None,
    bin_steps: int = 1,
    track: list[int] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    progress: bool | None = False,
    desc: str = "simulating",
    chunk: int = 2048,
    scripted: bool = True,
    latency: Tensor | np.ndarray | None = None,
    neurons: dict[str, np.ndarray] | None = None,
) -> SimResult:
    """Run B instances of ``net`` for ``n_steps`` steps (the loop of :func:`delay_lif_step`, fused).

    Args:
        weight: [B, S] weights per instance (default: ``net.weight`` for every instance).
        batch: B when ``weight`` is not given (default 1).
        drive: [T_in, B, D] input currents into the neurons ``drive_index``; sample k is applied during
            steps ``k*hold .. (k+1)*hold - 1`` (held), zero after the last sample.
        pulses: [P, B, N] extra input currents for the first P steps (initial kicks).
        input_noise: std of Gaussian current noise added to every neuron's input every step (S-type).
        jitter: probability that a spike's axonal synapses arrive one step early or late (each p/2;
            the same offset for all axonal synapses of that spike): conduction jitter (S-type). A
            latency-1 synapse cannot arrive early (latencies stay >= 1).
        seed: seed of the noise (input noise and jitter).
        record: neurons whose spike trains are returned in full ([T, B, R] bool: keep runs short).
        pool: [N, K] matrix; ``counts[k] = (spikes summed over bin k) @ pool`` with bins of ``bin_steps``.
        track: neurons whose last spike step is sampled at the end of each bin.
        device, dtype: where and in which precision (float64 to compare with Lava bit for bit).
        progress: False silences the progress report (``spikedyn.progress``: a bar on a terminal, log lines
            otherwise). chunk: steps per fused call.
        scripted: run the step loop compiled by TorchScript (False: the same loop in Python).
        latency: [B, S] integer latencies per instance (steps, >= 1; default ``net.latency`` for all):
            frozen conduction-delay perturbations.
        neurons: per-instance neuron constants ``{"du"|"dv"|"vth"|"bias": [B, N]}`` (each optional;
            default the network's): time-constant or bias heterogeneity.
    """
    from ..progress import progress as make_progress

    tn = to_torch(net, device, dtype)
    dev = tn.du.device
    w = np.broadcast_to(net.weight, (batch or 1, net.n_synapses)) if weight is None else weight
    weight = torch.as_tensor(np.array(w) if isinstance(w, np.ndarray) else w, dtype=dtype, device=dev)
    if weight.ndim == 1:
        weight = weight.expand(batch or 1, -1)
    weight = weight.contiguous()
    B, S, N, H = weight.shape[0], net.n_synapses, tn.n, tn.slots
    if weight.shape[1] != S:
        raise ValueError(f"weight must be [B, {S}], got {tuple(weight.shape)}")
    lat = tn.latency
    if latency is not None:
        lat = torch.as_tensor(np.asarray(latency), dtype=torch.long, device=dev).expand(B, S).contiguous()
        if int(lat.min()) < 1:
            raise ValueError("latencies must be >= 1 step")
        H = int(lat.max()) + 2
    consts = {"du": tn.du, "dv": tn.dv, "vth": tn.vth, "bias": tn.bias}
    for key, value in (neurons or {}).items():
        if key not in consts:
            raise ValueError(f"neurons may set du, dv, vth, bias; got {key!r}")
        arr = torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=dtype, device=dev)
        if arr.shape not in ((N,), (B, N)):
            raise ValueError(f"neurons[{key!r}] must be [{N}] or [{B}, {N}], got {tuple(arr.shape)}")
        consts[key] = arr
    if bin_steps < 1 or n_steps < 0:
        raise ValueError("bin_steps must be >= 1 and n_steps >= 0")
    if drive is not None:
        drive = torch.as_tensor(np.array(drive) if isinstance(drive, np.ndarray) else drive, dtype=dtype,
                                device=dev)
        if drive.ndim != 3 or drive.shape[1] != B or drive_index is None or drive.shape[2] != len(
                drive_index):
            raise ValueError("drive must be [T_in, B, len(drive_index)] with B matching the weights")
        drive_idx = torch.as_tensor(drive_index, dtype=torch.long, device=dev)
    if pulses is not None:
        pulses = torch.as_tensor(np.array(pulses) if isinstance(pulses, np.ndarray) else pulses, dtype=dtype,
                                 device=dev)
    pool_t = None if pool is None else torch.as_tensor(np.array(pool), dtype=dtype, device=dev)
    rec_idx = None if record is None else torch.as_tensor(record, dtype=torch.long, device=dev)
    trk_idx = None if track is None else torch.as_tensor(track, dtype=torch.long, device=dev)
    n_bins = n_steps // bin_steps
    spikes = None if rec_idx is None else torch.zeros(n_steps, B, len(record), dtype=torch.bool, device=dev)
    counts = None if pool_t is None else torch.zeros(n_bins, B, pool_t.shape[1], dtype=dtype, device=dev)
    last = torch.full((B, 0 if track is None else len(track)), -1, dtype=torch.long, device=dev)
    last_out = None if trk_idx is None else torch.full((n_bins, B, len(track)), -1, dtype=torch.long,
                                                       device=dev)
    # where a spike of step t lands in the flat buffer [H, B, N]: ((t + latency) mod H, b, post)
    post_offset = (torch.arange(B, device=dev)[:, None] * N + tn.post[None, :])
    index_table = ((((torch.arange(H, device=dev)[:, None, None] + lat) % H) * B * N)
                   + post_offset[None]).reshape(H, B * S)
    u = torch.zeros(B, N, dtype=dtype, device=dev)
    v = torch.zeros(B, N, dtype=dtype, device=dev)
    buf = torch.zeros(H * B * N, dtype=dtype, device=dev)
    acc = torch.zeros(B, N, dtype=dtype, device=dev)
    total = torch.zeros(B, N, dtype=dtype, device=dev)
    keep_u, keep_v = 1.0 - consts["du"], 1.0 - consts["dv"]
    axonal = tn.axonal.long()
    refr = None
    if np.any(net.refractory > 0):
        refr = torch.as_tensor(net.refractory, dtype=torch.long, device=dev).expand(B, N).contiguous()
    ref_end = torch.full((B, N), -1, dtype=torch.long, device=dev)
    gen = torch.Generator(device=dev)
    gen.manual_seed(int(seed))
    loop = _run_chunk if scripted else _run_chunk_eager
    bar = make_progress(n_steps, desc, unit="step", enabled=progress is not False)
    with torch.no_grad(), one_thread(dev):
        for t0 in range(0, n_steps, chunk):
            K = min(chunk, n_steps - t0)
            ext = torch.zeros(K, B, N, dtype=dtype, device=dev)
            if drive is not None:
                k0, k1 = t0 // hold, min((t0 + K - 1) // hold + 1, drive.shape[0])
                if k1 > k0:
                    held = drive[k0:k1].repeat_interleave(hold, dim=0)[t0 - k0 * hold:][:K]
                    ext[: held.shape[0], :, drive_idx] = held
            if pulses is not None and t0 < pulses.shape[0]:
                p = pulses[t0:t0 + K]
                ext[: p.shape[0]] += p
            if input_noise > 0:
                ext += input_noise * torch.randn(K, B, N, generator=gen, dtype=dtype, device=dev)
            jit = None
            if jitter > 0:
                r = torch.rand(K, B, N, generator=gen, device=dev)
                jit = (r < jitter / 2).long() * -1 + ((r >= jitter / 2) & (r < jitter)).long()
            u, v, acc, last, ref_end = loop(t0, ext, jit, u, v, buf, acc, last, keep_u, keep_v, consts["bias"],
                                            consts["vth"], tn.pre, weight, index_table, lat, post_offset,
                                            axonal, rec_idx, spikes, trk_idx, bin_steps, pool_t, counts,
                                            last_out, total, refr, ref_end)
            bar.update(K)
    bar.close()
    total += acc
    return SimResult(spikes, counts, last_out, total)
