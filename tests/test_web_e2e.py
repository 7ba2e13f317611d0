"""End to end in a real browser: Debian's headless Chromium driven by selenium against
``voiceprint serve`` running as its own process, set up with the README's commands.

Log in, upload an unknown recording of an enrolled person, see that person as hit 1, open the
report (its PDF carries the recording's SHA-256, the model fingerprint and the log10 LR shown on
the page), approve a pending enrolment as a supervisor, and see a technician refused.

With ``VOICEPRINT_SCREENSHOTS=DIR`` every page is also saved as PNG (docs/screenshots/).
Skips - loudly - only when Chromium or chromedriver is not installed (``make install`` brings them).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import audiogen
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parent.parent

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    message = ("\n" + "!" * 78 + "\nBROWSER TESTS SKIPPED: Debian chromium/chromium-driver are not installed.\n"
               "Run `make install` as root (apt-get install -y chromium chromium-driver) to run them.\n" + "!" * 78)
    print(message, file=sys.stderr)
    warnings.warn(message, stacklevel=1)
    pytest.skip(message, allow_module_level=True)

pytest.importorskip("selenium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str]) -> tuple[subprocess.Popen, str]:
    """``voiceprint serve ARGS`` on a free port, waited for until it accepts connections: (process, base URL)."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "voiceprint.cli", "serve", *args, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("voiceprint serve did not start: " + (proc.stdout.read().decode() if proc.stdout else ""))
            time.sleep(0.3)


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The README's commands, as a user types them (a separate process each)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-m", "voiceprint.cli", *args], input=stdin, capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A library with two enrolled persons, four users and one pending enrolment, served on a free port."""
    from voiceprint.library import Library
    from voiceprint.web.accounts import add_user, set_four_eyes

    d = tmp_path_factory.mktemp("e2e")
    lib_dir = d / "county"
    files = {
        "zhang": audiogen.speech_file(d / "zhang_interview.wav", seed=1, f0=110, seconds=5.0),
        "li": audiogen.speech_file(d / "li_interview.wav", seed=3, f0=210, seconds=5.0),
        "wang": audiogen.speech_file(d / "wang_sample.wav", seed=5, f0=160, seconds=5.0),
        "unknown": audiogen.speech_file(d / "fraud_call_0815.flac", "flac", seed=2, f0=110, seconds=5.0),
        "caller_a": audiogen.speech_file(d / "complaint_0815_a.wav", seed=11, f0=180, seconds=5.0),
        "caller_b": audiogen.speech_file(d / "complaint_0901_b.flac", "flac", seed=11, f0=180, seconds=5.0),
    }
    cli("init", "--library", str(lib_dir))
    for name, role in (("chen", "investigator"), ("tech", "technician"), ("wang", "supervisor")):
        cli("user", "add", name, "--role", role, "--password-stdin", "--library", str(lib_dir), stdin=PASSWORD + "\n")
    with Library.open(lib_dir, operator="tech") as lib:  # the technician's enrolments (one embedding model load)
        from voiceprint.linking import add_recordings

        # an unknown caller heard in two cases, filed before anyone is enrolled: a link across the cases
        lib.add_case("AJ2026-0815", title="fake customer-service refund", area="Chengdu")
        lib.add_case("AJ2026-0901", title="fake police call", area="Chengdu")
        add_recordings(lib, "AJ2026-0815", [files["caller_a"]])
        add_recordings(lib, "AJ2026-0901", [files["caller_b"]])
        lib.enrol(files["zhang"], person="Zhang San", category="prior_offender", phone="13800138000", case="AJ2026-0815")
        lib.enrol(files["li"], person="Li Si", category="suspect", phone="13900139000")
        add_user(lib.store, "ana", "analyst", PASSWORD)
        set_four_eyes(lib.store, True)
        lib.enrol(files["wang"], person="Wang Wu", category="suspect")  # pending until a supervisor approves
    leads = d / "leads.json"
    leads.write_text('[{"rank": 1, "number": "+8613800138000", "score": 0.93, "flagged": true, "person": "Zhang San",'
                     ' "reasons": ["calls 212 distinct numbers a day", "82 % of calls under 30 s", "new SIM, 3 days old"]},'
                     ' {"rank": 2, "number": "+8613700000001", "score": 0.71, "flagged": true, "person": null,'
                     ' "reasons": ["calls many elderly subscribers", "no incoming calls"]}]', encoding="utf-8")
    proc, base = start_server(["--library", str(lib_dir), "--leads", str(leads)])
    yield {"base": base, "files": files, "library": lib_dir}
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1440,1000", "--lang=en-US"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(300)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    folder = os.environ.get("VOICEPRINT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        height = driver.execute_script("return Math.max(document.body.scrollHeight, 700)")
        driver.set_window_size(1440, min(int(height) + 40, 4000))
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))
        driver.set_window_size(1440, 1000)


