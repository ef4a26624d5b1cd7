"""Representational similarity (spikedyn.analysis.similarity): SVCCA, linear CKA, shape distance, MDS,
silhouette and the activity recorder, each against an independent formula or a known invariance."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import scipy.stats
import torch

import spikedyn
from spikedyn import tasks
from spikedyn.analysis import (
    activity,
    cka,
    distance_matrix,
    mds_embedding,
    shape_distance,
    silhouette,
    silhouette_by_label,
    svcca,
)
from spikedyn.analysis.similarity import canonical_correlations

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net_activity() -> np.ndarray:
    """Real activity: a random shifted-tanh leaky net (McMahan et al. 2024's body) on RDM trials."""
    torch.manual_seed(0)
    task = tasks.make("rdm")
    batch = task.sample(16, np.random.default_rng(0))
    model = spikedyn.RateRNN(task.n_inputs, 30, task.n_outputs, alpha=0.2, activation="shifted_tanh", gain=1.5)
    return activity(model, batch.inputs[:60])  # [60 * 16, 30]


def _orthogonal(n: int, seed: int) -> np.ndarray:
    return scipy.stats.ortho_group.rvs(n, random_state=seed)


def test_svcca_is_one_for_an_invertible_linear_transform(net_activity):
    A = net_activity
    rng = np.random.default_rng(1)
    M = rng.normal(size=(30, 30)) + 3 * np.eye(30)  # invertible, anisotropic
    assert np.linalg.cond(M) < 1e3
    # var = 1: CCA on every component, invariant to any invertible map (and translations)
    assert svcca(A, A @ M + 5.0, var=1.0) == pytest.approx(1.0, abs=1e-6)
    # the truncated SVCCA of McMahan et al. (var = 0.95): invariant to rotations and isotropic scaling
    Q = _orthogonal(30, 2)
    assert svcca(A, 3.0 * A @ Q - 1.0) == pytest.approx(1.0, abs=1e-6)


def test_svcca_and_cka_are_near_zero_for_independent_noise():
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(4000, 20)), rng.normal(size=(4000, 20))
    assert svcca(X, Y) < 0.1
    assert cka(X, Y) < 0.02


def test_canonical_correlations_match_the_covariance_eigen_formula(net_activity):
    rng = np.random.default_rng(4)
    A = net_activity[:, :8]
    B = A @ rng.normal(size=(8, 6)) + 0.5 * rng.normal(size=(A.shape[0], 6))
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    Saa, Sbb, Sab = Ac.T @ Ac, Bc.T @ Bc, Ac.T @ Bc
    # rho^2 are the eigenvalues of Saa^-1 Sab Sbb^-1 Sba (Hotelling 1936)
    ev = np.linalg.eigvals(np.linalg.solve(Saa, Sab) @ np.linalg.solve(Sbb, Sab.T)).real
    ref = np.sqrt(np.clip(np.sort(ev)[::-1][:6], 0, 1))
    np.testing.assert_allclose(canonical_correlations(A, B, var=1.0), ref, atol=1e-8)
    # truncation keeps the fewest PCs reaching the variance fraction
    s = np.linalg.svd(Ac, compute_uv=False) ** 2
    k = int(np.argmax(np.cumsum(s) / s.sum() >= 0.9)) + 1
    assert len(canonical_correlations(A, A, var=0.9)) == k


def test_cka_matches_the_hsic_kernel_formula_and_its_invariances(net_activity):
    rng = np.random.default_rng(5)
    A = net_activity
    B = np.tanh(A @ rng.normal(size=(30, 12)))
    n = A.shape[0]
    H = np.eye(n) - 1.0 / n
    K, L = H @ A @ A.T @ H, H @ B @ B.T @ H
    ref = np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L))  # HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))
    assert cka(A, B) == pytest.approx(ref, rel=1e-9)
    assert cka(A, 0.3 * A @ _orthogonal(30, 6) + 2.0) == pytest.approx(1.0, abs=1e-6)
    # linear CKA weighs directions by variance: a strongly anisotropic invertible map lowers it
    M = np.diag(np.geomspace(1e-2, 1e2, 30))
    assert cka(A, A @ M) < 0.99


