"""Cross-validated accuracy of the calls scorers on the shared Sichuan feature tables.

Usage:
    .venv/bin/python scripts/eval_calls.py [--data ../shared/data/cdr/sichuan_fraud_2020] [--folds 5]
        [--seeds 0 1 2 3 4] [--json out.json]

Prints, for BTG alone and for the five tables joined on phone_no_m (leaky HaoREN columns
dropped by their templates): the rule score's AUC (no training) and the supervised model's AUC
and fraud-class F1, threshold tuned by CV inside each training part only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from voiceprint.calls.scoring import cross_validate, load_feature_table

TABLES = {
    "btg": ["btg_gatcobo_user_features.csv.gz"],
    "all5": [
        "btg_gatcobo_user_features.csv.gz",
        "cdr2img_voc_features.csv.gz",
        "cdr2img_sms_app_arpu_features.csv.gz",
        "haoren_user_features_v20200708.csv.gz",
        "haoren_user_features_v20200701.csv.gz",
    ],
}


def main() -> None:
    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(repo.parent / "shared/data/cdr/sichuan_fraud_2020"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0],
                    help="outer CV shuffles to run; with several, the mean and spread are printed too")
    ap.add_argument("--sets", nargs="*", default=list(TABLES))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}")
    results = {}
    for name in args.sets:
        table = load_feature_table([Path(args.data) / "features" / f for f in TABLES[name]])
        runs = []
        for seed in args.seeds:
            t0 = time.time()
            res = cross_validate(table, folds=args.folds, seed=seed)
            res["seed"], res["seconds"] = seed, round(time.time() - t0, 1)
            runs.append(res)
            print(
                f"{name:5s} seed {seed} n={res['n']} fraud={res['n_fraud']} features={res['features']}  "
                f"rule AUC {res['rule_auc']:.3f} | model AUC {res['model_auc']:.3f} "
                f"fraud-F1 {res['model_f1']:.3f} (mean of folds {res['model_f1_mean_of_folds']:.3f})  [{res['seconds']} s]",
                flush=True,
            )
            for f in res["folds"]:
                print(f"      fold {f['fold']}: AUC {f['auc']:.3f} F1 {f['f1']:.3f} threshold {f['threshold']:.2f} rule AUC {f['rule_auc']:.3f}")
        summary = {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs])))
                   for k in ("rule_auc", "model_auc", "model_f1")}
        if len(runs) > 1:
            print(f"{name:5s} over {len(runs)} outer shuffles: " + "  ".join(
                f"{k} {m:.4f} (sd {sd:.4f}, min {min(r[k] for r in runs):.4f})" for k, (m, sd) in summary.items()), flush=True)
        results[name] = {"runs": runs, "mean_sd": summary}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
