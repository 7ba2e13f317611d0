"""Does a narrowband "student" of CAM++ (teacher-student distillation on development speakers) help?

Question (issue 13): speechocean762 through AMR-NB stays at 2.44 % EER with the back end; would a copy
of CAM++ fine-tuned so that its embedding of a telephone-coded recording matches the untouched
network's embedding of the clean recording (1 - cosine, no speaker labels needed) do better?

Three steps, development speakers only (``voiceprint.evaluate.split_of``), two folds
(``voiceprint.fitting.fold_of``): the student is trained on one fold (``--fold``, 0 by default) and
everything is read on the other; run both folds to cross-validate.

    .venv/bin/python scripts/experiments/exp_distil_narrowband.py prep  --out out/distil     # ~5 min
    .venv/bin/python scripts/experiments/exp_distil_narrowband.py train --out out/distil     # ~9 min
    .venv/bin/python scripts/experiments/exp_distil_narrowband.py read  --out out/distil     # ~9 min

``prep`` passes every development recording of speechocean762, commonvoice_zh and LibriSpeech through
AMR-NB and G.711 (``voiceprint.telephone``), decodes and trims each version as the library does
(``load_recording`` + ``prepare_speech``) and keeps the teacher's voiceprint of each. ``train``
fine-tunes the whole network (Adam, lr 5e-5, 320 steps of 16 random 1.5-3 s crops, a quarter of
them clean so the student keeps the teacher's clean space). ``read`` scores the other fold by the protocol of
``voiceprint evaluate`` (3 enrolments, the rest tested against every enrolled speaker), plain cosine
and through a back-end core fitted on the training fold (centring per channel domain, within-speaker whitening at
the shipped shrinkage 0.3): the teacher (T), the student on telephone audio with the teacher on clean
(R), and the mean of both scores (T+R).
"""

from __future__ import annotations

import argparse
import copy
import csv
import pickle
import random
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from voiceprint.evaluate import eer, split_of  # noqa: E402
from voiceprint.fitting import fold_of  # noqa: E402
from voiceprint.scoring import within_class_whitening  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
CORPORA = ("speechocean762", "commonvoice_zh", "librispeech_test_other")
PHONE = ("amrnb", "g711u", "g711a")
VERSIONS = ("clean",) + PHONE
MODEL = "campplus-zh-en"
SHRINK = 0.3


def _prep_one(item):
    from voiceprint.audio import load_recording, prepare_speech
    from voiceprint.embedding import get_embedder
    from voiceprint.telephone import simulated

    corpus, speaker, order, path = item
    embedder = get_embedder(MODEL)
    try:
        speech = {"clean": prepare_speech(load_recording(path, channels=0).channels[0], path, min_speech=0.5)[0]}
        for variant in PHONE:
            with simulated(path, variant) as tmp:
                speech[variant] = prepare_speech(load_recording(tmp, channels=0).channels[0], tmp, min_speech=0.5)[0]
    except Exception as err:  # noqa: BLE001 - a recording without enough speech after the codec is left out
        return {"error": f"{path}: {err}"}
    return {"corpus": corpus, "speaker": speaker, "order": order, "speech": speech,
            "teacher": {v: embedder.embed(s) for v, s in speech.items()}}


def prep(out: Path) -> None:
    from multiprocessing import Pool

    items = []
    for corpus in CORPORA:
        with open(DATA / corpus / "manifest.csv", newline="", encoding="utf-8") as fh:
            for order, row in enumerate(csv.DictReader(fh)):
                if split_of(row["speaker"]) == "dev":
                    items.append((corpus, row["speaker"], order, str(DATA / corpus / row["path"])))
    with Pool(2) as pool:
        done = list(pool.imap_unordered(_prep_one, items, chunksize=8))
    kept = sorted((r for r in done if "error" not in r), key=lambda r: (r["corpus"], r["order"]))
    print(f"{len(kept)} of {len(items)} development recordings kept ({len(items) - len(kept)} without 0.5 s of speech after a codec)")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "dev.pkl", "wb") as fh:
        pickle.dump(kept, fh, protocol=4)


