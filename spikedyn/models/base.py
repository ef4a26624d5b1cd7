"""The recurrent-network protocol every spikedyn body follows (``Body``).

A model is a ``torch.nn.Module`` with parameters ``W_in [N, I]``, ``W_rec [N, N]``, ``b [N]``,
``W_out [O, N]``, ``b_out [O]`` (GRU: gate-stacked ``[3N, ...]``), a step length ``dt`` in ms, and
pure methods:

- ``init_state(batch) -> state``: a NamedTuple of tensors;
- ``step(state, u_t) -> (state, r_t)``: one input step; ``r_t`` is the unit output
  (rate ``f(x)`` for rate units, spike count for spiking units);
- ``output(state) -> y_t``: the linear readout of a state.

``forward(u [T, B, I]) -> Rollout(y [T, B, O], r [T, B, N], state)`` may be faster than the step
loop but must equal it (tests check this for every model). ``tangent_dynamics()`` gives the step's
Jacobian for the analyses (``spikedyn/models/tangent.py``); the default is autograd through ``step``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from .validation import check_rollout_input, check_sizes


class Rollout(NamedTuple):
    """What a forward pass returns: outputs ``y [T, B, O]``, unit outputs ``r [T, B, N]``
    and the final state (pass it back as ``state=`` to continue the trajectory)."""

    y: Tensor
    r: Tensor
    state: Any


@runtime_checkable
class Body(Protocol):
    """What every spikedyn body provides (rate, GRU, LSTM, spiking float, Loihi-2 fixed point).

    ``dt`` is the length of one input step in ms; ``step`` is pure (state in, state out) and ``forward``
    equals the ``step`` loop. Analyses and learning rules are written against this protocol.
    """

    dt: float
    n_in: int
    n_hidden: int
    n_out: int

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> Any: ...

    def step(self, state: Any, u_t: Tensor) -> tuple[Any, Tensor]: ...

    def output(self, state: Any) -> Tensor: ...

    def forward(self, u: Tensor, state: Any = None) -> Rollout: ...

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Any: ...


def rollout(step: Callable[[Any, Tensor], tuple[Any, Tensor]], output: Callable[[Any], Tensor] | None,
            inputs: Any, state: Any) -> tuple[list[Tensor], list[Tensor], Any]:
    """The one step loop: ``state, r_t = step(state, x_t)`` over ``inputs`` (an iterable of per-step
    inputs, e.g. ``u.unbind(0)``); returns the outputs ``output(state)`` after each step (empty if
    ``output`` is None), the ``r_t`` and the final state."""
    ys, rs = [], []
    for x_t in inputs:
        state, r_t = step(state, x_t)
        rs.append(r_t)
        if output is not None:
            ys.append(output(state))
    return ys, rs, state


class RecurrentModel(nn.Module):
    """Shared plumbing: sizes, readout parameters, the reference step loop, config round trip."""

    kind: str = "base"
    dt: float = 1.0  # ms per input step

    def __init__(self, n_in: int, n_hidden: int, n_out: int) -> None:
        super().__init__()
        check_sizes(n_in=n_in, n_hidden=n_hidden, n_out=n_out)
        self.n_in, self.n_hidden, self.n_out = int(n_in), int(n_hidden), int(n_out)
        self.W_out = nn.Parameter(torch.randn(n_out, n_hidden) / n_hidden**0.5)
        self.b_out = nn.Parameter(torch.zeros(n_out))

    def _init_input_and_recurrent(self, gain: float, bias: bool) -> None:
        """``W_in ~ N(0, 1/I)``, ``W_rec ~ N(0, gain^2/N)`` (Liu et al.'s initial gain), ``b = 0`` (a
        non-trainable buffer when ``bias=False``). Shared by the rate net and its spiking twin."""
        N, I = self.n_hidden, self.n_in
        self.W_in = nn.Parameter(torch.randn(N, I) / I**0.5)
        self.W_rec = nn.Parameter(torch.randn(N, N) * gain / N**0.5)
        if bias:
            self.b = nn.Parameter(torch.zeros(N))
        else:
            self.register_buffer("b", torch.zeros(N))

    # -- protocol -------------------------------------------------------------------------
    def init_state(self, batch: int, generator: torch.Generator | None = None) -> Any:
        raise NotImplementedError

    def step(self, state: Any, u_t: Tensor) -> tuple[Any, Tensor]:
        raise NotImplementedError

    def output(self, state: Any) -> Tensor:
        raise NotImplementedError

    def forward(self, u: Tensor, state: Any = None) -> Rollout:
        return self.loop(u, state)

    def loop(self, u: Tensor, state: Any = None) -> Rollout:
        """Reference rollout: the plain ``step`` loop (``forward`` must equal it)."""
        u = self._check_input(u)
        state = self.init_state(u.shape[1]) if state is None else state
        # unbind: indexing u[t] costs O(T^2) in backward when u needs a gradient
        ys, rs, state = rollout(self.step, self.output, u.unbind(0), state)
        return Rollout(torch.stack(ys), torch.stack(rs), state)

    def tangent_dynamics(self, detach_recurrent: bool = False) -> Any:
        """The step's tangent map for the analyses; by default forward-mode autograd through ``step``."""
        if detach_recurrent:
            raise ValueError(f"detach_recurrent (local flossing) is implemented for RateRNN only, "
                             f"not {type(self).__name__}")
        from .tangent import AutogradDynamics

        return AutogradDynamics(self)

    # -- helpers --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``spikedyn.models.from_config(cfg)`` rebuilds the model."""
        return {"kind": self.kind, "n_in": self.n_in, "n_hidden": self.n_hidden, "n_out": self.n_out}

    @property
    def device(self) -> torch.device:
        return self.W_out.device

    @property
    def dtype(self) -> torch.dtype:
        return self.W_out.dtype

    def _check_input(self, u: Tensor) -> Tensor:
        if not isinstance(u, Tensor):
            u = torch.as_tensor(u)
        check_rollout_input(u, self.n_in)  # [T >= 1, B >= 1, n_in], finite
        return u.to(device=self.device, dtype=self.dtype)
