"""One table for a set of trained bodies: ``ComparisonTable`` and the per-body measurements behind it.

``spikedyn.compare(bodies, task)`` (``spikedyn.experiments.compare``: it needs ``spikedyn.learning`` for
the held-out scores and ``spikedyn.export`` for Lava, which this layer may not import) runs every body on
the same held-out trials and fills a ``ComparisonTable`` from the functions here:

* ``spike_statistics(spikes, W_rec, dt_sub)``: mean firing rate (Hz) and synaptic operations per trial.
  One SynOp is one spike delivered to one recurrent target: a spike of neuron ``j`` costs the number of
  non-zero entries of column ``j`` of the recurrent matrix the network uses (its fan-out). The input
  current ``W_in u`` is analogue and the readout is computed on the host, so neither counts.
* ``filtered_rates(spikes, kappa, substeps)``: the readout's low-pass-filtered spikes r̄ at the end of
  each input step (the same filter as the torch model and ``spikedyn.hardware.reference.readout``), used
  as the activity of a Lava run.
* ``body_dynamics(model, u, ...)``: the top Lyapunov exponents (``lyapunov_spectrum``, per second for
  every body) and the fixed points at zero input (``fixed_points``) with the integrator type they imply:
  McMahan et al. 2024 (Sec. 3.3) call a network with one attractor at zero input a *transient* integrator
  and one with two or more a *stable* integrator (``integrator_type``).
* ``similarity_matrices(activities)``: SVCCA (Raghu et al. 2017) and linear CKA between every pair of
  bodies' activity on the same trials.

``ComparisonTable`` prints as an aligned text table, writes JSON and CSV atomically and plots PCA
trajectories with fixed points, the similarity matrices and the Lyapunov spectra.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

INTEGRATOR_TYPES = ("transient", "stable", "none")

# (key, title, format) of the printed table; a missing value prints as "-"
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("body", "body", "s"),
    ("kind", "kind", "s"),
    ("accuracy", "accuracy", ".3f"),
    ("loss", "loss", ".4f"),
    ("lyapunov", "top Lyapunov (1/s)", "lyap"),
    ("fixed_points", "FPs u=0 (stable/all)", "fp"),
    ("integrator", "integrator", "s"),
    ("firing_rate_hz", "rate (Hz)", ".1f"),
    ("synops_per_trial", "SynOps/trial", ".3g"),
    ("lava_spike_agreement", "Lava spikes = torch", ".4f"),
    ("lava_decision_agreement", "Lava choice = torch", ".3f"),
)


def integrator_type(n_stable: int) -> str:
    """McMahan et al. 2024's classes from the number of stable fixed points at zero input: one is a
    transient (leaky) integrator, two or more a stable one; "none" when no attractor was found."""
    if n_stable < 0:
        raise ValueError(f"n_stable must be >= 0, got {n_stable}")
    return "none" if n_stable == 0 else ("transient" if n_stable == 1 else "stable")


def spike_statistics(spikes: Any, W_rec: Any, dt_sub_ms: float) -> dict[str, float]:
    """Firing rate and synaptic operations of spike trains ``[S, B, N]`` (every neuron update of B trials).

    Returns ``firing_rate_hz`` (spikes per neuron per second; a substep lasts ``dt_sub_ms`` ms),
    ``spikes_per_trial`` and ``synops_per_trial`` (each spike of neuron j times its fan-out, the number of
    non-zero entries of column j of ``W_rec [N, N]``, as the network uses it).
    """
    z = np.asarray(spikes.detach().cpu().numpy() if hasattr(spikes, "detach") else spikes, dtype=np.float64)
    W = np.asarray(W_rec.detach().cpu().numpy() if hasattr(W_rec, "detach") else W_rec, dtype=np.float64)
    if z.ndim != 3:
        raise ValueError(f"spikes must be [S, B, N] (substeps, trials, neurons), got shape {z.shape}")
    S, B, N = z.shape
    if W.shape != (N, N):
        raise ValueError(f"W_rec must be [{N}, {N}] for {N} neurons, got {W.shape}")
    if not (math.isfinite(dt_sub_ms) and dt_sub_ms > 0):
        raise ValueError(f"dt_sub_ms must be a positive number of ms, got {dt_sub_ms}")
    fan_out = np.count_nonzero(W, axis=0).astype(np.float64)  # column j: the targets of neuron j
    per_neuron = z.sum(axis=(0, 1))  # [N] spikes over all trials
    seconds = S * dt_sub_ms / 1000.0
    return {
        "firing_rate_hz": float(per_neuron.sum() / (N * B * seconds)) if S and B and N else 0.0,
        "spikes_per_trial": float(per_neuron.sum() / B) if B else 0.0,
        "synops_per_trial": float(per_neuron @ fan_out / B) if B else 0.0,
    }


def filtered_rates(spikes: Any, kappa: float, substeps: int) -> np.ndarray:
    """The readout trace r̄ ``[T, B, N]`` at the end of every input step from spikes ``[T * substeps, B, N]``
    (``r̄ <- kappa r̄ + (1 - kappa) z`` every substep, from r̄ = 0: ``spikedyn.hardware.neuron.readout_filter``)."""
    from spikedyn.hardware.neuron import readout_filter

    z = np.asarray(spikes, dtype=np.float64)
    if z.ndim != 3 or z.shape[0] % int(substeps):
        raise ValueError(f"spikes must be [T * substeps, B, N] with substeps={substeps}, got shape {z.shape}")
    rbar = np.zeros(z.shape[1:])
    out = np.zeros((z.shape[0] // substeps, *z.shape[1:]))
    for s in range(z.shape[0]):
        rbar = readout_filter(kappa, rbar, z[s])
        if (s + 1) % substeps == 0:
            out[s // substeps] = rbar
    return out


def body_dynamics(model: Any, u: Any, *, k: int = 3, n_inits: int = 128, seed: int = 0,
                  tol: float = 1e-8, step_ms: float | None = None) -> dict[str, Any]:
    """Top-``k`` Lyapunov exponents (per second) of ``model`` driven by ``u [T, B, I]`` and its fixed points
    at zero input (``fixed_points`` from ``n_inits`` states). Returns ``lyapunov`` (list, descending),
    ``fixed_points`` (unique points found), ``stable_fixed_points``, ``integrator`` (``integrator_type``)
    and ``points [K, N]`` (in the space ``activity`` records: ``FixedPoints.activity``) / ``stable [K]``.
    ``step_ms``: the duration of one input step in ms (default: the body's own ``dt``)."""
    import torch

    from .fixed_points import fixed_points
    from .lyapunov import lyapunov_spectrum

    n = int(model.n_hidden)
    step_s = (float(model.dt) if step_ms is None else float(step_ms)) / 1000.0
    spectrum = lyapunov_spectrum(model, u, k=min(int(k), n), seed=seed, dt=step_s)  # per second
    u0 = torch.zeros(int(model.n_in), dtype=torch.float64)
    fps = fixed_points(model, u0, n_inits=n_inits, tol=tol, seed=seed, progress=False)
    stable = _numpy(fps.stable).astype(bool).reshape(-1)
    n_stable = int(stable.sum())
    return {
        "lyapunov": [float(v) for v in np.asarray(spectrum).reshape(-1)],
        "fixed_points": int(stable.size),
        "stable_fixed_points": n_stable,
        "integrator": integrator_type(n_stable),
        "points": _numpy(fps.activity).astype(np.float64).reshape(-1, n),
        "stable": stable,
    }


def _numpy(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)


def similarity_matrices(activities: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{"svcca": [M, M], "cka": [M, M]}`` between the bodies' activities (each ``[samples, N_i]``, the same
    samples in the same order; sizes N_i may differ). The diagonals are 1."""
    from .similarity import cka, svcca

    labels = list(activities)
    M = len(labels)
    out = {"svcca": np.eye(M), "cka": np.eye(M)}
    for i in range(M):
        for j in range(i + 1, M):
            A, B = activities[labels[i]], activities[labels[j]]
            if A.shape[0] != B.shape[0]:
                raise ValueError(f"{labels[i]} and {labels[j]} have activity on {A.shape[0]} and {B.shape[0]} "
                                 "samples; compare needs the same trials for every body")  # fmt: skip
            out["svcca"][i, j] = out["svcca"][j, i] = float(svcca(A, B))
            out["cka"][i, j] = out["cka"][j, i] = float(cka(A, B))
    return out


def pca_project(activity: np.ndarray, *others: np.ndarray, n_components: int = 2) -> tuple[np.ndarray, ...]:
    """Project ``activity [..., N]`` (and ``others``, in the same space) onto the top principal components
    of ``activity`` (sklearn's PCA, fitted on every sample of ``activity``)."""
    from sklearn.decomposition import PCA

    flat = activity.reshape(-1, activity.shape[-1])
    n_components = min(n_components, *flat.shape)
    pca = PCA(n_components=n_components, random_state=0).fit(flat)
    proj = [pca.transform(flat).reshape(*activity.shape[:-1], n_components)]
    for o in others:
        proj.append(pca.transform(o.reshape(-1, o.shape[-1])).reshape(*o.shape[:-1], n_components)
                    if o.size else np.zeros((0, n_components)))
    return tuple(proj)


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return x.item()
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    value = row.get(key)
    if fmt == "fp":
        return "-" if value is None else f"{row.get('stable_fixed_points', '?')}/{value}"
    if value is None or value == "":
        return "-"
    if fmt == "lyap":
        return " ".join(f"{v:+.3g}" for v in value)
    if fmt == "s":
        return str(value)
    return format(float(value), fmt)


@dataclass
class ComparisonTable:
    """The comparison of several bodies on the same held-out trials (``spikedyn.compare``).

    ``rows``: one dict per body (``COLUMNS`` keys plus ``rule``, ``n_hidden``, ``lava_*`` details and a
    ``note``); ``labels``: the bodies' names in row order; ``similarity``: ``{"svcca", "cka"}`` ``[M, M]``
    matrices in label order; ``views``: per body the PCA projection of a few trials' activity
    (``trajectories [T, b, 2]``, ``choice [b]``) and of its fixed points (``fixed_points [K, 2]``,
    ``stable [K]``); ``meta``: the task, trials, seed and units. ``str(table)`` is the printed table.
    """

    rows: list[dict[str, Any]]
    labels: list[str]
    similarity: dict[str, np.ndarray]
    views: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self, label: str) -> dict[str, Any]:
        """The row of the body named ``label``."""
        for r in self.rows:
            if r["body"] == label:
                return r
        raise KeyError(f"no body {label!r}; bodies: {self.labels}")

    def similarity_to(self, label: str, metric: str = "svcca") -> dict[str, float]:
        """``metric`` ("svcca" or "cka") between ``label`` and every other body."""
        i = self.labels.index(label)
        return {other: float(self.similarity[metric][i, j]) for j, other in enumerate(self.labels) if j != i}

    # -- text ---------------------------------------------------------------------------------------
    def __str__(self) -> str:
        head = [title for _, title, _ in COLUMNS]
        cells = [[_cell(r, key, fmt) for key, _, fmt in COLUMNS] for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
        lines = []
        if self.meta:
            m = self.meta
            lines.append(f"{len(self.rows)} bodies on {m.get('n_trials')} held-out {m.get('task_name', '')} trials "
                         f"(seed {m.get('seed')}); Lyapunov exponents per second, fixed points at zero input")
        lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
        for metric in ("svcca", "cka"):
            if metric in self.similarity and len(self.labels) > 1:
                lines += ["", f"{metric.upper()} (1 = the same representation up to a linear map)"]
                short = [f"[{i}]" for i in range(len(self.labels))]
                lines.append(" " * 6 + "".join(s.rjust(7) for s in short))
                for i, lab in enumerate(self.labels):
                    vals = "".join(f"{v:7.3f}" for v in self.similarity[metric][i])
                    lines.append(f"{short[i]:<6}{vals}  {lab}")
        notes = [f"{r['body']}: {r['note']}" for r in self.rows if r.get("note")]
        if notes:
            lines += ["", *(f"note: {n}" for n in notes)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types (views included)."""
        return _plain({"meta": self.meta, "labels": self.labels, "rows": self.rows,
                       "similarity": self.similarity, "views": self.views})  # fmt: skip

    def to_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as JSON (atomically)."""
        from ..atomic import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())
        return Path(path)

    def csv_rows(self) -> list[dict[str, Any]]:
        """Flat rows: ``lyapunov_1..k``, ``svcca:<body>`` and ``cka:<body>`` columns."""
        k = max((len(r.get("lyapunov") or []) for r in self.rows), default=0)
        flat = []
        for i, r in enumerate(self.rows):
            out = {key: v for key, v in r.items() if key != "lyapunov" and not isinstance(v, (list, dict))}
            lyap = r.get("lyapunov") or []
            for j in range(k):
                out[f"lyapunov_{j + 1}"] = lyap[j] if j < len(lyap) else None
            for metric, S in self.similarity.items():
                for j, other in enumerate(self.labels):
                    out[f"{metric}:{other}"] = float(S[i, j])
            flat.append(out)
        return flat

    def to_csv(self, path: str | Path) -> Path:
        """Write ``csv_rows()`` as CSV (atomically)."""
        from ..atomic import atomic_write_bytes

        rows = self.csv_rows()
        keys: list[str] = []
        for r in rows:
            keys += [k for k in r if k not in keys]
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_bytes(Path(path), buf.getvalue().encode())
        return Path(path)

    # -- figure -------------------------------------------------------------------------------------
    def plot(self, path: str | Path | None = None) -> Any:
        """A figure: each body's trajectories in its top two PCs with its fixed points at zero input
        (filled: stable, open: unstable), the SVCCA and CKA matrices and the Lyapunov spectra. Saved as
        PNG (atomically) when ``path`` is given; returns the figure (closed once saved)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        M = len(self.labels)
        cols = max(3, min(M, 4))
        traj_rows = math.ceil(M / cols)
        fig = plt.figure(figsize=(3.3 * cols, 3.0 * (traj_rows + 1) + 0.4))
        grid = fig.add_gridspec(traj_rows + 1, cols)
        for i, label in enumerate(self.labels):
            ax = fig.add_subplot(grid[i // cols, i % cols])
            view = self.views.get(label, {})
            traj = view.get("trajectories")
            if traj is not None and np.size(traj):
                choice = np.asarray(view.get("choice", np.ones(traj.shape[1])))
                for b in range(traj.shape[1]):
                    ax.plot(traj[:, b, 0], traj[:, b, 1], lw=0.8, alpha=0.7,
                            color="tab:red" if choice[b] > 0 else "tab:blue")
            pts = view.get("fixed_points")
            if pts is not None and np.size(pts):
                stable = np.asarray(view.get("stable", np.ones(len(pts), bool)), bool)
                ax.scatter(pts[stable, 0], pts[stable, 1], c="k", s=30, zorder=3, label="stable FP")
                ax.scatter(pts[~stable, 0], pts[~stable, 1], facecolors="none", edgecolors="k", s=30, zorder=3,
                           label="unstable FP")
            ax.set_title(label, fontsize=8)
            ax.set_xlabel("PC 1", fontsize=7)
            ax.set_ylabel("PC 2", fontsize=7)
            ax.tick_params(labelsize=6)
        short = [str(i) for i in range(M)]
        for c, metric in enumerate(("svcca", "cka")):
            ax = fig.add_subplot(grid[traj_rows, c])
            S = self.similarity.get(metric, np.eye(M))
            im = ax.imshow(S, vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(M), short, fontsize=7)
            ax.set_yticks(range(M), short, fontsize=7)
            for a in range(M):
                for b in range(M):
                    ax.text(b, a, f"{S[a, b]:.2f}", ha="center", va="center", fontsize=6,
                            color="w" if S[a, b] < 0.6 else "k")
            ax.set_title(metric.upper() + " (index = body)", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046)
        ax = fig.add_subplot(grid[traj_rows, 2])
        for i, r in enumerate(self.rows):
            lyap = r.get("lyapunov")
            if lyap:
                ax.plot(range(1, len(lyap) + 1), lyap, "o-", label=f"{i}: {r['body']}", ms=3)
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("exponent index", fontsize=7)
        ax.set_ylabel("Lyapunov exponent (1/s)", fontsize=7)
        ax.set_title("Lyapunov spectra", fontsize=8)
        ax.tick_params(labelsize=6)
        if ax.lines:
            ax.legend(fontsize=5)
        task = self.meta.get("task_name", "")
        fig.suptitle(f"spikedyn.compare on {task}: {self.meta.get('n_trials')} held-out trials", fontsize=9)
        fig.tight_layout()
        if path is not None:
            from ..atomic import atomic_save_figure

            atomic_save_figure(fig, Path(path))
        return fig


__all__ = [
    "COLUMNS", "ComparisonTable", "INTEGRATOR_TYPES", "body_dynamics", "filtered_rates", "integrator_type",
    "pca_project", "similarity_matrices", "spike_statistics",
]  # fmt: skip
