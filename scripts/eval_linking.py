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
case sets were recovered whole, for centred cosine (the product's scoring once the library
holds ``linking.CENTRE_MIN`` voiceprints) and plain cosine. On ``--split dev`` a threshold grid
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


def cluster(vectors: np.ndarray, threshold: float) -> np.ndarray:
    """Incremental clustering in arrival order, with the product's own functions."""
    from voiceprint import linking

    ids = np.zeros(0, np.int64)
    clusters = np.zeros(0, np.int64)
    next_id = 0
    for i, v in enumerate(vectors):
        best, score = linking.best_cluster(v, ids, clusters, vectors[ids])
        if best is None or score < threshold:
            best, next_id = next_id, next_id + 1
            joined = False
        else:
            joined = True
        ids = np.append(ids, i)
        clusters = np.append(clusters, best)
        while joined:
            other, _ = linking.closest_other_cluster(best, ids, clusters, vectors[ids], threshold=threshold)
            if other is None:
                break
            clusters[clusters == other] = best
    out = np.empty(len(vectors), np.int64)
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
    ap.add_argument("--threshold", type=float, default=None)
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
    voices, truth, cases = [], [], []
    case_no = 0
    victim_pool = list(victims)
    for f in fraudsters:
        n_calls = int(rng.integers(3, 5))
        utts = by_speaker[f]
        for k in range(n_calls):
            case_no += 1
            voices.append(emb.samples(voice_of(utts[2 * k : 2 * k + 2]), "link-call"))
            truth.append(f)
            cases.append(case_no)
            victim = victim_pool[(case_no - 1) % len(victim_pool)]
            slot = (case_no - 1) // len(victim_pool)  # a victim heard in several cases says different things
            voices.append(emb.samples(voice_of(by_speaker[victim][2 * slot : 2 * slot + 2]), "link-call"))
            truth.append(victim)  # the same victim in two cases is the same voice too
            cases.append(case_no)
        print(f"{len(voices)} voices, {time.time() - t0:.0f} s, {emb.computed} embedded", flush=True)
    V = np.vstack(voices)
    truth_arr = np.array(truth)
    order = rng.permutation(len(V))
    # The product centres on the library's mean voiceprint once it holds CENTRE_MIN of them; here the
    # voices being linked are that library (no one is enrolled), so the centre is their mean.
    spaces = {"centred": linking.centred(V, V.mean(axis=0)), "raw": V}
    if args.split == "dev":
        grids = {"centred": [0.35, 0.4, 0.45, 0.5, 0.55, 0.6], "raw": [0.55, 0.6, 0.65, 0.7, 0.75]}
    else:
        grids = {"centred": [args.threshold if args.threshold is not None else linking.LINK_THRESHOLD],
                 "raw": [linking.LINK_THRESHOLD_RAW]}
    out = {"split": args.split, "fraudsters": len(fraudsters), "cases": case_no, "voices": len(V), "grid": []}
    for space, grid in grids.items():
        for t in grid:
            labels = np.empty(len(V), np.int64)
            labels[order] = cluster(spaces[space][order], t)
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
