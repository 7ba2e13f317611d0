"""Case linking on real speech: are the recordings of unenrolled speakers grouped by speaker across cases?

speechocean762 speakers of one split (none of them enrolled anywhere). ``--fraudsters`` of them
each make 3 or 4 calls (a call's voice = the speech of two of their utterances, ~5-6 s net);
every call is its own synthetic case, together with the voice of a victim (another speaker
of the split; the victims are fewer than the cases, so a victim may be heard in several cases,
saying different things each time). The voices are clustered exactly as the library holds them
after ``voiceprint case add-recording``: ``linking.agglomerate`` (average linkage over all unknown
voices; two voices of one recording never linked), method ``recluster``. The one-by-one assignment
that precedes it (``linking.best_cluster`` / ``closest_other_cluster``, in random arrival order)
is reported too, as ``incremental``.

Reported: pairwise precision and recall over all voices (a pair is linked when its two voices
end in the same cluster; it should be when they are the same speaker), and how many fraudsters'
case sets were recovered whole, for each way the product can score a link: the back end's
calibrated log-likelihood ratio (``llr``), centred cosine (no back end, library of
``linking.CENTRE_MIN`` voiceprints or more) and plain cosine.

``--split dev`` prints threshold grids to choose from. The product's back end was fitted on the
dev speakers, so its dev LLRs are optimistic; the LLR threshold is therefore chosen on
``llr-heldout``: the dev speakers split in the two folds of ``voiceprint backend fit``, each
fold's voices scored by a back end fitted (same recipe and calibration) on the other fold only.
``--split test`` reports the module's thresholds with the product's back end, once.

    python scripts/eval_linking.py --split dev --fraudsters 30
    python scripts/eval_linking.py --split test --fraudsters 30
    python scripts/eval_linking.py --split test --fraudsters 30 --phone-share 0.5   # half the calls through AMR-NB
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from voiceprint.audio import MIN_SPEECH_SECONDS as MIN_QUERY_SPEECH_S
from voiceprint.corpora import Embeddings, manifest, split_speakers, voice_of
from voiceprint.fitting import fold_of  # the cross-fitting folds of the back end


def cluster(rows: np.ndarray, threshold: float, scores) -> np.ndarray:
    """Incremental clustering in arrival order, with the product's own functions."""
    from voiceprint import linking

    ids = np.zeros(0, np.int64)
    clusters = np.zeros(0, np.int64)
    next_id = 0
    for i, v in enumerate(rows):
        best, score = linking.best_cluster(v, ids, clusters, rows[ids], scores=scores)
        if best is None or score < threshold:
            best, next_id = next_id, next_id + 1
            joined = False
        else:
            joined = True
        ids = np.append(ids, i)
        clusters = np.append(clusters, best)
        while joined:
            other, _ = linking.closest_other_cluster(best, ids, clusters, rows[ids], threshold=threshold, scores=scores)
            if other is None:
                break
            clusters[clusters == other] = best
    out = np.empty(len(rows), np.int64)
    out[ids] = clusters
    return out


