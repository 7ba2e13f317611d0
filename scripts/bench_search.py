"""1:N search at library scale: the library's index (voiceprint.index) against exact search, on synthetic voiceprints.

Usage:
    .venv/bin/python scripts/bench_search.py --sizes 1e6 [--kinds hnsw] [--queries 1000] [--cache out/index_cache]
        [--per-person 5] [--seed 0] [--json out/bench_search.json]

Voiceprints are clustered like real speakers: each person has a unit centre and ``--per-person``
samples = normalise(centre + noise) with a within-person cosine of about 0.7 (what ECAPA gives for
two recordings of one speaker); queries are fresh samples of enrolled persons. Centres are not
uniform on the sphere (real embeddings are not): they are drawn from a Gaussian whose variance
along its i-th axis falls as i^-``--decay`` (``--decay 0`` is the isotropic worst case for
approximate indexes). Each size is indexed with ``voiceprint.index.VoiceIndex.build`` (the
library's own code: a sample set and a person set) for each ``--kinds`` entry; the baseline is
exact search (FAISS IndexFlatIP, what kind ``flat`` is). For each it reports build time, memory
(serialised bytes), single-query latency of a top-10 search (p50/p95, one query at a time on one
FAISS thread, as an investigator's query runs) of the sample set and of the person set,
recall@10 and top-1 agreement against exact search of the same set, and the time to add one
new voiceprint to the built index (``VoiceIndex.update``: the incremental path enrolment uses).
Built indexes can be cached (``--cache``), or their HNSW graphs built in checkpointed, resumable
stages (``--prebuilt DIR``; about 25 min for 10^6 samples + 2x10^5 persons on 2 cores).
The ``--json`` file holds ``summary`` = {"<N>": {"p50_ms", "recall_at_10", "top1_agreement",
"index", ...}} for the library's index at each size (the worse of sample and person search).
"""

from __future__ import annotations

import argparse
import json
import os
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


def ef_label(sizes=(10**5, 2 * 10**5, 5 * 10**5, 10**6, 10**7)) -> str:
    import voiceprint.index as vi

    return ", ".join(f"{vi.ef_search(n)} at {n:.0e}" for n in sizes)


def normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def synthetic_library(n: int, per_person: int, decay: float, rng: np.random.Generator | int):
    """(ids, person_ids, vectors, centres): ``n`` unit vectors, ``per_person`` consecutive ones per person.

    Prefix-stable: the first m voiceprints of a library of n are the library of m (centres and
    noise come from their own seeded streams), so an index built in stages can be measured at each."""
    seed = int(rng.integers(2**31)) if isinstance(rng, np.random.Generator) else int(rng)
    n_persons = max(1, -(-n // per_person))
    scale = (np.arange(1, DIM + 1, dtype=np.float32) ** (-decay / 2)).astype(np.float32)
    rotation = np.linalg.qr(np.random.default_rng([seed, 0]).standard_normal((DIM, DIM)))[0].astype(np.float32)
    centres = normalise((np.random.default_rng([seed, 1]).standard_normal((n_persons, DIM), dtype=np.float32) * scale) @ rotation)
    person_ids = np.arange(n, dtype=np.int64) // per_person
    noise_norm = np.sqrt(1 / WITHIN_PERSON_COSINE**2 - 1)  # |noise| relative to the unit centre
    noise_rng = np.random.default_rng([seed, 2])
    vectors = np.empty((n, DIM), np.float32)
    for start in range(0, n, 100_000):  # in chunks: bounded temporary memory
        end = min(n, start + 100_000)
        noise = noise_rng.standard_normal((end - start, DIM), dtype=np.float32) * (noise_norm / np.sqrt(DIM))
        vectors[start:end] = normalise(centres[person_ids[start:end]] + noise)
    return np.arange(1, n + 1, dtype=np.int64), person_ids + 1, vectors, centres


def queries_for(centres: np.ndarray, k: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 3])
    who = rng.integers(0, len(centres), k)
    noise_norm = np.sqrt(1 / WITHIN_PERSON_COSINE**2 - 1)
    return normalise(centres[who] + rng.standard_normal((k, DIM), dtype=np.float32) * (noise_norm / np.sqrt(DIM)))


def exact(vectors: np.ndarray, queries: np.ndarray, k: int = 10):
    """Exact top-k by batched brute force on every core (the ground truth), and a search function for
    exact single-query latency; both read ``vectors`` in place (an IndexFlatIP would copy 7.7 GB at 10^7)."""
    import faiss

    def search(q: np.ndarray, k: int):
        return faiss.knn(q, vectors, k, metric=faiss.METRIC_INNER_PRODUCT)

    _, truth = search(queries, k)
    return search, truth


def latency(search, queries: np.ndarray, k: int = 10, limit: int | None = None, cpu: list | None = None) -> tuple[np.ndarray, list[float]]:
    """Labels and per-query wall seconds, one query at a time on one FAISS thread.

    ``cpu`` (a list) also receives each query's CPU seconds of this thread: on a shared machine
    wall time includes waiting for a core, CPU time does not."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for q in queries[:5]:
            search(q[None, :], k)  # warm-up
        qs = queries if limit is None else queries[:limit]
        found = np.full((len(qs), k), -1, np.int64)
        lat = []
        for i, q in enumerate(qs):
            c, t = time.thread_time(), time.perf_counter()
            _, hit = search(q[None, :], k)
            lat.append(time.perf_counter() - t)
            if cpu is not None:
                cpu.append(time.thread_time() - c)
            found[i, : hit.shape[1]] = hit[0]
    finally:
        faiss.omp_set_num_threads(threads)
    return found, lat


def quality(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    k = truth.shape[1]
    recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))
    return recall, float(np.mean(found[:, 0] == truth[:, 0]))


PERSONS_ONLY = False  # --persons-only: measure the person set alone (its staged graph exists, the samples' does not)
STAGE = 100_000  # entries added between checkpoints of a staged build


def staged_graph(folder: Path, level: str, vectors: np.ndarray):
    """The library's HNSW graph (``voiceprint.index._new_faiss``) over ``vectors``, built in stages of
    ``STAGE`` entries, each checkpointed as ``folder``/<level>_<n>.faiss (+ .build_s, the build's
    wall seconds so far); a killed build resumes from its last checkpoint of the same prefix-stable
    data. Returns (index, build seconds)."""
    import faiss

    from voiceprint.index import _new_faiss

    n = len(vectors)
    done = sorted((int(f.stem.rsplit("_", 1)[1]), f) for f in folder.glob(f"{level}_*.faiss") if int(f.stem.rsplit("_", 1)[1]) <= n)
    if done:
        m, f = done[-1]
        index, spent = faiss.read_index(str(f)), float(Path(f"{f}.build_s").read_text())
        if m == n:
            return index, spent
        print(f"  resuming the {level} graph at {m:,} of {n:,}", flush=True)
    else:
        m, index, spent = 0, _new_faiss("hnsw", DIM), 0.0
    folder.mkdir(parents=True, exist_ok=True)
    while m < n:
        end = min(n, m + STAGE)
        t0 = time.perf_counter()
        index.add(np.ascontiguousarray(vectors[m:end]))
        spent += time.perf_counter() - t0
        tmp = folder / f".{level}_{end}.faiss.tmp"
        faiss.write_index(index, str(tmp))
        Path(f"{folder / f'{level}_{end}.faiss'}.build_s").write_text(f"{spent:.1f}\n")
        tmp.rename(folder / f"{level}_{end}.faiss")  # last: the checkpoint exists only once complete
        print(f"  {level} graph: {end:,} of {n:,} in {spent:.0f} s (load {os.getloadavg()[0]:.1f})", flush=True)
        m = end
    return index, spent


def build_or_load(kind: str, ids, person_ids, vectors, cache: Path | None, tag: str, prebuilt: Path | None = None):
    """The library's VoiceIndex for this data: from ``cache``, or with its HNSW sets built in checkpointed
    stages under ``prebuilt`` (``staged_graph``), or built now. Returns (index, build seconds)."""
    from voiceprint.index import VectorSet, VoiceIndex, _resolve, person_means

    folder = cache / f"{tag}_{kind}" if cache else None
    if folder is not None and (loaded := VoiceIndex.load(folder)) is not None:
        return loaded, float((folder / "build_s.txt").read_text())
    pids, means = person_means(person_ids, vectors)
    if prebuilt is not None:
        sets, build_s = [], 0.0
        for level, x, labels in (("samples", vectors, ids), ("persons", means, pids)):
            if PERSONS_ONLY and level == "samples":
                sets.append(VectorSet.build(np.zeros((0, DIM), np.float32), np.zeros(0, np.int64), kind, DIM))
            elif _resolve(kind, len(labels)) == "hnsw":
                graph, spent = staged_graph(prebuilt, level, x)
                sets.append(VectorSet(graph, labels, np.ones(len(labels), bool), "hnsw", kind))
                build_s += spent
            else:
                t0 = time.perf_counter()
                sets.append(VectorSet.build(x, labels, kind, DIM))
                build_s += time.perf_counter() - t0
        vi = VoiceIndex(sets[0], sets[1], "synthetic", 0, kind, None if PERSONS_ONLY else person_ids.copy())
    else:
        t0 = time.perf_counter()
        vi = VoiceIndex.build(ids, person_ids, vectors, "synthetic", 0, kind=kind, dim=DIM)
        build_s = time.perf_counter() - t0
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        vi.save(folder)
        (folder / "build_s.txt").write_text(f"{build_s:.1f}\n")
    return vi, build_s


def measure(kind: str, data: tuple, n: int, queries, truth: dict, cache: Path | None, tag: str, prebuilt: Path | None = None) -> dict:
    """The library's index over the first ``n`` voiceprints of ``data`` (ids, persons, vectors), then
    the incremental update that adds voiceprint n + 1."""
    import faiss

    all_ids, all_persons, all_vectors = data
    vi, build_s = build_or_load(kind, all_ids[:n], all_persons[:n], all_vectors[:n], cache, tag, prebuilt)
    row = {"kind": kind, "sample_kind": vi.samples.kind, "person_kind": vi.persons.kind, "build_s": round(build_s, 1),
           "memory_mb": round((len(faiss.serialize_index(vi.samples.index)) + len(faiss.serialize_index(vi.persons.index))) / 2**20, 1)}
    levels = (("persons", vi.search_persons),) if PERSONS_ONLY else (("samples", vi.search_samples), ("persons", vi.search_persons))
    for level, search in levels:
        cpu: list[float] = []
        found, lat = latency(search, queries, cpu=cpu)
        recall, top1 = quality(found, truth[level])
        lat_ms = np.array(lat) * 1000
        row[level] = {"p50_ms": round(float(np.percentile(lat_ms, 50)), 3), "p95_ms": round(float(np.percentile(lat_ms, 95)), 3),
                      "cpu_p50_ms": round(float(np.median(cpu)) * 1000, 3),
                      "recall_at_10": round(recall, 4), "top1_agreement": round(top1, 4)}
    if PERSONS_ONLY:
        row["samples"] = {"p50_ms": 0.0, "p95_ms": 0.0, "cpu_p50_ms": 0.0, "recall_at_10": 1.0, "top1_agreement": 1.0, "not_measured": True}
        row["update_one_s"] = row["update_one_cpu_s"] = None
        return row
    # one new voiceprint (a new person's when n is a multiple of --per-person), through the incremental path enrolment takes
    c0, t0 = time.process_time(), time.perf_counter()
    vi.update(all_ids, all_persons, all_vectors, 1)
    row["update_one_s"], row["update_one_cpu_s"] = round(time.perf_counter() - t0, 3), round(time.process_time() - c0, 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6])
    ap.add_argument("--kinds", nargs="+", default=["auto"], help="library index kinds to measure (auto, hnsw, ivf, flat)")
    ap.add_argument("--per-person", type=int, default=5)
    ap.add_argument("--decay", type=float, default=1.0, help="spectrum of the centres (0 = isotropic)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--exact-latency-queries", type=int, default=50, help="single queries timed for exact search")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=None, help="folder to keep built indexes in (and reuse)")
    ap.add_argument("--prebuilt", type=Path, default=None,
                    help="folder for HNSW graphs built in checkpointed stages (samples_<n>.faiss, persons_<n>.faiss); resumes")
    ap.add_argument("--persons-only", action="store_true", help="with --prebuilt: measure the person set alone")
    ap.add_argument("--ef-search", type=int, default=None, help="override the library's HNSW efSearch (to choose it)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import voiceprint.index

    global PERSONS_ONLY
    PERSONS_ONLY = args.persons_only
    if args.ef_search:
        voiceprint.index.ef_search = lambda n: args.ef_search
    from voiceprint.index import HNSW_EF_CONSTRUCTION, HNSW_NEIGHBOURS, person_means

    print(machine(), flush=True)
    rows, summary = [], {}
    for n in (int(x) for x in args.sizes):
        # one voiceprint more than the set: the update measured below adds it, with no copy of the set
        all_ids, all_persons, all_vectors, centres = synthetic_library(n + 1, args.per_person, args.decay, args.seed)
        ids, person_ids, vectors = all_ids[:n], all_persons[:n], all_vectors[:n]
        queries = queries_for(centres[: int(person_ids.max())], args.queries, args.seed)
        del centres
        pids, means = person_means(person_ids, vectors)
        truth: dict = {}
        exact_rows: dict = {}
        for level, (vecs, labels) in (("samples", (vectors, ids)), ("persons", (means, pids))):
            if PERSONS_ONLY and level == "samples":
                exact_rows |= {"samples": 0.0, "samples_cpu": 0.0}
                continue
            search, t = exact(vecs, queries)
            truth[level] = labels[t]
            cpu: list[float] = []
            _, lat = latency(search, queries, limit=args.exact_latency_queries, cpu=cpu)
            exact_rows[level] = round(float(np.median(lat)) * 1000, 3)
            exact_rows[level + "_cpu"] = round(float(np.median(cpu)) * 1000, 3)
        n_persons = len(pids)
        del pids, means  # the library builds its own person set
        print(f"N={n:,} ({n_persons:,} persons): exact search p50 {exact_rows['samples']} ms (samples; CPU "
              f"{exact_rows['samples_cpu']} ms), {exact_rows['persons']} ms (persons; CPU {exact_rows['persons_cpu']} ms), one thread", flush=True)
        tag = f"n{n}_pp{args.per_person}_d{args.decay:g}_s{args.seed}_g3"
        # staged graphs are prefixes of one data set, built with one set of parameters
        prebuilt = args.prebuilt / (f"pp{args.per_person}_d{args.decay:g}_s{args.seed}_M{HNSW_NEIGHBOURS}"
                                    f"_efc{HNSW_EF_CONSTRUCTION}_fp16") if args.prebuilt else None
        for kind in args.kinds:
            r = measure(kind, (all_ids, all_persons, all_vectors), n, queries, truth, args.cache, tag, prebuilt) | {"n": n, "n_persons": n_persons,
                                                                                            "exact_p50_ms": exact_rows}
            rows.append(r)
            s, pr = r["samples"], r["persons"]
            print(f"  {kind} ({r['sample_kind']}/{r['person_kind']}): build {r['build_s']} s, {r['memory_mb']} MB; "
                  f"samples p50 {s['p50_ms']} ms (CPU {s['cpu_p50_ms']}) p95 {s['p95_ms']} ms recall@10 {s['recall_at_10']} top-1 {s['top1_agreement']}; "
                  f"persons p50 {pr['p50_ms']} ms (CPU {pr['cpu_p50_ms']}) p95 {pr['p95_ms']} ms recall@10 {pr['recall_at_10']} top-1 {pr['top1_agreement']}; "
                  f"add one voiceprint {r['update_one_s']} s (CPU {r['update_one_cpu_s']} s)", flush=True)
            if kind == args.kinds[0]:
                summary[str(n)] = {"p50_ms": max(s["p50_ms"], pr["p50_ms"]), "recall_at_10": min(s["recall_at_10"], pr["recall_at_10"]),
                                   "top1_agreement": min(s["top1_agreement"], pr["top1_agreement"]),
                                   "cpu_p50_ms": max(s["cpu_p50_ms"], pr["cpu_p50_ms"]), "load_average": os.getloadavg()[0],
                                   "index": f"{kind}: samples {r['sample_kind']}, persons {r['person_kind']}",
                                   "exact_p50_ms": exact_rows["samples"], "build_s": r["build_s"], "memory_mb": r["memory_mb"],
                                   "update_one_s": r["update_one_s"], "update_one_cpu_s": r["update_one_cpu_s"], "samples": s, "persons": pr}
        del vectors, all_vectors
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS {peak:.1f} GiB; HNSW M {HNSW_NEIGHBOURS}, efConstruction {HNSW_EF_CONSTRUCTION}, efSearch {ef_label()}; "
          f"latency on 1 FAISS thread; {args.per_person} samples per person, spectrum decay {args.decay:g}; {args.queries} queries")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": machine(), "ef_search": ef_label(), "summary": summary, "rows": rows,
                  "peak_rss_gib": round(peak, 2)}
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
