"""Finding and masking personal data in text (German and English).

Every pattern is checked beyond its shape where the format allows it: IBANs by their
mod-97 checksum, card numbers by the Luhn digit, German ID and passport numbers by their
7-3-1 check digit or a nearby keyword, dates only as dates of birth when a birth keyword
precedes them. Random digit runs are therefore left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

EMAIL = "email"
PHONE = "phone"
IBAN = "iban"
DATE_OF_BIRTH = "date_of_birth"
ID_NUMBER = "id_number"
CARD_NUMBER = "card_number"
# Earlier kinds win where matches overlap (an IBAN's digits are not also a phone number).
KINDS = (EMAIL, IBAN, CARD_NUMBER, ID_NUMBER, DATE_OF_BIRTH, PHONE)


@dataclass(frozen=True)
class PiiFinding:
    """One match: its kind and where it is in the original text (end exclusive)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class MaskedText:
    text: str
    findings: list[PiiFinding]

    def counts(self) -> dict[str, int]:
        """Number of findings per kind."""
        return dict(Counter(finding.kind for finding in self.findings))


# --- e-mail ---------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])"
)


def find_emails(text: str) -> Iterator[PiiFinding]:
    for match in _EMAIL.finditer(text):
        yield PiiFinding(EMAIL, match.start(), match.end())


# --- IBAN -----------------------------------------------------------------------------

# Lengths per country (ISO 13616 registry); others are accepted at 15-34 characters.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "RS": 22, "SE": 24, "SI": 19,
    "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})(\d{2})")


def iban_is_valid(compact: str) -> bool:
    """ISO 7064 mod-97: move the first four characters to the end, letters to 10..35."""
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", compact):
        return False
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    digits = "".join(str(int(char, 36)) for char in compact[4:] + compact[:4])
    return int(digits) % 97 == 1


def _iban_at(text: str, start: int) -> int | None:
    """End of a valid IBAN starting at `start` (spaces between groups allowed), or None."""
    compact = ""
    position = start
    ends: list[tuple[str, int]] = []
    while position < len(text) and len(compact) < 34:
        char = text[position]
        if char.isascii() and char.isalnum():
            compact += char.upper() if char.isalpha() else char
            position += 1
            ends.append((compact, position))
        elif char == " " and position + 1 < len(text) and text[position + 1].isalnum():
            position += 1
        else:
            break
    # Try the longest candidate first; a valid one must end at a word boundary.
    for candidate, end in reversed(ends):
        at_boundary = end == len(text) or not text[end].isalnum()
        if at_boundary and iban_is_valid(candidate):
            return end
    return None


def find_ibans(text: str) -> Iterator[PiiFinding]:
    position = 0
    while (match := _IBAN_START.search(text, position)) is not None:
        end = _iban_at(text, match.start())
        if end is None:
            position = match.start() + 1
            continue
        yield PiiFinding(IBAN, match.start(), end)
        position = end


# --- payment cards --------------------------------------------------------------------

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# Issuer prefixes: Visa, Mastercard, Amex, Discover, JCB, Diners, Maestro, UnionPay.
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5)|35|3[068]|5[06-8]|6[2-9]")


def luhn_is_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def find_card_numbers(text: str) -> Iterator[PiiFinding]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_is_valid(digits):
            yield PiiFinding(CARD_NUMBER, match.start(), match.end())


# --- ID numbers -----------------------------------------------------------------------

# US social security number: area 001-899 except 666, group 01-99, serial 0001-9999.
_SSN = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])")
_SSN_KEYWORD = re.compile(
    r"\b(?:SSN|social security(?: number| no\.?)?)[:#\s]*((?!000|666|9\d\d)\d{3} ?(?!00)\d{2} ?"
    r"(?!0000)\d{4})\b",
    re.IGNORECASE,
)
# German ID card and passport numbers (since 2010): 9 characters from this alphabet,
# optionally followed by the check digit.
_GERMAN_DOCUMENT = re.compile(
    r"(?<![A-Za-z0-9])([CFGHJKLMNPRTVWXYZ][CFGHJKLMNPRTVWXYZ0-9]{8})(\d?)(?![A-Za-z0-9])"
)
_DOCUMENT_KEYWORD = re.compile(
    r"(?:ausweis|personalausweis|reisepass|passnummer|pass-nr|pass nr|passport|"
    r"id card|id number|id no|identity card|document no|dokumentennummer)",
    re.IGNORECASE,
)
_KEYWORD_WINDOW = 40


