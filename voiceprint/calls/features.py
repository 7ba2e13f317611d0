"""Per-number AREA / TIME / GROUP / behaviour features, defined once in SQL, run on DuckDB or Spark.

Input is the canonical call table written by ``ingest`` (any number of Parquet files, any
size: DuckDB streams and spills; Spark spreads it over a cluster). Each step below is one
``SELECT`` that yields one small per-number table; the steps are joined at the end. Column
meanings are in ``FEATURES``.

The SQL is written once, in the portable subset of DuckDB's dialect that ``sqlglot``
translates faithfully to Spark SQL (``calls/spark.py``): no ``GROUP BY ALL``/``EXCLUDE``, no
distinct window aggregates, dates compared as dates, ties broken explicitly, literal divisions
in DOUBLE. A runner (DuckDB here, Spark in ``spark.py``) materialises each step as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from voiceprint.errors import DataError
from voiceprint.fsutil import atomic_output

from .engine import connect, sql_literal, sql_path

if TYPE_CHECKING:
    from .spark import SparkRunner

ENGINES = ("duckdb", "spark")

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
    "dur_median": "median call duration (s; the lower median, from a log histogram: within 2.5 % of 1 + the value)",
    "dur_max": "longest call (s)",
    "dur_std": "call duration standard deviation (s)",
    # area
    "n_cities": "cities calls were made from",
    "n_counties": "places (city and county) calls were made from: 内江/市中区 and 乐山/市中区 are two",
    "n_counties_out": "places (city and county) outgoing calls were made from",
    "top_county_share": "share of calls from the most used place (city and county)",
    "away_share": ("share of calls made outside the home county (the registry's county in its city - any city's county of that name "
                   "when it names none - else the most used city and county)"),
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
    "interval_median": "median seconds between consecutive calls (the lower median, log histogram: within 2.5 % of 1 + the value)",
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
#: Steps grouping by small integers (number x hour, day or histogram bin) with one or two counters.
#: DuckDB aggregates them in a perfect hash table (an array indexed by the group) when the group
#: keys' bits fit its threshold, for 2-3x less CPU (docs/benchmarks.md 4c); the default threshold
#: (12 bits) is below any real CDR set, 22 bits holds 16,384 numbers x 256 days. Not for wide
#: aggregates (``per_day``'s five counters): an array of 2^22 wide states costs more than it saves.
PERFECT_HASH_STEPS = frozenset({"hourly", "daily", "f_dur_median"})
#: The perfect hash tables' slots over all threads: each thread has its own table (~16 bytes a slot).
PERFECT_HASH_SLOTS = 2**25
RARE_CONTACT_MAX_DEGREE = 20  # counter-parties shared by more subscribers than this are hubs (banks, couriers)
COMMUNITY_MIN_SHARED = 2
COMMUNITY_ITERATIONS = 12
#: Feature steps run at once on DuckDB (never more than its threads) ...
STEP_WORKERS = 2
#: ... while that many steps' working memory fits the memory limit: one step at a time peaks at about
#: this much per input row (1.0-1.2 GB at 10^7 rows). Beyond the limit both steps would spill, and at
#: 10^8 rows under 6 GB two at once took 2.5x as long as one at a time (docs/benchmarks.md 4d).
STEP_PEAK_BYTES_PER_ROW = 120


def is_uri(path) -> bool:
    """``hdfs://...``, ``s3a://...``, ``file://...``: a location a Spark cluster reads, not a local path."""
    import re

    return isinstance(path, str) and re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", path) is not None


