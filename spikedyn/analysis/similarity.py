"""Representational similarity of networks: SVCCA, linear CKA, Procrustes shape distance, MDS, silhouette.

Every metric takes two activity matrices ``A [samples, N_a]`` and ``B [samples, N_b]`` recorded on the
*same* inputs (row i of both is the same trial and time step; the unit counts may differ) and treats
the columns as features. ``activity(model, inputs)`` records such a matrix from any body:

- rate bodies (``RateRNN``, ``GRURNN``, ``LSTMRNN``): the unit outputs ``r_t`` (``f(x_t)`` / ``h_t``);
- spiking bodies (``SpikingRNN``, ``Loihi2RNN``): the readout's filtered spikes ``r̄`` -- the leaky
  integral ``r̄(s) = kappa r̄(s-1) + (1 - kappa) z(s)`` over substeps with the body's readout time
  constant ``tau_out`` (ms), sampled at the end of every input step, i.e. exactly what ``W_out`` reads
  (``y = W_out r̄ + b_out``). ``tau_ms=`` replaces that filter by another exponential filter.

Definitions (docs/analysis.md, "Representational similarity"):

- ``svcca(A, B, var)`` (Raghu et al. 2017, as McMahan et al. 2024 Sec. 2.5 used it): centre each
  matrix, keep its top K principal components that explain a fraction ``var`` of the variance, and
  return the mean canonical correlation of the two projections (in [0, 1]).
- ``cka(A, B)`` (Kornblith et al. 2019, linear): ``||Bc^T Ac||_F^2 / (||Ac^T Ac||_F ||Bc^T Bc||_F)``
  of the centred matrices (in [0, 1]).
- ``shape_distance(A, B, alpha)`` (Williams et al. 2021): the angular distance, in radians in
  [0, pi/2], between the centred, partially whitened matrices after the best rotation;
  ``alpha = 1`` is the Procrustes distance (rotations only), ``alpha = 0`` the CCA distance.

Invariances (tested in tests/test_similarity.py): all three are unchanged by translations, isotropic
scaling and orthogonal transforms of either matrix. CCA (``svcca`` with ``var=1``) and
``shape_distance(alpha=0)`` are unchanged by any invertible linear transform; linear CKA, truncated
SVCCA (``var < 1``) and the Procrustes distance are not -- by design, they weigh directions by their
variance.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "activity", "cka", "distance_matrix", "mds_embedding", "shape_distance", "silhouette", "silhouette_by_label",
    "silhouette_rows", "svcca",
]  # fmt: skip


# -- inputs -------------------------------------------------------------------------------------------------
def _matrix(X: Any, name: str) -> np.ndarray:
    """A float64 ``[samples, features]`` array from a numpy array or torch tensor (1-D = one feature)."""
    if hasattr(X, "detach"):  # a torch tensor, without importing torch here
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"{name} must be a [samples, units] matrix, got shape {X.shape}; "
                         "flatten time and trials first (activity() does)")  # fmt: skip
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"{name} needs at least 2 samples and 1 unit, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or inf")
    return X


def _pair(A: Any, B: Any) -> tuple[np.ndarray, np.ndarray]:
    A, B = _matrix(A, "A"), _matrix(B, "B")
    if A.shape[0] != B.shape[0]:
        raise ValueError(f"A and B must hold the same samples (rows): got {A.shape[0]} and {B.shape[0]}; "
                         "record both on the same inputs")  # fmt: skip
    return A - A.mean(0), B - B.mean(0)


# -- SVCCA ------------------------------------------------------------------------------------------------
def _top_pcs(X: np.ndarray, var: float) -> np.ndarray:
    """An orthonormal basis ``[samples, K]`` of the centred X's top-K PC scores, K the smallest number of
    components explaining at least ``var`` of the variance (``var = 1``: every non-null component)."""
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    keep = s > s[0] * 1e-10 if s[0] > 0 else np.zeros_like(s, dtype=bool)
    U, s = U[:, keep], s[keep]
    if s.size == 0:
        raise ValueError("activity has zero variance (a silent or constant network); SVCCA is undefined")
    if var < 1.0:
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(frac, var - 1e-12) + 1)
        U = U[:, : min(k, s.size)]
    return U


def _correlations_of_bases(Qa: np.ndarray, Qb: np.ndarray, same_k: bool) -> np.ndarray:
    """Canonical correlations of two orthonormal PC bases (CCA reduces to the SVD of ``Qa^T Qb``)."""
    if same_k:
        k = min(Qa.shape[1], Qb.shape[1])
        Qa, Qb = Qa[:, :k], Qb[:, :k]
    return np.clip(np.linalg.svd(Qa.T @ Qb, compute_uv=False), 0.0, 1.0)


def _svcca_of_bases(Qa: np.ndarray, Qb: np.ndarray, same_k: bool) -> float:
    return float(np.mean(_correlations_of_bases(Qa, Qb, same_k)))


def canonical_correlations(A: Any, B: Any, var: float = 0.95, *, same_k: bool = False) -> np.ndarray:
    """The canonical correlations (descending, ``min(K_a, K_b)`` of them) of the top-PC projections of
    A and B; ``svcca`` is their mean. ``same_k``: keep ``min(K_a, K_b)`` components of both."""
    if not 0.0 < var <= 1.0:
        raise ValueError(f"var (the fraction of variance kept) must be in (0, 1], got {var}")
    A, B = _pair(A, B)
    return _correlations_of_bases(_top_pcs(A, var), _top_pcs(B, var), same_k)


def svcca(A: Any, B: Any, var: float = 0.95, *, same_k: bool = False) -> float:
    """SVCCA similarity of two activity matrices ``[samples, N]`` (Raghu et al. 2017): the mean canonical
    correlation of their top principal components explaining ``var`` of the variance; in [0, 1]
    (McMahan et al. 2024 use ``var = 0.95`` and the distance ``1 - svcca``).

    With ``same_k=False`` (the paper's) each matrix keeps its own K and the mean runs over the
    ``min(K_a, K_b)`` best-matched directions, so a low-dimensional matrix scores high against almost
    anything of higher dimension (measured in docs/analysis.md). ``same_k=True`` keeps
    ``min(K_a, K_b)`` principal components of both."""
    return float(np.mean(canonical_correlations(A, B, var, same_k=same_k)))


# -- CKA --------------------------------------------------------------------------------------------------
def cka(A: Any, B: Any) -> float:
    """Linear centred kernel alignment (Kornblith et al. 2019) of two activity matrices; in [0, 1]."""
    A, B = _pair(A, B)
    num = np.linalg.norm(B.T @ A) ** 2
    den = np.linalg.norm(A.T @ A) * np.linalg.norm(B.T @ B)
    if den == 0:
        raise ValueError("activity has zero variance (a silent or constant network); CKA is undefined")
    return float(num / den)


# -- Procrustes / generalized shape metric ----------------------------------------------------------------
def _partial_whiten(X: np.ndarray, alpha: float) -> np.ndarray:
    """``X Z`` with ``Z = V diag(alpha + (1 - alpha) lam^-1/2) V^T`` (Williams et al. 2021), rescaled to keep
    the total variance; ``alpha = 1`` returns X."""
    if alpha >= 1.0:
        return X
    lam, V = np.linalg.eigh(X.T @ X)
    lam = np.maximum(lam, lam.max() * 1e-12)
    d = alpha + (1.0 - alpha) / np.sqrt(lam)
    Xw = X @ (V * d) @ V.T
    return Xw * np.linalg.norm(X) / np.linalg.norm(Xw)


def shape_distance(A: Any, B: Any, alpha: float = 1.0) -> float:
    """Generalized shape distance of Williams et al. 2021 (angular, radians in [0, pi/2]).

    ``alpha = 1``: the Procrustes angular distance ``arccos(||Ac^T Bc||_* / (||Ac||_F ||Bc||_F))`` over
    rotations (the smaller matrix zero-padded when the unit counts differ); ``0 < alpha < 1``: partial
    whitening first; ``alpha = 0``: the CCA distance (invariant to invertible linear maps). Same as
    netrep's ``LinearMetric(alpha, score_method="angular")``.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (1 = Procrustes, 0 = CCA), got {alpha}")
    A, B = _pair(A, B)
    A, B = _partial_whiten(A, alpha), _partial_whiten(B, alpha)
    na, nb = np.linalg.norm(A), np.linalg.norm(B)
    if na == 0 or nb == 0:
        raise ValueError("activity has zero variance (a silent or constant network); the shape distance is undefined")
    # zero-padding to equal widths does not change the nuclear norm of A^T B
    nuc = np.linalg.svd(A.T @ B, compute_uv=False).sum()
    return float(np.arccos(np.clip(nuc / (na * nb), -1.0, 1.0)))


# -- many networks ----------------------------------------------------------------------------------------
_DISTANCES: dict[str, Callable[..., float]] = {
    "svcca": lambda A, B, **kw: 1.0 - svcca(A, B, **kw),
    "svcca_same_k": lambda A, B, **kw: 1.0 - svcca(A, B, same_k=True, **kw),
    "cka": lambda A, B, **kw: 1.0 - cka(A, B),
    "shape": lambda A, B, **kw: shape_distance(A, B, **kw),
}
# the keywords each metric takes (anything else is a mistake, not silently ignored)
_KEYWORDS: dict[str, set[str]] = {"svcca": {"var", "same_k"}, "svcca_same_k": {"var"}, "cka": set(),
                                  "shape": {"alpha"}}  # fmt: skip


def distance_matrix(activities: Sequence[Any], metric: str = "svcca", *, progress: bool = True,
                    **kwargs: Any) -> np.ndarray:  # fmt: skip
    """Pairwise distances ``D [M, M]`` between M activity matrices recorded on the same inputs:
    ``1 - svcca`` (McMahan et al. 2024's SVCCA distance; ``var=`` and ``same_k=`` pass through), ``svcca_same_k``
    (the same with ``same_k=True``), ``1 - cka``, or
    ``shape`` (``shape_distance``, ``alpha=`` passes through). Symmetric with a zero diagonal. Any other
    keyword raises ``TypeError``."""
    if metric not in _DISTANCES:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(_DISTANCES)}")
    unknown = sorted(set(kwargs) - _KEYWORDS[metric])
    if unknown:
        raise TypeError(f"distance_matrix(metric={metric!r}) got unknown keyword(s) {unknown}; "
                        f"it takes {sorted(_KEYWORDS[metric]) or 'none'}")  # fmt: skip
    from spikedyn.progress import progress as _progress

    mats = [_matrix(a, f"activities[{i}]") for i, a in enumerate(activities)]
    M = len(mats)
    if len({m.shape[0] for m in mats}) > 1:
        raise ValueError("every activity matrix must hold the same samples (rows); record all on the same inputs")
    D = np.zeros((M, M))
    fn = _DISTANCES[metric]
    same_k = metric == "svcca_same_k" or bool(kwargs.get("same_k", False))
    if metric in ("svcca", "svcca_same_k"):  # each network's top PCs once, not once per pair
        var = kwargs.get("var", 0.95)
        if not 0.0 < var <= 1.0:
            raise ValueError(f"var (the fraction of variance kept) must be in (0, 1], got {var}")
        Q = [_top_pcs(m - m.mean(0), var) for m in mats]
    with _progress(M * (M - 1) // 2, f"{metric} distances", unit="pairs", enabled=progress) as bar:
        for i in range(M):
            for j in range(i + 1, M):
                if metric in ("svcca", "svcca_same_k"):
                    D[i, j] = D[j, i] = max(1.0 - _svcca_of_bases(Q[i], Q[j], same_k), 0.0)
                else:
                    D[i, j] = D[j, i] = max(fn(mats[i], mats[j], **kwargs), 0.0)
                bar.update()
    return D


def _check_distances(D: Any) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"D must be a square distance matrix, got shape {D.shape}")
    if not np.isfinite(D).all() or (D < -1e-12).any():
        raise ValueError("D must hold finite, non-negative distances")
    if not np.allclose(D, D.T, atol=1e-9):
        raise ValueError("D must be symmetric")
    D = np.maximum((D + D.T) / 2.0, 0.0)
    np.fill_diagonal(D, 0.0)
    return D


