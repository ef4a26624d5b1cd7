"""NIR export and import of spikedyn's spiking networks: ``to_nir(model)`` / ``from_nir(graph_or_path)``.

The graph layout and what metadata carries are described in ``spikedyn/hardware/nir_io.py`` and
``docs/hardware.md``. In short: ``input -> w_in -> lif <-> w_rec``, ``lif -> [LI] -> w_out -> output``,
NIR's continuous-time constants written with forward Euler for a step of ``dt`` seconds, and the
features NIR lacks (subtractive reset, ALIF, refractory period, exact discrete constants, the model
config) in metadata. Interoperability, tested against the real libraries (``tests/test_nir.py``):

* snnTorch 1.0: ``to_nir(model, dt=1e-4)`` imports with ``snntorch.import_nir.import_from_nir``, and
  ``from_nir(export_to_nir(net, ...), dt=1e-4)`` reads ``Linear -> RLeaky [-> Linear]`` (LIF,
  ``du = 1``; snnTorch's importer always builds reset-to-zero; pass ``reset="subtract"`` for a
  default ``RLeaky``, whose export does not say it subtracts).
* norse 1.1: ``to_nir(model, dt=1e-3, fold_r=True)`` imports with ``norse.torch.from_nir`` (its
  ``LIFBoxCell`` ignores NIR's ``r``, hence ``fold_r``; the recurrent ``Affine`` runs through
  nirtorch's graph executor, which feeds the cycle with the previous step's output), and
  ``from_nir(norse.torch.to_nir(net, ...), dt=1e-3)`` reads ``Linear -> LIFBoxCell [-> Linear]``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikedyn.hardware.nir_checks import metadata_json
from spikedyn.hardware.nir_io import flatten, graph_bytes, read_graph, spec_from_nir, spec_to_nir
from spikedyn.hardware.nir_network import NETWORK_KEY, NEURONS, graph_from_nir, graph_to_nir
from spikedyn.hardware.spec import NetworkSpec

MODEL_KEY = "spikedyn_model"
NETWORK_SETTINGS = ("surrogate", "surrogate_slope", "detach_reset")  # a SpikingNetwork's, beside its graph


def _is_network(model: Any) -> bool:
    from spikedyn.models.network import SpikingNetwork

    return isinstance(model, SpikingNetwork)


def _require_spiking(model: Any) -> Any:
    from spikedyn.models import SpikingRNN

    if not isinstance(model, SpikingRNN):
        raise ValueError(
            f"NIR export and Lava deployment need a SpikingRNN, got {type(model).__name__}; "
            "turn a rate network into its spiking twin first with spikedyn.mirror(model)"
        )
    return model


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy().copy()


def spec_from_model(model: Any) -> NetworkSpec:
    """The ``NetworkSpec`` (numpy, float64) of a ``SpikingRNN``: the weights as it uses them."""
    m = _require_spiking(model)
    p = m.params
    return NetworkSpec(
        W_in=_np(m.W_in), W_rec=_np(m.W_rec_eff), bias=_np(m.b), W_out=_np(m.W_out), b_out=_np(m.b_out),
        du=p.du, dv=p.dv, v_th=p.v_th, reset=p.reset, beta=_np(m.beta), rho=p.rho if p.adaptive else 0.0,
        n_ref=p.n_ref, kappa=p.kappa, delay_in=p.delay_in, delay_rec=p.delay_rec, substeps=m.substeps,
        dt_ms=m.dt, v_leak=p.v_leak, v_reset=p.v_reset,
    )  # fmt: skip


def model_from_spec(spec: NetworkSpec, config: dict[str, Any] | None = None) -> Any:
    """A ``SpikingRNN`` that runs ``spec``: rebuilt from ``config`` (its own ``model.config()``) when
    given, else from the spec's constants (LIF; ALIF only as spikedyn metadata describes it)."""
    from spikedyn.models import SpikingRNN, from_config

    if config is not None:
        cfg = {k: v for k, v in config.items() if k != "quantize"}
        m = from_config({**cfg, "kind": "spiking"})  # the float body (a Loihi-2 body's config is the same map)
        if (m.n_in, m.n_hidden, m.n_out) != (spec.n_in, spec.n_hidden, spec.n_out):
            raise ValueError(f"graph sizes {(spec.n_in, spec.n_hidden, spec.n_out)} do not match the metadata's model")
        _check_config_matches(spec_from_model(m), spec)
    else:
        # the spec's discrete constants exactly (du, dv, rho, kappa are what a SpikingRNN stores)
        kwargs: dict[str, Any] = dict(
            dt=spec.dt_ms, substeps=spec.substeps, du=spec.du, dv=spec.dv, v_th=spec.v_th, reset=spec.reset,
            refractory=spec.n_ref * spec.dt_ms / spec.substeps, kappa=spec.kappa, rho=spec.rho,
            delay_in=spec.delay_in, delay_rec=spec.delay_rec, v_leak=spec.v_leak, v_reset=spec.v_reset,
        )  # fmt: skip
        if spec.adaptive:
            nz = np.flatnonzero(spec.beta)
            if not (np.array_equal(nz, np.arange(nz.size)) and np.all(spec.beta[nz] == spec.beta[nz[0]])):
                raise ValueError("spikedyn's ALIF has one beta for its first n_adaptive units; the graph's differs")
            kwargs.update(neuron="alif", n_adaptive=int(nz.size), beta_adapt=float(spec.beta[nz[0]]))
        m = SpikingRNN(spec.n_in, spec.n_hidden, spec.n_out, **kwargs)
    with torch.no_grad():
        for name, value in (("W_in", spec.W_in), ("W_rec", spec.W_rec), ("b", spec.bias), ("W_out", spec.W_out),
                            ("b_out", spec.b_out)):
            getattr(m, name).copy_(torch.as_tensor(value, dtype=m.dtype))
    return m


