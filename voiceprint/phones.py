"""Phone-number normalisation shared by the voiceprint library and the CDR scorer."""

from __future__ import annotations

import re

_HASHED = re.compile(r"^[0-9a-fA-F]{32,}$")
#: a number a spreadsheet stored as a float: ``13800138000.0`` (the digits are all there) ...
_FLOAT_FORM = re.compile(r"^(\+?[0-9]+)\.0+$")
#: ... or wrote in scientific notation: ``1.38001E+10`` (the last digits are gone)
SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?[eE]\+?[0-9]+$")
_EXTENSION = re.compile(r"\s*(ext\.?|x|转|分机)\s*[0-9]+$", re.IGNORECASE)
#: a number written as a URI (``tel:13800138000``), as phones and some exports write it
_TEL = re.compile(r"^tel:\s*", re.IGNORECASE)
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
#: why a number that looks like a Chinese mobile of the wrong length is refused (a digit typed twice or left out,
#: or two numbers run together in one cell): it would be stored, shown and never match a call record
NOT_A_MOBILE = "is not a Chinese mobile number (11 digits): check it"


def mobile_length_error(raw: object) -> bool:
    """Whether ``raw`` looks like a Chinese mobile number (``1[3-9]...`` after an optional +86 / 0086 / 86) of the wrong
    length: 8 to 13 digits but not 11 (13-digit IoT numbers ``14...`` aside), or several 11-digit mobiles run together
    (``13900000100;13900000101``). Fixed lines (``0...``), service numbers (``10086``, ``95588``, ``110``), foreign
    numbers (``+1...``), the IP-call prefixes (``17951 138...``, 16 digits) and hashes are not mobiles and never match."""
    if raw is None:
        return False
    import unicodedata

    text = _TEL.sub("", unicodedata.normalize("NFKC", str(raw)).strip())  # full-width digits are digits
    text = _EXTENSION.sub("", _FLOAT_FORM.sub(r"\1", text))
    if re.search(r"[^\W\d_]", text) or not re.search(r"[0-9]", text):
        return False
    digits = re.sub(r"[^\d+]", "", text)
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
            break
    else:
        if digits.startswith("+") or digits.startswith("00"):
            return False  # another country's number
        if digits.startswith("86") and re.match(r"1[3-9]", digits[2:]) and len(digits) > 11:
            digits = digits[2:]
    if not re.match(r"1[3-9]", digits) or len(digits) == 11:
        return False
    if 8 <= len(digits) <= 13:
        return not (len(digits) == 13 and digits.startswith("14"))  # 13-digit IoT (M2M) numbers are real
    return len(digits) % 11 == 0 and all(_MOBILE.fullmatch(digits[i:i + 11]) for i in range(0, len(digits), 11))


def number_refusal(raw: object) -> str:
    """The one-line reason a value given as a phone number is refused (``normalize_number`` gave ``""``)."""
    return f"{str(raw)!r} {NOT_A_MOBILE}" if mobile_length_error(raw) else f"{str(raw)!r} is not a phone number"


def normalize_number(raw: object, region: str = "CN") -> str:
    """Return a canonical form of a phone number: E.164 (``+8613800138000``) when it parses,
    the hash unchanged (lower-cased) when the carrier already pseudonymised it, else the
    digits alone. Chinese service numbers (3 to 5 digits: ``110``, ``10086``, ``95588``, also written ``+8610086``)
    are their digits alone: they are dialled only inside China and have no E.164 form.
    Empty input gives ``""``, and so does a number in scientific notation, whose last
    digits a spreadsheet has already thrown away, a text with letters in it, and a Chinese mobile number
    of the wrong length (``mobile_length_error``). A float's ``.0``, a ``tel:`` prefix and an extension are dropped.
    """
    if raw is None:
        return ""
    text = _TEL.sub("", str(raw).strip())
    if not text or text.lower() in {"nan", "none", "null"}:
        return ""
    if _HASHED.match(text) and not text.isdigit():
        return text.lower()
    if SCIENTIFIC.match(text):
        return ""
    text = _EXTENSION.sub("", _FLOAT_FORM.sub(r"\1", text))
    if re.search(r"[^\W\d_]", text):  # letters left (not a hash, not an extension): not a number ("abc123" is not "123")
        return ""
    if mobile_length_error(text):
        return ""
    import phonenumbers

    digits = re.sub(r"[^\d+]", "", text)
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    try:
        parsed = phonenumbers.parse(digits, region)
        if parsed.country_code == 86 and len(str(parsed.national_number)) <= 5 and not parsed.italian_leading_zero:
            return str(parsed.national_number)  # a service number: 10086, 95588, 12345
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        pass
    return digits.lstrip("+") and digits
