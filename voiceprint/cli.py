"""The ``voiceprint`` command: a thin typer layer over :class:`voiceprint.library.Library`.

Every command opens the library, calls one library method and prints the result; library
errors become one line on stderr and a documented exit code (see ``voiceprint.errors``).
Heavy modules (torch, speechbrain, faiss) are imported only inside commands.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated

import typer

from .errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    ID_TOO_LARGE,
    AudioError,
    DataError,
    LibraryError,
    ModelError,
    NotFound,
    VoiceprintError,
    id_overflow,
    storage_failure,
)
from .options import STATE, CsvOpt, JsonOpt, LibraryOpt, close_opened, open_library, output_format

app = typer.Typer(
    name="voiceprint",
    help="Offline voiceprint library and CDR reverse-strike screening for anti-fraud centres.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
person_app = typer.Typer(help="Persons: prior offenders, suspects, key persons.", no_args_is_help=True)
phone_app = typer.Typer(help="Phone numbers registered to persons.", no_args_is_help=True)
case_app = typer.Typer(help="Cases and their links to persons and phones.", no_args_is_help=True)
index_app = typer.Typer(help="The vector index (FAISS files or Milvus) derived from the database.", no_args_is_help=True)
models_app = typer.Typer(help="Speaker models on local disk.", no_args_is_help=True)
backend_app = typer.Typer(help="The scoring back end of a speaker model (whitening, AS-norm, calibration).", no_args_is_help=True)
link_app = typer.Typer(help="Link unknown voices across cases: report, confirm, split, promote.", invoke_without_command=True)
app.add_typer(person_app, name="person")
app.add_typer(phone_app, name="phone")
app.add_typer(case_app, name="case")
app.add_typer(index_app, name="index")
app.add_typer(models_app, name="models")
app.add_typer(link_app, name="link")
app.add_typer(backend_app, name="backend")

try:  # the CDR scorer is its own sub-application
    from .calls.cli import app as calls_app

    app.add_typer(calls_app, name="calls", help="CDR reverse strike: import, features, train, score, leads.")
except ImportError:  # pragma: no cover - only while the calls package is absent
    pass

_fmt = output_format


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _ranges(segments, limit: int = 12) -> str:
    """Time ranges as 'm:ss.s-m:ss.s, ...' (the first ``limit``)."""
    def t(x):
        return f"{int(x // 60)}:{x % 60:04.1f}"

    text = ", ".join(f"{t(a)}-{t(b)}" for a, b in segments[:limit])
    return text + (f" ... ({len(segments)} ranges)" if len(segments) > limit else "")


_open = open_library


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and progress detail.")] = False,
    operator: Annotated[str | None, typer.Option("--operator", envvar="VOICEPRINT_OPERATOR",
                                                    help="Who is acting, for the audit trail (default: OS user; "
                                                         "another name is recorded with the OS user beside it).")] = None,
) -> None:
    STATE["verbose"] = verbose
    STATE["operator"] = operator
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # SpeechBrain announces every checkpoint it loads; that is noise unless asked for.
    logging.getLogger("speechbrain").setLevel(logging.INFO if verbose else logging.WARNING)


# -- library -------------------------------------------------------------------------------
@app.command()
def init(
    library: LibraryOpt = None,
    model: Annotated[str | None, typer.Option(help="Speaker model (see `voiceprint models list`).")] = None,
    four_eyes: Annotated[bool, typer.Option("--four-eyes", help="Enrolments wait for a supervisor's approval (`voiceprint approve`).")] = False,
    index: Annotated[str | None, typer.Option("--index", help="Where the vectors live: faiss (files in the library folder) or milvus "
                                                "(default: milvus at $VOICEPRINT_MILVUS_URI when set, else faiss).")] = None,
    milvus_uri: Annotated[str | None, typer.Option("--milvus-uri", help="Milvus server (http://host:19530) or a local file.db (Milvus Lite).")] = None,
) -> None:
    """Create a new, empty voiceprint library.

    Example: voiceprint init --library county
             voiceprint init --library province --index milvus --milvus-uri http://milvus.internal:19530
    """
    from .index import BACKENDS, _milvus
    from .library import Library

    if index is None:
        index = "milvus" if (milvus_uri or os.environ.get("VOICEPRINT_MILVUS_URI")) else "faiss"
        milvus_uri = milvus_uri or os.environ.get("VOICEPRINT_MILVUS_URI")
    if index not in BACKENDS:
        raise typer.BadParameter(f"unknown --index {index!r} - use one of {', '.join(BACKENDS)}")
    if milvus_uri and index != "milvus":
        raise typer.BadParameter("--milvus-uri is for --index milvus - add --index milvus or drop --milvus-uri")
    if index == "milvus":
        if not milvus_uri:
            raise typer.BadParameter("--index milvus needs --milvus-uri (a Milvus server URL, or a local file.db for embedded Milvus Lite)")
        _milvus(milvus_uri)  # refuse before anything is created if it does not answer
    lib = Library.create(library, model=model, operator=STATE["operator"], milvus_uri=milvus_uri if index == "milvus" else "")
    if four_eyes:
        from .web.accounts import set_four_eyes

        set_four_eyes(lib.store, True)
    typer.echo(f"created library {lib.root} (model {lib.model}, vectors in {index}){', four-eyes enrolment' if four_eyes else ''}")


def _refuse_phone(number: str | None, before: str = "", after: str = "") -> None:
    """A one-line DataError for a value given as a phone number that is none (or a mobile of the wrong length)."""
    from .phones import normalize_number, number_refusal

    if number and not normalize_number(number):
        raise DataError(f"{before}{number_refusal(number)}{after}")


@app.command()
def enrol(
    target: Annotated[Path, typer.Argument(help="An audio file, a folder, or a CSV manifest (path,person,category,phone,case).")],
    person: Annotated[str | None, typer.Option(help="Who speaks (file, or every file of a folder).")] = None,
    category: Annotated[str, typer.Option(help="prior_offender, suspect, key_person or other.")] = "other",
    id_number: Annotated[str, typer.Option(help="ID-card number of the person.")] = "",
    phone: Annotated[str, typer.Option(help="Phone number registered to the person.")] = "",
    case: Annotated[str, typer.Option(help="Case number to link the person to.")] = "",
    channel: Annotated[int | None, typer.Option(help="Channel to take from a stereo recording (0-based).")] = None,
    voice: Annotated[int | None, typer.Option(help="Diarised voice to take from a mono two-party call (0-based, see `query`).")] = None,
    force: Annotated[bool, typer.Option("--force", hidden=True, help="No longer needed: short or noisy files are enrolled with a warning.")] = False,
    min_speech: Annotated[float | None, typer.Option(min=0, help="Minimum net speech in seconds.")] = None,
    report: Annotated[Path | None, typer.Option(help="Write every file's outcome to this CSV.")] = None,
    workers: Annotated[int | None, typer.Option(help="Workers preparing files (4 files or more; 0 = none). "
                                                      "Default: $VOICEPRINT_WORKERS or every usable core.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Four-eyes library: read your workbench password "
                                                 "from the first line of stdin (otherwise it is asked for).")] = False,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Enrol voice samples of known people: one file, a folder, or a manifest of thousands.

    Idempotent: re-running skips files already enrolled for that person, so an interrupted
    enrolment is finished by running the same command again. Four files or more are decoded and
    embedded by workers, one per core; each file is still stored on its own, in order.

    Example: voiceprint enrol samples.csv
    Example: voiceprint enrol call.wav --person "Zhang San" --category prior_offender --phone 13800138000
    Example: voiceprint enrol monitored_call.wav --person "Li Si" --voice 1
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .enrolment import EnrolItem, folder_items, read_manifest
    from .fsutil import writable_output

    if report:
        writable_output(report, [target])  # before any file is enrolled
    single = False
    _refuse_phone(phone, "--phone ", " - nothing was enrolled")  # before any file is decoded
    if target.is_dir():
        items = folder_items(target, person, category, phone, case)
    elif target.suffix.lower() in {".csv", ".tsv", ".txt"}:
        if person or id_number or phone or case or voice is not None or channel is not None:
            raise typer.BadParameter("a manifest names each row's person, ID number, phone, case and channel in its "
                                     "columns: drop the options, or add the values to the manifest")
        items = read_manifest(target)
    else:
        if not person:
            raise typer.BadParameter("--person is required when enrolling a single file")
        items = [EnrolItem(str(target), person, category, id_number, phone, case, channel, voice=voice)]
        single = True  # one file: a refusal is an error (exit 3), not a row in a summary
    if force:
        _err("note: --force is no longer needed (short or noisy files are enrolled with a warning; "
             "the quality gate is on each person's pooled speech)")
    from .library import DB_NAME, resolve_library

    root = resolve_library(library)
    new_library = not (root / DB_NAME).exists()
    lib = _open(library, create=True)
    _four_eyes_enroller(lib, password_stdin)
    if new_library:  # a mistyped --library must not file voiceprints where nobody will search them unnoticed
        _err(f"note: there was no library at {root}: a new, empty one was created for this enrolment "
             "(if you meant an existing library, check --library; `voiceprint init` creates one explicitly)")
    columns = ["path", "status", "person_id", "voiceprint_id", "channel", "net_speech", "reason", "warnings"]
    outcomes = []
    show_bar = len(items) > 1 and not json_out and sys.stderr.isatty()
    with Progress(TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=not show_bar) as bar:
        task = bar.add_task("enrol", total=len(items))

        def step(outcome):
            outcomes.append(outcome)
            bar.advance(task)

        from contextlib import nullcontext

        from .progress import long_audio_bar

        try:  # one long file shows its decode / speech / voices progress (a manifest shows the files bar)
            with long_audio_bar() if single else nullcontext():
                summary = lib.enrol_many(items, min_speech=min_speech, progress=step, on_wait=_err, stop_on_error=single,
                                         should_stop=INTERRUPTED.is_set, workers=workers)
        except KeyboardInterrupt:
            n = sum(1 for o in outcomes if o.status == "enrolled")
            if report:  # what was done before the interrupt, refusals with their reasons included
                from .report import write_csv

                write_csv(report, _outcome_rows(outcomes), columns)
            note_interrupt(f"interrupted: every file enrolled before it is kept ({n} reported, the last may not have been"
                           f"{'; the files done are in ' + str(report) if report else ''}); run the same command again to finish")
            raise
        except VoiceprintError as err:  # one file refused: still an error line and its exit code, and the row a pipeline asked for
            if single and (report or json_out):
                from .enrolment import EnrolOutcome, EnrolSummary

                refused = EnrolOutcome(str(items[0].path), "refused", reason=str(err), exit_code=err.exit_code)
                _enrol_summary(lib, EnrolSummary([refused]), items, columns, report, json_out, quiet=True)
            elif not single:  # the library stayed busy part-way, or a storage failure: the files done are kept
                _note_files_done_before(outcomes, columns, report)
            raise
        except Exception:  # a full disk, a lost mount: what was committed before it is kept, and said
            _note_files_done_before(outcomes, columns, report)
            raise
    _enrol_summary(lib, summary, items, columns, report, json_out)


def _outcome_rows(outcomes) -> list[dict]:
    """Enrolment outcomes as --report / --json rows (warnings joined into one cell)."""
    return [vars(o) | {"warnings": "; ".join(o.warnings)} for o in outcomes]


def _note_files_done_before(outcomes: list, columns: list[str], report: Path | None) -> None:
    """An enrolment stopped by an error: write the --report of the files done and say how many were enrolled."""
    if report:
        from .report import write_csv

        try:
            write_csv(report, _outcome_rows(outcomes), columns)
        except OSError as err:  # the same full disk, often
            _err(f"the report could not be written to {report} ({err.strerror or err})")
            report = None
    n = sum(1 for o in outcomes if o.status == "enrolled")
    if outcomes:
        _err(f"stopped after {len(outcomes)} file(s): {n} enrolled before the error are kept"
             f"{' (listed in ' + str(report) + ')' if report else ''}; after fixing it, run the same command again to finish")


def _four_eyes_enroller(lib, password_stdin: bool = False) -> None:
    """In a four-eyes library the enroller must be an account that may enrol, confirmed by its password:
    approval is refused to the enroller, so an enroller who only names an account (``--operator``)
    could enrol as a colleague and then approve the sample themselves."""
    from .store import accounts, four_eyes

    if not four_eyes(lib.store):
        return
    who = lib.store.operator
    row = accounts.user_brief(lib.store, who)
    if row is None or row["disabled"] or row["role"] not in ("technician", "supervisor"):
        raise LibraryError(f"{who!r} is not an active technician or supervisor of this four-eyes library - enrol under "
                           "your account: voiceprint --operator NAME enrol ... (see `voiceprint user list`)")
    from .web.accounts import AuthFailed, authenticate
    from .web.cli import ask_password

    try:
        authenticate(lib.store, who, ask_password(password_stdin, confirm=False))
    except AuthFailed as err:
        raise LibraryError(f"{who}: {err} - enrolling into a four-eyes library needs your own workbench password") from None


def _enrol_summary(lib, summary, items, columns: list[str], report: Path | None, json_out: bool, quiet: bool = False) -> None:
    """Print (and with --report, write) what an enrolment did; when every file was refused, exit with their
    error family (8 when every refusal is a bad manifest value, else 3). ``quiet``: only the --report and --json
    (a single file's refusal, whose error line the caller raises)."""
    from .report import print_rows, write_csv

    rows = _outcome_rows(summary.outcomes)
    duplicates = getattr(items, "duplicates", [])  # manifest rows that repeat an earlier row (read_manifest)
    rows += [{"path": d["path"], "status": "duplicate", "reason": f"line {d['line']} repeats line {d['first_line']}"} for d in duplicates]
    if report:
        write_csv(report, rows, columns)
    counts = {s: summary.count(s) for s in ("enrolled", "already", "refused")} | {"duplicate": len(duplicates)}
    if json_out:
        from .report import to_json

        typer.echo(to_json({"summary": counts | {"weak_voiceprints": len(summary.weak_persons)}, "outcomes": rows,
                            "weak_persons": summary.weak_persons}))
    if quiet:
        return
    if not json_out:
        if len(rows) <= 20:
            print_rows(rows, columns)
        dup = f", duplicate rows {counts['duplicate']} (enrolled once)" if counts["duplicate"] else ""
        typer.echo(f"enrolled {counts['enrolled']}, already enrolled {counts['already']}, refused {counts['refused']}{dup}"
                   f" (library {lib.root})")
        for o in summary.refused[:50]:
            _err(f"refused: {o.reason}")
        if len(summary.refused) > 50:
            _err(f"... and {len(summary.refused) - 50} more refusals (see --report FILE)")
        _weak_summary(summary)
    if counts["refused"] and not counts["enrolled"] and not counts["already"]:
        codes = {o.exit_code for o in summary.refused}
        raise typer.Exit(codes.pop() if len(codes) == 1 and 0 not in codes else 3)


def _weak_summary(summary) -> None:
    """Say which samples were poor and which persons need more material."""
    from .quality import is_quality_warning

    waiting = [o for o in summary.warned if o.pending]
    poor = [o for o in summary.warned if any(is_quality_warning(w) for w in o.warnings)]
    if poor:
        _err(f"{len(poor)} file(s) enrolled with a quality warning (short, noisy or clipped; see --report FILE)")
    # what the technician must check, file by file: a phone moved from another person, a case opened, a copy of another's sample
    notes = [(o, w) for o in summary.warned for w in o.warnings if not is_quality_warning(w) and not w.startswith("waiting for")]
    for o, w in notes[:50]:
        _err(f"note: {Path(o.path).name}: {w}")
    if len(notes) > 50:
        _err(f"... and {len(notes) - 50} more notes (see --report FILE)")
    if waiting:
        _err(f"{len(waiting)} sample(s) wait for a second person's approval (four-eyes) and are not searchable until then: "
             "`voiceprint approve --list`")
    weak = summary.weak_persons
    for w in weak[:50]:
        _err(f"weak voiceprint: {w['name']} (person {w['person_id']}) needs {w['needs']}")
    if len(weak) > 50:
        _err(f"... and {len(weak) - 50} more persons with weak voiceprints (see --json)")


@app.command()
def query(
    files: Annotated[list[Path], typer.Argument(help="Unknown recordings (any common phone/recorder format).")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Hits per voice.")] = 5,
    channel: Annotated[int | None, typer.Option(help="Only this channel of a stereo recording.")] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Who is speaking? Rank enrolled persons for each voice, with their phones and cases.

    Results are investigative leads for a human to check, not identifications.

    Example: voiceprint query call_0815.amr --top 5 --json
    """
    from .progress import long_audio_bar
    from .report import print_rows, to_json

    lib = _open(library)
    if lib.index.persons.ntotal == 0:  # an empty table would read as "nobody matched"
        from .store import pending_voiceprints

        waiting = len(pending_voiceprints(lib.store))
        _err("note: the library holds no searchable voiceprint" + (f" ({waiting} wait for approval: `voiceprint approve --list`)"
                                                                      if waiting else "") + " - nobody can match until persons are enrolled")
    results, failures = [], []
    for f in files:
        try:
            with long_audio_bar():  # decode / speech / voices progress for recordings over 5 minutes
                results.extend(lib.query(f, top=top, channel=channel))
        except VoiceprintError as err:
            if len(files) == 1:
                raise
            failures.append(err.exit_code)
            _err(f"error: {err}")
            results.append({"file": str(f), "error": str(err), "hits": []})
    if json_out:
        typer.echo(to_json(results))
    else:
        from .scoring import shown_log10_lr

        for r in results:
            if "error" in r:
                continue
            rows = [{"rank": h["rank"], "person": h["person"]["name"] + (" (weak voiceprint)" if h["weak_voiceprint"] else ""),
                     "category": h["person"]["category"],
                     "score": h["score"], "log10 LR": shown_log10_lr(h), "verbal": h.get("verbal"),
                     "exp. false hits": h.get("expected_false_hits"), "best sample": (h["sample"] or {}).get("file"),
                     "sample cosine": (h["sample"] or {}).get("score"), "phones": h["phones"],
                     "cases": [c["case_number"] for c in h["cases"]]} for h in r["hits"]]
            title = (f"{r['file']} (channel {r['channel']}, voice {r.get('voice', 0)}, {r['net_speech']:.1f} s speech, "
                     f"{r['codec']} {r['source_rate']} Hz)")
            print_rows(rows, ["rank", "person", "category", "score", "log10 LR", "verbal", "exp. false hits",
                              "best sample", "sample cosine", "phones", "cases"], title=f"{title} - investigative leads")
            if r.get("segments"):
                typer.echo("  speaks at: " + _ranges(r["segments"]))
            for w in r.get("warnings", []):
                typer.echo(f"  warning: {w}")
    _exit_if_refused(len(failures), len(files), failures[0] if failures else AudioError.exit_code, "searched")


def _exit_if_refused(refused: int, total: int, code: int = 3, done: str = "done") -> None:
    """After everything that worked was output: when any input was refused, say how many on stderr and exit with
    the refusal's code (3 for a recording), so neither a script nor a person takes a partial run for a whole one."""
    if refused:
        rest = f" - the other {total - refused} were {done}" if refused < total else ""
        _err(f"refused {refused} of {total} input(s){rest}; see the errors above")
        raise typer.Exit(code)


@app.command()
def verify(
    a: Annotated[Path, typer.Argument(help="First recording.")],
    b: Annotated[Path, typer.Argument(help="Second recording.")],
    channel_a: Annotated[int | None, typer.Option(help="Channel of A.")] = None,
    channel_b: Annotated[int | None, typer.Option(help="Channel of B.")] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """1:1 comparison: do two recordings hold the same voice?

    Example: voiceprint verify suspect_interview.wav fraud_call.amr
    """
    from .report import print_rows, to_json

    lib = _open(library)
    result = lib.verify(a, b, channel_a, channel_b)
    if json_out:
        typer.echo(to_json(result))
    else:
        pairs = result.get("comparisons") or [result]
        print_rows([{k: v for k, v in p.items() if k not in ("a", "b", "comparisons")} | {"a": p["a"]["file"], "b": p["b"]["file"]}
                    | ({"a voice": f"ch {p['a']['channel']} voice {p['a']['voice']}", "b voice": f"ch {p['b']['channel']} voice {p['b']['voice']}"}
                       if "comparisons" in result else {}) for p in pairs])
        for side in ("a", "b"):
            for warning in result[side].get("warnings", []):
                _err(f"{side.upper()}: {warning}")


# -- persons, phones, cases ----------------------------------------------------------------
@person_app.command("add")
def person_add(
    name: str,
    category: Annotated[str, typer.Option(help="prior_offender, suspect, key_person or other.")] = "other",
    id_number: Annotated[str, typer.Option(help="ID-card number.")] = "",
    notes: Annotated[str, typer.Option()] = "",
    phone: Annotated[list[str] | None, typer.Option(help="Phone registered to the person (repeatable).")] = None,
    retain_until: Annotated[str | None, typer.Option(help="Erase on `voiceprint retention apply` after this date (YYYY-MM-DD).")] = None,
    library: LibraryOpt = None,
) -> None:
    """Add a person. Example: voiceprint person add "Li Si" --category suspect --phone 13900139000"""
    from .errors import DataError
    from .phones import normalize_number, number_refusal
    from .retention import parse_date, set_retention  # retention hook: a bad date is refused before anything is added

    retain = parse_date(retain_until)
    if bad := [number for number in phone or [] if not normalize_number(number)]:  # refused before the person is added
        raise DataError(f"{number_refusal(bad[0])} - nothing was added")
    from .store.schema import id_card_problem

    lib = _open(library)
    namesakes = {int(p["id"]): p for p in lib.persons() if p["name"] == name.strip()}
    pid = lib.add_person(name, id_number, category, notes)
    for number in phone or []:
        say_phone_moved(lib.assign_phone(number, pid))
    if retain:
        set_retention(lib, pid, retain)
    if problem := id_card_problem(id_number):
        _err(f"note: {problem}: kept as given - check it against the card")
    if others := sorted(set(namesakes) - {pid}):
        _err(f"note: {len(others)} other person(s) named {name.strip()!r} (id {', '.join(map(str, others))}): refer to each by id or ID number")
    typer.echo(f"person {pid}" + (" (already in the library: same name and ID number)" if pid in namesakes else ""))


@person_app.command("list")
def person_list(
    category: Annotated[str | None, typer.Option()] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
) -> None:
    """List persons with their number of voice samples."""
    from .report import print_rows

    fmt = _fmt(json_out, csv_out)
    lib = _open(library)
    print_rows(lib.persons(category), ["id", "name", "id_number", "category", "voice_samples", "notes"], fmt)


@person_app.command("show")
def person_show(ref: str, library: LibraryOpt = None, json_out: JsonOpt = False) -> None:
    """A person with phones, cases and voice samples (by id, ID number or unique name)."""
    from .report import print_rows, to_json

    card = _open(library).show_person(ref)  # audited, as the workbench's person page is
    if json_out:
        typer.echo(to_json(card))
        return
    strength = card["voiceprint"]
    print_rows([card["person"] | {"voice_samples": card["voice_samples"], "net speech s": strength["net_speech"],
                                  "voiceprint": "WEAK" if strength["weak_voiceprint"] else "ok", "phones": card["phones"]}])
    if strength["weak_voiceprint"]:
        _err(f"weak voiceprint: enrol {strength['needs']}")
    if card["cases"]:
        print_rows(card["cases"], title="cases")
    if card["samples"]:
        print_rows(card["samples"], title="voice samples")


@person_app.command("delete")
def person_delete(
    ref: str,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm deletion of the person and their voiceprints.")] = False,
    library: LibraryOpt = None,
) -> None:
    """Delete a person and their voiceprints (audited)."""
    if not yes:
        raise typer.BadParameter("deleting a person removes their voiceprints for good: add --yes to confirm")
    lib = _open(library)
    result = lib.delete_person(ref)
    typer.echo(f"deleted person {result['person']} and {result['voiceprints']} voiceprint(s)")
    say_copies_erased(result["copies"])


def say_copies_erased(copies: list[str]) -> None:
    """An erasure reaches the copies `library reembed` left beside the library too: say which."""
    for name in copies:
        _err(f"note: also erased from {name} (the copy `library reembed` left to undo a model switch)")


@phone_app.command("add")
def phone_add(
    number: str,
    person: Annotated[str | None, typer.Option(help="Person it is registered to (id, ID number or name).")] = None,
    library: LibraryOpt = None,
) -> None:
    """Register a phone number, optionally to a person. A number registered to another person moves to this one
    (audited; a note on stderr names the previous owner)."""
    result = _open(library).assign_phone(number, person)
    say_phone_moved(result)
    typer.echo("ok")


def say_phone_moved(result: dict) -> None:
    """The note on stderr when ``Library.assign_phone`` moved a number from another person (its ``moved_from``)."""
    from .enrolment import MOVED_PHONE_NOTE

    if before := result.get("moved_from"):
        note = MOVED_PHONE_NOTE.format(number=result["number"], owner=f"{before['id']} ({before['name']})")
        _err(f"note: {note} (person {result['person_id']} ({result['person_name']}))")


@phone_app.command("show")
def phone_show(
    number: Annotated[str, typer.Argument(help="The phone number, as written anywhere (138 0013 8001, +86 13800138001).")],
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Reverse strike from a number: the person registered to it, their cases and voice samples, and the cases
    the number itself is linked to or called victims in (audited as a read).

    Example: voiceprint phone show 13800138001
    """
    from .report import print_rows, to_json

    card = _open(library).phone(number)
    if json_out:
        typer.echo(to_json(card))
        return
    owner = card["person"]
    typer.echo(f"phone {card['number']}")
    if owner is None:
        typer.echo("registered to nobody")
    else:
        print_rows([owner["person"] | {"voice_samples": owner["voice_samples"], "phones": owner["phones"]}],
                   ["id", "name", "category", "id_number", "voice_samples", "phones"], title="registered to")
        if owner["cases"]:
            print_rows(owner["cases"], title=f"cases of person {owner['person']['id']}")
        else:
            typer.echo(f"person {owner['person']['id']} is linked to no case")
    if card["phone_cases"]:
        print_rows(card["phone_cases"], title="cases linked to this number")
    if card["case_calls"]:
        print_rows(card["case_calls"], ["case_number", "title", "status", "called_at", "victim_number"],
                   title="calls from this number to case victims")
    if not card["phone_cases"] and not card["case_calls"]:
        typer.echo("no case is linked to this number and it called no case victim")


@case_app.command("add")
def case_add(
    case_number: str,
    title: Annotated[str, typer.Option()] = "",
    date: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    area: Annotated[str, typer.Option()] = "",
    status: Annotated[str, typer.Option(help="open, closed or solved (closed and solved cases leave the leads).")] = "open",
    calling_number: Annotated[list[str] | None, typer.Option(help="A number that called the victim (repeatable).")] = None,
    called_at: Annotated[list[str] | None, typer.Option(help="When it called, YYYY-MM-DD HH:MM (repeatable: one per "
                                                             "--calling-number, in the same order, or none at all).")] = None,
    library: LibraryOpt = None,
) -> None:
    """Add a case, with the numbers that called the victim and when.

    Example: voiceprint case add AJ2026-0815 --title "Fake customer service refund" --area Chengdu
    Example: voiceprint case add AJ2026-0815 --calling-number 13900000240 --called-at "2019-10-03 10:12"
    """
    from .graph_cli import add_calls, pair_calls
    from .store.schema import CASE_STATUSES, case_field_problem

    if case_field_problem(date, None):
        raise typer.BadParameter(f"{date!r} is not a day - give it as YYYY-MM-DD (e.g. 2026-08-15)", param_hint="--date")
    if case_field_problem(None, status):
        raise typer.BadParameter(f"{status!r} - give one of {', '.join(CASE_STATUSES)}", param_hint="--status")
    calls = pair_calls(calling_number or [], called_at or [])
    lib = _open(library)
    existing = lib.store.case_row(case_number)
    lib.add_case(case_number, title, date, area, status)
    if calls:
        add_calls(lib, case_number, calls)
    if existing and (title or date or area or status != "open"):
        _err(f"note: case {case_number} already exists: its title, date, area and status are unchanged")
    typer.echo("ok")


@case_app.command("link")
def case_link(
    case_number: str,
    person: Annotated[str | None, typer.Option()] = None,
    phone: Annotated[str | None, typer.Option()] = None,
    library: LibraryOpt = None,
) -> None:
    """Link a case to a person and/or a phone."""
    if not person and not phone:
        raise typer.BadParameter("give --person and/or --phone")
    _open(library).link_case(case_number, person, phone)
    typer.echo("ok")


@case_app.command("add-recording")
def case_add_recording(
    case_number: str,
    files: Annotated[list[Path], typer.Argument(help="The case's recordings (calls, voice messages).")],
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """File a case's recordings: voices matching an enrolled person are noted, the others kept as unknown voices
    and linked to the same voice in other cases.

    Example: voiceprint case add-recording AJ2026-0815 victim_call.wav voicemail.amr
    """
    from .report import print_rows, to_json

    lib = _open(library)
    lib.store.case_id(case_number)  # a mistyped case number must not open a new case: `case add` does that
    rows = lib.links.add_recordings(case_number, [str(f) for f in files])
    refused = sum(1 for r in rows if r["status"] == "refused")
    if json_out:
        typer.echo(to_json(rows))
        _exit_if_refused(refused, len(files), done="filed")
        return
    print_rows([{k: r.get(k) for k in ("file", "channel", "voice", "net_speech", "status", "person", "score", "cluster")}
                | {"speaks at": _ranges(r["segments"], 4), "warnings": "; ".join(r["warnings"]) or r.get("reason", "")}
                for r in rows])
    _exit_if_refused(refused, len(files), done="filed")


@link_app.callback()
def link(
    ctx: typer.Context,
    min_cases: Annotated[int, typer.Option(min=1, help="Only voices heard in at least this many cases.")] = 2,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Voices that are in no library but appear in several cases (串并案), with the evidence.

    Example: voiceprint link --json
    Example: voiceprint link confirm 12 / link split 12 --voiceprint 40 / link merge 12 17 / link promote 12 --name "Customer-service voice A"
    """
    if ctx.invoked_subcommand is not None:
        return
    from .report import print_rows, to_json

    found = _open(library).links.clusters(min_cases=min_cases)
    if json_out:
        typer.echo(to_json(found))
        return
    if not found:
        typer.echo("no unknown voice appears in more than one case")
    for c in found:
        typer.echo(f"cluster {c['cluster']} ({c['status']}): {c['summary']} - {c['pair_scores_shown']}")
        if (near := c.get("nearest")) and not near["linked"]:
            typer.echo(f"  closest other voice: cluster {near['cluster']} (cases {', '.join(near['cases'])}), "
                       f"{c['score_unit']} {near['score_shown']}; linking needs {near['threshold_shown']}"
                       f" - if it is the same caller: voiceprint link merge {c['cluster']} {near['cluster']}")
        print_rows([{"voiceprint": v["voiceprint"], "case": v["case"], "file": v["file"], "channel": v["channel"],
                     "voice": v["voice"], "net_speech": v["net_speech"], "speaks at": _ranges(v["segments"], 4),
                     f"{c['score_unit']} to others": v["score_to_others_shown"]} for v in c["voices"]])


@link_app.command("confirm")
def link_confirm(cluster: int, note: Annotated[str, typer.Option()] = "", library: LibraryOpt = None) -> None:
    """Confirm that a cluster's voices are one person (audited). Example: voiceprint link confirm 12"""
    _open(library).links.confirm(cluster, note)
    typer.echo(f"cluster {cluster} confirmed")


@link_app.command("split")
def link_split(
    cluster: int,
    voiceprint: Annotated[list[int], typer.Option(help="A voiceprint that does not belong (repeatable).")],
    note: Annotated[str, typer.Option()] = "",
    library: LibraryOpt = None,
) -> None:
    """Split wrongly linked voices out of a cluster; they are never re-linked automatically (audited).

    Example: voiceprint link split 12 --voiceprint 40 --voiceprint 41
    """
    result = _open(library).links.split(cluster, voiceprint, note)
    typer.echo(f"moved voiceprint(s) {result['moved']} from cluster {cluster} to cluster {result['new_cluster']}")


@link_app.command("merge")
def link_merge(
    cluster: int,
    other: int,
    note: Annotated[str, typer.Option()] = "",
    over_split: Annotated[bool, typer.Option("--over-split", help="Also merge voices an investigator split apart (lifts the split).")] = False,
    library: LibraryOpt = None,
) -> None:
    """Merge cluster OTHER into CLUSTER: an investigator decides they are one voice (confirmed, audited).

    Example: voiceprint link merge 12 17 --note "same caller, heard both calls"
    """
    result = _open(library).links.merge(cluster, other, note, over_split)
    lifted = f"; split(s) lifted: {result['splits_lifted']}" if result["splits_lifted"] else ""
    typer.echo(f"cluster {other} merged into cluster {cluster} (voiceprint(s) {result['voiceprints']}), confirmed{lifted}")


@link_app.command("promote")
def link_promote(
    cluster: int,
    name: Annotated[str, typer.Option(help="Name (or alias) of the new person.")],
    category: Annotated[str, typer.Option(help="prior_offender, suspect, key_person or other.")] = "suspect",
    id_number: Annotated[str, typer.Option()] = "",
    note: Annotated[str, typer.Option()] = "",
    library: LibraryOpt = None,
) -> None:
    """Make a cluster a person (a suspect): its voices join the library, its cases are linked (audited).

    Example: voiceprint link promote 12 --name "Customer-service voice A"
    """
    result = _open(library).links.promote(cluster, name, category, id_number, note)
    waiting = " - they wait for another supervisor's approval (`voiceprint approve --list`)" if result["pending"] else ""
    typer.echo(f"cluster {cluster} is now person {result['person_id']} with {result['voiceprints']} voiceprint(s),"
               f" linked to cases {', '.join(result['cases'])}{waiting}")


@app.command()
def screen(
    folder: Annotated[Path, typer.Argument(help="A folder of new recordings (or one file).")],
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Library hits per voice.")] = 3,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
) -> None:
    """Screen a batch of new recordings against the library and the unknown-voice clusters; stores nothing.

    Example: voiceprint screen /data/incoming/2026-06-11 --csv > screened.csv
    """
    from .report import print_rows, to_json
    from .voices import AUDIO_SUFFIXES

    fmt = _fmt(json_out, csv_out)  # --json --csv together: refused before any file is read
    if not folder.exists():
        from .errors import AudioError

        raise AudioError(folder, "no such file or folder", "check the path")
    files = [folder] if folder.is_file() else sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise typer.BadParameter(f"{folder}: no audio files found")
    from .progress import long_audio_bar
    from .scoring import shown_log10_lr

    with long_audio_bar():
        rows = _open(library).links.screen([str(f) for f in files], top=top)
    failed = sum(1 for r in rows if r.get("error"))
    if json_out:
        typer.echo(to_json(rows))
        _exit_if_refused(failed, len(files), done="screened")
        return
    flat = [{"file": r["file"], "channel": r.get("channel"), "voice": r.get("voice"), "net_speech": r.get("net_speech"),
             "person": r.get("person"), "log10 LR": shown_log10_lr({"log10_lr": r.get("person_log10_lr"), "at_bound": r.get("person_at_bound")}),
             "cosine": r.get("person_score"), "cluster": r.get("cluster"),
             "cluster score": r.get("cluster_score"), "cases": r.get("cluster_cases"),
             "warnings": "; ".join(r.get("warnings", [])) or r.get("error", "")} for r in rows]
    print_rows(flat, fmt=fmt)
    if not json_out and not csv_out:
        found = sum(1 for r in rows if r.get("person") or r.get("cluster"))
        typer.echo(f"{len(files)} file(s), {len(rows) - failed} voice(s): {found} matched a person or a known unknown voice"
                   + (f"; {failed} file(s) could not be screened" if failed else ""))
    _exit_if_refused(failed, len(files), done="screened")


# -- index, audit, models --------------------------------------------------------------------
@index_app.command("rebuild")
def index_rebuild(
    kind: Annotated[str | None, typer.Option(help="auto (exact below 50,000 voiceprints, HNSW above, IVF from 2,000,000), flat (exact), hnsw or ivf.")] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rebuild the FAISS index from the database."""
    from .index import INDEX_KINDS
    from .report import print_rows

    if kind is not None and kind not in INDEX_KINDS:
        raise typer.BadParameter(f"{kind!r} is not an index kind - use one of {', '.join(INDEX_KINDS)}", param_hint="--kind")
    print_rows([_open(library).rebuild_index(kind)], fmt=_fmt(json_out))


@index_app.command("check")
def index_check(library: LibraryOpt = None, json_out: JsonOpt = False) -> None:
    """Check that the index on disk agrees with the database (exit 5 if not; 0 with status writing while a
    writer is at work, since an enrolment brings the index up to date as it finishes)."""
    from .report import print_rows

    report = _open(library).check_index()
    print_rows([report], fmt=_fmt(json_out))
    if report["status"] == "writing":
        _err(f"{report['writer']} is writing to this library: the index is brought up to date when it finishes - "
             "nothing to do (check again afterwards)")
        return
    if report["status"] == "tampered":  # integrity hook
        _err(f"integrity check failed: {report['integrity']} - see `voiceprint verify-library`")
        raise typer.Exit(5)
    if report["status"] == "ahead":  # a rebuild now would throw away the only sign of the lost rows
        _err(f"the index holds {report['index_voiceprints']} voiceprints the database ({report['database_voiceprints']}) "
             "no longer has: was library.sqlite restored or copied without its library.sqlite-wal? Restore the whole "
             "library folder from one backup; do not run `index rebuild` on this copy unless you put an older database "
             "back on purpose (undoing `library reembed`)")
        raise typer.Exit(5)
    if report["status"] != "ok":
        _err("index does not match the database - run `voiceprint index rebuild`")
        raise typer.Exit(5)


audit_app = typer.Typer(help="The audit trail: list it, or `audit verify` its hash chain.", invoke_without_command=True)
app.add_typer(audit_app, name="audit")


@audit_app.callback()
def audit(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many entries.")] = 50,
    action: Annotated[str | None, typer.Option(help="Only this action (enrol, query, verify, person.delete, ...).")] = None,
    library: LibraryOpt = None,
    json_out: JsonOpt = False,
    csv_out: CsvOpt = False,
) -> None:
    """Who enrolled, queried or deleted what, and when (newest first). `voiceprint audit verify` checks the chain."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import datetime

    from .report import print_rows

    fmt = _fmt(json_out, csv_out)
    rows = _open(library).audit(limit, action)
    for r in rows:
        r["time"] = datetime.fromtimestamp(r["ts"]).isoformat(timespec="seconds")
        r["os_user"] = r["detail"].get("os_user", "")  # who ran the command, where --operator named someone else
    print_rows(rows, ["id", "time", "operator", "os_user", "action", "target", "detail"], fmt)


@models_app.command("list")
def models_list(json_out: JsonOpt = False) -> None:
    """Speaker models available offline."""
    from .embedding import list_models, models_dir
    from .report import print_rows

    rows = [{"name": m.name, "dim": m.embedding_dim, "sample_rate": m.sample_rate, "fingerprint": m.fingerprint,
             "files": str(m.files_dir), "description": m.description} for m in list_models()]
    print_rows(rows, ["name", "dim", "sample_rate", "fingerprint", "description", "files"], _fmt(json_out),
               title=f"models in {models_dir()}")


@models_app.command("add")
def models_add(
    folder: Annotated[Path, typer.Argument(help="A SpeechBrain speaker-model folder (hyperparams.yaml + .ckpt files).")],
    name: Annotated[str, typer.Option(help="Name to register it under.")],
    description: Annotated[str, typer.Option()] = "",
    licence: Annotated[str, typer.Option()] = "",
    trust: Annotated[bool, typer.Option("--trust", help="Record the listed file hashes as trusted (review them first).")] = False,
) -> None:
    """Register a SpeechBrain model folder carried in on local disk (checked, copied, hashed, test-loaded).

    Without --trust it only lists each file's SHA-256 and the objects its hyperparams.yaml builds
    (only SpeechBrain building blocks are accepted: a model file must not run code). Compare the
    hashes with the supplier's, then run it again with --trust.

    Example: voiceprint models add /media/usb/spkrec-ecapa-cnceleb --name ecapa-cnceleb --trust
    """
    from .embedding import add_model, inspect_model_folder
    from .report import print_rows

    seen = inspect_model_folder(folder)
    print_rows([{"file": f, "sha256": h} for f, h in seen["files"].items()], ["file", "sha256"], "table",
               title=f"files in {folder} (builds: {', '.join(seen['builds'])})")
    if not trust:
        raise ModelError(f"{folder}: not registered - compare the hashes above with the supplier's, then add --trust")
    spec = add_model(folder, name, description, licence, trust=True)
    typer.echo(f"added model {spec.name} ({spec.embedding_dim}-d) in {spec.home}")


@backend_app.command("fit")
def backend_fit(
    model: Annotated[str | None, typer.Option(help="Speaker model (default: the default model).")] = None,
    shrink: Annotated[list[float] | None, typer.Option(help="Within-class shrinkage to try (repeatable; 1.0 = centring only).")] = None,
    top_n: Annotated[list[int] | None, typer.Option(help="AS-norm cohort size to try (repeatable; 0 = no AS-norm).")] = None,
    out_dim: Annotated[int, typer.Option(help="LDA output dimension (0 = keep all).")] = 0,
    quality: Annotated[list[str] | None, typer.Option(help="Calibration quality measure to try (repeatable): min_duration, durations.")] = None,
    only: Annotated[list[str] | None, typer.Option(help="Only this CORPUS:CHANNEL of the plan (repeatable), e.g. hyke_ivr_8k:clean.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the development figures, save nothing.")] = False,
) -> None:
    """Fit a model's scoring back end on the development speakers of ../shared/data and save it with the model.

    Only speakers whose id hashes to `dev` are read; hyper-parameters and calibration are chosen by
    two-fold cross-fitting over them. Takes minutes to hours on a CPU (embeddings are cached).

    Example: voiceprint backend fit --dry-run
    """
    from .fitting import fit_backend, plan_parts, unknown_parts
    from .scoring import QUALITY_MEASURES

    if unknown := unknown_parts(only or []):
        raise typer.BadParameter(f"no such corpus:channel in the plan: {', '.join(unknown)} - choose from {', '.join(plan_parts())}",
                                 param_hint="--only")

    for q in quality or []:
        if q not in QUALITY_MEASURES:
            raise typer.BadParameter(f"--quality must be one of {', '.join(QUALITY_MEASURES)}")
    fit_backend(model, shrink or (0.05, 0.2, 0.5, 1.0), top_n or (0, 100, 300), out_dim or None,
                quality or ("min_duration", "durations"), dry_run, only, echo=typer.echo)


@backend_app.command("validate")
def backend_validate(
    model: Annotated[str | None, typer.Option(help="Speaker model (default: the default model).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Measure a fitted back end on the held-out test speakers of ../shared/data and save it with the model.

    Evidence reports then show these figures for their case's channel pair and questioned speech, and draw their
    Tippett plot from these trials. Minutes on a CPU (embeddings are cached).

    Example: voiceprint backend validate
    """
    from . import validation
    from .report import print_rows, to_json

    record = validation.measure(model, echo=_err)
    path = validation.save(record, model)
    _err(f"wrote {path} (hashed in model.json)")
    rows = [{k: v for k, v in g.items() if not k.endswith(("_lr", "_quantiles"))} for g in record["groups"]]
    if json_out:  # the record as saved, less the trials' LRs (they are in the file)
        typer.echo(to_json({**{k: v for k, v in record.items() if k != "groups"}, "file": str(path), "groups": rows}))
        return
    shown = [{**r, "eer %": f"{100 * r['eer']:.2f}" if "eer" in r else "", "cllr": f"{r['cllr']:.3f}" if "cllr" in r else ""} for r in rows]
    print_rows(shown, ["pair", "speech", "target_trials", "nontarget_trials", "eer %", "cllr", "misleading_same", "misleading_different"],
               "table", title="held-out test speakers (never used to fit the back end)")


@app.command()
def evaluate(
    manifests: Annotated[list[Path], typer.Argument(help="CSV manifests with path,speaker columns (one corpus each).")],
    enrol: Annotated[int, typer.Option(min=1, help="Enrolment recordings per speaker (the first K in manifest order).")] = 1,
    simulate: Annotated[str, typer.Option(help="Pass audio through a telephone codec first: g711u, g711a, amrnb.")] = "",
    tests_only: Annotated[bool, typer.Option("--simulate-tests-only", help="Enrol from the files as they are; simulate only the tests.")] = False,
    speakers: Annotated[str, typer.Option(help="Speaker split: all, dev (back-end fitting) or test (reporting).")] = "all",
    per_speaker: Annotated[int | None, typer.Option(min=2, help="Use at most N recordings per speaker (more than --enrol).")] = None,
    min_speech: Annotated[float, typer.Option(min=0, help="Refuse recordings with less net speech (seconds).")] = 1.0,
    test_speech: Annotated[float | None, typer.Option(help="Cut each test to its first S seconds of speech (short-sample condition; "
                                                          "lower --min-speech to match).")] = None,
    model: Annotated[str | None, typer.Option(help="Speaker model (default: the default model).")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write DET and Tippett plots (PNG) into this folder.")] = None,
    scores_out: Annotated[Path | None, typer.Option(help="Write every trial as CSV.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Accuracy on labelled recordings: EER, minDCF, Cllr, top-1/top-5, plain cosine vs fitted back end.

    Example: voiceprint evaluate ../shared/data/hyke_ivr_8k/manifest.csv --speakers test --enrol 1 --plots out/plots
    """
    from .evaluate import evaluate as run_evaluation
    from .evaluate import plot, write_scores
    from .fsutil import writable_output
    from .report import print_rows, to_json

    if per_speaker is not None and enrol >= per_speaker:
        raise typer.BadParameter(f"--enrol {enrol} leaves no test of --per-speaker {per_speaker} recordings: give more recordings "
                                 "per speaker than enrolments", param_hint="--per-speaker")
    if test_speech is not None and test_speech <= 0:
        raise typer.BadParameter(f"{test_speech:g}: give seconds of speech above 0", param_hint="--test-speech")
    if scores_out:
        writable_output(scores_out, manifests)  # before the evaluation's minutes of work

    if simulate:
        from .telephone import CODECS, available

        if simulate not in CODECS:
            raise typer.BadParameter(f"--simulate must be one of {', '.join(CODECS)}")
        if not available(simulate):
            raise typer.BadParameter(f"this PyAV build has no encoder for {simulate}")
    result = run_evaluation(manifests, enrol=enrol, model=model, simulate=simulate, min_speech=min_speech,
                            speakers=speakers, per_speaker=per_speaker, simulate_tests_only=tests_only,
                            test_speech=test_speech)
    if scores_out:
        n = write_scores(scores_out, result.trial_sets)
        _err(f"wrote {n} trials to {scores_out}")
    if plots:
        for path in plot(result.trial_sets, plots):
            _err(f"wrote {path}")
    if result.backend_meta is None:
        _err("note: no back end is fitted for this model - only the plain cosine is scored (fit one with `voiceprint backend fit`)")
    if result.overlap_speakers:
        _err(f"warning: {len(result.overlap_speakers)} speaker(s) here were used to fit the back end - "
             "their figures are optimistic; use --speakers test")
    if result.refused:
        _err(f"refused {len(result.refused)} recording(s), e.g. {result.refused[0].refused}")
    if json_out:
        typer.echo(to_json({"rows": result.rows, "refused": [{"path": i.path, "reason": i.refused} for i in result.refused],
                            "backend": result.backend_meta and {k: result.backend_meta.get(k) for k in
                                                                ("fitted_at", "corpora", "speakers_sha256", "version")}}))
        return
    cols = ["corpus", "channel", "rate", "subset", "speakers", "tests", "target_trials", "nontarget_trials"]
    for metric in ("eer", "mindcf", "cllr", "top1"):
        cols += [f"{metric}_baseline", f"{metric}_backend"] if result.backend_meta else [f"{metric}_baseline"]
    print_rows(result.rows, cols)


@app.command()
def demo(
    library: Annotated[str, typer.Option(help="Library folder for the demo (re-created).")] = "indexes/demo",
    workdir: Annotated[Path, typer.Option(help="Where the demo's recordings are written.")] = Path("out/demo"),
) -> None:
    """End-to-end demo on the real voices it ships: enrol known persons, then query unseen and telephone calls."""
    from .demo import run_demo

    run_demo(Path(library), workdir, operator=STATE["operator"], echo=typer.echo)


from .cli_admin import register as _register_admin  # noqa: E402 - verify-library, person update, retention, models trust-evidence
from .graph_cli import register as _register_leads  # noqa: E402 - needs the apps and options above
from .web.cli import register as _register_web  # noqa: E402 - serve, user, approve, four-eyes, report, audit verify

_register_admin(sys.modules[__name__])
_register_web(app, audit_app)
_register_leads(app, case_app, _open)  # `voiceprint leads`, `voiceprint case import`

#: Set by Ctrl-C (SIGINT). Long loops check it between items, because the KeyboardInterrupt the
#: signal also raises can be swallowed by third-party code that catches everything.
INTERRUPTED = threading.Event()


#: Set once a command has told the user what its interruption left behind (``note_interrupt``).
_INTERRUPT_NOTED = threading.Event()


def note_interrupt(message: str) -> None:
    """Tell the user, on stderr, what an interrupted command kept; no generic line is added after it."""
    _err(message)
    _INTERRUPT_NOTED.set()


#: Set by SIGTERM (``kill``, systemd, a scheduler), which stops a command as Ctrl-C does: the same clean-up
#: runs (no half-written output, no scratch folder left), and the exit code is 143 (128 + 15).
TERMINATED = threading.Event()


def _on_sigint(signum, frame) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


def _on_sigterm(signum, frame) -> None:
    TERMINATED.set()
    _on_sigint(signum, frame)


def run(args: list[str] | None = None) -> int:
    """Run the CLI on ``args`` and return the exit code (errors become one line on stderr)."""
    INTERRUPTED.clear()
    TERMINATED.clear()
    _INTERRUPT_NOTED.clear()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _on_sigint) if main else None
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        rc = _run(args)
        return EXIT_TERMINATED if rc == EXIT_INTERRUPTED and TERMINATED.is_set() else rc
    finally:
        close_opened()
        if main:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)


def _run(args: list[str] | None) -> int:
    os.umask(0o077)  # everything this tool writes may hold biometric or personal data
    try:
        rc = app(args=args, standalone_mode=False)  # click returns 130 itself for a KeyboardInterrupt it catches
    except (KeyboardInterrupt, typer.Abort):
        rc = EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - every error ends as one line, the traceback only with --verbose
        if STATE["verbose"]:
            traceback.print_exc()
        return _failed(exc)
    if rc == EXIT_INTERRUPTED and not _INTERRUPT_NOTED.is_set():  # even after the work was done: 130 must show
        _err(f"{'terminated (SIGTERM)' if TERMINATED.is_set() else 'interrupted (Ctrl-C)'}: whatever was reported done is kept - "
             "run the same command again to finish")
    return rc if isinstance(rc, int) else 0


def _failed(exc: Exception) -> int:
    """One line on stderr for the error a command raised, and its exit code."""
    from typer._click import exceptions as click_errors  # typer vendors click

    if INTERRUPTED.is_set():
        # Ctrl-C reached a library (DuckDB, PyAV) that raised an error of its own ("Query interrupted"):
        # it is the user's interrupt, not a bad file or a bug
        note_interrupt("interrupted: stopped before it finished - run the same command again")
        return EXIT_INTERRUPTED
    if isinstance(exc, VoiceprintError):
        _err(f"error: {exc}")
        return exc.exit_code
    if isinstance(exc, click_errors.ClickException):
        exc.show()
        return exc.exit_code
    if (where := storage_failure(exc)) is not None:
        _err(f"error: {where} - nothing more was written; what was reported done before is kept")
        return LibraryError.exit_code
    if id_overflow(exc):
        _err(f"error: {ID_TOO_LARGE}")
        return NotFound.exit_code
    _err(f"internal error: {type(exc).__name__}: {exc} - rerun with --verbose and report it")
    return 1


def main() -> None:
    """Console entry point."""
    sys.exit(run())


if __name__ == "__main__":
    main()
