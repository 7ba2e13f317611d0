"""Features: hand-made CDRs with known answers, and generated CDRs with planted dens."""

from __future__ import annotations

import pytest

from voiceprint.calls.features import FEATURES, Screen, compute_features
from voiceprint.calls.ingest import import_calls, import_fraud_list, import_registry
from voiceprint.calls.synthetic import generate
from voiceprint.errors import DataError

HEADER = "number,other,direction,start,duration,city,county,imei,other_area\n"


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory):
    """Three subscribers: A calls five strangers in one morning from one handset shared with B;
    B talks both ways with two friends; C is a known fraud number that also calls A's victims."""
    d = tmp_path_factory.mktemp("small")
    lines = [HEADER]
    for k in range(5):
        lines.append(f"13800000001,1390000001{k},out,2020-03-02 0{9}:{10 + k}:00,{20 + k},成都,锦江区,IMEI1,广东\n")
    lines += [
        "13800000002,13700000001,out,2020-03-01 20:00:00,100,成都,武侯区,IMEI1,成都\n",
        "13800000002,13700000001,in,2020-03-02 21:00:00,200,成都,武侯区,IMEI2,成都\n",
        "13800000002,13700000002,in,2020-03-05 22:00:00,50,绵阳,涪城区,IMEI2,\n",
        "13800000003,13900000010,out,2020-03-03 10:00:00,10,成都,锦江区,IMEI3,\n",
        "13800000003,13900000011,out,2020-03-03 10:05:00,10,成都,锦江区,IMEI3,\n",
    ]
    (d / "calls.csv").write_text("".join(lines), encoding="utf-8")
    (d / "reg.csv").write_text("number,name,id_number\n13800000001,甲,ID1\n13800000002,乙,ID2\n13800000003,丙,ID1\n", encoding="utf-8")
    (d / "fraud.csv").write_text("number\n13800000003\n", encoding="utf-8")
    import_calls(d / "calls.csv", d / "calls.parquet")
    import_registry(d / "reg.csv", d / "reg.parquet")
    import_fraud_list(d / "fraud.csv", d / "fraud.parquet")
    return d


@pytest.fixture(scope="module")
def small(small_dir):
    d = small_dir
    df = compute_features(d / "calls.parquet", registry=d / "reg.parquet", fraud_list=d / "fraud.parquet", temp_directory=d)
    return df.set_index("number")


def test_behaviour_time_and_area(small):
    a, b = small.loc["+8613800000001"], small.loc["+8613800000002"]
    assert a.calls == 5 and a.distinct_others == 5 and a.calls_per_other == 1 and a.out_share == 1
    assert a.max_callees_day == 5 and a.max_callees_6h == 5 and a.office_share == 1 and a.active_days == 1
    assert a.interval_mean == 60 and a.n_counties == 1 and a.far_callee_share == 1
    assert b.distinct_others == 2 and b.two_way_share == 0.5 and b.n_counties == 2 and b.n_cities == 2
    assert b.out_share == pytest.approx(1 / 3) and b.repeat_other_share == 0.5
    assert b.hour_20 == pytest.approx(1 / 3) and b.away_share == pytest.approx(1 / 3)
    assert b.hour_03 == 0 and sum(b[f"hour_{h:02d}"] for h in range(24)) == pytest.approx(1)  # no call at 3 am: a share of 0


def test_group_features(small):
    a, b, c = (small.loc[f"+861380000000{i}"] for i in (1, 2, 3))
    assert a.max_numbers_per_imei == 2 and b.n_imei == 2  # IMEI1 carries A and B
    assert a.numbers_on_id == 2 and c.numbers_on_id == 2 and b.numbers_on_id == 1
    assert a.fraud_contacts == 2  # two of A's callees were also called by known fraud number C
    assert a.shared_others == 2 and b.shared_others == 0
    assert a.community_size == 3 and a.community_known_fraud == 1  # A-B share a handset, A-C two callees
    assert c.known_fraud == 1 and c.community_known_fraud == 0 and c.fraud_contacts == 0  # its own contacts do not count


