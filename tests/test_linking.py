"""Unknown voices across cases: filing, incremental linking, investigator decisions and their audit trail.

Voices here are stand-ins with known embeddings (the speaker model is exercised in
test_diarize / test_cli_recordings); the database, clustering and decisions are the real code.
"""

import numpy as np
import pytest

from voiceprint import linking
from voiceprint.audio import SpeechSegment
from voiceprint.errors import LibraryError
from voiceprint.library import CallVoice, Library

DIM = 192
_BASES = np.random.default_rng(0).normal(size=(10, DIM))


class FakeEmbedder:
    """speech[0] is the speaker, speech[1] the take: the same speaker gives cosine ~0.8 across takes."""

    def embed(self, speech):
        rng = np.random.default_rng(int(speech[1]))
        v = _BASES[int(speech[0])] / np.linalg.norm(_BASES[int(speech[0])]) + 0.04 * rng.normal(size=DIM)
        return (v / np.linalg.norm(v)).astype(np.float32)


class FakeRecording:
    def __init__(self, name):
        self.sha256 = name.ljust(64, "0")
        self.duration, self.source_rate, self.codec, self.n_channels = 30.0, 8000, "amr_nb", 1
        self.channel_rate, self.domain = self.source_rate, "narrowband"


@pytest.fixture
def lib(tmp_path, monkeypatch):
    lib = Library.create(tmp_path / "lib", operator="investigator-1")
    monkeypatch.setattr("voiceprint.scoring.load_backend", lambda model=None: None)  # cosine linking here
    calls: dict = {}  # file name -> [(speaker, take), ...]
    monkeypatch.setattr(lib, "_embedder", lambda: FakeEmbedder())

    def call_voices(path, channel=None, min_speech=None):
        voices = [CallVoice(0, i, np.array([spk, take] + [0.0] * 10, np.float32), [SpeechSegment(10.0 * i, 10.0 * i + 8)],
                            {"net_speech_s": 8.0, "snr_frames_db": 30.0})
                  for i, (spk, take) in enumerate(calls[path])]
        return FakeRecording(path), voices

    monkeypatch.setattr(lib, "call_voices", call_voices)
    lib.calls = calls  # type: ignore[attr-defined]
    yield lib
    lib.close()


def _file(lib, name, *voices):
    lib.calls[name] = list(voices)
    return name


def test_one_fraud_voice_in_three_cases_is_linked_with_evidence(lib):
    # speaker 1 is the fraudster (takes 11, 12, 13); 5, 6, 7 are three victims
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (1, 11), (5, 51))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (6, 61), (1, 12))])
    rows = linking.add_recordings(lib, "AJ-C", [_file(lib, "c.wav", (1, 13), (7, 71))])
    assert {r["status"] for r in rows} == {"unknown"}
    [cluster] = linking.clusters(lib)
    assert cluster["cases"] == ["AJ-A", "AJ-B", "AJ-C"]
    assert cluster["summary"] == "this voice appears in cases AJ-A, AJ-B and AJ-C"
    assert {v["file"] for v in cluster["voices"]} == {"a.wav", "b.wav", "c.wav"}
    assert all(v["segments"] and v["mean_score_to_others"] > linking.LINK_THRESHOLD_RAW for v in cluster["voices"])
    # filing the same recording again changes nothing
    assert linking.add_recordings(lib, "AJ-C", ["c.wav"])[0]["status"] == "already"


def test_split_voices_are_never_relinked_and_decisions_are_audited(lib):
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (1, 11))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (1, 12))])
    [cluster] = linking.clusters(lib)
    wrong = cluster["voices"][1]["voiceprint"]
    result = linking.split(lib, cluster["cluster"], [wrong], note="different accent")
    assert linking.clusters(lib) == []
    # a third recording of the same voice joins one side only; the split pair stays apart
    linking.add_recordings(lib, "AJ-C", [_file(lib, "c.wav", (1, 13))])
    together = [set(c["cases"]) for c in linking.clusters(lib)]
    assert {"AJ-A", "AJ-B"} not in together and not any({"AJ-A", "AJ-B"} <= s for s in together)
    linking.confirm(lib, result["new_cluster"])
    actions = [r["action"] for r in lib.audit(50)]
    assert {"link.split", "link.confirm", "case.add_recording"} <= set(actions)
    assert all(r["operator"] == "investigator-1" for r in lib.audit(50))


