"""Crash testing of enrolment: synthetic clips, the enrol command, interruptions and the invariants
a library must keep after any of them (``scripts/crash_enrol.py`` runs the full experiment,
``tests/test_crash.py`` a fast version).

The invariants (:func:`check_library`): every manifest row is enrolled exactly once (one voiceprint
per file SHA-256 and person, none missing, none extra, no duplicate recordings); ``voiceprint index
check`` says ok; no ``*.tmp`` or half-created ``.library.sqlite.creating`` file is left; SQLite's
integrity check passes; the audit trail holds exactly one ``enrol`` row per voiceprint.
"""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

#: The installed console script beside this interpreter (the command an operator runs).
VOICEPRINT = Path(sys.executable).with_name("voiceprint")
CLIP_SECONDS = 2.0
#: Synthetic clips hold 1.0-1.9 s of net speech; a margin under the library's 1.0 s default.
MIN_SPEECH = "0.5"
FILES_PER_PERSON = 4


def make_clips(n: int, folder: Path) -> list[Path]:
    """``n`` distinct 2 s speech-like WAV clips (generated once, then reused); a seed whose clip
    the VAD finds under 1 s of speech in is skipped, so every clip is enrollable."""
    from . import synth
    from .audio import speech_segments

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:05d}.wav"
        seed = 10_000 + i
        while not path.exists():
            x = synth.synth_speech(CLIP_SECONDS, seed=seed, f0=90 + (seed * 37) % 140)
            if sum(s.duration for s in speech_segments(x, 16000)) >= 1.0:
                tmp = path.with_suffix(".part.wav")
                synth.write_audio(tmp, x, 16000, "wav_pcm16")
                os.replace(tmp, path)
            seed += 100_000
        paths.append(path)
    return paths


def real_clips(n: int) -> list[Path]:
    from .corpora import shared_data_dir

    data = shared_data_dir() / "speechocean762"
    if not (data / "manifest.csv").exists():
        raise SystemExit(f"--real needs {data}/manifest.csv")
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if float(r["duration_s"]) >= 2.0]
    if len(rows) < n:
        raise SystemExit(f"only {len(rows)} real files of 2 s or more; ask for fewer --files")
    return [data / r["path"] for r in rows[:n]]


def write_manifest(clips: list[Path], path: Path) -> list[dict]:
    """A manifest with persons of 4 files each, a phone per person and a case per 10 persons."""
    rows = []
    for i, clip in enumerate(clips):
        p = i // FILES_PER_PERSON
        rows.append({"path": str(clip), "person": f"Person {p:04d}",
                     "category": ("prior_offender", "suspect", "key_person", "other")[p % 4],
                     "phone": f"138{p:08d}", "case": f"AJ2026-{p // 10:04d}"})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def enrol_cmd(manifest: Path, library: Path) -> list[str]:
    return [str(VOICEPRINT), "enrol", str(manifest), "--library", str(library), "--min-speech", MIN_SPEECH]