@pytest.fixture(scope="module")
def shizhong(tmp_path_factory):
    """市中区 is a county of both 内江 and 乐山. 1 calls from both (3 to 1), 2 from both and twice from
    成都/锦江区 (its registry's home county is 市中区), 3 once from each, 4 from 乐山/市中区 only, 5 from 内江/东兴区."""
    d = tmp_path_factory.mktemp("shizhong")
    lines = [HEADER]
    for k, (city, direction) in enumerate([("内江", "out"), ("内江", "out"), ("内江", "in"), ("乐山", "out")]):
        lines.append(f"13800000001,1390000000{k},{direction},2020-03-0{k + 1} 10:00:00,30,{city},市中区,IMEI1,成都\n")
    for k, (city, county) in enumerate([("内江", "市中区"), ("乐山", "市中区"), ("成都", "锦江区"), ("成都", "锦江区")]):
        lines.append(f"13800000002,1370000000{k},out,2020-03-0{k + 1} 10:00:00,30,{city},{county},IMEI2,成都\n")
    lines += ["13800000003,13600000001,out,2020-03-01 10:00:00,30,乐山,市中区,IMEI3,成都\n",
              "13800000003,13600000002,out,2020-03-02 10:00:00,30,内江,市中区,IMEI3,成都\n",
              "13800000004,13600000003,out,2020-03-02 10:00:00,30,乐山,市中区,IMEI4,成都\n",
              "13800000005,13600000004,out,2020-03-02 10:00:00,30,内江,东兴区,IMEI5,成都\n"]
    (d / "calls.csv").write_text("".join(lines), encoding="utf-8")
    # 2's registry names 内江's 市中区 (乐山's is away); 1's names a county without a city (both 市中区 are home)
    (d / "reg.csv").write_text("number,name,id_number,home_city,home_county\n13800000002,乙,ID2,内江,市中区\n"
                               "13800000001,甲,ID1,,市中区\n", encoding="utf-8")
    import_calls(d / "calls.csv", d / "calls.parquet")
    import_registry(d / "reg.csv", d / "reg.parquet")
    return d


def test_a_county_name_in_two_cities_is_two_places(shizhong):
    got = compute_features(shizhong / "calls.parquet", registry=shizhong / "reg.parquet", temp_directory=shizhong).set_index("number")
    a, b, c = (got.loc[f"+861380000000{i}"] for i in (1, 2, 3))
    assert a.n_cities == 2 and a.n_counties == 2 and a.n_counties_out == 2
    # a registry county without a city: every 市中区 is home (the most used place alone would leave 乐山's away)
    assert a.top_county_share == pytest.approx(0.75) and a.away_share == 0 and a.home_county == "市中区"
    # a registry county in its city: 内江/市中区 is home; 乐山/市中区 and 成都/锦江区 are away
    assert b.n_counties == 3 and b.top_county_share == pytest.approx(0.5) and b.away_share == pytest.approx(0.75)
    # a tie between the two 市中区: the fallback home is one of them, so half the calls are away
    assert c.n_counties == 2 and c.top_county_share == pytest.approx(0.5) and c.away_share == pytest.approx(0.5)


@pytest.mark.parametrize("area, numbers", [
    ("内江 市中区", [1, 2, 3]), ("内江/市中区", [1, 2, 3]), (" 乐山 / 市中区 ", [1, 2, 3, 4]), ("内江／市中区", [1, 2, 3]),
    ("内江市中区", [1, 2, 3]), ("内江", [1, 2, 3, 5]), ("东兴区", [5]), ("锦江区", [2]), ("市中区", [1, 2, 3, 4]),
])
def test_screening_one_county_of_one_city(shizhong, area, numbers):
    notes: list[str] = []
    got = compute_features(shizhong / "calls.parquet", temp_directory=shizhong, screen=Screen(area=area), notes=notes)
    assert list(got["number"]) == [f"+861380000000{i}" for i in numbers]
    if area == "市中区":  # a county name found in two cities: both screened, and the analyst is told how to narrow it
        assert notes == ['市中区 is a county in 2 cities (乐山, 内江): numbers with calls in any of them are screened - '
                         'narrow it to one with --area "乐山 市中区" (or 乐山/市中区)']
    else:
        assert notes == []


