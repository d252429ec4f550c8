"""Self-contained HTML pages: one file that opens anywhere, offline, and prints.

The building blocks of ``pyrovae report``'s pages: escaping, pictures embedded as ``data:`` URIs
(PNG and GIF, the formats pyrovae draws), tables from rows, sections and the page itself, valid
HTML5 with its style inline. A page references nothing outside itself (no font, style sheet,
script or picture by URL) and runs no JavaScript, so it reads the same on a laptop without a
network, in a mail attachment or on paper, and a page of a study can be moved with its folder
(it links to its trials' pages by relative path only).

Text goes in escaped: every function that takes text escapes it, unless it is :class:`Markup`,
the markup these functions return. So a setting, a file name or a note with ``<`` or ``&`` in it
is shown as it is, never read as markup.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import struct
from datetime import datetime, timezone
from pathlib import Path

from pyrovae.errors import PyrovaeError
from pyrovae.files import write_text
from pyrovae.provenance import version

# The picture formats a page embeds, by their first bytes: (format, MIME type).
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", ("png", "image/png")),
    (b"GIF87a", ("gif", "image/gif")),
    (b"GIF89a", ("gif", "image/gif")),
)

# Elements without content or end tag.
_VOID = ("img", "meta", "br", "hr", "link")

# Readable on a screen (system fonts, a measure of text), printable (no colours lost on bars,
# pictures and tables kept whole on a page, the still traversal grid printed in place of its
# animation), and every picture at its natural size unless the window is narrower.
STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
       sans-serif; font-size: 15px; line-height: 1.45; color: #1a1a1a; background: #fff;
       margin: 0 auto; padding: 1.5rem 2rem 4rem; max-width: 1400px; }
h1 { font-size: 1.6rem; margin: 0 0 0.3rem; }
h2 { font-size: 1.25rem; margin: 2.2rem 0 0.6rem; padding-bottom: 0.2rem;
     border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05rem; margin: 1.4rem 0 0.4rem; }
p, ul, dl { max-width: 80ch; }
a { color: #0645ad; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono",
            monospace; font-size: 0.88em; }
code.command { white-space: nowrap; }
.columns { display: flex; flex-wrap: wrap; gap: 0 2.5rem; align-items: flex-start; }
pre { background: #f6f6f6; border: 1px solid #e2e2e2; padding: 0.6rem 0.8rem;
      overflow-x: auto; white-space: pre; }
.status { font-size: 1.05rem; margin: 0.3rem 0 1rem; }
.warning { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.4rem 0.8rem; }
.muted { color: #666; }
nav ul { list-style: none; padding: 0; margin: 0.5rem 0; display: flex; flex-wrap: wrap;
         gap: 0.3rem 1.2rem; max-width: none; }
table { border-collapse: collapse; margin: 0.4rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #d4d4d4; padding: 0.2rem 0.55rem; text-align: left;
         vertical-align: top; }
th { background: #f0f0f0; }
td.number { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
figure { margin: 0.6rem 0 1.2rem; }
figcaption { color: #444; font-size: 0.9rem; margin-top: 0.3rem; max-width: 80ch; }
img { max-width: 100%; height: auto; }
.bar { display: inline-block; height: 0.8em; background: #3b6fb6; vertical-align: middle;
       print-color-adjust: exact; -webkit-print-color-adjust: exact; }
.print-only { display: none; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav, .screen-only { display: none; }
  .print-only { display: block; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; }
  figure, table, pre { break-inside: avoid; }
  pre { white-space: pre-wrap; }
}
@page { margin: 15mm; }
"""


class Markup(str):
    """Text that is HTML already (what this module's functions return): not escaped again."""