def log_in(driver, base: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(base + "/login")
    driver.find_element(By.NAME, "username").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=login-submit]").click()
    wait_for(driver, lambda d: "/login" not in d.current_url)


def open_report(driver) -> str:
    """Press the result's "Evidence report (HTML)" button (it opens a tab) and switch to that tab; the query page's handle."""
    from selenium.webdriver.common.by import By

    here, before = driver.current_window_handle, set(driver.window_handles)
    driver.find_element(By.CSS_SELECTOR, "[data-testid=report-html]").click()
    tab = wait_for(driver, lambda d: set(d.window_handles) - before).pop()
    driver.switch_to.window(tab)
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=report-id]"))
    return here


def wait_for(driver, condition, timeout: float = 300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def test_investigator_finds_the_speaker_and_the_report_pdf_carries_the_evidence(server, browser):
    from pypdf import PdfReader
    from selenium.webdriver.common.by import By

    from voiceprint.library import Library

    base = server["base"]
    browser.delete_all_cookies()  # whichever test used the browser before
    browser.get(base + "/query")
    assert "/login" in browser.current_url  # no session: the login page
    shot(browser, "01-login")
    log_in(browser, base, "chen")
    browser.get(base + "/query")
    shot(browser, "02-query-empty")
    browser.find_element(By.CSS_SELECTOR, 'input[type=file][name=files]').send_keys(str(server["files"]["unknown"]))
    browser.find_element(By.CSS_SELECTOR, "[data-testid=query-submit]").click()
    first = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-rank="1"]'))[0]
    assert first.get_attribute("data-person") == "Zhang San"
    lr_shown = first.find_element(By.CSS_SELECTOR, "[data-testid=log10-lr]").text.replace(" ", "")  # "≥ 3.969" at the bound
    sha_shown = browser.find_element(By.CSS_SELECTOR, "[data-testid=file-sha256]").text
    wait_for(browser, lambda d: d.execute_script("var i = document.querySelector('figure img'); return i && i.complete && i.naturalWidth > 0"))
    shot(browser, "03-query-hits")
    form = browser.find_element(By.CSS_SELECTOR, "[data-testid=report-form]")
    report_url, csrf = form.get_attribute("action"), form.find_element(By.NAME, "csrf_token").get_attribute("value")
    form.find_element(By.TAG_NAME, "summary").click()  # the request fields, folded away until asked for
    form.find_element(By.NAME, "requested_by").send_keys("Chengdu PSB anti-fraud centre")
    query_window = open_report(browser)
    assert "Investigative lead" in browser.page_source and sha_shown in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=requested-by]").text == "Chengdu PSB anti-fraud centre"
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=request-ref]").text == "not stated"
    shot(browser, "04-report-html")
    browser.close()
    browser.switch_to.window(query_window)
    # the PDF, asked for with the browser's own session cookie and the form's CSRF token
    import httpx

    cookies = {c["name"]: c["value"] for c in browser.get_cookies()}
    pdf = httpx.post(report_url, data={"csrf_token": csrf, "fmt": "pdf"}, cookies=cookies, timeout=300)
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages))
    with Library.open(server["library"]) as lib:
        fingerprint = lib.store.get_meta("model_fingerprint")
    assert sha_shown in text and fingerprint in text and lr_shown in text
    for path, name in (("/persons", "05-persons"), ("/persons/1", "06-person"), ("/cases", "07-cases"), ("/cases/AJ2026-0815", "08-case"),
                       ("/phones", "09-phones"), ("/phones/13800138000", "10-phone-reverse-strike"), ("/links", "11-links")):
        browser.get(base + path)
        assert browser.find_element(By.TAG_NAME, "h1").text
        shot(browser, name)
    # the investigator opens a case and files the call with it, in the browser
    browser.get(base + "/cases")
    browser.find_element(By.NAME, "case_number").send_keys("AJ2026-1001")
    browser.find_element(By.NAME, "title").send_keys("fake police officer")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=open-case]").click()
    wait_for(browser, lambda d: d.current_url.endswith("/cases/AJ2026-1001"), timeout=120)
    browser.find_element(By.CSS_SELECTOR, 'input[type=file][name=files]').send_keys(str(server["files"]["unknown"]))
    browser.find_element(By.CSS_SELECTOR, "[data-testid=file-recordings]").click()
    filed = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "tr[data-status]"), timeout=120)[0]
    shot(browser, "17-case-filed")
    assert filed.get_attribute("data-status") in ("matched", "unknown"), filed.text
    best = browser.find_element(By.CSS_SELECTOR, "[data-testid=best-hit]").text
    assert best.startswith("Zhang San") and "log10 LR" in best, best


