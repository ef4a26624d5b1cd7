"""The genetic algorithm of McMahan et al. 2024 (Sec. 2.3), after Such et al. 2017.

Generation zero is ``population`` random networks (50). Each training step is one generation: the loss
of every member on the step's batch (500 trials in the paper) comes from one batched ``Population``
rollout; the ``parents`` lowest-loss members (5) are kept unchanged, and ``children`` new members (50)
are each a uniformly chosen parent plus Gaussian noise on every weight matrix. ``train`` evaluates the
best member of the generation just scored on the validation trials and stops at the target accuracy
(90 % on 2,000 trials in the paper); the result is that best member.

The noise: the paper writes ``N(0, 0.005)``, which could be a variance (as its initial distributions,
e.g. ``W_rec ~ N(0, g^2/N)``, are written) or a standard deviation. The default is the standard
deviation (``sigma_is="std"``): the GA the paper cites (Such et al. 2017) mutates by ``theta + sigma eps``,
``eps ~ N(0, I)``, with ``sigma`` a standard deviation, and on rdm the standard-deviation reading reached
90 % on 2,000 validation trials in 95 generations while the variance reading (std 0.071, half the spread
of ``W_rec``'s entries) stalled at 83-90 % for 205 generations (``docs/training.md``).
``sigma_is="variance"`` is the other reading.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .regularizers import as_regularizer, population_outputs_and_penalty
from .rules import batch_tensors, is_population, member_losses

SIGMA_IS = ("variance", "std")
PERTURB = ("weights", "all")


@dataclass
class GA:
    """Genetic algorithm on a ``Population`` (one generation per training step).

    Args:
        population: size of generation zero (McMahan et al.: 50). A ``Population`` given to ``train``
            is generation zero itself (its size wins); a single model becomes member 0 of generation
            zero, the others rebuilt from its config under seeds drawn from ``train``'s seed (the
            body's own initialisation: pass a Population to choose theirs, e.g. a preset's).
        parents: members kept per generation, the lowest-loss ones (5).
        children: new members per generation (50): a random parent + noise.
        sigma: the noise level 0.005, read as ``sigma_is`` ("std", default, or "variance").
        perturb: "weights" (every weight matrix ``W_*``, as the paper) or "all" (every trainable tensor).
        chunk: trials per batched rollout when scoring a generation. 100 keeps a generation's [E, chunk, N]
            state arrays cache-sized: 1.2-1.6x faster than 500 on a CPU (``benchmarks/rules_accuracy.py
            --time-generation``). Each chunk draws its own initial states, so the chunk is part of the
            random stream (a run is reproducible for a given chunk).
    """

    population: int = 50
    parents: int = 5
    children: int = 50
    sigma: float = 0.005
    sigma_is: str = "std"
    perturb: str = "weights"
    chunk: int = 100
    regularizer: dict | None = None  # firing-rate term added to each member's loss (learning/regularizers.py)

    name = "ga"
    trains_population = True

    def __post_init__(self) -> None:
        if self.sigma_is not in SIGMA_IS:
            raise ValueError(f"ga sigma_is must be one of {list(SIGMA_IS)}, got {self.sigma_is!r}")
        if self.perturb not in PERTURB:
            raise ValueError(f"ga perturb must be one of {list(PERTURB)}, got {self.perturb!r}")
        for key in ("population", "parents", "children", "chunk"):
            value = getattr(self, key)
            if int(value) != value or value < 1:
                raise ValueError(f"ga {key} must be a positive integer, got {value!r}")
        if self.parents > self.population:
            raise ValueError(f"ga needs parents <= population, got {self.parents} > {self.population}")
        if not self.sigma > 0:
            raise ValueError(f"ga sigma must be > 0, got {self.sigma}")

    @property
    def noise_std(self) -> float:
        """Standard deviation of the children's noise."""
        return math.sqrt(self.sigma) if self.sigma_is == "variance" else float(self.sigma)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v for k, v in asdict(self).items() if v is not None or k != "regularizer"}}

    # -- the Rule protocol ----------------------------------------------------------------------------
    def init_state(self, model: nn.Module, task: Any, *, seed: int) -> dict:
        from spikedyn.models.population import Population

        if is_population(model):
            zero = model
        else:
            from spikedyn.models import from_config

            from .rules import seed_of

            cfg = model.config()
            others = Population.init(lambda: from_config(cfg), self.population - 1, seed=seed_of(seed, 0, 0x6A))
            zero = Population.stack([model, *(others.member(i) for i in range(others.size))])
            zero = zero.to(device=model.W_out.device, dtype=model.W_out.dtype)
        if zero.size < self.parents:
            raise ValueError(f"ga needs at least parents={self.parents} members in generation zero, got {zero.size}")
        return {
            "population": {k: v.detach().clone() for k, v in zero.state_dict().items()},
            "configs": list(zero.member_configs),
            "generation": 0,
            "loss_kind": getattr(task, "loss", "mse"),
            "best": None,
            "best_config": None,
        }

    def generation(self, state: dict) -> Any:
        """The current (not yet scored) generation as a ``Population``."""
        from spikedyn.models.population import Population

        return Population.from_tensors(state["configs"], state["population"])

    @torch.no_grad()
    def update(self, model: nn.Module, batch: Any, state: dict, *, step: int) -> dict:
        """Score the current generation on ``batch``, keep its best, and breed the next one."""
        pop = self.generation(state)
        u, target, mask = batch_tensors(pop, batch)
        # outputs and the firing-rate term from one rollout (the rate term: only with a regulariser)
        y, penalty = population_outputs_and_penalty(as_regularizer(self.regularizer), pop, u, self.chunk)
        losses = member_losses(y, target, mask, state["loss_kind"]).double() + penalty
        losses = torch.where(torch.isfinite(losses), losses, torch.full_like(losses, math.inf))
        parents = torch.argsort(losses, stable=True)[: self.parents]
        best = int(parents[0])
        tensors = state["population"]
        state["best"] = {k: v[best].clone() for k, v in tensors.items() if k != "noise_std"}
        state["best_config"] = dict(state["configs"][best])
        if not is_population(model):
            _load_member(model, state["best"])
        picks = parents[torch.randint(self.parents, (self.children,))]
        keep = torch.cat([parents, picks])
        trainable = {n for n, p in pop.named_parameters() if p.requires_grad}
        perturbed = {n for n in trainable if self.perturb == "all" or n.startswith("W_")}
        children = {}
        for name, t in tensors.items():
            nxt = t[keep.to(t.device)].clone()
            if name in perturbed:
                nxt[self.parents :] += self.noise_std * torch.randn_like(nxt[self.parents :])
            children[name] = nxt
        state["population"] = children
        state["configs"] = [dict(state["configs"][int(i)]) for i in keep]
        state["generation"] += 1
        finite = losses[torch.isfinite(losses)]
        return {"loss": float(losses[best]), "mean_loss": float(finite.mean()) if len(finite) else math.inf,
                "generation": state["generation"] - 1, "population": pop.size}  # fmt: skip

    def result_model(self, model: nn.Module, state: dict) -> nn.Module:
        """The best member of the last scored generation (``model`` itself when it is one network)."""
        if not is_population(model):
            return model
        from spikedyn.models.population import _quiet_from_config

        if state.get("best") is None:
            return model.member(0)
        member = _quiet_from_config(state["best_config"]).to(device=model.device, dtype=model.dtype)
        _load_member(member, state["best"])
        return member


@torch.no_grad()
def _load_member(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    model.load_state_dict({k: tensors[k].to(own[k]) for k in own})
