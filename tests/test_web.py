"""The workbench's routes through FastAPI's TestClient: login, roles, CSRF, uploads, the query page,
the evidence report, four-eyes approvals and the audit rows written under the logged-in user."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import audiogen
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("argon2")

from fastapi.testclient import TestClient  # noqa: E402

from voiceprint.library import Library  # noqa: E402
from voiceprint.store import verify_audit_chain  # noqa: E402
from voiceprint.web import accounts  # noqa: E402
from voiceprint.web.app import Settings, create_app  # noqa: E402

PASSWORD = "correct-horse-battery"
USERS = {"inv": "investigator", "tech": "technician", "sup": "supervisor", "sup2": "supervisor", "ana": "analyst"}
PAGES = ["/query", "/persons", "/persons/1", "/cases", "/cases/AJ-1", "/phones", "/phones/13800138000", "/enrol",
         "/approvals", "/links", "/leads", "/fused", "/audit", "/audit.csv"]
APIS = ["/api/session", "/api/persons", "/api/persons/1", "/api/cases", "/api/cases/AJ-1", "/api/phones", "/api/phones/13800138000",
        "/api/links", "/api/leads", "/api/fused", "/api/audit", "/api/pending"]


@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    d = tmp_path_factory.mktemp("web_voices")
    return {
        "a1": audiogen.speech_file(d / "zhang_interview.wav", seed=1, f0=110, seconds=5.0),
        "a2": audiogen.speech_file(d / "fraud_call_0815.flac", "flac", seed=2, f0=110, seconds=5.0),
        "b1": audiogen.speech_file(d / "li_interview.wav", seed=3, f0=210, seconds=5.0),
        "c1": audiogen.speech_file(d / "wang_sample.wav", seed=5, f0=160, seconds=5.0),
        "junk": _write(d / "not_audio.wav", b"RIFF\x00\x00\x00\x00WAVEthis is a text file pretending to be audio" * 20),
    }


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory, voices):
    root = tmp_path_factory.mktemp("web_lib") / "lib"
    with Library.create(root, operator="setup") as lib:
        lib.enrol(voices["a1"], person="Zhang San", category="prior_offender", phone="13800138000", case="AJ-1")
        lib.enrol(voices["b1"], person="Li Si", category="suspect", phone="13900139000")
        for name, role in USERS.items():
            accounts.add_user(lib.store, name, role, PASSWORD)
    leads = root.parent / "leads.json"
    leads.write_text(json.dumps([{"rank": 1, "number": "+8613800138000", "score": 0.93, "flagged": True,
                                  "reasons": ["calls 212 distinct numbers a day", "short calls"], "person": "Zhang San"}]))
    return root, leads


@pytest.fixture(scope="module")
def app(library):
    root, leads = library
    application = create_app(Settings(library=str(root), max_upload_bytes=3 * 1024 * 1024, leads=leads))
    yield application
    application.state.wb.close()


def client(app) -> TestClient:
    return TestClient(app, follow_redirects=False)


def found(pattern: str, text: str) -> str:
    """The first group of ``pattern`` in ``text`` (the test fails here if it is absent)."""
    match = re.search(pattern, text)
    assert match, pattern
    return match.group(1)


def csrf_of(html: str) -> str:
    return found(r'name="csrf_token" value="([^"]+)"', html)


def login(app, name: str, password: str = PASSWORD) -> tuple[TestClient, str]:
    c = client(app)
    form = c.get("/login")
    r = c.post("/login", data={"username": name, "password": password, "csrf_token": csrf_of(form.text), "next": "/persons"})
    assert r.status_code == 303, r.text
    return c, c.get("/api/session").json()["csrf_token"]


@contextlib.contextmanager
def four_eyes_on(wb):
    """Four-eyes enrolment on for the block, off again after it (the app is shared by the module's tests)."""
    wb.call_sync("setup", lambda lib: accounts.set_four_eyes(lib.store, True))
    try:
        yield
    finally:
        wb.call_sync("setup", lambda lib: accounts.set_four_eyes(lib.store, False))


def enrol_upload(client: TestClient, csrf: str, wav: Path, **form: str):
    """One recording enrolled through the workbench's form, as a technician submits it."""
    with open(wav, "rb") as fh:
        return client.post("/enrol", data={"csrf_token": csrf, **form}, files={"files": (wav.name, fh, "audio/wav")})


def uploads(root: Path) -> list[Path]:
    return sorted(p for p in (root / "uploads").rglob("*") if p.is_file()) if (root / "uploads").exists() else []


def test_without_a_session_pages_redirect_to_login_and_api_answers_401(app):
    c = client(app)
    for path in PAGES:
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    for path in APIS:
        assert c.get(path).status_code == 401, path
    assert c.post("/query", files={"files": ("x.wav", b"x")}).status_code == 303
    assert c.post("/api/query", files={"files": ("x.wav", b"x")}).status_code == 401
    assert c.get("/results/0123456789abcdef/report.pdf").status_code == 303
    assert c.get("/persons?q=张").headers["location"] == "/login?next=/persons%3Fq%3D%25E5%25BC%25A0"  # the search survives the login
    # a crafted link cannot put its own words on the login page
    assert "call 400" not in c.get("/login?error=Your%20account%20is%20locked%2C%20call%20400-123").text


def test_every_response_forbids_framing_and_sniffing(app):
    c = client(app)
    for r in (c.get("/login"), c.get("/persons"), c.get("/api/persons")):
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_login_sets_a_signed_httponly_samesite_strict_cookie(app):
    c = client(app)
    form = c.get("/login")
    assert 'name="username"' in form.text and 'name="password"' in form.text
    r = c.post("/login", data={"username": "inv", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
    cookie = r.headers["set-cookie"]
    assert "vp_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert c.get("/api/session").json() == {"user": "inv", "role": "investigator", "csrf_token": c.get("/api/session").json()["csrf_token"]}
    # a forged (unsigned) cookie is no session
    forged = client(app)
    forged.cookies.set("vp_session", "made-up")
    assert forged.get("/api/session").status_code == 401


def test_login_without_its_csrf_token_and_wrong_passwords_are_refused_then_throttled(app):
    c = client(app)
    assert c.post("/login", data={"username": "ana", "password": PASSWORD}).status_code == 403
    for _ in range(accounts.FREE_FAILURES):
        form = c.get("/login")
        r = c.post("/login", data={"username": "ana", "password": "wrong-password!", "csrf_token": csrf_of(form.text)})
        assert r.status_code == 401 and "wrong user name or password" in r.text
    form = c.get("/login")
    r = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
    assert r.status_code == 401 and "too many failed logins" in r.text
    wb = app.state.wb
    wb.call_sync("test", lambda lib: lib.store.db.execute("UPDATE users SET locked_until = 0, failed_logins = 0 WHERE name = 'ana'"))
    login(app, "ana")
    # a name that is no account locks the same way: the lock message cannot tell who has an account
    answers = []
    for _ in range(accounts.FREE_FAILURES + 1):
        form = c.get("/login")
        answers.append(c.post("/login", data={"username": "nobody_here", "password": "wrong-password!",
                                              "csrf_token": csrf_of(form.text)}).text)
    assert "too many failed logins" in answers[-1] and all("wrong user name" in a for a in answers[:-1])


def test_a_throttled_address_is_audited_once_not_per_request(app, monkeypatch):
    """Refusals of a throttled address wrote nothing: a brute-force run left no trace past the throttle."""
    monkeypatch.setattr(app.state.wb.settings, "ip_failures", 2)
    monkeypatch.setattr(app.state.wb, "ip_failures", {})
    c = client(app)
    codes = []
    for _ in range(5):
        form = c.get("/login")
        codes.append(c.post("/login", data={"username": "nobody_here", "password": "wrong-password!", "csrf_token": csrf_of(form.text)}).status_code)
    assert codes == [401, 401, 429, 429, 429]
    rows = app.state.wb.call_sync("test", lambda lib: lib.store.audit_rows(10, "login.throttled"))
    assert len(rows) == 1 and rows[0]["detail"]["client"] == "testclient" and rows[0]["detail"]["failures"] == 2


def test_a_failed_login_never_writes_what_was_typed_as_the_name_into_the_audit_trail(app):
    c = client(app)
    for typed in ("MyS3cret-Passw0rd", "admin"):  # a password typed into the name box, then a made-up name
        form = c.get("/login")
        r = c.post("/login", data={"username": typed, "password": "inv", "csrf_token": csrf_of(form.text)})
        assert r.status_code == 401
    rows = app.state.wb.call_sync("test", lambda lib: lib.store.audit_rows(5, "login.failed"))
    assert [r["operator"] for r in rows[:2]] == ["unknown", "unknown"]
    assert not any("MyS3cret" in str(r) for r in rows)


def test_investigator_query_shows_the_right_person_first_and_the_report_carries_the_evidence(app, library, voices):
    from pypdf import PdfReader

    c, csrf = login(app, "inv")
    page = c.get("/query").text
    assert 'type="file" name="files" multiple' in page and 'data-testid="query-submit"' in page
    with open(voices["a2"], "rb") as fh:
        r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("fraud_call_0815.flac", fh, "audio/flac")})
    assert r.status_code == 200, r.text
    first = re.search(r'<tr data-rank="1" data-person="([^"]+)"', r.text)
    assert first and first.group(1) == "Zhang San"
    rid = found(r'data-result-id="([0-9a-f]+)"', r.text)
    assert 'data-testid="report-pdf"' in r.text and 'data-testid="report-html"' in r.text
    body = c.get(f"/api/results/{rid}").json()
    sha, hit = body["files"][0]["sha256"], body["voices"][0]["hits"][0]
    lr_text = f"{hit['log10_lr']:.3f}"
    assert lr_text in r.text
    # the upload is kept content-addressed, 0600
    kept = [p for p in uploads(library[0]) if p.name == sha]
    assert kept and (kept[0].stat().st_mode & 0o777) == 0o600
    html = c.get(f"/results/{rid}/report.html")
    fingerprint = app.state.wb.call_sync("t", lambda lib: lib.store.get_meta("model_fingerprint"))
    assert html.status_code == 200 and sha in html.text and fingerprint in html.text and lr_text in html.text
    assert "Investigative lead" in html.text and "chain-head" in html.text
    pdf = c.get(f"/results/{rid}/report.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(pdf.content))
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in reader.pages))
    assert sha in text and fingerprint in text and lr_text in text
    assert f"page1of{len(reader.pages)}" in text
    # figure and audio for the investigator; audit rows under the logged-in user
    assert c.get(f"/results/{rid}/voice/0.png").content.startswith(b"\x89PNG")
    assert c.get(f"/audio/{sha}").content.startswith(b"RIFF")
    rows = app.state.wb.call_sync("test", lambda lib: lib.audit(limit=50))
    assert any(r["operator"] == "inv" and r["action"] == "query" for r in rows)
    assert any(r["operator"] == "inv" and r["action"] == "report" for r in rows)


