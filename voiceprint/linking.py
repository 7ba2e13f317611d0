"""Unknown voices and case linking (串并案): the same unenrolled voice across many cases.

``Links.add_recordings`` files a case's recordings: every voice (channel of a stereo call, diarised
speaker of a mono one) is compared with the library; a voice that matches an enrolled person is
noted against that person, every other voice is kept as an *unknown voiceprint* (a voiceprint row
with no person) and placed at once into a cluster of unknown voices:

- incremental average linkage: a new voice joins the cluster whose members it resembles most on
  average, when that average reaches ``LINK_THRESHOLD`` and no investigator has split it from
  them; otherwise it starts a cluster of its own. A join that brings two clusters within the
  threshold of each other merges them (unless an investigator's split forbids it);
- at the end of every filing the unknown voices are re-clustered from scratch (``Links.recluster``:
  average linkage over all of them at once, so the result does not depend on arrival order),
  keeping confirmed clusters whole and split voices apart; two voices of one recording (the
  caller and the callee) are never linked;
- ``Links.clusters`` reports the clusters that span two or more cases, with the evidence: which
  recordings, which time ranges, the scores;
- an investigator may ``confirm`` a cluster, ``split`` voices out of one (they are never
  re-joined automatically) or ``promote`` one to a person (a suspect), whose voiceprints then
  enter the library. Every decision is an audit row.

Reach it through the library: ``lib.links.confirm(12)``. The module-level functions taking the
library first are the same calls, kept for existing callers.

With a fitted back end, the score between two voices is its calibrated log-likelihood ratio (:class:`LinkSpace`),
which accounts for each side's channel and net speech. Without one, scores are cosines between voiceprints
*centred* on the mean voiceprint of the library (all its voiceprints, enrolled and unknown, once there are
``CENTRE_MIN`` of them): every embedding of one language and channel shares a common component, and removing it
separates speakers far better (dev split: pairwise F1 0.87 -> 0.92 on speechocean762). Every threshold was chosen on
development speakers (``scripts/eval_linking.py --split dev``): the lowest whose pairwise
precision reaches 0.95 there. All SQL is in :class:`voiceprint.store.Store`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import LibraryError, NotFound, VoiceprintError

if TYPE_CHECKING:
    from .library import Library
    from .store import Store
    from .voices import Voice

#: Average *centred* cosine between a voice and a cluster's members above which they are linked (dev split).
LINK_THRESHOLD = 0.45
#: The same on plain cosine, used while the library is too small to estimate its centre.
LINK_THRESHOLD_RAW = 0.65
#: With a fitted back end: mean log-likelihood ratio (natural log) between two clusters' members above which
#: they are one voice (LR e^5 ~ 150:1). Chosen as the lowest threshold whose pairwise precision reaches 0.95
#: on dev speakers scored by back ends that never saw them (scripts/eval_linking.py, ``llr-heldout``).
LINK_LLR = 5.0
#: Voiceprints (enrolled and unknown) needed before the library's mean is used as the centre.
CENTRE_MIN = 50


def _unknown_rows(store: Store, space: LinkSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voiceprint ids, cluster ids, rows in ``space``) of every clustered unknown voice not promoted to a person."""
    from .scoring import domain_of

    rows = store.unknown_voices(space_model(store))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1))
    vecs = np.vstack([r[2] for r in rows])
    return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
            space.rows(vecs, [domain_of(r[3], r[4]) for r in rows], [r[5] or 10.0 for r in rows]))


def space_model(store: Store) -> str:
    return store.get_meta("model") or ""


