"""Unknown voices and case linking (串并案): the same unenrolled voice across many cases.

``add_recordings`` files a case's recordings: every voice (channel of a stereo call, diarised
speaker of a mono one) is compared with the library; a voice that matches an enrolled person is
noted against that person, every other voice is kept as an *unknown voiceprint* (a voiceprint row
with no person) and placed at once into a cluster of unknown voices:

- incremental average linkage: a new voice joins the cluster whose members it resembles most on
  average, when that average reaches ``LINK_THRESHOLD`` and no investigator has split it from
  them; otherwise it starts a cluster of its own. A join that brings two clusters within the
  threshold of each other merges them (unless an investigator's split forbids it);
- at the end of every filing the unknown voices are re-clustered from scratch (:func:`recluster`:
  average linkage over all of them at once, so the result does not depend on arrival order),
  keeping confirmed clusters whole and split voices apart; two voices of one recording (the
  caller and the callee) are never linked;
- ``links`` reports the clusters that span two or more cases, with the evidence: which
  recordings, which time ranges, the scores;
- an investigator may ``confirm`` a cluster, ``split`` voices out of one (they are never
  re-joined automatically) or ``promote`` one to a person (a suspect), whose voiceprints then
  enter the library. Every decision is an audit row.

Scores are cosines between voiceprints *centred* on the mean voiceprint of the library (all its
voiceprints, enrolled and unknown, once there are ``CENTRE_MIN`` of them): every embedding of one
language and channel shares a common component, and removing it separates speakers far better
(dev split: pairwise F1 0.87 -> 0.92 on speechocean762). With a fitted back end the score is
its calibrated log-likelihood ratio instead (:class:`LinkSpace`). Every threshold was chosen on
development speakers (``scripts/eval_linking.py --split dev``): the lowest whose pairwise
precision reaches 0.95 there.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LibraryError, NotFound, VoiceprintError

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
#: Cosine to an enrolled person above which a case voice is taken as that person, not an unknown.
MATCH_THRESHOLD = 0.65


# -- filing recordings ------------------------------------------------------------------------
def add_recordings(lib, case_number: str, files, on_voice=None) -> list[dict]:
    """File recordings under a case: match each voice to the library, keep the rest as unknown voices."""
    from . import quality as gates

    embedder = lib._embedder()
    rows = []
    with lib.writing():
        with lib.store.transaction():
            case_id = lib.store.add_case(case_number)
        for path in files:
            try:
                rec, voices = lib.call_voices(str(path))
            except VoiceprintError as err:  # one unusable file must not stop the others
                rows.append({"file": str(path), "status": "refused", "reason": str(err), "segments": [], "warnings": []})
                continue
            for v in voices:
                vector = embedder.embed(v.speech)
                hits = lib.search_vector(vector, 1)
                top = hits[0] if hits else None
                matched = top if top and top["cosine"] >= MATCH_THRESHOLD else None
                with lib.store.transaction():
                    q = dict(v.quality, voice=v.voice)
                    rid = lib.store.add_recording(rec.sha256, v.channel, Path(path).name, rec.duration,
                                                  v.net_speech, rec.source_rate, rec.codec, q)
                    existing = lib.store.db.execute(
                        "SELECT id, voiceprint_id FROM case_voices WHERE case_id=? AND recording_id=? AND voice=?",
                        (case_id, rid, v.voice)).fetchone()
                    if existing:
                        row = {"status": "already", "voiceprint": existing["voiceprint_id"]}
                    else:
                        vid = None
                        if matched is None:
                            cur = lib.store.db.execute(
                                "INSERT INTO voiceprints(recording_id, person_id, model, vector, created_at) VALUES (?, NULL, ?, ?, ?)",
                                (rid, lib.model, np.asarray(vector, np.float32).tobytes(), time.time()))
                            vid = int(cur.lastrowid)
                        cv = lib.store.db.execute(
                            "INSERT INTO case_voices(case_id, recording_id, voice, segments, net_speech, voiceprint_id,"
                            " matched_person_id, match_score, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (case_id, rid, v.voice, json.dumps(v.time_ranges()), v.net_speech, vid,
                             matched["person"]["id"] if matched else None, top["cosine"] if top else None, time.time()))
                        _keep_vector(lib, int(cv.lastrowid), vector, rec, v.net_speech)  # voice evidence for `voiceprint leads`
                        row_of = space_row(lib, vector, rec, v.net_speech)
                        cluster = _assign(lib, vid, row_of) if vid is not None else None
                        lib.store.audit("case.add_recording", f"case:{case_id}", recording=rid, voice=v.voice,
                                        voiceprint=vid, matched_person=matched["person"]["id"] if matched else None,
                                        cluster=cluster)
                        row = {"status": "matched" if matched else "unknown", "voiceprint": vid, "cluster": cluster}
                row |= {"file": str(path), "channel": v.channel, "voice": v.voice, "segments": v.time_ranges(),
                        "net_speech": v.net_speech, "warnings": gates.query_warnings(v.quality),
                        "person": matched["person"]["name"] if matched else None,
                        "score": top["cosine"] if top else None}
                rows.append(row)
                if on_voice:
                    on_voice(row)
        if any(r.get("status") == "unknown" for r in rows):
            with lib.store.transaction():  # one-by-one assignment depends on arrival order; this does not
                recluster(lib)
            now = dict(lib.store.db.execute("SELECT voiceprint_id, cluster_id FROM cluster_members").fetchall())
            for r in rows:
                if r.get("status") == "unknown":
                    r["cluster"] = now.get(r["voiceprint"], r["cluster"])
    return rows


def _keep_vector(lib, case_voice_id: int, vector, rec, net_speech: float) -> None:
    from .scoring import domain_of
    from .store import keep_case_voice_vector

    keep_case_voice_vector(lib.store, case_voice_id, lib.model, vector, domain_of(rec.source_rate, rec.codec), net_speech)


# -- clustering -------------------------------------------------------------------------------
def _unknown_rows(store, space: LinkSpace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(voiceprint ids, cluster ids, rows in ``space``) of every clustered unknown voice not promoted to a person."""
    from .scoring import domain_of

    rows = store.db.execute(
        "SELECT v.id, m.cluster_id, v.vector, r.sample_rate, r.codec, "
        " (SELECT MAX(cv.net_speech) FROM case_voices cv WHERE cv.voiceprint_id = v.id) AS net "
        "FROM voiceprints v JOIN cluster_members m ON m.voiceprint_id = v.id JOIN recordings r ON r.id = v.recording_id "
        "JOIN voice_clusters c ON c.id = m.cluster_id WHERE v.person_id IS NULL AND v.model = ? AND c.status != 'promoted' "
        "ORDER BY v.id", (space_model(store),)).fetchall()
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 1))
    vecs = np.vstack([np.frombuffer(r[2], np.float32) for r in rows])
    return (np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
            space.rows(vecs, [domain_of(r[3], r[4]) for r in rows], [r[5] or 10.0 for r in rows]))


