"""``Library``: the voiceprint library as a Python API (the CLI is a thin layer over it).

A library is a folder (default ``indexes/<name>/``, mode 0700) holding ``library.sqlite``
(the source of truth, 0600) and the derived FAISS index files. Writers take an exclusive
lock on ``.lock``; readers never block. Every enrolment, query and deletion writes an audit row.

    >>> lib = Library.open("indexes/demo", create=True)
    >>> lib.enrol("calls/zhang_1.wav", person="Zhang San", category="prior_offender", phone="13800138000")
    >>> lib.query("unknown.amr", top=5)
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import AudioError, DataError, LibraryBusy, LibraryError, NotFound, VoiceprintError
from .index import fsync_dir
from .store import Store, default_operator, normalise_category

log = logging.getLogger("voiceprint")

DB_NAME = "library.sqlite"
LOCK_NAME = ".lock"
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus", ".amr", ".awb", ".3gp", ".au", ".mp4", ".wma", ".webm"}
#: How often a long enrolment persists the index, in files (the database commits every file).
INDEX_SAVE_EVERY = 200
#: With a fitted back end, this many nearest persons by cosine are re-ranked by the back-end score.
RERANK_CANDIDATES = 200


def indexes_dir() -> Path:
    """Default home of libraries: ``$VOICEPRINT_HOME`` or the project's ``indexes/``."""
    env = os.environ.get("VOICEPRINT_HOME")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "indexes"


def resolve_library(ref: str | os.PathLike | None) -> Path:
    """A library folder from a name (``indexes/<name>``) or a path; default ``$VOICEPRINT_LIBRARY`` or ``default``."""
    ref = ref or os.environ.get("VOICEPRINT_LIBRARY") or "default"
    text = str(ref)
    if os.sep in text or text.startswith(".") or Path(text).is_dir():
        return Path(text)
    return indexes_dir() / text


@dataclass
class EnrolItem:
    """One row of an enrolment: a file and who is speaking in it."""

    path: str
    person: str
    category: str = "other"
    id_number: str = ""
    phone: str = ""
    case: str = ""
    channel: int | None = None
    notes: str = ""
    voice: int | None = None  # which diarised voice of a mono two-party call


@dataclass
class CallVoice:
    """One voice of a recording: a channel of a stereo call, or a diarised speaker of a mono one."""

    channel: int
    voice: int
    speech: np.ndarray
    segments: list  # audio.SpeechSegment time ranges in the recording
    quality: dict

    @property
    def net_speech(self) -> float:
        return round(sum(s.end - s.start for s in self.segments), 3)

    def time_ranges(self) -> list[list[float]]:
        return [[round(s.start, 2), round(s.end, 2)] for s in self.segments]


@dataclass
class EnrolOutcome:
    path: str
    status: str  # "enrolled" | "already" | "refused"
    person_id: int | None = None
    voiceprint_id: int | None = None
    channel: int | None = None
    net_speech: float | None = None
    reason: str = ""


@dataclass
class EnrolSummary:
    outcomes: list[EnrolOutcome] = field(default_factory=list)
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def refused(self) -> list[EnrolOutcome]:
        return [o for o in self.outcomes if o.status == "refused"]


