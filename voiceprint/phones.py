"""Phone-number normalisation shared by the voiceprint library and the CDR scorer."""

from __future__ import annotations

import re

_HASHED = re.compile(r"^[0-9a-fA-F]{32,}$")
#: a number a spreadsheet stored as a float: ``13800138000.0`` (the digits are all there) ...
_FLOAT_FORM = re.compile(r"^(\+?[0-9]+)\.0+$")
#: ... or wrote in scientific notation: ``1.38001E+10`` (the last digits are gone)
SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?[eE]\+?[0-9]+$")
_EXTENSION = re.compile(r"\s*(ext\.?|x|转|分机)\s*[0-9]+$", re.IGNORECASE)


def normalize_number(raw: object, region: str = "CN") -> str:
    """Return a canonical form of a phone number: E.164 (``+8613800138000``) when it parses,
    the hash unchanged (lower-cased) when the carrier already pseudonymised it, else the
    digits alone. Empty input gives ``""``, and so does a number in scientific notation, whose last
    digits a spreadsheet has already thrown away, and a text with letters in it. A float's ``.0``
    and an extension are dropped.
    """
    if raw is None:
        return ""
    text = str(raw).strip()
    if not text or text.lower() in {"nan", "none", "null"}:
        return ""
    if _HASHED.match(text) and not text.isdigit():
        return text.lower()
    if SCIENTIFIC.match(text):
        return ""
    text = _EXTENSION.sub("", _FLOAT_FORM.sub(r"\1", text))
    if re.search(r"[^\W\d_]", text):  # letters left (not a hash, not an extension): not a number ("abc123" is not "123")
        return ""
    import phonenumbers

    digits = re.sub(r"[^\d+]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    try:
        parsed = phonenumbers.parse(digits, region)
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return digits.lstrip("+") and digits
