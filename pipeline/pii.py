"""Personal data in card texts, ids and names: find it and replace it with a tag, counting what was found.

Three kinds, in the order they are redacted:
- `fødselsnummer`: 11 digits, also written "DDMMYY NNNNN", "DDMMYY-NNNNN" or "DD.MM.YY NNNNN",
  whose two mod-11 control digits check (python-stdnum) and whose date part is plausible, with
  D-numbers (day + 40), H-numbers / NAV synthetic (month + 40), Skatteetaten Tenor synthetic
  numbers (month + 80) and FH-numbers (first digit 8 or 9); and 10 digits that are one of these
  with its leading zero lost (a spreadsheet that took the number for a number);
- `e-post`: local@domain.tld, also with spaces around the "@", and the "navn (at) kommune.no",
  "navn[at]kommune.no" and "navn@kommune dot no" forms;
- `telefon`: numbers written with "+" or "00" and another country code (the `phonenumbers`
  library), and Norwegian 8-digit numbers (99887766, 998 87 766, 99 88 77 66, 9988 7766,
  41 234 567) with an optional +47 / 0047 / (+47) prefix, which is redacted with the number.
  Amounts are not phone numbers: a number after "kr", "budsjett", "koster" ... or before "kr",
  "mill", "%", and a round number ("45000000", "45 000 000") unless a phone word ("ring",
  "tlf", ...) comes just before it.

Detection runs on a normalised view of the text, the way every later stage may see it:
zero-width characters and soft hyphens removed, every run of white space (line breaks, tabs,
no-break and thin spaces) read as one space, a hyphen at a line break inside a word or number
joined, other scripts' digits and full-width "@" read as ASCII. A match in the view is mapped
back to the span of the original text it came from, and that span is replaced; the rest of the
text is kept byte for byte. So whatever later joins characters (normalise collapses white space
and strips invisible characters) cannot bring a number or address back together. Each field is
also read a second time with "_" as a space, as in file names ("ws_99887766.csv").

Fødselsnummer goes first so that an 11-digit number is never half taken as a phone number, and
e-mail before phone so that digits in an address go with the address. Each match becomes
`[<kind>]`. Tags hold no digits and no "@", so redacting a redacted text changes nothing, and a
text without personal data comes back unchanged. Pure functions: no I/O, no state.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import ftfy
import phonenumbers
from stdnum.no import fodselsnummer as stdnum_fnr

PII_KINDS = ("telefon", "e-post", "fødselsnummer")
TAGS = {kind: f"[{kind}]" for kind in PII_KINDS}

# ---------------------------------------------------------------- the normalised view

# Removed by normalise (and invisible on screen): zero-width characters, word joiner, BOM, soft hyphen.
_INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u00ad\u180e")
# Characters read as their ASCII form when NFKC gives one of these: full-width digits, "＠".
_FOLDED = frozenset("0123456789@.+-")
# Dashes read as "-": hyphen, non-breaking hyphen, figure, en and em dash, horizontal bar, minus.
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# Written forms of a space or an "@" that a card copied from a web page or a URL may hold, and a
# no-break space read as cp1252 ("Â\xa0", which normalise's ftfy turns back into a space).
_ESCAPED_SPACE = re.compile(r"(?i:<br\s*/?>|&nbsp;|&#0*160;|&#x0*a0;)|\u00c2\u00a0")
_ESCAPED_AT = re.compile(r"(?i:&#0*64;|&#x0*40;|(?<=\w)%40(?=\w))")
# The words and bracketed forms that stand for "@" in an address ("kari at kommune.no",
# "kari snabel-a kommune.no", "kari (a) kommune.no"); only with a domain after them (see _AT).
_AT_WORDS = r"(?i:at|snabel-?a|krøllalfa)"
# Nothing to find in a text without a digit (any script), an "@" (also full-width or escaped) or
# an "@" word.
_CANDIDATE = re.compile(rf"\d|[@\uff20\ufe6b]|[(\[]\s*(?i:at|a)\s*[)\]]|(?<!\w){_AT_WORDS}(?!\w)")


@dataclass(frozen=True)
class _View:
    """`text` with each of its characters' span in the original (start inclusive, end exclusive)."""

    text: str
    starts: list[int]
    ends: list[int]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.starts[start], self.ends[end - 1]


