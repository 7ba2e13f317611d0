"""Ingest CDR files as carriers deliver them into one canonical Parquet table.

A *template* (a small TOML file; built-ins in ``templates/``) maps a carrier's column names
onto the canonical ones. Files may be CSV/TSV (optionally gzip), UTF-8 or GBK/GB18030
(detected, or named with ``encoding``), or Parquet. Every row either lands in the output or is
counted in the report as malformed with its line number; exact duplicates and calls split
across areas (the same call reported once per county) are merged.

Canonical call table: ``number, other, direction ('out'|'in'|'fwd'), start (TIMESTAMP),
duration (seconds), city, county, imei, other_area, record ('call'|'sms')``.
Registry: ``number, name, id_number, home_city, home_county, numbers_on_id``.
Fraud list: ``number, source``.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import io
import json
import os
import shutil
import tomllib
import zlib
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from voiceprint.errors import DataError
from voiceprint.fsutil import ctrl_c_deferred, fsync_dir, process_alive, refuse_input_as_output
from voiceprint.phones import SCIENTIFIC, is_masked, mobile_length_error, normalize_number

from .engine import connect, quote_ident, sql_literal, sql_path

TEMPLATE_DIR = Path(__file__).parent / "templates"
CALL_COLUMNS = ["number", "other", "direction", "start", "duration", "city", "county", "imei", "other_area", "record"]
REGISTRY_COLUMNS = ["number", "name", "id_number", "home_city", "home_county", "numbers_on_id"]
FRAUD_COLUMNS = ["number", "source"]
REQUIRED = {"calls": ["number", "other", "direction", "start"], "registry": ["number"], "fraud_list": ["number"]}
MAX_REPORTED_LINES = 1000
#: Longest call a record may claim (seconds). Beyond it the value is an export error (or an overflow
#: such as 99999999999), rejected per row rather than allowed to abort the file.
MAX_CALL_SECONDS = 7 * 24 * 3600


@dataclass
class Template:
    """How one carrier's file layout maps onto the canonical columns."""

    name: str
    kind: str = "calls"
    record: str = "call"
    columns: dict = field(default_factory=dict)
    direction: dict = field(default_factory=dict)
    timestamp_format: str = "%Y-%m-%d %H:%M:%S"
    delimiter: str | None = None
    encoding: str | None = None


def builtin_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.toml"))


def load_template(name_or_path: str | Path) -> Template:
    """A built-in template by name (``sichuan``, ``generic``, ...) or a TOML file a centre wrote."""
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = TEMPLATE_DIR / f"{name_or_path}.toml"
    if not path.exists():
        raise DataError(f"no template {name_or_path!r}: use one of {', '.join(builtin_templates())} or a .toml file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"{path}: not valid TOML ({err}) - compare with {TEMPLATE_DIR / 'generic.toml'}") from None
    data.setdefault("name", path.stem)
    known = set(Template.__dataclass_fields__)
    tpl = Template(**{k: v for k, v in data.items() if k in known})
    missing = [c for c in REQUIRED.get(tpl.kind, []) if c not in tpl.columns]
    if missing:
        raise DataError(f"{path}: template maps no column to {', '.join(missing)}")
    return tpl


@dataclass
class ImportReport:
    """What an import read, kept, merged and rejected. Line numbers are 1-based, header = line 1."""

    kind: str
    template: str
    files: list = field(default_factory=list)
    encodings: dict = field(default_factory=dict)
    rows_read: int = 0
    rows_written: int = 0
    malformed: int = 0
    malformed_lines: list = field(default_factory=list)
    exact_duplicates: int = 0
    split_calls_merged: int = 0
    conflicting_rows: int = 0  # registry rows giving a number another name, ID number or home area (not kept)
    conflict_lines: list = field(default_factory=list)
    #: canonical columns the template maps but a file lacks (left empty, so their features are unknown),
    #: and header columns no canonical column reads: a misspelt header shows up in both
    absent_columns: dict = field(default_factory=dict)
    unused_columns: dict = field(default_factory=dict)
    #: files whose last line has no line ending: a copy cut short ends so, its last record possibly incomplete
    unterminated: list = field(default_factory=list)
    output: str = ""
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_rows(self) -> list[dict]:
        return [
            {"item": "files", "value": len(self.files)},
            {"item": "encoding", "value": ", ".join(sorted(set(self.encodings.values()))) or "-"},
            {"item": "rows read", "value": self.rows_read},
            {"item": "malformed rows", "value": self.malformed},
            {"item": "exact duplicates merged", "value": self.exact_duplicates},
            *([{"item": "split calls merged", "value": self.split_calls_merged}] if self.kind == "calls" else []),
            *([{"item": "conflicting registrations (first kept)", "value": self.conflicting_rows}] if self.kind == "registry" else []),
            {"item": "rows written", "value": self.rows_written},
            *({"item": f"left empty ({Path(f).name}: no such column)", "value": ", ".join(cols)} for f, cols in self.absent_columns.items()),
            *({"item": f"columns not read ({Path(f).name})", "value": ", ".join(cols)} for f, cols in self.unused_columns.items()),
            *({"item": f"last line without a line ending ({Path(f).name})", "value": "check it: a copy cut short ends so"}
              for f in self.unterminated),
        ]

    def column_warning(self) -> str:
        """One line for the analyst when a file lacked columns its template maps, or ended without a line
        ending ('' when neither)."""
        lines = []
        if self.absent_columns:
            parts = [f"{Path(f).name} has no {', '.join(cols)}" for f, cols in self.absent_columns.items()]
            lines.append("warning: " + "; ".join(parts) + " - those columns are left empty (their features unknown); "
                         "if a header is misspelt, fix it or pass a --template that names it")
        if self.unterminated:
            lines.append(f"warning: the last line of {', '.join(Path(f).name for f in self.unterminated)} has no line ending - "
                         "if the copy was cut short its last record may be incomplete: compare it with the original")
        return "\n".join(lines)


# ---------------------------------------------------------------- encodings and file shapes


def _open_bytes(path: Path):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


#: DuckDB's CSV reader reports a line longer than its limit (2 MB) as malformed, but one longer than its 32 MB buffer
#: vanishes: neither read nor rejected. Lines from this length on are found by a byte scan and reported.
OVERLONG_LINE_BYTES = 16 << 20


def _line_scan(path: Path, limit: int = OVERLONG_LINE_BYTES, chunk: int = 4 << 20) -> tuple[list[tuple[int, int]], int]:
    """(line number, length in bytes) of each line of ``path`` (gzip read through) at least ``limit`` bytes long, and
    the number of lines. Streaming at memchr speed, one ``chunk`` held at a time: a line that long spans several
    chunks, so only each chunk's first and last line ends matter."""
    assert chunk < limit
    found: list[tuple[int, int]] = []
    line, run = 1, 0  # the line being read and its bytes so far
    with _open_bytes(path) as fh:
        while block := fh.read(chunk):
            first = block.find(b"\n")
            if first < 0:
                run += len(block)
                continue
            if run + first >= limit:
                found.append((line, run + first))
            line += block.count(b"\n")
            run = len(block) - block.rfind(b"\n") - 1
    if run >= limit:
        found.append((line, run))
    return found, line - (run == 0)  # a last line without its line break still counts


def _mixed_endings(path: Path, source: Path) -> DataError | None:
    """The refusal of a file whose lines end in both ways (two exports joined with `cat`), which the CSV reader
    cannot read; None when every line ends alike."""
    if (odd := _other_line_ending(source)) is None:
        return None
    return DataError(f"{path}: line {odd[0]} ends with {odd[1]} where line 1 ends with {odd[2]}, and the CSV reader refuses a file "
                     "whose lines end in both ways - save it with one kind of line ending (e.g. `dos2unix`, or Notepad++: Edit > "
                     "EOL Conversion) and import again; nothing was imported")


def _other_line_ending(path: Path) -> tuple[int, str, str] | None:
    """(line, its ending, line 1's ending) for the first line that ends with LF where line 1 ends with CRLF, or the other
    way round; None when every line ends alike."""
    names = {True: "CRLF", False: "LF"}
    with _open_bytes(path) as fh:
        first = fh.readline()
        crlf = first.endswith(b"\r\n")
        for n, line in enumerate(fh, 2):
            if line.endswith(b"\n") and line.endswith(b"\r\n") != crlf:
                return n, names[not crlf], names[crlf]
    return None


@dataclass
class RecordLayout:
    """Where a CSV's records lie when they are not one per line: the physical line each record starts on (1-based, the
    header first) and the records that are empty lines (skipped by the reader, not rows)."""

    starts: list[int]
    blank: list[int]


def _record_layout(path: Path, delim: str, skipped: int = 0) -> RecordLayout | None:
    """Read with Python's csv module: only for a file whose lines are not its records (a quoted field holding a line
    break, an empty line, a line too long to read), seen as more lines than records, or whose first ``skipped`` lines
    come before the header (never rows, blank or not)."""
    starts, blank, line = [], list(range(1, skipped + 1)), 1
    limit = csv.field_size_limit(2**31 - 1)  # a field too long for DuckDB is numbered too
    try:
        with _open_bytes(path) as raw, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=delim, quotechar='"', doublequote=True)
            for record in reader:
                starts.append(line)
                if not record and len(starts) > skipped:
                    blank.append(len(starts))
                line = reader.line_num + 1
    except csv.Error:  # lines ended by CR alone, which DuckDB reads: its record numbers are the lines then
        return None
    finally:
        csv.field_size_limit(limit)
    return RecordLayout(starts, blank)


