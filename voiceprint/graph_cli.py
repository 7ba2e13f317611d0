"""CLI for the case file and fused leads: ``voiceprint case import``, ``voiceprint leads``, and the calls of ``case add``.

Registered on the main typer app by :func:`register` (one line in ``voiceprint/cli.py``), so the commands
live beside their logic (:mod:`voiceprint.graph`, :mod:`voiceprint.fused`) and not in the CLI module.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from .errors import DataError

TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y/%m/%d %H:%M:%S",
                "%Y/%m/%d %H:%M", "%Y%m%d%H%M%S")
LibraryOpt = Annotated[
    str | None,
    typer.Option("--library", "-l", envvar="VOICEPRINT_LIBRARY",
                 help="Library name (under indexes/) or folder. Default: indexes/default."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for pipelines instead of a table.")]
CASE_COLUMNS = ("case_number", "calling_number", "called_at", "title", "date", "area", "status", "victim_number", "recording")


def parse_time(text: str | None, where: str = "--called-at") -> str:
    """A call time as ``YYYY-MM-DD HH:MM:SS`` (a bare date stays a date); empty stays empty."""
    text = (text or "").strip()
    if not text:
        return ""
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d")
    except ValueError:
        raise DataError(f"{where} {text!r} is not a time - write it as YYYY-MM-DD HH:MM[:SS]") from None


def pair_calls(numbers: list[str], times: list[str]) -> list[tuple[str, str]]:
    """Pair repeated --calling-number / --called-at options by position: one time per number, or no time at all
    (a single time is not spread over several numbers - each call has its own time); every number and time is
    checked here, before anything is written."""
    if times and not numbers:
        raise typer.BadParameter("--called-at needs a --calling-number")
    if times and len(times) != len(numbers):
        raise typer.BadParameter(f"{len(numbers)} --calling-number but {len(times)} --called-at: give one --called-at per "
                                 "--calling-number, in the same order, or leave --called-at out - nothing was added")
    from .phones import normalize_number, number_refusal

    for number in numbers:  # checked before anything is written: a refused option leaves no half-made case
        if not normalize_number(number):
            raise DataError(f"--calling-number {number_refusal(number)}")
    parsed = [parse_time(t) for t in times]
    return [(n, parsed[i] if parsed else "") for i, n in enumerate(numbers)]


def add_calls(lib, case_number: str, calls: list[tuple[str, str]]) -> int:
    """Record calls to a case's victim (the case exists; ``calls`` from :func:`pair_calls`, which checked
    them); returns how many were new."""
    from .store import add_case_call

    with lib.writing(), lib.store.transaction():
        return sum(add_case_call(lib.store, case_number, n, t) for n, t in calls)


def read_case_csv(path: Path) -> list[dict]:
    """Read and check a case-file CSV completely (UTF-8 or GBK); any bad line is an error and nothing is imported."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror})") from err
    if not raw.strip():
        raise DataError(f"{path}: the file is empty - it needs a header case_number,calling_number,called_at[,area,title,...]")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        if not _decodes(raw):
            raise DataError(f"{path}: neither UTF-8 nor GBK - save it as UTF-8 CSV") from None
        text = raw.decode("gb18030", errors="strict")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "case_number" not in header:
        raise DataError(f"{path}: no case_number column - the header needs case_number,calling_number,called_at (got {','.join(header)})")
    # a misspelt column (calling_no) would drop every value in it without a word
    if unknown := [h for h in header if h and h not in CASE_COLUMNS and h != "number"]:
        raise DataError(f"{path}: unknown column(s) {', '.join(unknown)} - the columns are {', '.join(CASE_COLUMNS)} "
                        "(nothing was imported)")
    rows = []
    for line, raw_row in enumerate(reader, start=2):
        if (row := _case_row(path, line, raw_row)) is not None:
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: a header but no cases")
    return rows


