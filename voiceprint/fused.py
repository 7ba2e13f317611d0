"""Fused leads: persons (and unidentified numbers and voices) ranked by the evidence joining them to open cases.

For every open case and every *candidate* tied to it (a person, a number nobody is registered to, or an
unknown voice heard in several cases), two kinds of evidence are weighed as log10 likelihood ratios for
"this candidate is the offender who called this victim" against "someone else is":

- **voice**: the strongest calibrated LR between a voice heard in the case and the candidate's enrolled
  voice (the library's back end; bounded by its own validation, ``llr_limit`` in ``backend.json``);
- **cdr**: the case file says which numbers called the victim; the calling screen's score of such a number,
  calibrated to an LR on labelled subscribers and bounded (``voiceprint/calls/calibration_rule.json``),
  reaches the number's registered person directly, or a person whose number shares a handset with it at a
  cost of log10(1/k), k = the persons registered on that handset's numbers (any of them may have held it).

When the case's voice matches an enrolled person P at LR x, a candidate reached only by the calls (whose voice the
library does not hold) gets 1/x from the voice: against P, "this candidate spoke" explains the voice only as
well as a random speaker would (the straw owner of a den's number is not the voice on the line).

The two are independent measurements (a voice and a calling pattern), so their log LRs add. A candidate is
tied to a case when its combined log10 LR there is at least 0; a lead's score is its best case's, and its
``sources`` say which kinds of evidence it rests on. ``sources="voice"`` or ``"cdr"`` weighs one kind only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .store import casefile

SOURCES = ("voice", "cdr")
#: A candidate is tied to a case when its combined log10 LR there reaches this.
TIE_MIN = 0.0


@dataclass
class Graph:
    """The lead graph's edges, indexed for walking (loaded from ``lead_edges``)."""

    owners: dict = field(default_factory=dict)       # number -> {identity: registered_to edge}
    reg_names: dict = field(default_factory=dict)    # reg:key -> {name, id_number}
    screen: dict = field(default_factory=dict)       # number -> (log10 LR, evidence)
    handsets: dict = field(default_factory=dict)     # number -> set(handset)
    on_handset: dict = field(default_factory=dict)   # handset -> set(number)
    callers: dict = field(default_factory=dict)      # case -> {number: evidence}
    voices: dict = field(default_factory=dict)       # case -> {voice: evidence}
    matches: dict = field(default_factory=dict)      # voice -> {person identity: (log10 LR, evidence)}
    cluster_of: dict = field(default_factory=dict)   # voice -> cluster identity
    names: dict = field(default_factory=dict)        # person identity -> name

    @classmethod
    def load(cls, store) -> Graph:
        g = cls()
        by_id = {idn: f"person:{pid}" for pid, idn in casefile.id_numbers(store)}
        for origin, src, dst, kind, w, ev in casefile.all_lead_edges(store):
            g._add(origin, src, dst, kind, w, json.loads(ev), by_id)
        return g

    def _add(self, origin, src, dst, kind, w, ev, by_id) -> None:
        if kind == "registered_to":
            who = dst
            if dst.startswith("reg:"):
                self.reg_names[dst] = ev
                who = by_id.get(ev.get("id_number") or "\0", dst)  # the library's person with that ID card
            self.owners.setdefault(src[7:], {}).setdefault(who, {"kind": kind, "from": src, "to": who, "log10_lr": None, "detail": ev})
        elif kind == "cdr_score":
            self.screen[src[7:]] = (w, ev)
        elif kind == "uses_handset":
            self.handsets.setdefault(src[7:], set()).add(dst)
            self.on_handset.setdefault(dst, set()).add(src[7:])
        elif kind == "called_victim":
            self.callers.setdefault(dst[5:], {})[src[7:]] = ev
        elif kind == "heard_in":
            self.voices.setdefault(dst[5:], {})[src] = ev
        elif kind == "matches":
            old = self.matches.setdefault(src, {}).get(dst)
            if w is not None and (old is None or w > old[0]):
                self.matches[src][dst] = (w, ev)
        elif kind == "member_of":
            self.cluster_of[src] = dst


def _edge(kind: str, src: str, dst: str, log10_lr: float | None = None, **detail) -> dict:
    return {"kind": kind, "from": src, "to": dst, "log10_lr": log10_lr, "detail": detail}


def _short(number: str) -> str:
    return number if len(number) <= 20 else number[:12] + "…"


