"""``voiceprint demo``: the whole voice workflow on real voices that ship with the tool.

``voiceprint/demo_data/`` holds a small sample of speechocean762 (CC BY 4.0): 16 adult Mandarin-L1
speakers reading English, 16 kHz, chosen by a fixed rule (see its README). Twelve are enrolled from
a manifest with categories, phones and cases; four are *strangers*, never enrolled. With the
default model and options the demo then screens what an investigator would meet:

- an unseen recording of every enrolled person: the right person first (in at least 90 % of them;
  a miss is shown, not hidden), each right hit with LR >= 10;
- each stranger: nobody above the library's link threshold;
- an 8 kHz AMR-NB call made here from a held-out recording through ``voiceprint.telephone``:
  the right person first with an LR that supports the same speaker (LR > 1: the call holds only
  1.6 s of speech, and the calibration rightly gives such a call less weight), and a 1:1
  comparison with their enrolment recording that supports it too;
- a mono two-party call (an enrolled person and a stranger taking turns), diarised into two
  voices: one is the person, the other matches nobody above the link threshold.

It prints what it expected and what it found, and fails (exit 1) when an expectation is not met:
on these fixed recordings a failure means the toolkit no longer behaves as shipped.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LibraryError, VoiceprintError
from .report import print_rows
from .scoring import shown_log10_lr

DATA = Path(__file__).resolve().parent / "demo_data"
#: Written into the demo library's folder, so that a re-run only ever deletes a library the demo made.
MARKER = ".voiceprint-demo"
#: A right hit's LR must reach this (log10; LR 10:1, "moderate support" on the ENFSI scale) to count as meaningful.
MIN_LOG10_LR = 1.0
#: The same for a model without a fitted back end (raw cosine; the link threshold on plain cosine).
MIN_COSINE = 0.65
#: Share of the unseen recordings whose right person must come first. The sample is small (one query per
#: person) and top-1 on held-out speechocean762 speakers is about 95 % (docs/accuracy.md), so one miss is allowed.
MIN_TOP1 = 0.9
#: Pause put between the turns of the two-party call (seconds).
TURN_GAP_S = 0.4


class DemoFailed(VoiceprintError):
    """The demo's own expectations were not met on its shipped recordings (a regression)."""

    exit_code = 1


@dataclass
class Check:
    """One expectation of the demo and what was found."""

    what: str
    expected: str
    found: str
    ok: bool

    def line(self) -> str:
        return f"{'OK  ' if self.ok else 'FAIL'} {self.what}: expected {self.expected} -> {self.found}"


