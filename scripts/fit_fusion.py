"""Fit a fusion speaker model (several registered models at once) on the development speakers.

    .venv/bin/python scripts/fit_fusion.py                       # ecapa-voxceleb + ge2e-resemblyzer
    .venv/bin/python scripts/fit_fusion.py --dry-run             # print the development table only

Uses the development speakers only (``voiceprint.evaluate.split_of``), of the corpora and
telephone simulations the back end is fitted on (``voiceprint backend fit``'s plan). Fits:

- each component's centre: the mean of its embeddings over those recordings;
- the first component's weight, from ``--weights``: the one with the best mean closed-set top-1
  over the development conditions (3 enrolment recordings per speaker, the rest queried among
  that condition's speakers), ties broken by the mean EER.

Writes ``models/<name>/``: ``model.json`` (kind ``fusion``), ``centres.npz`` and ``fusion.json``
(what it was fitted on and the development table). The model card (``MODEL.md``) is written by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from voiceprint.embedding import file_sha256, load_spec, models_dir
from voiceprint.evaluate import eer, vector_of
from voiceprint.fitting import load_dev, plan_of

ROOT = Path(__file__).resolve().parent.parent

#: Licence of each corpus whose development embeddings are averaged into ``centres.npz``.
CENTRE_SOURCES = {"speechocean762": "speechocean762 CC BY 4.0", "hyke_ivr_8k": "hyke_ivr_8k",
                  "commonvoice_zh": "commonvoice_zh CC0 1.0"}


def fused(parts: list[np.ndarray], centres: list[np.ndarray], weights: list[float]) -> np.ndarray:
    out = []
    for x, c, w in zip(parts, centres, weights, strict=True):
        y = x - c
        out.append(np.sqrt(w) * y / np.linalg.norm(y, axis=1, keepdims=True))
    v = np.concatenate(out, axis=1)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def condition_figures(vectors: np.ndarray, speakers: list[str], enrol: int = 3) -> tuple[float, float]:
    """(top-1, EER) of one condition: the first ``enrol`` recordings of each speaker enrol it."""
    by: dict[str, list[int]] = {}
    for i, s in enumerate(speakers):
        by.setdefault(s, []).append(i)
    names = [s for s, idx in by.items() if len(idx) > enrol]
    models = np.stack([vectors[by[s][:enrol]].mean(0) for s in names])
    models /= np.linalg.norm(models, axis=1, keepdims=True)
    tests = [(k, i) for k, s in enumerate(names) for i in by[s][enrol:]]
    scores = models @ vectors[[i for _, i in tests]].T  # speakers x tests
    truth = np.array([k for k, _ in tests])
    top1 = float((scores.argmax(0) == truth).mean())
    target = np.zeros_like(scores, bool)
    target[truth, np.arange(len(tests))] = True
    return top1, eer(scores[target], scores[~target])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="ecapa-ge2e")
    ap.add_argument("--components", nargs="+", default=["ecapa-voxceleb", "ge2e-resemblyzer"])
    ap.add_argument("--weights", type=float, nargs="+", default=[0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.9, 1.0],
                    help="weights of the first component to try (two components; the second gets 1 - w)")
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--cached-only", action="store_true", help="use only recordings already in the embedding cache")
    ap.add_argument("--per-speaker", type=int, default=0, help="use at most N recordings of each speaker (0 = the plan's)")
    ap.add_argument("--only", nargs="*", default=None, metavar="CORPUS:CHANNEL",
                    help="use only these parts of the back end's plan, e.g. commonvoice_zh:clean hyke_ivr_8k:clean")
    args = ap.parse_args(argv)
    if len(args.components) != 2:
        raise SystemExit("fit_fusion.py chooses one weight: give exactly two components")
    t0 = time.time()
    plan = plan_of(args.only, args.per_speaker)
    sets = {name: load_dev(plan, name, cached_only=args.cached_only) for name in args.components}
    conditions = []
    first = sets[args.components[0]]
    for k, (corpus, channel, _) in enumerate(first):
        # only recordings usable by every component (all of them, unless --cached-only left some out)
        common = set.intersection(*({i.path for i in s[k][2]} for s in sets.values()))
        per = [[i for i in s[k][2] if i.path in common] for s in sets.values()]
        conditions.append((f"{corpus}/{channel}", [np.stack([vector_of(i) for i in p]).astype(np.float64) for p in per],
                           [i.speaker for i in per[0]], ">" in channel))
    fitting = [c for c in conditions if not c[3]]
    centres = [np.concatenate([c[1][m] for c in fitting]).mean(0) for m in range(len(args.components))]
    table = {}
    for w in args.weights:
        row = {}
        for name, parts, speakers, _ in conditions:
            if ">" in name:
                continue  # cross-channel sets repeat the same recordings
            row[name] = condition_figures(fused(parts, centres, [w, 1 - w]), speakers)
        table[w] = row
        print(f"w {w:.2f}: mean top-1 {100 * np.mean([t for t, _ in row.values()]):.2f} %  mean EER "
              f"{100 * np.mean([e for _, e in row.values()]):.2f} %   "
              + "  ".join(f"{k} {100 * t:.1f}/{100 * e:.2f}" for k, (t, e) in row.items()), flush=True)
    best = max(args.weights, key=lambda w: (round(np.mean([t for t, _ in table[w].values()]), 6),
                                            -np.mean([e for _, e in table[w].values()])))
    print(f"chosen: {args.components[0]} weight {best}, {args.components[1]} weight {1 - best:.2f}")
    if args.dry_run:
        return 0
    home = models_dir() / args.name
    home.mkdir(parents=True, exist_ok=True)
    np.savez(home / "centres.npz", **{name: c.astype(np.float32) for name, c in zip(args.components, centres, strict=True)})
    specs = [load_spec(n) for n in args.components]
    meta = {
        "name": args.name,
        "kind": "fusion",
        "description": " + ".join(f"{s.name} ({w:.2f})" for s, w in zip(specs, [best, 1 - best], strict=True))
                       + ": weighted sum of the components' centred cosines",
        "components": [[args.components[0], round(best, 4)], [args.components[1], round(1 - best, 4)]],
        "embedding_dim": int(sum(s.embedding_dim for s in specs)),
        "sample_rate": 16000,
        "licence": "; ".join(f"{s.name}: {s.licence}" for s in specs)
                   + f"; centres.npz: means of development embeddings ({', '.join(CENTRE_SOURCES.get(c, c) for c in plan)})",
        "sha256": {"centres.npz": file_sha256(home / "centres.npz")},
    }
    if (home / "model.json").exists():  # keep what other scripts tuned for this model (e.g. "linking")
        old = json.loads((home / "model.json").read_text(encoding="utf-8"))
        meta.update({k: v for k, v in old.items() if k not in meta})
    (home / "model.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    report = {
        "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "fitted_by": "scripts/fit_fusion.py",
        "split_rule": "voiceprint.evaluate.split_of: sha256(speaker id)[0] < 128 -> dev",
        "conditions": {name: len(sp) for name, _, sp, cross in conditions if not cross},
        "criterion": "mean development top-1 (enrol 3), ties by mean EER",
        "dev_table": {str(w): {k: {"top1": round(t, 4), "eer": round(e, 4)} for k, (t, e) in row.items()}
                      for w, row in table.items()},
        "chosen_weight": best,
    }
    (home / "fusion.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"saved {home} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
