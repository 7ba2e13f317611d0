"""Recompute the EER from a `voiceprint evaluate --scores-out` file, independently (numpy only).

    .venv/bin/python scripts/check_scores.py out/eval/hyke_test.csv [--column score|cosine|llr]

Target trials are those whose ``enrol_speaker`` equals ``test_speaker`` (the ``target`` column is
not trusted). The EER is found by sweeping every threshold over the pooled scores and taking the
point where the false-rejection and false-acceptance rates are closest, averaged. Prints one line
per (corpus, channel) and one for all trials.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict

import numpy as np


def equal_error_rate(target: np.ndarray, nontarget: np.ndarray) -> float:
    thresholds = np.unique(np.concatenate([target, nontarget]))
    t_sorted, n_sorted = np.sort(target), np.sort(nontarget)
    frr = np.searchsorted(t_sorted, thresholds, side="left") / len(t_sorted)  # targets below threshold
    far = 1.0 - np.searchsorted(n_sorted, thresholds, side="left") / len(n_sorted)  # non-targets at/above
    k = int(np.argmin(np.abs(frr - far)))
    return float((frr[k] + far[k]) / 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores")
    ap.add_argument("--column", default="score")
    args = ap.parse_args(argv)
    groups: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    with open(args.scores, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row[args.column] == "":
                continue
            key = f"{row.get('corpus', '')}/{row.get('channel', '')}"
            groups[key].append((float(row[args.column]), row["enrol_speaker"] == row["test_speaker"]))
    groups_all = [x for v in groups.values() for x in v]
    for key, rows in list(groups.items()) + [("all trials", groups_all)]:
        s = np.array([r[0] for r in rows])
        y = np.array([r[1] for r in rows])
        print(f"{key:40s} trials {len(s):7d} targets {int(y.sum()):6d}  EER {100 * equal_error_rate(s[y], s[~y]):.3f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
