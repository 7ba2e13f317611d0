"""Benchmark the calls features and scoring at 10^6, 10^7 and 10^8 rows against plain pandas.

Each step runs in its own child process so that its peak memory (max RSS) is measured alone:
generation (DuckDB SQL straight into Parquet), DuckDB features, rule scoring with precision at
k (k = number of planted fraud numbers), and a straightforward pandas implementation of the same
features (skipped above --pandas-max rows). Prints a Markdown table with the machine.

Two times per feature run: *compute* (wall and CPU seconds inside the child, from reading the
calls to the feature table written as Parquet; interpreter start and imports excluded, the same
boundary on both sides) and *process* (the whole child, as ``wait4`` sees it). ``--json FILE`` adds
``summary`` = {"<rows>": {"speedup_vs_pandas" (compute wall), "duckdb_wall_s", "pandas_wall_s" (the two compute
walls it divides), "speedup_vs_pandas_process", ...}}.

    .venv/bin/python scripts/bench_calls.py --sizes 1000000 10000000 --work /tmp/vp_bench
    nohup .venv/bin/python scripts/bench_calls.py --sizes 100000000 --pandas-max 0 --work /tmp/vp_bench > bench_1e8.log &
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def machine() -> str:
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except OSError:
        pass
    import duckdb
    import pandas

    return (f"{os.cpu_count()} CPUs{mem}, {platform.machine()} {platform.system()}, Python {platform.python_version()}, "
            f"DuckDB {duckdb.__version__}, pandas {pandas.__version__}")


def run_child(args: list[str]) -> dict:
    """Run this script as a child; return its JSON result plus wall and CPU seconds and peak RSS (MiB).

    CPU seconds (user + system, all threads) are reported beside wall time because the machine
    may be shared: wall time then includes waiting for a core, CPU time does not.
    """
    t0 = time.time()
    proc = subprocess.Popen([sys.executable, str(HERE), *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None  # stdout=PIPE
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child {args} failed")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall_s=round(time.time() - t0, 2), cpu_s=round(usage.ru_utime + usage.ru_stime, 2), peak_mib=round(usage.ru_maxrss / 1024))
    return result


# ---------------------------------------------------------------- child steps


def child_generate(work: Path, rows: int, memory_limit: str, threads: int | None) -> dict:
    from voiceprint.calls.synthetic import generate

    res = generate(work, rows, canonical=True, memory_limit=memory_limit, threads=threads)
    from voiceprint.calls.ingest import import_fraud_list, import_registry

    import_registry(work / "registry.csv", work / "registry.parquet")
    import_fraud_list(work / "fraud_list.csv", work / "fraud_list.parquet")
    return {"subscribers": res["subscribers"], "fraud_numbers": res["fraud_numbers"]}


def timed(fn) -> dict:
    """``fn()``'s wall and CPU seconds (all threads of this process): the compute time, imports done before."""
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn()
    return {"result": result, "compute_wall_s": round(time.perf_counter() - t0, 3), "compute_cpu_s": round(time.process_time() - c0, 3)}


def child_duckdb(work: Path, memory_limit: str, threads: int | None) -> dict:
    import duckdb  # noqa: F401 - imported before the clock starts, like pandas in child_pandas

    import voiceprint.calls.ingest  # noqa: F401 - imported by compute_features (its gzip, csv, tomllib: 12-19 ms)
    from voiceprint.calls.features import compute_features

    t = timed(lambda: compute_features(work / "calls.parquet", out=work / "features.parquet", registry=work / "registry.parquet",
                                       fraud_list=work / "fraud_list.parquet", memory_limit=memory_limit, threads=threads,
                                       temp_directory=work / ".duckdb_tmp"))
    return {"numbers": t.pop("result"), **t}


def child_score(work: Path) -> dict:
    import pandas as pd

    from voiceprint.calls.leads import score_table
    from voiceprint.calls.scoring import load_feature_table

    t0 = time.time()
    rows = score_table(load_feature_table(work / "features.parquet"))
    seconds = time.time() - t0
    truth = set(pd.read_csv(work / "truth.csv", dtype=str)["number"])
    k = len(truth)
    hits = sum(r["number"] in truth for r in rows[:k])
    return {"seconds": round(seconds, 2), "k": k, "precision_at_k": hits / k}