def _skip_space(text: str, i: int) -> int:
    """Index of the first character at or after `i` that is neither white space nor invisible."""
    while i < len(text) and (text[i].isspace() or text[i] in _INVISIBLE):
        i += 1
    return i


# Characters the view may change; everything between them is copied as it is, in one piece.
# (A single space between two other characters is plain.)
_SPECIAL = re.compile(
    r"[^\S ]| (?=[\s\u200b\u200c\u200d\u2060-\u2064\ufeff\u00ad\u180e])|[_\u200b\u200c\u200d\u2060-\u2064\ufeff\u00ad\u180e-]"
    r"|(?![0-9])\d|[\uff01-\uff5e\ufe50-\ufe6b\u00b2\u00b3\u00b9\u2070-\u209f\u2010-\u2015\u2212<&%\u00c2]"
)


def _blank(text: str, i: int, underscore_is_space: bool) -> int:
    """Length of the blank at `i` (white space, an invisible character, an escaped space), or 0."""
    ch = text[i]
    if ch.isspace() or ch in _INVISIBLE or (underscore_is_space and ch == "_"):
        return 1
    escaped = _ESCAPED_SPACE.match(text, i) if ch in "<&\u00c2" else None
    return escaped.end() - i if escaped else 0


def _view(text: str, underscore_is_space: bool = False) -> _View:
    chars: list[str] = []  # pieces of the view; the last character of the last piece is the view's last
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        special = _SPECIAL.search(text, i)
        plain_end = special.start() if special else len(text)
        if plain_end > i:
            chars.append(text[i:plain_end])
            starts.extend(range(i, plain_end))
            ends.extend(range(i + 1, plain_end + 1))
            i = plain_end
            continue
        ch = text[i]
        last = chars[-1][-1] if chars else ""
        if ch in _INVISIBLE:
            i += 1
            continue
        blank = _blank(text, i, underscore_is_space)
        if blank:
            run_end = i + blank  # the whole run of white space (and invisible characters in it): one space
            while run_end < len(text) and (step := _blank(text, run_end, underscore_is_space)):
                run_end += step
            if last == " ":
                ends[-1] = run_end
            else:
                chars.append(" ")
                starts.append(i)
                ends.append(run_end)
            i = run_end
            continue
        escaped_at = _ESCAPED_AT.match(text, i) if ch in "&%" else None
        if escaped_at:
            chars.append("@")
            starts.append(i)
            ends.append(escaped_at.end())
            i = escaped_at.end()
            continue
        if ch in _DASHES:
            ch = "-"
        if ch == "-" and last:
            after = _skip_space(text, i + 1)
            broken = after > i + 1 and after < len(text) and any(c.isspace() for c in text[i + 1 : after])
            if broken and last.isalpha() and text[after].isalpha():
                i = after  # "kom-\nmune" reads "kommune": the hyphen and the break go with the word
                continue
            if broken and last.isdigit() and text[after].isdigit():
                chars.append("-")  # "99-88-\n77-66" reads "99-88-77-66"
                starts.append(i)
                ends.append(after)
                i = after
                continue
        if not ch.isascii():
            folded = unicodedata.normalize("NFKC", ch)
            if folded in _FOLDED:
                ch = folded
        chars.append(ch)
        starts.append(i)
        ends.append(i + 1)
        i += 1
    return _View("".join(chars), starts, ends)


# ---------------------------------------------------------------- fødselsnummer

# `[0-9]`, not `\d`: the view has turned other scripts' digits into ASCII ones already.
# 11 digits with at most one separator (space, dot, hyphen or dash, slash) between any two:
# "DDMMYYNNNNN", "DDMMYY NNNNN", "DDMMYY-NNNNN", "DD.MM.YY NNNNN", "DD MM YY NNN NN",
# "DDM MYY NNNNN", "DDMMYY/NNNNN". The control digits decide; the lookarounds keep the 11 digits
# out of longer digit runs, also through a separator.
_FNR = re.compile(r"(?=(?P<fnr>(?<![0-9])(?<![0-9][./-])[0-9](?:[ ./-]?[0-9]){10}(?![0-9])(?![./-][0-9])))")
# The date part with a four-digit year, "DD.MM.YYYY NNNNN": checked without the century digits.
_FNR_FULL_YEAR = re.compile(
    r"(?=(?P<fnr>(?<![0-9])(?<![0-9][./-])(?P<day>[0-9]{2})(?P<s>[./-]?)(?P<month>[0-9]{2})(?P=s)"
    r"(?P<century>1[89]|20)(?P<year>[0-9]{2})[ ./-]?(?P<individual>[0-9]{5})(?![0-9])(?![./-][0-9])))")
