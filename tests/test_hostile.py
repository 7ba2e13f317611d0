"""Hostile files: CDR column names and values that try SQL injection, model files that try to run code."""

from __future__ import annotations

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
                      "start": ["2020-03-01 10:00:00"], **{n: ["x"] for n in names}})
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
    spec = embedding.load_spec()
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
