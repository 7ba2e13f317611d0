"""Ingest: templates, encodings, number normalisation, dedupe, malformed-row report, empty files."""

from __future__ import annotations

import gzip

import duckdb
import pytest

from voiceprint.calls import ingest
from voiceprint.calls.engine import connect
from voiceprint.calls.ingest import detect_encoding, import_calls, import_fraud_list, import_registry, load_template
from voiceprint.errors import DataError
from voiceprint.phones import is_masked, mobile_length_error, normalize_number, number_refusal

HEADER = "number,other,direction,start,duration,city,county,imei,other_area\n"
ROW = "13800138000,13900139000,out,2020-03-01 10:00:00,30,成都,锦江区,35000000000001,广东\n"


def rows(path):
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}') ORDER BY start, other").fetchall()


@pytest.mark.parametrize("raw", [
    "13800138000", "+8613800138000", "8613800138000", "008613800138000", "86 138-0013-8000", "138 0013 8000",
    "02812345678", "028-12345678", "10086", "95588", "+14155552671", "4008001234", "1380013800",
    "ABCDEF0123456789ABCDEF0123456789", "6c5a467f3feef3fea4ef9a032b5d12ebbfc1bf588fdbc89ba623b58c57cf6de3",
    "", " ", "nan", "NULL", "0013800138000", "19912345678", "14500000000",
    "13800138000.0", "+8613800138000.00", "138 0013 8000 ext 5", "1.38001E+10", "notaphone", "abc123",
    # tel: URIs; letters around a mobile are not a number in SQL either; service numbers are their digits
    "tel:13800138000", "TEL:+86 138 0013 8000", "abc13800138000", "13800138000abc", "+8610086", "110", "12345",
    # a Chinese mobile of the wrong length (a typo) or two run together: malformed, never a made-up number
    "139000002", "+86139000002", "139000001000", "861390000010", "13900000100;13900000101", "１３９００００００２４４",
    # ... but IoT numbers, IP-call prefixes, SMS service numbers and foreign numbers stay as they were
    "1440123456789", "1795113800138000", "106980095588", "0014155552671",
    # masked numbers (脱敏) are refused with their own reason; hex hashes stay
    "139****0243", "139xxxx0243", "139XXXX0243", "138＊＊＊＊8000", "138-****-0243", "abcdef0123456789abcdef0123456789ff",
    # too long for a mobile (14 to 19 digits), also behind +86 or an IP-call prefix; IoT numbers written three ways
    "13900000243139", "+8613900000243139", "17951 1390000024", "10193 13900000243",
    "1440000000012", "+861440000000012", "861440000000012",
    # extensions after a dash or #, and a service number after 86 and a space
    "028-85551234-8001", "028-85551234#8001", "028-85551234转8001", "86 10086", "086-10086",
])
def test_sql_number_normalisation_agrees_with_python(raw, tmp_path):
    con = connect(temp_directory=tmp_path)
    fast = con.execute("SELECT vp_norm(?)", [raw]).fetchone()[0]
    if fast is not None:  # the SQL fast path must equal the Python reference where it answers
        assert fast == normalize_number(raw)
    # the row with the number, and a good one: a file of nothing but malformed rows is refused as a whole
    other = "13700137000,13900139000,out,2020-03-02 10:00:00,30,,,,\n"
    (tmp_path / "c.csv").write_text(HEADER + f'"{raw}",13900139000,out,2020-03-01 10:00:00,30,,,,\n' + other, encoding="utf-8")
    report = import_calls(tmp_path / "c.csv", tmp_path / "c.parquet", template="generic", con=con)
    expected = normalize_number(raw)
    if expected:
        assert rows(tmp_path / "c.parquet")[0][0] == expected  # ordered by start: the raw number's call first
    else:
        missing = raw.strip().lower() in ("", "nan", "null")
        reason = {"1.38001E+10": "number in scientific notation"}.get(raw, "missing number" if missing else "unreadable number")
        if mobile_length_error(raw):
            reason = f"number {raw} is not an 11-digit mobile number"
        if is_masked(raw):
            reason = f"masked number ({raw}): the full number is needed"
        assert report.malformed == 1 and report.malformed_lines[0]["reason"].startswith(reason)