def mds_embedding(D: Any, n_components: int = 2, seed: int = 0) -> np.ndarray:
    """Metric MDS of a precomputed distance matrix (scikit-learn's SMACOF, started from classical MDS
    where the installed scikit-learn offers it): coordinates ``[M, n_components]``. For plots only;
    McMahan et al. 2024 compute silhouettes on the high-dimensional data, not on these coordinates
    (``silhouette`` on ``D``, ``silhouette_rows`` as their code)."""
    from sklearn.manifold import MDS

    D = _check_distances(D)
    if not 1 <= n_components < D.shape[0]:
        raise ValueError(f"n_components must be in [1, {D.shape[0] - 1}] for {D.shape[0]} points, got {n_components}")
    params = inspect.signature(MDS).parameters
    kw: dict[str, Any] = {"n_components": n_components, "random_state": seed}
    init = None
    if "metric_mds" in params:  # scikit-learn >= 1.8
        kw.update(metric="precomputed", init="classical_mds")
        init = _classical_mds(D, n_components)
    else:
        kw.update(dissimilarity="precomputed", n_init=4)
    if "normalized_stress" in params:
        kw["normalized_stress"] = "auto"
    return np.asarray(MDS(**kw).fit_transform(D, init=init), dtype=np.float64)


def _classical_mds(D: np.ndarray, n_components: int) -> np.ndarray:
    """scikit-learn's ``ClassicalMDS`` start for SMACOF, with the eigenvalues clipped at 0: for a degenerate
    ``D`` (e.g. all networks but one at distance 0) its ``sqrt`` of a rounding-negative eigenvalue gave NaN."""
    from scipy.linalg import eigh
    from sklearn.utils.extmath import svd_flip

    B = np.asarray(D, dtype=np.float64) ** 2
    B = B - B.mean(axis=0)
    B = -0.5 * (B - B.mean(axis=1, keepdims=True))
    w, U = eigh(B)
    w, U = w[::-1][:n_components], U[:, ::-1][:, :n_components]
    U, _ = svd_flip(U, None)
    return np.sqrt(np.clip(w, 0.0, None)) * U


