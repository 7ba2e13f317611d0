"""Markdown table: several speaker models side by side, plain cosine and with their back ends,
from folders of `voiceprint evaluate --json` outputs of the same runs (same file names).

    .venv/bin/python scripts/compare_models.py out/eval out/evalf [--subset all]
    .venv/bin/python scripts/compare_models.py out/m/ecapa out/m/campplus out/m/fusion --labels ECAPA CAM++ fusion

The first folder is the reference: a run is listed when it exists there and in at least one other.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def num(x):
    return "" if x is None else f"{x:.3f}"


def rows_of(path: Path) -> dict:
    try:
        return {r["subset"]: r for r in json.loads(path.read_text())["rows"]}
    except (OSError, json.JSONDecodeError, KeyError):
        return {}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", type=Path, nargs="+", help="one folder of runs per model; the first is the reference")
    ap.add_argument("--labels", nargs="+", default=None, help="a column label per folder (default: folder names)")
    ap.add_argument("--subset", nargs="+", default=["all", "speech <2s"])
    args = ap.parse_args(argv)
    if len(args.folders) < 2:
        raise SystemExit("give at least two folders of runs")
    labels = args.labels or [f.name for f in args.folders]
    if len(labels) != len(args.folders):
        raise SystemExit("give one --labels entry per folder")
    cols = ([f"EER % {m} plain" for m in labels] + [f"EER % {m} + back end" for m in labels]
            + [f"Cllr {m} + back end" for m in labels] + [f"top-1 % {m} plain" for m in labels]
            + [f"top-1 % {m} + back end" for m in labels])
    print("| run | subset | tests | " + " | ".join(cols) + " |")
    print("|---|---|--:|" + "--:|" * len(cols))
    for path in sorted(args.folders[0].glob("*.json")):
        runs = [rows_of(f / path.name) for f in args.folders]
        if not runs[0] or not any(runs[1:]):
            continue
        for subset in args.subset:
            rs = [r.get(subset) or {} for r in runs]
            if not rs[0]:
                continue
            cells = ([pct(r.get("eer_baseline")) for r in rs] + [pct(r.get("eer_backend")) for r in rs]
                     + [num(r.get("cllr_backend")) for r in rs] + [pct(r.get("top1_baseline")) for r in rs]
                     + [pct(r.get("top1_backend")) for r in rs])
            print(f"| {path.stem} | {subset} | {rs[0]['tests']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
