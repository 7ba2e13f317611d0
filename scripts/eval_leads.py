"""Score fused, voice-only and CDR-only leads of a generated scenario against its truth.

    python scripts/eval_leads.py DIR [DIR ...] [--json out.json]

For each scenario DIR (``scripts/gen_scenario.py`` then ``DIR/run.sh``) and each of ``leads.json``,
``leads_voice.json``, ``leads_cdr.json``:

- **case hit rate**: share of cases whose best-ranked lead tied to the case names its true offender;
- **precision at k**, k = the number of true offenders: share of the first k leads that name one;
- **recall**: share of true offenders named by some lead tied to one of their cases;
- **found only by fusion**: true offenders among the fused top k but in neither single-source top k.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

RUNS = {"fused": "leads.json", "voice": "leads_voice.json", "cdr": "leads_cdr.json"}


def name_of(lead: dict) -> str | None:
    return (lead.get("person") or {}).get("name")


def score(leads: list[dict], truth: dict[str, str]) -> dict:
    offenders = set(truth.values())
    k = len(offenders)
    hits = 0
    for case, offender in truth.items():
        best = next((x for x in leads if case in x.get("cases", [])), None)
        hits += int(best is not None and name_of(best) == offender)
    top = [name_of(x) for x in leads[:k]]
    named = {name_of(x) for x in leads if any(truth.get(c) == name_of(x) for c in x.get("cases", []))}
    return {"cases": len(truth), "case_hit_rate": round(hits / max(len(truth), 1), 4),
            "k": k, "precision_at_k": round(sum(1 for n in top if n in offenders) / max(k, 1), 4),
            "recall": round(len(named & offenders) / max(k, 1), 4), "top_k": sorted(n for n in top if n in offenders)}


def evaluate(folder: Path) -> dict:
    with open(folder / "truth.csv", newline="", encoding="utf-8") as fh:
        truth = {r["case_number"]: r["offender"] for r in csv.DictReader(fh)}
    out: dict = {}
    for run, file in RUNS.items():
        leads = json.loads((folder / file).read_text(encoding="utf-8"))
        out[run] = score(leads, truth)
    single = set(out["voice"]["top_k"]) | set(out["cdr"]["top_k"])
    out["found_only_by_fusion"] = sorted(set(out["fused"]["top_k"]) - single)
    out["precision_gain"] = round(out["fused"]["precision_at_k"] - max(out["voice"]["precision_at_k"], out["cdr"]["precision_at_k"]), 4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    results = {}
    for d in args.dirs:
        r = results[str(d)] = evaluate(d)
        print(f"{d}: {r['fused']['cases']} cases, k={r['fused']['k']}")
        for run in RUNS:
            x = r[run]
            print(f"  {run:6s} case hit rate {x['case_hit_rate']:.3f}  precision@k {x['precision_at_k']:.3f}  recall {x['recall']:.3f}")
        print(f"  fused precision@k minus the better single source: {r['precision_gain']:+.3f};"
              f" offenders found only by fusion: {len(r['found_only_by_fusion'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
