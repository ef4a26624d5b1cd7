"""e-prop as Bellec et al. 2020 define it: the network and the rule in one preset.

```python
from spikedyn.learning import EProp, bellec2020

net = bellec2020.model(task.n_inputs, 64, task.n_outputs, dt=10.0)               # LIF, Bellec's settings
lsnn = bellec2020.model(task.n_inputs, 64, task.n_outputs, dt=10.0, neuron="alif")  # half ALIF (LSNN)
spikedyn.train(net, task, rule=EProp.bellec2020(), steps=800)                     # + rate regulariser
```

What the preset sets, and where it comes from (Bellec et al. 2020, Methods, and the authors' code: the
evidence-accumulation tutorial, ``Figure_3_and_S7_e_prop_tutorials``, through its NEST port by
Korcsak-Gorzo et al., which lists the values):

| setting | value | source |
| --- | --- | --- |
| pseudo-derivative | triangle, ``(gamma / v_th) max(0, 1 - abs(v - A) / v_th)``, gamma = 0.3 | Methods; tutorial code |
| self-connections | none: the diagonal of ``W_rec`` is masked at init and in every gradient | tutorial code |
| refractory period | 5 ms (at least one substep) | tutorial: 5 steps of 1 ms |
| threshold ``v_th`` | 0.6 | tutorial |
| membrane ``tau_mem`` | 20 ms | tutorial |
| reset | subtract ``v_th``, not differentiated | tutorial code (the reset term is detached) |
| readout ``tau_out`` | 20 ms | tutorial |
| ALIF | half of the units adaptive (LSNN), ``tau_adapt`` = 2 s, ``beta`` = 1.7 in the tutorial's units | tutorial |
| rate regulariser | ``c_reg = 1`` toward ``f_target = 10`` Hz (rates in kHz; ``regularizers.py``) | tutorial |

``beta``: the tutorial's adaptation increment 1.7 is written for its own scaling of ``a`` and ``v``; the NEST
port converts it to an unscaled model like spikedyn's (``a <- rho a + z``, ``v <- (1 - dv) v + I``) as
``beta = 1.7 (1 - rho) / (1 - alpha)`` with ``rho = exp(-dt/tau_adapt)``, ``alpha = exp(-dt/tau_mem)``;
``model`` applies the same conversion at its substep length. Bellec et al. simulate at 1 ms; the tasks
here use coarser steps, so time constants (``tau_mem``, ``tau_out``) may be overridden per task, and the
refractory period can be no shorter than one substep. Everything can be overridden by keyword.
"""
from __future__ import annotations

import math
from typing import Any

GAMMA = 0.3  # dampening factor of the pseudo-derivative
V_TH = 0.6
TAU_MEM = 20.0  # ms
TAU_OUT = 20.0  # ms
REFRACTORY = 5.0  # ms
TAU_ADAPT = 2000.0  # ms
BETA_TUTORIAL = 1.7  # the tutorial's adaptation strength (its own units; see the module doc)
C_REG = 1.0
F_TARGET = 10.0  # Hz


def adaptation_beta(dt_sub: float, tau_mem: float = TAU_MEM, tau_adapt: float = TAU_ADAPT) -> float:
    """Bellec et al.'s ``beta = 1.7`` in spikedyn's units at a substep of ``dt_sub`` ms (NEST's conversion)."""
    rho, alpha = math.exp(-dt_sub / tau_adapt), math.exp(-dt_sub / tau_mem)
    return BETA_TUTORIAL * (1.0 - rho) / (1.0 - alpha)


def model_params(dt: float, substeps: int = 1, neuron: str = "lif", n_hidden: int | None = None,
                 **overrides: Any) -> dict[str, Any]:  # fmt: skip
    """``SpikingRNN`` keyword arguments of the preset for input steps of ``dt`` ms (module doc); ``neuron="alif"``
    makes the first half of ``n_hidden`` units adaptive (give ``n_adaptive`` to choose)."""
    dt_sub = float(dt) / int(substeps)
    params: dict[str, Any] = {
        "neuron": neuron, "dt": float(dt), "substeps": int(substeps), "surrogate": "triangle",
        "surrogate_slope": GAMMA, "self_connections": False, "refractory": max(REFRACTORY, dt_sub),
        "v_th": V_TH, "tau_mem": TAU_MEM, "tau_out": TAU_OUT, "reset": "subtract", "detach_reset": True,
    }  # fmt: skip
    params.update(overrides)
    if neuron == "alif":
        params.setdefault("tau_adapt", TAU_ADAPT)
        params.setdefault("beta_adapt", adaptation_beta(dt_sub, params["tau_mem"], params["tau_adapt"]))
        if "n_adaptive" not in params and n_hidden is not None:
            params["n_adaptive"] = n_hidden // 2
    return params


def model(n_in: int, n_hidden: int, n_out: int, *, dt: float, substeps: int = 1, neuron: str = "lif",
          **overrides: Any) -> Any:  # fmt: skip
    """A ``SpikingRNN`` with the preset's settings (``model_params``)."""
    from ..models import SpikingRNN

    return SpikingRNN(n_in, n_hidden, n_out, **model_params(dt, substeps, neuron, n_hidden, **overrides))


def regularizer(strength: float = C_REG, target: float = F_TARGET) -> Any:
    """Bellec et al.'s firing-rate regulariser: ``c_reg = 1`` toward 10 Hz."""
    from .regularizers import FiringRateRegularizer

    return FiringRateRegularizer(strength=strength, target=target)


def rule(feedback: str = "symmetric", cls: Any = None, **kwargs: Any) -> Any:
    """The e-prop rule of the preset: ``EProp(feedback, regularizer=regularizer(), **kwargs)``."""
    from .eprop import EProp

    kwargs.setdefault("regularizer", regularizer())
    return (cls or EProp)(feedback=feedback, **kwargs)


__all__ = ["adaptation_beta", "model", "model_params", "regularizer", "rule"]
