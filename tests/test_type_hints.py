"""Every public annotation in spikedyn resolves at runtime: ``typing.get_type_hints`` works on each public
function, class and method of every module (documentation tools, pydantic, typer and users call it). A
name imported under ``if TYPE_CHECKING:`` only and used in an annotation breaks this with a NameError."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import typing

import spikedyn


def _modules() -> list:
    names = [m.name for m in pkgutil.walk_packages(spikedyn.__path__, "spikedyn.")
             if not m.name.endswith("__main__")]  # fmt: skip
    return [importlib.import_module(n) for n in ["spikedyn", *names]]


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


def test_every_public_annotation_resolves():
    modules = _modules()
    assert len(modules) > 50  # the walk found the package, not an empty path
    failures, checked = [], 0
    for mod in modules:
        for name, obj in _public_callables(mod):
            checked += 1
            try:
                typing.get_type_hints(obj)
            except Exception as e:  # noqa: BLE001 - every failure is reported, with its module
                failures.append(f"{mod.__name__}.{name}: {type(e).__name__}: {e}")
    assert checked > 300
    assert not failures, "\n".join(failures)


def test_top_level_names_and_deploy_execute_resolve():
    for name in spikedyn._LAZY:
        typing.get_type_hints(getattr(spikedyn, name))
    from spikedyn.export import deploy, deploy_network

    hints = typing.get_type_hints(deploy.execute)
    assert hints["dep"] is deploy.LavaTarget
    for cls in (deploy.Deployment, deploy_network.NetworkDeployment):  # both satisfy the protocol
        fields = typing.get_type_hints(cls)
        assert set(typing.get_type_hints(deploy.LavaTarget)) <= set(fields)