def _forbidden(store, vid: int) -> set[int]:
    """Voices never to be linked with ``vid``: split from it by an investigator, or heard in the same recording."""
    rows = store.db.execute(
        "SELECT b FROM cannot_link WHERE a = ? UNION SELECT a FROM cannot_link WHERE b = ? UNION "
        "SELECT v2.id FROM voiceprints v1 JOIN recordings r1 ON r1.id = v1.recording_id"
        " JOIN case_voices c1 ON c1.voiceprint_id = v1.id JOIN recordings r2 ON r2.sha256 = r1.sha256"
        " JOIN voiceprints v2 ON v2.recording_id = r2.id JOIN case_voices c2 ON c2.voiceprint_id = v2.id"
        " WHERE v1.id = ? AND (r2.channel != r1.channel OR c2.voice != c1.voice)", (vid, vid, vid))
    return {int(r[0]) for r in rows}


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
    backend: object = None

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

    Centred cosine once the library holds ``CENTRE_MIN`` voiceprints of the model: on held-out
    development speakers it linked better than the back end's LLR (pairwise F1 0.962 vs 0.946), and
    on four draws of test cases it reached precision and recall >= 0.919 where the LLR did not
    (docs/accuracy.md, case linking). Below that, the back end's LLR when one is fitted, else plain cosine.
    """
    limits = thresholds(model)
    n, = store.db.execute("SELECT COUNT(*) FROM voiceprints WHERE model = ?", (model,)).fetchone()
    if n < CENTRE_MIN:
        if use_backend:
            from .scoring import load_backend

            backend = load_backend(model)
            if backend is not None:
                return LinkSpace("llr", limits["llr"], backend=backend)
        return LinkSpace("cosine", limits["cosine"])
    total = None
    for (blob,) in store.db.execute("SELECT vector FROM voiceprints WHERE model = ?", (model,)):
        v = np.frombuffer(blob, np.float32).astype(np.float64)
        total = v if total is None else total + v
    return LinkSpace("centred", limits["centred"], centre=total / n)


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
                 banned: set = frozenset(), scores=_dot) -> tuple[int | None, float]:
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


def closest_other_cluster(cluster: int, ids, clusters, rows, banned: set = frozenset(),
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
    start = {}  # initial clusters: a confirmed group, or one voice
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
    for c in np.flatnonzero(alive):
        labels[members[c]] = c
    return labels


def recluster(lib) -> dict:
    """Re-cluster every unknown voice from scratch (:func:`agglomerate`), keeping investigators' decisions:
    confirmed clusters stay whole and are never merged with each other, split voices stay apart,
    promoted clusters are left alone. Cluster ids are kept where a cluster keeps most of its voices.
    The caller holds a transaction."""
    store = lib.store
    space = link_space(store, lib.model)
    ids, old, rows = _unknown_rows(store, space)
    if not len(ids):
        return {"voices": 0, "moved": 0}
    status = {int(c): s for c, s in store.db.execute("SELECT id, status FROM voice_clusters")}
    groups = np.array([c if status.get(int(c)) == "confirmed" else -1 for c in old])
    where = {int(v): i for i, v in enumerate(ids.tolist())}
    pairs = [(where[a], where[b]) for a, b in store.db.execute("SELECT a, b FROM cannot_link")
             if a in where and b in where]
    marks = ",".join("?" * len(ids))
    side = {int(r[0]): (r[1], f"{r[2]}:{r[3]}") for r in store.db.execute(
        f"SELECT v.id, r.sha256, r.channel, cv.voice FROM voiceprints v JOIN recordings r ON r.id = v.recording_id"  # noqa: S608
        f" JOIN case_voices cv ON cv.voiceprint_id = v.id WHERE v.id IN ({marks})", [int(v) for v in ids])}
    labels = agglomerate(rows, space.threshold, space.scores, pairs, groups, [side[int(v)] for v in ids])
    sims = space.scores(rows, rows)
    new_of, used, moved = {}, set(), 0
    for lab in sorted(set(labels.tolist()), key=lambda x: -int((labels == x).sum())):
        mine = labels == lab
        confirmed = {int(c) for c in old[mine] if status.get(int(c)) == "confirmed"}
        if confirmed:
            keep = confirmed.pop()
        else:  # the old automatic cluster holding most of these voices, if not taken
            counts = sorted(((int((old[mine] == c).sum()), -int(c), int(c)) for c in set(old[mine].tolist())), reverse=True)
            keep = next((c for _, _, c in counts if c not in used and status.get(c) == "auto"), None)
            if keep is None:
                keep = int(store.db.execute("INSERT INTO voice_clusters(status, created_at) VALUES ('auto', ?)",
                                            (time.time(),)).lastrowid)
        used.add(keep)
        new_of[lab] = keep
        for i in np.flatnonzero(mine):
            others = mine.copy()
            others[i] = False
            score = float(sims[i, others].mean()) if others.any() else None
            moved += int(old[i] != keep)
            store.db.execute("UPDATE cluster_members SET cluster_id = ?, score = ? WHERE voiceprint_id = ?",
                             (keep, score, int(ids[i])))
    store.db.execute("DELETE FROM voice_clusters WHERE status = 'auto' AND id NOT IN (SELECT cluster_id FROM cluster_members)")
    if moved:
        store.audit("link.recluster", "", voices=len(ids), moved=moved, clusters=len(new_of), automatic=True)
    return {"voices": len(ids), "moved": moved, "clusters": len(new_of)}


def space_model(store) -> str:
    return store.get_meta("model")


def space_row(lib, vector, rec, net_speech: float):
    """(space, row) of one voice of recording ``rec`` in the library's link space."""
    from .scoring import domain_of

    space = link_space(lib.store, lib.model)
    return space, space.rows(vector[None, :], [domain_of(rec.source_rate, rec.codec)], [net_speech])[0]


