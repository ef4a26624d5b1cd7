"""``SpikeRecorder``: a Lava sink that writes every step's spikes into a ``.npy`` memory map.

Lava 0.10 returns a ``Var`` to the host one element per message (``PyLoihiProcessModel._get_var``):
reading a ``RingBuffer`` sink of 64 trials x 64 neurons x 100 steps took 18 s, against 2.3 s for the
whole run with this sink (``benchmarks/lava_vs_torch.py``). This sink instead stores each step's spikes
(one uint8 row) in a file the host opened with ``numpy.lib.format.open_memmap``; the host reads it
after the run. It runs on the host CPU, as sinks do in both simulated and Loihi runs.
Kept in its own module: Lava's compiler finds process models by importing modules next to the
process's file.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol


class SpikeRecorder(AbstractProcess):
    """Writes the spikes arriving at ``a_in`` (shape ``(n,)``) to row ``t`` of the ``[steps, n]`` uint8
    ``.npy`` file at ``path`` (created by the host beforehand)."""

    def __init__(self, *, shape: tuple[int], path: str, name: str | None = None) -> None:
        super().__init__(shape=shape, path=str(path), name=name)
        self.a_in = InPort(shape=shape)


class _AbstractRecorderModel(PyLoihiProcessModel):
    a_in: PyInPort = None

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.out = np.load(proc_params["path"], mmap_mode="r+")

    def run_spk(self) -> None:
        spikes = self.a_in.recv()
        row = self.time_step - 1
        if row < self.out.shape[0]:
            self.out[row] = spikes > 0


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeRecorderFloat(_AbstractRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)


@implements(proc=SpikeRecorder, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeRecorderFixed(_AbstractRecorderModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