class Library:
    """A voiceprint library on disk. Open with :meth:`open` (or :meth:`create`)."""

    def __init__(self, root: Path, store: Store, model: str):
        self.root = root
        self.store = store
        self.model = model
        self._index = None
        self._lock_fh = None
        self._lock_depth = 0

    # -- opening ----------------------------------------------------------------------------
    @classmethod
    def create(cls, ref=None, model: str | None = None, operator: str | None = None) -> "Library":
        """Create a new library folder (0700) and database (0600) bound to one speaker model."""
        from .embedding import load_spec

        root = resolve_library(ref)
        exists = f"a library already exists at {root} - open it instead, or choose another --library"
        if (root / DB_NAME).exists():
            raise _AlreadyExists(exists)
        spec = load_spec(model)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(root, 0o700)
        with _folder_lock(root):  # two processes creating the same library: one creates, one finds it
            if (root / DB_NAME).exists():
                raise _AlreadyExists(exists)
            # The database is built under a temporary name and renamed into place, so whoever sees
            # library.sqlite (a reader that takes no folder lock) sees it whole, with its model set.
            building = root / f".{DB_NAME}.creating"
            for leftover in root.glob(f".{DB_NAME}.creating*"):  # a creation killed part-way
                leftover.unlink()
            # Create the file 0600 first: SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(building, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
            with Store(building, operator) as store:
                with store.transaction():
                    store.set_meta("model", spec.name)
                    store.set_meta("model_fingerprint", spec.fingerprint)
                    store.set_meta("embedding_dim", str(spec.embedding_dim))
                    store.set_meta("generation", "0")
                    store.audit("library.create", str(root.name), model=spec.name)
            # Closing the only connection folded the WAL into the file and removed it.
            os.rename(building, root / DB_NAME)
            fsync_dir(root)
        return cls(root, Store(root / DB_NAME, operator), spec.name)

    @classmethod
    def open(cls, ref=None, create: bool = False, operator: str | None = None, model: str | None = None) -> "Library":
        """Open an existing library (or create it when ``create``)."""
        root = resolve_library(ref)
        if not (root / DB_NAME).exists():
            if not create:
                raise NotFound(f"no voiceprint library at {root} - create one with `voiceprint init --library {ref or root}`")
            try:
                return cls.create(root, model=model, operator=operator)
            except _AlreadyExists:
                with _folder_lock(root):  # another process created it just now: wait until it is done
                    pass
        store = Store(root / DB_NAME, operator)
        lib_model = store.get_meta("model")
        if not lib_model:  # only a creation killed part-way by an older version leaves this
            store.close()
            raise LibraryError(
                f"{root / DB_NAME} records no speaker model: its creation did not finish - "
                "if it holds no voiceprints, remove the folder and run the command again"
            )
        if model and model != lib_model:
            store.close()
            raise LibraryError(
                f"library {root} holds voiceprints of model {lib_model!r}, not {model!r} - one index never mixes models; "
                "create a separate library for the other model"
            )
        return cls(root, store, lib_model)

    def close(self) -> None:
        self.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def operator(self) -> str:
        return self.store.operator

    # -- locking ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self, wait: float = 60.0, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Hold the library's exclusive write lock; a second writer waits up to ``wait`` seconds."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        fh = open(os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        deadline = time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = fh.read().strip() or "another process"
                fh.seek(0)
                if not told and on_wait:
                    on_wait(f"library {self.root} is being written by {holder}; waiting up to {wait:.0f} s")
                    told = True
                if time.monotonic() >= deadline:
                    fh.close()
                    raise LibraryBusy(
                        f"library {self.root} is being written by {holder} - wait for it to finish and run this again"
                    )
                time.sleep(0.2)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} ({default_operator()})")
        fh.flush()
        self._lock_fh, self._lock_depth = fh, 1
        try:
            yield
        finally:
            self._lock_depth = 0
            self._lock_fh = None
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)
            fh.close()

    # -- persons, phones, cases -------------------------------------------------------------
    def add_person(self, name: str, id_number: str = "", category: str = "other", notes: str = "") -> int:
        with self.store.transaction():
            return self.store.add_person(name, id_number, category, notes)

    def _person_id(self, person: str | int) -> int:
        return int(self.store.find_person(person)["id"])

    def add_phone(self, number: str, person: str | int | None = None) -> int:
        with self.store.transaction():
            return self.store.add_phone(number, self._person_id(person) if person is not None else None)

    def add_case(self, case_number: str, title: str = "", date: str | None = None, area: str = "", status: str = "open") -> int:
        with self.store.transaction():
            return self.store.add_case(case_number, title, date, area, status)

    def link_case(self, case_number: str, person: str | int | None = None, phone: str | None = None) -> None:
        with self.store.transaction():
            pid = self._person_id(person) if person is not None else None
            self.store.link_case(case_number, pid, phone)

    def persons(self, category: str | None = None) -> list[dict]:
        return self.store.list_persons(category)

    def person(self, ref: str | int) -> dict:
        """One person with phones, cases and voice samples."""
        p = self.store.find_person(ref)
        return self._person_card(int(p["id"]))

    def _person_card(self, person_id: int) -> dict:
        row = self.store.db.execute("SELECT * FROM persons WHERE id = ?", (person_id,)).fetchone()
        if row is None:
            raise NotFound(f"no person with id {person_id}")
        samples = self.store.db.execute(
            "SELECT r.original_name, r.net_speech, r.channel FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
            "WHERE v.person_id = ? ORDER BY v.id", (person_id,)
        ).fetchall()
        return {
            "person": {k: row[k] for k in ("id", "name", "id_number", "category", "notes")},
            "voice_samples": len(samples),
            "samples": [dict(s) for s in samples],
            "phones": self.store.phones_of(person_id),
            "cases": self.store.cases_of(person_id),
        }

    def lookup_person(self, phone: str | None = None, id_number: str | None = None) -> dict | None:
        """Reverse strike: the library's person behind a phone number or ID number, or None."""
        pid = None
        if phone:
            pid = self.store.person_for_phone(phone)
        if pid is None and id_number:
            row = self.store.db.execute(
                "SELECT id FROM persons WHERE id_number = ? AND id_number != ''", (id_number.strip().upper(),)
            ).fetchone()
            pid = int(row[0]) if row else None
        if pid is None:
            return None
        card = self._person_card(pid)
        card.pop("samples")
        return card

    # -- the index --------------------------------------------------------------------------
    @property
    def index(self):
        """The FAISS index, loaded from disk, or rebuilt from the database when stale or missing."""
        from .index import VoiceIndex

        generation = self.store.generation
        if self._index is not None and self._index.generation == generation:
            return self._index
        loaded = VoiceIndex.load(self.root)
        if loaded is not None and loaded.generation == generation and loaded.model == self.model:
            self._index = loaded
        else:
            if loaded is not None:
                log.info("index is behind (built at generation %s, database at %s): updating", loaded.generation, generation)
            self._index = self._build_index(base=loaded if loaded is not None and loaded.model == self.model else None)
        return self._index

    def _build_index(self, kind: str | None = None, base=None):
        """The index at the database's generation: ``base`` (an index behind it) updated in place
        when given and of the same kind, else a fresh build (``rebuild_index`` always builds)."""
        from .index import DEFAULT_KIND, VoiceIndex

        ids, persons, vectors = self.store.voiceprints(self.model)
        if base is not None and base.model == self.model and (kind is None or kind == base.kind):
            return base.update(ids, persons, vectors, self.store.generation)
        from .index import read_backend

        dim = int(self.store.get_meta("embedding_dim", "192"))
        kind = kind or (self._index.kind if self._index is not None else DEFAULT_KIND)
        return VoiceIndex.build(ids, persons, vectors, self.model, self.store.generation, kind=kind, dim=dim,
                                backend=read_backend(self.root), folder=self.root)

    def rebuild_index(self, kind: str | None = None) -> dict:
        """Rebuild both FAISS indexes from the database and persist them."""
        with self.writing():
            self._index = self._build_index(kind)
            self._index.save(self.root)
            self.store.audit("index.rebuild", kind=self._index.kind, samples=self._index.size)
        return self.check_index()

    def check_index(self) -> dict:
        """Compare the persisted index with the database: ok, stale or missing."""
        from .index import VoiceIndex

        on_disk = VoiceIndex.load(self.root)
        db_count = self.store.db.execute(
            "SELECT COUNT(*) FROM voiceprints WHERE model = ? AND person_id IS NOT NULL", (self.model,)
        ).fetchone()[0]
        report = {"library": str(self.root), "model": self.model, "database_voiceprints": int(db_count),
                  "database_generation": self.store.generation}
        if on_disk is None:
            return report | {"status": "missing", "index_voiceprints": 0}
        ok = on_disk.generation == self.store.generation and on_disk.size == db_count and on_disk.model == self.model
        if ok:
            ids, _, _ = self.store.voiceprints(self.model)
            ok = bool(np.array_equal(np.sort(on_disk.sample_ids()), ids))
        return report | {"status": "ok" if ok else "stale", "index_voiceprints": on_disk.size,
                         "index_generation": on_disk.generation, "kind": on_disk.kind}

    def _save_index(self) -> None:
        """Bring the index up to the database's generation and persist it (caller holds the write lock)."""
        if self._index is None or self._index.generation != self.store.generation:
            self._index = self._build_index(base=self._index)
        self._index.save(self.root)

    # -- voice ------------------------------------------------------------------------------
    def _embedder(self):
        from .embedding import get_embedder

        return get_embedder(self.model)

    def _voices(self, path: str, channel: int | None, min_speech: float | None, allow_partial: bool = False):
        """Decode a recording and return [(channel, speech, segments, quality)], one per voice with speech."""
        from . import audio

        rec = audio.load_recording(path, channels="each" if channel is None else channel)
        voices, refusals = [], []
        for ch in rec.channels:
            try:
                kwargs = {} if min_speech is None else {"min_speech": min_speech}
                speech, segments = audio.prepare_speech(ch, path=str(path), **kwargs)
            except AudioError as err:
                refusals.append(err)
                continue
            quality = audio.measure_quality(ch, segments, rec.codec, rec.source_rate)
            voices.append((ch.index, speech, segments, quality))
        if not voices:
            raise refusals[0]
        return rec, voices

    def call_voices(self, path: str, channel: int | None = None, min_speech: float | None = None) -> tuple:
        """Decode a recording into its voices: (recording, [CallVoice]).

        Each channel of a stereo call is one voice; a mono recording is diarised
        (``voiceprint.diarize``) into one voice per speaker found. Quality is measured per
        channel, with the net speech of each voice.
        """
        from . import diarize
        from .quality import frame_snr_db

        rec, channels = self._voices(path, channel, min_speech)
        embedder = self._embedder()
        out = []
        by_index = {ch.index: ch for ch in rec.channels}
        for ch_index, speech, segments, quality in channels:
            quality = dict(quality, snr_frames_db=frame_snr_db(by_index[ch_index].samples, by_index[ch_index].sample_rate))
            if rec.n_channels > 1:
                out.append(CallVoice(ch_index, 0, speech, segments, quality))
                continue
            for v in diarize.diarize(by_index[ch_index].samples, segments, embedder):
                q = dict(quality, net_speech_s=round(v.net_speech, 3))
                out.append(CallVoice(ch_index, v.index, v.speech, v.segments, q))
        return rec, out

    def enrol(self, path, person: str, category: str = "other", id_number: str = "", phone: str = "",
              case: str = "", channel: int | None = None, notes: str = "", min_speech: float | None = None,
              voice: int | None = None, force: bool = False) -> EnrolOutcome:
        """Enrol one recording as a voice sample of ``person``; idempotent by file hash and person."""
        summary = self.enrol_many([EnrolItem(str(path), person, category, id_number, phone, case, channel, notes, voice)],
                                  min_speech=min_speech, stop_on_error=True, force=force)
        return summary.outcomes[0]

    def enrol_many(self, items: Iterable[EnrolItem], min_speech: float | None = None,
                   progress: Callable[[EnrolOutcome], None] | None = None, stop_on_error: bool = False,
                   on_wait: Callable[[str], None] | None = None, force: bool = False,
                   should_stop: Callable[[], bool] | None = None) -> EnrolSummary:
        """Enrol many recordings. Each file commits on its own, so an interruption keeps every
        file already reported and a re-run skips them; refusals are collected, not raised.
        Voices below the quality gates (``voiceprint.quality``) are refused unless ``force``.

        ``should_stop`` is asked before each file; when it answers True the run stops there as if
        interrupted (KeyboardInterrupt after the index is saved). The CLI passes its Ctrl-C flag, so
        a Ctrl-C that a third-party library swallowed (silero-vad has bare ``except:`` clauses)
        still stops the run."""
        from .embedding import file_sha256
        from .index import VoiceIndex

        summary = EnrolSummary()
        embedder = self._embedder()
        with self.writing(on_wait=on_wait):
            since_save = 0
            try:
                for item in items:
                    if should_stop is not None and should_stop():
                        summary.interrupted = True
                        break
                    try:
                        outcome = self._enrol_one(item, embedder, file_sha256, min_speech, force)
                    except VoiceprintError as err:
                        if stop_on_error:
                            raise
                        outcome = EnrolOutcome(item.path, "refused", reason=str(err))
                    summary.outcomes.append(outcome)
                    if outcome.status == "enrolled":
                        since_save += 1
                        if since_save >= INDEX_SAVE_EVERY:
                            self._save_index()
                            since_save = 0
                    if progress:
                        progress(outcome)
            except KeyboardInterrupt:
                summary.interrupted = True
            finally:
                # Also when nothing new was enrolled: a run killed after its last commit but
                # before its index save leaves the index behind the database.
                if since_save or VoiceIndex.saved_generation(self.root) != self.store.generation:
                    self._save_index()
        if summary.interrupted:
            raise KeyboardInterrupt
        return summary

    def _enrol_one(self, item: EnrolItem, embedder, file_sha256, min_speech, force: bool = False) -> EnrolOutcome:
        path = Path(item.path)
        if not path.is_file():
            raise AudioError(path, "file not found", "check the path (manifest paths are relative to the manifest)")
        category = normalise_category(item.category)
        sha = file_sha256(path)
        existing = self.store.db.execute(
            "SELECT v.id, v.person_id, r.channel FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
            "JOIN persons p ON p.id = v.person_id WHERE r.sha256 = ? AND p.name = ? AND p.id_number = ? AND v.model = ?"
            + (" AND r.channel = ?" if item.channel is not None else ""),
            (sha, item.person.strip(), (item.id_number or "").strip().upper(), self.model)
            + ((item.channel,) if item.channel is not None else ()),
        ).fetchone()
        if existing:
            return EnrolOutcome(str(path), "already", existing["person_id"], existing["id"], existing["channel"])
        from . import quality as gates

        rec, voices = self.call_voices(str(path), item.channel, min_speech)
        if item.voice is not None:
            if not 0 <= item.voice < len(voices):
                raise AudioError(path, f"holds {len(voices)} voice(s), voice {item.voice} does not exist",
                                 f"use --voice 0 to {len(voices) - 1} (see `voiceprint query` for who speaks when)")
            voices = [voices[item.voice]]
        if len(voices) > 1:
            how = "one per channel" if rec.n_channels > 1 else "found by diarisation"
            flag = "--channel N" if rec.n_channels > 1 else "--voice N"
            raise AudioError(path, f"holds {len(voices)} voices ({how})",
                             f"enrol one of them with {flag} (0-based; `voiceprint query` shows who speaks when)")
        chosen = voices[0]
        ch_index, speech = chosen.channel, chosen.speech
        problems = gates.check_enrolment(chosen.quality, str(path), force)
        quality = dict(chosen.quality, voice=chosen.voice, segments=chosen.time_ranges(), forced=problems)
        vector = embedder.embed(speech)
        net = chosen.net_speech
        with self.store.transaction():
            pid = self.store.add_person(item.person, item.id_number, category, item.notes)
            if item.phone:
                self.store.add_phone(item.phone, pid)
            if item.case:
                self.store.add_case(item.case)
                self.store.link_case(item.case, pid, item.phone or None)
            rid = self.store.add_recording(rec.sha256, ch_index, path.name, rec.duration, net, rec.source_rate, rec.codec, quality)
            if self.store.has_voiceprint(rid, pid, self.model):
                row = self.store.db.execute("SELECT id FROM voiceprints WHERE recording_id=? AND person_id=? AND model=?",
                                            (rid, pid, self.model)).fetchone()
                return EnrolOutcome(str(path), "already", pid, int(row[0]), ch_index, net)
            vid = self.store.add_voiceprint(rid, pid, self.model, vector)
            self.store.audit("enrol", f"voiceprint:{vid}", person=pid, recording=rid, sha256=rec.sha256[:16], channel=ch_index,
                             voice=chosen.voice, **({"forced": problems} if problems else {}))
        return EnrolOutcome(str(path), "enrolled", pid, vid, ch_index, net)

    def query(self, path, top: int = 5, channel: int | None = None, min_speech: float | None = None) -> list[dict]:
        """Who is speaking? One result per voice, best hits first: each channel of a stereo call,
        each diarised speaker of a mono one, with the time ranges where that voice speaks.

        A person's score is the cosine between the query and the mean of their samples; the
        best-matching single sample and its own score are reported beside it. A voice below
        the quality gates carries ``warnings`` (weak evidence).
        """
        from . import quality as gates

        from .scoring import domain_of, scoring_note

        rec, voices = self.call_voices(str(path), channel, min_speech)
        embedder = self._embedder()
        results = []
        for v in voices:
            vector = embedder.embed(v.speech)
            hits = self._search(vector, top, domain_of(rec.source_rate, rec.codec), v.net_speech)
            results.append({
                "file": str(path), "sha256": rec.sha256, "channel": v.channel, "voice": v.voice,
                "segments": v.time_ranges(),
                "duration": round(rec.duration, 3), "net_speech": v.net_speech,
                "source_rate": rec.source_rate, "codec": rec.codec, "quality": v.quality,
                "warnings": gates.query_warnings(v.quality),
                "library_size": int(self.index.persons.ntotal), "kind": "investigative lead",
                "scoring": scoring_note(self.model), "hits": hits,
            })
        with self.store.transaction():
            self.store.audit("query", f"sha256:{rec.sha256[:16]}", voices=len(results),
                             hits=[[h["person"]["id"] for h in r["hits"]] for r in results])
        return results

    def search_vector(self, vector: np.ndarray, top: int = 5) -> list[dict]:
        """Rank enrolled persons against one voiceprint (no audit row; used by :meth:`query`)."""
        return self._search(vector, top)

    def _search(self, vector: np.ndarray, top: int, domain: str = "wideband", net_speech: float | None = None) -> list[dict]:
        """Rank persons. With a fitted back end (``voiceprint.scoring``) the nearest persons by cosine
        are re-ranked by the back-end score and each hit carries its LR and expected false hits;
        without one, ``score`` is the raw cosine and the evidence fields are None."""
        from . import scoring

        index = self.index
        if index.persons.ntotal == 0:
            return []
        backend = scoring.load_backend(self.model)
        size = int(index.persons.ntotal)
        k = top if backend is None else min(size, max(RERANK_CANDIDATES, top * 20))
        p_scores, p_ids = index.search_persons(vector, k)
        cosines = {int(pid): float(sc) for sc, pid in zip(p_scores[0], p_ids[0]) if pid >= 0}
        if backend is None:
            ranked = [(pid, cos) for pid, cos in cosines.items()][:top]
        else:
            scored = scoring.rescore(backend, vector, domain, self._person_samples(list(cosines)))
            ranked = [(pid, sc) for pid, (sc, _) in sorted(scored.items(), key=lambda kv: -kv[1][0])[:top]]
        s_scores, s_ids = index.search_samples(vector, max(top * 4, 20))
        sample_info = self.store.voiceprint_info([i for i in s_ids[0] if i >= 0])
        best_sample: dict[int, tuple[float, dict]] = {}
        for score, vid in zip(s_scores[0], s_ids[0]):
            info = sample_info.get(int(vid))
            if info and info["person_id"] not in best_sample:
                best_sample[info["person_id"]] = (float(score), info)
        hits = []
        for pid, score in ranked:
            card = self._person_card(int(pid))
            sample = best_sample.get(int(pid))
            enrol_net = sum(float(s["net_speech"] or 0) for s in card["samples"])
            hits.append({
                "rank": len(hits) + 1,
                "person": card["person"],
                "score": round(float(score), 4),
                "cosine": round(cosines[pid], 4),
                **scoring.evidence(backend, score, size, enrol_net, net_speech,
                                   scored[pid][1] if backend is not None else "all"),
                "sample": None if sample is None else {
                    "voiceprint": int(sample[1]["id"]), "file": sample[1]["original_name"],
                    "channel": sample[1]["channel"], "score": round(sample[0], 4)},
                "voice_samples": card["voice_samples"],
                "phones": card["phones"],
                "cases": card["cases"],
            })
        return hits

    def _person_samples(self, person_ids: list[int]) -> dict:
        """person id -> (raw sample vectors, their domains, total net speech), for back-end scoring."""
        from .scoring import domain_of

        if not person_ids:
            return {}
        marks = ",".join("?" * len(person_ids))
        rows = self.store.db.execute(
            f"SELECT v.person_id, v.vector, r.sample_rate, r.codec, r.net_speech FROM voiceprints v "
            f"JOIN recordings r ON r.id = v.recording_id WHERE v.model = ? AND v.person_id IN ({marks}) ORDER BY v.id",
            [self.model, *person_ids],
        ).fetchall()
        out: dict[int, tuple[list, list, float]] = {}
        for pid, blob, rate, codec, net in rows:
            vecs, doms, total = out.get(int(pid), ([], [], 0.0))
            vecs.append(np.frombuffer(blob, dtype=np.float32))
            doms.append(domain_of(int(rate or 0), codec or ""))
            out[int(pid)] = (vecs, doms, total + float(net or 0))
        return {pid: (np.stack(v), d, t) for pid, (v, d, t) in out.items()}

    def verify(self, a, b, channel_a: int | None = None, channel_b: int | None = None) -> dict:
        """1:1 comparison of two recordings (an evaluative comparison): the back-end score, the raw
        cosine and, with a fitted back end, the likelihood ratio and its ENFSI verbal equivalent."""
        from .scoring import domain_of

        embedder = self._embedder()
        out = {}
        for key, path, ch in (("a", a, channel_a), ("b", b, channel_b)):
            rec, voices = self._voices(str(path), ch, None)
            if len(voices) > 1:
                raise AudioError(path, f"holds {len(voices)} voices", "choose one with --channel-a/--channel-b")
            ch_index, speech, segments, quality = voices[0]
            out[key] = {"file": str(path), "sha256": rec.sha256, "channel": ch_index,
                        "net_speech": round(sum(s.duration for s in segments), 3), "vector": embedder.embed(speech),
                        "domain": domain_of(rec.source_rate, rec.codec)}
        from . import scoring

        cosine = float(np.dot(out["a"]["vector"], out["b"]["vector"]))
        backend = scoring.load_backend(self.model)
        score = cosine
        if backend is not None:
            model = backend.model(out["a"]["vector"], out["a"]["domain"])
            score = float(backend.score(model, backend.project(out["b"]["vector"], out["b"]["domain"]))[0, 0])
        evidence = scoring.evidence(backend, score, 1, out["a"]["net_speech"], out["b"]["net_speech"],
                                    scoring.pair_of(out["a"]["domain"], out["b"]["domain"]))
        with self.store.transaction():
            self.store.audit("verify", "", a=out["a"]["sha256"][:16], b=out["b"]["sha256"][:16])
        for key in ("a", "b"):
            out[key].pop("vector")
        return {"kind": "evaluative comparison", "a": out["a"], "b": out["b"], "score": round(score, 4),
                "cosine": round(cosine, 4), **evidence, "scoring": scoring.scoring_note(self.model)}

    def delete_person(self, ref: str | int) -> dict:
        with self.writing():
            with self.store.transaction():
                result = self.store.delete_person(self._person_id(ref))
            self._save_index()
        return result

    def audit(self, limit: int = 100, action: str | None = None) -> list[dict]:
        return self.store.audit_rows(limit, action)

    def stats(self) -> dict:
        return {t: self.store.count(t) for t in ("persons", "phones", "cases", "recordings", "voiceprints")} | {
            "model": self.model, "library": str(self.root)}