def _labels(labels: Sequence[Any], n: int) -> np.ndarray:
    lab = np.asarray(list(labels))
    if lab.shape != (n,):
        raise ValueError(f"labels must have one entry per row of D ({n}), got {lab.shape[0] if lab.ndim else 0}")
    k = len(np.unique(lab))
    if not 2 <= k <= n - 1:
        raise ValueError(f"silhouette needs 2 to {n - 1} distinct labels for {n} points, got {k}")
    return lab


def silhouette(D: Any, labels: Sequence[Any]) -> float:
    """Mean silhouette score (scikit-learn, precomputed distances) of the clusters given by ``labels``
    (e.g. the learning rule of each network); in [-1, 1], near 0 = not clustered by label."""
    from sklearn.metrics import silhouette_score

    D = _check_distances(D)
    return float(silhouette_score(D, _labels(labels, D.shape[0]), metric="precomputed"))


def silhouette_rows(D: Any, labels: Sequence[Any]) -> float:
    """Mean silhouette with each network described by its row of ``D`` (its distances to every network) and
    Euclidean distances between rows: what McMahan et al.'s code computes (``silhouette_score(D, labels)``,
    scikit-learn's default metric). Two networks score as close when they are at similar distances from all
    the others, so a group whose members are all far from the rest clusters even when its members are far
    apart too; ``silhouette`` (on ``D`` itself) is the paper's wording."""
    from sklearn.metrics import silhouette_score

    D = _check_distances(D)
    return float(silhouette_score(D, _labels(labels, D.shape[0]), metric="euclidean"))


