"""Accuracy by net-speech duration and by SNR on real speech: the evidence behind ``voiceprint.quality``.

Development speakers of speechocean762 (the split of ``voiceprint.corpora``). For every speaker:

- query sweep: the library holds each speaker as the mean of four enrolment utterances
  (utterances 9-12); the query is the speech of utterances 5-8, truncated to D seconds of net
  speech -> top-1 and EER by D;
- enrolment sweep: each speaker is enrolled with D seconds of net speech (from utterances 9-12);
  the query is the whole speech of utterances 5-8 -> top-1 and EER by D;
- noise: 3 s queries with white noise added at a given SNR (relative to the speech power), and
  what the two SNR estimators read on them (``audio.measure_quality``'s VAD-based ``snr_db`` and
  ``quality.frame_snr_db``, the one the gate uses), with 1 s of the same noise before and after.

    python scripts/eval_quality.py --json out/eval/quality_dev.json
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from voiceprint.corpora import Embeddings, manifest, person_centroids, speech_of, split_speakers

DURATIONS = [1.0, 2.0, 3.0, 5.0, 8.0]
SNRS = [0.0, 5.0, 10.0, 20.0]


def eer(scores: np.ndarray, truth: np.ndarray) -> float:
    tgt, non = scores[truth], scores[~truth]
    thr = np.sort(np.concatenate([tgt, non]))
    frr = np.searchsorted(np.sort(tgt), thr, side="left") / len(tgt)
    far = 1 - np.searchsorted(np.sort(non), thr, side="left") / len(non)
    i = int(np.argmin(np.abs(frr - far)))
    return float(100 * (frr[i] + far[i]) / 2)


def score(queries: np.ndarray, cents: np.ndarray) -> dict:
    s = queries @ cents.T
    truth = np.eye(len(cents), dtype=bool)
    return {"top1%": round(100 * float(np.mean(np.argmax(s, axis=1) == np.arange(len(cents)))), 1),
            "eer%": round(eer(s.reshape(-1), truth.reshape(-1)), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    by_speaker = manifest("speechocean762")
    dev, test = split_speakers(by_speaker, split="legacy")
    speakers = [s for s in (dev if args.split == "dev" else test) if len(by_speaker[s]) >= 12]
    emb = Embeddings()
    t0 = time.time()
    names, cents = person_centroids(emb, by_speaker, speakers, slice(8, 12))
    q_speech = {s: speech_of(by_speaker[s][4:8]) for s in speakers}
    e_speech = {s: speech_of(by_speaker[s][8:12]) for s in speakers}
    out: dict[str, Any] = {"split": args.split, "speakers": len(speakers), "query_sweep": [], "enrol_sweep": [], "noise": []}
    full_q = np.vstack([emb.samples(q_speech[s], "quality-q-full") for s in speakers])
    for d in DURATIONS:
        n = int(d * 16000)
        ok = [s for s in speakers if len(q_speech[s]) >= n and len(e_speech[s]) >= n]
        idx = [speakers.index(s) for s in ok]
        q = np.vstack([emb.samples(q_speech[s][:n], f"quality-q{d:g}") for s in ok])
        out["query_sweep"].append({"net_speech_s": d, "speakers": len(ok)} | score(q, cents[idx]))
        e = np.vstack([emb.samples(e_speech[s][:n], f"quality-e{d:g}") for s in ok])
        out["enrol_sweep"].append({"net_speech_s": d, "speakers": len(ok)} | score(full_q[idx], e))
        print(out["query_sweep"][-1], out["enrol_sweep"][-1], f"{time.time() - t0:.0f} s", flush=True)
    rng = np.random.default_rng(3)
    n = 3 * 16000
    ok = [s for s in speakers if len(q_speech[s]) >= n]
    idx = [speakers.index(s) for s in ok]
    from voiceprint import audio, quality

    for snr in SNRS:
        noisy: list[np.ndarray] = []
        measured: list[float] = []
        frame_measured: list = []
        for s in ok:
            x = q_speech[s][:n].astype(np.float64)
            sd = np.sqrt(np.mean(x**2) / 10 ** (snr / 10))
            noise = rng.normal(0, sd, n)
            noisy.append(emb.samples(np.clip(x + noise, -1, 1).astype(np.float32), f"quality-snr{snr:g}"))
            # the same noise before and after, as in a recording: what does our SNR estimator say?
            pad = rng.normal(0, sd, 16000)
            rec = np.clip(np.concatenate([pad, x + noise, pad]), -1, 1).astype(np.float32)
            ch = audio.Channel(0, rec, 16000)
            measured.append(audio.measure_quality(ch, audio.speech_segments(rec), "pcm", 16000)["snr_db"])
            frame_measured.append(quality.frame_snr_db(rec))
        out["noise"].append({"snr_db": snr, "net_speech_s": 3.0, "speakers": len(ok),
                             "estimated_snr_median": float(np.median(measured)),
                             "estimated_snr_p10": float(np.percentile(measured, 10)),
                             "frame_snr_median": float(np.median(frame_measured)),
                             "frame_snr_p10": float(np.percentile(frame_measured, 10))} | score(np.vstack(noisy), cents[idx]))
        print(out["noise"][-1], flush=True)
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
