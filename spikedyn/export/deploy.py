"""``spikedyn.deploy``: run a spiking network on Lava (simulator or Loihi 2) next to its torch twin.

    dep = spikedyn.deploy(model, backend="lava-sim", precision="fixed")
    y, r, state = dep.run(u)         # u [T, B, I] -> a Rollout; .spikes, .seconds, .timing, .bundle too
    table = compare_with_torch(model, u, dep, out)   # spike agreement with the torch run

The network travels as a NIR graph (``to_nir``) plus the inputs (``.npz``) in a bundle directory;
``python -m spikedyn.hardware.run BUNDLE`` runs it in the Lava interpreter (Python 3.10 + lava-nc,
found by ``spikedyn.hardware.runtime.find_lava_python``) and the spikes come back. In a Python that
imports lava-nc itself, the same runner runs on the same bundle in-process. The readout is computed
here from the spikes, exactly as the torch model computes it.
"""
from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from spikedyn.hardware.bundle import new_bundle_dir, read_result, write_bundle
from spikedyn.hardware.nir_io import read_graph, spec_from_nir
from spikedyn.hardware.nir_network import NETWORK_KEY, graph_from_nir
from spikedyn.hardware.reference import readout
from spikedyn.hardware.runtime import LavaNotFound, LavaRunFailed
from spikedyn.hardware.spec import NetworkSpec
from spikedyn.hardware.validation import check_choice, check_chunk, check_inputs
from spikedyn.models.base import Rollout

from .nir import _is_network, _require_spiking, spec_from_model, to_nir

BACKENDS = {"lava-sim": "sim", "lava-loihi": "loihi"}
PRECISIONS = ("float", "fixed")


class HardwareRollout(Rollout):
    """What ``Deployment.run`` returns: a ``Rollout`` (numpy), so ``y, r, state = dep.run(u)`` works
    as for every torch body, with the hardware extras as attributes.

    Fields: outputs ``y [T, B, O]`` (host readout of the spikes), spike counts ``r [T, B, N]`` per
    input step, ``state`` (None: Lava's state stays on the device). Attributes: ``spikes
    [T * substeps, B, N]`` (uint8, every neuron update), the Lava run's wall ``seconds``, ``timing``
    (``setup_s``: compilation, runtime start, first step; ``step_s`` and ``steps``: the rest) and
    ``bundle`` (the run's bundle directory when it was kept under ``workdir``, else None).
    """

    spikes: np.ndarray
    seconds: float
    timing: dict[str, float]
    bundle: Path | None

    def __new__(cls, y: np.ndarray, r: np.ndarray, state: Any = None, *, spikes: np.ndarray,
                seconds: float, timing: dict[str, float] | None = None,
                bundle: Path | None = None) -> HardwareRollout:
        self = super().__new__(cls, y, r, state)
        self.spikes, self.seconds, self.timing, self.bundle = spikes, float(seconds), dict(timing or {}), bundle
        return self

    def _replace(self, **changes: Any) -> HardwareRollout:
        extras = {k: changes.pop(k, getattr(self, k)) for k in ("spikes", "seconds", "timing", "bundle")}
        return HardwareRollout(*super()._replace(**changes), **extras)

    def __reduce__(self) -> tuple[Any, ...]:  # keep the extras through pickle / copy
        return (_rebuild_rollout, (tuple(self), self.spikes, self.seconds, self.timing, self.bundle))

    def __repr__(self) -> str:
        return (f"HardwareRollout(y={self.y.shape}, r={self.r.shape}, spikes={self.spikes.shape}, "
                f"seconds={self.seconds:.3g})")


def _rebuild_rollout(fields: tuple, spikes: np.ndarray, seconds: float, timing: dict[str, float],
                     bundle: Path | None) -> HardwareRollout:
    return HardwareRollout(*fields, spikes=spikes, seconds=seconds, timing=timing, bundle=bundle)


