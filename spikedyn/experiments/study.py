"""Population studies after McMahan et al. 2024: does the learning rule (or the body) change a network's
representation, its attractor topology, or both?

``spikedyn study rules`` (Fig. 1): ``nets`` networks per learning rule (and body) on one task, each trained
to the target accuracy; then for every network its activity on the same inputs (``activity``: rates, or
the readout's r̄ for spiking bodies) and its attractor topology at the probe inputs
{-0.5, -0.2, 0, 0.2, 0.5} (``attractor_topology``, Maheswaranathan et al. 2019), and the nearest-neighbour
signature of its fixed points at 21 small inputs (``neighbour_signature``, what McMahan et al.'s code
compares). Four distance matrices between all networks (``DISTANCES``: SVCCA on McMahan et al.'s
noiseless condition inputs and on noisy trials, the signature distance and the graph edit distance), their
MDS embeddings (for the eye only) and silhouette scores with the rule as the label, on each matrix and on
its rows (McMahan et al.'s code).

Variants: ``contexts`` (Fig. 2: N-CDI with N = 2..6 contexts, BPTT vs GA; silhouettes against N),
``noise`` (Fig. 5: BPTT at input-noise variances 0.1, 0.5, 1.0, labelled by the noise), and ``bodies``
(beyond the paper: rate parents trained with BPTT, their ``mirror`` twins, full-FORCE spiking twins taught
by each parent, and LIF networks trained from scratch with BPTT and e-prop; silhouettes by body, and for
every twin the distance to its own parent against the distance to the other parents).

Networks: McMahan et al.'s (``presets.get("mcmahan2024")``: N = 50, 1 + tanh, tanh for Hebbian and
full-FORCE, their initialisation; ``tau_ms`` may replace its 100 ms and ``dt_ms`` its 10 ms step, with
``alpha = dt / tau``) for rate bodies; LIF bodies are 50 LIF units at the task's step (``LIF_PARAMS``).
Training settings (``RULE_SETTINGS``) are this library's small-scale ones, stated next to the paper's in
docs/comparison.md. Rules that declare ``trains_members`` train all ``nets`` of a group in one batched
``Population`` run; the others (and the genetic algorithm, whose population makes one network) train one
run directory per network. One sampling design either way: every network trains on the study's batch
stream (seed ``seed``) and differs from the others only by its initialisation.

Resumable: every network is a ``spikedyn.train`` run directory under ``out/nets/`` (finished runs are
read back, not retrained; a killed run resumes from its last checkpoint), and each network's analysis is
cached under ``out/analysis/`` as ``.npz`` (plain arrays). A changed configuration in the same ``out`` (the
step budgets included; only ``include_failed`` may change) is refused before anything is trained
(``config.json`` records it). Paths in ``study.json`` (run directories, figures, a contexts study's
sub-studies) are relative to the study's directory (``study_path`` reads them back, and the absolute paths
of older files too). ``load_study_nets`` reads a finished study's networks back read-only (for post-hoc
analyses: nothing is trained, resumed or written).
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import ExperimentConfig

RULES = ("bptt", "ga", "hebbian", "full_force", "eprop")
BODIES = ("rate", "lif")
TASKS = ("rdm", "cdi", "ncdi")
PROBES = (-0.5, -0.2, 0.0, 0.2, 0.5)
NOISE_LEVELS = (0.1, 0.5, 1.0)
LIF_PARAMS: dict[str, Any] = {"neuron": "lif", "tau_mem": 50.0, "surrogate": "triangle",
                              "self_connections": False, "tau_out": 100.0}  # fmt: skip
GA_POPULATION = 50
# bumped whenever a default or a seed rule changes what a study trains or computes; a study directory made by an
# older spikedyn (older or missing version) is refused, not resumed into a mix. 2: n_inits 128 -> 100, the
# signature_probes setting, one-by-one networks' train seed = ``seed`` (was seed + i), GA population 20 on
# CDI / N-CDI (was 50)
STUDY_VERSION = 2

# train() settings per (rule, body): small-scale budgets (docs/comparison.md lists them beside the paper's);
# the GA's chunk (trials per scoring rollout, memory only) is pinned so that studies resume across versions
RULE_SETTINGS: dict[tuple[str, str], dict[str, Any]] = {
    ("bptt", "rate"): {"steps": 1500, "batch_size": 64, "lr": 3e-3, "clip": None, "eval_every": 10},
    ("eprop", "rate"): {"steps": 1500, "batch_size": 64, "lr": 3e-3, "eval_every": 10},
    ("ga", "rate"): {"steps": 400, "batch_size": 200, "eval_every": 5,
                     "rule_kwargs": {"population": GA_POPULATION, "parents": 5, "children": GA_POPULATION,
                                     "sigma": 0.005, "sigma_is": "std", "chunk": 500}},
    ("hebbian", "rate"): {"steps": 3000, "batch_size": 100, "eval_every": 25,
                          "rule_kwargs": {"reduce": "mean", "max_dw": None, "lr": 0.3}},
    ("full_force", "rate"): {"steps": 60, "batch_size": 50, "eval_every": 2},
    ("bptt", "lif"): {"steps": 1500, "batch_size": 64, "lr": 3e-3, "eval_every": 10},
    ("eprop", "lif"): {"steps": 1500, "batch_size": 64, "lr": 3e-3, "eval_every": 10},
    ("ga", "lif"): {"steps": 400, "batch_size": 200, "eval_every": 5,
                    "rule_kwargs": {"population": GA_POPULATION, "parents": 5, "children": GA_POPULATION,
                                    "sigma": 0.005, "sigma_is": "std", "chunk": 500}},
}  # fmt: skip
GA_POPULATION_CONTEXTS = 20  # McMahan et al.'s code (train_models.py) runs its CDI / N-CDI GAs with 20 networks


def rule_settings(rule: str, body: str, task: str = "rdm") -> dict[str, Any]:
    """``RULE_SETTINGS`` of ``(rule, body)`` on ``task``: the genetic algorithm searches with
    ``GA_POPULATION_CONTEXTS`` networks on CDI and N-CDI (McMahan et al.'s code), 50 on RDM (their text)."""
    s = copy.deepcopy(RULE_SETTINGS[(rule, body)])
    if rule == "ga" and task in ("cdi", "ncdi"):
        s["rule_kwargs"].update(population=GA_POPULATION_CONTEXTS, children=GA_POPULATION_CONTEXTS)
    return s


BODY_RULES = ("bptt", "eprop", "full_force")  # what ``study bodies`` trains (full_force: the twins)
FF_TWIN_SETTINGS: dict[str, Any] = {"steps": 40, "batch_size": 50, "eval_every": 2}
TWIN_SUBSTEPS = 10


# -- configuration --------------------------------------------------------------------------------------
class StudyConfig(ExperimentConfig):
    """A population study (see the module doc). ``nets`` networks per group; ``seed`` seeds inits,
    batches and analyses; ``target_accuracy`` on ``eval_trials`` held-out trials stops training (McMahan
    et al.: 90 % on 2,000); ``analysis_trials`` held-out trials give every network's activity for SVCCA;
    ``n_inits`` initial states per probe input for the fixed points (McMahan et al.'s code: 100);
    ``signature_probes``: how many of ``SIGNATURE_PROBES`` the topology signature uses (all 21 by default,
    fewer for quick checks); ``steps``: rule -> step budget overriding ``RULE_SETTINGS``, for rules the study
    trains only (``full_force``: also the bodies study's twins' ``FF_TWIN_SETTINGS``; a study resumes only with
    the budgets it started with); ``include_failed``: analyse networks that missed the target too (may change
    on resume);
    ``tau_ms``: the rate networks' time constant in ms instead of the preset's 100 ms, with
    ``alpha = min(1, dt_ms / tau_ms)``; ``dt_ms``: the integration step in ms of the task and of every body
    instead of the preset's 10 ms (it must divide the task's 750 ms trial). The task's input noise keeps
    its variance per 1 ms (per-step std ``sqrt(noise_var * 1 ms / dt_ms)``), so at ``dt_ms = 1`` every step draws
    ``N(mu, noise_var)`` as in McMahan et al.'s code (the task's trial is t = 0..750 ms: 751 steps; their
    code draws 750 samples per trial). Their code runs alpha = 0.1 per 1 ms step
    (tau = 10 ms): ``tau_ms=10, dt_ms=1``. ``tau_ms`` at or below the step gives alpha = 1 (no leak) and
    warns."""

    task: str = "rdm"
    n_contexts: int | None = None
    noise_var: float = 1.0
    rules: tuple[str, ...] = ("bptt", "ga", "hebbian", "full_force")
    bodies: tuple[str, ...] = ("rate",)
    nets: int = 10
    seed: int = 0
    target_accuracy: float = 0.9
    eval_trials: int = 500
    analysis_trials: int = 50
    n_inits: int = 100
    signature_probes: int = 21
    probes: tuple[float, ...] = PROBES
    steps: dict[str, int] = {}
    include_failed: bool = False
    tau_ms: float | None = None
    dt_ms: float | None = None

    def check(self) -> StudyConfig:
        if self.task not in TASKS:
            raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "ncdi" and self.n_contexts is None:
            raise ValueError("--task ncdi needs --contexts N (2..6)")
        if self.task != "ncdi" and self.n_contexts is not None:
            raise ValueError(f"--contexts is for --task ncdi, not {self.task}")
        for r in self.rules:
            if r not in RULES:
                raise ValueError(f"unknown rule {r!r} in --rules; choose from {', '.join(RULES)}")
        for b in self.bodies:
            if b not in BODIES:
                raise ValueError(f"unknown body {b!r} in --bodies; choose from {', '.join(BODIES)}")
        _refuse_duplicates(self.rules, "--rules")
        _refuse_duplicates(self.bodies, "--bodies")
        for r, n in self.steps.items():
            if r not in self.rules:  # a typo (bpt=10) or a rule the command does not train would be ignored
                raise ValueError(f"--steps {r}={n}: this study trains no rule {r!r} (its rules: "
                                 f"{', '.join(self.rules)})")  # fmt: skip
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"--steps {r}=... must be a positive integer of steps, got {n!r}")
        if self.seed < 0:  # numpy's generators take non-negative seeds only
            raise ValueError(f"--seed must be >= 0, got {self.seed}")
        if self.nets < 2:
            raise ValueError(f"--nets must be >= 2 (silhouettes need several networks per rule), got {self.nets}")
        if not 0 < self.target_accuracy <= 1:
            raise ValueError(f"--target-accuracy must be in (0, 1], got {self.target_accuracy}")
        if self.eval_trials < 1 or self.analysis_trials < 2 or self.n_inits < 1:
            raise ValueError("eval_trials >= 1, analysis_trials >= 2 and n_inits >= 1 are needed")
        if self.tau_ms is not None and not self.tau_ms > 0:
            raise ValueError(f"--tau-ms must be > 0 ms, got {self.tau_ms}")
        if not 1 <= self.signature_probes <= 21:
            raise ValueError(f"signature_probes must be in [1, 21], got {self.signature_probes}")
        if not self.noise_var >= 0:
            raise ValueError(f"noise_var must be >= 0, got {self.noise_var}")
        # build the task here, before a study writes anything under its --out: whatever the task refuses
        # (e.g. N-CDI's 2..6 contexts) must not leave a config.json that refuses the corrected command
        try:
            make_task(self.model_copy(update={"dt_ms": None}))
        except ValueError as e:
            raise ValueError(f"--task {self.task}" + (f" --contexts {self.n_contexts}" if self.n_contexts else "")
                             + f": {e}") from None  # fmt: skip
        if self.dt_ms is not None:
            if not self.dt_ms > 0:
                raise ValueError(f"--dt-ms must be > 0 ms, got {self.dt_ms}")
            try:
                make_task(self)
            except ValueError as e:  # the task's timings (750 ms trial) must be whole numbers of steps
                raise ValueError(f"--dt-ms {self.dt_ms:g}: {e}") from None
        if self.tau_ms is not None and self.tau_ms <= step_ms(self):
            import warnings

            warnings.warn(f"--tau-ms {self.tau_ms:g} at the study's {step_ms(self):g} ms step gives alpha = 1 "
                          "(no leak), not McMahan et al.'s code (alpha = 0.1: --tau-ms 10 --dt-ms 1)",
                          stacklevel=2)  # fmt: skip
        return self

    def task_params(self, noise_var: float | None = None) -> dict[str, Any]:
        """The preset's task parameters (10 ms steps) with this study's noise, contexts and ``dt_ms``."""
        params: dict[str, Any] = {"noise_var": float(self.noise_var if noise_var is None else noise_var)}
        if self.dt_ms is not None:
            params["dt"] = float(self.dt_ms)
        if self.n_contexts is not None:
            params["n_contexts"] = int(self.n_contexts)
        return params


