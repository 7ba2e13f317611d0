"""The workbench's pages and their ``/api/`` twins. Pages answer a missing session with a redirect
to the login page, ``/api/`` routes with 401; a role that may not do something gets 403 and a
line that says so; a POST without its CSRF token is refused with 403."""

from __future__ import annotations

import secrets
import sqlite3
import time
from typing import Any
from urllib.parse import quote

from fastapi import Request  # routes.py is imported only by create_app; FastAPI reads these annotations

from ..errors import NotFound, VoiceprintError, storage_failure
from ..i18n import HTML_LANG, LANGUAGES, translate
from . import accounts, chart, views
from .app import (
    COOKIE,
    LANG_COOKIE,
    LOGIN_COOKIE,
    BodyTooLarge,
    CsrfFailed,
    Forbidden,
    LoginRequired,
    Workbench,
    _too_large,
    page_lang,
    require,
    signer,
    throttle_news,
    throttled,
    tokens_equal,
    too_large_message,
    unsign,
    user_error,
)


def _wb(request) -> Workbench:
    return request.app.state.wb


def _plain_id(text: str) -> bool:
    """A record id as a form may carry it: ASCII digits only ('²' passes ``str.isdigit``), at most 18 of them."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def _is_api(request) -> bool:
    return request.url.path.startswith("/api/")


def lang_of(request) -> str:
    """The browser's language (its ``vp_lang`` cookie), else the server's (``serve --lang``)."""
    return page_lang(request.cookies.get(LANG_COOKIE), _wb(request).settings.lang)


def page(request, name: str, user: dict | None, status_code: int = 200, **ctx):
    templates = request.app.state.templates
    lang = lang_of(request)
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return templates.TemplateResponse(request, name, {"user": user, "csrf": (user or {}).get("csrf", ""), "lang": lang, "html_lang": HTML_LANG[lang],
                                                      "here": here, **ctx}, status_code=status_code)


def error_page(request, user: dict | None, status_code: int, title: str, message: str):
    """The error page: its title in the page's language (``message`` goes through the catalogue in the template)."""
    return page(request, "error.html", user, status_code=status_code, title=translate(title, lang_of(request)), message=message)


async def current_user(request) -> dict:
    """The logged-in user, or LoginRequired. Refreshes the idle timer."""
    wb = _wb(request)
    sid = unsign(wb, request.cookies.get(COOKIE), "session")
    user = None
    if sid:
        user = await wb.call("web", lambda lib: accounts.session_user(lib.store, sid, wb.settings.idle_timeout_s))
    if user is None:
        raise LoginRequired()
    request.state.user = user  # error pages keep the navigation of the user who hit them
    return user


async def form_with_csrf(request, user: dict):
    """The request's form, after checking its CSRF token (form field or X-CSRF-Token header)."""
    form = await request.form()
    token = form.get("csrf_token") or request.headers.get("x-csrf-token")
    if not tokens_equal(str(token) if token else None, user["csrf"]):
        raise CsrfFailed()
    return form


def install(app) -> None:
    """Register every route and error handler on ``app``."""
    _error_handlers(app)
    _login_routes(app)
    _query_routes(app)
    _report_routes(app)
    _browse_routes(app)
    _enrol_routes(app)
    _case_routes(app)
    _link_routes(app)
    _audit_routes(app)