def child_pandas(work: Path) -> dict:
    import numpy  # noqa: F401 - imported before the clock starts, like duckdb in child_duckdb
    import pandas  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    def features_file():  # like the DuckDB child, to a finished Parquet table
        frame = pandas_features(work / "calls.parquet", work / "registry.parquet", work / "fraud_list.parquet")
        frame.to_parquet(work / "features_pandas.parquet")
        return frame

    t = timed(features_file)
    frame = t.pop("result")
    return {"numbers": len(frame), **t, "differences": differences_from_duckdb(frame, work / "features.parquet")}


#: Features pandas computes otherwise, by design: exact medians (the SQL keeps the lower median of a
#: log histogram), fraud contacts (the SQL leaves a known number's own contacts out), and the home
#: county (text; pandas uses it only inside away_share).
COMPUTED_APART = ("dur_median", "interval_median", "fraud_contacts", "home_county")


def differences_from_duckdb(frame, features: Path) -> list[str]:
    """Where the pandas table differs from DuckDB's (written by the DuckDB child): the baseline must do the same work."""
    import pandas as pd

    from voiceprint.calls.spark import compare_features

    duck = pd.read_parquet(features)
    columns = [c for c in duck.columns if c not in COMPUTED_APART]
    mine = frame.rename_axis("number").reset_index()
    if missing := [c for c in columns if c not in mine.columns]:
        return [f"pandas lacks {', '.join(missing)}"]
    # atol: a flat daily trend is 0.0 in numpy's fit and -2.5e-19 in SQL's regr_slope
    return compare_features(duck[columns], mine[columns], atol=1e-12)


