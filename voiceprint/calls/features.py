"""Per-number AREA / TIME / GROUP / behaviour features, computed in DuckDB SQL over Parquet.

Input is the canonical call table written by ``ingest`` (any number of Parquet files, any
size: DuckDB streams and spills). Each block below is one GROUP BY pass that yields one small
per-number table; the blocks are joined at the end. Column meanings are in ``FEATURES``.
"""

from __future__ import annotations

from pathlib import Path

from voiceprint.errors import DataError

from .engine import connect, sql_path

FEATURES = {
    # behaviour
    "calls": "voice calls (all directions)",
    "distinct_others": "distinct counter-parties",
    "calls_per_other": "calls per counter-party (mean)",
    "calls_per_other_median": "calls per counter-party (median)",
    "calls_per_other_max": "calls with the most-called counter-party",
    "repeat_other_share": "share of counter-parties called more than once",
    "out_share": "share of calls outgoing",
    "fwd_share": "share of calls forwarded",
    "out_distinct_others": "distinct callees of outgoing calls",
    "dur_mean": "mean call duration (s)",
    "dur_median": "median call duration (s, from a log histogram, within ~2.5 %)",
    "dur_max": "longest call (s)",
    "dur_std": "call duration standard deviation (s)",
    # area
    "n_cities": "cities calls were made from",
    "n_counties": "counties calls were made from",
    "n_counties_out": "counties outgoing calls were made from",
    "top_county_share": "share of calls from the most used county",
    "away_share": "share of calls made outside the home county",
    "n_other_areas": "distinct home areas of counter-parties (where known)",
    "far_callee_share": "share of outgoing calls to counter-parties outside the caller's city",
    # time
    "n_hours": "distinct hours of day with calls",
    "office_share": "share of calls Mon-Fri 09:00-18:00",
    "night_share": "share of calls 00:00-06:00",
    "active_days": "days with at least one call",
    "days_of_month": "distinct days of month with calls (1-31)",
    "span_days": "days from first to last call",
    "max_callees_day": "most distinct callees in one day",
    "max_callees_6h": "most distinct callees in one 6-hour window",
    "mean_callees_6h": "mean distinct callees per active 6-hour window",
    "interval_mean": "mean seconds between consecutive calls",
    "interval_median": "median seconds between consecutive calls (log histogram, within ~2.5 %)",
    "interval_std": "standard deviation of seconds between calls",
    "daily_trend": "slope of daily calls over time, relative to the mean",
    # group
    "n_imei": "handsets (IMEIs) used",
    "max_numbers_per_imei": "most numbers seen on one of its handsets",
    "numbers_on_id": "numbers registered on the same ID card",
    "shared_others": "counter-parties also in contact with other subscribers",
    "shared_other_share": "share of counter-parties also in contact with other subscribers",
    "fraud_contacts": "counter-parties that are, or also talk to, known fraud numbers",
    "two_way_share": "share of counter-parties with calls in both directions",
    "community_size": "subscribers in its community (shared handsets or contacts)",
    "community_known_fraud": "known fraud numbers in its community",
    "known_fraud": "1 when the number is on a known fraud list",
    # sms
    "sms_out": "SMS sent",
    "sms_out_recipients": "distinct SMS recipients",
    "sms_max_recipients_hour": "most distinct SMS recipients in one hour (mass sending)",
}
HOUR_COLUMNS = [f"hour_{h:02d}" for h in range(24)]
RARE_CONTACT_MAX_DEGREE = 20  # counter-parties shared by more subscribers than this are hubs (banks, couriers)
COMMUNITY_MIN_SHARED = 2
COMMUNITY_ITERATIONS = 12


