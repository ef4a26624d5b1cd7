"""Attractor topology of a network across probe inputs, and a distance between topologies (Maheswaranathan
et al. 2019, as McMahan et al. 2024 Sec. 2.6 and Fig. 1c-e, 2d-e used it).

``attractor_topology(model, probes)`` finds the attractors (stable fixed points, ``fixed_points``) under
each constant probe input ``p`` of ``probes`` (McMahan et al.: -0.5, -0.2, 0, 0.2, 0.5 on the evidence
stream) and builds the **topology graph**: one node per attractor, labelled with its probe's index, and
an edge from every attractor to the nearest attractor (Euclidean, in activity space) of each
neighbouring probe (``j - 1`` and ``j + 1``). The graph says how many attractors each input level has
and how they continue into each other as the input changes -- e.g. the two attractors of a stable
integrator at zero input that merge into the single attractor at +-0.5 -- and nothing about where the
attractors lie, so it is unchanged by any rotation, scaling or translation of activity space: rate nets
and their spiking twins (points in ``r̄``) are comparable.

``neighbour_signature(fixed_points, probes)`` is the topology embedding of McMahan et al.'s code
(``fixed_point_input_topology.py``), which their Fig. 1e and 2d-e report: every fixed point found (stable or
not) at the 21 small inputs ``SIGNATURE_PROBES`` (|u| <= 0.03, smallest first), and for each of the first
``n_points`` (10) of them the inputs of its ``n_neighbors`` (3) nearest fixed points in state space (itself
first). Networks are compared by the Euclidean distance between these vectors: two networks are close when
their fixed points continue into each other across small inputs in the same way.

``topology_distance(t1, t2)`` is the graph edit distance between the two graphs (unit cost to insert or
delete a node or an edge; a node may only be matched to a node of the same probe), computed exactly by
a dynamic programme over the probes (the edges only join neighbouring probes). It is 0 for
identical topologies and symmetric. The matrix of these distances feeds ``mds_embedding`` and
``silhouette`` like the SVCCA distances (``topology_distance_matrix``).

Probe inputs: ``base + p * direction``. Defaults: a one-input model (RDM) gets ``[p]``; a model with an
even number ``2N`` of inputs gets the context/stream layout of ``spikedyn.tasks``' CDI / N-CDI
(``[context_1..context_N, stream_1..stream_N]``): context ``context`` on, ``p`` on its stream.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .fixed_points import FixedPoints, fixed_points

__all__ = ["PROBES", "SIGNATURE_PROBES", "Topology", "attractor_topology", "neighbour_signature", "probe_input",
           "topology_distance", "topology_distance_matrix"]  # fmt: skip

PROBES = (-0.5, -0.2, 0.0, 0.2, 0.5)  # McMahan et al. 2024 Fig. 1c
# McMahan et al.'s code (rnnanalysis.py, "small" RDM inputs): 21 inputs 0.03 * {0, 0.1, -0.1, ..., 1, -1},
# smallest |u| first; their topology embedding uses the fixed points found at these
SIGNATURE_PROBES = (0.0, *(round(s * 0.003 * k, 6) for k in range(1, 11) for s in (1, -1)))


@dataclass(frozen=True)
class Topology:
    """Attractors per probe input and the topology graph (module doc).

    Attributes:
        probes: the probe values p. inputs: ``[P, I]`` the constant inputs used.
        fixed_points: one ``FixedPoints`` per probe (all fixed points, stable or not).
        counts: attractors per probe. node_probe: the probe index of each node (attractor), probe-major.
        edges: undirected edges ``(i, j)``, ``i < j``, between nodes.
    """

    probes: tuple[float, ...]
    inputs: Tensor
    fixed_points: tuple[FixedPoints, ...]
    counts: tuple[int, ...]
    node_probe: tuple[int, ...]
    edges: tuple[tuple[int, int], ...]

    @property
    def n_attractors(self) -> int:
        return len(self.node_probe)

    def attractors(self, j: int) -> Tensor:
        """``[K_j, N]`` the attractors of probe ``j`` in activity space."""
        return self.fixed_points[j].attractors

    def count_at(self, p: float) -> int:
        """The number of attractors at probe value ``p`` (which must be one of ``probes``)."""
        for j, q in enumerate(self.probes):
            if abs(q - p) < 1e-12:
                return self.counts[j]
        raise ValueError(f"{p} is not one of the probes {self.probes}")

    def graph(self) -> Any:
        """The topology graph as a ``networkx.Graph`` (node attribute ``probe``: the probe index)."""
        import networkx as nx

        G = nx.Graph()
        for i, j in enumerate(self.node_probe):
            G.add_node(i, probe=j)
        G.add_edges_from(self.edges)
        return G

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (probes, counts, edges, and each probe's fixed points)."""
        return {"probes": list(self.probes), "counts": list(self.counts), "node_probe": list(self.node_probe),
                "edges": [list(e) for e in self.edges], "fixed_points": [fp.to_dict() for fp in self.fixed_points]}


