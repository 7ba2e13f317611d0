"""CLI: the whole reverse-strike workflow through `voiceprint calls ...` on generated CDRs."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from voiceprint.calls.cli import app
from voiceprint.calls.synthetic import generate
from voiceprint.errors import DataError

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def gbk_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("gen")
    return generate(d, rows=30_000, subscribers=100, dens=2, den_size=4, fmt="csv", encoding="gbk", dirty=True, malformed=3)


def test_import_features_score_leads(gbk_data, tmp_path):
    out = invoke("import", gbk_data["calls"], "--out", tmp_path / "calls.parquet", "--format", "json")
    report = json.loads(out)
    assert report["template"] == "generic" and set(report["encodings"].values()) == {"gb18030"}
    assert report["malformed"] == 3 and report["exact_duplicates"] > 0 and report["split_calls_merged"] > 0
    assert report["rows_written"] == 30_000  # duplicates and split calls merged back
    invoke("import", gbk_data["registry"], "--kind", "registry", "--out", tmp_path / "reg.parquet")
    invoke("import", gbk_data["fraud_list"], "--kind", "fraud-list", "--out", tmp_path / "fraud.parquet")
    invoke("features", tmp_path / "calls.parquet", "--registry", tmp_path / "reg.parquet", "--fraud-list", tmp_path / "fraud.parquet",
           "--out", tmp_path / "features.parquet")
    invoke("score", "--features", tmp_path / "features.parquet", "--out", tmp_path / "scores.csv")
    scores = pd.read_csv(tmp_path / "scores.csv", dtype={"number": str})
    assert list(scores.columns[:5]) == ["rank", "number", "score", "flagged", "reasons"] and len(scores) == 100
    truth = {"+86" + n for n in pd.read_csv(gbk_data["truth"], dtype=str)["number"]}
    assert set(scores.number[:8]) == truth  # all planted den numbers on top
    out = invoke("leads", "--features", tmp_path / "features.parquet", "--registry", tmp_path / "reg.parquet", "--top", "3",
                 "--format", "json")
    leads = json.loads(out)
    assert len(leads) == 3 and leads[0]["person"].startswith("机主") and leads[0]["reasons"]
    table = invoke("leads", "--features", tmp_path / "features.parquet", "--top", "2")
    assert "leads" in table and leads[0]["number"] in table


def test_raw_files_go_straight_to_features(gbk_data, tmp_path):
    invoke("features", gbk_data["calls"], "--out", tmp_path / "f.csv")
    assert len(pd.read_csv(tmp_path / "f.csv")) == 100
    report = json.loads((tmp_path / "f.csv.import.json").read_text(encoding="utf-8"))  # the rejected lines outlive the scratch import
    assert report["malformed"] == 3 and len(report["malformed_lines"]) == 3
    assert "removed" in report["output"]  # not the path of a table that no longer exists
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.csv", "f.csv.import.json"]  # the scratch import is gone


def test_a_scratch_import_left_by_a_killed_run_is_removed_by_the_next(gbk_data, tmp_path):
    """A run killed with -9 left a copy of the CDRs (phone numbers) in /tmp that nothing ever removed."""
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    left = tmp_path / f".vp_import_{dead.pid}_x1"
    (left / "spill").mkdir(parents=True)
    (left / "calls.parquet").write_bytes(b"call records")
    invoke("features", gbk_data["calls"], "--out", tmp_path / "f.parquet")
    assert not left.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["f.parquet", "f.parquet.import.json"]


def test_a_malformed_window_is_a_usage_error_before_any_work(gbk_data, tmp_path):
    for args in (["--until", "March"], ["--since", "2020-04-01", "--until", "2020-03-01"]):
        result = runner.invoke(app, ["features", str(gbk_data["calls"]), "--out", str(tmp_path / "f.parquet"), *args])
        assert result.exit_code == 2 and "--since" in result.output, result.output
    assert not list(tmp_path.iterdir())


def test_a_canonical_model_trained_on_a_btg_table_scores_features_from_raw_cdrs(gbk_data, tmp_path):
    """`train --canonical` kept the BTG signals raw CDRs lack (SMS totals, apps), so its model refused the
    very tables it was for."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 300
    fraud = rng.random(n) < 0.3
    btg = pd.DataFrame({"phone_no_m": [f"{i:032x}" for i in range(n)], "label": fraud.astype(int),
                        "opposite_unique": np.where(fraud, rng.integers(100, 400, n), rng.integers(10, 120, n)),
                        "voc_calltype1": np.where(fraud, rng.uniform(0.8, 1, n), rng.uniform(0.3, 0.7, n)),
                        "phone2opposite_mean": rng.uniform(1, 8, n), "county_name_call": rng.integers(1, 5, n),
                        "arpu_mean": rng.uniform(10, 200, n), "imeis": rng.integers(1, 3, n), "county_name_nunique": rng.integers(1, 5, n),
                        "voc_hour_nunique": rng.integers(5, 24, n), "voc_day_nunique": rng.integers(3, 31, n),
                        "sms_count": rng.integers(0, 900, n), "busi_count": rng.integers(0, 150, n)})
    btg.to_csv(tmp_path / "btg.csv", index=False)
    invoke("train", "--features", tmp_path / "btg.csv", "--canonical", "--rounds", "50", "--out", tmp_path / "m.lgb")
    invoke("features", gbk_data["calls"], "--out", tmp_path / "f.parquet")
    scored = json.loads(invoke("score", "--features", tmp_path / "f.parquet", "--model", tmp_path / "m.lgb", "--format", "json"))
    assert len(scored) == 100 and all(0 <= r["score"] <= 1 for r in scored)