def test_shape_distance_is_zero_for_rotations_and_matches_scipy(net_activity):
    A = net_activity
    Q = _orthogonal(30, 7)
    assert shape_distance(A, 2.0 * A @ Q + 1.0) == pytest.approx(0.0, abs=1e-6)
    rng = np.random.default_rng(8)
    B = np.tanh(A @ rng.normal(size=(30, 30)))
    d = shape_distance(A, B)
    # scipy.spatial.procrustes (centred, unit-norm, rotation + scale): disparity = 1 - cos(d)^2
    _, _, disparity = scipy.spatial.procrustes(A, B)
    assert np.cos(d) ** 2 == pytest.approx(1.0 - disparity, abs=1e-9)
    # the same angle after the explicit best rotation of scipy.linalg.orthogonal_procrustes
    Ac, Bc = A - A.mean(0), B - B.mean(0)
    R, _ = scipy.linalg.orthogonal_procrustes(Ac, Bc)
    cos = np.sum((Ac @ R) * Bc) / (np.linalg.norm(Ac) * np.linalg.norm(Bc))
    assert d == pytest.approx(np.arccos(cos), abs=1e-9)
    # alpha = 0 (CCA distance) is invariant to invertible maps; alpha = 1 (Procrustes) is not
    M = rng.normal(size=(30, 30)) + 3 * np.eye(30)
    assert shape_distance(A, A @ M, alpha=0.0) == pytest.approx(0.0, abs=1e-5)
    assert shape_distance(A, A @ M, alpha=1.0) > 0.05
    # different unit counts (zero-padding) and symmetry
    assert shape_distance(A, B[:, :10]) == pytest.approx(shape_distance(B[:, :10], A), abs=1e-12)


def test_metrics_reject_mismatched_samples():
    with pytest.raises(ValueError, match="same samples"):
        svcca(np.ones((10, 3)), np.ones((11, 3)))
    with pytest.raises(ValueError, match="var"):
        svcca(np.eye(5), np.eye(5), var=0.0)
    with pytest.raises(ValueError, match="zero variance"):
        cka(np.ones((10, 3)), np.eye(10)[:, :3])


def test_distance_matrix_mds_and_silhouette():
    rng = np.random.default_rng(9)
    base = [rng.normal(size=(500, 10)) for _ in range(2)]
    # two "rules": each network is its family's activity seen through a random rotation, plus noise
    acts = [base[k] @ _orthogonal(10, 10 + i) + 0.3 * rng.normal(size=(500, 10)) for k in (0, 1) for i in range(4)]
    labels = ["bptt"] * 4 + ["ga"] * 4
    for metric in ("svcca", "cka", "shape"):
        D = distance_matrix(acts, metric, progress=False)
        assert D.shape == (8, 8) and np.allclose(D, D.T) and np.all(np.diag(D) == 0)
        assert silhouette(D, labels) > 0.5, metric
    D = distance_matrix(acts, "svcca", progress=False)
    # each network's PCs are computed once: the same numbers as svcca pair by pair
    assert D[0, 5] == pytest.approx(1 - svcca(acts[0], acts[5]), abs=1e-12)
    assert distance_matrix(acts[:3], "svcca_same_k", progress=False)[1, 2] == pytest.approx(
        1 - svcca(acts[1], acts[2], same_k=True), abs=1e-12)
    by = silhouette_by_label(D, labels)
    assert set(by) == {"bptt", "ga"} and all(v > 0.5 for v in by.values())
    # random labels do not cluster
    assert abs(silhouette(D, ["a", "b"] * 4)) < 0.3
    # MDS of Euclidean distances between planar points recovers those distances
    P = rng.normal(size=(12, 2))
    E = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(P))
    Y = mds_embedding(E, seed=0)
    assert Y.shape == (12, 2)
    np.testing.assert_allclose(scipy.spatial.distance.pdist(Y), scipy.spatial.distance.pdist(P), atol=1e-3)
    np.testing.assert_array_equal(mds_embedding(E, seed=0), Y)  # same seed, same result
    with pytest.raises(ValueError, match="distinct labels"):
        silhouette(E, ["a"] * 12)


