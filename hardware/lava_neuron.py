"""``SpikedynLIF``: a Lava process for the neurons Lava's own ``LIF`` cannot express (float only).

Lava 0.10's ``LIF`` leaks toward and resets v to zero and has a fixed threshold. spikedyn's ALIF (adaptive
threshold ``v_th + beta a``, ``a = rho a + z``), subtractive reset, refractory period and NIR's
``v_leak``/``v_reset`` run on Lava's CPU
simulator through this process, whose float model performs exactly ``neuron.neuron_update``
(the one map the torch model runs). It has no fixed-point model and no Loihi microcode: on the chip these
neurons would need a custom neuron program, which Lava 0.10's public release cannot compile.
Kept in its own module: Lava's compiler finds process models by importing modules next to the
process's file.
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from spikedyn.hardware.neuron import NeuronConstants, neuron_update, numpy_ops


class SpikedynLIF(AbstractProcess):
    """LIF / ALIF neurons with spikedyn's update (see ``spikedyn.hardware.spec``), float precision.

    Args: shape; du, dv scalars or arrays of ``shape`` (per-neuron decays); v_th, rho scalars; bias, beta
    arrays of ``shape``; n_ref refractory steps;
    reset "zero" | "subtract" | "subtract_decayed"; v_leak, v_reset scalars (NIR's LIF: leak toward v_leak,
    reset to v_reset); start: Lava steps to stay at rest first (a layer of a network run skewed,
    ``lava_network``: its bias must not act before its first step).
    """

    def __init__(self, *, shape: tuple[int, ...], du: float, dv: float, v_th: float, bias: np.ndarray,
                 beta: np.ndarray, rho: float, n_ref: int, reset: str, v_leak: float = 0.0, v_reset: float = 0.0,
                 start: int = 0, name: str | None = None) -> None:
        super().__init__(shape=shape, du=du, dv=dv, v_th=v_th, rho=rho, n_ref=n_ref, reset=reset,
                         adaptive=bool(np.any(np.asarray(beta) != 0)), v_leak=v_leak, v_reset=v_reset,
                         start_step=int(start), name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        for var in ("u", "v", "z", "a", "ref"):
            setattr(self, var, Var(shape=shape, init=0.0))
        self.bias = Var(shape=shape, init=np.asarray(bias, dtype=float))
        self.beta = Var(shape=shape, init=np.asarray(beta, dtype=float))


def _decay(value) -> float | np.ndarray:
    """A decay given to ``SpikedynLIF``: one float, or one per neuron (an array of the process's shape)."""
    arr = np.asarray(value, dtype=float)
    return float(arr) if arr.ndim == 0 else arr


@implements(proc=SpikedynLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikedynLIFFloat(PyLoihiProcessModel):
    """Float model: the same numpy update as ``spikedyn.hardware.reference.simulate_float``."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    u: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    z: np.ndarray = LavaPyType(np.ndarray, float)
    a: np.ndarray = LavaPyType(np.ndarray, float)
    ref: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    beta: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        self.constants = NeuronConstants(
            du=_decay(proc_params["du"]), dv=_decay(proc_params["dv"]), v_th=float(proc_params["v_th"]),
            rho=float(proc_params["rho"]), n_ref=int(proc_params["n_ref"]), reset=str(proc_params["reset"]),
            adaptive=bool(proc_params["adaptive"]), v_leak=float(proc_params["v_leak"]),
            v_reset=float(proc_params["v_reset"]),
        )  # fmt: skip
        self.ops = numpy_ops()
        self.start_step = int(proc_params["start_step"])

    def run_spk(self) -> None:
        current = self.a_in.recv()
        if self.time_step <= self.start_step:  # not started yet: at rest, silent
            self.s_out.send(np.zeros_like(current))
            return
        u, v, z, a, ref = neuron_update(self.constants, self.ops, self.u, self.v, self.z, self.a, self.ref, current,
                                        self.bias, self.beta)
        self.u[:], self.v[:], self.z[:], self.a[:], self.ref[:] = u, v, z, a, ref
        self.s_out.send(z)


class SpikedynFixedLIF(AbstractProcess):
    """Lava's integer LIF arithmetic with a subtractive reset (``network.fixed_layer_update``): the
    fixed-point neuron of layers Lava's ``LIF`` cannot reset. It runs on Lava's runtime next to Lava's
    bit-accurate ``Dense`` / ``Sparse``; Loihi itself would need a custom neuron program for it.

    Args: shape; du, dv (12-bit), vth (the effective threshold ``vth << 6``), bias (int ``bias_mant <<
    bias_exp``, per neuron), reset ("zero" | "subtract" | "subtract_decayed"), start (as ``SpikedynLIF``)."""

    def __init__(self, *, shape: tuple[int, ...], du: int, dv: int, vth: int, bias: np.ndarray, reset: str,
                 start: int = 0, name: str | None = None) -> None:
        super().__init__(shape=shape, du=int(du), dv=int(dv), vth=int(vth), reset=str(reset), start_step=int(start),
                         name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        for var in ("u", "v", "z"):
            setattr(self, var, Var(shape=shape, init=0))
        self.bias = Var(shape=shape, init=np.asarray(bias, dtype=np.int64))


@implements(proc=SpikedynFixedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikedynFixedLIF(PyLoihiProcessModel):
    """Integer model: ``spikedyn.hardware.network.fixed_layer_update`` (the function torch's
    ``Loihi2Network`` and the numpy fixed-point reference run)."""

    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int64)
    v: np.ndarray = LavaPyType(np.ndarray, np.int64)
    z: np.ndarray = LavaPyType(np.ndarray, np.int64)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params: dict) -> None:
        super().__init__(proc_params)
        from spikedyn.hardware.quantize import FixedConstants

        self.constants = FixedConstants(int(proc_params["du"]), int(proc_params["dv"]), int(proc_params["vth"]), 0.0)
        self.reset = str(proc_params["reset"])
        self.start_step = int(proc_params["start_step"])

    def run_spk(self) -> None:
        from spikedyn.hardware.network import fixed_layer_update

        a_in = self.a_in.recv().astype(np.int64)
        if self.time_step <= self.start_step:  # not started yet: at rest, silent
            self.s_out.send(np.zeros(a_in.shape, dtype=np.int32))
            return
        u, v, spiked = fixed_layer_update(self.constants, self.reset, self.u.astype(np.int64),
                                          self.v.astype(np.int64), self.z, a_in, self.bias)
        self.u[:], self.v[:], self.z[:] = u, v, spiked
        self.s_out.send(spiked.astype(np.int32))
