"""False splits: how often diarisation turns one real speaker into several voices.

Every file of the single-speaker corpora (default ``hyke_ivr_8k``: real 8 kHz IVR callers, and
``speechocean762``: 16 kHz read speech) goes through the library's own decoding, VAD and
diarisation (``voiceprint.voices.read_voices`` with the default model). Each file holds one
speaker, so any file diarised into two or more voices is a false split. Reported per corpus and
speaker split, before and after the back-end merge (``diarize.merge_same_speaker``), both from the
same window clustering in the same run; ``--merge-llr`` sets the merge threshold to try.

    python scripts/eval_splits.py --json out/eval/splits.json
    python scripts/eval_splits.py --corpora hyke_ivr_8k --split dev --merge-llr -2 0 2
"""

from __future__ import annotations

import argparse
import json
import time

from voiceprint.corpora import manifest, split_speakers


def run_file(path: str, embedder, thresholds: list[float]) -> dict:
    """Voices found in one file: by window clustering alone, and after merging at each threshold."""
    from voiceprint import audio, diarize
    from voiceprint.errors import AudioError
    from voiceprint.scoring import domain_of

    try:
        rec = audio.load_recording(path, channels=0)
        ch = rec.channels[0]
        _, segments = audio.prepare_speech(ch, path=path)
    except AudioError as err:
        return {"refused": str(err)}
    voices = diarize.diarize(ch.samples, segments, embedder)
    out = {"clustered": len(voices), "net_speech": round(sum(s.duration for s in segments), 2)}
    for t in thresholds:
        merged = voices if len(voices) < 2 else diarize.merge_same_speaker(
            ch.samples, voices, embedder, domain_of(rec.source_rate, rec.codec), min_llr=t)
        out[f"merged@{t:g}"] = len(merged)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpora", nargs="+", default=["hyke_ivr_8k", "speechocean762"])
    ap.add_argument("--split", choices=["dev", "test", "all"], default="all")
    ap.add_argument("--merge-llr", nargs="+", type=float, default=None, help="Merge thresholds (default: the shipped one).")
    ap.add_argument("--model", default=None, help="Speaker model (default: the library default).")
    ap.add_argument("--json", default="", help="Write per-file results and the summary here.")
    args = ap.parse_args()

    import torch

    from voiceprint import diarize
    from voiceprint.embedding import get_embedder

    torch.set_num_threads(2)
    embedder = get_embedder(args.model)
    thresholds = args.merge_llr or [diarize.MERGE_MIN_LLR]
    keys = ["clustered"] + [f"merged@{t:g}" for t in thresholds]
    files, summary = [], []
    t0 = time.time()
    for corpus in args.corpora:
        by_speaker = manifest(corpus)
        dev, test = split_speakers(list(by_speaker))
        for part, speakers in (("dev", dev), ("test", test)):
            if args.split not in ("all", part):
                continue
            rows = []
            for r in (r for s in speakers for r in by_speaker[s]):
                rows.append(dict(run_file(r["file"], embedder, thresholds), corpus=corpus, split=part, path=r["path"]))
                if len(rows) % 100 == 0:
                    print(f"  {corpus} {part}: {len(rows)} files, {time.time() - t0:.0f} s", flush=True)
            files += rows
            scored = [r for r in rows if "refused" not in r]
            line = {"corpus": corpus, "split": part, "files": len(rows), "refused": len(rows) - len(scored)}
            for k in keys:
                split = sum(r[k] > 1 for r in scored)
                line[k] = f"{split}/{len(scored)} ({100 * split / max(len(scored), 1):.2f} %)"
            summary.append(line)
            print(json.dumps(line), f"{time.time() - t0:.0f} s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": embedder.spec.name, "thresholds": thresholds, "summary": summary, "files": files}, fh, indent=1)


if __name__ == "__main__":
    main()