def document_check_digit(body: str) -> int:
    """ICAO 9303 check digit: weights 7, 3, 1; digits as they are, letters A=10 .. Z=35."""
    return sum(int(char, 36) * (7, 3, 1)[index % 3] for index, char in enumerate(body)) % 10


def _keyword_before(text: str, start: int) -> bool:
    window = text[max(0, start - _KEYWORD_WINDOW) : start]
    return _DOCUMENT_KEYWORD.search(window) is not None


def find_id_numbers(text: str) -> Iterator[PiiFinding]:
    for match in _SSN.finditer(text):
        yield PiiFinding(ID_NUMBER, match.start(), match.end())
    for match in _SSN_KEYWORD.finditer(text):
        yield PiiFinding(ID_NUMBER, match.start(1), match.end(1))
    for match in _GERMAN_DOCUMENT.finditer(text):
        body, check = match.group(1), match.group(2)
        if sum(char.isdigit() for char in body) < 4:
            continue
        checked = bool(check) and document_check_digit(body) == int(check)
        if checked or _keyword_before(text, match.start()):
            yield PiiFinding(ID_NUMBER, match.start(), match.end())


# --- dates of birth -------------------------------------------------------------------

_MONTHS = {
    "januar": 1, "jänner": 1, "january": 1, "jan": 1, "februar": 2, "february": 2, "feb": 2,
    "märz": 3, "maerz": 3, "march": 3, "mar": 3, "mär": 3, "april": 4, "apr": 4, "mai": 5,
    "may": 5, "juni": 6, "june": 6, "jun": 6, "juli": 7, "july": 7, "jul": 7, "august": 8,
    "aug": 8, "september": 9, "sept": 9, "sep": 9, "oktober": 10, "october": 10, "okt": 10,
    "oct": 10, "november": 11, "nov": 11, "dezember": 12, "december": 12, "dez": 12, "dec": 12,
}  # fmt: skip
_MONTH_NAME = "|".join(sorted(_MONTHS, key=len, reverse=True))
_NUMERIC_DMY = r"(?P<d1>\d{1,2})[./](?P<m1>\d{1,2})[./](?P<y1>\d{4}|\d{2})"
_ISO = r"(?P<y2>\d{4})-(?P<m2>\d{2})-(?P<d2>\d{2})"
_DAY_MONTH_NAME = rf"(?P<d3>\d{{1,2}})\.?\s+(?P<m3>{_MONTH_NAME})\.?\s+(?P<y3>\d{{4}})"
_MONTH_NAME_DAY = (
    rf"(?P<m4>{_MONTH_NAME})\.?\s+(?P<d4>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y4>\d{{4}})"
)
_DATE = re.compile(
    rf"(?<![\w.])(?:{_NUMERIC_DMY}|{_ISO}|{_DAY_MONTH_NAME}|{_MONTH_NAME_DAY})(?![\w])",
    re.IGNORECASE,
)
_BIRTH_KEYWORD = re.compile(
    r"(?:\bborn\b|\bb\.|\bdob\b|\bd\.o\.b\.|date of birth|birth ?date|\bbirthday\b|"
    r"\bgeboren\b|\bgeb\.|geburtsdatum|geburtstag|\bgeb\b)",
    re.IGNORECASE,
)
_BIRTH_WINDOW = 30