def report_rows(app) -> list[dict]:
    """The audit trail's report rows, newest first."""
    return app.state.wb.call_sync("test", lambda lib: lib.audit(limit=1000, action="report"))


def test_the_report_form_takes_the_request_fields_and_refuses_or_escapes_hostile_ones(app, voices):
    """The workbench's report had no place for who asked for it (委托单位, 委托编号, 受理日期, case): the result's report form
    takes them, checked as the CLI checks them, behind the login and CSRF token; a field refused writes no report and no row."""
    import html as htmlmod
    from datetime import date, timedelta

    c, csrf = login(app, "inv")
    with open(voices["a2"], "rb") as fh:
        r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("fraud_call_0815.flac", fh, "audio/flac")})
    rid = found(r'data-result-id="([0-9a-f]+)"', r.text)
    form = found(rf'(<form method="post" action="/results/{rid}/report".*?</form>)', r.text.replace("\n", " "))
    assert f'name="csrf_token" value="{csrf}"' in form and 'data-testid="report-html"' in form and 'data-testid="report-pdf"' in form
    assert all(f'name="{name}"' in form for name in ("requested_by", "request_ref", "received", "case"))
    hostile = {"requested_by": "<script>alert(1)</script> 反诈中心", "request_ref": 'CD-1" onmouseover="alert(2)', "received": "2026-08-15",
               "case": "AJ-1"}
    r = c.post(f"/results/{rid}/report", data={"csrf_token": csrf, "fmt": "html", **hostile})
    assert r.status_code == 200 and "<script>alert(1)" not in r.text and 'onmouseover="alert' not in r.text
    assert 'data-testid="requested-by">&lt;script&gt;alert(1)&lt;/script&gt; 反诈中心</td>' in r.text
    assert 'data-testid="request-ref">CD-1&#34; onmouseover=&#34;alert(2)</td>' in r.text
    assert 'data-testid="received">2026-08-15</td>' in r.text and 'data-testid="case">AJ-1</td>' in r.text
    row = report_rows(app)[0]
    assert row["operator"] == "inv" and row["target"] == f"result:{rid}"
    assert {k: row["detail"][k] for k in hostile} == hostile
    # a case number typed full-width in lower case finds case AJ-1, and the report and its row carry the library's number
    r = c.post(f"/results/{rid}/report", data={"csrf_token": csrf, "fmt": "html", "case": "ａｊ－１"})
    assert r.status_code == 200 and 'data-testid="case">AJ-1' in r.text and "ａｊ" not in r.text
    assert report_rows(app)[0]["detail"]["case"] == "AJ-1"
    pdf = c.post(f"/results/{rid}/report", data={"csrf_token": csrf, "fmt": "pdf", "requested_by": "Chengdu PSB"})
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert report_rows(app)[0]["detail"]["requested_by"] == "Chengdu PSB" and report_rows(app)[0]["detail"]["received"] is None
    # refused, each with one line that names the field and what to type
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    refused = [({"requested_by": "x" * 10_000}, 422, "Field 'Requested by': too long (10000 characters) - type at most 200 characters"),
               ({"request_ref": "CD-1\x00"}, 422, "Field 'Request reference': holds a control or invisible character (U+0000) - type plain text on one line"),
               ({"requested_by": "police\u202eetiurces"}, 422, "Field 'Requested by': holds a control or invisible character (U+202E)"),
               ({"received": "2026-13-01"}, 422, "Field 'Items received': '2026-13-01' is not a date - type the day the items were received as YYYY-MM-DD"),
               ({"received": tomorrow}, 422, f"Field 'Items received': {tomorrow} is in the future"),
               ({"case": "AJ-404"}, 404, "no case 'AJ-404' - add it first")]
    before = len(report_rows(app))
    for fields, status, message in refused:
        r = c.post(f"/results/{rid}/report", data={"csrf_token": csrf, "fmt": "pdf", **fields})
        assert r.status_code == status and message in htmlmod.unescape(r.text), (fields, r.text[-600:])
        assert "x" * 100 not in r.text
    assert c.post(f"/results/{rid}/report", data={"fmt": "html", "requested_by": "A"}).status_code == 403  # no CSRF token
    assert client(app).post(f"/results/{rid}/report", data={"csrf_token": csrf}).status_code == 303  # no session: the login page
    tech, tech_csrf = login(app, "tech")
    assert tech.post(f"/results/{rid}/report", data={"csrf_token": tech_csrf}).status_code == 403  # a technician opens no report
    assert len(report_rows(app)) == before


