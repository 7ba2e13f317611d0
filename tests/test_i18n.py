"""Simplified Chinese for the evidence report and the workbench (voiceprint.i18n): the catalogue covers every
marked string and every message the library writes into a result; a zh report and the zh pages carry no
English headings or labels; English stays the default; the language switch takes only known languages
and only local pages to go back to."""

from __future__ import annotations

import ast
import html as htmlmod
import io
import re
from pathlib import Path

import audiogen
import pytest

from voiceprint import i18n
from voiceprint.i18n_zh import GENERATED, MESSAGES

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "voiceprint" / "web" / "templates"
PASSWORD = "correct-horse-battery"
CJK = re.compile(r"[\u4e00-\u9fff]")
#: English words a Chinese page or report may keep: abbreviations, units, formats, command names
KEPT = {"SHA", "SNR", "EER", "Cllr", "minDCF", "log10", "LR", "ELUB", "ENFSI", "AS-norm", "llr", "cosine", "Tippett", "CSV", "HTML", "PDF",
        "WAV", "FLAC", "MP3", "M4A", "OGG", "Opus", "AMR", "kHz", "Hz", "voiceprint", "git", "backend", "json", "dB", "VoIP",
        "ffmpeg", "Audacity", "enrol", "min-speech", "dBFS", "YYYY-MM-DD"}


#: Python calls whose argument at this position is English text for the catalogue
TRANSLATED_ARGS = {"translate": 0, "error_page": 3}


