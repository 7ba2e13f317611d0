"""``voiceprint demo``: the whole voice workflow on recordings it makes itself.

Four known people are enrolled from a manifest (two clips each, with categories, phones and
cases); then three unknown calls are screened - an 8 kHz AMR-NB phone call, a stereo call with
two voices, and an MP3 of someone not in the library - and one 1:1 comparison is made. The
voices are synthetic (no speech data ships with the tool), so the demo shows the pipeline;
accuracy on real speech is in docs/accuracy.md.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np

from .report import print_rows
from .synth import synth_speech, write_audio

KNOWN = [  # name, category, phone, case, pitch (Hz), seeds of the two enrolment clips
    ("Zhang Wei", "prior_offender", "13800138001", "AJ2026-0815", 105, (1, 2)),
    ("Li Na", "suspect", "13900139002", "AJ2026-0815", 215, (3, 4)),
    ("Wang Qiang", "key_person", "13700137003", "AJ2026-0902", 140, (5, 8)),
    ("Chen Jie", "prior_offender", "13600136004", "AJ2026-0917", 180, (12, 1)),
]
#: Long enough to pass the enrolment quality gate on net speech.
CLIP_SECONDS = 9.0


def make_recordings(workdir: Path) -> tuple[Path, dict[str, Path]]:
    """Write the enrolment clips, their manifest and the unknown calls; return (manifest, calls)."""
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = workdir / "enrol.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "person", "category", "phone", "case"])
        for i, (name, category, phone, case, f0, seeds) in enumerate(KNOWN):
            for take, seed in enumerate(seeds):
                fmt, ext = ("wav_pcm16", "wav") if take == 0 else ("flac", "flac")
                path = workdir / f"known_{i}_{take}.{ext}"
                write_audio(path, synth_speech(CLIP_SECONDS, f0=f0, seed=seed), 16000, fmt)
                writer.writerow([path.name, name, category, phone, case])
    calls = {
        "fraud_call_8k.amr": lambda p: write_audio(p, synth_speech(CLIP_SECONDS, f0=KNOWN[1][4], seed=12), 16000, "amr_nb"),
        "two_party_stereo.wav": lambda p: write_audio(p, _stereo(KNOWN[2][4], 250), 16000, "wav_pcm16"),
        "unknown_caller.mp3": lambda p: write_audio(p, synth_speech(CLIP_SECONDS, f0=160, seed=4), 16000, "mp3"),
    }
    out = {}
    for name, make in calls.items():
        out[name] = workdir / name
        make(out[name])
    return manifest, out


def _stereo(f0_left: float, f0_right: float) -> np.ndarray:
    left = synth_speech(2 * CLIP_SECONDS, f0=f0_left, seed=2)
    right = synth_speech(2 * CLIP_SECONDS, f0=f0_right, seed=12)
    turn = (np.arange(len(left)) / 16000 // 2.0) % 2 == 0
    return np.stack([left * turn, right * ~turn]).astype(np.float32)


def run_demo(library: Path, workdir: Path, operator: str | None = None, echo=print) -> dict:
    """Run the demo end to end and print what an investigator would see."""
    from .library import Library, read_manifest

    if (library / "library.sqlite").exists():
        shutil.rmtree(library)  # the demo library is always made afresh
    echo(f"1. making demo recordings in {workdir}")
    manifest, calls = make_recordings(workdir)
    echo(f"2. creating library {library} and enrolling {manifest.name}")
    lib = Library.create(library, operator=operator or "demo")
    summary = lib.enrol_many(read_manifest(manifest))
    echo(f"   enrolled {summary.count('enrolled')} recordings of {len(KNOWN)} people, refused {summary.count('refused')}")
    print_rows(lib.persons(), ["id", "name", "category", "voice_samples"], title="library")
    echo("3. screening unknown calls (1:N - investigative leads)")
    results = []
    for name, path in calls.items():
        for r in lib.query(path, top=3):
            results.append(r)
            rows = [{"rank": h["rank"], "person": h["person"]["name"], "category": h["person"]["category"],
                     "score": h["score"], "log10 LR": h.get("log10_lr"), "exp. false hits": h.get("expected_false_hits"),
                     "phones": h["phones"], "cases": [c["case_number"] for c in h["cases"]]}
                    for h in r["hits"]]
            print_rows(rows, title=f"{name} channel {r['channel']} ({r['codec']}, {r['source_rate']} Hz, "
                                   f"{r['net_speech']:.1f} s speech)")
    echo("   note: these voices are synthetic and unlike the real speech the score calibration was fitted on,\n"
         "   so their likelihood ratios sit at the bounds and mean nothing; on real speech see docs/accuracy.md")
    echo("4. 1:1 comparison (evaluative)")
    v = lib.verify(calls["fraud_call_8k.amr"], workdir / "known_1_0.wav")
    echo(f"   fraud_call_8k.amr vs known_1_0.wav: score {v['score']}, log10 LR {v.get('log10_lr')} ({v.get('verbal')})")
    echo(f"5. index check: {lib.check_index()['status']}; audit trail rows: {len(lib.audit(limit=1000))}")
    echo(f"done - try: voiceprint query {calls['fraud_call_8k.amr']} --library {library} --json")
    return {"enrolled": summary.count("enrolled"), "results": results}
