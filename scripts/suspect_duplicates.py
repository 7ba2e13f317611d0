"""Speakers of a corpus that are probably one person under two ids, from a `--scores-out` trial file.

    .venv/bin/python scripts/suspect_duplicates.py out/eval/hyke_e1.csv ../shared/data/hyke_ivr_8k/manifest.csv \
        --out out/eval/hyke_ivr_8k_nodup/manifest.csv

A "different-speaker" trial whose plain-model cosine exceeds ``--cosine`` (0.7: above almost every
genuine non-target of the plain model) marks both speakers as suspect. The rule uses the baseline's
cosine, not the back end being evaluated. With ``--out``, writes the manifest without the suspects
(absolute paths), for a second, clearly labelled evaluation.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scores")
    ap.add_argument("manifest")
    ap.add_argument("--cosine", type=float, default=0.7)
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    suspects = set()
    with open(args.scores, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["enrol_speaker"] != r["test_speaker"] and float(r["cosine"]) > args.cosine:
                suspects |= {r["enrol_speaker"], r["test_speaker"]}
    print("\n".join(sorted(suspects)))
    if args.out:
        src = Path(args.manifest).resolve()
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(src, newline="", encoding="utf-8") as fh, open(args.out, "w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(["path", "speaker"])
            for r in csv.DictReader(fh):
                if r["speaker"] not in suspects:
                    w.writerow([str(src.parent / r["path"]), r["speaker"]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