def pandas_features(calls, registry, fraud_list):
    """The same per-number features written plainly in pandas."""
    import numpy as np
    import pandas as pd

    df = pd.read_parquet(calls)
    v = df[df["record"] == "call"].copy()
    df_sms = df[df["record"] == "sms"]
    del df
    v["is_out"] = v["direction"] == "out"
    v["is_in"] = v["direction"] == "in"
    v["is_fwd"] = v["direction"] == "fwd"
    v["hr"] = v["start"].dt.hour
    v["day"] = v["start"].dt.floor("D")
    g = v.groupby("number")
    f = pd.DataFrame({
        "calls": g.size(), "out_share": g["is_out"].mean(), "fwd_share": g["is_fwd"].mean(),
        "dur_mean": g["duration"].mean(), "dur_median": g["duration"].median(), "dur_max": g["duration"].max(),
        "dur_std": g["duration"].std(), "n_cities": g["city"].nunique(),
        "n_imei": g["imei"].nunique(), "n_other_areas": g["other_area"].nunique(), "n_hours": g["hr"].nunique(),
        "active_days": g["day"].nunique(), "days_of_month": g["start"].apply(lambda s: s.dt.day.nunique()),
        "span_days": (g["day"].max() - g["day"].min()).dt.days + 1,
        "office_share": ((v["start"].dt.day_of_week < 5) & v["hr"].between(9, 17)).groupby(v["number"]).mean(),
        "night_share": (v["hr"] < 6).groupby(v["number"]).mean(),
    })
    # a place is a (city, county) pair (内江/市中区 and 乐山/市中区 are two); a county without a city is one of its own
    places = v[v["county"].notna()].groupby(["number", "city", "county"], dropna=False)
    per_place = places.agg(k=("is_out", "size"), k_out=("is_out", "sum")).reset_index()
    f["n_counties"] = per_place.groupby("number").size().reindex(f.index, fill_value=0)
    f["n_counties_out"] = (per_place["k_out"] > 0).groupby(per_place["number"]).sum().reindex(f.index, fill_value=0)
    hours = pd.crosstab(v["number"], v["hr"], normalize="index")
    f = f.join(hours.rename(columns=lambda h: f"hour_{h:02d}"))
    pairs = v.groupby(["number", "other"]).agg(n=("is_out", "size"), n_out=("is_out", "sum"), n_in=("is_in", "sum")).reset_index()
    pg = pairs.groupby("number")
    f["distinct_others"] = pg.size()
    f["calls_per_other"] = pg["n"].mean()
    f["calls_per_other_median"] = pg["n"].median()
    f["calls_per_other_max"] = pg["n"].max()
    f["repeat_other_share"] = (pairs["n"] > 1).groupby(pairs["number"]).mean()
    f["two_way_share"] = ((pairs["n_out"] > 0) & (pairs["n_in"] > 0)).groupby(pairs["number"]).mean()
    out = v[v["is_out"]]
    f["out_distinct_others"] = out.groupby("number")["other"].nunique()
    f["max_callees_day"] = out.groupby(["number", "day"])["other"].nunique().groupby("number").max()
    w = out.groupby(["number", out["start"].dt.floor("6h")])["other"].nunique().groupby("number")
    f["max_callees_6h"], f["mean_callees_6h"] = w.max(), w.mean()
    v = v.sort_values(["number", "start"])
    gap = v["start"].groupby(v["number"]).diff().dt.total_seconds()
    gg = gap.groupby(v["number"])
    f["interval_mean"], f["interval_median"], f["interval_std"] = gg.mean(), gg.median(), gg.std()
    daily = v.groupby(["number", "day"]).size().reset_index(name="n")
    daily["x"] = (daily["day"] - pd.Timestamp("2000-01-01")).dt.days
    def slope(d):  # noqa: E306
        return np.polyfit(d["x"], d["n"], 1)[0] / d["n"].mean() if len(d) > 1 else np.nan
    f["daily_trend"] = daily.groupby("number")[["x", "n"]].apply(slope)
    ni = v[["number", "imei"]].dropna().drop_duplicates()
    ni["numbers"] = ni.groupby("imei")["number"].transform("size")
    f["max_numbers_per_imei"] = ni.groupby("number")["numbers"].max()
    reg = pd.read_parquet(registry)
    reg["numbers_on_id"] = reg.groupby("id_number")["number"].transform("size")
    f["numbers_on_id"] = reg.set_index("number")["numbers_on_id"]
    deg = pairs.groupby("other").size()
    pairs["deg"] = pairs["other"].map(deg)
    f["shared_others"] = (pairs["deg"] >= 2).groupby(pairs["number"]).sum()
    f["shared_other_share"] = (pairs["deg"] >= 2).groupby(pairs["number"]).mean()
    known = set(pd.read_parquet(fraud_list)["number"])
    fraud_others = set(pairs.loc[pairs["number"].isin(known), "other"]) | known
    f["fraud_contacts"] = pairs["other"].isin(fraud_others).groupby(pairs["number"]).sum()
    f["known_fraud"] = f.index.isin(known).astype(int)
    # communities: numbers sharing a handset or at least two rare counter-parties, by the same
    # label propagation as the SQL (each number takes the smallest label among itself and its neighbours)
    rare = pairs.loc[pairs["deg"].between(2, 20), ["number", "other"]]
    shared = rare.merge(rare, on="other")
    shared = shared[shared["number_x"] < shared["number_y"]].groupby(["number_x", "number_y"]).size()
    by_contact = shared[shared >= 2].reset_index()[["number_x", "number_y"]]
    same_imei = ni[["number", "imei"]].merge(ni[["number", "imei"]], on="imei")
    by_imei = same_imei.loc[same_imei["number_x"] < same_imei["number_y"], ["number_x", "number_y"]]
    edges = pd.concat([by_contact, by_imei]).drop_duplicates()
    edges = pd.concat([edges, edges.rename(columns={"number_x": "number_y", "number_y": "number_x"})])
    label = pd.Series(f.index, index=f.index)
    for _ in range(12):
        neighbour = label.reindex(edges["number_y"]).to_numpy()
        best = pd.Series(neighbour, index=edges["number_x"].to_numpy()).groupby(level=0).min()
        new = pd.concat([label, best.reindex(label.index).fillna(label)], axis=1).min(axis=1)
        if new.equals(label):
            break
        label = new
    f["community_size"] = label.map(label.value_counts())
    known_per_label = label[f.index.isin(known)].value_counts()
    f["community_known_fraud"] = label.map(known_per_label).fillna(0).astype(int) - f["known_fraud"]
    # area: the most used place (ties to the first by county, then city), calls away from home, far callees
    per_place["city_key"] = per_place["city"].fillna("")
    top = per_place.sort_values(["number", "k", "county", "city_key"], ascending=[True, False, True, True])
    top = top.drop_duplicates("number").set_index("number")
    n_known = per_place.groupby("number")["k"].sum()
    f["top_county_share"] = top["k"] / n_known
    # home: the registry's county in its city (any city of that name when it names none), else the most used place
    first = reg.dropna(subset=["home_county"]).sort_values(["number", "home_county", "home_city"]).drop_duplicates("number").set_index("number")
    reg_home, reg_city = first["home_county"].reindex(f.index), first["home_city"].reindex(f.index)
    city_of_home = v["number"].map(reg_city)
    at_home = (v["county"] == v["number"].map(reg_home)) & (city_of_home.isna() | v["city"].isna() | (v["city"] == city_of_home))
    at_reg_home = at_home.groupby(v["number"]).sum().reindex(f.index)
    f["away_share"] = 1 - at_reg_home.where(reg_home.notna(), top["k"].reindex(f.index)) / n_known
    known_area = out[out["city"].notna() & out["other_area"].notna()]
    f["far_callee_share"] = (known_area["other_area"] != known_area["city"]).groupby(known_area["number"]).mean()
    # SMS: how many, to how many, and the most recipients in one hour
    sms = df_sms[df_sms["direction"] == "out"]
    sg = sms.groupby("number")
    f["sms_out"], f["sms_out_recipients"] = sg.size(), sg["other"].nunique()
    f["sms_max_recipients_hour"] = sms.groupby(["number", sms["start"].dt.floor("h")])["other"].nunique().groupby("number").max()
    sms_columns = ["sms_out", "sms_out_recipients", "sms_max_recipients_hour"]
    f[sms_columns] = f[sms_columns].fillna(0)
    return f