def marked_strings() -> dict[str, str]:
    """Every string a template marks with _("...") and every literal the code passes to translate(): text -> where."""
    found: dict[str, str] = {}
    for path in sorted(TEMPLATES.glob("*.html")):
        for m in re.finditer(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""", path.read_text(encoding="utf-8")):
            found.setdefault(m.group(1) if m.group(1) is not None else m.group(2), path.name)
    for path in sorted((ROOT / "voiceprint").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node, "func", None)
            index = TRANSLATED_ARGS.get(getattr(name, "id", getattr(name, "attr", "")), -1)
            if isinstance(node, ast.Call) and 0 <= index < len(node.args):
                arg = node.args[index]
                for text in (arg.body, arg.orelse) if isinstance(arg, ast.IfExp) else (arg,):  # "A" if lead else "B"
                    if isinstance(text, ast.Constant) and isinstance(text.value, str):
                        found.setdefault(text.value, path.name)
    return found


def found(pattern: str, text: str, flags: int = 0) -> str:
    """The first group of ``pattern`` in ``text`` (the test fails here if it is absent)."""
    match = re.search(pattern, text, flags)
    assert match, pattern
    return match.group(1)


def english_words(text: str) -> list[str]:
    """Words of three letters or more, less abbreviations and identifiers with digits (AJ2026-0815, log10)."""
    return [w for w in re.findall(r"[A-Za-z][A-Za-z0-9-]{2,}", text) if w not in KEPT and not re.search(r"\d", w)]


def test_every_marked_string_has_a_chinese_entry():
    marked = marked_strings()
    # the walk found the templates, the code and both sides of a conditional
    assert len(marked) > 250 and "Persons" in marked and "net speech >= {gate} s" in marked and "Form refused" in marked
    assert {"questioned recording is wideband", "questioned recording is narrowband telephone speech"} <= set(marked)
    assert {"Investigative lead: speaker search (1:N)", "Evaluative comparison: speaker comparison (1:1)"} <= set(marked)
    missing = sorted(f"{where}: {text!r}" for text, where in marked.items() if text not in i18n.CATALOGUES["zh"])
    assert not missing, "no zh entry for:\n" + "\n".join(missing)


def test_every_entry_is_chinese_with_the_same_placeholders():
    for key, zh in (MESSAGES | GENERATED).items():
        assert CJK.search(zh), f"{key!r}: {zh!r} is not Chinese"
        assert sorted(set(re.findall(r"\{(\w+)\}", key))) == sorted(set(re.findall(r"\{(\w+)\}", zh))), key
        assert sorted(re.findall(r"</?\w+", key)) == sorted(re.findall(r"</?\w+", zh)), f"{key!r}: markup differs"
    assert not set(MESSAGES) & set(GENERATED)


def test_translate_falls_back_to_english_and_keeps_data():
    t = i18n.translate
    assert t("Persons") == "Persons" and t("Persons", "en") == "Persons" and t("Persons", "zh") == "人员"
    assert t("not in the catalogue", "zh") == "not in the catalogue"
    assert t("row {id}", "en", id=7) == "row 7" and t("row {id}", "zh", id=7) == "第 7 行"
    # a finished library message is translated by its template, its numbers and names kept
    assert t("weak query: only 1.2 s of net speech (gate 3 s)", "zh") == "待比对录音质量不足：有效语音仅 1.2 s（门限 3 s）"
    name = "weak support for same speaker"  # a name that happens to be a catalogue entry stays a name
    assert name in t(f"the questioned recording is itself enrolled as a sample of person 4 ({name}; same SHA-256): its match compares "
                     "the file with itself, not two recordings of one voice", "zh")
    # only GENERATED templates are matched against data: a file name with a colon is not a "{pair}: {low} to {high}"
    assert t("a.wav: convert it to WAV", "zh") == "a.wav: convert it to WAV"


def test_language_codes():
    assert i18n.language("zh") == i18n.language("zh-CN") == i18n.language("zh_CN") == "zh"
    assert i18n.language("EN") == "en"
    with pytest.raises(ValueError, match="unknown language"):
        i18n.language("fr")


def test_language_from_the_environment(monkeypatch):
    monkeypatch.delenv("VOICEPRINT_LANG", raising=False)
    assert i18n.language() == "en"
    monkeypatch.setenv("VOICEPRINT_LANG", "zh_CN.UTF-8")
    assert i18n.language() == "zh"


def test_messages_the_library_writes_into_results_are_translated():
    from voiceprint import enrolment, quality
    from voiceprint.linking import _pair_scores_shown
    from voiceprint.scoring import verbal
    from voiceprint.web.accounts import _locked_message
    from voiceprint.web.app import PERMISSION_WORDS, Forbidden

    poor = {"net_speech_s": 1.23, "snr_frames_db": 4.0, "clipping_ratio": 0.05}
    messages = quality.query_warnings(poor) + quality.comparison_warnings(poor) + quality.enrolment_warnings(poor)
    messages += [quality.voiceprint_strength(1.2)["needs"], _locked_message(130.0, 0.0)]
    messages += [str(verbal(x)) for x in (-7, -4.5, -3.2, -2.5, -1.5, -0.5, 0.1, 0.5, 1.5, 2.5, 3.5, 4.5, 6.5)]
    messages += [str(Forbidden(what, "technician")) for what in PERMISSION_WORDS]
    messages += [_pair_scores_shown({"min_pair_score": 2.0, "mean_pair_score": 3.0, "score_kind": kind}) for kind in ("llr", "cosine")]
    messages += [enrolment.MOVED_PHONE_NOTE.format(number="+8613800138000", owner=3), enrolment.NEW_CASE_NOTE.format(case="AJ2026-0O1"),
                 enrolment.COPY_NOTE.format(vid=12, owner=3, cosine="0.991")]
    messages += cdr_lead_reasons() + enrolment_refusals()
    assert len(messages) > 50
    for message in messages:
        zh = i18n.translate(message, "zh")
        # data and code stay as they are: a feature's column (out_share=0.95), a file name, a command or an option
        data = re.sub(r"`[^`]*`|--[a-z-]+|\b[\w-]+\.[a-z0-9]+\b|\b[a-z0-9_]+=", "", zh)
        assert CJK.search(zh) and not english_words(data), f"{message!r} -> {zh!r}"
    assert i18n.translate(messages[0], "zh") == "待比对录音质量不足：有效语音仅 1.2 s（门限 3 s）"


def enrolment_refusals() -> list[str]:
    """The refusals an enrolment writes for a file that holds several voices, or a voice or phone of another person."""
    from types import SimpleNamespace

    import numpy as np

    from voiceprint import enrolment
    from voiceprint.errors import VoiceprintError

    out = []
    for channels, voices, voice in ((1, 2, None), (2, 2, None), (1, 3, 5)):
        with pytest.raises(VoiceprintError) as err:
            enrolment._one_voice(Path("call.wav"), [SimpleNamespace(channel=i if channels > 1 else 0) for i in range(voices)], voice)
        out.append(str(err.value))

    class Store:  # the one query each check makes
        db = SimpleNamespace(execute=lambda *a: [(9, 4, np.ones(4, np.float32).tobytes())])

        @staticmethod
        def person_for_phone(number):
            return 4

    done = SimpleNamespace(vector=np.ones(4, np.float32))
    with pytest.raises(VoiceprintError) as err:
        enrolment._refuse_a_voice_of_another_person(Store, Path("call.wav"), 1, 2, "m", done)  # type: ignore[arg-type]
    out.append(str(err.value))
    with pytest.raises(VoiceprintError) as err:
        enrolment._moved_phone(Store, Path("call.wav"), "+8613800138000", 2, strict=True)
    return out + [str(err.value)]


def test_a_refused_request_field_reads_in_chinese():
    """The refusals of a report's request fields (too long, a control character, not a date, a future date), as the
    workbench's report form shows them: the field's label, then the reason, both in Chinese, the value and codes kept."""
    from voiceprint.evidence import RequestFieldError, examination_request
    from voiceprint.web.routes import REQUEST_FIELDS

    shown = []
    for given in (("x" * 300, "", "", ""), ("", "CD\x07", "", ""), ("", "", "2026-13-01", ""), ("", "", "2999-01-01", "")):
        with pytest.raises(RequestFieldError) as err:
            examination_request(*given)  # requested by, request reference, received, case
        field = i18n.translate(REQUEST_FIELDS[err.value.field], "zh")
        shown.append(i18n.translate("Field '{field}': {problem}", "zh", field=field, problem=str(err.value)))
    for zh in shown:
        assert CJK.search(zh) and not english_words(zh), zh
    assert shown[0] == "“委托单位”栏：过长（300 个字符）——最多填写 200 个字符"
    assert shown[2] == "“受理日期”栏：'2026-13-01' 不是日期——请按 YYYY-MM-DD 填写检材受理日期（例如 2026-08-15）"


def cdr_lead_reasons() -> list[str]:
    """Every rule signal's reason for a fraud-like number, a moderate one, and a model's reason."""
    import pandas as pd

    from voiceprint.calls.scoring import SIGNALS, rule_reasons, rule_score

    table = pd.DataFrame({s.name: [s.fraud, s.normal] for s in SIGNALS})
    _, signals = rule_score(table)
    strong = rule_reasons(table, signals, table.median().to_dict(), top=len(SIGNALS))[0]
    assert len(strong) == len(SIGNALS)
    moderate = signals.iloc[[0]] * 0 + 0.55  # every signal above 0.5, none at 0.6
    reasons = strong + rule_reasons(table.iloc[[0]], moderate, table.median().to_dict())[0]
    assert reasons[-1].endswith(", moderate)")
    return reasons + ["distinct_others=212 (population median 40, +1.23 log-odds)"]


# -- the report and the pages, on a small library --------------------------------------------------------
@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    d = tmp_path_factory.mktemp("i18n_voices")
    return {
        "zhang": audiogen.speech_file(d / "zhang_interview.wav", seed=1, f0=110, seconds=5.0),
        "call": audiogen.speech_file(d / "fraud_call_0815.flac", "flac", seed=2, f0=110, seconds=5.0),
        "short": audiogen.speech_file(d / "short_call.wav", seed=2, f0=110, seconds=1.5),
        "li": audiogen.speech_file(d / "li_interview.wav", seed=3, f0=210, seconds=5.0),
    }


@pytest.fixture(scope="module")
def library(tmp_path_factory, voices):
    from voiceprint.library import Library
    from voiceprint.web import accounts

    root = tmp_path_factory.mktemp("i18n_lib") / "lib"
    with Library.create(root, operator="setup") as lib:
        lib.enrol(voices["zhang"], person="张三", category="prior_offender", phone="13800138000", case="AJ2026-0815")
        lib.enrol(voices["li"], person="Li Si", category="suspect", phone="13900139000")
        accounts.add_user(lib.store, "inv", "investigator", PASSWORD)
        accounts.add_user(lib.store, "tech", "technician", PASSWORD)
        accounts.add_user(lib.store, "sup", "supervisor", PASSWORD)
    return root


HEADINGS_ZH = ["1. 检验问题与假设", "2. 检材与保管链", "3. 检材评估", "4. 检验方法", "5. 检验结果", "6. 相似条件下的验证", "7. 局限性", "8. 签署"]
HEADINGS_EN = ["Question and propositions", "Items examined", "Chain of custody", "Case assessment", "Method", "Result", "Validation",
               "Limitations", "Sign-off", "Examiner", "Report id", "Net speech", "verbal scale", "expected false hits"]


def texts_of(page: str, *tags: str) -> list[str]:
    """The text of every ``tags`` element (tags stripped), e.g. every heading and table header."""
    found = re.findall(rf"<({'|'.join(tags)})\b[^>]*>(.*?)</\1>", page, flags=re.S)
    return [htmlmod.unescape(re.sub(r"<[^>]+>", "", inner)).strip() for _tag, inner in found]


def test_a_zh_report_is_chinese_and_english_stays_the_default(library, voices, tmp_path, monkeypatch, capsys):
    from voiceprint.cli import run

    monkeypatch.delenv("VOICEPRINT_LANG", raising=False)
    zh, en = tmp_path / "lead-zh.html", tmp_path / "lead-en.html"
    assert run(["--operator", "王警官", "report", "--query", str(voices["short"]), "--lang", "zh", "-o", str(zh), "--library", str(library)]) == 0
    rid = found(r"result ([0-9a-f]{16})", capsys.readouterr().out)
    assert run(["report", rid, "-o", str(en), "--library", str(library)]) == 0
    page = zh.read_text(encoding="utf-8")
    assert '<html lang="zh-CN">' in page and "侦查线索：说话人检索（1:N）" in page
    for heading in HEADINGS_ZH:
        assert f"<h2>{heading}</h2>" in page
    leftovers = [t for t in texts_of(page, "h1", "h2", "th") if english_words(t)]
    assert not leftovers, leftovers
    assert "short_call.wav" in page and "张三" in page and "前科人员" in page  # data stays, category codes read in Chinese
    assert "有效语音仅 1.3 s（门限 3 s）" in page  # the query's quality warning, saved in English, shown in Chinese
    assert "支持同一说话人假设" in page  # the verbal scale
    assert "<td>query（检索）</td>" in page  # the custody rows' action: the stored code, glossed
    assert not re.search(r"\b(Question|Relevant population|Investigative lead|weak query|support for)\b", page)
    english = en.read_text(encoding="utf-8")
    assert '<html lang="en">' in english and "<h2>1. Question and propositions</h2>" in english and "检验" not in english
    # the reference side is an item too: the enrolled sample the top hit was compared through, with its hash and enrolment row
    import hashlib

    enrolled = hashlib.sha256(voices["zhang"].read_bytes()).hexdigest()
    assert f'data-testid="reference-sha256">{enrolled}<' in english and "<td>enrol</td>" in english
    # the validation rows of the case's channel pair (a 16 kHz query of 16 kHz enrolments: wideband) are marked
    marked = re.findall(r'data-testid="validation-this-case"><td><b>([^<]+)</b>', english)
    assert marked and all(m.endswith("/clean") and not m.startswith("hyke") for m in marked), marked
    # and so is the held-out row of its pair and questioned speech (1.3 s of speech: under 2 s); the Tippett plot shows those trials
    heldout = re.search(r'data-testid="heldout-this-case"><td>([^<]+)</td><td>([^<]+)</td>', english)
    assert heldout and heldout.groups() == ("wideband", "&lt;2s"), heldout
    assert "held-out test speakers (never used to fit the back end), wideband trials" in english
    assert 'data-testid="heldout-this-case"><td>宽带</td>' in page and "留出测试集说话人（从未用于拟合后端）" in page
    monkeypatch.setenv("VOICEPRINT_LANG", "zh")
    again = tmp_path / "lead-env.html"
    assert run(["report", rid, "-o", str(again), "--library", str(library)]) == 0
    assert "<h2>1. 检验问题与假设</h2>" in again.read_text(encoding="utf-8")
    assert run(["report", rid, "--lang", "fr", "-o", str(again), "--library", str(library)]) == 2


def test_a_zh_comparison_report_says_its_likelihood_ratio_in_chinese(library, voices, tmp_path):
    from voiceprint.cli import run

    out = tmp_path / "v.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["call"]), "--lang", "zh", "-o", str(out),
                "--library", str(library)]) == 0
    page = out.read_text(encoding="utf-8")
    sentence = found(r'data-testid="lr-sentence">(.*?)</p>', page, flags=re.S)
    assert "倍" in sentence and not english_words(sentence), sentence
    assert "评价性比对：说话人比对（1:1）" in page and "信道组合；分别以两段录音为参照所得对数似然比的均值（即两个似然比的几何平均）" in page
    assert not [t for t in texts_of(page, "h1", "h2", "th") if english_words(t)]


def test_a_comparison_report_does_not_call_its_evidence_weak_beside_its_lr(library, voices, tmp_path):
    """A verify report printed "weak evidence" beside "strong support": a short side is a weak recording,
    and the LR, calibrated for its duration, says how strong the evidence is."""
    from voiceprint.cli import run

    out = tmp_path / "v.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["short"]), "-o", str(out),
                "--library", str(library)]) == 0
    warnings = re.findall(r'data-testid="comparison-warning">(.*?)</p>', out.read_text(encoding="utf-8"), flags=re.S)
    assert warnings and all(w.startswith("B: weak recording: only") and "weak evidence" not in w for w in warnings), warnings


def test_a_comparison_reports_custody_holds_its_own_comparison_not_another_of_the_same_file(library, voices, tmp_path):
    """The report of A against B listed the audit rows of an earlier comparison of A against C."""
    from voiceprint.cli import run
    from voiceprint.library import Library

    with Library.open(library, operator="examiner") as lib:
        lib.verify(voices["zhang"], voices["call"])  # another comparison of the same file
        rows_before = lib.store.db.execute("SELECT COUNT(*) FROM audit WHERE action = 'verify'").fetchone()[0]
    out = tmp_path / "v.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["li"]), "-o", str(out), "--library", str(library)]) == 0
    custody = re.findall(r"<tr><td>(\d+)</td><td>[^<]*</td><td>[^<]*</td><td>verify</td>", out.read_text(encoding="utf-8"))
    assert rows_before >= 1 and len(custody) == 1, custody  # only the row of this comparison


REQUEST = {"--requested-by": "成都市公安局反诈中心 <script>alert(1)</script>", "--request-ref": "CD-2026-0815", "--received": "2026-08-15",
           "--case": "AJ2026-0815"}


def request_rows(page: str) -> list[tuple[str, str, str]]:
    """The report's request block: (label, field, value as the HTML holds it) per row."""
    block = found(r'<table class="meta" data-testid="request">(.*?)</table>', page, flags=re.S)
    return re.findall(r'<tr><td>([^<]+)</td><td class="wrap" data-testid="([a-z-]+)">(.*?)</td></tr>', block)


def test_a_report_names_who_asked_for_it_in_both_languages_and_in_its_audit_row(library, voices, tmp_path, capsys):
    """A report did not say who asked for the examination, under which reference, or when the items came (委托单位,
    委托编号, 受理日期): it is the first block, in each language, and the report's own audit row (its chain head) holds it."""
    from voiceprint.cli import run
    from voiceprint.library import Library

    args = [x for option in REQUEST.items() for x in option]
    zh, en = tmp_path / "zh.html", tmp_path / "en.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["call"]), *args, "--lang", "zh", "-o", str(zh),
                "--library", str(library)]) == 0
    rid = found(r"result ([0-9a-f]{16})", capsys.readouterr().out)
    assert run(["report", rid, *args, "-o", str(en), "--library", str(library)]) == 0
    escaped = "成都市公安局反诈中心 &lt;script&gt;alert(1)&lt;/script&gt;"
    values = [escaped, "CD-2026-0815", "2026-08-15", "AJ2026-0815"]
    fields = ["requested-by", "request-ref", "received", "case"]
    zh_page, en_page = zh.read_text(encoding="utf-8"), en.read_text(encoding="utf-8")
    assert request_rows(zh_page) == list(zip(["委托单位", "委托编号", "受理日期", "案件编号"], fields, values, strict=True))
    assert request_rows(en_page) == list(zip(["Requested by", "Request reference", "Items received", "Case number"], fields, values, strict=True))
    assert "<h2 class=\"request\">委托</h2>" in zh_page and "<h2 class=\"request\">Request</h2>" in en_page
    assert "<script>" not in zh_page + en_page
    with Library.open(library) as lib:
        rows = lib.audit(limit=2, action="report")  # newest first: the English report, then the Chinese one
        hashes = {r["id"]: lib.store.db.execute("SELECT hash FROM audit WHERE id = ?", (r["id"],)).fetchone()[0] for r in rows}
    for row, page, lang in zip(rows, (en_page, zh_page), ("en", "zh"), strict=True):
        assert row["target"] == f"result:{rid}" and row["detail"]["lang"] == lang
        assert {k: row["detail"][k] for k in ("requested_by", "request_ref", "received", "case")} == {
            "requested_by": REQUEST["--requested-by"], "request_ref": "CD-2026-0815", "received": "2026-08-15", "case": "AJ2026-0815"}
        # the report quotes this very row as its chain head, with its own id inside it: a later copy can be checked against the trail
        assert f'data-testid="report-id">{row["detail"]["report_id"]}<' in page
        assert f'data-testid="chain-head">{hashes[row["id"]]}<' in page
    assert f"审计日志第 {rows[1]['id']} 行" in zh_page and f"audit row {rows[0]['id']}: the chain head" in en_page


