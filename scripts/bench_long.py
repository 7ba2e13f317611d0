"""Long recordings: can a 30-minute and a 2-hour mono two-party call be queried, and at what cost?

Builds long calls from real speech (``../shared/data``): two LibriSpeech test-other speakers take
turns (their utterances 2-9, levelled to -23 dBFS +-3 dB, 0.3-1.2 s pauses, a faint noise floor),
cycling through the utterances until the call is long enough, written as a 16 kHz mono FLAC with
PyAV's encoder block by block. Without the shared data, two synthetic voices from
``voiceprint.synth`` take the turns instead. A fresh library is enrolled with utterances 0-1 of
the six LibriSpeech speakers and one utterance of 12 speechocean762 speakers (never the call's own audio).

Each call is queried with ``voiceprint query --json`` in its own process, measured by ``os.wait4``:
wall seconds, CPU seconds (user + system) and peak RSS. The baseline, measured in the same run, is
the code at ``--baseline-ref`` (the commit before long-recording support; checked out with
``git archive`` into a temporary folder) querying a 5-minute call, and the current code on the same
5-minute call. Ratios are per minute of audio, so load on the shared machine shows up in both.

    python scripts/bench_long.py                          # 5 min (old + new), 30 min, 2 h
    python scripts/bench_long.py --minutes 30 --no-baseline --json out/bench/long.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SR = 16000
OLD_REF = "1ac465f"  # the last commit before streaming decode/VAD and bounded diarisation
#: The caller's own setting: importing voiceprint here sets OMP_WAIT_POLICY, which the old code did not.
USER_OMP_WAIT = os.environ.get("OMP_WAIT_POLICY")


def _shared() -> Path | None:
    """../shared/data (or $VOICEPRINT_SHARED_DATA), None where it is absent."""
    from voiceprint.corpora import shared_data_dir
    from voiceprint.errors import DataError

    try:
        return shared_data_dir()
    except DataError:
        return None


def _rows(corpus: str) -> dict[str, list[dict]]:
    """speaker -> manifest rows (by path), or nothing without ../shared."""
    from voiceprint.corpora import manifest

    return manifest(corpus) if _shared() is not None else {}


def _load(path: str) -> np.ndarray:
    from voiceprint.audio import load_recording

    return load_recording(path, channels=0).channels[0].samples


def turn_sources() -> tuple[list[list[np.ndarray]], list[str]]:
    """Utterances of the call's two speakers (A, B) and their speaker ids."""
    if _shared() is None:
        from voiceprint.synth import synth_speech

        return ([[synth_speech(8.0, f0=110.0, seed=s) for s in range(8)],
                 [synth_speech(8.0, f0=210.0, seed=100 + s) for s in range(8)]], ["synthA", "synthB"])
    by = _rows("librispeech_test_other")
    a, b = sorted(by)[:2]
    return [[_load(r["file"]) for r in by[s][2:10]] for s in (a, b)], [a, b]


def write_call(path: Path, minutes: float, seed: int = 0) -> dict:
    """A mono two-party call of ``minutes`` as 16 kHz FLAC, encoded block by block (bounded memory)."""
    import av

    rng = np.random.default_rng(seed)
    sources, speakers = turn_sources()
    total = int(minutes * 60 * SR)
    written, turns, k = 0, [0, 0], 0
    with av.open(str(path), "w", format="flac") as out:
        st = out.add_stream("flac", rate=SR, layout="mono")

        def put(x: np.ndarray) -> None:
            nonlocal written
            x = x[: total - written]
            if not len(x):
                return
            x = x + rng.normal(0, 10 ** (-65 / 20), len(x)).astype(np.float32)
            fr = av.AudioFrame.from_ndarray((np.clip(x, -1, 1) * 32767).round().astype(np.int16)[None, :], format="s16", layout="mono")
            fr.sample_rate = SR
            for p in st.encode(fr):
                out.mux(p)
            written += len(x)

        while written < total:
            who = k % 2
            utt = sources[who][turns[who] % len(sources[who])]
            turns[who] += 1
            k += 1
            rms = float(np.sqrt(np.mean(utt.astype(np.float64) ** 2))) or 1e-6
            put(np.zeros(int(rng.uniform(0.3, 1.2) * SR), np.float32))
            put((utt * (10 ** ((-23 + rng.uniform(-3, 3)) / 20) / rms)).astype(np.float32))
        for p in st.encode(None):
            out.mux(p)
    return {"path": str(path), "minutes": minutes, "turns": k, "speakers": speakers}