def _error_handlers(app) -> None:
    """Each refusal as JSON for the API, and as a page (in the page's language) for a browser."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    async def login_required(request, exc):
        if _is_api(request):
            return JSONResponse({"error": "not logged in - POST /login first"}, status_code=401)
        if request.headers.get("hx-request"):
            return HTMLResponse("", status_code=401, headers={"HX-Redirect": "/login"})
        from urllib.parse import quote

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")  # a search comes back whole
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    async def forbidden(request, exc):
        if _is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=403)
        return error_page(request, _user_of(request), 403, "Not allowed", str(exc))

    async def csrf_failed(request, exc):
        msg = "refused: this form has no valid CSRF token (it expired or did not come from this workbench) - reload the page and try again"
        if _is_api(request):
            return JSONResponse({"error": msg}, status_code=403)
        return error_page(request, _user_of(request), 403, "Form refused", msg)

    async def too_large(request, exc):
        limit = _wb(request).settings.max_upload_bytes
        if _is_api(request) or request.headers.get("HX-Request") == "true":  # the query page shows it in its result box
            return _too_large(limit, api=_is_api(request), lang=lang_of(request))
        return error_page(request, _user_of(request), 413, "Upload too large", too_large_message(limit))

    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(Forbidden, forbidden)
    app.add_exception_handler(CsrfFailed, csrf_failed)
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(VoiceprintError, _library_error)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(sqlite3.Error, _storage_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(OverflowError, _id_too_large)


# -- login ---------------------------------------------------------------------------------
def _login_routes(app) -> None:
    from fastapi.responses import RedirectResponse

    @app.get("/login")
    async def login_form(request: Request, next: str = "/query"):
        # no message from the URL: a crafted link must not put its own words on the real login page
        wb = _wb(request)
        token = secrets.token_urlsafe(24)
        resp = page(request, "login.html", None, login_csrf=token, next=_safe_next(next), error="")
        resp.set_cookie(LOGIN_COOKIE, signer(wb, "login").dumps(token), httponly=True, samesite="strict",
                        secure=wb.settings.secure_cookies, max_age=1800)
        return resp

    @app.post("/login")
    async def login(request: Request):
        wb = _wb(request)
        form = await request.form()
        ip = request.client.host if request.client else "?"
        expected = unsign(wb, request.cookies.get(LOGIN_COOKIE), "login")
        if not tokens_equal(str(form.get("csrf_token") or ""), expected):
            raise CsrfFailed()
        nxt = _safe_next(str(form.get("next") or "/query"))
        if throttled(wb, ip):
            if throttle_news(wb, ip):
                failures = len(wb.ip_failures.get(ip, []))
                await wb.call("unknown", lambda lib: lib.store.audit("login.throttled", "", client=ip, failures=failures))
            return _login_again(request, nxt, "too many failed logins from this address - wait five minutes", 429)
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        # The operator of the attempt's audit rows is an account's name, never free text: a password typed
        # into the name box, or a made-up name, must not be written into the permanent trail.
        exists = accounts.NAME_RE.match(name) is not None and await wb.call("unknown", lambda lib: accounts.user_exists(lib.store, name))
        try:
            user = await wb.call(name if exists else "unknown", lambda lib: accounts.authenticate(lib.store, name, password, ip))
        except accounts.AuthFailed as err:
            wb.ip_failures.setdefault(ip, []).append(time.time())
            return _login_again(request, nxt, str(err), 401)
        sid, _csrf = await wb.call(user["name"], lambda lib: accounts.create_session(lib.store, user["id"]))
        resp = RedirectResponse(nxt, status_code=303)
        resp.set_cookie(COOKIE, signer(wb, "session").dumps(sid), httponly=True, samesite="strict", secure=wb.settings.secure_cookies)
        resp.delete_cookie(LOGIN_COOKIE)
        return resp

    @app.post("/logout")
    async def logout(request: Request):
        user = await current_user(request)
        await form_with_csrf(request, user)
        wb = _wb(request)

        ip = request.client.host if request.client else "?"

        def end(lib):
            accounts.end_session(lib.store, user["sid"])
            with lib.store.transaction():
                lib.store.audit("logout", f"user:{user['id']}", client=ip)

        await wb.call(user["name"], end)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/")
    async def home(request: Request):
        user = await current_user(request)
        return RedirectResponse("/query" if user["role"] != "technician" else "/enrol", status_code=303)

    @app.get("/lang")
    async def choose_language(request: Request, to: str = "", next: str = "/"):
        """The language switch: remembers ``to`` for this browser and goes back to the (local) page it came from."""
        code = SWITCH_CODES.get(to.strip().lower().replace("_", "-"), "")  # zh, ZH, zh-CN, zh_CN; not zh-TW (traditional)
        if code not in LANGUAGES:
            return error_page(request, _user_of(request), 400, "Unknown language",
                              f"unknown language {to!r} - use one of {', '.join(LANGUAGES)}")
        resp = RedirectResponse(_safe_next(next, "/"), status_code=303)
        resp.set_cookie(LANG_COOKIE, code, max_age=365 * 24 * 3600, httponly=True, samesite="lax", secure=_wb(request).settings.secure_cookies)
        return resp

    @app.get("/api/session")
    async def api_session(request: Request):
        user = await current_user(request)
        return {"user": user["name"], "role": user["role"], "csrf_token": user["csrf"]}


async def _http_error(request, exc):
    """Starlette's own refusals (no such page, a method the address does not take) as pages, not bare JSON."""
    from fastapi.responses import JSONResponse

    status = getattr(exc, "status_code", 400)
    if status == 404:
        title, msg = "Not found", "no such page - use the workbench's menu and links"
    elif status == 405:
        title, msg = "Not allowed", "this address does not take that kind of request - use the page's buttons and links"
    else:
        title, msg = "Could not do that", "the request is not valid - use the page's forms and links"
    if _is_api(request):
        return JSONResponse({"error": msg}, status_code=status, headers=getattr(exc, "headers", None))
    return error_page(request, await _signed_in(request), status, title, msg)


