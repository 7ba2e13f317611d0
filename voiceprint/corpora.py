"""Labelled corpora for the evaluation scripts (diarisation, quality gates, case linking, back-end fitting).

Real speech from ``../shared/data`` (``$VOICEPRINT_SHARED_DATA``) only; speakers are split once, deterministically, into a
development half (thresholds are chosen there) and a test half (figures are reported there).
Embeddings go through the shared :class:`voiceprint.cache.EmbeddingCache`, so nothing is
embedded twice across runs or colleagues.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

from .errors import DataError

SPLIT_SEED = 20260611
DEV_SPEAKERS = 50


def shared_data_dir() -> Path:
    """The labelled corpora: ``$VOICEPRINT_SHARED_DATA``, else ``../shared/data`` beside the project."""
    env = os.environ.get("VOICEPRINT_SHARED_DATA")
    folder = Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"
    if not folder.is_dir():
        raise DataError(f"{folder}: no corpora folder - set VOICEPRINT_SHARED_DATA to the folder holding the corpus manifests")
    return folder


def manifest(corpus: str = "speechocean762") -> dict[str, list[dict]]:
    """speaker -> rows (sorted by path) with an absolute ``file``."""
    folder = shared_data_dir() / corpus
    out: dict[str, list[dict]] = {}
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            row["file"] = str(folder / row["path"])
            out.setdefault(row["speaker"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: r["path"])
    return out


def split_speakers(speakers, split: str = "hash") -> tuple[list[str], list[str]]:
    """(dev, test). Default: the project's speaker-disjoint split (``voiceprint.evaluate.split_of``),
    the same one the scoring back end is fitted on (dev), so test speakers are never seen by it.
    ``split="legacy"``: the fixed permutation (50 dev speakers) used by ``eval_quality.py``."""
    if split == "legacy":
        order = sorted(speakers)
        perm = np.random.default_rng(SPLIT_SEED).permutation(len(order))
        shuffled = [order[i] for i in perm]
        return sorted(shuffled[:DEV_SPEAKERS]), sorted(shuffled[DEV_SPEAKERS:])
    from .evaluate import split_of

    dev = sorted(s for s in speakers if split_of(s) == "dev")
    return dev, sorted(s for s in speakers if split_of(s) != "dev")


class Embeddings:
    """Cached embeddings: whole files through the standard front-end, or arbitrary sample arrays."""

    def __init__(self, model: str | None = None):
        import torch

        from .cache import EmbeddingCache
        from .embedding import get_embedder
        from .evaluate import cache_path

        torch.set_num_threads(2)
        self.embedder = get_embedder(model)
        self.fp = self.embedder.spec.fingerprint
        self.cache = EmbeddingCache(cache_path())
        self.computed = 0

    def file(self, path: str) -> np.ndarray | None:
        """The library pipeline on one file: decode, VAD, speech-only, embed (shared cache key, variant '')."""
        from .cache import cache_key
        from .errors import AudioError
        from .voices import file_sha256, read_voices

        key = cache_key(self.fp, file_sha256(path), 0, "")
        hit = self.cache.get(key)
        if hit is not None:
            return hit[0]
        try:
            _, [voice] = read_voices(path, None, channel=0, diarise=False, min_speech=0.3, measure=False)
        except AudioError:
            return None  # a file the VAD finds no speech in: the library would refuse it too
        vec = self.embedder.embed(voice.speech)
        self.cache.put(key, vec, {"path": path, "net_speech": voice.net_speech})
        self.computed += 1
        return vec

    def samples(self, speech: np.ndarray, variant: str) -> np.ndarray:
        """One voiceprint of given speech samples, cached by their hash."""
        from .cache import cache_key

        sha = hashlib.sha256(np.ascontiguousarray(speech, np.float32).tobytes()).hexdigest()
        key = cache_key(self.fp, sha, 0, variant)
        hit = self.cache.get(key)
        if hit is not None:
            return hit[0]
        vec = self.embedder.embed(speech)
        self.cache.put(key, vec, {"variant": variant, "seconds": round(len(speech) / 16000, 3)})
        self.computed += 1
        return vec

    def matrix(self, key_samples: np.ndarray, variant: str, compute) -> np.ndarray:
        """A cached [n, dim] matrix (e.g. window embeddings), computed by ``compute()`` on a miss."""
        from .cache import cache_key

        sha = hashlib.sha256(np.ascontiguousarray(key_samples, np.float32).tobytes()).hexdigest()
        key = cache_key(self.fp, sha, 0, variant)
        hit = self.cache.get(key)
        if hit is not None:
            vec, info = hit
            return vec.reshape(info["shape"])
        m = np.asarray(compute(), np.float32)
        self.cache.put(key, m.reshape(-1), {"variant": variant, "shape": list(m.shape)})
        self.computed += 1
        return m


def speech_only(path: str) -> tuple[np.ndarray, list]:
    """16 kHz samples of a file and its VAD speech segments."""
    from . import audio

    x = audio.load_recording(path).channels[0].samples
    return x, audio.speech_segments(x)


def voice_of(rows) -> tuple[np.ndarray, float]:
    """One voice built from several manifest rows: the audio the library would embed for each
    (``audio.embedding_audio``), concatenated, and its net speech in seconds."""
    from . import audio

    parts, net = [], 0.0
    for r in rows:
        x, segs = speech_only(r["file"])
        parts.append(audio.embedding_audio(x, segs, 16000))
        net += sum(s.duration for s in segs)
    return np.concatenate(parts), net


def speech_of(rows) -> np.ndarray:
    """The audio of :func:`voice_of` alone."""
    return voice_of(rows)[0]


def top1(vector: np.ndarray, names: list[str], centroids: np.ndarray) -> str:
    return names[int(np.argmax(centroids @ vector))]


def person_centroids(emb: Embeddings, by_speaker: dict[str, list[dict]], speakers, utt_slice: slice):
    """Library-style person vectors: the normalised mean of each speaker's enrolment utterances."""
    names, rows = [], []
    for s in speakers:
        vecs = np.vstack([v for v in (emb.file(r["file"]) for r in by_speaker[s][utt_slice]) if v is not None])
        m = vecs.mean(axis=0)
        names.append(s)
        rows.append(m / np.linalg.norm(m))
    return names, np.vstack(rows)