def _paths(paths, uris: bool = False) -> list:
    """Local files (each must exist) as Paths; with ``uris`` (the Spark engine) URIs pass as they are."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list = []
    for p in items:
        if is_uri(p):
            if not uris:
                raise DataError(f"{p}: a URI is read by the Spark engine only - add --engine spark, or give a local path or mount")
            out.append(p)
        elif not Path(p).exists():
            raise DataError(f"{p}: no such file - run `voiceprint calls import` first")
        else:
            out.append(Path(p))
    return out


class DuckRunner:
    """Runs the feature steps on a private in-memory DuckDB database: each step becomes a table.

    Independent steps run side by side on ``workers`` cursors of the one database (DuckDB shares
    its thread pool between them): many steps are small, single-threaded or end in a serial phase,
    and a second statement fills the cores the first leaves idle (docs/benchmarks.md 4d).
    """

    def __init__(self, con, workers: int | None = None):
        self.con = con
        threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
        self.workers = max(1, min(workers or STEP_WORKERS, threads))
        slots = PERFECT_HASH_SLOTS // (threads * self.workers)
        self.perfect_hash_bits = min(22, slots.bit_length() - 1)
        self.input_rows = 0  # of every source: what decides whether steps fit in memory side by side

    def source(self, name: str, paths: list[Path], union: bool = True) -> None:
        files = "[" + ", ".join(sql_path(p) for p in paths) + "]"
        opts = ", union_by_name = true" if union else ""
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({files}{opts})")
        self.input_rows += self.scalar(f"SELECT count(*) FROM {name}")  # from the Parquet metadata, no scan

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE VIEW {name} AS {sql}")

    def table(self, name: str, sql: str, con=None) -> None:
        con = con or self.con
        perfect = name in PERFECT_HASH_STEPS
        if perfect:
            con.execute(f"SET SESSION perfect_ht_threshold = {self.perfect_hash_bits}")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {name} AS {sql}")
        finally:
            if perfect:
                con.execute("RESET SESSION perfect_ht_threshold")

    def tables(self, steps: list[tuple[str, str]]) -> None:
        """Materialise ``steps`` in dependency order, each as soon as the tables it reads exist; one
        at a time where several steps' working memory would not fit the memory limit."""
        limit = _bytes(self.scalar("SELECT current_setting('memory_limit')"))
        if self.workers == 1 or self.input_rows * STEP_PEAK_BYTES_PER_ROW * self.workers > limit:
            for name, sql in steps:
                self.table(name, sql)
            return
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        needs = step_dependencies(steps)
        pending = dict(steps)
        idle = [self.con.cursor() for _ in range(self.workers)]
        running: dict = {}
        done: set[str] = set()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vp-step")
        try:
            while pending or running:
                for name in [n for n in pending if needs[n] <= done][:len(idle)]:
                    cursor = idle.pop()
                    running[pool.submit(self.table, name, pending.pop(name), cursor)] = (name, cursor)
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name, cursor = running.pop(future)
                    idle.append(cursor)
                    future.result()  # a failed step raises here; the others are interrupted below
                    done.add(name)
        except BaseException:  # an error or Ctrl-C: stop the statements still running, then re-raise
            for _, cursor in running.values():
                cursor.interrupt()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            for cursor in idle + [cursor for _, cursor in running.values()]:
                cursor.close()

    def drop(self, name: str) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")

    def scalar(self, sql: str):
        return self.con.execute(sql).fetchone()[0]

    def frame(self, sql: str):
        return self.con.execute(sql).df()

    def write(self, sql: str, out: Path) -> None:
        """``out`` appears whole or not at all, private (it lists phone numbers)."""
        fmt = "csv, HEADER" if _is_csv(out) else "parquet"
        with atomic_output(out) as tmp:
            self.con.execute(f"COPY ({sql}) TO {sql_path(tmp)} (FORMAT {fmt}{', COMPRESSION gzip' if out.suffix == '.gz' else ''})")

    def close(self) -> None:
        self.con.close()


def _bytes(setting: str) -> float:
    """DuckDB's spelling of a memory size ('5.5 GiB', '953.6 MiB', '1000 bytes') in bytes."""
    number, _, unit = str(setting).strip().partition(" ")
    scale = {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
    return float(number) * scale.get(unit.strip() or "bytes", 1)


def step_dependencies(steps: list[tuple[str, str]]) -> dict[str, set[str]]:
    """For each step, the earlier steps whose tables its SQL names (as a whole word).

    A step naming a later one is a mistake in the list's order, refused here rather than run
    before its input exists."""
    import re

    names = [name for name, _ in steps]
    needs: dict[str, set[str]] = {}
    for i, (name, sql) in enumerate(steps):
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
        if later := words.intersection(names[i + 1:]):
            raise ValueError(f"feature step {name} reads {', '.join(sorted(later))}, which come after it")
        needs[name] = {earlier for earlier in needs if earlier in words}
    return needs


def _is_csv(out: Path) -> bool:
    return out.suffix in (".csv", ".gz") or out.name.endswith(".csv.gz")


@dataclass(frozen=True)
class Screen:
    """What an analyst screens: calls in a time window (``since`` and ``until`` inclusive, dates or
    date-times), and numbers with calls (made or received) in an area: a city or county as the CDRs name it
    (where the subscriber was at each call), or one
    county of one city as ``"CITY COUNTY"`` or ``CITY/COUNTY`` (county names repeat across cities:
    内江 and 乐山 both have a 市中区).

    The window limits the calls every feature is computed from; the area only limits which numbers
    are reported, so group features (shared contacts, communities) still see the whole network."""

    since: str | None = None
    until: str | None = None
    area: str | None = None

    def window_sql(self) -> str:
        """The WHERE condition on ``start`` for the window ('' for none), in the portable dialect."""
        since = _moment(self.since, "since") if self.since else None
        until = _moment(self.until, "until") if self.until else None
        if since and until and since > until:
            raise DataError(f"--since {self.since} is after --until {self.until}")
        parts = [f"start >= TIMESTAMP '{since}'"] if since else []
        if until:  # inclusive: a date takes in the whole day, a minute the whole minute
            precision = {10: "days", 16: "minutes"}.get(len(str(self.until).strip().replace("T", " ")))
            parts.append(f"start < TIMESTAMP '{_after(until, precision)}'" if precision else f"start <= TIMESTAMP '{until}'")
        return " AND ".join(parts)

    def place(self) -> tuple[str | None, str]:
        """The area as (city, county) for ``"CITY COUNTY"`` or ``CITY/COUNTY``, else (None, the name as given)."""
        import re

        text = str(self.area or "").strip()
        parts = re.split(r"\s*[/／]\s*|\s+", text)
        if len(parts) == 1 and text:
            return None, text
        if len(parts) == 2 and all(parts):
            return parts[0], parts[1]
        raise DataError(f"--area {self.area!r}: give a city or a county, or one county of one city as \"CITY COUNTY\" or CITY/COUNTY")

    def area_sql(self) -> str:
        """The condition on ``city`` and ``county`` for the area, in the portable dialect: a plain name is a city,
        a county, or a city and county written together (内江市中区); a city and county must both match. A city is
        also found typed with the 市 the CDRs leave out, or without the one they write (内江市 is 内江, and
        内江市市中区 or "内江市 市中区" its 市中区)."""
        city, name = self.place()
        if city is not None:
            return f"({_city_is(sql_literal(city))} AND county = {sql_literal(name)})"
        lit = sql_literal(name)
        return f"(county = {lit} OR {_city_is(lit)} OR city || county = {lit} OR city || '市' || county = {lit})"

    def area_label(self) -> str:
        city, name = self.place()
        return name if city is None else f"{city}/{name}"

    def describe(self) -> str:
        bits = [f"from {self.since}" if self.since else "", f"until {self.until}" if self.until else "",
                f"in {self.area_label()}" if self.area else ""]
        return " ".join(b for b in bits if b)


def _city_is(lit: str) -> str:
    """``city`` equals the SQL literal ``lit``, with or without a trailing 市 on either side."""
    return f"(city = {lit} OR city || '市' = {lit} OR city = {lit} || '市')"


def _moment(text: str, what: str) -> str:
    """``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM[:SS]`` as a canonical timestamp text; a DataError otherwise."""
    from datetime import datetime

    value = str(text).strip().replace("T", " ")
    for fmt in ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value, fmt).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    raise DataError(f"--{what} {text!r}: give a date YYYY-MM-DD or a time YYYY-MM-DD HH:MM")