def _case_row(path: Path, line: int, raw_row: dict) -> dict | None:
    """One checked row of a case-file CSV (None for a blank one); any fault is a DataError naming the line."""
    from .phones import normalize_number, number_refusal
    from .store.schema import case_field_problem

    row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw_row.items() if k is not None}
    if not any(row.values()):
        return None
    if None in raw_row:
        raise DataError(f"{path}: line {line} has more fields than the header - fix it and import again (nothing was imported)")
    if not row.get("case_number"):
        raise DataError(f"{path}: line {line} has no case_number - fix it and import again (nothing was imported)")
    number = row.get("calling_number") or row.get("number") or ""
    if number and not normalize_number(number):
        raise DataError(f"{path}: line {line}: {number_refusal(number)} - fix it and import again (nothing was imported)")
    row["calling_number"] = number
    victim = row.get("victim_number") or ""
    if victim and not normalize_number(victim):  # refused like a bad calling number, never dropped without a word
        raise DataError(f"{path}: line {line}: victim_number {number_refusal(victim)} - fix it and import again (nothing was imported)")
    row["called_at"] = parse_time(row.get("called_at"), f"{path}: line {line}: called_at")
    if problem := case_field_problem(row.get("date"), row.get("status")):
        raise DataError(f"{path}: line {line}: {problem} - fix it and import again (nothing was imported)")
    if row.get("recording"):
        rec = Path(row["recording"])
        rec = rec if rec.is_absolute() else path.parent / rec
        if not rec.is_file():
            raise DataError(f"{path}: line {line}: no recording {rec} - fix the path and import again (nothing was imported)")
        row["recording"] = str(rec)
    return row


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("gb18030")
        return True
    except UnicodeDecodeError:
        return False


def import_cases(lib, rows: list[dict]) -> dict:
    """Add the cases (title, date, victim's area, status) and their calls in one transaction."""
    from .store.casefile import add_case_call, update_case_fields

    fields = ("area", "title", "status")
    first: dict[str, dict] = {}  # each case's fields as its first row gives them (the ones kept)
    calls, updated, conflicting = 0, [], []
    with lib.writing(), lib.store.transaction():
        for r in rows:
            given = {k: r[k] for k in fields if r.get(k)}
            number = r["case_number"]
            before = lib.store.case_row(number)
            case_id = lib.store.add_case(number, r.get("title", ""), r.get("date") or None, r.get("area", ""), r.get("status") or "open")
            if number not in first:
                first[number] = given
                if before is not None and any(str(before[k] or "") != v for k, v in given.items()):
                    updated.append(number)  # an existing case's details changed: said, not done silently
                if given:
                    update_case_fields(lib.store, case_id, given)
            elif any(first[number].get(k, v) != v for k, v in given.items()):
                conflicting.append(number)  # a later row disagrees with the first: the first is kept
            if r["calling_number"]:
                calls += add_case_call(lib.store, number, r["calling_number"], r["called_at"], r.get("victim_number", ""))
        lib.store.audit("case.import", "", cases=len(first), calls=calls, updated=len(updated))
    return {"cases": len(first), "new_calls": calls, "rows": len(rows), "updated": updated,
            "conflicting": sorted(set(conflicting))}


def _say_imported(result: dict) -> None:
    typer.echo(f"{result['rows']} rows: {result['cases']} cases, {result['new_calls']} new calls")
    if result["updated"]:
        typer.echo(f"note: changed the area, title or status of {len(result['updated'])} existing case(s): "
                   f"{', '.join(result['updated'][:10])}", err=True)
    if result["conflicting"]:
        typer.echo(f"note: later rows give other details than the first for {', '.join(result['conflicting'][:10])}: "
                   "the first row's were kept", err=True)


def _warn_if_unscreened(lib) -> None:
    """CDR evidence for cases none of whose calling numbers is in the feature table is no evidence: say so."""
    from .graph import sources as graph_sources
    from .store.casefile import screened_calling_numbers

    features = graph_sources(lib.store).get("features")
    screened, total = screened_calling_numbers(lib.store)
    if features and total and not screened:
        typer.echo(f"note: none of the {total} numbers that called the case victims is in {Path(features).name}: were the "
                   "features computed from another set of CDRs? The CDR evidence of these leads is empty", err=True)