def test_spreadsheet_forms_of_a_number_keep_or_lose_their_digits():
    assert normalize_number("13800138001.0") == normalize_number("13800138001") == "+8613800138001"
    assert normalize_number("138 0013 8001 ext 5") == normalize_number("138 0013 8001 转 5") == "+8613800138001"
    assert normalize_number("1.38001E+10") == ""  # its last digits are gone: never a made-up number
    assert normalize_number("1e" + "0" * 32) == "1e" + "0" * 32  # a hash that happens to look like an exponent


def test_wrong_length_mobiles_are_refused_and_service_numbers_are_their_digits():
    for typo in ("139000002", "1390000010", "139000001000", "+86 139 0000 0024 4", "0086139000001000", "13900000100;13900000101"):
        assert normalize_number(typo) == "" and number_refusal(typo) == f"{typo!r} is not a Chinese mobile number (11 digits): check it"
    assert number_refusal("abc") == "'abc' is not a phone number"
    assert normalize_number("tel:13900000100") == normalize_number("+86 139 0000 0100") == "+8613900000100"
    assert [normalize_number(n) for n in ("10086", "+8610086", "110", "95588", "12345")] == ["10086", "10086", "110", "95588", "12345"]
    kept = {"02812345678": "+862812345678", "+14155552671": "+14155552671", "4008001234": "+864008001234",
            "1440123456789": "+861440123456789", "1795113800138000": "+8613800138000", "ABCDEF0123456789ABCDEF0123456789": "abcdef0123456789abcdef0123456789"}
    assert {n: normalize_number(n) for n in kept} == kept


def test_masked_numbers_are_refused_with_their_own_reason():
    for masked in ("139****0243", "139xxxx0243", "139XXXX0243", "138＊＊＊＊8000", "138-****-0243"):
        assert normalize_number(masked) == "" and not mobile_length_error(masked)
        assert number_refusal(masked) == f"masked number ({masked}): the full number is needed"
    assert normalize_number("ABCDEF0123456789ABCDEF0123456789") == "abcdef0123456789abcdef0123456789"  # a hash is not masked


def test_long_mobiles_ip_prefixes_iot_extensions_and_service_numbers():
    for typo in ("13900000243139", "+8613900000243139", "1390000024313912345", "17951 1390000024", "10193 139000002430"):
        assert normalize_number(typo) == "" and number_refusal(typo).endswith("is not a Chinese mobile number (11 digits): check it")
    assert {normalize_number(n) for n in ("1440000000012", "+861440000000012", "861440000000012", "+86 1440000000012")} == {"+861440000000012"}
    assert normalize_number("10193 13900000243") == normalize_number("17951 13900000243") == "+8613900000243"
    assert {normalize_number(n) for n in ("028-85551234-8001", "028-85551234#8001", "028-85551234转8001", "02885551234")} == {"+862885551234"}
    assert normalize_number("138-0013-8001") == "+8613800138001"  # a mobile's last four digits after a dash are no extension
    assert normalize_number("86 10086") == normalize_number("+8610086") == "10086"
    assert normalize_number("100000123456789") == "100000123456789"  # a digit pseudonym that is no mobile


def test_gbk_file_is_detected_and_decoded(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + ROW).encode("gbk"))
    assert detect_encoding(path) == "gb18030"
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.encodings[str(path)] == "gb18030"
    (row,) = rows(tmp_path / "out.parquet")
    assert row[5:7] == ("成都", "锦江区")
    assert row[0] == "+8613800138000" and row[2] == "out" and row[4] == 30


