"""Side-by-side timings behind the speed statements in docs/analysis.md (one process, same inputs).

    python benchmarks/analysis_speed.py

1. GRURNN.forward (torch's native GRU kernel) vs GRURNN.loop (the Python step loop): forward + backward on a
   copy-memory batch (T = 120, B = 64, N = 128).
2. Closed-form tangent maps vs forward-mode autograd (AutogradDynamics) for a RateRNN spectrum.
3. Many RateRNNs stacked in one batch vs one at a time.
Prints the ratios; the machine's load is shared, so run it on an idle machine for stable numbers.
"""
from __future__ import annotations

import time

import numpy as np
import torch

torch.set_num_threads(1)


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def gru_speed() -> tuple[float, float]:
    import spikedyn.tasks as T

    from spikedyn.learning.losses import task_loss
    from spikedyn.models import GRURNN

    batch = T.make("copy_memory", delay=100).sample(64, 0)
    u, y, m = (torch.as_tensor(a) for a in (batch.inputs, batch.targets, batch.mask))
    torch.manual_seed(0)
    model = GRURNN(10, 128, 9)

    def run(rollout):
        def f():
            loss = task_loss(rollout(u).y, y, m, "ce")
            loss.backward()
        return f

    return best_of(run(model.loop)), best_of(run(model.forward))


def tangent_speed() -> tuple[float, float]:
    from spikedyn.analysis.jacobian import AutogradDynamics, RateDynamics
    from spikedyn.analysis.lyapunov import qr_exponents
    from spikedyn.models import RateRNN

    m = RateRNN(1, 64, 1, gain=1.5).double()
    u = torch.zeros(300, 4, 1, dtype=torch.float64)
    start = m.init_state(4)._replace(x=0.1 * torch.randn(4, 64, dtype=torch.float64))

    def run(dyn):
        def f():
            with torch.no_grad():
                qr_exponents(dyn, start, u, 16, 100)
        return f

    return best_of(run(AutogradDynamics(m))), best_of(run(RateDynamics(m)))


def stacked_speed() -> tuple[float, float]:
    from spikedyn.analysis import lyapunov_spectrum
    from spikedyn.models import RateRNN

    torch.manual_seed(0)
    models = [RateRNN(1, 32, 1, gain=g) for g in np.linspace(0.5, 2.0, 16)]
    u = torch.zeros(300, 2, 1)
    one = best_of(lambda: [lyapunov_spectrum(m, u, k=4) for m in models], repeats=1)
    together = best_of(lambda: lyapunov_spectrum(models, u, k=4), repeats=1)
    return one, together


if __name__ == "__main__":
    loop, fused = gru_speed()
    print(f"GRU fwd+bwd, T=120 B=64 N=128: step loop {loop * 1e3:.0f} ms, fused {fused * 1e3:.0f} ms "
          f"-> {loop / fused:.1f}x")
    auto, closed = tangent_speed()
    print(f"RateRNN spectrum (N=64, k=16, 300 steps, B=4): autograd {auto:.2f} s, closed form {closed:.2f} s "
          f"-> {auto / closed:.1f}x")
    one, together = stacked_speed()
    print(f"16 RateRNNs (N=32, k=4, 300 steps): one at a time {one:.2f} s, stacked {together:.2f} s "
          f"-> {one / together:.1f}x")