def test_distance_matrix_same_k_keyword_and_unknown_keywords():
    rng = np.random.default_rng(3)
    # a low-dimensional network beside higher-dimensional ones: their Ks differ, so same_k changes the distance
    acts = [rng.normal(size=(400, 2)) @ rng.normal(size=(2, 8)) + 0.01 * rng.normal(size=(400, 8)),
            rng.normal(size=(400, 8)), rng.normal(size=(400, 8))]  # fmt: skip
    plain = distance_matrix(acts, "svcca", progress=False)
    same = distance_matrix(acts, "svcca", same_k=True, progress=False)
    assert same[0, 1] == pytest.approx(1 - svcca(acts[0], acts[1], same_k=True), abs=1e-12)
    assert plain[0, 1] == pytest.approx(1 - svcca(acts[0], acts[1]), abs=1e-12)
    assert abs(same[0, 1] - plain[0, 1]) > 1e-3  # the keyword is honoured, not dropped
    np.testing.assert_array_equal(same, distance_matrix(acts, "svcca_same_k", progress=False))
    with pytest.raises(TypeError, match="unknown keyword.*'same_K'"):
        distance_matrix(acts, "svcca", same_K=True, progress=False)
    with pytest.raises(TypeError, match="unknown keyword.*'alpha'"):
        distance_matrix(acts, "cka", alpha=0.5, progress=False)
    assert distance_matrix(acts, "shape", alpha=0.5, progress=False).shape == (3, 3)


def test_activity_of_rate_and_spiking_bodies():
    torch.manual_seed(0)
    task = tasks.make("rdm")
    u = torch.as_tensor(task.sample(3, np.random.default_rng(0)).inputs[:20], dtype=torch.float32)
    rate = spikedyn.RateRNN(task.n_inputs, 8, task.n_outputs, alpha=0.2, activation="shifted_tanh")
    A = activity(rate, u)
    assert A.shape == (20 * 3, 8)
    np.testing.assert_allclose(A, rate(u).r.detach().reshape(-1, 8).numpy(), rtol=1e-6)
    assert activity(rate, u, warmup=5).shape == (15 * 3, 8)
    twin = spikedyn.mirror(rate, substeps=5)
    S = activity(twin, u)  # the readout's r̄
    np.testing.assert_allclose(S, twin.filtered_spikes(u).reshape(-1, 8).numpy())
    # an explicit exponential filter with the readout's own time constant reproduces r̄
    np.testing.assert_allclose(activity(twin, u, tau_ms=twin.tau_out), S, atol=1e-5)
    assert not np.allclose(activity(twin, u, tau_ms=1.0), S, atol=1e-3)
    with pytest.raises(ValueError, match="rate bodies"):
        activity(rate, u, tau_ms=5.0)


def test_svcca_same_k_truncates_both_to_the_smaller_dimension():
    rng = np.random.default_rng(11)
    signal = rng.normal(size=(3000, 2))
    A = signal @ rng.normal(size=(2, 10))  # 2-dimensional activity
    B = np.c_[signal, 0.1 * rng.normal(size=(3000, 30))] @ _orthogonal(32, 12)  # the same 2 dims + noise dims
    assert len(canonical_correlations(A, B)) == 2
    assert svcca(A, B, same_k=True) == pytest.approx(1.0, abs=1e-2)
    # noise-dominated B: each keeps its own K, so A's two directions are found among B's many
    C = np.c_[0.3 * signal, rng.normal(size=(3000, 30))]
    assert svcca(A, C) > svcca(A, C, same_k=True)


def test_silhouette_rows_is_the_euclidean_silhouette_of_the_rows_of_D():
    """McMahan et al.'s code scores ``silhouette_score(D, labels)`` (the rows of D as features); the paper's
    wording (and ``silhouette``) is the silhouette on D itself. Both against scikit-learn by hand."""
    from sklearn.metrics import silhouette_score

    from spikedyn.analysis.similarity import silhouette_rows

    rng = np.random.default_rng(3)
    P = np.concatenate([rng.normal(0.0, 1.0, size=(5, 3)), rng.normal(0.8, 1.0, size=(5, 3))])
    D = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(P))
    labels = ["a"] * 5 + ["b"] * 5
    R = scipy.spatial.distance.squareform(scipy.spatial.distance.pdist(D))  # distances between rows
    assert silhouette_rows(D, labels) == pytest.approx(silhouette_score(R, labels, metric="precomputed"))
    assert silhouette(D, labels) == pytest.approx(silhouette_score(P, labels))
    # a group whose members are far from everything, themselves included, is a cluster only by its rows
    far = np.full((8, 8), 0.1)
    far[:4, :] = far[:, :4] = 1.0
    np.fill_diagonal(far, 0.0)
    lab = ["h"] * 4 + ["rest"] * 4
    assert silhouette(far, lab) < 0.5 < silhouette_rows(far, lab)
