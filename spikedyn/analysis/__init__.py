"""Dynamics analysis: Lyapunov spectra (QR method), adjoints, reference systems, PTA region maps.

See docs/analysis.md. Heavier pieces (figures, the memory benchmark, the flossing experiment) live in
their own modules and are imported on use. Fixed points, attractor topology and representational
similarity (SVCCA, CKA, shape distance, MDS, silhouette) are exported lazily (PEP 562).
"""
import importlib
from typing import Any

from .adjoint import adjoint_norms
from .jacobian import dynamics_for, step_jacobian
from .lyapunov import lyapunov_spectrum, max_lyapunov_perturbation, qr_exponents
from .pta_map import RegionMap, block_exponents, pta_region_map
from .reference_systems import (
    REFERENCE_SYSTEMS,
    LinearSystem,
    ODESystem,
    ReLUNetwork,
    TanhNetwork,
    chaotic_network,
    fading_memory_network,
    find_limit_cycle_seed,
    limit_cycle_network,
    line_attractor,
    sparse_gaussian,
    two_fixed_points,
)

__all__ = [
    "REFERENCE_SYSTEMS", "LinearSystem", "ODESystem", "ReLUNetwork", "RegionMap", "TanhNetwork", "adjoint_norms",
    "block_exponents", "chaotic_network", "dynamics_for", "fading_memory_network", "find_limit_cycle_seed",
    "limit_cycle_network", "line_attractor", "lyapunov_spectrum", "max_lyapunov_perturbation", "pta_region_map",
    "qr_exponents", "sparse_gaussian", "step_jacobian", "two_fixed_points",
]  # fmt: skip

# public name -> module (imported on first use: scikit-learn and scipy load only when needed)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("FixedPoints", "RateEquivalentMap", "fixed_points"), "fixed_points"),
    **dict.fromkeys(("PROBES", "SIGNATURE_PROBES", "Topology", "attractor_topology", "neighbour_signature",
                     "probe_input", "topology_distance", "topology_distance_matrix"), "topology"),
    **dict.fromkeys(("activity", "cka", "distance_matrix", "mds_embedding", "shape_distance", "silhouette",
                     "silhouette_by_label", "silhouette_rows", "svcca"), "similarity"),
    **dict.fromkeys(("ComparisonTable",), "compare"),
}
__all__ += sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