# Both patterns are lookaheads, tried at every position, so that a candidate that fails its
# control digits ("99 178 587 500 1") does not hide a valid one starting inside it; matches are
# their `fnr` group. A space before or after is allowed: "17858750016 99887766" is two numbers.
# A fødselsnummer starting with 0 that a spreadsheet stored as a number: 10 digits.
_FNR_LOST_ZERO = re.compile(r"(?<![0-9])[1-9][0-9]{9}(?![0-9])")
D_NUMBER_DAY_OFFSET = 40
FH_NUMBER_FIRST_DIGITS = "89"  # FH-numbers (assigned without a birth date)
H_NUMBER_MONTH_OFFSET = 40  # also NAV's synthetic numbers
TENOR_MONTH_OFFSET = 80  # Skatteetaten's Tenor synthetic test numbers


def _plausible_date(compact: str) -> bool:
    day, month = int(compact[0:2]), int(compact[2:4])
    if day > D_NUMBER_DAY_OFFSET:
        day -= D_NUMBER_DAY_OFFSET
    if month > TENOR_MONTH_OFFSET:
        month -= TENOR_MONTH_OFFSET
    elif month > H_NUMBER_MONTH_OFFSET:
        month -= H_NUMBER_MONTH_OFFSET
    return 1 <= day <= 31 and 1 <= month <= 12


def is_fodselsnummer(number: str | tuple[str, ...]) -> bool:
    """True for 11 digits (separators ignored) with valid control digits and a plausible date part.

    The control digits are python-stdnum's; its `is_valid` is not used, because it also rejects
    numbers whose birth date lies after today (the verdict would depend on the day of the run),
    Tenor test numbers and FH-numbers, all of which still identify a person.
    """
    if not isinstance(number, str):  # (day, month, year, individual) of a date with a four-digit year
        number = "".join(number)
    compact = re.sub(r"[ \u00a0\u202f./\u2010-\u2015-]", "", number)
    if len(compact) != 11 or not compact.isascii() or not compact.isdigit():
        return False
    return (
        stdnum_fnr.calc_check_digit1(compact) == compact[9]
        and stdnum_fnr.calc_check_digit2(compact) == compact[10]
        and (compact[0] in FH_NUMBER_FIRST_DIGITS or _plausible_date(compact))
    )


def _accept_fnr(match: re.Match[str]) -> bool:
    return is_fodselsnummer(match.group("fnr"))


def _accept_fnr_full_year(match: re.Match[str]) -> bool:
    return is_fodselsnummer(match.group("day", "month", "year", "individual"))


def _accept_fnr_lost_zero(match: re.Match[str]) -> bool:
    return is_fodselsnummer("0" + match.group(0))


# ---------------------------------------------------------------- e-post

