"""Case linking on real speech: are the recordings of unenrolled speakers grouped by speaker across cases?

speechocean762 speakers of one split (none of them enrolled anywhere). ``--fraudsters`` of them
each make 3 or 4 calls (a call's voice = the speech of two of their utterances, ~5-6 s net);
every call is its own synthetic case, together with the voice of a victim (another speaker
of the split; the victims are fewer than the cases, so a victim may be heard in several cases,
saying different things each time). The voices arrive in random order and are clustered
exactly as ``voiceprint case add-recording`` does (``linking.best_cluster`` /
``linking.closest_other_cluster``: incremental average linkage with merges).

Reported: pairwise precision and recall over all voices (a pair is linked when its two voices
end in the same cluster; it should be when they are the same speaker), and how many fraudsters'
case sets were recovered whole, for each way the product can score a link: the back end's
calibrated log-likelihood ratio (``llr``, when a back end is fitted - it is fitted on dev
speakers only), centred cosine (no back end, library of ``linking.CENTRE_MIN`` voiceprints or
more) and plain cosine. On ``--split dev`` a threshold grid
(choose there); on ``--split test`` the module's ``LINK_THRESHOLD`` / ``LINK_THRESHOLD_RAW``.

    python scripts/eval_linking.py --split dev
    python scripts/eval_linking.py --split test
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from recordings_common import Embeddings, manifest, speech_only, split_speakers


def voice_of(rows) -> np.ndarray:
    parts = []
    for r in rows:
        x, segs = speech_only(r["file"])
        parts += [x[int(s.start * 16000) : int(s.end * 16000)] for s in segs]
    return np.concatenate(parts)


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


def pairwise(labels: np.ndarray, truth: np.ndarray) -> dict:
    iu = np.triu_indices(len(labels), 1)
    same_c = (labels[:, None] == labels[None, :])[iu]
    same_s = (truth[:, None] == truth[None, :])[iu]
    tp = int((same_c & same_s).sum())
    p = tp / max(int(same_c.sum()), 1)
    r = tp / max(int(same_s.sum()), 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-9), 4),
            "linked_pairs": int(same_c.sum()), "true_pairs": int(same_s.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--fraudsters", type=int, default=0, help="How many speakers make calls (default: half the split).")
    ap.add_argument("--utts-per-call", type=int, default=2,
                    help="Utterances per call voice: 2 (~5-6 s net speech, the reported default) or 4 (~10-12 s).")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from voiceprint import linking

    by_speaker = manifest("speechocean762")
    dev, test = split_speakers(by_speaker)
    speakers = [s for s in (dev if args.split == "dev" else test) if len(by_speaker[s]) >= 12]
    rng = np.random.default_rng(5 if args.split == "dev" else 9)
    rng.shuffle(speakers)
    n_fraud = args.fraudsters or len(speakers) // 2
    fraudsters, victims = speakers[:n_fraud], speakers[n_fraud:]
    emb = Embeddings()
    t0 = time.time()
    voices, truth, cases, nets = [], [], [], []
    case_no = 0
    victim_pool = list(victims)
    for f in fraudsters:
        per = args.utts_per_call
        n_calls = int(rng.integers(3, 5)) if per == 2 else 12 // per
        utts = by_speaker[f]
        for k in range(n_calls):
            case_no += 1
            speech = voice_of(utts[per * k : per * k + per])
            voices.append(emb.samples(speech, "link-call"))
            nets.append(len(speech) / 16000)
            truth.append(f)
            cases.append(case_no)
            victim = victim_pool[(case_no - 1) % len(victim_pool)]
            slot = (case_no - 1) // len(victim_pool)  # a victim heard in several cases says different things
            speech = voice_of(by_speaker[victim][per * slot : per * slot + per])
            voices.append(emb.samples(speech, "link-call"))
            nets.append(len(speech) / 16000)
            truth.append(victim)  # the same victim in two cases is the same voice too
            cases.append(case_no)
        print(f"{len(voices)} voices, {time.time() - t0:.0f} s, {emb.computed} embedded", flush=True)
    V = np.vstack(voices)
    truth_arr = np.array(truth)
    order = rng.permutation(len(V))
    # The product centres on the library's mean voiceprint once it holds CENTRE_MIN of them; here the
    # voices being linked are that library (no one is enrolled), so the centre is their mean.
    from voiceprint.scoring import load_backend

    spaces = {"centred": linking.LinkSpace("centred", linking.LINK_THRESHOLD, centre=V.mean(axis=0)),
              "raw": linking.LinkSpace("cosine", linking.LINK_THRESHOLD_RAW)}
    backend = load_backend()
    if backend is not None:  # fitted on dev speakers only (voiceprint.evaluate.split_of)
        spaces["llr"] = linking.LinkSpace("llr", linking.LINK_LLR, backend=backend)
    if args.split == "dev":
        grids = {"centred": [0.35, 0.4, 0.45, 0.5, 0.55, 0.6], "raw": [0.55, 0.6, 0.65, 0.7, 0.75],
                 "llr": [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}
    else:
        grids = {"centred": [linking.LINK_THRESHOLD], "raw": [linking.LINK_THRESHOLD_RAW], "llr": [linking.LINK_LLR]}
    rows_of = {k: sp.rows(V, ["wideband"] * len(V), nets) for k, sp in spaces.items()}
    out = {"split": args.split, "utts_per_call": args.utts_per_call, "net_speech_mean_s": round(float(np.mean(nets)), 2),
           "fraudsters": len(fraudsters), "cases": case_no, "voices": len(V), "grid": []}
    for space, grid in grids.items():
        if space not in spaces:
            continue
        for t in grid:
            labels = np.empty(len(V), np.int64)
            labels[order] = cluster(rows_of[space][order], t, spaces[space].scores)
            row = {"space": space, "threshold": t} | pairwise(labels, truth_arr)
            whole = 0
            for f in fraudsters:
                mine = truth_arr == f
                whole += len(set(labels[mine])) == 1 and int((labels == labels[mine][0]).sum()) == int(mine.sum())
            row["fraudsters_recovered_whole"] = f"{whole}/{len(fraudsters)}"
            out["grid"].append(row)
            print(row, flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
