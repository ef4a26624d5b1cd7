"""Export to NIR and deployment to Lava.

``to_nir`` / ``from_nir`` (``spikedyn.export.nir``) exchange spiking networks with snnTorch, norse and
other NIR tools; ``spikedyn.deploy`` (``spikedyn.export.deploy.deploy``; ``spikedyn.export.deploy`` is
the module) runs them on Lava's simulator or Loihi 2.
Imported lazily: ``import spikedyn.export`` does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "to_nir": "spikedyn.export.nir", "from_nir": "spikedyn.export.nir", "spec_from_model": "spikedyn.export.nir",
    "model_from_spec": "spikedyn.export.nir", "Deployment": "spikedyn.export.deploy",
    "HardwareRollout": "spikedyn.export.deploy", "NIRExportWarning": "spikedyn.export.nir",
    "portable_spec": "spikedyn.export.nir",
    "compare_with_torch": "spikedyn.export.deploy", "torch_reference": "spikedyn.export.deploy",
    "spike_agreement": "spikedyn.export.deploy",
    "NetworkDeployment": "spikedyn.export.deploy_network", "network_torch_reference": "spikedyn.export.deploy_network",
}  # fmt: skip
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spikedyn.export' has no attribute {name!r}")