def test_screening_a_county_in_the_wrong_city_says_where_it_is(shizhong):
    calls = shizhong / "calls.parquet"
    with pytest.raises(DataError, match="no voice call in 成都/市中区: 市中区 has calls from 乐山, 内江 only - check the city"):
        compute_features(calls, temp_directory=shizhong, screen=Screen(area="成都 市中区"))
    with pytest.raises(DataError, match='no voice call in 自贡: check the spelling .* "CITY COUNTY" or CITY/COUNTY'):
        compute_features(calls, temp_directory=shizhong, screen=Screen(area="自贡"))
    for bad in ("内江 市中区 东兴区", "内江/", "/市中区"):
        with pytest.raises(DataError, match="give a city or a county, or one county of one city"):
            compute_features(calls, temp_directory=shizhong, screen=Screen(area=bad))
    assert Screen(since="2020-03-01", area="内江 市中区").describe() == "from 2020-03-01 in 内江/市中区"


def test_screening_by_time_window_and_area(tmp_path, small_dir, small):
    calls, reg = small_dir / "calls.parquet", small_dir / "reg.parquet"
    # the window limits the calls: B's calls of the 1st and 5th fall outside, C's of the 3rd inside
    df = compute_features(calls, registry=reg, temp_directory=tmp_path, screen=Screen(since="2020-03-02", until="2020-03-03"))
    got = df.set_index("number")
    assert got.loc["+8613800000002", "calls"] == 1 and got.loc["+8613800000003", "calls"] == 2
    # the area limits the numbers reported, not the network their group features see
    df = compute_features(calls, registry=reg, temp_directory=tmp_path, screen=Screen(area="锦江区"))
    got = df.set_index("number")
    assert sorted(got.index) == ["+8613800000001", "+8613800000003"]
    assert got.loc["+8613800000001"].community_size == small.loc["+8613800000001"].community_size == 3  # B still counts
    assert compute_features(calls, out=tmp_path / "f.parquet", temp_directory=tmp_path, screen=Screen(area="锦江区")) == 2
    with pytest.raises(DataError, match="no voice call in 朝阳区"):
        compute_features(calls, temp_directory=tmp_path, screen=Screen(area="朝阳区"))
    with pytest.raises(DataError, match="锦江区 has calls outside the window - widen --since/--until"):
        compute_features(calls, temp_directory=tmp_path, screen=Screen(since="2020-03-05", until="2020-03-05", area="锦江区"))
    with pytest.raises(DataError, match="no voice calls from 2021-01-01"):
        compute_features(calls, temp_directory=tmp_path, screen=Screen(since="2021-01-01"))
    with pytest.raises(DataError, match="--until 'March': give a date"):
        compute_features(calls, temp_directory=tmp_path, screen=Screen(until="March"))


def test_feature_table_columns_are_documented(small):
    documented = set(FEATURES) | {f"hour_{h:02d}" for h in range(24)} | {"home_county"}
    assert set(small.columns) <= documented


def test_no_calls_is_a_data_error(tmp_path):
    (tmp_path / "h.csv").write_text(HEADER, encoding="utf-8")
    import_calls(tmp_path / "h.csv", tmp_path / "h.parquet")
    with pytest.raises(DataError, match="no voice calls"):
        compute_features(tmp_path / "h.parquet", temp_directory=tmp_path)