def _after(moment: str, unit: str) -> str:
    """The moment one ``unit`` ("days", "minutes") after ``moment``: the exclusive end of an inclusive day or minute."""
    from datetime import datetime, timedelta

    return (datetime.strptime(moment, "%Y-%m-%d %H:%M:%S") + timedelta(**{unit: 1})).strftime("%Y-%m-%d %H:%M:%S")


def compute_features(calls, out=None, registry=None, fraud_list=None, memory_limit=None, threads=None, temp_directory=None,
                     engine: str = "duckdb", master: str | None = None, screen: Screen | None = None, notes: list[str] | None = None):
    """Compute the per-number feature table from canonical call Parquet file(s).

    ``calls`` may also be URIs (``hdfs://``, ``s3a://``) with the Spark engine: every executor reads them.
    ``registry`` and ``fraud_list`` are optional imported Parquet files, local. Writes Parquet or CSV to
    ``out`` when given (by suffix) and returns the number of subscribers; without ``out`` returns
    a pandas DataFrame (small inputs only). ``engine="spark"`` runs the same SQL on Spark
    (``master``: ``local[*]`` by default, a ``spark://`` cluster or an ``sc://`` Spark Connect URL).
    ``screen`` limits the calls to a time window and the numbers reported to those with calls in an area;
    what the analyst should know about it (a county name found in several cities) is appended to ``notes``.
    """
    if engine not in ENGINES:
        raise DataError(f"unknown engine {engine!r} - use one of {', '.join(ENGINES)}")
    from voiceprint.fsutil import refuse_input_as_output

    from .ingest import imported_table

    calls_paths = _paths(calls, uris=engine == "spark")
    if out is not None:
        refuse_input_as_output(Path(out), [*[p for p in calls_paths if not is_uri(p)], registry, fraud_list])
    if out is not None and not (_is_csv(Path(out)) or Path(out).suffix == ".parquet"):
        raise DataError(f"{out}: the feature table is written as .parquet, .csv or .csv.gz - name the file so")
    duck = None if engine == "spark" else connect(memory_limit=memory_limit, threads=threads, temp_directory=temp_directory,
                                                  keep_order=False)
    try:
        registry_paths = [imported_table(p, "registry", duck) for p in _paths(registry)] if registry else None
        fraud_paths = [imported_table(p, "fraud-list", duck) for p in _paths(fraud_list)] if fraud_list else None
    except BaseException:
        if duck is not None:
            duck.close()
        raise
    runner: DuckRunner | SparkRunner
    if duck is None:
        from .spark import SparkRunner

        runner = SparkRunner(master=master, memory_limit=memory_limit, threads=threads, temp_directory=temp_directory)
    else:
        runner = DuckRunner(duck)
    try:
        return _run(runner, calls_paths, registry_paths, fraud_paths, out, screen or Screen(), notes if notes is not None else [])
    finally:
        runner.close()


