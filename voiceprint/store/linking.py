"""Case voices, unknown voiceprints and their clusters across cases (voiceprint.linking): the
:class:`~voiceprint.store.Store` methods that hold that SQL, kept apart so each module reads in one sitting."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable

import numpy as np

from ..errors import NotFound
from ._sql import _rowid


class LinkingRows:
    """Mixed into Store: every method runs on ``self.db`` (the caller holds the transaction for writes)."""

    db: sqlite3.Connection
    operator: str
    fresh_id: Callable[[str], int]  # Store's: an id never used before in ``table``, deleted rows included
    audit: Callable[..., object]

    def case_voice(self, case_id: int, recording_id: int, voice: int) -> dict | None:
        row = self.db.execute("SELECT id, voiceprint_id FROM case_voices WHERE case_id=? AND recording_id=? AND voice=?",
                              (case_id, recording_id, voice)).fetchone()
        return dict(row) if row else None

    def add_unknown_voiceprint(self, recording_id: int, model: str, vector: np.ndarray) -> int:
        """A voiceprint of no person (an unknown voice). The person index never holds it, so no generation bump."""
        cur = self.db.execute("INSERT INTO voiceprints(id, recording_id, person_id, model, vector, created_at) VALUES (?, ?, NULL, ?, ?, ?)",
                              (self.fresh_id("voiceprints"), recording_id, model, np.asarray(vector, np.float32).tobytes(), time.time()))
        return _rowid(cur)

    def add_case_voice(self, case_id: int, recording_id: int, voice: int, segments: list, net_speech: float,
                       voiceprint_id: int | None, matched_person_id: int | None, match_score: float | None) -> int:
        cur = self.db.execute(
            "INSERT INTO case_voices(case_id, recording_id, voice, segments, net_speech, voiceprint_id,"
            " matched_person_id, match_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (case_id, recording_id, voice, json.dumps(segments), net_speech, voiceprint_id, matched_person_id, match_score, time.time()))
        return _rowid(cur)

    def unknown_voices(self, model: str) -> list[tuple[int, int, np.ndarray, int, str, float | None]]:
        """(voiceprint, cluster, vector, sample rate, codec, net speech) of every clustered unknown voice not promoted."""
        rows = self.db.execute(
            "SELECT v.id, m.cluster_id, v.vector, r.sample_rate, r.codec, "
            " (SELECT MAX(cv.net_speech) FROM case_voices cv WHERE cv.voiceprint_id = v.id) AS net "
            "FROM voiceprints v JOIN cluster_members m ON m.voiceprint_id = v.id JOIN recordings r ON r.id = v.recording_id "
            "JOIN voice_clusters c ON c.id = m.cluster_id WHERE v.person_id IS NULL AND v.model = ? AND c.status != 'promoted' "
            "ORDER BY v.id", (model,)).fetchall()
        return [(int(r[0]), int(r[1]), np.frombuffer(r[2], np.float32), r[3], r[4], r[5]) for r in rows]

    def cannot_link_with(self, voiceprint_id: int) -> set[int]:
        """Voices never to be linked with this one: split from it by an investigator, or heard in the same recording."""
        rows = self.db.execute(
            "SELECT b FROM cannot_link WHERE a = ? UNION SELECT a FROM cannot_link WHERE b = ? UNION "
            "SELECT v2.id FROM voiceprints v1 JOIN recordings r1 ON r1.id = v1.recording_id"
            " JOIN case_voices c1 ON c1.voiceprint_id = v1.id JOIN recordings r2 ON r2.sha256 = r1.sha256"
            " JOIN voiceprints v2 ON v2.recording_id = r2.id JOIN case_voices c2 ON c2.voiceprint_id = v2.id"
            " WHERE v1.id = ? AND (r2.channel != r1.channel OR c2.voice != c1.voice)", (voiceprint_id,) * 3)
        return {int(r[0]) for r in rows}

    def cannot_link_pairs(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self.db.execute("SELECT a, b FROM cannot_link")]

    def add_cannot_link(self, pairs: Iterable[tuple[int, int]]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO cannot_link(a, b) VALUES (?, ?)", [(min(a, b), max(a, b)) for a, b in pairs])

    def split_pairs_between(self, a: Iterable[int], b: Iterable[int]) -> list[tuple[int, int]]:
        """The pairs (one voice of ``a``, one of ``b``) an investigator split apart (``cannot_link``), as stored."""
        a, b = {int(v) for v in a}, {int(v) for v in b}
        return sorted((x, y) for x, y in self.cannot_link_pairs() if (x in a and y in b) or (x in b and y in a))

    def remove_cannot_link(self, pairs: Iterable[tuple[int, int]]) -> None:
        self.db.executemany("DELETE FROM cannot_link WHERE a = ? AND b = ?", [(min(a, b), max(a, b)) for a, b in pairs])

    def voice_sides(self, voiceprint_ids: list[int]) -> dict[int, tuple[str, str]]:
        """voiceprint -> (recording sha256, "channel:voice"): two voices of one call are two sides of it."""
        if not voiceprint_ids:
            return {}
        marks = ",".join("?" * len(voiceprint_ids))
        rows = self.db.execute(
            f"SELECT v.id, r.sha256, r.channel, cv.voice FROM voiceprints v JOIN recordings r ON r.id = v.recording_id"
            f" JOIN case_voices cv ON cv.voiceprint_id = v.id WHERE v.id IN ({marks})", [int(v) for v in voiceprint_ids])
        return {int(r[0]): (r[1], f"{r[2]}:{r[3]}") for r in rows}

    def voice_clusters(self) -> dict[int, int]:
        """voiceprint -> cluster, for every clustered voice."""
        return {int(v): int(c) for v, c in self.db.execute("SELECT voiceprint_id, cluster_id FROM cluster_members")}

    def cluster(self, cluster_id: int) -> dict:
        row = self.db.execute("SELECT * FROM voice_clusters WHERE id = ?", (cluster_id,)).fetchone()
        if row is None:
            raise NotFound(f"no voice cluster {cluster_id} - see `voiceprint link`")
        return dict(row)

    def cluster_statuses(self) -> dict[int, str]:
        return {int(c): s for c, s in self.db.execute("SELECT id, status FROM voice_clusters")}

    def new_cluster(self, status: str = "auto") -> int:
        return _rowid(self.db.execute("INSERT INTO voice_clusters(id, status, created_at) VALUES (?, ?, ?)",
                                      (self.fresh_id("voice_clusters"), status, time.time())))

    def set_cluster_status(self, cluster_id: int, status: str, person_id: int | None = None) -> None:
        self.db.execute("UPDATE voice_clusters SET status = ?, person_id = COALESCE(?, person_id) WHERE id = ?",
                        (status, person_id, cluster_id))

    def add_cluster_member(self, voiceprint_id: int, cluster_id: int, score: float | None) -> None:
        self.db.execute("INSERT INTO cluster_members(voiceprint_id, cluster_id, score, joined_at) VALUES (?, ?, ?, ?)",
                        (voiceprint_id, cluster_id, score, time.time()))

    def set_cluster_member(self, voiceprint_id: int, cluster_id: int, score: float | None) -> None:
        self.db.execute("UPDATE cluster_members SET cluster_id = ?, score = ? WHERE voiceprint_id = ?", (cluster_id, score, voiceprint_id))

    def cluster_member_ids(self, cluster_id: int) -> list[int]:
        return [int(r[0]) for r in self.db.execute(
            "SELECT voiceprint_id FROM cluster_members WHERE cluster_id = ? ORDER BY voiceprint_id", (cluster_id,))]

    def move_cluster_members(self, voiceprint_ids: list[int], cluster_id: int) -> None:
        marks = ",".join("?" * len(voiceprint_ids))
        self.db.execute(f"UPDATE cluster_members SET cluster_id = ? WHERE voiceprint_id IN ({marks})", (cluster_id, *voiceprint_ids))

    def merge_clusters(self, keep: int, gone: int) -> None:
        self.db.execute("UPDATE cluster_members SET cluster_id = ? WHERE cluster_id = ?", (keep, gone))
        self.db.execute("DELETE FROM voice_clusters WHERE id = ?", (gone,))

    def drop_empty_auto_clusters(self) -> None:
        self.db.execute("DELETE FROM voice_clusters WHERE status = 'auto' AND id NOT IN (SELECT cluster_id FROM cluster_members)")

    def cluster_evidence(self) -> list[sqlite3.Row]:
        """One row per clustered voice with its cluster, case, recording and vector, by cluster then voiceprint."""
        return self.db.execute(
            "SELECT c.id AS cluster, c.status, c.person_id, m.voiceprint_id, m.score, cs.case_number, r.original_name, r.sha256,"
            " r.channel, r.sample_rate, r.codec, cv.voice, cv.segments, cv.net_speech, v.vector FROM voice_clusters c"
            " JOIN cluster_members m ON m.cluster_id = c.id JOIN voiceprints v ON v.id = m.voiceprint_id"
            " JOIN recordings r ON r.id = v.recording_id JOIN case_voices cv ON cv.voiceprint_id = v.id"
            " JOIN cases cs ON cs.id = cv.case_id ORDER BY c.id, m.voiceprint_id").fetchall()

    def cases_of_cluster(self, cluster_id: int) -> list[str]:
        return [r[0] for r in self.db.execute(
            "SELECT DISTINCT cs.case_number FROM case_voices cv JOIN cases cs ON cs.id = cv.case_id"
            " JOIN cluster_members m ON m.voiceprint_id = cv.voiceprint_id WHERE m.cluster_id = ?", (cluster_id,))]

    def cases_by_cluster(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for c, case in self.db.execute(
                "SELECT DISTINCT m.cluster_id, cs.case_number FROM cluster_members m JOIN case_voices cv ON cv.voiceprint_id = m.voiceprint_id"
                " JOIN cases cs ON cs.id = cv.case_id ORDER BY cs.case_number"):
            out.setdefault(int(c), []).append(case)
        return out

    def give_voiceprint(self, voiceprint_id: int, person_id: int) -> int:
        """Make an unknown voiceprint a person's (1), unless that person already has one of its recording (0).

        In a four-eyes library it waits for a supervisor's approval like an enrolment (pending, by this
        operator): promoting a cluster must not make voiceprints searchable on one person's say."""
        from .audit import four_eyes

        pending = int(four_eyes(self))  # type: ignore[arg-type]
        moved = self.db.execute("UPDATE OR IGNORE voiceprints SET person_id = ?, pending = ?, enrolled_by = ? WHERE id = ?",
                                (person_id, pending, self.operator, voiceprint_id)).rowcount
        if moved and pending:
            self.audit("enrol.pending", f"voiceprint:{voiceprint_id}", person=person_id, promoted=True)
        return moved

    def return_to_unknown(self, voiceprint_id: int) -> bool:
        """A rejected voiceprint of a case recording goes back to the unknown voices (the case keeps its
        evidence); False when it is not a case's voice (an enrolment: the caller deletes it)."""
        if self.db.execute("SELECT 1 FROM case_voices WHERE voiceprint_id = ?", (voiceprint_id,)).fetchone() is None:
            return False
        self.db.execute("UPDATE voiceprints SET person_id = NULL, pending = 0 WHERE id = ?", (voiceprint_id,))
        return True

    def reopen_orphan_clusters(self) -> None:
        """Clusters promoted to a person who is gone (every promoted voiceprint rejected) are open again."""
        self.db.execute("UPDATE voice_clusters SET status = 'confirmed' WHERE status = 'promoted' AND person_id IS NULL")
