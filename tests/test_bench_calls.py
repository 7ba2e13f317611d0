"""scripts/bench_calls.py on a tiny generated set: the summary issue 16 names, and a baseline that does the same work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_calls_summary_has_the_figures_the_issue_names(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_calls.py"), "--sizes", "20000", "--work", str(tmp_path / "work"),
                    "--json", str(out)], check=True, capture_output=True, text=True, cwd=ROOT, timeout=300)
    row = json.loads(out.read_text())["summary"]["20000"]
    assert {"speedup_vs_pandas", "duckdb_wall_s", "pandas_wall_s", "duckdb_peak_mib", "duckdb_compute_cpu_s"} <= set(row)
    assert row["speedup_vs_pandas"] == round(row["pandas_wall_s"] / row["duckdb_wall_s"], 2)
    assert row["pandas_same_features"], "the pandas baseline must compute the same features as DuckDB"
