"""The languages of the evidence report and the workbench: English (the default) and Simplified Chinese.

One catalogue, :mod:`voiceprint.i18n_zh`, keyed by the English text. ``translate(text, lang)``
gives the Chinese, or the English itself when the language is English or the catalogue lacks it.

A message built from a template is keyed by that template: ``translate("row {id}", lang, id=7)`` fills it
in. A message the library writes out finished (a quality warning in a saved result, an error) is listed in
:data:`voiceprint.i18n_zh.GENERATED`: its English text is matched against the template and translated
with its values kept. A placeholder named in :data:`NESTED` holds another message and is translated in
turn; every other placeholder is data (a name, a number) and stays as it is.

Templates mark their text with ``_("...")`` (trusted markup; keyword values are escaped) and pass
messages that come with the data through the ``tr`` filter (plain text, escaped as usual). JSON output
and library exceptions stay English.
"""

from __future__ import annotations

import os
import re
from functools import cache

from . import i18n_zh

#: Supported languages, the default first.
LANGUAGES = ("en", "zh")
DEFAULT = "en"
#: The language tag of an HTML page in each language (the browser and the PDF choose CJK glyphs by it).
HTML_LANG = {"en": "en", "zh": "zh-CN"}
#: Shown in the language switch, each in its own language.
NAMES = {"en": "EN", "zh": "中文"}
#: Placeholders that hold a message of their own, translated too (all others are data).
NESTED = frozenset({"problem", "warning", "what", "role", "unit", "meaning", "reason", "also", "pair", "verbal"})
ENV = "VOICEPRINT_LANG"
#: Each language's catalogue, and the messages in it that arrive finished (matched by their templates).
CATALOGUES = {"zh": i18n_zh.MESSAGES | i18n_zh.GENERATED}
MATCHED = {"zh": i18n_zh.GENERATED}


def language(value: str | None = None) -> str:
    """A supported language code from ``value`` ("zh", "zh-CN", "zh_CN", "EN"), else from ``$VOICEPRINT_LANG``,
    else English. An unknown code raises ``ValueError`` naming the supported ones."""
    text = value if value else os.environ.get(ENV, "")
    code = text.strip().lower().replace("_", "-").split("-")[0]
    if not code:
        return DEFAULT
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {text!r} - use one of {', '.join(LANGUAGES)}")
    return code


def translate(text: str, lang: str | None = DEFAULT, **fields) -> str:
    """``text`` in ``lang`` (English when the catalogue has no entry), its ``{placeholders}`` filled from ``fields``."""
    catalogue = CATALOGUES.get(lang or DEFAULT)
    if fields:
        pattern = catalogue.get(text, text) if catalogue else text
        return pattern.format(**{k: _nested(k, v, lang) for k, v in fields.items()})
    if catalogue is None or not text:
        return text
    found = catalogue.get(text)
    if found is not None:
        return found
    # the template that leaves the least text as data wins: "weak query: {problem}" over "{percent} % of samples clipped ...";
    # of those, the one that splits it into more messages ("({reason} | {also})" over "({reason})")
    matches = [(sum(len(v) for k, v in m.groupdict().items() if k not in NESTED), -len(m.groupdict()), key, m)
               for key, regex in _patterns(lang) if (m := regex.fullmatch(text))]
    if not matches:
        return text
    *_rank, key, match = min(matches, key=lambda found: found[:2])
    return catalogue[key].format(**{k: _nested(k, v, lang) for k, v in match.groupdict().items()})


def _nested(name: str, value, lang: str | None) -> str:
    return translate(str(value), lang) if name in NESTED else str(value)


@cache
def _patterns(lang: str) -> list[tuple[str, re.Pattern]]:
    """The templates of the messages that arrive finished, as regular expressions."""
    return [(k, _regex(k)) for k in MATCHED[lang] if PLACEHOLDER.search(k)]


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _regex(template: str) -> re.Pattern:
    """``template`` as a regular expression: a placeholder matches any text (a nested message as much as it can, data
    as little), a repeated one the same text again."""
    seen: set[str] = set()
    out = []
    for i, part in enumerate(PLACEHOLDER.split(template)):
        if i % 2 == 0:
            out.append(re.escape(part))
        else:
            out.append(f"(?P={part})" if part in seen else f"(?P<{part}>.+)" if part in NESTED else f"(?P<{part}>.+?)")
            seen.add(part)
    return re.compile("".join(out), re.S)


def install(env) -> None:
    """Give a Jinja environment ``_()`` and the ``tr`` filter; both read ``lang`` from the template's context."""
    from jinja2 import pass_context
    from markupsafe import Markup

    @pass_context
    def gettext(ctx, text: str, **fields) -> Markup:
        out = Markup(translate(text, ctx.get("lang")))
        return out.format(**fields) if fields else out

    @pass_context
    def tr(ctx, value) -> str:
        return "" if value is None else translate(str(value), ctx.get("lang"))

    @pass_context
    def action(ctx, code) -> str:
        """An audit action code, with its gloss in Chinese: the code itself is what the trail stores and checks."""
        gloss = i18n_zh.AUDIT_ACTIONS.get(str(code)) if ctx.get("lang") == "zh" else None
        return f"{code}（{gloss}）" if gloss else str(code)

    @pass_context
    def paren(ctx, value) -> str:
        """`` (value)`` after a word in English, ``（value）`` in Chinese."""
        return f"（{value}）" if ctx.get("lang") == "zh" else f" ({value})"

    @pass_context
    def punct(ctx, mark: str) -> str:
        """A separator in the page's language: ";", ",", "." and "-" (a dash between clauses) become full-width in Chinese."""
        if ctx.get("lang") != "zh":
            return {";": "; ", ",": ", ", ".": ".", "-": " - "}[mark]
        return {";": "；", ",": "，", ".": "。", "-": "——"}[mark]

    @pass_context
    def sources(ctx, codes) -> str:
        """A fused lead's evidence sources ("cdr + voice"): the codes in English, words in Chinese."""
        names = i18n_zh.EVIDENCE_SOURCES if ctx.get("lang") == "zh" else {}
        return " + ".join(names.get(str(c), str(c)) for c in codes)

    env.globals["_"] = gettext
    env.globals["punct"] = punct
    env.filters["tr"] = tr
    env.filters["action"] = action
    env.filters["paren"] = paren
    env.filters["sources"] = sources
