"""``voiceprint serve``: the FastAPI application.

One library per server, opened twice, each on its own thread (SQLite connections and the FAISS
index are not shared across threads): one lane for the pages, sessions and forms, one for the audio
work (uploads, queries, enrolments, figures, reports). A two-hour recording being searched or a
manifest being enrolled then holds up the other audio work only, never the pages or a login. The
two are like two processes on one library (a CLI beside the server): the write lock and the
database's generation keep them consistent. Every call runs under the logged-in user's name, so each
audit row names the person at the keyboard. Sessions are server-side rows; the cookie carries a signed
random id and is HttpOnly and SameSite=Strict. Every POST needs the session's CSRF token.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AudioError, DataError, LibraryError, NotFound, VoiceprintError, sqlite_disk_full, storage_failure
from ..i18n import HTML_LANG, LANGUAGES, translate

HERE = Path(__file__).resolve().parent
HTMX_FILE = "htmx-2.0.4.min.js"
CYTOSCAPE_FILE = "cytoscape-3.35.0.min.js"
COOKIE = "vp_session"
LOGIN_COOKIE = "vp_login"
LANG_COOKIE = "vp_lang"
ALL_ROLES = frozenset({"technician", "investigator", "analyst", "supervisor"})
#: Which roles may do what. Browsing persons, cases and phones is open to every role.
PERMISSIONS: dict[str, frozenset] = {
    "browse": ALL_ROLES,
    "query": frozenset({"investigator", "analyst", "supervisor"}),
    "report": frozenset({"investigator", "analyst", "supervisor"}),
    "audio": frozenset({"investigator", "supervisor"}),
    "enrol": frozenset({"technician", "supervisor"}),
    "approve": frozenset({"supervisor"}),
    "links": frozenset({"investigator", "supervisor"}),
    "file": frozenset({"investigator", "supervisor"}),
    "leads": frozenset({"analyst", "investigator", "supervisor"}),
    "audit": frozenset({"supervisor"}),
}
PERMISSION_WORDS = {
    "query": "query recordings", "report": "open evidence reports", "audio": "listen to recordings", "enrol": "enrol voice samples",
    "approve": "approve or reject enrolments", "links": "see or decide case links",
    "file": "open cases or file their recordings", "leads": "see CDR leads", "audit": "read the audit trail",
}


@dataclass
class Settings:
    library: str | None = None
    idle_timeout_s: float = 900.0
    max_upload_bytes: int = 200 * 1024 * 1024
    secure_cookies: bool = False
    leads: Path | None = None
    trials: Path | None = None
    ip_failures: int = 20  # failed logins per client address in 5 minutes before it is throttled
    #: reverse proxies whose X-Forwarded-For names the client (``serve --trusted-proxy``); from anyone else it is ignored
    trusted_proxies: tuple[str, ...] = ()
    lang: str = "en"  # the pages' language until a browser picks another (voiceprint.i18n.LANGUAGES)
    extra: dict = field(default_factory=dict)


class LoginRequired(Exception):
    pass


class Forbidden(Exception):
    def __init__(self, what: str, role: str):
        super().__init__(f"your role ({role}) cannot {PERMISSION_WORDS.get(what, what)} - ask a supervisor for a role that can")


class CsrfFailed(Exception):
    pass


class BodyTooLarge(Exception):
    pass


class Lane:
    """One thread and the library opened on it: the calls of a lane run one at a time, in order."""

    def __init__(self, library: str | None, name: str):
        from ..library import Library

        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"voiceprint-{name}")
        self.lib = self.pool.submit(Library.open, library, False, "web").result()
        self.pool.submit(_one_faiss_thread).result()
        self.model_seen = self.pool.submit(self._model_held).result()  # a model switch on disk reopens the library

    def submit(self, operator: str, fn: Callable, args, kwargs):
        return self.pool.submit(self._run, operator, fn, args, kwargs)

    async def call(self, operator: str, fn: Callable, *args, **kwargs) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._run, operator, fn, args, kwargs)

    def _run(self, operator, fn, args, kwargs):
        self._follow_model()
        store = self.lib.store
        store.operator = operator
        try:
            return fn(self.lib, *args, **kwargs)
        finally:
            store.operator = "web"

    def _model_on_disk(self) -> tuple[str | None, str | None]:
        store = self.lib.store
        return store.get_meta("model"), store.get_meta("model_fingerprint")

    def _model_held(self) -> tuple[str | None, str | None]:
        """The model the open library works with (read when it opened), and the fingerprint recorded beside it."""
        return self.lib.model, self.lib.store.get_meta("model_fingerprint")

    def _follow_model(self) -> None:
        """Reopen the library when its speaker model changed on disk since it was opened here (`voiceprint library
        reembed` while the server runs): the open library holds the old model, whose voiceprints are gone, and would
        refuse every query and enrolment as if the model files had been altered."""
        from ..library import Library

        if self._model_on_disk() == self.model_seen:
            return
        fresh = Library.open(self.lib.root, False, "web")
        old, self.lib = self.lib, fresh
        self.model_seen = self._model_held()
        logging.getLogger("voiceprint").warning("library %s moved to speaker model %r: reopened it with that model", fresh.root,
                                                fresh.model)
        old.close()

    def close(self) -> None:
        self.pool.submit(lambda: self.lib.close()).result()
        self.pool.shutdown()


class Workbench:
    """The library, opened on two lanes (pages, audio), and the calls into it."""

    def __init__(self, settings: Settings):
        from .. import incoming

        self.settings = settings
        self.pages = Lane(settings.library, "pages")
        self.audio = Lane(str(self.pages.lib.root), "audio")
        self.secret = self.pages.submit("web", lambda lib: _secret(lib.root), (), {}).result()
        self.pages.submit("web", lambda lib: incoming.sweep(lib.root), (), {}).result()  # uploads a stopped server was receiving (voices)
        self.ip_failures: dict[str, list[float]] = {}
        self.throttle_noted: dict[str, float] = {}  # when each address's throttling was last written to the audit trail

    @property
    def lib(self):
        """The library as the pages see it."""
        return self.pages.lib

    def call_sync(self, operator: str, fn: Callable, *args, **kwargs) -> Any:
        return self.pages.submit(operator, fn, args, kwargs).result()

    async def call(self, operator: str, fn: Callable, *args, **kwargs) -> Any:
        """``fn(library, *args, **kwargs)`` on the pages' lane: reads and small writes, never audio work."""
        return await self.pages.call(operator, fn, *args, **kwargs)

    async def call_audio(self, operator: str, fn: Callable, *args, **kwargs) -> Any:
        """``fn(library, *args, **kwargs)`` on the audio lane: uploads, decoding, embedding, figures, reports."""
        return await self.audio.call(operator, fn, *args, **kwargs)

    def close(self) -> None:
        """Close the library on both lanes (folding its write-ahead log into library.sqlite); a second call does nothing."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        self.audio.close()
        self.pages.close()


def _one_faiss_thread() -> None:
    """One OpenMP thread for FAISS on the library thread: a single query gains nothing from more, and on a
    busy machine OpenMP's spinning threads made a 10,000-person flat search 60x slower (scripts/bench_web.py)."""
    try:
        import faiss
    except ImportError:  # pragma: no cover - faiss is a dependency
        return
    faiss.omp_set_num_threads(1)