def _refuse_duplicates(values: Any, option: str) -> None:
    """One-line ``ValueError`` when ``option`` names a value twice (the same networks would be counted, scored
    and analysed twice)."""
    seen: set[Any] = set()
    for v in values:
        if v in seen:
            raise ValueError(f"{option} names {v:g} twice; give each once" if isinstance(v, float)
                             else f"{option} names {v!r} twice; give each once")  # fmt: skip
        seen.add(v)


@dataclass(frozen=True)
class Group:
    """Networks of one kind in a study: trained with ``rule`` on ``body`` (``source`` None), or derived
    from the networks of group ``source`` ("mirror": ``spikedyn.mirror`` twins; "ff_twin": full-FORCE
    spiking students taught by each parent). ``label`` names the group in plots and silhouettes."""

    name: str
    rule: str
    body: str
    label: str
    noise_var: float | None = None
    source: str | None = None
    derive: str | None = None


@dataclass
class Net:
    """One trained network of a study and where it came from."""

    id: str
    group: str
    label: str
    index: int
    model: Any = field(repr=False)
    accuracy: float | None
    steps: int | None
    run_dir: str | None
    reached: bool
    note: str = ""


def supported(rule: str, body: str) -> bool:
    """Whether the study can train ``body`` with ``rule`` (Hebbian: tanh rate units; full-FORCE from a
    random teacher: rate units — spiking full-FORCE needs a rate teacher, see the bodies study)."""
    return (rule, body) in RULE_SETTINGS


def rule_groups(cfg: StudyConfig) -> list[Group]:
    """The groups of ``study rules``: every rule on every body (one-line error for an unsupported pair)."""
    groups = []
    for body in cfg.bodies:
        for rule in cfg.rules:
            if not supported(rule, body):
                raise ValueError(f"the study cannot train {body} networks with {rule} (supported: "
                                 f"{', '.join(f'{r}/{b}' for r, b in RULE_SETTINGS)})")  # fmt: skip
            label = rule if len(cfg.bodies) == 1 else f"{rule}-{body}"
            groups.append(Group(name=f"{rule}-{body}", rule=rule, body=body, label=label))
    return groups


