"""The case file and the lead graph: calling numbers on cases, CSV import, edges from the library and CDR files,
incremental refresh, the CDR score calibration."""

from __future__ import annotations

import json

import pytest
from leadsgen import den_numbers, tiny_county

from voiceprint import graph
from voiceprint.cli import run
from voiceprint.errors import DataError
from voiceprint.library import Library
from voiceprint.store import case_calls


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return tiny_county(tmp_path_factory.mktemp("county"))


def test_case_add_records_calling_numbers_normalised(tmp_path):
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0  # only init and enrol create a library
    assert run(["case", "add", "AJ-1", "--area", "Guangzhou", "--calling-number", "139 0000 0050", "--called-at", "2019-10-03 10:12",
                "--calling-number", "+86 139-0000-0051", "--called-at", "2019/10/04 09:00:00", "--library", lib]) == 0
    assert run(["case", "add", "AJ-1", "--calling-number", "13900000050", "--called-at", "2019-10-03T10:12", "--library", lib]) == 0
    with Library.open(lib) as opened:
        rows = case_calls(opened.store, "AJ-1")
        area = opened.store.db.execute("SELECT area FROM cases WHERE case_number = 'AJ-1'").fetchone()[0]
    assert [(r["number"], r["called_at"]) for r in rows] == [("+8613900000050", "2019-10-03 10:12:00"),
                                                              ("+8613900000051", "2019-10-04 09:00:00")]  # the repeat is not added twice
    assert area == "Guangzhou"


