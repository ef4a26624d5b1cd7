"""Helpers shared by the CLI commands: building tasks/models from options, printing results."""
from __future__ import annotations

import json
import sys
from typing import Any

import typer


def json_option() -> Any:
    return typer.Option(False, "--json", help="Print a JSON summary on stdout (progress goes to stderr).")


def emit(summary: dict[str, Any], as_json: bool, title: str) -> None:
    """Print ``summary`` as JSON or as an aligned table."""
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    print(title)
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        print(f"  {k:<{width}}  {v}")
    sys.stdout.flush()