def test_a_report_without_request_fields_says_they_were_not_stated(library, voices, tmp_path, capsys):
    from voiceprint.cli import run
    from voiceprint.library import Library

    zh, en = tmp_path / "zh.html", tmp_path / "en.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["li"]), "--lang", "zh", "-o", str(zh),
                "--library", str(library)]) == 0
    rid = found(r"result ([0-9a-f]{16})", capsys.readouterr().out)
    assert run(["report", rid, "-o", str(en), "--library", str(library)]) == 0
    assert [value for _label, _field, value in request_rows(zh.read_text(encoding="utf-8"))] == ['<span class="not-stated">未注明</span>'] * 4
    assert [value for _label, _field, value in request_rows(en.read_text(encoding="utf-8"))] == ['<span class="not-stated">not stated</span>'] * 4
    with Library.open(library) as lib:
        detail = lib.audit(limit=1, action="report")[0]["detail"]
    assert [detail[k] for k in ("requested_by", "request_ref", "received", "case")] == [None] * 4  # recorded as not given


def test_the_laboratory_a_library_names_issues_its_reports(library, voices, tmp_path, capsys):
    from voiceprint.cli import run
    from voiceprint.library import Library

    out = tmp_path / "r.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["li"]), "--lang", "zh", "-o", str(out), "--library", str(library)]) == 0
    assert found(r'鉴定机构</td><td class="wrap" data-testid="laboratory">(.*?)</td>', out.read_text(encoding="utf-8")) == \
        '<span class="not-stated">未注明</span>'
    assert run(["library", "settings", "--laboratory", "XX市公安局反诈中心声纹实验室 <b>", "--library", str(library)]) == 0
    assert run(["library", "settings", "--laboratory", "two\nlines", "--library", str(library)]) == 2
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["li"]), "-o", str(out), "--library", str(library)]) == 0
    assert found(r'Issued by \(laboratory\)</td><td class="wrap" data-testid="laboratory">(.*?)</td>', out.read_text(encoding="utf-8")) == \
        "XX市公安局反诈中心声纹实验室 &lt;b&gt;"
    with Library.open(library) as lib:
        assert lib.audit(limit=1, action="library.settings")[0]["detail"]["laboratory"] == "XX市公安局反诈中心声纹实验室 <b>"
        lib.set_laboratory("")
        assert lib.laboratory == ""