def pair_counts(labels: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(true links, links made, true pairs) over all pairs of voices."""
    iu = np.triu_indices(len(labels), 1)
    same_c = (labels[:, None] == labels[None, :])[iu]
    same_s = (truth[:, None] == truth[None, :])[iu]
    return np.array([int((same_c & same_s).sum()), int(same_c.sum()), int(same_s.sum())])


def pairwise(counts) -> dict:
    tp, linked, true = (int(x) for x in counts)
    p, r = tp / max(linked, 1), tp / max(true, 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-9), 4),
            "linked_pairs": linked, "true_pairs": true}


def recovered_whole(labels: np.ndarray, truth: np.ndarray, fraudsters) -> int:
    """Fraudsters whose calls all ended in one cluster holding nothing else."""
    whole = 0
    for f in fraudsters:
        mine = truth == f
        if mine.any():
            whole += len(set(labels[mine])) == 1 and int((labels == labels[mine][0]).sum()) == int(mine.sum())
    return whole


def nearest_suggestions(labels: np.ndarray, rows: np.ndarray, scores, truth: np.ndarray, calls: np.ndarray) -> dict:
    """How good the listing's "closest other voice" is (``Links._nearest``): for each cluster, the other cluster of
    highest average linkage (never one holding the other side of a member's call). A fragment is a cluster whose
    speaker (its majority) has a larger cluster elsewhere: its nearest should be one of that speaker's."""
    from voiceprint import linking

    ids = np.arange(len(labels))
    owner = {int(c): max(sorted(set(truth[labels == c].tolist())), key=lambda s: int((truth[labels == c] == s).sum()))
             for c in set(labels.tolist())}
    size = {int(c): int((labels == c).sum()) for c in set(labels.tolist())}
    fragments = right = suggested = same = 0
    right_scores: list[float] = []
    wrong_scores: list[float] = []
    for c in sorted(owner):
        members = labels == c
        banned = set(np.flatnonzero(np.isin(calls, calls[members]) & ~members).tolist())
        best, score = linking.closest_other_cluster(c, ids, labels, rows, banned, -np.inf, scores)
        if best is None:
            continue
        suggested += 1
        same += int(owner[best] == owner[c])
        (right_scores if owner[best] == owner[c] else wrong_scores).append(score)
        mine = [k for k in owner if owner[k] == owner[c] and k != c]
        if mine and size[c] <= max(size[k] for k in mine):  # a fragment: its speaker has a cluster at least as large
            fragments += 1
            right += int(owner[best] == owner[c])
    pct = lambda x, q: round(float(np.percentile(x, q)), 3) if x else None  # noqa: E731
    return {"fragments": fragments, "fragments_nearest_right": right, "clusters_with_nearest": suggested,
            "nearest_same_speaker": same, "nearest_score_same_p10_p50": [pct(right_scores, 10), pct(right_scores, 50)],
            "nearest_score_other_p50_p90_max": [pct(wrong_scores, 50), pct(wrong_scores, 90), pct(wrong_scores, 100)]}


def fold_backends(backend) -> dict:
    """fold -> a back end fitted like ``backend`` (same shrinkage, cohort size, calibration) on the other fold's dev speakers."""
    from voiceprint.fitting import DEFAULT_PLAN, fit_core, fitting_items, load_dev

    items = fitting_items(load_dev(DEFAULT_PLAN, None))
    out = {}
    for k in (0, 1):
        b = fit_core([i for i in items if fold_of(i.speaker) != k], backend.meta["shrink"], backend.top_n, None)
        b.calibration, b.llr_limit, b.quality = backend.calibration, backend.llr_limit, backend.quality
        out[k] = b
    return out


def phone_copy(speech: np.ndarray) -> np.ndarray:
    """16 kHz speech as the library reads it back from an AMR-NB 12.2 kbit/s call of it (8 kHz, telephone band)."""
    import os
    import tempfile

    from voiceprint import audio, telephone

    fd, tmp = tempfile.mkstemp(suffix=".amr")
    os.close(fd)
    try:
        telephone.encode(telephone.to_phone_band(speech, 16000), "amrnb", tmp)
        return audio.load_recording(tmp, channels=0).channels[0].samples
    finally:
        os.unlink(tmp)


def build_voices(split: str, n_fraudsters: int = 0, per: int = 2, draw: int = 0, phone_share: float = 0.0) -> dict:
    """The synthetic cases of one split: voice embeddings, their speakers, calls, net speech, arrival order, and the
    domain of each voice (``phone_share`` of the calls heard through AMR-NB, the rest as recorded at 16 kHz)."""
    by_speaker = manifest("speechocean762")
    dev, test = split_speakers(by_speaker)
    speakers = [s for s in (dev if split == "dev" else test) if len(by_speaker[s]) >= 12]
    # draw 0 is the split's original set of cases; other draws pick other fraudsters and victims
    rng = np.random.default_rng((5 if split == "dev" else 9) + 1000 * draw)
    rng.shuffle(speakers)
    n_fraud = n_fraudsters or len(speakers) // 2
    fraudsters, victims = speakers[:n_fraud], speakers[n_fraud:]
    emb = Embeddings()
    t0 = time.time()
    voices, truth, cases, nets, sides, domains = [], [], [], [], [], []
    channel_rng = np.random.default_rng(77 + draw)
    case_no = 0
    victim_pool = list(victims)
    for f in fraudsters:
        n_calls = int(rng.integers(3, 5)) if per == 2 else 12 // per
        utts = by_speaker[f]
        for k in range(n_calls):
            case_no += 1
            by_phone = channel_rng.random() < phone_share  # both voices of a call come through its channel
            victim = victim_pool[(case_no - 1) % len(victim_pool)]
            slot = (case_no - 1) // len(victim_pool)  # a victim heard in several cases says different things
            # the fraudster's voice, then the victim's (the same victim in two cases is the same voice too)
            for side, (who, rows) in enumerate(((f, utts[per * k : per * k + per]),
                                                (victim, by_speaker[victim][per * slot : per * slot + per]))):
                speech, net = voice_of(rows)
                if net < MIN_QUERY_SPEECH_S:  # the library refuses such a voice: it never reaches linking
                    continue
                if by_phone:
                    voices.append(emb.samples(phone_copy(speech), "link-call-amrnb"))
                else:
                    voices.append(emb.samples(speech, "link-call"))
                domains.append("narrowband" if by_phone else "wideband")
                nets.append(net)
                truth.append(who)
                cases.append(case_no)
                sides.append(side)
        print(f"{len(voices)} voices, {time.time() - t0:.0f} s, {emb.computed} embedded", flush=True)
    return {"V": np.vstack(voices), "truth": np.array(truth), "calls": np.array(cases), "nets": np.array(nets), "sides": np.array(sides),
            "domains": np.array(domains),
            "order": rng.permutation(len(voices)), "fraudsters": fraudsters, "cases": case_no}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--fraudsters", type=int, default=0, help="How many speakers make calls (default: half the split).")
    ap.add_argument("--utts-per-call", type=int, default=2,
                    help="Utterances per call voice: 2 (~5-6 s net speech, the reported default) or 4 (~10-12 s).")
    ap.add_argument("--draw", type=int, default=0, help="another random set of fraudsters, victims and cases (0 = the original)")
    ap.add_argument("--phone-share", type=float, default=0.0,
                    help="Share of the calls heard through AMR-NB (8 kHz) instead of 16 kHz: mixed channels (default 0).")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from voiceprint import linking

    data = build_voices(args.split, args.fraudsters, args.utts_per_call, args.draw, args.phone_share)
    doms = data["domains"]
    V, truth_arr, calls, nets, order = data["V"], data["truth"], data["calls"], data["nets"], data["order"]
    sides = data["sides"]  # 0: the fraudster's voice of a call, 1: the victim's
    fraudsters, case_no = data["fraudsters"], data["cases"]
    # Without a back end the product centres on the library's mean voiceprint once it holds CENTRE_MIN of them; here the
    # voices being linked are that library (no one is enrolled), so the centre is their mean.
    from voiceprint.scoring import load_backend

    everyone = np.ones(len(V), bool)
    limits = linking.thresholds()  # the model's own (VOICEPRINT_MODEL picks the model)
    spaces = {"centred": [(everyone, linking.LinkSpace("centred", limits["centred"], centre=V.mean(axis=0)))],
              "raw": [(everyone, linking.LinkSpace("cosine", limits["cosine"]))]}
    backend = load_backend()
    if backend is not None:  # fitted on dev speakers only (voiceprint.evaluate.split_of)
        spaces["llr"] = [(everyone, linking.LinkSpace("llr", limits["llr"], backend=backend))]
        if args.split == "dev":
            spaces["llr-heldout"] = [(np.array([fold_of(s) == k for s in truth_arr]), linking.LinkSpace("llr", limits["llr"], backend=b))
                                     for k, b in fold_backends(backend).items()]
    if args.split == "dev":
        grids = {"centred": [0.4, 0.45, 0.5, 0.55], "raw": [0.6, 0.65, 0.7],
                 "llr": [2.0, 3.0, 4.0, 5.0], "llr-heldout": [2.0, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0]}
    else:
        grids = {"centred": [limits["centred"]], "raw": [limits["cosine"]], "llr": [limits["llr"]]}
    from voiceprint.embedding import load_spec

    out = {"model": load_spec(None).name, "split": args.split, "draw": args.draw, "utts_per_call": args.utts_per_call,
           "phone_share": args.phone_share,
           "net_speech_mean_s": round(float(np.mean(nets)), 2),
           "fraudsters": len(fraudsters), "cases": case_no, "voices": len(V), "grid": []}
    for space, grid in grids.items():
        if space not in spaces:
            continue
        rows_of = [(m, sp, sp.rows(V[m], list(doms[m]), nets[m])) for m, sp in spaces[space]]
        for t in grid:
            for method in ("recluster", "incremental"):
                counts, whole = np.zeros(3, np.int64), 0
                for m, sp, rows in rows_of:
                    idx = np.flatnonzero(m)
                    if method == "recluster":
                        labels = linking.agglomerate(rows, t, sp.scores, sides=list(zip(calls[m], sides[m])))
                    else:
                        arrival = np.argsort(np.argsort(order)[idx])  # the voices' order in the random arrival
                        labels = np.empty(len(idx), np.int64)
                        labels[arrival] = cluster(rows[arrival], t, sp.scores)
                    counts += pair_counts(labels, truth_arr[m])
                    whole += recovered_whole(labels, truth_arr[m], fraudsters)
                row = {"space": space, "method": method, "threshold": t} | pairwise(counts)
                row["fraudsters_recovered_whole"] = f"{whole}/{len(fraudsters)}"
                if method == "recluster" and len(rows_of) == 1:  # the listing's suggestion, on the product's clusters
                    m, sp, rows = rows_of[0]
                    labels = linking.agglomerate(rows, t, sp.scores, sides=list(zip(calls[m], sides[m])))
                    row |= nearest_suggestions(labels, rows, sp.scores, truth_arr[m], calls[m])
                out["grid"].append(row)
                print(row, flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