def noise_groups(levels: tuple[float, ...] = NOISE_LEVELS) -> list[Group]:
    """The groups of ``study noise``: BPTT rate networks at each input-noise variance (each level once; levels
    are told apart, and their groups named, to 6 significant digits)."""
    _refuse_duplicates([float(f"{v:g}") for v in levels], "--levels")
    return [Group(name=f"bptt-rate-noise{v:g}", rule="bptt", body="rate", label=f"noise {v:g}", noise_var=float(v))
            for v in levels]  # fmt: skip


def body_groups() -> list[Group]:
    """The groups of ``study bodies``: rate parents (BPTT), their mirror twins, full-FORCE spiking twins
    of the same parents, and LIF networks trained from scratch with BPTT and with e-prop."""
    return [
        Group(name="bptt-rate", rule="bptt", body="rate", label="rate parent (BPTT)"),
        Group(name="mirror", rule="mirror", body="lif", label="mirror twin", source="bptt-rate", derive="mirror"),
        Group(name="ff-twin", rule="full_force", body="lif", label="full-FORCE twin", source="bptt-rate",
              derive="ff_twin"),
        Group(name="bptt-lif", rule="bptt", body="lif", label="BPTT LIF"),
        Group(name="eprop-lif", rule="eprop", body="lif", label="e-prop LIF"),
    ]


# -- building and training ------------------------------------------------------------------------------
def step_ms(cfg: StudyConfig | None = None) -> float:
    """The study's time step in ms: ``cfg.dt_ms``, else the ``mcmahan2024`` preset's task step (10 ms)."""
    from ..learning import presets

    if cfg is not None and cfg.dt_ms is not None:
        return float(cfg.dt_ms)
    return float(presets.get("mcmahan2024").task_params["dt"])


def make_task(cfg: StudyConfig, noise_var: float | None = None) -> Any:
    from ..learning import presets

    return presets.get("mcmahan2024").task(cfg.task, **cfg.task_params(noise_var))


def init_seed(cfg: StudyConfig, index: int) -> int:
    """Network ``index``'s initialisation seed: the same for every gradient, Hebbian and full-FORCE rule (a
    paired design: rules differ, the initial weights' draws do not). The genetic algorithm's network ``i``
    starts from a generation of its own, drawn from ``init_seed(cfg, 1000 + i * GA_POPULATION + j)``, so it
    shares no initialisation with network ``i`` of the other rules."""
    return int(cfg.seed) * 100_003 + int(index)


def build_net(task: Any, body: str, rule: str, seed: int, tau_ms: float | None = None) -> Any:
    """An untrained network: McMahan et al.'s rate net (``mcmahan2024`` preset; ``tau_ms`` replaces its time
    constant, e.g. 10 ms as in McMahan et al.'s code) or a 50-unit LIF net."""
    import dataclasses

    import torch

    from ..learning import presets
    from ..models import SpikingRNN

    preset = presets.get("mcmahan2024")
    if tau_ms is not None:
        preset = dataclasses.replace(preset, tau_ms=float(tau_ms))
    if body == "rate":
        return preset.build_model(task, seed=seed, rule=rule)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SpikingRNN(task.n_inputs, preset.hidden, task.n_outputs, dt=task.dt, **LIF_PARAMS)


def make_rule_object(rule: str, settings: dict[str, Any]) -> Any:
    from ..learning.rules import make_rule

    return make_rule(rule, **settings.get("rule_kwargs", {}))


def population_capable(rule: str, body: str, task: str = "rdm") -> bool:
    """Whether the study trains the ``body`` networks of ``rule`` as one ``Population`` (one batched run), as
    the rule declares: ``trains_members = True`` (BPTT, Hebbian, full-FORCE) trains every member as its own
    network. Rules without it (e-prop, RFLO) and the genetic algorithm (``trains_population``: a population
    is one search) get one network at a time. Nothing is tried and no error is taken as an answer."""
    rule_obj = make_rule_object(rule, rule_settings(rule, body, task))
    return bool(getattr(rule_obj, "trains_members", False)) and not getattr(rule_obj, "trains_population", False)


def _train_kwargs(cfg: StudyConfig, rule: str, body: str) -> dict[str, Any]:
    s = rule_settings(rule, body, cfg.task)
    s.pop("rule_kwargs", None)
    if rule in cfg.steps:
        s["steps"] = int(cfg.steps[rule])
    return {**s, "eval_trials": cfg.eval_trials, "target_accuracy": cfg.target_accuracy}


def train_group(cfg: StudyConfig, group: Group, out: Path, parents: list[Net] | None = None,
                progress: bool = True) -> list[Net]:
    """Train (or read back) the ``cfg.nets`` networks of ``group`` under ``out/nets/<group>/``: one
    ``Population`` run there for a rule that trains members (``population_capable``), else one run directory
    ``net-NN`` per network. A network whose training diverges is recorded with ``model`` None and a
    ``diverged`` note; when a Population run diverges (one member's NaN stops it all), its group is trained
    one by one instead (each network alone is trained as the Population trains its member: the same
    initialisation, batches and rule), so that only the diverging networks are lost and a resumed study does
    not diverge again."""
    from ..learning.train import TrainingDiverged, train
    from ..progress import track

    task = make_task(cfg, group.noise_var)
    root = Path(out) / "nets" / group.name
    if group.derive is not None:
        return _derive_group(cfg, group, task, root, parents or [], progress)
    kwargs = _train_kwargs(cfg, group.rule, group.body)
    settings = rule_settings(group.rule, group.body, cfg.task)
    # a Population run that diverged leaves its group to be trained one by one (run directories net-NN beside
    # the Population's files): their presence says so on resume, so the Population does not diverge again
    if population_capable(group.rule, group.body, cfg.task) and not (root / "net-00").exists():
        from ..models.population import Population

        pop = Population.stack([build_net(task, group.body, group.rule, init_seed(cfg, i), cfg.tau_ms)
                                 for i in range(cfg.nets)])  # fmt: skip
        rule_obj = make_rule_object(group.rule, settings)
        try:
            result = train(pop, task, rule=rule_obj, seed=cfg.seed, run_dir=root, progress=progress, **kwargs)
        except TrainingDiverged as e:  # one member's NaN stops the whole Population: train each on its own
            import warnings

            warnings.warn(f"study {group.name}: the Population run diverged ({e}); training its {cfg.nets} "
                          "networks one by one (a diverging one is recorded as diverged)", stacklevel=2)  # fmt: skip
        else:
            accs = result.final.get("member_accuracy") or [None] * cfg.nets
            steps = member_stop_steps(result.history, cfg.target_accuracy, cfg.nets)
            return [Net(id=f"{group.name}/{i}", group=group.name, label=group.label, index=i, model=pop.member(i),
                        accuracy=accs[i], steps=steps[i], run_dir=str(root), reached=_reached(accs[i], cfg))
                    for i in range(cfg.nets)]  # fmt: skip
    nets = []
    for i in track(range(cfg.nets), f"study {group.name}", unit="net", enabled=progress):
        run_dir = root / f"net-{i:02d}"
        if group.rule == "ga":
            from ..models.population import Population

            size = int(settings["rule_kwargs"]["population"])
            seeds = [init_seed(cfg, 1000 + i * GA_POPULATION + j) for j in range(size)]
            model = Population.stack([build_net(task, group.body, group.rule, s, cfg.tau_ms) for s in seeds])
        else:
            model = build_net(task, group.body, group.rule, init_seed(cfg, i), cfg.tau_ms)
        rule_obj = make_rule_object(group.rule, settings)
        try:
            result = train(model, task, rule=rule_obj, seed=cfg.seed, run_dir=run_dir, progress=False, **kwargs)
        except TrainingDiverged as e:
            nets.append(Net(id=f"{group.name}/{i}", group=group.name, label=group.label, index=i, model=None,
                            accuracy=None, steps=None, run_dir=str(run_dir), reached=False,
                            note=f"diverged: {e}"))  # fmt: skip
            continue
        acc = result.final.get("accuracy")
        nets.append(Net(id=f"{group.name}/{i}", group=group.name, label=group.label, index=i, model=result.model,
                        accuracy=acc, steps=result.history[-1]["step"] if result.history else None,
                        run_dir=str(run_dir), reached=_reached(acc, cfg)))  # fmt: skip
    return nets