def test_a_gbk_file_saved_with_a_utf8_byte_order_mark_imports(tmp_path):
    """The BOM was decoded as GB18030 ("锘縩umber"): "no built-in template fits columns 锘縩umber, ..."."""
    path = tmp_path / "bomgbk.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + ROW).encode("gbk"))
    import_calls(path, tmp_path / "out.parquet")
    (row,) = rows(tmp_path / "out.parquet")
    assert row[0] == "+8613800138000" and row[5:7] == ("成都", "锦江区")


def test_a_utf8_file_with_one_gbk_line_imports_the_rest_and_reports_the_line(tmp_path):
    row = lambda n, city: f"1380013800{n},1390013900{n},out,2020-03-01 10:00:0{n},30,{city},锦江区,,\n"  # noqa: E731
    path = tmp_path / "mixed.csv"
    path.write_bytes((HEADER + row(1, "成都") + row(2, "绵阳")).encode() + row(3, "自贡").encode("gbk") + row(4, "德阳").encode())
    assert detect_encoding(path) == "utf-8"
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.rows_written == 3 and report.malformed == 1
    assert report.malformed_lines[0]["line"] == 4 and "another encoding" in report.malformed_lines[0]["reason"]
    assert [r[5] for r in rows(tmp_path / "out.parquet")] == ["成都", "绵阳", "德阳"]


def test_utf16_is_detected_and_unsupported_encodings_are_refused(tmp_path):
    path = tmp_path / "u16.csv"
    path.write_text(HEADER + ROW, encoding="utf-16")  # Excel's "Unicode text": with a byte-order mark
    assert detect_encoding(path) == "utf-16"
    assert rows(import_calls(path, tmp_path / "out.parquet", template="generic").output)[0][5] == "成都"
    with pytest.raises(DataError, match="unsupported encoding 'latin1'"):
        import_calls(path, tmp_path / "out.parquet", template="generic", encoding="latin1")
    bad = tmp_path / "bad.csv"
    bad.write_bytes((HEADER + ROW).encode("gbk") + b"13800138001,13900139000,out,2020-03-01 10:00:00,30,\x80\xff,,,\n")
    with pytest.raises(DataError, match="line 3 is not valid gbk"):
        import_calls(bad, tmp_path / "out.parquet", template="generic", encoding="gbk")


def test_gbk_read_as_utf8_names_the_encoding_option(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes((HEADER + ROW).encode("gbk"))
    with pytest.raises(DataError, match="--encoding"):
        import_calls(path, tmp_path / "out.parquet", template="generic", encoding="utf-8")


def test_malformed_rows_are_reported_with_line_numbers_and_duplicates_merged(tmp_path):
    lines = [
        HEADER,                                                                        # line 1
        ROW,                                                                           # 2 kept
        "13800138000,13900139001,in\n",                                                # 3 too few columns
        ROW,                                                                           # 4 exact duplicate
        "13800138000,13900139002,out,yesterday,5,,,,\n",                               # 5 bad start time
        "13800138000,13900139000,out,2020-03-01 10:00:00,30,成都,武侯区,35000000000001,广东\n",  # 6 split call (other county)
        ",13900139003,out,2020-03-01 11:00:00,5,,,,\n",                                # 7 missing number
        "13800138000,13900139004,sideways,2020-03-01 12:00:00,5,,,,\n",                # 8 unknown direction
        "13800138000,13900139005,in,2020-03-01 13:00:00,-4,,,,\n",                     # 9 bad duration
        "13800138000,13900139006,in,2020-03-01 14:00:00,7,,,,,extra\n",                # 10 too many columns
        "13800138000,13900139007,in,2020-03-01 15:00:00,8,,,,\n",                      # 11 kept
        "13800138000,13900139008, ,2020-03-01 16:00:00,8,,,,\n",                      # 12 missing direction
        "13800138000,13900139009,in,,8,,,,\n",                                        # 13 missing start time
    ]
    path = tmp_path / "dirty.csv"
    path.write_text("".join(lines), encoding="utf-8")
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.rows_read == 12
    assert report.malformed == 8
    assert [(m["line"], m["reason"].split()[0]) for m in report.malformed_lines] == [
        (3, "missing"), (5, "bad"), (7, "missing"), (8, "unknown"), (9, "bad"), (10, "too"), (12, "missing"), (13, "missing")]
    assert [m["reason"] for m in report.malformed_lines[-2:]] == ["missing direction", "missing start time"]  # not "unknown ... NULL"
    assert report.exact_duplicates == 1 and report.split_calls_merged == 1
    assert report.rows_written == 2
    kept = rows(tmp_path / "out.parquet")
    assert kept[0][6] == "锦江区"  # the first county seen wins when a call is split across areas
    assert (tmp_path / "out.parquet.report.json").exists()


def test_a_stray_quote_that_would_swallow_the_rest_of_the_file_refuses_the_import(tmp_path):
    """One '"' that never closes made the CSV reader take every later line for one field: 1,990 of 2,000 calls were
    gone, one line was listed as malformed, and the import said it had succeeded."""
    good = [f"13800138000,139{i:08d},out,2020-03-01 10:{i % 60:02d}:00,30,成都,锦江区,35000000000001,广东\n" for i in range(40)]
    stray = '13800138000,13900000999,"out,2020-03-01 11:00:00,30,成都,锦江区,35000000000001,广东\n'
    path = tmp_path / "stray.csv"
    path.write_text(HEADER + "".join(good[:9]) + stray + "".join(good[9:]), encoding="utf-8")
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"line 11 opens a quoted field .* never closes, so 31 line\(s\) from there on would be lost"):
        import_calls(path, out, template="generic")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".vp_import_")]
    quoted = tmp_path / "quoted.csv"  # quotes that close, also around a field holding the delimiter, are read as before
    quoted.write_text(HEADER + '"13800138000",13900139000,"out","2020-03-01 10:00:00",30,"成都","锦江区,高新",35000000000001,广东\n',
                      encoding="utf-8")
    assert import_calls(quoted, out, template="generic").rows_written == 1


