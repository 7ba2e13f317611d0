"""Speaker networks in ONNX Runtime (voiceprint.onnxnet): CAM++ and ECAPA give the same embeddings as
torch, whole and in zero-padded batches (diarisation's windows); a derived graph that is hash-checked
and exported again when stale or altered; torch whenever ONNX fails."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from voiceprint import embedding, onnxnet

pytest.importorskip("onnxruntime")

NAME = "campplus-zh-en"
DEMO = Path(embedding.__file__).resolve().parent / "demo_data"


@pytest.fixture(scope="module")
def campplus():
    return embedding.get_embedder(NAME)


@pytest.fixture(scope="module")
def real_speech():
    """Real speech of a few demo speakers: whole utterances and short cuts of them."""
    from voiceprint.audio import load_recording

    files = sorted(DEMO.glob("*/*.flac"))[:4]
    assert files, "the demo speakers ship with the package"
    signals = [load_recording(f, channels="mix").channels[0].samples for f in files]
    return signals + [x[: int(0.8 * 16000)] for x in signals[:2]]


def _cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_onnx_runtime_embeddings_match_torch_on_real_speech(campplus, real_speech):
    import torch

    assert campplus.onnx_network is not None, "ONNX Runtime is installed, so CAM++ runs in it"
    for x in real_speech:
        ours = campplus.embed(x)
        with torch.inference_mode():
            ref = campplus.encoder.encode_batch(torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(0)).reshape(-1).numpy()
        assert _cosine(ours, ref) > 1 - 1e-3


def test_graph_records_its_source_and_is_exported_again_when_altered(campplus, tmp_path):
    spec = dataclasses.replace(campplus.spec, home=tmp_path)  # a private copy of the derived files
    network = onnxnet.load_network(spec, campplus.encoder.mods.embedding_model)
    assert network is not None
    meta = json.loads((tmp_path / "onnx" / onnxnet.META_NAME).read_text())
    graph = tmp_path / "onnx" / onnxnet.GRAPH_NAME
    assert meta["weights_sha256"] == spec.sha256 and meta["fingerprint"] == spec.fingerprint
    assert meta["onnx_sha256"] == embedding.file_sha256(graph) and meta["onnxruntime"]
    blob = bytearray(graph.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one altered byte in the weights
    graph.write_bytes(bytes(blob))
    assert onnxnet._verified_graph(spec, "campplus") is None
    assert onnxnet.load_network(spec, campplus.encoder.mods.embedding_model) is not None
    assert embedding.file_sha256(graph) == json.loads((tmp_path / "onnx" / onnxnet.META_NAME).read_text())["onnx_sha256"]
    meta["fingerprint"] = "0" * 16  # exported from other weights: stale
    (tmp_path / "onnx" / onnxnet.META_NAME).write_text(json.dumps(meta))
    assert onnxnet._verified_graph(spec, "campplus") is None


def test_torch_runs_when_onnx_is_off_or_missing(campplus, monkeypatch, speech_16k):
    net = campplus.encoder.mods.embedding_model
    monkeypatch.setenv("VOICEPRINT_ONNX", "0")
    assert onnxnet.load_network(campplus.spec, net) is None
    monkeypatch.delenv("VOICEPRINT_ONNX")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert onnxnet.load_network(campplus.spec, net) is None
    fallback = embedding.Embedder(NAME)
    assert fallback.onnx_network is None
    assert _cosine(fallback.embed(speech_16k), campplus.embed(speech_16k)) > 1 - 1e-3


@pytest.mark.parametrize("model", [NAME, "ecapa-voxceleb"])
def test_padded_batches_of_windows_match_torch(model, real_speech):
    """Diarisation's windows: a zero-padded batch with relative lengths, embedded row by row in ONNX
    Runtime, equals torch's batched ``encode_batch`` (CAM++: each row on its own frames)."""
    import torch

    embedder = embedding.get_embedder(model)
    assert embedder.onnx_network is not None and embedder.onnx_network.kind == ("ecapa" if "ecapa" in model else "campplus")
    x = real_speech[0]
    rows = [x[:24000], x[4000:16000], x[8000:20000], x[:9000]]
    wavs = torch.zeros(len(rows), 24000)
    for i, r in enumerate(rows):
        wavs[i, : len(r)] = torch.from_numpy(np.ascontiguousarray(r))
    lens = torch.tensor([len(r) / 24000 for r in rows])
    ours = embedder.encode_padded(wavs, lens)
    with torch.inference_mode():
        ref = embedder.encoder.encode_batch(wavs, lens).reshape(len(rows), -1).numpy()
    assert ours.shape == ref.shape
    for a, b in zip(ours, ref, strict=True):
        assert _cosine(a, b) > 1 - 1e-4


def test_the_library_model_lends_diarisation_its_ecapa_network():
    campplus = embedding.get_embedder(NAME)
    assert campplus.diarisation_embedder is embedding.get_embedder("ecapa-voxceleb")
    assert campplus.diarisation_encoder is embedding.get_embedder("ecapa-voxceleb").encoder


def test_other_models_run_in_torch():
    assert embedding.get_embedder("ge2e-resemblyzer").onnx_network is None
