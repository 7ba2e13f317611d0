"""Rendering for people (rich tables) and machines (JSON, CSV). Written once, used by every command."""

from __future__ import annotations

import csv
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def to_json(obj: Any) -> str:
    """JSON with numpy scalars and paths made plain."""
    return json.dumps(obj, ensure_ascii=False, indent=2, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def print_rows(
    rows: Sequence[dict],
    columns: Sequence[str] | None = None,
    fmt: str = "table",
    title: str | None = None,
    out=None,
) -> None:
    """Print dict rows as a rich table (``table``), a JSON array (``json``) or CSV (``csv``)."""
    out = out or sys.stdout
    columns = list(columns or (rows[0].keys() if rows else []))
    if fmt == "json":
        out.write(to_json([{c: r.get(c) for c in columns} for r in rows]) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: csv_cell(r.get(c)) for c in columns})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, show_lines=False)
        for c in columns:  # a long word (a phone number) wraps onto the next line, never cut short with "…"
            table.add_column(c, overflow="fold")
        for r in rows:
            table.add_row(*[_cell(r.get(c)) for c in columns])
        # Piped output is not cut to 80 columns: analysts grep and page it.
        width = None if getattr(out, "isatty", lambda: False)() else 200
        Console(file=out, width=width).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "; ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value)


def write_csv(path, rows: Iterable[dict], columns: Sequence[str]) -> None:
    """Write rows to a CSV file (UTF-8, private, whole or not at all), columns in the given order."""
    from .fsutil import atomic_output

    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({c: csv_cell(r.get(c)) for c in columns})


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9][0-9 .()-]*")


def csv_cell(value: Any) -> str:
    """A cell as text that a spreadsheet will not run as a formula (CSV injection).

    Names and notes come from carriers and other agencies: ``=HYPERLINK(...)`` in a name field
    would become a live link (or worse) when an analyst opens the CSV. Such text gets a leading
    apostrophe; numbers, including ``+86...`` phone numbers and negative scores, stay as they are.
    """
    text = _cell(value)
    if text.startswith(_FORMULA_START) and not (isinstance(value, (int, float)) or _PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def machine_line(*extra: str) -> str:
    """One line naming the machine a measurement ran on (CPU, cores, RAM, load), for benchmarks."""
    import os
    import platform
    from pathlib import Path

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [cpu, f"{os.cpu_count()} cores", f"{ram:.0f} GiB RAM", f"Python {platform.python_version()}",
             f"load average {os.getloadavg()[0]:.1f}", *extra]
    return ", ".join(p for p in parts if p)