def _check_config_matches(built: NetworkSpec, spec: NetworkSpec) -> None:
    """The model rebuilt from ``graph.metadata["spikedyn_model"]`` must have the graph's constants:
    metadata never silently overrides what the graph says."""
    bad = []
    for name, value in built.scalars().items():
        want = getattr(spec, name)
        same = value == want if isinstance(value, str) else np.isclose(value, want, rtol=1e-9, atol=1e-12)
        if not same:
            bad.append(f"{name} = {value!r} (config) vs {want!r} (graph)")
    if not np.allclose(built.beta, spec.beta, rtol=1e-9, atol=1e-12):
        bad.append("beta (adaptation) differs")
    if bad:
        raise ValueError(f"the model config in graph.metadata[{MODEL_KEY!r}] disagrees with the graph: "
                         f"{'; '.join(bad)}; delete that metadata entry to import the graph's own constants")


class NIRExportWarning(UserWarning):
    """``to_nir(..., target=...)`` left out features the target library cannot read (listed)."""


#: what each library's NIR importer needs: its time step (s) and graph form
TARGETS: dict[str, dict[str, Any]] = {
    "snntorch": {"dt": 1e-4, "nested": True, "fold_r": False, "name": "snnTorch 1.0"},
    "norse": {"dt": 1e-3, "nested": False, "fold_r": True, "name": "norse 1.1"},
}
DROPPED_KEY = "spikedyn_dropped"