def test_a_line_longer_than_the_readers_buffer_is_reported_not_lost(tmp_path):
    """A line over DuckDB's 32 MB buffer (a field filled by a broken export) was neither read nor listed as
    malformed: the import said "rows read 2" for three lines and exited 0. It is now a malformed line, and the lines
    after it keep their numbers."""
    huge = "13800138000,13900139009,out,2020-03-01 11:00:00,30," + "锦" * (12 << 20) + ",锦江区,35000000000001,广东\n"  # 36 MB
    path = tmp_path / "huge.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
        fh.write(HEADER + ROW + huge + "13800138000,13900139001,in,2020-03-01 12:00:00,5,,,,\n" + "13800138000,13900139002,in,bad,5,,,,\n"
                 + "13800138000,13900139003,in\n" + "13800138000,13900139004,in,2020-03-01 12:00:00,5," + "x" * (3 << 20) + ",,,\n")
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.rows_read == 6 and report.rows_written == 2
    assert [(m["line"], m["reason"]) for m in report.malformed_lines] == [  # the reader's own rejects after it keep their lines
        (3, "a line of 36 MB, longer than the reader can hold: not read"), (5, "bad start time bad"), (6, "missing columns"),
        (7, "a line longer than the reader's 2 MB limit: not read")]


def test_lines_after_a_quoted_field_that_spans_lines_keep_their_numbers(tmp_path):
    """DuckDB numbers records, not lines: after a quoted field holding a line break every malformed line was reported
    one line too early (an analyst opening the file found a good row there)."""
    lines = [HEADER,                                                                                   # 1
             '13800138000,13900139000,out,2020-03-01 10:00:00,30,成都,"锦江区\r\n(高新)",35000000000001,广东\n',  # 2-3
             "\n",                                                                                      # 4 blank
             "13800138000,13900139001,in\n",                                                            # 5 too few columns
             '"13800138000","13900139002","out","yesterday","5","","","",""\n',                         # 6 bad start time
             '13800138000,13900139003,in,2020-03-01 12:00:00,5,,"a ""quoted""\nnote",,\n',              # 7-8
             "13800138000,13900139004,in,2020-03-01 13:00:00,-4,,,,\n"]                                 # 9 bad duration
    path = tmp_path / "multi.csv"
    path.write_text("".join(lines), encoding="utf-8")
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert [(m["line"], m["reason"].split()[0]) for m in report.malformed_lines] == [(5, "missing"), (6, "bad"), (9, "bad")]
    assert report.rows_written == 2


