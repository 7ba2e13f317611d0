"""End to end: generated CDRs + registry + a library with a known offender -> the offender's
number is the top lead, and the lead reaches their person record, voice samples and cases."""

from __future__ import annotations

import json

import pandas as pd

from voiceprint.calls.features import compute_features
from voiceprint.calls.ingest import import_calls, import_registry
from voiceprint.calls.leads import build_leads
from voiceprint.calls.synthetic import generate
from voiceprint.library import Library


def test_offender_number_is_top_lead_with_person_and_cases(tmp_path):
    data = generate(tmp_path / "gen", rows=30_000, subscribers=150, dens=1, den_size=1, fmt="csv")
    offender = "+86" + pd.read_csv(data["truth"], dtype=str)["number"].iloc[0]
    import_calls(data["calls"], tmp_path / "calls.parquet")
    import_registry(data["registry"], tmp_path / "reg.parquet")
    compute_features(tmp_path / "calls.parquet", out=tmp_path / "features.parquet", registry=tmp_path / "reg.parquet",
                     temp_directory=tmp_path)
    reg = pd.read_csv(data["registry"], dtype=str).set_index("number")
    id_number = reg.loc[offender.removeprefix("+86"), "id_number"]

    with Library.create(tmp_path / "lib") as lib:
        lib.add_person("机主甲", id_number=id_number, category="offender", notes="prior telecom fraud")
        lib.add_person("无关人员", category="other")
        lib.add_phone("+8613800009999", person="机主甲")  # a phone the centre already knew, not the screened one
        lib.add_case("SC-2020-017", title="冒充客服退款诈骗", date="2020-03-02", area="成都", status="open")
        lib.link_case("SC-2020-017", person="机主甲")
        leads = build_leads(tmp_path / "features.parquet", registry=tmp_path / "reg.parquet", resolver=lib.lookup_person, top=5)

    from typer.testing import CliRunner

    from voiceprint.calls.cli import app

    result = CliRunner().invoke(app, ["leads", "--features", str(tmp_path / "features.parquet"), "--registry", str(tmp_path / "reg.parquet"),
                                      "--library", str(tmp_path / "lib"), "--top", "3", "--format", "json"])
    assert result.exit_code == 0, result.output
    cli_top = json.loads(result.output)[0]
    assert cli_top["number"] == offender and cli_top["library_person"] == "机主甲" and cli_top["cases"][0].startswith("SC-2020-017")
    with Library.open(tmp_path / "lib") as lib:  # the lookups into the library are on its audit trail
        [row] = lib.audit(action="calls.leads")
        assert row["detail"] == {"leads": 3, "persons": 1, "person_ids": [1]}

    top = leads[0]
    assert top["number"] == offender and top["flagged"]
    assert top["reasons"] and "population median" in top["reasons"][0]
    assert top["id_number"] == id_number  # registry: number -> person
    assert top["library_person"] == "机主甲" and top["category"] == "prior_offender"  # library: ID card -> known offender
    assert top["voice_samples"] == 0
    assert top["cases"][0].startswith("SC-2020-017") and "+8613800009999" in top["linked_phones"]
    assert all(lead["library_person"] is None for lead in leads[1:])