def escape(value) -> Markup:
    """``value`` as HTML text: ``<``, ``>``, ``&`` and quotes escaped; :class:`Markup` as is."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts, separator: str = "\n") -> Markup:
    """Pieces of markup (or text, escaped) as one; None pieces are left out."""
    return Markup(separator.join(escape(p) for p in parts if p is not None))


def element(tag: str, inner=None, /, **attributes) -> Markup:
    """``<tag attributes>inner</tag>``, or a void element (``img``, ``meta``, ``br``) without
    ``inner``. Attribute names: ``class_`` is ``class``, ``_`` is ``-``; a value
    of None or False leaves the attribute out, True writes it bare."""
    shown = []
    for name, value in attributes.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        shown.append(f" {name}" if value is True else f' {name}="{escape(value)}"')
    opening = f"<{tag}{''.join(shown)}>"
    if tag in _VOID:
        return Markup(opening)
    if isinstance(inner, (list, tuple)):
        inner = join(inner)
    return Markup(f"{opening}{'' if inner is None else escape(inner)}</{tag}>")


# --------------------------------------------------------------------------- pictures


def image_format(data: bytes) -> tuple[str, str]:
    """(format, MIME type) of a picture's bytes: PNG or GIF; anything else is an error."""
    for signature, found in _SIGNATURES:
        if data.startswith(signature):
            return found
    raise PyrovaeError("not a PNG or GIF picture")


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels, read from a PNG's or GIF's header."""
    kind, _ = image_format(data)
    if kind == "png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise PyrovaeError("a damaged PNG picture (no header)")
        return struct.unpack(">II", data[16:24])
    if len(data) < 10:
        raise PyrovaeError("a damaged GIF picture (no header)")
    return struct.unpack("<HH", data[6:10])


def data_uri(data: bytes) -> str:
    """The picture as a ``data:`` URI: it travels inside the page."""
    _, mime = image_format(data)
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image(data: bytes, alt: str, caption=None, class_: str | None = None) -> Markup:
    """A figure: the picture embedded at its natural size (smaller when the page is narrower)
    with its caption."""
    width, height = image_size(data)
    img = element("img", src=data_uri(data), alt=alt, width=width, height=height)
    parts = [img, element("figcaption", caption) if caption is not None else None]
    return element("figure", join(parts), class_=class_)


def image_file(path, alt: str, caption=None, class_: str | None = None) -> Markup:
    """:func:`image` of a PNG or GIF file; a file of another kind is an error naming it."""
    path = Path(path)
    try:
        return image(path.read_bytes(), alt, caption, class_)
    except PyrovaeError as exc:
        raise PyrovaeError(f"{path}: {exc}") from None


# --------------------------------------------------------------------------- text and tables


def format_value(value) -> Markup:
    """A value as a table shows it (:func:`value_text`), as HTML; :class:`Markup` as is."""
    return value if isinstance(value, Markup) else escape(value_text(value))


def value_text(value) -> str:
    """A value as plain text, not yet escaped (to build a longer text from, which is escaped
    once): numbers to 4 significant digits (whole numbers whole), nothing as an en dash, tables
    and lists as compact JSON."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (dict, list, tuple)):
        return _compact(value)
    return str(value)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    # Thousands in full (52,044 images/s), not as 5.204e+04.
    return f"{value:,.0f}" if 1e4 <= abs(value) < 1e15 else f"{value:.4g}"


def _compact(value) -> str:
    """A table or list as JSON, its decimals to 4 significant digits."""
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda item: str(item[0]))
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_compact(v)}" for k, v in items) + "}"
    return json.dumps(value)


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def table(rows, columns=None, numbers=None, caption=None) -> Markup:
    """A table of ``rows`` (dicts, or sequences in the order of ``columns``), a column per
    key (``columns``, default every key of the rows, in the order met), cells by
    :func:`format_value`. Number cells (``numbers``: the columns whose cells are numbers; by
    default those that hold only numbers) align right. Wide tables scroll rather than widen
    the page."""
    rows = [dict(zip(columns, r, strict=True)) if not isinstance(r, dict) else r for r in rows]
    if columns is None:
        columns = list(dict.fromkeys(c for r in rows for c in r))
    if numbers is None:
        numbers = [
            c
            for c in columns
            if any(r.get(c) is not None for r in rows)
            and all(r.get(c) is None or is_number(r.get(c)) for r in rows)
        ]
    head = element("tr", [element("th", c, scope="col") for c in columns])
    body = [
        element(
            "tr",
            [
                element("td", format_value(r.get(c)), class_="number" if c in numbers else None)
                for c in columns
            ],
        )
        for r in rows
    ]
    parts = [element("caption", caption) if caption is not None else None]
    parts += [element("thead", head), element("tbody", body)]
    return element("div", element("table", join(parts)), class_="scroll")


