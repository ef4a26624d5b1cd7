"""``spikedyn.Population``: E networks of one body and shape, held as stacked parameters and rolled out
as one batched body (one forward and one backward for all members, no Python loop over members).

Every parameter and buffer of the member body gets a leading member axis: ``W_in [E, N, I]``,
``W_rec [E, N, N]``, ``b [E, N]``, ``W_out [E, O, N]``, ``b_out [E, O]`` (GRU: ``[E, 3N, ...]``), under
the member's own names, so ``pop.W_rec[i]`` is member i's recurrent matrix. A rollout returns
``Rollout(y [E, T, B, O], r [E, T, B, N], state)``; the input ``u [T, B, I]`` is shared by all members
(common random numbers) or given per member as ``[E, T, B, I]``.

The members' own step equations run on the stacked tensors:

- ``SpikingRNN``: ``spiking_substep`` (the one LIF/ALIF map) with ``[E, B, N]`` states;
- ``RateRNN``: the Euler map of ``rate.py`` with the activation of ``rate.ACTIVATIONS``, recurrence
  in a fused ``autograd.Function`` (forward without autograd, backward by the adjoint recursion
  below, checked against autograd through each member in ``tests/test_population.py``);
- any other body (``GRURNN``, ``LSTMRNN``): the body's own ``step`` under ``torch.func.vmap``.

Common random numbers: the initial state ``x_0`` and the recurrent noise are drawn exactly as a lone
``RateRNN.forward`` draws them (same calls, same shapes) and shared by all members, each member scaling
the noise by its own ``noise_std``. So member i of a population sees the same trials and the same noise
as the same model run alone with the same torch seed.

Rate recurrence (``alpha = dt / tau``), with the noise folded into the drive ``d_t = W_in u_t + b +
sqrt(2 alpha) sigma xi_t / alpha``::

    x_{t+1} = (1 - alpha) x_t + alpha (W_rec f(x_t) + d_t),     r_t = f(x_t)
    lam_t   = f'(x_t) (g_t + alpha lam_{t+1} W_rec) + (1 - alpha) lam_{t+1}      (lam_t = dL/dx_t)
    dL/dd_t = alpha lam_{t+1},    dL/dW_rec = alpha sum_t lam_{t+1}^T f(x_t)
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .base import RecurrentModel, Rollout
from .rate import RateRNN, activation_fn
from .spiking import SpikingRNN, SpikingState, spiking_substep

# constructor arguments that may differ between members (all others must be equal)
PER_MEMBER = ("gain", "noise_std")

# f'(x) written in terms of r = f(x), so the fused backward only keeps the rates
_DERIVATIVE_FROM_OUTPUT: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": lambda r: 1.0 - r * r,
    "shifted_tanh": lambda r: r * (2.0 - r),
    "relu": lambda r: (r > 0).to(r.dtype),
    "softplus": lambda r: -torch.expm1(-r),  # sigmoid(x) = 1 - exp(-softplus(x))
}


class _RatePopulationBPTT(torch.autograd.Function):
    """The whole rate rollout of a population, one time step of [E, B, N] blocks at a time (cache-sized:
    on a CPU the big [E, T, B, N] tensors of a layer-by-layer rollout cost more in memory traffic than
    in arithmetic). Inputs: x0 [E,B,N], u [T,B,I] (shared) or [E,T,B,I], noise drive xi [T,B,N] and its
    per-member scale [E] (or None), the stacked weights; outputs y [E,T,B,O], r [E,T,B,N], x_T [E,B,N].
    Forward: the Euler map of ``RateRNN``; backward: the adjoint recursion of the module doc.

    The recurrent and input drives are one batched GEMM per step: ``[r_t | u_t | 1] [W_rec | W_in | b]^T``
    (so their three gradients are one GEMM per step too)."""

    @staticmethod
    def forward(ctx, x0, u, xi, scale, W_in, b, W_rec, W_out, b_out, alpha, activation):  # type: ignore[override]
        f = activation_fn(activation)
        E, B, N = x0.shape
        T, I = u.shape[-3], u.shape[-1]
        Z = x0.new_empty((E, T + 1, B, N + I + 1))  # [r_t | u_t | 1]
        Z[:, :T, :, N : N + I] = u if u.dim() == 4 else u[None]
        Z[:, :, :, N + I] = 1.0
        Z[:, T, :, N:] = 0.0
        W_ext_T = torch.cat([W_rec, W_in, b[..., None]], dim=-1).mT.contiguous()  # [E, N+I+1, N]
        y = x0.new_empty((E, T, B, W_out.shape[1]))
        W_outT, b_out = W_out.mT, b_out[:, None]
        x = x0
        Z[:, 0, :, :N] = f(x)
        for t in range(T):
            if xi is None:
                pre = torch.bmm(Z[:, t], W_ext_T)
            else:
                pre = torch.baddbmm(xi[t] * scale[:, None, None], Z[:, t], W_ext_T)
            x = pre if alpha == 1.0 else torch.lerp(x, pre, alpha)  # (1 - alpha) x + alpha pre
            r = f(x)
            Z[:, t + 1, :, :N] = r
            torch.baddbmm(b_out, r, W_outT, out=y[:, t])
        ctx.save_for_backward(Z, W_rec, W_out)
        ctx.alpha, ctx.activation, ctx.n_in = alpha, activation, I
        return y, Z[:, 1:, :, :N], x

    @staticmethod
    def backward(ctx, g_y, g_r, g_x):  # type: ignore[override]
        Z, W_rec, W_out = ctx.saved_tensors
        alpha, fprime = ctx.alpha, _DERIVATIVE_FROM_OUTPUT[ctx.activation]
        E, T1, B, K = Z.shape
        T, N = T1 - 1, W_rec.shape[-1]
        dW_ext = Z.new_zeros((E, N, K))  # [dW_rec | dW_in | db]
        dW_out = torch.zeros_like(W_out)
        db_out = W_out.new_zeros(W_out.shape[:2])
        single_out = W_out.shape[1] == 1
        lam = None  # lam_{t+1} = dL/dx_{t+1}
        carry = None  # alpha lam_{t+1} = dL/dd_t
        for t in range(T, 0, -1):
            r_t = Z[:, t, :, :N]
            if g_y is not None:
                g_yt = g_y[:, t - 1]
                if single_out:  # outer products: elementwise beats a batched GEMM with a unit dimension
                    g = g_yt * W_out
                    dW_out[:, 0].add_((g_yt * r_t).sum(1))
                else:
                    g = torch.bmm(g_yt, W_out)
                    dW_out.baddbmm_(g_yt.mT, r_t)
                db_out.add_(g_yt.sum(1))
            else:
                g = torch.zeros_like(r_t)
            if g_r is not None:
                g = g + g_r[:, t - 1]
            if carry is not None:
                g.baddbmm_(carry, W_rec)
            g.mul_(fprime(r_t))
            if lam is not None:
                g.add_(lam, alpha=1.0 - alpha)
            if t == T and g_x is not None:
                g.add_(g_x)
            lam = g  # lam_t
            carry = alpha * lam  # dL/dd_{t-1}
            dW_ext.baddbmm_(carry.mT, Z[:, t - 1])
        g0 = torch.bmm(carry, W_rec).mul_(fprime(Z[:, 0, :, :N])).add_(lam, alpha=1.0 - alpha)
        I = ctx.n_in
        dW_rec, dW_in, db = dW_ext[..., :N], dW_ext[..., N : N + I], dW_ext[..., N + I]
        return g0, None, None, None, dW_in, db, dW_rec, dW_out, db_out, None, None


class _StepModule(nn.Module):
    """Wraps a body so that ``functional_call`` can run its ``step`` (and readout) with other weights."""

    def __init__(self, body: RecurrentModel) -> None:
        super().__init__()
        self.body = body

    def forward(self, state: Any, u_t: Tensor) -> tuple[Any, Tensor, Tensor]:
        state, r_t = self.body.step(state, u_t)
        return state, r_t, self.body.output(state)


def _quiet_from_config(cfg: dict[str, Any]) -> RecurrentModel:
    """``from_config`` without touching the global torch RNG (its random init is overwritten anyway)."""
    from . import from_config

    with torch.random.fork_rng(devices=[]):
        return from_config(cfg)


def _member_config(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k not in PER_MEMBER}


class Population(nn.Module):
    """E same-shaped networks as one batched body.

    Build one with ``Population.init(RateRNN, size=E, seed=0, n_in=..., ...)`` (member i initialised
    under ``torch.manual_seed(seeds[i])``, default ``seeds = seed, seed + 1, ...``) or with
    ``Population.stack(models)``; ``pop.member(i)`` returns a standalone model with member i's weights.
    Members may differ in ``gain`` and ``noise_std`` (``per_member``) and carry their own learning rate
    ``pop.lr`` (None: the one given to ``train``).
    """

    kind = "population"

    def __init__(self, models: Sequence[RecurrentModel], lr: Sequence[float] | None = None) -> None:
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("a Population needs at least one member model")
        first = models[0]
        if not isinstance(first, RecurrentModel):
            raise TypeError(f"Population members must be spikedyn models, got {type(first).__name__}")
        base = _member_config(first.config())
        for i, m in enumerate(models):
            if type(m) is not type(first) or _member_config(m.config()) != base:
                raise ValueError(
                    f"member {i} differs from member 0 in body or shape; a Population stacks networks of one "
                    f"body whose constructor arguments agree except {list(PER_MEMBER)}"
                )
        if isinstance(first, SpikingRNN) and first.quantize:
            raise ValueError("a Population runs float bodies; build it from models with quantize=None")
        self._setup(first, [m.config() for m in models], {
            **{n: torch.stack([m.get_parameter(n).detach() for m in models]) for n, _ in first.named_parameters()},
            **{n: torch.stack([m.get_buffer(n) for m in models]) for n, _ in first.named_buffers()},
        }, lr)  # fmt: skip

    def _setup(self, template: RecurrentModel, configs: list[dict[str, Any]], tensors: dict[str, Tensor],
               lr: Sequence[float] | None) -> None:
        self.size = len(configs)
        self.member_configs = [dict(c) for c in configs]
        self.lr = None if lr is None else [float(v) for v in lr]
        if self.lr is not None and len(self.lr) != self.size:
            raise ValueError(f"lr has {len(self.lr)} values for {self.size} members")
        # a plain attribute, not a submodule: its hyper-parameters are used, its tensors are not
        object.__setattr__(self, "_template", copy.deepcopy(template))
        for name, p in template.named_parameters():
            self.register_parameter(name, nn.Parameter(tensors[name].clone(), requires_grad=p.requires_grad))
        for name, _ in template.named_buffers():
            self.register_buffer(name, tensors[name].clone())
        noise = [float(c.get("noise_std", 0.0)) for c in self.member_configs]
        self.register_buffer("noise_std", torch.tensor(noise, dtype=template.dtype, device=template.device))

    @classmethod
    def from_tensors(cls, configs: Sequence[dict[str, Any]], tensors: dict[str, Tensor],
                     lr: Sequence[float] | None = None) -> Population:
        """A Population with the given members' configs and stacked tensors (``state_dict()`` layout),
        without building the members (the genetic algorithm builds each generation this way)."""
        configs = list(configs)
        template = _quiet_from_config(configs[0])
        first = next(iter(tensors.values()))
        template = template.to(device=first.device, dtype=tensors["W_out"].dtype)
        pop = cls.__new__(cls)
        nn.Module.__init__(pop)
        pop._setup(template, configs, tensors, lr)
        return pop

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def stack(cls, models: Sequence[RecurrentModel], lr: Sequence[float] | None = None) -> Population:
        """A Population holding copies of ``models``' weights (all of one body and shape)."""
        return cls(models, lr=lr)

    @classmethod
    def init(
        cls,
        factory: Callable[..., RecurrentModel],
        size: int,
        *args: Any,
        seed: int = 0,
        seeds: Sequence[int] | None = None,
        per_member: dict[str, Sequence[Any]] | None = None,
        lr: Sequence[float] | None = None,
        **kwargs: Any,
    ) -> Population:
        """E members ``factory(*args, **kwargs, **{k: per_member[k][i]})``, member i built under
        ``torch.manual_seed(seeds[i])`` (default ``seed + i``), so ``member(i)`` equals that model."""
        if int(size) != size or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        seeds = [int(seed) + i for i in range(size)] if seeds is None else [int(s) for s in seeds]
        per_member = dict(per_member or {})
        for key, values in [("seeds", seeds), *per_member.items()]:
            if len(values) != size:
                raise ValueError(f"{key} has {len(values)} values for {size} members")
        models = []
        for i in range(size):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seeds[i])
                models.append(factory(*args, **kwargs, **{k: v[i] for k, v in per_member.items()}))
        pop = cls(models, lr=lr)
        pop.seeds = seeds
        return pop

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Population:
        """An (untrained) Population from ``pop.config()``; load weights with ``load_state_dict``."""
        from . import from_config

        return cls([from_config(c) for c in cfg["members"]], lr=cfg.get("lr"))

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "n_in": self.n_in, "n_hidden": self.n_hidden,
                "n_out": self.n_out, "members": self.member_configs, "lr": self.lr}  # fmt: skip

    def member(self, i: int) -> RecurrentModel:
        """A standalone model with member i's weights (a copy)."""
        if not -self.size <= i < self.size:
            raise IndexError(f"member {i} out of range for a Population of {self.size}")
        model = _quiet_from_config(self.member_configs[i]).to(device=self.device, dtype=self.dtype)
        own = model.state_dict()
        model.load_state_dict({k: v[i] for k, v in self.state_dict().items() if k in own})
        return model

    def members(self) -> list[RecurrentModel]:
        return [self.member(i) for i in range(self.size)]

    def _apply(self, fn, recurse=True):  # keep the template on the population's device / dtype
        out = super()._apply(fn, recurse)
        self._template._apply(fn, recurse)
        return out

    @property
    def body(self) -> RecurrentModel:
        """The member body (a template: its hyper-parameters, not its weights, are used)."""
        return self._template

    @property
    def device(self) -> torch.device:
        return self.W_out.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_out.dtype

    @property
    def n_in(self) -> int:
        return self._template.n_in

    @property
    def n_hidden(self) -> int:
        return self._template.n_hidden

    @property
    def n_out(self) -> int:
        return self._template.n_out

    # -- rollout ----------------------------------------------------------------------------------
    def _check_input(self, u: Tensor) -> Tensor:
        u = torch.as_tensor(u).to(device=self.device, dtype=self.dtype)
        if u.dim() == 4 and u.shape[0] != self.size or u.dim() not in (3, 4) or u.shape[-1] != self.n_in:
            raise ValueError(
                f"input must have shape [T, B, {self.n_in}] (shared) or [{self.size}, T, B, {self.n_in}] "
                f"(per member), got {tuple(u.shape)}"
            )
        return u

    def _input_projection(self, u: Tensor, W: Tensor) -> Tensor:
        """``u W^T`` for every member: [E, T, B, N] from u [T, B, I] (shared) or [E, T, B, I]."""
        T, B, I = u.shape[-3:]
        if u.dim() == 3:
            u = u.reshape(1, T * B, I).expand(self.size, T * B, I)
        return torch.bmm(u.reshape(self.size, T * B, I), W.mT).view(self.size, T, B, -1)

    def _readout(self, r: Tensor) -> Tensor:
        """y [E, T, B, O] from unit outputs r [E, T, B, N]."""
        E, T, B, N = r.shape
        return torch.baddbmm(self.b_out[:, None], r.reshape(E, T * B, N), self.W_out.mT).view(E, T, B, -1)

    def forward(self, u: Tensor, state: Any = None) -> Rollout:
        """Roll out all members over ``u``: ``Rollout(y [E, T, B, O], r [E, T, B, N], state)``."""
        u = self._check_input(u)
        body = self._template
        if isinstance(body, RateRNN) and body.activation in _DERIVATIVE_FROM_OUTPUT:
            return Rollout(*self._rate_rollout(u, state))
        if isinstance(body, SpikingRNN):
            r, rbar, state = self._spiking_rollout(u, state)
            return Rollout(self._readout(rbar), r, state)
        return self._vmap_rollout(u, state)

    @torch.no_grad()
    def outputs(self, u: Tensor) -> Tensor:
        """``forward(u).y`` [E, T, B, O] without gradient, keeping only the outputs in memory (one step
        of states at a time): for evaluating large populations on many trials. Same draws as forward."""
        u = self._check_input(u)
        body = self._template
        if not isinstance(body, (RateRNN, SpikingRNN)):
            return self._vmap_rollout(u, None).y
        T, B = u.shape[-3], u.shape[-2]
        if isinstance(body, RateRNN):
            x = self._rate_x0(B)
            xi = self._rate_noise(T, B)
            f, alpha = body.f, body.alpha
            r = f(x)
        else:
            state = self._spiking_state0(B)
            W_rec, b, beta = self._spiking_tensors()
        ys = []
        for t in range(T):
            u_t = u[t] if u.dim() == 3 else u[:, t]
            i_t = torch.matmul(u_t, self.W_in.mT)  # [E, B, N]
            if isinstance(body, RateRNN):
                d = i_t + self.b[:, None]
                if xi is not None:
                    d = d + xi[t] * self._noise_scale()[:, None, None]
                pre = torch.baddbmm(d, r, self.W_rec.mT)
                x = pre if alpha == 1.0 else torch.lerp(x, pre, alpha)
                r = f(x)
            else:
                for _ in range(body.substeps):
                    state = spiking_substep(body.params, W_rec, b, beta, state, i_t)
                r = state.rbar
            ys.append(torch.baddbmm(self.b_out[:, None], r, self.W_out.mT))
        return torch.stack(ys, 1)

    # rate body
    def _rate_x0(self, B: int) -> Tensor:
        """x_0 drawn as ``RateRNN.init_state`` draws it, shared by every member: [E, B, N]."""
        body = self._template
        x0 = torch.zeros(B, self.n_hidden, device=self.device, dtype=self.dtype)
        if body.x0_std > 0:
            x0 = body.x0_std * torch.randn(x0.shape, device=self.device, dtype=self.dtype)
        return x0.expand(self.size, B, self.n_hidden)

    def _rate_noise(self, T: int, B: int) -> Tensor | None:
        """The standard-normal noise ``RateRNN.forward`` draws ([T, B, N]), if any member is noisy."""
        if not bool((self.noise_std > 0).any()):
            return None
        return torch.randn((T, B, self.n_hidden), device=self.device, dtype=self.dtype)

    def _noise_scale(self) -> Tensor:
        """Per-member factor of the noise in the drive: ``sqrt(2 alpha) sigma / alpha`` [E]."""
        alpha = self._template.alpha
        return (2.0 * alpha) ** 0.5 * self.noise_std / alpha

    def _rate_rollout(self, u: Tensor, state: Any) -> tuple[Tensor, Tensor, Any]:
        from .rate import RateState

        body, E = self._template, self.size
        T, B = u.shape[-3], u.shape[-2]
        if state is None:
            x0 = self._rate_x0(B)
        else:
            x0 = state.x if state.x.dim() == 3 else state.x.expand(E, B, self.n_hidden)
        xi = self._rate_noise(T, B)
        scale = None if xi is None else self._noise_scale()
        y, r, x = _RatePopulationBPTT.apply(x0, u, xi, scale, self.W_in, self.b, self.W_rec, self.W_out,
                                            self.b_out, body.alpha, body.activation)  # fmt: skip
        return y, r, RateState(x)

    # spiking body
    def _spiking_state0(self, B: int) -> SpikingState:
        body, E, N = self._template, self.size, self.n_hidden
        z = torch.zeros(E, B, N, device=self.device, dtype=self.dtype)
        return SpikingState(z, z, z, z, z, z, z.new_zeros((body.delay_in, E, B, N)),
                            z.new_zeros((body.delay_rec, E, B, N)))  # fmt: skip

    def _spiking_tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        W_rec = self.W_rec if self._template.self_connections else self.W_rec * self.rec_mask
        return W_rec, self.b[:, None], self.beta[:, None]

    def _spiking_rollout(self, u: Tensor, state: SpikingState | None) -> tuple[Tensor, Tensor, SpikingState]:
        body = self._template
        state = self._spiking_state0(u.shape[-2]) if state is None else state
        W_rec, b, beta = self._spiking_tensors()
        counts, rbars = [], []
        for i_t in self._input_projection(u, self.W_in).unbind(1):
            count = None
            for _ in range(body.substeps):
                state = spiking_substep(body.params, W_rec, b, beta, state, i_t)
                count = state.z if count is None else count + state.z
            counts.append(count)
            rbars.append(state.rbar)
        return torch.stack(counts, 1), torch.stack(rbars, 1), state

    # any other body: its own step under vmap
    def _vmap_rollout(self, u: Tensor, state: Any) -> Rollout:
        from torch.func import functional_call, vmap

        wrapper = _StepModule(self._template)
        tensors = {f"body.{k}": v for k, v in [*self.named_parameters(), *self.named_buffers()]
                   if k != "noise_std"}  # fmt: skip

        def one(tensors_e: dict[str, Tensor], state_e: Any, u_t: Tensor) -> tuple[Any, Tensor, Tensor]:
            return functional_call(wrapper, tensors_e, (state_e, u_t))

        step = vmap(one, in_dims=(0, 0, None if u.dim() == 3 else 0))
        if state is None:
            s0 = self._template.init_state(u.shape[-2])
            state = type(s0)(*(t.expand(self.size, *t.shape).contiguous() for t in s0))
        ys, rs = [], []
        for u_t in (u if u.dim() == 3 else u.transpose(0, 1)).unbind(0):
            state, r_t, y_t = step(tensors, state, u_t)
            ys.append(y_t)
            rs.append(r_t)
        return Rollout(torch.stack(ys, 1), torch.stack(rs, 1), state)
