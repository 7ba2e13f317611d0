"""1:N search at library scale: exact FAISS index vs approximate ones, on synthetic voiceprints.

Usage:
    .venv/bin/python scripts/bench_search.py [--sizes 10000 100000 1000000] [--kinds flat hnsw ivf]
        [--per-person 5] [--queries 200] [--seed 0] [--json out/bench_search.json]

Voiceprints are clustered like real speakers: each person has a unit centre and ``--per-person``
samples = normalise(centre + noise) with a within-person cosine of about 0.7 (what ECAPA gives for
two recordings of one speaker); queries are fresh samples of enrolled persons. Centres are not
uniform on the sphere (real embeddings are not): they are drawn from a Gaussian whose variance
along its i-th axis falls as i^-``--decay`` (``--decay 0`` is the isotropic worst case for
approximate indexes). Each library size is indexed with ``voiceprint.index.VoiceIndex.build`` (the library's
own code: a sample index and a person index) for ``flat`` (exact, the baseline) and ``hnsw``,
and, for comparison, a FAISS IVF index built here (``ivf``: sqrt-N*4 lists, nprobe 16). For each,
it reports build time, index memory (serialised bytes), single-query latency of a top-10 search
of the sample index (p50/p95, one query at a time on one FAISS thread, as an investigator's
query runs), recall@10 and top-1 agreement against the exact result of the same run; ratios are
against ``flat``. HNSW builds slowly on few cores (~4 min for 10^5 on 2 shared cores), so it is
skipped above ``--hnsw-max`` (default 10^5) and the table says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np

DIM = 192
WITHIN_PERSON_COSINE = 0.7


def machine() -> str:
    import faiss

    from voiceprint.report import machine_line

    return machine_line(f"faiss {faiss.__version__} ({faiss.omp_get_max_threads()} threads)")


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_library(n: int, per_person: int, decay: float, rng: np.random.Generator):
    """(ids, person_ids, vectors, centres): ``n`` unit vectors, ``per_person`` per person."""
    n_persons = max(1, n // per_person)
    scale = (np.arange(1, DIM + 1, dtype=np.float32) ** (-decay / 2)).astype(np.float32)
    rotation = np.linalg.qr(rng.standard_normal((DIM, DIM)))[0].astype(np.float32)
    centres = normalise((rng.standard_normal((n_persons, DIM), dtype=np.float32) * scale) @ rotation)
    person_ids = np.arange(n, dtype=np.int64) % n_persons
    noise_norm = np.sqrt(1 / WITHIN_PERSON_COSINE**2 - 1)  # |noise| relative to the unit centre
    vectors = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # in chunks: bounded temporary memory
        end = min(n, start + 100_000)
        noise = rng.standard_normal((end - start, DIM), dtype=np.float32) * (noise_norm / np.sqrt(DIM))
        vectors[start:end] = normalise(centres[person_ids[start:end]] + noise)
    return np.arange(1, n + 1, dtype=np.int64), person_ids + 1, vectors, centres


def queries_for(centres: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    who = rng.integers(0, len(centres), k)
    noise_norm = np.sqrt(1 / WITHIN_PERSON_COSINE**2 - 1)
    return normalise(centres[who] + rng.standard_normal((k, DIM), dtype=np.float32) * (noise_norm / np.sqrt(DIM)))


def build_ivf(ids, vectors):
    import faiss

    nlist = int(4 * np.sqrt(len(ids)))
    quantizer = faiss.IndexFlatIP(DIM)
    inner = faiss.IndexIVFFlat(quantizer, DIM, nlist, faiss.METRIC_INNER_PRODUCT)
    train = vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 30 * nlist), replace=False)]
    inner.train(train)
    inner.nprobe = 16
    index = faiss.IndexIDMap2(inner)
    index.add_with_ids(vectors, ids)
    return index


def measure(kind: str, ids, person_ids, vectors, queries, exact_ids) -> dict:
    import faiss

    from voiceprint.index import VoiceIndex

    t0 = time.perf_counter()
    if kind == "ivf":
        samples, persons = build_ivf(ids, vectors), None
    else:
        vi = VoiceIndex.build(ids, person_ids, vectors, "synthetic", 0, kind=kind, dim=DIM)
        samples, persons = vi.samples, vi.persons
    build_s = time.perf_counter() - t0
    memory = len(faiss.serialize_index(samples)) + (len(faiss.serialize_index(persons)) if persons is not None else 0)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    samples.search(queries[:5], 10)  # warm-up
    lat = []
    found = np.empty((len(queries), 10), np.int64)
    for i, q in enumerate(queries):
        t = time.perf_counter()
        _, hit = samples.search(q[None, :], 10)
        lat.append(time.perf_counter() - t)
        found[i] = hit[0]
    faiss.omp_set_num_threads(threads)
    if exact_ids is None:
        exact_ids = found
    recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact_ids)]))
    top1 = float(np.mean(found[:, 0] == exact_ids[:, 0]))
    lat_ms = np.array(lat) * 1000
    return {"kind": kind, "build_s": round(build_s, 2), "memory_mb": round(memory / 2**20, 1),
            "p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
            "recall_at_10": round(recall, 4), "top1_agree": round(top1, 4), "found": found}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"], help="flat is always run (the baseline)")
    ap.add_argument("--per-person", type=int, default=5)
    ap.add_argument("--decay", type=float, default=1.0, help="spectrum of the centres (0 = isotropic)")
    ap.add_argument("--hnsw-max", type=int, default=100_000, help="largest N to build hnsw for")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    kinds = ["flat"] + [k for k in args.kinds if k != "flat"]
    print(machine())
    print(f"{'N':>9} {'kind':<5} {'build s':>8} {'memory MB':>10} {'p50 ms':>8} {'p95 ms':>8} {'recall@10':>9} {'top-1 =':>7}  "
          f"{'p50 vs flat':>11} {'build vs flat':>13}", flush=True)
    rows = []
    for n in args.sizes:
        rng = np.random.default_rng(args.seed)
        ids, person_ids, vectors, centres = synthetic_library(n, args.per_person, args.decay, rng)
        queries = queries_for(centres, args.queries, rng)
        base = None
        for kind in kinds:
            if kind == "hnsw" and n > args.hnsw_max:
                print(f"{n:>9} {kind:<5} skipped: N above --hnsw-max {args.hnsw_max}", flush=True)
                continue
            r = measure(kind, ids, person_ids, vectors, queries, None if base is None else base["found"])
            base = base or r
            r |= {"n": n, "p50_vs_flat": round(r["p50_ms"] / base["p50_ms"], 3),
                  "build_vs_flat": round(r["build_s"] / max(base["build_s"], 1e-9), 1)}
            print(f"{n:>9} {kind:<5} {r['build_s']:>8.2f} {r['memory_mb']:>10.1f} {r['p50_ms']:>8.3f} {r['p95_ms']:>8.3f} "
                  f"{r['recall_at_10']:>9.4f} {r['top1_agree']:>7.3f}  {r['p50_vs_flat']:>10.3f}x {r['build_vs_flat']:>12.1f}x", flush=True)
            rows.append({k: v for k, v in r.items() if k != "found"})
        del vectors
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.1f} GiB; flat = exact (voiceprint.index kind 'flat'), hnsw = voiceprint.index kind 'hnsw' "
          "(M 32, efConstruction 80, efSearch 128), ivf = FAISS IVFFlat (4*sqrt(N) lists, nprobe 16); "
          f"latency on 1 FAISS thread; {args.per_person} samples per person, spectrum decay {args.decay:g}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "peak_rss_gib": round(peak, 2)}, indent=2))


if __name__ == "__main__":
    main()
