"""A small document model (sections of paragraphs, code, lists, tables, figures) and its two
renderings: Markdown (``report.md``, kept for diffs) and one self-contained HTML page
(``report.html``: inline CSS, figures embedded as data URIs, no scripts, no network).

Building the report once as blocks and rendering it twice keeps the two files from drifting.
Inline markup in text is limited to ``code`` and **bold**, which both renderings understand.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pandas as pd
from markdown_it import MarkdownIt


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Table:
    """A table of already formatted cells (strings); ``numeric`` columns are right-aligned."""

    frame: pd.DataFrame
    caption: str = ""
    numeric: tuple[str, ...] = ()


@dataclass(frozen=True)
class Markdown:
    """Markdown written by another stage (e.g. ``ppc`` appending to ``report.md``).

    With a ``key`` it is wrapped in that stage's markers (``<!-- bayes_sor:KEY:begin -->``), so
    the stage can later replace its own section in ``report.md`` in place.
    """

    text: str
    key: str = ""
    #: folder that relative image links in ``text`` are resolved against (for embedding)
    base: Path | None = None


@dataclass(frozen=True)
class Figure:
    """A PNG or SVG file in the run folder (Markdown links it; HTML embeds it)."""

    path: Path
    caption: str


Block = Paragraph | Code | Bullets | Table | Markdown | Figure


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""

    def __post_init__(self) -> None:
        if not self.anchor:
            self.anchor = re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]


def agree(count: int, one: str, many: str) -> str:
    """``one`` or ``many`` (a noun, a verb) as ``count`` asks: "1 pair has", "2 pairs have"."""
    return one if count == 1 else many


def format_frame(frame: pd.DataFrame, digits: int = 3) -> Table:
    """Format numbers with ``digits`` decimals (integers as such, NaN blank) into a Table."""
    numeric = tuple(
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    )

    def cell(value) -> str:
        if (
            value is None
            or value is pd.NA
            or (isinstance(value, float | np.floating) and np.isnan(value))
        ):
            return ""
        if isinstance(value, bool | np.bool_):
            return "yes" if value else "no"
        if isinstance(value, int | np.integer):
            return str(int(value))
        if isinstance(value, float | np.floating):
            return f"{value:.{digits}f}"
        return str(value)

    cells = frame.astype(object).map(cell) if len(frame) else frame.astype(str)
    return Table(cells, numeric=numeric)


# ---- Markdown ------------------------------------------------------------------------------


def section_markers(key: str) -> tuple[str, str]:
    """The comments around a section another stage appended to ``report.md``."""
    return f"<!-- bayes_sor:{key}:begin -->", f"<!-- bayes_sor:{key}:end -->"


_APPENDED = re.compile(
    r"<!-- bayes_sor:(?P<key>[\w.-]+):begin -->\n?(?P<body>.*?)\n?"
    r"<!-- bayes_sor:(?P=key):end -->",
    re.DOTALL,
)


def appended_sections(markdown: str) -> dict[str, str]:
    """Sections other stages appended to a ``report.md`` (key -> Markdown), in order."""
    return {m.group("key"): m.group("body").strip() for m in _APPENDED.finditer(markdown)}


def _md_table(table: Table) -> str:
    def esc(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    columns = list(table.frame.columns)
    lines = [
        "| " + " | ".join(esc(c) for c in columns) + " |",
        "|" + "|".join("---:" if c in table.numeric else "---" for c in columns) + "|",
    ]
    lines += [
        "| " + " | ".join(esc(v) for v in row) + " |" for row in table.frame.itertuples(index=False)
    ]
    if table.caption:
        lines = [f"*{table.caption}*", "", *lines]
    return "\n".join(lines)


def nest_headings(text: str, top: int = 3) -> str:
    """Shift the Markdown headings of ``text`` so that its highest one is at level ``top``
    (a stage's section sits under a ``##`` report section); idempotent, so a section read back
    from ``report.md`` keeps its levels."""
    lines = text.split("\n")
    fenced, inside = [], False
    for line in lines:  # a "# comment" in a code block is no heading
        inside ^= line.lstrip().startswith("```")
        fenced.append(inside or line.lstrip().startswith("```"))
    levels = [
        len(m.group(1)) if (m := re.match(r"(#{1,6}) ", line)) and not code else 0
        for line, code in zip(lines, fenced, strict=True)
    ]
    if not any(levels):
        return text
    shift = top - min(v for v in levels if v)
    return "\n".join(
        "#" * min(6, max(1, level + shift)) + line[level:] if level else line
        for line, level in zip(lines, levels, strict=True)
    )


def _md_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Code):
        return f"```\n{block.text.strip()}\n```"
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Markdown):
        text = nest_headings(block.text.strip())
        if not block.key:
            return text
        begin, end = section_markers(block.key)
        return f"{begin}\n{text}\n{end}"
    return f"![{block.caption}]({block.path.name})\n\n*{block.caption}*"


def to_markdown(doc: Document) -> str:
    """The document as GitHub-flavoured Markdown; figures link to the PNGs beside it."""
    parts = [f"# {doc.title}", "", doc.subtitle, ""]
    for section in doc.sections:
        parts += [f"## {section.title}", ""]
        for block in section.blocks:
            parts += [_md_block(block), ""]
    return "\n".join(parts).rstrip() + "\n"


# ---- HTML ----------------------------------------------------------------------------------

_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;
margin-top:1.8em}.subtitle{color:#555;margin-top:0}
nav ul{columns:2;font-size:.95em;list-style:none;padding-left:0}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #d0d0d0;padding:.25em .55em;vertical-align:top}
th{background:#f2f2f2;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#fafafa}caption{caption-side:top;text-align:left;
font-style:italic;padding:.3em 0}
pre{background:#f6f8fa;border:1px solid #e1e4e8;padding:.8em;overflow-x:auto;font-size:.85em}
code{background:#f3f3f3;padding:0 .2em;font-size:.92em}
img{max-width:100%;height:auto}
figure{margin:1em 0 1.6em}figure img{border:1px solid #eee}
figcaption{font-size:.9em;color:#444;margin-top:.3em}
.table-wrap{overflow-x:auto;max-width:100%}.table-wrap table{margin-top:0}
h3{margin-top:1.4em}h4{margin-bottom:.4em}
"""


def _inline(text: str) -> str:
    """Escape text, then turn `code` and **bold** into tags."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def data_uri(path: Path) -> str:
    """A file as a base64 data URI (PNG or SVG), so the page needs nothing beside it."""
    mime = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_table(table: Table) -> str:
    columns = list(table.frame.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    classes = [' class="num"' if c in table.numeric else "" for c in columns]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{cls}>{html.escape(str(v))}</td>" for cls, v in zip(classes, row, strict=True)
        )
        + "</tr>"
        for row in table.frame.itertuples(index=False)
    )
    caption = f"<caption>{_inline(table.caption)}</caption>" if table.caption else ""
    return (
        f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _markdown_html(block: Markdown) -> str:
    """Markdown -> HTML (markdown-it-py, a dependency of PyMC's ``rich``); headings nested
    under the report section they sit in; raw HTML in the text escaped; linked local images
    embedded, so the page stays self-contained; tables in the scrolling box of the report's
    own tables."""
    text = nest_headings(block.text)
    rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
    rendered = rendered.replace("<table>", '<div class="table-wrap"><table>').replace(
        "</table>", "</table></div>"
    )
    return re.sub(
        r'<img src="([^"]*)" alt="([^"]*)"[^>]*>',
        lambda m: _embedded_img(m.group(1), m.group(2), block.base),
        rendered,
    )


def image_links(markdown: str) -> list[str]:
    """Targets of the Markdown image links (``![alt](target)``) in ``markdown``."""
    return [unquote(m) for m in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", markdown)]


def _embedded_img(src: str, alt: str, base: Path | None) -> str:
    """An ``<img>`` whose source is embedded, or its alt text when the file is not there."""
    path = (base / unquote(html.unescape(src))) if base is not None else None
    if (
        path is None
        or src.startswith(("data:", "http:", "https:"))
        or not path.is_file()
        or path.suffix.lower() not in (".png", ".svg")
    ):
        return f"<em>[figure not embedded: {alt or src}]</em>"
    return f'<img src="{data_uri(path)}" alt="{alt}">'


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Code):
        return f"<pre>{html.escape(block.text.strip())}</pre>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Markdown):
        return f'<div class="appended">{_markdown_html(block)}</div>'
    return (
        f'<figure><img src="{data_uri(block.path)}" alt="{html.escape(block.caption)}">'
        f"<figcaption>{_inline(block.caption)}</figcaption></figure>"
    )


def to_html(doc: Document) -> str:
    """The document as one self-contained HTML page (no scripts, no external resources)."""
    toc = "".join(
        f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in doc.sections
    )
    body = "".join(
        f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>'
        + "".join(_html_block(b) for b in s.blocks)
        + "</section>"
        for s in doc.sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{html.escape(doc.title)}</h1><p class="subtitle">{_inline(doc.subtitle)}</p>'
        f"<nav><ul>{toc}</ul></nav>{body}</body></html>\n"
    )


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A Markdown table with the report's cell formatting (:func:`format_frame`)."""
    cells = format_frame(frame, digits).frame.astype(str)
    cells = cells.apply(lambda col: col.str.replace("|", "\\|", regex=False))
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