@dataclass
class LinkSpace:
    """How two voices are compared for linking: rows to compare, a score between rows, a threshold.

    ``llr``: with the model's fitted back end (``voiceprint.scoring``): domain centring, whitening,
    AS-norm and the calibration of the channel pair, giving a natural-log likelihood ratio that
    accounts for each side's net speech. ``centred``: cosine after removing the library's mean
    voiceprint. ``cosine``: plain cosine, for a small library without a back end.
    """

    kind: str
    threshold: float
    centre: np.ndarray | None = None
    backend: Any = None

    def rows(self, vectors, domains=None, nets=None) -> np.ndarray:
        """One row per voice (vectors [n, dim]; domains 'wideband'/'narrowband'; nets in seconds)."""
        v = np.atleast_2d(np.asarray(vectors, np.float64))
        if self.kind == "llr":
            n = len(v)
            domains = ["wideband"] * n if domains is None else list(domains)
            nets = np.full(n, 10.0) if nets is None else np.asarray(nets, np.float64)
            proj = self.backend.project(v, domains)
            mean, spread = self.backend.cohort_stats(proj) if n else (np.zeros(0), np.zeros(0))
            narrow = np.array([d == "narrowband" for d in domains], np.float64)
            return np.hstack([proj, mean[:, None], spread[:, None], nets[:, None], narrow[:, None]])
        return centred(v, self.centre)

    def scores(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Score matrix [len(a), len(b)] between rows."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        if self.kind != "llr":
            return a @ b.T
        from .scoring import pair_of

        raw = a[:, :-4] @ b[:, :-4].T
        asn = 0.5 * ((raw - a[:, -4, None]) / a[:, -3, None] + (raw - b[None, :, -4]) / b[None, :, -3])
        dom = lambda x: np.where(x[:, -1] > 0.5, "narrowband", "wideband")  # noqa: E731
        pairs = np.array([[pair_of(x, y) for y in dom(b)] for x in dom(a)])
        na, nb = a[:, -2, None], b[None, :, -2]
        # neither voice is the enrolment side: average the two orders (equal for a symmetric calibration)
        return 0.5 * (self.backend.llr(asn, na, nb, pair=pairs) + self.backend.llr(asn, nb, na, pair=pairs))


def link_space(store, model: str, use_backend: bool = True) -> LinkSpace:
    """The comparison used for linking in this library (see :class:`LinkSpace`).

    The back end's LLR whenever one is fitted, whatever the library's size: it calibrates each channel pair, so
    calls heard at 8 kHz link as well as 16 kHz recordings, and across the two. Centred cosine, which until
    session 19 served libraries of ``CENTRE_MIN`` voiceprints or more, was tuned on 16 kHz speech: on development
    cases heard through AMR-NB it linked at precision 0.76 (LLR 0.98), and with half the calls by phone at 0.68
    (LLR 0.98); on 16 kHz speech the two are equal (docs/accuracy.md, case linking). Without a back end: centred
    cosine once the library holds ``CENTRE_MIN`` voiceprints, plain cosine below.
    """
    limits = thresholds(model)
    if use_backend:
        from .scoring import load_backend

        backend = load_backend(model)
        if backend is not None:
            return LinkSpace("llr", limits["llr"], backend=backend)
    n, mean = store.mean_vector(model)
    if n < CENTRE_MIN or mean is None:
        return LinkSpace("cosine", limits["cosine"])
    return LinkSpace("centred", limits["centred"], centre=mean)


def thresholds(model: str | None = None) -> dict[str, float]:
    """The link thresholds for a model: its ``model.json`` ``"linking"`` entry where it has one
    (tuned for that model by ``scripts/eval_linking.py``), else the module's (tuned for ``ecapa-voxceleb``)."""
    from .embedding import load_spec

    own = load_spec(model).linking
    return {"centred": own.get("centred", LINK_THRESHOLD), "cosine": own.get("cosine", LINK_THRESHOLD_RAW),
            "llr": own.get("llr", LINK_LLR)}


def centred(vectors: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    """Vectors minus the centre, length-normalised (unchanged when there is no centre)."""
    if centre is None:
        return vectors
    x = np.atleast_2d(vectors).astype(np.float64) - centre
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)
    return x.reshape(np.shape(vectors)) if np.ndim(vectors) == 1 else x


def _dot(a, b):
    return np.atleast_2d(a) @ np.atleast_2d(b).T


def best_cluster(row: np.ndarray, ids: np.ndarray, clusters: np.ndarray, rows: np.ndarray,
                 banned: frozenset | set = frozenset(), scores=_dot) -> tuple[int | None, float]:
    """The cluster whose members ``row`` resembles most on average (skipping clusters holding ``banned`` ids)."""
    best, best_score = None, -np.inf
    if len(ids):
        sims = scores(rows, row)[:, 0]
        for c in np.unique(clusters):
            members = clusters == c
            if banned and banned & set(ids[members].tolist()):
                continue
            score = float(sims[members].mean())
            if score > best_score:
                best, best_score = int(c), score
    return best, best_score


def closest_other_cluster(cluster: int, ids, clusters, rows, banned: frozenset | set = frozenset(),
                          threshold: float | None = None, scores=_dot) -> tuple[int | None, float]:
    """Another cluster whose average linkage to ``cluster`` reaches ``threshold``, the closest one."""
    threshold = LINK_THRESHOLD if threshold is None else threshold
    mine = clusters == cluster
    if not (~mine).any():
        return None, threshold
    sims = scores(rows[mine], rows[~mine])
    others = clusters[~mine]
    best, best_score = None, threshold
    for c in np.unique(others):
        other = clusters == c
        if banned and banned & set(ids[other].tolist()):
            continue
        score = float(sims[:, others == c].mean())
        if score >= best_score:
            best, best_score = int(c), score
    return best, best_score


def agglomerate(rows: np.ndarray, threshold: float, scores=_dot, cannot_link=(), groups=None,
                sides=None) -> np.ndarray:
    """Cluster labels of all voices at once: average linkage, merging the closest pair of clusters
    while their mean score reaches ``threshold``. Unlike one-by-one assignment, the result does not
    depend on the order the voices arrived in.

    ``cannot_link``: (i, j) index pairs never put in one cluster (an investigator's split);
    ``sides``: one (recording, voice in it) key pair per voice - two different voices of one
    recording (the caller and the callee of a call) are different people and never linked; ``groups``: a label per voice, -1 for free voices,
    others for voices that start (and stay) together (a confirmed cluster); two groups never merge.
    """
    n = len(rows)
    if n == 0:
        return np.zeros(0, np.int64)
    sims = np.asarray(scores(rows, rows), np.float64)
    groups = np.full(n, -1) if groups is None else np.asarray(groups)
    start: dict[tuple, list[int]] = {}  # initial clusters: a confirmed group, or one voice
    for i, g in enumerate(groups.tolist()):
        start.setdefault(("g", g) if g != -1 else ("v", i), []).append(i)
    members = list(start.values())
    k = len(members)
    onehot = np.zeros((k, n))
    for c, idx in enumerate(members):
        onehot[c, idx] = 1.0
    total = onehot @ sims @ onehot.T  # sum of scores between the members of two clusters
    size = onehot.sum(axis=1)
    banned = np.zeros((n, n), bool)
    for i, j in cannot_link:
        banned[i, j] = banned[j, i] = True
    if sides is not None:
        rec, voice = (np.array([str(x[k]) for x in sides]) for k in (0, 1))
        banned |= (rec[:, None] == rec[None, :]) & (voice[:, None] != voice[None, :])
    blocked = (onehot @ banned @ onehot.T) > 0
    fixed = np.array([groups[idx[0]] != -1 for idx in members])
    blocked |= fixed[:, None] & fixed[None, :]
    alive = np.ones(k, bool)
    np.fill_diagonal(blocked, True)
    while True:
        mean = total / np.outer(size, size)
        mean[blocked | ~alive[:, None] | ~alive[None, :]] = -np.inf
        a, b = np.unravel_index(int(np.argmax(mean)), mean.shape)
        if mean[a, b] < threshold:
            break
        total[a] += total[b]
        total[:, a] += total[:, b]
        size[a] += size[b]
        blocked[a] |= blocked[b]
        blocked[:, a] |= blocked[:, b]
        blocked[a, a] = True
        alive[b] = False
        members[a] += members[b]
    labels = np.empty(n, np.int64)
    for alive_c in np.flatnonzero(alive):
        labels[members[alive_c]] = alive_c
    return labels


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class Links:
    """Case linking on one library: ``lib.links`` (filing, clusters, investigator decisions, screening)."""

    def __init__(self, lib: Library):
        self.lib = lib

    @property
    def store(self) -> Store:
        return self.lib.store

    def space(self) -> LinkSpace:
        return link_space(self.store, self.lib.model)

    def is_match(self, hit: dict | None, library_size: int) -> bool:
        """Whether a case voice is taken as the enrolled person of ``hit`` (its best hit among
        ``library_size`` persons) rather than kept as an unknown voice.

        With a back end: when the calibrated LLR of the recording's channel pair is at least the model's
        link threshold and at least ln(2N). The second is the open-set part: at even prior odds that the
        speaker is enrolled at all, the best of N persons is more likely the speaker than not only when
        its LR exceeds what the N others add up to, about N (a calibrated LR averages 1 over different
        speakers), plus N. Without it, the more persons a library holds the likelier a stranger's best
        hit passes any fixed threshold. Without a back end, the model's plain-cosine link threshold.
        Measured on real speech in docs/accuracy.md, "Matching a case voice to a person"."""
        if hit is None:
            return False
        limits = thresholds(self.lib.model)
        if hit.get("llr") is not None:
            return float(hit["llr"]) >= max(limits["llr"], math.log(2 * max(int(library_size), 1)))
        return float(hit["cosine"]) >= limits["cosine"]

    # -- filing recordings ----------------------------------------------------------------------
    def add_recordings(self, case_number: str, files, on_voice=None) -> list[dict]:
        """File recordings under a case: match each voice to the library, keep the rest as unknown voices."""
        lib = self.lib
        embedder = lib.embedder()
        rows: list[dict] = []
        # the write lock only while writing: decoding and embedding a case's calls must not hold up other writers
        with lib.writing(), self.store.transaction():
            case_id = self.store.add_case(case_number)
        for path in files:
            try:
                rec, voices = lib.call_voices(str(path))
            except VoiceprintError as err:  # one unusable file must not stop the others
                rows.append({"file": str(path), "status": "refused", "reason": str(err), "segments": [], "warnings": []})
                continue
            vectors = [embedder.embed(v.speech) for v in voices]
            with lib.writing():  # matched against the library as it is now, and filed, under one hold of the lock
                for v, vector in zip(voices, vectors, strict=True):
                    row = self._file_voice(case_id, path, rec, v, vector)
                    rows.append(row)
                    if on_voice:
                        on_voice(row)
        if any(r.get("status") == "unknown" for r in rows):
            with lib.writing():
                with self.store.transaction():  # one-by-one assignment depends on arrival order; this does not
                    self.recluster()
                now = self.store.voice_clusters()
            for r in rows:
                if r.get("status") == "unknown":
                    r["cluster"] = now.get(r["voiceprint"], r["cluster"])
        return rows

    def _file_voice(self, case_id: int, path, rec, v: Voice, vector: np.ndarray) -> dict:
        """File one voice of a case recording (its own transaction): matched person, or an unknown voice in a cluster."""
        from . import quality as gates
        from .store import keep_case_voice_vector

        store = self.store
        hits = self.lib.search_vector(vector, 1, rec.domain, v.net_speech)
        top = hits[0] if hits else None
        matched = top if self.is_match(top, self.lib.index.persons.ntotal) else None
        with store.transaction():
            rid = store.add_recording(rec.sha256, v.channel, Path(path).name, rec.duration, v.net_speech, rec.channel_rate,
                                      rec.codec, dict(v.quality, voice=v.voice))
            existing = store.case_voice(case_id, rid, v.voice)
            if existing:
                row: dict = {"status": "already", "voiceprint": existing["voiceprint_id"]}
            else:
                vid = None if matched else store.add_unknown_voiceprint(rid, self.lib.model, vector)
                cv = store.add_case_voice(case_id, rid, v.voice, v.time_ranges(), v.net_speech, vid,
                                          matched["person"]["id"] if matched else None, top["cosine"] if top else None)
                # every case voice's vector is kept as voice evidence for `voiceprint leads` (voiceprint.graph)
                keep_case_voice_vector(store, cv, self.lib.model, vector, rec.domain, v.net_speech)
                cluster = self._assign(vid, self._row(vector, rec, v.net_speech)) if vid is not None else None
                store.audit("case.add_recording", f"case:{case_id}", recording=rid, sha256=rec.sha256, voice=v.voice, voiceprint=vid,
                            matched_person=matched["person"]["id"] if matched else None, cluster=cluster)
                row = {"status": "matched" if matched else "unknown", "voiceprint": vid, "cluster": cluster}
        return row | {"file": str(path), "channel": v.channel, "voice": v.voice, "segments": v.time_ranges(),
                      "net_speech": v.net_speech, "warnings": gates.query_warnings(v.quality),
                      "person": matched["person"]["name"] if matched else None, "score": top["cosine"] if top else None}

    def _row(self, vector, rec, net_speech: float) -> tuple[LinkSpace, np.ndarray]:
        """(space, row) of one voice of recording ``rec`` in the library's link space."""
        space = self.space()
        return space, space.rows(vector[None, :], [rec.domain], [net_speech])[0]

    # -- clustering -----------------------------------------------------------------------------
    def _assign(self, vid: int, space_and_row: tuple[LinkSpace, np.ndarray]) -> int:
        """Put a new unknown voice into its cluster (caller holds a transaction); returns the cluster id."""
        store = self.store
        space, row = space_and_row
        ids, clusters, rows = _unknown_rows(store, space)
        best, best_score = best_cluster(row, ids, clusters, rows, store.cannot_link_with(vid), space.scores)
        if best is None or best_score < space.threshold:
            new = store.new_cluster()
            store.add_cluster_member(vid, new, None)
            return new
        store.add_cluster_member(vid, best, best_score)
        return self._merge_close(best, space)

    def _merge_close(self, cluster: int, space: LinkSpace) -> int:
        """Merge other clusters into ``cluster`` while their average linkage to it reaches the threshold."""
        store = self.store
        while True:
            ids, clusters, rows = _unknown_rows(store, space)
            banned: set[int] = set()
            for v in ids[clusters == cluster]:
                banned |= store.cannot_link_with(int(v))
            best, best_score = closest_other_cluster(cluster, ids, clusters, rows, banned, space.threshold, space.scores)
            if best is None:
                return cluster
            statuses = store.cluster_statuses()
            keep, gone = sorted((cluster, best), key=lambda c: (statuses.get(c) == "confirmed", -c), reverse=True)
            store.merge_clusters(keep, gone)
            store.audit("link.merge", f"cluster:{keep}", merged=gone, score=round(best_score, 4), automatic=True)
            cluster = keep

    def recluster(self) -> dict:
        """Re-cluster every unknown voice from scratch (:func:`agglomerate`), keeping investigators' decisions:
        confirmed clusters stay whole and are never merged with each other, split voices stay apart,
        promoted clusters are left alone. Cluster ids are kept where a cluster keeps most of its voices.
        The caller holds a transaction."""
        store = self.store
        space = self.space()
        ids, old, rows = _unknown_rows(store, space)
        if not len(ids):
            return {"voices": 0, "moved": 0}
        status = store.cluster_statuses()
        groups = np.array([c if status.get(int(c)) == "confirmed" else -1 for c in old])
        where = {int(v): i for i, v in enumerate(ids.tolist())}
        pairs = [(where[a], where[b]) for a, b in store.cannot_link_pairs() if a in where and b in where]
        side = store.voice_sides([int(v) for v in ids])
        labels = agglomerate(rows, space.threshold, space.scores, pairs, groups, [side[int(v)] for v in ids])
        sims = space.scores(rows, rows)
        new_of: dict[int, int] = {}
        used: set[int] = set()
        moved = 0
        for lab in sorted(set(labels.tolist()), key=lambda x: -int((labels == x).sum())):
            mine = labels == lab
            keep = self._keeper(old[mine], status, used)
            used.add(keep)
            new_of[lab] = keep
            for i in np.flatnonzero(mine):
                others = mine.copy()
                others[i] = False
                score = float(sims[i, others].mean()) if others.any() else None
                moved += int(old[i] != keep)
                store.set_cluster_member(int(ids[i]), keep, score)
        store.drop_empty_auto_clusters()
        if moved:
            store.audit("link.recluster", "", voices=len(ids), moved=moved, clusters=len(new_of), automatic=True)
        return {"voices": len(ids), "moved": moved, "clusters": len(new_of)}

    def _keeper(self, old: np.ndarray, status: dict[int, str], used: set[int]) -> int:
        """The cluster id a new group keeps: its confirmed cluster, else the old automatic cluster holding most of it, else a new one."""
        confirmed = {int(c) for c in old if status.get(int(c)) == "confirmed"}
        if confirmed:
            return confirmed.pop()
        counts = sorted(((int((old == c).sum()), -int(c), int(c)) for c in set(old.tolist())), reverse=True)
        keep = next((c for _, _, c in counts if c not in used and status.get(c) == "auto"), None)
        return self.store.new_cluster() if keep is None else keep

    # -- reporting ------------------------------------------------------------------------------
    def clusters(self, min_cases: int = 2, include_promoted: bool = False) -> list[dict]:
        """Clusters of unknown voices spanning at least ``min_cases`` cases, with their evidence."""
        from .scoring import domain_of

        out: dict[int, dict] = {}
        for r in self.store.cluster_evidence():
            c = out.setdefault(r["cluster"], {"cluster": r["cluster"], "status": r["status"], "person_id": r["person_id"],
                                              "cases": [], "voices": [], "_vecs": [], "_doms": [], "_files": {}})
            c["_files"].setdefault(r["sha256"], set()).add(r["case_number"])
            if r["case_number"] not in c["cases"]:
                c["cases"].append(r["case_number"])
            c["voices"].append({"voiceprint": r["voiceprint_id"], "case": r["case_number"], "file": r["original_name"],
                                "channel": r["channel"], "voice": r["voice"], "segments": json.loads(r["segments"]),
                                "net_speech": r["net_speech"], "score_on_joining": r["score"]})
            c["_vecs"].append(np.frombuffer(r["vector"], np.float32))
            c["_doms"].append(domain_of(r["sample_rate"], r["codec"]))
        space = self.space()
        unknown = _unknown_rows(self.store, space)
        result = []
        for c in out.values():
            if len(c["cases"]) < min_cases or (c["status"] == "promoted" and not include_promoted):
                continue
            _add_pair_scores(c, space)
            c["nearest"] = self._nearest(c["cluster"], unknown, space) if c["status"] != "promoted" else None
            c["summary"] = f"this voice appears in cases {_and(c['cases'])}"
            # one recording filed under several cases links them by itself, at the top score: that is the
            # same file, not the same voice heard twice, and the evidence must not read as the latter
            shared = [sorted(cases) for cases in c.pop("_files").values() if len(cases) > 1]
            if shared:
                c["summary"] += "; " + "; ".join(f"the same recording is filed in {_and(cases)}" for cases in shared)
                c["same_recording_in_cases"] = shared
            result.append(c)
        return result

    def _nearest(self, cluster: int, unknown: tuple, space: LinkSpace) -> dict | None:
        """The other cluster of unknown voices closest to ``cluster`` (average linkage), linked or not: where linking
        left one caller in two clusters, the investigator sees the candidate and its score beside the threshold, and can
        merge them (:meth:`merge`). Clusters it may never join (split apart, the other side of a call) are skipped."""
        ids, clusters, rows = unknown
        if not (clusters == cluster).any():
            return None
        banned: set[int] = set()
        for v in ids[clusters == cluster]:
            banned |= self.store.cannot_link_with(int(v))
        best, score = closest_other_cluster(cluster, ids, clusters, rows, banned, -np.inf, space.scores)
        if best is None:
            return None
        return {"cluster": best, "cases": self.store.cases_of_cluster(best), "score": round(score, 4),
                "score_shown": _shown(score, space.kind), "threshold_shown": _shown(space.threshold, space.kind),
                "linked": bool(score >= space.threshold)}

    # -- investigator decisions -----------------------------------------------------------------
    def confirm(self, cluster: int, note: str = "") -> dict:
        """An investigator confirms that a cluster's voices are one person."""
        with self.lib.writing(), self.store.transaction():
            c = self.store.cluster(cluster)
            if c["status"] == "promoted":
                raise LibraryError(f"cluster {cluster} was already promoted to person {c['person_id']}")
            self.store.set_cluster_status(cluster, "confirmed")
            self.store.audit("link.confirm", f"cluster:{cluster}", note=note)
        return {"cluster": cluster, "status": "confirmed"}

    def split(self, cluster: int, voiceprints: list[int], note: str = "") -> dict:
        """Move ``voiceprints`` out of a cluster into a new one; they are never re-linked to the rest automatically."""
        store = self.store
        with self.lib.writing(), store.transaction():
            store.cluster(cluster)
            members = set(store.cluster_member_ids(cluster))
            moving = {int(v) for v in voiceprints}
            if not moving or not moving <= members:
                raise NotFound(f"voiceprint(s) {sorted(moving - members)} are not in cluster {cluster} - see `voiceprint link --json`")
            if moving == members:
                raise LibraryError("splitting every voice out of a cluster changes nothing - name only the voices that do not belong")
            new = store.new_cluster("confirmed")
            store.move_cluster_members(sorted(moving), new)
            store.add_cannot_link((a, b) for a in moving for b in members - moving)
            store.audit("link.split", f"cluster:{cluster}", moved=sorted(moving), new_cluster=new, note=note)
        return {"cluster": cluster, "new_cluster": new, "moved": sorted(moving)}

    def merge(self, cluster: int, other: int, note: str = "", over_split: bool = False) -> dict:
        """An investigator decides that two clusters are one voice: ``other``'s voices join ``cluster``, which is then
        confirmed (re-clustering keeps it whole). Two voices of one recording are two people and are never merged. Voices
        an investigator split apart are merged back only with ``over_split``, which lifts those splits (audited)."""
        store = self.store
        with self.lib.writing(), store.transaction():
            found = store.cluster(cluster), store.cluster(other)
            if cluster == other:
                raise LibraryError(f"cluster {cluster} cannot be merged with itself - name two clusters (`voiceprint link --min-cases 1`)")
            for c in found:
                if c["status"] == "promoted":
                    raise LibraryError(f"cluster {c['id']} was promoted to person {c['person_id']}: only clusters of unknown voices "
                                       "are merged")
            mine, theirs = store.cluster_member_ids(cluster), store.cluster_member_ids(other)
            split = store.split_pairs_between(mine, theirs)
            same_call = sorted((a, b) for a in mine for b in store.cannot_link_with(a) & set(theirs) if (min(a, b), max(a, b)) not in split)
            if same_call:
                a, b = same_call[0]
                raise LibraryError(f"voiceprints {a} and {b} are two voices of one recording, so two people: clusters {cluster} and "
                                   f"{other} cannot be one voice")
            if split and not over_split:
                a, b = split[0]
                raise LibraryError(f"voiceprints {a} and {b} were split apart by an investigator (`voiceprint audit --action "
                                   f"link.split`): merging would undo that decision - merge with --over-split if it was wrong")
            store.remove_cannot_link(split)
            store.merge_clusters(cluster, other)
            store.set_cluster_status(cluster, "confirmed")
            store.audit("link.merge", f"cluster:{cluster}", merged=other, voiceprints=theirs, automatic=False, note=note,
                        **({"splits_lifted": split} if split else {}))
        return {"cluster": cluster, "merged": other, "voiceprints": theirs, "splits_lifted": split}

    def promote(self, cluster: int, name: str, category: str = "suspect", id_number: str = "", note: str = "") -> dict:
        """Make a cluster a person: its voices become that person's voiceprints, linked to its cases."""
        store = self.store
        with self.lib.writing():
            with store.transaction():
                c = store.cluster(cluster)
                if c["status"] == "promoted":
                    raise LibraryError(f"cluster {cluster} was already promoted to person {c['person_id']}")
                pid = store.add_person(name, id_number, category, note)
                # one voiceprint per recording and person: a repeat voice stays unknown
                moved = sum(store.give_voiceprint(vid, pid) for vid in store.cluster_member_ids(cluster))
                cases = store.cases_of_cluster(cluster)
                for case_number in cases:
                    store.link_case(case_number, pid)
                store.set_cluster_status(cluster, "promoted", pid)
                store.bump_generation()
                store.audit("link.promote", f"cluster:{cluster}", person=pid, voiceprints=moved, cases=cases, note=note)
            self.lib.save_index()
        from .store import four_eyes

        return {"cluster": cluster, "person_id": pid, "voiceprints": moved, "cases": cases, "pending": four_eyes(store)}

    # -- screening a batch ----------------------------------------------------------------------
    def screen(self, files, top: int = 3) -> list[dict]:
        """Run new recordings against the library and the unknown-voice clusters; stores nothing."""
        lib = self.lib
        embedder = lib.embedder()
        space = self.space()
        known = _unknown_rows(self.store, space), self.store.cases_by_cluster()
        files = list(files)
        rows: list[dict] = []
        for path in files:
            try:
                rec, voices = lib.call_voices(str(path))
            except VoiceprintError as err:  # one bad file must not stop a batch
                rows.append({"file": str(path), "error": str(err)})
                continue
            rows += [self._screen_voice(path, rec, v, embedder.embed(v.speech), top, space, known) for v in voices]
        with self.store.transaction():
            self.store.audit("screen", "", files=len(files), voices=len(rows), persons=sum(1 for r in rows if r.get("person")),
                             clusters=sum(1 for r in rows if r.get("cluster")))
        return rows

    def _screen_voice(self, path, rec, v: Voice, vector: np.ndarray, top: int, space: LinkSpace, known) -> dict:
        from . import quality as gates

        (ids, cluster_ids, urows), case_of = known
        hits = self.lib.search_vector(vector, top, rec.domain, v.net_speech)
        best = hits[0] if hits else None
        link = None
        if len(ids):
            sims = space.scores(urows, space.rows(vector[None, :], [rec.domain], [v.net_speech]))[:, 0]
            scores = {int(c): float(sims[cluster_ids == c].mean()) for c in np.unique(cluster_ids)}
            c, s = max(scores.items(), key=lambda kv: kv[1])
            link = {"cluster": c, "score": round(s, 4), "cases": case_of.get(c, [])}
        linked = link is not None and link["score"] >= space.threshold
        return {
            "file": str(path), "channel": v.channel, "voice": v.voice, "segments": v.time_ranges(),
            "net_speech": v.net_speech, "quality": v.quality, "warnings": gates.query_warnings(v.quality),
            "person": best["person"]["name"] if best and self.is_match(best, self.lib.index.persons.ntotal) else None,
            "person_score": best["cosine"] if best else None,
            "person_log10_lr": best.get("log10_lr") if best else None, "person_at_bound": best.get("at_bound") if best else None,
            "cluster": link["cluster"] if link and linked else None,
            "cluster_score": link["score"] if link else None,
            "cluster_cases": link["cases"] if link and linked else [],
            "hits": hits,
        }


def _add_pair_scores(c: dict, space: LinkSpace) -> None:
    """Each voice's mean score to the others of its cluster, and the cluster's lowest and mean pair score."""
    rows_c = space.rows(np.vstack(c.pop("_vecs")), c.pop("_doms"), [v["net_speech"] for v in c["voices"]])
    sims = space.scores(rows_c, rows_c)
    n = len(rows_c)
    c["score_kind"] = space.kind
    c["score_unit"] = _unit(space.kind)  # of the *_shown values; the raw scores are natural-log LRs in an LLR space
    c["raw_score_unit"] = "natural-log LR" if space.kind == "llr" else c["score_unit"]
    for i, v in enumerate(c["voices"]):
        v["mean_score_to_others"] = round(float((sims[i].sum() - sims[i, i]) / max(n - 1, 1)), 4)
        v["score_to_others_shown"] = _shown(v["mean_score_to_others"], space.kind)
    pair = sims[np.triu_indices(n, 1)] if n > 1 else np.zeros(0)
    c["min_pair_score"] = round(float(pair.min()), 4) if len(pair) else None
    c["mean_pair_score"] = round(float(pair.mean()), 4) if len(pair) else None
    c["pair_scores_shown"] = _pair_scores_shown(c)


def _unit(kind: str) -> str:
    return "log10 LR" if kind == "llr" else f"{kind or 'cosine'} score"


def _shown(score: float, kind: str):
    """A link score as people read it: an LLR space's natural log as log10 LR (the unit of every other
    page and report), a cosine as it is."""
    return round(score / math.log(10), 2) if kind == "llr" else score


def _pair_scores_shown(cluster: dict) -> str:
    """The cluster's lowest and mean pair score, in the unit of :func:`_shown`."""
    low, mean, kind = cluster["min_pair_score"], cluster["mean_pair_score"], cluster["score_kind"]
    if mean is None:
        return "One voice"
    return f"Mean pair {_unit(kind)} {_shown(mean, kind)}, lowest {_shown(low, kind)}"


# -- the same calls with the library first (older callers) --------------------------------------
def add_recordings(lib: Library, case_number: str, files, on_voice=None) -> list[dict]:
    return lib.links.add_recordings(case_number, files, on_voice)


def clusters(lib: Library, min_cases: int = 2, include_promoted: bool = False) -> list[dict]:
    return lib.links.clusters(min_cases, include_promoted)


def confirm(lib: Library, cluster: int, note: str = "") -> dict:
    return lib.links.confirm(cluster, note)


def split(lib: Library, cluster: int, voiceprints: list[int], note: str = "") -> dict:
    return lib.links.split(cluster, voiceprints, note)


def merge(lib: Library, cluster: int, other: int, note: str = "", over_split: bool = False) -> dict:
    return lib.links.merge(cluster, other, note, over_split)


def promote(lib: Library, cluster: int, name: str, category: str = "suspect", id_number: str = "", note: str = "") -> dict:
    return lib.links.promote(cluster, name, category, id_number, note)


def screen(lib: Library, files, top: int = 3) -> list[dict]:
    return lib.links.screen(files, top)


def recluster(lib: Library) -> dict:
    return lib.links.recluster()
