"""Experiment: does fusing ECAPA with a second, different embedding (Resemblyzer's GE2E LSTM,
Apache-2.0 weights from its PyPI wheel) help issue 3's identification test?

    .venv/bin/python scripts/experiments/exp_fusion_ge2e.py --weights out/exp/ge2e/resemblyzer/pretrained.pt

speechocean762, the protocol of ``scripts/eval_library.py`` (3 enrolments, the rest queried,
166-way). Both models see the same front-end speech (``out/cache/so762_speech.npz`` from
``scripts/experiments/exp_warp.py``). Fused score = w * cos_ECAPA + (1 - w) * cos_GE2E, with w chosen on the
dev half's queries and read on the test half's (and the reverse). Then the same with each model's
vectors centred on the mean of the half whose queries are not reported (``centred_variant``):
the form the ``ecapa-ge2e`` fusion model takes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from exp_warp import corpus, speaker_scores  # a sibling experiment: the same corpus and protocol

ROOT = Path(__file__).resolve().parents[2]

DATA = ROOT.parent / "shared" / "data" / "speechocean762"


class GE2E:
    """GE2E speaker encoder (3-layer LSTM over 40 mel bands, 1.6 s partials averaged)."""

    def __init__(self, weights):
        import torch
        import torchaudio

        self.lstm = torch.nn.LSTM(40, 256, 3, batch_first=True)
        self.linear = torch.nn.Linear(256, 256)
        state = torch.load(weights, map_location="cpu")["model_state"]
        self.lstm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("lstm.")})
        self.linear.load_state_dict({k[7:]: v for k, v in state.items() if k.startswith("linear.")})
        self.mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=40, power=2.0,
                                                        norm="slaney", mel_scale="slaney", pad_mode="constant")

    def embed(self, wav: np.ndarray) -> np.ndarray:
        import torch

        rms = np.sqrt(np.mean(wav ** 2)) + 1e-9
        gain = 10 ** ((-30 - 20 * np.log10(rms)) / 20)
        wav = wav * max(gain, 1.0)  # volume up to -30 dBFS, never down (as the original)
        with torch.inference_mode():
            mel = self.mel(torch.from_numpy(wav.astype(np.float32))).T  # frames x 40
            n, step, width = mel.shape[0], 80, 160
            if n < width:
                mel = torch.nn.functional.pad(mel, (0, 0, 0, width - n))
                n = width
            starts = list(range(0, n - width + 1, step))
            parts = torch.stack([mel[s:s + width] for s in starts])
            _, (h, _) = self.lstm(parts)
            e = torch.relu(self.linear(h[-1]))
            e = e / e.norm(dim=1, keepdim=True)
            m = e.mean(0)
            return (m / m.norm()).numpy()


def main() -> None:
    import torch

    from voiceprint.evaluate import split_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--json", default=str(ROOT / "out" / "exp" / "fusion_ge2e.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows, ages, by = corpus()
    speech = list(np.load(ROOT / "out" / "cache" / "so762_speech.npz", allow_pickle=True)["speech"])
    ecapa = np.load(ROOT / "out" / "exp" / "warp.npz")["1.0"]
    store = ROOT / "out" / "exp" / "ge2e.npy"
    if store.exists():
        g = np.load(store)
    else:
        enc = GE2E(args.weights)
        g = np.zeros((len(rows), 256), np.float32)
        for i, s in enumerate(speech):
            if s is not None:
                g[i] = enc.embed(s)
        np.save(store, g)
    names = list(by)
    queries = [(s, i) for s, idx in by.items() for i in idx[3:] if speech[i] is not None]

    def scores(v):
        return speaker_scores(v, by, queries)

    half = np.array([split_of(s) for s, _ in queries])
    child = np.array([ages[s] <= 12 for s, _ in queries])
    truth = np.array([names.index(s) for s, _ in queries])
    se, sg = scores(ecapa), scores(g)

    def acc(S, mask):
        return float((S.argmax(1) == truth)[mask].mean() * 100)

    weights = np.round(np.arange(0.3, 1.001, 0.05), 2)
    result: dict[str, dict] = {"ecapa": {}, "ge2e": {}, "fused": {}}
    for name, S in (("ecapa", se), ("ge2e", sg)):
        result[name] = {g_: round(acc(S, m), 2) for g_, m in
                        (("all", half != ""), ("dev", half == "dev"), ("test", half == "test"), ("child", child), ("adult", ~child))}
    hits = np.zeros(len(queries), bool)
    for pick_on, read_on in (("dev", "test"), ("test", "dev")):
        best = max(weights, key=lambda w: acc(w * se + (1 - w) * sg, half == pick_on))
        S = best * se + (1 - best) * sg
        hits[half == read_on] = (S.argmax(1) == truth)[half == read_on]
        result["fused"][f"w chosen on {pick_on}"] = float(best)
        result["fused"][read_on] = round(acc(S, half == read_on), 2)
    result["fused"]["all (cross-chosen)"] = round(float(hits.mean() * 100), 2)
    result["fused"]["child"] = round(float(hits[child].mean() * 100), 2)
    result["fused"]["adult"] = round(float(hits[~child].mean() * 100), 2)
    result["curve"] = {float(w): round(acc(w * se + (1 - w) * sg, half != ""), 2) for w in weights}
    print(json.dumps(result, indent=1))
    Path(args.json).write_text(json.dumps(result, indent=2))



def centred_variant() -> None:
    """The same, with each model's vectors centred on the mean of the *other* half's recordings."""
    from voiceprint.evaluate import split_of

    rows, ages, by = corpus()
    ok = np.array([True] * len(rows))
    e = np.load(ROOT / "out" / "exp" / "warp.npz")["1.0"].astype(np.float64)
    g = np.load(ROOT / "out" / "exp" / "ge2e.npy").astype(np.float64)
    ok = np.linalg.norm(e, axis=1) > 0
    half_of_row = np.array([split_of(r["speaker"]) for r in rows])
    names = list(by)
    queries = [(s, i) for s, idx in by.items() for i in idx[3:] if ok[i]]
    half = np.array([split_of(s) for s, _ in queries])
    child = np.array([ages[s] <= 12 for s, _ in queries])
    truth = np.array([names.index(s) for s, _ in queries])

    def scores(v, mean):
        v = v - mean
        return speaker_scores(v / np.linalg.norm(v, axis=1, keepdims=True), by, queries)

    def acc(S, mask):
        return float((S.argmax(1) == truth)[mask].mean() * 100)

    out: dict[str, Any] = {}
    hits = {k: np.zeros(len(queries), bool) for k in ("ecapa", "ge2e", "fused")}
    for pick_on, read_on in (("dev", "test"), ("test", "dev")):
        src = ok & (half_of_row == pick_on)  # the mean comes from the half that is not reported
        se, sg = scores(e, e[src].mean(0)), scores(g, g[src].mean(0))
        w = max(np.round(np.arange(0.3, 1.001, 0.05), 2), key=lambda w: acc(w * se + (1 - w) * sg, half == pick_on))
        m = half == read_on
        for k, S in (("ecapa", se), ("ge2e", sg), ("fused", w * se + (1 - w) * sg)):
            hits[k][m] = (S.argmax(1) == truth)[m]
        out[f"w chosen on {pick_on}"] = float(w)
        out[f"curve read on {read_on}"] = {float(x): round(acc(x * se + (1 - x) * sg, m), 2) for x in (0.4, 0.5, 0.6, 0.7, 1.0)}
    for k, h in hits.items():
        out[k] = {"all": round(h.mean() * 100, 2), "child": round(h[child].mean() * 100, 2), "adult": round(h[~child].mean() * 100, 2)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
    centred_variant()
