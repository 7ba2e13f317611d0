"""Move a library to a new speaker model without losing persons, phones, cases, links or audit.

The library keeps no audio, only each recording's SHA-256, channel and the time segments of the
voice that was enrolled (``recordings.quality``). :func:`reembed` finds each person voiceprint's
original file in the folders given (by SHA-256; a web upload kept under the library is used too),
decodes it as enrolment did, cuts the same channel's stored segments (no re-diarisation, so the
same voice is embedded) and inserts a voiceprint of the new model for the same recording and
person, committing every ``batch`` recordings under the write lock: an interrupted run keeps what
it committed and a re-run resumes. Only when every person voiceprint has its new twin (or with
``allow_missing``) is the model switched, in one transaction: case links point at the new rows,
the old model's person voiceprints are removed (a copy of the database from just before is kept
beside it, ``library.sqlite.before-reembed-<time>``, to undo or check the move), the library's
model and fingerprint change, every row is resealed and the index is rebuilt; audited.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import AudioError, NotFound, VoiceprintError
from .fsutil import atomic_output
from .store import assert_sealed
from .store import reembed as rows
from .voices import AUDIO_SUFFIXES, file_sha256

if TYPE_CHECKING:
    from .library import Library

#: Recordings embedded per transaction: an interruption loses at most this many embeddings.
BATCH = 20


class ReembedIncomplete(NotFound):
    """Some recordings were not found or could not be used: the model is not switched."""

    def __init__(self, message: str, summary: ReembedSummary):
        super().__init__(message)
        self.summary = summary


@dataclass
class ReembedSummary:
    library: str
    old_model: str
    new_model: str
    voiceprints: int = 0  # person voiceprints of the old model
    already: int = 0  # already had their new twin (an earlier, interrupted run)
    embedded: int = 0
    found: int = 0  # recordings located (dry run)
    missing: list[dict] = field(default_factory=list)  # not found, or found but unusable (with why)
    unknown_voices: int = 0  # unknown case voices of the old model: not re-embedded
    switched: bool = False
    dropped_persons: list[int] = field(default_factory=list)  # with allow_missing: persons left without a voiceprint
    backup: str = ""
    dry_run: bool = False
    switch: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "missing"} | {"missing": len(self.missing)}


def find_audio(folders: Iterable[str | os.PathLike], wanted: set[str], names: Iterable[str] = ()) -> dict[str, Path]:
    """SHA-256 -> file for the ``wanted`` hashes among the audio files (or files named as in ``names``) under ``folders``."""
    found: dict[str, Path] = {}
    names = set(names)
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise NotFound(f"{folder}: no such folder - give the folders that hold the original recordings with --audio")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            if len(found) == len(wanted):
                return found
            if path.suffix.lower() not in AUDIO_SUFFIXES and path.name not in names:
                continue
            try:
                sha = file_sha256(path)
            except OSError:
                continue
            if sha in wanted:
                found.setdefault(sha, path)
    return found


def kept_upload(lib: Library, sha256: str) -> Path | None:
    """The web workbench's kept copy of an upload with this hash, if the library holds one."""
    from .library import upload_path

    path = upload_path(lib.root, sha256)
    return path if path.is_file() else None


def embed_stored_voice(path: Path, row: dict, embedder) -> np.ndarray:
    """The new model's voiceprint of the voice a row enrolled: same channel, same stored segments."""
    from . import audio

    rec = audio.load_recording(str(path), channels=int(row["channel"]))
    ch = rec.channels[0]
    spans = row["quality"].get("segments") or row["case_segments"]
    if spans:
        segments = [audio.SpeechSegment(float(a), float(b)) for a, b in spans]
        speech = audio.embedding_audio(ch.samples, audio.spread_segments(segments), ch.sample_rate)
    else:  # an enrolment from before segments were stored: find the speech as enrolment did
        speech, _ = audio.prepare_speech(ch, path=str(path))
    if len(speech) < ch.sample_rate * 0.1:
        raise AudioError(path, f"the stored segments of channel {row['channel']} hold no audio", "is this the enrolled file?")
    return embedder.embed(speech)


