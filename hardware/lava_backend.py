"""Compile a ``NetworkSpec`` into Lava processes and run it on Lava's simulator (or Loihi 2).

One network instance per trial is what Lava runs; a batch of B trials is compiled as B independent
copies in one process graph (block-diagonal ``Sparse`` connections, B*N neurons), in chunks, so a
whole evaluation set costs a few Lava runs instead of one run per trial.

Graph per chunk (time steps = neuron substeps)::

    RingBuffer(source) --Dense/Sparse W_in (graded)--> LIF --Dense/Sparse W_rec (binary)--> LIF
                                                         `--> SpikeRecorder: spikes (memory map)

Timing. Every Lava ``Dense`` sends the previous step's accumulation: the recurrent path delivers
``W_rec z(s-1)`` (spikedyn's natural recurrent step; ``delay_rec > 0`` uses ``DelayDense``/``DelaySparse``)
and the input path ``W_in x(s-1)``. spikedyn's ``delay_in = d`` is met exactly by feeding the source
``x(s + 1 - d)``: d = 1 is the plain Dense, d > 1 shifts the input stream, and d = 0 pre-loads the
input synapse's accumulator ``a_buff`` with ``W_in x(0)`` (a simulator-only initial state).
The readout (leaky-integrated spikes through ``W_out``) is computed on the host from the recorded
spikes (``reference.readout``), exactly as the torch model computes it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .quantize import Loihi2Params, check_input_range, quantize_input, quantize_loihi2, shift
from .spec import NetworkSpec
from .validation import check_chunk, check_inputs

if TYPE_CHECKING:  # Lava (lava-nc) is imported only where a backend runs
    from lava.magma.core.process.process import AbstractProcess

PRECISIONS = ("float", "fixed")
HARDWARE = ("sim", "loihi")
SINK_BUDGET_BYTES = 64 * 2**20  # recorded spikes per chunk (uint8 memory map)
MAX_CHUNK = 256  # trials per Lava run


def lava_available() -> bool:
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError:
        return False
    return True


def loihi_available() -> bool:
    """True when Intel's lava-loihi extension (needed by ``Loihi2HwCfg``) is installed."""
    try:
        from lava.utils.loihi import is_installed
    except ImportError:
        return False
    return bool(is_installed())


def quantize_spec(spec: NetworkSpec, input_frac_bits: int = 8, vth: int = 4096) -> Loihi2Params:
    """``quantize_loihi2`` for a spec (the same call the torch side makes)."""
    return quantize_loihi2(spec.W_in, spec.W_rec, spec.bias, spec.v_th, spec.du, spec.dv,
                           input_frac_bits=input_frac_bits, vth=vth)


