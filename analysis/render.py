"""Render a `analysis.tables.Table` as Markdown, LaTeX (booktabs) or CSV text.

Cells: ``16.4`` one run; ``16.4 ± 0.3`` mean and sample std over seeds; ``(n=2/3)`` when only n of the row's
finished seeds have the metric; ``-`` no value (null in every run); a status word (``missing``, ``running``,
``failed``, ``duplicated``) when the row has no finished numbers; ``~`` published value read off a plot;
best values per column in bold; ``†`` / ``*`` after the numbers of a cell with a run from a dirty tree / at
another commit than most of the table (``analysis.provenance``, explained in the notes). CSV carries the same
numbers unrounded to two decimals, one column per metric plus ``_std`` and ``_n``, and the status and the marks
in their own columns.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from analysis.tables import DISPLAY_DECIMALS, Line, Table, Value

FORMATS: tuple[str, ...] = ("md", "tex", "csv")
LEGEND = "AP = mask AP, APb = box AP, x100; ours = mean ± std (sample, over seeds)"


def render(table: Table, fmt: str) -> str:
    """`table` as text in format `fmt` (one of `FORMATS`)."""
    renderers: dict[str, Callable[[Table], str]] = {"md": to_markdown, "tex": to_latex, "csv": to_csv}
    if fmt not in renderers:
        raise ValueError(f"unknown table format {fmt!r}; use one of {', '.join(FORMATS)}")
    return renderers[fmt](table)


def to_markdown(table: Table) -> str:
    headers = [*table.label_headers, "Source", *(m.name for m in table.metrics)]
    align = ["---"] * (len(table.label_headers) + 1) + ["---:"] * len(table.metrics)
    out = [f"### {table.experiment}: {table.title}", "", f"{LEGEND}.", "", _md_row(headers), _md_row(align)]
    for line in table.lines:
        labels = line.labels if line.first_in_group else ("",) * len(line.labels)
        source = "Δ" if line.kind == "delta" else line.source
        cells = [_cell(line, value, tex=False) for value in line.values]
        out.append(_md_row([*labels, source, *cells]))
    if table.notes:
        out.extend(["", "Notes:", *(f"- {note}" for note in table.notes)])
    return "\n".join(out) + "\n"


def to_latex(table: Table) -> str:
    columns = "l" * (len(table.label_headers) + 1) + "r" * len(table.metrics)
    headers = [*(_tex_escape(h) for h in table.label_headers), "Source", *(m.tex for m in table.metrics)]
    caption = (
        f"{_tex_escape(table.title)}. AP = mask AP, AP$^b$ = box AP ($\\times 100$); ours = mean $\\pm$ "
        "std over seeds; $\\sim$ = read off a plot; $\\Delta$ = ours $-$ published."
    )
    out = [
        "\\begin{table}[t]",
        "  \\centering",
        f"  \\caption{{{caption}}}",
        f"  \\label{{tab:{table.experiment}}}",
        f"  \\begin{{tabular}}{{{columns}}}",
        "    \\toprule",
        f"    {' & '.join(headers)} \\\\",
        "    \\midrule",
    ]
    previous: Line | None = None
    group_size = 0
    for line in table.lines:
        if line.first_in_group:
            # Space between blocks: a new first label in multi-label tables, or after a reference block.
            new_block = len(table.label_headers) > 1 and previous is not None and line.labels[0] != previous.labels[0]
            if previous is not None and (new_block or group_size > 1):
                out.append("    \\addlinespace")
            previous, group_size = line, 0
        group_size += 1
        labels = line.labels if line.first_in_group else ("",) * len(line.labels)
        source = "$\\Delta$" if line.kind == "delta" else _tex_escape(line.source)
        cells = [_cell(line, value, tex=True) for value in line.values]
        out.append(f"    {' & '.join([*(_tex_escape(x) for x in labels), source, *cells])} \\\\")
    out.extend(["    \\bottomrule", "  \\end{tabular}", "\\end{table}"])
    out.extend(f"% {note}" for note in table.notes)
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metric_headers = [h for m in table.metrics for h in (m.name, f"{m.name}_std", f"{m.name}_n")]
    writer.writerow(
        [*table.label_headers, "source", "kind", "status", "seeds", "approximate", "marks", *metric_headers]
    )
    for line in table.lines:
        numbers: list[str] = []
        for value in line.values:
            mean = "" if value is None or value.mean is None else _number(value.mean, 2)
            std = "" if value is None or value.std is None else _number(value.std, 2)
            n = str(value.n) if value is not None and line.kind == "ours" else ""
            numbers.extend([mean, std, n])
        approximate = any(v is not None and v.approximate for v in line.values)
        writer.writerow(
            [
                *line.labels,
                line.source,
                line.kind,
                line.status,
                " ".join(map(str, line.seeds)),
                "true" if approximate else "false",
                line.marks,
                *numbers,
            ]
        )
    return buffer.getvalue()


def _cell(line: Line, value: Value | None, *, tex: bool) -> str:
    if line.kind == "ours" and line.status != "ok":
        return line.status
    if value is None:
        return ""
    if value.mean is None:
        return "-"
    text = _text(line, value, tex)
    if value.bold:
        text = f"\\textbf{{{text}}}" if tex else f"**{text}**"
    return text + _marks(line.marks, tex=tex)


def _marks(marks: str, *, tex: bool) -> str:
    if not marks or not tex:
        return marks
    return "$^{" + "".join(_TEX_MARKS.get(mark, mark) for mark in marks) + "}$"


def _text(line: Line, value: Value, tex: bool) -> str:
    assert value.mean is not None
    pm = " $\\pm$ " if tex else " ± "
    if line.kind == "delta":
        text = _signed(value.mean)
        text = "$-$" + text[1:] if tex and text.startswith("-") else text
    else:
        text = _number(value.mean, DISPLAY_DECIMALS)
    if value.std is not None:
        text += pm + _number(value.std, DISPLAY_DECIMALS)
    if line.kind == "ours" and value.n < value.of:
        text += f" (n={value.n}/{value.of})"
    if value.approximate:
        text = ("$\\sim$" if tex else "~") + text
    return text


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0.0 else text


def _signed(value: float) -> str:
    text = _number(value, DISPLAY_DECIMALS)
    return text if text.startswith("-") else f"+{text}"


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


_TEX_MARKS = {"†": "\\dagger", "*": "*"}
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(char, char) for char in text)