def test_api_query_returns_what_the_cli_json_prints(app, voices):
    c, csrf = login(app, "inv")
    with open(voices["b1"], "rb") as fh:
        r = c.post("/api/query", headers={"X-CSRF-Token": csrf}, files={"files": ("li.wav", fh, "audio/wav")})
    assert r.status_code == 200
    [voice] = r.json()
    assert voice["hits"][0]["person"]["name"] == "Li Si" and voice["kind"] == "investigative lead" and r.headers["X-Result-Id"]
    assert r.headers["X-Refused-Files"] == "0"
    # a name past the file system's 255 bytes (90 Chinese characters), beside a file that is no audio
    with open(voices["b1"], "rb") as fh, open(voices["junk"], "rb") as junk:
        r = c.post("/api/query", headers={"X-CSRF-Token": csrf},
                   files=[("files", ("诈骗电话录音" * 15 + ".wav", fh, "audio/wav")), ("files", ("bad.wav", junk, "audio/wav"))])
    assert r.status_code == 200 and r.json()[0]["hits"][0]["person"]["name"] == "Li Si"
    assert r.headers["X-Refused-Files"] == "1"
    errors = c.get(f"/api/results/{r.headers['X-Result-Id']}").json()["errors"]
    assert len(errors) == 1 and "bad.wav" in str(errors[0])


def test_a_form_without_its_csrf_token_is_refused_and_nothing_is_stored(app, library, voices):
    c, _csrf = login(app, "inv")
    before = uploads(library[0])
    with open(voices["c1"], "rb") as fh:
        r = c.post("/query", files={"files": ("wang.wav", fh, "audio/wav")})
    assert r.status_code == 403 and "CSRF" in r.text
    with open(voices["c1"], "rb") as fh:
        r = c.post("/query", data={"csrf_token": "forged"}, files={"files": ("wang.wav", fh, "audio/wav")})
    assert r.status_code == 403
    assert uploads(library[0]) == before


def test_non_audio_and_oversized_uploads_are_refused_with_a_clear_message_and_nothing_stored(app, library, voices):
    c, csrf = login(app, "inv")
    before = uploads(library[0])
    with open(voices["junk"], "rb") as fh:
        r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("call.wav", fh, "audio/wav")})
    assert r.status_code == 422 and "Refused" in r.text and "call.wav" in r.text and "Nothing was stored" in r.text
    big = b"\0" * (4 * 1024 * 1024)
    r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("huge.wav", big, "audio/wav")})
    assert r.status_code == 413 and "larger than the limit" in r.text and "Nothing was stored" in r.text
    r = c.post("/api/query", headers={"X-CSRF-Token": csrf}, files={"files": ("huge.wav", big, "audio/wav")})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]  # an API client gets JSON
    # a client that announces 2 GB is refused before a byte of the body is read
    r = c.post("/query", content=b"x", headers={"Content-Length": str(2 * 1024 ** 3), "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413
    assert uploads(library[0]) == before
    assert not list((library[0] / "uploads" / ".incoming").iterdir())
    # a plain form (no htmx) gets a whole page with the menu, not a bare line
    r = c.post("/case-recordings", data={"csrf_token": csrf, "case": "AJ-1"}, files={"files": ("huge.wav", big, "audio/wav")})
    assert r.status_code == 413 and '<html lang="en">' in r.text and 'href="/"' in r.text and "larger than the limit" in r.text
    r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("huge.wav", big, "audio/wav")}, headers={"HX-Request": "true"})
    assert r.status_code == 413 and r.text.startswith('<p class="error"')  # the query page's result box


def test_pages_and_logins_answer_while_a_long_audio_job_runs(app):
    """Every library call ran on one thread, so one investigator's two-hour recording (or a technician's manifest)
    held up every page and every login of the centre. Audio work now has a lane of its own."""
    wb = app.state.wb
    started, release = threading.Event(), threading.Event()

    def long_job(lib):
        started.set()
        release.wait(60)

    job = wb.audio.submit("t", long_job, (), {})
    try:
        assert started.wait(30)
        answers: dict = {}

        def browse():
            c, _csrf = login(app, "sup")  # a login, then a page, then a page's API
            answers["persons"] = c.get("/persons").status_code
            answers["api"] = c.get("/api/persons").status_code

        worker = threading.Thread(target=browse)
        worker.start()
        worker.join(60)  # on one shared lane this would wait for the job, which waits for the release below
        assert answers == {"persons": 200, "api": 200} and not job.done()
    finally:
        release.set()
    job.result(30)


def test_unknown_pages_and_methods_get_a_page_not_bare_json(app):
    c, _csrf = login(app, "inv")
    for method, path, status in (("get", "/nothere", 404), ("get", "/logout", 405), ("get", "/results/x/report.docx", 404)):
        r = getattr(c, method)(path)
        assert r.status_code == status and "<nav>" in r.text and 'data-testid="error-message"' in r.text, (path, r.text[:200])
        assert "detail" not in r.text
    r = c.get("/api/nothere")
    assert r.status_code == 404 and r.json() == {"error": "no such page - use the workbench's menu and links"}


def test_roles_are_enforced(app):
    tech, csrf = login(app, "tech")
    assert tech.get("/query").status_code == 403
    assert tech.get("/approvals").status_code == 403
    r = tech.post("/approvals", data={"csrf_token": csrf, "voiceprint": "1", "decision": "approve"})
    assert r.status_code == 403 and "cannot approve" in r.text
    assert tech.get("/audit").status_code == 403 and tech.get("/api/audit").status_code == 403
    assert tech.get("/enrol").status_code == 200 and tech.get("/persons").status_code == 200
    inv, _ = login(app, "inv")
    assert inv.get("/audit").status_code == 403 and inv.get("/enrol").status_code == 403
    ana, _ = login(app, "ana")
    assert ana.get("/leads").status_code == 200 and ana.get("/links").status_code == 403


def test_four_eyes_enrolment_stays_pending_until_another_supervisor_approves(app, voices):
    wb = app.state.wb
    with four_eyes_on(wb):
        tech, csrf = login(app, "tech")
        r = enrol_upload(tech, csrf, voices["c1"], person="Wang Wu", category="suspect", phone="13700137000")
        assert r.status_code == 200 and 'data-status="pending approval"' in r.text
        vid = wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT id FROM voiceprints WHERE pending = 1").fetchone()[0])
        inv, icsrf = login(app, "inv")
        with open(voices["c1"], "rb") as fh:
            hits = inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files={"files": ("q.wav", fh)}).json()[0]["hits"]
        assert "Wang Wu" not in [h["person"]["name"] for h in hits]  # stored, not searchable
        sup, scsrf = login(app, "sup")
        assert f'data-voiceprint="{vid}"' in sup.get("/approvals").text
        r = sup.post("/approvals", data={"voiceprint": str(vid), "decision": "approve"})
        assert r.status_code == 403  # no CSRF token
        r = sup.post("/approvals", data={"csrf_token": scsrf, "voiceprint": str(vid), "decision": "approve"})
        assert r.status_code == 303
        with open(voices["c1"], "rb") as fh:
            hits = inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files={"files": ("q.wav", fh)}).json()[0]["hits"]
        assert hits[0]["person"]["name"] == "Wang Wu"
        rows = wb.call_sync("t", lambda lib: lib.audit(limit=200))
        assert any(r["action"] == "enrol.approve" and r["operator"] == "sup" for r in rows)
        assert any(r["action"] == "enrol" and r["operator"] == "tech" for r in rows)


def test_a_supervisor_cannot_approve_their_own_enrolment(app, voices, tmp_path):
    wb = app.state.wb
    with four_eyes_on(wb):
        sup, csrf = login(app, "sup2")
        wav = audiogen.speech_file(tmp_path / "zhao.wav", seed=9, f0=140, seconds=5.0)
        r = enrol_upload(sup, csrf, wav, person="Zhao Liu")
        assert 'data-status="pending approval"' in r.text
        vid = wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT id FROM voiceprints WHERE pending = 1").fetchone()[0])
        r = sup.post("/approvals", data={"csrf_token": csrf, "voiceprint": str(vid), "decision": "approve"})
        assert r.status_code == 409 and "another supervisor" in r.text
        [tried] = wb.call_sync("t", lambda lib: lib.store.audit_rows(5, "enrol.review_refused"))
        assert tried["operator"] == "sup2" and tried["target"] == f"voiceprint:{vid}" and tried["detail"]["decision"] == "approve"
        other, ocsrf = login(app, "sup")
        assert other.post("/approvals", data={"csrf_token": ocsrf, "voiceprint": str(vid), "decision": "reject"}).status_code == 303
        assert wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT COUNT(*) FROM voiceprints WHERE id = ?", (vid,)).fetchone()[0]) == 0


