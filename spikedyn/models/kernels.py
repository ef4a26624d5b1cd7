"""Sparse-spike kernels of the recurrent LIF/ALIF network: the recurrence and ``dW_rec`` from the spikes
that happened, and the choice between them and the dense GEMMs by measured firing rate.

Spikes are binary and mostly zero, so the recurrent input ``z @ W_rec^T`` of one substep is, for each
trial b, the sum of the columns ``W_rec[:, j]`` of the neurons j that spiked, and the weight gradient
``dW_rec = sum_s du(s)^T z(s-1)`` adds ``du(s)[b]`` only to the columns of those neurons (Perez-Nieves &
Goodman 2021). Both are ``embedding_bag`` sums (one bag of rows per trial, resp. per presynaptic neuron),
which cost ``O(nnz N)`` instead of the dense ``O(B N^2)``.

The sparse recurrence sums the same products as the dense GEMM, in another order: it equals the dense
path to float round-off, not bit for bit (``tests/test_kernels.py`` states the agreement). The dense path
is the one neuron map's own ``z @ W_rec^T`` and stays bit-identical to it.

``spike_path`` picks the kernel from the firing rate of the previous substep, re-checked every
``RECHECK`` substeps (rates change slowly; each check is a host sync): sparse below ``SPARSE_RATE`` (CPU
only; on a GPU the syncs would cost more than they save, so "auto" is dense there). The
thresholds were measured with ``benchmarks/sparse_threshold.py`` on the 2-core CPU VM, one thread
(docs/benchmarks.md, "Sparse-spike kernels").
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PATHS = ("auto", "dense", "sparse")
# measured crossovers (H = 256, B = 32, one CPU thread; docs/benchmarks.md): a whole training step is
# faster on the sparse path below ~1% spiking neurons per substep (0.02%: 20% faster, 0.36%: 7%; 1.35%: 9%
# slower), so "auto" switches at 1%; the sparse recurrence kernel alone (benchmarks/sparse_threshold.py)
# is too noisy on a loaded machine to place (one substep ~50 us), so the whole-step 1% stays; the sparse
# dW ties the one dense GEMM at 0.5% and loses above
SPARSE_RATE = 0.01
SPARSE_DW_RATE = 0.005
RECHECK = 8


def check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"unknown spike_path {path!r}; choose one of {list(PATHS)}")
    return path


def use_sparse(path: str, z: Tensor, threshold: float) -> bool:
    """Whether the sparse kernel should run on spikes ``z`` (0/1) under ``path`` ("auto": by rate)."""
    if path == "dense" or (path == "auto" and z.device.type != "cpu"):
        return False
    if path == "sparse":
        return True
    return float(z.sum()) < threshold * z.numel()  # z is 0/1: its sum counts the spikes


def sparse_recurrence(z: Tensor, W_T: Tensor) -> Tensor:
    """``z @ W_T`` for binary spikes ``z [B, N]`` (0/1, any dtype) as, per trial, the sum of the rows of
    ``W_T [N, N]`` (= ``W_rec^T``) of the neurons that spiked: ``[B, N]``."""
    B = z.shape[0]
    idx = z.nonzero()  # [nnz, 2], sorted by trial
    counts = torch.bincount(idx[:, 0], minlength=B)
    offsets = counts.cumsum(0) - counts
    return F.embedding_bag(idx[:, 1], W_T, offsets, mode="sum")


def sparse_weight_gradient(du: Tensor, z: Tensor) -> Tensor:
    """``du^T @ z`` [N, N] for ``du [R, N]`` and binary ``z [R, N]`` (0/1, any dtype): column j of the result is
    the sum of the rows of ``du`` where neuron j spiked."""
    N = z.shape[1]
    idx = z.T.nonzero()  # [nnz, 2] = (presynaptic j, row r), sorted by j
    counts = torch.bincount(idx[:, 0], minlength=N)
    offsets = counts.cumsum(0) - counts
    return F.embedding_bag(idx[:, 1], du, offsets, mode="sum").T


def recurrence(z: Tensor, W_T: Tensor, sparse: bool) -> Tensor:
    """The recurrent input ``z @ W_T`` of one substep (a new tensor) for float 0/1 spikes ``z``: the
    sparse sum (``sparse``, from ``use_sparse(path, z, SPARSE_RATE)``) or the dense GEMM."""
    return sparse_recurrence(z, W_T) if sparse else z @ W_T


def weight_gradient(du: Tensor, z: Tensor, dtype: torch.dtype, path: str) -> Tensor:
    """``sum_r du[r]^T z[r]`` for ``du [R, N]`` and 0/1 spikes ``z [R, N]`` (float or bool): one dense GEMM
    over all substeps and trials, or the sparse sum at low firing rates."""
    if use_sparse(path, z, SPARSE_DW_RATE):
        return sparse_weight_gradient(du, z)
    return du.T @ z.to(dtype)
