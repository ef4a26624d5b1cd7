"""Ring-attractor head-direction baseline (Zhang 1996), with the same ``run`` interface as the circuit.

Rate model of N neurons at preferred headings ``theta_i = 2 pi i / N`` (rad), time in ms::

    tau du_i/dt = -u_i + sum_j (W_ij + gamma(t) R_ij) r_j + drive,     r = tanh(log(1 + e^(4u)) / 4)
    W_ij = (J0 + J1 cos(theta_i - theta_j)) / N,   R_ij = J1 sin(theta_i - theta_j) / N = -dW/dtheta_i

``W`` (uniform inhibition J0 < 0, local excitation J1) holds a bump anywhere on the ring: a continuum of
fixed points. Adding ``gamma R`` (Zhang's asymmetric, velocity-modulated weights) makes the bump travel
at an angular speed that grows with ``gamma``. To make the baseline fair, the map angular velocity ->
gamma is *calibrated*: the bump speed is measured on a grid of gamma and inverted, so the noise-free
network integrates velocity as well as its dynamics allow (Euler steps of ``dt`` ms).

Weight noise multiplies every W_ij and every R_ij by its own frozen ``1 + sigma xi``; the symmetry that
makes the continuum of fixed points is then broken and the bump drifts towards a few preferred headings
(Renart, Song & Wang 2003) -- the fine-tuning problem.
"""
from __future__ import annotations

import numpy as np
import torch

from ..tasks.head_direction import integrate_heading
from .delay_sim import one_thread
from .readout import HDResult, lowpass, population_vector, wrap


