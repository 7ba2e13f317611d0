"""The Spark engine runs the same feature definitions as DuckDB and gives the same features."""

from __future__ import annotations

import shutil

import pytest

from voiceprint.calls.features import Screen, compute_features
from voiceprint.calls.ingest import import_fraud_list, import_registry
from voiceprint.calls.synthetic import generate

pytest.importorskip("pyspark", reason="pyspark not installed - run `make install`")
if not shutil.which("java"):
    pytest.skip("no Java for Spark - `make install` installs openjdk-17-jre-headless", allow_module_level=True)


def test_spark_and_duckdb_give_identical_features(tmp_path):
    from voiceprint.calls.spark import compare_features

    res = generate(tmp_path, rows=30_000, subscribers=90, dens=2, den_size=4, canonical=True)
    import_registry(res["registry"], tmp_path / "reg.parquet")
    import_fraud_list(res["fraud_list"], tmp_path / "fraud.parquet")
    kw = {"registry": tmp_path / "reg.parquet", "fraud_list": tmp_path / "fraud.parquet", "temp_directory": tmp_path}
    duck = compute_features(res["calls"], **kw)
    out = tmp_path / "spark.parquet"
    n = compute_features(res["calls"], out=out, engine="spark", master="local[2]", **kw)
    import pandas as pd

    assert len(duck) == 90 and n == 90
    assert compare_features(duck, pd.read_parquet(out)) == []
    assert duck["community_size"].max() > 1 and duck["known_fraud"].sum() >= 1  # the check covered the group features

    # an analyst's screen (a time window, one county) translates to Spark SQL the same way
    import duckdb

    rel = duckdb.sql(f"SELECT min(start), mode(county) FROM read_parquet('{res['calls']}')")
    assert rel is not None  # a SELECT always gives a relation
    [(first, county)] = rel.fetchall()
    screen = Screen(since=str(first.date()), until=str((first + pd.Timedelta(days=9)).date()), area=county)
    duck = compute_features(res["calls"], screen=screen, **kw)
    n = compute_features(res["calls"], out=out, engine="spark", master="local[2]", screen=screen, **kw)
    assert 0 < n == len(duck) < 90 and compare_features(duck, pd.read_parquet(out)) == []


def test_unknown_engine_is_a_data_error(tmp_path):
    from voiceprint.errors import DataError

    with pytest.raises(DataError, match="unknown engine"):
        compute_features(tmp_path / "x.parquet", engine="hive")


def test_a_gateway_that_exits_at_start_is_tried_once_more_then_named(monkeypatch):
    from voiceprint.calls import spark
    from voiceprint.errors import DataError

    class Builder:
        def __init__(self, failures):
            self.failures, self.calls = failures, 0

        def getOrCreate(self):  # noqa: N802 - pyspark's name
            self.calls += 1
            if self.calls <= self.failures:
                raise RuntimeError("[JAVA_GATEWAY_EXITED] Java gateway process exited before sending its port number.")
            return "session"

    once = Builder(1)
    assert spark._start(once) == "session" and once.calls == 2
    with pytest.raises(DataError, match="exited as it started, twice"):
        spark._start(Builder(2))
    other = Builder(0)
    other.getOrCreate = lambda: (_ for _ in ()).throw(ValueError("another failure"))  # type: ignore[method-assign]
    with pytest.raises(ValueError):
        spark._start(other)


