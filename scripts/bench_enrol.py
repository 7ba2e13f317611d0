"""End-to-end enrolment throughput: ``Library.enrol_many`` vs SpeechBrain's ``encode_batch`` alone.

Usage:
    .venv/bin/python scripts/bench_enrol.py [--files 200] [--data ../shared/data/speechocean762]
        [--chunk 20] [--generated] [--json out/bench/enrol.json]
    .venv/bin/python scripts/bench_enrol.py --models ecapa-voxceleb campplus-zh-en [--files 100]

Both sides use one model load and the same files; every model either side uses is loaded before
timing starts. The baseline decodes every file first (untimed) and times only
``EncoderClassifier.encode_batch`` (torch) on each whole decoded signal, one file per call, once
with one torch thread and once with every usable core (``--baseline-threads``): on a small
machine more threads can be slower, so the *faster* of the two is the reference (the output and
the JSON say which). The library side enrols the files into one fresh temporary library (short
utterances are enrolled with a quality warning), timed end to end, as it runs by default: workers
on every usable core (threads here; ``--workers`` to change). The sides are interleaved in chunks of
``--chunk`` files (baseline at each thread count, then the library), so a change in machine load
during the run biases none of them. Every file length is seen once by each side (PyTorch sets its
kernels up per input shape, so each side pays that cost alike).

With ``--workers 0`` (enrolment in the main process) the library's stages are timed by wrapping
the library's own calls: decode
(``audio.load_recording``, which also hashes the file), VAD (``audio.prepare_speech``), quality
(``audio.measure_quality``), diarisation (``diarize.diarize``), embedding (``Embedder.embed``);
the rest (file hash for the idempotency check, SQLite, FAISS saves) is "database and other".
Throughput is seconds of audio per second of wall time, and files per second. CPU seconds are
printed beside each (the library's include its workers'): on a shared machine they show the work
done, whatever share of the cores the run got.

The files are a fixed subset: the first 4 utterances of speakers spread evenly over the manifest.
Accuracy on it: the EER over all pairs of files, of the voiceprints as enrolled and of the same
voices embedded one file at a time by the torch network (the path before ONNX Runtime and workers). ``--json FILE`` adds
``summary`` = {"speed_ratio": library audio-s/s / bare encode_batch audio-s/s, "eer_before", "eer_after"}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from collections import defaultdict
from functools import wraps
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def machine() -> str:
    import torch

    from voiceprint.report import machine_line

    return machine_line(f"torch {torch.__version__}")


def pick_files(data: Path, n: int, per_speaker: int = 4) -> list[tuple[Path, str]]:
    """The fixed subset: the first ``per_speaker`` files of speakers spread evenly over the manifest
    (every k-th speaker), ``n`` files in all, with their speakers (same-speaker pairs give the EER)."""
    with open(data / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_speaker: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_speaker[r["speaker"]].append(r)
    speakers = list(by_speaker)
    step = max(1, len(speakers) // max(1, -(-n // per_speaker)))
    picked = [r for who in speakers[::step] for r in by_speaker[who][:per_speaker]]
    return [(data / r["path"], r["speaker"]) for r in picked[:n]]


def eer_of(vectors: list[np.ndarray], speakers: list[str]) -> float:
    """Equal error rate (%) of cosine scores over every pair of files (same speaker = target)."""
    from voiceprint.evaluate import eer

    x = np.stack(vectors).astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = x @ x.T
    same = np.array(speakers)[:, None] == np.array(speakers)[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    return round(100 * eer(scores[same & upper], scores[~same & upper]), 2)


def accuracy(files, root: Path) -> dict:
    """EER of the library's voiceprints (as enrolled) and of the same voices embedded one file at a
    time by ``Embedder.embed`` with the torch network (``VOICEPRINT_ONNX=0``), on the same subset."""
    from voiceprint.embedding import Embedder, load_spec
    from voiceprint.library import Library
    from voiceprint.voices import file_sha256, read_voices

    lib = Library.open(root)
    try:
        rows = lib.store.db.execute("SELECT r.sha256, v.vector FROM voiceprints v JOIN recordings r ON r.id = v.recording_id").fetchall()
    finally:
        lib.close()
    after = {sha: np.frombuffer(blob, np.float32) for sha, blob in rows}
    os.environ["VOICEPRINT_ONNX"] = "0"
    try:
        embedder = Embedder(load_spec(None).name)
        assert embedder.onnx_network is None
    finally:
        del os.environ["VOICEPRINT_ONNX"]
    keep, before, batched = [], [], []
    for path, who in files:
        sha = file_sha256(path)
        if sha in after:
            _, voices = read_voices(str(path), embedder)
            keep.append(who)
            before.append(embedder.embed(voices[0].speech))
            batched.append(after[sha])
    cos = [float(a @ b) for a, b in zip(before, batched, strict=True)]
    return {"eer_before": eer_of(before, keep), "eer_after": eer_of(batched, keep), "files": len(keep),
            "min_cosine_enrolled_vs_torch": round(min(cos), 6)}


def generated_files(n: int, folder: Path) -> list[tuple[Path, str]]:
    from voiceprint import synth

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        path = folder / f"gen_{i:04d}.wav"
        if not path.exists():
            synth.speech_file(path, "wav_pcm16", seconds=4.0, seed=20_000 + i, f0=90 + (i * 37) % 140)
        out.append((path, f"gen_{i // 4:03d}"))
    return out


class StageTimer:
    """Wraps module functions so each call's wall time is added to its stage."""

    def __init__(self):
        self.seconds = defaultdict(float)
        self._undo = []

    def wrap(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)
        active = set()  # a fusion's embed calls its components' embed: time the outer call only

        @wraps(original)
        def timed(*args, **kwargs):
            if stage in active:
                return original(*args, **kwargs)
            active.add(stage)
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                active.discard(stage)
                self.seconds[stage] += time.perf_counter() - t0

        setattr(owner, name, timed)
        self._undo.append((owner, name, original))

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (enrolment's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_direct(encoder, signals: list[np.ndarray], threads: int | None = None) -> tuple[float, float]:
    """Wall and CPU seconds spent in ``encode_batch``, one whole signal per call (with ``threads`` torch threads)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    spent = cpu = 0.0
    try:
        with torch.inference_mode():
            for x in signals:
                wav = torch.from_numpy(x).unsqueeze(0)
                t0, c0 = time.perf_counter(), cpu_seconds()
                encoder.encode_batch(wav)
                spent += time.perf_counter() - t0
                cpu += cpu_seconds() - c0
    finally:
        torch.set_num_threads(before)
    return spent, cpu


def run_interleaved(files, signals, encoder, root: Path, chunk: int, baseline_threads: list[int], workers: int | None) -> dict:
    """Per chunk: the baseline at each thread count, then the library's enrolment. Returns the summed timings."""
    from voiceprint import audio, diarize
    from voiceprint.embedding import Embedder
    from voiceprint.library import EnrolItem, Library

    timer = StageTimer()
    timer.wrap(audio, "load_recording", "decode")
    timer.wrap(audio, "prepare_speech", "VAD")
    timer.wrap(audio, "measure_quality", "quality")
    timer.wrap(diarize, "diarize", "diarisation")
    timer.wrap(Embedder, "embed", "embedding")
    out: dict[str, Any] = {"direct": dict.fromkeys(baseline_threads, 0.0), "direct_cpu": dict.fromkeys(baseline_threads, 0.0),
                           "library": 0.0, "library_cpu": 0.0, "enrolled": 0}
    lib = Library.create(root, operator="bench_enrol")
    try:
        for start in range(0, len(files), chunk):
            part = slice(start, start + chunk)
            for threads in baseline_threads:
                wall, cpu = run_direct(encoder, signals[part], threads)
                out["direct"][threads] += wall
                out["direct_cpu"][threads] += cpu
            items = [EnrolItem(str(p), who) for p, who in files[part]]
            t0, c0 = time.perf_counter(), cpu_seconds()
            summary = lib.enrol_many(items, workers=workers)
            out["library"] += time.perf_counter() - t0
            out["library_cpu"] += cpu_seconds() - c0
            out["enrolled"] += summary.count("enrolled")
    finally:
        timer.restore()
        out["net_speech"] = float(lib.store.db.execute("SELECT COALESCE(SUM(net_speech), 0) FROM recordings").fetchone()[0])
        lib.close()
    stages = dict(timer.seconds)
    stages["database and other"] = out["library"] - sum(stages.values())
    out["stages"] = stages
    return out


def run_models(files, models: list[str], root: Path, chunk: int, audio_s: float) -> dict:
    """``Library.enrol_many`` of the same files into one fresh library per model, interleaved per
    chunk (model A, model B, ..., then the next chunk) so load shifts hit every model alike.
    Returns per model: seconds, audio seconds per second, and seconds per audio second."""
    from voiceprint.library import EnrolItem, Library

    libs = {m: Library.create(root / m, model=m, operator="bench_enrol") for m in models}
    spent = dict.fromkeys(models, 0.0)
    try:
        for m in models:  # warm-up: the model loads outside the timing
            libs[m].enrol_many([EnrolItem(str(p), who) for p, who in files[:1]])
        for start in range(1, len(files), chunk):
            items = [EnrolItem(str(p), who) for p, who in files[start:start + chunk]]
            for m in models:
                t0 = time.perf_counter()
                libs[m].enrol_many(items)
                spent[m] += time.perf_counter() - t0
    finally:
        for lib in libs.values():
            lib.close()
    first = models[0]
    return {m: {"seconds": round(spent[m], 2), "audio_s_per_s": round(audio_s / spent[m], 2),
                "s_per_audio_s": round(spent[m] / audio_s, 4), "relative_to_first": round(spent[m] / spent[first], 3)}
            for m in models}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "speechocean762")
    cores = len(os.sched_getaffinity(0))
    ap.add_argument("--threads", type=int, default=cores, help="torch threads of the library's main process (default: usable cores)")
    ap.add_argument("--baseline-threads", type=int, nargs="+", default=sorted({1, cores}),
                    help="torch thread counts the baseline is timed at; the fastest is the reference")
    ap.add_argument("--workers", type=int, default=None,
                    help="the library's workers (default: its own choice, the usable cores; 0 = in the calling thread)")
    ap.add_argument("--chunk", type=int, default=20, help="files per interleaved chunk")
    ap.add_argument("--generated", action="store_true", help="generated 4 s clips even if real data is there")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--models", nargs="+", default=None,
                    help="instead: enrol the same files with each of these models, interleaved (the first is the reference)")
    args = ap.parse_args()

    from voiceprint.audio import load_recording
    from voiceprint.embedding import get_embedder, load_spec

    real = not args.generated and (args.data / "manifest.csv").exists()
    files = pick_files(args.data, args.files) if real else generated_files(args.files, REPO / "out" / "bench" / "clips")
    signals = [np.ascontiguousarray(load_recording(p, channels="mix").channels[0].samples) for p, _ in files]
    audio_s = sum(len(x) for x in signals) / 16000
    print(machine())
    print(f"{len(files)} {'real speechocean762' if real else 'generated'} files, {audio_s:.0f} s of audio "
          f"(mean {audio_s / len(files):.1f} s)", flush=True)

    # Importing silero-vad sets torch to one thread for the whole process (voiceprint.audio's
    # speech_segments imports it before its guard restores the count): import it now, then pin
    # the thread count both sides run with.
    import torch

    from voiceprint.audio import speech_segments

    speech_segments(np.zeros(16000, np.float32) + 1e-3, 16000)
    torch.set_num_threads(args.threads)
    print(f"torch threads: the library {args.threads} (1 while its workers run); ONNX Runtime 1 per worker; "
          f"the baseline at {' and '.join(map(str, args.baseline_threads))}", flush=True)
    if args.models:
        audio_s = sum(len(x) for x in signals[1:]) / 16000  # the first file is the untimed warm-up
        with tempfile.TemporaryDirectory(prefix="bench_enrol_") as tmp:
            res = run_models(files, args.models, Path(tmp), args.chunk, audio_s)
        print(f"\n{'Library.enrol_many with':28s}{'seconds':>9s}{'audio s/s':>11s}{'s per audio s':>15s}{'vs first':>10s}")
        for m, r in res.items():
            print(f"{m:28s}{r['seconds']:9.1f}{r['audio_s_per_s']:11.1f}{r['s_per_audio_s']:15.4f}{r['relative_to_first']:9.2f}x")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"machine": machine(), "files": len(files) - 1, "real": real,
                                             "audio_seconds": round(audio_s, 1), "models": res}, indent=2))
        return
    from voiceprint.enrolment import warm_models

    spec = load_spec(None)
    embedder = get_embedder(spec.name)
    encoder = embedder.encoder  # the object the library uses: one model load
    warm_models(embedder)  # the library's other models (ONNX network, diarisation, VAD), untimed like the baseline's
    for threads in args.baseline_threads:
        run_direct(encoder, signals[:3], threads)  # warm-up
    with tempfile.TemporaryDirectory(prefix="bench_enrol_") as tmp:
        r = run_interleaved(files, signals, encoder, Path(tmp) / "lib", args.chunk, args.baseline_threads, args.workers)
        r["accuracy"] = accuracy(files, Path(tmp) / "lib")
    lib_total, stages, enrolled = r["library"], r["stages"], r["enrolled"]
    best_threads = min(r["direct"], key=r["direct"].get)
    direct = r["direct"][best_threads]
    from voiceprint.enrolment import worker_count

    workers = worker_count(min(args.chunk, len(files)), args.workers)

    print(f"\n{'':40s}{'seconds':>9s}{'audio s/s':>11s}{'files/s':>9s}{'CPU-s':>8s}")
    for threads, sec in r["direct"].items():
        mark = "  <- reference (the faster)" if threads == best_threads else ""
        print(f"{f'SpeechBrain encode_batch, {threads} thread(s)':40s}{sec:9.1f}{audio_s / sec:11.1f}{len(files) / sec:9.2f}"
              f"{r['direct_cpu'][threads]:8.1f}{mark}")
    how = f"{workers} workers" if workers else "in process"
    print(f"{f'Library.enrol_many ({how})':40s}{lib_total:9.1f}{audio_s / lib_total:11.1f}{len(files) / lib_total:9.2f}"
          f"{r['library_cpu']:8.1f}   ({enrolled} enrolled)")
    ratio = lib_total / direct
    print(f"the library embedded {r['net_speech']:.0f} s of net speech (VAD) of the {audio_s:.0f} s the baseline embedded")
    print(f"library / direct time: {ratio:.2f}x  (library throughput = {1 / ratio:.0%} of the bare model's at {best_threads} thread(s))")
    if workers:
        print("(stages are prepared by the workers and not timed here: run with --workers 0 for the breakdown)")
    else:
        print("where the library's time goes:")
        for stage, sec in sorted(stages.items(), key=lambda kv: -kv[1]):
            print(f"  {stage:22s}{sec:8.1f} s  {sec / lib_total:6.1%}")
    acc = r["accuracy"]
    print(f"EER on the subset ({acc['files']} files, all pairs): torch one file at a time {acc['eer_before']:.2f} %, "
          f"as enrolled {acc['eer_after']:.2f} % (min cosine between the two: {acc['min_cosine_enrolled_vs_torch']})")
    print(f"speed ratio (library audio-s/s / bare encode_batch audio-s/s at {best_threads} thread(s)): {direct / lib_total:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "summary": {"speed_ratio": round(direct / lib_total, 3), "baseline_threads": best_threads,
                        "eer_before": acc["eer_before"], "eer_after": acc["eer_after"]},
            "accuracy": acc, "threads": args.threads, "workers": workers, "load_average": [round(x, 2) for x in os.getloadavg()],
            "machine": machine(), "files": len(files), "real": real, "audio_seconds": round(audio_s, 1),
            "direct_seconds": round(direct, 2), "direct_by_threads": {str(k): round(v, 2) for k, v in r["direct"].items()},
            "direct_cpu_by_threads": {str(k): round(v, 2) for k, v in r["direct_cpu"].items()},
            "library_seconds": round(lib_total, 2), "library_cpu_seconds": round(r["library_cpu"], 2),
            "net_speech_seconds": round(r["net_speech"], 1), "ratio": round(ratio, 3), "enrolled": enrolled,
            "stages": {k: round(v, 2) for k, v in stages.items()} if not workers else {}}, indent=2))


if __name__ == "__main__":
    main()