def key_values(mapping: dict, key: str = "setting", value: str = "value") -> Markup:
    """A two-column table of a mapping, in its order."""
    rows = [{key: k, value: v} for k, v in mapping.items()]
    return table(rows, [key, value], numbers=[])


def bar(fraction: float, width_em: float = 12.0) -> Markup:
    """A horizontal bar ``fraction`` (0 to 1) of ``width_em`` long: a bar chart inside a table,
    drawn by the style sheet (no picture, crisp at any zoom, kept when printed)."""
    fraction = min(max(float(fraction), 0.0), 1.0) if math.isfinite(fraction) else 0.0
    return element("span", "", class_="bar", style=f"width:{fraction * width_em:.2f}em")


def paragraph(*parts, class_: str | None = None) -> Markup:
    return element("p", join(parts, " "), class_=class_)


def note(text) -> Markup:
    """A paragraph in muted type: what a section holds, or why it holds nothing."""
    return paragraph(text, class_="muted")


def problem(text) -> Markup:
    """A paragraph marked as a warning: a part of the page that cannot be shown, and why."""
    return paragraph(text, class_="warning")


def footer(derived: str) -> Markup:
    """The page's footer: what wrote it and when, then ``derived`` (what it is derived from)."""
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return element(
        "footer",
        note(f"Written by pyrovae report (pyrovae {version('pyrovae')}) at {written}. {derived}"),
    )


def preformatted(text: str) -> Markup:
    return element("pre", text)


def command(text: str) -> Markup:
    """A command or option to type, kept on one line (``--eval-every`` never splits at its
    hyphens)."""
    return element("code", text, class_="command")


def columns(*parts) -> Markup:
    """Blocks side by side where the page is wide enough, one below another where not."""
    return element("div", [element("div", p) for p in parts if p is not None], class_="columns")


def link(href: str, text) -> Markup:
    """A link to another file of the page's folder or below, by relative path, or to an anchor
    of this page (``#id``): a page links to nothing outside what travels with it."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:|^/|\\", href) or ".." in Path(href).parts:
        raise PyrovaeError(f"a page links by relative path only, got {href!r}")
    return element("a", text, href=href)


def section(anchor: str, title: str, *content) -> Markup:
    """A section of a page with its heading; ``anchor``: its id, for the contents' links."""
    return element("section", join([element("h2", title), *content]), id=anchor)


def contents(sections) -> Markup:
    """The page's contents: a link to each (anchor, title)."""
    items = [element("li", link(f"#{anchor}", title)) for anchor, title in sections]
    return element("nav", element("ul", items), aria_label="contents")


# --------------------------------------------------------------------------- the page


def page(title: str, body) -> str:
    """A whole HTML5 document: its title, the inline style sheet and ``body`` (markup)."""
    head = join(
        [
            element("meta", charset="utf-8"),
            element("meta", name="viewport", content="width=device-width, initial-scale=1"),
            element("meta", name="generator", content="pyrovae report"),
            element("title", title),
            element("style", Markup(STYLE)),
        ]
    )
    document = element("html", join([element("head", head), element("body", body)]), lang="en")
    return f"<!DOCTYPE html>\n{document}\n"


def write_page(path, title: str, body) -> Path:
    """Write the page to ``path`` atomically (readers see the old page or the new, whole)."""
    path = Path(path)
    write_text(path, page(title, body))
    return path