def test_a_number_known_only_as_a_cases_calling_number_is_found_and_shows_its_calls(app):
    """The CLI's `phone show` found the calls a number made to case victims; the workbench said "no phone"."""
    from voiceprint.store import add_case_call

    wb = app.state.wb

    def add(lib):
        with lib.store.transaction():
            add_case_call(lib.store, "AJ-1", "+8613912345678", "2026-03-01 10:00", "+8613300000001")
    wb.call_sync("t", add)
    c, _ = login(app, "inv")
    found = c.get("/phones?q=12345")
    assert found.status_code == 200 and 'href="/phones/+8613912345678"' in found.text
    page = c.get("/phones/13912345678")
    assert page.status_code == 200 and "2026-03-01 10:00" in page.text and "+8613300000001" in page.text
    assert 'href="/cases/AJ-1"' in page.text and "no registered person in the library" in page.text
    assert c.get("/phones/13900000000").status_code == 404


def test_browse_pages_follow_the_reverse_strike(app):
    c, _ = login(app, "inv")
    persons = c.get("/persons?q=Zhang")
    assert persons.status_code == 200 and "Zhang San" in persons.text and "Li Si" not in persons.text
    phone = c.get("/phones/13800138000")
    assert phone.status_code == 200 and 'href="/persons/1"' in phone.text and 'href="/cases/AJ-1"' in phone.text
    case = c.get("/cases/AJ-1")
    assert case.status_code == 200 and "Zhang San" in case.text
    assert c.get("/api/persons/1").json()["person"]["name"] == "Zhang San"
    assert c.get("/persons/999").status_code == 404
    leads = c.get("/leads")
    assert leads.status_code == 200 and "calls 212 distinct numbers a day" in leads.text and 'href="/persons/1"' in leads.text
    assert c.get("/links").status_code == 200
    r = c.post("/links/999/confirm", data={"csrf_token": c.get("/api/session").json()["csrf_token"]})
    assert r.status_code in (404, 409) and "999" in r.text  # a decision on a cluster that does not exist: one line, nothing changed
    assert c.post("/links/999/confirm", data={}).status_code == 403


def test_a_merge_decision_names_the_other_cluster_or_is_refused_with_a_reason(app):
    c, _ = login(app, "inv")
    token = c.get("/api/session").json()["csrf_token"]
    for other in ("", "abc", "-3", "²", "9" * 5000):
        r = c.post("/links/999/merge", data={"csrf_token": token, "other": other})
        assert r.status_code == 422 and "cluster to merge" in r.text, other
    r = c.post("/links/999/merge", data={"csrf_token": token, "other": "998"})
    assert r.status_code in (404, 409) and "999" in r.text
    for path, other in (("/links/99999999999999999999999/merge", "2"), ("/links/99999999999999999999999/confirm", ""),
                        ("/links/2/merge", "999999999999999999")):
        r = c.post(path, data={"csrf_token": token, "other": other})  # larger than any id SQLite holds: no such record
        assert r.status_code == 404 and "larger than any id" in r.text or "no voice cluster" in r.text, path
    assert c.get("/api/session").status_code == 200  # the connection and the server carry on
    assert c.post("/links/999/merge", data={"other": "998"}).status_code == 403


def test_supervisor_reads_filters_and_exports_the_audit_trail(app):
    login(app, "inv")  # the investigator's login is in the trail whichever tests ran before
    c, _ = login(app, "sup")
    page = c.get("/audit?action=login")
    assert page.status_code == 200 and "Chain verified" in page.text
    import re

    shown = re.search(r"Chain verified: (\d+) rows, head row (\d+)", page.text)
    assert shown is not None
    rows, head = map(int, shown.groups())
    assert head == rows  # the head of the rows verified, not this view's own audit row written after them
    data = c.get("/api/audit?action=query").json()
    assert data["chain"]["ok"] and all(r["action"].startswith("query") for r in data["rows"])
    csv_text = c.get("/audit.csv?operator=inv").text
    assert csv_text.startswith("id,time,operator,action") and ",inv," in csv_text
    assert app.state.wb.call_sync("t", lambda lib: verify_audit_chain(lib.store))["ok"]


def test_logout_and_idle_timeout_end_the_session(library):
    root, _ = library
    application = create_app(Settings(library=str(root), idle_timeout_s=0.0))
    try:
        c = client(application)
        form = c.get("/login")
        c.post("/login", data={"username": "inv", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
        import time

        time.sleep(0.05)
        assert c.get("/persons").status_code == 303  # idle longer than the timeout
    finally:
        application.state.wb.close()
    # logout
    app2 = create_app(Settings(library=str(root)))
    try:
        c, csrf = login(app2, "inv")
        assert c.post("/logout", data={"csrf_token": csrf}).status_code == 303
        assert c.get("/api/session").status_code == 401
    finally:
        app2.state.wb.close()


def test_cli_report_from_a_file_and_by_result_id(library, voices, tmp_path, capsys):
    from pypdf import PdfReader

    from voiceprint.cli import run

    root = str(library[0])
    out = tmp_path / "lead.pdf"
    assert run(["--operator", "examiner1", "report", "--query", str(voices["a2"]), "-o", str(out), "--library", root]) == 0
    rid = found(r"result ([0-9a-f]{16})", capsys.readouterr().out)
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(out).pages))
    assert "Investigativelead" in text and "examiner1" in text and "ZhangSan" in text
    html = tmp_path / "again.html"
    assert run(["report", rid, "-o", str(html), "--library", root]) == 0
    assert "fraud_call_0815.flac" in html.read_text(encoding="utf-8")
    assert run(["report", "--verify", str(voices["a1"]), "--verify", str(voices["a2"]), "-o", str(tmp_path / "v.html"), "--library", root]) == 0
    report = (tmp_path / "v.html").read_text(encoding="utf-8")
    assert "Evaluative comparison" in report and "channel pair; the mean of the log LRs with either recording as the reference" in report
    with Library.open(library[0]) as lib:
        verdict = lib.verify(voices["a1"], voices["a2"])
    assert verdict["at_bound"] == "upper"  # these synthetic voices sit at the bound: shown as "at least"
    assert f"≥ {verdict['log10_lr']:.3f}" in report
    assert "The findings are at least" in report and "times more probable" in report
    assert run(["report", "0000000000000000", "--library", root]) == 7


def test_report_pdf_draws_chinese_with_the_cjk_font_make_install_brings():
    import subprocess

    from pypdf import PdfReader

    from voiceprint.evidence import REPORT_FONTS, render_pdf

    fonts = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout
    if not fonts.strip():
        pytest.skip("NO CJK FONT INSTALLED - run `make install` as root (fonts-wqy-zenhei); PDF reports would show boxes for Chinese")
    pdf = render_pdf(f'<html><body style="font-family: {REPORT_FONTS}">嫌疑人 张三, 案件 AJ2026-0815</body></html>')
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert "张三" in page.extract_text()
    used = {str(f["/BaseFont"]) for f in page["/Resources"]["/Font"].values()}  # type: ignore[index]
    assert any("WenQuanYi" in f or "CJK" in f for f in used), used


def test_a_case_number_with_a_slash_opens(app):
    app.state.wb.call_sync("test", lambda lib: lib.add_case("AJ2026/0815", title="退款诈骗"))
    c, _csrf = login(app, "inv")
    assert 'href="/cases/AJ2026/0815"' in c.get("/cases").text
    for path in ("/cases/AJ2026/0815", "/api/cases/AJ2026%2F0815"):
        r = c.get(path)
        assert r.status_code == 200 and "退款诈骗" in r.text, path


