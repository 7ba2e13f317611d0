"""Calibrate the calls rule score to a likelihood ratio on the labelled Sichuan tables; write JSON (never pickle).

The rule score (``voiceprint calls score`` without a model) is label-free and lies in [0, 1]; it is not a
probability. For the lead graph (``voiceprint leads``) a number's calling pattern must count as a likelihood
ratio beside the voice LR, so the score is mapped to a natural-log LR by logistic regression on the shared
labelled subscribers (leaky HaoREN columns are dropped by the layout templates), with the training prior
removed. The LR is *bounded*: no further than the empirical LR of the most extreme score decile with enough
numbers of both classes supports (a bin-wise, Laplace-smoothed ratio), so the calling screen never counts
for more than its validation shows. Cross-validated Cllr is reported beside the fit.

    .venv/bin/python scripts/fit_cdr_calibration.py [--data ../shared/data/cdr/sichuan_fraud_2020] \
        [--out voiceprint/calls/calibration_rule.json]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

TABLES = ["btg_gatcobo_user_features.csv.gz", "cdr2img_voc_features.csv.gz", "cdr2img_sms_app_arpu_features.csv.gz",
          "haoren_user_features_v20200708.csv.gz", "haoren_user_features_v20200701.csv.gz"]


def fit(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Logistic regression logit(p) = a + b * score (lightly regularised); returns (a, b)."""
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=100.0).fit(scores[:, None], labels)
    return float(m.intercept_[0]), float(m.coef_[0, 0])


def llr_of(a: float, b: float, scores: np.ndarray, prior: float) -> np.ndarray:
    return a + b * scores - math.log(prior / (1 - prior))


def cllr(llr: np.ndarray, labels: np.ndarray) -> float:
    tar, non = llr[labels == 1], llr[labels == 0]
    return float(0.5 / math.log(2) * (np.mean(np.logaddexp(0, -tar)) + np.mean(np.logaddexp(0, non))))


def bounds(scores: np.ndarray, labels: np.ndarray, bins: int = 10, min_each: int = 5) -> tuple[float, float]:
    """Natural-log LR range the data support: smoothed fraud/normal frequency ratio per score decile."""
    edges = np.quantile(scores, np.linspace(0, 1, bins + 1))
    n1, n0 = max(int(labels.sum()), 1), max(int((1 - labels).sum()), 1)
    ratios = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=False):
        sel = (scores >= lo) & (scores <= hi)
        k1, k0 = int(labels[sel].sum()), int((1 - labels[sel]).sum())
        if k1 + k0 < 2 * min_each:
            continue
        ratios.append(math.log(((k1 + 1) / (n1 + 1)) / ((k0 + 1) / (n0 + 1))))
    return min(ratios), max(ratios)


def main() -> None:
    from sklearn.model_selection import StratifiedKFold

    from voiceprint.calls.scoring import load_feature_table, rule_score

    repo = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(repo.parent / "shared/data/cdr/sichuan_fraud_2020"))
    ap.add_argument("--out", default=str(repo / "voiceprint/calls/calibration_rule.json"))
    args = ap.parse_args()
    t0 = time.time()
    table = load_feature_table([Path(args.data) / "features" / f for f in TABLES])
    score, signals = rule_score(table.canonical)
    labels = table.labels
    if labels is None:
        raise SystemExit("the Sichuan feature tables carry no labels - check --data")
    keep = labels.notna().to_numpy()
    s, y = np.asarray(score, float)[keep], labels.to_numpy()[keep].astype(int)
    prior = float(y.mean())
    oof = np.zeros(len(s))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(s, y):
        a, b = fit(s[train], y[train])
        oof[test] = llr_of(a, b, s[test], float(y[train].mean()))
    lo, hi = bounds(s, y)
    a, b = fit(s, y)
    cal = {
        "kind": "cdr_rule_logistic", "version": 1,
        "fitted_by": "scripts/fit_cdr_calibration.py", "fitted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "data": "shared Sichuan 2020 labelled subscribers (features/, five tables joined, leaky HaoREN columns dropped)",
        "n": int(len(s)), "n_fraud": int(y.sum()), "training_prior": round(prior, 4),
        "signals": sorted(signals.columns.tolist()),
        "llr": {"intercept": a - math.log(prior / (1 - prior)), "slope": b},
        "llr_limit": [round(lo, 4), round(hi, 4)],
        "log10_limit": [round(lo / math.log(10), 3), round(hi / math.log(10), 3)],
        "cv": {"folds": 5, "cllr": round(cllr(np.clip(oof, lo, hi), y), 4), "cllr_uncapped": round(cllr(oof, y), 4)},
        "note": "natural-log LR = intercept + slope * rule score, clipped to llr_limit (decile-wise empirical LR range)",
    }
    Path(args.out).write_text(json.dumps(cal, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(cal, indent=2))
    print(f"{time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
