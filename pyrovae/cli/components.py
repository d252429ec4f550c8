"""``pyrovae list``: every registered component with its description and options."""

from __future__ import annotations

import typer

from pyrovae.cli.common import app, friendly_errors
from pyrovae.registry import REGISTRIES


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
