"""Generate realistic call detail records at any size, with planted fraud dens, in DuckDB SQL.

Shaped by the Sichuan 2020 data: ~830 calls per subscriber over 8 months (2019-08-01 ..
2020-03-31), half outgoing, repeat contacts in friend circles, calls spread over the waking
hours and several counties, ~11 % of rows without city/county, mostly one handset. Fraud dens
(several numbers, a few shared handsets, numbers registered on one or two ID cards, one county)
call a shared list of far-away victims, almost all outgoing, in office-hour bursts over a couple
of weeks, rarely the same victim twice. One number of every other den is on the known-fraud list.

Used by the tests, the benchmarks and demos; ``scripts/gen_cdr.py`` is its command line.

Writes to OUT/: calls.<parquet|csv|csv.gz>, registry.csv, fraud_list.csv, truth.csv (planted numbers).

    .venv/bin/python -m voiceprint.calls.synthetic --rows 1000000 --out work/gen1m
    .venv/bin/python -m voiceprint.calls.synthetic --rows 100000000 --format parquet --canonical --out work/gen1e8
    .venv/bin/python -m voiceprint.calls.synthetic --rows 20000 --format csv --encoding gbk --dirty --out work/gbk
"""

from __future__ import annotations

import argparse
import codecs
import gzip
import shutil
import time
from pathlib import Path

CITIES = {
    "成都": ["锦江区", "青羊区", "金牛区", "武侯区", "成华区", "双流区", "郫都区", "新都区"],
    "绵阳": ["涪城区", "游仙区", "江油市", "三台县"],
    "德阳": ["旌阳区", "广汉市", "什邡市"],
    "南充": ["顺庆区", "高坪区", "阆中市", "南部县"],
    "宜宾": ["翠屏区", "南溪区", "叙州区"],
    "自贡": ["自流井区", "贡井区", "富顺县"],
    "泸州": ["江阳区", "龙马潭区", "泸县"],
    "达州": ["通川区", "达川区", "渠县", "宣汉县"],
    "内江": ["市中区", "东兴区", "隆昌市"],
    "乐山": ["市中区", "五通桥区", "峨眉山市"],
    "广安": ["广安区", "岳池县", "邻水县"],
    "遂宁": ["船山区", "安居区", "射洪市"],
    "眉山": ["东坡区", "彭山区", "仁寿县"],
    "资阳": ["雁江区", "安岳县", "乐至县"],
    "凉山": ["西昌市", "会理市", "冕宁县"],
}
FAR_AREAS = ["广东", "福建", "浙江", "江苏", "山东", "河南", "湖北", "湖南", "云南", "广西", "海南", "北京", "上海"]
DAYS = 243  # 2019-08-01 .. 2020-03-31
CALLS_PER_SUBSCRIBER = 800


