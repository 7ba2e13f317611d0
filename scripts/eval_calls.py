"""Cross-validated accuracy of the calls scorers on the shared Sichuan feature tables.

Usage:
    .venv/bin/python scripts/eval_calls.py [--data ../shared/data/cdr/sichuan_fraud_2020] [--folds 5] [--json out.json]

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
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sets", nargs="*", default=list(TABLES))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}")
    results = {}
    for name in args.sets:
        t0 = time.time()
        table = load_feature_table([Path(args.data) / "features" / f for f in TABLES[name]])
        res = cross_validate(table, folds=args.folds, seed=args.seed)
        res["seconds"] = round(time.time() - t0, 1)
        results[name] = res
        print(
            f"{name:5s} n={res['n']} fraud={res['n_fraud']} features={res['features']}  "
            f"rule AUC {res['rule_auc']:.3f} | model AUC {res['model_auc']:.3f} "
            f"fraud-F1 {res['model_f1']:.3f} (mean of folds {res['model_f1_mean_of_folds']:.3f})  [{res['seconds']} s]",
            flush=True,
        )
        for f in res["folds"]:
            print(f"      fold {f['fold']}: AUC {f['auc']:.3f} F1 {f['f1']:.3f} threshold {f['threshold']:.2f} rule AUC {f['rule_auc']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=float), encoding="utf-8")


if __name__ == "__main__":
    main()