def _run(runner, calls, registry, fraud_list, out, screen: Screen, notes: list[str]):
    window = screen.window_sql()
    runner.source("cdr_all" if window else "cdr", calls)
    if window:
        runner.view("cdr", f"SELECT * FROM cdr_all WHERE {window}")
    runner.view("voice", "SELECT * FROM cdr WHERE record = 'call'")
    if registry:
        runner.source("registry", registry, union=False)
    else:
        runner.view("registry", "SELECT CAST(NULL AS VARCHAR) AS number, CAST(NULL AS VARCHAR) AS id_number, "
                                "CAST(NULL AS VARCHAR) AS home_city, CAST(NULL AS VARCHAR) AS home_county, "
                                "CAST(NULL AS INTEGER) AS numbers_on_id WHERE 1 = 0")
    if fraud_list:
        runner.source("known_src", fraud_list, union=False)
        runner.table("known", "SELECT DISTINCT number FROM known_src")
    else:
        runner.table("known", "SELECT CAST(NULL AS VARCHAR) AS number WHERE 1 = 0")
    if runner.scalar("SELECT count(*) FROM (SELECT 1 AS one FROM voice LIMIT 1) t") == 0:
        if window:
            raise DataError(f"no voice calls {screen.describe()}: nothing to compute (check --since/--until)")
        raise DataError("no voice calls in the input: nothing to compute (check the import report)")
    if screen.area:
        _screen_area(runner, screen, bool(window), notes)
    # min and max of the column itself: DuckDB answers from the Parquet statistics, without a scan
    first, last = (runner.scalar(f"SELECT CAST(floor(epoch({f}(start))) AS BIGINT) FROM voice") for f in ("min", "max"))
    if first is None or last is None:  # no call has a start time: every interval is NULL
        first = last = 0
    runner.tables(_encode(first, last) + _steps())
    runner.table("f_comm", _community(runner))
    query = _final_select(screened=bool(screen.area))
    if out is None:
        return runner.frame(query)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    runner.write(query, out)
    return int(runner.scalar("SELECT count(*) FROM screened s JOIN ids i ON i.number = s.number" if screen.area
                             else "SELECT count(*) FROM f_base"))


def _screen_area(runner, screen: Screen, window: bool, notes: list[str]) -> None:
    """The ``screened`` table: the numbers that made a voice call from the screen's area (in the window).

    None is a DataError that says why; a plain county name found in several cities screens them all, with a note."""
    cond, (city, name), label = screen.area_sql(), screen.place(), screen.area_label()
    runner.table("screened", f"SELECT DISTINCT number FROM voice WHERE {cond}")
    if runner.scalar("SELECT count(*) FROM screened") == 0:
        if window and runner.scalar(f"SELECT count(*) FROM (SELECT 1 AS one FROM cdr_all WHERE record = 'call' AND {cond} LIMIT 1) t"):
            raise DataError(f"no voice call {screen.describe()}: {label} has calls outside the window - widen --since/--until")
        elsewhere = _cities_of(runner, name) if city is not None else []
        hint = (f"{name} has calls from {', '.join(elsewhere)} only - check the city" if elsewhere
                else "check the spelling against the CDRs' city and county names (one county of one city: \"CITY COUNTY\" or CITY/COUNTY)")
        raise DataError(f"no voice call {screen.describe()}: {hint}")
    if city is None and len(cities := _cities_of(runner, name)) > 1:
        notes.append(f"{name} is a county in {len(cities)} cities ({', '.join(cities)}): numbers with calls in any of them are screened - "
                     f"narrow it to one with --area \"{cities[0]} {name}\" (or {cities[0]}/{name})")


def _cities_of(runner, county: str) -> list[str]:
    """The cities whose county named ``county`` has voice calls (in the window), in name order."""
    frame = runner.frame(f"SELECT DISTINCT city FROM voice WHERE county = {sql_literal(county)} AND city IS NOT NULL")
    return sorted(str(c) for c in frame["city"])


def _encode(first: int, last: int) -> list[tuple[str, str]]:
    """Phone numbers as dense integer keys, once: every later step hashes, sorts and joins integers.

    ``ids`` numbers every distinct subscriber number (in number order, so any engine gives the
    same keys); ``v`` is the voice calls with the ``n`` key, the counter-party, direction flags, the time
    fields and the duration (``t``: whole seconds since the ``first`` call, in 32 bits when the
    calls span less than 68 years: they sort faster than a double; whole seconds as Spark's
    ``unix_timestamp`` gives them); ``known_ids`` the known fraud numbers that occur in the calls. The few
    steps on places and handsets group the text columns first and key the small result. The
    numbers come back only in the final join.
    """
    seconds = "INTEGER" if last - first < 2**31 else "BIGINT"
    return [
        ("ids", """SELECT number, CAST(row_number() OVER (ORDER BY number) AS INTEGER) AS id
            FROM (SELECT DISTINCT number FROM voice WHERE number IS NOT NULL) u"""),
        # numbers and flags only: a column of strings costs more to store than all the rest
        ("v", f"""SELECT a.id AS n, c.other, c.direction = 'out' AS is_out, c.direction = 'in' AS is_in,
            c.direction = 'fwd' AS is_fwd, CAST(floor(epoch(c.start)) - {first} AS {seconds}) AS t, CAST(c.start AS DATE) AS day,
            hour(c.start) AS hr, c.duration
            FROM voice c LEFT JOIN ids a ON a.number = c.number"""),
        ("known_ids", "SELECT i.id AS n, k.number FROM known k JOIN ids i ON i.number = k.number"),
    ]


