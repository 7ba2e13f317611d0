"""Fused leads: persons (and unidentified numbers and voices) ranked by the evidence joining them to open cases.

For every open case and every *candidate* tied to it (a person, a number nobody is registered to, or an
unknown voice heard in several cases), two kinds of evidence are weighed as log10 likelihood ratios for
"this candidate is the offender who called this victim" against "someone else is":

- **voice**: the strongest calibrated LR between a voice heard in the case and the candidate's enrolled
  voice (the library's back end; bounded by its own validation, ``llr_limit`` in ``backend.json``);
- **cdr**: the case file says which numbers called the victim; the calling screen's score of such a number,
  calibrated to an LR on labelled subscribers and bounded (``voiceprint/calls/calibration_rule.json``),
  reaches the number's registered person directly, or a person whose number shares a handset or a calling
  community (rare contacts in common) with it at a cost of log10(1/k), k = the persons registered on that
  group's numbers (any of them may have held the phone).

The two are independent measurements (a voice and a calling pattern), so their log LRs add; a candidate with
no enrolled voice, or no number path, gets LR 1 from that source. Within a case the candidates compete: with
equal priors for each candidate and for "someone the graph does not name", candidate j's probability is
LR_j / (1 + sum of all the case's LRs), so a voice that matches an enrolled person takes probability from
a den's straw owner, and calls that lead to a den take it from a voice-only look-alike. A candidate is tied
to a case when its combined log10 LR there is at least 0 and it is at most ten times less probable than the
case's most probable candidate; a lead's score is the log10 posterior odds of its best case, and its
``sources`` say which kinds of evidence it rests on. ``sources="voice"`` or ``"cdr"`` weighs one kind only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from .store import casefile

SOURCES = ("voice", "cdr")
#: A candidate is tied to a case when its combined log10 LR there reaches this ...
TIE_MIN = 0.0
#: ... and it is at most this many log10 units less probable than the case's most probable candidate
#: (1 = ten times: a rival the evidence favours by more than that is not the same case's lead).
TIE_WITHIN = 1.0


@dataclass
class Graph:
    """The lead graph's edges, indexed for walking (loaded from ``lead_edges``)."""

    owners: dict = field(default_factory=dict)       # number -> {identity: registered_to edge}
    reg_names: dict = field(default_factory=dict)    # reg:key -> {name, id_number}
    screen: dict = field(default_factory=dict)       # number -> (log10 LR, evidence)
    handsets: dict = field(default_factory=dict)     # number -> set(handset)
    on_handset: dict = field(default_factory=dict)   # handset -> set(number)
    community: dict = field(default_factory=dict)    # number -> {number sharing its calling community: shared contacts}
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
        elif kind == "shares_contacts":
            self.community.setdefault(src[7:], {})[dst[7:]] = ev.get("shared_contacts")
            self.community.setdefault(dst[7:], {})[src[7:]] = ev.get("shared_contacts")
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
            when = ", ".join(ev.get("called_at", [])[:3])
            called = _edge("called_victim", f"number:{number}", f"case:{self.case}", None, **ev)
            lr, screen = g.screen.get(number, (None, None))
            term = lr if lr is not None else 0.0
            base = [called] + ([_edge("cdr_score", f"number:{number}", "screen", lr, **screen)] if screen else [])
            said = [f"number {_short(number)} called the victim of case {self.case} ({when})" if when
                    else f"number {_short(number)} called the victim of case {self.case} (time not recorded)"]
            if screen:
                # " | " between two reasons: each reason has its own "; " (i18n splits the pair here)
                why = " | ".join(screen["reasons"][:2]) or "no signal stands out"
                said.append(f"the calling screen scores it {screen['score']} ({why}) - log10 LR {lr:+.2f}")
            else:
                said.append("it is not in the screened CDRs (no calling evidence either way)")
            own = g.owners.get(number, {})
            if not own:
                self._offer(self.calls, f"number:{number}", term, base, said + ["nobody is registered to this number"])
            for who, reg in own.items():
                self._offer(self.calls, who, term, base + [reg], said + [f"it is registered to {self.name(who)}"])
            self._group_paths(number, own, term, base, said)

    def _group_paths(self, number: str, own: dict, term: float, base: list, said: list[str]) -> None:
        """Persons whose number shares a handset or a calling community with ``number``, at log10(1/k)."""
        g = self.g
        groups = [(h, sorted(g.on_handset.get(h, set()) - {number})) for h in sorted(g.handsets.get(number, ()))]
        near = g.community.get(number, {})
        if near:
            groups.append(("community", sorted(near)))
        for group, others in groups:
            people = {who: (n, reg) for n in others for who, reg in g.owners.get(n, {}).items() if who not in own}
            k = len(people) + max(len(own), 1)
            hop = -math.log10(k)
            for who, (n2, reg) in people.items():
                if group == "community":
                    link = [_edge("shares_contacts", f"number:{number}", f"number:{n2}", round(hop, 3),
                                  shared_contacts=near[n2], persons_in_community=k)]
                    how = (f"it shares {near[n2]} rare contacts with number {_short(n2)} (a calling community), registered to"
                           f" {self.name(who)} ({k} persons in that community: log10 {hop:+.2f})")
                else:
                    link = [_edge("uses_handset", f"number:{number}", group, None),
                            _edge("uses_handset", f"number:{n2}", group, round(hop, 3), persons_on_handset=k)]
                    how = (f"it shares handset {group[8:]} with number {_short(n2)}, registered to {self.name(who)}"
                           f" ({k} persons on that handset: log10 {hop:+.2f})")
                self._offer(self.calls, who, term + hop, base + link + [reg], said + [how])

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

    def posteriors(self, sources: tuple[str, ...]) -> list[dict]:
        """Every candidate's combined log10 LR and its probability among the case's candidates.

        The hypotheses "candidate j made the call" (one per candidate) and "someone the graph does not name"
        get equal priors; each candidate's likelihood, relative to that someone, is its combined LR (a
        candidate with no voice in the library, or no number path, gets LR 1 from that source). So
        P(j) = LR_j / (1 + sum of all LR): a voice that matches an enrolled person, or calls that lead to a
        den's numbers, take probability from every rival that does not share that evidence.
        """
        out: list[dict] = []
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
            out.append({"who": who, "case": self.case, "log10_lr": round(sum(terms.values()), 3), "terms": terms,
                        "sources": sorted(parts), "evidence": edges, "words": words})
        if not out:
            return out
        top = max(r["log10_lr"] for r in out)
        norm = top + math.log10(10 ** -top + sum(10 ** (r["log10_lr"] - top) for r in out))
        for r in out:
            r["log10_p"] = r["log10_lr"] - norm
        return out

    def scored(self, sources: tuple[str, ...]) -> list[dict]:
        """The case's candidates with their evidence, probability, log10 posterior odds and explanation."""
        rows = self.posteriors(sources)
        ranked = sorted(rows, key=lambda r: (-r["log10_lr"], r["who"]))
        for r in rows:
            p = 10 ** r["log10_p"]
            r["probability"] = round(p, 4)
            r["log10_odds"] = round(math.log10(max(p, 1e-12) / max(1 - p, 1e-12)), 3)
            rival = next((x for x in ranked if x is not r), None)
            said = [f"probability {p:.0%} among {len(rows)} candidate(s) of case {self.case} and anyone else"]
            if rival is not None:
                said.append(f"the strongest rival is {self.label(rival['who'])} (log10 LR {rival['log10_lr']:+.2f})")
            r["explanation_parts"] = r.pop("words") + said
            r["explanation"] = explain(r["explanation_parts"])
        return rows

    def label(self, who: str) -> str:
        if who.startswith(("person:", "reg:")):
            return self.name(who)
        return f"number {who[7:]}" if who.startswith("number:") else f"an unknown voice ({who.replace(':', ' ')})"


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
        rows = _candidates(g, case, chosen).scored(chosen)
        best = max((r["log10_p"] for r in rows), default=0.0)
        for row in rows:
            if row["log10_lr"] >= TIE_MIN and row["log10_p"] >= best - TIE_WITHIN:
                tied.setdefault(row["who"], []).append(row)
    leads = [_lead(who, rows, persons, g) for who, rows in tied.items()]
    leads.sort(key=lambda x: (-x["score"], -x["log10_lr"], -len(x["sources"]), -len(x["cases"]), x["key"]))
    for rank, lead in enumerate(leads, start=1):
        lead["rank"] = rank
    return leads[:top] if top else leads


