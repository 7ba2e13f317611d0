"""Experiment: does a frequency warp at test time (resampling, so children's higher formants fall
where ECAPA's adult training data put them) help issue 3's identification test?

    .venv/bin/python scripts/experiments/exp_warp.py --alphas 1.0 0.9 0.85 0.8 [--json out/exp/warp.json]

speechocean762 only, the protocol of ``scripts/eval_library.py`` (3 enrolments per speaker in
manifest order, the rest queried, 166-way, plain cosine of normalised means). Each file goes
through the library's front end once; for a factor alpha the speech is resampled to 16000/alpha
samples per second and embedded as if it were 16 kHz, so every frequency is scaled by alpha.
Reported per half (``split_of``) and per age group, so a factor chosen on one half can be read on
the other.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from collections import OrderedDict
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "speechocean762"
SPEECH = ROOT / "out" / "cache" / "so762_speech.npz"


def speech_of(rows):
    from voiceprint.errors import AudioError
    from voiceprint.voices import read_voices

    if SPEECH.exists():
        return list(np.load(SPEECH, allow_pickle=True)["speech"])
    out: list = []
    for r in rows:
        try:
            out.append(read_voices(DATA / r["path"], None, channel=0, diarise=False, min_speech=0.3, measure=False)[1][0].speech)
        except AudioError:
            out.append(None)
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    np.savez(SPEECH, speech=arr)
    return out


def corpus():
    """speechocean762's manifest rows, each speaker's age, and each speaker's row numbers in order."""
    rows = list(csv.DictReader(open(DATA / "manifest.csv", newline="", encoding="utf-8")))
    ages = {r["speaker"]: int(r["age"]) for r in csv.DictReader(open(DATA / "speakers.csv", encoding="utf-8"))}
    by: OrderedDict[str, list[int]] = OrderedDict()
    for i, r in enumerate(rows):
        by.setdefault(r["speaker"], []).append(i)
    return rows, ages, by


def speaker_scores(vectors: np.ndarray, by, queries) -> np.ndarray:
    """queries x speakers cosines: each query row against each speaker's normalised mean of its first
    3 recordings (speakers in ``by`` order; ``queries`` = (speaker, row) pairs)."""
    m = np.stack([vectors[rows[:3]].mean(0) for rows in by.values()])
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    return np.stack([m @ vectors[i] for _, i in queries])


def warp(x: np.ndarray, alpha: float) -> np.ndarray:
    from scipy.signal import resample_poly

    if alpha == 1.0:
        return x
    f = Fraction(1 / alpha).limit_denominator(40)
    return resample_poly(x, f.numerator, f.denominator).astype(np.float32)


def main() -> None:
    import torch

    from voiceprint.embedding import get_embedder
    from voiceprint.evaluate import split_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alphas", type=float, nargs="+", default=[1.0, 0.9, 0.85, 0.8])
    ap.add_argument("--json", default=str(ROOT / "out" / "exp" / "warp.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows, ages, by = corpus()
    speech = speech_of(rows)
    enc = get_embedder().encoder
    vecs = {}
    out_path = Path(args.json)
    store = out_path.with_suffix(".npz")
    if store.exists():
        z = np.load(store)
        vecs = {float(k): z[k] for k in z.files}
    for a in args.alphas:
        if a in vecs:
            continue
        t0 = time.time()
        v = np.zeros((len(rows), 192), np.float32)
        with torch.inference_mode():
            for i, s in enumerate(speech):
                if s is None:
                    continue
                e = enc.encode_batch(torch.from_numpy(warp(s, a))[None])[0, 0].numpy()
                v[i] = e / np.linalg.norm(e)
        vecs[a] = v
        np.savez(store, **{str(k): x for k, x in vecs.items()})
        print(f"alpha {a}: embedded in {time.time() - t0:.0f} s", flush=True)

    names = list(by)
    queries = [(s, i) for s, idx in by.items() for i in idx[3:] if speech[i] is not None]

    def scores(v):
        return speaker_scores(v, by, queries)

    def report(S):
        hit = np.array([names[int(np.argmax(S[k]))] == s for k, (s, _) in enumerate(queries)])
        grp = {
            "all": np.ones(len(queries), bool),
            "dev": np.array([split_of(s) == "dev" for s, _ in queries]),
            "test": np.array([split_of(s) == "test" for s, _ in queries]),
            "child": np.array([ages[s] <= 12 for s, _ in queries]),
            "adult": np.array([ages[s] > 12 for s, _ in queries]),
        }
        return {k: round(float(hit[g].mean()) * 100, 2) for k, g in grp.items()}

    result = {}
    base = scores(vecs[1.0]) if 1.0 in vecs else None
    for a, v in sorted(vecs.items(), reverse=True):
        S = scores(v)
        result[f"alpha {a}"] = report(S)
        if base is not None and a != 1.0:
            result[f"fused 1.0+{a}"] = report((base + S) / 2)
    allv = [scores(v) for v in vecs.values()]
    result["fused all"] = report(np.mean(allv, axis=0))
    for k, r in result.items():
        print(f"{k:>16}: " + "  ".join(f"{g} {x:.2f}" for g, x in r.items()))
    out_path.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