def _secret(root: Path) -> bytes:
    """The cookie-signing key: 32 random bytes in ``<library>/web_secret`` (0600), made once."""
    import os

    path = root / "web_secret"
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb") as fh:
                fh.write(secrets.token_bytes(32))
        except FileExistsError:
            pass
    return path.read_bytes()


def page_lang(chosen: str | None, default: str) -> str:
    """The language of a browser's pages: the one it chose (its ``vp_lang`` cookie), else the server's."""
    return chosen if chosen in LANGUAGES else default


class LimitUploads:
    """ASGI middleware: a request body over the limit is refused before it is read (Content-Length)
    or as soon as it passes the limit (chunked), so a 2 GB upload is never spooled whole."""

    def __init__(self, app, limit: int, lang: str = "en"):
        self.app, self.limit, self.lang = app, limit, lang

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            from starlette.requests import HTTPConnection

            conn = HTTPConnection(scope)
            lang = page_lang(conn.cookies.get(LANG_COOKIE), self.lang)
            api = scope.get("path", "").startswith("/api/")
            whole = not api and conn.headers.get("hx-request") != "true"  # a plain form's POST: the browser shows a whole page
            return await _too_large(self.limit, api=api, lang=lang, whole_page=whole)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge()
            return message

        return await self.app(scope, limited, send)