def test_a_zh_pdf_report_carries_chinese_text(library, voices):
    import subprocess

    pypdf = pytest.importorskip("pypdf", reason="pypdf (a dev dependency) is not installed: the PDF's text cannot be read")
    if not subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True).stdout.strip():
        pytest.skip("NO CJK FONT INSTALLED - run `make install` as root (fonts-wqy-zenhei); a zh PDF would show boxes")
    from voiceprint.evidence import build_report, render_html, render_pdf
    from voiceprint.library import Library

    with Library.open(library) as lib:
        body = lib.verify(voices["zhang"], voices["call"])
        html = render_html(build_report(lib, {"id": "t", "kind": "verify", "body": body}, "王警官", lang="zh"))
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(html)))
    text = re.sub(r"\s+", "", "".join(p.extract_text() for p in reader.pages))
    assert "检验问题与假设" in text and "鉴定人" in text and "王警官" in text
    assert f"第1页，共{len(reader.pages)}页" in text
    fonts = {str(f["/BaseFont"]) for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert any("WenQuanYi" in f or "CJK" in f for f in fonts), fonts


# -- the workbench ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app(library):
    pytest.importorskip("fastapi")
    from voiceprint.web.app import Settings, create_app

    application = create_app(Settings(library=str(library)))
    yield application
    application.state.wb.close()


def log_in(app, name: str = "inv", lang: str | None = None):
    from fastapi.testclient import TestClient

    c = TestClient(app, follow_redirects=False)
    if lang:
        assert c.get(f"/lang?to={lang}&next=/login").status_code == 303
    token = found(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert c.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token}).status_code == 303
    return c