@dataclass
class Deployment:
    """A network compiled for one Lava backend and precision; ``run(u)`` executes it."""

    spec: NetworkSpec
    graph: Any
    backend: str
    precision: str
    python: str | None  # the Lava interpreter, None = in-process
    chunk: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice(self.backend, "backend", tuple(BACKENDS))
        check_choice(self.precision, "precision", PRECISIONS)
        self.chunk = check_chunk(self.chunk)

    def quantization(self) -> dict[str, Any]:
        """Loihi 2 integer formats of this network (weights exponents, saturation counts, decays)."""
        from spikedyn.hardware.quantize import quantize_loihi2

        q = quantize_loihi2(self.spec.W_in, self.spec.W_rec, self.spec.bias, self.spec.v_th, self.spec.du,
                            self.spec.dv)
        return {"w_in_exp": q.w_in_exp, "w_rec_exp": q.w_rec_exp, "vth": q.vth, "du": q.du, "dv": q.dv,
                **q.report}  # fmt: skip

    def run(self, u: Any, progress: bool = True, workdir: str | Path | None = None) -> HardwareRollout:
        """Run inputs ``u [T, B, I]`` (numpy or torch; finite, ``T, B >= 1``) on Lava; every trial
        starts from rest. Returns a ``HardwareRollout`` (``y, r, state = dep.run(u)``).

        Each run writes its bundle (graph.nir, inputs.npz, options.json, result.*) to a directory of
        its own: a fresh temporary one (removed afterwards), or, with ``workdir``, a new
        ``bundle-*`` directory under it that is kept (``rollout.bundle``). Concurrent runs sharing a
        ``workdir`` therefore never exchange files. ``progress``: the Lava runner's progress on stderr
        (a bar on a terminal, one line per chunk otherwise; off under ``--json``). Both hold for the
        Lava subprocess and for the in-process run (``python=None``).
        """
        spikes, seconds, timing, bundle = execute(self, u, self.spec.n_in, self.spec.substeps, self.spec.n_hidden,
                                                  progress, workdir)  # fmt: skip
        counts, y = readout(self.spec, spikes)
        return HardwareRollout(y, counts, None, spikes=spikes, seconds=seconds, timing=timing, bundle=bundle)


class LavaTarget(Protocol):
    """What ``execute`` reads from a deployment (``Deployment`` and ``deploy_network.NetworkDeployment``
    both have it): the NIR graph, the Lava interpreter (None: in-process), the precision, the backend
    name and the chunk length in steps. A protocol rather than the two classes, so that this module
    need not import ``deploy_network`` (which imports it) and ``typing.get_type_hints`` resolves."""

    graph: Any
    python: str | None
    precision: str
    backend: str
    chunk: int | None


class LavaDeployment(LavaTarget, Protocol):
    """What ``deploy`` returns: a ``LavaTarget`` that runs inputs on Lava. ``Deployment`` (a ``SpikingRNN``)
    and ``deploy_network.NetworkDeployment`` (a multi-layer ``SpikingNetwork``) both are one."""

    def run(self, u: Any, progress: bool = True, workdir: str | Path | None = None) -> HardwareRollout: ...


def execute(dep: LavaTarget, u: np.ndarray | torch.Tensor, n_in: int, substeps: int,
            n_hidden: int, progress: bool,
            workdir: str | Path | None) -> tuple[np.ndarray, float, dict[str, float], Path | None]:
    """What ``Deployment.run`` and ``NetworkDeployment.run`` share: check ``u [T, B, n_in]`` (numpy or torch)
    and the chunk, run ``dep.graph`` on Lava (``run_in_lava``) and check the spikes' shape
    ``[T * substeps, B, n_hidden]``. Returns ``(spikes, seconds, timing, bundle dir or None)``."""
    x = u.detach().cpu().double().numpy() if isinstance(u, torch.Tensor) else u
    x = check_inputs(x, n_in)
    out = run_in_lava(dep.graph, x, dep.python, precision=dep.precision, hardware=BACKENDS[dep.backend],
                      chunk=check_chunk(dep.chunk), progress=progress, workdir=workdir)  # fmt: skip
    expected = (x.shape[0] * substeps, x.shape[1], n_hidden)
    if out[0].shape != expected:
        raise LavaRunFailed(f"the Lava run returned spikes of shape {out[0].shape}, expected {expected}")
    return out


