import pytest

from asr.text import normalize_text, spell_number, spell_ordinal, spell_year

CASES = [
    ("Hello, World!", "hello world"),
    ("  many   spaces\tand\nlines ", "many spaces and lines"),
    ("I have 42 apples", "i have forty two apples"),
    ("3.5 pears", "three point five pears"),
    ("1,000,000 people", "one million people"),
    ("In 1984 we met", "in nineteen eighty four we met"),
    ("the year 2005", "the year two thousand five"),
    ("1900", "nineteen hundred"),
    ("the 21st of May", "the twenty first of may"),
    ("2nd 3rd 4th", "second third fourth"),
    ("It costs $5.50", "it costs five dollars fifty cents"),
    ("$1", "one dollar"),
    ("100% sure", "one hundred percent sure"),
    ("salt & pepper", "salt and pepper"),
    ("don't 'quote' me", "don't quote me"),
    ("It\u2019s fine", "it's fine"),
    ("caf\u00e9 na\u00efve", "cafe naive"),
    ("well\u2014maybe", "well maybe"),
    ("x-ray/USB_port", "x ray usb port"),
    ("", ""),
    ("?!.,;:", ""),
]


@pytest.mark.parametrize("written,spoken", CASES)
def test_normalize_table(written, spoken):
    assert normalize_text(written) == spoken


def test_normalize_is_idempotent():
    for written, _ in CASES:
        once = normalize_text(written)
        assert normalize_text(once) == once


@pytest.mark.parametrize("n,words", [(0, "zero"), (13, "thirteen"), (70, "seventy"), (101, "one hundred one"),
                                     (999, "nine hundred ninety nine"), (1203, "one thousand two hundred three"),
                                     (2_000_000_000, "two billion")])
def test_spell_number(n, words):
    assert spell_number(n) == words


def test_spell_ordinal_and_year():
    assert spell_ordinal(12) == "twelfth"
    assert spell_ordinal(40) == "fortieth"
    assert spell_year(1066) == "ten sixty six"
    assert spell_year(1905) == "nineteen oh five"
