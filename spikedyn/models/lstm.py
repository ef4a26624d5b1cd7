"""Long short-term memory network with the spikedyn protocol (gate order i, f, g, o as in ``torch.nn.LSTM``).

    i = sigmoid(W_in[i] u + W_rec[i] h + b[i]),  f = sigmoid(W_in[f] u + W_rec[f] h + b[f])
    g = tanh(W_in[g] u + W_rec[g] h + b[g]),     o = sigmoid(W_in[o] u + W_rec[o] h + b[o])
    c' = f c + i g,   h' = o tanh(c'),   y = W_out h' + b_out

``W_in [4N, I]``, ``W_rec [4N, N]``, ``b [4N]`` (torch's two biases ``b_ih + b_hh`` folded into one).
The LSTM is the gated baseline of Park et al.'s Table S1; ``forward`` runs torch's native LSTM kernel.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .base import RecurrentModel, Rollout


class LSTMState(NamedTuple):
    h: Tensor  # hidden output [B, N]
    c: Tensor  # cell state [B, N]


class LSTMRNN(RecurrentModel):
    """LSTM body: ``r_t = h_t``. Init as PyTorch: every weight and bias U(-1/sqrt(N), 1/sqrt(N))
    (the folded bias is the sum of two such draws, as in ``torch.nn.LSTM``)."""

    kind = "lstm"

    def __init__(self, n_in: int, n_hidden: int, n_out: int, dt: float = 1.0) -> None:
        super().__init__(n_in, n_hidden, n_out)
        if not dt > 0:
            raise ValueError(f"dt must be > 0 ms, got {dt}")
        self.dt = float(dt)
        k = 1.0 / n_hidden**0.5
        self.W_in = nn.Parameter(torch.empty(4 * n_hidden, n_in).uniform_(-k, k))
        self.W_rec = nn.Parameter(torch.empty(4 * n_hidden, n_hidden).uniform_(-k, k))
        b_ih, b_hh = torch.empty(2, 4 * n_hidden).uniform_(-k, k)
        self.b = nn.Parameter(b_ih + b_hh)

    def init_state(self, batch: int, generator: torch.Generator | None = None) -> LSTMState:
        zeros = torch.zeros(batch, self.n_hidden, device=self.device, dtype=self.dtype)
        return LSTMState(zeros, zeros)

    def cell(self, state: LSTMState, gi: Tensor) -> LSTMState:
        """Update ``(h, c)`` given the input projection ``gi = W_in u + b`` ([B, 4N])."""
        N = self.n_hidden
        g = gi + state.h @ self.W_rec.T
        i, f = torch.sigmoid(g[:, :N]), torch.sigmoid(g[:, N : 2 * N])
        cand, o = torch.tanh(g[:, 2 * N : 3 * N]), torch.sigmoid(g[:, 3 * N :])
        c = f * state.c + i * cand
        return LSTMState(o * torch.tanh(c), c)

    def step(self, state: LSTMState, u_t: Tensor) -> tuple[LSTMState, Tensor]:
        state = self.cell(state, u_t @ self.W_in.T + self.b)
        return state, state.h

    def output(self, state: LSTMState) -> Tensor:
        return state.h @ self.W_out.T + self.b_out

    def forward(self, u: Tensor, state: LSTMState | None = None) -> Rollout:
        """Roll out over ``u [T, B, I]`` with torch's native LSTM kernel (equals the ``step`` loop)."""
        u = self._check_input(u)
        state = self.init_state(u.shape[1]) if state is None else state
        weights = [self.W_in, self.W_rec, self.b, torch.zeros_like(self.b)]
        r, h, c = torch._VF.lstm(u, (state.h[None], state.c[None]), weights, True, 1, 0.0, self.training,
                                 False, False)  # fmt: skip
        return Rollout(r @ self.W_out.T + self.b_out, r, LSTMState(h[0], c[0]))

    @torch.no_grad()
    def load_torch_lstm(self, lstm: nn.LSTM) -> LSTMRNN:
        """Copy the weights of a one-layer ``torch.nn.LSTM`` (its two biases summed)."""
        self.W_in.copy_(lstm.weight_ih_l0)
        self.W_rec.copy_(lstm.weight_hh_l0)
        self.b.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
        return self

    def config(self) -> dict[str, Any]:
        return {**super().config(), "dt": self.dt}

    def extra_repr(self) -> str:
        return f"{self.n_in}, {self.n_hidden}, {self.n_out}, dt={self.dt:g} ms"