def test_generated_dens_stand_out(tmp_path):
    res = generate(tmp_path, rows=40_000, subscribers=120, dens=2, den_size=4, canonical=True)
    import_registry(res["registry"], tmp_path / "reg.parquet")
    import_fraud_list(res["fraud_list"], tmp_path / "fraud.parquet")
    out = tmp_path / "features.csv"
    n = compute_features(res["calls"], out=out, registry=tmp_path / "reg.parquet", fraud_list=tmp_path / "fraud.parquet",
                         temp_directory=tmp_path)
    import pandas as pd

    df = pd.read_csv(out, dtype={"number": str}).set_index("number")
    assert n == 120 == len(df)
    assert out.stat().st_mode & 0o077 == 0  # it lists phone numbers: private even to a Python caller with umask 022
    truth = set(pd.read_csv(res["truth"], dtype=str)["number"])
    fraud, normal = df.loc[df.index.isin(truth)], df.loc[~df.index.isin(truth)]
    assert fraud.out_share.median() > 0.9 > normal.out_share.median()
    assert fraud.calls_per_other.median() < 1.5 < normal.calls_per_other.median()
    assert fraud.numbers_on_id.min() >= 2 and fraud.max_numbers_per_imei.min() >= 2
    assert fraud.n_counties.max() <= 2 and fraud.office_share.min() > 0.6


@pytest.mark.parametrize("late", ["2020-03-02 10:03:00", "2099-03-02 10:03:00"])
def test_intervals_in_whole_seconds_over_any_span(tmp_path, late):
    """Call times become whole seconds (as Spark's unix_timestamp gives them) in 32 bits, or 64
    when the calls span more than 68 years (a mistyped year must not overflow)."""
    rows = ["13800000001,13900000001,out,2020-03-02 10:00:00.900,20,,,,\n",
            "13800000001,13900000002,out,2020-03-02 10:01:00.100,20,,,,\n",
            f"13800000001,13900000003,out,{late},20,,,,\n"]
    (tmp_path / "c.csv").write_text(HEADER + "".join(rows), encoding="utf-8")
    import_calls(tmp_path / "c.csv", tmp_path / "c.parquet")
    a = compute_features(tmp_path / "c.parquet", temp_directory=tmp_path).set_index("number").loc["+8613800000001"]
    from datetime import datetime

    last_gap = (datetime.fromisoformat(late) - datetime(2020, 3, 2, 10, 1)).total_seconds()
    assert a.interval_mean == pytest.approx((60 + last_gap) / 2, rel=1e-12)  # 10:00:00.9 -> 10:00:00, 10:01:00.1 -> 10:01:00


def test_steps_in_parallel_give_the_same_table_as_one_by_one(tmp_path, monkeypatch):
    import pandas as pd

    from voiceprint.calls import features

    res = generate(tmp_path, rows=20_000, subscribers=60, dens=1, den_size=4, canonical=True)
    kw = {"temp_directory": tmp_path, "threads": 2}
    parallel = compute_features(res["calls"], **kw)
    monkeypatch.setattr(features, "STEP_WORKERS", 1)
    serial = compute_features(res["calls"], **kw)
    pd.testing.assert_frame_equal(parallel, serial)


def test_a_step_naming_a_later_step_is_refused():
    from voiceprint.calls.features import step_dependencies

    assert step_dependencies([("a", "SELECT 1 AS x"), ("b", "SELECT x FROM a")]) == {"a": set(), "b": {"a"}}
    with pytest.raises(ValueError, match="reads b"):
        step_dependencies([("a", "SELECT x FROM b"), ("b", "SELECT 1 AS x")])


def test_a_failing_step_stops_the_others_and_writes_nothing(tmp_path, monkeypatch):
    from voiceprint.calls import features

    res = generate(tmp_path, rows=20_000, subscribers=60, dens=1, den_size=4, canonical=True)
    steps = features._steps()
    broken = [(name, "SELECT error('step failed on purpose')" if name == "pairs" else sql) for name, sql in steps]
    monkeypatch.setattr(features, "_steps", lambda: broken)
    out = tmp_path / "features.parquet"
    with pytest.raises(Exception, match="failed on purpose"):
        compute_features(res["calls"], out=out, temp_directory=tmp_path, threads=2)
    assert not out.exists() and not list(tmp_path.glob(".features.parquet*"))