def _numbering(layout: RecordLayout | None):
    """DuckDB's record number -> the physical line it starts on (the identity when records are lines)."""
    if layout is None:
        return lambda record: record
    starts = layout.starts
    return lambda record: starts[record - 1] if 0 < record <= len(starts) else record


def _ends_with_newline(path: Path) -> bool:
    """Whether a text file's last byte ends a line (a gzip stream cut short is refused when it is read, so it passes here)."""
    with open(path, "rb") as fh:
        if fh.read(2) == b"\x1f\x8b":
            return True
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return True
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) in (b"\n", b"\r", b"\x00")  # UTF-16's last newline ends in a NUL byte


def _refuse_binary(path: Path) -> None:
    """A workbook or any other binary file is refused for what it is, before its bytes are blamed on an encoding."""
    from voiceprint.errors import head_looks_binary, not_a_text_table

    with _open_bytes(path) as fh:
        head = fh.read(8192)
    if head.startswith(b"PK\x03\x04"):
        raise DataError(f"{path}: an Excel workbook or a zip archive, not a text table - save the sheet as CSV (UTF-8 or GBK) "
                        "and import that")
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        raise DataError(f"{path}: an old Excel workbook (.xls), not a text table - save the sheet as CSV (UTF-8 or GBK) and import that")
    if head_looks_binary(head):
        raise not_a_text_table(path)


@contextmanager
def _archive_guard(path: Path):
    """A truncated or corrupt gzip is a data error with a message, not an 'interrupted' exit.

    (gzip raises EOFError on a truncated stream, which the CLI framework would take for Ctrl-D.)
    """
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        reason = "truncated" if isinstance(err, EOFError) else f"corrupt: {err}"
        raise DataError(f"{path}: the gzip archive is {reason} - copy the file again from the carrier "
                        "(nothing was imported from it)") from None


