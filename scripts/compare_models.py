"""Markdown table: the plain ECAPA cosine, ECAPA with its back end and another model with its
back end, side by side, from two folders of `voiceprint evaluate --json` outputs of the same runs.

    .venv/bin/python scripts/compare_models.py out/eval out/evalf [--subset all]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def num(x):
    return "" if x is None else f"{x:.3f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ecapa", type=Path, help="folder of the default model's runs")
    ap.add_argument("other", type=Path, help="folder of the other model's runs (same file names)")
    ap.add_argument("--subset", nargs="+", default=["all", "speech <2s"])
    args = ap.parse_args(argv)
    print("| run | subset | tests | EER % ECAPA plain | EER % ECAPA + back end | EER % fusion + back end | "
          "Cllr ECAPA + back end | Cllr fusion + back end | top-1 % ECAPA plain | top-1 % ECAPA + back end | top-1 % fusion + back end |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for path in sorted(args.other.glob("*.json")):
        base = args.ecapa / path.name
        if not base.exists():
            continue
        try:
            rows_b = {r["subset"]: r for r in json.loads(base.read_text())["rows"]}
            rows_o = {r["subset"]: r for r in json.loads(path.read_text())["rows"]}
        except (json.JSONDecodeError, KeyError):
            continue
        for subset in args.subset:
            b, o = rows_b.get(subset), rows_o.get(subset)
            if not b or not o:
                continue
            print(f"| {path.stem} | {subset} | {o['tests']} | {pct(b['eer_baseline'])} | {pct(b.get('eer_backend'))} "
                  f"| **{pct(o.get('eer_backend'))}** | {num(b.get('cllr_backend'))} | **{num(o.get('cllr_backend'))}** "
                  f"| {pct(b['top1_baseline'])} | {pct(b.get('top1_backend'))} | **{pct(o.get('top1_backend'))}** |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
