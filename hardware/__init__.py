"""spikedyn.hardware: compile spiking networks to Lava processes (numpy + nir + lava-nc; never torch).

Modules (importing this package imports numpy only; nir and lava are imported where they are used):

* ``neuron``: the one neuron map (LIF/ALIF substep, partial derivatives, delays, readout filter),
  written against the array API so that torch (``spikedyn.models``) runs the same functions;
* ``spec``: ``NetworkSpec``, a spiking RNN as numpy arrays (the format everything here compiles);
* ``quantize``: Loihi 2 fixed-point formats (``quantize_loihi2``), as Lava 0.10's bit-accurate models
  define them; the torch side's ``Loihi2RNN`` calls the same function and ``fixed_substep``;
* ``reference``: plain numpy simulators (float and fixed point) and the host-side readout;
* ``nir_io``: ``NetworkSpec`` <-> NIR graphs (what ``spikedyn.export.to_nir/from_nir`` build on);
* ``lava_backend``: ``run_lava`` (LIF + Dense/Sparse/DelayDense processes, ``Loihi2SimCfg`` with
  ``floating_pt`` or ``fixed_pt``, ``Loihi2HwCfg`` with lava-loihi); ``lava_neuron``: a Lava process
  for ALIF / subtractive reset / refractory neurons (float, simulator only); ``lava_recorder``: a sink
  that writes spikes to a memory map (Lava's own ``Var.get`` sends one element per message);
* ``bundle``, ``run``, ``runtime``: the bundle directory, ``python -m spikedyn.hardware.run BUNDLE``
  and finding the Lava interpreter (``find_lava_python``).
"""
from __future__ import annotations

from .quantize import Loihi2Params, quantize_input, quantize_loihi2
from .reference import readout, simulate_fixed, simulate_float
from .spec import NetworkSpec

__all__ = [
    "Loihi2Params", "NetworkSpec", "quantize_input", "quantize_loihi2", "readout", "simulate_fixed",
    "simulate_float",
]  # fmt: skip
