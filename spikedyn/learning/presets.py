"""Named presets: a paper's network, initialisation and training settings in one object.

``mcmahan2024`` (alias ``seed002``) is the network and training of McMahan, Kleinman & Kao 2024
(Sec. 2.1-2.3)::

    p = spikedyn.learning.presets.get("mcmahan2024")
    task = p.task("rdm")                               # 10 ms steps: 76 per 750 ms trial
    net = p.build_model(task, seed=0)                  # N = 50, 1 + tanh, the paper's initialisation
    spikedyn.train(net, task, steps=3000, **p.train_kwargs("bptt"))

The paper's values and the choices it leaves open are listed in ``docs/training.md``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .bellec2020 import PRESET as BELLEC2020  # Bellec et al. 2020's spiking network and e-prop

RULE_ACTIVATION = {"hebbian": "tanh", "full_force": "tanh"}  # the paper: 1 + tanh made H and FF fail


@dataclass(frozen=True)
class Preset:
    """A paper's network and training settings (see the module doc).

    Distributions are given as the paper writes them, ``N(0, variance)``.
    """

    name: str
    citation: str
    tasks: tuple[str, ...]
    task_params: dict[str, Any]
    hidden: int
    activation: str
    tau_ms: float
    gain: float
    w_in_var: float
    w_out_var: float
    x0_var: float
    bias: bool
    rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_trials: int = 2000
    target_accuracy: float = 0.9
    eval_every: int = 10

    def task(self, name: str, **params: Any) -> Any:
        """The task with the preset's parameters (``params`` override them)."""
        import spikedyn.tasks as tasks

        return tasks.make(name, **{**self.task_params, **params})

    def model_params(self, task: Any, rule: str = "bptt", **overrides: Any) -> dict[str, Any]:
        """``RateRNN`` keyword arguments for ``task`` (``alpha = dt / tau``); ``overrides`` (``RateRNN``
        keywords) win, and a ``dt`` or ``tau`` given there sets ``alpha`` from it (``tau`` in ms)."""
        dt = float(overrides.get("dt", getattr(task, "dt", 1.0)))
        base = {"dt": dt, "alpha": min(1.0, dt / self.tau_ms), "activation": RULE_ACTIVATION.get(rule, self.activation),
                "gain": self.gain, "x0_std": math.sqrt(self.x0_var), "bias": self.bias}  # fmt: skip
        return {**base, **overrides}

    def build_model(self, task: Any, seed: int | None = None, rule: str = "bptt",
                    hidden: int | None = None, **overrides: Any) -> torch.nn.Module:
        """The paper's network for ``task``: ``W_rec ~ N(0, g^2/N)`` (RateRNN's own draw), ``W_in ~ N(0,
        w_in_var)``, ``W_out ~ N(0, w_out_var)``, ``b_out = 0``. ``seed`` None: the current torch RNG.
        ``overrides``: ``RateRNN`` keywords over the preset's (``model_params``), e.g. ``noise_std=0.1``."""
        from spikedyn.config import check_params
        from spikedyn.models import RateRNN

        check_params(RateRNN.__init__, overrides, "model_params", skip=4)  # one line for a bad --model-param
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            net = RateRNN(task.n_inputs, hidden or self.hidden, task.n_outputs,
                          **self.model_params(task, rule, **overrides))  # fmt: skip
            with torch.no_grad():
                net.W_in.normal_(0.0, math.sqrt(self.w_in_var))
                net.W_out.normal_(0.0, math.sqrt(self.w_out_var))
                net.b_out.zero_()
        return net

    def build_population(self, task: Any, size: int, seed: int = 0, rule: str = "bptt",
                         hidden: int | None = None, **overrides: Any) -> Any:
        """``size`` preset networks (member i: ``build_model(task, seed=seed + i, **overrides)``) as a
        Population."""
        from spikedyn.models.population import Population

        return Population.stack([self.build_model(task, seed=seed + i, rule=rule, hidden=hidden, **overrides)
                                 for i in range(size)])  # fmt: skip

    def train_kwargs(self, rule: str = "bptt") -> dict[str, Any]:
        """``spikedyn.train`` keyword arguments of ``rule`` (all but ``steps`` and ``seed``)."""
        if rule not in self.rules:
            raise ValueError(f"preset {self.name!r} has settings for rules {sorted(self.rules)}, not {rule!r}")
        kw = {"eval_trials": self.eval_trials, "target_accuracy": self.target_accuracy,
              "eval_every": self.eval_every, "rule": rule}  # fmt: skip
        kw.update(self.rules[rule])
        return kw