def run_in_lava(graph: Any, x: np.ndarray, python: str | None, *, precision: str, hardware: str,
                chunk: int | None, progress: bool, workdir: str | Path | None,
                ) -> tuple[np.ndarray, float, dict[str, float], Path | None]:  # fmt: skip
    """Run NIR ``graph`` on inputs ``x`` through a bundle (for a ``SpikingRNN`` and a ``SpikingNetwork``
    alike): in the Lava interpreter ``python`` (``python -m spikedyn.hardware.run BUNDLE``), or, with
    ``python=None`` (lava-nc imports here), the same runner in this process, so both paths honour
    ``progress`` and ``workdir`` and report failures the same way. Returns ``(spikes, seconds, timing,
    bundle dir or None)``; the bundle is kept only under ``workdir``."""
    from ..progress import is_quiet

    options = {"precision": precision, "hardware": hardware, "chunk": chunk,
               "progress": bool(progress) and not is_quiet()}  # quiet under --json
    with tempfile.TemporaryDirectory(prefix="spikedyn-lava-") as tmp:
        directory = new_bundle_dir(workdir if workdir is not None else tmp)
        write_bundle(directory, graph, x, options)
        if python is None:
            from spikedyn.hardware.run import main as run_here

            run_here([str(directory)])  # writes result.json, {"ok": false, ...} on failure, as the subprocess
        else:
            from spikedyn.hardware.runtime import run_bundle_subprocess

            run_bundle_subprocess(directory, python)
        spikes, info = read_result(directory)
    if spikes is None:
        where = f" (bundle kept in {directory})" if workdir is not None else ""
        raise LavaRunFailed(f"Lava run failed: {info.get('error') or 'no result written (see messages above)'}"
                            f"{where}")
    timing = {k: float(info[k]) for k in ("setup_s", "step_s", "steps") if k in info}
    return spikes, float(info["seconds"]), timing, (directory if workdir is not None else None)


def _lava_interpreter(backend: str, lava_python: str | None) -> str | None:
    """The Lava interpreter a deployment runs in (None: in-process, when lava-nc imports here and none was
    given); ``LavaNotFound`` (one line) when there is none, or when ``backend="lava-loihi"`` and it has no
    lava-loihi. The one choice for ``SpikingRNN`` and ``SpikingNetwork`` deployments."""
    from spikedyn.hardware.runtime import find_lava_python, loihi_installed

    if lava_python is None and _lava_here():
        if backend == "lava-loihi":
            from spikedyn.hardware.lava_backend import loihi_available

            if not loihi_available():
                raise LavaNotFound("backend 'lava-loihi' needs Intel's lava-loihi (not installed); use 'lava-sim'")
        return None
    python = lava_python or find_lava_python()
    if backend == "lava-loihi" and not loihi_installed(python):
        raise LavaNotFound(f"backend 'lava-loihi' needs Intel's lava-loihi, which {python} cannot import; "
                           "use 'lava-sim'")
    return python


def _lava_here() -> bool:
    from spikedyn.hardware.lava_backend import lava_available

    return lava_available()


