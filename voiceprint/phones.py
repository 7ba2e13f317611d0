"""Phone-number normalisation shared by the voiceprint library and the CDR scorer."""

from __future__ import annotations

import re

_HASHED = re.compile(r"^[0-9a-fA-F]{32,}$")


def normalize_number(raw: object, region: str = "CN") -> str:
    """Return a canonical form of a phone number: E.164 (``+8613800138000``) when it parses,
    the hash unchanged (lower-cased) when the carrier already pseudonymised it, else the
    digits alone. Empty input gives ``""``.
    """
    if raw is None:
        return ""
    text = str(raw).strip()
    if not text or text.lower() in {"nan", "none", "null"}:
        return ""
    if _HASHED.match(text) and not text.isdigit():
        return text.lower()
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