async def _invalid_request(request, exc):
    """A path or form value of the wrong type (FastAPI's validation) as a page, not bare JSON."""
    from fastapi.responses import JSONResponse

    msg = "the request is not valid - use the page's forms and links"
    if _is_api(request):
        return JSONResponse({"error": msg}, status_code=422)
    return error_page(request, await _signed_in(request), 422, "Could not do that", msg)


async def _library_error(request, exc):
    from fastapi.responses import JSONResponse

    code, msg = user_error(exc)
    if _is_api(request):
        return JSONResponse({"error": msg}, status_code=code)
    return error_page(request, _user_of(request), code, "Could not do that", msg)


async def _id_too_large(request, exc):
    """An id in the address or a form too large for SQLite: no such record (404), as for any unknown id."""
    from ..errors import ID_TOO_LARGE, id_overflow

    if not id_overflow(exc):
        raise exc
    return await _library_error(request, NotFound(ID_TOO_LARGE))


async def _storage_error(request, exc):
    """A full, read-only or failing disk under the library: one line (503), as for the library's own refusals;
    any other OSError or SQLite error is a bug (the server's 500, its traceback in the log)."""
    if refused(exc) is None:
        raise exc
    return await _library_error(request, exc)


def _user_of(request) -> dict | None:
    return getattr(request.state, "user", None)


async def _signed_in(request) -> dict | None:
    """The user of a request that no route took (a page the menu should still frame), else None."""
    try:
        return _user_of(request) or await current_user(request)
    except LoginRequired:
        return None


#: What the language switch takes for each language: its code and the region tags that mean it.
SWITCH_CODES = {"en": "en", "en-us": "en", "en-gb": "en", "zh": "zh", "zh-cn": "zh", "zh-hans": "zh", "zh-hans-cn": "zh"}


