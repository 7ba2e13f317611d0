"""Benchmark ``voiceprint leads --json`` on a county of 10^7 CDR rows and 10^4 enrolled persons.

    .venv/bin/python scripts/bench_leads.py [--rows 10000000] [--persons 10000] [--cases 200] --work /tmp/vp_bench_leads

Builds (once, kept in --work): generated CDRs in the canonical layout (scripts/gen_cdr.py), the registry and
features Parquet files, and a library of ``--persons`` persons with two synthetic voiceprints each (inserted
through the store: the speaker model is not what is measured), every one registered by ID card in the
registry, plus ``--cases`` open cases whose victims were called by den numbers and whose recordings hold one
voice each (a synthetic voiceprint kept as filing does). Then times the CLI as a child process:

- **cold**: the first ``voiceprint leads --json`` (the lead graph is built from nothing);
- **warm**: the same command again, ``--warm`` times (nothing changed: the graph is read from the library database);
- **incremental**: after one more calling number is added to one case (only the library-derived parts rebuild).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build_cdr(work: Path, rows: int) -> dict:
    from voiceprint.calls.features import compute_features
    from voiceprint.calls.ingest import import_registry
    from voiceprint.calls.synthetic import generate

    paths = {"calls": work / "gen" / "calls.parquet", "registry": work / "registry.parquet", "features": work / "features.parquet"}
    if not paths["calls"].exists():
        t0 = time.time()
        generate(work / "gen", rows, fmt="parquet", canonical=True)
        print(f"generated {rows} rows in {time.time() - t0:.0f} s", flush=True)
    if not paths["registry"].exists():
        import_registry(work / "gen" / "registry.csv", paths["registry"])
    if not paths["features"].exists():
        t0 = time.time()
        compute_features(paths["calls"], out=paths["features"], registry=paths["registry"], temp_directory=work)
        print(f"features in {time.time() - t0:.0f} s", flush=True)
    return paths


def build_library(work: Path, paths: dict, persons: int, cases: int) -> Path:
    """Persons with synthetic voiceprints (registered by ID card), cases with den callers and one voice each."""
    import duckdb

    from voiceprint.library import Library
    from voiceprint.store import add_case_call, keep_case_voice_vector

    root = work / "lib"
    if (root / "library.sqlite").exists():
        return root
    rng = np.random.default_rng(0)
    reg = duckdb.execute("SELECT name, id_number FROM read_parquet(?) ORDER BY number DESC LIMIT ?", [str(paths["registry"]), persons]).fetchall()
    victims = duckdb.execute(
        "SELECT other, list(number), list(strftime(start, '%Y-%m-%d %H:%M:%S')) FROM read_parquet(?) WHERE other LIKE '+86186%'"
        " AND direction = 'out' GROUP BY other ORDER BY other LIMIT ?", [str(paths["calls"]), cases]).fetchall()
    t0 = time.time()
    with Library.create(root) as lib, lib.store.transaction():
        dim = 192
        for i, (name, idn) in enumerate(reg):
            pid = lib.store.add_person(name, idn, "prior_offender" if i % 10 == 0 else "other")
            for take in range(2):
                rid = lib.store.add_recording(f"{i:032x}{take:032x}", 0, f"p{i}_{take}.wav", 20.0, 12.0, 16000)
                lib.store.add_voiceprint(rid, pid, lib.model, rng.normal(size=dim).astype(np.float32))
        for k, (victim, numbers, starts) in enumerate(victims):
            case = f"BENCH-{k:04d}"
            case_id = lib.store.add_case(case, area="far")
            for n, s in zip(numbers, starts, strict=False):
                add_case_call(lib.store, case, n, s, victim)
            rid = lib.store.add_recording(f"{k:032x}".ljust(64, "f"), 0, f"{case}.amr", 30.0, 9.0, 8000, "amr_nb")
            cv = lib.store.db.execute(
                "INSERT INTO case_voices(case_id, recording_id, voice, segments, net_speech, created_at) VALUES (?, ?, 0, '[]', 9.0, ?)",
                (case_id, rid, time.time()))
            keep_case_voice_vector(lib.store, int(cv.lastrowid), lib.model, rng.normal(size=dim).astype(np.float32), "narrowband", 9.0)
    print(f"library: {persons} persons, {len(victims)} cases in {time.time() - t0:.0f} s", flush=True)
    with Library.open(root) as lib:
        lib.rebuild_index()
    return root


def timed_cli(args: list[str]) -> tuple[float, float, str]:
    """(wall s, child CPU s, stdout) of one ``voiceprint`` child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "voiceprint.cli", *args], capture_output=True, text=True, env=os.environ | {"PYTHONPATH": str(REPO)})
    wall = time.time() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"voiceprint {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, default=1e7)
    ap.add_argument("--persons", type=int, default=10_000)
    ap.add_argument("--cases", type=int, default=200)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vp_bench_leads"))
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--warm", type=int, default=3, help="warm runs (nothing changed) to time")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    from voiceprint.report import machine_line

    print(f"machine: {machine_line()}", flush=True)
    paths = build_cdr(args.work, int(args.rows))
    lib = build_library(args.work, paths, args.persons, args.cases)
    common = ["leads", "--library", str(lib), "--json"]
    results: dict = {"machine": machine_line()}

    def measure(name: str, cli_args: list[str]) -> None:
        load = round(os.getloadavg()[0], 1)
        wall, cpu, out = timed_cli(cli_args)
        results[name] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "leads": len(json.loads(out)), "load_before": load}

    measure("cold", common + ["--calls", str(paths["calls"]), "--features", str(paths["features"]),
                              "--registry", str(paths["registry"]), "--rebuild"])
    for k in range(1, args.warm + 1):  # nothing changed: the graph is read from the library database
        measure(f"warm{k}", common)
    fresh = f"+86137{int(time.time()) % 10**8:08d}"  # a number not yet on the case, so the library really changes
    timed_cli(["case", "add", "BENCH-0000", "--calling-number", fresh, "--called-at", "2019-12-01 10:00", "--library", str(lib)])
    measure("incremental", common)
    results["setup"] = {"rows": int(args.rows), "persons": args.persons, "cases": args.cases, "load_after": round(os.getloadavg()[0], 1)}
    for k, v in results.items():
        print(k, v, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