def build_sql(rows: int, subscribers: int, dens: int, den_size: int, seed: int, canonical: bool, dirty: bool) -> dict[str, str]:
    counties = [(city, county) for city, cs in CITIES.items() for county in cs]
    county_values = ", ".join(f"({i}, '{city}', '{county}')" for i, (city, county) in enumerate(counties))
    far_values = ", ".join(f"({i}, '{a}')" for i, a in enumerate(FAR_AREAS))
    n_fraud = dens * den_size
    prefix = "'+86' || " if canonical else ""
    u = lambda k, x="i": f"((hash({x}, {seed * 100 + k}) % 1000000007) / 1000000007.0)"  # noqa: E731 - uniform [0,1)
    setup = f"""
    CREATE OR REPLACE TABLE counties AS SELECT * FROM (VALUES {county_values}) t(cid, city, county);
    CREATE OR REPLACE TABLE far AS SELECT * FROM (VALUES {far_values}) t(fid, area);
    CREATE OR REPLACE TABLE subs AS
      WITH base AS (
        SELECT s, s >= {subscribers - n_fraud} AS fraud,
               CASE WHEN s >= {subscribers - n_fraud} THEN (s - {subscribers - n_fraud}) // {den_size} END AS den,
               -- normal: lognormal-ish activity; fraud: heavy callers
               CASE WHEN s >= {subscribers - n_fraud} THEN 2.0 + 2.0 * {u(1, 's')}
                    ELSE exp(1.2 * sqrt(-2 * ln({u(2, 's')} + 1e-12)) * cos(6.2831853 * {u(3, 's')})) END AS weight,
               CAST(floor({u(4, 's')} * {len(counties)}) AS INTEGER) AS home
        FROM range({subscribers}) r(s))
      SELECT s, fraud, den, weight,
             CASE WHEN fraud THEN CAST(hash(den, {seed}) % {len(counties)} AS INTEGER) ELSE home END AS home,
             sum(weight) OVER (ORDER BY s ROWS UNBOUNDED PRECEDING) - weight AS cum,
             CASE WHEN fraud THEN CAST(hash(den, {seed + 7}) % {DAYS - 20} AS INTEGER) END AS den_start,
             20 + CAST(floor({u(5, 's')} * 150) AS INTEGER) AS pool,
             {u(6, 's')} < 0.05 AS two_handsets
      FROM base;
    CREATE OR REPLACE TABLE total AS SELECT sum(weight) AS w FROM subs;
    """
    calls = f"""
    WITH alloc AS (
      SELECT *, CASE WHEN s = {subscribers - 1} THEN {rows} ELSE CAST(floor((cum + weight) * {rows} / (SELECT w FROM total)) AS BIGINT) END
                - CAST(floor(cum * {rows} / (SELECT w FROM total)) AS BIGINT) AS n_rows,
                CAST(floor(cum * {rows} / (SELECT w FROM total)) AS BIGINT) AS first_row
      FROM subs),
    joined AS (
      SELECT alloc.*, first_row + k AS i FROM alloc, range(alloc.n_rows) r(k)),
    drawn AS (
      -- seven uniforms from three 64-bit hashes (21 bits each): hashing is the generator's main cost
      SELECT *, (h1 & 2097151) / 2097152.0 AS a, ((h1 >> 21) & 2097151) / 2097152.0 AS b, ((h1 >> 42) & 2097151) / 2097152.0 AS c,
                (h2 & 2097151) / 2097152.0 AS d, ((h2 >> 21) & 2097151) / 2097152.0 AS e, ((h2 >> 42) & 2097151) / 2097152.0 AS f,
                (h3 & 2097151) / 2097152.0 AS g
      FROM (SELECT *, hash(i, {seed * 100 + 11}) AS h1, hash(i, {seed * 100 + 12}) AS h2, hash(i, {seed * 100 + 13}) AS h3 FROM joined)),
    shaped AS (
      SELECT *,
        CASE WHEN fraud THEN den_start + CAST(floor(a * 14) AS INTEGER) ELSE CAST(floor(a * {DAYS}) AS INTEGER) END AS day_idx,
        CASE WHEN fraud THEN 9 + CAST(floor(b * 9) AS INTEGER)
             WHEN b < 0.03 THEN CAST(floor(b / 0.03 * 7) AS INTEGER)
             ELSE 7 + CAST(floor((b - 0.03) / 0.97 * 17) AS INTEGER) END AS hr,
        CASE WHEN fraud THEN (CASE WHEN c < 0.95 THEN 'out' WHEN c < 0.99 THEN 'in' ELSE 'fwd' END)
             ELSE (CASE WHEN c < 0.50 THEN 'out' WHEN c < 0.98 THEN 'in' ELSE 'fwd' END) END AS direction,
        CASE WHEN fraud THEN {dens} * 1000003 + CAST(hash(den, {seed}) % 1000 AS BIGINT) * 200003 + CAST(floor(d * 60000) AS BIGINT)
             ELSE (CASE WHEN d < 0.3 THEN (s // 40) * 97 + CAST(floor(d / 0.3 * 12) AS BIGINT)
                        ELSE 50000000 + s * 211 + CAST(floor(pool * power((d - 0.3) / 0.7, 3)) AS BIGINT) END) END AS other_id
      FROM drawn)
    SELECT
      {prefix}printf('139%08d', s) AS number,
      {prefix}CASE WHEN fraud THEN printf('186%08d', other_id % 100000000) ELSE printf('158%08d', other_id % 100000000) END AS other,
      direction,
      TIMESTAMP '2019-08-01' + to_days(day_idx) + to_hours(hr) + to_seconds(CAST(floor(e * 3600) AS INTEGER)) AS start,
      CAST(floor(-ln(f + 1e-9) * CASE WHEN fraud THEN 70 ELSE 80 END) AS INTEGER) + 1 AS duration,
      CASE WHEN g < 0.11 THEN NULL ELSE cty.city END AS city,
      CASE WHEN g < 0.11 THEN NULL ELSE cty.county END AS county,
      CASE WHEN fraud THEN printf('86%013d', den * 10 + CAST(floor(g * 3) AS INTEGER))
           WHEN two_handsets AND g > 0.6 THEN printf('35%013d', s * 2 + 1) ELSE printf('35%013d', s * 2) END AS imei,
      CASE WHEN fraud THEN far.area WHEN other_id >= 50000000 AND g > 0.8 THEN NULL ELSE cty.city END AS other_area
      {", 'call' AS record" if canonical else ""}
    FROM shaped
    JOIN counties cty ON cty.cid = CASE WHEN fraud OR e < 0.8 THEN home ELSE (home + 1 + CAST(floor(e * 5) AS INTEGER)) % {len(counties)} END
    JOIN far ON far.fid = CAST(floor(f * {len(FAR_AREAS)}) AS INTEGER)
    """
    if dirty:  # exact duplicates and calls split across counties, as carriers deliver them
        calls = f"""WITH clean AS ({calls})
        SELECT * FROM clean
        UNION ALL SELECT * FROM clean WHERE hash(number, start) % 200 = 0
        UNION ALL SELECT * REPLACE ('其他区' AS county) FROM clean WHERE hash(number, start) % 200 = 1"""
    return {"setup": setup, "calls": calls, **_side_tables(subscribers, n_fraud, den_size, prefix)}