def test_a_quoted_line_break_in_a_file_of_mixed_line_endings_names_the_line_and_the_fix(tmp_path):
    """The reader failed with "The CSV Parser state machine reached an invalid state", naming no line and no fix."""
    path = tmp_path / "mixed.csv"
    path.write_bytes("number,name,id_number,home_city,home_county\r\n+8613900000001,\"Zhang\nSan\",510100196001010001,泸州,江阳区\r\n"
                     "+8613900000002,Li,510100196001010002,泸州\n+8613900000003,Wang,510100196001010003,泸州,江阳区\r\n".encode())
    with pytest.raises(DataError, match=r"line 2 ends with LF where line 1 ends with CRLF.*one kind of line ending.*nothing was imported"):
        import_registry(path, tmp_path / "out.parquet")
    quoted = tmp_path / "quoted.csv"  # every field quoted: was taken for a stray quote that never closes
    quoted.write_bytes(b'"number","name"\r\n"+8613900000001","Zhang"\n"+8613900000002","Li"\n"+8613900000003","Wang"\r\n')
    with pytest.raises(DataError, match=r"line 2 ends with LF where line 1 ends with CRLF"):
        import_registry(quoted, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_empty_lines_before_the_header_are_skipped_and_still_counted(tmp_path):
    """An export that begins with empty lines was refused as having no header line."""
    path = tmp_path / "lead.csv"
    path.write_text("\n \n" + HEADER + ROW + "13800138000,13900139002,in,bad,5,,,,\n" + "13800138000,13900139003,in\n", encoding="utf-8")
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.rows_read == 3 and report.rows_written == 1
    assert [(m["line"], m["reason"].split()[0]) for m in report.malformed_lines] == [(5, "bad"), (6, "missing")]


def test_a_file_whose_lines_end_in_cr_alone_is_read(tmp_path):
    """Classic Mac line ends: the header reader took the whole file for its first line (internal error)."""
    path = tmp_path / "mac.csv"
    path.write_bytes((HEADER + ROW + "13800138000,13900139001,in\n").replace("\n", "\r").encode())
    report = import_calls(path, tmp_path / "out.parquet", template="generic")
    assert report.rows_read == 2 and report.rows_written == 1 and [m["line"] for m in report.malformed_lines] == [3]


def test_the_record_layout_of_quoted_line_breaks_and_empty_lines(tmp_path):
    spans = tmp_path / "spans.csv"
    spans.write_text('a,b\n"x ""y""",1\n"z\nw",2\n3,4\n')
    assert ingest._record_layout(spans, ",") == ingest.RecordLayout([1, 2, 3, 5], [])
    blank = tmp_path / "blank.csv"
    blank.write_text("a,b\r\n1,2\r\n\r\n3,4\n")
    assert ingest._record_layout(blank, ",") == ingest.RecordLayout([1, 2, 3, 4], [3])


def test_the_overlong_line_scan_agrees_with_splitting_the_lines(tmp_path):
    import random

    from voiceprint.calls.ingest import _line_scan

    rng = random.Random(5)
    text = "".join("x" * rng.choice([0, 1, 3, 9, 10, 11, 25, 40]) + "\n" for _ in range(300)) + "y" * 12  # no newline at the end
    path = tmp_path / "lines.txt"
    path.write_text(text)
    expected = [(n, len(line)) for n, line in enumerate(text.split("\n"), 1) if len(line) >= 10]
    for chunk in (1, 3, 7, 9):
        assert _line_scan(path, limit=10, chunk=chunk) == (expected, 301), chunk
        assert _line_scan(path, limit=10 ** 6, chunk=chunk) == ([], 301)


def test_an_input_whose_every_record_is_malformed_writes_nothing_and_says_why(tmp_path):
    path = tmp_path / "dmy.csv"
    path.write_text(HEADER + "".join(f"13800138000,139{i:08d},out,0{i + 1}/03/2020 10:00:00,30,,,,\n" for i in range(5)), encoding="utf-8")
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"every one of the 5 records is malformed, e.g. .* line 2: bad start time 01/03/2020 .*timestamp_format"):
        import_calls(path, out, template="generic")
    assert not out.exists()