def nav(page: str) -> list[str]:
    return re.findall(r">([^<]+)</a>", found(r"<nav>(.*?)</nav>", page, flags=re.S))


def test_the_workbench_is_english_by_default_and_chinese_after_the_switch(app):
    c = log_in(app)
    page = c.get("/persons").text
    assert nav(page)[:4] == ["Query", "Persons", "Cases", "Phones"] and '<html lang="en">' in page
    r = c.get("/lang", params={"to": "zh", "next": "/cases?q=AJ"})
    assert r.status_code == 303 and r.headers["location"] == "/cases?q=AJ"  # back to the page it came from
    assert "vp_lang=zh" in r.headers["set-cookie"] and "httponly" in r.headers["set-cookie"].lower()
    page = c.get("/persons").text
    assert nav(page)[:4] == ["比对", "人员", "案件", "电话号码"] and '<html lang="zh-CN">' in page
    assert "<h1>人员</h1>" in page and "前科人员" in page and "<b aria-current=\"true\">中文</b>" in page
    for path in ("/persons", "/persons/1", "/cases", "/cases/AJ2026-0815", "/phones", "/phones/13800138000", "/query", "/links", "/leads", "/fused"):
        labels = [t for t in texts_of(c.get(path).text, "h1", "h2", "h3", "th", "label", "button") if english_words(t)]
        assert not labels, (path, labels)
    # machine output stays English
    api = c.get("/api/persons").json()
    assert api["persons"][0]["category"] in ("prior_offender", "suspect")
    assert c.get("/lang?to=en&next=/persons").status_code == 303
    assert nav(c.get("/persons").text)[1] == "Persons"


