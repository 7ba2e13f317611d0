"""FAISS indexes of voiceprints, derived from the database and persisted atomically on disk.

Two inner-product indexes per library: one row per enrolled sample (id = voiceprint id) and
one per person (id = person id, the normalised mean of their samples). Vectors are
L2-normalised, so inner product = cosine. ``index.json`` records the database generation the
files were built at; a mismatch means they are stale and get rebuilt from the database.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LibraryError

#: ``flat`` is exact (brute force); ``hnsw`` is approximate and sub-linear, for libraries of millions.
INDEX_KINDS = ("flat", "hnsw")
HNSW_NEIGHBOURS = 32
INDEX_FILES = ("samples.faiss", "persons.faiss", "index.json")


def _faiss():
    import faiss  # heavy: imported on first use only

    return faiss


def build_faiss(vectors: np.ndarray, ids: np.ndarray, kind: str = "flat"):
    """A FAISS index with our own int64 ids over L2-normalised vectors."""
    faiss = _faiss()
    if kind not in INDEX_KINDS:
        raise LibraryError(f"unknown index kind {kind!r} - use one of {', '.join(INDEX_KINDS)}")
    dim = int(vectors.shape[1])
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    else:
        inner = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = 80
        inner.hnsw.efSearch = 128
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))
    return index


def person_means(person_ids: np.ndarray, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each person's voiceprint: the normalised mean of their normalised samples."""
    if not len(person_ids):
        return np.zeros(0, np.int64), np.zeros((0, vectors.shape[1] if vectors.ndim == 2 else 0), np.float32)
    uniq, inverse = np.unique(person_ids, return_inverse=True)
    sums = np.zeros((len(uniq), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, inverse, vectors.astype(np.float64))
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return uniq.astype(np.int64), (sums / norms).astype(np.float32)


@dataclass
class VoiceIndex:
    """The sample index and the person index of one library, for one model."""

    samples: Any  # faiss index of samples
    persons: Any  # faiss index of person means
    model: str
    generation: int
    kind: str = "flat"

    @classmethod
    def build(cls, ids, person_ids, vectors, model: str, generation: int, kind: str = "flat", dim: int = 0) -> "VoiceIndex":
        if vectors.size == 0:
            vectors = np.zeros((0, dim or 1), np.float32)
        pids, means = person_means(person_ids, vectors)
        return cls(build_faiss(vectors, ids, kind), build_faiss(means, pids, kind), model, generation, kind)

    @property
    def size(self) -> int:
        return int(self.samples.ntotal)

    def search_samples(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search(self.samples, query, k)

    def search_persons(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self._search(self.persons, query, k)

    @staticmethod
    def _search(index, query: np.ndarray, k: int):
        q = np.ascontiguousarray(np.atleast_2d(query), dtype=np.float32)
        k = max(1, min(k, int(index.ntotal)))
        if index.ntotal == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        scores, ids = index.search(q, k)
        return scores, ids

    # -- persistence ------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write both indexes and ``index.json`` atomically (temp file, fsync, rename); 0600.

        Temp files left by a writer killed mid-save are removed first (the caller holds the
        library's write lock, so no other save is under way)."""
        faiss = _faiss()
        folder = Path(folder)
        for name in INDEX_FILES:
            for stale in folder.glob(f".{name}.*.tmp"):
                stale.unlink(missing_ok=True)
        for name, index in zip(INDEX_FILES, (self.samples, self.persons)):
            _atomic_write(folder / name, faiss.serialize_index(index).tobytes())
        meta = {"model": self.model, "generation": self.generation, "kind": self.kind,
                "samples": int(self.samples.ntotal), "persons": int(self.persons.ntotal)}
        # index.json goes last: it is what declares the pair of files valid.
        _atomic_write(folder / "index.json", json.dumps(meta, indent=2).encode())

    @staticmethod
    def saved_generation(folder: Path) -> int | None:
        """The database generation the persisted index was built at (reads index.json only)."""
        try:
            return int(json.loads((Path(folder) / "index.json").read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, folder: Path) -> "VoiceIndex | None":
        """The persisted index, or None if absent or unreadable (the caller rebuilds)."""
        folder = Path(folder)
        try:
            meta = json.loads((folder / "index.json").read_text())
            faiss = _faiss()
            samples = faiss.deserialize_index(np.fromfile(folder / "samples.faiss", dtype=np.uint8))
            persons = faiss.deserialize_index(np.fromfile(folder / "persons.faiss", dtype=np.uint8))
        except (OSError, ValueError, RuntimeError, KeyError):
            return None
        if samples.ntotal != meta.get("samples") or persons.ntotal != meta.get("persons"):
            return None
        return cls(samples, persons, meta["model"], int(meta["generation"]), meta.get("kind", "flat"))


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
