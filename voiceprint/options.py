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
    """``json``, ``csv`` or ``table`` from the flags; flags that ask for two formats are a usage error (2).
    Call it before the command's work, so that a refused combination has done nothing."""
    asked = {name for name, flag in (("json", json_out), ("csv", csv_out)) if flag} | ({fmt} if fmt else set())
    if len(asked) > 1:
        raise typer.BadParameter(f"asks for {' and '.join(sorted(asked))} at once - give one of --json or --csv (or neither for a table)",
                                 param_hint="--json/--csv")
    if fmt:
        return fmt
    return "json" if json_out else "csv" if csv_out else "table"


#: Libraries the running command opened; the CLI closes them when the command ends.
OPENED: list = []


def open_library(ref: str | None, create: bool = False):
    """The library a command names, opened as the acting operator (and closed by the CLI at the end)."""
    from .library import Library

    lib = Library.open(ref, create=create, operator=STATE["operator"])
    OPENED.append(lib)
    if lib.tightened:
        import sys

        shown = ", ".join(lib.tightened[:5]) + (f" and {len(lib.tightened) - 5} more" if len(lib.tightened) > 5 else "")
        print(f"note: {lib.root} was readable by other users ({shown}): made private again (folders 0700, files 0600)",
              file=sys.stderr)
    return lib


def close_opened() -> None:
    """Close every library the command opened: SQLite folds its write-ahead log into ``library.sqlite``
    when the last connection closes, so a copy of that file alone is the whole library."""
    while OPENED:
        lib = OPENED.pop()
        try:
            lib.close()
        except Exception:  # noqa: BLE001 - closing must never hide the command's own result
            pass