def source_stream(spec: NetworkSpec, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the source must send at each Lava step, ``[S, B, I]``, and the first input ``x_sub(0)``
    ``[B, I]`` (pre-loaded when ``delay_in = 0``). ``x_sub`` holds each input step for ``substeps``."""
    x_sub = np.repeat(x, spec.substeps, axis=0)
    S = x_sub.shape[0]
    lead = 1 - spec.delay_in  # source(s) = x_sub(s + lead)
    src = np.zeros_like(x_sub)
    if lead >= 0:
        src[: S - lead] = x_sub[lead:]
    else:
        src[-lead:] = x_sub[: S + lead]
    return src, x_sub[0]


def chunk_size(n_neurons: int, n_steps: int, batch: int) -> int:
    """Trials per Lava run: as many as fit ``SINK_BUDGET_BYTES`` of recorded spikes (``n_neurons * n_steps``
    bytes a trial), at most ``MAX_CHUNK`` and ``batch``, at least 1."""
    per_trial = max(1, n_neurons) * max(1, n_steps)
    return int(max(1, min(batch, MAX_CHUNK, SINK_BUDGET_BYTES // per_trial)))


def run_in_chunks(batch: int, step: int, run: Callable[[int, int], None],
                  progress: Callable[[int, int], None] | None = None) -> None:
    """``run(start, stop)`` for consecutive chunks of at most ``step`` of ``batch`` trials, then
    ``progress(stop, batch)``."""
    for start in range(0, batch, step):
        stop = min(batch, start + step)
        run(start, stop)
        if progress is not None:
            progress(stop, batch)


def run_recorded(start: AbstractProcess, recorded: dict[str, tuple[AbstractProcess, int]], steps: int, fixed: bool,
                 hardware: str, stats: dict[str, float]) -> dict[str, np.ndarray]:
    """Record the spikes of every ``{key: (process, size)}`` in ``recorded`` (a ``SpikeRecorder`` each: one
    uint8 row per step in a memory map), run the process graph of ``start`` for ``steps`` Lava steps (the
    first alone: compilation, runtime start and one step) and stop it. Returns ``{key: spikes [steps,
    size]}`` and adds ``setup_s`` (the first step with compilation), ``step_s`` and ``steps`` (the rest) to
    ``stats``. The one run-and-time block of the single-layer and the network backends."""
    from lava.magma.core.run_conditions import RunSteps

    from .lava_recorder import SpikeRecorder

    workdir = tempfile.mkdtemp(prefix="spikedyn-spikes-")
    try:
        paths, sinks = {}, []  # keep the sinks referenced until the run is over
        for k, (key, (proc, size)) in enumerate(recorded.items()):
            paths[key] = os.path.join(workdir, f"spikes{k}.npy")
            np.lib.format.open_memmap(paths[key], mode="w+", dtype=np.uint8, shape=(steps, size)).flush()
            sinks.append(SpikeRecorder(shape=(size,), path=paths[key]))
            proc.s_out.connect(sinks[-1].a_in)
        cfg = _run_cfg("fixed_pt" if fixed else "floating_pt", hardware)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Lava's process-model search warns about every unrelated module
            t0 = time.perf_counter()
            start.run(condition=RunSteps(num_steps=1), run_cfg=cfg)  # compiles, starts the runtime, 1 step
            try:
                t1 = time.perf_counter()
                if steps > 1:
                    start.run(condition=RunSteps(num_steps=steps - 1), run_cfg=cfg)
                t2 = time.perf_counter()
            finally:
                start.stop()
        out = {key: np.load(path) for key, path in paths.items()}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    stats["setup_s"] = stats.get("setup_s", 0.0) + (t1 - t0)
    stats["step_s"] = stats.get("step_s", 0.0) + (t2 - t1)
    stats["steps"] = stats.get("steps", 0) + (steps - 1)
    return out


def _block(W: np.ndarray, copies: int):
    """``copies`` copies of ``W`` on the block diagonal as a scipy CSR matrix (explicit zeros dropped)."""
    from scipy import sparse

    return sparse.block_diag([sparse.csr_matrix(W)] * copies, format="csr")


def _connection(W, copies: int, graded: bool, fixed: bool, exp: int = 0, delay: int = 0, a_buff=None):
    """A Dense (one copy) or block-diagonal Sparse (several) connection, delayed when ``delay > 0``."""
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.sparse.process import DelaySparse, Sparse
    from lava.utils.weightutils import SignMode

    kwargs = dict(num_message_bits=24 if graded else 0)
    if fixed:
        kwargs.update(weight_exp=int(exp), num_weight_bits=8, sign_mode=SignMode.MIXED)
    weights = np.asarray(W) if copies == 1 else _block(W, copies)
    if copies > 1 and fixed:
        weights = weights.astype(np.int32)
    if delay:
        cls = DelayDense if copies == 1 else DelaySparse
        if copies > 1:
            delays = weights.astype(int)  # same sparsity pattern, Lava wants dtype int
            delays.data[:] = delay
        else:
            delays = np.full(weights.shape, delay, dtype=int)
        proc = cls(weights=weights, delays=delays, **kwargs)
    else:
        proc = (Dense if copies == 1 else Sparse)(weights=weights, **kwargs)
    if a_buff is not None:
        proc.a_buff.init = a_buff
    return proc


def _neurons(spec: NetworkSpec, copies: int, q: Loihi2Params | None):
    shape = (copies * spec.n_hidden,)
    if spec.lava_lif_compatible():
        from lava.proc.lif.process import LIF

        if q is None:
            return LIF(shape=shape, du=spec.du, dv=spec.dv, vth=spec.v_th,
                       bias_mant=np.tile(spec.bias, copies))
        return LIF(shape=shape, du=q.du, dv=q.dv, vth=q.vth, bias_mant=np.tile(q.bias_mant, copies),
                   bias_exp=np.tile(q.bias_exp, copies))
    if q is not None:
        raise ValueError(f"fixed point needs Lava's LIF; this network has {spec.lava_lif_reason()}")
    from .lava_neuron import SpikedynLIF

    return SpikedynLIF(shape=shape, du=spec.du, dv=spec.dv, v_th=spec.v_th, bias=np.tile(spec.bias, copies),
                       beta=np.tile(spec.beta, copies), rho=spec.rho, n_ref=spec.n_ref, reset=spec.reset,
                       v_leak=spec.v_leak, v_reset=spec.v_reset)


def _run_chunk(spec: NetworkSpec, x: np.ndarray, q: Loihi2Params | None, hardware: str,
               stats: dict[str, float]) -> np.ndarray:
    """Spikes ``[S, B, N]`` of one Lava run over the B trials of ``x [T, B, I]``; adds the seconds spent
    compiling/starting (with the first step) and stepping to ``stats``."""
    from lava.proc.io.source import RingBuffer as Source

    T, B, I = x.shape
    N, S = spec.n_hidden, x.shape[0] * spec.substeps
    fixed = q is not None
    src, first = source_stream(spec, x)
    W_in = q.w_in if fixed else spec.W_in
    W_rec = q.w_rec if fixed else spec.W_rec
    if fixed:
        src, first = quantize_input(src, q.input_frac_bits), quantize_input(first, q.input_frac_bits)
        preload = shift(first @ q.w_in.T.astype(np.int64), q.w_in_exp).astype(np.int32)
    else:
        preload = first @ spec.W_in.T
    data = src.transpose(1, 2, 0).reshape(B * I, S)  # trial-major neurons, time last
    source = Source(data=data.astype(np.int32) if fixed else data)
    syn_in = _connection(W_in, B, graded=True, fixed=fixed, exp=q.w_in_exp if fixed else 0,
                         a_buff=preload.reshape(-1) if spec.delay_in == 0 else None)
    neurons = _neurons(spec, B, q)
    # The batch copies' recurrent matrix is applied as a graded (CSR mat-vec) product: on the
    # simulator this is the same sum as the binary-spike path, without its slow column indexing.
    syn_rec = _connection(W_rec, B, graded=B > 1, fixed=fixed, exp=q.w_rec_exp if fixed else 0,
                          delay=spec.delay_rec)
    source.s_out.connect(syn_in.s_in)
    syn_in.a_out.connect(neurons.a_in)
    neurons.s_out.connect(syn_rec.s_in)
    syn_rec.a_out.connect(neurons.a_in)
    spikes = run_recorded(neurons, {"z": (neurons, B * N)}, S, fixed, hardware, stats)["z"]
    return spikes.reshape(S, B, N)  # trial-major neuron index


def _run_cfg(tag: str, hardware: str):
    if hardware == "sim":
        from lava.magma.core.run_configs import Loihi2SimCfg

        return Loihi2SimCfg(select_tag=tag)
    if not loihi_available():
        raise RuntimeError(
            "backend 'lava-loihi' needs Intel's lava-loihi package and a Loihi 2 system (neither is "
            "importable here); use backend='lava-sim'"
        )
    from lava.magma.core.run_configs import Loihi2HwCfg

    return Loihi2HwCfg(select_tag=tag)


def run_lava(
    spec: NetworkSpec,
    x: np.ndarray,
    precision: str = "float",
    hardware: str = "sim",
    q: Loihi2Params | None = None,
    chunk: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    stats: dict[str, float] | None = None,
) -> np.ndarray:
    """Run ``spec`` on Lava for inputs ``x [T, B, I]``; returns spikes ``[T * substeps, B, N]`` (uint8).

    Args:
        precision: "float" (``Loihi2SimCfg(select_tag="floating_pt")``) or "fixed" ("fixed_pt",
            Lava's bit-accurate Loihi models; ``q`` defaults to ``quantize_spec(spec)``).
        hardware: "sim" (Lava's CPU simulator) or "loihi" (``Loihi2HwCfg``; needs lava-loihi).
        chunk: trials per Lava run (default: as many as fit ``SINK_BUDGET_BYTES``, at most 256).
        progress: called as ``progress(done_trials, total_trials)`` after each chunk.
        stats: if given, receives ``setup_s`` (compilation, runtime start and the first step),
            ``step_s`` (the remaining steps) and ``steps`` summed over chunks.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
    if hardware not in HARDWARE:
        raise ValueError(f"unknown hardware {hardware!r}; choose one of {list(HARDWARE)}")
    if not lava_available():
        raise RuntimeError("lava-nc is not importable in this Python; use the Lava environment (make lava)")
    x, chunk = check_inputs(x, spec.n_in), check_chunk(chunk)  # finite [T >= 1, B >= 1, I]; chunk >= 1
    if precision == "fixed":
        if not spec.lava_lif_compatible():
            raise ValueError(
                f"fixed point runs Lava's LIF only; this network has {spec.lava_lif_reason()}; "
                "use precision='float'"
            )
        q = q if q is not None else quantize_spec(spec)
        check_input_range(quantize_input(x, q.input_frac_bits), q.w_in, q.w_in_exp)  # int32, as Lava sums
    else:
        q = None
    T, B, _ = x.shape
    stats = stats if stats is not None else {}
    out = np.zeros((T * spec.substeps, B, spec.n_hidden), dtype=np.uint8)

    def run(start: int, stop: int) -> None:
        out[:, start:stop] = _run_chunk(spec, x[:, start:stop], q, hardware, stats)

    run_in_chunks(B, chunk or chunk_size(spec.n_hidden, T * spec.substeps, B), run, progress)
    return out
