"""Every public annotation in spikedyn resolves at runtime: ``typing.get_type_hints`` works on each public
function, class and method of every module (documentation tools, pydantic, typer and users call it). A
name imported under ``if TYPE_CHECKING:`` only and used in an annotation breaks this with a NameError."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import typing

import pytest

import spikedyn

# Modules that import an optional dependency at their top, and that dependency. pyproject.toml installs
# triton (the GPU kernels' compiler) on Linux x86_64 only, so elsewhere (macOS, aarch64) these two cannot be
# imported and are skipped; everywhere else they are checked like the rest.
OPTIONAL_DEPENDENCY = {"spikedyn.models.triton_lif": "triton", "spikedyn.models.triton_rate": "triton"}

MODULES = ["spikedyn", *(m.name for m in pkgutil.walk_packages(spikedyn.__path__, "spikedyn.")
                         if not m.name.endswith("__main__"))]  # fmt: skip


def _missing_dependency(name: str) -> str | None:
    dep = OPTIONAL_DEPENDENCY.get(name)
    return dep if dep is not None and importlib.util.find_spec(dep) is None else None


def _param(name: str):
    dep = _missing_dependency(name)
    reason = f"{name} imports the optional dependency {dep}, not installed here (pyproject: Linux x86_64 only)"
    return pytest.param(name, id=name, marks=pytest.mark.skipif(dep is not None, reason=reason))


def _public_callables(mod) -> list[tuple[str, object]]:
    """Public functions and classes defined in ``mod`` (not re-exported), and the classes' public methods
    and ``__init__``."""
    out = []
    for name, obj in vars(mod).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
            continue
        if inspect.isfunction(obj):
            out.append((name, obj))
        elif inspect.isclass(obj):
            out.append((name, obj))
            out += [(f"{name}.{k}", v) for k, v in vars(obj).items()
                    if inspect.isfunction(v) and (not k.startswith("_") or k == "__init__")]  # fmt: skip
    return out


def test_the_walk_finds_the_package_and_the_optional_modules():
    assert len(MODULES) > 50  # the walk found the package, not an empty path
    assert set(OPTIONAL_DEPENDENCY) <= set(MODULES)  # the table names real modules
    checked = sum(len(_public_callables(importlib.import_module(n))) for n in MODULES if not _missing_dependency(n))
    assert checked > 300


@pytest.mark.parametrize("name", [_param(n) for n in MODULES])
def test_every_public_annotation_resolves(name):
    mod = importlib.import_module(name)
    failures = []
    for qualname, obj in _public_callables(mod):
        try:
            typing.get_type_hints(obj)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"{name}.{qualname}: {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_top_level_names_and_deploy_execute_resolve():
    for name in spikedyn._LAZY:
        typing.get_type_hints(getattr(spikedyn, name))
    from spikedyn.export import deploy, deploy_network

    hints = typing.get_type_hints(deploy.execute)
    assert hints["dep"] is deploy.LavaTarget
    for cls in (deploy.Deployment, deploy_network.NetworkDeployment):  # both satisfy the protocols
        fields = typing.get_type_hints(cls)
        assert set(typing.get_type_hints(deploy.LavaTarget)) <= set(fields)
        assert inspect.signature(cls.run) == inspect.signature(deploy.LavaDeployment.run)
        assert typing.get_type_hints(cls.run) == typing.get_type_hints(deploy.LavaDeployment.run)
    # deploy returns a Deployment for a SpikingRNN, a NetworkDeployment for a SpikingNetwork
    assert typing.get_type_hints(deploy.deploy)["return"] == deploy.Deployment | deploy.LavaDeployment
