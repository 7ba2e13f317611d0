"""Administrative commands added by the hardening work (issue 12), registered on the main app by
:func:`register`: ``verify-library``, ``person update``, ``retention apply``,
``models trust-evidence``, ``library reembed`` (issue 13) and ``library backup`` / ``check-backup``.
Kept apart so ``voiceprint.cli`` stays a list of everyday verbs.
"""


import json
from pathlib import Path
from typing import Annotated

import typer

LibraryOpt = Annotated[
    str | None,
    typer.Option("--library", "-l", envvar="VOICEPRINT_LIBRARY", help="Library name (under indexes/) or folder. Default: indexes/default."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for pipelines instead of a table.")]


def register(cli) -> None:
    """Add the commands to ``cli`` (the ``voiceprint.cli`` module: its app, sub-apps and state)."""
    app = cli.app
    retention_app = typer.Typer(help="Retention dates: erase persons whose date has passed.", no_args_is_help=True)
    app.add_typer(retention_app, name="retention")
    library_app = typer.Typer(help="The library as a whole: its settings, backups, a move to a new speaker model.", no_args_is_help=True)
    app.add_typer(library_app, name="library")

    def open_library(library, **kw):
        from .library import Library
        from .options import OPENED

        lib = Library.open(library, operator=cli.STATE["operator"], **kw)
        OPENED.append(lib)  # closed when the command ends, like every command's: SQLite then folds its log into the file
        return lib

    app.command("verify-library")(_verify_library(cli, open_library))
    cli.person_app.command("update")(_person_update(open_library))
    retention_app.command("apply")(_retention_apply(open_library))
    cli.models_app.command("trust-evidence")(_trust_evidence())
    library_app.command("reembed")(_library_reembed(cli, open_library))
    library_app.command("backup")(_library_backup(cli, open_library))
    library_app.command("settings")(_library_settings(open_library))
    library_app.command("check-backup")(_library_check_backup(cli))


def _verify_library(cli, open_library):
    def verify_library(
        library: LibraryOpt = None,
        reseal: Annotated[bool, typer.Option("--reseal", help="Trust the rows as they are now: new key, every row resealed (audited).")] = False,
        yes: Annotated[bool, typer.Option("--yes", help="Confirm --reseal.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Recompute every voiceprint's and person's integrity seal and name each row that fails (exit 5);
        also checks the library's model fingerprint (exit 4) and the hashed back-end files.

        Example: voiceprint verify-library --library county
        """
        from .report import print_rows, to_json
        from .store import allow_lost_key, rekey_and_reseal, verify_seals

        if reseal and not yes:
            raise typer.BadParameter("--reseal vouches for every row as it is now (a new key is made): add --yes to confirm")
        with allow_lost_key():
            lib = open_library(library)
        if reseal:
            with lib.writing():
                counts = rekey_and_reseal(lib.store)
            cli._err(f"resealed {counts['voiceprints']} voiceprint(s) and {counts['persons']} person(s) with a new key (audited)")
        report = verify_seals(lib.store) | {"library": str(lib.root), "model": lib.model} | _model_check(lib)
        if json_out:
            typer.echo(to_json(report))
        else:
            print_rows([{"check": k, "result": v} for k, v in report.items() if k != "failures"], ["check", "result"],
                       title=f"integrity of {report['library']}")
            if report["failures"]:
                print_rows(report["failures"][:200], ["table", "id", "person_id", "reason"], title="rows failing their seal")
        if not report["ok"]:
            from .store import describe_failure

            cli._err(f"integrity check failed: {describe_failure(report)}")
            raise typer.Exit(5)
        if report["model_problem"]:
            cli._err(report["model_problem"])
            raise typer.Exit(4)
        if not json_out:
            typer.echo(f"ok: {report['voiceprints_checked']} voiceprint(s) and {report['persons_checked']} person(s) verified")

    return verify_library


def _model_check(lib) -> dict:
    """The library's recorded model fingerprint against the installed model, and its evidence files."""
    from .embedding import load_spec
    from .errors import VoiceprintError
    from .scoring import verify_backend_files
    from .store import check_model_fingerprint

    spec = load_spec(lib.model)
    problem = ""
    try:
        check_model_fingerprint(lib.store, spec)
        verify_backend_files(spec)
    except VoiceprintError as err:
        problem = str(err)
    return {"model_fingerprint": lib.store.get_meta("model_fingerprint"), "installed_fingerprint": spec.fingerprint,
            "model_problem": problem}


def _person_update(open_library):
    def person_update(
        ref: str,
        category: Annotated[str | None, typer.Option(help="prior_offender, suspect, key_person or other.")] = None,
        notes: Annotated[str | None, typer.Option()] = None,
        retain_until: Annotated[str | None, typer.Option(help="Retention date YYYY-MM-DD, or 'none' to clear it.")] = None,
        name: Annotated[str | None, typer.Option(help="Correct the person's name (one recorded wrong).")] = None,
        library: LibraryOpt = None,
    ) -> None:
        """Change a person's category, notes, name or retention date (audited).

        Example: voiceprint person update 12 --retain-until 2031-06-30
        """
        from .retention import update_person

        if category is None and notes is None and retain_until is None and name is None:
            raise typer.BadParameter("nothing to change: give --category, --notes, --name and/or --retain-until")
        clear = retain_until is not None and retain_until.strip().lower() in ("", "none", "never")
        card = update_person(open_library(library), ref, category, notes, retain_until, clear_retention=clear, name=name)
        typer.echo(f"person {card['person']['id']} updated")

    return person_update


def _retention_apply(open_library):
    def retention_apply(
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list who would be erased.")] = False,
        as_of: Annotated[str | None, typer.Option(help="Erase dates before this day (YYYY-MM-DD). Default: today.")] = None,
        library: LibraryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Erase every person whose retention date has passed, with their voiceprints (audited).

        Phones and case links are case data and stay. Example: voiceprint retention apply --dry-run
        """
        from .cli import say_copies_erased
        from .report import print_rows, to_json
        from .retention import apply_retention

        lib = open_library(library)
        result = apply_retention(lib, as_of, dry_run)
        say_copies_erased(result.get("copies", []))
        if json_out:
            typer.echo(to_json(result))
            return
        if result["persons"]:
            print_rows(result["persons"], ["id", "category", "retain_until", "voiceprints"],
                       title="would be erased" if dry_run else "erased")
        verb = "would erase" if dry_run else "erased"
        typer.echo(f"{verb} {len(result['persons'])} person(s) whose retention date is before {result['as_of']}")

    return retention_apply


def _trust_evidence():
    def trust_evidence(
        name: Annotated[str, typer.Argument(help="Model name (see `voiceprint models list`).")],
        trust: Annotated[bool, typer.Option("--trust", help="Record the listed hashes in model.json (review them first).")] = False,
    ) -> None:
        """Hash a model's back-end and fusion files into its model.json, so altered files are refused at load.

        Needed only for a back end fitted before these hashes existed (scripts/train_backend.py records them).
        """
        from .embedding import load_spec
        from .errors import ModelError
        from .report import print_rows
        from .scoring import EVIDENCE_KEY, _file_sha, evidence_files, record_evidence_hashes

        spec = load_spec(name)
        files = evidence_files(spec.home)
        recorded = json.loads((spec.home / "model.json").read_text(encoding="utf-8")).get(EVIDENCE_KEY, {})
        rows = [{"file": f, "sha256": _file_sha(spec.home / f)} for f in files]
        for r in rows:
            r["model.json"] = "not recorded" if r["file"] not in recorded else "same" if recorded[r["file"]] == r["sha256"] else "DIFFERS"
        print_rows(rows, ["file", "sha256", "model.json"], "table", title=f"evidence files of {spec.name}")
        if not trust:
            raise ModelError(f"{spec.name}: not recorded - check these files, then add --trust")
        record_evidence_hashes(spec.home)
        typer.echo(f"recorded {len(files)} hash(es) in {spec.home / 'model.json'}")

    return trust_evidence


def _library_reembed(cli, open_library):
    def library_reembed(
        model: Annotated[str, typer.Option("--model", metavar="MODEL", help="The speaker model to move to (see `voiceprint models list`).")],
        audio: Annotated[list[Path], typer.Option("--audio", metavar="DIR", help="Folder holding the original recordings (repeatable; searched by SHA-256).")],
        library: LibraryOpt = None,
        allow_missing: Annotated[bool, typer.Option("--allow-missing", help="Switch even if recordings are missing: their voiceprints are DROPPED.")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be re-embedded and what is missing.")] = False,
        report: Annotated[Path | None, typer.Option("--report", help="Write the recordings not re-embedded to this CSV.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Move a library to a new speaker model: re-embed every voiceprint from its original recording.

        Persons, phones, cases, links and the audit trail stay; each recording is found by SHA-256 under
        the --audio folders and the same channel and speech segments are embedded again. Resumable
        (Ctrl-C keeps every committed batch); the model switches only when all are done (or with
        --allow-missing). A copy of the database from just before the switch is kept beside it.

        Example: voiceprint library reembed --model campplus-zh-en --audio /data/enrolled --library county --dry-run
        """
        from .reembed import ReembedIncomplete, reembed, write_report
        from .report import to_json

        lib = open_library(library)
        if lib.model == model:
            typer.echo(f"library {lib.root} is on model {model} already: nothing to do")
            return
        try:
            summary = reembed(lib, model, audio, allow_missing=allow_missing, dry_run=dry_run,
                              progress=lambda done, total: cli._err(f"re-embedded {done} of {total}") if done % 100 == 0 else None,
                              should_stop=cli.INTERRUPTED.is_set)
        except ReembedIncomplete as err:
            if report:
                write_report(report, err.summary)
            raise
        except KeyboardInterrupt:
            cli.note_interrupt("interrupted: every committed batch is kept; run the same command again to resume")
            raise
        if report:
            write_report(report, summary)
        if json_out:
            typer.echo(to_json(summary.to_dict()))
        _reembed_lines(cli, summary, quiet=json_out)

    return library_reembed


def _reembed_lines(cli, s, quiet: bool) -> None:
    """The human summary of a re-embedding (the warnings on stderr, also with --json)."""
    if quiet:
        pass
    elif s.dry_run:
        typer.echo(f"would re-embed {s.found} of {s.voiceprints} voiceprint(s) of {s.old_model} with {s.new_model} "
                   f"({s.already} done already); {len(s.missing)} recording(s) not found")
    else:
        typer.echo(f"library {s.library} moved from {s.old_model} to {s.new_model}: {s.embedded} voiceprint(s) re-embedded now, "
                   f"{s.already} earlier; copy of the database before the move: {s.backup}")
    if s.missing and (s.dry_run or s.switched):
        verb = "would lose" if s.dry_run else "DROPPED"
        who = "" if s.dry_run else f"; persons left with no voiceprint: {s.dropped_persons or 'none'}"
        cli._err(f"warning: {len(s.missing)} voiceprint(s) {verb} (recording not found or unusable; see --report){who}")
    if s.unknown_voices:
        cli._err(f"note: {s.unknown_voices} unknown case voice(s) of {s.old_model} were not re-embedded: file those case "
                 "recordings again (`voiceprint case add-recording`) to link them under the new model")


def _library_backup(cli, open_library):
    def library_backup(
        dest: Annotated[Path, typer.Argument(help="A new folder for the copy (ideally on another disk).", show_default=False)],
        library: LibraryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Back the library up from one moment, while the workbench and enrolments go on.

        Copies the database (SQLite's backup API: every row committed up to now), the seals' key and the
        uploaded recordings, checks the copy's seals and audit chain, and lists every file's SHA-256 in
        DEST/BACKUP.json. The index is not copied: it is rebuilt from the database on first use. DEST is
        itself a library: restore by putting it in the library's place (the workbench stopped).

        Example: voiceprint library backup /backup/county-2026-12-07 --library county
        """
        from .report import to_json

        lib = open_library(library)
        done = lib.backup(dest)
        if json_out:
            typer.echo(to_json({k: v for k, v in done.items() if k != "files"} | {"files": len(done["files"])}))
            return
        typer.echo(f"backed up {done['persons']} person(s), {done['voiceprints']} voiceprint(s), {done['audit_rows']} audit row(s) "
                   f"and {done['uploads']} uploaded recording(s) of {lib.root} to {done['folder']} "
                   f"(audit chain head {done['audit_head'][:16]}; file hashes in {done['folder']}/BACKUP.json)")
        from .index import read_backend

        where = read_backend(lib.root)
        if where["backend"] == "milvus":
            cli._err(f"note: this library's vectors also live in Milvus ({where['uri']}); the database holds every one of them, so "
                     "after a restore run `voiceprint index rebuild` rather than relying on Milvus's own state")

    return library_backup


def _library_check_backup(cli):
    def library_check_backup(
        folder: Annotated[Path, typer.Argument(help="A folder `voiceprint library backup` made (or a copied library folder).",
                                               show_default=False)],
        json_out: JsonOpt = False,
    ) -> None:
        """Check a backup without writing to it (read-only media too): its files against the SHA-256s in its
        BACKUP.json, and its database's integrity seals and audit chain (exit 5 when one fails).

        Run it before a restore: opening the copy as a library writes to it (audit rows, the index), after
        which its database no longer matches the list.

        Example: voiceprint library check-backup /backup/county-2026-12-07
        """
        from .backup import check_backup
        from .errors import LibraryError
        from .report import to_json

        result = check_backup(folder)
        if json_out:
            typer.echo(to_json(result))
        elif result["ok"]:
            listed = f"all {result['files']} file(s) match BACKUP.json (taken {result['taken_at']}); " if result["listed"] else \
                "no BACKUP.json (a copy made by other means: file hashes not checked); "
            typer.echo(f"{folder}: {listed}seals ok, audit chain ok ({result['audit_rows']} rows, head {result['audit_head'][:16]})")
        if not result["ok"]:
            bad = [f"{name} changed" for name in result["changed"]] + [f"{name} missing" for name in result["missing"]]
            if not result["seals_ok"]:
                bad.append(f"{result['seal_failures']} row(s) fail their seals" if result["key_present"] else
                           "library.key missing or damaged, so the seals cannot be checked")
            if not result["audit_ok"]:
                bad.append(f"the audit chain breaks at row {result['first_broken']['id']}")
            raise LibraryError(f"{folder}: {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} - this copy is not the backup as taken; "
                               "use another backup")

    return library_check_backup


def _library_settings(open_library):
    def library_settings(
        laboratory: Annotated[str | None, typer.Option("--laboratory", help="Name the unit that issues this library's reports "
                                                       "(鉴定机构, printed on every report); \"\" clears it. Audited.")] = None,
        library: LibraryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Show the library's settings, or change one.

        Example: voiceprint library settings --laboratory "XX市公安局反诈中心声纹实验室" --library county
        """
        from .index import read_backend
        from .report import print_rows, to_json
        from .store import four_eyes

        if laboratory is not None:
            from .evidence import RequestFieldError, one_line_text

            try:
                one_line_text("laboratory", laboratory, 200)
            except RequestFieldError as err:
                raise typer.BadParameter(str(err), param_hint="--laboratory") from None
        lib = open_library(library)
        if laboratory is not None:
            lib.set_laboratory(laboratory)
        backend = read_backend(lib.root)
        shown = {"library": str(lib.root.resolve()), "model": lib.model, "index": backend["backend"] + (f" ({backend['uri']})" if "uri" in backend else ""),
                 "four_eyes": four_eyes(lib.store), "laboratory": lib.laboratory}
        if json_out:
            typer.echo(to_json(shown))
        else:
            print_rows([{"setting": k, "value": "not set" if v == "" else v} for k, v in shown.items()], ["setting", "value"])

    return library_settings