def test_promoting_a_cluster_makes_a_searchable_suspect_linked_to_its_cases(lib):
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (2, 21))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (2, 22))])
    [cluster] = linking.clusters(lib)
    out = linking.promote(lib, cluster["cluster"], "Customer-service voice A")
    assert out["voiceprints"] == 2 and out["cases"] == ["AJ-A", "AJ-B"]
    card = lib.person("Customer-service voice A")
    assert card["person"]["category"] == "suspect" and card["voice_samples"] == 2
    assert [c["case_number"] for c in card["cases"]] == ["AJ-A", "AJ-B"]
    assert linking.clusters(lib) == []
    with pytest.raises(LibraryError):
        linking.promote(lib, cluster["cluster"], "again")
    # the next call by that voice is matched to the person, not kept as an unknown voice
    [row] = linking.add_recordings(lib, "AJ-D", [_file(lib, "d.wav", (2, 23))])
    assert row["status"] == "matched" and row["person"] == "Customer-service voice A"
    assert lib.audit(50, action="link.promote")[0]["detail"]["person"] == out["person_id"]
    # the cases' pages now name the person their voice was promoted to
    from voiceprint.store import browse

    case_id = lib.store.db.execute("SELECT id FROM cases WHERE case_number = 'AJ-A'").fetchone()[0]
    assert [v["matched_person"] for v in browse.case_card(lib.store, case_id)["recordings"]] == ["Customer-service voice A"]


def test_screen_reports_library_and_cluster_matches_without_storing(lib):
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (3, 31))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (3, 32))])
    n_voiceprints = lib.store.count("voiceprints")
    rows = linking.screen(lib, [_file(lib, "new.wav", (3, 33), (8, 81))])
    assert rows[0]["cluster"] is not None and rows[0]["cluster_cases"] == ["AJ-A", "AJ-B"]
    assert rows[1]["cluster"] is None and rows[1]["person"] is None
    assert lib.store.count("voiceprints") == n_voiceprints
    assert lib.audit(5, action="screen")


def test_incremental_clusters_merge_when_a_new_voice_bridges_them():
    rng = np.random.default_rng(3)
    base = rng.normal(size=DIM)
    base /= np.linalg.norm(base)
    vecs = np.vstack([base + 0.04 * rng.normal(size=DIM) for _ in range(3)])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids, clusters = np.array([0, 1]), np.array([7, 8])  # the same voice, kept apart so far
    best, score = linking.best_cluster(vecs[2], ids, clusters, vecs[:2])
    assert best in (7, 8) and score > linking.LINK_THRESHOLD
    other, _ = linking.closest_other_cluster(best, np.array([0, 1, 2]), np.array([7, 8, best]), vecs)
    assert other == ({7, 8} - {best}).pop()
    # a banned member keeps two clusters apart
    assert linking.best_cluster(vecs[2], ids, clusters, vecs[:2], banned={0, 1})[0] is None