def _candidates(g: Graph, case: str, chosen: tuple[str, ...]) -> _Case:
    """One open case with its candidates weighed on the chosen kinds of evidence."""
    c = _Case(g, case)
    if "cdr" in chosen:
        c.weigh_calls()
    if "voice" in chosen:
        c.weigh_voices()
    return c


def no_leads_reason(lib, sources: str = "all") -> str:
    """Why :func:`build_leads` found no lead, in one line: no open case, no open case with a calling number or a
    voice that reaches anyone (no candidate at all), or candidates none of whom reaches the tie threshold
    (combined log10 LR ``TIE_MIN``; the strongest is named)."""
    chosen = SOURCES if sources == "all" else (sources,)
    g = Graph.load(lib.store)
    g.names = {f"person:{r['id']}": r["name"] for r in casefile.persons_with_sample_counts(lib.store)}
    open_cases = casefile.open_case_numbers(lib.store)
    if not open_cases:
        return "no open case in the library (closed and solved cases leave the leads) - add one with `voiceprint case add`"
    best: tuple[float, str, str] | None = None
    count = 0
    for case in open_cases:
        c = _candidates(g, case, chosen)
        for row in c.posteriors(chosen):
            count += 1
            if best is None or row["log10_lr"] > best[0]:
                best = (row["log10_lr"], c.label(row["who"]), case)
    if best is None:
        return ("no open case has a calling number or a voice tied to anyone (see `voiceprint case add --calling-number` "
                "and `voiceprint case add-recording`)")
    return (f"{count} candidate(s) reached from the calling numbers and voices of {len(open_cases)} open case(s), but none "
            f"reaches the tie threshold (combined log10 LR >= {TIE_MIN:g}); the strongest is {best[1]} in case {best[2]} "
            f"at log10 LR {best[0]:+.2f}")