def _is_parquet(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


_KIND_COLUMNS = {"calls": CALL_COLUMNS, "registry": REGISTRY_COLUMNS, "fraud-list": FRAUD_COLUMNS}


def imported_table(path: str | Path, kind: str, con=None) -> Path:
    """``path`` if it is a table ``calls import --kind KIND`` wrote; otherwise a DataError that says how
    to make one (a raw carrier file, or an imported table of another kind, passed by mistake).

    ``con``: a DuckDB connection to read the footer with (opening DuckDB's default one costs 20-30 ms)."""
    path = Path(path)
    target = path.with_name(f"{kind.replace('-', '_')}.parquet")
    make = f"import it first: voiceprint calls import {path} --kind {kind} --out {target}"
    if not path.is_file():
        raise DataError(f"{path}: no such file - " + make.replace(str(path), "FILE"))
    if not _is_parquet(path):
        raise DataError(f"{path}: not an imported {kind} table (Parquet) - {make}")
    make = f"pass the table that `voiceprint calls import --kind {kind}` wrote"
    columns = parquet_columns(path, con)
    if missing := [c for c in _KIND_COLUMNS[kind] if c not in columns]:
        raise DataError(f"{path}: not an imported {kind} table (no {', '.join(missing[:3])} column) - {make}")
    return path


def parquet_columns(path: Path, con=None) -> list[str]:
    """The column names of a Parquet file (read from its footer), or a DataError when it cannot be read."""
    import duckdb

    try:
        return [row[0] for row in (con or duckdb).execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(path)})").fetchall()]
    except duckdb.Error as err:
        raise DataError(f"{path}: not a readable Parquet file ({str(err).splitlines()[0]}) - "
                        "pass the table `voiceprint calls import` wrote, or the carrier's CSV") from None


#: the encodings Chinese carriers and spreadsheets export (Python's codec names); anything else is refused
ENCODINGS = ("utf-8", "gbk", "gb18030", "gb2312", "utf-16", "big5")
#: lines sampled to tell a UTF-8 file with a few lines in another encoding from a GBK file
ENCODING_SAMPLE_LINES = 100_000
#: a UTF-8 file may hold this many lines in another encoding (or 1 %), reported as malformed; more is a wrong --encoding
MAX_FOREIGN_LINES = 10


def detect_encoding(path: str | Path) -> str:
    """``utf-16`` for a file with its byte-order mark; ``utf-8`` if the whole file decodes strictly as
    UTF-8, or if most of its non-ASCII lines do (the others are then reported as malformed);
    else ``gb18030`` (a superset of GBK)."""
    with _open_bytes(Path(path)) as fh:
        if fh.read(2) in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
            return "utf-16"
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    try:
        with _open_bytes(Path(path)) as fh:
            while chunk := fh.read(1 << 22):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "utf-8" if _mostly_utf8(Path(path)) else "gb18030"
    return "utf-8"


def _mostly_utf8(path: Path) -> bool:
    """Do more of the (sampled) non-ASCII lines decode as UTF-8 than fail? GBK text almost never
    forms valid UTF-8, so a GBK file has next to none that do."""
    good = bad = 0
    with _open_bytes(path) as fh:
        for n, line in enumerate(fh):
            if n >= ENCODING_SAMPLE_LINES:
                break
            if line.isascii():
                continue
            try:
                line.decode("utf-8")
                good += 1
            except UnicodeDecodeError:
                bad += 1
    return good > bad


def _canonical_encoding(name: str) -> str:
    try:
        codec = codecs.lookup(name).name
    except LookupError:
        codec = ""
    codec = {"ascii": "utf-8", "utf-8-sig": "utf-8", "utf-16-le": "utf-16", "utf-16-be": "utf-16"}.get(codec, codec)
    if codec not in ENCODINGS:
        raise DataError(f"unsupported encoding {name!r}: use auto or one of {', '.join(ENCODINGS)}")
    return codec


def _to_utf8(path: Path, encoding: str, workdir: Path) -> Path:
    """Transcode a file to a UTF-8 copy in ``workdir`` (streaming, any size). A UTF-8 byte-order mark before GBK text
    (an editor that saved a GBK file "with BOM") is dropped, not decoded as the characters 锘�."""
    out = workdir / (path.name.removesuffix(".gz") + ".utf8")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    lines = 0  # before the current chunk
    chunk = b""
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # a plaintext copy of personal data
        with _open_bytes(path) as src, open(fd, "w", encoding="utf-8", newline="") as dst:
            first = True
            while chunk := src.read(1 << 22):
                if first and encoding != "utf-16":
                    chunk, first = chunk.removeprefix(codecs.BOM_UTF8), False
                dst.write(decoder.decode(chunk))
                lines += chunk.count(b"\n")
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as err:
        line = lines + chunk[:max(err.start, 0)].count(b"\n") + 1
        raise DataError(f"{path}: line {line} is not valid {encoding} - name the file's encoding with --encoding "
                        f"({', '.join(ENCODINGS)})") from None
    return out


#: Empty lines an export may put before its header (they are skipped, and still counted in line numbers).
MAX_LEADING_EMPTY_LINES = 20


def _header(path: Path, encoding: str) -> tuple[list[str], str, int]:
    """The header's column names, the delimiter, and how many empty lines come before the header."""
    skipped, text = 0, ""
    with _open_bytes(path) as fh:
        while skipped <= MAX_LEADING_EMPTY_LINES:
            first = fh.readline(1 << 20)
            text = first.decode(encoding, errors="replace").lstrip("\ufeff").split("\n")[0].split("\r")[0]  # lines may end in CR
            if text.strip() or not first:
                break
            skipped += 1
    delim = "\t" if "\t" in text else ("|" if "|" in text and "," not in text else ",")
    names = next(csv.reader([text], delimiter=delim), []) if text.strip(" \t,|\"") else []
    cols: list[str] = []
    for i, raw in enumerate(names):  # blank or repeated names get a positional one, as spreadsheets do
        name = raw.strip() or f"column{i + 1}"
        cols.append(name if name not in cols else f"{name}_{i + 1}")
    return cols, delim, skipped


# ---------------------------------------------------------------- reading one file into SQL