def test_scores_are_centred_once_the_library_is_big_enough(lib, monkeypatch):
    """With a back end, its LLR at any size (centred cosine, tuned on 16 kHz speech, linked telephone calls at precision
    0.76); without one, plain cosine below CENTRE_MIN voiceprints and the library's mean removed above."""
    import voiceprint.scoring

    limits = linking.thresholds(lib.model)
    space = linking.link_space(lib.store, lib.model)
    assert (space.kind, space.threshold) == ("cosine", limits["cosine"])
    fitted, real = object(), voiceprint.scoring.load_backend
    monkeypatch.setattr(voiceprint.scoring, "load_backend", lambda model=None: fitted)
    space = linking.link_space(lib.store, lib.model)
    assert (space.kind, space.threshold, space.backend) == ("llr", limits["llr"], fitted)
    monkeypatch.setattr(voiceprint.scoring, "load_backend", real)
    for i in range(linking.CENTRE_MIN):
        linking.add_recordings(lib, f"AJ-{i}", [_file(lib, f"r{i}.wav", (i % 10, 100 + i))])
    space = linking.link_space(lib.store, lib.model)
    assert (space.kind, space.threshold) == ("centred", limits["centred"]) and space.centre.shape == (DIM,)
    monkeypatch.setattr(voiceprint.scoring, "load_backend", lambda model=None: fitted)
    assert linking.link_space(lib.store, lib.model).kind == "llr"  # a big library with a back end: still its LLR
    shared = np.vstack([FakeEmbedder().embed(np.array([k, 900 + k], np.float32)) for k in range(10)]) + 0.5
    raw = shared / np.linalg.norm(shared, axis=1, keepdims=True)
    # a common component lifts every raw cosine; centring on the mean takes it away again
    mean_off_diagonal = lambda m: (m.sum() - np.trace(m)) / (len(m) * (len(m) - 1))  # noqa: E731
    c = linking.centred(raw, raw.mean(axis=0))
    assert mean_off_diagonal(raw @ raw.T) > 0.5 > mean_off_diagonal(c @ c.T)


def test_an_unusable_file_is_refused_without_stopping_the_others(lib, monkeypatch):
    from voiceprint.errors import AudioError

    real = lib.call_voices

    def call_voices(path, channel=None, min_speech=None):
        if path == "silent.wav":
            raise AudioError(path, "no speech found")
        return real(path, channel, min_speech)

    monkeypatch.setattr(lib, "call_voices", call_voices)
    rows = linking.add_recordings(lib, "AJ-A", ["silent.wav", _file(lib, "a.wav", (1, 11))])
    assert [r["status"] for r in rows] == ["refused", "unknown"] and "no speech" in rows[0]["reason"]


def test_filing_decodes_and_embeds_without_holding_the_write_lock(lib, monkeypatch):
    """Filing a case's calls held the library's write lock while every file was decoded and embedded, so other
    technicians and the workbench waited for the whole batch."""
    real = lib.call_voices
    held_while_decoding = []

    def call_voices(path, channel=None, min_speech=None):
        held_while_decoding.append(lib._lock_depth)
        return real(path, channel, min_speech)

    monkeypatch.setattr(lib, "call_voices", call_voices)
    rows = linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (1, 11)), _file(lib, "b.wav", (5, 51))])
    assert held_while_decoding == [0, 0] and [r["status"] for r in rows] == ["unknown", "unknown"]


def test_with_a_fitted_back_end_links_are_scored_as_likelihood_ratios(tmp_path):
    from voiceprint.scoring import load_backend

    lib = Library.create(tmp_path / "lib")
    if load_backend(lib.model) is None:
        pytest.skip("no back end fitted for the default model (voiceprint backend fit)")
    space = linking.link_space(lib.store, lib.model)
    assert space.kind == "llr" and space.threshold == linking.thresholds(lib.model)["llr"]
    same = [FakeEmbedder().embed(np.array([4, t], np.float32)) for t in (41, 42)]
    other = FakeEmbedder().embed(np.array([9, 91], np.float32))
    rows = space.rows(np.vstack(same + [other]), ["wideband", "narrowband", "wideband"], [20.0, 20.0, 20.0])
    llr = space.scores(rows, rows)
    assert llr[0, 1] > llr[0, 2] and llr[0, 1] == pytest.approx(llr[1, 0])
    assert not linking.link_space(lib.store, lib.model, use_backend=False).kind == "llr"
    lib.close()


