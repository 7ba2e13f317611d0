"""Can a cheap screen skip diarisation's ECAPA windows for recordings that clearly hold one voice? (issue 16: no)

The screen tried embeds the sparse first pass's windows (one 1.5 s window every 3 s of speech, the
same spans diarisation's first pass uses) with the library's CAM++ network in ONNX Runtime
(:func:`screen_vectors`) and would call the recording one voice when every pair of them is at least
a cosine alike; otherwise diarisation would run as before. This script
measures, on **development speakers only** (``voiceprint.evaluate.split_of``), the lowest pairwise
cosine of the screen's windows in:

- two-voice recordings built from speechocean762 utterances as ``scripts/eval_diarization.py``
  builds them (pauses, 30 % overlapping turn changes, levelled), with 1+1, 2+1, 2+2 and 4+4 turns;
- one-voice recordings: single utterances and each speaker's 4 utterances joined the same way.

For a grid of thresholds it prints how many two-voice recordings the screen would pass as one voice
(must be 0) and how many one-voice recordings it saves the ECAPA windows for.

    python scripts/experiments/one_voice_screen.py --pairs 15 --json out/eval/one_voice.json

Result (docs/benchmarks.md, 1d): CAM++'s 1.5 s windows of one speaker are too unlike each other - the
one-voice and two-voice ranges overlap, so no threshold both passes no two-voice recording with a
margin and saves much; not adopted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from voiceprint.corpora import manifest, split_speakers  # noqa: E402

TURNS = {"1+1": [0, 1], "2+1": [0, 1, 0], "2+2": [0, 1, 0, 1], "4+4": [0, 1, 0, 1, 0, 1, 0, 1]}
GRID = [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7]


def _builder():
    spec = importlib.util.spec_from_file_location("eval_diarization", Path(__file__).resolve().parents[1] / "eval_diarization.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.build


def screen_vectors(samples: np.ndarray, spans: list[tuple[float, float]], embedder, sr: int = 16000) -> np.ndarray | None:
    """L2-normalised CAM++ (ONNX Runtime) embeddings of the sparse first pass's windows (every
    ``diarize.COARSE_EVERY``-th), or None without an ONNX network or with fewer than two."""
    import torch

    from voiceprint import diarize

    coarse = spans[:: diarize.COARSE_EVERY]
    if embedder.onnx_network is None or len(coarse) < 2:
        return None
    with torch.inference_mode():
        x = np.stack([embedder._encode(torch.from_numpy(np.ascontiguousarray(samples[int(round(a * sr)):int(round(e * sr))])).unsqueeze(0))
                      for a, e in coarse]).astype(np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def screen_cosine(samples: np.ndarray, embedder) -> float | None:
    """Lowest pairwise cosine of the screen's windows, or None where diarisation would not look
    (too little speech or too few windows: one voice without any check)."""
    from voiceprint import audio, diarize

    segs = audio.speech_segments(samples)
    if sum(s.duration for s in segs) < diarize.MIN_DIARIZE_SPEECH_S:
        return None
    spans = diarize.window_spans(segs)
    if len(spans) < 3:
        return None
    vectors = screen_vectors(samples, spans, embedder)
    return None if vectors is None else float((vectors @ vectors.T).min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=0, help="at most this many speaker pairs (0: all)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from voiceprint.embedding import get_embedder

    build = _builder()
    embedder = get_embedder(None)
    by_speaker = manifest("speechocean762")
    dev, _ = split_speakers(by_speaker)
    dev = [s for s in dev if len(by_speaker[s]) >= 4]
    rng = np.random.default_rng(23)
    order = list(dev)
    rng.shuffle(order)
    pairs = list(zip(order[0::2], order[1::2], strict=False))[: args.pairs or None]
    two: dict[str, list[float]] = {k: [] for k in TURNS}
    one: dict[str, list[float]] = {"single file": [], "4 utterances": []}
    skipped = {"two": 0, "one": 0}
    t0 = time.time()
    for k, (a, b) in enumerate(pairs):
        for name, pattern in TURNS.items():
            used = {0: 0, 1: 0}
            turns = []
            for who in pattern:
                turns.append((who, by_speaker[(a, b)[who]][used[who]]))
                used[who] += 1
            mix, _ = build(rng, turns)
            c = screen_cosine(mix, embedder)
            if c is None:
                skipped["two"] += 1
            else:
                two[name].append(c)
        for speaker in (a, b):
            solo, _ = build(rng, [(0, r) for r in by_speaker[speaker][:4]])
            for key, x in [("4 utterances", solo)] + [("single file", build(rng, [(0, r)])[0]) for r in by_speaker[speaker][:2]]:
                c = screen_cosine(x, embedder)
                if c is None:
                    skipped["one"] += 1
                else:
                    one[key].append(c)
        print(f"{k + 1}/{len(pairs)} pairs, {time.time() - t0:.0f} s", flush=True)
    all_two = [c for v in two.values() for c in v]
    all_one = [c for v in one.values() for c in v]
    print(f"\ntwo-voice recordings screened: {len(all_two)} (highest lowest-cosine {max(all_two):.3f}); "
          f"one-voice: {len(all_one)} (median {np.median(all_one):.3f}); not screened (no check anyway): {skipped}")
    for name, v in {**two, **one}.items():
        if v:
            print(f"  {name:14s} n={len(v):4d}  lowest-cosine min {min(v):.3f}  median {np.median(v):.3f}  max {max(v):.3f}")
    rows = []
    for t in GRID:
        rows.append({"threshold": t, "two_voice_passed": sum(c >= t for c in all_two),
                     "one_voice_saved": sum(c >= t for c in all_one), "one_voice": len(all_one)})
        print(rows[-1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": embedder.spec.name, "dev_pairs": len(pairs), "grid": rows, "skipped": skipped,
                                         "two_voice": {k: [round(c, 4) for c in v] for k, v in two.items()},
                                         "one_voice": {k: [round(c, 4) for c in v] for k, v in one.items()}}, indent=2))


if __name__ == "__main__":
    main()