def test_a_zh_query_shows_chinese_warnings_and_a_chinese_report(app, voices):
    c = log_in(app, lang="zh")
    csrf = c.get("/api/session").json()["csrf_token"]
    with open(voices["short"], "rb") as fh:
        r = c.post("/query", data={"csrf_token": csrf}, files={"files": ("short_call.wav", fh, "audio/wav")})
    assert r.status_code == 200, r.text
    assert "待比对录音质量不足：有效语音仅 1.3 s（门限 3 s）——证据较弱" in r.text and "<th>对数似然比 (log10 LR)</th>" in r.text
    rid = found(r'data-result-id="([0-9a-f]+)"', r.text)
    assert f'src="/results/{rid}/voice/0.png?lang=zh"' in r.text
    assert "<h2>1. 检验问题与假设</h2>" in c.get(f"/results/{rid}/report.html").text
    assert c.get(f"/results/{rid}/voice/0.png?lang=zh").content.startswith(b"\x89PNG")
    api = c.get(f"/api/results/{rid}").json()
    assert api["voices"][0]["warnings"][0].startswith("weak query: only")  # the saved result stays English


def test_serve_lang_zh_is_the_default_until_a_browser_switches(app, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setattr(app.state.wb.settings, "lang", "zh")  # what `voiceprint serve --lang zh` sets
    c = TestClient(app, follow_redirects=False)
    login = c.get("/login").text
    assert "<h1>登录</h1>" in login and "用户名" in login and '<html lang="zh-CN">' in login
    c.get("/lang?to=en&next=/login")
    assert "<h1>Log in</h1>" in c.get("/login").text
    tech = log_in(app, "tech")
    refused = tech.get("/query")
    assert refused.status_code == 403 and "您的角色（技术员）无权比对录音" in refused.text
    assert "cannot query recordings" in tech.post("/api/query").json()["error"]  # the API stays English
    bad = tech.post("/enrol", data={"csrf_token": "forged"})
    assert bad.status_code == 403 and "表单被拒绝" in bad.text and "CSRF 令牌" in bad.text


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", ""])
def test_the_language_switch_goes_back_only_to_local_pages(app, target):
    from fastapi.testclient import TestClient

    r = TestClient(app, follow_redirects=False).get("/lang", params={"to": "zh", "next": target})
    assert r.status_code == 303 and r.headers["location"] == "/"


@pytest.mark.parametrize("code", ["fr", "", "zh-TW-x", "<script>"])
def test_the_language_switch_refuses_unknown_languages(app, code):
    from fastapi.testclient import TestClient

    r = TestClient(app, follow_redirects=False).get("/lang", params={"to": code, "next": "/persons"})
    assert r.status_code == 400 and "set-cookie" not in r.headers and "<script>" not in r.text
    # an unknown cookie value (set by hand) is ignored: the server's language
    c = TestClient(app, follow_redirects=False, cookies={"vp_lang": code or "xx"})
    assert "<h1>Log in</h1>" in c.get("/login").text


def test_the_refusals_a_workbench_user_meets_most_are_chinese(tmp_path):
    """An unusable upload's reason stayed English on a Chinese page (the catalogue had none of the audio refusals)."""
    import numpy as np
    import soundfile as sf

    from voiceprint.audio import load_recording, prepare_speech
    from voiceprint.errors import AudioError

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_bytes(b"this is a text file, not a recording " * 50)
    (tmp_path / "folder.wav").mkdir()
    sf.write(tmp_path / "silence.wav", np.zeros(16000 * 3, np.float32), 16000)
    sf.write(tmp_path / "hiss.wav", (np.random.default_rng(0).standard_normal(16000 * 3) * 0.01).astype(np.float32), 16000)
    refusals = []
    for name in ("missing.wav", "empty.wav", "text.wav", "folder.wav", "silence.wav", "hiss.wav"):
        try:
            rec = load_recording(str(tmp_path / name))
            prepare_speech(rec.channels[0], path=str(tmp_path / name), min_speech=1.0)
        except AudioError as err:
            refusals.append((str(tmp_path / name), str(err)))
    assert len(refusals) == 6 and "no speech found" in refusals[-1][1]
    for path, message in refusals:
        zh = i18n.translate(message, "zh")
        decoder = re.search(r"unsupported format: (.*?)\) - ", message)  # FFmpeg's own words are data, kept as said
        rest = zh.replace(path, "").replace(decoder.group(1) if decoder else "\0", "")
        assert zh.startswith(path) and CJK.search(zh) and not english_words(rest), f"{message!r} -> {zh!r}"


def test_every_audit_action_the_code_writes_has_a_chinese_gloss():
    from pathlib import Path

    from voiceprint.i18n_zh import AUDIT_ACTIONS

    source = "\n".join(p.read_text(encoding="utf-8") for p in Path(i18n.__file__).parent.rglob("*.py"))
    codes = set(re.findall(r"\baudit(?:_read)?\((?:[\w.]+, )?\s*\"([a-z_]+(?:\.[a-z_]+)*)\"", source))
    assert {"enrol", "person.delete", "login.throttled", "case.add_recording", "leadchart.view"} <= codes
    assert not codes - set(AUDIT_ACTIONS), f"no gloss for {sorted(codes - set(AUDIT_ACTIONS))}"


def test_the_zh_audit_page_glosses_each_action_beside_its_code(app):
    page = log_in(app, "sup", lang="zh").get("/audit").text
    assert "<td>enrol（采集入库）</td>" in page and "<td>login（登录）</td>" in page
    assert "<td>enrol</td>" in log_in(app, "sup", lang="en").get("/audit").text


@pytest.mark.parametrize("path", ["/persons/999", "/persons/abc", "/phones/12345", "/results/nothere", "/results/nothere/report.docx",
                                  "/fused/chart?key=bogus", "/audit?since=yesterday", "/nothere", "/logout"])
def test_a_refusal_on_a_chinese_page_is_chinese(app, path):
    page = log_in(app, "sup", lang="zh").get(path).text
    said = htmlmod.unescape(re.sub(r"<[^>]+>", "", found(r'data-testid="error-message">(.*?)</p>', page, flags=re.S)))
    data = re.sub(r"`[^`]*`|'[^']*'|YYYY-MM-DD|\bhtml\b|\bpdf\b", "", said)  # commands, the value refused and formats are data
    assert '<html lang="zh-CN">' in page and "<nav>" in page and CJK.search(said) and not english_words(data), said


def test_a_manifest_refusal_names_the_uploaded_manifest_not_the_servers_copy(app, voices):
    c = log_in(app, "tech", lang="zh")
    csrf = c.get("/api/session").json()["csrf_token"]
    with open(voices["li"], "rb") as fh:
        r = c.post("/enrol", data={"csrf_token": csrf}, files=[("files", ("li_interview.wav", fh, "audio/wav")),
                                                             ("manifest", ("名单.csv", b"file,person\nli_interview.wav,Li\n", "text/csv"))])
    said = htmlmod.unescape(r.text)
    assert "名单.csv：清单缺少列 path" in said and ".incoming" not in said and "manifest-" not in said


def _stereo_of_two_durations(path: Path) -> Path:
    """Zhang San's voice on the left (about 3 s of speech), Li Si's on the right (over 10 s): wideband voices of two buckets."""
    import numpy as np

    left = audiogen.synth_speech(3.5, seed=1, f0=110)
    right = audiogen.synth_speech(14.0, seed=3, f0=210)
    return audiogen.write_audio(path, np.stack([np.pad(left, (0, len(right) - len(left))), right]), 16000)


def test_a_report_marks_the_held_out_row_of_every_voice_and_says_when_a_voice_has_none(library, tmp_path, capsys):
    """A stereo query's report marked the held-out row of channel 0 only; channel 1's wideband voice of over 10 s of speech (no
    held-out trials of that duration) was marked nowhere and not mentioned. The provenance line was English in a zh report."""
    from voiceprint.cli import run

    query = _stereo_of_two_durations(tmp_path / "two_channels.wav")
    en, zh = tmp_path / "en.html", tmp_path / "zh.html"
    assert run(["report", "--query", str(query), "-o", str(en), "--library", str(library)]) == 0
    rid = found(r"result ([0-9a-f]{16})", capsys.readouterr().out)
    assert run(["report", rid, "--lang", "zh", "-o", str(zh), "--library", str(library)]) == 0
    english, page = en.read_text(encoding="utf-8"), zh.read_text(encoding="utf-8")
    marked = re.findall(r'data-testid="heldout-this-case"><td>([^<]+)</td><td>([^<]+)</td>.*?<td>([^<]*)</td></tr>', english)
    assert marked == [("wideband", "2-5s", "this case: channel 0, voice 0")], marked
    assert [htmlmod.unescape(x) for x in re.findall(r'data-testid="heldout-no-row">([^<]+)<', english)] == [
        "channel 1, voice 0 (wideband, >=10s): no held-out trials of this duration; the Tippett plot shows the channel pair's trials "
        "of every duration"]
    assert "held-out test speakers (never used to fit the back end), wideband trials, every duration" in english
    assert re.search(r"test \(never used to fit or tune the back end\); speechocean762/clean \(\d+ speakers, \d+ tests\)", english)
    assert re.findall(r'data-testid="heldout-this-case">.*?<td>([^<]*)</td></tr>', page) == ["本案：声道 0，说话人 0"]
    no_row = found(r'data-testid="heldout-no-row">([^<]+)<', page)
    assert no_row.startswith("声道 1，说话人 0（宽带，&gt;=10s）：留出测试集中没有此时长的试验") and not english_words(no_row), no_row
    provenance = htmlmod.unescape(found(r'data-testid="heldout".*?<p class="hint"><small>([^<]+)</small>', page, flags=re.S))
    assert "测试集（从未用于拟合或调整后端）" in provenance and re.search(r"speechocean762/clean（\d+ 名说话人，\d+ 次测试）", provenance)
    assert not english_words(re.sub(r"[\w-]+/[\w>-]+", "", provenance)), provenance  # the condition names are data


def test_a_report_prints_and_records_the_librarys_case_number_not_the_one_typed(library, voices, tmp_path):
    """`report --case ａｊ２０２６－０８１５` found case AJ2026-0815 but printed and audited the full-width text: a search of the
    trail for AJ2026-0815 missed the report."""
    from voiceprint.cli import run
    from voiceprint.library import Library

    out = tmp_path / "r.html"
    assert run(["report", "--verify", str(voices["zhang"]), "--verify", str(voices["li"]), "--case", "ａｊ２０２６－０８１５", "-o", str(out),
                "--library", str(library)]) == 0
    assert dict((field, value) for _label, field, value in request_rows(out.read_text(encoding="utf-8")))["case"] == "AJ2026-0815"
    with Library.open(library) as lib:
        assert lib.audit(limit=1, action="report")[0]["detail"]["case"] == "AJ2026-0815"