class RingAttractor:
    """Zhang (1996) ring attractor with calibrated velocity input.

    Args:
        n_neurons: N neurons on the ring (divisible by ``n_segments``).
        n_segments: readout segments (neurons pooled per segment, as for the circuit).
        tau: neuron time constant (ms). dt: Euler step (ms).
        J0, J1: uniform and cosine coupling; drive: uniform input.
        readout_tau: low-pass filter (ms) of the pooled rates (0: none; the rates are already smooth).
        max_speed_deg_s: largest calibrated angular speed (deg/s); faster inputs are clipped to it.
    """

    def __init__(self, n_neurons: int = 128, n_segments: int = 8, tau: float = 10.0, dt: float = 0.5,
                 J0: float = -4.0, J1: float = 8.0, drive: float = 1.0, readout_tau: float = 0.0,
                 max_speed_deg_s: float = 1000.0) -> None:
        if n_neurons < 8 or n_segments < 1 or n_neurons % n_segments:
            raise ValueError(f"n_neurons ({n_neurons}) must be >= 8 and divisible by "
                             f"n_segments ({n_segments})")
        if tau <= 0 or dt <= 0 or dt > tau / 2:
            raise ValueError(f"need tau > 0 and 0 < dt <= tau / 2 ms, got tau={tau}, dt={dt}")
        self.n, self.n_segments, self.tau, self.dt = int(n_neurons), int(n_segments), float(tau), float(dt)
        self.J0, self.J1, self.drive = float(J0), float(J1), float(drive)
        self.readout_tau = float(readout_tau)
        self.max_speed_deg_s = float(max_speed_deg_s)
        self.theta = 2 * np.pi * np.arange(self.n) / self.n
        diff = self.theta[:, None] - self.theta[None, :]
        self.W = (self.J0 + self.J1 * np.cos(diff)) / self.n
        self.R = self.J1 * np.sin(diff) / self.n
        m = self.n // self.n_segments
        self.pool = np.zeros((self.n, self.n_segments))
        self.pool[np.arange(self.n), np.arange(self.n) // m] = 1.0 / m
        self.segment_angles = 2 * np.pi * (np.arange(self.n_segments) * m + (m - 1) / 2) / self.n
        self.bump_profile = self._settle()
        self.gamma_grid, self.speed_grid = self._calibrate()

    # -- dynamics ---------------------------------------------------------------------------------------
    @staticmethod
    def rate(u: torch.Tensor) -> torch.Tensor:
        """tanh(softplus_4(u)): a *smooth* saturating rectifier. A hard threshold ([u]_+) pins the bump
        to the lattice of neurons (the noise-free ring then drifts by ~1 deg in seconds); smooth, it
        holds any heading."""
        return torch.tanh(torch.nn.functional.softplus(u, beta=4.0))

    def _simulate(self, u0: np.ndarray, gamma: np.ndarray, hold: int, W: np.ndarray, R: np.ndarray,
                  rate_noise: float = 0.0, seed: int = 0, device=None, dtype=torch.float32,
                  keep: str = "pooled", cue: np.ndarray | None = None, tau: np.ndarray | None = None,
                  drive: np.ndarray | None = None, delays: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Euler-integrate B rings from ``u0`` [B, N] with ``gamma`` [T, B] held ``hold`` steps each;
        W, R: [N, N] or [B, N, N]; ``cue`` [B, N]: extra constant input; ``tau`` [B, N] per-neuron time
        constants (ms), ``drive`` [B, N] per-neuron uniform input, ``delays`` [B, N] per-neuron axonal
        delays (ms; a neuron's rate reaches every target that late, linearly interpolated between Euler
        steps). Returns (recorded [T, B, K] at the end of each sample, final u)."""
        dev = torch.device(device) if device is not None else None
        u = torch.as_tensor(u0, dtype=dtype, device=dev).clone()
        g = torch.as_tensor(np.asarray(gamma), dtype=dtype, device=dev)
        Wt = torch.as_tensor(W, dtype=dtype, device=dev)
        Rt = torch.as_tensor(R, dtype=dtype, device=dev)
        pool = torch.as_tensor(self.pool, dtype=dtype, device=dev)
        batched = Wt.ndim == 3
        a = self.dt / self.tau if tau is None else torch.as_tensor(self.dt / np.asarray(tau), dtype=dtype,
                                                                   device=dev)
        base = self.drive if drive is None else torch.as_tensor(drive, dtype=dtype, device=dev)
        drive = base if cue is None else base + torch.as_tensor(cue, dtype=dtype, device=dev)
        T, B = g.shape
        hist = None
        if delays is not None:  # ring buffer of past rates, read at fractional delays
            d = np.asarray(delays, dtype=np.float64) / self.dt
            if d.min() < 0:
                raise ValueError("ring delays must be >= 0 ms")
            k0 = np.floor(d).astype(np.int64)
            H = int(k0.max()) + 2
            frac = torch.as_tensor(d - k0, dtype=dtype, device=dev).reshape(-1)
            k0t = torch.as_tensor(k0, device=dev).reshape(-1)
            col = torch.arange(B * self.n, device=dev)
            hist = self.rate(u).reshape(1, -1).repeat(H, 1)
            step = 0
        out = torch.zeros(T, B, self.n_segments if keep == "pooled" else self.n, dtype=dtype, device=dev)
        gen = torch.Generator(device=u.device)
        gen.manual_seed(int(seed))
        with torch.no_grad(), one_thread(u.device):
            for k in range(T):
                for _ in range(hold):
                    r = self.rate(u)
                    if hist is not None:
                        hist[step % H] = r.reshape(-1)
                        r = ((1 - frac) * hist[(step - k0t) % H, col]
                             + frac * hist[(step - k0t - 1) % H, col]).reshape(B, self.n)
                        step += 1
                    if batched:
                        sym = torch.bmm(Wt, r[:, :, None])[:, :, 0]
                        rot = torch.bmm(Rt, r[:, :, None])[:, :, 0]
                    else:
                        sym, rot = r @ Wt.T, r @ Rt.T
                    u = u + a * (-u + sym + g[k][:, None] * rot + drive)
                    if rate_noise > 0:
                        u = u + rate_noise * np.sqrt(a) * torch.randn(u.shape, generator=gen, dtype=dtype,
                                                                      device=u.device)
                r = self.rate(u)
                out[k] = r @ pool if keep == "pooled" else r
        return out.cpu().double().numpy(), u.cpu().double().numpy()

    def _settle(self) -> np.ndarray:
        """The noise-free bump centred on heading 0 (u, [N]), settled from a cosine cue."""
        u0 = (0.5 * np.cos(self.theta))[None]
        _, u = self._simulate(u0, np.zeros((int(500 / self.dt), 1)), 1, self.W, self.R, dtype=torch.float64)
        return self.shift(u[0], -self._centre(u[0]))

    def _centre(self, u: np.ndarray) -> float:
        r = self.rate(torch.as_tensor(u)).numpy()
        return float(np.angle(np.sum(r * np.exp(1j * self.theta))))

    def shift(self, u: np.ndarray, angle: float | np.ndarray) -> np.ndarray:
        """The profile ``u`` [N] rotated by ``angle`` (rad; array -> [B, N]), by a Fourier phase shift."""
        k = np.fft.rfftfreq(self.n, d=1.0 / self.n)
        ang = np.atleast_1d(np.asarray(angle, dtype=np.float64))
        spec = np.fft.rfft(u)[None] * np.exp(-1j * k[None] * ang[:, None])
        out = np.fft.irfft(spec, n=self.n)
        return out if np.ndim(angle) else out[0]

    def _calibrate(self, n_points: int = 33, seconds: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
        """Bump speed (rad/s) on a grid of gamma >= 0, measured after a transient; extended until the
        speed passes ``max_speed_deg_s``. Returns the monotone part of (gamma, speed)."""
        target = np.deg2rad(self.max_speed_deg_s)
        g_max = 1.25 * target / 1000.0 * self.tau  # Zhang (1996): speed ~ gamma / tau for small gamma
        for _ in range(8):
            gammas = np.linspace(0.0, g_max, n_points)
            steps = int(round(seconds * 1000 / self.dt))
            u0 = np.repeat(self.bump_profile[None], n_points, axis=0)
            rates, _ = self._simulate(u0, np.repeat(gammas[None], steps, axis=0), 1, self.W, self.R,
                                      keep="full", dtype=torch.float64)
            phase = np.unwrap(np.angle(rates @ np.exp(1j * self.theta)), axis=0)
            skip = steps // 3
            speed = (phase[-1] - phase[skip]) / ((steps - 1 - skip) * self.dt / 1000.0)
            if speed.max() >= target:
                break
            g_max *= 2
        else:
            raise ValueError(f"the ring cannot reach {self.max_speed_deg_s} deg/s; lower max_speed_deg_s")
        mono = np.concatenate([[True], np.diff(speed) > 0])
        stop = np.argmin(mono) if not mono.all() else len(speed)
        return gammas[:stop], speed[:stop]

    def gamma_for(self, angular_velocity: np.ndarray) -> np.ndarray:
        """Velocity input gamma for angular velocity (rad/s), from the calibration (odd, clipped)."""
        w = np.asarray(angular_velocity, dtype=np.float64)
        return np.sign(w) * np.interp(np.abs(w), self.speed_grid, self.gamma_grid)

    def perturbed_weights(self, sigma: float, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` frozen realisations of ``W (1 + sigma xi)`` and ``R (1 + sigma xi')``: ([n,N,N], [n,N,N])."""
        if sigma < 0 or n < 1:
            raise ValueError(f"need sigma >= 0 and n >= 1, got sigma={sigma}, n={n}")
        rng = np.random.default_rng(seed)
        xi = rng.standard_normal((2, n, self.n, self.n))
        return self.W * (1 + sigma * xi[0]), self.R * (1 + sigma * xi[1])

    # -- the common interface ---------------------------------------------------------------------------
    def run(self, angular_velocity: np.ndarray, dt: float = 1.0, theta0: float | np.ndarray = 0.0,
            weight_noise: float = 0.0, seed: int = 0, weights: tuple[np.ndarray, np.ndarray] | None = None,
            rate_noise: float = 0.0, cue_ms: float = 200.0, cue_strength: float = 0.5,
            device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
            progress: bool | None = None, tau: np.ndarray | None = None, drive: np.ndarray | None = None,
            delays: np.ndarray | None = None, gamma_offset: float | np.ndarray = 0.0) -> HDResult:
        """Integrate ``angular_velocity`` (rad/s, [T] or [T, B], one sample per ``dt`` ms) from the bump
        at ``theta0`` (rad). ``weight_noise``: sigma of frozen multiplicative noise on every weight (one
        realisation per column, from ``seed``) or ``weights=(W [B,N,N], R [B,N,N])``; ``rate_noise``:
        std of white noise on u (S-type, per sqrt(step fraction)).

        Before t = 0 the bump is set by a cue, as in experiments: ``cue_ms`` of extra input
        ``cue_strength * cos(theta_i - theta0)`` with the network's own (possibly perturbed) weights, so
        that every run starts from a settled bump at ``theta0``; the cue is then removed."""
        w = np.asarray(angular_velocity, dtype=np.float64)
        single = w.ndim == 1
        w2 = w[:, None] if single else w
        if w2.ndim != 2:
            raise ValueError(f"angular_velocity must be [T] or [T, B] rad/s, got shape {w.shape}")
        T, B = w2.shape
        hold = dt / self.dt
        if dt <= 0 or abs(hold - round(hold)) > 1e-6 or round(hold) < 1:
            raise ValueError(f"the velocity step dt={dt} ms must be a positive multiple of the ring's "
                             f"dt={self.dt} ms")
        hold = int(round(hold))
        th0 = np.broadcast_to(np.asarray(theta0, dtype=np.float64), (B,))
        if weights is None:
            W, R = (self.W, self.R) if weight_noise == 0 else self.perturbed_weights(weight_noise, B, seed)
        else:
            W, R = weights
        u0 = self.shift(self.bump_profile, th0)
        if cue_ms > 0:
            cue = cue_strength * np.cos(self.theta[None] - th0[:, None])
            n_cue = int(round(cue_ms / self.dt))
            _, u0 = self._simulate(u0, np.zeros((n_cue, B)) + gamma_offset, 1, W, R, 0.0, seed, device, dtype,
                                   cue=cue, tau=tau, drive=drive, delays=delays)
        pooled, _ = self._simulate(u0, self.gamma_for(w2) + gamma_offset, hold, W, R, rate_noise, seed, device,
                                   dtype, tau=tau, drive=drive, delays=delays)
        bump = lowpass(pooled, dt, self.readout_tau)
        decoded = population_vector(bump, self.segment_angles)
        heading = wrap(integrate_heading(w2, dt, th0))
        res = HDResult(heading, decoded, bump, None, float(dt), self.dt, self.segment_angles, None)
        if single:
            res.heading, res.decoded, res.bump = heading[:, 0], decoded[:, 0], bump[:, 0]
        return res

    def __repr__(self) -> str:
        return (f"RingAttractor(n_neurons={self.n}, tau={self.tau} ms, dt={self.dt} ms, J0={self.J0}, "
                f"J1={self.J1}, calibrated up to {np.rad2deg(self.speed_grid[-1]):.0f} deg/s)")
