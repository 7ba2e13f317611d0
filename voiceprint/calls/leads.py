"""Ranked, explained leads and the reverse strike: number -> registered person -> library -> cases.

A *resolver* is any callable ``resolver(phone=None, id_number=None) -> dict | None`` returning
``{"person": {...}, "voice_samples": int, "phones": [...], "cases": [...]}``;
``voiceprint.library.Library.lookup_person`` is one. Without a resolver the library columns stay
empty and the leads are still ranked and explained.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .scoring import FeatureTable, Model, _fmt, load_feature_table, rule_reasons, rule_score

Resolver = Callable[..., "dict | None"]
LEAD_COLUMNS = ["rank", "number", "score", "flagged", "reasons", "person", "id_number", "library_person", "category",
                "voice_samples", "cases", "linked_phones"]
SCORE_COLUMNS = ["rank", "number", "score", "flagged", "reasons"]
RULE_FLAG = 0.5


def score_table(table: FeatureTable, model: Model | None = None, top_reasons: int = 4) -> list[dict]:
    """Every number in ``table`` scored and explained, best first.

    Without a model the rule score ranks (flagged at >= 0.5); with one the model's probability
    ranks (flagged at its tuned threshold) and the reasons are the features that raised it most.
    """
    import numpy as np

    medians = table.canonical.median(numeric_only=True).to_dict()
    rule, signals = rule_score(table.canonical) if not table.canonical.empty else (None, None)
    if model is not None:
        scores = model.predict(table.frame)
        contrib = model.contributions(table.frame)
        frame = table.frame.reindex(columns=model.columns)
        col_medians = frame.median(numeric_only=True)
        threshold = model.threshold
    else:
        if rule is None:
            from voiceprint.errors import DataError

            raise DataError("no rule signals in this table and no --model given: train a model or pass --mapping")
        scores, threshold = rule, RULE_FLAG
    if model is not None:
        values, med = frame.to_numpy(dtype=float), col_medians.reindex(frame.columns).to_numpy(dtype=float)
        tops = np.argsort(-contrib[:, :-1], axis=1, kind="stable")[:, :top_reasons]
        reasons_of = lambda i: [  # noqa: E731
            f"{model.columns[j]}={_fmt(values[i, j])} (population median {_fmt(med[j])}, +{contrib[i, j]:.2f} log-odds)"
            for j in tops[i] if contrib[i, j] > 0
        ]
    else:
        all_reasons = rule_reasons(table.canonical, signals, medians, top=top_reasons)
        reasons_of = all_reasons.__getitem__
    scores = np.asarray(scores, dtype=float)
    numbers = [shown_number(n) for n in table.frame.index]
    order = np.argsort(-scores, kind="stable")
    return [{"rank": rank, "number": numbers[i], "score": round(float(scores[i]), 4), "flagged": bool(scores[i] >= threshold),
             "reasons": reasons_of(i)} for rank, i in enumerate(order, start=1)]


def shown_number(key) -> str:
    """A table's key as the leads show it: the canonical E.164 form the rest of the toolkit uses where the key is a
    phone number written with a country code or at full length (``13900000243`` -> ``+8613900000243``), else as
    written (hashes, pseudonymous IDs, short codes)."""
    from voiceprint.phones import normalize_number

    text = str(key)
    norm = normalize_number(text)
    digits = sum(ch.isdigit() for ch in text)
    return norm if norm.startswith("+") and (text.lstrip().startswith(("+", "00")) or digits >= 10) else text


def load_registry(path) -> dict[str, dict]:
    """An imported registry Parquet file as ``{number: {name, id_number, ...}}``."""
    import duckdb

    from .engine import sql_path
    from .ingest import imported_table

    imported_table(path, "registry")
    rel = duckdb.sql(f"SELECT * FROM read_parquet({sql_path(path)})")
    assert rel is not None  # a SELECT always gives a relation
    return {r[0]: dict(zip(rel.columns, r)) for r in rel.fetchall()}


def reverse_strike(rows: list[dict], registry: dict | None = None, resolver: Resolver | None = None,
                   case_calls: Callable[[str], list[dict]] | None = None, phone_cases: Callable[[str], list[dict]] | None = None) -> list[dict]:
    """Add the registered person and the library's person, voice samples, cases and phones to each lead.

    ``case_calls(number)`` (``Library.case_calls``) gives the calls the lead's own number made to case victims; each
    is listed among the lead's cases ("AJ-1 (open): this number called its victim at ..."), with or without a person.
    ``phone_cases(number)`` (``Library.phone_cases``) gives the cases the number itself is linked to (``case link --phone``),
    listed as ``phone show`` lists them, with or without a person.

    A lead's number is looked up as written and in its canonical form (a third-party feature table may
    key ``13800138000`` where the registry and library hold ``+8613800138000``). When the library holds
    the number under one person and the registry's ID number names another, both are shown."""
    from voiceprint.phones import normalize_number

    registry = registry or {}
    out = []
    for row in rows:
        lead = dict(row)
        forms = list(dict.fromkeys([row["number"], normalize_number(row["number"]) or row["number"]]))
        reg = next((registry[f] for f in forms if f in registry), None) or {}
        lead["person"] = reg.get("name")
        lead["id_number"] = reg.get("id_number")
        hits = []
        if resolver is not None:
            by_phone = next((h for f in forms if (h := resolver(phone=f))), None)
            by_id = resolver(id_number=reg["id_number"]) if reg.get("id_number") else None
            hits = [h for h in (by_phone, by_id) if h]
            if len(hits) == 2 and _person_id(hits[0]) == _person_id(hits[1]):
                hits = hits[:1]
        if hits:
            routes = ["by phone", "by registered ID"] if len(hits) == 2 else [""]
            lead["library_person"] = "; ".join(f"{(h.get('person') or {}).get('name')}{' (' + r + ')' if r else ''}" for h, r in zip(hits, routes))
            categories = [(h.get("person") or {}).get("category") for h in hits]
            lead["category"] = categories[0] if len(hits) == 1 else "; ".join(c or "" for c in categories)
            lead["voice_samples"] = sum(h.get("voice_samples", 0) or 0 for h in hits)
            lead["cases"] = [_case(c) for h in hits for c in h.get("cases", [])]
            lead["linked_phones"] = list(dict.fromkeys(p for h in hits for p in h.get("phones", []) if p not in forms))
            lead["library"] = hits[0] if len(hits) == 1 else {"persons": hits}
        else:
            lead.update(library_person=None, category=None, voice_samples=None, cases=[], linked_phones=[])
        if phone_cases is not None:  # the cases linked to the number itself, besides its person's
            linked = [_case(c) for c in {c.get("case_number"): c for f in forms for c in phone_cases(f)}.values()]
            lead["cases"] = list(dict.fromkeys(lead["cases"] + linked))
        if case_calls is not None:
            calls = list({(c.get("case_number"), c.get("called_at")): c for f in forms for c in case_calls(f)}.values())
            lead["cases"] = lead["cases"] + [_case_call(c) for c in calls]
            lead["case_calls"] = calls
        out.append(lead)
    return out