def test_reclustering_is_order_free_and_keeps_voices_of_one_recording_apart():
    """agglomerate: two tight speakers come out as two clusters; the caller and callee of one call never merge."""
    rng = np.random.default_rng(7)
    bases = rng.normal(size=(2, DIM))
    vecs = np.vstack([bases[s] / np.linalg.norm(bases[s]) + 0.04 * rng.normal(size=DIM) for s in (0, 0, 0, 1, 1)])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    labels = linking.agglomerate(vecs, linking.LINK_THRESHOLD_RAW)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    perm = np.array([4, 2, 0, 3, 1])
    again = linking.agglomerate(vecs[perm], linking.LINK_THRESHOLD_RAW)
    assert len(set(again[[1, 2, 4]])) == 1 and len(set(again[[0, 3]])) == 1 and again[1] != again[0]
    # voices 0 and 1 are the two sides of one recording: never linked, so 2 goes with one of them only
    sides = [("call-1", 0), ("call-1", 1), ("c2", 0), ("c3", 0), ("c4", 0)]
    apart = linking.agglomerate(vecs, linking.LINK_THRESHOLD_RAW, sides=sides)
    assert apart[0] != apart[1] and apart[2] in (apart[0], apart[1])
    # a threshold below every score still respects an investigator's split and a confirmed group
    low = linking.agglomerate(vecs, -1.0, cannot_link=[(0, 3)], groups=[5, -1, -1, 6, -1])
    assert low[0] != low[3] and len(set(low.tolist())) == 2


def test_filing_reclusters_and_keeps_an_investigators_split(lib):
    # the first two voices are far apart takes of speaker 1 bridged only by the third; arrival order must not matter
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (1, 11), (5, 51))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (1, 12), (6, 61))])
    [cluster] = linking.clusters(lib)
    assert cluster["cases"] == ["AJ-A", "AJ-B"]
    assert len({v["file"] for v in cluster["voices"]}) == 2  # one voice per recording: the victims stay out
    wrong = cluster["voices"][1]["voiceprint"]
    linking.split(lib, cluster["cluster"], [wrong], note="not the same man")
    rows = linking.add_recordings(lib, "AJ-C", [_file(lib, "c.wav", (1, 13))])
    assert rows[0]["cluster"] is not None
    for c in linking.clusters(lib, min_cases=1):
        ids = {v["voiceprint"] for v in c["voices"]}
        assert not ({wrong, cluster["voices"][0]["voiceprint"]} <= ids)
    assert lib.audit(50, action="link.split")


def test_link_thresholds_come_from_the_model_when_it_has_its_own(tmp_path, monkeypatch):
    import json
    import shutil

    from voiceprint.embedding import models_dir

    root = tmp_path / "models"
    (root / "tuned").mkdir(parents=True)
    meta = json.loads((models_dir() / "ecapa-voxceleb" / "model.json").read_text())
    shutil.copytree(models_dir() / "ecapa-voxceleb", root / "ecapa-voxceleb", ignore=shutil.ignore_patterns("backend"))
    meta.update(name="tuned", linking={"centred": 0.5, "llr": 3.0})
    (root / "tuned" / "model.json").write_text(json.dumps(meta))
    monkeypatch.setenv("VOICEPRINT_MODELS", str(root))
    assert linking.thresholds("tuned") == {"centred": 0.5, "cosine": linking.LINK_THRESHOLD_RAW, "llr": 3.0}
    assert linking.thresholds("ecapa-voxceleb") == {"centred": linking.LINK_THRESHOLD, "cosine": linking.LINK_THRESHOLD_RAW,
                                                    "llr": linking.LINK_LLR}


def test_a_case_voice_is_taken_as_a_person_by_its_calibrated_llr_and_the_library_size(tmp_path):
    """Real 8 kHz calls resemble each other: by the cosine alone a stranger's call became an enrolled caller;
    and the more persons enrolled, the stronger the evidence a best hit needs."""
    import math

    with Library.create(tmp_path / "lib", operator="investigator-1") as real:
        limits = linking.thresholds(real.model)
        links = real.links
        assert not links.is_match(None, 10)
        assert not links.is_match({"llr": limits["llr"] - 0.5, "cosine": limits["cosine"] + 0.2}, 10)  # similar channel, weak evidence
        assert links.is_match({"llr": limits["llr"] + 0.5, "cosine": limits["cosine"] - 0.2}, 10)  # a call against an interview
        big = 13_339  # one county's library
        assert not links.is_match({"llr": limits["llr"] + 0.5, "cosine": 0.9}, big)
        assert links.is_match({"llr": math.log(2 * big) + 0.01, "cosine": 0.3}, big)
        assert links.is_match({"llr": None, "cosine": limits["cosine"] + 0.01}, big)  # no back end: the cosine decides
        assert not links.is_match({"llr": None, "cosine": limits["cosine"] - 0.01}, big)


