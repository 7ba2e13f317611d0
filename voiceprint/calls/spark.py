"""The Spark engine: the feature SQL of ``features.py``, translated by sqlglot, on Spark SQL.

One definition per feature: the steps are written once in the portable DuckDB dialect and
``to_spark`` translates each with sqlglot; nothing here restates a feature. Each step is
materialised with ``localCheckpoint`` (cut lineage, so the label-propagation loop does not grow
its plan) and registered as a temp view under the step's name.

The session starts offline: no web UI, no ivy/Maven resolution (``spark.jars.packages`` is never
set), event log off. ``master`` is ``local[*]`` by default, a ``spark://host:7077`` (or yarn /
k8s) cluster, or an ``sc://host:15002`` Spark Connect URL.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import threading
from pathlib import Path

from voiceprint.errors import DataError
from voiceprint.fsutil import atomic_output

from .features import is_uri

DEFAULT_MASTER = os.environ.get("VOICEPRINT_SPARK_MASTER", "local[*]")
LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")


@functools.lru_cache(maxsize=256)
def to_spark(sql: str) -> str:
    """One portable-DuckDB SELECT as Spark SQL."""
    import sqlglot

    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def _check_java() -> None:
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return
    raise DataError("the Spark engine needs Java and none was found - install openjdk-17-jre-headless (`make install` does) "
                    "or use --engine duckdb")


def spark_session(master: str | None = None, memory_limit: str | None = None, threads: int | None = None,
                  temp_directory: str | Path | None = None):
    """A Spark session that starts without the network: UI off, no package downloads, UTC."""
    master = master or DEFAULT_MASTER
    # the per-number tables are small: few shuffle partitions locally, more on a cluster
    partitions = 2 * (threads or os.cpu_count() or 2) if master.startswith("local") else 200
    import warnings

    # pyspark 4.0 warns about pandas 3 on every start; the parity test (tests/test_spark.py) is what checks
    # the two together, and the warning would sit in every analyst's output
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    # and its toPandas() passes pandas 3 a keyword pandas 4 drops (pyspark's code, not ours)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise DataError("the Spark engine needs pyspark - run `make install` (or pip install 'pyspark>=4,<5')") from exc
    if master.startswith("sc://"):
        if missing := _missing_modules("grpc", "grpc_status", "google.rpc"):
            # checked first: without them pyspark's Connect client exits the process (status 0, no word) or raises
            raise DataError(f"a Spark Connect URL ({master}) needs Spark Connect's client packages ({', '.join(missing)} missing) - "
                            "install them (pip install 'pyspark[connect]>=4,<5') or give a spark:// master")
        builder = SparkSession.builder.remote(master)
    else:
        _check_java()
        if master.startswith("local"):  # the driver binds to 127.0.0.1 (below): no warning about the host's name
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        if threads and master == "local[*]":
            master = f"local[{int(threads)}]"
        builder = SparkSession.builder.master(master)
        local = Path(temp_directory or os.environ.get("VOICEPRINT_SPARK_TEMP") or "/tmp/voiceprint_spark")
        local.mkdir(parents=True, exist_ok=True)
        builder = builder.config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}")
        builder = (builder.config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                   .config("spark.eventLog.enabled", "false").config("spark.jars.ivy", str(local / "ivy"))
                   .config("spark.local.dir", str(local)).config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.driver.host", "127.0.0.1") if master.startswith("local") else builder.config("spark.ui.enabled", "false"))
        if memory_limit:
            builder = builder.config("spark.driver.memory", _spark_memory(memory_limit))
    builder = (builder.appName("voiceprint-calls").config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.shuffle.partitions", os.environ.get("VOICEPRINT_SPARK_PARTITIONS", str(partitions)))
               .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true"))
    session = _start(builder)
    if not master.startswith("sc://"):
        session.sparkContext.setLogLevel("ERROR")
    return session


def _missing_modules(*names: str) -> list[str]:
    import importlib.util

    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:  # its parent package is missing
            found = False
        if not found:
            missing.append(name)
    return missing


def _start(builder):
    """``builder.getOrCreate()``, tried twice: the local Java gateway can exit at start on a loaded machine
    (seen once in a test run beside other work), and a second start then succeeds; a clear error after that."""
    for attempt in (1, 2):
        try:
            return builder.getOrCreate()
        except Exception as exc:  # pyspark's PySparkRuntimeError; only the gateway's start is retried
            if "JAVA_GATEWAY_EXITED" not in str(exc):
                raise
            if attempt == 2:
                raise DataError("Spark's Java process exited as it started, twice - check `java -version` (Java 17) and free "
                                "memory (--memory-limit sets the driver's heap), or use --engine duckdb") from exc
    raise AssertionError("unreachable")


def _spark_memory(limit: str) -> str:
    """DuckDB-style '4GB' as Spark's '4g'."""
    text = str(limit).strip().lower().replace("ib", "").replace("b", "")
    return text if text[-1:] in "kmgt" else text + "m"


