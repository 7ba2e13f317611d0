"""Fused leads on a tiny county: voices and calling patterns joined through phones, handsets, persons and cases.

The CDRs, registry, features, case file, library, clustering, back-end LRs and the lead graph are the real
code; the voices are stand-in voiceprints with known speakers (as in tests/test_linking.py), filed through
``linking.add_recordings`` so that the case voices reach the graph as they do from recordings.
"""

from __future__ import annotations

import json

import pytest
from leadsgen import OWNERS, build_scene, den_numbers

from voiceprint import graph
from voiceprint.cli import run
from voiceprint.fused import build_leads


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Den 0: offender 甲 enrolled (speaker 1), straw owner 乙 only in the registry. Den 1: offender 丙 only in the
    registry (voice: speaker 4, unknown), key person 丁 enrolled with another voice (speaker 2). A resident
    (speaker 3), enrolled, called both victims too."""
    folder = tmp_path_factory.mktemp("scene")
    lib, county = build_scene(folder)
    if lib is None:
        pytest.skip("no back end fitted for the default model: voice evidence carries no LR")
    yield {"lib": lib, "folder": folder, "county": county}
    lib.close()


def _best(leads, case):
    return next(x for x in leads if case in x["cases"])


def _name(lead):
    return (lead["person"] or {}).get("name")


def test_fused_leads_name_each_cases_offender(scene):
    leads = build_leads(scene["lib"], "all")
    for case in ("AJ-01", "AJ-02"):
        lead = _best(leads, case)
        assert _name(lead) == OWNERS[0][0] and lead["sources"] == ["cdr", "voice"] and lead["person"]["enrolled"]
    for case in ("AJ-11", "AJ-12"):  # offender known only to the registry: the calls lead to 丙, 丁's voice is not the caller's
        lead = _best(leads, case)
        assert _name(lead) == OWNERS[1][0] and not lead["person"]["in_library"]
    ding = next((x for x in leads if _name(x) == OWNERS[1][1]), None)
    assert ding is None or ding["rank"] > _best(leads, "AJ-11")["rank"]
    assert all(_name(x) != "resident" for x in leads)  # a heavy caller with a normal pattern and another voice


def test_single_sources_weigh_one_kind_of_evidence(scene):
    voice_only = build_leads(scene["lib"], "voice")
    cdr_only = build_leads(scene["lib"], "cdr")
    assert all(x["sources"] == ["voice"] for x in voice_only) and all(x["sources"] == ["cdr"] for x in cdr_only)
    assert _name(voice_only[0]) == OWNERS[0][0]
    unknown = _best(voice_only, "AJ-11")  # the unknown voice of both den-1 cases: a cluster, no name
    assert unknown["person"] is None and unknown["cluster"] is not None and {"AJ-11", "AJ-12"} <= set(unknown["cases"])
    assert {_name(x) for x in cdr_only[:4]} <= set(OWNERS[0] + OWNERS[1])  # CDRs alone cannot tell the den's two owners apart


def test_each_lead_is_explained_with_per_edge_evidence(scene):
    top = build_leads(scene["lib"], "all")[0]
    case = top["per_case"][0]
    kinds = {e["kind"] for e in case["evidence"]}
    assert {"called_victim", "cdr_score", "registered_to", "heard_in", "matches"} <= kinds
    lrs = {e["kind"]: e["log10_lr"] for e in case["evidence"] if e["log10_lr"] is not None}
    assert case["terms"]["voice"] == pytest.approx(lrs["matches"]) and case["log10_lr"] == pytest.approx(sum(case["terms"].values()), abs=1e-3)
    assert "called the victim" in top["explanation"] and "enrolled voice at log10 LR" in top["explanation"]


def test_cli_leads_json_and_csv(scene, capsys, tmp_path):
    lib = str(scene["folder"] / "lib")
    assert run(["leads", "--library", lib, "--json", "--csv", str(tmp_path / "leads.csv")]) == 0
    leads = json.loads(capsys.readouterr().out)
    assert all({"person", "cases", "score", "sources"} <= set(x) for x in leads)
    assert leads[0]["person"]["name"] == OWNERS[0][0] and leads[0]["score"] == max(x["score"] for x in leads)
    assert (tmp_path / "leads.csv").read_text(encoding="utf-8").startswith("rank,lead")
    assert run(["leads", "--library", lib, "--sources", "phone"]) == 2
    assert run(["leads", "--library", lib, "--top", "2"]) == 0
    assert "leads from voice and calling evidence" in capsys.readouterr().out


def test_a_closed_case_leaves_the_leads(scene):
    lib = scene["lib"]
    with lib.store.transaction():
        lib.store.db.execute("UPDATE cases SET status = 'closed' WHERE case_number IN ('AJ-01', 'AJ-02')")
    try:
        leads = build_leads(lib, "all")
        assert all(not {"AJ-01", "AJ-02"} & set(x["cases"]) for x in leads)
    finally:
        with lib.store.transaction():
            lib.store.db.execute("UPDATE cases SET status = 'open' WHERE case_number IN ('AJ-01', 'AJ-02')")


def test_den_numbers_are_what_the_generator_planted(scene):
    cdr = dict(scene["lib"].store.db.execute("SELECT src, log10_lr FROM lead_edges WHERE kind = 'cdr_score'").fetchall())
    assert all(cdr[f"number:{n}"] > 0 for n in den_numbers(0) + den_numbers(1))


def test_gen_scenario_writes_the_documented_layout(tmp_path):
    """scripts/gen_scenario.py on a manifest of synthetic voices (the real interface, no speaker model needed)."""
    import csv
    import subprocess
    import sys
    from pathlib import Path

    from audiogen import speech_file

    voices = tmp_path / "voices"
    voices.mkdir()
    with open(voices / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "speaker", "duration_s"])
        for spk in range(6):
            for k in range(4):
                speech_file(voices / f"s{spk}_{k}.wav", "wav_pcm16", seconds=3.0, seed=spk * 10 + k, f0=90.0 + 25 * spk)
                w.writerow([f"s{spk}_{k}.wav", f"spk{spk}", "3.0"])
    out = tmp_path / "scene"
    script = Path(__file__).resolve().parents[1] / "scripts" / "gen_scenario.py"
    proc = subprocess.run([sys.executable, str(script), "--voices", str(voices / "manifest.csv"), "--seed", "5", "--out", str(out),
                           "--dens", "2", "--decoys", "1", "--cases-per-den", "1", "--rows", "20000", "--enrol-seconds", "5",
                           "--case-seconds", "5"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("cases.csv", "case_recordings.csv", "enrol.csv", "registry.csv", "truth.csv", "run.sh", "cdr/calls.csv"):
        assert (out / name).exists(), name
    truth = list(csv.DictReader(open(out / "truth.csv")))
    assert [list(r) for r in truth[:1]] == [["case_number", "offender"]] and len(truth) == 2
    registry = {r["name"] for r in csv.DictReader(open(out / "registry.csv", encoding="utf-8"))}
    assert {r["offender"] for r in truth} <= registry  # every offender owns den numbers
    run_sh = (out / "run.sh").read_text()
    assert all(f"> {f}" in run_sh for f in ("leads.json", "leads_voice.json", "leads_cdr.json"))
    recs = list(csv.DictReader(open(out / "case_recordings.csv")))
    assert all((out / r["recording"]).stat().st_size > 0 and r["recording"].endswith(".amr") for r in recs)


def test_new_case_voices_are_searched_without_searching_the_old_ones_again(scene):
    lib = scene["lib"]
    searched = lib.store.db.execute("SELECT COUNT(*) FROM lead_edges WHERE kind = 'searched'").fetchone()[0]
    assert searched == 4  # one per filed case voice
    report = graph.refresh(lib)
    assert report["voice"] == "unchanged" and report["reach"] == "unchanged"


def test_the_voice_takes_probability_from_a_dens_straw_owner(scene):
    from voiceprint.fused import TIE_WITHIN, Graph, _Case

    c = _Case(Graph.load(scene["lib"].store), "AJ-01")
    c.g.names = {f"person:{r[0]}": r[1] for r in scene["lib"].store.db.execute("SELECT id, name FROM persons")}
    c.weigh_calls()
    c.weigh_voices()
    rows = {r["who"]: r for r in c.scored(("cdr", "voice"))}
    straw = next(r for w, r in rows.items() if w.startswith("reg:") and OWNERS[0][1] in c.name(w))
    offender = max(rows.values(), key=lambda r: r["probability"])
    assert c.name(offender["who"]) == OWNERS[0][0] and "voice" not in straw["terms"]  # no voice of the straw owner
    assert sum(r["probability"] for r in rows.values()) < 1  # "anyone else" keeps the rest
    assert offender["log10_odds"] > 0 > straw["log10_odds"]
    assert (offender["probability"] / straw["probability"]) > 10 ** TIE_WITHIN  # too improbable to be tied to the case
    assert f"the strongest rival is {OWNERS[0][0]}" in straw["explanation"]
    fused = build_leads(scene["lib"], "all")
    assert all(_name(x) != OWNERS[0][1] for x in fused)  # not tied to any case once the voice is weighed
    assert any(_name(x) == OWNERS[0][1] for x in build_leads(scene["lib"], "cdr"))  # calls alone keep it


def test_a_calling_community_reaches_a_person_without_a_shared_handset(scene):
    from voiceprint.fused import Graph, _Case

    g = Graph.load(scene["lib"].store)
    assert g.community and all(len(v) >= 1 for v in g.community.values())
    g.names = {f"person:{r[0]}": r[1] for r in scene["lib"].store.db.execute("SELECT id, name FROM persons")}
    g.handsets, g.on_handset = {}, {}  # as if the den had never swapped SIM cards between phones
    c = _Case(g, "AJ-11")
    c.weigh_calls()
    reached = {c.name(who): {e["kind"] for e in edges} for who, (_, edges, _) in c.calls.items()}
    assert set(OWNERS[1]) <= set(reached)  # both of den 1's owners, whichever number called
    assert any("shares_contacts" in kinds for kinds in reached.values())
    words = " ".join(w for _, _, ws in c.calls.values() for w in ws)
    assert "rare contacts with number" in words and "persons in that community" in words


def _silent_manifest(folder, speakers: int, silent: set[int]):
    """Six 3-s files per speaker; the speakers in ``silent`` hold only noise, no speech (enrol refuses them)."""
    import csv

    import numpy as np
    import soundfile as sf
    from audiogen import speech_file

    folder.mkdir()
    with open(folder / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "speaker", "duration_s"])
        for spk in range(speakers):
            for k in range(6):
                path = folder / f"s{spk}_{k}.wav"
                if spk in silent:
                    sf.write(path, 0.01 * np.random.default_rng(spk * 10 + k).normal(size=48000).astype(np.float32), 16000)
                else:
                    speech_file(path, "wav_pcm16", seconds=3.0, seed=spk * 10 + k, f0=90.0 + 25 * spk)
                w.writerow([path.name, f"spk{spk}", "3.0"])
    return folder / "manifest.csv"


def _gen(manifest, out, seed: int):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gen_scenario.py"
    return subprocess.run([sys.executable, str(script), "--voices", str(manifest), "--seed", str(seed), "--out", str(out),
                           "--dens", "2", "--decoys", "1", "--cases-per-den", "1", "--rows", "20000", "--enrol-seconds", "5",
                           "--case-seconds", "5"], capture_output=True, text=True)


def test_gen_scenario_replaces_a_speaker_whose_enrolment_voiceprint_enrol_refuses(tmp_path):
    import csv

    manifest = _silent_manifest(tmp_path / "voices", 6, {0, 1})
    proc = _gen(manifest, tmp_path / "scene", seed=3)
    assert proc.returncode == 0, proc.stderr
    enrolled = {r["person"] for r in csv.DictReader(open(tmp_path / "scene" / "enrol.csv", encoding="utf-8"))}
    assert enrolled and not any(p.endswith((" spk0", " spk1")) for p in enrolled)
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning: voiceprint enrol refuses")]
    assert warned and all("spk0" in line or "spk1" in line for line in warned)  # seed 3 draws a noise speaker first


def test_gen_scenario_fails_loudly_when_enrol_keeps_refusing(tmp_path):
    manifest = _silent_manifest(tmp_path / "voices", 5, set(range(5)))
    proc = _gen(manifest, tmp_path / "scene", seed=1)
    assert proc.returncode != 0
    assert "error: voiceprint enrol" in proc.stderr and "warning: voiceprint enrol refuses" in proc.stderr


def test_lead_rows_have_the_documented_columns_in_order():
    from voiceprint.fused import LEAD_ROW_COLUMNS, lead_rows

    lead = {"rank": 1, "person": {"name": "甲", "category": "suspect", "in_library": True}, "number": "", "cluster": None,
            "score": 1.0, "log10_lr": 2.0, "probability": 0.9, "sources": ["voice"], "cases": ["AJ-1"],
            "per_case": [{"terms": {"voice": 2.0}}], "explanation": "x"}
    assert list(lead_rows([lead])[0]) == LEAD_ROW_COLUMNS


def test_every_part_of_an_explanation_reads_in_chinese(scene):
    import re

    from voiceprint import i18n
    from voiceprint.fused import explain

    leads = build_leads(scene["lib"], "all") + build_leads(scene["lib"], "voice") + build_leads(scene["lib"], "cdr")
    parts = {p for x in leads for pc in x["per_case"] for p in pc["explanation_parts"]} | {p for x in leads for p in x["explanation_parts"]}
    assert any("called the victim" in p for p in parts) and any("enrolled voice" in p for p in parts)
    assert any(" | " in p for p in parts)  # a calling screen's two reasons, each translated
    names = {*OWNERS[0], *OWNERS[1], "resident"}
    for part in parts:
        zh = i18n.translate(part, "zh")
        for name in names:  # names and feature codes are data
            zh = zh.replace(name, "")
        data = re.sub(r"\b[a-z0-9_]+=|[\w-]+\.[a-z0-9]+\b", "", zh)  # feature codes (out_share=) and file names
        words = re.findall(r"[A-Za-z]{3,}", data)
        assert not [w for w in words if w not in ("log", "cdr", "voice")], f"{part!r} -> {zh!r}"  # sources stay codes
    top = leads[0]
    assert top["explanation"].endswith(". " + explain(top["per_case"][0]["explanation_parts"]))
    assert "；" in explain(top["explanation_parts"], "zh")