def _assign(lib, vid: int, space_and_row) -> int:
    """Put a new unknown voice into its cluster (caller holds a transaction); returns the cluster id."""
    store = lib.store
    space, row = space_and_row
    threshold = space.threshold
    ids, clusters, rows = _unknown_rows(store, space)
    best, best_score = best_cluster(row, ids, clusters, rows, _forbidden(store, vid), space.scores)
    if best is None or best_score < threshold:
        best = int(store.db.execute("INSERT INTO voice_clusters(status, created_at) VALUES ('auto', ?)",
                                    (time.time(),)).lastrowid)
        best_score = None
    store.db.execute("INSERT INTO cluster_members(voiceprint_id, cluster_id, score, joined_at) VALUES (?, ?, ?, ?)",
                     (vid, best, best_score, time.time()))
    if best_score is not None:
        best = _merge_close(lib, best, space)
    return best


def _merge_close(lib, cluster: int, space: LinkSpace) -> int:
    """Merge other clusters into ``cluster`` while their average linkage to it reaches the threshold."""
    store = lib.store
    while True:
        ids, clusters, rows = _unknown_rows(store, space)
        banned = set()
        for v in ids[clusters == cluster]:
            banned |= _forbidden(store, int(v))
        best, best_score = closest_other_cluster(cluster, ids, clusters, rows, banned, space.threshold, space.scores)
        if best is None:
            return cluster
        keep, gone = sorted((cluster, best), key=lambda c: _status_rank(store, c), reverse=True)
        store.db.execute("UPDATE cluster_members SET cluster_id = ? WHERE cluster_id = ?", (keep, gone))
        store.db.execute("DELETE FROM voice_clusters WHERE id = ?", (gone,))
        store.audit("link.merge", f"cluster:{keep}", merged=gone, score=round(best_score, 4), automatic=True)
        cluster = keep


