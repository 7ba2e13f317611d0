"""Markdown table (baseline vs back end) from `voiceprint evaluate --json` outputs.

    .venv/bin/python scripts/accuracy_table.py out/eval/*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def pct(x):
    return "" if x is None else f"{100 * x:.2f}"


def num(x):
    return "" if x is None else f"{x:.3f}"


def main(paths, skip=("speech 5-10s", "speech >=10s")) -> int:
    print("| run | corpus | channel | rate | subset | spk | tests | EER % plain | EER % ours | minDCF plain | minDCF ours "
          "| Cllr plain* | Cllr ours | Cllr_min ours | top-1 % plain | top-1 % ours |")
    print("|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for path in paths:
        for r in json.load(open(path))["rows"]:
            if r["subset"] in skip:
                continue
            print(f"| {Path(path).stem} | {r['corpus']} | {r['channel']} | {r.get('rate', '')} | {r['subset']} | {r['speakers']} | {r['tests']} "
                  f"| {pct(r['eer_baseline'])} | **{pct(r.get('eer_backend'))}** | {num(r['mindcf_baseline'])} "
                  f"| {num(r.get('mindcf_backend'))} | {num(r.get('cllr_baseline'))} | **{num(r.get('cllr_backend'))}** "
                  f"| {num(r.get('cllr_min_backend'))} | {pct(r['top1_baseline'])} | {pct(r.get('top1_backend'))} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