def _paths_sql(paths) -> str:
    paths = [Path(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    for p in paths:
        if not p.exists():
            raise DataError(f"{p}: no such file - run `voiceprint calls import` first")
    return "[" + ", ".join(sql_path(p) for p in paths) + "]"


def compute_features(calls, out=None, registry=None, fraud_list=None, con=None, memory_limit=None, threads=None, temp_directory=None):
    """Compute the per-number feature table from canonical call Parquet file(s).

    ``registry`` and ``fraud_list`` are optional imported Parquet files. Writes Parquet or CSV to
    ``out`` when given (by suffix) and returns the number of subscribers; without ``out`` returns
    a pandas DataFrame (small inputs only).
    """
    own = con is None
    con = con or connect(memory_limit=memory_limit, threads=threads, temp_directory=temp_directory, keep_order=False)
    con.execute(f"CREATE OR REPLACE TEMP VIEW cdr AS SELECT * FROM read_parquet({_paths_sql(calls)}, union_by_name = true)")
    con.execute("CREATE OR REPLACE TEMP VIEW voice AS SELECT * FROM cdr WHERE record = 'call'")
    if registry:
        con.execute(f"CREATE OR REPLACE TEMP VIEW registry AS SELECT * FROM read_parquet({_paths_sql(registry)})")
    else:
        con.execute("CREATE OR REPLACE TEMP VIEW registry AS SELECT NULL::VARCHAR AS number, NULL::VARCHAR AS id_number, NULL::VARCHAR AS home_county, NULL::INTEGER AS numbers_on_id WHERE false")
    if fraud_list:
        con.execute(f"CREATE OR REPLACE TEMP TABLE known AS SELECT DISTINCT number FROM read_parquet({_paths_sql(fraud_list)})")
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE known (number VARCHAR)")
    if con.execute("SELECT count(*) FROM (SELECT 1 FROM voice LIMIT 1)").fetchone()[0] == 0:
        raise DataError("no voice calls in the input: nothing to compute (check the import report)")
    for step in (_base, _pairs, _bursts, _intervals, _area, _group, _community, _sms):
        step(con)
    query = _final_select()
    if out is None:
        df = con.execute(query).df()
        if own:
            con.close()
        return df
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = "csv, HEADER" if out.suffix in (".csv", ".gz") or out.name.endswith(".csv.gz") else "parquet"
    con.execute(f"COPY ({query}) TO {sql_path(out)} (FORMAT {fmt})")
    n = con.execute("SELECT count(*) FROM f_base").fetchone()[0]
    if own:
        con.close()
    return n


def _base(con) -> None:
    """One pass over the calls into small per-number tables; everything else reads those."""
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_scan AS SELECT number, count(*) AS calls,
            avg((direction = 'out')::INT) AS out_share, avg((direction = 'fwd')::INT) AS fwd_share,
            avg(duration) AS dur_mean, max(duration) AS dur_max,
            stddev_samp(duration) AS dur_std,
            avg((other_area <> city)::INT) FILTER (WHERE direction = 'out' AND other_area IS NOT NULL AND city IS NOT NULL) AS far_callee_share,
            date_diff('day', min(start), max(start)) + 1 AS span_days
            FROM voice GROUP BY number"""
    )
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE f_dur_median AS {_log_median_sql("SELECT number, duration AS x FROM voice WHERE duration IS NOT NULL", "dur_median")}"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE hourly AS SELECT number, hour(start) AS hr, isodow(start) <= 5 AS weekday, count(*) AS n
            FROM voice GROUP BY ALL"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE places AS SELECT number, city, county, direction = 'out' AS is_out,
            count(*) AS n FROM voice GROUP BY ALL"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE handsets AS SELECT DISTINCT number, imei FROM voice WHERE imei IS NOT NULL")
    con.execute("CREATE OR REPLACE TEMP TABLE callee_areas AS SELECT DISTINCT number, other_area FROM voice WHERE other_area IS NOT NULL")
    hours = ", ".join(f"sum(n) FILTER (WHERE hr = {h}) / sum(n) AS hour_{h:02d}" for h in range(24))
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE f_hours AS SELECT number, count(DISTINCT hr) AS n_hours,
            coalesce(sum(n) FILTER (WHERE weekday AND hr BETWEEN 9 AND 17), 0) / sum(n) AS office_share,
            coalesce(sum(n) FILTER (WHERE hr < 6), 0) / sum(n) AS night_share, {hours}
            FROM hourly GROUP BY number"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_places AS SELECT p.number, count(DISTINCT p.city) AS n_cities,
            count(DISTINCT p.county) AS n_counties, count(DISTINCT p.county) FILTER (WHERE p.is_out) AS n_counties_out,
            any_value(h.n_imei) AS n_imei, any_value(a.n_other_areas) AS n_other_areas
            FROM places p
            LEFT JOIN (SELECT number, count(*) AS n_imei FROM handsets GROUP BY number) h USING (number)
            LEFT JOIN (SELECT number, count(*) AS n_other_areas FROM callee_areas GROUP BY number) a USING (number)
            GROUP BY p.number"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_base AS SELECT s.*, h.* EXCLUDE (number), p.* EXCLUDE (number)
            FROM f_scan s JOIN f_hours h USING (number) JOIN f_places p USING (number)"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_base AS SELECT b.*, m.dur_median FROM f_base b LEFT JOIN f_dur_median m USING (number)"""
    )


def _pairs(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE pairs AS SELECT number, other, count(*) AS n,
            count(*) FILTER (WHERE direction = 'out') AS n_out, count(*) FILTER (WHERE direction = 'in') AS n_in
            FROM voice GROUP BY number, other"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_pairs AS SELECT number, count(*) AS distinct_others,
            count(*) FILTER (WHERE n_out > 0) AS out_distinct_others,
            avg(n) AS calls_per_other, median(n) AS calls_per_other_median, max(n) AS calls_per_other_max,
            avg((n > 1)::INT) AS repeat_other_share, avg((n_out > 0 AND n_in > 0)::INT) AS two_way_share
            FROM pairs GROUP BY number"""
    )


def _bursts(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE windows AS SELECT DISTINCT number, time_bucket(INTERVAL 6 HOUR, start) AS w, other
            FROM voice WHERE direction = 'out'"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE daily AS SELECT number, start::DATE AS day, count(*) AS n FROM voice GROUP BY ALL"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_bursts AS
            WITH per_w AS (SELECT number, w, count(*) AS callees FROM windows GROUP BY ALL),
            per_day AS (SELECT number, day, count(DISTINCT other) AS callees FROM (SELECT number, w::DATE AS day, other FROM windows) GROUP BY ALL),
            w6 AS (SELECT number, max(callees) AS max_callees_6h, avg(callees) AS mean_callees_6h FROM per_w GROUP BY number),
            d1 AS (SELECT number, max(callees) AS max_callees_day FROM per_day GROUP BY number),
            act AS (SELECT number, count(*) AS active_days, count(DISTINCT day(day)) AS days_of_month,
                    regr_slope(n, date_diff('day', DATE '2000-01-01', day)) / nullif(avg(n), 0) AS daily_trend
                    FROM daily GROUP BY number)
            SELECT act.number, act.active_days, act.days_of_month, act.daily_trend, d1.max_callees_day,
                   w6.max_callees_6h, w6.mean_callees_6h
            FROM act LEFT JOIN d1 USING (number) LEFT JOIN w6 USING (number)"""
    )


def _intervals(con) -> None:
    gaps = "SELECT number, epoch(start) - lag(epoch(start)) OVER (PARTITION BY number ORDER BY start) AS gap FROM voice"
    con.execute(f"CREATE OR REPLACE TEMP TABLE gaps AS SELECT number, gap FROM ({gaps}) WHERE gap IS NOT NULL")
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE f_intervals AS SELECT g.number, avg(g.gap) AS interval_mean,
            any_value(m.interval_median) AS interval_median, stddev_samp(g.gap) AS interval_std
            FROM gaps g LEFT JOIN ({_log_median_sql("SELECT number, gap AS x FROM gaps", "interval_median")}) m USING (number)
            GROUP BY g.number"""
    )
    con.execute("DROP TABLE gaps")


def _log_median_sql(source: str, name: str) -> str:
    """Per-number median of ``x`` >= 0 from a log-spaced histogram (within ~2.5 %).

    Exact and t-digest medians keep per-group state that grows with the rows and, at 10^8
    rows, spills tens of GB; a histogram of at most a few hundred bins per number does not.
    """
    return f"""WITH hist AS (SELECT number, CAST(round(ln(1 + greatest(x, 0)) * 20) AS INTEGER) AS b, count(*) AS n
                              FROM ({source}) GROUP BY ALL),
               cum AS (SELECT number, b, sum(n) OVER (PARTITION BY number ORDER BY b) AS c,
                              sum(n) OVER (PARTITION BY number) AS total FROM hist)
               SELECT number, round(exp(min(b) / 20.0) - 1, 1) AS {name} FROM cum WHERE c * 2 >= total GROUP BY number"""


def _area(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_area AS
            WITH per_county AS (SELECT number, county, sum(n) AS n FROM places WHERE county IS NOT NULL GROUP BY ALL),
            top AS (SELECT number, arg_max(county, n) AS top_county, max(n) / sum(n) AS top_county_share,
                    sum(n) AS n_known FROM per_county GROUP BY number),
            home AS (SELECT t.number, coalesce(r.home_county, t.top_county) AS home_county, t.top_county_share, t.n_known
                     FROM top t LEFT JOIN (SELECT number, any_value(home_county) AS home_county FROM registry GROUP BY number) r USING (number))
            SELECT h.number, h.top_county_share, h.home_county,
                   1 - coalesce(sum(p.n) FILTER (WHERE p.county = h.home_county), 0) / h.n_known AS away_share
            FROM home h LEFT JOIN per_county p USING (number) GROUP BY h.number, h.top_county_share, h.home_county, h.n_known"""
    )