def _side_tables(subscribers: int, n_fraud: int, den_size: int, prefix: str) -> dict[str, str]:
    """SQL of the registry, the known-fraud list and the planted truth (over the ``subs`` table)."""
    # owner: normal numbers mostly alone on their ID card, every 20th pair shares one; a den's
    # numbers sit on two ID cards
    registry = f"""
    WITH owned AS (SELECT s, home, CASE WHEN fraud THEN {subscribers} + den * 2 + (s % 2)
                                         WHEN s % 20 = 1 THEN s - 1 ELSE s END AS owner FROM subs)
    SELECT {prefix}printf('139%08d', s) AS number, printf('机主%06d', owner) AS name,
           printf('51%04d19%02d%02d%02d%04d', 100 + owner % 900, 60 + owner % 40, 1 + owner % 12, 1 + owner % 28, owner % 10000) AS id_number,
           cty.city AS home_city, cty.county AS home_county
    FROM owned JOIN counties cty ON cty.cid = owned.home ORDER BY s"""
    fraud_list = f"""SELECT {prefix}printf('139%08d', s) AS number, 'police notice ' || den AS source
                     FROM subs WHERE fraud AND (s - {subscribers - n_fraud}) % {den_size} = 0 AND den % 2 = 0"""
    truth = f"SELECT {prefix}printf('139%08d', s) AS number, den FROM subs WHERE fraud"
    return {"registry": registry, "fraud_list": fraud_list, "truth": truth}


def transcode(src: Path, dst: Path, encoding: str, gz: bool) -> None:
    """Stream a UTF-8 file into another encoding (optionally gzip)."""
    enc = codecs.getincrementalencoder(encoding)()
    opener = gzip.open if gz else open
    with open(src, encoding="utf-8", newline="") as fin, opener(dst, "wb") as fout:
        while chunk := fin.read(1 << 22):
            fout.write(enc.encode(chunk))


