"""A new user's library on held-out real speech, through the CLI with its default options.

Issue 13's acceptance: 58 test speakers (never seen by any fitted part: ``corpora.split_speakers``):
every telephone caller of hyke_ivr_8k's test half (8 kHz) with at least 5 recordings (27 of 29), and
Mandarin-L1 speakers of speechocean762's test half (16 kHz, in speaker order) up to 58 in all; each
enrolled with their first 3 recordings (manifest order) and queried with the next 2.
Every person gets a phone number and a case in the enrolment manifest, as a technician's would.
Runs exactly what a user types, with no ``--force``:

    voiceprint init --library L
    voiceprint enrol manifest.csv --library L --json
    voiceprint query q1 q2 ... --library L --json

Reported: files enrolled and refused, persons with weak voiceprints, top-1 over the queries (a
query that is refused or comes back as more than one voice counts as a miss), how many query files
came back as one voice, and how many hits carry phones and cases.

    python scripts/eval_newuser.py --json out/eval/newuser.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from voiceprint.corpora import manifest, split_speakers

CORPORA = ("hyke_ivr_8k", "speechocean762")  # telephone callers first; speechocean762 fills up to --speakers


def pick(enrol: int, queries: int, split: str, total: int) -> list[tuple[str, list[dict], list[dict]]]:
    """(speaker, enrolment rows, query rows) of the split's speakers with enough files, corpus by corpus, up to ``total``."""
    out: list[tuple[str, list[dict], list[dict]]] = []
    for corpus in CORPORA:
        by_speaker = manifest(corpus)
        dev, test = split_speakers(list(by_speaker))
        chosen = [s for s in (test if split == "test" else dev) if len(by_speaker[s]) >= enrol + queries]
        out += [(s, by_speaker[s][:enrol], by_speaker[s][enrol:enrol + queries]) for s in chosen[:total - len(out)]]
    return out


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "voiceprint", *args], capture_output=True, text=True, env=dict(os.environ))


def write_manifest(path: Path, speakers) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "person", "category", "phone", "case"])
        for k, (speaker, rows, _) in enumerate(speakers):
            for r in rows:
                w.writerow([r["file"], speaker, "prior_offender", f"1380000{k:04d}", f"AJ-2026-{k:04d}"])


def score(results: list[dict], truth: dict[str, str]) -> dict:
    """Top-1, one-voice and phones/cases figures over the query files."""
    by_file: dict[str, list[dict]] = {}
    for r in results:
        by_file.setdefault(r["file"], []).append(r)
    right = one_voice = hits = linked = 0
    misses = []
    for f, speaker in truth.items():
        voices = by_file.get(f, [])
        ok = len(voices) == 1 and "error" not in voices[0]
        one_voice += ok
        top = voices[0]["hits"][0]["person"]["name"] if ok and voices[0]["hits"] else None
        right += ok and top == speaker
        if not (ok and top == speaker):
            misses.append({"file": f, "speaker": speaker, "voices": len(voices), "top": top,
                           "error": voices[0].get("error") if voices else "no result"})
        for v in voices:
            for h in v.get("hits", []):
                hits += 1
                linked += bool(h["phones"]) and bool(h["cases"])
    n = len(truth)
    return {"queries": n, "top1": round(100 * right / n, 2), "one_voice": f"{one_voice}/{n}",
            "hits_with_phones_and_cases": f"{linked}/{hits}", "misses": misses}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--enrol", type=int, default=3)
    ap.add_argument("--queries", type=int, default=2)
    ap.add_argument("--split", choices=["test", "dev"], default="test")
    ap.add_argument("--speakers", type=int, default=58)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    speakers = pick(args.enrol, args.queries, args.split, args.speakers)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        lib, mf = str(Path(tmp) / "lib"), Path(tmp) / "enrol.csv"
        write_manifest(mf, speakers)
        assert cli("init", "--library", lib).returncode == 0
        enrol = cli("enrol", str(mf), "--library", lib, "--json")
        enrolled = json.loads(enrol.stdout)
        t_enrol = time.time() - t0
        truth = {r["file"]: s for s, _, rows in speakers for r in rows}
        query = cli("query", *truth, "--library", lib, "--json")
        # 3: some inputs were refused (unusable audio) after the rest were searched and printed: those count as misses
        if query.returncode not in (0, 1, 3) or not query.stdout.strip():
            raise SystemExit(f"query failed ({query.returncode}): {query.stderr[-2000:]}")
        figures = score(json.loads(query.stdout), truth)
    out = {"speakers": len(speakers), "split": args.split, "enrol_files": sum(len(r) for _, r, _ in speakers),
           "enrol_summary": enrolled["summary"], "weak_persons": enrolled["weak_persons"],
           "refusals": [o for o in enrolled["outcomes"] if o["status"] == "refused"],
           **figures, "enrol_s": round(t_enrol, 1), "query_s": round(time.time() - t0 - t_enrol, 1)}
    print(json.dumps({k: v for k, v in out.items() if k not in ("misses", "refusals", "weak_persons")}, indent=1))
    for m in out["misses"]:
        print("miss:", m)
    for r in out["refusals"]:
        print("refused:", r["path"], r["reason"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