def portable_spec(spec: NetworkSpec, target: str) -> tuple[NetworkSpec, list[str]]:
    """The part of ``spec`` that snnTorch / norse can read, and a list of what was left out.

    Both importers know Affine/Linear and LIF/CubaLIF/IF nodes only: no leaky-integrator readout
    (``LI``: "Unknown node type"), no ``Delay``, reset to zero only, no adaptation or refractory
    period (spikedyn keeps those in metadata, which they ignore), no CubaLIF ``v_leak`` (bias), no
    ``v_reset`` other than 0, and (snnTorch) no LIF ``v_leak``.
    """
    from dataclasses import replace

    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; choose one of {list(TARGETS)} (or None for spikedyn's own)")
    dropped, changes = [], {}
    if spec.kappa > 0:
        tau_ms = -(spec.dt_ms / spec.substeps) / np.log(spec.kappa)
        dropped.append(f"the readout filter (LI, tau_out = {tau_ms:.3g} ms): the graph's readout reads the raw spikes")
        changes["kappa"] = 0.0
    if spec.reset != "zero":
        dropped.append(f"reset={spec.reset!r}: the importer resets to zero")
        changes["reset"] = "zero"
    if spec.adaptive:
        dropped.append("the adaptive threshold (ALIF): plain LIF")
        changes.update(beta=np.zeros(spec.n_hidden), rho=0.0)
    if spec.n_ref:
        dropped.append(f"the refractory period ({spec.n_ref} substeps)")
        changes["n_ref"] = 0
    if spec.delay_in or spec.delay_rec:
        dropped.append(f"the synaptic delays (delay_in = {spec.delay_in}, delay_rec = {spec.delay_rec} substeps)")
        changes.update(delay_in=0, delay_rec=0)
    if spec.v_reset != 0:
        dropped.append(f"v_reset = {spec.v_reset:g}: the importer resets to 0")
        changes["v_reset"] = 0.0
    if spec.v_leak != 0 and target == "snntorch":
        dropped.append(f"v_leak = {spec.v_leak:g}: snnTorch's importer needs v_leak = 0")
        changes["v_leak"] = 0.0
    if spec.du < 1 and np.any(spec.bias != 0):
        dropped.append("the bias of a current-based (CubaLIF) neuron (NIR v_leak)")
        changes["bias"] = np.zeros(spec.n_hidden)
    return replace(spec, **changes), dropped


def to_nir(model: Any, dt: float | None = None, fold_r: bool = False, nested: bool = False,
           path: str | Path | None = None, target: str | None = None) -> Any:
    """Export a ``SpikingRNN`` as a ``nir.NIRGraph`` (and write it to ``path`` if given).

    Args:
        dt: seconds per neuron update used to express time constants (default: the model's own
            ``dt / substeps`` in seconds; with ``target``, the target's: snnTorch 1e-4, norse 1e-3).
        fold_r: write ``r = 1`` and scale the incoming weights instead (for norse, which ignores r).
        nested: put the recurrent layer in a sub-graph (what snnTorch 1.0's importer runs correctly).
        path: also write the graph to this ``.nir`` file (atomically).
        target: None (spikedyn's full graph, exact round trip) or "snntorch" / "norse": a graph
            that library's importer reads (``snntorch.import_nir.import_from_nir``,
            ``norse.torch.from_nir``). What it cannot read is left out (``portable_spec``: the
            readout filter, subtractive reset, ALIF, refractory period, delays, a CubaLIF bias), listed
            in a ``NIRExportWarning`` and in ``graph.metadata["spikedyn_dropped"]``; ``from_nir`` of
            that graph is the network the library runs.
    """

    if _is_network(model):
        if target is not None:
            raise ValueError("target= is for a SpikingRNN; a SpikingNetwork's own graph is what norse reads "
                             "(use fold_r=True for LIF layers, whose r norse ignores)")
        if nested:
            raise ValueError("nested= is for a SpikingRNN; a SpikingNetwork's graph keeps its own sub-graphs")
        graph = graph_to_nir(model.to_graph(), dt=dt, fold_r=fold_r)
        # the training settings NIR has no field for, so that from_nir gives the same body back
        graph.metadata[MODEL_KEY] = json.dumps({k: v for k, v in model.config().items() if k in NETWORK_SETTINGS})
        if path is not None:
            _write(graph, path)
        return graph
    m = _require_spiking(model)
    spec = spec_from_model(m)
    dropped: list[str] = []
    if target is not None:
        spec, dropped = portable_spec(spec, target)
        want = TARGETS[target]
        if target == "snntorch" and dt is not None and not np.isclose(float(dt), want["dt"]):
            raise ValueError(f"snnTorch's importer fixes dt = 1e-4 s; got dt={dt} (leave dt unset)")
        dt = want["dt"] if dt is None else dt
        fold_r, nested = fold_r or want["fold_r"], nested or want["nested"]
    dt_s = (m.dt / m.substeps) / 1000.0 if dt is None else float(dt)
    graph = spec_to_nir(spec, dt=dt_s, fold_r=fold_r, nested=nested)
    if target is None:
        graph.metadata[MODEL_KEY] = json.dumps(m.config())
    else:
        graph.metadata[DROPPED_KEY] = json.dumps(dropped)
        if dropped:
            import warnings

            warnings.warn(f"to_nir(target={target!r}): {TARGETS[target]['name']} cannot read "
                          + "; ".join(dropped) + ". Left out of the graph.", NIRExportWarning, stacklevel=2)
    if path is not None:
        _write(graph, path)
    return graph


def _write(graph: Any, path: str | Path) -> None:
    from spikedyn.atomic import atomic_write_bytes

    atomic_write_bytes(Path(path), graph_bytes(graph))


def from_nir(graph_or_path: Any, dt: float | None = None, reset: str | dict[str, str] | None = None,
             tau_scale: float = 1.0, network: bool | None = None) -> Any:
    """A spikedyn network from a NIR graph (object or ``.nir`` path).

    A graph with one spiking layer (spikedyn's own ``SpikingRNN`` export, snnTorch's ``RLeaky``, ...)
    becomes a ``SpikingRNN``; any other DAG of LIF / CubaLIF / IF layers with Affine / Linear / Scale /
    Delay projections, cycles (recurrence; a cycle carries the previous step's spikes) and nested
    sub-graphs becomes a ``SpikingNetwork`` (``spikedyn/hardware/nir_network.py``; ``network=True``
    forces that form, also for one layer). ``reset`` may then be one value or a dict by layer name, and
    includes "subtract_decayed" (snnTorch's ``reset_delay=False`` subtraction, the NIR paper's Braille
    "noDelay subtract" graph). The graph's dt: ``dt=``, spikedyn's metadata, or ``graph.metadata["dt"]``.

    spikedyn's own graphs come back exactly (config and constants from metadata). Graphs from other
    tools need ``dt`` (seconds per step; snnTorch: 1e-4, norse: 1e-3); ``reset`` overrides NIR's
    reset-to-zero (e.g. "subtract" for snnTorch's default ``RLeaky``). Unsupported structures (several
    spiking layers, convolutions, a spiking output layer, per-neuron time constants) raise a
    ``ValueError`` saying which. ``tau_scale`` multiplies the graph's time constants: norse 1.1's
    ``to_nir`` writes ``tau = dt * tau_mem`` (a bug fixed after 1.1), so read its graphs with
    ``from_nir(graph, dt=1e-3, tau_scale=1e3)``.
    """
    graph = read_graph(graph_or_path)
    if network is None:
        network = _is_network_graph(graph)
    if network:
        from spikedyn.models.network import SpikingNetwork

        settings = metadata_json(graph, MODEL_KEY) or {}
        settings = {k: v for k, v in settings.items() if k in NETWORK_SETTINGS}  # nothing else is read
        return SpikingNetwork(graph_from_nir(graph, dt=dt, reset=reset, tau_scale=tau_scale), **settings)
    if isinstance(reset, dict):
        raise ValueError("reset= by layer name is for multi-layer graphs; this graph has one spiking layer")
    spec = spec_from_nir(graph, dt=dt, reset=reset, tau_scale=tau_scale)
    config = metadata_json(graph, MODEL_KEY)
    if config is not None and reset is not None:
        config["reset"] = reset
    return model_from_spec(spec, config)


def _is_network_graph(graph: Any) -> bool:
    """spikedyn's own network export, or a graph whose spiking layers are not exactly one."""
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if NETWORK_KEY in meta:
        return True
    if METADATA_KEY_RNN in meta:
        return False
    nodes, _ = flatten(graph)
    return sum(type(n).__name__ in NEURONS for n in nodes.values()) != 1


METADATA_KEY_RNN = "spikedyn"
