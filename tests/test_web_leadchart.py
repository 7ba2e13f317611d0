"""The fused leads' link chart in a real browser: headless Chromium (selenium) against ``voiceprint serve`` on a
library whose lead graph was built from the tiny county of tests/leadsgen.py (real CDR pipeline, real back end,
stand-in voiceprints). An analyst logs in, opens the leads, opens the top lead's chart, clicks a node and an
edge and reads their evidence, then follows a node to its own page; a logged-out visitor is sent to the login.

With ``VOICEPRINT_SCREENSHOTS=DIR`` the chart is saved as ``17-lead-chart.png`` (docs/screenshots/).
"""

from __future__ import annotations

import pytest
from leadsgen import OWNERS, build_scene
from test_web_e2e import PASSWORD, browser, log_in, shot, start_server, wait_for  # noqa: F401 - browser is a fixture

pytest.importorskip("argon2")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny county's library with an analyst account, served by ``voiceprint serve`` on a free port."""
    from voiceprint.web.accounts import add_user

    folder = tmp_path_factory.mktemp("chart")
    lib, _county = build_scene(folder)
    if lib is None:
        pytest.skip("no back end fitted for the default model: voice evidence carries no LR")
    add_user(lib.store, "ana", "analyst", PASSWORD)
    lib.close()
    proc, base = start_server(["--library", str(folder / "lib")])
    yield base
    proc.terminate()
    proc.wait(timeout=30)


def test_an_analyst_clicks_through_the_top_leads_link_chart(served, browser):  # noqa: F811 - the imported fixture
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(served + "/fused/chart?key=person:1")
    wait_for(browser, lambda d: "/login" in d.current_url)  # login-protected like every page
    log_in(browser, served, "ana")
    browser.get(served + "/fused")
    table = browser.find_element(By.CSS_SELECTOR, "[data-testid=fused-leads]")
    assert OWNERS[0][0] in table.text and "cdr + voice" in table.text
    shot(browser, "18-fused-leads")
    browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-1]").click()
    wait_for(browser, lambda d: d.execute_script("return window.leadChart ? window.leadChart.nodes().length : 0") > 0)
    types = set(browser.execute_script("return window.leadChart.nodes().map(function (n) { return n.data('type'); })"))
    assert {"person", "number", "case", "voice"} <= types
    kinds = set(browser.execute_script("return window.leadChart.edges().map(function (e) { return e.data('kind'); })"))
    assert {"called_victim", "registered_to", "heard_in", "matches"} <= kinds
    scripts = [s.get_attribute("src") or "" for s in browser.find_elements(By.TAG_NAME, "script")]
    assert all(not s or s.startswith(served) for s in scripts)  # nothing from outside the workbench
    shot(browser, "17-lead-chart")

    browser.execute_script("window.leadChart.edges('[kind = \"matches\"]').first().emit('tap')")
    detail = browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-detail]").text
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-title]").text == "matches" and "log10 LR" in detail
    browser.execute_script("window.leadChart.nodes('[type = \"case\"]').first().emit('tap')")
    detail = browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-detail]").text
    assert "probability among the case's candidates" in detail and "called the victim" in detail
    browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-open]").click()
    wait_for(browser, lambda d: "/cases/AJ-" in d.current_url)
    assert "AJ-" in browser.find_element(By.TAG_NAME, "h1").text


def test_the_chart_explains_its_lead_in_chinese(served, browser):  # noqa: F811 - the imported fixture
    from urllib.parse import quote

    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    log_in(browser, served, "ana")
    browser.get(served + "/lang?to=zh&next=" + quote("/fused/chart?key=person:1"))
    wait_for(browser, lambda d: d.execute_script("return window.leadChart ? window.leadChart.nodes().length : 0") > 0)
    said = browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-detail]").text
    assert "曾呼叫案件" in said and "入库声纹相符" in said and "called the victim" not in said
    assert "话单 + 声纹" in browser.find_element(By.TAG_NAME, "h1").text  # the evidence sources, in words
    labels = browser.execute_script("return window.leadChart.elements().map(function (e) { return e.data('label'); })")
    assert "声纹相符 +3.38" in " ".join(labels) or any(x.startswith("声纹相符") for x in labels)
    assert not [x for x in labels if x.split(" ")[0] in ("matches", "voice", "handset", "registered")]
    shot(browser, "17-lead-chart-zh")
    browser.execute_script("window.leadChart.nodes('[type = \"case\"]').first().emit('tap')")
    pane = browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-detail]").text
    assert "在本案候选人中的概率" in pane and "曾呼叫案件" in pane and "打开" in pane
    browser.execute_script("window.leadChart.edges('[kind = \"matches\"]').first().emit('tap')")
    assert browser.find_element(By.CSS_SELECTOR, "[data-testid=chart-title]").text == "声纹相符"