class _AlreadyExists(LibraryError):
    """``Library.create`` found a library there (``open(create=True)`` then opens it)."""


@contextlib.contextmanager
def _folder_lock(root: Path) -> Iterator[None]:
    """An exclusive lock on the library folder itself, held only while a library is being created."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def read_manifest(path) -> list[EnrolItem]:
    """Read an enrolment manifest CSV (``path,person,category,phone,case`` plus optional
    ``id_number,channel,notes``), UTF-8 or GBK/GB18030; paths relative to the manifest."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot read manifest ({err.strerror})") from err
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise DataError(f"{path}: manifest is neither UTF-8 nor GBK/GB18030 - re-save it as UTF-8")
    reader = csv.DictReader(io.StringIO(text))
    cols = {c.strip().lower() for c in (reader.fieldnames or [])}
    missing = {"path", "person"} - cols
    if missing:
        raise DataError(f"{path}: manifest lacks column(s) {', '.join(sorted(missing))} - expected path,person,category,phone,case")
    items, seen = [], set()
    for line_no, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("path") or not row.get("person"):
            raise DataError(f"{path}:{line_no}: empty path or person - fix or delete that row")
        file_path = Path(row["path"])
        if not file_path.is_absolute():
            file_path = path.parent / file_path
        channel = row.get("channel", "")
        key = (str(file_path), row["person"], channel)
        if key in seen:
            continue  # a duplicated row enrols once
        seen.add(key)
        items.append(EnrolItem(str(file_path), row["person"], row.get("category") or "other", row.get("id_number", ""),
                               row.get("phone", ""), row.get("case", ""), int(channel) if channel.isdigit() else None,
                               row.get("notes", "")))
    return items


def folder_items(folder, person: str | None = None, category: str = "other", phone: str = "", case: str = "") -> list[EnrolItem]:
    """Audio files under a folder: all of ``person``, or (without it) each sub-folder named after its person."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no audio files found (looked for {', '.join(sorted(AUDIO_SUFFIXES))})")
    items = []
    for f in files:
        who = person
        if who is None:
            rel = f.relative_to(folder)
            if len(rel.parts) < 2:
                raise DataError(f"{f}: not in a per-person sub-folder - pass --person, or lay files out as FOLDER/<person>/file")
            who = rel.parts[0]
        items.append(EnrolItem(str(f), who, category, "", phone, case))
    return items