def _safe_next(target: str, default: str = "/query") -> str:
    """Only local paths: a login link cannot send the user to another site."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else default


def _login_again(request, nxt: str, error: str, status: int):
    wb = _wb(request)
    token = secrets.token_urlsafe(24)
    resp = page(request, "login.html", None, status_code=status, login_csrf=token, next=nxt, error=error)
    resp.set_cookie(LOGIN_COOKIE, signer(wb, "login").dumps(token), httponly=True, samesite="strict",
                    secure=wb.settings.secure_cookies, max_age=1800)
    return resp


# -- query, results, report, audio -------------------------------------------------------------
async def run_query(request, user: dict) -> tuple[str | None, dict]:
    """Store, decode and query every uploaded file; the saved result's id and body."""
    from starlette.datastructures import UploadFile

    wb = _wb(request)
    form = await form_with_csrf(request, user)
    top = min(max(int(str(form.get("top") or 5)) if str(form.get("top") or "5").isdigit() else 5, 1), 50)
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    body: dict[str, Any] = {"files": [], "voices": [], "errors": []}
    if not files:
        body["errors"].append({"file": "", "error": "choose at least one recording to query"})
        return None, body
    for up in files:
        path, sha, size, name = await wb.call_audio(user["name"], views.receive, up.file, up.filename or "upload")
        try:
            voices = await wb.call_audio(user["name"], views.query_upload, path, sha, name, size, top)
        except VoiceprintError as err:
            body["errors"].append({"file": name, "error": user_error(err)[1]})
            continue
        body["files"].append({"name": name, "sha256": sha, "size": size})
        body["voices"].extend(voices)
    if not body["files"]:
        return None, body
    rid = await wb.call(user["name"], lambda lib: accounts.save_result(lib.store, "query", body))
    return rid, body


async def _query_or_refusal(request, user: dict) -> tuple[str | None, dict, int]:
    """:func:`run_query`, and its status; a full or failing disk under the library is told in the result box (503),
    not as a bare 500 (each upload removed its own files on the way out)."""
    try:
        rid, body = await run_query(request, user)
    except Exception as err:
        if isinstance(err, VoiceprintError) or (refusal := refused(err)) is None:
            raise
        status, message = refusal
        return None, {"files": [], "voices": [], "errors": [{"file": "", "error": message}]}, status
    return rid, body, 200 if rid else 422


def _query_routes(app) -> None:
    from fastapi.responses import JSONResponse, Response

    @app.get("/query")
    async def query_page(request: Request):
        user = await current_user(request)
        require(user, "query")
        return page(request, "query.html", user, result=None)

    @app.post("/query")
    async def query_post(request: Request):
        user = await current_user(request)
        require(user, "query")
        rid, body, status = await _query_or_refusal(request, user)
        ctx = await _result_context(request, user, rid, body)
        if request.headers.get("hx-request"):
            return page(request, "_results.html", user, status_code=status, **ctx)
        return page(request, "query.html", user, status_code=status, **ctx)

    @app.post("/api/query")
    async def api_query(request: Request):
        user = await current_user(request)
        require(user, "query")
        rid, body, status = await _query_or_refusal(request, user)
        if rid is None:
            return JSONResponse({"error": "; ".join(e["error"] for e in body["errors"]), "errors": body["errors"]}, status_code=status)
        # the body stays the voices, as `voiceprint query --json` prints them; files refused beside them are
        # counted in a header (their reasons: /api/results/<id> "errors"), never dropped without a word
        refused = {"X-Refused-Files": str(len(body.get("errors") or []))}
        return JSONResponse(body["voices"], headers={"X-Result-Id": rid, **refused})

    @app.get("/results/{rid}")
    async def result_page(request: Request, rid: str):
        user = await current_user(request)
        require(user, "query")
        saved = await _wb(request).call(user["name"], _load_result, rid)
        ctx = await _result_context(request, user, rid, saved["body"])
        return page(request, "query.html", user, **ctx)

    @app.get("/api/results/{rid}")
    async def api_result(request: Request, rid: str):
        user = await current_user(request)
        require(user, "query")
        return (await _wb(request).call(user["name"], _load_result, rid))["body"]

    @app.get("/results/{rid}/voice/{n}.png")
    async def voice_png(request: Request, rid: str, n: int, lang: str = ""):
        user = await current_user(request)
        require(user, "query")  # ?lang= in the URL: a browser's cached figure is never the other language's
        png = await _wb(request).call_audio(user["name"], _voice_png, rid, n, lang if lang in LANGUAGES else lang_of(request))
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/audio/{sha}")
    async def audio(request: Request, sha: str):
        user = await current_user(request)
        require(user, "audio")
        wav = await _wb(request).call_audio(user["name"], views.wav_bytes, sha)
        return Response(wav, media_type="audio/wav", headers={"Cache-Control": "private, no-store"})


