"""Phone-number normalisation shared by the voiceprint library and the CDR scorer."""

from __future__ import annotations

import re

_HASHED = re.compile(r"^[0-9a-fA-F]{32,}$")
#: a number a spreadsheet stored as a float: ``13800138000.0`` (the digits are all there) ...
_FLOAT_FORM = re.compile(r"^(\+?[0-9]+)\.0+$")
#: ... or wrote in scientific notation: ``1.38001E+10`` (the last digits are gone)
SCIENTIFIC = re.compile(r"^[0-9](\.[0-9]+)?[eE]\+?[0-9]+$")
_EXTENSION = re.compile(r"\s*(ext\.?|x|转|分机|#)\s*[0-9]+$", re.IGNORECASE)
#: a fixed line (area code and 7 or 8 digits) with its extension after one more dash: ``028-85551234-8001``
_FIXED_LINE_EXTENSION = re.compile(r"^((?:\+?86|0086)?[\s-]*\(?0[1-9][0-9]{1,2}\)?[\s-]?[0-9]{7,8})\s*-\s*[0-9]{1,5}$")
#: a service number written after the country code and a separator (``86 10086``, ``086-10086``): its digits alone
_SERVICE_AFTER_86 = re.compile(r"^\+?0{0,2}86[\s()-]+(1[0-9]{2,4}|9[0-9]{4})$")
#: a number with digits hidden (脱敏: ``139****0243``, ``139xxxx0243``, ``138＊＊＊＊8000``): no longer any one number
_MASKED = re.compile(r"\*|[0-9][\s-]*[xX]{2,}|[xX]{2,}[\s-]*[0-9]")
#: the IP-call prefixes dialled before a number (17951 13800138000): the number is what follows
IP_PREFIXES = ("17951", "17911", "12593", "17901", "10193")
#: a 13-digit IoT (M2M) number: real, kept as ``+86`` and its 13 digits
_IOT = re.compile(r"14[0-9]{11}")
#: a number written as a URI (``tel:13800138000``), as phones and some exports write it
_TEL = re.compile(r"^tel:\s*", re.IGNORECASE)
_MOBILE = re.compile(r"1[3-9][0-9]{9}")
#: why a number that looks like a Chinese mobile of the wrong length is refused (a digit typed twice or left out,
#: or two numbers run together in one cell): it would be stored, shown and never match a call record
NOT_A_MOBILE = "is not a Chinese mobile number (11 digits): check it"


def _nfkc(raw: object) -> str:
    import unicodedata

    return _TEL.sub("", unicodedata.normalize("NFKC", str(raw)).strip())  # full-width digits and ＊ are plain ones


def is_masked(raw: object) -> bool:
    """Whether ``raw`` is a number with digits masked (``139****0243``, ``139xxxx0243``, ``138＊＊＊＊8000``):
    the digits left are another, non-existent number, so it is refused and the full number asked for."""
    if raw is None:
        return False
    text = _nfkc(raw)
    return bool(re.search(r"[0-9]", text)) and bool(_MASKED.search(text)) and not _HASHED.match(text)


def _national(digits: str) -> str:
    """``digits`` (digits and +) without +86 / 0086 (or 86 before a mobile) and without an IP-call prefix."""
    for prefix in ("+86", "0086"):
        if digits.startswith(prefix):
            digits = digits[len(prefix):]
            break
    else:
        if digits.startswith("86") and re.match(r"1[3-9]", digits[2:]) and len(digits) > 11:
            digits = digits[2:]
    for prefix in IP_PREFIXES:
        if len(digits) > 11 and digits.startswith(prefix) and re.match(r"1[3-9]|0", digits[len(prefix):]):
            return digits[len(prefix):]
    return digits


def mobile_length_error(raw: object) -> bool:
    """Whether ``raw`` looks like a Chinese mobile number (``1[3-9]...`` after an optional +86 / 0086 / 86 or an
    IP-call prefix such as 17951) of the wrong length: 8 to 19 digits but not 11 (13-digit IoT numbers ``14...``
    aside), or several 11-digit mobiles run together (``13900000100;13900000101``). Fixed lines (``0...``), service
    numbers (``10086``, ``95588``, ``110``), foreign numbers (``+1...``), masked numbers and hashes never match."""
    if raw is None or is_masked(raw):
        return False
    text = _EXTENSION.sub("", _FLOAT_FORM.sub(r"\1", _nfkc(raw)))
    if re.search(r"[^\W\d_]", text) or not re.search(r"[0-9]", text):
        return False
    digits = re.sub(r"[^\d+]", "", text)
    if not digits.startswith(("+86", "0086")) and digits.startswith(("+", "00")):
        return False  # another country's number
    digits = _national(digits)
    if not re.match(r"1[3-9]", digits) or len(digits) == 11:
        return False
    if 8 <= len(digits) <= 19:
        return not _IOT.fullmatch(digits)  # 13-digit IoT (M2M) numbers are real
    return len(digits) % 11 == 0 and all(_MOBILE.fullmatch(digits[i:i + 11]) for i in range(0, len(digits), 11))


def number_refusal(raw: object) -> str:
    """The one-line reason a value given as a phone number is refused (``normalize_number`` gave ``""``)."""
    if is_masked(raw):
        return f"masked number ({str(raw).strip()}): the full number is needed"
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
    if not text or text.lower() in {"nan", "none", "null"} or is_masked(text):
        return ""
    if _HASHED.match(text) and not text.isdigit():
        return text.lower()
    if SCIENTIFIC.match(text):
        return ""
    text = _FIXED_LINE_EXTENSION.sub(r"\1", _EXTENSION.sub("", _FLOAT_FORM.sub(r"\1", text)))
    if service := _SERVICE_AFTER_86.match(_nfkc(text)):
        return service.group(1)
    if re.search(r"[^\W\d_]", text):  # letters left (not a hash, not an extension): not a number ("abc123" is not "123")
        return ""
    if mobile_length_error(text):
        return ""
    import phonenumbers

    digits = re.sub(r"[^\d+]", "", text)
    national = _national(digits)
    if _IOT.fullmatch(national):
        return "+86" + national  # one form for 1440000000012, +861440000000012 and 861440000000012
    if national != digits and not digits.startswith(("+86", "0086", "86")):
        digits = national  # an IP-call prefix (10193 13900000243) dropped
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