# `\w` is Unicode, so æøå are allowed in the local part and the domain (IDN). The local part
# starts with a letter or digit; the top-level domain is letters only ("kommune.no").
# `(?<!\w)`: start at the start of a word only (the same matches; no retries inside every word).
_LOCAL = r"(?<!\w)\w[\w.+-]*"
# "@" (spaces around it allowed: "kari @ kommune.no"), "at", "a", "@" in round or square brackets,
# or "snabel-a" / "krøllalfa" between spaces.
_AT = r"(?:\s*@\s*|\s*[(\[]\s*(?i:at|a|@|snabel-?a|krøllalfa)\s*[)\]]\s*|\s+(?i:snabel-?a|krøllalfa)\s+)"
# A dot (a space before it allowed: "kommune .no"), "(dot)"/"[punktum]" as in "kommune (dot) no",
# or " dot " as in "kommune dot no".
_WORD_DOT = r"(?:\s*[(\[]\s*(?i:dot|punktum)\s*[)\]]\s*|\s+(?i:dot|punktum)\s+)"
_DOT = rf"(?:\s?\.|{_WORD_DOT})"
_TLD = r"[^\W\d_]{2,}(?!\w)"
# A bare " at " is an English word ("we met at nav.no"): an address only when the local part has a
# dot ("kari.nordmann at kommune.no") or the domain a dot word ("per at kommune punktum no").
_EMAIL = re.compile(
    rf"{_LOCAL}{_AT}(?:[\w-]+{_DOT})+{_TLD}"
    rf"|(?<!\w)\w+(?:\.\w+)+\s+(?i:at)\s+(?:[\w-]+{_DOT})+{_TLD}"
    rf"|{_LOCAL}\s+(?i:at)\s+(?:[\w-]+{_DOT})*[\w-]+{_WORD_DOT}{_TLD}"
)
# No address without one of these: skip the slower search.
_AT_ANYWHERE = re.compile(rf"@|[(\[]\s*(?i:at|a)\s*[)\]]|(?<!\w){_AT_WORDS}(?!\w)")


def _accept_email(match: re.Match[str]) -> bool:
    return True


# ---------------------------------------------------------------- telefon, other countries

# A number written with "+" or "00": worth asking `phonenumbers` about.
_INTERNATIONAL = re.compile(r"(?:\+|(?<![0-9])00)[ (]*[1-9]")
NORWAY_COUNTRY_CODE = 47  # +47 numbers go through the Norwegian rule below, with its amount checks


def _foreign_phone_spans(text: str) -> list[tuple[int, int]]:
    """Spans of numbers written with "+" or "00" and a country code other than Norway's.

    `Leniency.POSSIBLE` (a plausible length for the country), not VALID: a made-up or unassigned
    number on a card is still meant as a phone number, and the "+" says so.
    """
    if not _INTERNATIONAL.search(text):
        return []
    spans = []
    for match in phonenumbers.PhoneNumberMatcher(text, "NO", leniency=phonenumbers.Leniency.POSSIBLE):
        raw = match.raw_string.lstrip("(")
        if raw.startswith(("+", "00")) and match.number.country_code != NORWAY_COUNTRY_CODE:
            spans.append((match.start, match.end))
    return spans


# ---------------------------------------------------------------- telefon, Norwegian

