"""English text normalisation: the spoken form used for training targets and for scoring WER.

`normalize_text` maps written English to lower-case words over the alphabet ``a-z'`` and single
spaces. The rules, in order:

1. Unicode is folded to ASCII (accents dropped: "café" -> "cafe"); curly quotes become straight.
2. Symbols that are read aloud are spelled: ``&`` -> "and", ``%`` -> "percent", ``+`` -> "plus",
   ``@`` -> "at", ``$5`` -> "five dollars".
3. Numbers are spelled out: "42" -> "forty two", "1,000" -> "one thousand", "3.5" -> "three point
   five", ordinals "21st" -> "twenty first"; four-digit numbers 1100-1999 and 2010-2099 that stand
   alone are read as years ("1984" -> "nineteen eighty four").
4. Hyphens, slashes and underscores separate words; every other character that is not a letter or
   an apostrophe inside a word is dropped.
5. Whitespace is collapsed.

The same function scores hypotheses and references, so the model is never penalised for spelling
"5" as "five".
"""

from __future__ import annotations

import re
import unicodedata

ALPHABET = "abcdefghijklmnopqrstuvwxyz'"

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_QUOTES = {"\u2018": "'", "\u2019": "'", "\u201b": "'", "`": "'", "\u00b4": "'"}


def spell_number(n: int) -> str:
    """Spell a non-negative integer in words: 1203 -> "one thousand two hundred three"."""
    if n < 0:
        return "minus " + spell_number(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + spell_number(rest))
    for value, name in _SCALES:
        if n >= value:
            high, rest = divmod(n, value)
            return spell_number(high) + " " + name + ("" if rest == 0 else " " + spell_number(rest))
    raise AssertionError("unreachable")


def spell_year(n: int) -> str:
    """Read a year the way people say it: 1984 -> "nineteen eighty four", 2005 -> "two thousand five"."""
    high, low = divmod(n, 100)
    if 2000 <= n <= 2009 or low == 0 and n % 1000 == 0:
        return spell_number(n)
    if low == 0:
        return spell_number(high) + " hundred"
    return spell_number(high) + (" oh " + _ONES[low] if low < 10 else " " + spell_number(low))


def spell_ordinal(n: int) -> str:
    """21 -> "twenty first"."""
    words = spell_number(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _spell_digits(match: re.Match) -> str:
    text = match.group(0)
    ordinal = re.fullmatch(r"(\d+)(st|nd|rd|th)", text)
    if ordinal:
        return " " + spell_ordinal(int(ordinal.group(1))) + " "
    whole, _, frac = text.replace(",", "").partition(".")
    if not frac and len(whole) == 4 and (1100 <= int(whole) <= 1999 or 2010 <= int(whole) <= 2099):
        return " " + spell_year(int(whole)) + " "
    words = spell_number(int(whole)) if len(whole) <= 15 else " ".join(_ONES[int(d)] for d in whole)
    if frac:
        words += " point " + " ".join(_ONES[int(d)] for d in frac)
    return " " + words + " "


def _spell_money(match: re.Match) -> str:
    amount = match.group(1).replace(",", "")
    whole, _, cents = amount.partition(".")
    words = spell_number(int(whole)) + (" dollar" if int(whole) == 1 else " dollars")
    if cents and int(cents):
        words += " " + spell_number(int(cents[:2].ljust(2, "0"))) + " cents"
    return " " + words + " "


def normalize_text(text: str) -> str:
    """Written English -> spoken-form words over ``a-z'`` (see the module docstring)."""
    for quote, plain in _QUOTES.items():
        text = text.replace(quote, plain)
    text = re.sub("[\u2010-\u2015]", " ", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", _spell_money, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"\d+(?:st|nd|rd|th)\b|\d[\d,]*\d(?:\.\d+)?|\d(?:\.\d+)?", _spell_digits, text)
    text = re.sub(r"[-/_]", " ", text)
    text = re.sub(r"[^a-z' ]", " ", text)
    # Apostrophes survive only inside words ("don't"), not as quotes ('hello').
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())