def probe_input(n_in: int, p: float, *, context: int = 0, base: Any = None, direction: Any = None) -> Tensor:
    """The constant input ``base + p * direction`` ``[n_in]`` of probe value ``p`` (module doc for the defaults)."""
    if (base is None) != (direction is None):
        raise ValueError("give both base and direction, or neither (then the task layout decides)")
    if base is not None:
        b = torch.as_tensor(base, dtype=torch.float64).reshape(-1)
        d = torch.as_tensor(direction, dtype=torch.float64).reshape(-1)
        if b.numel() != n_in or d.numel() != n_in:
            raise ValueError(f"base and direction need {n_in} values (the model's inputs)")
        return b + p * d
    if n_in == 1:
        return torch.tensor([float(p)], dtype=torch.float64)
    if n_in % 2:
        raise ValueError(f"a model with {n_in} inputs has no default probe layout; pass base= and direction=")
    N = n_in // 2
    if not 0 <= context < N:
        raise ValueError(f"context must be in [0, {N}) for {n_in} inputs (N-CDI layout), got {context}")
    u = torch.zeros(n_in, dtype=torch.float64)
    u[context] = 1.0
    u[N + context] = float(p)
    return u


def _graph_edges(fps: Sequence[FixedPoints]) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    node_probe: list[int] = []
    offsets = []
    for j, fp in enumerate(fps):
        offsets.append(len(node_probe))
        node_probe += [j] * fp.n_stable
    edges: set[tuple[int, int]] = set()
    for j, fp in enumerate(fps):
        A = fp.attractors
        for k in (j - 1, j + 1):
            if not 0 <= k < len(fps) or A.shape[0] == 0 or fps[k].n_stable == 0:
                continue
            nearest = torch.cdist(A, fps[k].attractors).argmin(dim=1)
            for a, b in enumerate(nearest.tolist()):
                i1, i2 = offsets[j] + a, offsets[k] + b
                edges.add((min(i1, i2), max(i1, i2)))
    return tuple(node_probe), tuple(sorted(edges))


def attractor_topology(
    model: Any,
    probes: Sequence[float] = PROBES,
    *,
    context: int = 0,
    base: Any = None,
    direction: Any = None,
    inputs: Any = None,
    n_inits: int = 128,
    tol: float = 1e-8,
    seed: int = 0,
    progress: bool = True,
    **fixed_point_kwargs: Any,
) -> Topology:
    """Attractors of ``model`` at each probe input and the topology graph (module doc).

    Args:
        model: any body ``fixed_points`` accepts (rate, GRU, LSTM, spiking through its rate-equivalent map).
        probes: probe values p (McMahan et al. 2024: -0.5, -0.2, 0, 0.2, 0.5).
        context, base, direction: how p becomes an input vector (``probe_input``).
        inputs: task trials ``[T, B, I]`` (or a TaskBatch) whose trajectories seed the search (recommended:
            the states the network actually visits); default: trajectories under each probe input.
        n_inits, tol, seed: passed to ``fixed_points`` (the same seed for every probe).
        fixed_point_kwargs: further ``fixed_points`` arguments (``max_iter``, ``unique_tol``, ...).
    """
    from spikedyn.progress import progress as _progress

    probes = tuple(float(p) for p in probes)
    if not probes:
        raise ValueError("give at least one probe input")
    if list(probes) != sorted(probes):
        raise ValueError(f"probes must be increasing (neighbours are adjacent values), got {probes}")
    us = torch.stack([probe_input(model.n_in, p, context=context, base=base, direction=direction) for p in probes])
    fps = []
    with _progress(len(probes), "attractor topology", unit="probes", enabled=progress) as bar:
        for u in us:
            fps.append(fixed_points(model, u, n_inits=n_inits, tol=tol, inputs=inputs, seed=seed, progress=False,
                                    **fixed_point_kwargs))  # fmt: skip
            bar.update(1, attractors=fps[-1].n_stable)
    node_probe, edges = _graph_edges(fps)
    return Topology(probes=probes, inputs=us, fixed_points=tuple(fps), counts=tuple(fp.n_stable for fp in fps),
                    node_probe=node_probe, edges=edges)  # fmt: skip


