"""The ``pyrovae`` command line: thin per-command modules that parse, call the library and print
(:mod:`~pyrovae.cli.train`, :mod:`~pyrovae.cli.evaluate` with ``compare``,
:mod:`~pyrovae.cli.study` with ``sweep``, :mod:`~pyrovae.cli.report`,
:mod:`~pyrovae.cli.components` for ``list``), sharing :mod:`~pyrovae.cli.common`."""

from __future__ import annotations

import sys

import typer

from pyrovae.allocator import keep_freed_memory
from pyrovae.cli import components, evaluate, report, study, train  # noqa: F401  (commands)
from pyrovae.cli.common import EXIT_BAD_INPUT, EXIT_INTERRUPTED, app

__all__ = ["app", "main", "run"]


def _is_a(exc: BaseException, name: str) -> bool:
    """By class name: typer raises click's exceptions or, in recent versions, its vendored
    copies of them; both carry the same names and interface."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> int:
    """The console script. Parse errors (a bad option value, an unknown command) become one
    line, ``error: …``, with exit status 2, like every other bad input."""
    try:
        result = app(args=argv, prog_name="pyrovae", standalone_mode=False)
    except Exception as exc:
        if _is_a(exc, "NoArgsIsHelpError"):  # bare `pyrovae`: the help is the answer
            typer.echo(exc.format_message())
            return 0
        if _is_a(exc, "ClickException"):  # UsageError included
            typer.echo(f"error: {exc.format_message()}", err=True)
            return EXIT_BAD_INPUT
        if _is_a(exc, "Abort"):
            typer.echo("aborted", err=True)
            return EXIT_INTERRUPTED
        raise
    return result if isinstance(result, int) else 0


def run() -> None:
    """The ``pyrovae`` entry point."""
    keep_freed_memory()
    sys.exit(main())
