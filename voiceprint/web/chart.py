"""Fused leads on the workbench: the ranked list and one lead's link chart (nodes and evidence-carrying edges).

The chart is the lead's own evidence (``voiceprint.fused``): numbers, persons, cases, voices, handsets and
unknown-voice clusters as nodes, and every edge of every path that ties the lead to a case, each with its
kind, its log10 LR where it has one and its detail. The page draws it with the vendored Cytoscape.js
(``static/leadchart.js``); the ``/api/`` twin returns the same elements as JSON.
"""

from __future__ import annotations

from ..errors import NotFound
from ..fused import explain
from ..i18n import translate
from ..store import casefile
from .views import audit_read

#: Node types by the prefix of a graph identity.
KINDS = {"person": "person", "reg": "registry person", "number": "number", "case": "case", "voice": "case voice",
         "cluster": "unknown voice", "handset": "handset"}


def fused_leads(lib) -> dict:
    """The ranked fused leads of the library's lead graph (built by `voiceprint leads`)."""
    from ..fused import build_leads

    leads = build_leads(lib, "all")
    rows = [{"rank": x["rank"], "key": x["key"], "lead": x["label"], "category": (x.get("person") or {}).get("category") or "",
             "score": x["score"], "log10_lr": x["log10_lr"], "probability": x["probability"], "sources": x["sources"],
             "cases": x["cases"]} for x in leads]
    audit_read(lib, "fused.view", "", leads=len(rows))
    return {"leads": rows}


def _node_label(ident: str, names: dict, case_p: dict, lang: str = "en") -> str:
    kind, _, rest = ident.partition(":")
    if ident in names:
        return names[ident]
    if kind == "case":
        return rest + (f"\nP = {case_p[rest]:.0%}" if rest in case_p else "")
    if kind in ("voice", "cluster", "handset"):
        return translate({"voice": "voice {id}", "cluster": "unknown voice {id}", "handset": "handset {id}"}[kind], lang, id=rest)
    return rest


def _edge_label(kind: str, lr: float | None, lang: str = "en") -> str:
    return translate(kind.replace("_", " "), lang) + ("" if lr is None else f" {lr:+.2f}")


def _href(ident: str) -> str | None:
    kind, _, rest = ident.partition(":")
    return {"person": f"/persons/{rest}", "case": f"/cases/{rest}", "number": f"/phones/{rest}"}.get(kind)


def _elements(lead: dict, names: dict, lang: str = "en") -> list[dict]:
    """Cytoscape elements for one lead: a node per entity on its paths, an edge per piece of evidence."""
    case_p = {pc["case"]: pc["probability"] for pc in lead["per_case"]}
    nodes: dict[str, dict] = {}
    edges: dict[str, dict] = {}
    screen: dict[str, dict] = {}
    for pc in lead["per_case"]:
        for e in pc["evidence"]:
            if e["kind"] == "cdr_score":  # the calling screen's verdict belongs to the number
                screen[e["from"]] = {"log10_lr": e["log10_lr"], **e["detail"]}
                screen[e["from"]]["reasons"] = [translate(r, lang) for r in e["detail"].get("reasons", [])]
                continue
            for ident in (e["from"], e["to"]):
                nodes.setdefault(ident, {"id": ident, "type": ident.partition(":")[0],
                                         "kind": translate(KINDS.get(ident.partition(":")[0], ""), lang),
                                         "label": _node_label(ident, names, case_p, lang), "href": _href(ident)})
            eid = f"{e['from']}|{e['kind']}|{e['to']}"
            lr = e["log10_lr"]
            edges.setdefault(eid, {"id": eid, "source": e["from"], "target": e["to"], "kind": e["kind"], "log10_lr": lr,
                                   "label": _edge_label(e["kind"], lr, lang), "kind_label": _edge_label(e["kind"], None, lang),
                                   "detail": e["detail"], "cases": []})["cases"].append(pc["case"])
    for ident, verdict in screen.items():
        if ident in nodes:
            nodes[ident].update(screen=verdict, label=nodes[ident]["label"] + "\n" + _edge_label("screen", verdict["log10_lr"], lang))
    if lead["key"] in nodes:
        nodes[lead["key"]]["lead"] = True
    for pc in lead["per_case"]:
        cid = f"case:{pc['case']}"
        nodes.setdefault(cid, {"id": cid, "type": "case", "kind": translate("case", lang), "label": _node_label(cid, names, case_p, lang),
                               "href": _href(cid)})
        nodes[cid].update(log10_lr=pc["log10_lr"], probability=pc["probability"], terms=pc["terms"],
                          explanation=explain(pc["explanation_parts"], lang))
    return [{"data": n} for n in nodes.values()] + [{"data": e} for e in edges.values()]


def _rivals(lead: dict, leads: list[dict], lang: str = "en") -> list[dict]:
    """The other leads tied to this lead's cases, each a node with an "also tied" edge to the case (click through)."""
    out: list[dict] = []
    mine = set(lead["cases"])
    for x in leads:
        shared = [pc for pc in x["per_case"] if pc["case"] in mine]
        if x["key"] == lead["key"] or not shared:
            continue
        label = translate(x["label"], lang) if x["key"].startswith(("number:", "cluster:")) else x["label"]
        out.append({"data": {"id": x["key"], "type": x["key"].partition(":")[0], "kind": translate("another lead", lang), "label": label,
                             "href": _href(x["key"]), "rival": True}})
        for pc in shared:
            out.append({"data": {"id": f"{x['key']}|also_tied|case:{pc['case']}", "source": x["key"], "target": f"case:{pc['case']}",
                                 "kind": "also_tied", "log10_lr": pc["log10_lr"], "label": _edge_label("also_tied", pc["log10_lr"], lang),
                                 "kind_label": _edge_label("also_tied", None, lang),
                                 "detail": {"probability": pc["probability"], "terms": pc["terms"],
                                            "explanation": explain(pc["explanation_parts"], lang)},
                                 "cases": [pc["case"]]}})
    return out


def lead_chart(lib, key: str, lang: str = "en") -> dict:
    """One lead's link chart: its summary and the Cytoscape elements of its evidence (labels in ``lang``)."""
    from ..fused import build_leads

    leads = build_leads(lib, "all")
    lead = next((x for x in leads if x["key"] == key), None)
    if lead is None:
        raise NotFound(f"no lead {key!r} - the leads are those of `voiceprint leads` (see the Leads page)")
    names = {f"person:{r['id']}": r["name"] for r in casefile.persons_with_sample_counts(lib.store)}
    for x in leads:
        if x["key"].startswith("reg:") and x.get("person"):
            names[x["key"]] = x["person"]["name"]
    for pc in lead["per_case"]:
        for e in pc["evidence"]:
            if e["kind"] == "registered_to" and e["to"].startswith("reg:"):
                names.setdefault(e["to"], e["detail"].get("name") or e["to"][4:])
    others = {x["key"]: x["rank"] for x in leads}
    elements = _elements(lead, names, lang) + _rivals(lead, leads, lang)
    for el in elements:
        if el["data"].get("id") in others and el["data"]["id"] != key:
            el["data"]["lead_rank"] = others[el["data"]["id"]]
    audit_read(lib, "leadchart.view", key)
    return {"lead": {k: lead[k] for k in ("rank", "key", "label", "score", "log10_lr", "probability", "sources", "cases", "explanation",
                                          "explanation_parts")},
            "elements": elements}
