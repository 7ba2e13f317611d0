"""Is CAM++ cheaper through ONNX Runtime, with the same voiceprints? (issue 16: enrolment speed)

Exports the `campplus-zh-en` network (features -> embedding; the Kaldi fbank stays in torch) to
ONNX, then runs both on the same mean-normalised features of real speechocean762 files, one thread
each, and prints the lowest cosine between the two embeddings and the CPU seconds of each.
ONNX Runtime was not a project dependency when this ran (it is since issue 16: ``voiceprint.onnxnet``);
``--ort-path`` points at a copy installed aside, e.g. ``.venv/bin/python -m pip install --target
/tmp/ortpkgs onnx onnxruntime`` (then delete the numpy it brings, so the project's numpy is used).

    .venv/bin/python scripts/experiments/onnx_campplus.py --ort-path /tmp/ortpkgs --files 40
"""

from __future__ import annotations

import argparse
import glob
import importlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from speakerlab.models.campplus.DTDNN import CAMPPlus

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from voiceprint.corpora import shared_data_dir  # noqa: E402
from voiceprint.embedding import get_embedder  # noqa: E402


class Network(torch.nn.Module):
    """3D-Speaker's CAM++ forward on unpadded features (what the ONNX graph holds)."""

    def __init__(self, campplus: torch.nn.Module):
        super().__init__()
        self.campplus = campplus

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return CAMPPlus.forward(self.campplus, feats)  # speakerlab's own forward, not the padded-batch wrapper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ort-path", default="", help="folder holding onnx and onnxruntime (appended to sys.path)")
    ap.add_argument("--files", type=int, default=40)
    args = ap.parse_args()
    if args.ort_path:
        sys.path.append(args.ort_path)
    ort = importlib.import_module("onnxruntime")
    torch.set_num_threads(1)
    encoder = get_embedder("campplus-zh-en").encoder
    net = Network(encoder.mods.embedding_model).eval()
    files = sorted(glob.glob(str(shared_data_dir() / "speechocean762" / "so762_10*" / "*.flac")))[:args.files]
    wavs = [torch.tensor(sf.read(f, dtype="float32")[0]) for f in files]
    with torch.inference_mode():
        feats = [(f - f.mean(dim=1, keepdim=True)) for f in (encoder.mods.compute_features(w.unsqueeze(0)) for w in wavs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "campplus.onnx")
        torch.onnx.export(net, (feats[0],), path, input_names=["feats"], output_names=["emb"],
                          dynamic_axes={"feats": {1: "frames"}}, opset_version=17, dynamo=False)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        ref = [net(f).numpy()[0] for f in feats]
    out = [session.run(None, {"feats": f.numpy()})[0][0] for f in feats]
    cos = min(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(ref, out, strict=True))
    audio_s = sum(len(w) for w in wavs) / 16000
    print(f"{len(files)} files, {audio_s:.0f} s of audio; lowest cosine torch vs ONNX Runtime {cos:.7f}")
    for _ in range(2):
        t0 = time.process_time()
        with torch.inference_mode():
            for f in feats:
                net(f)
        t_torch = time.process_time() - t0
        t0 = time.process_time()
        for f in feats:
            session.run(None, {"feats": f.numpy()})
        t_ort = time.process_time() - t0
        print(f"CAM++ network, one thread: torch {t_torch:.2f} CPU-s, ONNX Runtime {t_ort:.2f} CPU-s ({t_torch / t_ort:.2f}x)")


if __name__ == "__main__":
    main()