#: on every response: no page in a frame (clickjacking), no content-type guessing, no referrer leaving the
#: server, and no plugin, foreign form target or base URL; scripts are the vendored ones and one inline
SECURITY_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", b"frame-ancestors 'none'; object-src 'none'; base-uri 'self'; form-action 'self'"),
]


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers") or []) + SECURITY_HEADERS
            await send(message)

        return await self.app(scope, receive, with_headers)


def too_large_message(limit: int) -> str:
    """The refusal of an upload over ``limit`` bytes, for a whole page (its text goes through the catalogue there)."""
    return (f"Refused: the upload is larger than the limit of {limit / 1024 ** 2:.0f} MB. Nothing was stored. Cut the recording to "
            "the part you need, or ask the administrator to raise `--max-upload-mb`.")


def _too_large(limit: int, api: bool = False, lang: str = "en", whole_page: bool = False):
    """The refusal of an oversized upload: JSON for the API, the query page's result box for htmx, else a whole
    page (refused before the request reaches the app, so without the menu: a link back instead)."""
    from starlette.responses import HTMLResponse, JSONResponse

    if api:
        return JSONResponse({"error": f"the upload is larger than the limit of {limit / 1024 ** 2:.0f} MB; nothing was stored"},
                            status_code=413)
    message = translate("Refused: the upload is larger than the limit of {mb} MB. Nothing was stored. Cut the recording to the part you "
                        "need, or ask the administrator to raise <code>--max-upload-mb</code>.", lang, mb=f"{limit / 1024 ** 2:.0f}")
    box = f'<p class="error" role="alert" data-testid="error-message">{message}</p>'
    if not whole_page:
        return HTMLResponse(box, status_code=413)
    title, back = translate("Upload too large", lang), translate("Back", lang)
    return HTMLResponse(f'<!doctype html><html lang="{HTML_LANG[lang]}"><head><meta charset="utf-8"><title>{title}</title>'
                        f'<link rel="stylesheet" href="/static/style.css"></head><body><main><section class="card narrow"><h1>{title}</h1>'
                        f'{box}<p><a href="javascript:history.back()">{back}</a> &middot; <a href="/">voiceprint</a></p></section></main>'
                        '</body></html>', status_code=413)


def create_app(settings: Settings | None = None, workbench: Workbench | None = None, close_on_shutdown: bool = False):
    """The FastAPI app for one library (``voiceprint serve``; tests pass ``Settings``).

    ``close_on_shutdown``: close the library when the server stops (``serve``: uvicorn re-raises
    SIGTERM/SIGINT after its shutdown, so code after ``uvicorn.run`` never runs)."""
    import contextlib

    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles
    from fastapi.templating import Jinja2Templates

    from . import routes

    settings = settings or Settings()
    wb = workbench or Workbench(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        if close_on_shutdown:
            wb.close()

    app = FastAPI(title="voiceprint workbench", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.wb = wb
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    from .. import i18n
    from ..evidence import template_filters

    templates.env.globals.update(htmx_file=HTMX_FILE, cytoscape_file=CYTOSCAPE_FILE, can=can, languages=i18n.NAMES)
    templates.env.filters["fmt"] = _fmt_number
    templates.env.filters.update(template_filters())
    i18n.install(templates.env)
    app.state.templates = templates
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    routes.install(app)
    app.add_middleware(LimitUploads, limit=settings.max_upload_bytes, lang=wb.settings.lang)
    app.add_middleware(SecurityHeaders)  # added last, so outermost: the 413 of LimitUploads carries them too
    if settings.trusted_proxies:  # the client address (login throttle, audit rows) from the proxy's header
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.trusted_proxies))
    return app