def test_ctrl_c_cancels_the_running_job_and_says_nothing_else(caplog, capfd):
    """pyspark's own Ctrl-C handler called the JVM from inside the interrupted call: screens of py4j and
    Java tracebacks over the one line that says what to do, and a broken gateway connection."""
    import os
    import signal
    import threading

    from voiceprint.calls.spark import SparkRunner

    before = signal.getsignal(signal.SIGINT)
    runner = SparkRunner(master="local[1]")
    try:
        assert runner.scalar("SELECT 7") == 7
        runner.spark.range(60_000).createOrReplaceTempView("r")
        capfd.readouterr()
        timer = threading.Timer(3.0, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):  # about a minute of work on one core, cancelled after 3 s
            runner.scalar("SELECT count(*) FROM r a CROSS JOIN r b WHERE (a.id * 31 + b.id) % 1000003 = 5")
        timer.join()
        assert runner.interrupted.is_set()
        with pytest.raises(KeyboardInterrupt):  # and nothing more starts after it
            runner.scalar("SELECT 1")
    finally:
        runner.close()
    assert signal.getsignal(signal.SIGINT) is before
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ERROR" not in err and not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_spark_engine_reads_a_uri_and_duckdb_says_it_cannot(tmp_path):
    """A province keeps its CDRs on HDFS or S3: the Spark engine takes the URI (file:// here), DuckDB says what to do."""
    import pandas as pd

    from voiceprint.calls.spark import compare_features
    from voiceprint.errors import DataError

    res = generate(tmp_path, rows=4_000, subscribers=30, dens=1, den_size=3, canonical=True)
    out = tmp_path / "spark.parquet"
    assert compute_features(res["calls"].as_uri(), out=out, engine="spark", master="local[1]", temp_directory=tmp_path) == 30
    assert compare_features(compute_features(res["calls"], temp_directory=tmp_path), pd.read_parquet(out)) == []
    with pytest.raises(DataError, match="read by the Spark engine only - add --engine spark"):
        compute_features("hdfs://namenode:8020/cdr/calls.parquet", out=tmp_path / "d.parquet")


def test_spark_and_duckdb_agree_on_a_county_name_in_two_cities(tmp_path):
    """The places (city, county), their tie-breaks and an area "CITY COUNTY" translate to Spark SQL the same way."""
    import duckdb
    import pandas as pd

    from voiceprint.calls.spark import compare_features

    res = generate(tmp_path, rows=20_000, subscribers=60, dens=1, den_size=4, canonical=True)
    src, calls = res["calls"], tmp_path / "two_shizhong.parquet"
    # some calls from 内江/市中区 again from 乐山/市中区, some from a 市中区 without a city
    duckdb.sql(f"""COPY (SELECT * FROM read_parquet('{src}')
        UNION ALL SELECT * REPLACE ('乐山' AS city) FROM read_parquet('{src}') WHERE city = '内江' AND county = '市中区' AND hash(start) % 3 = 0
        UNION ALL SELECT * REPLACE (CAST(NULL AS VARCHAR) AS city) FROM read_parquet('{src}') WHERE county = '市中区' AND hash(start) % 5 = 0
        ) TO '{calls}' (FORMAT parquet)""")
    import_registry(res["registry"], tmp_path / "reg.parquet")
    kw = {"registry": tmp_path / "reg.parquet", "temp_directory": tmp_path}
    duck = compute_features(calls, **kw)
    both = duckdb.execute(f"SELECT number FROM read_parquet('{calls}') WHERE county = '市中区' GROUP BY number "
                          "HAVING count(DISTINCT city) > 1").fetchall()
    assert both, "the set must hold numbers that called from both 市中区"
    out = tmp_path / "spark.parquet"
    compute_features(calls, out=out, engine="spark", master="local[2]", **kw)
    assert compare_features(duck, pd.read_parquet(out)) == []
    screen, duck_notes, spark_notes = Screen(area="内江市中区"), list[str](), list[str]()
    duck = compute_features(calls, screen=screen, notes=duck_notes, **kw)
    n = compute_features(calls, out=out, engine="spark", master="local[2]", screen=screen, notes=spark_notes, **kw)
    assert 0 < n == len(duck) < 60 and compare_features(duck, pd.read_parquet(out)) == [] and duck_notes == spark_notes == []
    duck = compute_features(calls, screen=Screen(area="市中区"), notes=duck_notes, **kw)
    compute_features(calls, out=out, engine="spark", master="local[2]", screen=Screen(area="市中区"), notes=spark_notes, **kw)
    assert duck_notes == spark_notes and "(乐山, 内江)" in duck_notes[0] and compare_features(duck, pd.read_parquet(out)) == []
