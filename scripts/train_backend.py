"""Fit the scoring back end of a speaker model on the development speakers only, and save it.

The same as ``voiceprint backend fit`` (``voiceprint.fitting``), with the original option spelling:

    .venv/bin/python scripts/train_backend.py                  # default corpora, default model
    .venv/bin/python scripts/train_backend.py --dry-run        # print the development figures only
"""

from __future__ import annotations

import argparse

from voiceprint.fitting import fit_backend
from voiceprint.scoring import QUALITY_MEASURES


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--shrink", type=float, nargs="*", default=[0.05, 0.2, 0.5, 1.0],
                    help="within-class covariance shrinkage values to try (1.0 = centring only)")
    ap.add_argument("--top-n", type=int, nargs="*", default=[0, 100, 300], help="AS-norm cohort sizes to try (0 = no AS-norm)")
    ap.add_argument("--out-dim", type=int, default=0, help="LDA output dimension (0 = keep all)")
    ap.add_argument("--quality", nargs="*", default=["min_duration", "durations"], choices=list(QUALITY_MEASURES),
                    help="calibration quality measures to try; the one with the lowest cross-validated dev Cllr is kept")
    ap.add_argument("--dry-run", action="store_true", help="report development figures, save nothing")
    ap.add_argument("--only", nargs="*", default=None, metavar="CORPUS:CHANNEL",
                    help="use only these parts of the plan, e.g. hyke_ivr_8k:clean speechocean762:amrnb")
    ap.add_argument("--link-reference", default="",
                    help="also set this model's case-linking thresholds from MODEL's (model.json \"linking\"; see fitting.transfer_linking)")
    ap.add_argument("--cached-only", action="store_true", help="use only recordings already in the embedding cache")
    ap.add_argument("--per-speaker", type=int, default=0, help="use at most N recordings of each speaker (0 = the plan's)")
    args = ap.parse_args(argv)
    fit_backend(args.model, args.shrink, args.top_n, args.out_dim or None, args.quality, args.dry_run, args.only,
                echo=lambda line: print(line, flush=True), per_speaker=args.per_speaker or None,
                cached_only=args.cached_only, link_reference=args.link_reference)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
