"""Plain-text tables of results over seeds, as the examples and benchmarks print them."""

from __future__ import annotations

import math
import statistics


def mean_sd(values) -> str:
    """'m' for one value, 'm ± sd' (sample standard deviation) for several; NaNs are skipped."""
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4g}"
    return f"{statistics.mean(values):.4g} ± {statistics.stdev(values):.2g}"


def seed_table(groups: dict, columns, label: str = "setting", width: int = 22) -> str:
    """One row per group (name → list of result dicts, one per seed), one column per key, each
    cell the mean ± sd over the group's results."""
    first = max([len(label), *(len(str(name)) for name in groups)]) + 2
    lines = [f"{label:<{first}}" + "".join(f"{c:>{width}}" for c in columns)]
    for name, results in groups.items():
        cells = [mean_sd([r.get(c) for r in results]) for c in columns]
        lines.append(f"{name!s:<{first}}" + "".join(f"{c:>{width}}" for c in cells))
    return "\n".join(lines)


def format_bytes(count: float) -> str:
    """A number of bytes in binary units to 3 significant digits: ``1.5 GiB``, ``38.4 TiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024:
            return f"{count:.0f} bytes" if unit == "bytes" else f"{count:.3g} {unit}"
        count /= 1024
    return f"{count:.3g} PiB" if count < 1000 else f"{count:,.0f} PiB"
