"""``NetworkSpec``: a spiking RNN as plain numpy arrays, the one format the hardware layer compiles.

The neuron map is spikedyn's one map (``neuron.py``), one update per *substep*:

    I(s) = W_in x(s - delay_in) + W_rec z(s - 1 - delay_rec)
    u(s) = (1 - du) u(s-1) + I(s)
    a(s) = rho a(s-1) + z(s-1);       A(s) = v_th + beta a(s)          (ALIF; beta = 0: LIF)
    v(s) = (1 - dv) (v' - v_leak) + v_leak + u(s) + bias    v' = v(s-1)(1 - z(s-1)) + v_reset z(s-1), reset "zero"
    v(s) = (1 - dv) (v(s-1) - v_leak) + v_leak + u(s) + bias - v_th z(s-1)    reset "subtract"
    z(s) = v(s) > A(s), silenced for n_ref substeps after a spike
    rbar(s) = kappa rbar(s-1) + (1 - kappa) z(s);   y = W_out rbar + b_out  (end of each input step)

With ``reset="zero"``, ``v_leak = v_reset = 0``, no adaptation and no refractory period this is exactly
Lava's ``LIF`` process fed by ``Dense`` processes (see ``docs/hardware.md``). Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .validation import check_spec_numbers

RESETS = ("zero", "subtract")
_ARRAYS = ("W_in", "W_rec", "bias", "W_out", "b_out", "beta")


@dataclass
class NetworkSpec:
    """A recurrent LIF/ALIF network with a linear (leaky-integrated) readout.

    Arrays: ``W_in [N, I]``, ``W_rec [N, N]`` (as used: a masked diagonal is already zero),
    ``bias [N]``, ``W_out [O, N]``, ``b_out [O]``, ``beta [N]`` (threshold increase per unit of
    adaptation; all zero for LIF). Scalars are per-substep constants (not time constants):
    ``du``, ``dv`` decays in [0, 1], ``rho`` adaptation decay, ``kappa`` readout decay, ``n_ref``
    refractory substeps. ``dt_ms`` is the length of one *input* step in ms, ``substeps`` the
    neuron updates per input step (input held). ``v_leak`` is the membrane's resting value and
    ``v_reset`` the value ``reset="zero"`` resets to (NIR's LIF; 0 and 0 are Lava's).
    """

    W_in: np.ndarray
    W_rec: np.ndarray
    bias: np.ndarray
    W_out: np.ndarray
    b_out: np.ndarray
    du: float = 1.0
    dv: float = 0.05
    v_th: float = 1.0
    reset: str = "zero"
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rho: float = 0.0
    n_ref: int = 0
    kappa: float = 0.0
    delay_in: int = 0
    delay_rec: int = 0
    substeps: int = 1
    dt_ms: float = 1.0
    v_leak: float = 0.0
    v_reset: float = 0.0

    def __post_init__(self) -> None:
        for name in _ARRAYS:
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64))
        N = self.W_rec.shape[0]
        if self.beta.size == 0:
            self.beta = np.zeros(N)
        if self.W_in.ndim != 2 or self.W_in.shape[0] != N or self.W_rec.shape != (N, N):
            raise ValueError(f"W_in must be [N, I], W_rec [N, N]; got {self.W_in.shape}, {self.W_rec.shape}")
        if self.bias.shape != (N,) or self.beta.shape != (N,):
            raise ValueError(f"bias and beta must have shape [{N}]; got {self.bias.shape}, {self.beta.shape}")
        if self.W_out.ndim != 2 or self.W_out.shape[1] != N or self.b_out.shape != (self.W_out.shape[0],):
            raise ValueError(f"W_out must be [O, {N}], b_out [O]; got {self.W_out.shape}, {self.b_out.shape}")
        if self.reset not in RESETS:
            raise ValueError(f"unknown reset {self.reset!r}; choose one of {list(RESETS)}")
        for name in ("du", "dv", "kappa", "rho"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
            setattr(self, name, value)
        if self.v_th <= 0:
            raise ValueError(f"v_th must be > 0, got {self.v_th}")
        self.v_th = float(self.v_th)
        for name in ("n_ref", "delay_in", "delay_rec", "substeps"):
            value = int(getattr(self, name))
            if value < 0 or (name == "substeps" and value < 1):
                raise ValueError(f"{name} must be a non-negative integer (substeps >= 1), got {value}")
            setattr(self, name, value)
        self.dt_ms = float(self.dt_ms)
        self.v_leak, self.v_reset = float(self.v_leak), float(self.v_reset)
        if self.v_reset and self.reset != "zero":
            raise ValueError(f"v_reset is the value reset='zero' resets to; reset={self.reset!r} subtracts v_th")
        check_spec_numbers(self)  # finite weights and constants, dt_ms > 0

    # -- sizes and capabilities -------------------------------------------------------------
    @property
    def n_in(self) -> int:
        return self.W_in.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W_rec.shape[0]

    @property
    def n_out(self) -> int:
        return self.W_out.shape[0]

    @property
    def adaptive(self) -> bool:
        return bool(np.any(self.beta != 0))

    @property
    def neuron(self) -> str:
        return "alif" if self.adaptive else "lif"

    def lava_lif_compatible(self) -> bool:
        """True when Lava's own ``LIF`` process expresses the neurons exactly (and Loihi runs them)."""
        return self.reset == "zero" and not self.adaptive and self.n_ref == 0 and not self.v_leak and not self.v_reset

    def lava_lif_reason(self) -> str:
        """Why Lava's ``LIF`` cannot run these neurons ('' when it can)."""
        why = []
        if self.reset != "zero":
            why.append(f"reset={self.reset!r} (Lava's LIF resets v to 0)")
        if self.adaptive:
            why.append("adaptive thresholds (ALIF)")
        if self.n_ref:
            why.append(f"a refractory period of {self.n_ref} substeps")
        if self.v_leak or self.v_reset:
            why.append(f"v_leak={self.v_leak:g} / v_reset={self.v_reset:g} (Lava's LIF leaks toward 0 and resets to 0)")
        return ", ".join(why)

    def scalars(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in _ARRAYS}