def test_gzipped_csv_output_is_whole_gzip(tmp_path):
    import gzip

    import pandas as pd

    res = generate(tmp_path, rows=5_000, subscribers=20, dens=1, den_size=3, canonical=True)
    out = tmp_path / "features.csv.gz"
    n = compute_features(res["calls"], out=out, temp_directory=tmp_path)
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        assert len(pd.read_csv(fh, dtype={"number": str})) == n
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".features")] == []


def test_steps_run_one_at_a_time_when_two_would_not_fit_in_memory():
    import threading

    from voiceprint.calls.engine import connect
    from voiceprint.calls.features import DuckRunner, _bytes

    assert _bytes("5.5 GiB") == 5.5 * 2**30 and _bytes("95.3 MiB") == 95.3 * 2**20 and _bytes("1000 bytes") == 1000
    runner = DuckRunner(connect(memory_limit="1GB", threads=2, keep_order=False))
    seen: dict[int, set[str]] = {}
    table = runner.table

    def spy(name, sql, con=None):
        seen.setdefault(rows, set()).add(threading.current_thread().name)
        table(name, sql, con)

    runner.table = spy  # type: ignore[method-assign]
    steps = [(f"t{i}", f"SELECT {i} AS x") for i in range(6)]
    try:
        for rows in (1_000, 10**9):  # 10^9 rows x 120 bytes: far beyond 1 GB
            runner.input_rows = rows
            runner.tables(steps)
    finally:
        runner.close()
    assert seen[10**9] == {threading.main_thread().name}
    assert all(name.startswith("vp-step") for name in seen[1_000])


def test_engine_comparison_tolerates_rounding_noise_not_differences():
    import pandas as pd

    from voiceprint.calls.spark import compare_features

    a = pd.DataFrame({"number": ["a", "b"], "daily_trend": [5.9e-18, 0.25], "calls": [3, 4]})
    assert compare_features(a, a.assign(daily_trend=[0.0, 0.25 * (1 + 1e-12)])) == []
    assert compare_features(a, a.assign(daily_trend=[0.0, 0.26])) == ["daily_trend: 1 values differ (e.g. 0.25 vs 0.26)"]
    assert compare_features(a, a.assign(calls=[3, 5])) == ["calls: 1 values differ (e.g. 4.0 vs 5.0)"]


def test_a_spark_connect_url_without_its_client_packages_is_one_clear_line(monkeypatch):
    pytest.importorskip("pyspark", reason="pyspark not installed - run `make install`")
    from voiceprint.calls import spark

    assert spark._missing_modules("json", "no_such_module_vp", "no_such_package_vp.sub") == ["no_such_module_vp", "no_such_package_vp.sub"]
    # without them pyspark's Connect client ended the process with status 0 and no word
    monkeypatch.setattr(spark, "_missing_modules", lambda *names: ["grpc_status"])
    with pytest.raises(DataError, match=r"needs Spark Connect's client packages \(grpc_status missing\)"):
        spark.spark_session("sc://127.0.0.1:15002")


def test_an_until_to_the_minute_takes_in_that_whole_minute():
    """`--until "2020-03-31 21:12"` left out a call at 21:12:23, although the window is inclusive."""
    assert Screen(until="2020-03-31 21:12").window_sql() == "start < TIMESTAMP '2020-03-31 21:13:00'"
    assert Screen(until="2020-03-31").window_sql() == "start < TIMESTAMP '2020-04-01 00:00:00'"
    assert Screen(until="2020-03-31 21:12:23").window_sql() == "start <= TIMESTAMP '2020-03-31 21:12:23'"
    assert Screen(until="2020-03-31T21:12").window_sql() == "start < TIMESTAMP '2020-03-31 21:13:00'"