def _report_routes(app) -> None:
    """The evidence report of a saved result: a plain link (GET, no request fields) and the report form (POST)."""
    from fastapi.responses import HTMLResponse, Response

    async def report_response(request: Request, user: dict, rid: str, fmt: str, asked=None):
        if fmt not in ("html", "pdf"):
            raise NotFound(f"no report format {fmt!r} - a report is html or pdf")
        html = await _wb(request).call_audio(user["name"], _report_html, rid, user["name"], asked, _wb(request).settings.trials, lang_of(request))
        if fmt == "html":
            return HTMLResponse(html)
        from ..evidence import render_pdf

        pdf = await asyncio_to_thread(render_pdf, html)
        return Response(pdf, media_type="application/pdf", headers={"Content-Disposition": f'inline; filename="voiceprint-report-{rid}.pdf"'})

    @app.get("/results/{rid}/report.{fmt}")
    async def report(request: Request, rid: str, fmt: str):
        user = await current_user(request)
        require(user, "report")
        return await report_response(request, user, rid, fmt)  # no request fields: they read "not stated"

    @app.post("/results/{rid}/report")
    async def report_with_request(request: Request, rid: str):
        """The report form: the request fields (who asked, their reference, when the items came, the case), checked
        as the CLI checks them; a refused field is named on an error page and no report or audit row is written."""
        from ..evidence import RequestFieldError, examination_request

        user = await current_user(request)
        require(user, "report")
        form = await form_with_csrf(request, user)
        try:
            given = {name: str(form.get(name) or "") for name in REQUEST_FIELDS}
            asked = examination_request(given["requested_by"], given["request_ref"], given["received"], given["case"])
        except RequestFieldError as err:
            lang = lang_of(request)
            message = translate("Field '{field}': {problem}", lang, field=translate(REQUEST_FIELDS[err.field], lang), problem=str(err))
            return error_page(request, user, 422, "Report refused", message)
        return await report_response(request, user, rid, str(form.get("fmt") or "html"), asked)


async def asyncio_to_thread(fn, *args):
    import asyncio

    return await asyncio.to_thread(fn, *args)


def _load_result(lib, rid: str) -> dict:
    saved = accounts.load_result(lib.store, rid)
    with lib.store.transaction():
        lib.store.audit("result.view", f"result:{rid}")
    return saved


async def _result_context(request, user: dict, rid: str | None, body: dict) -> dict:
    samples = await _wb(request).call(user["name"], views.sample_audio, body.get("voices", [])) if body.get("voices") else {}
    from ..evidence import REQUEST_TEXT_MAX
    from ..store import MAX_CASE_NUMBER

    return {"result": body, "rid": rid, "sample_audio": samples, "request_text_max": REQUEST_TEXT_MAX, "case_number_max": MAX_CASE_NUMBER}


def _voice_png(lib, rid: str, n: int, lang: str = "en") -> bytes:
    from ..errors import NotFound
    from ..evidence import voice_figure

    body = accounts.load_result(lib.store, rid)["body"]
    voices = body.get("voices", [])
    if not 0 <= n < len(voices):
        raise NotFound(f"result {rid} has no voice {n}")
    v = voices[n]
    with lib.store.transaction():
        lib.store.audit("result.figure", f"result:{rid}", voice=n)
    title = translate("{file} - channel {channel}, voice {voice} (green: this voice's speech)", lang, file=v["file"], channel=v["channel"],
                      voice=v.get("voice", 0))
    return voice_figure(accounts.upload_path(lib.root, v["sha256"]), v["channel"], v.get("segments") or [], title, lang)