def test_the_reports_chain_of_custody_finds_cli_queries_and_case_filings(library, voices, tmp_path):
    """CLI rows name a recording by its whole SHA-256, workbench rows by 16 hex: the report must find both."""
    from voiceprint.audio import load_recording
    from voiceprint.store.casefile import audit_touching

    root = library[0]
    sha = load_recording(voices["a2"]).sha256
    with Library.open(root, operator="examiner1") as lib:
        lib.query(voices["a2"], top=1)
        lib.links.add_recordings("AJ-CUSTODY", [voices["a2"]])
        actions = [r["action"] for r in audit_touching(lib.store, sha[:16])]
    assert "query" in actions and "case.add_recording" in actions


def test_a_technician_enrols_several_files_with_a_manifest(app, library, voices, tmp_path):
    """The manifest form failed with a 500 for every upload and left the files in uploads/.incoming."""
    root = library[0]
    a = audiogen.speech_file(tmp_path / "sun_1.wav", seed=21, f0=130, seconds=5.0)
    b = audiogen.speech_file(tmp_path / "zhou_1.wav", seed=23, f0=190, seconds=5.0)
    manifest = "path,person,category,phone\nsun_1.wav,Sun Qi,suspect,13600136000\nzhou_1.wav,Zhou Ba,suspect,\n"
    tech, csrf = login(app, "tech")
    with open(a, "rb") as fa, open(b, "rb") as fb:
        r = tech.post("/enrol", data={"csrf_token": csrf},
                      files=[("files", ("sun_1.wav", fa, "audio/wav")), ("files", ("zhou_1.wav", fb, "audio/wav")),
                             ("manifest", ("m.csv", manifest.encode(), "text/csv"))])
    assert r.status_code == 200 and r.text.count('data-status="enrolled"') == 2, r.text[-2000:]
    persons = app.state.wb.call_sync("t", lambda lib: {p["name"] for p in lib.persons()})
    assert {"Sun Qi", "Zhou Ba"} <= persons
    assert not [p for p in uploads(root) if ".incoming" in p.parts]


def test_erasing_a_person_erases_their_kept_upload_and_a_rejected_sample_leaves_none(app, library, voices, tmp_path):
    """Deleted persons' uploads stayed on disk and playable at /audio/<sha>; so did rejected samples."""
    import hashlib

    root = library[0]
    wb = app.state.wb
    tech, csrf = login(app, "tech")
    wav = audiogen.speech_file(tmp_path / "erase_me.wav", seed=31, f0=150, seconds=5.0)
    sha = hashlib.sha256(wav.read_bytes()).hexdigest()
    r = enrol_upload(tech, csrf, wav, person="Erase Me")
    assert 'data-status="enrolled"' in r.text and sha in [p.name for p in uploads(root)]
    inv, icsrf = login(app, "inv")
    assert inv.get(f"/audio/{sha}").status_code == 200
    with open(wav, "rb") as fh:  # an investigator's saved result names the person, with a warning naming them too
        inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files={"files": ("erase_me.wav", fh)})
    named = "SELECT count(*) FROM results WHERE body LIKE '%Erase Me%'"
    assert wb.call_sync("t", lambda lib: lib.store.db.execute(named).fetchone()[0]) >= 1
    result = wb.call_sync("sup", lambda lib: lib.delete_person("Erase Me"))
    assert result["uploads_erased"] == [sha]
    assert wb.call_sync("t", lambda lib: lib.store.db.execute(named).fetchone()[0]) == 0  # redacted, figures kept
    assert sha not in [p.name for p in uploads(root)] and inv.get(f"/audio/{sha}").status_code == 404
    assert wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT count(*) FROM uploads WHERE sha256 = ?", (sha,)).fetchone()[0]) == 0

    with four_eyes_on(wb):
        wav2 = audiogen.speech_file(tmp_path / "reject_me.wav", seed=33, f0=170, seconds=5.0)
        sha2 = hashlib.sha256(wav2.read_bytes()).hexdigest()
        r = enrol_upload(tech, csrf, wav2, person="Reject Me")
        assert 'data-status="pending approval"' in r.text and sha2 in [p.name for p in uploads(root)]
        vid = wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT id FROM voiceprints WHERE pending = 1").fetchone()[0])
        wb.call_sync("sup", lambda lib: accounts.review(lib, [vid], "sup", approve=False))
        assert sha2 not in [p.name for p in uploads(root)]