def member_stop_steps(history: list[dict[str, Any]], target: float, n: int) -> list[int | None]:
    """Each member's own stop step in a ``Population`` run's ``history`` (``train``'s records, as in its
    ``metrics.jsonl``): the first evaluation at which its held-out accuracy (``member_accuracy``) reached
    ``target`` (``train`` freezes it from then on), else the run's last step (None: no history)."""
    last = history[-1]["step"] if history else None
    stops: list[int | None] = [None] * n
    for r in history:
        for i, a in enumerate(r.get("member_accuracy") or []):
            if stops[i] is None and a is not None and a >= target:
                stops[i] = int(r["step"])
    return [last if s is None else s for s in stops]


def _reached(acc: float | None, cfg: StudyConfig) -> bool:
    return acc is not None and acc >= cfg.target_accuracy


def _derive_group(cfg: StudyConfig, group: Group, task: Any, root: Path, parents: list[Net],
                  progress: bool) -> list[Net]:
    """Mirror twins (no training) or full-FORCE spiking twins of each parent (a run directory each)."""
    from ..learning import evaluate
    from ..learning.full_force import FullForce
    from ..learning.train import EVAL_SEED_OFFSET, TrainingDiverged, _step_seed, sample_batch, train
    from ..models import mirror
    from ..progress import track

    nets = []
    for p in track(parents, f"study {group.name}", unit="net", enabled=progress):
        if p.model is None:
            continue
        twin = mirror(p.model, substeps=TWIN_SUBSTEPS)
        nid = f"{group.name}/{p.index}"
        if group.derive == "mirror":
            # evaluated as ``train`` evaluates every trained network: the same held-out trials and torch seed
            batch = sample_batch(task, cfg.eval_trials, cfg.seed, EVAL_SEED_OFFSET, split="test")
            acc = float(evaluate(twin, task, batch, seed=_step_seed(cfg.seed, -1))["accuracy"])
            nets.append(Net(id=nid, group=group.name, label=group.label, index=p.index, model=twin, accuracy=acc,
                            steps=0, run_dir=None, reached=_reached(acc, cfg)))  # fmt: skip
            continue
        run_dir = root / f"net-{p.index:02d}"
        rule = FullForce(teacher=p.model)
        kw = {**FF_TWIN_SETTINGS, **({"steps": int(cfg.steps["full_force"])} if "full_force" in cfg.steps else {}),
              "eval_trials": cfg.eval_trials, "target_accuracy": cfg.target_accuracy}  # fmt: skip
        try:
            result = train(twin, task, rule=rule, seed=cfg.seed, run_dir=run_dir, progress=False, **kw)
        except TrainingDiverged as e:
            nets.append(Net(id=nid, group=group.name, label=group.label, index=p.index, model=None, accuracy=None,
                            steps=None, run_dir=str(run_dir), reached=False, note=f"diverged: {e}"))  # fmt: skip
            continue
        acc = result.final.get("accuracy")
        nets.append(Net(id=nid, group=group.name, label=group.label, index=p.index, model=result.model,
                        accuracy=acc, steps=result.history[-1]["step"] if result.history else None,
                        run_dir=str(run_dir), reached=_reached(acc, cfg)))  # fmt: skip
    return nets


def recorded_config(record: dict[str, Any]) -> StudyConfig:
    """The ``StudyConfig`` a study recorded (``config.json`` / ``study.json``'s ``config``: JSON lists for
    the tuples)."""
    import json

    return StudyConfig.model_validate_json(json.dumps(record["config"]))


def load_study_nets(out: str | Path, ids: list[str] | None = None) -> dict[str, Net]:
    """The networks of the finished study in ``out``, read back read-only: nothing is trained, resumed or
    written (``train_group`` would resume an unfinished run). Rebuilt from what the study recorded, so for
    every kind (rules, noise, bodies, a contexts study's ``ncdi-N``): the groups of ``config.json``, each
    network's run directory, accuracy, steps and ``reached`` from ``study.json``; each trained model from its
    run's ``model.pt`` (``spikedyn.load_run``: ``weights_only``; a Population run's member by index), a
    mirror twin rebuilt from its parent (``mirror``, deterministic). ``ids``: only these networks (and the
    parents their twins need). Returns id -> ``Net`` (``model`` None for a network that diverged).

    Raises ``FileNotFoundError`` (one line) for a study or a network's run that is not finished."""
    from ..learning.checkpoint import load_json
    from ..models import mirror
    from ..models.population import Population
    from ..runs import load_run

    out = Path(out)
    for name in ("config.json", "study.json"):
        if not (out / name).is_file():
            raise FileNotFoundError(f"{out / name} not found: not a finished spikedyn study (run it to the end)")
    groups = {g["name"]: Group(**g) for g in load_json(out / "config.json")["groups"]}
    records = {n["id"]: n for n in load_json(out / "study.json")["nets"]}
    runs: dict[Path, Any] = {}  # a Population run's model.pt is read once for all its members
    nets: dict[str, Net] = {}

    def load(nid: str) -> Net:
        if nid in nets:
            return nets[nid]
        if nid not in records:
            raise KeyError(f"{out / 'study.json'} records no network {nid!r}")
        rec, (gname, index) = records[nid], nid.rsplit("/", 1)
        group, model = groups[gname], None
        if group.derive == "mirror":
            parent = load(f"{group.source}/{index}")
            model = None if parent.model is None else mirror(parent.model, substeps=TWIN_SUBSTEPS)
        elif not str(rec.get("note", "")).startswith("diverged"):
            run_dir = study_path(out, rec["run_dir"])
            if run_dir not in runs:
                runs[run_dir] = load_run(run_dir).model
            model = runs[run_dir]
            if isinstance(model, Population):  # trained member by member (the GA's model.pt holds one network)
                model = model.member(int(index))
        nets[nid] = Net(id=nid, group=gname, label=rec["label"], index=int(index), model=model,
                        accuracy=rec.get("accuracy"), steps=rec.get("steps"), run_dir=rec.get("run_dir"),
                        reached=bool(rec["reached"]), note=rec.get("note", ""))  # fmt: skip
        return nets[nid]

    for nid in records if ids is None else ids:
        load(nid)
    return {nid: nets[nid] for nid in (records if ids is None else ids)}


# -- analysis ---------------------------------------------------------------------------------------------
ANALYSIS_VERSION = 3  # cached analyses of an older version are completed or recomputed (analyse_net)
CONDITION_LEVELS = 10  # McMahan et al.'s SVCCA inputs: 10 coherences per context