#: The report form's request fields (:func:`voiceprint.evidence.examination_request`), with their labels.
REQUEST_FIELDS = {"requested_by": "Requested by", "request_ref": "Request reference", "received": "Items received", "case": "Case number"}


def _report_html(lib, rid: str, examiner: str, asked, trials, lang: str = "en") -> str:
    from ..evidence import report_html

    return report_html(lib, rid, examiner, asked, trials, lang)


# -- persons, cases, phones ----------------------------------------------------------------------
def _browse_routes(app) -> None:

    def pair(path: str, template: str, fn, *keys: str, what: str = "browse", localised: bool = False) -> None:
        """One page and its /api twin over the same view function; a ``localised`` view also takes the page's
        language (the /api twin's stays English, like all machine output)."""

        async def handler(request: Request):
            user = await current_user(request)
            require(user, what)
            args = [request.path_params.get(k) or request.query_params.get(k, "") for k in keys]
            if localised:
                args.append("en" if _is_api(request) else lang_of(request))
            data = await _wb(request).call(user["name"], fn, *args)
            if _is_api(request):
                return data
            return page(request, template, user, data=data)

        app.add_api_route(path, handler, methods=["GET"], name=template + path)
        app.add_api_route("/api" + path, handler, methods=["GET"], name="api" + path)

    pair("/persons", "persons.html", views.persons, "q")
    pair("/persons/{pid}", "person.html", lambda lib, pid: views.person(lib, _int(pid)), "pid")
    pair("/cases", "cases.html", views.cases, "q")
    pair("/cases/{number:path}", "case.html", views.case, "number")  # a case number may hold "/" (AJ2026/0815)
    pair("/phones", "phones.html", views.phones, "q")
    pair("/phones/{number}", "phone.html", views.phone, "number")
    pair("/links", "links.html", lambda lib: {"clusters": views.links(lib)}, what="links")
    pair("/leads", "leads.html", lambda lib: views.leads(lib, app.state.wb.settings.leads), what="leads")
    pair("/fused", "fused.html", chart.fused_leads, what="leads")
    pair("/fused/chart", "leadchart.html", chart.lead_chart, "key", what="leads", localised=True)


def _int(text: str) -> int:
    from ..errors import NotFound

    if not str(text).isdigit():
        raise NotFound(f"no person {text!r}")
    return int(text)


# -- enrolment and approvals -----------------------------------------------------------------------
def _enrol_routes(app) -> None:
    from fastapi.responses import JSONResponse, RedirectResponse

    @app.get("/enrol")
    async def enrol_page(request: Request):
        user = await current_user(request)
        require(user, "enrol")
        wb = _wb(request)
        pend = await wb.call(user["name"], views.pending) if user["role"] == "supervisor" else []
        four = await wb.call(user["name"], lambda lib: accounts.four_eyes_on(lib.store))
        return page(request, "enrol.html", user, outcomes=None, pending=pend, four_eyes=four)

    @app.post("/enrol")
    async def enrol_post(request: Request):
        user = await current_user(request)
        require(user, "enrol")
        outcomes, error, status = await _enrol(request, user)
        wb = _wb(request)
        pend = await wb.call(user["name"], views.pending) if user["role"] == "supervisor" else []
        four = await wb.call(user["name"], lambda lib: accounts.four_eyes_on(lib.store))
        return page(request, "enrol.html", user, status_code=status, outcomes=outcomes, error=error, pending=pend, four_eyes=four)

    @app.get("/approvals")
    async def approvals_page(request: Request):
        user = await current_user(request)
        require(user, "approve")
        pend = await _wb(request).call(user["name"], views.pending)
        return page(request, "approvals.html", user, pending=pend, done=None)

    @app.get("/api/pending")
    async def api_pending(request: Request):
        user = await current_user(request)
        require(user, "approve")
        return await _wb(request).call(user["name"], views.pending)

    @app.post("/approvals")
    async def approve(request: Request):
        user = await current_user(request)
        require(user, "approve")
        form = await form_with_csrf(request, user)
        ids = [int(x) for x in form.getlist("voiceprint") if _plain_id(str(x))]
        decision = str(form.get("decision") or "")
        if decision not in ("approve", "reject") or not ids:
            return error_page(request, user, 400, "Nothing to do", "choose one or more enrolments and approve or reject them")
        done = await _wb(request).call(user["name"], accounts.review, ids, user["name"], decision == "approve", str(form.get("note") or ""))
        if _is_api(request):
            return JSONResponse(done)
        if request.headers.get("hx-request") is None:
            return RedirectResponse("/approvals", status_code=303)
        pend = await _wb(request).call(user["name"], views.pending)
        return page(request, "approvals.html", user, pending=pend, done=done)

    app.add_api_route("/api/approvals", approve, methods=["POST"])


