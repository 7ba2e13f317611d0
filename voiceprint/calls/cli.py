"""`voiceprint calls ...`: import CDRs, compute features, train, score, and follow leads.

A thin layer over ``voiceprint.calls``; heavy libraries are imported inside the commands.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from voiceprint.fsutil import write_atomic
from voiceprint.options import CsvOpt, FormatOpt, JsonOpt, output_format

app = typer.Typer(help="Reverse strike: screen call detail records for numbers that call like a fraud den.", no_args_is_help=True)


def _note_interrupted(out: Path, started: float, together: str = "") -> None:
    """What a Ctrl-C left: the old ``out`` (or none), or, when it came as the finished file was put in place, the new one."""
    from voiceprint.cli import note_interrupt

    if out.exists() and out.stat().st_mtime >= started:
        note_interrupt(f"interrupted as it finished: {out}{' ' + together if together else ''} were written whole; nothing to run again"
                       if together else f"interrupted as it finished: {out} was written whole; nothing to run again")
    else:
        note_interrupt(f"interrupted: {out} was not written (nor half-written); run the same command again")


@app.command("import")
def import_cmd(
    files: list[Path] = typer.Argument(..., help="CDR files: CSV/TSV (gzip ok, UTF-8 or GBK) or Parquet."),
    out: Path = typer.Option(..., "--out", "-o", help="Canonical Parquet file to write (a .report.json lands beside it)."),
    kind: str = typer.Option("calls", help="calls, registry or fraud-list."),
    template: str | None = typer.Option(None, help="Built-in template name (sichuan, generic, ...) or a .toml file; default: detected from the header."),
    encoding: str = typer.Option("auto", help="auto (UTF-16 by its byte-order mark, UTF-8, else GB18030), utf-8, gbk, gb18030, gb2312, utf-16 or big5."),
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    fmt: FormatOpt = None,
):
    """Import carrier files into one deduplicated canonical table; malformed rows are reported by line.

    Example:
        voiceprint calls import voc_2020_03.csv.gz --template sichuan --out work/calls.parquet
    """
    from voiceprint.report import print_rows, to_json

    from .ingest import import_calls, import_fraud_list, import_registry

    fmt = output_format(json_out, csv_out, fmt)  # conflicting flags: refused before anything is imported
    importer = {"calls": import_calls, "registry": import_registry, "fraud-list": import_fraud_list, "fraud_list": import_fraud_list}.get(kind)
    if importer is None:
        raise typer.BadParameter("--kind must be calls, registry or fraud-list")
    started = time.time()
    try:
        report = importer(files, out, template=template, encoding=None if encoding == "auto" else encoding)
    except KeyboardInterrupt:
        _note_interrupted(out, started, "and its report")
        raise
    if fmt == "json":
        print(to_json(report.to_dict()))
        return
    print_rows(report.summary_rows(), ["item", "value"], fmt=fmt, title=f"import ({report.kind}, template {report.template})")
    lines_to = sys.stderr if fmt == "csv" else None  # stdout stays one CSV table for a pipeline; all lines are in the report
    if report.malformed_lines:
        shown = report.malformed_lines[:20]
        print_rows(shown, ["file", "line", "reason"], fmt=fmt, out=lines_to,
                   title=f"malformed rows (first {len(shown)} of {report.malformed}; all in {out}.report.json)")
    if report.conflict_lines:
        shown = report.conflict_lines[:20]
        print_rows(shown, ["file", "line", "reason"], fmt=fmt, out=lines_to,
                   title=f"conflicting registrations, not kept (first {len(shown)} of {report.conflicting_rows}; all in {out}.report.json)")
    if report.message:
        typer.echo(report.message, err=True)
    if warning := report.column_warning():
        typer.echo(warning, err=True)


def _canonical_inputs(names: list[str], template: str | None, encoding: str, workdir: Path, report_to: Path) -> list:
    """Canonical Parquet files as given; anything else is imported first (into ``workdir``), its
    import report kept at ``report_to``: the rejected lines must outlive the scratch folder.
    URIs (``hdfs://``: the Spark engine reads them on the cluster) pass as they are."""
    import json

    from voiceprint.errors import DataError

    from .features import is_uri
    from .ingest import CALL_COLUMNS, import_calls, parquet_columns

    ready: list = [name for name in names if is_uri(name)]
    raw = []
    for f in (Path(name) for name in names if not is_uri(name)):
        if f.suffix == ".parquet":
            if not f.is_file():
                raise DataError(f"{f}: no such file")
            if set(CALL_COLUMNS) <= set(parquet_columns(f)):
                ready.append(f)
                continue
        raw.append(f)
    if raw:
        out = workdir / "calls.parquet"
        report = import_calls(raw, out, template=template, encoding=None if encoding == "auto" else encoding)
        report.output = "(a scratch table, removed after the features were computed)"
        write_atomic(report_to, json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
        typer.echo(f"imported {report.rows_written} calls ({report.malformed} malformed rows, "
                   f"{report.exact_duplicates + report.split_calls_merged} merged); report: {report_to}", err=True)
        if warning := report.column_warning():
            typer.echo(warning, err=True)
        ready.append(out)
    return ready


@app.command("features")
def features_cmd(
    calls: list[str] = typer.Argument(..., help="Imported call Parquet file(s), or raw carrier files (imported on the fly); "
                                      "with --engine spark also hdfs:// or s3a:// URIs of imported Parquet."),
    out: Path = typer.Option(..., "--out", "-o", help="Feature table to write: .parquet, .csv or .csv.gz."),
    registry: Path | None = typer.Option(None, help="Imported registry Parquet (numbers per ID card, home area)."),
    fraud_list: Path | None = typer.Option(None, "--fraud-list", help="Imported known fraud numbers Parquet."),
    template: str | None = typer.Option(None, help="Template for raw inputs."),
    encoding: str = typer.Option("auto", help="Encoding for raw inputs."),
    memory_limit: str = typer.Option("4GB", help="DuckDB memory limit; beyond it DuckDB spills to disk."),
    threads: int | None = typer.Option(None, help="DuckDB threads (default: all cores)."),
    engine: str = typer.Option("duckdb", help="duckdb (this machine, out of core) or spark (same SQL on Spark)."),
    master: str | None = typer.Option(None, help="Spark master: local[*] (default), spark://host:7077, or an sc://host:15002 Spark Connect URL."),
    since: str | None = typer.Option(None, help="Screen calls from this date (YYYY-MM-DD or 'YYYY-MM-DD HH:MM')."),
    until: str | None = typer.Option(None, help="... up to this date, inclusive."),
    areas: list[str] | None = typer.Option(None, "--area", help="Report only numbers that called from this city or county (as the "
                                           "CDRs name it; a city also with 市), or one county of one city: \"CITY COUNTY\" or "
                                           "CITY/COUNTY; give it once; shared contacts and communities still count the whole network."),
):
    """Compute AREA, TIME, GROUP and behaviour features per number with DuckDB (out of core) or Spark.

    Example:
        voiceprint calls features work/calls.parquet --registry work/registry.parquet --out work/features.parquet
        voiceprint calls features work/calls.parquet --since 2020-03-01 --until 2020-03-31 --area 锦江区 --out work/jinjiang_march.parquet
        voiceprint calls features work/calls.parquet --area 内江/市中区 --out work/neijiang_shizhong.parquet
        voiceprint calls features /data/cdr/*.parquet --out features.parquet --engine spark --master spark://cdr-master:7077
    """
    import shutil

    from voiceprint.errors import DataError

    from .features import Screen, compute_features
    from .ingest import scratch_folder

    if areas and len(areas) > 1:  # only the last one was kept, silently
        raise typer.BadParameter(f"give one area ({', '.join(areas)} given): compute one feature table per area, or screen "
                                 "none and filter the scores - the rule score ranks each number among its table's numbers",
                                 param_hint="--area")
    area = areas[0] if areas else None
    screen = Screen(since, until, area)
    try:
        screen.window_sql()  # a malformed date is a usage error (2), refused before any import
    except DataError as err:
        raise typer.BadParameter(str(err), param_hint="--since/--until") from None
    if area is not None:
        try:
            screen.place()  # so is a badly written area
        except DataError as err:
            raise typer.BadParameter(str(err), param_hint="--area") from None
    notes: list[str] = []
    started = time.time()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # raw CDRs are imported beside the output (the volume chosen for them, not /tmp); a folder left by a killed run goes next time
    work = scratch_folder(Path(out).parent, Path(out))
    try:
        inputs = _canonical_inputs(calls, template, encoding, work, report_to=Path(str(out) + ".import.json"))
        n = compute_features(inputs, out=out, registry=registry, fraud_list=fraud_list, memory_limit=memory_limit, threads=threads,
                             engine=engine, master=master, screen=screen, notes=notes)
    except KeyboardInterrupt:
        _note_interrupted(out, started)
        raise
    except Exception as err:
        from voiceprint.errors import OUT_OF_MEMORY, ResourceError, out_of_memory

        if out_of_memory(err):  # a setting to change, not a bug to report
            raise ResourceError(OUT_OF_MEMORY.format(limit=f"--memory-limit {memory_limit}") + f"; {out} was not written") from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if area is not None:  # the rule score ranks each number among the table's numbers: here, the area's only
        notes.append("scores from this table rank its numbers among the area's numbers only; to compare them with other "
                     "areas, score the unscreened table and filter it")
    for note in notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(f"{n} number{'' if n == 1 else 's'}{' (' + screen.describe() + ')' if screen.describe() else ''} -> {out}")


@app.command("train")
def train_cmd(
    features: list[Path] = typer.Option(..., "--features", "-f", help="Labelled feature table(s) joined on their key (repeat the option)."),
    out: Path = typer.Option(..., "--out", "-o", help="Model file to write (metadata JSON beside it)."),
    mapping: Path | None = typer.Option(None, help="Column mapping .toml for an unrecognised layout."),
    label: str | None = typer.Option(None, help="Label column (default: label; 1 = fraud)."),
    canonical: bool = typer.Option(False, "--canonical", help="Train only on the canonical signals that `calls features` also "
                                   "computes from raw CDRs, so the model scores those tables (and other layouts) too."),
    seed: int = typer.Option(0, help="Random seed."),
    rounds: int = typer.Option(800, min=1, help="Boosting rounds (fewer: faster, less accurate)."),
):
    """Train the supervised scorer; its decision threshold is tuned by cross-validation.

    Example:
        voiceprint calls train --features btg_gatcobo_user_features.csv.gz --out models/calls.lgb
    """
    from voiceprint.fsutil import writable_output

    from .scoring import load_feature_table, train_model

    writable_output(out, [*features, mapping])  # the labelled table is not replaced by a model
    table = _loaded(load_feature_table(features, mapping=mapping, label=label))
    if canonical:
        from .features import FEATURES

        table.frame = table.canonical[[c for c in table.canonical.columns if c in FEATURES]]  # not app_count: CDRs lack it
        if table.frame.empty or not len(table.frame.columns):
            from voiceprint.errors import DataError

            raise DataError("none of this table's signals is computed from raw CDRs - train without --canonical")
    model = train_model(table, seed=seed, rounds=rounds)
    model.meta["canonical"] = canonical
    model.save(out)
    typer.echo(f"trained on {model.meta['n_train']} numbers ({model.meta['n_fraud']} fraud), {len(model.columns)} features; "
               f"threshold {model.threshold:.2f} (CV fraud-F1 {model.meta['cv_f1_at_threshold']:.3f}) -> {out}")


#: a rule score on fewer signals than this is a weak ranking, and the analyst is told so
FEW_SIGNALS = 4


def _loaded(table, rule: bool = False):
    """``table``, after telling the analyst (stderr) what reading it left out, and when a rule score
    would rest on only a few signals."""
    for note in table.notes:
        typer.echo(f"warning: {note}", err=True)
    signals = list(table.canonical.columns)
    if rule and 0 < len(signals) < FEW_SIGNALS:
        typer.echo(f"warning: the rule score rests on only {len(signals)} signal(s) ({', '.join(signals)}) - a weak ranking; "
                   "add a table with more (e.g. features from the raw CDRs) or train a model (`calls train`)", err=True)
    return table


def _check_out(out: Path | None, inputs: Sequence[Path | None]) -> None:
    """Refuse an ``--out`` whose name asks for a format the command does not write, or that is one of the
    inputs, before any work."""
    if out is not None and out.suffix not in (".csv", ".json"):
        raise typer.BadParameter(f"{out}: write .csv or .json", param_hint="--out")
    if out is not None:
        from voiceprint.fsutil import refuse_input_as_output

        refuse_input_as_output(out, inputs)


def _emit(rows: list[dict], columns: list[str], out: Path | None, fmt: str, title: str) -> None:
    """``rows`` into ``out`` (.json or .csv) and/or to the screen. With ``--out`` and no ``--json``/``--csv``
    the screen gets one summary line only: the rows name people, and a terminal's output often ends
    up in a log file."""
    from voiceprint.report import print_rows, to_json, write_csv

    if out is not None:
        if out.suffix == ".json":
            write_atomic(out, to_json([{k: v for k, v in r.items() if k != "library"} for r in rows]) + "\n")
        else:
            write_csv(out, rows, columns)
        typer.echo(f"{len(rows)} rows -> {out}", err=True)
    if fmt != "table":
        print_rows(rows, columns, fmt=fmt, title=title)
        return
    if out is not None:
        return
    # Hashed numbers (128 hex characters) are cut for the screen; CSV and JSON keep them whole.
    shown = [{**r, "number": r["number"][:16] + "…" if len(r["number"]) > 24 else r["number"]} for r in rows]
    print_rows(shown, columns, fmt="table", title=title)


@app.command("score")
def score_cmd(
    features: list[Path] = typer.Option(..., "--features", "-f", help="Feature table(s) joined on their key (repeat the option)."),
    model: Path | None = typer.Option(None, help="Trained model; without one the rule score ranks."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write all numbers ranked: .csv or .json."),
    mapping: Path | None = typer.Option(None, help="Column mapping .toml for an unrecognised layout."),
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    fmt: FormatOpt = None,
):
    """Rank every number by the rule score or a trained model, with the reasons for each.

    Example:
        voiceprint calls score --features btg_gatcobo_user_features.csv.gz --out leads.csv
    """
    from .leads import SCORE_COLUMNS, score_table
    from .scoring import load_feature_table, load_model

    fmt = output_format(json_out, csv_out, fmt)
    _check_out(out, features)
    table = _loaded(load_feature_table(features, mapping=mapping), rule=model is None)
    rows = score_table(table, load_model(model) if model else None)
    _emit(rows, SCORE_COLUMNS, out, fmt, "scores (" + ("model" if model else "rule score") + ")")


@app.command("leads")
def leads_cmd(
    features: list[Path] = typer.Option(..., "--features", "-f", help="Feature table(s) (from `calls features` or third-party)."),
    model: Path | None = typer.Option(None, help="Trained model; without one the rule score ranks."),
    registry: Path | None = typer.Option(None, help="Imported registry Parquet: number -> person, ID number."),
    library: Annotated[str | None, typer.Option("--library", "-l", envvar="VOICEPRINT_LIBRARY",
                                                help="Library name (under indexes/) or folder to follow the leads into. Default: "
                                                     "$VOICEPRINT_LIBRARY, else none (the leads stop at the registry).")] = None,
    top: int = typer.Option(20, min=1, help="How many leads."),
    flagged_only: bool = typer.Option(False, "--flagged-only", help="Only numbers at or above the decision threshold."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the leads: .csv or .json."),
    mapping: Path | None = typer.Option(None, help="Column mapping .toml for an unrecognised layout."),
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
    fmt: FormatOpt = None,
):
    """Ranked, explained leads, each followed to its registered person, library record and cases.

    Example:
        voiceprint calls leads --features work/features.parquet --registry work/registry.parquet --library lib/ --top 10

    The library (person, voice samples, cases, phones of each lead) is --library or $VOICEPRINT_LIBRARY; without either, leads
    stop at the registry.
    """
    from .leads import LEAD_COLUMNS, build_leads, library_persons
    from .scoring import load_feature_table

    fmt = output_format(json_out, csv_out, fmt)
    _check_out(out, [*features, registry])
    table = _loaded(load_feature_table(features, mapping=mapping), rule=model is None)
    if library:
        from voiceprint.library import Library

        with Library.open(library) as lib:
            rows = build_leads(table, model=model, registry=registry, resolver=lib.lookup_person, top=top, flagged_only=flagged_only,
                               case_calls=lib.case_calls, phone_cases=lib.phone_cases)
            # who looked up whom: the lookups read persons, ID numbers and cases out of the library
            reached = library_persons(rows)
            called = sum(len(r.get("case_calls", [])) for r in rows)  # calls to case victims read from the case file
            lib.store.audit("calls.leads", "", leads=len(rows), persons=len(reached), person_ids=reached, **({"case_calls": called} if called else {}))
    else:
        rows = build_leads(table, model=model, registry=registry, top=top, flagged_only=flagged_only)
    if registry and rows and not any(r.get("person") or r.get("id_number") for r in rows):
        typer.echo(f"warning: none of the {len(rows)} leads is in the registry - check that the feature table and the registry "
                   "come from the same carrier data (numbers hashed the same way)", err=True)
    _emit(rows, LEAD_COLUMNS, out, fmt, "leads")


def main() -> None:  # pragma: no cover - convenience for `python -m voiceprint.calls.cli`
    from voiceprint.errors import VoiceprintError

    try:
        app()
    except VoiceprintError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)


if __name__ == "__main__":  # pragma: no cover
    main()