def test_a_technician_is_refused_approval_and_a_supervisor_approves_the_pending_enrolment(server, browser):
    from selenium.webdriver.common.by import By

    base = server["base"]
    log_in(browser, base, "tech")
    browser.get(base + "/enrol")
    shot(browser, "12-enrol")
    browser.get(base + "/approvals")
    assert "cannot approve" in browser.find_element(By.CSS_SELECTOR, "[data-testid=error-message]").text
    shot(browser, "13-refused")
    log_in(browser, base, "wang")
    browser.get(base + "/approvals")
    row = browser.find_element(By.CSS_SELECTOR, "tr[data-voiceprint]")
    shot(browser, "14-approvals")
    row.find_element(By.CSS_SELECTOR, "input[type=checkbox]").click()
    browser.find_element(By.CSS_SELECTOR, "[data-testid=approve]").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "[data-testid=no-pending]"))
    browser.get(base + "/audit?action=enrol")
    assert "Chain verified" in browser.page_source and "enrol.approve" in browser.page_source
    shot(browser, "15-audit")
    log_in(browser, base, "ana")
    browser.get(base + "/leads")
    shot(browser, "16-leads")


def test_the_header_switch_turns_the_workbench_chinese_and_back(server, browser):
    """中文 in the header: the login page, navigation, the query's hits and the evidence report read in Chinese; EN turns them back."""
    from selenium.webdriver.common.by import By

    base = server["base"]
    browser.delete_all_cookies()
    browser.get(base + "/login")
    browser.find_element(By.LINK_TEXT, "中文").click()
    wait_for(browser, lambda d: "<h1>登录</h1>" in d.page_source)  # page_source: no element goes stale while the page changes
    shot(browser, "zh-01-login")
    browser.find_element(By.NAME, "username").send_keys("chen")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "[data-testid=login-submit]").click()
    wait_for(browser, lambda d: "<h1>比对未知录音</h1>" in d.page_source)
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a")][:4] == ["比对", "人员", "案件", "电话号码"]
    browser.find_element(By.CSS_SELECTOR, 'input[type=file][name=files]').send_keys(str(server["files"]["unknown"]))
    browser.find_element(By.CSS_SELECTOR, "[data-testid=query-submit]").click()
    first = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-rank="1"]'))[0]
    assert first.get_attribute("data-person") == "Zhang San" and "前科人员" in first.text
    wait_for(browser, lambda d: d.execute_script("var i = document.querySelector('figure img'); return i && i.complete && i.naturalWidth > 0"))
    shot(browser, "zh-03-query-hits")
    query_window = open_report(browser)
    assert "1. 检验问题与假设" in browser.page_source and "侦查线索" in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=requested-by]").text == "未注明"
    shot(browser, "zh-04-report-html")
    browser.close()
    browser.switch_to.window(query_window)
    for path, name in (("/persons/1", "zh-06-person"), ("/phones/13800138000", "zh-10-phone-reverse-strike")):
        browser.get(base + path)
        shot(browser, name)
    browser.find_element(By.LINK_TEXT, "EN").click()
    wait_for(browser, lambda d: '<a href="/persons">Persons</a>' in d.page_source)
    assert "/phones/13800138000" in browser.current_url


def test_a_server_stopped_with_sigterm_folds_its_log_into_the_database(tmp_path):
    """`serve` stopped by SIGTERM or Ctrl-C left library.sqlite-wal behind: a copy of library.sqlite alone lacked
    the last audit rows (uvicorn re-raises the signal after its shutdown, so only a shutdown hook can close)."""
    import sqlite3

    import httpx

    root = tmp_path / "lib"
    cli("init", "--library", str(root))
    cli("user", "add", "sup", "--role", "supervisor", "--password-stdin", "--library", str(root), stdin="Password123!x\n")
    proc, base = start_server(["--library", str(root)])
    try:
        with httpx.Client(base_url=base) as c:
            form = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
            assert form is not None
            token = form.group(1)
            assert c.post("/login", data={"username": "sup", "password": "Password123!x", "csrf_token": token}).status_code == 303
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert not (root / "library.sqlite-wal").exists()
    alone = tmp_path / "copy.sqlite"
    shutil.copy(root / "library.sqlite", alone)
    with sqlite3.connect(alone) as db:
        assert db.execute("SELECT count(*) FROM audit WHERE action = 'login'").fetchone()[0] == 1