def can(user: dict | None, what: str) -> bool:
    return user is not None and user["role"] in PERMISSIONS[what]


def require(user: dict, what: str) -> None:
    if user["role"] not in PERMISSIONS[what]:
        raise Forbidden(what, user["role"])


def _fmt_number(value, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def signer(wb: Workbench, salt: str):
    from itsdangerous import URLSafeSerializer

    return URLSafeSerializer(wb.secret, salt=salt)


def unsign(wb: Workbench, value: str | None, salt: str) -> str | None:
    from itsdangerous import BadSignature

    if not value:
        return None
    try:
        return str(signer(wb, salt).loads(value))
    except BadSignature:
        return None


def tokens_equal(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


#: client addresses whose failed logins are remembered; beyond it, addresses with no recent failure are forgotten
IP_FAILURES_KEPT = 10_000


def throttle_news(wb: Workbench, ip: str) -> bool:
    """Whether a throttled address's refusal should be audited: once per address and five minutes, so
    that an attacker hammering the login page leaves a trace without writing a row per request."""
    now = time.time()
    if now - wb.throttle_noted.get(ip, 0.0) < 300:
        return False
    if len(wb.throttle_noted) > IP_FAILURES_KEPT:
        wb.throttle_noted = {k: t for k, t in wb.throttle_noted.items() if now - t < 300}
    wb.throttle_noted[ip] = now
    return True


def throttled(wb: Workbench, ip: str) -> bool:
    now = time.time()
    recent = [t for t in wb.ip_failures.get(ip, []) if now - t < 300]
    wb.ip_failures[ip] = recent
    if len(wb.ip_failures) > IP_FAILURES_KEPT:
        for other in [k for k, times in wb.ip_failures.items() if not times or now - times[-1] >= 300]:
            del wb.ip_failures[other]
    return len(recent) >= wb.settings.ip_failures


#: what a workbench user is told of the disk under the library: they can neither free space nor remount it. A request
#: that failed so kept nothing half-written (a partial upload is removed, a transaction rolled back); what it finished
#: before (one file of a form enrolled) stays, and sending the form again finds it ("already enrolled")
DISK_FULL = ("Stopped: no space left on the disk under the library. Nothing half-written was kept. Ask the administrator to free "
             "space, then send it again.")
DISK_READ_ONLY = ("Refused: the disk under the library is read-only. Nothing half-written was kept. Ask the administrator to make it "
                  "writable, then send it again.")
DISK_FAILED = ("Stopped: the library's files could not be written. Nothing half-written was kept. Ask the administrator to read the "
               "server log.")


def disk_refusal(err: Exception) -> str | None:
    """The line a workbench user is told of a storage failure (``errors.storage_failure``), else None. What failed,
    with the path, goes to the server log (one line, no traceback) for the administrator."""
    import errno
    import logging
    import sqlite3

    where = storage_failure(err)
    if where is None:
        return None
    logging.getLogger("voiceprint").warning("refused a request: %s (%s: %s)", where, type(err).__name__, err)
    code = getattr(err, "errno", None)
    text = str(err).lower()
    if code in (errno.ENOSPC, errno.EDQUOT) or (isinstance(err, sqlite3.Error) and sqlite_disk_full(err)):
        return DISK_FULL
    if code == errno.EROFS or (isinstance(err, sqlite3.Error) and ("readonly" in text or "read-only" in text)):
        return DISK_READ_ONLY
    return DISK_FAILED


def user_error(err: Exception) -> tuple[int, str]:
    """The status code and one line for an error a user can act on."""
    if isinstance(err, AudioError):
        return 422, f"Refused: {err} Nothing was stored."
    if isinstance(err, NotFound):
        return 404, str(err)
    if isinstance(err, (DataError, LibraryError)):
        return 400 if isinstance(err, DataError) else 409, str(err)
    if isinstance(err, VoiceprintError):
        return 400, str(err)
    if (refusal := disk_refusal(err)) is not None:
        return 503, refusal
    return 500, f"internal error ({type(err).__name__}) - the server log has the details"
