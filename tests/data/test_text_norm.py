"""Transcript normalisation: upper case, spelled numbers, no punctuation, word-internal apostrophes."""

import pytest

from espnet_p4q.data.text_norm import normalize, spell_number, spell_ordinal, spell_year


@pytest.mark.parametrize("n, words", [
    (0, "ZERO"), (7, "SEVEN"), (13, "THIRTEEN"), (40, "FORTY"), (99, "NINETY NINE"),
    (100, "ONE HUNDRED"), (115, "ONE HUNDRED FIFTEEN"), (1000, "ONE THOUSAND"),
    (1205, "ONE THOUSAND TWO HUNDRED FIVE"), (2000000, "TWO MILLION"),
    (3000000017, "THREE BILLION SEVENTEEN"),
])
def test_spell_number(n, words):
    assert spell_number(n) == words


@pytest.mark.parametrize("n, words", [
    (1, "FIRST"), (2, "SECOND"), (3, "THIRD"), (5, "FIFTH"), (12, "TWELFTH"), (20, "TWENTIETH"),
    (21, "TWENTY FIRST"), (100, "ONE HUNDREDTH"),
])
def test_spell_ordinal(n, words):
    assert spell_ordinal(n) == words


@pytest.mark.parametrize("n, words", [
    (1990, "NINETEEN NINETY"), (1805, "EIGHTEEN OH FIVE"), (1900, "NINETEEN HUNDRED"),
    (2005, "TWO THOUSAND FIVE"), (2024, "TWENTY TWENTY FOUR"), (1000, "ONE THOUSAND"),
])
def test_spell_year(n, words):
    assert spell_year(n) == words


@pytest.mark.parametrize("raw, norm", [
    ("The cat sat on the mat.", "THE CAT SAT ON THE MAT"),
    ('He said: "don\'t go!"', "HE SAID DON'T GO"),
    ("  lots   of\tspace \n", "LOTS OF SPACE"),
    ("the boys' toys and 'quoted' words", "THE BOYS TOYS AND QUOTED WORDS"),
    ("It\u2019s o'clock", "IT'S O'CLOCK"),
    ("self-love / hate", "SELF LOVE HATE"),
    ("rock & roll", "ROCK AND ROLL"),
    ("born in 1990, died 2005", "BORN IN NINETEEN NINETY DIED TWO THOUSAND FIVE"),
    ("the 21st century", "THE TWENTY FIRST CENTURY"),
    ("in the 1960s", "IN THE NINETEEN SIXTIES"),
    ("it cost $1,200 or 15%", "IT COST ONE THOUSAND TWO HUNDRED DOLLARS OR FIFTEEN PERCENT"),
    ("$1.50", "ONE DOLLAR FIFTY CENTS"),
    ("pi is 3.14", "PI IS THREE POINT ONE FOUR"),
    ("agent 007", "AGENT ZERO ZERO SEVEN"),
    ("6 blows", "SIX BLOWS"),
    ("café", "CAFE"),
    ("?!.,;:", ""),
])
def test_normalize(raw, norm):
    assert normalize(raw) == norm


def test_normalize_is_idempotent():
    s = normalize("He'd paid $30 for 2 tickets -- in 1999!")
    assert normalize(s) == s == "HE'D PAID THIRTY DOLLARS FOR TWO TICKETS IN NINETEEN NINETY NINE"
