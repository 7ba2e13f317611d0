"""HNSW construction parameters vs build time and the efSearch needed for recall@10 >= 0.99.

On ``scripts/bench_search.py``'s synthetic data; each ``--configs`` entry is storage:M:efConstruction
(storage ``flat`` = fp32 IndexHNSWFlat, ``sq16`` = fp16 IndexHNSWSQ). For each efSearch it prints
recall@10 and top-1 against exact search and the single-query p50 on one thread, stopping once
recall@10 >= 0.995. Figures: docs/benchmarks.md section 3b.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_search import DIM, queries_for, synthetic_library  # noqa: E402


def hnsw(storage: str, m: int, efc: int):
    index: Any
    if storage == "flat":
        index = faiss.IndexHNSWFlat(DIM, m, faiss.METRIC_INNER_PRODUCT)
    else:
        fp16: Any = faiss.ScalarQuantizer.QT_fp16  # an enum value; FAISS's stubs call it int
        index = faiss.IndexHNSWSQ(DIM, fp16, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    return index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=float, default=1e5)
    ap.add_argument("--configs", nargs="+", default=["flat:32:40"], help="storage:M:efConstruction")
    ap.add_argument("--efs", type=int, nargs="+", default=[64, 128, 192, 256, 384, 512, 768, 1024])
    ap.add_argument("--queries", type=int, default=1000, help="for recall")
    ap.add_argument("--lat-queries", type=int, default=300, help="timed one at a time")
    ap.add_argument("--out", type=Path, default=Path("out/bench/hnsw_params.jsonl"))
    a = ap.parse_args()
    n = int(a.n)
    _, _, x, centres = synthetic_library(n, 5, 1.0, 0)
    q = queries_for(centres, a.queries, 0)
    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    _, truth = flat.search(q, 10)
    del flat
    a.out.parent.mkdir(parents=True, exist_ok=True)
    for cfg in a.configs:
        storage, m, efc = cfg.split(":")
        index = hnsw(storage, int(m), int(efc))
        faiss.omp_set_num_threads(2)
        t0, c0 = time.perf_counter(), time.process_time()
        index.add(x)
        build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
        for ef in a.efs:
            index.hnsw.efSearch = ef
            faiss.omp_set_num_threads(2)
            _, found = index.search(q, 10)
            recall = float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))
            top1 = float(np.mean(found[:, 0] == truth[:, 0]))
            faiss.omp_set_num_threads(1)
            for v in q[:5]:
                index.search(v[None], 10)
            wall, cpu = [], []
            for v in q[:a.lat_queries]:
                c, t = time.thread_time(), time.perf_counter()
                index.search(v[None], 10)
                wall.append(time.perf_counter() - t)
                cpu.append(time.thread_time() - c)
            r = {"n": n, "cfg": cfg, "build_s": round(build, 1), "build_cpu_s": round(build_cpu, 1), "ef": ef,
                 "recall": round(recall, 4), "top1": round(top1, 4), "p50_ms": round(float(np.median(wall)) * 1e3, 3),
                 "cpu_p50_ms": round(float(np.median(cpu)) * 1e3, 3), "mb": round(len(faiss.serialize_index(index)) / 2**20, 1),
                 "load": round(os.getloadavg()[0], 2)}
            print(json.dumps(r), flush=True)
            with a.out.open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            if recall >= 0.995 and top1 >= 0.998:
                break


if __name__ == "__main__":
    main()