def voiceprint_count(library: Path) -> int:
    db = library / "library.sqlite"
    if not db.exists():
        return 0
    try:
        # A normal connection made read-only by pragma: a `mode=ro` URI connection cannot take part
        # in WAL recovery after a kill -9 and may fail until the writer has finished it.
        con = sqlite3.connect(db, timeout=30)
        try:
            con.execute("PRAGMA query_only = 1")
            return int(con.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # the schema is not there yet (killed while creating the library)


def interrupt_runs(manifest: Path, library: Path, kills: int, max_delay: float, rng: random.Random,
                   logs: Path) -> list[dict]:
    """Start the enrolment ``kills`` times and stop it each time after a random delay."""
    runs = []
    for k in range(kills):
        sig = signal.SIGINT if rng.random() < 1 / 3 else signal.SIGKILL
        delay = rng.uniform(0.2, max_delay)
        with open(logs / f"kill_{k}.log", "wb") as log:
            proc = subprocess.Popen(enrol_cmd(manifest, library), stdout=log, stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=delay)
                outcome = f"finished before the kill (rc {proc.returncode})"
            except subprocess.TimeoutExpired:
                proc.send_signal(sig)
                try:
                    rc = proc.wait(timeout=120)
                    outcome = f"rc {rc}"
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    outcome = "ignored SIGINT for 120 s"
        runs.append({"signal": sig.name, "delay": round(delay, 1), "outcome": outcome,
                     "voiceprints_after": voiceprint_count(library)})
    return runs


def check_library(library: Path, rows: list[dict]) -> dict:
    """Every row once, index agrees, no temp files, one audit row per voiceprint, integrity ok.

    Reads the database with its own read-only connection and SQL, not through ``Store``: an oracle
    that checks the store must not share the code it checks."""
    from .voices import file_sha256

    expected = {(file_sha256(Path(r["path"])), r["person"]) for r in rows}
    con = sqlite3.connect(f"file:{library / 'library.sqlite'}?mode=ro", uri=True)
    got = con.execute(
        "SELECT r.sha256, p.name, COUNT(*) FROM voiceprints v JOIN recordings r ON r.id = v.recording_id "
        "JOIN persons p ON p.id = v.person_id GROUP BY r.sha256, p.name").fetchall()
    counts = {(sha, name): n for sha, name, n in got}
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    missing = len(expected - set(counts))
    extra = len(set(counts) - expected)
    n_vp = con.execute("SELECT COUNT(*) FROM voiceprints").fetchone()[0]
    dup_recordings = con.execute(
        "SELECT COUNT(*) - COUNT(DISTINCT sha256 || ':' || channel) FROM recordings").fetchone()[0]
    audit = con.execute("SELECT target, COUNT(*) FROM audit WHERE action = 'enrol' GROUP BY target").fetchall()
    vp_ids = {f"voiceprint:{i}" for (i,) in con.execute("SELECT id FROM voiceprints")}
    audit_ok = len(audit) == n_vp and all(n == 1 for _, n in audit) and {t for t, _ in audit} == vp_ids
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    con.close()
    check = subprocess.run([str(VOICEPRINT), "index", "check", "--library", str(library), "--json"],
                           capture_output=True, text=True)
    try:
        index_status = json.loads(check.stdout)[0]["status"]
    except (ValueError, KeyError, IndexError):
        index_status = f"rc {check.returncode}: {check.stderr.strip()[:80]}"
    tmp_files = [p.name for p in library.rglob("*") if p.suffix == ".tmp" or ".creating" in p.name]
    ok = (duplicates == 0 and missing == 0 and extra == 0 and n_vp == len(rows) and dup_recordings == 0
          and index_status == "ok" and not tmp_files and audit_ok and integrity == "ok")
    return {"voiceprints": n_vp, "duplicates": duplicates, "missing": missing, "extra": extra,
            "dup_recordings": dup_recordings, "index": index_status, "tmp_files": tmp_files,
            "audit_ok": audit_ok, "integrity": integrity, "ok": ok}


def run_round(seed: int, rows: list[dict], manifest: Path, workdir: Path, kills: int, max_delay: float) -> dict:
    rng = random.Random(seed)
    library = workdir / f"lib_{seed}"
    logs = workdir / f"logs_{seed}"
    shutil.rmtree(library, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = interrupt_runs(manifest, library, kills, max_delay, rng, logs)
    before = voiceprint_count(library)
    final = subprocess.run(enrol_cmd(manifest, library), capture_output=True, text=True)
    (logs / "final.log").write_text(final.stdout + final.stderr)
    summary = (final.stdout.strip().splitlines() or [""])[-1]
    check = check_library(library, rows) if (library / "library.sqlite").exists() else {"ok": False}
    check["ok"] = check["ok"] and final.returncode == 0
    return {"seed": seed, "runs": runs, "before_final": before, "final_rc": final.returncode,
            "final_summary": summary, "seconds": round(time.perf_counter() - t0, 1), **check}
