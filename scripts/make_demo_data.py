"""Build ``voiceprint/demo_data/``: the small real-speech sample that ``voiceprint demo`` runs on.

The rule (deterministic, no hand picking; repeated in the folder's README):

1. the first ``SPEAKERS`` speechocean762 speakers in ``../shared/data/speechocean762``, in order of
   speaker id, who are adults (age >= 16) and fall in the *test* half of
   ``voiceprint.evaluate.split_of`` - the half no back end, threshold or fusion weight was fitted on;
2. every ``STRANGER_EVERY``-th of them is a *stranger* (never enrolled): its first two utterances
   by id ship as they are;
3. the others are *enrolled* persons. Their utterances, in id order, become two enrolment
   recordings ("interviews"): each joins the next two utterances sample for sample (16-bit, no
   gap added, no level change), or three or four when two hold less than ``MIN_NET_S`` of net
   speech by the toolkit's own VAD - the corpus's utterances are 2-5 s, and one alone often holds
   less than today's per-file enrolment gate (3.0 s). The next utterance after the two interviews
   is held out, as it is, for the demo's queries.
 FLAC files are written losslessly (the corpus's 16-bit
samples); copied utterances are byte-for-byte the ones in ``../shared/data``.

    python scripts/make_demo_data.py [--data ../shared/data/speechocean762]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import shutil
from pathlib import Path

MIN_NET_S = 3.3
#: At most this many utterances are joined into one interview.
MAX_JOINED = 4
SPEAKERS = 16
STRANGER_EVERY = 4
CATEGORIES = ("prior_offender", "suspect", "key_person")
CASES = ("AJ2026-0815", "AJ2026-0902", "AJ2026-0917")
OUT = Path(__file__).resolve().parent.parent / "voiceprint" / "demo_data"


def net_speech(path: Path) -> float:
    """Net speech in seconds by the toolkit's VAD, as enrolment measures it."""
    from voiceprint import audio

    ch = audio.load_recording(str(path), channels=0).channels[0]
    return float(sum(s.duration for s in audio.speech_segments(ch.samples, ch.sample_rate)))


def join(sources: list[Path], dest: Path) -> None:
    """Concatenate 16-bit mono FLACs sample for sample into ``dest`` (16-bit FLAC)."""
    import numpy as np
    import soundfile as sf

    parts, rate = [], None
    for src in sources:
        data, sr = sf.read(src, dtype="int16")
        if rate not in (None, sr) or data.ndim != 1:
            raise SystemExit(f"{src}: expected mono at {rate} Hz")
        rate = sr
        parts.append(data)
    sf.write(dest, np.concatenate(parts), rate, format="FLAC", subtype="PCM_16")


def interview(root: Path, utts: list[dict], dest: Path) -> tuple[list[dict], float]:
    """Join the first utterances of ``utts`` (two, or more until the net speech reaches MIN_NET_S) into ``dest``."""
    for n in range(2, MAX_JOINED + 1):
        join([root / u["path"] for u in utts[:n]], dest)
        net = net_speech(dest)
        print(f"{dest.parent.name}/{dest.name}: {n} utterances, {net:.2f} s net speech", flush=True)
        if net >= MIN_NET_S:
            return utts[:n], net
    raise SystemExit(f"{dest}: {MAX_JOINED} utterances hold only {net:.2f} s of net speech - the rule needs revisiting")


def choose(root: Path) -> list[tuple[dict, list[dict]]]:
    """[(speaker row, its utterance rows sorted by id)] for the first SPEAKERS qualifying speakers."""
    from voiceprint.evaluate import split_of

    with open(root / "speakers.csv", encoding="utf-8") as fh:
        speakers = sorted((s for s in csv.DictReader(fh) if int(s["age"]) >= 16 and split_of(s["speaker"]) == "test"),
                          key=lambda s: s["speaker"])
    with open(root / "manifest.csv", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    return [(s, sorted((m for m in manifest if m["speaker"] == s["speaker"]), key=lambda m: m["utterance"]))
            for s in speakers[:SPEAKERS]]


def _row(out: Path, path: str, spk: dict, role: str, utts: list[dict], net: str = "") -> dict:
    dur = sum(float(u["duration_s"]) for u in utts)
    return {"path": path, "speaker": spk["speaker"], "role": role, "utterances": "+".join(u["utterance"] for u in utts),
            "gender": spk["gender"], "age": spk["age"], "duration_s": f"{dur:.2f}", "net_speech_s": net,
            "sha256": hashlib.sha256((out / path).read_bytes()).hexdigest()}


def write(root: Path, chosen: list[tuple[dict, list[dict]]], out: Path) -> None:
    for old in out.glob("so762_*"):
        shutil.rmtree(old)
    sample: list[dict] = []
    enrol: list[dict] = []
    for n, (spk, utts) in enumerate(chosen, start=1):
        folder = out / spk["speaker"]
        folder.mkdir(parents=True)
        if n % STRANGER_EVERY == 0:
            for u in utts[:2]:
                shutil.copyfile(root / u["path"], out / u["path"])
                sample.append(_row(out, u["path"], spk, "stranger", [u]))
            continue
        k, used = len(enrol) // 2, 0
        for i in (1, 2):
            path = f"{spk['speaker']}/interview_{i}.flac"
            joined, net = interview(root, utts[used:], out / path)
            used += len(joined)
            sample.append(_row(out, path, spk, "enrol", joined, f"{net:.2f}"))
            enrol.append({"path": path, "person": spk["speaker"], "category": CATEGORIES[k % 3],
                          "phone": f"1380013{8001 + k:04d}", "case": CASES[k % 3]})
        held = utts[used]
        shutil.copyfile(root / held["path"], out / held["path"])
        sample.append(_row(out, held["path"], spk, "holdout", [held]))
    for name, rows in (("sample.csv", sample), ("enrol.csv", enrol)):
        with open(out / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    size = sum((out / r["path"]).stat().st_size for r in sample)
    print(f"{len(sample)} files of {len(chosen)} speakers, {size / 2**20:.2f} MiB -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/speechocean762")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.data, choose(args.data), args.out)


if __name__ == "__main__":
    main()
