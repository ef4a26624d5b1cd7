"""Rate-to-spike conversion: the spiking twin of a trained ``RateRNN``.

Each rate unit becomes one current-based integrate-and-fire neuron (``tau_mem = inf``, reset by
subtraction, ``v_th = 1``) run at ``substeps`` neuron updates per input step. Such a neuron fires at
``rho = clip(c, 0, 1)`` spikes per substep for a constant drive ``c`` (the subtractive reset keeps
the remainder, so rate coding is exact on average). We approximate the rate nonlinearity by

    f(x) ~= lam * clip(k x + c, 0, 1)

and let the synaptic current carry ``k x``: the current filter ``du`` is the rate net's leak
``alpha`` spread over the substeps, ``1 - du = (1 - alpha)^(1/substeps)``, and every synaptic input
is scaled by ``du`` so that steady states coincide. With ``lam * rho`` standing in for ``f(x)``:

    W_in'  = du k W_in          W_rec' = du k lam W_rec       b' = k b + c   (bias enters v directly)
    W_out' = lam W_out          b_out' = b_out                (readout of the filtered spikes)

| activation   | lam, k, c                | exact where                                      |
|--------------|--------------------------|--------------------------------------------------|
| relu         | lam = L, k = 1/L, c = 0  | 0 <= x <= L (L calibrated: 99th pct of f(x))     |
| softplus     | as relu                  | x >> 0 (softplus ~ relu)                         |
| shifted_tanh | lam = 2, k = 1/2, c = 1/2| slope and saturation of 1 + tanh(x) matched at 0 |

``tanh`` (signed rates) has no single-neuron spiking twin: ``mirror`` refuses it with a clear error.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .rate import RateRNN
from .spiking import SpikingRNN


def activation_linearisation(rate_model: RateRNN, inputs: Tensor | None, percentile: float) -> tuple:
    """(lam, k, c) of ``f(x) ~= lam clip(k x + c, 0, 1)`` for the model's activation."""
    act = rate_model.activation
    if act == "shifted_tanh":
        return 2.0, 0.5, 0.5
    if act in ("relu", "softplus"):
        if inputs is None:
            raise ValueError(
                f"mirror of a {act} network needs calibration inputs: mirror(model, inputs=batch.inputs)"
            )
        with torch.no_grad():
            r = rate_model(inputs).r
        lam = float(torch.quantile(r.flatten().float()[:1_000_000], percentile / 100.0))
        lam = max(lam, 1e-3)
        return lam, 1.0 / lam, 0.0
    raise ValueError(
        f"activation {act!r} has signed rates and no single-neuron spiking twin; "
        "train the rate net with activation='relu', 'softplus' or 'shifted_tanh' to mirror it"
    )


@torch.no_grad()
def mirror(
    rate_model: RateRNN,
    inputs: Tensor | Any | None = None,
    substeps: int = 10,
    dt: float | None = None,
    tau_out: float | None = None,
    percentile: float = 99.0,
    **spiking_kwargs: Any,
) -> SpikingRNN:
    """Build the spiking twin of ``rate_model`` (see the module doc for the conversion).

    Args:
        rate_model: a trained ``RateRNN`` (relu, softplus or shifted_tanh units).
        inputs: calibration inputs [T, B, I] (needed for relu/softplus to choose the rate scale).
        substeps: neuron updates per input step; more substeps = finer rate code.
        dt: the task's step in ms (only sets time units of the spiking model; default: the rate net's
            ``dt``, so that both report Lyapunov exponents and time constants in the same units).
        tau_out: readout filter in ms; default: the rate net's time constant ``dt / alpha``.
        percentile: activity percentile mapped to one spike per substep (relu/softplus).
        spiking_kwargs: further ``SpikingRNN`` arguments (e.g. ``surrogate``) for fine-tuning.
    """
    if not isinstance(rate_model, RateRNN):
        raise TypeError(f"mirror expects a RateRNN, got {type(rate_model).__name__}")
    if inputs is not None and not isinstance(inputs, Tensor):
        inputs = torch.as_tensor(inputs)
    if inputs is not None:
        inputs = inputs.to(rate_model.device, rate_model.dtype)
    lam, k, c = activation_linearisation(rate_model, inputs, percentile)
    dt = float(rate_model.dt) if dt is None else float(dt)
    du = 1.0 - (1.0 - rate_model.alpha) ** (1.0 / substeps)
    if du == 0.0:
        raise ValueError("rate model alpha is too small for this many substeps")
    tau_rate = dt / rate_model.alpha
    kwargs: dict[str, Any] = dict(
        neuron="lif", dt=dt, substeps=substeps, tau_mem=float("inf"), du=du, v_th=1.0,
        reset="subtract", tau_out=tau_rate if tau_out is None else tau_out,
    )  # fmt: skip
    kwargs.update(spiking_kwargs)
    twin = SpikingRNN(rate_model.n_in, rate_model.n_hidden, rate_model.n_out, **kwargs)
    twin = twin.to(device=rate_model.device, dtype=rate_model.dtype)
    twin.W_in.copy_(du * k * rate_model.W_in)
    twin.W_rec.copy_(du * k * lam * rate_model.W_rec)
    twin.b.copy_(k * rate_model.b + c)
    twin.W_out.copy_(lam * rate_model.W_out)
    twin.b_out.copy_(rate_model.b_out)
    twin.mirror_scale = (lam, k, c)  # kept for analysis: lam * rbar approximates f(x)
    return twin