def test_case_add_refuses_bad_times_and_unpaired_options(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    assert run(["case", "add", "AJ-1", "--calling-number", "13900000050", "--called-at", "yesterday", "--library", lib]) == 8
    assert "YYYY-MM-DD HH:MM" in capsys.readouterr().err
    assert run(["init", "--library", lib]) == 0
    assert run(["case", "add", "C4", "--calling-number", "abc", "--called-at", "2020-01-16 17:42", "--library", lib]) == 8
    with Library.open(lib) as opened:  # the refused option left no case behind
        assert opened.store.db.execute("SELECT count(*) FROM cases").fetchone()[0] == 0
    assert run(["case", "add", "AJ-1", "--calling-number", "1", "--calling-number", "2", "--called-at", "2019-10-03 10:00",
                "--called-at", "2019-10-03 11:00", "--called-at", "2019-10-03 12:00", "--library", lib]) == 2


def test_case_add_refuses_one_time_for_several_numbers(tmp_path, capsys):
    """One --called-at for two numbers stored the second number with the first's time: refused (exit 2), nothing written."""
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    capsys.readouterr()
    assert run(["case", "add", "AJ2026-0003", "--calling-number", "13900000001", "--calling-number", "13900000002",
                "--called-at", "2020-03-01 10:00", "--library", lib]) == 2
    assert "one --called-at per --calling-number" in capsys.readouterr().err
    with Library.open(lib) as opened:
        assert opened.store.db.execute("SELECT count(*) FROM cases").fetchone()[0] == 0
        assert case_calls(opened.store) == []
    assert run(["case", "add", "AJ2026-0003", "--calling-number", "13900000001", "--calling-number", "13900000002",
                "--library", lib]) == 0  # no time at all is still fine
    with Library.open(lib) as opened:
        assert [(r["number"], r["called_at"]) for r in case_calls(opened.store)] == [("+8613900000001", ""), ("+8613900000002", "")]


@pytest.mark.parametrize("victim", ["1380000000", "abc", "138****8000"])
def test_case_import_refuses_a_bad_victim_number_naming_the_line(tmp_path, capsys, victim):
    """A 10-digit or unreadable victim_number was dropped without a word (rc 0), while a bad calling_number refused the file."""
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    bad = tmp_path / "cases_v.csv"
    bad.write_text("case_number,calling_number,called_at,victim_number\nAJ2026-0100,13900000247,2020-02-01 09:00,13800000000\n"
                   f"AJ2026-0101,13900000248,2020-02-01 09:00,{victim}\n", encoding="utf-8")
    assert run(["case", "import", str(bad), "--library", lib]) == 8
    err = capsys.readouterr().err
    assert "line 3: victim_number " in err and "nothing was imported" in err and len(err.strip().splitlines()) == 1
    with Library.open(lib) as opened:
        assert case_calls(opened.store) == []
    bad.write_text("case_number,calling_number,called_at,victim_number\nAJ2026-0100,13900000247,2020-02-01 09:00,13800000000\n", encoding="utf-8")
    assert run(["case", "import", str(bad), "--library", lib]) == 0
    with Library.open(lib) as opened:
        assert [r["victim_number"] for r in case_calls(opened.store)] == ["+8613800000000"]


def test_case_import_is_all_or_nothing_and_idempotent(tmp_path, capsys):
    lib = str(tmp_path / "lib")
    good = tmp_path / "cases.csv"
    good.write_text("case_number,calling_number,called_at,area,title\nAJ-7,13900000050,2019-10-03 10:12,广州,冒充客服\n"
                    "AJ-7,13900000051,2019-10-03 10:40,广州,冒充客服\nAJ-8,13900000052,,深圳,\n", encoding="gbk")
    assert run(["case", "import", str(good), "--library", lib]) == 7  # a misspelt library is not created
    assert "voiceprint init" in capsys.readouterr().err and not (tmp_path / "lib").exists()
    assert run(["init", "--library", lib]) == 0
    assert run(["case", "import", str(good), "--library", lib]) == 0
    assert "3 rows: 2 cases, 3 new calls" in capsys.readouterr().out
    assert run(["case", "import", str(good), "--library", lib]) == 0
    out, err = capsys.readouterr()
    assert "0 new calls" in out and "note:" not in err  # the same file again changes nothing, and says nothing
    retitled = tmp_path / "retitled.csv"
    retitled.write_text("case_number,calling_number,called_at,title,status\nAJ-7,,,冒充公检法,\nAJ-8,,,,closed\nAJ-8,,,,open\n",
                        encoding="utf-8")
    assert run(["case", "import", str(retitled), "--library", lib]) == 0
    err = capsys.readouterr().err
    assert "changed the area, title or status of 2 existing case(s): AJ-7, AJ-8" in err
    assert "later rows give other details than the first for AJ-8" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("case_number,calling_number,called_at\nAJ-9,13900000053,2019-10-03 10:12\nAJ-9,13900000054,not a time\n")
    assert run(["case", "import", str(bad), "--library", lib]) == 8
    assert "line 3" in capsys.readouterr().err
    missing = tmp_path / "missing.csv"
    missing.write_text("case_number,calling_number,called_at,recording\nAJ-9,13900000053,,nowhere.amr\n")
    assert run(["case", "import", str(missing), "--library", lib]) == 8
    with Library.open(lib) as opened:
        assert {r["case_number"] for r in case_calls(opened.store)} == {"AJ-7", "AJ-8"}  # nothing of the bad files
        assert opened.store.db.execute("SELECT area FROM cases WHERE case_number = 'AJ-7'").fetchone()[0] == "广州"
    (tmp_path / "empty.csv").write_bytes(b"")
    assert run(["case", "import", str(tmp_path / "empty.csv"), "--library", lib]) == 8
    for column, value in (("date", "2020-13-45"), ("date", "2020/03/02"), ("status", "weird")):
        (tmp_path / "odd.csv").write_text(f"case_number,{column}\nAJ-20,\nAJ-21,{value}\n", encoding="utf-8")
        assert run(["case", "import", str(tmp_path / "odd.csv"), "--library", lib]) == 8
        assert f"line 3: {column} '{value}'" in capsys.readouterr().err
    for option, value in (("--date", "2020-13-45"), ("--date", "20200302"), ("--status", "weird")):
        assert run(["case", "add", "AJ-22", option, value, "--library", lib]) == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert run(["case", "add", "AJ-22", "--date", "2020-02-29", "--status", "solved", "--library", lib]) == 0
    with Library.open(lib) as opened:
        assert not opened.store.db.execute("SELECT 1 FROM cases WHERE case_number IN ('AJ-20', 'AJ-21')").fetchall()
        assert tuple(opened.store.db.execute("SELECT date, status FROM cases WHERE case_number = 'AJ-22'").fetchone()) == ("2020-02-29", "solved")
        with pytest.raises(DataError, match="status 'weird'"):
            opened.add_case("AJ-23", status="weird")
    (tmp_path / "junk.amr").write_text("not audio")
    refused = tmp_path / "refused.csv"  # the case goes in; the recording that cannot is an error a script sees
    refused.write_text("case_number,calling_number,called_at,recording\nAJ-10,13900000060,,junk.amr\n", encoding="utf-8")
    assert run(["case", "import", str(refused), "--library", lib]) == 3
    assert "refused:" in capsys.readouterr().err
    typo = tmp_path / "typo.csv"  # a misspelt column would lose every number in it
    typo.write_text("case_number,calling_no,called_at\nX7,13900000007,2020-01-01 10:00\n", encoding="utf-8")
    capsys.readouterr()
    assert run(["case", "import", str(typo), "--library", lib]) == 8
    assert "unknown column(s) calling_no" in capsys.readouterr().err


def test_graph_edges_from_library_registry_cdr_and_handsets(tmp_path, county):
    victim, callers, times = county["victims"][0][0]
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ-1", area="Guangdong")
        from voiceprint.graph_cli import add_calls

        add_calls(lib, "AJ-1", list(zip(callers, times, strict=False)))
        report = graph.refresh(lib, county["calls"], county["features"], county["registry"])
        assert all(v.startswith("rebuilt") for v in report.values())
        edges = lib.store.db.execute("SELECT origin, src, dst, kind, log10_lr, evidence FROM lead_edges").fetchall()
    kinds = {(o, k) for o, _, _, k, _, _ in edges}
    assert {("library", "called_victim"), ("registry", "registered_to"), ("cdr", "cdr_score"), ("handset", "uses_handset"),
            ("community", "shares_contacts")} <= kinds
    cdr = {s[7:]: w for o, s, _, k, w, _ in edges if k == "cdr_score"}
    cal = graph.load_calibration()
    lo, hi = (x / 2.302585 for x in cal["llr_limit"])
    assert all(lo - 1e-3 <= w <= hi + 1e-3 for w in cdr.values())  # bounded by the calibration's validation
    den = den_numbers(0)
    assert min(cdr[n] for n in den) > max(w for n, w in cdr.items() if n not in sum((den_numbers(d) for d in (0, 1)), []))
    handsets: dict = {}
    for _, s, d, k, _, _ in edges:
        if k == "uses_handset":
            handsets.setdefault(d, set()).add(s[7:])
    assert any(set(den) & nums and len(nums) >= 2 for nums in handsets.values())  # the den's shared handsets
    community = {(s[7:], d[7:]) for o, s, d, k, _, _ in edges if k == "shares_contacts"}
    assert community and all(a < b for a, b in community)
    assert sum(1 for a, b in community if a in den and b in den) >= len(den) - 1  # a den's numbers call the same rare victims
    assert all(json.loads(e)["shared_contacts"] >= 2 for _, _, _, k, _, e in edges if k == "shares_contacts")
    called = [json.loads(e) for _, s, d, k, _, e in edges if k == "called_victim" and s[7:] == callers[0]]
    assert called and called[0]["called_at"]


def test_refresh_is_incremental(tmp_path, county):
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ-1")
        graph.refresh(lib, county["calls"], county["features"], county["registry"])
        again = graph.refresh(lib)  # the CDR files are remembered
        assert set(again.values()) == {"unchanged"}
        from voiceprint.graph_cli import add_calls

        add_calls(lib, "AJ-1", [(den_numbers(1)[0], "2019-10-01 10:00:00")])
        after = graph.refresh(lib)
        assert after["library"].startswith("rebuilt") and after["reach"].startswith("rebuilt")
        assert after["cdr"] == after["handset"] == after["community"] == after["registry"] == after["voice"] == "unchanged"
        assert graph.sources(lib.store)["features"] == str(county["features"].resolve())


def test_a_wrong_file_is_refused_and_not_remembered(tmp_path, county):
    """A failed refresh must not leave its bad path behind for every later run to fail on."""
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ-1")
        graph.refresh(lib, county["calls"], county["features"], county["registry"])
        with pytest.raises(DataError, match="not an imported calls table"):
            graph.refresh(lib, calls=county["features"])  # the feature table given as the calls
        bad = tmp_path / "features.csv"
        bad.write_text("a,b\n1,2\n", encoding="utf-8")
        with pytest.raises(DataError):
            graph.refresh(lib, features=bad)  # no feature layout: fails while building
        assert graph.sources(lib.store)["features"] == str(county["features"].resolve())
        graph.refresh(lib)  # the next run, without options, builds from the remembered files


def test_voice_leads_do_not_need_the_cdr_files(tmp_path, county):
    import shutil

    features = tmp_path / "features.parquet"
    shutil.copy(county["features"], features)
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ-1")
        graph.refresh(lib, county["calls"], features, county["registry"])
        features.unlink()  # moved away
        report = graph.refresh(lib, need_cdr=False)
        assert report["cdr"].startswith("kept") and report["library"] == "unchanged"
        with pytest.raises(DataError, match="it is gone"):
            graph.refresh(lib)  # CDR evidence asked for: the missing file is named


def test_refresh_names_a_missing_cdr_file(tmp_path):
    with Library.create(tmp_path / "lib") as lib:
        with pytest.raises(DataError, match="no such file"):
            graph.refresh(lib, features=tmp_path / "nope.parquet")
        (tmp_path / "cal.json").write_text("{}")
        with pytest.raises(DataError, match="fit_cdr_calibration"):
            graph.load_calibration(tmp_path / "cal.json")


def test_calibration_is_monotone_and_capped():
    cal = graph.load_calibration()
    values = [graph.cdr_log10_lr(s / 10, cal) for s in range(11)]
    assert values == sorted(values) and values[0] < 0 < values[-1]
    assert values[-1] <= cal["log10_limit"][1] + 1e-3 and values[0] >= cal["log10_limit"][0] - 1e-3


def test_leads_say_when_no_calling_number_of_the_cases_was_screened(tmp_path, county, capsys):
    """Features computed from another set of CDRs than the cases' are no CDR evidence, whatever the ranking shows."""
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    assert run(["case", "add", "AJ-1", "--calling-number", "13911112222", "--called-at", "2019-10-03 10:12", "--library", lib]) == 0
    capsys.readouterr()
    assert run(["leads", "--features", str(county["features"]), "--calls", str(county["calls"]), "--library", lib]) == 0
    assert "none of the 1 numbers that called the case victims is in" in capsys.readouterr().err
    assert run(["leads", "--sources", "voice", "--library", lib]) == 0
    assert "none of the" not in capsys.readouterr().err


def test_a_deleted_person_leaves_no_lead_edge(tmp_path, county):
    """Erasure: the lead graph kept a deleted person's edges (phones, voice matches) until the next refresh."""
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ-1")
        pid = lib.store.add_person("Zhang San")
        lib.store.add_phone("13800138000", pid)
        graph.refresh(lib, need_cdr=False)
        node = f"person:{pid}"
        edges = "SELECT COUNT(*) FROM lead_edges WHERE src = ? OR dst = ?"
        assert lib.store.db.execute(edges, (node, node)).fetchone()[0] >= 1
        with lib.store.transaction():
            lib.store.delete_person(pid)
        assert lib.store.db.execute(edges, (node, node)).fetchone()[0] == 0
        [row] = lib.store.audit_rows(1, "person.delete")
        assert row["detail"]["lead_edges_erased"] >= 1


def test_no_leads_says_whether_there_are_no_candidates_or_none_reaches_the_threshold(tmp_path, capsys, monkeypatch):
    """`leads` said "no open case has a calling number or a voice tied to anyone" when an open case's calling number was
    registered to a library person but the calling screen scored it below the tie threshold."""
    from voiceprint import fused

    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    assert run(["case", "add", "AJ-1", "--library", lib]) == 0
    capsys.readouterr()
    assert run(["leads", "--library", lib]) == 0
    out = capsys.readouterr().out
    assert "no leads: no open case has a calling number or a voice" in out
    assert run(["person", "add", "张伟", "--phone", "13800138001", "--library", lib]) == 0
    assert run(["case", "add", "AJ-1", "--calling-number", "13800138001", "--library", lib]) == 0
    assert run(["leads", "--library", lib]) == 0  # builds the library's edges: 张伟 is a candidate at log10 LR 0, a lead
    assert "张伟" in capsys.readouterr().out
    with Library.open(lib) as opened, opened.store.transaction():  # the calling screen scores the number well below even odds
        opened.store.db.execute("INSERT INTO lead_edges(origin, src, dst, kind, log10_lr, evidence) VALUES "
                                "('features', 'number:+8613800138001', 'screen', 'cdr_score', -1.3, ?)",
                                (json.dumps({"score": 0.02, "reasons": []}),))
    monkeypatch.setattr(graph, "refresh", lambda *a, **k: {})  # no CDR files here: keep the edge as it is
    with Library.open(lib) as opened:
        assert fused.build_leads(opened) == []
        reason = fused.no_leads_reason(opened)
    assert "none reaches the tie threshold (combined log10 LR >= 0)" in reason and "张伟 in case AJ-1 at log10 LR -1.30" in reason
    assert run(["leads", "--library", lib]) == 0
    out = capsys.readouterr().out
    assert "no leads: 1 candidate(s)" in out and "tie threshold" in out and "no open case has" not in out