def analysis_inputs(cfg: StudyConfig) -> Any:
    """Held-out noisy trials of the study's base task (``analysis_trials`` of them): they seed the
    fixed-point search of the topology graph and give the ``svcca_trials`` activity."""
    return make_task(cfg).sample(cfg.analysis_trials, np.random.default_rng([cfg.seed, 0x5C0A]), split="test")


def condition_inputs(task: Any, levels: int = CONDITION_LEVELS) -> np.ndarray:
    """McMahan et al.'s SVCCA inputs (their ``svcca_analysis.py``): ``levels`` noiseless constant
    coherences ``linspace(-0.1857, 0.1857)`` on the stream of each context in turn (that context's input
    on, the other streams 0), over the whole trial: ``[T, levels * n_contexts, I]``."""
    T, N = int(task.n_steps), int(task.n_streams)
    c = np.linspace(-task.coherence_max, task.coherence_max, int(levels))
    u = np.zeros((T, levels * N, task.n_inputs))
    for k in range(N):
        rows = slice(k * levels, (k + 1) * levels)
        if task.with_context:
            u[:, rows, k] = 1.0
            u[:, rows, N + k] = c
        else:
            u[:, rows, k] = c
    return u


def condition_activity(model: Any, task: Any) -> np.ndarray:
    """The activity ``[T * B, N]`` McMahan et al.'s SVCCA compares: on ``condition_inputs(task)``, from the
    initial state x0 = 0. Their x0 ~ N(0, 0.3) decays within about 30 of their 750 1-ms steps (a few per
    cent of the activity); at the preset's 10 ms steps and tau = 100 ms it would last a quarter of the 76
    steps and dominate the variance (measured in docs/comparison.md), so it is left out here (at every
    ``dt_ms``, so that studies stay comparable). Spiking
    bodies start from rest as always."""
    import copy

    import torch

    from ..analysis.similarity import activity

    m = copy.deepcopy(model)
    if hasattr(m, "x0_std"):
        m.x0_std = 0.0
    return activity(m, torch.as_tensor(condition_inputs(task))).astype(np.float32)


def _signature_states(model: Any, n: int, seed: int) -> np.ndarray:
    """McMahan et al.'s initial states of the fixed-point search (``FP_Analysis.FindZeros``): uniform in
    [-5, 5] per unit of ``x`` for rate bodies; for spiking bodies uniform in [0, 1] per unit of ``r̄``
    (spikes per substep, the rate-equivalent map's state)."""
    rng = np.random.default_rng([seed, 0xF1])
    if hasattr(model, "filtered_spikes"):
        return rng.uniform(0.0, 1.0, size=(n, model.n_hidden))
    return rng.uniform(-5.0, 5.0, size=(n, model.n_hidden))


def analyse_net(net: Net, u: Any, cfg: StudyConfig, cache: Path) -> dict[str, Any]:
    """One network's analyses (McMahan et al.'s code and ours, so that the docs can show both), cached in
    ``cache`` (``.npz``, plain arrays, ``version`` ``ANALYSIS_VERSION``):

    - ``activity`` ``[samples, N]``: on the noiseless condition inputs from x0 = 0 (``condition_activity``;
      their SVCCA);
      ``activity_trials``: on the noisy held-out trials ``u``;
    - ``sig_points_<j>``, ``sig_stable_<j>``: every fixed point at ``SIGNATURE_PROBES[j]`` (context 1 on
      for CDI / N-CDI), searched from ``n_inits`` uniform initial states (their topology embedding);
    - ``counts``, ``node_probe``, ``edges``, ``attractors_<j>``: the attractor-topology graph at the probes
      (``attractor_topology``, the search seeded from the trajectories on ``u``).
    """
    import torch

    from ..analysis.fixed_points import fixed_points
    from ..analysis.similarity import activity
    from ..analysis.topology import SIGNATURE_PROBES, attractor_topology, probe_input
    from ..atomic import atomic_write_npz

    path = Path(cache)
    task = make_task(cfg)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        version = int(arrays.get("version", 0))
        if version == ANALYSIS_VERSION:
            return arrays
        if version == 2:  # version 3 records the condition activity from x0 = 0; the rest is the same
            arrays.update(version=np.asarray(ANALYSIS_VERSION), activity=condition_activity(net.model, task))
            atomic_write_npz(path, **arrays)
            return arrays
    act = condition_activity(net.model, task)
    with torch.random.fork_rng(devices=[]):  # the body's random initial state: same seed, same activity
        torch.manual_seed(cfg.seed)
        act_trials = activity(net.model, u).astype(np.float32)
    states = _signature_states(net.model, cfg.n_inits, cfg.seed)
    sig = {}
    for j, p in enumerate(SIGNATURE_PROBES[: cfg.signature_probes]):
        fp = fixed_points(net.model, probe_input(net.model.n_in, p), n_inits=cfg.n_inits, states=states,
                          seed=cfg.seed, progress=False)  # fmt: skip
        sig[f"sig_points_{j}"] = fp.points.numpy().astype(np.float64)
        sig[f"sig_stable_{j}"] = fp.stable.numpy().astype(bool)
    topo = attractor_topology(net.model, probes=cfg.probes, inputs=u, n_inits=cfg.n_inits, seed=cfg.seed,
                              progress=False)  # fmt: skip
    arrays = {
        "version": np.asarray(ANALYSIS_VERSION), "activity": act, "activity_trials": act_trials,
        "sig_probes": np.asarray(SIGNATURE_PROBES[: cfg.signature_probes], dtype=np.float64), **sig,
        "probes": np.asarray(topo.probes, dtype=np.float64),
        "counts": np.asarray(topo.counts, dtype=np.int64), "node_probe": np.asarray(topo.node_probe, dtype=np.int64),
        "edges": np.asarray(topo.edges, dtype=np.int64).reshape(-1, 2),
        **{f"attractors_{j}": topo.attractors(j).detach().cpu().numpy().astype(np.float64)
           for j in range(len(topo.probes))},
    }  # fmt: skip
    atomic_write_npz(path, **arrays)
    return arrays


def topology_graph(arrays: dict[str, np.ndarray]) -> Any:
    """The ``Topology`` graph of a cached analysis (the per-probe fixed points are not kept: the distance
    between topologies needs only the probes, the attractors per probe and the edges)."""
    import torch

    from ..analysis.topology import Topology

    return Topology(probes=tuple(float(p) for p in arrays["probes"]), inputs=torch.zeros(0), fixed_points=(),
                    counts=tuple(int(c) for c in arrays["counts"]),
                    node_probe=tuple(int(j) for j in arrays["node_probe"]),
                    edges=tuple((int(a), int(b)) for a, b in arrays["edges"]))  # fmt: skip


def signature(arrays: dict[str, np.ndarray], n_neighbors: int = 3, n_points: int = 10) -> np.ndarray:
    """McMahan et al.'s topology embedding (``neighbour_signature``) of a cached analysis."""
    from ..analysis.topology import neighbour_signature

    probes = [float(p) for p in arrays["sig_probes"]]
    points = [arrays[f"sig_points_{j}"] for j in range(len(probes))]
    return neighbour_signature(points, probes, n_neighbors=n_neighbors, n_points=n_points)


# the distance matrices of a study: name -> what it is (docs/comparison.md)
DISTANCES = {
    "svcca": "1 - SVCCA on the noiseless condition inputs (McMahan et al.'s code)",
    "svcca_trials": "1 - SVCCA on noisy held-out trials",
    "topology": "Euclidean distance between nearest-neighbour input signatures (McMahan et al.'s code)",
    "topology_graph": "graph edit distance between attractor-topology graphs at the probes",
}


