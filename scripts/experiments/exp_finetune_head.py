"""Experiment: does fine-tuning ECAPA's pooling and embedding layers on in-domain speech help
issue 3's identification test? Cross-fitted, so every reported query is of a speaker the
fine-tuned layers never saw.

    .venv/bin/python scripts/experiments/exp_finetune_head.py [--epochs 20] [--json out/exp_finetune_head.json]

speechocean762 only. Each file goes through the library's front end (decode, VAD, speech with
context); the frozen ECAPA trunk's frame-level features (the 1536-channel MFA output) are computed
once and cached in ``out/cache/mfa_frames.npz``. Then, for each half of the speakers
(``voiceprint.evaluate.split_of``), a copy of the attentive pooling, its batch norm and the final
linear layer is trained on that half's recordings (AAM-softmax, random 1.5-3 s crops), and the other
half's queries are identified among all 166 speakers (3 enrolments each, manifest order: the
protocol of ``scripts/eval_library.py``). The baseline is the untouched model on the same features.
Nothing here changes the shipped model; it measures whether a project-trained model would pay.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "out" / "cache" / "mfa_frames.npz"
DATA = ROOT.parent / "shared" / "data" / "speechocean762"


def frames(encoder, rows) -> list:
    """[1536, T] float16 MFA features per manifest row (None where the VAD finds too little speech)."""
    import torch

    from voiceprint.errors import AudioError
    from voiceprint.voices import read_voices

    if CACHE.exists():
        z = np.load(CACHE, allow_pickle=True)
        return list(z["frames"])
    mods = encoder.mods
    net = mods.embedding_model
    out: list = []
    t0 = time.time()
    for n, r in enumerate(rows):
        try:
            speech = read_voices(DATA / r["path"], None, channel=0, diarise=False, min_speech=0.3, measure=False)[1][0].speech
        except AudioError:
            out.append(None)
            continue
        with torch.inference_mode():
            wav = torch.from_numpy(speech)[None]
            x = mods.mean_var_norm(mods.compute_features(wav), torch.ones(1)).transpose(1, 2)
            xl = []
            for layer in net.blocks:
                x = layer(x) if layer.__class__.__name__ == "TDNNBlock" else layer(x, lengths=None)
                xl.append(x)
            out.append(net.mfa(torch.cat(xl[1:], dim=1))[0].numpy().astype(np.float16))
        if n % 200 == 0:
            print(f"  frames {n}/{len(rows)}  {time.time() - t0:.0f} s", flush=True)
    arr = np.empty(len(out), dtype=object)
    arr[:] = out
    np.savez(CACHE, frames=arr)
    return out


class Head:
    """The trainable top of ECAPA: attentive statistics pooling -> batch norm -> linear."""

    def __init__(self, net):
        import torch

        self.layers = torch.nn.ModuleList([copy.deepcopy(net.asp), copy.deepcopy(net.asp_bn), copy.deepcopy(net.fc)])

    def __call__(self, h):
        asp, bn, fc = self.layers
        return fc(bn(asp(h))).squeeze(-1)

    def embed(self, feats) -> np.ndarray:
        import torch

        self.layers.eval()
        out = []
        with torch.inference_mode():
            for f in feats:
                e = self(torch.from_numpy(f.astype(np.float32))[None])[0].numpy()
                out.append(e / np.linalg.norm(e))
        return np.stack(out)


def train(head: Head, feats, labels, epochs: int, seed: int) -> None:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    classes = sorted(set(labels))
    y_all = np.array([classes.index(s) for s in labels])
    init = head.embed(feats)
    w0 = np.stack([init[y_all == k].mean(0) for k in range(len(classes))])
    weight = torch.nn.Parameter(torch.from_numpy(w0 / np.linalg.norm(w0, axis=1, keepdims=True)).float())
    opt = torch.optim.Adam([{"params": head.layers.parameters(), "lr": 5e-5}, {"params": [weight], "lr": 1e-3}])
    margin, scale, batch = 0.2, 30.0, 32
    for epoch in range(epochs):
        head.layers.train()
        order = rng.permutation(len(feats))
        losses = []
        for b in range(0, len(order), batch):
            idx = order[b : b + batch]
            crop = int(rng.integers(150, 301))
            xs = []
            for i in idx:
                f = feats[i]
                if f.shape[1] < crop:
                    f = np.tile(f, (1, crop // f.shape[1] + 1))
                s = int(rng.integers(0, f.shape[1] - crop + 1))
                xs.append(f[:, s : s + crop].astype(np.float32))
            x = torch.from_numpy(np.stack(xs))
            emb = F.normalize(head(x), dim=1)
            cos = emb @ F.normalize(weight, dim=1).T
            y = torch.from_numpy(y_all[idx])
            onehot = F.one_hot(y, len(classes)).bool()
            theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
            logits = scale * torch.where(onehot, torch.cos(theta + margin), cos)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        print(f"    epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.3f}", flush=True)


def top1(vectors, by, queries) -> float:
    """166-way identification: mean of the first 3 recordings per speaker vs each query."""
    names = list(by)
    rows = []
    for s in names:
        e = [vectors[i] for i in by[s][:3] if vectors[i] is not None]
        m = np.mean(e, axis=0)
        rows.append(m / np.linalg.norm(m))
    models = np.stack(rows)
    hits = [vectors[i] is not None and names[int(np.argmax(models @ vectors[i]))] == s for s, i in queries]
    return float(np.mean(hits))


def main() -> None:
    import csv

    import torch

    from voiceprint.embedding import get_embedder
    from voiceprint.evaluate import split_of

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = list(csv.DictReader(open(DATA / "manifest.csv", newline="", encoding="utf-8")))
    by: OrderedDict[str, list[int]] = OrderedDict()
    for i, r in enumerate(rows):
        by.setdefault(r["speaker"], []).append(i)
    encoder = get_embedder().encoder
    feats = frames(encoder, rows)
    net = encoder.mods.embedding_model
    usable = [i for i, f in enumerate(feats) if f is not None]
    base = Head(net).embed([feats[i] for i in usable])
    vec_base = [None] * len(rows)
    for k, i in enumerate(usable):
        vec_base[i] = base[k]
    result: dict[str, Any] = {"epochs": args.epochs}
    tuned_vectors = {}
    for train_half in ("dev", "test"):
        print(f"training on the {train_half} half", flush=True)
        head = Head(net)
        tr = [i for i in usable if split_of(rows[i]["speaker"]) == train_half]
        train(head, [feats[i] for i in tr], [rows[i]["speaker"] for i in tr], args.epochs, seed=0)
        emb = head.embed([feats[i] for i in usable])
        vec = [None] * len(rows)
        for k, i in enumerate(usable):
            vec[i] = emb[k]
        tuned_vectors[train_half] = vec
    held = {"dev": "test", "test": "dev"}
    totals: dict[str, list[tuple[float, int]]] = {"baseline": [], "tuned": []}
    for train_half, vec in tuned_vectors.items():
        queries = [(s, i) for s, idx in by.items() if split_of(s) == held[train_half] for i in idx[3:]]
        b, t = top1(vec_base, by, queries), top1(vec, by, queries)
        result[f"{held[train_half]}_queries"] = {"n": len(queries), "baseline_top1": b, "tuned_top1": t}
        totals["baseline"].append((b, len(queries)))
        totals["tuned"].append((t, len(queries)))
        print(f"queries of the {held[train_half]} half ({len(queries)}), head trained on the {train_half} half: "
              f"baseline {b:.2%}  fine-tuned {t:.2%}", flush=True)
    for kind, v in totals.items():
        result[f"all_{kind}_top1"] = sum(a * n for a, n in v) / sum(n for _, n in v)
    print(f"all 1,494 queries (each scored by a head that never saw its speaker): baseline "
          f"{result['all_baseline_top1']:.2%}  fine-tuned {result['all_tuned_top1']:.2%}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