def load_sample(data: Path = DATA) -> dict[str, list[dict]]:
    """The shipped sample by role: ``enrol``, ``holdout`` and ``stranger`` rows of ``sample.csv``."""
    with open(data / "sample.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out: dict[str, list[dict]] = {"enrol": [], "holdout": [], "stranger": []}
    for row in rows:
        out[row["role"]].append(dict(row, file=str(data / row["path"])))
    return out


#: The persons of the synthetic-voice demo of earlier versions, whose library carries no marker.
OLD_DEMO_PERSONS = {"Zhang Wei", "Li Na", "Wang Qiang", "Chen Jie"}


def _old_demo_library(root: Path) -> bool:
    """Is ``root`` a library made by the earlier, synthetic-voice demo (only its four persons)?"""
    from .library import Library

    try:
        with Library.open(root) as lib:
            names = {p["name"] for p in lib.persons()}
    except VoiceprintError:
        return False
    return bool(names) and names <= OLD_DEMO_PERSONS


def _fresh_library(root: Path, operator: str | None):
    """A new demo library at ``root``; an older demo library there is removed, anything else is kept."""
    from .library import DB_NAME, Library

    if (root / DB_NAME).exists():
        if not (root / MARKER).exists() and not _old_demo_library(root):
            raise LibraryError(f"{root} holds a library the demo did not make - choose another --library for the demo")
        shutil.rmtree(root)
    lib = Library.create(root, operator=operator or "demo")
    (root / MARKER).write_text("made by `voiceprint demo`; the demo deletes and re-creates this library\n", encoding="utf-8")
    return lib


def _supports(hit: dict | None) -> bool:
    """Does a hit's LR support the same speaker at all (LR > 1; raw cosine >= the link threshold without a back end)?
    Used for the 1.6 s AMR call, where a short, coded call is rightly weak evidence."""
    if hit is None:
        return False
    if hit.get("log10_lr") is not None:
        return float(hit["log10_lr"]) > 0
    return float(hit["cosine"]) >= MIN_COSINE


def _meaningful(hit: dict | None) -> bool:
    """Does a hit's LR support the same speaker at least moderately (LR >= 10; raw cosine >= the link threshold
    where no back end is fitted)?"""
    if hit is None:
        return False
    if hit.get("log10_lr") is not None:
        return float(hit["log10_lr"]) >= MIN_LOG10_LR
    return float(hit["cosine"]) >= MIN_COSINE


def _strong(hit: dict | None, limits: dict) -> bool:
    """Does a hit reach the link threshold (calibrated LLR, or cosine where no back end is fitted)?"""
    if hit is None:
        return False
    if hit.get("llr") is not None:
        return float(hit["llr"]) >= limits["llr"]
    return float(hit["cosine"]) >= limits["cosine"]


def _lr(hit: dict | None) -> str:
    if hit is None:
        return "no hit"
    if hit.get("log10_lr") is None:
        return f"{hit['person']['name']} (cosine {hit['cosine']:.2f}, no calibrated LR)"
    return f"{hit['person']['name']}, log10 LR {hit['log10_lr']:+.1f}"


def _top(result: dict) -> dict | None:
    return result["hits"][0] if result["hits"] else None


def _hit_rows(result: dict) -> list[dict]:
    return [{"rank": h["rank"], "person": h["person"]["name"], "category": h["person"]["category"], "score": h["score"],
             "log10 LR": shown_log10_lr(h), "verbal": h.get("verbal"), "exp. false hits": h.get("expected_false_hits"),
             "phones": h["phones"], "cases": [c["case_number"] for c in h["cases"]]} for h in result["hits"]]


def _print_result(result: dict, name: str) -> None:
    print_rows(_hit_rows(result), title=f"{name} voice {result['voice']} ({result['codec']}, {result['source_rate']} Hz, "
                                        f"{result['net_speech']:.1f} s speech, speaks at "
                                        f"{', '.join(f'{a:.1f}-{b:.1f}' for a, b in result['segments'][:6])})")


def make_phone_call(src: str, dest: Path) -> Path:
    """``src`` through the telephone channel (8 kHz, 300-3400 Hz, AMR-NB 12.2 kbit/s), written to ``dest``."""
    from .audio import load_recording
    from .telephone import encode, to_phone_band

    ch = load_recording(src, channels=0).channels[0]
    encode(to_phone_band(ch.samples, ch.sample_rate), "amrnb", dest)
    return dest


def _halves(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A recording cut in two at the speech pause nearest its middle (at the middle when it has none)."""
    from .audio import load_recording, speech_segments

    ch = load_recording(path, channels=0).channels[0]
    x, sr = ch.samples, ch.sample_rate
    segs = speech_segments(x, sr)
    gaps = [(a.end + b.start) / 2 for a, b in zip(segs, segs[1:], strict=False)]
    mid = len(x) / sr / 2
    cut = int(sr * (min(gaps, key=lambda g: abs(g - mid)) if gaps else mid))
    return x[:cut], x[cut:], sr


def make_two_party_call(first: str, second: list[str], dest: Path) -> Path:
    """A mono call of two people taking turns, 16 kHz FLAC: ``first`` cut in two at a pause, and the
    ``second`` person's recordings between and after its halves."""
    from .audio import load_recording
    from .synth import write_audio

    a1, a2, sr = _halves(first)
    b = [load_recording(p, channels=0).channels[0].samples for p in second]
    b1, b2 = (b[0], b[1]) if len(b) > 1 else _halves(second[0])[:2]
    gap = np.zeros(int(TURN_GAP_S * sr), dtype=np.float32)
    write_audio(dest, np.concatenate([a1, gap, b1, gap, a2, gap, b2]).astype(np.float32), sr, "flac")
    return dest


def _enrol(lib, sample: dict, echo) -> Check:
    from .library import read_manifest

    manifest = DATA / "enrol.csv"
    persons = sorted({r["speaker"] for r in sample["enrol"]})
    echo(f"2. enrolling {len(sample['enrol'])} recordings of {len(persons)} persons from {manifest.name} "
         "(default model and options, no --force)")
    summary = lib.enrol_many(read_manifest(manifest))
    for o in summary.refused:
        echo(f"   refused: {o.reason}")
    print_rows(lib.persons(), ["id", "name", "category", "voice_samples"], title=f"library ({lib.model})")
    found = f"{summary.count('enrolled')} enrolled, {summary.count('refused')} refused"
    return Check("enrolment", f"{len(sample['enrol'])} recordings enrolled, none refused", found,
                 summary.count("enrolled") == len(sample["enrol"]))


def _known_queries(lib, sample: dict, echo) -> tuple[list[Check], list[dict]]:
    """Query every enrolled person's held-out recording: right person first, with a meaningful LR?"""
    echo(f"3. unseen recordings of the {len(sample['holdout'])} enrolled persons (1:N, investigative leads)")
    rows, right, weak = [], [], []
    for row in sample["holdout"]:
        result = lib.query(row["file"], top=3)[0]
        top = _top(result)
        second = result["hits"][1] if len(result["hits"]) > 1 else None
        if top is not None and top["person"]["name"] == row["speaker"]:
            right.append(row["speaker"])
            if not _meaningful(top):
                weak.append(f"{row['speaker']} ({_lr(top)})")
            verdict = "right" if _meaningful(top) else "right, weak LR"
        else:
            verdict = "MISSED"
        rows.append({"query": row["path"], "speech s": result["net_speech"], "expected": row["speaker"],
                     "top hit": top and top["person"]["name"], "log10 LR": top and top.get("log10_lr"),
                     "verbal": top and top.get("verbal"), "runner-up": second and second["person"]["name"],
                     "runner-up log10 LR": second and second.get("log10_lr"), "phones": top and top["phones"],
                     "cases": top and [c["case_number"] for c in top["cases"]], "result": verdict})
    print_rows(rows, title="unseen recordings of enrolled persons: top hit and runner-up")
    n = len(rows)
    for r in rows:
        echo(f"   expected {r['expected']} -> top hit {r['top hit']}, log10 LR {r['log10 LR']} ({r['result']})")
    missed = [r["expected"] for r in rows if r["result"] == "MISSED"]
    checks = [
        Check("unseen recordings, right person first", f"at least {MIN_TOP1:.0%} of {n}",
              f"{len(right)} of {n}" + (f" (missed: {', '.join(missed)})" if missed else ""), len(right) >= MIN_TOP1 * n),
        Check("right first hits with a meaningful LR", f"every one at log10 LR >= {MIN_LOG10_LR:g}",
              f"{len(right) - len(weak)} of {len(right)}" + (f" (weak: {', '.join(weak)})" if weak else ""), not weak),
    ]
    return checks, rows


def _strangers(lib, sample: dict, limits: dict, echo) -> list[Check]:
    """Query the first recording of each stranger: nobody should reach the link threshold."""
    firsts: dict[str, dict] = {}
    for row in sample["stranger"]:
        firsts.setdefault(row["speaker"], row)
    echo(f"4. {len(firsts)} strangers (demo speakers who are not enrolled)")
    checks, rows = [], []
    for speaker, row in firsts.items():
        result = lib.query(row["file"], top=3)[0]
        top = _top(result)
        ok = not any(_strong(h, limits) for h in result["hits"])
        rows.append({"query": row["path"], "stranger": speaker, "top hit": top and top["person"]["name"],
                     "log10 LR": top and top.get("log10_lr"), "verbal": top and top.get("verbal"),
                     "exp. false hits": top and top.get("expected_false_hits"), "result": "OK" if ok else "FAIL"})
        checks.append(Check(f"stranger {speaker}", "nobody above the link threshold", "top hit " + _lr(top), ok))
    print_rows(rows, title="strangers: best (wrong) hit")
    return checks


def _phone_call(lib, sample: dict, workdir: Path, echo) -> tuple[list[Check], Path]:
    """An 8 kHz AMR-NB call of an enrolled person, and a 1:1 comparison of it with their interview."""
    row = sample["holdout"][1 % len(sample["holdout"])]
    call = make_phone_call(row["file"], workdir / "fraud_call_8k.amr")
    echo(f"5. an 8 kHz AMR-NB phone call: {call.name}, made from {row['path']} (held out, {row['speaker']}) "
         "through the telephone codec simulation")
    result = lib.query(call, top=3)[0]
    _print_result(result, call.name)
    top = _top(result)
    checks = [Check(f"AMR-NB call of {row['speaker']}", f"{row['speaker']} first, log10 LR > 0", _lr(top),
                    top is not None and top["person"]["name"] == row["speaker"] and _supports(top))]
    interview = next(r for r in sample["enrol"] if r["speaker"] == row["speaker"])
    v = lib.verify(call, interview["file"])
    echo(f"   1:1 (evaluative) {call.name} vs {interview['path']}: score {v['score']}, "
         f"log10 LR {v.get('log10_lr')} ({v.get('verbal')})")
    ok = float(v["log10_lr"]) > 0 if v.get("log10_lr") is not None else float(v["cosine"]) >= MIN_COSINE
    checks.append(Check("1:1 call vs enrolment recording", "log10 LR > 0",
                        f"log10 LR {v.get('log10_lr')} ({v.get('verbal')})", ok))
    return checks, call


def _two_party_parties(sample: dict) -> tuple[dict, list[dict]]:
    """Who talks in the two-party call: the enrolled person with the longest held-out recording (a
    diarised voice needs a few seconds of speech) and the stranger with the most recorded speech."""
    known = max(sample["holdout"], key=lambda r: (float(r["duration_s"]), r["speaker"]))
    by_stranger: dict[str, list[dict]] = {}
    for row in sample["stranger"]:
        by_stranger.setdefault(row["speaker"], []).append(row)
    stranger = max(by_stranger.values(), key=lambda rows: (sum(float(r["duration_s"]) for r in rows), rows[0]["speaker"]))
    return known, stranger


def _two_party(lib, sample: dict, workdir: Path, limits: dict, echo) -> list[Check]:
    """A mono call of an enrolled person and a stranger, diarised: one voice matches, the other nobody."""
    known, stranger = _two_party_parties(sample)
    who = stranger[0]["speaker"]
    call = make_two_party_call(known["file"], [r["file"] for r in stranger], workdir / "two_party_mono.flac")
    echo(f"6. a mono two-party call: {call.name} - {known['speaker']} (enrolled; held-out {known['path']}) and "
         f"{who} (stranger; {', '.join(r['path'] for r in stranger)}) taking turns")
    results = lib.query(call, top=3)
    for r in results:
        _print_result(r, call.name)
    tops = [_top(r) for r in results]
    right = [t for t in tops if t is not None and t["person"]["name"] == known["speaker"] and _meaningful(t)]
    linked = [t for t in tops if t is not None and _strong(t, limits) and t["person"]["name"] != known["speaker"]]
    found = f"{len(results)} voice(s): " + "; ".join(f"voice {r['voice']} -> {_lr(t)}" for r, t in zip(results, tops, strict=True))
    ok = len(results) == 2 and len(right) == 1 and not linked
    return [Check("two-party call", f"2 voices: one {known['speaker']} (LR >= 10), the other nobody above the link threshold",
                  found, ok)]


def run_demo(library: Path, workdir: Path, operator: str | None = None, echo=print) -> dict:
    """Run the demo end to end, print what an investigator would see and what was expected;
    raise :class:`DemoFailed` (exit 1) when an expectation is not met."""
    from .library import resolve_library
    from .linking import thresholds

    sample = load_sample()
    speakers = {r["speaker"] for rows in sample.values() for r in rows}
    echo(f"1. real voices: {len(speakers)} adult speakers of speechocean762 (Mandarin L1 reading English, 16 kHz, "
         f"CC BY 4.0, Zhang et al. 2021) in {DATA} - see its README.md")
    workdir.mkdir(parents=True, exist_ok=True)
    root = resolve_library(library)
    with _fresh_library(root, operator) as lib:
        limits = thresholds(lib.model)
        echo(f"   library {root}, model {lib.model}; a hit is linked at LLR >= {limits['llr']:g} "
             f"(log10 LR {limits['llr'] / np.log(10):.2f}) - the library's own link threshold")
        checks = [_enrol(lib, sample, echo)]
        known, rows = _known_queries(lib, sample, echo)
        checks += known
        checks += _strangers(lib, sample, limits, echo)
        phone, call = _phone_call(lib, sample, workdir, echo)
        checks += phone
        checks += _two_party(lib, sample, workdir, limits, echo)
        echo(f"7. index check: {lib.check_index()['status']}; audit trail rows: {len(lib.audit(limit=1000))}")
    echo("summary - what the demo expected and what it found:")
    for c in checks:
        echo("   " + c.line())
    failed = [c for c in checks if not c.ok]
    echo(f"{len(checks) - len(failed)} of {len(checks)} expectations met; try: voiceprint query {call} --library {root} --json")
    if failed:
        raise DemoFailed(f"demo: {len(failed)} of {len(checks)} expectations not met ({failed[0].what}: {failed[0].found}) - "
                         "the toolkit does not behave as shipped on its own sample; rerun with --verbose and report it")
    return {"checks": checks, "known": rows, "enrolled": checks[0].found}