class _Case:
    """Candidates of one case with their best voice and call evidence."""

    def __init__(self, g: Graph, case: str):
        self.g, self.case = g, case
        self.calls: dict[str, tuple[float, list, list[str]]] = {}
        self.voice: dict[str, tuple[float, list, list[str]]] = {}

    def _offer(self, table: dict, who: str, term: float, edges: list, words: list[str]) -> None:
        if who not in table or term > table[who][0]:
            table[who] = (term, edges, words)

    def weigh_calls(self) -> None:
        g = self.g
        for number, ev in g.callers.get(self.case, {}).items():
            when = ", ".join(ev.get("called_at", [])[:3]) or "time not recorded"
            called = _edge("called_victim", f"number:{number}", f"case:{self.case}", None, **ev)
            lr, screen = g.screen.get(number, (None, None))
            term = lr if lr is not None else 0.0
            base = [called] + ([_edge("cdr_score", f"number:{number}", "screen", lr, **screen)] if screen else [])
            said = f"number {_short(number)} called the victim of case {self.case} ({when})"
            if screen:
                why = "; ".join(screen["reasons"][:2]) or "no signal stands out"
                said += f"; the calling screen scores it {screen['score']} ({why}) - log10 LR {lr:+.2f}"
            else:
                said += "; it is not in the screened CDRs (no calling evidence either way)"
            own = g.owners.get(number, {})
            if not own:
                self._offer(self.calls, f"number:{number}", term, base, [said, "nobody is registered to this number"])
            for who, reg in own.items():
                self._offer(self.calls, who, term, base + [reg], [said, f"it is registered to {self.name(who)}"])
            self._handset_paths(number, own, term, base, said)

    def _handset_paths(self, number: str, own: dict, term: float, base: list, said: str) -> None:
        g = self.g
        for handset in sorted(g.handsets.get(number, ())):
            others = sorted(g.on_handset.get(handset, set()) - {number})
            people = {who: (n, reg) for n in others for who, reg in g.owners.get(n, {}).items() if who not in own}
            k = len(people) + max(len(own), 1)
            hop = -math.log10(k)
            for who, (n2, reg) in people.items():
                edges = base + [_edge("uses_handset", f"number:{number}", handset, None),
                                _edge("uses_handset", f"number:{n2}", handset, round(hop, 3), persons_on_handset=k), reg]
                words = [said, f"it shares handset {handset[8:]} with number {_short(n2)}, registered to {self.name(who)}"
                               f" ({k} persons on that handset: log10 {hop:+.2f})"]
                self._offer(self.calls, who, term + hop, edges, words)

    def weigh_voices(self) -> None:
        g = self.g
        for voice, heard in g.voices.get(self.case, {}).items():
            where = f"{heard.get('file')} (channel {heard.get('channel')}, voice {heard.get('voice')})"
            for who, (lr, ev) in g.matches.get(voice, {}).items():
                edges = [_edge("heard_in", voice, f"case:{self.case}", None, **heard), _edge("matches", voice, who, lr, **ev)]
                words = [f"the voice heard in case {self.case} ({where}) matches {self.name(who)}'s enrolled voice at log10 LR {lr:+.2f}"
                         f" ({ev.get('verbal')})"]
                self._offer(self.voice, who, lr, edges, words)
            cluster = g.cluster_of.get(voice)
            if cluster and not any(lr >= TIE_MIN for lr, _ in g.matches.get(voice, {}).values()):
                edges = [_edge("heard_in", voice, f"case:{self.case}", None, **heard), _edge("member_of", voice, cluster, None)]
                self._offer(self.voice, cluster, 0.0, edges,
                            [f"an unknown voice heard in case {self.case} ({where}) is {cluster.replace(':', ' ')}"])

    def name(self, who: str) -> str:
        if who.startswith("reg:"):
            return str(self.g.reg_names.get(who, {}).get("name") or who[4:])
        return self.g.names.get(who, who)

    def explained_away(self) -> None:
        """Candidates whose voice the library does not hold, in a case whose voice is an enrolled person's.

        If the voice matches person P at LR x, then "the speaker is this other candidate" predicts the voice only
        as well as a random speaker does, so against P it carries 1/x: the calls may lead to a straw owner, the
        voice says who held the phone.
        """
        persons = [(term, who, e) for who, (term, e, _) in self.voice.items() if who.startswith("person:")]
        if not persons:
            return
        term, best, edges = max(persons, key=lambda t: t[0])
        if term <= 0:
            return
        for who in self.calls:
            if who not in self.voice and who != best:
                self.voice[who] = (-term, edges, [f"but the voice heard in case {self.case} is {self.name(best)}'s"
                                                  f" (log10 LR {term:+.2f}), which speaks against {self.name(who)} having made the call"])

    def scored(self, sources: tuple[str, ...]) -> list[dict]:
        if "cdr" in sources and "voice" in sources:
            self.explained_away()
        out = []
        for who in set(self.calls) | set(self.voice):
            parts, terms, edges, words = [], {}, [], []
            for src, table in (("cdr", self.calls), ("voice", self.voice)):
                if src in sources and who in table:
                    term, e, w = table[who]
                    parts.append(src)
                    terms[src] = round(term, 3)
                    edges += e
                    words += w
            if not parts or (who.startswith("cluster:") and "voice" not in parts):
                continue
            total = round(sum(terms.values()), 3)
            out.append({"who": who, "case": self.case, "log10_lr": total, "terms": terms, "sources": sorted(parts),
                        "evidence": edges, "explanation": "; ".join(words)})
        return out