def distance_matrices(analyses: list[dict[str, Any]], progress: bool = False) -> dict[str, np.ndarray]:
    """The ``DISTANCES`` matrices between every pair of networks."""
    from scipy.spatial.distance import cdist

    from ..analysis.similarity import distance_matrix
    from ..analysis.topology import topology_distance_matrix

    sig = np.stack([signature(a) for a in analyses])
    return {
        "svcca": distance_matrix([np.asarray(a["activity"], dtype=np.float64) for a in analyses], "svcca",
                                 progress=progress),
        "svcca_trials": distance_matrix([np.asarray(a["activity_trials"], dtype=np.float64) for a in analyses],
                                        "svcca", progress=progress),
        "topology": cdist(sig, sig),
        "topology_graph": topology_distance_matrix([topology_graph(a) for a in analyses], progress=progress),
    }  # fmt: skip


def scores(D: dict[str, np.ndarray], labels: list[str], seed: int = 0) -> dict[str, Any]:
    """Per distance matrix: the silhouette on the matrix itself (``silhouette``, the paper's wording), the
    silhouette of its rows (``silhouette_rows``, what McMahan et al.'s code computes for SVCCA), per-label
    silhouettes and a 2-D MDS embedding."""
    from ..analysis.similarity import mds_embedding, silhouette, silhouette_by_label, silhouette_rows

    out: dict[str, Any] = {}
    several = len(set(labels)) > 1
    for name, M in D.items():
        out[name] = {
            "silhouette": float(silhouette(M, labels)) if several else None,
            "silhouette_rows": float(silhouette_rows(M, labels)) if several else None,
            "silhouette_by_label": silhouette_by_label(M, labels) if several else {},
            # all distances zero (e.g. every topology the same): every point is at the origin
            "mds": (np.asarray(mds_embedding(M, n_components=2, seed=seed)) if M.any()
                    else np.zeros((len(labels), 2))).tolist(),
        }
    return out


def one_vs_rest(D: np.ndarray, labels: list[str], which: str, rows: bool = False) -> float | None:
    """Silhouette of label ``which`` against all the others merged (e.g. Hebbian vs the rest); ``rows``:
    of the rows of ``D`` (``silhouette_rows``)."""
    from ..analysis.similarity import silhouette, silhouette_rows

    binary = [lab if lab == which else "rest" for lab in labels]
    if which not in labels or len(set(binary)) != 2:
        return None
    return float((silhouette_rows if rows else silhouette)(D, binary))


def twin_distances(D: np.ndarray, nets: list[Net], twin_group: str, parent_group: str) -> dict[str, Any] | None:
    """For each twin: its distance to its own parent and the mean distance to the other parents; the
    fraction of twins closer to their own parent than to the mean other parent."""
    index = {n.id: k for k, n in enumerate(nets)}
    own, other = [], []
    parents = [n for n in nets if n.group == parent_group]
    for t in (n for n in nets if n.group == twin_group):
        p = index.get(f"{parent_group}/{t.index}")
        if p is None or len(parents) < 2:
            continue
        i = index[t.id]
        own.append(float(D[i, p]))
        other.append(float(np.mean([D[i, index[q.id]] for q in parents if q.index != t.index])))
    if not own:
        return None
    own_a, other_a = np.asarray(own), np.asarray(other)
    return {"own_parent": float(own_a.mean()), "other_parents": float(other_a.mean()),
            "closer_to_own": float(np.mean(own_a < other_a)), "pairs": len(own)}  # fmt: skip


# -- the study --------------------------------------------------------------------------------------------
def relative_to_study(path: str | Path | None, out: str | Path) -> str | None:
    """``path`` as ``study.json`` records it: relative to the study's directory ``out`` (POSIX separators) when
    it lies inside it, so that a copied or moved study still names its own files; otherwise unchanged."""
    if path is None:
        return None
    p, root = Path(path), Path(out)
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(p)


def study_path(study_dir: str | Path, recorded: str | None) -> Path | None:
    """The file or directory a ``study.json`` in ``study_dir`` names: its paths are relative to ``study_dir``
    (``relative_to_study``); an absolute path (what older spikedyn versions recorded) is returned as it is."""
    if recorded is None:
        return None
    p = Path(recorded)
    return p if p.is_absolute() else Path(study_dir) / p


def _fixed(record: dict[str, Any]) -> dict[str, Any]:
    """The settings a study's networks depend on: all but ``include_failed`` (which networks are analysed),
    which a resumed study may change. The step budgets (``steps``) count: a finished network is not
    extended nor cut short, so a study resumes only with the budgets it recorded. A setting left at None
    counts as absent. Studies made by an older spikedyn (``study_version`` older or missing) do not resume:
    ``_check_out`` refuses them, as their defaults and seeds differ (see ``STUDY_VERSION``).

    What a study does not train does not count: ``study noise`` and ``study bodies`` fix their own rules
    (earlier code recorded the default ``rules`` there), and ``steps`` entries for rules the study does not
    train (earlier code accepted and ignored them) are left out, so such studies still resume."""
    cfg = {k: v for k, v in record.get("config", {}).items() if k != "include_failed" and v is not None}
    kind = str(record.get("kind", ""))
    trained = (("bptt",) if kind.startswith("noise_") else BODY_RULES if kind.startswith("bodies_")
               else tuple(cfg.get("rules", ())))  # fmt: skip
    if kind.startswith(("noise_", "bodies_")):
        cfg.pop("rules", None)
    steps = {r: n for r, n in (cfg.pop("steps", None) or {}).items() if r in trained}
    if steps:
        cfg["steps"] = steps
    return {**record, "config": cfg}


def _steps_text(steps: dict[str, int] | None) -> str:
    return " ".join(f"--steps {r}={n}" for r, n in sorted((steps or {}).items())) or "no --steps"


def _check_out(out: Path, record: dict[str, Any]) -> None:
    """Refuse a study directory made with other settings (resuming needs the same ones, step budgets
    included; only ``include_failed`` may change). ``config.json`` keeps the latest ``include_failed``."""
    from ..learning.checkpoint import load_json

    path = Path(out) / "config.json"
    if path.is_file():
        old = load_json(path)
        version = old.get("study_version")
        if not isinstance(version, int) or version < STUDY_VERSION:
            raise ValueError(f"{out} holds a study made by an older spikedyn (study version {version}, this one "
                             f"{STUDY_VERSION}); use a new --out")  # fmt: skip
        if _fixed(old) != _fixed(record):
            a, b = _fixed(old)["config"], _fixed(record)["config"]
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)) or ["groups"]
            if changed == ["steps"]:
                raise ValueError(f"{out} holds a study trained with other step budgets ({_steps_text(a.get('steps'))}"
                                 f", now {_steps_text(b.get('steps'))}): its networks are not retrained or extended; "
                                 "give the recorded --steps (config.json) or use another --out")  # fmt: skip
            raise ValueError(f"{out} holds a study with other settings ({', '.join(changed)}); use another --out")
    from ..atomic import atomic_write_json

    atomic_write_json(path, record)


def study_record(cfg: StudyConfig, groups: list[Group], kind: str) -> dict[str, Any]:
    """What a study's ``config.json`` records (``_check_out`` compares it on resume)."""
    return {"kind": kind, "study_version": STUDY_VERSION, "config": cfg.model_dump(mode="json"),
            "groups": [g.__dict__ for g in groups]}  # fmt: skip


