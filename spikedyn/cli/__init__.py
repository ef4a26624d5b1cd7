"""The ``spikedyn`` command line. Each command lives in its own module and registers itself on ``app``.

One error boundary (``main``): a mistake the user can fix (a bad option or config value, a missing file,
CUDA asked for and absent, ...) prints one line, ``spikedyn: error: ...``, and exits with code 2; a run
that fails (training diverged) prints one line and exits with 1; anything else is a bug and shows its
traceback. ``SPIKEDYN_DEBUG=1`` shows the traceback of user errors too.
"""
from __future__ import annotations

import os
import sys

import typer

from .. import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="spikedyn: rate RNNs and their spiking twins; train, compare, analyse, deploy. Commands that write "
    "files write under their run or out directory (default under runs/).",
)


def _version(value: bool) -> None:
    if value:
        print(f"spikedyn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version."),
) -> None:
    """spikedyn: rate RNNs and their spiking twins; train, compare, analyse, deploy."""


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


def _classes(*paths: str) -> tuple[type[BaseException], ...]:
    """The exception classes at ``module:attr`` paths that exist (typer vendors click in new versions)."""
    import importlib

    found = []
    for path in paths:
        module, attr = path.split(":")
        try:
            found.append(getattr(importlib.import_module(module), attr))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_EXITS = _classes("typer:Exit", "typer:Abort", "click.exceptions:Exit", "click.exceptions:Abort")
_USAGE = _classes("typer.exceptions:TyperException", "click.exceptions:ClickException")
# user errors: bad values (the library validates its arguments with ValueError; ConfigError, DeviceError and
# pydantic's ValidationError are ValueErrors), missing or unwritable files
_USER = (CLIError, ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
         PermissionError)  # fmt: skip


def _user_message(e: BaseException) -> str:
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        from ..config import _one_line

        err = e.errors()[0]
        return _one_line(err, "", ())
    text = str(e).strip()
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        text = f"{e.filename}: {e.strerror}"
    return text.splitlines()[0] if text else type(e).__name__


def _run_failure(e: BaseException) -> bool:
    """A run that failed for a reason the user must look at (not a bug): training diverged."""
    train = sys.modules.get("spikedyn.learning.train")
    return train is not None and isinstance(e, train.TrainingDiverged)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikedyn`` script: the one error boundary of the command line."""
    from ..progress import set_quiet

    args = list(sys.argv[1:] if argv is None else argv)
    set_quiet("--json" in args)  # --json: stdout is the result; no progress on stderr either
    debug = os.environ.get("SPIKEDYN_DEBUG", "") not in ("", "0")
    try:
        rv = app(args=args, prog_name="spikedyn", standalone_mode=False)
    except _EXITS as e:
        return int(getattr(e, "exit_code", 1))
    except _USAGE as e:
        print(f"spikedyn: error: {e.format_message()}", file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except _USER as e:
        if debug:
            raise
        print(f"spikedyn: error: {_user_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikedyn: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if _run_failure(e) and not debug:
            print(f"spikedyn: error: {_user_message(e)}", file=sys.stderr)
            return 1
        raise
    finally:
        set_quiet(False)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