def _fbank(samples):
    import torch
    import torchaudio.compliance.kaldi as kaldi

    return kaldi.fbank(torch.from_numpy(np.asarray(samples, np.float32)).unsqueeze(0), num_mel_bins=80, sample_frequency=16000, dither=0.0)


def _network(state=None):
    import torch

    from voiceprint.embedding import get_embedder

    net = copy.deepcopy(get_embedder(MODEL).encoder.mods.embedding_model)
    if state is not None:
        net.load_state_dict(torch.load(state, weights_only=True))
    for module in net.modules():  # recomputing activations in the backward pass only saves memory
        if hasattr(module, "memory_efficient"):
            module.memory_efficient = False
    return net


def _forward(net, feats):
    from speakerlab.models.campplus.DTDNN import CAMPPlus

    return CAMPPlus.forward(net, feats - feats.mean(dim=1, keepdim=True))


def _unit(v):
    v = np.asarray(v, np.float64)
    return v / np.linalg.norm(v)


def train(out: Path, steps: int, lr: float, batch: int, seed: int, fold: int) -> None:
    import torch

    torch.manual_seed(seed)
    rng = random.Random(seed)
    data = [r for r in pickle.load(open(out / "dev.pkl", "rb")) if fold_of(r["speaker"]) == fold]
    feats = [{v: _fbank(r["speech"][v]) for v in VERSIONS} for r in data]
    target = [torch.from_numpy(_unit(r["teacher"]["clean"]).astype(np.float32)) for r in data]
    student = _network()
    for p in student.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(student.parameters(), lr=lr)

    def crop(f, frames):
        if len(f) >= frames:
            start = rng.randint(0, len(f) - frames)
            return f[start:start + frames]
        return f.repeat((frames + len(f) - 1) // len(f), 1)[:frames]

    student.train()
    for step in range(1, steps + 1):
        rows = rng.sample(range(len(data)), batch)
        frames = rng.randint(150, 300)
        x = torch.stack([crop(feats[i][rng.choice(VERSIONS)], frames) for i in rows])
        loss = (1 - torch.nn.functional.cosine_similarity(_forward(student, x), torch.stack([target[i] for i in rows]))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 40 == 0:
            print(f"step {step}: loss {float(loss):.4f}", flush=True)
    torch.save(student.state_dict(), out / f"student_fold{fold}.pt")


def _vec(system: str, r: dict, version: str) -> np.ndarray:
    """T: the teacher everywhere; R: the student on telephone audio, the teacher on clean audio."""
    if system == "T" or version == "clean":
        return _unit(r["teacher"][version])
    return r["student"][version]


def _domain(version: str) -> str:
    return "wideband" if version == "clean" else "narrowband"


def _fit_core(system: str, items: list[dict]):
    """The back end's core (centring per channel domain, within-speaker whitening) fitted on ``items``."""
    x = np.stack([_vec(system, r, v) for r in items for v in VERSIONS])
    domains = np.array([_domain(v) for _ in items for v in VERSIONS])
    means = {d: x[domains == d].mean(axis=0) for d in ("wideband", "narrowband")}
    centred = x - np.stack([means[d] for d in domains])
    return means, within_class_whitening(centred, np.array([r["speaker"] for r in items for _ in VERSIONS]), SHRINK)


def _scores(system: str, core, items: list[dict], enrol_version: str, test_version: str, per: int):
    """Scores [tests, speakers] and same-speaker labels: the first ``per`` recordings of each speaker,
    3 enrolled (mean voiceprint), the rest tested against every enrolled speaker."""
    def project(v, version):
        if core is None:
            return v
        means, transform = core
        return _unit((v - means[_domain(version)]) @ transform)

    by: dict[str, list] = {}
    for r in items:
        by.setdefault(r["speaker"], []).append(r)
    enrolled, tests = {}, []
    for speaker, rows in by.items():
        rows = rows[:per]
        if len(rows) < 4:
            continue
        enrolled[speaker] = _unit(np.mean([project(_vec(system, r, enrol_version), enrol_version) for r in rows[:3]], axis=0))
        tests += [(speaker, project(_vec(system, r, test_version), test_version)) for r in rows[3:]]
    speakers = sorted(enrolled)
    matrix = np.stack([enrolled[s] for s in speakers])
    return np.stack([matrix @ t for _, t in tests]), np.array([[s == speaker for s in speakers] for speaker, _ in tests])


def _eer(m, labels) -> str:
    return f"{100 * eer(m[labels], m[~labels]):.2f} %"


def _top1(m, labels) -> str:
    return f"{100 * np.mean(labels[np.arange(len(m)), m.argmax(axis=1)]):.1f}"


def read(out: Path, fold: int) -> None:
    """Scores the fold the student of ``fold`` never heard; keeps every score matrix in ``read_fold<fold>.pkl`` for pooling."""
    import torch

    data = pickle.load(open(out / "dev.pkl", "rb"))
    student = _network(out / f"student_fold{fold}.pt").eval()
    with torch.no_grad():
        for r in data:
            r["student"] = {v: _unit(_forward(student, _fbank(r["speech"][v]).unsqueeze(0))[0].numpy()) for v in PHONE}
    fitted = [r for r in data if fold_of(r["speaker"]) == fold]
    held_out = [r for r in data if fold_of(r["speaker"]) != fold]
    cores = {s: _fit_core(s, fitted) for s in "TR"}
    kept: dict[str, np.ndarray] = {}
    print(f"| fold {1 - fold} condition | per speaker | tests | T plain | R plain | T + back end | R + back end | T+R + back end | top-1 % T / R / T+R |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
    for corpus in ("speechocean762", "commonvoice_zh"):
        items = [r for r in held_out if r["corpus"] == corpus]
        for enrol_version, test_version in (("amrnb", "amrnb"), ("g711u", "g711u"), ("clean", "amrnb"), ("clean", "clean")):
            for per in (6, 12) if corpus == "speechocean762" else (6,):
                plain = {s: _scores(s, None, items, enrol_version, test_version, per)[0] for s in "TR"}
                back = {s: _scores(s, cores[s], items, enrol_version, test_version, per) for s in "TR"}
                labels = back["T"][1]
                fused = (back["T"][0] + back["R"][0]) / 2
                key = f"{corpus}_{enrol_version}_{test_version}_{per}"
                kept.update({f"{key}_labels": labels, f"{key}_Tplain": plain["T"], f"{key}_Rplain": plain["R"],
                             f"{key}_T": back["T"][0], f"{key}_R": back["R"][0]})
                tops = " / ".join(_top1(m, labels) for m in (back["T"][0], back["R"][0], fused))
                print(f"| {corpus} {enrol_version} > {test_version} | {per} | {len(labels)} | {_eer(plain['T'], labels)} | "
                      f"{_eer(plain['R'], labels)} | {_eer(back['T'][0], labels)} | {_eer(back['R'][0], labels)} | "
                      f"{_eer(fused, labels)} | {tops} |")
    with open(out / f"read_fold{fold}.pkl", "wb") as fh:
        pickle.dump(kept, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["prep", "train", "read"])
    ap.add_argument("--out", type=Path, default=Path("out/distil"))
    ap.add_argument("--steps", type=int, default=320)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fold", type=int, choices=(0, 1), default=0, help="train on this development fold, read the other")
    args = ap.parse_args()
    if args.step == "prep":
        prep(args.out)
    elif args.step == "train":
        train(args.out, args.steps, args.lr, args.batch, args.seed, args.fold)
    else:
        read(args.out, args.fold)


if __name__ == "__main__":
    main()