def generate(out: Path, rows: int, subscribers: int | None = None, dens: int | None = None, den_size: int = 6, seed: int = 7,
             fmt: str = "parquet", encoding: str = "utf-8", canonical: bool = False, dirty: bool = False,
             malformed: int = 0, memory_limit: str = "4GB", threads: int | None = None) -> dict:
    """Write a generated data set to ``out``; returns the file paths and timings."""
    import duckdb

    out.mkdir(parents=True, exist_ok=True)
    subscribers = subscribers or max(60, rows // CALLS_PER_SUBSCRIBER)
    dens = dens if dens is not None else max(2, subscribers // 500)
    sql = build_sql(rows, subscribers, dens, den_size, seed, canonical, dirty)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{memory_limit}'")
    con.execute(f"SET temp_directory = '{out / '.duckdb_tmp'}'")
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute(sql["setup"])
    t0 = time.time()
    calls_path = out / ("calls.parquet" if fmt == "parquet" else "calls.csv")
    if fmt == "parquet":
        # default row groups (~123k rows), as `calls import` writes them: readers scan them in parallel
        con.execute(f"COPY ({sql['calls']}) TO '{calls_path}' (FORMAT parquet)")
    else:
        con.execute(f"COPY ({sql['calls']}) TO '{calls_path}' (FORMAT csv, HEADER, TIMESTAMPFORMAT '%Y-%m-%d %H:%M:%S')")
        if malformed:
            with open(calls_path, "a", encoding="utf-8") as fh:
                for k in range(malformed):
                    fh.write(["13900000001,15800000002,out\n", "13900000001,15800000002,out,not-a-time,12,成都,锦江区,350000000000002,成都\n",
                              ",15800000002,in,2019-09-01 10:00:00,5,成都,锦江区,350000000000002,成都\n"][k % 3])
        if encoding.lower() != "utf-8" or fmt == "csv.gz":
            target = calls_path.with_suffix(".csv.gz" if fmt == "csv.gz" else ".csv")
            tmp = calls_path.with_suffix(".utf8")
            shutil.move(calls_path, tmp)
            transcode(tmp, target, encoding, fmt == "csv.gz")
            tmp.unlink()
            calls_path = target
    seconds = time.time() - t0
    for name in ("registry", "fraud_list", "truth"):
        con.execute(f"COPY ({sql[name]}) TO '{out / (name + '.csv')}' (FORMAT csv, HEADER)")
    shutil.rmtree(out / ".duckdb_tmp", ignore_errors=True)
    return {"calls": calls_path, "registry": out / "registry.csv", "fraud_list": out / "fraud_list.csv", "truth": out / "truth.csv",
            "subscribers": subscribers, "dens": dens, "fraud_numbers": dens * den_size, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--subscribers", type=int, default=None, help=f"default rows/{CALLS_PER_SUBSCRIBER}")
    ap.add_argument("--dens", type=int, default=None, help="default subscribers/500 (at least 2)")
    ap.add_argument("--den-size", type=int, default=6)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--format", choices=["parquet", "csv", "csv.gz"], default="parquet")
    ap.add_argument("--encoding", default="utf-8", help="utf-8 or gbk (CSV only)")
    ap.add_argument("--canonical", action="store_true", help="write the canonical imported layout (E.164 numbers, record column)")
    ap.add_argument("--dirty", action="store_true", help="add exact duplicates and calls split across counties")
    ap.add_argument("--malformed", type=int, default=0, help="append this many malformed lines (CSV only)")
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    res = generate(args.out, args.rows, args.subscribers, args.dens, args.den_size, args.seed, args.format, args.encoding,
                   args.canonical, args.dirty, args.malformed, args.memory_limit, args.threads)
    print(f"{args.rows} rows, {res['subscribers']} subscribers, {res['dens']} dens ({res['fraud_numbers']} fraud numbers) "
          f"-> {res['calls']} in {res['seconds']:.1f} s")


if __name__ == "__main__":
    main()
