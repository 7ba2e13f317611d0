"""The CLI as users meet it: one-line errors with documented exit codes, JSON for pipelines, instant help."""

import json
import subprocess
import sys

import audiogen
import pytest

from voiceprint.cli import run


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return audiogen.speech_file(tmp_path_factory.mktemp("cli") / "known.wav", seed=1, f0=110)


@pytest.fixture
def library(tmp_path):
    lib = str(tmp_path / "lib")
    assert run(["init", "--library", lib]) == 0
    return lib


def test_help_loads_no_heavy_module():
    code = "import sys; from voiceprint.cli import app; print(sorted(m for m in ('torch','speechbrain','faiss','duckdb','sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_the_workflow(capsys):
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("init", "enrol", "query", "verify", "person", "case", "index", "audit", "models"):
        assert command in out


def test_backend_fit_refuses_an_unknown_part_of_the_plan(capsys):
    assert run(["backend", "fit", "--only", "bogus:clean", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "bogus:clean" in err and "hyke_ivr_8k:clean" in err and "Traceback" not in err


def test_a_refused_input_is_never_exit_0_and_what_worked_is_still_output(library, clip, tmp_path, capsys):
    text = tmp_path / "in" / "text.wav"
    text.parent.mkdir()
    text.write_text("not audio at all\n")
    assert run(["enrol", str(clip), "--person", "Zhang San", "--library", library]) == 0
    assert run(["case", "add", "KX", "--library", library]) == 0
    capsys.readouterr()
    assert run(["query", str(text), "--library", library]) == 3
    assert run(["screen", str(text), "--library", library]) == 3
    assert run(["screen", str(text), "--json", "--library", library]) == 3
    assert run(["case", "add-recording", "KX", str(text), "--json", "--library", library]) == 3
    assert run(["case", "add-recording", "KX", str(text), "--library", library]) == 3
    capsys.readouterr()
    assert run(["query", str(clip), str(text), "--json", "--library", library]) == 3
    out = capsys.readouterr()
    good, bad = json.loads(out.out)
    assert good["hits"] and bad["error"] and "refused 1 of 2 input(s) - the other 1 were searched" in out.err
    (text.parent / "clip.wav").write_bytes(clip.read_bytes())
    assert run(["screen", str(text.parent), "--json", "--library", library]) == 3
    out = capsys.readouterr()
    assert len(json.loads(out.out)) == 2 and "refused 1 of 2 input(s)" in out.err
    assert run(["case", "add-recording", "KX", str(clip), str(text), "--json", "--library", library]) == 3
    out = capsys.readouterr()
    assert [r["status"] for r in json.loads(out.out)] == ["matched", "refused"] and "refused 1 of 2" in out.err


def test_a_single_files_refusal_still_writes_the_report_and_json_a_pipeline_asked_for(library, tmp_path, capsys):
    text = tmp_path / "text.wav"
    text.write_text("not audio at all\n")
    report = tmp_path / "outcome.csv"
    assert run(["enrol", str(text), "--person", "A", "--json", "--report", str(report), "--library", library]) == 3
    out = capsys.readouterr()
    [row] = json.loads(out.out)["outcomes"]
    assert row["status"] == "refused" and row["exit_code"] == 3 and "not a readable audio file" in row["reason"]
    assert out.err.count("not a readable audio file") == 1  # the one error line, not a summary as well
    assert "refused" in report.read_text() and "not a readable audio file" in report.read_text()


def test_negative_counts_and_lengths_are_usage_errors(library, clip, capsys):
    assert run(["enrol", str(clip), "--person", "A", "--min-speech", "-1", "--library", library]) == 2
    assert run(["audit", "--limit", "-1", "--library", library]) == 2
    assert run(["audit", "--limit", "0", "--library", library]) == 2
    assert run(["link", "--min-cases", "-1", "--library", library]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert run(["person", "list", "--json", "--library", library]) == 0
    assert json.loads(capsys.readouterr().out) == []  # nothing enrolled by the refused command


def test_two_output_formats_at_once_are_refused_before_any_work(library, clip, tmp_path, capsys):
    from voiceprint.calls.cli import app as calls_app

    assert run(["screen", str(clip), "--json", "--csv", "--library", library]) == 2
    assert "--json" in capsys.readouterr().err
    assert run(["audit", "--json", "--csv", "--library", library]) == 2
    assert run(["person", "list", "--json", "--csv", "--library", library]) == 2
    from typer.testing import CliRunner

    table = tmp_path / "calls.csv"
    table.write_text("number,other,direction,start\n", encoding="utf-8")
    result = CliRunner().invoke(calls_app, ["import", str(table), "-o", str(tmp_path / "c.parquet"), "--json", "--format", "csv"])
    assert result.exit_code == 2 and not (tmp_path / "c.parquet").exists()
    assert CliRunner().invoke(calls_app, ["score", "-f", str(table), "--json", "--csv"]).exit_code == 2


def test_enrol_query_json_shape(library, clip, capsys):
    assert run(["enrol", str(clip), "--person", "Zhang San", "--category", "prior_offender",
                "--phone", "13800138000", "--case", "AJ-1", "--library", library]) == 0
    capsys.readouterr()
    assert run(["query", str(clip), "--json", "--library", library]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert result["file"] == str(clip)
    hit = result["hits"][0]
    assert hit["person"]["name"] == "Zhang San" and hit["person"]["category"] == "prior_offender"
    assert {"score", "sample", "phones", "cases"} <= hit.keys()
    assert hit["phones"] == ["+8613800138000"] and hit["cases"][0]["case_number"] == "AJ-1"
    assert run(["index", "check", "--library", library]) == 0


def test_audit_json_lists_enrol_and_query(library, clip, capsys):
    assert run(["--operator", "officer-7", "enrol", str(clip), "--person", "A", "--library", library]) == 0
    assert run(["--operator", "officer-9", "query", str(clip), "--library", library]) == 0
    capsys.readouterr()
    assert run(["audit", "--json", "--library", library]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_action = {r["action"]: r["operator"] for r in rows}
    assert by_action["enrol"] == "officer-7" and by_action["query"] == "officer-9"


@pytest.mark.parametrize("content,code", [(b"", 3), (b"RIFF\x00\x00garbage", 3)])
def test_bad_audio_is_one_line_and_exit_3(tmp_path, library, capsys, content, code):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    assert run(["enrol", str(bad), "--person", "X", "--library", library]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "bad.wav" in err and len(err.splitlines()) == 1


def test_unknown_person_is_exit_7(library, capsys):
    run(["init", "--library", library])
    assert run(["person", "show", "Nobody", "--library", library]) == 7
    assert "voiceprint person list" in capsys.readouterr().err


def test_bad_manifest_is_exit_8(tmp_path, library, capsys):
    m = tmp_path / "m.csv"
    m.write_text("file,name\n")
    assert run(["enrol", str(m), "--library", library]) == 8
    assert "lacks column" in capsys.readouterr().err
    assert run(["enrol", str(m), "--person", "X", "--library", library]) == 2  # a manifest names its own persons
    assert "a manifest names each row's person" in capsys.readouterr().err


def test_a_manifest_whose_every_row_has_a_bad_value_is_exit_8_not_3(tmp_path, library, clip, capsys):
    """Rows refused for a bad phone number exited 3, the family of an unusable recording."""
    m = tmp_path / "m.csv"
    m.write_text(f"path,person,phone\n{clip},Bad Phone,not-a-number\n", encoding="utf-8")
    assert run(["enrol", str(m), "--library", library]) == 8
    assert "is not a phone number" in capsys.readouterr().err


def test_usage_error_is_exit_2(capsys):
    assert run(["no-such-command"]) == 2


def test_models_list_shows_the_default(capsys):
    assert run(["models", "list", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert any(m["name"] == "ecapa-voxceleb" and m["dim"] == 192 for m in models)


def test_an_error_raised_by_ctrl_c_is_an_interrupt_not_a_bug(capsys):
    """DuckDB turns Ctrl-C into its own "Query interrupted" error: after a SIGINT that is exit 130 and
    a what-to-do line, never "internal error ... report it" or a bad-file message."""
    from voiceprint import cli
    from voiceprint.errors import DataError

    assert cli._failed(RuntimeError("Query interrupted")) == 1
    assert "internal error" in capsys.readouterr().err
    cli.INTERRUPTED.set()
    try:
        for err in (RuntimeError("Query interrupted"), DataError("calls.csv: cannot be read (Query interrupted)")):
            assert cli._failed(err) == cli.EXIT_INTERRUPTED
            assert capsys.readouterr().err.strip() == "interrupted: stopped before it finished - run the same command again"
    finally:
        cli.INTERRUPTED.clear()


def test_enrol_into_a_missing_library_says_it_made_a_new_one(tmp_path, clip, capsys):
    """A mistyped --library must not file voiceprints where nobody searches, without a word."""
    typo = tmp_path / "contry"
    assert run(["enrol", str(clip), "--person", "A", "--library", str(typo)]) == 0
    assert f"note: there was no library at {typo}: a new, empty one was created" in capsys.readouterr().err
    assert run(["enrol", str(clip), "--person", "B", "--library", str(typo)]) == 8  # one voice, two people: refused
    assert "note:" not in capsys.readouterr().err


def test_ctrl_c_is_always_said_on_screen(monkeypatch, capsys):
    """Exit 130 with nothing on stderr reads as success to whoever watches the screen."""
    from voiceprint import cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_open", interrupted)
    assert cli.run(["person", "list", "--library", "anywhere"]) == 130
    assert capsys.readouterr().err.strip().startswith("interrupted (Ctrl-C)")


def test_after_a_command_the_database_file_alone_holds_the_library(library, clip, tmp_path):
    """An administrator who backs up library.sqlite alone must not get an empty library: the command
    closes it, and SQLite folds its write-ahead log into the file."""
    import shutil
    import sqlite3

    assert run(["enrol", str(clip), "--person", "A", "--library", library]) == 0
    copy = tmp_path / "backup.sqlite"
    shutil.copy(f"{library}/library.sqlite", copy)
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT count(*) FROM voiceprints").fetchone()[0] == 1


def test_a_database_older_than_its_index_is_not_rebuilt_over(library, clip, tmp_path, capsys):
    """library.sqlite restored without its log: the index remembers rows the database lost, and the
    advice must be to restore the folder, not to rebuild the index down to the older database."""
    import shutil

    before = tmp_path / "before.sqlite"
    shutil.copy(f"{library}/library.sqlite", before)  # an empty library, as a copy taken too early
    assert run(["enrol", str(clip), "--person", "A", "--library", library]) == 0
    shutil.copy(before, f"{library}/library.sqlite")
    capsys.readouterr()
    assert run(["index", "check", "--library", library]) == 5
    err = capsys.readouterr().err
    assert "no longer has" in err and "do not run `index rebuild`" in err


@pytest.mark.parametrize("exc,words", [
    (OSError(28, "No space left on device", "/lib/.lock"), "no space left on the disk (/lib/.lock)"),
    (OSError(30, "Read-only file system", "/lib/.lock"), "the file system is read-only (/lib/.lock)"),
    (__import__("sqlite3").OperationalError("attempt to write a readonly database"), "the library database is read-only"),
    (__import__("sqlite3").OperationalError("database or disk is full"), "no space left on the device holding the library - free space"),
    (__import__("sqlite3").OperationalError("disk I/O error"), "the disk under the library failed"),
    # an --out under a file, or somewhere no file can be made (/proc)
    (FileExistsError(17, "File exists", "calls.csv"), "a file stands where a folder is needed, or a folder where a file is (calls.csv)"),
    (NotADirectoryError(20, "Not a directory", "calls.csv/f.parquet"), "a file stands where a folder is needed"),
    (FileNotFoundError(2, "No such file or directory", "/proc/f.parquet"), "no such file or folder (/proc/f.parquet)"),
])
def test_a_full_or_read_only_disk_is_one_line_and_exit_5_not_an_internal_error(exc, words, capsys):
    from voiceprint.cli import _failed

    assert _failed(exc) == 5
    err = capsys.readouterr().err
    assert words in err and "internal error" not in err and "what was reported done before is kept" in err


def test_a_table_never_cuts_a_phone_number_short():
    import io

    from voiceprint.report import print_rows

    out = io.StringIO()
    columns = [f"c{i}" for i in range(12)]  # wider than the 200 columns of piped output: every column narrows
    row = {c: f"+86139000000{i:02d}/+86139000001{i:02d}" for i, c in enumerate(columns)}
    print_rows([row], columns, out=out)
    body = out.getvalue().split("┩", 1)[1]  # below the header
    assert "…" not in body
    assert sum(ch.isdigit() for ch in body) == sum(ch.isdigit() for v in row.values() for ch in v)  # wrapped, every digit there


@pytest.mark.parametrize("args", [["--index", "redis"], ["--index", "faiss", "--milvus-uri", "/tmp/x.db"], ["--index", "milvus"]])
def test_init_usage_errors_exit_2_and_create_nothing(tmp_path, capsys, args):
    lib = tmp_path / "lib"
    assert run(["init", "--library", str(lib), *args]) == 2
    assert "--index" in capsys.readouterr().err and not lib.exists()


def test_a_malformed_phone_number_is_bad_input_not_a_broken_library(library, capsys):
    assert run(["phone", "add", "not-a-number", "--library", library]) == 8
    assert "'not-a-number' is not a phone number" in capsys.readouterr().err


def test_person_add_with_a_bad_phone_adds_nobody(library, capsys):
    """`person add Q3 --phone abc` exited 8 but left person Q3 made and audited."""
    assert run(["person", "add", "Q3", "--phone", "abc", "--library", library]) == 8
    assert "nothing was added" in capsys.readouterr().err
    assert run(["person", "list", "--json", "--library", library]) == 0
    assert "Q3" not in capsys.readouterr().out


@pytest.mark.parametrize("typo", ["139000002", "１３９００００００２４４", "13900000100;13900000101", "13900000243139", "17951 1390000024"])
def test_a_mobile_number_of_the_wrong_length_is_refused_not_stored(library, capsys, typo):
    """`person add X --phone 139000002` stored +86139000002, a number no call record can ever match."""
    assert run(["person", "add", "Q9", "--phone", typo, "--library", library]) == 8
    assert f"{typo!r} is not a Chinese mobile number (11 digits): check it - nothing was added" in capsys.readouterr().err
    assert run(["phone", "add", typo, "--library", library]) == 8
    assert "is not a Chinese mobile number (11 digits)" in capsys.readouterr().err
    assert run(["enrol", "x.wav", "--person", "Q9", "--phone", typo, "--library", library]) == 8
    assert "is not a Chinese mobile number (11 digits)" in capsys.readouterr().err
    assert run(["person", "list", "--json", "--library", library]) == 0
    assert "Q9" not in capsys.readouterr().out
    for kept in ("10086", "02812345678", "+14155552671", "tel:13900000245"):  # service, fixed, foreign numbers and tel: URIs stay
        assert run(["phone", "add", kept, "--library", library]) == 0, kept


@pytest.mark.parametrize("masked", ["139****0243", "139xxxx0243", "138＊＊＊＊8000"])
def test_a_masked_number_is_refused_with_its_own_reason(library, capsys, masked, tmp_path):
    """`phone add 139****0243` stored +861390243: the seven digits left, read as a fixed line that does not exist."""
    reason = f"masked number ({masked}): the full number is needed"
    for argv in (["phone", "add", masked], ["person", "add", "Q8", "--phone", masked], ["enrol", "x.wav", "--person", "Q8", "--phone", masked],
                 ["case", "add", "AJ2026-0300", "--calling-number", masked]):
        assert run([*argv, "--library", library]) == 8, argv
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1, argv
    (tmp_path / "cases.csv").write_text(f"case_number,calling_number\nAJ2026-0301,{masked}\n", encoding="utf-8")
    assert run(["case", "import", str(tmp_path / "cases.csv"), "--library", library]) == 8
    assert f"line 2: {reason}" in capsys.readouterr().err


def test_person_show_is_a_read_the_audit_trail_records(library, capsys):
    """The workbench's person page was audited; `person show`, the same read on the command line, was not."""
    assert run(["person", "add", "钱七", "--library", library]) == 0
    pid = capsys.readouterr().out.split()[1]
    assert run(["person", "show", pid, "--json", "--library", library]) == 0
    capsys.readouterr()
    assert run(["audit", "--json", "--library", library]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["action"] == "person.view" and r["target"] == f"person:{pid}" for r in rows)


def test_person_add_says_when_the_person_exists_or_has_a_namesake_or_a_doubtful_id_number(library, capsys):
    """A second `person add 张伟` printed "person 1" as if it had added someone, and an ID number of 5 digits passed unremarked."""
    assert run(["person", "add", "王五", "--library", library]) == 0
    first = capsys.readouterr().out.strip()
    assert run(["person", "add", "王五", "--library", library]) == 0
    assert capsys.readouterr().out.strip() == first + " (already in the library: same name and ID number)"
    assert run(["person", "add", "王五", "--id-number", "12345", "--library", library]) == 0
    said = capsys.readouterr()
    assert "has 5 characters, not the 18 of a resident ID card" in said.err and "1 other person(s) named '王五'" in said.err
    assert run(["person", "add", "赵六", "--id-number", "11010519491231002X", "--library", library]) == 0
    assert capsys.readouterr().err == ""  # a valid resident ID, no namesake


def test_an_output_that_is_an_input_or_cannot_be_written_is_refused_before_any_work(library, clip, tmp_path, capsys):
    """`enrol m.csv --report m.csv` replaced the manifest; `--report /proc/x.csv` failed after enrolling."""
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,person\n{clip},Report Tester\n", encoding="utf-8")
    before = manifest.read_bytes()
    assert run(["enrol", str(manifest), "--report", str(manifest), "--library", library]) == 8
    assert "is also an input" in capsys.readouterr().err and manifest.read_bytes() == before
    assert run(["enrol", str(manifest), "--report", "/proc/report.csv", "--library", library]) == 5
    capsys.readouterr()
    assert run(["person", "list", "--json", "--library", library]) == 0
    assert "Report Tester" not in capsys.readouterr().out  # refused before the file was enrolled
    assert run(["evaluate", str(manifest), "--scores-out", str(manifest)]) == 8 and manifest.read_bytes() == before


def test_retention_as_of_a_bad_date_does_not_suggest_clearing_it(library, capsys):
    assert run(["retention", "apply", "--as-of", "2020-13-45", "--dry-run", "--library", library]) == 8
    err = capsys.readouterr().err
    assert "'2020-13-45' is not a date - write it as YYYY-MM-DD" in err and "none" not in err


def test_a_file_given_as_the_library_is_not_offered_to_init(clip, capsys):
    assert run(["person", "list", "--library", str(clip)]) == 7
    err = capsys.readouterr().err
    assert "is a file, not a library folder" in err and "voiceprint init" not in err


def test_index_rebuild_with_an_unknown_kind_is_a_usage_error(library, capsys):
    assert run(["index", "rebuild", "--kind", "bogus", "--library", library]) == 2
    assert "is not an index kind - use one of auto, flat, hnsw, ivf" in capsys.readouterr().err


def test_screen_a_path_that_does_not_exist_says_so(library, tmp_path, capsys):
    assert run(["screen", str(tmp_path / "nowhere"), "--library", library]) == 3
    assert "nowhere: no such file or folder" in capsys.readouterr().err


@pytest.mark.parametrize("args", [[], ["--verify", "a.wav"], ["abc123", "--query", "a.wav"]])
def test_report_asks_for_exactly_one_source_as_a_usage_error(library, args, capsys):
    assert run(["report", *args, "--library", library]) == 2
    err = capsys.readouterr().err
    assert "give one of" in err or "--verify takes exactly two" in err


@pytest.mark.parametrize(("args", "said"), [
    (["--received", "15/08/2026"], "Invalid value for --received: '15/08/2026' is not a date - type the day the items were received as "
                                   "YYYY-MM-DD (e.g. 2026-08-15)"),
    (["--received", "2026-02-30"], "Invalid value for --received: '2026-02-30' is not a date"),
    (["--received", "20260815"], "Invalid value for --received: '20260815' is not a date"),
    (["--received", "tomorrow"], "is in the future - type the day the items were received as YYYY-MM-DD, {today} or earlier"),
    (["--requested-by", "x" * 10_000], "Invalid value for --requested-by: too long (10000 characters) - type at most 200 characters"),
    (["--request-ref", "CD-1\x1b[2J"], "Invalid value for --request-ref: holds a control or invisible character (U+001B) - type plain text on one line"),
    (["--case", "AJ-1\nAJ-2"], "Invalid value for --case: holds a control or invisible character (U+000A)"),
])
def test_report_refuses_a_malformed_or_future_request_field_as_a_usage_error(library, clip, args, said, capsys):
    """--received takes YYYY-MM-DD, a day that has come; the text fields plain text of a sane length. Refused before
    the recording is searched, so no result and no report row is left behind."""
    from datetime import date, timedelta

    from voiceprint.library import Library

    today = date.today()
    args = [(today + timedelta(days=1)).isoformat() if a == "tomorrow" else a for a in args]
    assert run(["report", "--query", str(clip), *args, "-o", str(clip.with_suffix(".html")), "--library", library]) == 2
    err = capsys.readouterr().err
    assert said.format(today=today.isoformat()) in err and "x" * 100 not in err, err
    with Library.open(library) as lib:
        assert not lib.audit(action="query") and not lib.audit(action="report")


@pytest.mark.parametrize("args", [["2", "--reject", "--list"], ["--reject"]])
def test_approve_refuses_a_decision_it_would_not_carry_out(library, args, capsys):
    """`approve 2 --reject --list` listed the queue and rejected nothing, silently."""
    assert run(["approve", *args, "--library", library]) == 2
    assert "--list only lists" in capsys.readouterr().err or args == ["--reject"]


def test_models_add_of_a_folder_that_does_not_exist_is_not_found(tmp_path, capsys):
    assert run(["models", "add", str(tmp_path / "nothere"), "--name", "x"]) == 7
    assert "no such folder" in capsys.readouterr().err


@pytest.fixture
def registered(library, capsys):
    """张伟 (person 1) with 13800138001, linked to case AJ2026-0001; the number also called the victim of AJ2026-0002."""
    for args in (["person", "add", "张伟", "--category", "prior_offender", "--id-number", "110101199003074514", "--phone", "13800138001"],
                 ["person", "add", "李四"], ["case", "add", "AJ2026-0001", "--title", "冒充客服"],
                 ["case", "link", "AJ2026-0001", "--person", "张伟"],
                 ["case", "add", "AJ2026-0002", "--calling-number", "13800138001", "--called-at", "2020-03-01 10:00"],
                 ["case", "add", "AJ2026-0003"], ["case", "link", "AJ2026-0003", "--phone", "13800138001"]):
        assert run([*args, "--library", library]) == 0
    capsys.readouterr()
    return library


def test_phone_show_goes_from_a_number_to_its_person_their_cases_and_the_numbers_cases(registered, capsys):
    """The reverse strike had no CLI command: `person show 13800138001` said no such person and `phone` had only `add`."""
    from voiceprint.library import Library

    assert run(["phone", "show", "+86 138-0013-8001", "--json", "--library", registered]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["number"] == "+8613800138001"
    owner = card["person"]
    assert owner["person"] == {"id": 1, "name": "张伟", "id_number": "110101199003074514", "category": "prior_offender", "notes": ""}
    assert owner["voice_samples"] == 0 and "samples" not in owner
    assert [c["case_number"] for c in owner["cases"]] == ["AJ2026-0001", "AJ2026-0003"]
    assert [c["case_number"] for c in card["phone_cases"]] == ["AJ2026-0003"]
    assert [(c["case_number"], c["called_at"]) for c in card["case_calls"]] == [("AJ2026-0002", "2020-03-01 10:00:00")]
    assert run(["phone", "show", "13800138001", "--library", registered]) == 0
    out = capsys.readouterr().out
    assert all(word in out for word in ("+8613800138001", "张伟", "110101199003074514", "prior_offender", "AJ2026-0001", "AJ2026-0002"))
    with Library.open(registered) as lib:  # a read of a person's record is audited
        assert [r["target"] for r in lib.audit(action="phone.view")] == ["phone:1", "phone:1"]
        assert [r["target"] for r in lib.audit(action="person.view")] == ["person:1", "person:1"]


def test_phone_show_of_an_unregistered_or_unknown_number(registered, capsys):
    assert run(["phone", "add", "13700000000", "--library", registered]) == 0
    capsys.readouterr()
    assert run(["phone", "show", "13700000000", "--library", registered]) == 0
    assert "registered to nobody" in capsys.readouterr().out
    assert run(["phone", "show", "13900000009", "--library", registered]) == 7
    err = capsys.readouterr().err
    assert "no phone +8613900000009" in err and "voiceprint phone add +8613900000009 --person" in err
    assert run(["phone", "show", "abc", "--library", registered]) == 8


def test_person_show_not_found_says_what_it_takes_and_points_a_number_to_phone_show(registered, capsys):
    assert run(["person", "show", "13800138001", "--library", registered]) == 7
    err = capsys.readouterr().err
    assert "id, ID number or unique name" in err and "voiceprint phone show 13800138001" in err
    assert run(["person", "show", "王五", "--library", registered]) == 7
    err = capsys.readouterr().err
    assert "id, ID number or unique name" in err and "phone show" not in err


@pytest.mark.parametrize("command", [["phone", "add", "13800138001", "--person", "李四"], ["person", "add", "王五", "--phone", "13800138001"]])
def test_moving_a_number_to_another_person_names_the_previous_owner(registered, capsys, command):
    """`phone add 13800138001 --person 李四` moved 张伟's number and printed only "ok"."""
    from voiceprint.library import Library

    assert run([*command, "--library", registered]) == 0
    err = capsys.readouterr().err
    assert "phone +8613800138001 was registered to person 1 (张伟): it is now this person's" in err
    with Library.open(registered) as lib:
        assert lib.store.person_for_phone("13800138001") != 1
        assert [r["target"] for r in lib.audit(action="phone.assign")] == ["phone:1"]
    assert run([*command, "--library", registered]) == 0  # registering it to its owner again says nothing
    assert "was registered to" not in capsys.readouterr().err


@pytest.mark.parametrize("command", [["person", "add", "张伟"], ["case", "add", "AJ2026-0001"]])
def test_a_full_disk_under_the_library_says_so_not_disk_io_error(library, capsys, monkeypatch, command):
    """On a full disk `person add` / `case add` said "cannot open library database ...: disk I/O error": SQLite reports the
    shared-memory file it could not grow as SQLITE_IOERR_SHMSIZE. Simulated here: the first read fails so, the disk is full."""
    import sqlite3

    from voiceprint import errors
    from voiceprint.store import Store

    def io_error(self):
        err = sqlite3.OperationalError("disk I/O error")
        err.sqlite_errorname = "SQLITE_IOERR_SHMSIZE"
        raise err

    monkeypatch.setattr(Store, "schema_version", property(io_error))
    monkeypatch.setattr(errors, "free_bytes", lambda folder: 0)
    assert run([*command, "--library", library]) == 5
    err = capsys.readouterr().err
    assert "no space left on the device holding the library - free space and run it again" in err and "disk I/O" not in err
    monkeypatch.setattr(errors, "free_bytes", lambda folder: 10 << 30)  # room left: an I/O error is not called a full disk
    assert run([*command, "--library", library]) == 5
    err = capsys.readouterr().err
    assert "disk I/O error" in err and "no space left" not in err


def test_an_enrolment_names_each_file_whose_phone_moved_or_case_was_opened(library, tmp_path, capsys):
    """A manifest row that moved another person's phone was counted among "short, noisy or clipped" files, unnamed."""
    other = audiogen.speech_file(tmp_path / "other.wav", seed=7, f0=180)
    assert run(["person", "add", "张伟", "--phone", "13800138001", "--library", library]) == 0
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,person,phone,case\n{other},李四,13800138001,AJ2026-0042\n", encoding="utf-8")
    capsys.readouterr()
    assert run(["enrol", str(manifest), "--library", library]) == 0
    err = capsys.readouterr().err
    assert "note: other.wav: phone 13800138001 was registered to person 1" in err
    assert "note: other.wav: case AJ2026-0042 was not in the library" in err
    assert "short, noisy or clipped" not in err  # a note about the person is not a quality warning


def test_a_query_of_an_empty_library_says_nobody_could_match(library, clip, capsys):
    """An empty library's query printed an empty table, as if the recording matched nobody."""
    assert run(["query", str(clip), "--library", library]) == 0
    assert "holds no searchable voiceprint" in capsys.readouterr().err
    assert run(["enrol", str(clip), "--person", "周八", "--library", library]) == 0
    capsys.readouterr()
    assert run(["query", str(clip), "--library", library]) == 0
    assert "holds no searchable voiceprint" not in capsys.readouterr().err


def _held(code: str, library: str) -> subprocess.Popen:
    """Another process that runs ``code`` (``lib``: the library, opened) and then waits; once it says so."""
    script = ("import sys, time\nfrom pathlib import Path\nfrom voiceprint.library import Library\n"
              f"lib = Library.open(sys.argv[1])\n{code}\n")
    proc = subprocess.Popen([sys.executable, "-c", script, library], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_index_check_during_another_processs_writing_names_the_writer_and_exits_0(library, clip, capsys):
    """Monitoring alerted on `stale` (exit 5, 'run index rebuild') in 11 of 12 checks made during an enrolment."""
    from pathlib import Path

    assert run(["enrol", str(clip), "--person", "A", "--library", library]) == 0
    meta = Path(library) / "index.json"
    meta.write_text(meta.read_text().replace('"generation": 1', '"generation": 0'))  # committed, not saved yet
    held = "\n".join(["with lib.writing():", "    print('held', flush=True)", "    time.sleep(120)"])
    at_work = "\n".join(["from voiceprint.writers import at_work", "with at_work(lib.root):", "    print('held', flush=True)",
                         "    time.sleep(120)"])
    for code in (held, at_work):  # holding the lock for a commit, or at work between two of its commits
        writer = _held(code, library)
        try:
            capsys.readouterr()
            assert run(["index", "check", "--json", "--library", library]) == 0
            out, err = capsys.readouterr()
            [report] = json.loads(out)
            assert report["status"] == "writing" and report["writer"].startswith(f"pid {writer.pid} (")
            assert f"pid {writer.pid}" in err and "brought up to date when it finishes" in err and "rebuild" not in err
        finally:
            writer.kill()
            writer.wait()
    # the writer was killed (kill -9 leaves its registration behind): stale again, and said so
    assert run(["index", "check", "--json", "--library", library]) == 5
    assert json.loads(capsys.readouterr().out)[0]["status"] == "stale"
    assert not [p for p in (Path(library) / ".writers").iterdir() if not p.name.startswith(".")]


def test_an_id_number_of_another_person_is_refused_per_row_and_a_wrong_name_is_corrected_by_person_update(library, clip, tmp_path, capsys):
    """A second name with an ID number already held (typed full-width, or in a manifest) created a second person."""
    assert run(["person", "add", "李雷", "--id-number", "11010519491231002X", "--library", library]) == 0
    capsys.readouterr()
    fullwidth = "１１０１０５１９４９１２３１００２ｘ"
    assert run(["enrol", str(clip), "--person", "韩梅梅", "--id-number", fullwidth, "--library", library]) == 8
    err = capsys.readouterr().err
    assert "ID number 11010519491231002X already belongs to person 1 ('李雷'), not '韩梅梅'" in err and "person update 1 --name" in err
    other = audiogen.speech_file(tmp_path / "wang.wav", seed=5, f0=160)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"path,person,id_number\n{clip},韩梅梅,{fullwidth}\n{other},王芳,\n", encoding="utf-8")
    assert run(["enrol", str(manifest), "--json", "--library", library]) == 0  # the row refused, as a bad file is: the rest enrolled
    outcomes = json.loads(capsys.readouterr().out)["outcomes"]
    assert [o["status"] for o in outcomes] == ["refused", "enrolled"] and "already belongs to person 1 ('李雷')" in outcomes[0]["reason"]
    assert run(["person", "list", "--json", "--library", library]) == 0
    assert sorted(p["name"] for p in json.loads(capsys.readouterr().out)) == ["李雷", "王芳"]
    # the name was the one recorded wrong: corrected, the enrolment reaches person 1
    assert run(["person", "update", "1", "--name", "韩梅梅", "--library", library]) == 0
    assert capsys.readouterr().out == "person 1 updated\n"
    assert run(["enrol", str(clip), "--person", "韩梅梅", "--id-number", fullwidth, "--json", "--library", library]) == 0
    assert json.loads(capsys.readouterr().out)["outcomes"][0]["person_id"] == 1
    assert run(["person", "update", "1", "--name", " ", "--library", library]) == 8