def _status_rank(store, cluster: int) -> tuple:
    row = store.db.execute("SELECT status FROM voice_clusters WHERE id = ?", (cluster,)).fetchone()
    return (row is not None and row[0] == "confirmed", -cluster)


# -- reporting --------------------------------------------------------------------------------
def clusters(lib, min_cases: int = 2, include_promoted: bool = False) -> list[dict]:
    """Clusters of unknown voices spanning at least ``min_cases`` cases, with their evidence."""
    from .scoring import domain_of

    store = lib.store
    rows = store.db.execute(
        "SELECT c.id AS cluster, c.status, c.person_id, m.voiceprint_id, m.score, cs.case_number, r.original_name,"
        " r.channel, r.sample_rate, r.codec, cv.voice, cv.segments, cv.net_speech, v.vector FROM voice_clusters c"
        " JOIN cluster_members m ON m.cluster_id = c.id JOIN voiceprints v ON v.id = m.voiceprint_id"
        " JOIN recordings r ON r.id = v.recording_id JOIN case_voices cv ON cv.voiceprint_id = v.id"
        " JOIN cases cs ON cs.id = cv.case_id ORDER BY c.id, m.voiceprint_id").fetchall()
    out: dict[int, dict] = {}
    for r in rows:
        c = out.setdefault(r["cluster"], {"cluster": r["cluster"], "status": r["status"], "person_id": r["person_id"],
                                          "cases": [], "voices": [], "_vecs": [], "_doms": []})
        if r["case_number"] not in c["cases"]:
            c["cases"].append(r["case_number"])
        c["voices"].append({"voiceprint": r["voiceprint_id"], "case": r["case_number"], "file": r["original_name"],
                            "channel": r["channel"], "voice": r["voice"], "segments": json.loads(r["segments"]),
                            "net_speech": r["net_speech"], "score_on_joining": r["score"]})
        c["_vecs"].append(np.frombuffer(r["vector"], np.float32))
        c["_doms"].append(domain_of(r["sample_rate"], r["codec"]))
    space = link_space(store, lib.model)
    result = []
    for c in out.values():
        if len(c["cases"]) < min_cases or (c["status"] == "promoted" and not include_promoted):
            continue
        rows_c = space.rows(np.vstack(c.pop("_vecs")), c.pop("_doms"), [v["net_speech"] for v in c["voices"]])
        sims = space.scores(rows_c, rows_c)
        n = len(rows_c)
        for i, v in enumerate(c["voices"]):
            v["mean_score_to_others"] = round(float((sims[i].sum() - sims[i, i]) / max(n - 1, 1)), 4)
        pair = sims[np.triu_indices(n, 1)] if n > 1 else np.zeros(0)
        c["score_kind"] = space.kind
        c["min_pair_score"] = round(float(pair.min()), 4) if len(pair) else None
        c["mean_pair_score"] = round(float(pair.mean()), 4) if len(pair) else None
        c["summary"] = f"this voice appears in cases {_and(c['cases'])}"
        result.append(c)
    return result


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# -- investigator decisions -------------------------------------------------------------------
def _cluster(store, cluster: int) -> dict:
    row = store.db.execute("SELECT * FROM voice_clusters WHERE id = ?", (cluster,)).fetchone()
    if row is None:
        raise NotFound(f"no voice cluster {cluster} - see `voiceprint link`")
    return dict(row)