async def _receive_all(wb, user: dict, files: list) -> dict:
    """A form's uploads copied into the library's incoming folder: name -> (path, sha256, size), each name
    unique within the form (``views.receive``); a failure part-way leaves none of them behind."""
    uploads: dict = {}
    try:
        for up in files:  # a failing one removes its own partial file (views.receive)
            path, sha, size, name = await wb.call_audio(user["name"], views.receive, up.file, up.filename or "upload", taken=set(uploads))
            uploads[name] = (path, sha, size)
    except BaseException:
        _discard_all(uploads)
        raise
    return uploads


def _discard_all(uploads: dict) -> None:
    for path, _sha, _size in uploads.values():
        views.discard(path)


def refused(err: BaseException) -> tuple[int, str] | None:
    """The status and one line for a failure the page reports to its user (a refusal of the library's, a full,
    read-only or failing disk under the library); None for anything else (a bug: the server's 500 and its log)."""
    if isinstance(err, VoiceprintError) or (isinstance(err, Exception) and storage_failure(err) is not None):
        return user_error(err)
    return None


async def _enrol(request, user: dict) -> tuple[list | None, str, int]:
    """Receive the enrolment form: one file with person details, or a manifest with its files. The outcomes, or
    the refusal and its status (422; 503 for a full or failing disk)."""
    from starlette.datastructures import UploadFile

    wb = _wb(request)
    form = await form_with_csrf(request, user)
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    manifest = form.get("manifest")
    if not files:
        return None, "choose the recording(s) to enrol", 422
    uploads: dict = {}
    try:
        uploads = await _receive_all(wb, user, files)
        if isinstance(manifest, UploadFile) and manifest.filename:
            text = (await manifest.read()).decode("utf-8-sig", errors="replace")
            items = await wb.call(user["name"], views.manifest_items, text, uploads, manifest.filename)
        else:
            items = _form_items(form, uploads)
        return await wb.call_audio(user["name"], views.enrol_uploads, items, uploads), "", 200
    except BaseException as err:  # no failure leaves the uploads behind (the ones already kept have moved)
        _discard_all(uploads)
        if (refusal := refused(err)) is None:
            raise
        status, message = refusal
        return None, message, status if status >= 500 else 422  # 503: the disk, not the form


def _form_items(form, uploads: dict) -> list:
    from ..errors import DataError
    from ..library import EnrolItem

    person = str(form.get("person") or "").strip()
    if not person:
        raise DataError("enter who is speaking (the person's name), or upload a manifest")
    channel = str(form.get("channel") or "")
    return [EnrolItem(str(path), person, str(form.get("category") or "other"), str(form.get("id_number") or ""),
                      str(form.get("phone") or ""), str(form.get("case") or ""), int(channel) if channel.isdigit() else None,
                      str(form.get("notes") or "")) for path, _sha, _size in uploads.values()]