def hold_upload_elsewhere(root: Path) -> tuple[subprocess.Popen, Path]:
    """An upload in flight in another running server: a process that holds its incoming folder (and sleeps)."""
    code = ("import sys, time\nfrom voiceprint import incoming\nfolder = incoming.hold_new(sys.argv[1])\n"
            "(folder / 'call.wav').write_bytes(b'RIFF' * 1000)\nprint(folder, flush=True)\ntime.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(root)], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    assert proc.stdout is not None
    return proc, Path(proc.stdout.readline().strip())


def incoming_folders(root: Path) -> list[Path]:
    folder = root / "uploads" / ".incoming"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_the_workbench_clears_uploads_no_running_server_holds_and_keeps_those_in_flight(library, tmp_path):
    """Only folders older than an hour went at start: a server killed and restarted within the hour kept them all."""
    root, leads = library
    stale = root / "uploads" / ".incoming" / "deadbeefdeadbeef"
    stale.mkdir(parents=True, exist_ok=True)
    (stale / "call.wav").write_bytes(b"RIFF....")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    killed = root / "uploads" / ".incoming" / "0123456789abcdef"  # a server killed a second ago was receiving it
    killed.mkdir()
    (killed / "call.wav").write_bytes(b"RIFF....")
    (root / "uploads" / ".incoming" / "manifest-0badf00d.csv").write_text("path,person\n")  # an older version's stray manifest
    proc, live = hold_upload_elsewhere(root)  # another server's request, still running
    try:
        application = create_app(Settings(library=str(root), leads=leads))
        try:
            assert incoming_folders(root) == [live] and (live / "call.wav").exists()
        finally:
            application.state.wb.close()
    finally:
        proc.kill()
        proc.wait()
    from voiceprint import incoming

    assert incoming.sweep(root) == 1 and incoming_folders(root) == []  # its server gone, it goes too


def test_uploads_a_killed_server_never_acknowledged_go_at_restart_and_with_an_erasure(voices, tmp_path):
    """QA: 8 files uploaded through the enrol form, `serve` killed -9 while enrolling them: all 8 stayed in
    uploads/.incoming after a restart, and after `person delete` of the person speaking in them."""
    import httpx

    root = tmp_path / "lib"
    with Library.create(root, operator="setup") as lib:
        accounts.add_user(lib.store, "tech", "technician", PASSWORD)
    files = [audiogen.speech_file(tmp_path / f"victim_{k}.wav", seed=40 + k, f0=120, seconds=4.0) for k in range(8)]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "voiceprint.cli", "serve", "--library", str(root), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent)))
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                web = httpx.Client(base_url=base, timeout=120)
                form = web.get("/login")
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, "voiceprint serve did not start"
                time.sleep(0.3)
        web.post("/login", data={"username": "tech", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
        csrf = web.get("/api/session").json()["csrf_token"]
        body = [("files", (f.name, f.read_bytes(), "audio/wav")) for f in files]
        sending = threading.Thread(target=_post_quietly, args=(web, "/enrol", {"csrf_token": csrf, "person": "Victim Voice"}, body),
                                   daemon=True)
        sending.start()
        while len([f for f in incoming_folders(root) if any(f.iterdir())]) < 8:  # all received; enrolment under way
            assert server.poll() is None and time.monotonic() < deadline + 60, "the upload never arrived"
            time.sleep(0.01)
        server.kill()  # kill -9
        server.wait()
        sending.join(60)
    finally:
        if server.poll() is None:
            server.kill()
    assert len(incoming_folders(root)) == 8  # what the killed server left (the recordings of its request)

    with Library.open(root, operator="examiner") as lib:  # the same files enrolled for a person, who is then erased
        lib.enrol(files[0], person="Victim Voice")
        result = lib.delete_person("Victim Voice")
    assert incoming_folders(root) == [] and result["incoming"] == 8
    assert not [p for p in (root / "uploads").rglob("*") if p.is_file()]


def _post_quietly(web, path: str, data: dict, files: list) -> None:
    """A POST whose server is killed under it (the connection breaks: that is the point)."""
    import httpx

    with contextlib.suppress(httpx.TransportError):
        web.post(path, data=data, files=files)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _FullDisk:
    """``open`` for views.receive on a disk that fills up: the first ``whole`` uploads are written, the next stops part-way
    with ENOSPC (as on a 3 MB tmpfs), its partial file on disk."""

    def __init__(self, whole: int = 0):
        self.whole = whole

    def __call__(self, file, mode="r", *args, **kwargs):
        import builtins

        fh = builtins.open(file, mode, *args, **kwargs)
        if mode != "wb":
            return fh
        if self.whole > 0:
            self.whole -= 1
            return fh
        return _Filling(fh)


class _Filling:
    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def write(self, block: bytes) -> None:
        import errno

        self.fh.write(block[:4096])
        self.fh.flush()
        raise OSError(errno.ENOSPC, "No space left on device")


FULL_LINE = "Stopped: no space left on the disk under the library. Nothing half-written was kept. Ask the administrator to free space"


def error_lines(html: str) -> list[str]:
    return re.findall(r'<p class="error" role="alert"[^>]*>(.*?)</p>', html, re.S)


def test_a_disk_that_fills_up_during_an_upload_is_one_line_503_and_leaves_nothing(app, library, voices, monkeypatch):
    """A full disk in views.receive gave a bare 500 and a traceback, and left the partial file in uploads/.incoming."""
    from voiceprint.web import views

    root = library[0]
    before = uploads(root)
    tech, tcsrf = login(app, "tech")
    inv, icsrf = login(app, "inv")

    def two() -> list:
        return [("files", ("one.wav", voices["c1"].read_bytes(), "audio/wav")), ("files", ("two.wav", voices["a2"].read_bytes(), "audio/wav"))]

    answers = {}
    monkeypatch.setattr(views, "open", _FullDisk(whole=1), raising=False)  # the second upload of each form fills the disk
    answers["enrol"] = tech.post("/enrol", data={"csrf_token": tcsrf, "person": "Full Disk"}, files=two())
    monkeypatch.setattr(views, "open", _FullDisk(whole=1), raising=False)
    answers["case"] = inv.post("/case-recordings", data={"csrf_token": icsrf, "case_number": "AJ-1"}, files=two())
    monkeypatch.setattr(views, "open", _FullDisk(), raising=False)
    answers["query"] = inv.post("/query", data={"csrf_token": icsrf}, files=two(), headers={"HX-Request": "true"})
    monkeypatch.setattr(views, "open", _FullDisk(), raising=False)
    answers["page"] = inv.post("/query", data={"csrf_token": icsrf}, files=two())
    monkeypatch.setattr(views, "open", _FullDisk(), raising=False)
    api = inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files=two())
    for what, r in answers.items():
        assert r.status_code == 503, what
        lines = error_lines(r.text)
        assert len(lines) == 1 and lines[0].startswith(FULL_LINE), (what, lines)
        assert "Traceback" not in r.text and ".incoming" not in r.text
    assert api.status_code == 503 and api.json()["error"].startswith(FULL_LINE)
    assert uploads(root) == before and incoming_folders(root) == []  # no partial file, no finished upload of the form
    assert app.state.wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT count(*) FROM persons WHERE name = 'Full Disk'").fetchone()[0]) == 0
    monkeypatch.setattr(views, "open", _FullDisk(), raising=False)
    tech.cookies.set("vp_lang", "zh")
    r = tech.post("/enrol", data={"csrf_token": tcsrf, "person": "Full Disk"}, files=two())
    assert r.status_code == 503 and error_lines(r.text) == ["已中止：声纹库所在磁盘空间已满。未保留任何写了一半的内容。请管理员释放空间后重新提交。"]


def test_a_database_that_fills_up_is_one_line_503_and_leaves_no_recording_behind(app, library, voices, monkeypatch):
    """SQLite's "database or disk is full" at an enrolment's commit gave a bare 500 (and a traceback in the log)."""
    import sqlite3

    from voiceprint import enrolment
    from voiceprint.store import accounts as upload_rows

    def full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    root = library[0]
    before = uploads(root)
    tech, csrf = login(app, "tech")
    with monkeypatch.context() as m:
        m.setattr(enrolment, "commit", full)
        r = enrol_upload(tech, csrf, voices["c1"], person="Full Database")
    assert r.status_code == 503 and [line[: len(FULL_LINE)] for line in error_lines(r.text)] == [FULL_LINE]
    inv, icsrf = login(app, "inv")
    with monkeypatch.context() as m:  # a query whose recording cannot be recorded as kept: the moved copy goes again
        m.setattr(upload_rows, "insert_upload", full)
        with open(voices["c1"], "rb") as fh:
            r = inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files={"files": ("wang.wav", fh, "audio/wav")})
    assert r.status_code == 503 and r.json()["error"].startswith(FULL_LINE)
    with monkeypatch.context() as m:  # any other page that writes (a login's session row) says the same
        m.setattr(accounts, "create_session", full)
        c = client(app)
        form = c.get("/login")
        r = c.post("/login", data={"username": "ana", "password": PASSWORD, "csrf_token": csrf_of(form.text)})
    assert r.status_code == 503 and FULL_LINE in r.text
    assert uploads(root) == before and incoming_folders(root) == []
    assert app.state.wb.call_sync("t", lambda lib: lib.store.db.execute("SELECT count(*) FROM persons WHERE name = 'Full Database'").fetchone()[0]) == 0


def test_after_library_reembed_the_running_workbench_queries_and_enrols_with_the_new_model(voices, tmp_path):
    """`voiceprint library reembed` while serve ran: every query and enrolment was refused, advising to re-enrol into a
    new library (the workbench still held the old model); restarting serve was the only way out."""
    from voiceprint.cli import run

    old, new = "ecapa-voxceleb", "campplus-zh-en"
    root = tmp_path / "lib"
    with Library.create(root, model=old, operator="setup") as lib:
        lib.enrol(voices["a1"], person="Zhang San", category="suspect")
        lib.enrol(voices["b1"], person="Li Si", category="suspect")
        for name in ("inv", "tech"):
            accounts.add_user(lib.store, name, USERS[name], PASSWORD)
    application = create_app(Settings(library=str(root)))
    try:
        inv, icsrf = login(application, "inv")

        def best() -> str:
            with open(voices["a2"], "rb") as fh:
                r = inv.post("/api/query", headers={"X-CSRF-Token": icsrf}, files={"files": ("call.flac", fh, "audio/flac")})
            assert r.status_code == 200, r.text
            return str(r.json()[0]["hits"][0]["person"]["name"])

        assert best() == "Zhang San"
        assert run(["library", "reembed", "--model", new, "--audio", str(voices["a1"].parent), "--library", str(root)]) == 0
        assert best() == "Zhang San" and application.state.wb.lib.model == new
        tech, tcsrf = login(application, "tech")
        r = enrol_upload(tech, tcsrf, voices["c1"], person="Wang Wu")
        assert r.status_code == 200 and 'data-status="enrolled"' in r.text, error_lines(r.text)
        models = application.state.wb.call_sync("t", lambda lib: {row[0] for row in lib.store.db.execute("SELECT model FROM voiceprints")})
        assert models == {new}
    finally:
        application.state.wb.close()