# Separators inside a phone number: space (the view has made every white space one space), dot or hyphen.
_SEP = r"[ .-]"
_PHONE = re.compile(
    rf"""
    (?:
        (?:\+{_SEP}?47|\(\+47\)){_SEP}?  # '+47' / '(+47)' mark their own start: may follow anything
        (?:\(0\){_SEP}?|0{_SEP})?        # '+47 (0) 412 34 578', '+47 0 41234567': the trunk 0 goes too
      | (?<!\w)(?:00{_SEP}?47{_SEP}?)?  # else the number (or '0047', '00 47') must not be glued to a word/digit
    )
    (?P<number>
        (?P<plain>[2-9][0-9]{{7}})                                     # 99887766
      | \([2-9][0-9]{{2}}\)[ ]?[0-9]{{2}}[ .-]?[0-9]{{3}}               # (412) 34 588
      | [2-9](?P<s3>{_SEP})[0-9](?:(?P=s3)[0-9]){{6}}                  # 4 1 2 3 4 5 8 1
      | [2-9][0-9]{{2}}(?P<s1>{_SEP})[0-9]{{2}}(?P=s1)[0-9]{{3}}       # 998 87 766
      | [2-9][0-9](?P<s2>{_SEP})[0-9]{{2}}(?P=s2)[0-9]{{2}}(?P=s2)[0-9]{{2}}  # 99 88 77 66
      | (?P<half1>[2-9][0-9]{{3}}){_SEP}(?P<half2>[0-9]{{4}})             # 9988 7766
      | (?P<thousands>[2-9][0-9][ ][0-9]{{3}}[ ][0-9]{{3}})             # 41 234 567 (not 50-100-130, 41.234.567)
    )
    (?![0-9])       # letters may follow: "41234567kari" (a unit after it is an amount: _AMOUNT_AFTER)
    """,
    re.VERBOSE,
)
# One of these between two digit groups joins them into one number ("10 000 000", "3,5").
_JOINERS = " .,-"
# Always join: "99887766,5" and "1.99887766" are decimals or thousands, never a phone number.
_DECIMAL_JOINERS = ".,"
# A group of up to this many digits continues a grouping ("99 88 77 66 55", "2 99887766").
_SHORT_GROUP = 3
_DIGITS = "0123456789"
# Money, shares and counts next to a number: "kr 12345678", "22334455 kroner", "25000000 mill", "%",
# "23 456 789 innbyggere", for every shape of number.
_CURRENCY_BEFORE = re.compile(r"(?:\b(?:kr|nok|kroner)\.?|[$€£])\s*\Z", re.IGNORECASE)
# Words of money and counts a few words before a number written as an amount is ("Budsjett på
# 45000000", "kostnaden blir 45 678 901"): not for the groupings of phone numbers (99 88 77 66,
# 998 87 766, 9988 7766), and not when a phone word comes before the number too.
_AMOUNT_WORD_BEFORE = re.compile(
    r"\b(?:budsjett|beløp|kostnad|koste|koster|kostet|pris|tilskudd|bevilg|ramme|invester|lønn|utgift|inntekt"
    r"|sum|summen|million|milliard|omsetning|underskudd|overskudd|gjeld|betal|brukte|brukt|premie|gevinst|sparte"
    r"|spart|midler|avsatt|antall|befolkning|innbygger)\w*[^\d\[\]]*?\s*\Z",
    re.IGNORECASE,
)
_AMOUNT_AFTER = re.compile(
    r"\s*(?:kr\b|kroner\b|nok\b|mill(?:\.|ioner?\b|\b)|milliard|mrd\b|%|prosent|,-"
    r"|(?:innbyggere|personer|ansatte|elever|pasienter|brukere|deltakere|husstander|er antallet)\b)",
    re.IGNORECASE,
)
_CURRENCY_LOOKBACK = 20  # characters before a number searched for "kr", "NOK", ...
_AMOUNT_LOOKBACK = 30  # ... for "budsjett", "koster", ...
# A phone word shortly before a round or amount-worded number makes it a phone number again
# ("ring meg på 45000000"). Not inside a tag ("[telefon]"), so that redacting one number never
# changes the verdict on the next.
_PHONE_WORD = re.compile(r"(?<![\[\w])(?:ring|tlf|telefon|mobil|mob|nr|nummer|tel|sms|kontakt)\w*", re.IGNORECASE)
_PHONE_WORD_LOOKBACK = 60  # wider than the amount words: in doubt, a phone number
ROUND_NUMBER_ZEROS = 5  # "45000000" and "45 000 000" end in this many zeros or more: an amount
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


def _after_phone_word(text: str, start: int) -> bool:
    return bool(_PHONE_WORD.search(text, max(0, start - _PHONE_WORD_LOOKBACK), start))


def _amount_shaped(match: re.Match[str]) -> bool:
    """Written as amounts are: one run of digits or thousands groups ("45000000", "45 678 901")."""
    return match.group("plain") is not None or match.group("thousands") is not None