def test_empty_file_is_a_clear_error_and_header_only_an_empty_result(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        import_calls(empty, tmp_path / "out.parquet", template="generic")
    header_only = tmp_path / "header.csv"
    header_only.write_text(HEADER, encoding="utf-8")
    report = import_calls(header_only, tmp_path / "out.parquet", template="generic")
    assert report.rows_written == 0 and "no records" in report.message


def test_gzip_tsv_and_parquet_inputs_and_template_detection(tmp_path):
    tsv = tmp_path / "calls.tsv.gz"
    with gzip.open(tsv, "wt", encoding="utf-8") as fh:
        fh.write(HEADER.replace(",", "\t") + ROW.replace(",", "\t"))
    report = import_calls(tsv, tmp_path / "a.parquet")  # no template: generic is detected from the header
    assert report.template == "generic" and report.rows_written == 1
    sichuan = tmp_path / "voc.csv"
    sichuan.write_text(
        "phone_no_m,opposite_no_m,calltype_id,start_datetime,call_dur,city_name,county_name,imei_m\n"
        + "A" * 64 + "," + "b" * 64 + ",1,2019-09-26 12:24:11,47,,,ffff\n", encoding="utf-8")
    report = import_calls(sichuan, tmp_path / "s.parquet")
    assert report.template == "sichuan"
    row = rows(tmp_path / "s.parquet")[0]
    assert row[0] == "a" * 64 and row[2] == "out" and row[5] is None
    report = import_calls(tmp_path / "a.parquet", tmp_path / "again.parquet", template="generic")
    assert report.rows_written == 1


def test_missing_column_and_unknown_template_are_data_errors(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="template"):
        import_calls(path, tmp_path / "o.parquet")
    with pytest.raises(DataError, match="lacks column"):
        import_calls(path, tmp_path / "o.parquet", template="sichuan")
    with pytest.raises(DataError, match="no template"):
        load_template("no_such_carrier")


def test_registry_and_fraud_list(tmp_path):
    reg = tmp_path / "reg.csv"
    reg.write_text("number,name,id_number\n13800138000,张三,51010019800101123x\n138 0013 8001,张三,51010019800101123X\n,nobody,1\n",
                   encoding="utf-8")
    report = import_registry(reg, tmp_path / "reg.parquet")
    assert report.rows_written == 2 and report.malformed == 1 and report.malformed_lines[0]["line"] == 4
    ids = {r[0]: r[2] for r in rows_any(tmp_path / "reg.parquet")}
    assert ids == {"+8613800138000": "51010019800101123X", "+8613800138001": "51010019800101123X"}
    fl = tmp_path / "fraud.csv"
    fl.write_text("number,source\n13800138000,notice 1\n13800138000,notice 2\n", encoding="utf-8")
    report = import_fraud_list(fl, tmp_path / "fraud.parquet")
    assert report.rows_written == 1 and report.exact_duplicates == 1


def test_a_number_registered_to_two_people_is_reported_not_merged_silently(tmp_path):
    reg = tmp_path / "reg.csv"
    reg.write_text("number,name,id_number\n"
                   "13800138002,李四,510104199001011234\n"          # kept: the first registration
                   "0086 13800138002,李四2,510104199001011235\n"    # another person for the same number: reported
                   "13800138003,王五,510104199001011236\n13800138003,王五,510104199001011236\n"  # an exact duplicate
                   "13800138004,赵六,\n13800138004,,510104199001011237\n"  # one row completes the other: no conflict
                   "13800138005,钱七,5.10104E+17\n"        # an ID number a spreadsheet rounded
                   "13800138006,孙八,510104199001011238\n13800138006,孙八,510104199001011239\n"  # the same name, another ID
                   "13800138007,周九,510104199001011240\n13800138007,吴十,510104199001011240\n", encoding="gbk")
    report = import_registry(reg, tmp_path / "reg.parquet")
    assert (report.conflicting_rows, report.exact_duplicates, report.rows_written) == (3, 2, 5)
    assert [(c["line"], c["reason"]) for c in report.conflict_lines] == [  # which of them differs is said
        (3, "the number has another name and ID number on an earlier row, which was kept"),
        (10, "the number has another ID number on an earlier row, which was kept"),
        (12, "the number has another name on an earlier row, which was kept")]
    assert report.malformed == 1 and report.malformed_lines[0]["line"] == 8
    assert "scientific notation" in report.malformed_lines[0]["reason"]
    kept = {r[0]: (r[1], r[2]) for r in rows_any(tmp_path / "reg.parquet")}
    assert kept["+8613800138002"] == ("李四", "510104199001011234")
    assert kept["+8613800138004"] == ("赵六", "510104199001011237")


def rows_any(path):
    return duckdb.sql(f"SELECT * FROM read_parquet('{path}')").fetchall()


def test_compact_switch_timestamps_are_read_and_impossible_ones_reported(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("number,other,direction,start,duration\n13800138001,13900139001,out,20200105100000,60\n"
                    "13800138001,13900139002,out,20201305100000,60\n", encoding="utf-8")
    report = import_calls(path, tmp_path / "c.parquet", template="generic")
    assert str(rows(tmp_path / "c.parquet")[0][3]) == "2020-01-05 10:00:00"
    assert report.malformed_lines == [{"file": str(path), "line": 3, "reason": "bad start time 20201305100000"}]


def test_an_import_never_overwrites_its_input_and_writes_a_private_table(tmp_path):
    import os

    calls = tmp_path / "calls.csv"
    calls.write_text(HEADER + ROW, encoding="utf-8")
    import_calls(calls, tmp_path / "calls.parquet", template="generic")
    old = os.umask(0o022)
    try:
        import_calls(calls, tmp_path / "again.parquet", template="generic")
    finally:
        os.umask(old)
    assert (tmp_path / "again.parquet").stat().st_mode & 0o777 == 0o600  # phone numbers, whatever the umask
    before = (tmp_path / "calls.parquet").read_bytes()
    with pytest.raises(DataError, match="is also an input"):
        import_registry(tmp_path / "calls.parquet", tmp_path / "calls.parquet")
    assert (tmp_path / "calls.parquet").read_bytes() == before


def test_a_registry_that_names_nobody_is_refused(tmp_path):
    calls = tmp_path / "calls.csv"
    calls.write_text(HEADER + ROW, encoding="utf-8")
    with pytest.raises(DataError, match="a registry needs a name, ID number or numbers-on-ID column.*--kind calls"):
        import_registry(calls, tmp_path / "registry.parquet")
    misspelt = tmp_path / "reg.csv"
    misspelt.write_text("number,nmae,id_numbr\n13800138000,张三,51010019800101123X\n", encoding="utf-8")
    with pytest.raises(DataError, match="a registry needs"):
        import_registry(misspelt, tmp_path / "registry.parquet")
    assert not (tmp_path / "registry.parquet").exists()


def test_a_misspelt_optional_column_is_reported_not_left_empty_silently(tmp_path):
    path = tmp_path / "calls.csv"
    path.write_text(HEADER.replace("county", "contry").replace("duration", "duraton") + ROW, encoding="utf-8")
    report = import_calls(path, tmp_path / "calls.parquet", template="generic")
    assert report.rows_written == 1
    assert report.absent_columns == {str(path): ["duration ('duration')", "county ('county')"]}
    assert report.unused_columns == {str(path): ["duraton", "contry"]}
    assert "calls.csv has no duration ('duration'), county ('county')" in report.column_warning()
    items = {r["item"]: r["value"] for r in report.summary_rows()}
    assert items["columns not read (calls.csv)"] == "duraton, contry"
    path.write_text(HEADER + ROW, encoding="utf-8")
    clean = import_calls(path, tmp_path / "ok.parquet", template="generic")
    assert clean.absent_columns == {} and clean.unused_columns == {} and clean.column_warning() == ""


def test_a_registration_with_another_home_area_is_reported_not_counted_a_duplicate(tmp_path):
    reg = tmp_path / "reg.csv"
    reg.write_text("number,name,id_number,home_city,home_county\n"
                   "13900000050,王五,510104199001011236,资阳,乐至县\n"
                   "13900000050,王五,510104199001011236,泸州,江阳区\n"   # the same person, another home area: reported
                   "13900000051,赵六,510104199001011237,资阳,乐至县\n13900000051,赵六,510104199001011237,资阳,乐至县\n",
                   encoding="utf-8")
    report = import_registry(reg, tmp_path / "reg.parquet")
    assert (report.conflicting_rows, report.exact_duplicates, report.rows_written) == (1, 1, 2)
    assert [(c["line"], c["reason"]) for c in report.conflict_lines] == [
        (3, "the number has another home area on an earlier row, which was kept")]


def test_a_ctrl_c_as_the_table_goes_in_place_leaves_the_table_and_its_report_together(tmp_path, monkeypatch, capsys):
    """A Ctrl-C between the table's rename and the report's left a new table beside the old report, and the
    CLI said nothing was written."""
    import json
    import signal

    from voiceprint.calls import ingest
    from voiceprint.cli import run

    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    small.write_text(HEADER + ROW, encoding="utf-8")
    big.write_text(HEADER + ROW + "".join(ROW.replace("10:00:00", f"11:{m:02d}:00") for m in range(40)), encoding="utf-8")
    out = tmp_path / "calls.parquet"
    assert run(["calls", "import", str(small), "--out", str(out), "--template", "generic"]) == 0
    real_replace = ingest.os.replace

    def replace_then_ctrl_c(src, dst):  # the user presses Ctrl-C the moment the table is in place
        real_replace(src, dst)
        if str(dst) == str(out):
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(ingest.os, "replace", replace_then_ctrl_c)
    capsys.readouterr()
    assert run(["calls", "import", str(big), "--out", str(out), "--template", "generic"]) == 130
    report = json.loads((tmp_path / "calls.parquet.report.json").read_text(encoding="utf-8"))
    assert report["rows_written"] == len(rows(out)) == 41  # the new table with its own report
    assert "written whole" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_workbook_or_binary_file_is_refused_for_what_it_is_not_its_encoding(tmp_path):
    import io
    import zipfile

    xlsx = tmp_path / "voc.xlsx"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    xlsx.write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="Excel workbook or a zip archive.*save the sheet as CSV"):
        import_calls(xlsx, tmp_path / "a.parquet", template="generic")
    noise = tmp_path / "noise.csv"
    noise.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(DataError, match="not a text table"):
        import_calls(noise, tmp_path / "b.parquet", template="generic")
    assert not (tmp_path / "a.parquet").exists() and not (tmp_path / "b.parquet").exists()


def test_a_file_whose_last_line_has_no_line_ending_is_flagged(tmp_path):
    """A copy cut inside its last field imported silently, a shortened IMEI and all."""
    cut = tmp_path / "cut.csv"
    cut.write_text(HEADER + ROW + ROW.replace("10:00", "11:00")[:-8], encoding="utf-8")
    report = import_calls(cut, tmp_path / "a.parquet", template="generic")
    assert report.unterminated == [str(cut)]
    assert "last line of cut.csv has no line ending" in report.column_warning()
    whole = tmp_path / "whole.csv"
    whole.write_text(HEADER + ROW, encoding="utf-8")
    assert import_calls(whole, tmp_path / "b.parquet", template="generic").unterminated == []