def _lead(who: str, rows: list[dict], persons: dict, g: Graph) -> dict:
    rows.sort(key=lambda r: (-r["log10_odds"], -r["log10_lr"], r["case"]))
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
    head = [f"{label}: log10 LR {best['log10_lr']:+.2f} on case {best['case']} from {' + '.join(best['sources'])}"
            f" (log10 posterior odds {best['log10_odds']:+.2f})"] + ([f"also tied to {', '.join(cases[1:])}"] if len(cases) > 1 else [])
    summary = "; ".join(head) + ". " + best["explanation"]
    return {"rank": 0, "key": who, "label": label, "person": person, "number": number, "cluster": cluster, "cases": cases,
            "score": best["log10_odds"], "log10_lr": best["log10_lr"], "probability": best["probability"],
            "sources": sources, "explanation": summary, "explanation_parts": head + best["explanation_parts"],
            "per_case": [{k: r[k] for k in ("case", "log10_lr", "probability", "log10_odds", "terms", "sources", "explanation",
                                            "explanation_parts", "evidence")} for r in rows]}


def explain(parts: list[str], lang: str | None = None) -> str:
    """A lead's explanation from its parts (``explanation_parts``), each translated into ``lang``."""
    from .i18n import translate

    return ("；" if lang == "zh" else "; ").join(translate(p, lang) for p in parts)


#: The columns of ``lead_rows`` (a CSV of no leads still has them, so a script reading it does not break).
LEAD_ROW_COLUMNS = ["rank", "lead", "category", "in_library", "score", "log10_lr", "probability", "sources", "cases", "voice",
                    "cdr", "explanation"]


def lead_rows(leads: list[dict]) -> list[dict]:
    """Flat rows for a table or CSV."""
    return [{"rank": x["rank"], "lead": (x["person"] or {}).get("name") or (f"number {x['number']}" if x["number"] else f"voice cluster {x['cluster']}"),
             "category": (x["person"] or {}).get("category") or "", "in_library": (x["person"] or {}).get("in_library", False),
             "score": x["score"], "log10_lr": x["log10_lr"], "probability": x["probability"],
             "sources": "+".join(x["sources"]), "cases": " ".join(x["cases"]),
             "voice": x["per_case"][0]["terms"].get("voice"), "cdr": x["per_case"][0]["terms"].get("cdr"),
             "explanation": x["explanation"]} for x in leads]