def _is_amount(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    if _AMOUNT_AFTER.match(text, end) or _CURRENCY_BEFORE.search(text, max(0, start - _CURRENCY_LOOKBACK), start):
        return True
    return (_amount_shaped(match) and not _after_phone_word(text, start)
            and bool(_AMOUNT_WORD_BEFORE.search(text, max(0, start - _AMOUNT_LOOKBACK), start)))


def _is_round(match: re.Match[str]) -> bool:
    """A plain or thousands-grouped number ending in many zeros ("45000000", "45 000 000")."""
    if not _amount_shaped(match):
        return False
    written = match.group("plain") or match.group("thousands")
    digits = re.sub(r"[^0-9]", "", written)
    return len(digits) - len(digits.rstrip("0")) >= ROUND_NUMBER_ZEROS


def _is_year_pair(match: re.Match[str]) -> bool:
    half1, half2 = match.group("half1"), match.group("half2")
    return half1 is not None and int(half1) in _YEAR_RANGE and int(half2) in _YEAR_RANGE


# Any grouping of 8 digits ("412-34567", "4123 45 67", "4 12 34 567", "412 34 5 67"), also glued
# to the word before it ("tlf41234567"): a phone number when a phone word comes just before it.
_DIGIT_GROUPS = re.compile(r"(?<![0-9])(?<![0-9][ .-])[2-9][0-9]*(?:[ .-][0-9]+)+(?![0-9])(?![ .-][0-9])"
                           r"|(?<=[^\W\d_])[2-9][0-9]{7}(?![0-9])")
# "ring 412-34567", "ring meg på 4123 45 67", "telefon: 4 12 34 567", "tlf41234567": a phone word,
# then at most a few short words and no digit.
_PHONE_WORD_JUST_BEFORE = re.compile(
    r"(?<![\[\w])(?:ring|tlf|telefon|mobil|mob|tel|sms|nummer|nr)\w*?(?:[\s:.]+(?:[^\W\d_]{1,6}[\s:.]+){0,3})?\Z",
    re.IGNORECASE)
_PHONE_WORD_GAP = 40  # characters searched before the number


def _accept_grouped_phone(match: re.Match[str]) -> bool:
    text, start = match.string, match.start()
    digits = re.sub(r"[^0-9]", "", match.group(0))
    if len(digits) != 8 or _AMOUNT_AFTER.match(text, match.end()):
        return False
    if len(set(re.findall(r"[ .-]", match.group(0)))) > 1:  # "20.00-22.00": a time range, not a grouping
        return False
    groups = re.split(r"[ .-]", match.group(0))
    if len(groups) == 2 and all(len(g) == 4 and int(g) in _YEAR_RANGE for g in groups):
        return False
    if [len(g) for g in groups] == [2, 2, 4] and 1 <= int(groups[0]) <= 31 and 1 <= int(groups[1]) <= 12:
        return False  # "telefonmøte 24.03.2026": a date
    return bool(_PHONE_WORD_JUST_BEFORE.search(text[max(0, start - _PHONE_WORD_GAP):start]))


def _accept_phone(match: re.Match[str]) -> bool:
    text, start, end = match.string, match.start(), match.end()
    if _continues_number(text, start, end):
        return False
    if start < match.start("number"):  # written with a country prefix: a phone number for sure
        return True
    if _is_amount(match) or _is_year_pair(match):
        return False
    return not _is_round(match) or _after_phone_word(text, start)


# ---------------------------------------------------------------- redaction

_Accept = Callable[[re.Match[str]], bool]
_PASSES: tuple[tuple[str, re.Pattern[str] | None, _Accept | None], ...] = (
    ("fødselsnummer", _FNR, _accept_fnr),
    ("fødselsnummer", _FNR_FULL_YEAR, _accept_fnr_full_year),
    ("fødselsnummer", _FNR_LOST_ZERO, _accept_fnr_lost_zero),
    ("e-post", _EMAIL, _accept_email),
    ("telefon", None, None),  # other countries' numbers, found by `phonenumbers`
    ("telefon", _PHONE, _accept_phone),
    ("telefon", _DIGIT_GROUPS, _accept_grouped_phone),
)


def _spans(view: str, pattern: re.Pattern[str] | None, accept: _Accept | None) -> list[tuple[int, int]]:
    if pattern is None:
        return _foreign_phone_spans(view)
    if pattern is _EMAIL and not _AT_ANYWHERE.search(view):
        return []
    if "fnr" in pattern.groupindex:  # lookahead patterns: keep the valid ones that do not overlap
        spans: list[tuple[int, int]] = []
        for match in pattern.finditer(view):
            if (not spans or match.start("fnr") >= spans[-1][1]) and accept(match):
                spans.append(match.span("fnr"))
        return spans
    return [match.span() for match in pattern.finditer(view) if accept(match)]


def _redact_pass(text: str, underscore_is_space: bool, counts: Counter) -> str:
    view = _view(text, underscore_is_space)
    for kind, pattern, accept in _PASSES:
        spans = _spans(view.text, pattern, accept)
        if not spans:
            continue
        pieces, kept_from = [], 0
        for start, end in spans:
            original_start, original_end = view.span(start, end)
            pieces += [text[kept_from:original_start], TAGS[kind]]
            kept_from = original_end
        text = "".join(pieces) + text[kept_from:]
        counts[kind] += len(spans)
        view = _view(text, underscore_is_space)  # built again only after a replacement
    return text


def redact(text: str) -> tuple[str, Counter]:
    """`text` with each fødselsnummer, e-mail address and phone number replaced by its tag
    (`[fødselsnummer]`, `[e-post]`, `[telefon]`), and how many of each kind were replaced.

    Kinds not found are absent from the counter (a Counter reads them as 0).
    """
    counts: Counter = Counter()
    if not _CANDIDATE.search(text):
        return text, counts
    text = _redact_pass(text, False, counts)
    if "_" in text:
        text = _redact_pass(text, True, counts)
    if not text.isascii():
        # Mojibake ("41â€“23â€“45â€“67": UTF-8 dashes read as cp1252) hides a number that normalise,
        # repairing the encoding, would show: then the text is kept in its repaired form, redacted.
        repaired = ftfy.fix_encoding(text)
        if repaired != text:
            found: Counter = Counter()
            repaired = _redact_pass(repaired, False, found)
            if "_" in repaired:
                repaired = _redact_pass(repaired, True, found)
            if found:
                text = repaired
                counts.update(found)
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


def redact_name(name: str) -> tuple[str, Counter]:
    """A file name or path as shown in outputs, redacted folder by folder; the extension is kept
    apart, so that "kari@kommune.no.csv" becomes "[e-post].csv", not "[e-post]"."""
    counts: Counter = Counter()
    parts = name.split("/")
    for position, part in enumerate(parts):
        suffix = PurePosixPath(part).suffix if position == len(parts) - 1 else ""
        stem = part[: len(part) - len(suffix)] if suffix else part
        parts[position], found = redact(stem)
        parts[position] += suffix
        counts.update(found)
    return "/".join(parts), counts


class Redactions:
    """Counts per field and kind, for a run's `redactions` record."""

    def __init__(self) -> None:
        self.by_field: dict[str, Counter] = {}
        self._sharing: dict[tuple[str, str], set[str]] = {}  # (scope, redacted id) -> the values redacted to it
        # (scope, redacted id) -> each value's place in the sorted values: sorted once, not once per card
        # (1M generated card ids, 800,800 of them read as phone numbers: quadratic, over 8 minutes and counting).
        self._rank: dict[tuple[str, str], dict[str, int]] = {}

    def text(self, field: str, value: str) -> str:
        """`value` redacted, its replacements counted under `field`."""
        clean, found = redact(value)
        if found:
            self.by_field.setdefault(field, Counter()).update(found)
        return clean

    def name(self, field: str, value: str) -> str:
        """`redact_name(value)`, counted under `field`."""
        clean, found = redact_name(value)
        if found:
            self.by_field.setdefault(field, Counter()).update(found)
        return clean

    def ident(self, scope: str, field: str, value: str) -> str:
        """`text(field, value)` for an id whose distinct values must stay distinct within `scope`
        (workshops, groups): see `apart`."""
        clean = self.text(field, value)
        if clean != value:
            values = self._sharing.setdefault((scope, clean), set())
            if value not in values:
                values.add(value)
                self._rank.pop((scope, clean), None)
        return clean

    def apart(self, scope: str, value: str, clean: str) -> str:
        """The id for `value`, redacted by `ident` to `clean`: `clean` itself unless other values of
        the scope were redacted to it too; then `clean`, `clean-2`, `clean-3` ... in the sorted order of
        the values, so that the numbering does not depend on the order they came in."""
        sharing = self._sharing.get((scope, clean), ())
        if len(sharing) < 2:
            return clean
        rank = self._rank.get((scope, clean))
        if rank is None:
            rank = self._rank[(scope, clean)] = {v: k for k, v in enumerate(sorted(sharing))}
        position = rank[value]
        return clean if position == 0 else f"{clean}-{position + 1}"

    def per_kind(self) -> dict[str, int]:
        total: Counter = Counter()
        for found in self.by_field.values():
            total.update(found)
        return {kind: total[kind] for kind in PII_KINDS}

    def per_field(self) -> dict[str, dict[str, int]]:
        """Fields with at least one replacement, sorted, each with a count per kind."""
        return {field: {kind: found[kind] for kind in PII_KINDS} for field, found in sorted(self.by_field.items())}