def _group(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_imei AS
            WITH ni AS (SELECT number, imei FROM handsets),
            per_imei AS (SELECT imei, count(*) AS numbers FROM ni GROUP BY imei)
            SELECT ni.number, max(per_imei.numbers) AS max_numbers_per_imei FROM ni JOIN per_imei USING (imei) GROUP BY ni.number"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_id AS
            WITH reg AS (SELECT number, any_value(id_number) AS id_number, max(numbers_on_id) AS numbers_on_id FROM registry GROUP BY number),
            per_id AS (SELECT id_number, count(*) AS n FROM reg WHERE id_number IS NOT NULL GROUP BY id_number)
            SELECT reg.number, coalesce(reg.numbers_on_id, per_id.n) AS numbers_on_id
            FROM reg LEFT JOIN per_id USING (id_number)"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE degree AS SELECT other, count(*) AS deg FROM pairs GROUP BY other")
    # counter-parties of known fraud numbers (and those numbers themselves), with who knew them,
    # so that a known number's own contacts do not count for itself
    con.execute(
        """CREATE OR REPLACE TEMP TABLE fraud_others AS SELECT other, count(DISTINCT via) AS n_via, min(via) AS via FROM (
               SELECT p.other, p.number AS via FROM pairs p JOIN known k ON p.number = k.number
               UNION ALL SELECT number AS other, number AS via FROM known) GROUP BY other"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_shared AS SELECT p.number,
            count(*) FILTER (WHERE d.deg >= 2) AS shared_others,
            avg((d.deg >= 2)::INT) AS shared_other_share,
            count(*) FILTER (WHERE fo.other IS NOT NULL AND (fo.n_via > 1 OR fo.via <> p.number)) AS fraud_contacts
            FROM pairs p JOIN degree d USING (other) LEFT JOIN fraud_others fo ON fo.other = p.other
            GROUP BY p.number"""
    )