MCMAHAN2024 = Preset(
    name="mcmahan2024",
    citation="McMahan, Kleinman & Kao 2024, Sec. 2.1-2.3",
    tasks=("rdm", "cdi", "ncdi"),
    task_params={"dt": 10.0},
    hidden=50,
    activation="shifted_tanh",
    tau_ms=100.0,  # not stated in the paper; spikedyn's rate default (alpha = 0.1 at 10 ms steps)
    gain=1.0,
    w_in_var=0.5,
    w_out_var=0.1,
    x0_var=0.3,
    bias=False,  # Eq. 1-2 have no bias (b_out starts at 0; BPTT may train it)
    rules={
        "bptt": {"lr": 5e-4, "batch_size": 500, "clip": None},
        "ga": {"batch_size": 500, "eval_every": 5,
               "rule_kwargs": {"population": 50, "parents": 5, "children": 50, "sigma": 0.005}},
        "hebbian": {},  # the rule's own defaults (Miconi 2017: eta = 0.01), tanh units
        # tanh units; McMahan et al.'s code (FF_Demo.py / trainNcontext.py): target +-1 from the start,
        # RLS from 200 ms on; P_0 = I / 100 measured here (their code: I / 10,000 with one trial at a time)
        "full_force": {"rule_kwargs": {"target_fill": "next", "fit_from_ms": 200.0, "rls_alpha": 100.0}},
    },  # fmt: skip
)

PRESETS: dict[str, Any] = {"mcmahan2024": MCMAHAN2024, "bellec2020": BELLEC2020}
ALIASES = {"seed002": "mcmahan2024"}


def get(name: str) -> Preset:
    """A preset by name (``mcmahan2024``, alias ``seed002``)."""
    key = ALIASES.get(name, name)
    if key not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted([*PRESETS, *ALIASES])}")
    return PRESETS[key]


def cli_defaults(name: str, rule: str, model: str = "rate") -> dict[str, Any]:
    """The preset's values for ``spikedyn train`` options (``TrainConfig`` keys); flags given win."""
    p = get(name)
    if hasattr(p, "cli_defaults"):  # a preset that maps the options itself (bellec2020: spiking networks)
        return p.cli_defaults(rule, model)
    if model != "rate":
        raise ValueError(f"--preset {name} builds the paper's rate network; use --model rate or drop --preset")
    kw = p.train_kwargs(rule)
    out = {"hidden": p.hidden, "task_params": dict(p.task_params), "rule_params": dict(kw.pop("rule_kwargs", {}))}
    kw.pop("rule")
    return {**out, **kw}


def build_training_model(cfg: Any, task: Any, build_model: Any) -> torch.nn.Module:
    """The network ``spikedyn train`` trains: the preset's or ``build_model(model, task, hidden, params,
    seed=)``'s; a Population of ``cfg.population`` of them (seeds ``seed, seed + 1, ...``), and for the
    genetic algorithm generation zero (``rule_params["population"]``, default 50, when no --population)."""
    from spikedyn.models.population import Population

    size = cfg.population
    if cfg.rule == "ga" and size is None:
        size = int(cfg.rule_params.get("population", 50))
    if cfg.preset:
        p = get(cfg.preset)
        if hasattr(p, "build_training_model"):  # bellec2020
            return p.build_training_model(cfg, task)
        options = {"hidden": "--hidden", "n_hidden": "--hidden", "rule": "--rule", "seed": "--seed"}
        clash = [k for k in cfg.model_params if k in options]
        if clash:
            raise ValueError(f"--model-param {clash[0]}=... is not a --preset {p.name} model parameter: "
                             f"use {options[clash[0]]}")
        kw = dict(rule=cfg.rule, hidden=cfg.hidden, **cfg.model_params)  # --model-param given here wins
        if size:
            return p.build_population(task, size, seed=cfg.seed, **kw)
        return p.build_model(task, seed=cfg.seed, **kw)
    if size:
        return Population.stack([build_model(cfg.model, task, cfg.hidden, cfg.model_params, seed=cfg.seed + i)
                                 for i in range(size)])  # fmt: skip
    return build_model(cfg.model, task, cfg.hidden, cfg.model_params, seed=cfg.seed)


__all__ = ["ALIASES", "MCMAHAN2024", "PRESETS", "Preset", "build_training_model", "cli_defaults", "get"]