def neighbour_signature(points: Sequence[Any], probes: Sequence[float], *, n_neighbors: int = 3,
                        n_points: int = 10) -> np.ndarray:  # fmt: skip
    """McMahan et al.'s topology embedding (module doc): ``[n_points * n_neighbors]`` input values.

    Args:
        points: per probe input, its fixed points ``[K_j, n]`` (a ``FixedPoints``' ``.points``: all of them,
            stable or not), in the order given: probe by probe, within a probe as listed (``fixed_points``
            lists them slowest first).
        probes: the probe value of each entry (their code: ``SIGNATURE_PROBES``, smallest |u| first).
        n_neighbors: nearest fixed points per point (the point itself included, at distance 0).
        n_points: the first fixed points kept. A network with fewer fixed points in all gets zero rows for
            the missing ones (the code assumes enough; 21 probes with at least one fixed point each are).
    """
    if len(points) != len(probes):
        raise ValueError(f"one set of fixed points per probe: got {len(points)} for {len(probes)} probes")
    if n_neighbors < 1 or n_points < 1:
        raise ValueError(f"n_neighbors and n_points must be >= 1, got {n_neighbors}, {n_points}")
    pts = [torch.as_tensor(np.asarray(P, dtype=np.float64)) for P in points]
    probes = [float(p) for P, p in zip(pts, probes) if len(P)]
    pts = [P for P in pts if len(P)]
    inp = np.concatenate([np.full(len(P), float(p)) for P, p in zip(pts, probes)]) if pts else np.zeros(0)
    out = np.zeros((n_points, n_neighbors))
    if not len(inp):
        return out.reshape(-1)
    X = torch.cat(pts)
    k = min(n_neighbors, X.shape[0])
    m = min(n_points, X.shape[0])
    D = torch.cdist(X[:m], X)
    idx = torch.argsort(D, dim=1, stable=True)[:, :k].numpy()
    out[:m, :k] = inp[idx]
    return out.reshape(-1)


def _layer_maps(a: list[int], b: list[int]) -> list[dict[int, int]]:
    """Every maximal matching between the nodes ``a`` (graph 1) and ``b`` (graph 2) of one probe, as
    ``{node in 1: node in 2}`` (a maximal matching is optimal: matching a deleted node to an inserted
    one saves two node edits and cannot add an edge edit)."""
    from itertools import permutations

    if len(a) <= len(b):
        return [dict(zip(a, p)) for p in permutations(b, len(a))]
    return [{u: v for v, u in zip(b, p)} for p in permutations(a, len(b))]


def _layered_ged(t1: Topology, t2: Topology) -> float:
    """Exact edit distance of two topology graphs: their edges join adjacent probes only, so a dynamic
    programme over the probes (one maximal matching per probe) finds the optimum."""
    P = len(t1.probes)
    L1, L2 = ([[i for i, j in enumerate(t.node_probe) if j == k] for k in range(P)] for t in (t1, t2))
    node_cost = sum(abs(len(a) - len(b)) for a, b in zip(L1, L2))
    E2 = set(t2.edges)

    def between(t: Topology, k: int) -> list[tuple[int, int]]:
        return [e for e in t.edges if {t.node_probe[e[0]], t.node_probe[e[1]]} == {k, k + 1}]

    maps = [_layer_maps(a, b) for a, b in zip(L1, L2)]
    best = [0.0] * len(maps[0])
    for k in range(P - 1):
        e1, n2 = between(t1, k), len(between(t2, k))
        nxt = []
        for m in maps[k + 1]:
            costs = []
            for m_prev, c_prev in zip(maps[k], best):
                both = {**m_prev, **m}
                kept = sum(1 for u, w in e1 if u in both and w in both
                           and (min(both[u], both[w]), max(both[u], both[w])) in E2)  # fmt: skip
                costs.append(c_prev + len(e1) + n2 - 2 * kept)
            nxt.append(min(costs))
        best = nxt
    return float(node_cost + min(best))


def topology_distance(t1: Topology, t2: Topology, *, max_matchings: int = 5040) -> float:
    """Graph edit distance between two topology graphs (module doc): node and edge insertions and
    deletions cost 1, and a node can only be matched to a node of the same probe. Exact (a dynamic
    programme over the probes, checked against networkx's exact search in the tests); when a probe has
    so many attractors that it has more than ``max_matchings`` matchings, networkx's anytime search gives
    an upper bound after 50 improvements (deterministic)."""
    if t1.probes != t2.probes:
        raise ValueError(f"topologies probed at different inputs: {t1.probes} vs {t2.probes}")
    if t1.n_attractors == 0 and t2.n_attractors == 0:
        return 0.0
    from math import perm

    if all(perm(max(a, b), min(a, b)) <= max_matchings for a, b in zip(t1.counts, t2.counts)):
        return _layered_ged(t1, t2)
    import networkx as nx

    kw = dict(node_subst_cost=lambda a, b: 0.0 if a["probe"] == b["probe"] else 1e6,
              node_del_cost=lambda a: 1.0, node_ins_cost=lambda a: 1.0,
              edge_del_cost=lambda e: 1.0, edge_ins_cost=lambda e: 1.0)  # fmt: skip
    best = np.inf
    for i, d in enumerate(nx.optimize_graph_edit_distance(t1.graph(), t2.graph(), **kw)):
        best = min(best, d)
        if i + 1 >= 50:
            break
    return float(best)


def topology_distance_matrix(topologies: Sequence[Topology], *, progress: bool = True, **kwargs: Any) -> np.ndarray:
    """``D [M, M]`` of ``topology_distance`` between every pair (symmetric, zero diagonal)."""
    from spikedyn.progress import progress as _progress

    M = len(topologies)
    D = np.zeros((M, M))
    with _progress(M * (M - 1) // 2, "topology distances", unit="pairs", enabled=progress) as bar:
        for i in range(M):
            for j in range(i + 1, M):
                D[i, j] = D[j, i] = topology_distance(topologies[i], topologies[j], **kwargs)
                bar.update()
    return D
