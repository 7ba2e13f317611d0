"""The embedded DuckDB engine: one configured connection, out of core, used by every calls module.

Everything heavy happens in SQL so that files larger than memory stream through DuckDB, which
spills to ``temp_directory`` beyond ``memory_limit``. Nothing here is DuckDB-specific beyond
the connection: the feature SQL is plain enough to port to a distributed engine later.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from voiceprint.errors import DataError

DEFAULT_MEMORY_LIMIT = os.environ.get("VOICEPRINT_DUCKDB_MEMORY", "4GB")


DEFAULT_MAX_TEMP = os.environ.get("VOICEPRINT_DUCKDB_MAX_TEMP", "40GB")


def connect(memory_limit: str | None = None, threads: int | None = None, temp_directory: str | Path | None = None,
            keep_order: bool = True, max_temp: str | None = None):
    """An in-memory DuckDB connection that spills to disk, with the phone-number macro installed.

    ``keep_order`` preserves file order (ingest needs it for line numbers); feature queries turn
    it off, which lets DuckDB stream large joins and windows with less memory. Spilling stops
    with an error at ``max_temp`` instead of filling the disk.
    """
    import duckdb

    memory_limit = _size(memory_limit or DEFAULT_MEMORY_LIMIT, "--memory-limit")
    max_temp = _size(max_temp or DEFAULT_MAX_TEMP, "the temp-space limit")
    if threads is not None and int(threads) < 1:
        raise DataError(f"--threads {threads}: give 1 or more (or leave it out: all cores)")
    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit = {sql_literal(memory_limit)}")
    chosen = temp_directory or os.environ.get("VOICEPRINT_DUCKDB_TEMP")
    tmp = Path(chosen or Path(tempfile.gettempdir()) / "voiceprint_duckdb")
    tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not chosen and tmp.stat().st_uid == os.getuid():  # the shared default in /tmp: spilled rows are call records
        tmp.chmod(0o700)
    con.execute(f"SET temp_directory = '{_sql_str(tmp)}'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute(f"SET max_temp_directory_size = {sql_literal(max_temp)}")
    con.execute(f"SET preserve_insertion_order = {'true' if keep_order else 'false'}")
    con.execute("SET enable_progress_bar = false")
    install_number_macro(con)
    return con


def _size(text: str, what: str) -> str:
    """A memory or disk size as DuckDB reads it ("4GB", "512 MiB", "80%"), or a DataError naming ``what``."""
    value = str(text).strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?\s*([KMGT]i?B|B|bytes|%)", value, re.IGNORECASE):
        raise DataError(f"{what} {text!r}: give a size such as 4GB or 512MB")
    return value


def install_number_macro(con) -> None:
    """``vp_norm(x)``: ``voiceprint.phones.normalize_number`` for the common forms, NULL otherwise.

    Hashes (32+ hex characters, not all digits) are lower-cased; Chinese mobiles with or without
    ``tel:``, +86 / 86 / 0086 and separators (spaces, dashes, brackets; no letters) become ``+86`` and 11
    digits (a spreadsheet's ``.0`` dropped);
    empty / nan / none / null and scientific notation give ``''``. Anything else returns NULL and
    must be normalised in Python (see ``ingest``).
    Tests check that this agrees with ``normalize_number``.
    """
    con.execute(
        r"""
        CREATE OR REPLACE MACRO vp_bare(x) AS regexp_replace(trim(x), '^[tT][eE][lL]:\s*', '');
        CREATE OR REPLACE MACRO vp_digits(x) AS regexp_replace(regexp_replace(vp_bare(x), '^([+]?[0-9]+)[.]0+$', '\1'), '[^0-9+]', '', 'g');
        CREATE OR REPLACE MACRO vp_norm(x) AS CASE
            WHEN x IS NULL OR lower(trim(x)) IN ('', 'nan', 'none', 'null') THEN ''
            WHEN regexp_full_match(trim(x), '[0-9a-fA-F]{32,}')
                 AND NOT regexp_full_match(trim(x), '[0-9]+') THEN lower(trim(x))
            WHEN regexp_full_match(trim(x), '[0-9]([.][0-9]+)?[eE][+]?[0-9]+') THEN ''
            WHEN regexp_full_match(vp_bare(x), '[+]?[0-9][0-9 ()-]*([.]0+)?')
                 AND regexp_full_match(vp_digits(x), '(\+86|0086|86)?1[3-9][0-9]{9}')
                 THEN '+86' || right(vp_digits(x), 11)
            ELSE NULL
        END;
        """
    )


def _sql_str(value) -> str:
    """A value quoted for inclusion inside single quotes in SQL."""
    return str(value).replace("'", "''")


def sql_path(path) -> str:
    """A file path as a SQL string literal."""
    return "'" + _sql_str(path) + "'"


def sql_literal(value) -> str:
    """Any text as a SQL string literal (DuckDB and Spark SQL both double the quote)."""
    return "'" + _sql_str(value) + "'"


def quote_ident(name) -> str:
    """A column name from a file as a quoted SQL identifier, never as SQL text.

    Column names come from files a carrier, another agency or a seized device produced, so they
    are hostile until proven otherwise: the engine's own identifier quoting (double the double
    quote) keeps every character inside the name. A NUL byte cannot be quoted and is refused.
    """
    text = str(name)
    if "\x00" in text:
        raise DataError("a column name contains a NUL byte - the file is corrupt or hostile; re-export it")
    return '"' + text.replace('"', '""') + '"'