class _FinishedRunFilter:
    """Drops ``train``'s "is a finished run ... --restart trains it again" notice: reading finished networks
    back is what a resumed study does, and ``study`` has no ``--restart``."""

    @staticmethod
    def filter(record: Any) -> bool:
        return "is a finished run" not in record.getMessage()


@contextmanager
def _quiet_finished_runs() -> Iterator[None]:
    import logging

    log, quiet = logging.getLogger("spikedyn.runs"), _FinishedRunFilter()
    log.addFilter(quiet)
    try:
        yield
    finally:
        log.removeFilter(quiet)


def silent(arrays: dict[str, Any]) -> bool:
    """Whether a network's cached analysis has constant activity on the condition inputs or on the noisy trials
    (a spiking net that stopped spiking): SVCCA is undefined for it."""
    return any(not np.ptp(np.asarray(arrays[k], dtype=np.float64), axis=0).any()
               for k in ("activity", "activity_trials"))  # fmt: skip


def _drop_silent(used: list[Net], analyses: list[dict[str, Any]]) -> tuple[list[Net], list[dict[str, Any]]]:
    """Leave silent networks (``silent``) out of the distances, with a note in ``study.json`` and one warning
    each, instead of stopping the whole study at its last stage."""
    import warnings

    keep = []
    for n, a in zip(used, analyses):
        if silent(a):
            n.note = "silent on the analysis inputs (constant activity): left out of the distances"
            warnings.warn(f"study: {n.id} is silent (constant activity on the analysis inputs); left out of the "
                          "distances", stacklevel=3)  # fmt: skip
        else:
            keep.append((n, a))
    return [n for n, _ in keep], [a for _, a in keep]


def run_groups(cfg: StudyConfig, groups: list[Group], out: Path, kind: str,
               progress: bool = True) -> dict[str, Any]:
    """Train, analyse and score the networks of ``groups``; write ``out/study.json``, ``out/distances.npz``
    and the figures under ``out/figures/``. Returns the study's summary (what ``study.json`` holds)."""
    from ..atomic import atomic_write_json
    from ..progress import track

    cfg.check()
    for g in groups:  # every group's task (its noise level) is built before anything is written under out
        make_task(cfg, g.noise_var)
    out = Path(out)
    _check_out(out, study_record(cfg, groups, kind))
    by_group: dict[str, list[Net]] = {}
    with _quiet_finished_runs():
        for g in groups:
            by_group[g.name] = train_group(cfg, g, out, parents=by_group.get(g.source or ""), progress=progress)
    nets = [n for g in groups for n in by_group[g.name]]
    used = [n for n in nets if n.model is not None and (n.reached or cfg.include_failed)]
    u = analysis_inputs(cfg).inputs
    analyses = [analyse_net(n, u, cfg, out / "analysis" / f"{n.id.replace('/', '-')}.npz")
                for n in track(used, "study analysis", unit="net", enabled=progress)]  # fmt: skip
    used, analyses = _drop_silent(used, analyses)
    labels = [n.label for n in used]
    empty = {k: np.zeros((0, 0)) for k in DISTANCES}
    D = distance_matrices(analyses, progress) if len(used) >= 2 else empty
    summary: dict[str, Any] = {
        "kind": kind, "study_version": STUDY_VERSION, "config": cfg.model_dump(mode="json"),
        "nets": [{"id": n.id, "label": n.label, "accuracy": n.accuracy, "steps": n.steps, "reached": n.reached,
                  "analysed": n in used, "run_dir": relative_to_study(n.run_dir, out),
                  **({"note": n.note} if n.note else {})}
                 for n in nets],
        "labels": labels, "ids": [n.id for n in used],
    }  # fmt: skip
    if len(used) >= 3 and len(set(labels)) > 1:
        summary["scores"] = scores(D, labels, seed=cfg.seed)
        if "hebbian" in labels:
            summary["hebbian_vs_rest"] = {**{k: one_vs_rest(D[k], labels, "hebbian") for k in D},
                                          **{f"{k}_rows": one_vs_rest(D[k], labels, "hebbian", rows=True) for k in D}}
        for twin in ("mirror", "ff-twin"):
            if any(n.group == twin for n in used):
                summary.setdefault("twins", {})[twin] = {k: twin_distances(D[k], used, twin, "bptt-rate") for k in D}
    summary["attractors"] = _attractor_counts(analyses, used, cfg.probes)
    from ..atomic import atomic_write_npz

    atomic_write_npz(out / "distances.npz", **{f"{k}_distance": D[k] for k in DISTANCES},
                     labels=np.asarray(labels, dtype=str), ids=np.asarray([n.id for n in used], dtype=str))
    if "scores" in summary:
        summary["figure"] = relative_to_study(plot_study(summary, D, out / "figures" / f"{kind}.png"), out)
    atomic_write_json(out / "study.json", summary)
    return summary


def _attractor_counts(analyses: list[dict[str, Any]], nets: list[Net], probes: tuple[float, ...]) -> dict[str, Any]:
    """Per label: the mean number of attractors at each probe input, and the fraction of networks with two
    or more attractors at zero input (McMahan et al.'s stable integrators; one attractor: transient)."""
    counts: dict[str, list] = {}
    for a, n in zip(analyses, nets):
        counts.setdefault(n.label, []).append(np.asarray(a["counts"], dtype=float))
    zero = [j for j, p in enumerate(probes) if abs(p) < 1e-12]
    out = {}
    for lab, v in counts.items():
        c = np.stack(v)
        out[lab] = {"mean_attractors": c.mean(axis=0).tolist(),
                    "stable_integrators": float(np.mean(c[:, zero[0]] >= 2)) if zero else None}  # fmt: skip
    return out


