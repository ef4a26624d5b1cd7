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

From the command line (``PRESET``, registered in ``spikedyn.learning.presets``)::

    spikedyn train --preset bellec2020 --model alif --rule eprop --task rdm --task-param dt=10 \
        --model-param tau_mem=50 --steps 800

builds ``model(task.n_inputs, --hidden, task.n_outputs, dt=<the task's dt>, neuron=--model,
**--model-param)`` (``--model lif``, or ``alif``: the LSNN) and trains it with ``--rule eprop`` (e-prop
with the rate regulariser, ``rule()``) or ``--rule bptt`` (Bellec et al.'s BPTT baseline, the same
regulariser). Learning rate, batch size and steps stay the CLI's: the tutorial's are for its own tasks.
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


class Bellec2020Preset:
    """``--preset bellec2020`` of ``spikedyn train`` (module doc): the interface of
    ``spikedyn.learning.presets`` (``train_kwargs``, ``build_model``, ``build_population``) plus the two hooks
    that map CLI options for a spiking preset (``cli_defaults``, ``build_training_model``)."""

    name = "bellec2020"
    citation = "Bellec et al. 2020 (Methods; the evidence-accumulation tutorial)"
    models = ("lif", "alif")  # --model: LIF, or ALIF (the LSNN: half the units adaptive)
    rules = ("eprop", "bptt")  # e-prop, and Bellec et al.'s BPTT baseline; both with the rate regulariser
    hidden = 64  # spikedyn's size (the tables of docs/eprop.md); the paper's varies by task

    def _check(self, rule: str, model: str | None = None) -> None:
        if rule not in self.rules:
            raise ValueError(f"preset {self.name!r} trains with --rule eprop (or bptt, Bellec et al.'s baseline), "
                             f"not {rule!r}")
        if model is not None and model not in self.models:
            raise ValueError(f"--preset {self.name} builds Bellec et al. 2020's spiking network; use --model lif "
                             f"or --model alif (LSNN), not {model!r}")

    def train_kwargs(self, rule: str = "eprop") -> dict[str, Any]:
        """``spikedyn.train`` keyword arguments of ``rule``: the rule and its rate regulariser."""
        self._check(rule)
        return {"rule": rule, "rule_kwargs": {"regularizer": {"strength": C_REG, "target": F_TARGET}}}

    def build_model(self, task: Any, seed: int | None = None, rule: str = "eprop", hidden: int | None = None,
                    neuron: str = "lif", **overrides: Any) -> Any:  # fmt: skip
        """``model(...)`` for ``task`` (its dt), initialised from ``seed`` (None: the current torch RNG)."""
        import torch

        from ..config import check_params
        from ..models import SpikingRNN

        self._check(rule, neuron)
        check_params(SpikingRNN.__init__, overrides, "model_params", skip=4)  # one line for a bad --model-param
        dt = float(overrides.pop("dt", getattr(task, "dt", 1.0)))
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            return model(task.n_inputs, hidden or self.hidden, task.n_outputs, dt=dt, neuron=neuron, **overrides)

    def build_population(self, task: Any, size: int, seed: int = 0, rule: str = "eprop", hidden: int | None = None,
                         neuron: str = "lif", **overrides: Any) -> Any:  # fmt: skip
        """``size`` networks (member i: ``build_model(..., seed=seed + i)``) as a Population."""
        from ..models.population import Population

        return Population.stack([self.build_model(task, seed + i, rule, hidden, neuron, **overrides)
                                 for i in range(size)])  # fmt: skip

    def cli_defaults(self, rule: str, model: str) -> dict[str, Any]:
        """The preset's values for ``spikedyn train`` options: the regulariser in ``rule_params``."""
        self._check(rule, model)
        return {"rule_params": self.train_kwargs(rule)["rule_kwargs"]}

    def build_training_model(self, cfg: Any, task: Any) -> Any:
        """The network ``spikedyn train --preset bellec2020`` trains (a Population with ``--population``)."""
        options = {"neuron": "--model", "hidden": "--hidden", "rule": "--rule", "seed": "--seed"}
        clash = [k for k in cfg.model_params if k in options]
        if clash:
            raise ValueError(f"--model-param {clash[0]}=... is not a --preset {self.name} model parameter: "
                             f"use {options[clash[0]]}")
        kw = dict(rule=cfg.rule, hidden=cfg.hidden, neuron=cfg.model, **cfg.model_params)
        if cfg.population:
            return self.build_population(task, cfg.population, seed=cfg.seed, **kw)
        return self.build_model(task, seed=cfg.seed, **kw)


PRESET = Bellec2020Preset()

__all__ = ["PRESET", "Bellec2020Preset", "adaptation_beta", "model", "model_params", "regularizer", "rule"]
