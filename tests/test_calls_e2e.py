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


def _two_leads(tmp_path, lead: str, other: str) -> list[dict]:
    """`calls leads --library` as JSON on a feature table of two numbers, ``lead`` scored far above ``other``."""
    from typer.testing import CliRunner

    from voiceprint.calls.cli import app

    pd.DataFrame({"number": [lead, other], "distinct_others": [90.0, 5.0], "calls_per_other": [1.1, 6.0],
                  "max_callees_day": [40.0, 2.0], "two_way_share": [0.0, 0.5]}).to_csv(tmp_path / "f.csv", index=False)
    result = CliRunner().invoke(app, ["leads", "--features", str(tmp_path / "f.csv"), "--library", str(tmp_path / "lib"), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_lead_lists_the_cases_whose_victim_its_own_number_called(tmp_path):
    """`phone show` and `voiceprint leads` showed the case file's calls from a number to a victim; `calls leads --library`
    showed no case for a number that no library person holds."""
    from voiceprint.store import add_case_call

    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ2026-0001", title="冒充客服", status="open")
        with lib.store.transaction():
            add_case_call(lib.store, "AJ2026-0001", "+86 139 0000 0243", "2026-01-05 10:00:00")
    first, second = _two_leads(tmp_path, "13900000243", "+8613900000244")
    assert first["number"] == "+8613900000243" and first["library_person"] is None
    assert first["cases"] == ["AJ2026-0001 冒充客服 (open): this number called its victim at 2026-01-05 10:00:00"]
    assert second["cases"] == []
    with Library.open(tmp_path / "lib") as lib:
        assert lib.audit(action="calls.leads")[0]["detail"]["case_calls"] == 1


def test_a_lead_lists_the_cases_linked_to_its_own_number(tmp_path):
    """`phone show 13900000246` listed AJ2026-0004 (`case link --phone`), while `calls leads --library` gave that lead no case."""
    with Library.create(tmp_path / "lib") as lib:
        lib.add_case("AJ2026-0004", title='quote "x"', status="open")
        lib.add_phone("+86 139 0000 0246")  # no person holds it
        lib.link_case("AJ2026-0004", phone="13900000246")
        assert [c["case_number"] for c in lib.phone("13900000246")["phone_cases"]] == ["AJ2026-0004"]
    first, second = _two_leads(tmp_path, "13900000246", "+8613900000247")
    assert first["number"] == "+8613900000246" and first["library_person"] is None
    assert first["cases"] == ['AJ2026-0004 quote "x" (open)']
    assert second["cases"] == []