def run_rules(cfg: StudyConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """``spikedyn study rules`` (Fig. 1 of McMahan et al. 2024)."""
    return run_groups(cfg.check(), rule_groups(cfg), out, kind=f"rules_{cfg.task}", progress=progress)


def run_bodies(cfg: StudyConfig, out: Path, progress: bool = True) -> dict[str, Any]:
    """``spikedyn study bodies``: the rules study across bodies (beyond the paper). ``cfg``'s rules and bodies
    are set to what it trains (``BODY_RULES``, rate and LIF): ``steps`` may name those rules."""
    cfg = cfg.model_copy(update={"rules": BODY_RULES, "bodies": ("rate", "lif")})
    return run_groups(cfg.check(), body_groups(), out, kind=f"bodies_{cfg.task}", progress=progress)


def run_noise(cfg: StudyConfig, out: Path, levels: tuple[float, ...] = NOISE_LEVELS,
              progress: bool = True) -> dict[str, Any]:
    """``spikedyn study noise`` (Fig. 5): BPTT at each input-noise variance, labelled by the noise (``cfg``'s
    rules are set to BPTT's: ``steps`` may name ``bptt`` only)."""
    cfg = cfg.model_copy(update={"rules": ("bptt",)})
    return run_groups(cfg.check(), noise_groups(levels), out, kind=f"noise_{cfg.task}", progress=progress)


def run_contexts(cfg: StudyConfig, out: Path, contexts: tuple[int, ...] = (2, 3, 4, 5, 6),
                 progress: bool = True) -> dict[str, Any]:
    """``spikedyn study contexts`` (Fig. 2): the rules study on N-CDI for each N (its own sub-directory
    ``out/ncdi-N``), and the silhouettes against N (``cfg.n_contexts`` is ignored: ``contexts`` gives the Ns).

    Resumable as the other studies: ``out/config.json`` records the settings shared by every N (another
    invocation with other settings is refused), and the sub-studies of every N run in ``out`` with them stay
    listed: ``--contexts 2,3`` and then ``--contexts 4`` leave a trend over N = 2, 3, 4 (a listed N run with
    another ``include_failed`` is scored again, its networks and analyses read back)."""
    from ..atomic import atomic_write_json
    from ..learning.checkpoint import load_json

    out = Path(out)
    _refuse_duplicates(tuple(int(n) for n in contexts), "--contexts")
    subs = {int(n): cfg.model_copy(update={"task": "ncdi", "n_contexts": int(n)}).check() for n in contexts}
    base = cfg.model_copy(update={"task": "ncdi", "n_contexts": None})
    groups = rule_groups(next(iter(subs.values())))
    _check_out(out, study_record(base, groups, "contexts"))
    listed: dict[int, Path] = {}
    if (out / "study.json").is_file():  # Ns an earlier invocation ran here (their paths as study.json gives them)
        for n, path in (load_json(out / "study.json").get("studies") or {}).items():
            if int(n) not in subs and study_path(out, path).is_file():
                listed[int(n)] = study_path(out, path).parent
    per_n: dict[int, dict[str, Any]] = {}
    for n, sub in subs.items():  # in the order given
        per_n[n] = run_groups(sub, rule_groups(sub), out / f"ncdi-{n}", kind=f"rules_ncdi{n}", progress=progress)
    for n, sub_dir in listed.items():
        sub = cfg.model_copy(update={"task": "ncdi", "n_contexts": n}).check()
        summary = load_json(sub_dir / "study.json")
        same = summary.get("config") == sub.model_dump(mode="json") and summary.get("study_version") == STUDY_VERSION
        per_n[n] = summary if same else run_groups(sub, rule_groups(sub), sub_dir, kind=f"rules_ncdi{n}",
                                                   progress=progress)  # fmt: skip
    per_n = dict(sorted(per_n.items()))  # reported by N
    trend = {"contexts": list(per_n),
             **{f"{k}_{kind}": [s.get("scores", {}).get(k, {}).get(kind) for s in per_n.values()]
                for k in DISTANCES for kind in ("silhouette", "silhouette_rows")}}  # fmt: skip
    summary = {"kind": "contexts", "study_version": STUDY_VERSION, "config": base.model_dump(mode="json"),
               "contexts": list(per_n), "trend": trend,
               "studies": {n: relative_to_study(listed.get(n, out / f"ncdi-{n}") / "study.json", out)
                           for n in per_n}}  # fmt: skip
    summary["figure"] = relative_to_study(plot_trend(trend, out / "figures" / "contexts.png", rules=cfg.rules), out)
    atomic_write_json(out / "study.json", summary)
    return summary


# -- figures ------------------------------------------------------------------------------------------------
def _colors(labels: list[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {lab: cmap(i % 10) for i, lab in enumerate(dict.fromkeys(labels))}


def plot_study(summary: dict[str, Any], D: dict[str, np.ndarray], path: Path) -> Path:
    """Distance matrices (sorted by label), MDS embeddings coloured by label and silhouettes in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_save_figure

    labels = summary["labels"]
    colors = _colors(labels)
    order = np.argsort([list(colors).index(lab) for lab in labels], kind="stable")
    titles = {"svcca": "1 - SVCCA, condition inputs", "svcca_trials": "1 - SVCCA, noisy trials",
              "topology": "topology: neighbour signatures", "topology_graph": "topology: graph edit distance"}
    keys = [k for k in titles if k in D and k in summary["scores"]]
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 3.6 * len(keys)), squeeze=False)
    for r, key in enumerate(keys):
        M = D[key][np.ix_(order, order)]
        ax = axes[r, 0]
        im = ax.imshow(M, cmap="viridis")
        fig.colorbar(im, ax=ax, fraction=0.046)
        bounds = np.cumsum([sum(1 for lab in labels if lab == g) for g in colors])[:-1] - 0.5
        for b in bounds:
            ax.axhline(b, color="r", lw=0.8)
            ax.axvline(b, color="r", lw=0.8)
        ax.set_title(f"{titles[key]}: distances", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        ax = axes[r, 1]
        emb = np.asarray(summary["scores"][key]["mds"])
        jitter = len(np.unique(emb.round(9), axis=0)) < len(emb)  # identical topologies overlap exactly
        if jitter:
            spread = float(np.ptp(emb)) or 1.0
            emb = emb + 0.02 * spread * np.random.default_rng(0).standard_normal(emb.shape)
        for lab, c in colors.items():
            idx = [i for i, x in enumerate(labels) if x == lab]
            ax.scatter(emb[idx, 0], emb[idx, 1], color=c, s=18, label=lab, alpha=0.8)
        sc = summary["scores"][key]
        ax.set_title(f"MDS; silhouette {sc['silhouette']:+.2f} on D, {sc['silhouette_rows']:+.2f} on rows"
                     f"{', jittered' if jitter else ''}", fontsize=9)  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=7)
    cfg = summary["config"]
    task = cfg["task"] + (f" ({cfg['n_contexts']} contexts)" if cfg.get("n_contexts") else "")
    fig.suptitle(f"{summary['kind']}: {len(labels)} networks on {task} (McMahan et al. 2024 style)", fontsize=10)
    fig.tight_layout()
    return atomic_save_figure(fig, Path(path))


def plot_trend(trend: dict[str, Any], path: Path, rules: tuple[str, ...] = ("bptt", "ga")) -> Path:
    """Silhouettes (representation, topology) against the number of N-CDI contexts (Fig. 2c, e)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_save_figure

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    x = trend["contexts"]
    lines = (("svcca", "silhouette_rows", "representation (SVCCA), rows of D", "C0", "o-"),
             ("svcca", "silhouette", "representation (SVCCA), on D", "C0", "o--"),
             ("topology", "silhouette", "attractor topology (signature)", "C1", "s-"))  # fmt: skip
    for key, kind, label, color, style in lines:
        y = [math.nan if v is None else v for v in trend.get(f"{key}_{kind}", [])]
        if y:
            ax.plot(x, y, style, color=color, label=label)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("contexts N (N-CDI)")
    ax.set_ylabel(f"silhouette ({' vs '.join(rules)})")
    ax.legend(fontsize=8)
    ax.set_title("McMahan et al. 2024 Fig. 2c,e: silhouette vs task complexity", fontsize=9)
    fig.tight_layout()
    return atomic_save_figure(fig, Path(path))


def copy_config(cfg: StudyConfig, **update: Any) -> StudyConfig:
    return copy.deepcopy(cfg).model_copy(update=update)


__all__ = [
    "BODIES", "BODY_RULES", "CONDITION_LEVELS", "DISTANCES", "FF_TWIN_SETTINGS", "GA_POPULATION_CONTEXTS",
    "Group", "LIF_PARAMS",
    "NOISE_LEVELS", "Net", "PROBES", "RULES", "RULE_SETTINGS", "STUDY_VERSION", "StudyConfig", "TASKS", "analyse_net",
    "body_groups",
    "condition_activity", "condition_inputs", "distance_matrices", "noise_groups", "one_vs_rest", "plot_study",
    "plot_trend", "population_capable", "rule_groups", "rule_settings", "run_bodies", "run_contexts", "run_groups",
    "load_study_nets", "member_stop_steps", "recorded_config", "relative_to_study", "run_noise", "run_rules",
    "scores", "signature", "silent", "study_path", "study_record", "supported", "train_group",
    "twin_distances",
]  # fmt: skip