# -- cases: open one, file its recordings ---------------------------------------------------------------
def _case_routes(app) -> None:
    from fastapi.responses import RedirectResponse

    @app.post("/cases")
    async def open_case(request: Request):
        user = await current_user(request)
        require(user, "file")
        form = await form_with_csrf(request, user)
        wb = _wb(request)
        try:
            number = await wb.call(user["name"], views.open_case, str(form.get("case_number") or ""), str(form.get("title") or ""),
                                   str(form.get("date") or ""), str(form.get("area") or ""))
        except VoiceprintError as err:
            data = await wb.call(user["name"], views.cases, "")
            status, message = user_error(err)
            return page(request, "cases.html", user, status_code=status, data=data, error=message)
        return RedirectResponse(f"/cases/{quote(number, safe='')}", status_code=303)

    @app.post("/case-recordings")
    async def file_recordings(request: Request):
        from starlette.datastructures import UploadFile

        user = await current_user(request)
        require(user, "file")
        wb = _wb(request)
        form = await form_with_csrf(request, user)
        number = str(form.get("case_number") or "")
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
        filed, error, status = None, "", 422
        if not files:
            error = translate("choose the recording(s) to file with the case", lang_of(request))
        else:
            uploads: dict = {}
            try:
                uploads = await _receive_all(wb, user, files)
                filed = await wb.call_audio(user["name"], views.file_uploads, number, uploads)
            except BaseException as err:  # nothing is left behind (what was kept has moved)
                _discard_all(uploads)
                if (refusal := refused(err)) is None or isinstance(err, NotFound):
                    raise  # no such case: the error page, as for any unknown case
                status, error = refusal[0] if refusal[0] >= 500 else 422, refusal[1]  # 503: the disk, not the form
        data = await wb.call(user["name"], views.case, number)
        return page(request, "case.html", user, status_code=status if error else 200, data=data, filed=filed, error=error)


# -- links -----------------------------------------------------------------------------------------
def _link_routes(app) -> None:
    from fastapi.responses import RedirectResponse

    @app.post("/links/{cluster}/{decision}")
    async def link_decision(request: Request, cluster: int, decision: str):
        from ..linking import confirm, merge, promote, split

        user = await current_user(request)
        require(user, "links")
        form = await form_with_csrf(request, user)
        note = str(form.get("note") or "")
        wb = _wb(request)
        if decision == "confirm":
            await wb.call(user["name"], confirm, cluster, note)
        elif decision == "split":
            await wb.call(user["name"], split, cluster, [int(v) for v in form.getlist("voiceprint") if _plain_id(str(v))], note)
        elif decision == "merge":
            other = str(form.get("other") or "").strip()
            if not _plain_id(other):
                return error_page(request, user, 422, "Which cluster?", "give the number of the cluster to merge into this one")
            await wb.call(user["name"], merge, cluster, int(other), note, form.get("over_split") == "1")
        elif decision == "promote":
            await wb.call(user["name"], promote, cluster, str(form.get("name") or ""), str(form.get("category") or "suspect"), "", note)
        else:
            return error_page(request, user, 404, "Unknown decision", "use confirm, split, merge or promote")
        return RedirectResponse("/links", status_code=303)


# -- audit -----------------------------------------------------------------------------------------
def _audit_routes(app) -> None:
    from fastapi.responses import Response

    async def rows(request) -> tuple[dict, dict]:
        user = await current_user(request)
        require(user, "audit")
        q = request.query_params
        data = await _wb(request).call(user["name"], views.audit_rows, q.get("action", ""), q.get("operator", ""), q.get("since", ""))
        return user, data

    @app.get("/audit")
    async def audit_page(request: Request):
        user, data = await rows(request)
        return page(request, "audit.html", user, data=data)

    @app.get("/api/audit")
    async def api_audit(request: Request):
        return (await rows(request))[1]

    @app.get("/audit.csv")
    async def audit_csv(request: Request):
        _user, data = await rows(request)
        return Response(views.audit_csv(data["rows"]), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="voiceprint-audit.csv"'})