def silhouette_by_label(D: Any, labels: Sequence[Any]) -> dict[str, float]:
    """Mean silhouette of the points of each label (``str(label) -> score``)."""
    from sklearn.metrics import silhouette_samples

    D = _check_distances(D)
    lab = _labels(labels, D.shape[0])
    s = silhouette_samples(D, lab, metric="precomputed")
    return {str(v): float(s[lab == v].mean()) for v in np.unique(lab)}


# -- recording activity -----------------------------------------------------------------------------------
def activity(model: Any, inputs: Any, *, tau_ms: float | None = None, warmup: int = 0) -> np.ndarray:
    """Unit activity ``[T' * B, N]`` of ``model`` on ``inputs [T, B, I]`` (a tensor, array or TaskBatch),
    rows time-major (step t of trial b is row ``t * B + b``) after dropping the first ``warmup`` steps.

    Rate bodies give their unit outputs ``r_t``. Spiking bodies give the readout's filtered spikes
    ``r̄`` (time constant ``model.tau_out`` ms; the signal ``W_out`` reads), or, with ``tau_ms``, the
    spike trains filtered by ``r̄(s) = k r̄(s-1) + (1 - k) z(s)``, ``k = exp(-dt_sub / tau_ms)``, per
    substep, sampled at the end of each input step (``tau_ms`` in ms).
    """
    import torch

    u = getattr(inputs, "inputs", inputs)
    u = torch.as_tensor(u)
    if u.ndim != 3:
        raise ValueError(f"inputs must be [T, B, I], got shape {tuple(u.shape)}")
    if not 0 <= warmup < u.shape[0]:
        raise ValueError(f"warmup must be in [0, T={u.shape[0]}) steps, got {warmup}")
    with torch.no_grad():
        if hasattr(model, "filtered_spikes"):  # spiking bodies
            if tau_ms is None:
                r = model.filtered_spikes(u)
            else:
                if not tau_ms > 0:
                    raise ValueError(f"tau_ms must be > 0 ms, got {tau_ms}")
                z = model.spike_trains(u)  # [T * K, B, N]
                k = float(np.exp(-model.dt_sub / tau_ms))
                K, rbar, out = model.substeps, torch.zeros_like(z[0]), []
                for s in range(z.shape[0]):
                    rbar = k * rbar + (1.0 - k) * z[s]
                    if (s + 1) % K == 0:
                        out.append(rbar)
                r = torch.stack(out)
        else:
            if tau_ms is not None:
                raise ValueError("tau_ms filters spike trains; rate bodies have no spikes (leave it None)")
            r = model(u.to(device=model.device, dtype=model.dtype)).r
    r = r[warmup:]
    return r.reshape(-1, r.shape[-1]).detach().cpu().numpy().astype(np.float64)
