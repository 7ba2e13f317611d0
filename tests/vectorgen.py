"""Persons with random unit voiceprints written straight into a library (no audio), for tests of the index and erasure."""

from __future__ import annotations

import numpy as np


def add_random_persons(lib, n: int, seed: int = 0) -> np.ndarray:
    """Persons "Person 0".."Person n-1" (ids 1..n in a new library), one random voiceprint each from a recording
    named by its index; returns the vectors (row i is person i + 1's)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, int(lib.store.get_meta("embedding_dim")))).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with lib.writing(), lib.store.transaction():
        for i, v in enumerate(vectors):
            rid = lib.store.add_recording(f"{i:064x}", 0, f"p{i}.wav", 5.0, 4.0, 16000)
            lib.store.add_voiceprint(rid, lib.store.add_person(f"Person {i}"), lib.model, v)
    return vectors