def reembed(lib: Library, model: str, audio_dirs: Iterable[str | os.PathLike], allow_missing: bool = False,
            dry_run: bool = False, batch: int = BATCH, progress: Callable[[int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> ReembedSummary:
    """Move ``lib`` to speaker model ``model`` (see the module docstring); a no-op when it is on it already.

    Raises :class:`ReembedIncomplete` (exit 7) when recordings are missing and not ``allow_missing``:
    what was embedded stays committed and a re-run with more folders resumes."""
    from .embedding import get_embedder, load_spec

    spec = load_spec(model)
    summary = ReembedSummary(str(lib.root), lib.model, spec.name, dry_run=dry_run)
    if lib.model == spec.name:
        return summary
    if dry_run:
        _locate(lib, spec.name, audio_dirs, summary)
        return summary
    embedder = get_embedder(spec.name)
    with lib.writing():
        assert_sealed(lib.store)  # nothing is carried over from altered rows
        todo, paths = _locate(lib, spec.name, audio_dirs, summary)
        _embed_all(lib, spec.name, embedder, todo, paths, summary, batch, progress, should_stop)
        if summary.missing and not allow_missing:
            raise ReembedIncomplete(
                f"{len(summary.missing)} of {summary.voiceprints} enrolled recording(s) were not found in the folders given "
                f"or could not be used (see --report): the library stays on {lib.model} ({summary.already + summary.embedded} "
                "re-embedded so far are kept) - add the folders that hold them and run again, or --allow-missing to drop "
                "those voiceprints", summary)
        _switch(lib, spec, summary)
    return summary


def _locate(lib: Library, new: str, audio_dirs, summary: ReembedSummary) -> tuple[list[dict], dict[str, Path]]:
    """The person voiceprints still to re-embed and the files found for them; the rest go to ``summary.missing``."""
    every = rows.person_voiceprints(lib.store, lib.model, new)
    todo = [r for r in every if r["twin"] is None]
    summary.voiceprints, summary.already = len(every), len(every) - len(todo)
    summary.unknown_voices = rows.count_unknown_voiceprints(lib.store, lib.model)
    paths: dict[str, Path] = {}
    for r in todo:
        kept = kept_upload(lib, r["sha256"])
        if kept is not None:
            paths[r["sha256"]] = kept
    wanted = {r["sha256"] for r in todo} - set(paths)
    if wanted:
        paths |= find_audio(audio_dirs, wanted, {r["original_name"] for r in todo})
    summary.found = sum(1 for r in todo if r["sha256"] in paths)
    summary.missing = [_missing(r, "not found in the folders given") for r in todo if r["sha256"] not in paths]
    return [r for r in todo if r["sha256"] in paths], paths


def _missing(row: dict, reason: str) -> dict:
    return {"voiceprint": row["id"], "person_id": row["person_id"], "recording": row["recording_id"], "sha256": row["sha256"],
            "channel": row["channel"], "original_name": row["original_name"], "reason": reason}


def _embed_all(lib: Library, new: str, embedder, todo: list[dict], paths: dict[str, Path], summary: ReembedSummary,
               batch: int, progress, should_stop) -> None:
    """Embed and commit ``todo`` ``batch`` recordings at a time (each batch one transaction and one audit row)."""
    for start in range(0, len(todo), max(1, batch)):
        if should_stop is not None and should_stop():
            raise KeyboardInterrupt
        done: list[tuple[dict, np.ndarray]] = []
        for row in todo[start:start + batch]:
            try:
                done.append((row, embed_stored_voice(paths[row["sha256"]], row, embedder)))
            except VoiceprintError as err:
                summary.missing.append(_missing(row, f"unusable: {err}"))
        with lib.store.transaction():
            pairs = [[row["id"], rows.add_twin(lib.store, row, new, vector)] for row, vector in done]
            if pairs:
                lib.store.audit("library.reembed.batch", f"model:{new}", voiceprints=pairs)
        summary.embedded += len(pairs)
        if progress is not None:
            progress(summary.already + summary.embedded, summary.voiceprints)


def _switch(lib: Library, spec, summary: ReembedSummary) -> None:
    """Back up the database, then switch the model in one transaction (audited) and rebuild the index."""
    from .store import erase_checkpoint

    summary.backup = str(_backup(lib))
    missing_persons = {m["person_id"] for m in summary.missing}
    with lib.store.transaction():
        assert_sealed(lib.store)
        kept = {r["person_id"] for r in rows.person_voiceprints(lib.store, lib.model, spec.name) if r["twin"] is not None}
        summary.dropped_persons = sorted(missing_persons - kept)
        summary.switch = rows.switch_model(lib.store, lib.model, spec)
        lib.store.audit("library.reembed", f"model:{spec.name}", from_model=lib.model, to_model=spec.name,
                        fingerprint=spec.fingerprint, voiceprints=summary.voiceprints, embedded=summary.embedded,
                        already=summary.already, missing=len(summary.missing), dropped_persons=summary.dropped_persons,
                        unknown_voices_left=summary.unknown_voices, backup=Path(summary.backup).name, **summary.switch)
    old_model = lib.model
    lib.model = spec.name
    summary.switched = True
    erase_checkpoint(lib.store)
    lib.rebuild_index()
    _drop_old_collections(lib, old_model)


def _drop_old_collections(lib: Library, old_model: str) -> None:
    """A Milvus-backed library keeps each model's vectors in collections of their own: the old model's
    would otherwise outlive the switch (and every later erasure). The database copy can rebuild them."""
    from .index import collection_name, drop_collections, erase_deleted_vectors, read_backend

    backend = read_backend(lib.root)
    if backend.get("backend") == "milvus":
        drop_collections(backend["uri"], [collection_name(lib.root, old_model, level) for level in ("samples", "persons")])
        erase_deleted_vectors(lib.root)  # a dropped collection's bytes stay in a Milvus Lite file otherwise


#: the name of the database copy a model switch leaves beside the library (its time appended)
COPY_PREFIX = "library.sqlite.before-reembed-"


def copies_of(root: Path) -> list[Path]:
    """The database copies earlier model switches left in a library folder, oldest first (a file that is not an
    SQLite database, such as the empty one a full disk left before this was fixed, is not a copy)."""
    def is_database(path: Path) -> bool:
        with contextlib.suppress(OSError), open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
        return False

    return sorted(p for p in Path(root).glob(f"{COPY_PREFIX}*") if not p.name.endswith(("-wal", "-shm", "-journal")) and is_database(p))


def _backup(lib: Library) -> Path:
    """A consistent copy of the database (0600) beside it, taken just before the switch."""
    dest = lib.root / f"{COPY_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}"
    os.close(os.open(dest, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
    try:
        with contextlib.closing(sqlite3.connect(dest)) as target:
            lib.store.db.backup(target)
    except BaseException:  # a full disk: no empty "copy" left to be mistaken for the way back
        dest.unlink(missing_ok=True)
        raise
    return dest


def write_report(path: str | os.PathLike, summary: ReembedSummary) -> None:
    """The recordings that were not re-embedded, one CSV row each (UTF-8)."""
    cols = ["voiceprint", "person_id", "recording", "sha256", "channel", "original_name", "reason"]
    with atomic_output(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, cols)
        writer.writeheader()
        writer.writerows(summary.missing)
