"""What diarisation costs a one-voice recording: time and result against embedding the speech whole.

Real single-speaker telephone recordings (hyke_ivr_8k test speakers, the longest file of each):
the old path (VAD -> embed all speech) against the new one (VAD -> diarise -> embed each voice),
timed in the same run, alternating, on this machine.

    python scripts/bench_one_voice.py --files 12
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from voiceprint.corpora import Embeddings, manifest, split_speakers


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=12)
    args = ap.parse_args()
    import torch

    from voiceprint import audio, diarize

    emb = Embeddings()
    by_speaker = manifest("hyke_ivr_8k")
    _, test = split_speakers(by_speaker)
    files = [max(by_speaker[s], key=lambda r: float(r["duration_s"]))["file"] for s in test][: args.files]
    emb.embedder.embed(np.zeros(16000, np.float32) + 1e-3)  # load the model outside the timings
    t_old = t_new = 0.0
    split = same = 0
    net = 0.0
    for f in files:
        x = audio.load_recording(f).channels[0].samples
        segs = audio.speech_segments(x)
        speech = audio.embedding_audio(x, segs, 16000)
        net += sum(s.duration for s in segs)
        t = time.perf_counter()
        old = emb.embedder.embed(speech)
        t_old += time.perf_counter() - t
        t = time.perf_counter()
        voices = diarize.diarize(x, segs, emb.embedder)
        new = [emb.embedder.embed(v.speech) for v in voices]
        t_new += time.perf_counter() - t
        split += len(voices) > 1
        same += len(voices) == 1 and float(np.dot(old, new[0])) > 0.9999
    print(f"{len(files)} one-voice recordings, {net:.0f} s of net speech; torch threads {torch.get_num_threads()}, "
          f"{platform.processor() or platform.machine()}")
    print(f"embed whole: {t_old:.1f} s; diarise + embed: {t_new:.1f} s; ratio {t_new / t_old:.2f}")
    print(f"split into more than one voice: {split}/{len(files)}; identical voiceprint: {same}/{len(files)}")


if __name__ == "__main__":
    main()
