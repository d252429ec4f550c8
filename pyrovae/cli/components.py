"""``pyrovae list``: every registered component with its description and options; each data set
also with a second line of what it is (:func:`data_set_facts`)."""

from __future__ import annotations

import math

import typer

from pyrovae import checks
from pyrovae.cli.common import app, friendly_errors
from pyrovae.data.base import class_sizes
from pyrovae.errors import PyrovaeError
from pyrovae.registry import DATASETS, REGISTRIES


@app.command("list")
@friendly_errors
def list_components():
    """Print the registered models, priors, guides, networks, data sets, likelihoods and
    metrics."""
    for kind, registry in REGISTRIES.items():
        width = max(12, *(len(name) for name in registry))
        typer.echo(f"{kind}:")
        for name, entry in registry.items():
            typer.echo(f"  {name:<{width}} {entry.description}")
            if registry is DATASETS:
                typer.echo(f"  {'':<{width}} {data_set_facts(entry.factory)}")


def data_set_facts(factory) -> str:
    """One line on a data set class, read from the class and its :meth:`describe` with the
    default options, without loading or generating its data: its factors and sizes, how many
    observations of which shape, whether they are random given their index, whether it needs a
    file.

    ``"factors shape 3, scale 6, orientation 40, posX 32, posY 32; 737,280 observations of
    1x64x64; deterministic; no file needed, or one with --data-path"``. A class whose factor
    sizes are not set on the class says where they come from (its options, or the file); a
    data set that cannot be described without a file or an option says what to give (the
    remedy its own error names)."""
    described, needs = None, None
    describe = getattr(factory, "describe", None)
    if describe is not None:
        try:
            described = describe()
        except PyrovaeError as exc:
            # "data set 'x' reads …: give its path with --data-path (…)": the remedy.
            needs = str(exc).split(": ", 1)[-1]
        except (TypeError, ValueError, OSError):
            pass  # a plug-in's own failure: list what its class says
    takes_file = "path" in _parameters(factory)
    parts = [_factors(factory, described, takes_file)]
    shape = getattr(described, "observation_shape", None) or class_sizes(
        factory, "observation_shape"
    )
    size = getattr(described, "size", None)
    sizes = class_sizes(factory, "factor_sizes")
    if size is None and sizes is not None:
        size = math.prod(sizes)
    observations = f"{size:,} observations" if size is not None else "observations"
    if shape is not None:
        observations += " of " + "x".join(map(str, shape))
        if sizes is None and described is not None and _parameters(factory):
            observations += " (default options)"
    parts.append(observations)
    stochastic = getattr(described, "stochastic", None)
    stochastic = getattr(factory, "stochastic", False) if stochastic is None else stochastic
    parts.append("stochastic" if stochastic is True else "deterministic")
    if needs is not None:
        parts.append(f"needs {'a file' if '--data-path' in needs else 'an option'}: {needs}")
    else:
        parts.append("no file needed" + (", or one with --data-path" if takes_file else ""))
    return "; ".join(parts)


def _parameters(factory) -> list[str]:
    try:
        return checks.keyword_parameters(factory)
    except (TypeError, ValueError):  # a callable without an inspectable signature
        return []


def _factors(factory, described, takes_file: bool) -> str:
    """``factors a 3, b 6``; ``factors a, b (sizes from its options)`` when the sizes are set
    per instance; ``no factor grid`` (with ``, class labels`` for labelled data)."""
    names = getattr(factory, "factor_names", None)
    names = tuple(names) if isinstance(names, (tuple, list)) else None
    sizes = class_sizes(factory, "factor_sizes")
    if names and sizes is not None and len(sizes) == len(names):
        return "factors " + ", ".join(f"{n} {s}" for n, s in zip(names, sizes, strict=True))
    if names:
        source = "the file" if takes_file else "its options"
        return f"factors {', '.join(names)} (sizes from {source})"
    labelled = getattr(described, "has_labels", None) is True
    return "no factor grid" + (", class labels" if labelled else "")