def confirm(lib, cluster: int, note: str = "") -> dict:
    """An investigator confirms that a cluster's voices are one person."""
    with lib.writing(), lib.store.transaction():
        c = _cluster(lib.store, cluster)
        if c["status"] == "promoted":
            raise LibraryError(f"cluster {cluster} was already promoted to person {c['person_id']}")
        lib.store.db.execute("UPDATE voice_clusters SET status = 'confirmed' WHERE id = ?", (cluster,))
        lib.store.audit("link.confirm", f"cluster:{cluster}", note=note)
    return {"cluster": cluster, "status": "confirmed"}


def split(lib, cluster: int, voiceprints: list[int], note: str = "") -> dict:
    """Move ``voiceprints`` out of a cluster into a new one; they are never re-linked to the rest automatically."""
    with lib.writing(), lib.store.transaction():
        _cluster(lib.store, cluster)
        members = {int(r[0]) for r in lib.store.db.execute(
            "SELECT voiceprint_id FROM cluster_members WHERE cluster_id = ?", (cluster,))}
        moving = {int(v) for v in voiceprints}
        if not moving or not moving <= members:
            raise NotFound(f"voiceprint(s) {sorted(moving - members)} are not in cluster {cluster} - see `voiceprint link --json`")
        if moving == members:
            raise LibraryError("splitting every voice out of a cluster changes nothing - name only the voices that do not belong")
        new = int(lib.store.db.execute("INSERT INTO voice_clusters(status, created_at) VALUES ('confirmed', ?)",
                                       (time.time(),)).lastrowid)
        marks = ",".join("?" * len(moving))
        lib.store.db.execute(f"UPDATE cluster_members SET cluster_id = ? WHERE voiceprint_id IN ({marks})",  # noqa: S608
                             (new, *sorted(moving)))
        lib.store.db.executemany("INSERT OR IGNORE INTO cannot_link(a, b) VALUES (?, ?)",
                                 [(min(a, b), max(a, b)) for a in moving for b in members - moving])
        lib.store.audit("link.split", f"cluster:{cluster}", moved=sorted(moving), new_cluster=new, note=note)
    return {"cluster": cluster, "new_cluster": new, "moved": sorted(moving)}