class SparkRunner:
    """Runs the feature steps on Spark: each step a checkpointed temp view.

    Ctrl-C cancels Spark's jobs from another thread, quiets the JVM's log and raises KeyboardInterrupt
    at the step it stopped: pyspark's own handler calls the JVM from inside the interrupted call,
    which breaks the gateway's connection and prints screens of tracebacks over the one line that
    says what to do."""

    def __init__(self, master: str | None = None, memory_limit: str | None = None, threads: int | None = None,
                 temp_directory: str | Path | None = None, session=None):
        on_main_thread = threading.current_thread() is threading.main_thread()
        before = signal.getsignal(signal.SIGINT) if on_main_thread else None  # pyspark's context replaces it
        self.spark = session or spark_session(master, memory_limit, threads, temp_directory)
        self.remote = (master or DEFAULT_MASTER).startswith("sc://")
        self._owns = session is None
        self.interrupted = threading.Event()
        self._previous_handler = None
        if not self.remote and on_main_thread:
            signal.signal(signal.SIGINT, self._on_interrupt)
            self._previous_handler = before

    def _on_interrupt(self, signum, frame) -> None:
        if self.interrupted.is_set():  # a second Ctrl-C: stop waiting for Spark
            raise KeyboardInterrupt
        self.interrupted.set()
        threading.Thread(target=self._cancel, name="vp-spark-cancel", daemon=True).start()

    def _cancel(self) -> None:
        context = self.spark.sparkContext
        context.setLogLevel("OFF")  # the cancelled tasks' errors are expected
        context.cancelAllJobs()

    @contextlib.contextmanager
    def _step(self):
        """Whatever a cancelled job raises becomes the KeyboardInterrupt it stands for."""
        if self.interrupted.is_set():
            raise KeyboardInterrupt
        try:
            yield
        except Exception:
            if self.interrupted.is_set():
                raise KeyboardInterrupt from None
            raise
        if self.interrupted.is_set():
            raise KeyboardInterrupt

    def source(self, name: str, paths: list[Path], union: bool = True) -> None:
        reader = self.spark.read.option("mergeSchema", "true") if union else self.spark.read
        with self._step():
            reader.parquet(*[p if is_uri(p) else str(Path(p).resolve()) for p in paths]).createOrReplaceTempView(name)

    def view(self, name: str, sql: str) -> None:
        self.spark.sql(to_spark(sql)).createOrReplaceTempView(name)

    def table(self, name: str, sql: str) -> None:
        with self._step():
            df = self.spark.sql(to_spark(sql))
            df = df.checkpoint() if self.remote else df.localCheckpoint()
            df.createOrReplaceTempView(name)

    def tables(self, steps: list[tuple[str, str]]) -> None:
        """One after another: Spark spreads each step over the cluster itself."""
        for name, sql in steps:
            self.table(name, sql)

    def drop(self, name: str) -> None:
        self.spark.catalog.dropTempView(name)

    def scalar(self, sql: str):
        with self._step():
            return self.spark.sql(to_spark(sql)).collect()[0][0]

    def frame(self, sql: str):
        with self._step():
            return self.spark.sql(to_spark(sql)).toPandas()

    def write(self, sql: str, out: Path) -> None:
        """One local file, like the DuckDB engine (the feature table has one row per number, not per call)."""
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        with self._step():
            table = self.spark.sql(to_spark(sql)).toArrow()
        with atomic_output(out) as tmp:
            if out.name.endswith(".gz"):
                import gzip

                with gzip.open(tmp, "wb") as fh:
                    pacsv.write_csv(table, fh)
            elif out.name.endswith(".csv"):
                pacsv.write_csv(table, tmp)
            else:
                pq.write_table(table, tmp)

    def close(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
        if self._owns:
            self.spark.stop()


def compare_features(a, b, rel: float = 1e-9, atol: float = 1e-12) -> list[str]:
    """Differences between two feature tables (pandas), as readable lines; empty when they agree.

    Rows are matched on ``number``; integers and strings must be equal, floats equal within
    ``rel`` relative or ``atol`` absolute (a flat daily trend is 0.0 in one engine and 6e-18 in the
    other), NULLs in the same places."""
    import numpy as np

    problems = []
    if list(a.columns) != list(b.columns):
        return [f"columns differ: {sorted(set(a.columns) ^ set(b.columns)) or 'order'}"]
    a = a.sort_values("number").reset_index(drop=True)
    b = b.sort_values("number").reset_index(drop=True)
    if len(a) != len(b) or not (a["number"].astype(str).values == b["number"].astype(str).values).all():
        return [f"different numbers: {len(a)} vs {len(b)} rows"]
    for col in a.columns:
        x, y = a[col], b[col]
        null_x, null_y = x.isna().to_numpy(), y.isna().to_numpy()
        if (null_x != null_y).any():
            problems.append(f"{col}: NULL in {int((null_x != null_y).sum())} rows of one engine only")
            continue
        keep = ~null_x
        if x.dtype.kind in "fiub" and y.dtype.kind in "fiub":
            xv, yv = x.to_numpy(dtype=float)[keep], y.to_numpy(dtype=float)[keep]
            bad = np.abs(xv - yv) > np.maximum(rel * np.maximum(np.abs(xv), np.abs(yv)), atol)
            if bad.any():
                i = int(np.argmax(bad))
                problems.append(f"{col}: {int(bad.sum())} values differ (e.g. {float(xv[i])!r} vs {float(yv[i])!r})")
        elif not (x[keep].astype(str).to_numpy() == y[keep].astype(str).to_numpy()).all():
            problems.append(f"{col}: text values differ")
    return problems