def _steps() -> list[tuple[str, str]]:
    """Every feature table: (name, one SELECT in the portable dialect), each after the tables it reads.

    The order is also the priority among steps ready at once: the longest (the gaps' sort) first.
    """
    return _intervals() + _pairs() + _bursts() + _base() + _area() + _group() + _sms()


def _base() -> list[tuple[str, str]]:
    """One pass over the calls into small per-number tables; everything else reads those."""
    hours = ", ".join(f"CAST(coalesce(sum(k) FILTER (WHERE hr = {h}), 0) AS DOUBLE) / sum(k) AS hour_{h:02d}" for h in range(24))
    dur_hist = f"SELECT n, {_log_bin('duration')} AS b, count(*) AS k FROM v WHERE duration IS NOT NULL GROUP BY 1, 2"
    return [
        ("f_scan", """SELECT n, count(*) AS calls,
            avg(CAST(is_out AS INTEGER)) AS out_share, avg(CAST(is_fwd AS INTEGER)) AS fwd_share,
            avg(duration) AS dur_mean, max(duration) AS dur_max, stddev_samp(duration) AS dur_std,
            date_diff('day', min(day), max(day)) + 1 AS span_days
            FROM v GROUP BY n"""),
        ("f_dur_median", f"SELECT n, {_median_from_hist('dur_median')} FROM ({_hist_cum(dur_hist)}) c GROUP BY n"),
        # 1970-01-05 was a Monday: (days since then) mod 7 < 5 is Monday..Friday in every engine
        ("hourly", """SELECT n, hr, count(*) AS k,
            count(*) FILTER (WHERE date_diff('day', DATE '1970-01-05', day) % 7 < 5) AS k_weekday FROM v GROUP BY 1, 2"""),
        ("places", """SELECT i.id AS n, p.city, p.county, p.is_out, p.k FROM (SELECT number, city, county, direction = 'out' AS is_out,
            count(*) AS k FROM voice GROUP BY 1, 2, 3, 4) p LEFT JOIN ids i ON i.number = p.number"""),
        # a place is a (city, county) pair: county names repeat across cities (内江 and 乐山 both have a 市中区);
        # a call with a county but no city is a place of its own
        ("per_place", """SELECT n, city, county, sum(k) AS k, sum(CASE WHEN is_out THEN k ELSE 0 END) AS k_out
            FROM places WHERE county IS NOT NULL GROUP BY n, city, county"""),
        ("handsets", """SELECT i.id AS n, h.imei FROM (SELECT DISTINCT number, imei FROM voice WHERE imei IS NOT NULL) h
            LEFT JOIN ids i ON i.number = h.number"""),
        # with the outgoing calls to another area than the caller's city: scanning the text columns
        # here once costs less than comparing them in every row of v
        ("callee_areas", """SELECT i.id AS n, a.other_area, a.k_far, a.k_known FROM (SELECT number, other_area,
                count(*) FILTER (WHERE direction = 'out' AND city IS NOT NULL AND other_area <> city) AS k_far,
                count(*) FILTER (WHERE direction = 'out' AND city IS NOT NULL) AS k_known
                FROM voice WHERE other_area IS NOT NULL GROUP BY 1, 2) a
            LEFT JOIN ids i ON i.number = a.number"""),
        ("f_hours", f"""SELECT n, count(DISTINCT hr) AS n_hours,
            CAST(coalesce(sum(k_weekday) FILTER (WHERE hr BETWEEN 9 AND 17), 0) AS DOUBLE) / sum(k) AS office_share,
            CAST(coalesce(sum(k) FILTER (WHERE hr < 6), 0) AS DOUBLE) / sum(k) AS night_share, {hours}
            FROM hourly GROUP BY n"""),
        ("f_places", """SELECT p.n, count(DISTINCT p.city) AS n_cities,
            coalesce(max(c.n_counties), 0) AS n_counties, coalesce(max(c.n_counties_out), 0) AS n_counties_out,
            max(h.n_imei) AS n_imei, max(a.n_other_areas) AS n_other_areas, max(a.far_callee_share) AS far_callee_share
            FROM places p
            LEFT JOIN (SELECT n, count(*) AS n_counties, count(*) FILTER (WHERE k_out > 0) AS n_counties_out
                       FROM per_place GROUP BY n) c ON c.n = p.n
            LEFT JOIN (SELECT n, count(*) AS n_imei FROM handsets GROUP BY n) h ON h.n = p.n
            LEFT JOIN (SELECT n, count(*) AS n_other_areas, CAST(sum(k_far) AS DOUBLE) / nullif(sum(k_known), 0) AS far_callee_share
                       FROM callee_areas GROUP BY n) a ON a.n = p.n
            GROUP BY p.n"""),
        ("f_base", f"""SELECT s.n, s.calls, s.out_share, s.fwd_share, s.dur_mean, s.dur_max, s.dur_std, p.far_callee_share,
            s.span_days, h.n_hours, h.office_share, h.night_share, {", ".join("h." + c for c in HOUR_COLUMNS)},
            p.n_cities, p.n_counties, p.n_counties_out, p.n_imei, p.n_other_areas, m.dur_median
            FROM f_scan s JOIN f_hours h ON h.n = s.n JOIN f_places p ON p.n = s.n
            LEFT JOIN f_dur_median m ON m.n = s.n"""),
    ]