def _load_raw(con, path: Path, table: str, encoding: str | None, template: Template | None,
              workdir: Path) -> tuple[list[str], list[tuple[int, str]], str, RecordLayout | None]:
    """Load one file as all-VARCHAR table ``table`` with ``rowid`` in file order.

    Returns (header columns, structural rejects as (record number, reason), encoding used, and where the records lie
    when they are not one per line: :func:`_record_layout`).
    """
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes) - check the carrier's export")
    if _is_parquet(path):
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_path(path)})").fetchall()]
        select = ", ".join(f"CAST({quote_ident(c)} AS VARCHAR) AS {quote_ident(c)}" for c in cols)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT {select} FROM read_parquet({sql_path(path)})")
        return cols, [], "parquet", None
    named = encoding or (template.encoding if template else None)
    with _archive_guard(path):
        _refuse_binary(path)
        enc = _canonical_encoding(named) if named and named != "auto" else detect_encoding(path)
        source = _to_utf8(path, enc, workdir) if enc != "utf-8" else path
        cols, delim, skipped = _header(source, "utf-8")
    if template and template.delimiter:
        delim = template.delimiter
    if not any(cols):
        raise DataError(f"{path}: no header line - the first line must name the columns")
    # Columns are read by position (c0, c1, ...) and renamed with quoted identifiers, so no text
    # from the header line ever becomes SQL.
    spec = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(len(cols))) + "}"
    renamed = ", ".join(f"c{i} AS {quote_ident(c)}" for i, c in enumerate(cols))
    try:
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE {table} AS SELECT {renamed} FROM read_csv({sql_path(source)},
                header = true, skip = {skipped}, auto_detect = false, columns = {spec}, delim = {sql_literal(delim)}, quote = '"',
                escape = '"', store_rejects = true, strict_mode = true, null_padding = false)"""
        )
    except Exception as err:  # duckdb.Error; imported lazily
        if type(err).__name__ == "InterruptException":  # Ctrl-C, not a bad file
            raise KeyboardInterrupt from None
        text = str(err)
        if "unicode" in text.lower() or "utf" in text.lower():
            raise DataError(f"{path}: not valid {enc} - name the encoding, e.g. --encoding gb18030") from None
        if (mixed := _mixed_endings(path, source)) is not None:
            raise mixed from None
        raise DataError(f"{path}: cannot be read as a delimited file ({text.splitlines()[0]})") from None
    rejects = con.execute("SELECT line, error_type, column_name FROM reject_errors ORDER BY line").fetchall()
    bad_text = sorted({line for line, kind, _ in rejects if any(w in str(kind).upper() for w in ("UNICODE", "ENCODING"))})
    lines = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] + len({line for line, _, _ in rejects})
    quoted = sorted(int(line) for line, kind, _ in rejects if "QUOTE" in str(kind).upper())
    if quoted:
        _refuse_swallowed_lines(con, path, source, delim, len(cols), lines, quoted[0], skipped)
    with _archive_guard(path):
        long_lines, physical_lines = _line_scan(source)
        # a record per line after the header: no layout needed
        layout = _record_layout(source, delim, skipped) if physical_lines != 1 + lines or skipped else None
    rejects, vanished = _with_vanished_lines(rejects, long_lines, layout)
    lines += vanished
    if bad_text and (2 * len(bad_text) >= lines or len(bad_text) > max(MAX_FOREIGN_LINES, lines // 100)):
        raise DataError(f"{path}: line {bad_text[0]} is not valid {enc} - a GBK file? name it with --encoding gb18030")
    # a few lines in another encoding (a row pasted in from another system) are reported, the rest imported
    by_line: dict[int, str] = {}
    for line, kind, col in rejects:  # one entry per line, however many of its columns failed
        by_line.setdefault(int(line), _reject_reason(kind, col))
    return cols, sorted(by_line.items()), enc, layout


def _refuse_swallowed_lines(con, path: Path, source: Path, delim: str, ncols: int, lines: int, first: int, skipped: int = 0) -> None:
    """A stray '"' opens a quoted field that runs on past the end of its line, and the CSV reader then takes the
    rest of the file for that one field: those lines were neither read nor rejected. Read without quoting, the file
    holds more lines than that; then nothing is imported, and the line with the quote is named."""
    spec = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(ncols)) + "}"
    con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
    plain = con.execute(f"""SELECT count(*) FROM read_csv({sql_path(source)}, header = true, skip = {skipped}, auto_detect = false, columns = {spec},
        delim = {sql_literal(delim)}, quote = '', escape = '', store_rejects = true, strict_mode = false, null_padding = true)""").fetchone()[0]
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'reject_errors'").fetchone()[0]:  # made only for rejects
        plain += con.execute("SELECT count(DISTINCT line) FROM reject_errors").fetchone()[0]
    if plain > lines and (mixed := _mixed_endings(path, source)) is not None:  # quotes misread across mixed line ends
        raise mixed
    if plain > lines:
        raise DataError(f"{path}: line {first} opens a quoted field with '\"' that never closes, so {plain - lines:,} line(s) from there on "
                        "would be lost - remove the stray quote (or close it) and import again; nothing was imported")


def _with_vanished_lines(rejects: list, long_lines: list[tuple[int, int]], layout: RecordLayout | None) -> tuple[list, int]:
    """The reader's rejects, with the long lines it skipped without a word added, and its record numbers counted past
    them (they skip those lines); and how many vanished. ``long_lines`` are physical (line, bytes)."""
    record = (lambda line: bisect.bisect_right(layout.starts, line)) if layout else (lambda line: line)  # noqa: E731
    vanished = _vanished([(record(line), size) for line, size in long_lines],
                         {int(line) for line, kind, _ in rejects if "LINE SIZE" in str(kind).upper()})
    gone = [r for r, _ in vanished]
    overlong = [(r, f"a line of {size / (1 << 20):.0f} MB, longer than the reader can hold: not read", None) for r, size in vanished]
    counted = [(_skip_past(int(line), gone), kind, col) for line, kind, col in rejects]
    return sorted(counted + overlong, key=lambda r: int(r[0])), len(vanished)


def _vanished(long_lines: list[tuple[int, int]], size_rejects: set[int]) -> list[tuple[int, int]]:
    """The long lines (record number, bytes) the reader neither read nor rejected: those it rejected as too long
    carry its own record number, which is one less for each vanished line before them."""
    out: list[tuple[int, int]] = []
    for r, size in long_lines:
        if r - len(out) not in size_rejects:
            out.append((r, size))
    return out


def _skip_past(record: int, gone: list[int]) -> int:
    """``record`` counted again with the records ``gone`` (sorted) that lie at or before it: a number that skipped them
    (the reader's past a vanished line, an accepted row's index past rejected ones) as a record number of the file."""
    for g in gone:
        if g > record:
            break
        record += 1
    return record


def _reject_reason(kind: str, column: str | None) -> str:
    if "LINE SIZE" in str(kind).upper():
        return "a line longer than the reader's 2 MB limit: not read"
    kind = str(kind).lower() if str(kind).isupper() else str(kind)  # DuckDB's error types are upper-case codes
    if "unicode" in kind or "encoding" in kind:
        return "invalid text encoding (this line is in another encoding than the rest of the file)"
    return kind + (f" (column {column})" if column and "column" not in kind else "")


def _row_lines(rejected_lines: list[int], physical: Callable[[int], int]) -> Callable[[int], int]:
    """The physical line of the n-th accepted row (0-based) of a file with these structurally rejected records."""
    return lambda accepted_index: physical(_line_of(accepted_index, rejected_lines))


def _line_of(accepted_index: int, rejected_lines: list[int]) -> int:
    """Record number of the n-th accepted row (0-based; the header is record 1), skipping structurally rejected records."""
    return _skip_past(accepted_index + 2, rejected_lines)


def _resolve_columns(cols: list[str], path: Path, template: Template | None, kind: str) -> Template:
    present = set(cols)
    if template is None:
        for name in builtin_templates():
            tpl = load_template(name)
            if tpl.kind == kind and all(tpl.columns[c] in present for c in REQUIRED[kind]):
                template = tpl
                break
        else:
            raise DataError(f"{path}: no built-in template fits columns {', '.join(cols[:12])} - pass --template (copy {TEMPLATE_DIR / 'generic.toml'})")
    missing = [f"{canon} -> {template.columns[canon]!r}" for canon in REQUIRED[kind] if template.columns[canon] not in present]
    if missing:
        raise DataError(f"{path}: lacks column(s) {', '.join(missing)} required by template {template.name!r} - pick another --template")
    return template


#: what a registry must hold besides the number, or it links no number to anyone
REGISTRY_PERSON_COLUMNS = ("name", "id_number", "numbers_on_id")


def _note_columns(report: ImportReport, path: Path, cols: list[str], template: Template, kind: str) -> None:
    """Record the template's columns ``path`` lacks and the header columns nothing reads; refuse a
    registry that names no person (a calls table or a misspelt header passed as ``--kind registry``)."""
    canonical = _KIND_COLUMNS["fraud-list" if kind == "fraud_list" else kind]
    mapped = {template.columns.get(c) for c in canonical}
    # (a file without a record column holds the template's one kind of record: nothing is lost)
    absent = [c for c in canonical if c in template.columns and template.columns[c] not in cols and c != "record"]
    if kind == "registry" and all(c in absent or c not in template.columns for c in REGISTRY_PERSON_COLUMNS):
        wanted = ", ".join(repr(template.columns.get(c, c)) for c in REGISTRY_PERSON_COLUMNS)
        raise DataError(f"{path}: a registry needs a name, ID number or numbers-on-ID column besides the number ({wanted} for template "
                        f"{template.name!r}); the header is {', '.join(cols[:12])} - if this is a calls file, import it with --kind calls")
    if absent:
        report.absent_columns[str(path)] = [f"{c} ({template.columns[c]!r})" for c in absent]
    unused = [c for c in cols if c not in mapped and not c.startswith("column")]
    if unused:
        report.unused_columns[str(path)] = unused[:20]


def _col(template: Template, cols: list[str], canon: str) -> str:
    name = template.columns.get(canon)
    return quote_ident(name) if name in cols else "NULL"


# ---------------------------------------------------------------- numbers


def _normalise_numbers(con, table: str, columns: list[str], region: str) -> None:
    """Add ``<col>_n`` columns: SQL fast path, Python ``normalize_number`` for distinct leftovers."""
    leftovers: set[str] = set()
    for c in columns:
        rows = con.execute(f"SELECT DISTINCT {c} FROM {table} WHERE {c} IS NOT NULL AND vp_norm({c}) IS NULL").fetchall()
        leftovers.update(r[0] for r in rows)
    con.execute("CREATE OR REPLACE TEMP TABLE number_map (raw VARCHAR, norm VARCHAR, mobile_typo BOOLEAN, masked BOOLEAN)")
    if leftovers:  # a mobile of the wrong length (a typo, two numbers in one cell) or a masked one is marked, to be reported as such
        con.executemany("INSERT INTO number_map VALUES (?, ?, ?, ?)",
                        [(r, normalize_number(r, region), mobile_length_error(r), is_masked(r)) for r in leftovers])
    joins = " ".join(f"LEFT JOIN number_map m_{c} ON t.{c} = m_{c}.raw" for c in columns)
    normed = ", ".join(f"coalesce(vp_norm(t.{c}), m_{c}.norm, '') AS {c}_n, coalesce(m_{c}.mobile_typo, false) AS {c}_typo, "
                       f"coalesce(m_{c}.masked, false) AS {c}_masked" for c in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT t.*, {normed} FROM {table} t {joins} ORDER BY t.row_idx")


# ---------------------------------------------------------------- public API


def import_calls(paths, out, template: str | Path | Template | None = None, encoding: str | None = None, region: str = "CN", con=None) -> ImportReport:
    """Import CDR files into one canonical, deduplicated Parquet file at ``out``."""
    return _import(paths, out, "calls", template, encoding, region, con)


def import_registry(paths, out, template: str | Path | Template | None = None, encoding: str | None = None, region: str = "CN", con=None) -> ImportReport:
    """Import a subscriber registry (number -> registered person and ID number)."""
    return _import(paths, out, "registry", template, encoding, region, con)


def import_fraud_list(paths, out, template: str | Path | Template | None = None, encoding: str | None = None, region: str = "CN", con=None) -> ImportReport:
    """Import known fraud numbers."""
    return _import(paths, out, "fraud_list", template, encoding, region, con)


def _import(paths, out, kind, template, encoding, region, con) -> ImportReport:
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file")
        if p.is_dir():
            raise DataError(f"{p} is a folder: give the files in it (e.g. {p / '*.csv'})")
    tpl = load_template(template) if isinstance(template, (str, Path)) else template
    if tpl is not None and tpl.kind != kind:
        raise DataError(f"template {tpl.name!r} is for {tpl.kind}, not {kind}")
    out = Path(out)
    if out.is_dir():
        raise DataError(f"{out} is a folder - name the file to write, e.g. {out / (kind + '.parquet')}")
    if out.suffix != ".parquet":
        raise DataError(f"{out}: an imported table is written as Parquet - name it {out.with_suffix('.parquet').name}")
    refuse_input_as_output(out, paths)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = ImportReport(kind=kind, template=tpl.name if tpl else "auto")
    workdir = scratch_folder(out.parent, out)
    own = con is None
    try:
        con = con or connect(temp_directory=workdir / "spill")
        row_lines = _import_files(con, paths, kind, tpl, encoding, region, workdir, report)
        table = _write_merged(con, kind, out, report, workdir, row_lines)
        report.output = str(out)
        if report.rows_written == 0 and report.malformed and report.malformed == report.rows_read:
            raise DataError(_all_malformed(report))
        if report.rows_written == 0:
            report.message = "no valid records in the input" if report.rows_read else "the input has a header but no records"
        _commit(table, out, json.dumps(report.to_dict(), ensure_ascii=False, indent=2), workdir)
    finally:
        if own and con is not None:
            con.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return report


def _import_files(con, paths, kind, tpl, encoding, region, workdir: Path, report: ImportReport) -> dict[int, Callable[[int], int]]:
    """Stage every file; returns for each file the physical line of its n-th accepted row (0-based)."""
    row_lines: dict[int, Callable[[int], int]] = {}
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS SELECT * FROM ({_empty_select(kind)}) WHERE false")
    for file_idx, path in enumerate(paths):
        table = f"raw_{file_idx}"
        cols, rejects, enc, layout = _load_raw(con, path, table, encoding, tpl, workdir)
        physical = _numbering(layout)
        file_tpl = _resolve_columns(cols, path, tpl, kind)
        report.template = file_tpl.name if report.template in ("auto", file_tpl.name) else "several"
        _note_columns(report, path, cols, file_tpl, kind)
        report.files.append(str(path))
        report.encodings[str(path)] = enc
        if enc != "parquet" and not _ends_with_newline(path):
            report.unterminated.append(str(path))
        n_ok = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        report.rows_read += n_ok + len(rejects)
        report.malformed += len(rejects)
        report.malformed_lines.extend({"file": str(path), "line": physical(line), "reason": reason}
                                      for line, reason in rejects[:MAX_REPORTED_LINES])
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT row_number() OVER () - 1 AS row_idx, * FROM {table}")
        bad = _stage(con, table, cols, file_tpl, kind, file_idx, region)
        report.malformed += len(bad)
        not_rows = sorted([line for line, _ in rejects] + (layout.blank if layout else []))
        line_of = row_lines[file_idx] = _row_lines(not_rows, physical)
        for row_idx, reason in bad[: max(0, MAX_REPORTED_LINES - len(report.malformed_lines))]:
            report.malformed_lines.append({"file": str(path), "line": line_of(row_idx), "reason": reason})
        con.execute(f"DROP TABLE {table}")
        if enc not in ("utf-8", "parquet"):  # the plaintext copy is not needed past this file
            (workdir / (path.name.removesuffix(".gz") + ".utf8")).unlink(missing_ok=True)
    report.malformed_lines.sort(key=lambda r: (r["file"], r["line"]))
    return row_lines


def _all_malformed(report: ImportReport) -> str:
    """The one line for an input whose every record is malformed: nothing is written, and a column written throughout in
    a format the template does not name (day first, slashes) is pointed at."""
    first = report.malformed_lines[0] if report.malformed_lines else {}
    hint = ("; if the whole column is written in another format, name it with timestamp_format in a --template "
            "(a copy of voiceprint/calls/templates/generic.toml, docs/calls.md)" if "time" in str(first.get("reason", ""))
            else "; check the file against its template")
    return (f"every one of the {report.rows_read:,} records is malformed, e.g. {first.get('file', '')} line {first.get('line', '?')}: "
            f"{first.get('reason', '')} - nothing was written{hint}")


WORKDIR_PREFIX = ".vp_import_"


def scratch_folder(folder: Path, output: Path | None = None) -> Path:
    """A private (0700) scratch folder beside the output, for transcoded copies and DuckDB spills.

    It lives beside the output, not in /tmp, so personal data stays on the volume the centre
    chose for it; it is removed on every exit path, and one left by a killed import (its
    process gone) is removed by the next import into the same folder. When it cannot be made (a read-only
    folder, /proc), the error names ``output``, the file the user asked for, not the hidden folder.
    """
    import tempfile

    for stale in folder.glob(WORKDIR_PREFIX + "*"):
        pid = stale.name[len(WORKDIR_PREFIX):].partition("_")[0]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    try:
        return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}_", dir=folder))
    except OSError as err:
        raise OSError(err.errno, err.strerror, str(output or folder)) from None



def _empty_select(kind: str) -> str:
    if kind == "calls":
        return """SELECT 0 AS file_idx, 0::BIGINT AS row_idx, ''::VARCHAR AS number, ''::VARCHAR AS other,
                  ''::VARCHAR AS direction, NULL::TIMESTAMP AS start, NULL::DOUBLE AS duration,
                  ''::VARCHAR AS city, ''::VARCHAR AS county, ''::VARCHAR AS imei,
                  ''::VARCHAR AS other_area, ''::VARCHAR AS record"""
    if kind == "registry":
        return """SELECT 0 AS file_idx, 0::BIGINT AS row_idx, ''::VARCHAR AS number, ''::VARCHAR AS name,
                  ''::VARCHAR AS id_number, ''::VARCHAR AS home_city, ''::VARCHAR AS home_county,
                  NULL::INTEGER AS numbers_on_id"""
    return "SELECT 0 AS file_idx, 0::BIGINT AS row_idx, ''::VARCHAR AS number, ''::VARCHAR AS source"


def _text(expr: str) -> str:
    return f"nullif(trim({expr}), '')"


def _number_problem(column: str, what: str) -> str:
    """The CASE branches naming why a number column normalised to nothing (``<column>_n = ''``)."""
    raw = f"trim({column})"
    return (f"WHEN {column}_n = '' AND {column}_masked THEN 'masked {what} (' || {raw} || '): the full number is needed' "
            f"WHEN {column}_n = '' AND {column}_typo THEN '{what} ' || {raw} || ' is not an 11-digit mobile number' "
            f"WHEN {column}_n = '' AND regexp_full_match({raw}, {sql_literal(SCIENTIFIC.pattern.strip('^$'))}) "
            f"THEN '{what} in scientific notation, its last digits lost (saved by a spreadsheet?): export the column as text' "
            f"WHEN {column}_n = '' AND {column} IS NOT NULL AND lower({raw}) NOT IN ('', 'nan', 'none', 'null') "
            f"THEN 'unreadable {what} (no digits)' "
            f"WHEN {column}_n = '' THEN 'missing {what}'")


def _stage(con, table, cols, tpl: Template, kind, file_idx, region) -> list[tuple[int, str]]:
    """Map, normalise and validate one raw table into ``staged``; return (row_idx, reason) of bad rows."""
    c = {canon: _col(tpl, cols, canon) for canon in tpl.columns}
    number_cols = ["number", "other"] if kind == "calls" else ["number"]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE mapped AS SELECT row_idx, "
        + ", ".join(f"{c.get(n, 'NULL')}::VARCHAR AS {n}" for n in number_cols)
        + f", * EXCLUDE (row_idx) FROM {table}"
    )
    _normalise_numbers(con, "mapped", number_cols, region)
    if kind == "calls":
        dir_cases = " ".join(
            f"WHEN lower(trim({c['direction']}::VARCHAR)) IN ({', '.join(sql_literal(str(v).lower()) for v in values)}) THEN '{canon}'"
            for canon, values in (("out", tpl.direction.get("out", ["out"])), ("in", tpl.direction.get("in", ["in"])),
                                  ("fwd", tpl.direction.get("forwarded", ["fwd"])))
        )
        direction = f"(CASE {dir_cases} ELSE NULL END)"
        # ISO forms, the template's own, then the compact 14-digit form many switches write (20200105100000)
        start = (f"coalesce(try_cast(trim({c['start']}) AS TIMESTAMP), try_strptime(trim({c['start']}), {sql_literal(tpl.timestamp_format)}), "
                 f"CASE WHEN regexp_full_match(trim({c['start']}), '[0-9]{{14}}') THEN try_strptime(trim({c['start']}), '%Y%m%d%H%M%S') END)")
        duration = f"try_cast(trim({c.get('duration', 'NULL')}) AS DOUBLE)"
        record = f"coalesce(lower({_text(c.get('record', 'NULL'))}), {sql_literal(tpl.record)})"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE checked AS SELECT row_idx, number_n AS number, other_n AS other,
                {direction} AS direction, {start} AS start, {duration} AS duration,
                {_text(c.get('city', 'NULL'))} AS city, {_text(c.get('county', 'NULL'))} AS county,
                {_text(c.get('imei', 'NULL'))} AS imei, {_text(c.get('other_area', 'NULL'))} AS other_area,
                {record} AS record,
                CASE {_number_problem('number', 'number')}
                     {_number_problem('other', 'counter-party')}
                     WHEN {_text(c['direction'] + '::VARCHAR')} IS NULL THEN 'missing direction'
                     WHEN {direction} IS NULL THEN 'unknown direction ' || trim({c['direction']}::VARCHAR)
                     WHEN {_text(c['start'])} IS NULL THEN 'missing start time'
                     WHEN {start} IS NULL THEN 'bad start time ' || trim({c['start']})
                     WHEN {_text(c.get('duration', 'NULL'))} IS NOT NULL
                          AND ({duration} IS NULL OR NOT isfinite({duration}) OR {duration} < 0 OR {duration} > {MAX_CALL_SECONDS})
                          THEN 'bad duration ' || trim({c.get('duration', 'NULL')})
                     WHEN {record} NOT IN ('call', 'sms') THEN 'unknown record type'
                END AS problem
                FROM mapped"""
        )
        cols_out = "number, other, direction, start, duration, city, county, imei, other_area, record"
    elif kind == "registry":
        ids = f"try_cast(trim({c.get('numbers_on_id', 'NULL')}) AS INTEGER)"
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE checked AS SELECT row_idx, number_n AS number,
                {_text(c.get('name', 'NULL'))} AS name, upper({_text(c.get('id_number', 'NULL'))}) AS id_number,
                {_text(c.get('home_city', 'NULL'))} AS home_city, {_text(c.get('home_county', 'NULL'))} AS home_county,
                {ids} AS numbers_on_id,
                CASE {_number_problem('number', 'number')}
                     WHEN regexp_full_match({_text(c.get('id_number', 'NULL'))}, {sql_literal(SCIENTIFIC.pattern.strip('^$'))})
                          THEN 'ID number in scientific notation, its last digits lost (saved by a spreadsheet?): export the column as text'
                     WHEN {_text(c.get('numbers_on_id', 'NULL'))} IS NOT NULL AND {ids} IS NULL THEN 'bad numbers_on_id'
                END AS problem
                FROM mapped"""
        )
        cols_out = "number, name, id_number, home_city, home_county, numbers_on_id"
    else:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE checked AS SELECT row_idx, number_n AS number,
                {_text(c.get('source', 'NULL'))} AS source,
                CASE {_number_problem('number', 'number')} END AS problem FROM mapped"""
        )
        cols_out = "number, source"
    con.execute(f"INSERT INTO staged SELECT {file_idx}, row_idx, {cols_out} FROM checked WHERE problem IS NULL")
    bad = con.execute("SELECT row_idx, problem FROM checked WHERE problem IS NOT NULL ORDER BY row_idx").fetchall()
    con.execute("DROP TABLE mapped; DROP TABLE checked")
    return [(int(r), p) for r, p in bad]


