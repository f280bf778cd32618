"""Personal data in card texts: find it and replace it with a tag, counting what was found.

Three kinds, in the order they are redacted:
- `fødselsnummer`: 11 digits (or "DDMMYY NNNNN") whose two mod-11 control digits check and
  whose date part is plausible, with D-numbers (day + 40), H-numbers / NAV synthetic
  (month + 40) and Skatteetaten Tenor synthetic numbers (month + 80);
- `e-post`: local@domain.tld, and the "navn (at) kommune.no" / "navn[at]kommune.no" forms;
- `telefon`: Norwegian 8-digit numbers (99887766, 998 87 766, 99 88 77 66, 9988 7766) with an
  optional +47 / 0047 / (+47) prefix, which is redacted with the number.

Fødselsnummer goes first so that an 11-digit number is never half taken as a phone number, and
e-mail before phone so that digits in an address go with the address. Each match becomes
`[<kind>]`. Tags hold no digits and no "@", so redacting a redacted text changes nothing, and a
text without personal data comes back unchanged. Pure functions: no I/O, no state.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

PII_KINDS = ("telefon", "e-post", "fødselsnummer")
TAGS = {kind: f"[{kind}]" for kind in PII_KINDS}

# ---------------------------------------------------------------- fødselsnummer

# `[0-9]`, not `\d`: `\d` also matches other scripts' digits. The optional space-like character
# allows "DDMMYY NNNNN"; the digit lookarounds keep 11 digits out of longer digit runs.
_FNR = re.compile(r"(?<![0-9])[0-9]{6}[ \u00a0\u202f]?[0-9]{5}(?![0-9])")
_K1_WEIGHTS = (3, 7, 6, 1, 8, 9, 4, 5, 2)
_K2_WEIGHTS = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)
D_NUMBER_DAY_OFFSET = 40
H_NUMBER_MONTH_OFFSET = 40  # also NAV's synthetic numbers
TENOR_MONTH_OFFSET = 80  # Skatteetaten's Tenor synthetic test numbers


def control_digit(digits: Iterable[int], weights: Iterable[int]) -> int | None:
    """The mod-11 control digit for `digits`, or None where no digit fits (remainder 10)."""
    check = 11 - sum(d * w for d, w in zip(digits, weights)) % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def _plausible_date(digits: list[int]) -> bool:
    day = digits[0] * 10 + digits[1]
    month = digits[2] * 10 + digits[3]
    if day > D_NUMBER_DAY_OFFSET:
        day -= D_NUMBER_DAY_OFFSET
    if month > TENOR_MONTH_OFFSET:
        month -= TENOR_MONTH_OFFSET
    elif month > H_NUMBER_MONTH_OFFSET:
        month -= H_NUMBER_MONTH_OFFSET
    return 1 <= day <= 31 and 1 <= month <= 12


def is_fodselsnummer(number: str) -> bool:
    """True for 11 digits (spaces ignored) with valid control digits and a plausible date part."""
    compact = re.sub(r"[ \u00a0\u202f]", "", number)
    if len(compact) != 11 or not compact.isascii() or not compact.isdigit():
        return False
    digits = [int(c) for c in compact]
    return (
        control_digit(digits[:9], _K1_WEIGHTS) == digits[9]
        and control_digit(digits[:10], _K2_WEIGHTS) == digits[10]
        and _plausible_date(digits)
    )


def _accept_fnr(match: re.Match[str]) -> bool:
    return is_fodselsnummer(match.group(0))


# ---------------------------------------------------------------- e-post

# `\w` is Unicode, so æøå are allowed in the local part and the domain (IDN). The local part
# starts with a letter or digit; the top-level domain is letters only ("kommune.no").
_LOCAL = r"\w[\w.+-]*"
# "@", or an "at"/"@" in round or square brackets, spaces around it optional: "ola (at) x.no".
_AT = r"(?:@|\s*[(\[]\s*(?i:at|@)\s*[)\]]\s*)"
# A dot, or "(dot)"/"[punktum]" as in "kommune (dot) no".
_DOT = r"(?:\.|\s*[(\[]\s*(?i:dot|punktum)\s*[)\]]\s*)"
_EMAIL = re.compile(rf"{_LOCAL}{_AT}(?:[\w-]+{_DOT})+[^\W\d_]{{2,}}")


def _accept_email(match: re.Match[str]) -> bool:
    return True


# ---------------------------------------------------------------- telefon

# Separators inside a phone number: space (also no-break and narrow no-break), dot or hyphen.
_SEP = r"[ \u00a0\u202f.-]"
_PHONE = re.compile(
    rf"""
    (?:
        (?:\+47|\(\+47\)){_SEP}?      # '+47' / '(+47)' mark their own start: may follow anything
      | (?<!\w)(?:0047{_SEP}?)?       # else the number (or '0047') must not be glued to a word/digit
    )
    (?P<number>
        [2-9][0-9]{{7}}                                                # 99887766
      | [2-9][0-9]{{2}}(?P<s1>{_SEP})[0-9]{{2}}(?P=s1)[0-9]{{3}}       # 998 87 766
      | [2-9][0-9](?P<s2>{_SEP})[0-9]{{2}}(?P=s2)[0-9]{{2}}(?P=s2)[0-9]{{2}}  # 99 88 77 66
      | (?P<half1>[2-9][0-9]{{3}}){_SEP}(?P<half2>[0-9]{{4}})             # 9988 7766
    )
    (?!\w)
    """,
    re.VERBOSE,
)
# One of these between two digit groups joins them into one number ("10 000 000", "3,5").
_JOINERS = " \u00a0\u202f.,-"
# Always join: "99887766,5" and "1.99887766" are decimals or thousands, never a phone number.
_DECIMAL_JOINERS = ".,"
# A group of up to this many digits continues a grouping ("99 88 77 66 55", "2 99887766").
_SHORT_GROUP = 3
_DIGITS = "0123456789"
# Money and shares next to a number: "kr 12345678", "22334455 kroner", "25000000 mill", "%".
_AMOUNT_BEFORE = re.compile(r"(?:\b(?:kr|nok|kroner)\.?|[$€£])\s*\Z", re.IGNORECASE)
_AMOUNT_AFTER = re.compile(
    r"\s*(?:kr\b|kroner\b|nok\b|mill(?:\.|ioner?\b|\b)|milliard|mrd\b|%|prosent|,-)",
    re.IGNORECASE,
)
_AMOUNT_LOOKBACK = 20  # characters before a number searched for "kr"/"NOK"
# "2024 2025", "2026-2030": two years (or a year range) in the 9988 7766 shape.
_YEAR_RANGE = range(1900, 2101)


def _run_before(text: str, end: int) -> int:
    """Length of the digit run ending just before `end`."""
    start = end
    while start > 0 and text[start - 1] in _DIGITS:
        start -= 1
    return end - start


def _run_after(text: str, start: int) -> int:
    """Length of the digit run starting at `start`."""
    end = start
    while end < len(text) and text[end] in _DIGITS:
        end += 1
    return end - start


def _joined(joiner: str, own_group: int, neighbour_group: int) -> bool:
    """Whether two digit groups with one joiner between them read as one longer number.

    Symmetric in the two groups on purpose: a number and its neighbour are judged alike, so
    redacting one can never change the verdict on the other (this keeps redaction idempotent).
    """
    return joiner in _DECIMAL_JOINERS or min(own_group, neighbour_group) <= _SHORT_GROUP


def _continues_number(text: str, start: int, end: int) -> bool:
    """Whether the match text[start:end] is part of a longer number through a joiner."""
    if text[start] in _DIGITS and start >= 2 and text[start - 1] in _JOINERS and text[start - 2] in _DIGITS:
        if _joined(text[start - 1], _run_after(text, start), _run_before(text, start - 1)):
            return True
    if end + 1 < len(text) and text[end] in _JOINERS and text[end + 1] in _DIGITS:
        if _joined(text[end], _run_before(text, end), _run_after(text, end + 1)):
            return True
    return False


def _is_amount(text: str, start: int, end: int) -> bool:
    return bool(
        _AMOUNT_BEFORE.search(text, max(0, start - _AMOUNT_LOOKBACK), start) or _AMOUNT_AFTER.match(text, end)
    )


def _is_year_pair(match: re.Match[str]) -> bool:
    half1, half2 = match.group("half1"), match.group("half2")
    return half1 is not None and int(half1) in _YEAR_RANGE and int(half2) in _YEAR_RANGE


def _accept_phone(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    if _continues_number(text, start, end):
        return False
    if start < match.start("number"):  # written with a country prefix: a phone number for sure
        return True
    return not (_is_amount(text, start, end) or _is_year_pair(match))


# ---------------------------------------------------------------- redaction

_PASSES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], bool]], ...] = (
    ("fødselsnummer", _FNR, _accept_fnr),
    ("e-post", _EMAIL, _accept_email),
    ("telefon", _PHONE, _accept_phone),
)


def _redact_kind(
    text: str, kind: str, pattern: re.Pattern[str], accept: Callable[[re.Match[str]], bool], counts: Counter
) -> str:
    def replace(match: re.Match[str]) -> str:
        if not accept(match):
            return match.group(0)
        counts[kind] += 1
        return TAGS[kind]

    return pattern.sub(replace, text)


def redact(text: str) -> tuple[str, Counter]:
    """`text` with each fødselsnummer, e-mail address and phone number replaced by its tag
    (`[fødselsnummer]`, `[e-post]`, `[telefon]`), and how many of each kind were replaced.

    Kinds not found are absent from the counter (a Counter reads them as 0).
    """
    counts: Counter = Counter()
    for kind, pattern, accept in _PASSES:
        text = _redact_kind(text, kind, pattern, accept, counts)
    return text, counts


def redact_all(texts: Iterable[str]) -> tuple[list[str], Counter]:
    """`redact` over many texts: the redacted texts in order, and the summed counts."""
    redacted: list[str] = []
    total: Counter = Counter()
    for text in texts:
        clean, counts = redact(text)
        redacted.append(clean)
        total.update(counts)
    return redacted, total
