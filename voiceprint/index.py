"""Voiceprint indexes, derived from the database, updated in place and persisted atomically on disk.

Two inner-product vector sets per library: one row per enrolled sample (id = voiceprint id) and
one per person (id = person id, the normalised mean of their samples). Vectors are
L2-normalised, so inner product = cosine. ``index.json`` records the database generation the
files were built at; a mismatch means they are behind and get brought up to date.

Kinds, chosen by measurement (docs/benchmarks.md, ``scripts/bench_search.py``): ``flat`` is
exact brute force; ``hnsw`` is a FAISS HNSW graph over fp16-stored vectors in huge pages (M 32, efConstruction
160, efSearch by set size: ``ef_search``), chosen for recall@10 >= 0.99 at 8-10 CPU-ms per query
at 10^6 voiceprints where exact search takes 40-170 ms and grows linearly; ``auto`` (the
default) keeps a set exact below ``AUTO_HNSW_FROM`` entries and switches it to HNSW once, when
it grows past that. IVF was measured and rejected: at recall@10 0.99 it must scan a quarter
of the lists.

Updates are incremental (``VoiceIndex.update``): new voiceprints are added to the graph,
removed ones are masked out of every search (HNSW cannot delete), and a person whose samples
changed gets a fresh mean. A set is compacted when a fifth of its entries are masked.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LibraryError
from .fsutil import write_atomic

log = logging.getLogger(__name__)

INDEX_KINDS = ("auto", "flat", "hnsw", "ivf")
DEFAULT_KIND = "auto"
HNSW_NEIGHBOURS = 32
#: a better-built graph needs a lower efSearch for the same recall (384 -> 256 at 10^5 against 40; docs/benchmarks.md 3b)
HNSW_EF_CONSTRUCTION = 160
#: efSearch for recall@10 >= 0.99 rises with the set's size (docs/benchmarks.md 3b): samples need ~260 at
#: 10^5, 768 at 3x10^5 (0.995), ~1100 at 5x10^5 (1024: 0.990) and 1792 at 10^6 (0.991); 2x10^5 persons
#: need 768 (512: 0.984). ``ef_search`` = this floor, or HNSW_EF_SEARCH_1E6 x (n / 10^6)^0.75 above it.
HNSW_EF_SEARCH = 768
HNSW_EF_SEARCH_1E6 = 1792
#: entries at which ``auto`` turns a set from exact search into HNSW (exact search is ~5 ms here)
AUTO_HNSW_FROM = 50_000
#: entries at which ``auto`` turns HNSW into IVF: a graph of 2x10^6 takes an hour to build on two cores
#: (10^7: ~5 h), an inverted file minutes (10^7: 2 min), and both answer a query within 100 ms there
#: (docs/benchmarks.md 3c). Below it HNSW is faster (10^6: 8 ms against ~12 ms at recall 0.99).
AUTO_IVF_FROM = 2_000_000
#: IVF: lists ~2.6 sqrt(n) (a power of two), trained on up to this many samples per list ...
IVF_TRAIN_PER_LIST = 40
#: ... and an eighth of them probed per query: recall@10 0.993 at 10^7 (8,192 lists, 1,024 probed)
IVF_PROBE_SHARE = 1 / 8
#: compact a set (rebuild from its live vectors) when this share of its entries is masked out
COMPACT_DEAD_SHARE = 0.2
INDEX_FILES = ("samples.faiss", "persons.faiss", "index.json")  # the names before each save wrote a set of its own
#: the data files of one saved index, by role: ``index.json`` names the set it declares valid (before session 18
#: there was one set, under these names; each save now writes its own, ``samples.<tag>.faiss`` ...)
DATA_FILES = {"samples": "samples.faiss", "persons": "persons.faiss", "sample_persons": "sample_persons.npz"}
_FORMAT = 2  # 2: VectorSet files (npz of FAISS bytes + ids + live mask); 1 was a bare IndexIDMap2


def _faiss():
    import faiss  # heavy: imported on first use only

    return faiss


def _resolve(kind: str, n: int) -> str:
    if kind not in INDEX_KINDS:
        raise LibraryError(f"unknown index kind {kind!r} - use one of {', '.join(INDEX_KINDS)}")
    if kind == "auto":
        return "ivf" if n >= AUTO_IVF_FROM else "hnsw" if n >= AUTO_HNSW_FROM else "flat"
    return kind


_RANK = {"flat": 0, "hnsw": 1, "ivf": 2}  # auto only moves up: a set compacted after deletions keeps its kind


def ivf_lists(n: int) -> int:
    """Inverted lists for a set of ``n`` entries: a power of two near 2.6 sqrt(n), at least 64, and no
    more than ``IVF_TRAIN_PER_LIST`` samples can train (a tiny set gets fewer lists, down to one)."""
    return max(1, min(1 << max(6, round(math.log2(2.6 * math.sqrt(max(n, 1))))), n // IVF_TRAIN_PER_LIST))


def _new_faiss(kind: str, dim: int, train: np.ndarray | None = None):
    faiss = _faiss()
    if kind == "flat":
        return faiss.IndexFlatIP(dim)
    if kind == "ivf":
        return _new_ivf(dim, train if train is not None else np.zeros((0, dim), np.float32))
    # fp16 vectors: half the memory traffic per distance (a query is bound by cache misses), cosine error ~1e-3
    index = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    index.hnsw.efSearch = HNSW_EF_SEARCH
    return index


#: HNSW sets from this size get their graph and vectors in 2 MB pages (``_huge_pages``)
HUGE_PAGES_FROM = 100_000


def _huge_pages(index) -> None:
    """Move an HNSW index's neighbour lists and vectors into transparent huge pages, best effort (Linux 6.1+).

    A query visits a few thousand random nodes of a graph far larger than the caches; with 4 KB
    pages nearly every visit also misses the TLB. MADV_COLLAPSE (synchronous: ~1 s per 10^6
    entries) made 10^6-sample queries ~20 % faster here (docs/benchmarks.md 3b)."""
    import ctypes
    import mmap
    import sys

    if sys.platform != "linux":
        return
    faiss = _faiss()
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for vec in (faiss.downcast_index(index.storage).codes, index.hnsw.neighbors):
            arr = faiss.rev_swig_ptr(vec.data(), vec.size())
            start = (arr.ctypes.data + (1 << 21) - 1) & ~((1 << 21) - 1)
            end = (arr.ctypes.data + arr.nbytes) & ~((1 << 21) - 1)
            if end > start:
                madvise(start, end - start, getattr(mmap, "MADV_HUGEPAGE", 14))
                madvise(start, end - start, 25)  # MADV_COLLAPSE; an older kernel answers EINVAL
    except (AttributeError, OSError, RuntimeError, TypeError):
        pass


def _new_ivf(dim: int, vectors: np.ndarray):
    """An inverted file of fp16 vectors, its lists found by k-means on a fixed sample of ``vectors``
    (the same vectors give the same lists) and chosen per query by a small HNSW graph of their centres."""
    faiss = _faiss()
    nlist = ivf_lists(len(vectors))
    quantizer = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    index.by_residual = False  # fp16 of the vectors themselves: the same codes whatever the lists
    index.set_direct_map_type(faiss.DirectMap.Array)  # reconstruct by position, as the other kinds do
    if nlist == 1:  # a tiny set: one list, nothing to cluster
        quantizer.add(np.zeros((1, dim), np.float32))
        index.is_trained = True
    else:
        take = IVF_TRAIN_PER_LIST * nlist
        sample = vectors[np.sort(np.random.default_rng(0).choice(len(vectors), take, replace=False))]
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.nprobe = ivf_probes(index.nlist)
    return index


def ivf_probes(nlist: int) -> int:
    """Lists probed per query: an eighth, and every one of a small set's first 16 (exact there)."""
    return max(min(nlist, 16), int(nlist * IVF_PROBE_SHARE))


