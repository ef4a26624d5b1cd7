"""Validated run configurations (pydantic, strict types), loadable from TOML or YAML.

Every mistake in a configuration is one line that names the key and what it expects, e.g.
``hidden: expected an integer, got true (a boolean)`` or ``hiden: unknown key; did you mean 'hidden'?``.
Types are strict: ``hidden = true`` or ``steps = "2"`` are refused, not coerced (an integer is accepted
where a number is expected). Task and model parameters are checked against the task's / model's own
signature (``task_params.dt = "ten"`` -> ``task_params.dt: expected a number, got "ten" (a string)``).
"""
from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model


class ConfigError(ValueError):
    """A bad configuration value: the message is one line that says what to change."""


class TrainConfig(BaseModel):
    """Everything ``spikedyn train`` needs; field names are the CLI options with underscores."""

    model_config = ConfigDict(extra="forbid", strict=True)

    task: str = "rdm"
    task_params: dict[str, Any] = Field(default_factory=dict)
    model: Literal["rate", "gru", "lstm", "lif", "alif"] = "rate"
    model_params: dict[str, Any] = Field(default_factory=dict)
    hidden: int = Field(64, ge=1)
    rule: str = "bptt"
    steps: int = Field(500, ge=1)
    batch_size: int = Field(64, ge=1)
    lr: float | None = Field(None, gt=0)  # None: 1e-3 for a new run, the run's own on resume
    clip: float | None = Field(1.0, gt=0)
    seed: int = 0
    eval_every: int = Field(50, ge=1)
    eval_trials: int = Field(1000, ge=1)
    target_accuracy: float | None = Field(None, gt=0, le=1)
    run_dir: Annotated[Path, Field(strict=False)] | None = None  # a string in TOML/YAML
    device: str | None = None
    population: int | None = Field(None, ge=1)
    preset: str | None = None
    rule_params: dict[str, Any] = Field(default_factory=dict)


class DeployConfig(BaseModel):
    """What ``spikedyn deploy`` takes (CLI options or a TOML/YAML file)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_dir: Annotated[Path, Field(strict=False)] | None = None
    backend: Literal["lava-sim", "lava-loihi"] = "lava-sim"
    precision: Literal["auto", "fixed", "float"] = "auto"
    trials: int = Field(500, ge=1)
    chunk: int | None = Field(None, ge=1)
    lava_python: str | None = None


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML (.toml) or YAML (.yaml/.yml) file into a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of option names to values")
        return data
    raise ConfigError(f"config file {path} must end in .toml, .yaml or .yml")


_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "string_type": "a string", "bool_type": "true or false", "bool_parsing": "true or false",
    "dict_type": "a table of key = value (TOML: key = {dt = 10}; YAML: a mapping)",
    "list_type": "a list", "tuple_type": "a list", "path_type": "a path (a string)",
    "none_required": "nothing (null)",
}  # fmt: skip
# union members pydantic adds to an error's location ("clip.float"); not part of the key the user wrote
_TYPE_TAGS = {"int", "float", "str", "bool", "dict", "list", "tuple", "none", "Path", "path", "lax-or-strict"}


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", dict: "a table", list: "a list",
            type(None): "null"}.get(type(value), type(value).__name__)  # fmt: skip


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'hidden'?"`` for a close match among ``known`` (difflib), else the known keys."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; known keys: {', '.join(known)}" if known else ""


def _one_line(err: dict[str, Any], prefix: str, known: Iterable[str]) -> str:
    loc = [str(x) for x in err["loc"] if not (isinstance(x, str) and (x in _TYPE_TAGS or "[" in x))]
    where = ".".join([p for p in (prefix,) if p] + loc) or prefix or "config"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key{did_you_mean(loc[-1] if loc else where, known)}"
    if kind == "missing":
        return f"{where}: required but missing"
    if kind in _EXPECTED:
        return f"{where}: expected {_EXPECTED[kind]}, got {_show(err['input'])} ({_kind(err['input'])})"
    return f"{where}: {err['msg']} (got {_show(err['input'])})"


def validate(cls: type[BaseModel], data: dict[str, Any], prefix: str = "") -> BaseModel:
    """Build ``cls`` from ``data``; turn pydantic's report into a one-line ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a table of key = value, got {_show(data)} ({_kind(data)})")
    try:
        return cls(**data)
    except ValidationError as e:
        errors = e.errors()
        # report the first key in the order written (a missing/extra key before a wrong value below it)
        raise ConfigError(_one_line(errors[0], prefix, cls.model_fields)) from None


def _signature_model(fn: Callable[..., Any], name: str, skip: int = 0) -> type[BaseModel] | None:
    """A strict pydantic model of ``fn``'s keyword parameters (None when it takes ``**kwargs`` or its
    annotations cannot be resolved)."""
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except (TypeError, ValueError, NameError):
        return None
    fields: dict[str, Any] = {}
    for i, p in enumerate(sig.parameters.values()):
        if i < skip or p.name == "self":
            continue
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[p.name] = (hints.get(p.name, Any), default)
    try:
        return create_model(name, __config__=ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True),
                            **fields)  # fmt: skip
    except Exception:  # an annotation pydantic cannot check (a torch type, a forward reference): no check
        return None


def check_params(fn: Callable[..., Any], params: Any, prefix: str, skip: int = 0) -> dict[str, Any]:
    """Check ``params`` (the keyword arguments a user gave for ``fn``) against ``fn``'s signature: one
    ``ConfigError`` line naming ``prefix.key`` for an unknown key or a wrong type. Returns ``params``."""
    if not isinstance(params, dict):
        raise ConfigError(f"{prefix}: expected a table of key = value (e.g. {prefix} = {{dt = 10}}), got "
                          f"{_show(params)} ({_kind(params)})")  # fmt: skip
    model = _signature_model(fn, f"{prefix} of {getattr(fn, '__qualname__', fn)}", skip=skip)
    if model is None:
        return params
    required = [k for k, f in model.model_fields.items() if f.is_required()]
    try:
        # the required arguments are the caller's (sizes), so give placeholders that pass
        model.model_validate({**{k: None for k in required if k not in params}, **params}, strict=True)
    except ValidationError as e:
        errors = [err for err in e.errors() if not (err["loc"] and err["loc"][0] in required
                                                    and err["loc"][0] not in params)]  # fmt: skip
        if errors:
            raise ConfigError(_one_line(errors[0], prefix, model.model_fields)) from None
    return params


def parse_key_values(items: list[str], what: str) -> dict[str, Any]:
    """``["dt=10", "mask=all"]`` -> ``{"dt": 10, "mask": "all"}`` (values parsed as TOML scalars; anything
    else stays a string, and the task's or model's signature decides whether that is allowed)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} expects key=value, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = raw.strip()
    return out
