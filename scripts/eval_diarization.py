"""Diarisation on two-speaker conversations built from real recordings (speechocean762).

Each conversation alternates four utterances of speaker A with four of speaker B (who starts is
random), with 0.2-0.8 s pauses between turns and, at 30 % of the turn changes, the next speaker
starting 0.3-1.0 s before the previous one stops (overlap). Each utterance is levelled to
-23 dBFS speech RMS +-3 dB. The ground truth is the VAD of each utterance on its own, shifted to
where it was placed, so who speaks when is known exactly.

Reported (per split):
- DER (own implementation, 10 ms frames, 0.25 s collar around every reference boundary, overlap
  scored: our output has one speaker per frame, so overlapped speech counts as missed for one of
  the two), with its parts: missed speech, false alarm, speaker confusion;
- how many voices were found (2 is right), and for one-speaker recordings built the same way
  (A's four utterances only) how often they were wrongly split;
- top-1 identification of each speaker from their diarised voice vs from their own clean
  utterances alone, against a library of every speaker of the split (4 other utterances each).

    python scripts/eval_diarization.py --split dev            # threshold grid (choose here)
    python scripts/eval_diarization.py --split test           # report with diarize.SPLIT_THRESHOLD
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np

from voiceprint.corpora import Embeddings, manifest, person_centroids, speech_of, speech_only, split_speakers, top1

CONV_UTTS = slice(0, 4)
ENROL_UTTS = slice(8, 12)
FRAME = 0.01
COLLAR = 0.25


def build(rng, turns: list[tuple[int, dict]]) -> tuple[np.ndarray, list[tuple[float, float, int]]]:
    """Place utterances one after another; returns (samples, reference [(start, end, speaker)])."""
    sr = 16000
    pieces, ref = [], []
    prev_end = None
    for spk, row in turns:
        x, segs = speech_only(row["file"])
        if not segs:
            continue
        on, off = segs[0].start, segs[-1].end
        if prev_end is None:
            gap = 0.5
        elif rng.random() < 0.3 and len({t[0] for t in turns}) > 1:
            gap = -rng.uniform(0.3, 1.0)
        else:
            gap = rng.uniform(0.2, 0.8)
        start = (0.0 if prev_end is None else prev_end) + gap - on
        start = max(start, 0.0)
        speech = np.concatenate([x[int(s.start * sr) : int(s.end * sr)] for s in segs])
        rms = float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) or 1e-6
        gain = 10 ** ((-23 + rng.uniform(-3, 3)) / 20) / rms
        pieces.append((int(round(start * sr)), x * gain))
        ref += [(start + s.start, start + s.end, spk) for s in segs]
        prev_end = start + off
    n = max(a + len(x) for a, x in pieces) + sr // 2
    out = np.zeros(n, np.float32)
    for a, x in pieces:
        out[a : a + len(x)] += x.astype(np.float32)
    out += rng.normal(0, 10 ** (-65 / 20), n).astype(np.float32)  # a faint noise floor, as on any recorder
    return np.clip(out, -1, 1), ref


def frames_of(intervals, n) -> np.ndarray:
    m = np.zeros(n, bool)
    for a, e in intervals:
        m[int(round(a / FRAME)) : int(round(e / FRAME))] = True
    return m


def der(ref: list[tuple[float, float, int]], hyp: list[list[tuple[float, float]]], duration: float) -> dict:
    """NIST-style DER with a collar, best one-to-one mapping of hypothesis to reference speakers."""
    n = int(np.ceil(duration / FRAME)) + 1
    spk = sorted({s for _, _, s in ref})
    R = np.vstack([frames_of([(a, e) for a, e, s in ref if s == k], n) for k in spk])
    H = np.vstack([frames_of(v, n) for v in hyp]) if hyp else np.zeros((0, n), bool)
    scored = np.ones(n, bool)
    for a, e, _ in ref:
        for t in (a, e):
            scored[max(0, int(round((t - COLLAR) / FRAME))) : int(round((t + COLLAR) / FRAME))] = False
    R, H = R[:, scored], H[:, scored]
    n_ref, n_hyp = R.sum(0), H.sum(0)
    best = 0
    for perm in itertools.permutations(range(max(len(spk), len(H))), len(H)):
        correct = sum(int((H[i] & R[j]).sum()) for i, j in enumerate(perm) if j < len(spk))
        best = max(best, correct)
    total = int(n_ref.sum())
    miss = int(np.maximum(n_ref - n_hyp, 0).sum())
    fa = int(np.maximum(n_hyp - n_ref, 0).sum())
    conf = int(np.minimum(n_ref, n_hyp).sum()) - best
    return {"total": total, "miss": miss, "fa": fa, "conf": conf}


def conversations(by_speaker, speakers, seed):
    rng = np.random.default_rng(seed)
    order = list(speakers)
    rng.shuffle(order)
    for a, b in zip(order[0::2], order[1::2], strict=False):
        ua, ub = by_speaker[a][CONV_UTTS], by_speaker[b][CONV_UTTS]
        first = rng.random() < 0.5
        turns = []
        for x, y in zip(ua, ub, strict=False):
            turns += [(0, x), (1, y)] if first else [(1, y), (0, x)]
        yield (a, b), turns, rng


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--pairs", type=int, default=0, help="Limit the number of conversations (0: all).")
    ap.add_argument("--threshold", type=float, default=None, help="Split threshold for the test report.")
    ap.add_argument("--json", type=str, default="", help="Write the figures to this JSON file.")
    ap.add_argument("--no-merge", action="store_true", help="Skip the back-end merge of voices (the product merges).")
    ap.add_argument("--merge-llr", type=float, default=None, help="Merge threshold (default diarize.MERGE_MIN_LLR).")
    args = ap.parse_args()

    from voiceprint import audio, diarize

    if args.merge_llr is not None:
        diarize.MERGE_MIN_LLR = args.merge_llr
    domain = None if args.no_merge else "wideband"  # the mixtures are 16 kHz speech, as the library would see them
    by_speaker = manifest("speechocean762")
    dev, test = split_speakers(by_speaker)
    speakers = dev if args.split == "dev" else test
    speakers = [s for s in speakers if len(by_speaker[s]) >= 12]
    emb = Embeddings()
    t0 = time.time()
    grid = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5] if args.split == "dev" else [args.threshold or diarize.SPLIT_THRESHOLD]
    tally = {t: {"total": 0, "miss": 0, "fa": 0, "conf": 0, "n2": 0, "convs": 0, "solo": 0, "solo_split": 0} for t in grid}
    ident = {"clean": 0, "diar": 0, "n": 0}
    names: list[str] = []
    cents = np.zeros((0, 1))
    if args.split == "test":
        names, cents = person_centroids(emb, by_speaker, speakers, ENROL_UTTS)
    win_variant = f"diarwin{diarize.WINDOW_S}/{diarize.HOP_S}"
    for k, ((a, b), turns, rng) in enumerate(conversations(by_speaker, speakers, seed=7 if args.split == "dev" else 11)):
        if args.pairs and k >= args.pairs:
            break
        mix, ref = build(rng, turns)
        segs = audio.speech_segments(mix)
        spans = diarize.window_spans(segs)
        V = emb.matrix(mix, win_variant, lambda mix=mix, spans=spans: diarize.embed_windows(mix, spans, emb.embedder)) if len(spans) else None
        solo, _ = build(rng, [t for t in turns if t[0] == 0])
        ssegs = audio.speech_segments(solo)
        sspans = diarize.window_spans(ssegs)
        SV = emb.matrix(solo, win_variant, lambda solo=solo, sspans=sspans: diarize.embed_windows(solo, sspans, emb.embedder)) if len(sspans) else None
        for t in grid:
            voices = diarize.diarize(mix, segs, emb.embedder, threshold=t, window_vectors=V, domain=domain)
            d = der(ref, [[(s.start, s.end) for s in v.segments] for v in voices], len(mix) / 16000)
            for key in ("total", "miss", "fa", "conf"):
                tally[t][key] += d[key]
            tally[t]["n2"] += len(voices) == 2
            tally[t]["convs"] += 1
            svoices = diarize.diarize(solo, ssegs, emb.embedder, threshold=t, window_vectors=SV, domain=domain)
            tally[t]["solo"] += 1
            tally[t]["solo_split"] += len(svoices) > 1
        if args.split == "test":
            for who, name in ((0, a), (1, b)):
                truth = [(s, e) for s, e, w in ref if w == who]
                clean = speech_of([r for _, r in turns if _ == who])  # each turn's file alone, as enrolled
                ident["clean"] += top1(emb.samples(clean, "clean-turns"), names, cents) == name
                overlap = [sum(max(0.0, min(e, s.end) - max(a_, s.start)) for a_, e in truth for s in v.segments)
                           for v in voices]
                v = voices[int(np.argmax(overlap))]
                ident["diar"] += top1(emb.samples(v.speech, "diar-voice"), names, cents) == name
                ident["n"] += 1
        print(f"{k + 1} conversations, {time.time() - t0:.0f} s, {emb.computed} embedded", flush=True)
    rows = []
    for t in grid:
        x = tally[t]
        tot = max(x["total"], 1)
        rows.append({"threshold": t, "DER%": round(100 * (x["miss"] + x["fa"] + x["conf"]) / tot, 2),
                     "miss%": round(100 * x["miss"] / tot, 2), "fa%": round(100 * x["fa"] / tot, 2),
                     "conf%": round(100 * x["conf"] / tot, 2), "two_voices": f"{x['n2']}/{x['convs']}",
                     "one_speaker_split": f"{x['solo_split']}/{x['solo']}"})
    for r in rows:
        print(r)
    out = {"split": args.split, "speakers": len(speakers), "grid": rows,
           "merge_llr": None if args.no_merge else diarize.MERGE_MIN_LLR, "model": emb.embedder.spec.name}
    if ident["n"]:
        out["top1_clean"] = round(100 * ident["clean"] / ident["n"], 2)
        out["top1_diarised"] = round(100 * ident["diar"] / ident["n"], 2)
        out["speakers_scored"] = ident["n"]
        out["library_size"] = len(names)
        print(f"top-1 clean {out['top1_clean']}%  after diarisation {out['top1_diarised']}%  ({ident['n']} speakers,"
              f" library of {len(names)})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