def enrol_manifest(folder: Path) -> Path:
    """CSV of the library's enrolment samples: utterances 0-1 of each LibriSpeech speaker, one of 12 speechocean762 speakers."""
    lines = ["path,person,category,phone,case"]
    if _shared() is None:
        from voiceprint.synth import speech_file

        for i, (f0, seed) in enumerate(((110.0, 50), (210.0, 150), (150.0, 250))):
            p = speech_file(folder / f"enrol_{i}.wav", seconds=8.0, f0=f0, seed=seed)
            lines.append(f"{p},{['synthA', 'synthB', 'synthC'][i]},other,,")
    else:
        ls, so = _rows("librispeech_test_other"), _rows("speechocean762")
        for by, speakers, n in ((ls, sorted(ls), 2), (so, sorted(so)[::10][:12], 1)):
            for s in speakers:
                lines += [f"{r['file']},{s},other,," for r in by[s][:n]]
    out = folder / "enrol.csv"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def run_measured(cmd: list[str], env: dict, timeout: float, cwd: Path = ROOT) -> dict:
    """Run ``cmd`` in ``cwd``; wall, CPU (user+sys) seconds and peak RSS of that process tree's largest process."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, cwd=cwd)
        deadline = t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.2)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace")
    return {"rc": proc.returncode, "wall_s": round(wall, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1),
            "peak_rss_mb": round(ru.ru_maxrss / 1024, 0), "timed_out": wall >= timeout, "stdout": stdout, "stderr": stderr}


def code_tree(ref: str | None, tmp: Path) -> Path:
    """The source tree to run: this one, or ``ref`` exported with ``git archive`` (models/ linked from here)."""
    if ref is None:
        return ROOT
    dest = tmp / f"old_{ref}"
    if dest.exists():
        return dest
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "voiceprint"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    (dest / "models").symlink_to(ROOT / "models")
    return dest


def cli(tree: Path, lib: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "voiceprint.cli", *args, "--library", str(lib)]


def env_for(tree: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), VOICEPRINT_OPERATOR="bench_long")
    env.pop("VOICEPRINT_LIBRARY", None)
    env.pop("OMP_WAIT_POLICY", None)  # each tree runs as it would from a shell
    if USER_OMP_WAIT is not None:
        env["OMP_WAIT_POLICY"] = USER_OMP_WAIT
    return env


def prepare_library(tree: Path, lib: Path, manifest: Path) -> None:
    """A library enrolled from ``manifest`` by the code in ``tree`` (kept when ``--keep`` already holds one)."""
    if (lib / "library.db").exists() or any(lib.glob("*.sqlite*")) or any(lib.glob("*.db")):
        return
    env = env_for(tree)
    subprocess.run(cli(tree, lib, "init"), env=env, check=True, capture_output=True, cwd=tree)
    r = subprocess.run(cli(tree, lib, "enrol", str(manifest), "--force"), env=env, capture_output=True, text=True, cwd=tree)
    if r.returncode:
        raise SystemExit(f"enrolment failed ({r.returncode}): {r.stderr[-2000:]}")


def query(tree: Path, lib: Path, call: dict, timeout: float, label: str) -> dict:
    # cwd: ``python -m`` puts the working directory first on sys.path, ahead of PYTHONPATH
    m = run_measured(cli(tree, lib, "query", call["path"], "--json", "--top", "3"), env_for(tree), timeout, cwd=tree)
    row = {"run": label, "minutes": call["minutes"], **{k: m[k] for k in ("rc", "wall_s", "cpu_s", "peak_rss_mb", "timed_out")}}
    row["audio_min_per_wall_min"] = round(call["minutes"] * 60 / max(m["wall_s"], 1e-9), 2)
    row["load_avg_after"] = round(os.getloadavg()[1], 1)  # 5-minute load average of the shared machine
    if m["rc"] == 0:
        res = json.loads(m["stdout"])
        row["voices"] = len(res)
        row["top1"] = [r["hits"][0]["person"]["name"] if r["hits"] else None for r in res]
        row["correct"] = sorted(set(row["top1"])) == sorted(call["speakers"]) and len(res) == 2
    else:
        row["error"] = (m["stderr"].strip().splitlines() or ["?"])[-1][:300]
    return row


def machine() -> str:
    import torch

    from voiceprint.report import machine_line

    return machine_line(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, nargs="+", default=[30.0, 120.0], help="Lengths of the long calls.")
    ap.add_argument("--baseline-minutes", type=float, default=5.0)
    ap.add_argument("--baseline-ref", default=OLD_REF, help="Git ref of the old code for the baseline.")
    ap.add_argument("--no-baseline", action="store_true", help="Skip the old-code baseline.")
    ap.add_argument("--timeout", type=float, default=1800.0, help="Give up on one query after this many seconds.")
    ap.add_argument("--json", default="", help="Write the figures to this JSON file.")
    ap.add_argument("--keep", default="", help="Keep the calls and libraries in this folder.")
    args = ap.parse_args()

    print(machine(), flush=True)
    work = Path(args.keep or tempfile.mkdtemp(prefix="vp_bench_long_")).resolve()  # queries run in their own tree
    work.mkdir(parents=True, exist_ok=True)
    manifest = enrol_manifest(work)
    rows = []
    new_lib = work / "lib_new"
    prepare_library(ROOT, new_lib, manifest)
    calls = {m: work / f"call_{m:g}min.flac" for m in [args.baseline_minutes, *args.minutes]}

    def call_of(minutes: float) -> dict:
        path = calls[minutes]
        info = write_call(path, minutes, seed=1 if minutes == args.baseline_minutes else 2) if not path.exists() else None
        return info or {"path": str(path), "minutes": minutes, "speakers": turn_sources()[1]}

    first, *longer = args.minutes
    rows.append(query(ROOT, new_lib, call_of(first), args.timeout, "new"))  # the 30-minute target first
    print(rows[-1], flush=True)
    base_call = call_of(args.baseline_minutes)
    rows.append(query(ROOT, new_lib, base_call, args.timeout, "new"))
    print(rows[-1], flush=True)
    if not args.no_baseline:  # the old code enrols its own library (older code cannot read newer schemas)
        old_tree, old_lib = code_tree(args.baseline_ref, work), work / f"lib_{args.baseline_ref}"
        prepare_library(old_tree, old_lib, manifest)
        rows.insert(0, query(old_tree, old_lib, base_call, args.timeout, f"old ({args.baseline_ref})"))
        print(rows[0], flush=True)
    for minutes in longer:
        rows.append(query(ROOT, new_lib, call_of(minutes), args.timeout, "new"))
        print(rows[-1], flush=True)
    base = rows[0]
    print("\n| run | audio | wall s | CPU s | peak RSS MB | audio min / wall min | CPU s per audio min vs first row | load avg | voices | top-1 right |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        ratio = (r["cpu_s"] / r["minutes"]) / max(base["cpu_s"] / base["minutes"], 1e-9)
        print(f"| {r['run']} | {r['minutes']:g} min | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']:.0f} | {r['audio_min_per_wall_min']} | "
              f"{ratio:.2f}x | {r['load_avg_after']} | {r.get('voices', '-')} | {r.get('correct', r.get('error', '-'))} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
