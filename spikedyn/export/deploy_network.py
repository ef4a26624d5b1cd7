"""``spikedyn.deploy`` for a multi-layer ``SpikingNetwork``: Lava float or bit-accurate fixed point.

    dep = spikedyn.deploy(net, precision="fixed")     # net: a SpikingNetwork (e.g. from_nir(braille.nir))
    out = dep.run(u)                                  # a HardwareRollout; out.layers: spikes by layer
    spikes, counts, y = network_torch_reference(net, u, "fixed")   # what Lava must equal, by layer

The network travels to the Lava interpreter as its NIR graph (with spikedyn's exact constants) in a
bundle, like a ``SpikingRNN``'s; ``spikedyn/hardware/lava_network.py`` compiles it (skewed layers so that
feed-forward projections keep their within-a-step timing on Lava's one-step connections).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spikedyn.hardware.network import NetworkGraph, network_readout
from spikedyn.hardware.validation import check_choice, check_chunk

from .deploy import BACKENDS, PRECISIONS, HardwareRollout, execute


@dataclass
class NetworkDeployment:
    """A ``SpikingNetwork`` compiled for one Lava backend and precision; ``run(u)`` executes it."""

    network: NetworkGraph
    graph: Any  # the NIR graph sent to Lava
    backend: str
    precision: str
    python: str | None
    chunk: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:  # the same checks as Deployment's
        check_choice(self.backend, "backend", tuple(BACKENDS))
        check_choice(self.precision, "precision", PRECISIONS)
        self.chunk = check_chunk(self.chunk)

    def run(self, u: Any, progress: bool = True, workdir: str | Path | None = None) -> HardwareRollout:
        """Run inputs ``u [T, B, I]`` on Lava from rest. Returns a ``HardwareRollout``: ``y`` (the host
        readout), ``r`` (spike counts of every layer per input step), ``spikes [T * substeps, B, n_hidden]``
        (layers concatenated in order) and ``layers`` (``{name: [T * substeps, B, n]}``). ``progress`` and
        ``workdir`` as ``Deployment.run`` (in the Lava subprocess and in-process alike)."""
        g = self.network
        spikes, seconds, timing, bundle = execute(self, u, g.n_in, g.substeps, g.n_hidden, progress, workdir)
        layers, start = {}, 0
        for L in g.layers:
            layers[L.name] = spikes[..., start:start + L.size]
            start += L.size
        counts, y = network_readout(g, layers)
        out = HardwareRollout(y, counts, None, spikes=spikes, seconds=seconds, timing=timing, bundle=bundle)
        out.layers = layers
        return out


def deploy_network(net: Any, backend: str, precision: str, chunk: int | None,
                   lava_python: str | None) -> NetworkDeployment:  # fmt: skip
    """``spikedyn.deploy`` of a ``SpikingNetwork``: first one line for what Lava cannot run, then the Lava
    interpreter, chosen as for a ``SpikingRNN`` (``deploy._lava_interpreter``)."""
    from spikedyn.hardware.lava_network import check_lava_network

    from .deploy import _lava_interpreter
    from .nir import to_nir

    g = net.to_graph()
    check_lava_network(g, precision)
    if backend == "lava-loihi" and g.lava_lif_reason():
        raise ValueError(f"Loihi runs Lava's LIF; {g.lava_lif_reason()} (simulator only)")
    return NetworkDeployment(network=g, graph=to_nir(net), backend=backend, precision=precision,
                             python=_lava_interpreter(backend, lava_python), chunk=chunk)


def network_torch_reference(net: Any, u: Any, precision: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The torch run a Lava run of ``net`` must equal: spikes by layer, counts ``r`` and outputs ``y``.
    float: the network in float64; fixed: its Loihi-2 body (``net.quantized("loihi2")``)."""
    m = copy.deepcopy(net).cpu()
    m = m.quantized("loihi2") if precision == "fixed" else m.double()
    x = torch.as_tensor(np.asarray(u), dtype=m.dtype)
    with torch.no_grad():
        spikes = {k: v.numpy().astype(np.uint8) for k, v in m.layer_spikes(x).items()}
        out = m(x)
    return spikes, out.r.numpy(), out.y.double().numpy()