def test_train_and_score_with_model(gbk_data, tmp_path):
    invoke("features", gbk_data["calls"], "--out", tmp_path / "f.parquet")
    f = pd.read_parquet(tmp_path / "f.parquet")
    truth = {"+86" + n for n in pd.read_csv(gbk_data["truth"], dtype=str)["number"]}
    f["label"] = f["number"].isin(truth).astype(int)
    f.to_csv(tmp_path / "labelled.csv", index=False)
    labelled = (tmp_path / "labelled.csv").read_bytes()
    with pytest.raises(DataError, match="is also an input"):  # the labelled table was replaced by the model
        invoke("train", "--features", tmp_path / "labelled.csv", "--out", tmp_path / "labelled.csv", "--rounds", "40")
    assert (tmp_path / "labelled.csv").read_bytes() == labelled
    out = invoke("train", "--features", tmp_path / "labelled.csv", "--out", tmp_path / "m.joblib", "--rounds", "40")
    assert "threshold" in out
    invoke("score", "--features", tmp_path / "f.parquet", "--model", tmp_path / "m.joblib", "--out", tmp_path / "s.json")
    scored = json.loads((tmp_path / "s.json").read_text(encoding="utf-8"))
    assert {r["number"] for r in scored[:8]} == truth


def test_bad_inputs_raise_data_errors(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        invoke("import", tmp_path / "empty.csv", "--out", tmp_path / "x.parquet")
    (tmp_path / "h.csv").write_text("number,other,direction,start\n", encoding="utf-8")
    out = runner.invoke(app, ["import", str(tmp_path / "h.csv"), "--out", str(tmp_path / "h.parquet")])
    assert out.exit_code == 0 and "no records" in out.output
    with pytest.raises(DataError, match="no voice calls"):
        invoke("features", tmp_path / "h.parquet", "--out", tmp_path / "f.parquet")


def test_a_binary_file_or_a_bad_mapping_is_a_data_error_and_bad_rounds_a_usage_error(tmp_path):
    from voiceprint.cli import run

    binary = tmp_path / "clip.csv"
    binary.write_bytes(bytes(range(256)) * 8)
    for args in (["score", "-f", binary], ["train", "-f", binary, "-o", tmp_path / "m.lgb"], ["leads", "-f", binary]):
        with pytest.raises(DataError, match=r"clip.csv: not a text table \(CSV/TSV/Parquet\)"):
            invoke(*args)
    table = tmp_path / "t.csv"
    table.write_text("number,calls\na,1\nb,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="t.csv: not a TOML column mapping"):
        invoke("score", "-f", table, "--mapping", table)
    (tmp_path / "partial.toml").write_text('[columns]\ncalls = "calls"\n', encoding="utf-8")
    with pytest.raises(DataError, match="partial.toml: the mapping lacks 'name'"):
        invoke("score", "-f", table, "--mapping", tmp_path / "partial.toml")
    assert runner.invoke(app, ["train", "-f", str(table), "-o", str(tmp_path / "m.lgb"), "--rounds", "-5"]).exit_code == 2
    assert run(["calls", "score", "-f", str(binary)]) == 8
    assert not (tmp_path / "m.lgb").exists()


def test_analyst_mistakes_get_a_line_that_says_what_to_do(gbk_data, tmp_path):
    calls = tmp_path / "calls.parquet"
    invoke("import", gbk_data["calls"], "--out", calls)
    # a raw registry (not imported), or an imported table of another kind
    with pytest.raises(DataError, match=r"not an imported registry table \(Parquet\) - import it first: voiceprint calls import"):
        invoke("features", calls, "--registry", gbk_data["registry"], "--out", tmp_path / "f.parquet")
    with pytest.raises(DataError, match="not an imported fraud-list table"):
        invoke("features", calls, "--fraud-list", calls, "--out", tmp_path / "f.parquet")
    with pytest.raises(DataError, match="--memory-limit 'lots': give a size"):
        invoke("features", calls, "--memory-limit", "lots", "--out", tmp_path / "f.parquet")
    with pytest.raises(DataError, match=r"\.parquet, \.csv or \.csv\.gz"):
        invoke("features", calls, "--out", tmp_path / "f.json")
    with pytest.raises(DataError, match="hdfs://nn/cdr/calls.parquet: a URI is read by the Spark engine only"):
        invoke("features", "hdfs://nn/cdr/calls.parquet", "--out", tmp_path / "f.parquet")
    with pytest.raises(DataError, match="is a folder"):
        invoke("import", gbk_data["calls"], "--out", tmp_path)
    with pytest.raises(DataError, match="written as Parquet"):
        invoke("import", gbk_data["calls"], "--out", tmp_path / "calls.csv")
    invoke("features", calls, "--out", tmp_path / "f.parquet")
    with pytest.raises(DataError, match="not an imported registry"):
        invoke("leads", "--features", tmp_path / "f.parquet", "--registry", gbk_data["registry"])
    assert runner.invoke(app, ["leads", "--features", str(tmp_path / "f.parquet"), "--top", "-3"]).exit_code == 2
    assert runner.invoke(app, ["score", "--features", str(tmp_path / "f.parquet"), "--out", str(tmp_path / "s.xlsx")]).exit_code == 2
    # --out into a folder not made yet: made (private); the screen gets one line, not the people the leads name
    out = invoke("leads", "--features", tmp_path / "f.parquet", "--out", tmp_path / "new" / "leads.csv")
    assert (tmp_path / "new" / "leads.csv").stat().st_mode & 0o777 == 0o600 and (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    assert out.strip().splitlines() == [f"20 rows -> {tmp_path / 'new' / 'leads.csv'}"]


def test_no_command_writes_over_its_input_or_fails_on_a_bad_output_path(gbk_data, tmp_path):
    calls = tmp_path / "calls.parquet"
    invoke("import", gbk_data["calls"], "--out", calls)
    before = calls.read_bytes()
    with pytest.raises(DataError, match="is also an input"):
        invoke("features", calls, "--out", calls)
    invoke("features", calls, "--out", tmp_path / "f.csv")
    with pytest.raises(DataError, match="is also an input"):
        invoke("score", "--features", tmp_path / "f.csv", "--out", tmp_path / "f.csv")
    assert calls.read_bytes() == before
    # a damaged Parquet file is a data error (exit 8), not an internal error
    (tmp_path / "bad.parquet").write_text("garbage", encoding="utf-8")
    result = runner.invoke(app, ["features", str(tmp_path / "bad.parquet"), "--out", str(tmp_path / "g.parquet")])
    assert isinstance(result.exception, DataError) and "not a readable Parquet file" in str(result.exception)


def test_a_rule_score_on_few_signals_and_a_dropped_row_are_told(tmp_path):
    table = tmp_path / "haoren.csv"
    pd.DataFrame({"phone_no_m": ["n1", "n2", "n2", "n3"], "voc_user_cnt": [3, 9, 9, 1], "interactive_call_user_cnt": [2, 0, 0, 1],
                  "call_activate_days_diff": [1, 2, 2, 3], "idcard_cnt": [1, 4, 4, 1], "fake_ratio": [0.0, 1.0, 1.0, 0.0],
                  "black_app_cnt": [0, 3, 3, 0]}).to_csv(table, index=False)
    result = runner.invoke(app, ["score", "--features", str(table), "--csv"])
    assert result.exit_code == 0, result.output
    said = result.output + (getattr(result, "stderr", "") or "")
    assert "warning: the rule score rests on only" in said and "haoren.csv: 1 row(s) repeat a number" in said


def test_import_csv_prints_one_csv_table_on_stdout(gbk_data, tmp_path):
    import csv
    import io

    result = runner.invoke(app, ["import", str(gbk_data["calls"]), "--out", str(tmp_path / "c.parquet"), "--csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["item", "value"] and all(len(r) == 2 for r in rows)
    assert ["malformed rows", "3"] in rows
    assert "file,line,reason" in result.stderr  # the malformed lines, on stderr


def test_a_full_disk_under_duckdb_is_a_storage_failure(gbk_data, tmp_path, monkeypatch, capsys):
    import duckdb

    from voiceprint import errors
    from voiceprint.cli import run

    full = ('IO Error: Async write failed for range [offset=186255, size=418661]: {"exception_type":"IO","exception_message":'
            '"Could not write file \\"/mnt/full/calls.parquet.partial\\": No space left on device","errno":"28"}')
    assert errors.storage_failure(duckdb.IOException(full)) == ("no space left on the disk (/mnt/full/calls.parquet.partial) - "
                                                                "free space, then run the same command again")
    spill = "Out of Memory Error: failed to offload data block: could not write file \"/t/duckdb_temp_block\": No space left on device"
    assert errors.storage_failure(duckdb.OutOfMemoryException(spill)).startswith("no space left on the disk (/t/duckdb_temp_block)")
    assert errors.storage_failure(duckdb.IOException("IO Error: No files found that match the pattern")) is None

    def disk_full(*args, **kwargs):
        raise duckdb.IOException(full)

    monkeypatch.setattr("voiceprint.calls.ingest.import_calls", disk_full)
    monkeypatch.setattr("voiceprint.calls.features.compute_features", disk_full)
    assert run(["calls", "import", str(gbk_data["calls"]), "-o", str(tmp_path / "c.parquet")]) == 5
    assert run(["calls", "features", str(gbk_data["calls"]), "-o", str(tmp_path / "f.parquet")]) == 5
    err = capsys.readouterr().err
    assert err.count("error: no space left on the disk (/mnt/full/calls.parquet.partial) - free space") == 2 and "internal" not in err


def _import_three_areas(tmp_path, third_city: str) -> None:
    """c.parquet: one call from each of 内江 市中区, 乐山 市中区 and ``third_city`` 锦江区."""
    rows = ["13800000001,13900000001,out,2020-03-02 10:00:00,30,内江,市中区,IMEI1,成都",
            "13800000002,13900000002,out,2020-03-02 11:00:00,30,乐山,市中区,IMEI2,成都",
            f"13800000003,13900000003,out,2020-03-02 12:00:00,30,{third_city},锦江区,IMEI3,成都"]
    (tmp_path / "c.csv").write_text("number,other,direction,start,duration,city,county,imei,other_area\n" + "\n".join(rows) + "\n",
                                    encoding="utf-8")
    invoke("import", tmp_path / "c.csv", "--out", tmp_path / "c.parquet")


def test_area_narrows_to_one_county_of_one_city_and_a_shared_county_name_is_told(tmp_path):
    """市中区 is a county of both 内江 and 乐山: --area 市中区 screens both with a note, "内江 市中区" one."""
    _import_three_areas(tmp_path, "成都")
    out = tmp_path / "f.csv"
    result = runner.invoke(app, ["features", str(tmp_path / "c.parquet"), "--area", "市中区", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == ('note: 市中区 is a county in 2 cities (乐山, 内江): numbers with calls in any of them are '
                                             'screened - narrow it to one with --area "乐山 市中区" (or 乐山/市中区)')
    assert "rank its numbers among the area's numbers only" in result.stderr.splitlines()[1]
    assert result.stdout.strip() == f"2 numbers (in 市中区) -> {out}"
    for area in ("内江 市中区", "内江/市中区"):
        result = runner.invoke(app, ["features", str(tmp_path / "c.parquet"), "--area", area, "--out", str(out)])
        assert result.exit_code == 0 and "is a county in" not in result.stderr, result.output
        assert result.stdout.strip() == f"1 number (in 内江/市中区) -> {out}"
        assert list(pd.read_csv(out, dtype=str)["number"]) == ["+8613800000001"]
    # a malformed area is refused before anything is imported or computed
    result = runner.invoke(app, ["features", str(tmp_path / "c.csv"), "--area", "内江 市中区 锦江区", "--out", str(out)])
    assert result.exit_code == 2 and "--area" in result.output  # a usage error, like a malformed window
    assert not (tmp_path / "f.csv.import.json").exists()


def test_a_folder_as_input_or_an_output_where_no_file_can_be_made_is_named_plainly(tmp_path, capsys):
    """`calls import . --out x.parquet` said "a file stands where a folder is needed ..."; `--out /proc/x.parquet` named the
    hidden scratch folder (/proc/.vp_import_...) instead of the output."""
    from voiceprint.cli import run

    assert run(["calls", "import", str(tmp_path), "--out", str(tmp_path / "x.parquet")]) == 8
    assert f"error: {tmp_path} is a folder: give the files in it" in capsys.readouterr().err
    (tmp_path / "c.csv").write_text("number,other,direction,start,duration\n13800000001,13900000001,out,2020-03-02 10:00:00,30\n",
                                    encoding="utf-8")
    for command in (["calls", "import", str(tmp_path / "c.csv")], ["calls", "features", str(tmp_path / "c.csv")]):
        assert run([*command, "--out", "/proc/x.parquet"]) == 5
        err = capsys.readouterr().err
        assert "(/proc/x.parquet)" in err and ".vp_import" not in err, err


def test_duckdb_out_of_memory_is_one_line_naming_the_memory_limit(tmp_path, capsys):
    """`calls features big.parquet --memory-limit 16MB` was a multi-line "internal error ... report it"."""
    from voiceprint.cli import run

    (tmp_path / "c.csv").write_text("number,other,direction,start,duration\n13800000001,13900000001,out,2020-03-02 10:00:00,30\n",
                                    encoding="utf-8")
    assert run(["calls", "features", str(tmp_path / "c.csv"), "--out", str(tmp_path / "f.parquet"), "--memory-limit", "1KB"]) == 5
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"error: out of memory at --memory-limit 1KB - raise --memory-limit (e.g. 4GB), or lower --threads (fewer threads "
                    f"need less memory); {tmp_path / 'f.parquet'} was not written")
    assert not (tmp_path / "f.parquet").exists() and not list(tmp_path.glob(".vp_import_*"))


def test_sigterm_stops_import_and_features_as_ctrl_c_does(tmp_path, monkeypatch, capsys):
    """SIGTERM (kill, systemd) during `calls import`/`calls features` left hidden .vp_import_* folders in the output folder."""
    import signal

    from voiceprint.calls import ingest
    from voiceprint.cli import run

    (tmp_path / "c.csv").write_text("number,other,direction,start,duration\n13800000001,13900000001,out,2020-03-02 10:00:00,30\n",
                                    encoding="utf-8")
    out = tmp_path / "out"
    real = ingest._write_merged

    def merged_then_sigterm(*args, **kwargs):  # `kill` arrives while the scratch table is being written
        written = real(*args, **kwargs)
        signal.raise_signal(signal.SIGTERM)
        return written

    monkeypatch.setattr(ingest, "_write_merged", merged_then_sigterm)
    for command in (["calls", "import", str(tmp_path / "c.csv"), "--out", str(out / "c.parquet")],
                    ["calls", "features", str(tmp_path / "c.csv"), "--out", str(out / "f.parquet")]):
        assert run(command) == 143
        assert "was not written (nor half-written)" in capsys.readouterr().err
        assert list(out.iterdir()) == [], list(out.iterdir())  # no scratch folder, no half-written table
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is the CLI's only while it runs


def test_an_area_typed_with_its_city_suffix_is_found_and_a_repeated_area_is_refused(tmp_path):
    """`--area 内江市` said "no voice call ... check the spelling" (the CDRs write 内江); `--area 内江 --area 乐山` kept 乐山 only."""
    _import_three_areas(tmp_path, "成都市")
    out = tmp_path / "f.csv"
    for area, number in (("内江市", "+8613800000001"), ("内江市 市中区", "+8613800000001"), ("内江市市中区", "+8613800000001"),
                         ("成都", "+8613800000003")):  # a CDR that writes 成都市 is found as 成都 too
        result = runner.invoke(app, ["features", str(tmp_path / "c.parquet"), "--area", area, "--out", str(out)])
        assert result.exit_code == 0, (area, result.output)
        assert list(pd.read_csv(out, dtype=str)["number"]) == [number], area
    result = runner.invoke(app, ["features", str(tmp_path / "c.parquet"), "--area", "内江", "--area", "乐山", "--out", str(tmp_path / "g.csv")])
    assert result.exit_code == 2 and "give one area (内江, 乐山 given)" in result.output and not (tmp_path / "g.csv").exists()