def build_leads(lib, sources: str = "all", top: int | None = None) -> list[dict]:
    """Ranked, explained leads from the library's lead graph (refresh it first with :func:`voiceprint.graph.refresh`)."""
    chosen = SOURCES if sources == "all" else (sources,)
    store = lib.store
    g = Graph.load(store)
    persons = {f"person:{r['id']}": r for r in casefile.persons_with_sample_counts(store)}
    g.names = {k: v["name"] for k, v in persons.items()}
    open_cases = casefile.open_case_numbers(store)
    tied: dict[str, list[dict]] = {}
    for case in open_cases:
        c = _Case(g, case)
        if "cdr" in chosen:
            c.weigh_calls()
        if "voice" in chosen:
            c.weigh_voices()
        for row in c.scored(chosen):
            if row["log10_lr"] >= TIE_MIN:
                tied.setdefault(row["who"], []).append(row)
    leads = [_lead(who, rows, persons, g) for who, rows in tied.items()]
    leads.sort(key=lambda x: (-x["score"], -len(x["sources"]), -len(x["cases"]), x["key"]))
    for rank, lead in enumerate(leads, start=1):
        lead["rank"] = rank
    return leads[:top] if top else leads


def _lead(who: str, rows: list[dict], persons: dict, g: Graph) -> dict:
    rows.sort(key=lambda r: (-r["log10_lr"], r["case"]))
    best = rows[0]
    person, number, cluster = None, None, None
    if who.startswith("person:"):
        p = persons.get(who, {})
        person = {"name": p.get("name"), "id": p.get("id"), "id_number": p.get("id_number") or None,
                  "category": p.get("category"), "enrolled": bool(p.get("voice_samples")), "in_library": True}
    elif who.startswith("reg:"):
        reg = g.reg_names.get(who, {})
        person = {"name": reg.get("name"), "id": None, "id_number": reg.get("id_number") or None, "category": None,
                  "enrolled": False, "in_library": False}
    elif who.startswith("number:"):
        number = who[7:]
    else:
        cluster = int(who.split(":")[1])
    sources = sorted({s for r in rows for s in r["sources"]})
    label = person["name"] if person else f"number {number}" if number else f"unknown voice (cluster {cluster})"
    cases = [r["case"] for r in rows]
    summary = (f"{label}: log10 LR {best['log10_lr']:+.2f} on case {best['case']} from {' + '.join(best['sources'])}"
               + (f"; also tied to {', '.join(cases[1:])}" if len(cases) > 1 else "") + ". " + best["explanation"])
    return {"rank": 0, "key": who, "person": person, "number": number, "cluster": cluster, "cases": cases,
            "score": best["log10_lr"], "sources": sources, "explanation": summary,
            "per_case": [{k: r[k] for k in ("case", "log10_lr", "terms", "sources", "explanation", "evidence")} for r in rows]}


def lead_rows(leads: list[dict]) -> list[dict]:
    """Flat rows for a table or CSV."""
    return [{"rank": x["rank"], "lead": (x["person"] or {}).get("name") or (f"number {x['number']}" if x["number"] else f"voice cluster {x['cluster']}"),
             "category": (x["person"] or {}).get("category") or "", "in_library": (x["person"] or {}).get("in_library", False),
             "score": x["score"], "sources": "+".join(x["sources"]), "cases": " ".join(x["cases"]),
             "voice": x["per_case"][0]["terms"].get("voice"), "cdr": x["per_case"][0]["terms"].get("cdr"),
             "explanation": x["explanation"]} for x in leads]
