"""The ``spikedyn`` command line. Each command lives in its own module and registers itself on ``app``.

Errors in arguments or configuration print one line, ``spikedyn: error: ...``, and exit with code 2
(no traceback); a failed run exits with 1.
"""
from __future__ import annotations

import sys

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="spikedyn: rate RNNs and their spiking twins; train, compare, analyse, deploy.",
)



def _register_commands() -> None:
    """Import every command module in this package; each registers its commands on ``app`` or on a
    group from ``groups``. Adding a command = adding a module (no central list to edit)."""
    import importlib
    import pkgutil

    from . import groups  # noqa: F401  (the sub-command groups first)

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name not in ("common", "groups") and not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


class CLIError(Exception):
    """A problem the user can fix; printed as one line with exit code 2."""


_register_commands()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikedyn`` script."""
    from ..config import ConfigError

    try:
        rv = app(args=argv, prog_name="spikedyn", standalone_mode=False)
    except (CLIError, ConfigError, ValueError, FileNotFoundError) as e:
        print(f"spikedyn: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikedyn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # click/typer usage errors carry their own message and exit code
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            print(f"spikedyn: error: {e.format_message()}", file=sys.stderr)
            return int(e.exit_code)
        if type(e).__name__ == "Exit" or type(e).__name__ == "Abort":
            return int(getattr(e, "exit_code", 1))
        if type(e).__name__ == "TrainingDiverged":
            print(f"spikedyn: error: {e}", file=sys.stderr)
            return 1
        raise
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