def deploy(
    model: Any,
    backend: str = "lava-sim",
    precision: str = "float",
    chunk: int | None = None,
    lava_python: str | None = None,
) -> Deployment | LavaDeployment:
    """Compile a ``SpikingRNN`` (or a NIR graph / ``.nir`` path with spikedyn metadata) for Lava: a
    ``Deployment``; a multi-layer ``SpikingNetwork`` (or its graph) gives a
    ``deploy_network.NetworkDeployment`` (named here by the protocol ``LavaDeployment`` it satisfies, since
    ``deploy_network`` imports this module).

    Args:
        backend: "lava-sim" (Lava's CPU simulator, ``Loihi2SimCfg``) or "lava-loihi" (``Loihi2HwCfg``;
            needs Intel's lava-loihi and a Loihi 2 system).
        precision: "float" (``select_tag="floating_pt"``; equals the torch run in float64) or "fixed"
            (``"fixed_pt"``, Lava's bit-accurate Loihi models; equals the ``Loihi2RNN`` body,
            ``model.quantized("loihi2")``).
        chunk: trials per Lava run, >= 1 (default None: fit a memory budget, at most 256).
        lava_python: the Lava interpreter (default: in-process if lava-nc imports here, else found by
            ``spikedyn.hardware.runtime.find_lava_python``).
    """
    check_choice(backend, "backend", tuple(BACKENDS))
    check_choice(precision, "precision", PRECISIONS)
    chunk = check_chunk(chunk)
    if isinstance(model, torch.nn.Module) and _is_network(model):  # a multi-layer SpikingNetwork
        from .deploy_network import deploy_network

        return deploy_network(model, backend, precision, chunk, lava_python)
    if isinstance(model, torch.nn.Module):
        m = _require_spiking(model)
        spec, graph = spec_from_model(m), to_nir(m)
    else:
        graph = read_graph(model)
        if isinstance(graph.metadata, dict) and NETWORK_KEY in graph.metadata:  # a SpikingNetwork's graph
            from spikedyn.models.network import SpikingNetwork

            return deploy(SpikingNetwork(graph_from_nir(graph)), backend, precision, chunk, lava_python)
        spec = spec_from_nir(graph)
    if precision == "fixed" and not spec.lava_lif_compatible():
        raise ValueError(
            f"precision='fixed' runs Lava's fixed-point LIF, which has no {spec.lava_lif_reason()}; "
            "use precision='float' or a LIF with reset='zero' and refractory=0"
        )
    if backend == "lava-loihi" and not spec.lava_lif_compatible():
        raise ValueError(f"Loihi runs Lava's LIF; this network has {spec.lava_lif_reason()} (simulator only)")
    python = _lava_interpreter(backend, lava_python)
    return Deployment(spec=spec, graph=graph, backend=backend, precision=precision, python=python, chunk=chunk)


# -- torch vs Lava -----------------------------------------------------------------------------------
def torch_reference(model: Any, u: Any, precision: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The torch run a Lava run must equal: spikes ``[T * substeps, B, N]``, counts, outputs ``y``.

    float: the model in float64 (Lava's float models compute in float64); fixed: the model with
    ``Loihi2RNN`` (``model.quantized("loihi2")``: integer arithmetic; the readout in the model's dtype).
    """
    m = copy.deepcopy(_require_spiking(model)).cpu()
    m = m.quantized("loihi2") if precision != "float" else (m.as_float() if m.quantize else m).double()
    x = torch.as_tensor(np.asarray(u), dtype=m.dtype)
    with torch.no_grad():
        spikes = m.spike_trains(x).numpy().astype(np.uint8)
        out = m(x)
    return spikes, out.r.numpy(), out.y.double().numpy()


def spike_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """How two spike tensors ``[S, B, N]`` agree: the fraction of equal entries, of identical trials,
    the first step where any trial differs (-1: none) and the spike totals."""
    if a.shape != b.shape:
        raise ValueError(f"spike tensors differ in shape: {a.shape} vs {b.shape}")
    diff = a != b
    steps = np.flatnonzero(diff.any(axis=(1, 2)))
    return {
        "spike_agreement": float(1.0 - diff.mean()) if diff.size else 1.0,
        "trials_identical": float(np.mean(~diff.any(axis=(0, 2)))) if diff.size else 1.0,
        "first_mismatch_step": int(steps[0]) if steps.size else -1,
        "spikes_a": int(a.sum()),
        "spikes_b": int(b.sum()),
    }


def compare_with_torch(model: Any, u: Any, deployment: Deployment, result: HardwareRollout,
                       task: Any = None, batch: Any = None) -> dict[str, Any]:
    """One row of the torch-vs-Lava table: spike agreement with the matching torch run and, given a
    task and its batch, both accuracies (plus the float32 torch model's, as trained)."""
    spikes_t, _, y_t = torch_reference(model, u, deployment.precision)
    row: dict[str, Any] = {"backend": deployment.backend, "precision": deployment.precision,
                           **spike_agreement(spikes_t, result.spikes), "lava_seconds": result.seconds}
    row["spikes_torch"], row["spikes_lava"] = row.pop("spikes_a"), row.pop("spikes_b")
    row["max_abs_dy"] = float(np.max(np.abs(y_t - result.y))) if y_t.size else 0.0
    if task is not None and batch is not None:
        row["accuracy_lava"] = float(task.score(result.y.astype(np.float32), batch)["accuracy"])
        row["accuracy_torch_same_precision"] = float(task.score(y_t.astype(np.float32), batch)["accuracy"])
    return row