def test_a_verify_report_of_two_party_recordings_shows_every_comparison(library, tmp_path):
    """The report kept the best-scoring voice pair silently: a selection the calibration does not account for."""
    import numpy as np

    import voiceprint
    from voiceprint.audio import load_recording
    from voiceprint.cli import run

    demo = Path(voiceprint.__file__).parent / "demo_data"
    parts = []
    for speaker in ("so762_0024", "so762_0120", "so762_0024", "so762_0120"):
        for name in ("interview_1.flac", "interview_2.flac"):
            parts += [load_recording(demo / speaker / name).channels[0].samples, np.zeros(4000, np.float32)]
    call = audiogen.write_audio(tmp_path / "two_party.wav", np.concatenate(parts), 16000)
    out = tmp_path / "v.html"
    assert run(["report", "--verify", str(call), "--verify", str(demo / "so762_0024" / "000240116.flac"), "-o", str(out),
                "--library", str(library[0])]) == 0
    html = out.read_text(encoding="utf-8")
    assert 'data-testid="several-voices"' in html and "2 comparisons were made" in html
    assert html.count("channel 0, voice 0") >= 1 and html.count("channel 0, voice 1") >= 1


def test_a_pending_enrolment_takes_nobodys_number_and_a_rejection_removes_the_person_it_made(app, voices, tmp_path):
    """Four-eyes: a pending sample moved Zhang San's number to a decoy at once, and rejecting it kept the move."""
    wb = app.state.wb
    with four_eyes_on(wb):
        tech, csrf = login(app, "tech")
        decoy = audiogen.speech_file(tmp_path / "decoy.wav", seed=41, f0=175, seconds=5.0)
        r = enrol_upload(tech, csrf, decoy, person="Decoy Person", phone="13800138000")
        assert 'data-status="refused"' in r.text and "registered to person" in r.text
        owner = wb.call_sync("t", lambda lib: lib.store.db.execute(
            "SELECT p.name FROM phones f JOIN persons p ON p.id = f.person_id WHERE f.number = '+8613800138000'").fetchone()[0])
        assert owner == "Zhang San"
        r = enrol_upload(tech, csrf, decoy, person="Decoy Person", phone="13500135000", case="AJ-DECOY")
        assert 'data-status="pending approval"' in r.text
        decoy2 = audiogen.speech_file(tmp_path / "decoy2.wav", seed=43, f0=175, seconds=5.0)
        r = enrol_upload(tech, csrf, decoy2, person="Decoy Person")  # a second sample: rejecting both removes the person
        assert 'data-status="pending approval"' in r.text
        vids = wb.call_sync("t", lambda lib: [r[0] for r in lib.store.db.execute("SELECT id FROM voiceprints WHERE pending = 1")])
        assert len(vids) == 2
        wb.call_sync("sup", lambda lib: accounts.review(lib, vids[:1], "sup", approve=False))
        named = "SELECT count(*) FROM persons WHERE name = 'Decoy Person'"
        assert wb.call_sync("t", lambda lib: lib.store.db.execute(named).fetchone()[0]) == 1  # one sample still waits
        wb.call_sync("sup", lambda lib: accounts.review(lib, vids[1:], "sup", approve=False))
        left = wb.call_sync("t", lambda lib: lib.store.db.execute(named).fetchone()[0])
        assert left == 0
        unowned = wb.call_sync("t", lambda lib: lib.store.db.execute(
            "SELECT person_id FROM phones WHERE number = '+8613500135000'").fetchone()[0])
        assert unowned is None


def test_login_rows_name_the_client_address_and_x_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path, caplog):
    """Logins, failed logins and logouts say where they came from; the Python log gains neither name nor address."""
    import logging

    caplog.set_level(logging.DEBUG)
    with Library.create(tmp_path / "lib", operator="setup") as lib:
        accounts.add_user(lib.store, "zhao.detective", "investigator", PASSWORD)
    for trusted, seen in (((), "127.0.0.1"), (("127.0.0.1",), "10.20.30.40")):
        app = create_app(Settings(library=str(tmp_path / "lib"), trusted_proxies=trusted))
        try:
            c = TestClient(app, follow_redirects=False, client=("127.0.0.1", 50000), headers={"X-Forwarded-For": "10.20.30.40"})
            for password in ("wrong-password!", PASSWORD):
                form = c.get("/login")
                c.post("/login", data={"username": "zhao.detective", "password": password, "csrf_token": csrf_of(form.text)})
            assert c.post("/logout", data={"csrf_token": c.get("/api/session").json()["csrf_token"]}).status_code == 303
            rows = app.state.wb.call_sync("test", lambda lib: lib.store.audit_rows(3))
            assert [(r["action"], r["detail"].get("client")) for r in rows] == [("logout", seen), ("login", seen), ("login.failed", seen)]
        finally:
            app.state.wb.close()
    assert not any(word in r.getMessage() for r in caplog.records for word in ("zhao.detective", "10.20.30.40", "127.0.0.1"))


def test_serve_leaves_x_forwarded_for_to_its_trusted_proxy_option(tmp_path, monkeypatch):
    """uvicorn on its own trusts the header from 127.0.0.1; `serve` trusts only the proxies it is told of."""
    import uvicorn

    from voiceprint.cli import run

    Library.create(tmp_path / "lib").close()
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append((app, kw)))
    for extra, trusted in (([], ()), (["--trusted-proxy", "10.0.0.2", "--trusted-proxy", "10.0.0.3"], ("10.0.0.2", "10.0.0.3"))):
        assert run(["serve", "--library", str(tmp_path / "lib"), *extra]) == 0
        app, kw = started.pop()
        app.state.wb.close()
        assert kw["proxy_headers"] is False and app.state.wb.settings.trusted_proxies == trusted


def test_serve_checks_its_files_and_numbers_before_it_starts(tmp_path, monkeypatch, capsys):
    import uvicorn

    from voiceprint.cli import run

    Library.create(tmp_path / "lib").close()
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.append(app))
    lib = ["serve", "--library", str(tmp_path / "lib")]
    (tmp_path / "leads.csv").write_text("rank,number\n1,13900000000\n", encoding="utf-8")
    (tmp_path / "trials.csv").write_text("corpus,llr,target\nx,1.0,1\n", encoding="utf-8")
    (tmp_path / "clip.wav").write_bytes(bytes(range(256)) * 4)
    for extra, code, said in ((["--leads", str(tmp_path / "nothere.json")], 7, "no such leads file"),
                              (["--leads", str(tmp_path / "leads.csv")], 8, "not a leads JSON file"),
                              (["--trials", str(tmp_path / "nothere.csv")], 7, "no such trials file"),
                              (["--trials", str(tmp_path / "trials.csv")], 8, "needs both same- and different-speaker trials"),
                              (["--trials", str(tmp_path / "clip.wav")], 8, "not a trials file"),
                              (["--idle-timeout", "-5"], 2, "--idle-timeout"), (["--max-upload-mb", "-1"], 2, "--max-upload-mb"),
                              (["--port", "-1"], 2, "--port"), (["--port", "99999"], 2, "--port")):
        assert run([*lib, *extra]) == code, extra
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err, err
    assert not started
    (tmp_path / "leads.json").write_text('[{"rank": 1, "number": "13900000000"}]', encoding="utf-8")
    assert run([*lib, "--leads", str(tmp_path / "leads.json")]) == 0
    started.pop().state.wb.close()


def test_a_case_page_names_each_voices_best_hit_with_its_evidence(app, voices):
    """The case page showed "cosine to the best hit" as a bare number: no person, no LR, unlike every other page."""
    import re

    wb = app.state.wb
    wb.call_sync("setup", lambda lib: lib.links.add_recordings("AJ-BEST", [voices["a2"]]))
    c, _ = login(app, "inv")
    page = c.get("/cases/AJ-BEST").text
    [cell] = re.findall(r'<td data-testid="best-hit">(.*?)</td>', page, flags=re.S)
    assert 'href="/persons/1">Zhang San</a>' in cell and re.search(r"log10 LR [≥≤]?\s*-?\d+\.\d\d \(\w", cell), cell
    [view] = wb.call_sync("t", lambda lib: lib.store.audit_rows(1, "case.view"))
    assert view["detail"]["voices_compared"] == 1  # the comparison behind the page is on record