def _pairs() -> list[tuple[str, str]]:
    return [
        ("pairs", """SELECT n, other, count(*) AS k,
            count(*) FILTER (WHERE is_out) AS k_out, count(*) FILTER (WHERE is_in) AS k_in
            FROM v GROUP BY n, other"""),
        ("f_pairs", """SELECT n, count(*) AS distinct_others,
            count(*) FILTER (WHERE k_out > 0) AS out_distinct_others,
            avg(k) AS calls_per_other, median(k) AS calls_per_other_median, max(k) AS calls_per_other_max,
            avg(CAST(k > 1 AS INTEGER)) AS repeat_other_share, avg(CAST(k_out > 0 AND k_in > 0 AS INTEGER)) AS two_way_share
            FROM pairs GROUP BY n"""),
    ]


def _bursts() -> list[tuple[str, str]]:
    # each (number, day, callee) once, with a bit per six-hour window (aligned to midnight) it was called in:
    # one aggregate then gives both the callees per day and per window
    quarters = ", ".join(f"count(*) FILTER (WHERE (qm >> {q}) & 1 = 1) AS w{q}" for q in range(4))
    windows = " + ".join(f"CAST(w{q} > 0 AS INTEGER)" for q in range(4))
    return [
        ("callee_days", """SELECT n, day, other, bit_or(CAST(1 << CAST(floor(hr / 6) AS INTEGER) AS INTEGER)) AS qm
            FROM v WHERE is_out GROUP BY n, day, other"""),
        ("per_day", f"SELECT n, day, count(*) AS callees, {quarters} FROM callee_days GROUP BY n, day"),
        ("daily", "SELECT n, day, count(*) AS k FROM v GROUP BY 1, 2"),
        ("f_bursts", f"""WITH w AS (SELECT n, max(callees) AS max_callees_day, max(greatest(w0, w1, w2, w3)) AS max_callees_6h,
                    CAST(sum(w0 + w1 + w2 + w3) AS DOUBLE) / sum({windows}) AS mean_callees_6h
                    FROM per_day GROUP BY n),
            act AS (SELECT n, count(*) AS active_days,
                    regr_slope(k, date_diff('day', DATE '2000-01-01', day)) / nullif(avg(k), 0) AS daily_trend
                    FROM daily GROUP BY n),
            dom AS (SELECT n, count(*) AS days_of_month FROM (SELECT DISTINCT n, day(day) AS dm FROM daily) d GROUP BY n)
            SELECT act.n, act.active_days, dom.days_of_month, act.daily_trend, w.max_callees_day,
                   w.max_callees_6h, w.mean_callees_6h
            FROM act JOIN dom ON dom.n = act.n LEFT JOIN w ON w.n = act.n"""),
    ]


def _intervals() -> list[tuple[str, str]]:
    """Mean, median and standard deviation of the gaps between calls, from one sort (the lag window).

    The gaps go straight into a per-number log histogram that also keeps each bin's count, mean and
    sum of squared deviations; the bins give the median and combine (Chan et al.) into the number's
    mean and standard deviation, so the gaps are neither stored nor read twice.
    """
    gaps = "SELECT n, t - lag(t) OVER (PARTITION BY n ORDER BY t) AS gap FROM v"
    hist = f"""SELECT n, {_log_bin("gap")} AS b, count(*) AS k, avg(gap) AS m, var_pop(gap) * count(*) AS m2
               FROM ({gaps}) g WHERE gap IS NOT NULL GROUP BY 1, 2"""
    return [("f_intervals", f"""SELECT n, max(mean) AS interval_mean, {_median_from_hist("interval_median")},
            sqrt((sum(m2) + sum(k * (m - mean) * (m - mean))) / nullif(max(total) - 1, 0)) AS interval_std
            FROM ({_hist_cum(hist, "sum(k * m) OVER (PARTITION BY n) / sum(k) OVER (PARTITION BY n) AS mean")}) c
            GROUP BY n""")]


def _log_bin(x: str) -> str:
    """Bin of a log-spaced histogram (20 bins per e-fold) for ``x`` >= 0.

    Exact and t-digest medians keep per-group state that grows with the rows and, at 10^8
    rows, spill tens of GB; a histogram of at most a few hundred bins per number does not.
    """
    return f"CAST(round(ln(1 + greatest({x}, 0)) * 20) AS INTEGER)"


def _hist_cum(hist: str, extra: str = "") -> str:
    """A per-number histogram (``n, b, k, ...``) with its cumulative count ``c``, ``total`` and ``extra`` columns."""
    return f"""SELECT hist.*, sum(k) OVER (PARTITION BY n ORDER BY b) AS c, sum(k) OVER (PARTITION BY n) AS total{", " + extra if extra else ""}
               FROM ({hist}) hist"""