def register(app: typer.Typer, case_app: typer.Typer, open_library) -> None:
    """Add ``case import`` and ``leads`` to the CLI."""

    @case_app.command("import")
    def case_import(
        file: Annotated[Path, typer.Argument(help="CSV: case_number,calling_number,called_at[,area,title,date,status,victim_number,recording].")],
        library: LibraryOpt = None,
    ) -> None:
        """Import many cases, the numbers that called their victims (one row per call) and their recordings
        (``recording`` column, paths relative to the CSV; filed as `case add-recording` does). Re-importing adds nothing twice.

        Example: voiceprint case import victims_calls.csv
        """
        from .linking import add_recordings

        rows = read_case_csv(file)
        lib = open_library(library)  # a misspelt --library is refused, not created: only init and enrol create one
        result = import_cases(lib, rows)
        _say_imported(result)
        recordings: dict[str, list[str]] = {}
        for r in rows:
            if r.get("recording") and r["recording"] not in recordings.setdefault(r["case_number"], []):
                recordings[r["case_number"]].append(r["recording"])
        voices = [v for case, files in recordings.items() if files for v in add_recordings(lib, case, files)]
        if voices:
            counts = {s: sum(1 for v in voices if v["status"] == s) for s in ("matched", "unknown", "already", "refused")}
            typer.echo(f"recordings: {sum(len(f) for f in recordings.values())} files, {len(voices)} voices "
                       + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
            for v in voices:
                if v["status"] == "refused":
                    typer.echo(f"refused: {v['reason']}", err=True)
            if counts["refused"]:  # the cases are in; a recording that is not must stop a script (exit 3, as for a query)
                raise typer.Exit(3)

    @app.command("leads")
    def leads(
        sources: Annotated[str, typer.Option(help="Evidence to weigh: all, voice (recordings) or cdr (case file + CDRs).")] = "all",
        calls: Annotated[Path | None, typer.Option(help="Calls Parquet from `voiceprint calls import` (remembered).")] = None,
        features: Annotated[Path | None, typer.Option(help="Features Parquet from `voiceprint calls features` (remembered).")] = None,
        registry: Annotated[Path | None, typer.Option(help="Registry Parquet from `calls import --kind registry` (remembered).")] = None,
        calibration: Annotated[Path | None, typer.Option(help="CDR score calibration JSON (default: the shipped Sichuan fit).")] = None,
        top: Annotated[int | None, typer.Option("--top", "-k", min=1, help="Show only the first N leads.")] = None,
        csv_out: Annotated[Path | None, typer.Option("--csv", help="Also write the leads as CSV to this file.")] = None,
        rebuild: Annotated[bool, typer.Option("--rebuild", help="Rebuild the whole lead graph, not only what changed.")] = False,
        library: LibraryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Persons, numbers and voices ranked by voice and calling evidence joined through phones and cases.

        Example: voiceprint leads --calls work/calls.parquet --features work/features.parquet --registry work/registry.parquet
        Example: voiceprint leads --sources voice --json > leads_voice.json
        """
        from .fused import LEAD_ROW_COLUMNS, build_leads, lead_rows, no_leads_reason
        from .graph import refresh
        from .report import print_rows, to_json, write_csv

        if sources not in ("all", "voice", "cdr"):
            raise typer.BadParameter("--sources must be all, voice or cdr")
        lib = open_library(library)
        refresh(lib, calls, features, registry, calibration, force=rebuild, need_cdr=sources != "voice")
        if sources != "voice":
            _warn_if_unscreened(lib)
        found = build_leads(lib, sources, top)
        with lib.store.transaction():
            lib.store.audit("leads", "", sources=sources, leads=len(found))
        rows = lead_rows(found)
        if csv_out:
            write_csv(csv_out, rows, LEAD_ROW_COLUMNS)
        if json_out:
            typer.echo(to_json([{k: v for k, v in x.items() if k != "key"} for x in found]))
            return
        if not found:
            typer.echo(f"no leads: {no_leads_reason(lib, sources)}")
            return
        kind = "voice and calling" if sources == "all" else sources
        print_rows(rows, ["rank", "lead", "category", "score", "log10_lr", "probability", "sources", "cases", "explanation"],
                   title=f"leads from {kind} evidence (score: log10 posterior odds in the best case; log10_lr: its evidence)")