def _community(con) -> None:
    """Connected groups of subscribers sharing a handset or at least two rare counter-parties."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE edges AS
            WITH rare AS (SELECT p.number, p.other FROM pairs p JOIN degree d USING (other)
                          WHERE d.deg BETWEEN 2 AND {RARE_CONTACT_MAX_DEGREE}),
            by_contact AS (SELECT a.number AS a, b.number AS b FROM rare a JOIN rare b ON a.other = b.other AND a.number < b.number
                           GROUP BY ALL HAVING count(*) >= {COMMUNITY_MIN_SHARED}),
            ni AS (SELECT number, imei FROM handsets),
            by_imei AS (SELECT DISTINCT a.number AS a, b.number AS b FROM ni a JOIN ni b ON a.imei = b.imei AND a.number < b.number)
            SELECT a, b FROM by_contact UNION SELECT a, b FROM by_imei"""
    )
    con.execute(
        """CREATE OR REPLACE TEMP TABLE edges2 AS SELECT a, b FROM edges UNION ALL SELECT b AS a, a AS b FROM edges"""
    )
    con.execute("CREATE OR REPLACE TEMP TABLE comm AS SELECT number, number AS label FROM f_base")
    for _ in range(COMMUNITY_ITERATIONS):
        con.execute(
            """CREATE OR REPLACE TEMP TABLE comm_next AS SELECT c.number, least(c.label, coalesce(min(n.label), c.label)) AS label
               FROM comm c LEFT JOIN edges2 e ON e.a = c.number LEFT JOIN comm n ON n.number = e.b
               GROUP BY c.number, c.label"""
        )
        changed = con.execute(
            "SELECT count(*) FROM comm c JOIN comm_next n USING (number) WHERE c.label <> n.label"
        ).fetchone()[0]
        con.execute("DROP TABLE comm; ALTER TABLE comm_next RENAME TO comm")
        if changed == 0:
            break
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_comm AS
            WITH sizes AS (SELECT c.label, count(*) AS size, count(k.number) AS known FROM comm c
                           LEFT JOIN known k USING (number) GROUP BY c.label)
            SELECT c.number, s.size AS community_size,
                   s.known - (CASE WHEN c.number IN (SELECT number FROM known) THEN 1 ELSE 0 END) AS community_known_fraud
            FROM comm c JOIN sizes s USING (label)"""
    )


def _sms(con) -> None:
    con.execute(
        """CREATE OR REPLACE TEMP TABLE f_sms AS SELECT number, count(*) AS sms_out,
            count(DISTINCT other) AS sms_out_recipients, max(k) AS sms_max_recipients_hour FROM (
                SELECT number, other, count(DISTINCT other) OVER (PARTITION BY number, date_trunc('hour', start)) AS k
                FROM cdr WHERE record = 'sms' AND direction = 'out') GROUP BY number"""
    )


def _final_select() -> str:
    return f"""SELECT b.number,
        b.calls, p.distinct_others, p.calls_per_other, p.calls_per_other_median, p.calls_per_other_max,
        p.repeat_other_share, b.out_share, b.fwd_share, p.out_distinct_others,
        b.dur_mean, b.dur_median, b.dur_max, b.dur_std,
        b.n_cities, b.n_counties, b.n_counties_out, a.top_county_share, a.away_share, a.home_county,
        b.n_other_areas, b.far_callee_share,
        b.n_hours, b.office_share, b.night_share, bu.active_days, bu.days_of_month, b.span_days,
        coalesce(bu.max_callees_day, 0) AS max_callees_day, coalesce(bu.max_callees_6h, 0) AS max_callees_6h,
        coalesce(bu.mean_callees_6h, 0) AS mean_callees_6h,
        i.interval_mean, i.interval_median, i.interval_std, bu.daily_trend,
        b.n_imei, coalesce(im.max_numbers_per_imei, 0) AS max_numbers_per_imei, idc.numbers_on_id,
        s.shared_others, s.shared_other_share, s.fraud_contacts, p.two_way_share,
        c.community_size, c.community_known_fraud,
        (b.number IN (SELECT number FROM known))::INT AS known_fraud,
        coalesce(sm.sms_out, 0) AS sms_out, coalesce(sm.sms_out_recipients, 0) AS sms_out_recipients,
        coalesce(sm.sms_max_recipients_hour, 0) AS sms_max_recipients_hour,
        {", ".join("b." + h for h in HOUR_COLUMNS)}
        FROM f_base b
        LEFT JOIN f_pairs p USING (number) LEFT JOIN f_bursts bu USING (number)
        LEFT JOIN f_intervals i USING (number) LEFT JOIN f_area a USING (number)
        LEFT JOIN f_imei im USING (number) LEFT JOIN f_id idc USING (number)
        LEFT JOIN f_shared s USING (number) LEFT JOIN f_comm c USING (number)
        LEFT JOIN f_sms sm USING (number)
        ORDER BY b.number"""