def _median_from_hist(name: str) -> str:
    """The aggregate giving the median from ``_hist_cum`` rows, grouped by number.

    It is the lower median (of an even count, the smaller middle value), and its bin's centre: within
    e^(1/40), 2.5 %, of 1 + the value, then rounded to 0.1. Against pandas' exact median (the mean of
    the two middle values) a short call's median can differ by more: 2 against 2.5 s."""
    return f"round(exp(CAST(min(b) FILTER (WHERE c * 2 >= total) AS DOUBLE) / 20) - 1, 1) AS {name}"


def _area() -> list[tuple[str, str]]:
    # the most used place (city, county); ties go to the first by county, then city, so every engine picks
    # the same one. The registry's home is its county in its city; a registry that names no city (or a call
    # that has none) leaves the county's name to decide, so every county of that name is home. Without a
    # registry county, home is the most used place.
    return [("f_area", """WITH ranked AS (SELECT n, city, county, k,
                       row_number() OVER (PARTITION BY n ORDER BY k DESC, county, coalesce(city, '')) AS rk,
                       sum(k) OVER (PARTITION BY n) AS n_known FROM per_place),
            top AS (SELECT n, city AS top_city, county AS top_county, CAST(k AS DOUBLE) / n_known AS top_county_share, n_known
                    FROM ranked WHERE rk = 1),
            reg AS (SELECT n, home_city, home_county FROM (
                        SELECT i.id AS n, g.home_city, g.home_county, row_number() OVER (PARTITION BY i.id
                               ORDER BY g.home_county NULLS LAST, g.home_city NULLS LAST) AS rk
                        FROM registry g JOIN ids i ON i.number = g.number WHERE g.home_county IS NOT NULL) r WHERE rk = 1),
            home AS (SELECT t.n, r.home_city AS reg_city, r.home_county AS reg_county, t.top_city, t.top_county,
                            t.top_county_share, t.n_known
                     FROM top t LEFT JOIN reg r ON r.n = t.n)
            SELECT h.n, h.top_county_share, coalesce(h.reg_county, h.top_county) AS home_county,
                   1 - CAST(coalesce(sum(p.k) FILTER (WHERE
                       (p.county = h.reg_county AND (h.reg_city IS NULL OR p.city IS NULL OR p.city = h.reg_city))
                       OR (h.reg_county IS NULL AND p.county = h.top_county AND coalesce(p.city, '') = coalesce(h.top_city, ''))), 0)
                       AS DOUBLE) / h.n_known AS away_share
            FROM home h LEFT JOIN per_place p ON p.n = h.n
            GROUP BY h.n, h.top_county_share, h.reg_city, h.reg_county, h.top_city, h.top_county, h.n_known""")]


def _group() -> list[tuple[str, str]]:
    return [
        ("f_imei", """WITH per_imei AS (SELECT imei, count(*) AS numbers FROM handsets GROUP BY imei)
            SELECT ni.n, max(per_imei.numbers) AS max_numbers_per_imei
            FROM handsets ni JOIN per_imei ON per_imei.imei = ni.imei GROUP BY ni.n"""),
        # keyed by number: an ID card's count includes registered numbers that made no calls
        ("f_id", """WITH reg AS (SELECT number, min(id_number) AS id_number, max(numbers_on_id) AS numbers_on_id FROM registry GROUP BY number),
            per_id AS (SELECT id_number, count(*) AS k FROM reg WHERE id_number IS NOT NULL GROUP BY id_number)
            SELECT reg.number, coalesce(reg.numbers_on_id, per_id.k) AS numbers_on_id
            FROM reg LEFT JOIN per_id ON per_id.id_number = reg.id_number"""),
        ("degree", "SELECT other, count(*) AS deg FROM pairs GROUP BY other"),
        # counter-parties of known fraud numbers (and those numbers themselves), with who knew them,
        # so that a known number's own contacts do not count for itself
        ("fraud_others", """SELECT other, count(DISTINCT via) AS n_via, min(via) AS via FROM (
               SELECT p.other, p.n AS via FROM pairs p JOIN known_ids k ON p.n = k.n
               UNION ALL SELECT number AS other, n AS via FROM known_ids) u GROUP BY other"""),
        ("f_shared", """SELECT p.n,
            count(*) FILTER (WHERE d.deg >= 2) AS shared_others,
            avg(CAST(d.deg >= 2 AS INTEGER)) AS shared_other_share,
            count(*) FILTER (WHERE fo.other IS NOT NULL AND (fo.n_via > 1 OR fo.via <> p.n)) AS fraud_contacts
            FROM pairs p JOIN degree d ON d.other = p.other LEFT JOIN fraud_others fo ON fo.other = p.other
            GROUP BY p.n"""),
        ("edges", f"""WITH rare AS (SELECT p.n, p.other FROM pairs p JOIN degree d ON d.other = p.other
                          WHERE d.deg BETWEEN 2 AND {RARE_CONTACT_MAX_DEGREE}),
            by_contact AS (SELECT a.n AS a, b.n AS b FROM rare a JOIN rare b ON a.other = b.other AND a.n < b.n
                           GROUP BY a.n, b.n HAVING count(*) >= {COMMUNITY_MIN_SHARED}),
            by_imei AS (SELECT DISTINCT a.n AS a, b.n AS b FROM handsets a JOIN handsets b ON a.imei = b.imei AND a.n < b.n)
            SELECT a, b FROM by_contact UNION SELECT a, b FROM by_imei"""),
        ("edges2", "SELECT a, b FROM edges UNION ALL SELECT b AS a, a AS b FROM edges"),
    ]