def ef_search(n: int) -> int:
    """The HNSW efSearch for a set of ``n`` entries."""
    return max(HNSW_EF_SEARCH, int(HNSW_EF_SEARCH_1E6 * (n / 1e6) ** 0.75))


class VectorSet:
    """One searchable set: a FAISS index labelled by insertion position, our id per position, a live mask.

    Positions instead of FAISS ids let HNSW (which cannot delete) drop and replace entries: the
    old position is masked out of searches with a bitmap selector and the new vector appended."""

    def __init__(self, index, ids: np.ndarray, live: np.ndarray, kind: str, requested: str):
        self.index = index
        self.ids = np.asarray(ids, np.int64)
        self.live = np.asarray(live, bool)
        self.kind = kind  # what the FAISS index is: flat or hnsw
        self.requested = requested  # what was asked for: auto, flat or hnsw
        self._bitmap: np.ndarray | None = None
        if kind == "hnsw" and index.ntotal >= HUGE_PAGES_FROM:
            _huge_pages(index)

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray, requested: str = DEFAULT_KIND, dim: int = 0,
              at_least: str = "flat") -> VectorSet:
        """``at_least``: the kind ``auto`` may not go below (a compacted set is not rebuilt as a slower-to-build kind)."""
        dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else dim
        kind = _resolve(requested, len(ids))
        if requested == "auto" and _RANK[at_least] > _RANK[kind]:
            kind = at_least
        index = _new_faiss(kind, dim or 1, vectors if kind == "ivf" else None)
        if len(ids):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, np.asarray(ids, np.int64), np.ones(len(ids), bool), kind, requested)

    @property
    def ntotal(self) -> int:
        return int(np.count_nonzero(self.live))  # per query: 8x faster than sum() over 10^6 bools

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def live_ids(self) -> np.ndarray:
        return self.ids[self.live]

    def vectors(self) -> np.ndarray:
        """The live vectors, in live-id order (HNSW and IVF keep them as fp16: exact to ~1e-3)."""
        if not len(self.ids):
            return np.zeros((0, self.dim), np.float32)
        return self.index.reconstruct_n(0, len(self.ids))[self.live]

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if not len(ids):
            return
        n_after = self.ntotal + len(ids)
        if _RANK[_resolve(self.requested, n_after)] > _RANK[self.kind] or (  # auto crossed a threshold: once
                self.kind == "ivf" and ivf_lists(n_after) >= 4 * self.index.nlist):  # the lists were made for a 16x smaller set
            self._rebuild(np.concatenate([self.vectors(), vectors]), np.concatenate([self.live_ids(), ids]))
            return
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self.live = np.concatenate([self.live, np.ones(len(ids), bool)])
        self._bitmap = None

    def remove(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        gone = self.live & np.isin(self.ids, ids)
        self.live &= ~gone
        self._bitmap = None
        if len(self.live) and 1 - self.live.mean() > COMPACT_DEAD_SHARE:
            self._rebuild(self.vectors(), self.live_ids())
        else:
            self._wipe(np.flatnonzero(gone))

    def _wipe(self, positions: np.ndarray) -> None:
        """Zero the stored vectors at ``positions`` (masked out): an erased voiceprint must not stay in the
        index file. HNSW still walks through a zeroed node; at a fifth of them zeroed, recall@10 went from
        0.998 to 0.996 (60,000 samples)."""
        if not len(positions):
            return
        faiss = _faiss()
        if self.kind == "ivf":
            invlists, blank = self.index.invlists, np.zeros(self.index.code_size, np.uint8)
            for pos in positions:
                key = int(self.index.direct_map.get(int(pos)))  # list number << 32 | offset in the list
                invlists.update_entry(key >> 32, key & 0xFFFFFFFF, int(pos), faiss.swig_ptr(blank))
            return
        store = self.index if self.kind == "flat" else faiss.downcast_index(self.index.storage)
        codes = faiss.rev_swig_ptr(store.codes.data(), store.codes.size())
        codes.reshape(store.ntotal, store.code_size)[positions] = 0

    def _rebuild(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        fresh = VectorSet.build(vectors, ids, self.requested, self.dim, at_least=self.kind)
        self.index, self.ids, self.live, self.kind, self._bitmap = fresh.index, fresh.ids, fresh.live, fresh.kind, None

    def search(self, query: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        n = self.ntotal
        if n == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        k = max(1, min(k, n))
        sel = None
        if n < len(self.live):
            if self._bitmap is None:
                self._bitmap = np.packbits(self.live, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(self.live), faiss.swig_ptr(self._bitmap))
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(ef or ef_search(len(self.live)), k)
        elif self.kind == "ivf":
            params = faiss.SearchParametersIVF()
            params.nprobe = ivf_probes(self.index.nlist)
            coarse = faiss.SearchParametersHNSW()
            coarse.efSearch = max(64, params.nprobe * 3 // 2)  # the graph of list centres must return nprobe good ones
            params.quantizer_params = coarse
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        scores, labels = self.index.search(q, k, params=params)
        return scores, np.where(labels >= 0, self.ids[np.maximum(labels, 0)], -1)

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, faiss=_faiss().serialize_index(self.index), ids=self.ids, live=self.live,
                 kind=np.array(self.kind), requested=np.array(self.requested), format=np.array(_FORMAT))
        return buf.getvalue()

    @classmethod
    def from_file(cls, path: Path) -> VectorSet:
        with np.load(path, allow_pickle=False) as z:
            if int(z["format"]) != _FORMAT:
                raise ValueError("index file format")
            if "backend" in z.files:  # the set lives in Milvus; the file says where
                milvus = MilvusSet(str(z["uri"]), str(z["collection"]), int(z["dim"]), str(z["requested"]))
                if not milvus.client.has_collection(milvus.collection):  # dropped on the server: a missing index, rebuilt
                    raise ValueError(f"Milvus collection {milvus.collection} is gone")
                return milvus  # type: ignore[return-value]
            index = _faiss().deserialize_index(z["faiss"])
            vs = cls(index, z["ids"], z["live"], str(z["kind"]), str(z["requested"]))
        if index.ntotal != len(vs.ids) or len(vs.live) != len(vs.ids):
            raise ValueError("index file is inconsistent")
        if vs.kind == "hnsw":
            index.hnsw.efSearch = ef_search(len(vs.ids))
        elif vs.kind == "ivf":
            index.nprobe = ivf_probes(index.nlist)
        return vs


MEANS_BLOCK = 1 << 18  # samples summed at a time by ``person_means``


def person_means(person_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each person's voiceprint: the normalised mean of their normalised samples."""
    person_ids = np.asarray(person_ids)
    if not len(person_ids):
        return np.zeros(0, np.int64), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    order = np.argsort(person_ids, kind="stable")
    sorted_ids = person_ids[order]
    first = np.r_[True, sorted_ids[1:] != sorted_ids[:-1]]
    group = np.cumsum(first) - 1  # each sorted row's person, 0..persons-1
    sums = np.zeros((int(group[-1]) + 1, vectors.shape[1]), np.float64)
    for a in range(0, len(order), MEANS_BLOCK):  # in blocks: a float64 copy of 10^7 vectors would take 15 GB
        g = group[a:a + MEANS_BLOCK]
        local = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
        sums[g[local]] += np.add.reduceat(vectors[order[a:a + MEANS_BLOCK]].astype(np.float64), local, axis=0)
    starts = np.flatnonzero(first)
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return sorted_ids[starts].astype(np.int64), (sums / norms).astype(np.float32)


@dataclass
class VoiceIndex:
    """The sample set and the person set of one library, for one model."""

    samples: VectorSet
    persons: VectorSet
    model: str
    generation: int
    kind: str = DEFAULT_KIND
    sample_persons: np.ndarray | None = None  # person id of each live sample, in ``samples.live_ids()`` order

    @classmethod
    def build(cls, ids, person_ids, vectors, model: str, generation: int, kind: str = DEFAULT_KIND, dim: int = 0,
              backend: dict | None = None, folder: Path | None = None) -> VoiceIndex:
        """Both sets from the database's content; in FAISS, or in Milvus when ``backend`` says so
        (``folder``, the library's, names its collections)."""
        _resolve(kind, 0)
        if vectors.size == 0:
            vectors = np.zeros((0, dim or 1), np.float32)
        ids, person_ids = np.asarray(ids, np.int64), np.asarray(person_ids, np.int64)
        pids, means = person_means(person_ids, vectors)
        if backend and backend.get("backend") == "milvus":
            if folder is None:
                raise LibraryError("a Milvus-backed index needs its library folder")
            sets = [MilvusSet.build(backend["uri"], collection_name(folder, model, level), v, i, kind, dim)
                    for level, v, i in (("samples", vectors, ids), ("persons", means, pids))]
            return cls(sets[0], sets[1], model, generation, kind, person_ids.copy())  # type: ignore[arg-type]
        return cls(VectorSet.build(vectors, ids, kind, dim), VectorSet.build(means, pids, kind, dim), model, generation, kind,
                   person_ids.copy())

    def add_sample(self, sample_id: int, person_id: int, vector: np.ndarray, person_vectors: np.ndarray, generation: int) -> None:
        """One new sample of ``person_id``, whose samples (this one among them) are ``person_vectors``: added, and the
        person's mean replaced, at a cost that does not grow with the library (:meth:`update` passes over every id)."""
        self.samples.add(np.asarray(vector, np.float32)[None], np.array([sample_id], np.int64))
        if self.sample_persons is not None:
            self.sample_persons = np.append(self.sample_persons, np.int64(person_id))
        pids, means = person_means(np.full(len(person_vectors), person_id, np.int64), np.asarray(person_vectors, np.float32))
        self.persons.remove(np.array([person_id], np.int64))
        self.persons.add(means, pids)
        self.generation = generation

    def update(self, ids, person_ids, vectors, generation: int) -> VoiceIndex:
        """Bring the index to the database's content (all its ids and persons) by changing only what changed.

        ``vectors``: the vectors of ``ids`` (an aligned array), or a function that returns the
        vectors of the sample ids it is given, so that a library reads (and checks) only the rows
        the update uses. Samples not indexed yet are added, samples gone are masked out, and every
        person who gained, lost or moved a sample gets a fresh mean; cost is proportional to the
        change (plus one pass over the id arrays), never a rebuild of the graph."""
        ids, person_ids = np.asarray(ids, np.int64), np.asarray(person_ids, np.int64)
        order = np.argsort(ids)
        sorted_ids, sorted_persons = ids[order], person_ids[order]
        old_ids = self.samples.live_ids()
        if len(sorted_ids):
            at = np.clip(np.searchsorted(sorted_ids, old_ids), 0, len(sorted_ids) - 1)
            found = sorted_ids[at] == old_ids
            now_persons = sorted_persons[at]
        else:
            found, now_persons = np.zeros(len(old_ids), bool), np.zeros(len(old_ids), np.int64)
        old_persons = self.sample_persons
        if old_persons is None or len(old_persons) != len(old_ids):  # ownership unknown (older file): refresh everyone
            old_persons, refresh_all = now_persons, True
        else:
            refresh_all = False
        moved = found & (now_persons != old_persons)
        new = ~np.isin(ids, old_ids)
        touched = np.unique(person_ids) if refresh_all else np.unique(np.concatenate(
            [old_persons[~found | moved], now_persons[moved], person_ids[new]]))
        mask = np.isin(person_ids, touched) if len(touched) else np.zeros(len(ids), bool)
        if callable(vectors):  # the touched persons' rows only; the new samples are among them
            vectors_mask = np.asarray(vectors(ids[mask]))
            vectors_new = vectors_mask[new[mask]]
        else:
            vectors = np.asarray(vectors)
            vectors_new, vectors_mask = vectors[new], vectors[mask]
        self.samples.remove(old_ids[~found])
        self.samples.add(vectors_new, ids[new])
        if len(touched):
            pids, means = person_means(person_ids[mask], vectors_mask)
            self.persons.remove(touched)
            self.persons.add(means, pids)
        live = self.samples.live_ids()
        self.sample_persons = sorted_persons[np.searchsorted(sorted_ids, live)] if len(live) else np.zeros(0, np.int64)
        self.generation = generation
        return self

    @property
    def size(self) -> int:
        return self.samples.ntotal

    def sample_ids(self) -> np.ndarray:
        return self.samples.live_ids()

    def search_samples(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.samples.search(query, k)

    def search_persons(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.persons.search(query, k)

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write both sets and ``index.json`` (each atomically: temp file, fsync, rename; 0600).

        Each save writes a set of files of its own and ``index.json``, written last, names it: a writer
        killed part-way leaves the previous set whole and in force (an index one save behind, which the
        next writer brings forward), never new files beside an old ``index.json``. The files of earlier
        sets, and temp files a killed save left, go once ``index.json`` names the new set (the caller
        holds the library's write lock, so no other save is under way)."""
        import secrets

        folder = Path(folder)
        tag = secrets.token_hex(4)
        names = {role: f"{Path(name).stem}.{tag}{Path(name).suffix}" for role, name in DATA_FILES.items()}
        persons = self.sample_persons if self.sample_persons is not None else np.zeros(0, np.int64)
        buf = io.BytesIO()
        np.savez(buf, persons=persons)
        write_atomic(folder / names["samples"], self.samples.to_bytes())
        write_atomic(folder / names["persons"], self.persons.to_bytes())
        write_atomic(folder / names["sample_persons"], buf.getvalue())
        meta = {"model": self.model, "generation": self.generation, "kind": self.kind, "format": _FORMAT,
                "samples": self.samples.ntotal, "persons": self.persons.ntotal,
                "sample_kind": self.samples.kind, "person_kind": self.persons.kind, "files": names}
        if isinstance(self.samples, MilvusSet):
            meta["milvus"] = {"uri": self.samples.uri, "collections": [self.samples.collection, self.persons.collection]}
        # index.json goes last: it is what declares the set of files valid.
        write_atomic(folder / "index.json", json.dumps(meta, indent=2).encode())
        for stale in _index_data_files(folder):  # earlier sets (an erased voice's bytes with them) and killed saves' temp files
            if stale.name not in names.values():
                stale.unlink(missing_ok=True)

    @staticmethod
    def saved_generation(folder: Path) -> int | None:
        """The database generation the persisted index was built at (reads index.json only)."""
        try:
            return int(json.loads((Path(folder) / "index.json").read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: Path) -> VoiceIndex | None:
        """The persisted index, or None if absent, unreadable or of an older format (the caller rebuilds)."""
        folder = Path(folder)
        for _ in range(3):  # a writer's save removed the set index.json named a moment ago: read the one it names now
            before = _text_or_none(folder / "index.json")
            loaded = cls._load(folder)
            if loaded is not None or _text_or_none(folder / "index.json") == before:
                return loaded
        return None

    @classmethod
    def _load(cls, folder: Path) -> VoiceIndex | None:
        try:
            meta = json.loads((folder / "index.json").read_text())
            if meta.get("format") != _FORMAT:
                return None
            names = meta.get("files") or DATA_FILES  # an index saved before each save wrote its own set
            samples = VectorSet.from_file(folder / names["samples"])
            persons = VectorSet.from_file(folder / names["persons"])
            try:
                with np.load(folder / names["sample_persons"], allow_pickle=False) as z:
                    sample_persons = z["persons"].astype(np.int64)
            except (OSError, ValueError, KeyError):
                sample_persons = None  # update() then refreshes every person once
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, EOFError, zipfile.BadZipFile):  # damaged: rebuilt
            return None
        if samples.ntotal != meta.get("samples") or persons.ntotal != meta.get("persons"):
            return None
        if _location(samples) != read_backend(folder):  # index_backend.json was pointed elsewhere: rebuilt there
            log.info("the index is not where %s says: rebuilding it there from the database", BACKEND_FILE)
            return None
        return cls(samples, persons, meta["model"], int(meta["generation"]), meta.get("kind", DEFAULT_KIND), sample_persons)


def _text_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def index_files(folder: Path) -> list[str]:
    """The files of the index saved in ``folder``: ``index.json`` and the set it names (none without an index)."""
    try:
        meta = json.loads((Path(folder) / "index.json").read_text())
    except (OSError, ValueError):
        return []
    names = meta.get("files") if isinstance(meta, dict) else None
    return ["index.json", *(names or DATA_FILES).values()]


def _index_data_files(folder: Path) -> list[Path]:
    """Every index data file in ``folder`` of any set, and the temp files of saves (``.samples.x.faiss.1a2b.tmp``)."""
    found: list[Path] = []
    for name in DATA_FILES.values():
        stem, suffix = Path(name).stem, Path(name).suffix
        found += [*folder.glob(f"{stem}{suffix}"), *folder.glob(f"{stem}.*{suffix}"), *folder.glob(f".{stem}*.tmp")]
    found += list(folder.glob(".index.json.*.tmp"))
    return found


# -- where the vectors live: FAISS files in the library folder (default) or a Milvus server ---------
BACKEND_FILE = "index_backend.json"
BACKENDS = ("faiss", "milvus")
_MILVUS_CLIENTS: dict = {}
MILVUS_CONNECT_TIMEOUT_S = 120  # Milvus Lite starts its server on first use: slow on a loaded machine


def _location(vectors) -> dict:
    """Where a loaded vector set lives, in ``read_backend``'s terms."""
    return {"backend": "milvus", "uri": vectors.uri} if isinstance(vectors, MilvusSet) else {"backend": "faiss"}


def read_backend(folder: Path) -> dict:
    """The library's vector backend: ``{"backend": "faiss"}`` or ``{"backend": "milvus", "uri": ...}``.

    Written once, when the library is created (``Library.create``); a library without the file uses
    FAISS files, whatever the environment says: an existing library's voiceprints never move to a
    Milvus server unasked. The Milvus token, if any, comes from ``$VOICEPRINT_MILVUS_TOKEN``, never a file."""
    try:
        cfg = json.loads((Path(folder) / BACKEND_FILE).read_text())
    except FileNotFoundError:
        return {"backend": "faiss"}
    except (OSError, ValueError) as exc:
        raise LibraryError(f"{Path(folder) / BACKEND_FILE} is unreadable ({exc}) - restore it from backup or remove it to use FAISS files") from exc
    if cfg.get("backend") not in BACKENDS or (cfg["backend"] == "milvus" and not cfg.get("uri")):
        raise LibraryError(f"{Path(folder) / BACKEND_FILE}: backend must be faiss, or milvus with a uri - fix or remove the file")
    return cfg


def write_backend(folder: Path, backend: str, uri: str | None = None) -> dict:
    """Record where a new library keeps its vectors (0600, atomically); checks Milvus answers first."""
    if backend not in BACKENDS:
        raise LibraryError(f"unknown index backend {backend!r} - use one of {', '.join(BACKENDS)}")
    if backend == "milvus":
        if not uri:
            raise LibraryError("--index milvus needs --milvus-uri (a Milvus server URL, or a local file.db for embedded Milvus Lite)")
        if "://" not in uri:  # a Milvus Lite file: kept absolute, so every command finds it from any working folder
            uri = str(Path(uri).expanduser().resolve())
        _milvus(uri)
    cfg = {"backend": backend} | ({"uri": uri} if uri else {})
    write_atomic(Path(folder) / BACKEND_FILE, json.dumps(cfg, indent=2).encode())
    return cfg


def _milvus(uri: str):
    """One client per URI (Milvus Lite starts a local server per file: seconds)."""
    if uri not in _MILVUS_CLIENTS:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise LibraryError("this library keeps its vectors in Milvus: install pymilvus (`make install`)") from exc
        # Milvus Lite keeps no server-side read timestamp: every id listing warned so, on every command
        logging.getLogger("pymilvus.orm.iterator").setLevel(logging.ERROR)
        local = "://" not in uri
        if local:
            Path(uri).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            _milvus_lite_logs(Path(uri).parent)
        try:
            client = MilvusClient(uri, token=os.environ.get("VOICEPRINT_MILVUS_TOKEN", ""), timeout=MILVUS_CONNECT_TIMEOUT_S)
        except Exception as exc:  # pymilvus raises its own and gRPC errors
            raise LibraryError(f"cannot reach Milvus at {uri}: {exc.__class__.__name__} - start it or fix --milvus-uri") from exc
        if local and Path(uri).exists():
            os.chmod(uri, 0o600)  # biometric data: the embedded database file is private like library.sqlite
        _MILVUS_CLIENTS[uri] = client
    return _MILVUS_CLIENTS[uri]


def _milvus_lite_logs(folder: Path) -> None:
    """Milvus Lite's server logs (glog) go to a private folder beside its database, errors only.

    By default each start left a log file in /tmp, readable by the server's user, naming the
    library's collections: thousands a year, on the system volume rather than the one the
    centre chose for its data. The environment is read once, by the first server this process
    starts; a ``GLOG_*`` setting of the administrator's own wins."""
    logs = folder / "milvus_logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("GLOG_log_dir", str(logs))
    os.environ.setdefault("GLOG_minloglevel", "2")  # 2 = ERROR: INFO and WARNING lines would make a file per start


def close_milvus_clients() -> None:
    """Close every Milvus client this process opened (their gRPC threads too): before the process forks
    something else, such as Spark's Java gateway, and at the end of a test module."""
    while _MILVUS_CLIENTS:
        _, client = _MILVUS_CLIENTS.popitem()
        with contextlib.suppress(Exception):  # closing must not hide what the caller was doing
            client.close()


def drop_collections(uri: str, collections: list[str]) -> list[str]:
    """Drop these Milvus collections where they exist; the names dropped."""
    client = _milvus(uri)
    gone = [c for c in collections if client.has_collection(c)]
    for c in gone:
        client.drop_collection(c)
    return gone


def erase_deleted_vectors(folder: Path) -> bool:
    """After an erasure, make sure no file of the library's vector backend keeps a deleted vector; True
    when a file was rewritten.

    FAISS sets zero what they mask (``VectorSet.remove``). Milvus Lite keeps deleted entities' bytes in
    its SQLite file and cannot compact (``compact`` is unimplemented): the file is rewritten with its live
    rows (VACUUM), with this process's Milvus Lite server stopped and its lock held, so none runs on it
    meanwhile; the next use starts it again. A Milvus server compacts on its own schedule (docs/scale.md)."""
    backend = read_backend(folder)
    if backend["backend"] != "milvus" or "://" in backend["uri"]:
        return False
    import fcntl
    import sqlite3

    from milvus_lite.server_manager import server_manager_instance

    uri = backend["uri"]
    client = _MILVUS_CLIENTS.pop(uri, None)
    if client is not None:
        client.close()
    server_manager_instance.release_server(uri)  # its server process ends once the lock is released
    with open(Path(uri).with_name(f".{Path(uri).name}.lock"), "a") as lock:
        try:
            fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise LibraryError(f"{uri} is open in another process, so the deleted voiceprints' bytes are still in it - "
                               "stop that process and run `voiceprint index rebuild`") from exc
        db = sqlite3.connect(uri)
        try:
            db.execute("VACUUM")
        finally:
            db.close()
    return True


def collection_name(folder: Path, model: str, level: str) -> str:
    """A Milvus collection per library, model and level (letters, digits, underscores)."""
    import hashlib

    digest = hashlib.sha256(f"{Path(folder).resolve()}|{model}".encode()).hexdigest()[:16]
    return f"vp_{digest}_{level}"


class MilvusSet:
    """A vector set kept in a Milvus collection; same interface as ``VectorSet``.

    Milvus deletes and upserts by primary key, so no live mask is needed; the collection is
    created with strong consistency so a search sees every write before it."""

    kind = "milvus"

    def __init__(self, uri: str, collection: str, dim: int, requested: str = DEFAULT_KIND):
        self.uri, self.collection, self._dim, self.requested = uri, collection, int(dim), requested
        _milvus(uri)  # answers, or one line

    @property
    def client(self):
        """This process's client for the URI (a new one after ``erase_deleted_vectors`` restarted Milvus Lite)."""
        return _milvus(self.uri)

    @classmethod
    def build(cls, uri: str, collection: str, vectors: np.ndarray, ids: np.ndarray, requested: str, dim: int) -> MilvusSet:
        from pymilvus import DataType, MilvusClient

        dim = int(vectors.shape[1]) if vectors.ndim == 2 and vectors.shape[1] else dim
        client = _milvus(uri)
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim or 1)
        params = client.prepare_index_params()
        if "://" in uri:  # a server: HNSW as measured for FAISS
            params.add_index(field_name="vector", index_type="HNSW", metric_type="IP",
                             params={"M": HNSW_NEIGHBOURS, "efConstruction": HNSW_EF_CONSTRUCTION})
        else:  # Milvus Lite (tests, one machine) indexes FLAT
            params.add_index(field_name="vector", index_type="FLAT", metric_type="IP")
        client.create_collection(collection, schema=schema, index_params=params, consistency_level="Strong")
        vs = cls(uri, collection, dim or 1, requested)
        vs.add(vectors, ids)
        return vs

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ntotal(self) -> int:
        rows = self.client.query(self.collection, filter="", output_fields=["count(*)"])
        return int(rows[0]["count(*)"]) if rows else 0

    def live_ids(self) -> np.ndarray:
        out: list[int] = []
        it = self.client.query_iterator(self.collection, batch_size=10_000, filter="id >= 0 or id < 0", output_fields=["id"])
        try:
            while batch := it.next():
                out.extend(int(r["id"]) for r in batch)
        finally:
            it.close()
        return np.array(sorted(out), np.int64)

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.asarray(vectors, np.float32)
        for start in range(0, len(ids), 5_000):
            rows = [{"id": int(i), "vector": v.tolist()} for i, v in zip(ids[start:start + 5_000], vectors[start:start + 5_000], strict=True)]
            self.client.upsert(self.collection, rows)

    def remove(self, ids: np.ndarray) -> None:
        keys = [int(i) for i in ids]
        for start in range(0, len(keys), 5_000):
            self.client.delete(self.collection, ids=keys[start:start + 5_000])

    def search(self, query: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        n = self.ntotal
        if n == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        k = max(1, min(k, n))
        params = {"metric_type": "IP"} | ({"params": {"ef": max(ef or ef_search(n), k)}} if "://" in self.uri else {})
        hits = self.client.search(self.collection, data=q.tolist(), limit=k, search_params=params, output_fields=["id"])
        scores = np.full((len(q), k), -np.inf, np.float32)
        labels = np.full((len(q), k), -1, np.int64)
        for row, found in enumerate(hits):
            for col, h in enumerate(found[:k]):
                scores[row, col], labels[row, col] = h["distance"], h["id"]
        return scores, labels

    def to_bytes(self) -> bytes:
        """What the library folder keeps for a Milvus set: where it is, not the vectors."""
        buf = io.BytesIO()
        np.savez(buf, backend=np.array("milvus"), uri=np.array(self.uri), collection=np.array(self.collection),
                 dim=np.array(self._dim), requested=np.array(self.requested), format=np.array(_FORMAT))
        return buf.getvalue()
