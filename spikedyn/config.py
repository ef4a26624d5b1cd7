"""Validated run configurations (pydantic), loadable from TOML or YAML."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A bad configuration value: the message is one line that says what to change."""


class TrainConfig(BaseModel):
    """Everything ``spikedyn train`` needs; field names are the CLI options with underscores."""

    model_config = ConfigDict(extra="forbid")

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
    run_dir: Path | None = None


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


def validate(cls: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """Build ``cls`` from ``data``; turn pydantic's report into a one-line ConfigError."""
    try:
        return cls(**data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "config"
        raise ConfigError(f"{where}: {err['msg']}") from None


def parse_key_values(items: list[str], what: str) -> dict[str, Any]:
    """``["dt=10", "mask=all"]`` -> ``{"dt": 10, "mask": "all"}`` (values parsed as TOML scalars)."""
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