def _community(runner) -> str:
    """Connected groups of subscribers sharing a handset or at least two rare counter-parties.

    Label propagation (each number takes the smallest label among itself and its neighbours)
    until nothing changes; returns the SELECT of the per-number community features."""
    current = "comm_0"
    runner.table(current, "SELECT n, n AS label FROM f_base")
    for i in range(1, COMMUNITY_ITERATIONS + 1):
        nxt = f"comm_{i % 2}"
        runner.table(nxt, f"""SELECT c.n, least(c.label, coalesce(min(m.label), c.label)) AS label
               FROM {current} c LEFT JOIN edges2 e ON e.a = c.n LEFT JOIN {current} m ON m.n = e.b
               GROUP BY c.n, c.label""")
        changed = runner.scalar(f"SELECT count(*) FROM {current} c JOIN {nxt} m ON m.n = c.n WHERE c.label <> m.label")
        current = nxt
        if changed == 0:
            break
    return f"""WITH sizes AS (SELECT c.label, count(*) AS size, count(k.n) AS known FROM {current} c
                           LEFT JOIN known_ids k ON k.n = c.n GROUP BY c.label)
            SELECT c.n, s.size AS community_size,
                   s.known - CASE WHEN k.n IS NULL THEN 0 ELSE 1 END AS community_known_fraud
            FROM {current} c JOIN sizes s ON s.label = c.label LEFT JOIN known_ids k ON k.n = c.n"""


def _sms() -> list[tuple[str, str]]:
    sent = "SELECT number, other, start FROM cdr WHERE record = 'sms' AND direction = 'out'"
    return [("f_sms", f"""WITH per_hour AS (SELECT number, date_trunc('hour', start) AS h, count(DISTINCT other) AS k
                                  FROM ({sent}) s GROUP BY 1, 2)
            SELECT t.number, t.sms_out, t.sms_out_recipients, p.sms_max_recipients_hour
            FROM (SELECT number, count(*) AS sms_out, count(DISTINCT other) AS sms_out_recipients FROM ({sent}) s GROUP BY number) t
            JOIN (SELECT number, max(k) AS sms_max_recipients_hour FROM per_hour GROUP BY number) p ON p.number = t.number""")]


def _final_select(screened: bool = False) -> str:
    return f"""SELECT i.number,
        b.calls, p.distinct_others, p.calls_per_other, p.calls_per_other_median, p.calls_per_other_max,
        p.repeat_other_share, b.out_share, b.fwd_share, p.out_distinct_others,
        b.dur_mean, b.dur_median, b.dur_max, b.dur_std,
        b.n_cities, b.n_counties, b.n_counties_out, a.top_county_share, a.away_share, a.home_county,
        b.n_other_areas, b.far_callee_share,
        b.n_hours, b.office_share, b.night_share, bu.active_days, bu.days_of_month, b.span_days,
        coalesce(bu.max_callees_day, 0) AS max_callees_day, coalesce(bu.max_callees_6h, 0) AS max_callees_6h,
        coalesce(bu.mean_callees_6h, 0) AS mean_callees_6h,
        it.interval_mean, it.interval_median, it.interval_std, bu.daily_trend,
        b.n_imei, coalesce(im.max_numbers_per_imei, 0) AS max_numbers_per_imei, idc.numbers_on_id,
        s.shared_others, s.shared_other_share, s.fraud_contacts, p.two_way_share,
        c.community_size, c.community_known_fraud,
        CASE WHEN kf.n IS NULL THEN 0 ELSE 1 END AS known_fraud,
        coalesce(sm.sms_out, 0) AS sms_out, coalesce(sm.sms_out_recipients, 0) AS sms_out_recipients,
        coalesce(sm.sms_max_recipients_hour, 0) AS sms_max_recipients_hour,
        {", ".join("b." + h for h in HOUR_COLUMNS)}
        FROM f_base b JOIN ids i ON i.id = b.n
        LEFT JOIN f_pairs p ON p.n = b.n LEFT JOIN f_bursts bu ON bu.n = b.n
        LEFT JOIN f_intervals it ON it.n = b.n LEFT JOIN f_area a ON a.n = b.n
        LEFT JOIN f_imei im ON im.n = b.n LEFT JOIN f_id idc ON idc.number = i.number
        LEFT JOIN f_shared s ON s.n = b.n LEFT JOIN f_comm c ON c.n = b.n
        LEFT JOIN f_sms sm ON sm.number = i.number LEFT JOIN known_ids kf ON kf.n = b.n
        {"WHERE i.number IN (SELECT number FROM screened)" if screened else ""}
        ORDER BY i.number"""