def test_in_a_four_eyes_library_a_promotion_waits_for_another_supervisor(lib):
    from voiceprint.web import accounts

    accounts.set_four_eyes(lib.store, True)
    accounts.add_user(lib.store, "wang", "supervisor", "correct-horse-battery")
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (2, 21))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (2, 22))])
    [cluster] = linking.clusters(lib)
    out = linking.promote(lib, cluster["cluster"], "Customer-service voice A")
    pending = [r[0] for r in lib.store.db.execute("SELECT id FROM voiceprints WHERE person_id = ? AND pending = 1", (out["person_id"],))]
    assert out["pending"] and len(pending) == 2 and lib.person("Customer-service voice A")["voice_samples"] == 0  # not searchable yet
    assert [r["detail"].get("promoted") for r in lib.audit(50, action="enrol.pending")] == [True, True]
    phone = lib.add_phone("13800138000", out["person_id"])  # a number registered to the pending person meanwhile
    lib.link_case("AJ-A", phone="13800138000")
    # rejected: the case voices go back to the unknown voices, the promoted person goes, the cluster opens again
    accounts.review(lib, pending, "wang", approve=False)
    assert lib.store.db.execute("SELECT COUNT(*) FROM persons WHERE id = ?", (out["person_id"],)).fetchone()[0] == 0
    # its number stays as `person delete` leaves one: registered to no one, still the case's, and the erasure says so
    assert [tuple(r) for r in lib.store.db.execute("SELECT id, person_id FROM phones")] == [(phone, None)]
    assert lib.store.db.execute("SELECT COUNT(*) FROM phone_cases WHERE phone_id = ?", (phone,)).fetchone()[0] == 1
    assert lib.store.db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert lib.audit(1, action="person.delete")[0]["detail"]["phones_unassigned"] == [phone]
    [again] = linking.clusters(lib)
    assert again["cluster"] == cluster["cluster"] and again["cases"] == ["AJ-A", "AJ-B"]
    assert lib.store.db.execute("SELECT COUNT(*) FROM case_voices WHERE voiceprint_id IN (?, ?)", pending).fetchone()[0] == 2
    from voiceprint.store import browse

    case_id = lib.store.db.execute("SELECT id FROM cases WHERE case_number = 'AJ-A'").fetchone()[0]
    assert [v["matched_person"] for v in browse.case_card(lib.store, case_id)["recordings"]] == [None]  # unknown again
    # promoted again and approved by a supervisor other than the promoter: searchable
    out = linking.promote(lib, cluster["cluster"], "Customer-service voice A")
    accounts.review(lib, pending, "wang", approve=True)
    assert lib.person("Customer-service voice A")["voice_samples"] == 2


def test_a_clusters_pair_scores_read_in_log10_lr_like_every_other_page():
    from voiceprint.linking import _pair_scores_shown

    llr = {"score_kind": "llr", "mean_pair_score": 8.3115, "min_pair_score": 8.3115}
    assert _pair_scores_shown(llr) == "Mean pair log10 LR 3.61, lowest 3.61"  # natural log 8.31 is log10 3.61
    cosine = {"score_kind": "centred", "mean_pair_score": 0.71, "min_pair_score": 0.6}
    assert _pair_scores_shown(cosine) == "Mean pair centred score 0.71, lowest 0.6"
    assert _pair_scores_shown({"score_kind": "llr", "mean_pair_score": None, "min_pair_score": None}) == "One voice"
    from voiceprint.linking import _shown, _unit

    assert (_unit("llr"), _shown(9.1382, "llr")) == ("log10 LR", 3.97)  # a voice's score to the others, same unit
    assert (_unit("centred"), _shown(0.71, "centred")) == ("centred score", 0.71)