def _registry_conflicts(con) -> list[tuple[int, int, str]]:
    """(file, row, reason) of each staged registry row that names another person, ID number or home
    area for its number than the number's first row does: the first is kept, these are reported (a
    number can be re-issued, or an export can be wrong, and an analyst must see which)."""
    rows = con.execute("""
        WITH ranked AS (SELECT file_idx, row_idx, number, name, id_number, home_city, home_county,
                               first_value(name) OVER w AS name0, first_value(id_number) OVER w AS id0,
                               first_value(home_city) OVER w AS city0, first_value(home_county) OVER w AS county0
                        FROM staged WINDOW w AS (PARTITION BY number ORDER BY file_idx, row_idx)),
        flagged AS (SELECT file_idx, row_idx,
                           (name IS DISTINCT FROM name0 AND name IS NOT NULL AND name0 IS NOT NULL) AS other_name,
                           (id_number IS DISTINCT FROM id0 AND id_number IS NOT NULL AND id0 IS NOT NULL) AS other_id,
                           (home_city IS DISTINCT FROM city0 AND home_city IS NOT NULL AND city0 IS NOT NULL
                            OR home_county IS DISTINCT FROM county0 AND home_county IS NOT NULL AND county0 IS NOT NULL) AS area
                    FROM ranked)
        SELECT file_idx, row_idx, other_name, other_id FROM flagged WHERE other_name OR other_id OR area
        ORDER BY file_idx, row_idx""").fetchall()
    return [(int(f), int(r), _conflict_reason(bool(name), bool(id_number))) for f, r, name, id_number in rows]