def _day_exists(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _is_calendar_date(match: re.Match[str]) -> bool:
    """Whether a date-shaped match names a day that exists (no 31.02.)."""
    groups = match.groupdict()
    for suffix in "1234":
        day, month, year = groups[f"d{suffix}"], groups[f"m{suffix}"], groups[f"y{suffix}"]
        if day is None:
            continue
        month_number = int(month) if month.isdigit() else _MONTHS[month.lower()]
        # A two-digit year names no century; it is a date if it exists in either
        # (29.02.00 is 29 February 2000, although 1900 was no leap year).
        years = [int(year)] if len(year) == 4 else [2000 + int(year), 1900 + int(year)]
        return any(_day_exists(number, month_number, int(day)) for number in years)
    return False


def find_dates_of_birth(text: str) -> Iterator[PiiFinding]:
    for match in _DATE.finditer(text):
        if not _is_calendar_date(match):
            continue
        window = text[max(0, match.start() - _BIRTH_WINDOW) : match.start()]
        # The keyword belongs to this date only if no other date sits in between.
        last_keyword = None
        for keyword in _BIRTH_KEYWORD.finditer(window):
            last_keyword = keyword
        if last_keyword is None or _DATE.search(window[last_keyword.end() :]):
            continue
        yield PiiFinding(DATE_OF_BIRTH, match.start(), match.end())


# --- phone numbers --------------------------------------------------------------------

# A number glued to a preceding digit group is part of something else (an account, a code).
_NOT_AFTER_DIGITS = r"(?<!\d )(?<!\d-)(?<!\d/)"
_PHONE_INTERNATIONAL = re.compile(
    _NOT_AFTER_DIGITS
    + r"(?<![\w+])(?:\+|00)[1-9]\d{0,2}(?:[ ./-]?\(0\))?(?:[ ./-]?\(?\d{1,5}\)?){2,6}(?![\w])"
)
# National numbers start with a 0 and an area code; 00 is the international prefix.
_PHONE_NATIONAL = re.compile(
    _NOT_AFTER_DIGITS
    + r"(?<![\w+(])(?:\(0[1-9]\d{0,4}\)|0[1-9]\d{0,4})(?:[ /-]?\d{2,8}){1,4}(?![\w])"
)
_PHONE_NANP = re.compile(r"(?<![\w(])(?:\(\d{3}\)\s?|\d{3}[-.])\d{3}[-.]\d{4}(?![\w])")


def find_phone_numbers(text: str) -> Iterator[PiiFinding]:
    for pattern, min_digits in (
        (_PHONE_INTERNATIONAL, 8),
        (_PHONE_NATIONAL, 9),
        (_PHONE_NANP, 10),
    ):
        for match in pattern.finditer(text):
            digits = sum(char.isdigit() for char in match.group())
            if min_digits <= digits <= 15:
                yield PiiFinding(PHONE, match.start(), match.end())


# --- masking --------------------------------------------------------------------------

FINDERS: dict[str, Callable[[str], Iterator[PiiFinding]]] = {
    EMAIL: find_emails,
    IBAN: find_ibans,
    CARD_NUMBER: find_card_numbers,
    ID_NUMBER: find_id_numbers,
    DATE_OF_BIRTH: find_dates_of_birth,
    PHONE: find_phone_numbers,
}


def find_pii(text: str) -> list[PiiFinding]:
    """Non-overlapping findings in text order; on overlap the kind earlier in KINDS wins."""
    accepted: list[PiiFinding] = []
    for kind in KINDS:
        for finding in FINDERS[kind](text):
            if all(finding.end <= other.start or finding.start >= other.end for other in accepted):
                accepted.append(finding)
    return sorted(accepted, key=lambda finding: finding.start)


def placeholder(kind: str) -> str:
    return f"[{kind.upper()}]"


def mask_pii(text: str) -> MaskedText:
    """The text with every finding replaced by a placeholder such as `[IBAN]`."""
    findings = find_pii(text)
    pieces = []
    position = 0
    for finding in findings:
        pieces.append(text[position : finding.start])
        pieces.append(placeholder(finding.kind))
        position = finding.end
    pieces.append(text[position:])
    return MaskedText("".join(pieces), findings)
