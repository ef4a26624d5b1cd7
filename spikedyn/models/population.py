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
as the same model run alone with the same torch seed. Inside ``pop.member_rng(seeds)`` each member draws
from its own generator instead (what ``train(pop, seed=[...])`` uses).

Rate recurrence (``alpha = dt / tau``), with the noise folded into the drive ``d_t = W_in u_t + b +
sqrt(2 alpha) sigma xi_t / alpha``::

    x_{t+1} = (1 - alpha) x_t + alpha (W_rec f(x_t) + d_t),     r_t = f(x_t)
    lam_t   = f'(x_t) (g_t + alpha lam_{t+1} W_rec) + (1 - alpha) lam_{t+1}      (lam_t = dL/dx_t)
    dL/dd_t = alpha lam_{t+1},    dL/dW_rec = alpha sum_t lam_{t+1}^T f(x_t)
"""
from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .base import RecurrentModel, Rollout
from .fused import fused_population_rollout, fused_supported, population_eval_rollout
from .rate import RateRNN
from .spiking import SpikingRNN, SpikingState, spiking_substep
from .triton_support import population_outputs, population_rate_rollout, wants_triton
from .validation import check_rollout_input

# constructor arguments that may differ between members (all others must be equal)
PER_MEMBER = ("gain", "noise_std")

class _Stored(NamedTuple):
    """How the fused rate rollout stores an activation: ``s = phi(kappa x)`` with ``r = f(x) = rho s``
    and ``f'(x) = rho kappa psi(s)``; ``phi(z, out)`` writes phi(z), ``psi(g, s, out)`` writes
    ``g * psi(s)`` (torch's fused ``*_backward`` kernels: one pass). ``kappa``, ``rho``: powers of two,
    so folding them into the weights is exact."""

    kappa: float
    rho: float
    phi: Callable[[Tensor, Tensor], Tensor]
    psi: Callable[[Tensor, Tensor, Tensor], Tensor]


def _softplus_psi(g: Tensor, s: Tensor, out: Tensor) -> Tensor:
    return torch.mul(g, torch.neg(s).expm1_().neg_(), out=out)  # sigmoid(x) = 1 - exp(-softplus(x))


_aten = torch.ops.aten
_STORED: dict[str, _Stored] = {
    "tanh": _Stored(1.0, 1.0, lambda z, o: torch.tanh(z, out=o),
                    lambda g, s, o: _aten.tanh_backward.grad_input(g, s, grad_input=o)),
    # 1 + tanh(x) = 2 sigmoid(2x), as rate.shifted_tanh computes it
    "shifted_tanh": _Stored(2.0, 2.0, lambda z, o: torch.sigmoid(z, out=o),
                            lambda g, s, o: _aten.sigmoid_backward.grad_input(g, s, grad_input=o)),
    "relu": _Stored(1.0, 1.0, lambda z, o: torch.clamp_min(z, 0.0, out=o),
                    lambda g, s, o: _aten.threshold_backward.grad_input(g, s, 0.0, grad_input=o)),
    "softplus": _Stored(1.0, 1.0, lambda z, o: o.copy_(nn.functional.softplus(z)), _softplus_psi),
}  # fmt: skip


class _Workspace:
    """Big rollout buffers kept between training steps: a fresh [T, E, B, K] tensor costs a page fault
    per 4 KiB page on first touch (about as long as the whole forward's arithmetic on a CPU). A buffer
    is handed out again only when nothing else holds its storage (no saved graph, no returned view)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple, tuple[Tensor, int]] = {}

    @staticmethod
    def _users(t: Tensor) -> int:
        return torch._C._storage_Use_Count(t.untyped_storage()._cdata)

    def take(self, shape: tuple[int, ...], like: Tensor) -> Tensor:
        key = (shape, like.dtype, like.device)
        held = self._buffers.get(key)
        if held is not None and self._users(held[0]) == held[1]:
            return held[0]
        buf = like.new_empty(shape)
        if hasattr(torch._C, "_storage_Use_Count"):
            self._buffers = {key: (buf, self._users(buf))}  # one shape at a time
        return buf

    def __deepcopy__(self, memo: dict) -> _Workspace:
        return _Workspace()

    def __getstate__(self) -> dict:
        return {"_buffers": {}}


def _padded(W: Tensor, rows: int, cols: int, scale: float = 1.0) -> Tensor:
    """``scale * W [E, r, c]`` in the top-left corner of zeros ``[E, rows, cols]``."""
    out = W.new_zeros((W.shape[0], rows, cols))
    out[:, : W.shape[1], : W.shape[2]] = W if scale == 1.0 else scale * W
    return out


def _rate_forward(x0: Tensor, u: Tensor, xi: Tensor | None, scale: Tensor | None, W_in: Tensor, b: Tensor,
                  W_rec: Tensor, W_out: Tensor, b_out: Tensor, alpha: float, act: _Stored,
                  Z: Tensor | None) -> tuple[Tensor, Tensor]:
    """The Euler map of ``RateRNN`` for every member, one contiguous ``[E, K, B]`` block per step
    (``K = N + I + 1``, units x trials): the stored ``Z_t = [s_t ; u_t ; 1]`` (``s = phi(kappa x)``, see
    ``_Stored``) and the state ``X_t = [kappa x_t ; 0]``; the weights are padded with zeros to ``[E, K, K]``,
    so the padding stays zero and every elementwise pass runs over contiguous memory. One step is one
    batched GEMM with the leak folded in, ``X_{t+1} = (1 - alpha) X_t + kappa alpha W Z_t`` (updated in
    place: ``out=`` would first copy ``X``), one activation pass and the readout. Trials are the columns
    so that the GEMMs' output rows are B long (64 trials: whole AVX-512 vectors; K = 52 columns would
    leave a 4-wide tail); the forward and adjoint GEMMs ran at 66-77 vs 55-67 GFLOP/s in a microbenchmark
    (``docs/benchmarks.md``, Populations). Writes
    ``Z [T + 1, E, K, B]`` when given (for the backward pass), else keeps one block (evaluation).
    Returns ``y [T, E, B, O]`` (a view) and the last state block ``X_T [E, K, B]``."""
    E, B, N = x0.shape
    T, I = u.shape[-3], u.shape[-1]
    K = N + I + 1
    u_ext = x0.new_ones((T + 1, E if u.dim() == 4 else 1, I + 1, B))  # [u_t ; 1]
    u_ext[:T, :, :I] = u.transpose(0, 1).mT if u.dim() == 4 else u.mT[:, None]
    u_ext[T, :, :I] = 0.0
    W_fwd = _padded(torch.cat([act.rho * W_rec, W_in, b[..., None]], dim=-1), K, K)  # [E, K, K]
    W_out_pad = _padded(W_out, W_out.shape[1], K, act.rho)  # [E, O, K]
    b_out = b_out[..., None]  # [E, O, 1]
    y = x0.new_empty((T, E, W_out.shape[1], B))
    noise = None  # [T, K, B] (shared) or [T, E, K, B] (per member)
    if xi is not None:
        xi = (xi if xi.dim() == 3 else xi.transpose(0, 1)).mT
        noise = torch.cat([xi, xi.new_zeros((*xi.shape[:-2], K - N, B))], dim=-2)
    noise_scale = None if xi is None else (act.kappa * alpha * scale)[:, None, None]
    X = x0.new_zeros((E, K, B))  # the one state block, updated in place
    X[:, :N] = x0.mT if act.kappa == 1.0 else act.kappa * x0.mT
    z = Z[0] if Z is not None else x0.new_empty((E, K, B))  # without Z: one block, overwritten each step
    act.phi(X, z)
    z[:, N:] = u_ext[0]
    for t in range(T):
        if alpha == 1.0:
            torch.bmm(W_fwd, z, out=X)
            if act.kappa != 1.0:
                X.mul_(act.kappa)
        else:  # (1 - alpha) X + kappa alpha W [s ; u ; 1], one call
            X.baddbmm_(W_fwd, z, beta=1.0 - alpha, alpha=act.kappa * alpha)
        if noise is not None:
            X.addcmul_(noise[t], noise_scale)
        if Z is not None:
            z = Z[t + 1]
        act.phi(X, z)
        z[:, N:] = u_ext[t + 1]
        torch.baddbmm(b_out, W_out_pad, z, out=y[t])
    return y.mT, X


class _RatePopulationBPTT(torch.autograd.Function):
    """The whole rate rollout of a population with its hand-written backward (``_rate_forward`` forward,
    the adjoint recursion of the module doc backward). Inputs: x0 [E,B,N], u [T,B,I] (shared) or
    [E,T,B,I], noise drive xi [T,B,N] (or per member [E,T,B,N]) and its per-member scale [E] (or None),
    the stacked weights, the activation name, a ``_Workspace`` (or None); outputs y [E,T,B,O], s [E,T,B,N]
    (the stored ``s = r / rho``; views of the ``[T + 1, E, K, B]`` store) and x_T [E,B,N].

    Per step (blocks ``[E, K, B]`` as in ``_rate_forward``) the backward is one GEMM ``acc = rho kappa
    (W_rec^T c_{t+1} + W_out^T g_y)``, one fused pass ``acc psi(s_t)``, one ``lerp`` (``c_t = (1 - alpha)
    c_{t+1} + alpha f'(x_t) dL/dr_t``) and the weight-gradient GEMM ``dW^T += Z_{t-1} c_t^T`` while both
    are in cache."""

    @staticmethod
    def forward(ctx, x0, u, xi, scale, W_in, b, W_rec, W_out, b_out, alpha, activation, workspace):  # type: ignore[override]
        ctx.set_materialize_grads(False)  # absent gradients stay None (no [E, T, B, N] of zeros)
        act = _STORED[activation]
        E, B, N = x0.shape
        T, I = u.shape[-3], u.shape[-1]
        shape = (T + 1, E, N + I + 1, B)
        Z = workspace.take(shape, x0) if workspace is not None else x0.new_empty(shape)
        y, X = _rate_forward(x0, u, xi, scale, W_in, b, W_rec, W_out, b_out, alpha, act, Z)
        ctx.save_for_backward(Z.view(shape), W_rec, W_out)  # a view: the workspace sees it is in use
        ctx.alpha, ctx.activation, ctx.n_in = alpha, activation, I
        x_T = (X[:, :N] if act.kappa == 1.0 else X[:, :N] / act.kappa).mT
        return y.transpose(0, 1), Z[1:, :, :N].permute(1, 0, 3, 2), x_T

    @staticmethod
    def backward(ctx, g_y, g_s, g_x):  # type: ignore[override]
        Z, W_rec, W_out = ctx.saved_tensors
        alpha, act = ctx.alpha, _STORED[ctx.activation]
        T1, E, K, B = Z.shape
        T, N, I, O = T1 - 1, W_rec.shape[-1], ctx.n_in, W_out.shape[1]
        rk = act.rho * act.kappa
        W_bwd = _padded(W_rec.mT, K, K, rk)  # [E, K, K]: rho kappa W_rec^T c in the first N rows, zeros after
        W_out_pad = _padded(W_out.mT, K, O, rk)  # [E, K, O]
        dWT = Z.new_zeros((E, K, K))  # dW^T; rows: [s ; u ; 1]; columns: units (padding columns stay 0)
        dW_out = Z.new_zeros((E, O, K))
        db_out = W_out.new_zeros((E, O))
        # the steps whose outputs carry a gradient (a masked loss touches few of them)
        with_y = [False] * T if g_y is None else g_y.abs().amax(dim=(0, 2, 3)).ne(0).tolist()  # one reduction
        acc = Z.new_empty((E, K, B))
        carries = (Z.new_empty((E, K, B)), Z.new_empty((E, K, B)))
        carry = None  # [c_{t+1} ; 0], c_{t+1} = alpha lam_{t+1} = dL/dd_t
        for t in range(T, 0, -1):
            if carry is not None:
                torch.bmm(W_bwd, carry, out=acc)
            else:
                acc.zero_()
            if with_y[t - 1]:
                g_yt = g_y[:, t - 1].mT  # [E, O, B]
                if O == 1:  # outer products: elementwise beats a batched GEMM with a unit dimension
                    acc.addcmul_(W_out_pad, g_yt)
                else:
                    acc.baddbmm_(W_out_pad, g_yt)
                dW_out.baddbmm_(g_yt, Z[t].mT)
                db_out.add_(g_yt.sum(-1))
            if g_s is not None:  # dL/ds = rho dL/dr
                acc[:, :N] += act.kappa * g_s[:, t - 1].mT
            new = carries[t % 2]
            act.psi(acc, Z[t], new)  # rho kappa psi(s) dL/dr = f'(x) dL/dr (0 in the padding: acc is 0 there)
            if carry is None:  # c_t = alpha f'(x_t) dL/dr_t + (1 - alpha) c_{t+1}
                new.mul_(alpha)
            else:
                torch.lerp(carry, new, alpha, out=new)
            if t == T and g_x is not None:
                new[:, :N] += alpha * g_x.mT
            carry = new
            dWT.baddbmm_(Z[t - 1], carry.mT)
        g0 = None
        if ctx.needs_input_grad[0] and carry is not None:  # lam_0 = f'(x_0) W_rec^T c_1 + (1 - alpha) lam_1
            g0 = act.psi(torch.bmm(W_bwd, carry), Z[0], acc)[:, :N]
            if alpha != 1.0:
                g0 = g0 + carry[:, :N] * ((1.0 - alpha) / alpha)
            g0 = g0.mT
        rho = act.rho
        dW = dWT.mT  # rows: units; columns: [s | u | 1]
        dW_rec = dW[:, :N, :N] if rho == 1.0 else rho * dW[:, :N, :N]
        dW_out = dW_out[..., :N] if rho == 1.0 else rho * dW_out[..., :N]
        return g0, None, None, None, dW[:, :N, N : N + I], dW[:, :N, N + I], dW_rec, dW_out, db_out, None, None, None


_LONE_WORKSPACES: weakref.WeakKeyDictionary[RateRNN, _Workspace] = weakref.WeakKeyDictionary()


def lone_rate_rollout(model: RateRNN, u: Tensor, rates: bool = True) -> Rollout | None:
    """``model(u)`` of a lone ``RateRNN`` through the population kernel with one member (E = 1): the same
    Euler map, the same draws (``x_0`` by ``model.init_state``, then the recurrent noise, as
    ``RateRNN.forward`` draws them), gradients by the hand-written adjoint recursion instead of autograd
    through a Python step loop (about 2.3x cheaper per training step on a CPU, docs/benchmarks.md).
    ``rates=False``: ``r`` is None where leaving it out saves work. Returns None where the kernel does not
    apply (another body or activation, or the vanilla ``alpha = 1`` tanh/relu net that ``RateRNN.forward``
    runs with torch's native RNN kernel, or where the Triton kernels are wanted, ``wants_triton``: CUDA, or
    ``SPIKEDYN_TRITON=on``); callers then use ``model(u)``."""
    from .rate import RateState

    if type(model) is not RateRNN or model.activation not in _STORED:
        return None
    if model.alpha == 1.0 and model.activation in ("tanh", "relu") and model.noise_std == 0:
        return None  # RateRNN.forward's native-kernel path
    u = model._check_input(u)
    if wants_triton(u):
        return None  # RateRNN.forward runs the Triton kernel (triton_rate.py) there
    T, B = u.shape[:2]
    x0 = model.init_state(B).x[None]
    xi = scale = None
    if model.noise_std > 0:
        xi = torch.randn((T, B, model.n_hidden), device=model.device, dtype=model.dtype)
        alpha = model.alpha
        scale = torch.full((1,), (2.0 * alpha) ** 0.5 * model.noise_std / alpha, device=model.device,
                           dtype=model.dtype)  # fmt: skip
    workspace = _LONE_WORKSPACES.setdefault(model, _Workspace())  # the buffer reused from step to step
    y, s, x = _RatePopulationBPTT.apply(x0, u, xi, scale, model.W_in[None], model.b[None], model.W_rec[None],
                                        model.W_out[None], model.b_out[None], model.alpha, model.activation,
                                        workspace)  # fmt: skip
    rho = _STORED[model.activation].rho
    r = s[0] if rho == 1.0 else (rho * s[0] if rates else None)
    return Rollout(y[0], r, RateState(x[0]))


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
        self._workspace = _Workspace()
        self._generators: list[torch.Generator] | None = None  # member_rng
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
        u = torch.as_tensor(u)
        if u.dim() == 4 and u.shape[0] != self.size or u.dim() not in (3, 4) or u.shape[-1] != self.n_in:
            raise ValueError(
                f"input must have shape [T, B, {self.n_in}] (shared) or [{self.size}, T, B, {self.n_in}] "
                f"(per member), got {tuple(u.shape)}"
            )
        check_rollout_input(u if u.dim() == 3 else u.flatten(1, 2), self.n_in)  # T, B >= 1, finite
        return u.to(device=self.device, dtype=self.dtype)

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

    def forward(self, u: Tensor, state: Any = None, rates: bool = True) -> Rollout:
        """Roll out all members over ``u``: ``Rollout(y [E, T, B, O], r [E, T, B, N], state)``.

        ``rates=False``: ``r`` is None where leaving it out saves work (a rate body with ``shifted_tanh``
        stores ``r / 2``; training on the outputs alone does not need ``r``)."""
        u = self._check_input(u)
        body = self._template
        if isinstance(body, RateRNN) and body.activation in _STORED:
            return Rollout(*self._rate_rollout(u, state, rates))
        if isinstance(body, SpikingRNN):
            r, rbar, state = self._spiking_rollout(u, state)
            return Rollout(self._readout(rbar), r, state)
        return self._vmap_rollout(u, state)

    @torch.no_grad()
    def outputs(self, u: Tensor) -> Tensor:
        """``forward(u).y`` [E, T, B, O] without gradient, keeping only the outputs in memory (one step
        of states at a time; on the Triton kernels, where they are wanted, chunks of time of at most about
        ``triton_support.OUTPUT_CHUNK_BYTES``): for evaluating large populations on many trials. Same draws
        as forward."""
        u = self._check_input(u)
        body = self._template
        if isinstance(body, RateRNN) and body.activation in _STORED:
            T, B = u.shape[-3], u.shape[-2]
            x0, xi = self._rate_x0(B), self._rate_noise(T, B)
            scale = None if xi is None else self._noise_scale()
            y = population_outputs(self, u, x0, xi, scale)  # CUDA (or SPIKEDYN_TRITON=on): the Triton kernel
            if y is not None:
                return y
            y, _ = _rate_forward(x0, u, xi, scale, self.W_in, self.b, self.W_rec, self.W_out, self.b_out,
                                 body.alpha, _STORED[body.activation], None)  # fmt: skip
            return y.transpose(0, 1)
        if not isinstance(body, SpikingRNN):
            return self._vmap_rollout(u, None).y
        y = population_outputs(self, u) if fused_supported(body) else None  # the forward-only Triton kernel
        if y is not None:
            return y
        state = self._spiking_state0(u.shape[-2])
        W_rec, b, beta = self._spiking_tensors()
        ys = []
        for t in range(u.shape[-3]):
            i_t = torch.matmul(u[t] if u.dim() == 3 else u[:, t], self.W_in.mT)  # [E, B, N]
            for _ in range(body.substeps):
                state = spiking_substep(body.params, W_rec, b, beta, state, i_t)
            ys.append(torch.baddbmm(self.b_out[:, None], state.rbar, self.W_out.mT))
        return torch.stack(ys, 1)

    # rate body
    @contextlib.contextmanager
    def member_rng(self, seeds: Sequence[int] | None) -> Iterator[None]:
        """Within the block, member i draws its own random numbers (a rate body's ``x_0`` and noise) from a
        generator seeded with ``seeds[i]``, in the order and shapes a lone model draws them from the global
        torch generator after ``torch.manual_seed(seeds[i])``: so members trained with different seeds
        (``train(pop, seed=[...])``) see what each would see alone. ``None``: common random numbers."""
        if seeds is None:
            yield
            return
        if len(seeds) != self.size:
            raise ValueError(f"{len(seeds)} seeds for {self.size} members")
        previous = self._generators
        self._generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]
        try:
            yield
        finally:
            self._generators = previous

    def _rate_x0(self, B: int) -> Tensor:
        """x_0 drawn as ``RateRNN.init_state`` draws it, shared by every member (or one draw per member
        inside ``member_rng``): [E, B, N]."""
        body, shape = self._template, (B, self.n_hidden)
        if body.x0_std > 0 and self._generators is not None:
            return torch.stack([body.x0_std * torch.randn(shape, generator=g, device=self.device, dtype=self.dtype)
                                for g in self._generators])  # fmt: skip
        x0 = torch.zeros(shape, device=self.device, dtype=self.dtype)
        if body.x0_std > 0:
            x0 = body.x0_std * torch.randn(x0.shape, device=self.device, dtype=self.dtype)
        return x0.expand(self.size, B, self.n_hidden)

    def _rate_noise(self, T: int, B: int) -> Tensor | None:
        """The standard-normal noise ``RateRNN.forward`` draws ([T, B, N]; inside ``member_rng``: one draw
        per noisy member, [E, T, B, N]), if any member is noisy."""
        noisy = (self.noise_std > 0).tolist()
        if not any(noisy):
            return None
        shape = (T, B, self.n_hidden)
        if self._generators is not None:
            return torch.stack([torch.randn(shape, generator=g, device=self.device, dtype=self.dtype) if on else
                                torch.zeros(shape, device=self.device, dtype=self.dtype)
                                for g, on in zip(self._generators, noisy)])  # fmt: skip
        return torch.randn(shape, device=self.device, dtype=self.dtype)

    def _noise_scale(self) -> Tensor:
        """Per-member factor of the noise in the drive: ``sqrt(2 alpha) sigma / alpha`` [E]."""
        alpha = self._template.alpha
        return (2.0 * alpha) ** 0.5 * self.noise_std / alpha

    def _rate_rollout(self, u: Tensor, state: Any, rates: bool = True) -> tuple[Tensor, Tensor | None, Any]:
        from .rate import RateState

        body, E = self._template, self.size
        T, B = u.shape[-3], u.shape[-2]
        if state is None:
            x0 = self._rate_x0(B)
        else:
            x0 = state.x if state.x.dim() == 3 else state.x.expand(E, B, self.n_hidden)
        xi = self._rate_noise(T, B)
        scale = None if xi is None else self._noise_scale()
        triton = population_rate_rollout(self, u, x0, xi, scale)  # CUDA (or SPIKEDYN_TRITON=on): triton_rate.py
        if triton is not None:
            return triton
        y, s, x = _RatePopulationBPTT.apply(x0, u, xi, scale, self.W_in, self.b, self.W_rec, self.W_out,
                                            self.b_out, body.alpha, body.activation, self._workspace)  # fmt: skip
        rho = _STORED[body.activation].rho
        r = s if rho == 1.0 else (rho * s if rates else None)
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

    def spiking_state(self, batch: int) -> SpikingState:
        """A spiking Population's start state: every member at rest, tensors ``[E, batch, N]`` (delay buffers
        ``[delay, E, batch, N]``); ``SpikingRNN.init_state``'s counterpart."""
        return self._spiking_state0(batch)

    def substep(self, state: SpikingState, i_ext: Tensor) -> SpikingState:
        """One neuron substep (``dt / substeps`` ms) of every member of a spiking Population from ``state``
        with input current ``i_ext = W_in x [E, B, N]`` (in units of the membrane potential, i.e. of
        ``v_th``; added to the synaptic current ``u`` of this substep, ``spikedyn/hardware/neuron.py``), with
        the weights as they are now (``SpikingRNN.substep``'s counterpart)."""
        return spiking_substep(self._template.params, *self._spiking_tensors(), state, i_ext)

    def _spiking_rollout(self, u: Tensor, state: SpikingState | None) -> tuple[Tensor, Tensor, SpikingState]:
        body = self._template
        if state is None and torch.is_grad_enabled() and fused_supported(body):  # the fused kernel, member axis
            return fused_population_rollout(body.params, body.substeps, self._input_projection(u, self.W_in),
                                            *self._spiking_tensors())  # fmt: skip
        if state is None and fused_supported(body) and wants_triton(u):  # no gradient: the forward-only kernel
            out = population_eval_rollout(body.params, body.substeps, self._input_projection(u, self.W_in),
                                          *self._spiking_tensors())  # fmt: skip
            if out is not None:
                return out
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