def test_an_investigator_merges_two_clusters_of_one_caller_and_sees_the_candidate_first(lib):
    """Linking leaves about a fifth of a telephone caller's calls in a cluster of their own (recall 0.76-0.81): the
    listing names each cluster's closest other cluster with its score beside the threshold, and `link merge` joins them
    (confirmed, kept whole by later re-clustering, audited)."""
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (2, 21))])
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (2, 22))])
    linking.add_recordings(lib, "AJ-C", [_file(lib, "c.wav", (3, 31))])  # "the same caller" by the investigator's judgement
    [cluster] = linking.clusters(lib)
    near = cluster["nearest"]
    [lonely] = [c["cluster"] for c in linking.clusters(lib, min_cases=1) if c["cluster"] != cluster["cluster"]]
    assert near["cluster"] == lonely and near["cases"] == ["AJ-C"] and near["linked"] is False
    assert near["score"] < near["threshold_shown"]  # cosine space: shown as it is
    assert cluster["raw_score_unit"] == cluster["score_unit"] == "cosine score"
    with pytest.raises(LibraryError, match="itself"):
        linking.merge(lib, lonely, lonely)
    out = linking.merge(lib, cluster["cluster"], lonely, note="same caller, heard both")
    [merged] = linking.clusters(lib)
    assert merged["cluster"] == cluster["cluster"] and merged["status"] == "confirmed"
    assert merged["cases"] == ["AJ-A", "AJ-B", "AJ-C"] and out["voiceprints"] == [v["voiceprint"] for v in merged["voices"] if v["case"] == "AJ-C"]
    row = next(r for r in lib.audit(20) if r["action"] == "link.merge")
    assert row["target"] == f"cluster:{cluster['cluster']}" and row["operator"] == "investigator-1"
    assert row["detail"]["automatic"] is False and row["detail"]["note"] == "same caller, heard both"
    linking.add_recordings(lib, "AJ-D", [_file(lib, "d.wav", (4, 41))])  # filing re-clusters: the decision stands
    assert [c["cases"] for c in linking.clusters(lib)] == [["AJ-A", "AJ-B", "AJ-C"]]


def test_a_merge_keeps_two_sides_of_a_call_apart_and_undoes_a_split_only_when_told(lib):
    linking.add_recordings(lib, "AJ-A", [_file(lib, "a.wav", (2, 21), (3, 31))])  # two people in one call
    linking.add_recordings(lib, "AJ-B", [_file(lib, "b.wav", (2, 22))])
    linking.add_recordings(lib, "AJ-C", [_file(lib, "c.wav", (3, 32))])
    by_cases = {tuple(c["cases"]): c for c in linking.clusters(lib)}
    two, three = by_cases[("AJ-A", "AJ-B")], by_cases[("AJ-A", "AJ-C")]
    with pytest.raises(LibraryError, match="two voices of one recording"):
        linking.merge(lib, two["cluster"], three["cluster"])
    wrong = next(v["voiceprint"] for v in two["voices"] if v["case"] == "AJ-B")
    new = linking.split(lib, two["cluster"], [wrong])["new_cluster"]
    with pytest.raises(LibraryError, match="split apart by an investigator.*--over-split"):
        linking.merge(lib, two["cluster"], new)
    lifted = linking.merge(lib, two["cluster"], new, over_split=True)
    assert lifted["splits_lifted"] and not lib.store.split_pairs_between([wrong], lib.store.cluster_member_ids(two["cluster"]))
    assert ("AJ-A", "AJ-B") in {tuple(c["cases"]) for c in linking.clusters(lib)}


def test_a_mistyped_cluster_number_is_one_line_not_an_internal_error(lib, capsys):
    from voiceprint.cli import run

    root = str(lib.root)
    assert run(["link", "merge", "99999999999999999999", "2", "--library", root]) == 7
    assert "larger than any id" in capsys.readouterr().err
    assert run(["link", "merge", "999", "999", "--library", root]) == 7  # missing first, not "merged with itself"
    assert "no voice cluster 999" in capsys.readouterr().err