# ---------------------------------------------------------------- driver


def times(r: dict) -> str:
    """One child's compute and process times, for the printed table."""
    return (f"{r['compute_wall_s']:.2f} s wall / {r['compute_cpu_s']:.2f} CPU-s, "
            f"process {r['wall_s']:.2f} s wall / {r['cpu_s']:.2f} CPU-s")


def _ratio(duck: dict, pand: dict, key: str) -> float | None:
    """pandas' figure over DuckDB's (how many times faster DuckDB is); None without a pandas run."""
    return round(pand[key] / duck[key], 2) if pand else None


def summary_of(results: list[dict]) -> dict:
    """{"<rows>": {...}}: the machine-readable figures.

    ``speedup_vs_pandas`` and ``*_compute_*`` are the features alone (in-process, imports excluded);
    ``speedup_vs_pandas_process`` and ``*_process_*`` the whole child process (start and imports included).
    """
    out = {}
    for r in results:
        duck, pand = r["duckdb"], r["pandas"] or {}
        out[str(r["rows"])] = {
            "speedup_vs_pandas": _ratio(duck, pand, "compute_wall_s"), "speedup_vs_pandas_process": _ratio(duck, pand, "wall_s"),
            # the names for the figures the speed-up divides (compute wall, as speedup_vs_pandas)
            "duckdb_wall_s": duck["compute_wall_s"], "pandas_wall_s": pand.get("compute_wall_s"),
            "cpu_ratio_vs_pandas": _ratio(duck, pand, "compute_cpu_s"), "cpu_ratio_vs_pandas_process": _ratio(duck, pand, "cpu_s"),
            "duckdb_compute_wall_s": duck["compute_wall_s"], "pandas_compute_wall_s": pand.get("compute_wall_s"),
            "duckdb_compute_cpu_s": duck["compute_cpu_s"], "pandas_compute_cpu_s": pand.get("compute_cpu_s"),
            "duckdb_process_wall_s": duck["wall_s"], "pandas_process_wall_s": pand.get("wall_s"),
            "duckdb_process_cpu_s": duck["cpu_s"], "pandas_process_cpu_s": pand.get("cpu_s"),
            "duckdb_peak_mib": duck["peak_mib"], "pandas_peak_mib": pand.get("peak_mib"),
            "pandas_same_features": not pand.get("differences") if pand else None, "load_average": r.get("load_average")}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e6, 1e7])
    ap.add_argument("--work", type=Path, default=Path("/tmp/vp_bench"))
    ap.add_argument("--pandas-max", type=float, default=1e7, help="largest size the pandas baseline runs at")
    ap.add_argument("--memory-limit", default="6GB", help="DuckDB memory limit")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--reuse", action="store_true", help="keep data generated by an earlier run (same --work)")
    ap.add_argument("--child", choices=["generate", "duckdb", "score", "pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"generate": lambda: child_generate(args.work, args.rows, args.memory_limit, args.threads),
              "duckdb": lambda: child_duckdb(args.work, args.memory_limit, args.threads),
              "score": lambda: child_score(args.work), "pandas": lambda: child_pandas(args.work)}[args.child]
        print(json.dumps(fn()))
        return
    print(f"machine: {machine()}; DuckDB memory_limit {args.memory_limit}, threads {args.threads or os.cpu_count()}", flush=True)
    common = ["--memory-limit", args.memory_limit] + (["--threads", str(args.threads)] if args.threads else [])
    results = []
    for size in args.sizes:
        rows = int(size)
        work = args.work / f"rows_{rows}"
        base = ["--work", str(work), "--rows", str(rows)] + common
        if args.reuse and (work / "calls.parquet").exists() and (work / "registry.parquet").exists():
            import pandas as pd

            gen = {"subscribers": len(pd.read_csv(work / "registry.csv")), "wall_s": float("nan"), "cpu_s": float("nan"), "reused": True}
        else:
            gen = run_child(["--child", "generate"] + base)
        duck = run_child(["--child", "duckdb"] + base)
        score = run_child(["--child", "score"] + base)
        pand = run_child(["--child", "pandas"] + base) if rows <= args.pandas_max else None
        res = {"rows": rows, "subscribers": gen["subscribers"], "generate": gen, "duckdb": duck, "score": score, "pandas": pand,
               "load_average": round(os.getloadavg()[0], 1)}
        results.append(res)
        made = "data reused" if gen.get("reused") else f"gen {gen['wall_s']} s wall / {gen['cpu_s']} s CPU"
        line = (f"| {rows:.0e} | {gen['subscribers']} | {made} | "
                f"DuckDB features: compute {times(duck)} ({rows / duck['compute_cpu_s']:,.0f} rows/CPU-s, peak {duck['peak_mib']} MiB) | "
                f"score {score['wall_s']} s, P@{score['k']} {score['precision_at_k']:.2f} |")
        if pand:
            line += (f" pandas: compute {times(pand)} (peak {pand['peak_mib']} MiB) | DuckDB vs pandas: "
                     f"x{pand['compute_wall_s'] / duck['compute_wall_s']:.1f} compute wall, x{pand['wall_s'] / duck['wall_s']:.1f} process wall, "
                     f"x{pand['compute_cpu_s'] / duck['compute_cpu_s']:.1f} compute CPU, x{pand['peak_mib'] / duck['peak_mib']:.1f} less memory |")
        print(line, flush=True)
        for problem in (pand or {}).get("differences", []):
            print(f"WARNING: the pandas baseline differs from DuckDB: {problem}", flush=True)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"machine": machine(), "summary": summary_of(results), "results": results}, indent=2),
                                 encoding="utf-8")


if __name__ == "__main__":
    main()