def _conflict_reason(other_name: bool, other_id: bool) -> str:
    """Which registration of a number differs from its earlier row: the name, the ID number, both, or the home area."""
    what = " and ".join(w for w, differs in (("name", other_name), ("ID number", other_id)) if differs) or "home area"
    return f"the number has another {what} on an earlier row, which was kept"


def _commit(table: Path, out: Path, report_json: str, workdir: Path) -> None:
    """Put the table and its report in place together: both are written whole in ``workdir`` (same volume),
    then renamed over the old pair with Ctrl-C held back, so a table never sits beside another import's report."""
    report_tmp = workdir / "report.json.partial"
    with open(os.open(report_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as fh:
        fh.write(report_json)
        fh.flush()
        os.fsync(fh.fileno())
    with ctrl_c_deferred():
        os.replace(table, out)
        os.replace(report_tmp, Path(str(out) + ".report.json"))
        fsync_dir(out.parent)


def _write_merged(con, kind: str, out: Path, report: ImportReport, workdir: Path, row_lines: dict[int, Callable[[int], int]]) -> Path:
    """Merge duplicates and split calls, then write Parquet in ``workdir``; fill the merge counts in ``report``.

    Returns the written file (``_commit`` renames it into place), so a reader never sees a half-written
    Parquet under the final name, whatever kills the import.
    """
    if kind == "calls":
        key = "number, other, direction, start, duration, record"
        distinct_rows = con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT number, other, direction, start, duration, city, county, imei, other_area, record FROM staged)"
        ).fetchone()[0]
        staged = con.execute("SELECT count(*) FROM staged").fetchone()[0]
        groups = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {key} FROM staged)").fetchone()[0]
        report.exact_duplicates = staged - distinct_rows
        report.split_calls_merged = distinct_rows - groups
        first = lambda col: f"arg_min({col}, (file_idx, row_idx)) FILTER (WHERE {col} IS NOT NULL) AS {col}"  # noqa: E731
        query = f"""SELECT number, other, direction, start, CAST(duration AS INTEGER) AS duration,
                    {first('city')}, {first('county')}, {first('imei')}, {first('other_area')}, record
                    FROM staged GROUP BY {key} ORDER BY number, start"""
    elif kind == "registry":
        staged = con.execute("SELECT count(*) FROM staged").fetchone()[0]
        groups = con.execute("SELECT count(DISTINCT number) FROM staged").fetchone()[0]
        conflicts = _registry_conflicts(con)
        report.conflicting_rows = len(conflicts)
        report.conflict_lines = [{"file": report.files[f], "line": row_lines[f](r) if f in row_lines else r + 2, "reason": reason}
                                 for f, r, reason in conflicts[:MAX_REPORTED_LINES]]
        report.exact_duplicates = staged - groups - len(conflicts)
        query = """SELECT number, arg_min(name, (file_idx, row_idx)) AS name, arg_min(id_number, (file_idx, row_idx)) AS id_number,
                   arg_min(home_city, (file_idx, row_idx)) AS home_city, arg_min(home_county, (file_idx, row_idx)) AS home_county,
                   max(numbers_on_id) AS numbers_on_id FROM staged GROUP BY number ORDER BY number"""
    else:
        staged = con.execute("SELECT count(*) FROM staged").fetchone()[0]
        groups = con.execute("SELECT count(DISTINCT number) FROM staged").fetchone()[0]
        report.exact_duplicates = staged - groups
        query = "SELECT number, string_agg(DISTINCT source, '; ') AS source FROM staged GROUP BY number ORDER BY number"
    partial = workdir / (out.name + ".partial")
    con.execute(f"COPY ({query}) TO {sql_path(partial)} (FORMAT parquet)")
    report.rows_written = con.execute(f"SELECT count(*) FROM read_parquet({sql_path(partial)})").fetchone()[0]
    con.execute("DROP TABLE staged")
    os.chmod(partial, 0o600)  # phone numbers and names: private, whatever the caller's umask
    with open(partial, "rb") as fh:
        os.fsync(fh.fileno())
    return partial
