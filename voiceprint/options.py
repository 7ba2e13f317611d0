"""Options shared by every command group (``voiceprint ...`` and ``voiceprint calls ...``).

One place defines how a command names its library (``--library``, ``$VOICEPRINT_LIBRARY``) and
its output (``--json``/``--csv``, a table by default), so the two groups cannot drift apart.
The process-wide settings of the top-level callback (``--verbose``, ``--operator``) live in
:data:`STATE`. Only typer is imported here: ``voiceprint --help`` stays instant.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

import typer


class CliState(TypedDict):
    verbose: bool
    operator: str | None


#: Set by the top-level callback before any command runs.
STATE: CliState = {"verbose": False, "operator": None}

LIBRARY_HELP = "Library name (under indexes/) or folder. Default: $VOICEPRINT_LIBRARY, else indexes/default."

LibraryOpt = Annotated[str | None, typer.Option("--library", "-l", envvar="VOICEPRINT_LIBRARY", help=LIBRARY_HELP)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for pipelines instead of a table.")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="Print CSV instead of a table.")]


def _format_value(value: str | None) -> str | None:
    if value is not None and value not in ("table", "csv", "json"):
        raise typer.BadParameter("use table, csv or json (or --json / --csv)")
    return value


#: The ``calls`` group's older spelling of ``--json``/``--csv``, still accepted.
FormatOpt = Annotated[str | None, typer.Option("--format", callback=_format_value, help="Same as --json/--csv: table, csv or json.")]


def output_format(json_out: bool = False, csv_out: bool = False, fmt: str | None = None) -> str:
    """``json``, ``csv`` or ``table`` from the flags (``--format`` wins when given)."""
    if fmt:
        return fmt
    return "json" if json_out else "csv" if csv_out else "table"


def open_library(ref: str | None, create: bool = False):
    """The library a command names, opened as the acting operator."""
    from .library import Library

    return Library.open(ref, create=create, operator=STATE["operator"])
