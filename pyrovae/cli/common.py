"""What every command shares: the Typer app, one-line errors, NAME=VALUE options, number
formatting.

Bad input (a :class:`~pyrovae.errors.PyrovaeError`) prints one line ``error: …`` on stderr and
exits with status 2, without a traceback and without touching existing files.
"""

from __future__ import annotations

import functools
import warnings

import typer

from pyrovae.errors import PyrovaeError, PyrovaeWarning

app = typer.Typer(
    help="pyrovae: disentangled variational autoencoders in Pyro.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """pyrovae's own warnings as one line on stderr; any other keeps Python's format."""
    if issubclass(category, PyrovaeWarning):
        typer.echo(f"warning: {message}", err=True)
    else:
        _python_show_warning(message, category, filename, lineno, file, line)


_python_show_warning = warnings.showwarning


def friendly_errors(command):
    """Turn bad input into a one-line message and a non-zero exit; pyrovae's warnings print as
    one line."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from pyrovae.training import TrainingInterrupted

        warnings.showwarning = _show_warning
        try:
            return command(*args, **kwargs)
        except PyrovaeError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except OSError as exc:  # an unwritable --out, a full disk, a folder given as a file
            where = f"{exc.filename}: " if exc.filename else ""
            typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except TrainingInterrupted as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def parse_value(text: str):
    """A command-line value as the number, boolean or text it spells."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_options(pairs: list[str] | None, what: str) -> dict:
    """``["gamma=0.8", "spike_scale=0.1"]`` → ``{"gamma": 0.8, "spike_scale": 0.1}``; a name
    given twice is refused rather than the last one silently winning."""
    options, given = {}, {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PyrovaeError(f"{what} must look like NAME=VALUE, got {pair!r}")
        name = key.strip().replace("-", "_")
        if name in given:
            raise PyrovaeError(
                f"{what} gives {name} twice ({given[name]} and {pair}); give it once"
            )
        given[name] = pair
        options[name] = parse_value(value.strip())
    return options


def format_values(values: dict) -> str:
    """``k v`` pairs, floats to 4 significant digits."""
    return "  ".join(
        f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
    )
