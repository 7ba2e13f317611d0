"""Crash test of enrolment: kill ``voiceprint enrol`` at random moments, re-run, check the library.

Usage:
    .venv/bin/python scripts/crash_enrol.py [--files 1000] [--rounds 10] [--kills 5] [--seed 0]
        [--max-delay 30] [--real] [--keep]

Each round builds a fresh library and runs ``voiceprint enrol MANIFEST`` as a subprocess
``--kills`` times, each time stopped after a random (seeded) delay by SIGKILL (``kill -9``) or,
in about one kill in three, SIGINT (Ctrl-C); then it runs the same command to completion and
checks that:

- every manifest row is enrolled exactly once: one voiceprint per (file SHA-256, person), none
  missing, none extra, no duplicate recordings;
- ``voiceprint index check`` says ok (database and FAISS index agree);
- no ``*.tmp`` or half-created ``.library.sqlite.creating`` file is left in the library folder,
  and SQLite's integrity check passes;
- the audit trail holds exactly one ``enrol`` row per voiceprint.

The clips are distinct synthetic speech-like signals (voiceprint.synth), 2 s each, written once
to ``out/crash_enrol/`` and reused; ``--real`` takes real recordings from
../shared/data/speechocean762 instead. Prints one table row per round and a final PASS/FAIL line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

from voiceprint.crashcheck import make_clips, real_clips, run_round, write_manifest

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000, help="manifest rows (distinct files)")
    ap.add_argument("--rounds", type=int, default=1, help="independent experiments, seeds seed..seed+rounds-1")
    ap.add_argument("--kills", type=int, default=5, help="interruptions per round before the final run")
    ap.add_argument("--max-delay", type=float, default=30.0, help="longest wait before a kill, seconds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real", action="store_true", help="real speechocean762 recordings instead of generated clips")
    ap.add_argument("--workdir", type=Path, default=None, help="where libraries and logs go (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the libraries and logs")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    t0 = time.perf_counter()
    clips = real_clips(args.files) if args.real else make_clips(args.files, REPO / "out" / "crash_enrol" / "clips")
    print(f"{len(clips)} {'real' if args.real else 'generated'} files ready in {time.perf_counter() - t0:.0f} s; "
          f"{args.rounds} round(s) x {args.kills} kills (max delay {args.max_delay:g} s)", flush=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crash_enrol_"))
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / "manifest.csv"
    rows = write_manifest(clips, manifest)

    header = (f"{'seed':>4} {'kills (signal@s:voiceprints)':<58} {'before':>6} {'final run':<40} {'vp':>5} {'dup':>3} {'miss':>4}"
              f" {'index':>6} {'tmp':>3} {'audit':>5} {'s':>5}  result")
    print(header, flush=True)
    results = []
    for seed in range(args.seed, args.seed + args.rounds):
        r = run_round(seed, rows, manifest, workdir, args.kills, args.max_delay)
        results.append(r)
        kills = " ".join(f"{x['signal'][3:4]}@{x['delay']:g}:{x['voiceprints_after']}" for x in r["runs"])
        final = r["final_summary"].split(" (library")[0][:40]
        print(f"{seed:>4} {kills:<58} {r['before_final']:>6} {final:<40} {r.get('voiceprints', 0):>5} "
              f"{r.get('duplicates', '-'):>3} {r.get('missing', '-'):>4} {str(r.get('index', '-')):>6} "
              f"{len(r.get('tmp_files', [])):>3} {str(r.get('audit_ok', '-')):>5} {r['seconds']:>5.0f}  "
              f"{'ok' if r['ok'] else 'FAIL'}", flush=True)
    passed = all(r["ok"] for r in results)
    n_kill = sum(1 for r in results for x in r["runs"] if x["signal"] == "SIGKILL")
    n_int = sum(1 for r in results for x in r["runs"] if x["signal"] == "SIGINT")
    print(f"{'PASS' if passed else 'FAIL'}: {sum(r['ok'] for r in results)}/{len(results)} rounds, {args.files} files each, "
          f"{n_kill} SIGKILL + {n_int} SIGINT interruptions in all ({time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if not args.keep and not args.workdir and passed:
        shutil.rmtree(workdir, ignore_errors=True)
    elif not passed:
        print(f"libraries and logs kept in {workdir}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
