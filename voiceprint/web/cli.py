"""CLI commands of the workbench: ``serve``, ``user``, ``approve``, ``four-eyes``, ``report`` and
``audit verify``. Registered on the main app by :func:`register` (one line in ``voiceprint.cli``).

No ``from __future__ import annotations`` here: typer reads the option annotations, which are
imported from ``voiceprint.cli`` inside the registering functions."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from ..errors import DataError, LibraryError, NotFound
from ..fsutil import write_atomic

user_app = typer.Typer(help="Workbench users and their roles (technician, investigator, analyst, supervisor).", no_args_is_help=True)

PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")]


def _language(value: str) -> str:
    from ..i18n import language

    try:
        return language(value)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


LangOpt = Annotated[str, typer.Option("--lang", envvar="VOICEPRINT_LANG", callback=_language,
                                      help="Language: en (English) or zh (Simplified Chinese).")]


def _open(library):
    from ..cli import _open as open_library

    return open_library(library)


def ask_password(from_stdin: bool, confirm: bool = True) -> str:
    from .accounts import check_password

    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise DataError("no password on stdin - pipe it in: printf '%s\\n' \"$PASSWORD\" | voiceprint user add ...")
        return check_password(line.rstrip("\r\n"))
    if not sys.stdin.isatty():  # a prompt would read end-of-file, which click reports as Ctrl-C
        raise DataError("no terminal to ask for the password on - pipe it in with --password-stdin")
    return check_password(typer.prompt("password", hide_input=True, confirmation_prompt=confirm))


def register(app, audit_app) -> None:
    """Add the workbench commands to the ``voiceprint`` app (and ``verify`` to its ``audit`` group)."""
    from ..cli import STATE, JsonOpt, LibraryOpt

    app.add_typer(user_app, name="user")

    @user_app.command("add")
    def user_add(name: str, role: Annotated[str, typer.Option(help="technician, investigator, analyst or supervisor.")],
                 password_stdin: PasswordStdin = False, library: LibraryOpt = None) -> None:
        """Create a workbench user (argon2-hashed password). Example: voiceprint user add chen --role investigator"""
        from .accounts import add_user, check_role

        check_role(role)
        password = ask_password(password_stdin)
        uid = add_user(_open(library).store, name, role, password)
        typer.echo(f"user {name} ({role}) created, id {uid}")

    @user_app.command("list")
    def user_list(library: LibraryOpt = None, json_out: JsonOpt = False) -> None:
        """Users, roles and whether each is disabled or locked."""
        from ..report import print_rows
        from .accounts import list_users

        print_rows(list_users(_open(library).store), ["id", "name", "role", "disabled", "failed_logins"], "json" if json_out else "table")

    @user_app.command("disable")
    def user_disable(name: str, library: LibraryOpt = None) -> None:
        """Disable a user and end their sessions (the name stays in the audit trail)."""
        from .accounts import set_disabled

        set_disabled(_open(library).store, name, True)
        typer.echo(f"user {name} disabled")

    @user_app.command("enable")
    def user_enable(name: str, library: LibraryOpt = None) -> None:
        """Enable a disabled user again."""
        from .accounts import set_disabled

        set_disabled(_open(library).store, name, False)
        typer.echo(f"user {name} enabled")

    @user_app.command("passwd")
    def user_passwd(name: str, password_stdin: PasswordStdin = False, library: LibraryOpt = None) -> None:
        """Set a user's password (ends their sessions, clears a login lock)."""
        from .accounts import get_user, set_password

        store = _open(library).store
        get_user(store, name)
        set_password(store, name, ask_password(password_stdin))
        typer.echo(f"password of {name} changed")

    _register_serve(app)
    _register_four_eyes(app, STATE)
    _register_report(app)

    @audit_app.command("verify")
    def audit_verify(
        library: LibraryOpt = None,
        row: Annotated[int | None, typer.Option(help="Also print this row's hash, e.g. the audit head a report quotes.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Check the audit trail's hash chain; exit 5 and name the first broken row when it does not hold.

        Example: voiceprint audit verify --row 188 --library county   # the row and hash an evidence report quotes
        """
        from ..report import to_json
        from ..store import allow_lost_key, verify_audit_chain

        with allow_lost_key():  # the chain needs no key: a backup restored without it can still be checked
            lib = _open(library)
        result = verify_audit_chain(lib.store)
        if row is not None:
            found = lib.store.db.execute("SELECT hash FROM audit WHERE id = ?", (int(row),)).fetchone()
            if found is None:
                raise NotFound(f"no audit row {row} - the trail has {result['rows']} rows")
            result["row"] = {"id": int(row), "hash": found[0]}
        if json_out:
            typer.echo(to_json(result))
        if not result["ok"]:
            bad = result["first_broken"]
            raise LibraryError(f"audit chain broken at row {bad['id']} ({bad['action']}): {bad['problem']} - "
                               f"the trail after row {bad['id'] - 1} cannot be trusted; compare with a backup")
        if not json_out:
            typer.echo(f"audit chain ok: {result['rows']} rows, head {result['head']}")
            if "row" in result:
                typer.echo(f"row {result['row']['id']}: {result['row']['hash']}")


def _register_serve(app) -> None:
    from ..cli import LibraryOpt

    @app.command()
    def serve(
        library: LibraryOpt = None,
        host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 behind a TLS reverse proxy.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
        idle_timeout: Annotated[int, typer.Option(min=1, help="Log a session out after this many idle seconds.")] = 900,
        max_upload_mb: Annotated[int, typer.Option(min=1, help="Largest accepted upload, in MB.")] = 200,
        secure_cookies: Annotated[bool, typer.Option("--secure-cookies", help="Mark cookies Secure (serving through HTTPS).")] = False,
        leads: Annotated[Path | None, typer.Option(help="CDR leads JSON from `voiceprint calls leads --out leads.json`.")] = None,
        trials: Annotated[Path | None, typer.Option(help="Development trials CSV (`evaluate --scores-out`) for the reports' Tippett plot.")] = None,
        trusted_proxy: Annotated[list[str] | None, typer.Option(
            "--trusted-proxy", help="Address of the reverse proxy in front (repeatable): its X-Forwarded-For names the client. "
                                    "Without it the header is ignored.")] = None,
        lang: LangOpt = "en",
    ) -> None:
        """The investigator's workbench: a web application over this library, for one centre's network.

        Example: voiceprint serve --library county --port 8080
        Example: voiceprint serve --library county --lang zh
        """
        import uvicorn

        from .app import Settings, create_app

        _check_serve_files(leads, trials)  # a mistyped file is said now, not on the first page that reads it
        settings = Settings(library=library, idle_timeout_s=float(idle_timeout), max_upload_bytes=max_upload_mb * 1024 * 1024,
                            secure_cookies=secure_cookies, leads=leads, trials=trials, trusted_proxies=tuple(trusted_proxy or ()),
                            lang=lang)
        web = create_app(settings, close_on_shutdown=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            typer.echo(f"warning: binding {host}: anyone who can reach this port can try to log in; put it behind TLS", err=True)
        typer.echo(f"voiceprint workbench on http://{host}:{port}/ (library {web.state.wb.lib.root}); Ctrl-C stops it", err=True)
        # proxy headers are the app's (--trusted-proxy), never uvicorn's default trust of 127.0.0.1
        uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False, server_header=False, proxy_headers=False)


def _check_serve_files(leads: Path | None, trials: Path | None) -> None:
    """Read ``--leads`` and ``--trials`` once before serving: missing is NotFound (7), unreadable DataError (8)."""
    if leads is not None:
        from .views import read_leads

        read_leads(leads)
    if trials is not None:
        if not trials.is_file():
            raise NotFound(f"{trials}: no such trials file - write it with `voiceprint evaluate --scores-out trials.csv`")
        from ..evidence import read_trials

        read_trials(trials)


def _register_four_eyes(app, state) -> None:
    from ..cli import JsonOpt, LibraryOpt

    @app.command("four-eyes")
    def four_eyes_cmd(switch: Annotated[str, typer.Argument(help="on or off")], library: LibraryOpt = None) -> None:
        """Switch four-eyes enrolment on or off: new enrolments wait for a supervisor's approval."""
        from .accounts import set_four_eyes

        if switch not in ("on", "off"):
            raise DataError(f"four-eyes takes on or off, not {switch!r}")
        set_four_eyes(_open(library).store, switch == "on")
        typer.echo(f"four-eyes enrolment {switch}")

    @app.command()
    def approve(
        voiceprints: Annotated[list[int] | None, typer.Argument(help="Voiceprint ids to approve (see --list).")] = None,
        list_only: Annotated[bool, typer.Option("--list", help="List the enrolments waiting for approval.")] = False,
        reject: Annotated[bool, typer.Option("--reject", help="Reject (delete) them instead of approving.")] = False,
        note: Annotated[str, typer.Option(help="A note for the audit trail.")] = "",
        password_stdin: PasswordStdin = False,
        library: LibraryOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Approve (or --reject) pending enrolments as a supervisor: your workbench user is --operator (or
        the OS user), confirmed by your password.

        Example: voiceprint --operator wang approve 41 42
        """
        from ..report import print_rows
        from ..store import default_operator, pending_voiceprints
        from .accounts import AuthFailed, authenticate, review

        if list_only and (voiceprints or reject):
            raise typer.BadParameter("--list only lists: approve or reject in a second command, naming the voiceprints")
        if reject and not voiceprints:
            raise typer.BadParameter("name the voiceprints to reject (see --list)")
        lib = _open(library)
        if list_only or not voiceprints:
            rows = pending_voiceprints(lib.store)
            print_rows(rows, ["voiceprint", "person", "category", "file", "net_speech", "enrolled_by"], "json" if json_out else "table",
                       title="waiting for approval")
            return
        who = state["operator"] or default_operator()
        try:
            authenticate(lib.store, who, ask_password(password_stdin, confirm=False))
        except AuthFailed as err:
            raise LibraryError(f"{who}: {err} - approvals need the supervisor's own workbench password") from None
        done = review(lib, list(voiceprints), who, approve=not reject, note=note)
        typer.echo(f"{'rejected' if reject else 'approved'} voiceprint(s) {', '.join(str(d['voiceprint']) for d in done)}")


def _register_report(app) -> None:
    from ..cli import STATE, LibraryOpt

    @app.command()
    def report(
        result_id: Annotated[str | None, typer.Argument(help="A saved result id (shown on the query page and by this command).")] = None,
        query: Annotated[Path | None, typer.Option(help="Query this recording now and report the hits (an investigative lead).")] = None,
        verify: Annotated[list[Path] | None, typer.Option(help="Two recordings to compare (repeat: --verify A --verify B).")] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here: .pdf or .html (default report-<id>.pdf).")] = None,
        examiner: Annotated[str | None, typer.Option(help="Examiner named in the report (default: the operator).")] = None,
        trials: Annotated[Path | None, typer.Option(help="Development trials CSV (`evaluate --scores-out`) for the Tippett plot.")] = None,
        requested_by: Annotated[str | None, typer.Option(help="Requesting unit or officer (委托单位); not given: 'not stated'.")] = None,
        request_ref: Annotated[str | None, typer.Option(help="The request's reference number (委托编号).")] = None,
        received: Annotated[str | None, typer.Option(help="Day the items were received (受理日期), YYYY-MM-DD, not in the future.")] = None,
        case: Annotated[str | None, typer.Option(help="Case number of this library the examination belongs to (案件编号).")] = None,
        lang: LangOpt = "en",
        library: LibraryOpt = None,
    ) -> None:
        """The evidence report (HTML or PDF, ENFSI / ISO 21043-5 sections) for a query or a verify.

        Its first block names who asked for the examination; a field not given reads "not stated".

        Example: voiceprint report --query fraud_call.amr -o lead.pdf
        Example: voiceprint report --verify suspect.wav --verify call.amr -o comparison.pdf
        Example: voiceprint report 3f9c2a1b0d4e5f67 -o report.html
        Example: voiceprint report 3f9c2a1b0d4e5f67 --lang zh -o report-zh.pdf
        Example: voiceprint report 3f9c2a1b0d4e5f67 --requested-by "Chengdu PSB" --request-ref CD-2026-0815 --received 2026-08-15 --case AJ2026-0815
        """
        from ..evidence import RequestFieldError, examination_request, render_pdf, report_html, request_case
        from ..store import default_operator
        from .accounts import save_result

        if out is not None and out.suffix.lower() not in (".pdf", ".html"):
            raise typer.BadParameter(f"{out}: the report is written as .pdf or .html", param_hint="--out")
        given = sum(1 for x in (result_id, query, verify) if x)
        if given != 1:  # usage: checked before the library opens or a recording is read
            raise typer.BadParameter("give one of: a result id, --query FILE, or --verify A --verify B" + (" (not several)" if given else ""))
        if verify and len(verify) != 2:
            raise typer.BadParameter("--verify takes exactly two recordings: --verify A --verify B", param_hint="--verify")
        try:
            asked = examination_request(requested_by, request_ref, received, case)
        except RequestFieldError as err:
            raise typer.BadParameter(str(err), param_hint="--" + err.field.replace("_", "-")) from None
        lib = _open(library)
        request_case(lib, asked)  # an unknown case is refused before a recording is searched
        paths: dict = {}
        if query is not None:
            voices = lib.query(query)
            sha = voices[0]["sha256"] if voices else ""
            body = {"files": [{"name": query.name, "sha256": sha, "size": query.stat().st_size}], "voices": voices}
            for v in voices:
                v["file"] = query.name
            result_id = save_result(lib.store, "query", body)
            paths[sha] = query
        elif verify:
            body = lib.verify(verify[0], verify[1])
            result_id = save_result(lib.store, "verify", body)
        assert result_id is not None  # exactly one source, checked above; a query or verify saved its own
        html = report_html(lib, result_id, str(examiner or STATE["operator"] or default_operator()), asked, trials, lang, paths)
        out = out or Path(f"report-{result_id}.pdf")
        write_atomic(out, html if out.suffix.lower() == ".html" else render_pdf(html))
        typer.echo(f"result {result_id}: report written to {out}")