def _case(case: dict) -> str:
    """A case as the leads' cases column shows it: "AJ-1 title (open)"."""
    return " ".join(filter(None, [str(case.get("case_number")), case.get("title"), f"({case.get('status')})" if case.get("status") else ""]))


def _case_call(call: dict) -> str:
    """One call of the lead's number to a case's victim, as the leads' cases column shows it."""
    case = _case(call)
    victim = f" {call['victim_number']}" if call.get("victim_number") else ""
    when = f" at {call['called_at']}" if call.get("called_at") else ""
    return f"{case}: this number called its victim{victim}{when}"


def _person_id(hit: dict):
    return (hit.get("person") or {}).get("id")


def library_persons(rows: list[dict]) -> list:
    """The library person ids the leads reached (for the audit trail: who was looked up)."""
    ids = []
    for r in rows:
        hit = r.get("library") or {}
        for h in hit.get("persons", [hit]) if hit else []:
            if _person_id(h) is not None:
                ids.append(_person_id(h))
    return sorted(set(ids))


def build_leads(features, model: Model | str | Path | None = None, registry=None, resolver: Resolver | None = None,
                top: int | None = 20, flagged_only: bool = False, case_calls: Callable[[str], list[dict]] | None = None,
                phone_cases: Callable[[str], list[dict]] | None = None) -> list[dict]:
    """Score a feature table (path(s) or ``FeatureTable``), keep the top ``top``, and follow each lead."""
    from .scoring import load_model

    table = features if isinstance(features, FeatureTable) else load_feature_table(features)
    if isinstance(model, (str, Path)):
        model = load_model(model)
    rows = score_table(table, model)
    if flagged_only:
        rows = [r for r in rows if r["flagged"]]
    if top:
        rows = rows[:top]
    if isinstance(registry, (str, Path)):
        registry = load_registry(registry)
    return reverse_strike(rows, registry, resolver, case_calls, phone_cases)
