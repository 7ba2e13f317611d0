"""Cost of the integrity seals (issue 12): sealing on insert, a full check, a query's candidate check.

Builds a library of N persons with one random 192-d voiceprint each, written through the store
(no speaker model), and times: the inserts with the seal triggers, ``verify_seals`` over every
row (what `voiceprint verify-library`, `index check` and every index build run), the check of 200
persons' rows (what each query runs on its candidates), a `person delete` with its WAL truncation.

    .venv/bin/python scripts/bench_integrity.py --persons 100000 --work /tmp/vp_bench_integrity
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np

from voiceprint.library import Library  # noqa: E402
from voiceprint.store import assert_sealed, verify_seals  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--persons", type=int, default=20000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/vp_bench_integrity"))
    args = ap.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.persons, 192)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with Library.create(args.work / "lib", operator="bench") as lib:
        t0 = time.perf_counter()
        with lib.store.transaction():
            for i, v in enumerate(vectors):
                pid = lib.store.add_person(f"P{i}", f"ID{i:012d}")
                rid = lib.store.add_recording(f"{i:064x}", 0, f"{i}.wav", 10.0, 8.0, 16000)
                lib.store.add_voiceprint(rid, pid, lib.model, v)
        t_insert = time.perf_counter() - t0
        t0 = time.perf_counter()
        report = verify_seals(lib.store)
        t_full = time.perf_counter() - t0
        assert report["ok"], report["failures"][:3]
        picks = rng.choice(np.arange(1, args.persons + 1), size=min(200, args.persons), replace=False)
        t0 = time.perf_counter()
        for _ in range(20):
            assert_sealed(lib.store, picks.tolist())
        t_query = (time.perf_counter() - t0) / 20
        lib.rebuild_index()
        t0 = time.perf_counter()
        lib.delete_person(int(picks[0]))
        t_delete = time.perf_counter() - t0
    size = os.path.getsize(args.work / "lib" / "library.sqlite") / 2**20
    print(f"| {args.persons:,} persons (1 voiceprint each), {size:.0f} MiB database | insert with seals "
          f"{t_insert / args.persons * 1e6:.0f} us/row | full check {t_full:.2f} s | a query's 200 candidates "
          f"{t_query * 1e3:.1f} ms | person delete + index save + WAL truncate {t_delete:.2f} s |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