def test_a_case_voice_of_little_speech_is_marked_weak_beside_its_best_hit(app, tmp_path):
    """A 2 s case voice's best hit read as firmly as a 30 s one's; a query of so little speech is marked weak."""
    import re

    short = audiogen.speech_file(tmp_path / "short_call.wav", seed=2, f0=110, seconds=2.0)
    long = audiogen.speech_file(tmp_path / "long_call.wav", seed=2, f0=110, seconds=12.0)
    app.state.wb.call_sync("setup", lambda lib: lib.links.add_recordings("AJ-SHORT", [short, long]))
    c, _ = login(app, "inv")
    page = c.get("/cases/AJ-SHORT").text
    rows = dict(re.findall(r'<tr><td>(\w+_call\.wav)</td>.*?<td data-testid="best-hit">(.*?)</td>', page, flags=re.S))
    assert 'data-testid="weak-hit"' in rows["short_call.wav"] and "less than 3 s of net speech" in rows["short_call.wav"]
    assert 'data-testid="weak-hit"' not in rows["long_call.wav"]


def test_an_investigator_opens_a_case_and_files_its_recordings_in_the_browser(app, voices):
    """Filing a fraud call under a case needed the command line: the workbench had no way to open a case or file to it."""
    wb = app.state.wb
    tech, tcsrf = login(app, "tech")
    assert tech.post("/cases", data={"csrf_token": tcsrf, "case_number": "AJ-WEB-1"}).status_code == 403  # not a technician's job
    c, csrf = login(app, "inv")
    r = c.post("/cases", data={"csrf_token": csrf, "case_number": "AJ-WEB-1", "title": "fake refund", "area": "Chengdu"})
    assert r.status_code == 303 and r.headers["location"] == "/cases/AJ-WEB-1"
    again = c.post("/cases", data={"csrf_token": csrf, "case_number": "AJ-WEB-1"})
    assert again.status_code == 400 and "already exists" in again.text
    typed = c.post("/cases", data={"csrf_token": csrf, "case_number": "ａｊ－ｗｅｂ－１"})  # full width, lower case: the same case
    assert typed.status_code == 400 and "case AJ-WEB-1 already exists" in typed.text
    assert c.get("/cases/aj-web-1").status_code == 200
    with open(voices["a2"], "rb") as good, open(voices["junk"], "rb") as junk:
        r = c.post("/case-recordings", data={"csrf_token": csrf, "case_number": "AJ-WEB-1"},
                   files=[("files", ("call_a2.wav", good, "audio/wav")), ("files", ("junk.wav", junk, "audio/wav"))])
    assert r.status_code == 200 and 'data-status="matched"' in r.text and 'data-status="refused"' in r.text
    assert "Zhang San" in r.text and "/uploads/" not in r.text and ".incoming" not in r.text
    assert "Zhang San</a> (prior_offender) - voice heard in a recording of this case" in c.get("/cases/AJ-WEB-1").text
    import hashlib

    kept = wb.call_sync("t", lambda lib: [row[0] for row in lib.store.db.execute("SELECT sha256 FROM uploads")])
    good_sha, junk_sha = (hashlib.sha256(voices[k].read_bytes()).hexdigest() for k in ("a2", "junk"))
    assert good_sha in kept and junk_sha not in kept  # the evidence kept, the refused file gone
    actions = [row["action"] for row in wb.call_sync("t", lambda lib: lib.store.audit_rows(20))]
    assert "case.add" in actions and "case.add_recording" in actions
    assert c.post("/case-recordings", data={"csrf_token": csrf, "case_number": "NO-SUCH"},
                  files=[("files", ("x.wav", b"RIFF", "audio/wav"))]).status_code == 404
    incoming = app.state.wb.lib.root / "uploads" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())  # nothing refused or unfiled is left behind


def test_two_uploads_with_one_name_are_each_filed_or_refused(app, voices):
    """Two files both called s2.flac: the first was dropped unreported and left in .incoming."""
    wb = app.state.wb
    c, csrf = login(app, "inv")
    assert c.post("/cases", data={"csrf_token": csrf, "case_number": "AJ-SAME-NAME"}).status_code == 303
    with open(voices["a2"], "rb") as good, open(voices["junk"], "rb") as junk:
        r = c.post("/case-recordings", data={"csrf_token": csrf, "case_number": "AJ-SAME-NAME"},
                   files=[("files", ("s2.flac", good, "audio/wav")), ("files", ("s2.flac", junk, "audio/wav"))])
    assert r.status_code == 200 and r.text.count("<tr data-status=") == 2
    assert "s2.flac" in r.text and "s2 (2).flac" in r.text and 'data-status="refused"' in r.text
    incoming = wb.lib.root / "uploads" / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


@pytest.mark.parametrize("number", ["..", "AJ/../x", "x\ny", "Z" * 65])
def test_a_case_number_that_cannot_be_a_page_is_refused(app, number):
    c, csrf = login(app, "inv")
    r = c.post("/cases", data={"csrf_token": csrf, "case_number": number})
    assert r.status_code == 400 and "is not a case number" in r.text


def test_the_case_forms_answer_in_chinese_and_the_switch_takes_zh_cn(app):
    c, csrf = login(app, "inv")
    r = c.get("/lang", params={"to": "zh-CN", "next": "/cases"})
    assert r.status_code == 303 and c.cookies.get("vp_lang") == "zh"
    c.post("/cases", data={"csrf_token": csrf, "case_number": "AJ-ZH-1"})
    again = c.post("/cases", data={"csrf_token": csrf, "case_number": "AJ-ZH-1"})
    assert again.status_code == 400 and "案件 AJ-ZH-1 已存在" in again.text
    c.get("/lang", params={"to": "en", "next": "/cases"})


def test_workbench_searches_fold_full_width_input_and_a_query_of_no_digits_finds_no_phone(tmp_path):
    """Typed with a Chinese input method's full-width characters, a phone search returned every phone of the library (its
    digits were stripped to an empty pattern), and an ID number or case number search found nothing."""
    from voiceprint.web import views

    wav = audiogen.speech_file(tmp_path / "zhang.wav", seed=1, f0=110, seconds=4.0)
    with Library.create(tmp_path / "lib", operator="setup") as lib:
        lib.enrol(wav, person="Zhang San", id_number="11010519491231002X", phone="13800138000", case="AJ2026-0815")
        lib.add_person("Li Si")
        lib.store.add_phone("13900139000")  # a second phone: a search that matches everything shows it
        assert [p["number"] for p in views.phones(lib, "１３８００１３８０００")["phones"]] == ["+8613800138000"]
        assert [p["number"] for p in views.phones(lib, "１３８ ００１３")["phones"]] == ["+8613800138000"]
        assert views.phones(lib, "张三")["phones"] == [] and views.phones(lib, "ａｂｃ")["phones"] == []  # no digits: nothing, not all
        assert len(views.phones(lib, "")["phones"]) == 2  # no query: the page lists every phone
        for q in ("１１０１０５１９４９１２３１００２ｘ", "１９４９１２３１", "11010519491231002x", "１３８００１３８０００"):
            assert [p["name"] for p in views.persons(lib, q)["persons"]] == ["Zhang San"], q
        for q in ("ＡＪ２０２６", "ａｊ２０２６－０８１５", "aj2026-0815", " AJ2026 "):
            assert [c["case_number"] for c in views.cases(lib, q)["cases"]] == ["AJ2026-0815"], q
        assert views.cases(lib, "ＡＪ２０２７")["cases"] == []
