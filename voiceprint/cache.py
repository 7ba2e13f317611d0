"""A disk cache of embeddings for evaluation and experiments (never used for the library itself).

Embedding thousands of files on a CPU takes minutes; evaluations, back-end training and
benchmarks reuse the same vectors. Keys name everything that changes a vector: the model's
weights (fingerprint), the front-end version, the file's SHA-256, the channel and any channel
simulation applied (e.g. ``g711u``, ``amrnb``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

#: Bump when decoding, VAD or windowing changes in a way that changes vectors.
FRONTEND_VERSION = "2"  # 2: embedded audio keeps audio.EMBED_PAD_S of context around each segment


def cache_key(model_fingerprint: str, sha256: str, channel: int = 0, variant: str = "") -> str:
    return f"{model_fingerprint}:{FRONTEND_VERSION}:{sha256}:{channel}:{variant}"


class EmbeddingCache:
    """``cache.get(key)`` -> (vector, info) or None; ``cache.put(key, vector, info)``."""

    def __init__(self, path: str | Path):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vector BLOB NOT NULL, info TEXT NOT NULL)")

    def get(self, key: str):
        row = self.db.execute("SELECT vector, info FROM emb WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return np.frombuffer(row[0], dtype=np.float32).copy(), json.loads(row[1])

    def put(self, key: str, vector: np.ndarray, info: dict | None = None) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO emb(key, vector, info) VALUES (?, ?, ?)",
                (key, np.asarray(vector, np.float32).tobytes(), json.dumps(info or {})),
            )

    def close(self) -> None:
        self.db.close()
