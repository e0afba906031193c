"""Transcript normalisation: upper-case words, numbers spelled out, no punctuation.

Why: ASR targets and the sentences fed to the synthesisers must be the same token sequence. If a
synthesiser were allowed to read "1990" its own way, the audio and the reference could disagree, so
the corpus speaks the normalised text and scores against it. The rules are deliberately small and
deterministic: digits become words (years read as years, ordinals as ordinals), hyphens and
slashes split words, apostrophes survive only inside a word (DON'T, O'CLOCK), all other
punctuation goes, whitespace collapses.
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE TEN ELEVEN TWELVE THIRTEEN FOURTEEN "
    "FIFTEEN SIXTEEN SEVENTEEN EIGHTEEN NINETEEN"
).split()
_TENS = "_ _ TWENTY THIRTY FORTY FIFTY SIXTY SEVENTY EIGHTY NINETY".split()
_SCALES = ((10**12, "TRILLION"), (10**9, "BILLION"), (10**6, "MILLION"), (10**3, "THOUSAND"))
_ORDINAL_IRREGULAR = {
    "ONE": "FIRST", "TWO": "SECOND", "THREE": "THIRD", "FIVE": "FIFTH", "EIGHT": "EIGHTH",
    "NINE": "NINTH", "TWELVE": "TWELFTH",
}


def spell_number(n: int) -> str:
    """Spell a non-negative integer as cardinal words, e.g. 1205 -> ONE THOUSAND TWO HUNDRED FIVE."""
    if n < 0:
        return "MINUS " + spell_number(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " HUNDRED" + ("" if rest == 0 else " " + spell_number(rest))
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return spell_number(high) + " " + name + ("" if rest == 0 else " " + spell_number(rest))
    raise AssertionError("unreachable")


def spell_ordinal(n: int) -> str:
    """Spell an ordinal, e.g. 21 -> TWENTY FIRST, 40 -> FORTIETH."""
    words = spell_number(n).split()
    last = words[-1]
    if last in _ORDINAL_IRREGULAR:
        words[-1] = _ORDINAL_IRREGULAR[last]
    elif last.endswith("Y"):
        words[-1] = last[:-1] + "IETH"
    else:
        words[-1] = last + "TH"
    return " ".join(words)


def spell_year(n: int) -> str:
    """Read a year the way English speakers do: 1990 -> NINETEEN NINETY, 1805 -> EIGHTEEN OH FIVE."""
    if 2000 <= n <= 2009 or n % 1000 == 0 or not 1100 <= n <= 2099:
        return spell_number(n)
    high, low = divmod(n, 100)
    if low == 0:
        return spell_number(high) + " HUNDRED"
    if low < 10:
        return spell_number(high) + " OH " + spell_number(low)
    return spell_number(high) + " " + spell_number(low)


def _spell_digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_CURRENCY_RE = re.compile(r"\$(\d+)(?:\.(\d\d))?\b")
_PERCENT_RE = re.compile(r"(\d+)\s?%")
_THOUSANDS_RE = re.compile(r"\b(\d{1,3}(?:,\d{3})+)\b")
_DECADE_RE = re.compile(r"\b(1[1-9]\d0)'?s\b")
_INT_RE = re.compile(r"\d+")


def _spell_int_token(m: re.Match) -> str:
    s = m.group(0)
    n = int(s)
    if len(s) > 1 and s.startswith("0"):
        return f" {_spell_digits(s)} "
    if len(s) == 4 and 1100 <= n <= 2099:
        return f" {spell_year(n)} "
    return f" {spell_number(n)} "


def _decade(m: re.Match) -> str:
    words = spell_year(int(m.group(1))).split()
    last = words[-1]
    words[-1] = last[:-1] + "IES" if last.endswith("Y") else last + "S"
    return " " + " ".join(words) + " "


def _currency(m: re.Match) -> str:
    dollars = int(m.group(1))
    out = f" {spell_number(dollars)} DOLLAR{'' if dollars == 1 else 'S'}"
    if m.group(2) and int(m.group(2)):
        cents = int(m.group(2))
        out += f" {spell_number(cents)} CENT{'' if cents == 1 else 'S'}"
    return out + " "


def expand_numbers(text: str) -> str:
    """Replace digit sequences (with $, %, ordinal and decade forms) by upper-case words."""
    text = _THOUSANDS_RE.sub(lambda m: m.group(1).replace(",", ""), text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RE.sub(lambda m: f" {spell_number(int(m.group(1)))} PERCENT ", text)
    text = _ORDINAL_RE.sub(lambda m: f" {spell_ordinal(int(m.group(1)))} ", text)
    text = _DECADE_RE.sub(_decade, text)
    text = _DECIMAL_RE.sub(
        lambda m: f" {spell_number(int(m.group(1)))} POINT {_spell_digits(m.group(2))} ", text
    )
    return _INT_RE.sub(_spell_int_token, text)


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'"})
_SPLITTERS = re.compile(r"[-/\u2013\u2014_+]")
_NOT_WORD = re.compile(r"[^A-Z' ]+")
_EDGE_APOSTROPHE = re.compile(r"(?<![A-Z])'|'(?![A-Z])")


def normalize(text: str) -> str:
    """Normalise one transcript: upper case, spelled numbers, word-internal apostrophes only."""
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = expand_numbers(text)
    text = text.replace("&", " AND ")
    text = _SPLITTERS.sub(" ", text)
    text = text.upper()
    text = _NOT_WORD.sub(" ", text)
    text = _EDGE_APOSTROPHE.sub(" ", text)
    return " ".join(text.split())