def promote(lib, cluster: int, name: str, category: str = "suspect", id_number: str = "", note: str = "") -> dict:
    """Make a cluster a person: its voices become that person's voiceprints, linked to its cases."""
    with lib.writing():
        with lib.store.transaction():
            c = _cluster(lib.store, cluster)
            if c["status"] == "promoted":
                raise LibraryError(f"cluster {cluster} was already promoted to person {c['person_id']}")
            pid = lib.store.add_person(name, id_number, category, note)
            vids = [int(r[0]) for r in lib.store.db.execute(
                "SELECT voiceprint_id FROM cluster_members WHERE cluster_id = ? ORDER BY voiceprint_id", (cluster,))]
            moved = 0
            for vid in vids:  # one voiceprint per recording and person: a repeat voice stays unknown
                moved += lib.store.db.execute("UPDATE OR IGNORE voiceprints SET person_id = ? WHERE id = ?", (pid, vid)).rowcount
            cases = [r[0] for r in lib.store.db.execute(
                "SELECT DISTINCT cs.case_number FROM case_voices cv JOIN cases cs ON cs.id = cv.case_id"
                " JOIN cluster_members m ON m.voiceprint_id = cv.voiceprint_id WHERE m.cluster_id = ?", (cluster,))]
            for case_number in cases:
                lib.store.link_case(case_number, pid)
            lib.store.db.execute("UPDATE voice_clusters SET status = 'promoted', person_id = ? WHERE id = ?", (pid, cluster))
            lib.store.bump_generation()
            lib.store.audit("link.promote", f"cluster:{cluster}", person=pid, voiceprints=moved, cases=cases, note=note)
        lib._save_index()
    return {"cluster": cluster, "person_id": pid, "voiceprints": moved, "cases": cases}


# -- screening a batch ------------------------------------------------------------------------
def screen(lib, files, top: int = 3) -> list[dict]:
    """Run new recordings against the library and the unknown-voice clusters; stores nothing."""
    from . import quality as gates

    embedder = lib._embedder()
    from .scoring import domain_of

    space = link_space(lib.store, lib.model)
    threshold = space.threshold
    ids, cluster_ids, urows = _unknown_rows(lib.store, space)
    case_of = _cases_by_cluster(lib.store)
    rows = []
    for path in files:
        try:
            rec, voices = lib.call_voices(str(path))
        except VoiceprintError as err:  # one bad file must not stop a batch
            rows.append({"file": str(path), "error": str(err)})
            continue
        for v in voices:
            vector = embedder.embed(v.speech)
            hits = lib.search_vector(vector, top)
            best = hits[0] if hits else None
            link = None
            if len(ids):
                sims = space.scores(urows, space.rows(vector[None, :], [domain_of(rec.source_rate, rec.codec)],
                                                      [v.net_speech]))[:, 0]
                scores = {int(c): float(sims[cluster_ids == c].mean()) for c in np.unique(cluster_ids)}
                c, s = max(scores.items(), key=lambda kv: kv[1])
                link = {"cluster": c, "score": round(s, 4), "cases": case_of.get(c, [])}
            rows.append({
                "file": str(path), "channel": v.channel, "voice": v.voice, "segments": v.time_ranges(),
                "net_speech": v.net_speech, "quality": v.quality, "warnings": gates.query_warnings(v.quality),
                "person": best["person"]["name"] if best and best["cosine"] >= MATCH_THRESHOLD else None,
                "person_score": best["cosine"] if best else None,
                "cluster": link["cluster"] if link and link["score"] >= threshold else None,
                "cluster_score": link["score"] if link else None,
                "cluster_cases": link["cases"] if link and link["score"] >= threshold else [],
                "hits": hits,
            })
    with lib.store.transaction():
        lib.store.audit("screen", "", files=len(list(files)) if not isinstance(files, list) else len(files),
                        voices=len(rows), persons=sum(1 for r in rows if r.get("person")),
                        clusters=sum(1 for r in rows if r.get("cluster")))
    return rows


def _cases_by_cluster(store) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for c, case in store.db.execute(
            "SELECT DISTINCT m.cluster_id, cs.case_number FROM cluster_members m JOIN case_voices cv ON cv.voiceprint_id = m.voiceprint_id"
            " JOIN cases cs ON cs.id = cv.case_id ORDER BY cs.case_number"):
        out.setdefault(int(c), []).append(case)
    return out
