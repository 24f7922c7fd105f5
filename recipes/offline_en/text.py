"""Stage 1: English sentences from Debian text packages, in spoken form, split with no overlap.

Sources (each optional; a missing package is skipped with a warning):
  wordnet-base   glosses and quoted examples from /usr/share/wordnet/data.{noun,verb,adj,adv}
  fortunes       /usr/share/games/fortunes/* (not the offensive set)
  jargon-text    /usr/share/doc/jargon-text/jargon.txt.gz
  bible-kjv-text verses through the `bible` command
Each sentence goes through `asr.text.normalize_text` (numbers and symbols spelled out, see there),
keeps 3-20 words of which at least 90% are in /usr/share/dict/words, and is de-duplicated.

Out-of-domain text, never trained on (`ood_sentences`): the literary quotations of the GNU
Collaborative International Dictionary of English (Debian `dict-gcide`, from Shakespeare, Milton,
Dryden, ...), for checking the decoder on sentences unlike the LM's text, as a user's are.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from asr.text import normalize_text

WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")
JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
DICT = Path("/usr/share/dict/words")
GCIDE = Path("/usr/share/dictd/gcide.dict.dz")
OOD_OVERLAP = 6     # an out-of-domain sentence shares no word 6-gram with the training or LM text
MIN_WORDS, MAX_WORDS = 3, 20

_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+")
_AUTHOR = re.compile(r"\s*--\s*(?=[A-Z])")


def wordnet_sentences():
    for part in ("noun", "verb", "adj", "adv"):
        path = WORDNET / f"data.{part}"
        if not path.exists():
            continue
        for line in path.open(encoding="latin-1"):
            if line.startswith(" ") or "|" not in line:
                continue
            gloss = line.split("|", 1)[1]
            yield from re.findall(r'"([^"]+)"', gloss)
            yield re.sub(r'"[^"]*"', "", gloss).split(";")[0]


def fortune_sentences():
    if not FORTUNES.exists():
        return
    for path in sorted(FORTUNES.iterdir()):
        if path.suffix or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        for block in text.split("\n%\n"):
            yield from _SENT_SPLIT.split(" ".join(block.split()))


def jargon_sentences():
    if not JARGON.exists():
        return
    with gzip.open(JARGON, "rt", encoding="utf-8", errors="ignore") as f:
        for para in f.read().split("\n\n"):
            if any(c in para for c in "│├┼─"):
                continue
            yield from _SENT_SPLIT.split(" ".join(para.split()))


def bible_sentences():
    if not shutil.which("bible"):
        return
    books = "Gen Exo Psa Pro Ecc Isa Mat Mar Luk Joh Act Rom".split()
    for book in books:
        out = subprocess.run(["bible", f"{book}1:1-150:99"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            verse = line.split(" ", 1)[1] if " " in line else ""
            yield from _SENT_SPLIT.split(verse)


def gcide_quotations():
    """The quotations in GCIDE's entries: lines indented 12 or more spaces, up to the author mark
    (``--Milton.``) or the end of the block."""
    if not GCIDE.exists():
        return
    lines: list[str] = []
    with gzip.open(GCIDE, "rt", encoding="utf-8", errors="ignore") as f:
        for line in f:
            quoted = line.startswith(" " * 12) and line.strip()
            if quoted:
                text, *author = _AUTHOR.split(line.strip(), maxsplit=1)
                lines.append(text)
            if lines and (not quoted or author):
                yield from _SENT_SPLIT.split(" ".join(lines))
                lines = []


SOURCES = {"wordnet": wordnet_sentences, "fortunes": fortune_sentences,
           "jargon": jargon_sentences, "bible": bible_sentences}


def _vocab() -> set[str] | None:
    return {w.strip().lower() for w in DICT.open(encoding="utf-8", errors="ignore")} if DICT.exists() else None


def _spoken(raw: str, vocab: set[str] | None) -> str | None:
    """`raw` in spoken form, or None when it has too few or too many words or too many outside `vocab`."""
    words = normalize_text(raw).split()
    if not MIN_WORDS <= len(words) <= MAX_WORDS:
        return None
    if vocab is not None and sum(w in vocab for w in words) < 0.9 * len(words):
        return None
    return " ".join(words)


def collect_sentences(seed: int = 0, sources: set[str] | None = None) -> list[str]:
    vocab = _vocab()
    seen: set[str] = set()
    out: list[str] = []
    for name, source in SOURCES.items():
        if sources is not None and name not in sources:
            continue
        count = 0
        for raw in source():
            sent = _spoken(raw, vocab)
            if sent is not None and sent not in seen:
                seen.add(sent)
                out.append(sent)
                count += 1
        print(f"text: {name}: {count} sentences", file=sys.stderr)
    random.Random(seed).shuffle(out)
    return out


def _grams(sent: str, k: int = OOD_OVERLAP) -> list[tuple[str, ...]]:
    w = sent.split()
    return [tuple(w[i:i + k]) for i in range(len(w) - k + 1)]


def ood_sentences(known: Iterable[str], n: int, seed: int = 0) -> list[str]:
    """`n` out-of-domain sentences (GCIDE's quotations, filtered as the training text is), none sharing
    a word `OOD_OVERLAP`-gram with `known` (the training, LM, dev and test text: this drops the
    Bible verses and the quotations WordNet also gives) nor equal to one of them (the shorter ones).
    Empty, with a message, without dict-gcide."""
    if not GCIDE.exists():
        print(f"text: out-of-domain: skipped, missing {GCIDE} (apt-get install dict-gcide)", file=sys.stderr)
        return []
    known = set(known)
    grams = {g for s in known for g in _grams(s)}
    vocab, seen, out = _vocab(), set(), []
    for raw in gcide_quotations():
        sent = _spoken(raw, vocab)
        if sent is None or sent in known or sent in seen:
            continue
        seen.add(sent)
        if grams.isdisjoint(_grams(sent)):
            out.append(sent)
    random.Random(seed).shuffle(out)
    return out[:n]


def short_spans(sents: list[str], n: int, rng: random.Random) -> list[str]:
    """`n` spans of 1-3 consecutive words (half of them one word) from `sents`."""
    sents = [s.split() for s in sents if s.strip()]
    spans = []
    for _ in range(n if sents else 0):
        words = rng.choice(sents)
        k = min(rng.choice((1, 1, 1, 1, 2, 2, 2, 3, 3, 3)), len(words))
        i = rng.randrange(len(words) - k + 1)
        spans.append(" ".join(words[i:i + k]))
    return spans


def split_sentences(sents: list[str], n_dev: int, n_test: int) -> dict[str, list[str]]:
    """Disjoint splits: test and dev sentences never occur in train."""
    return {"test": sents[:n_test], "dev": sents[n_test:n_test + n_dev], "train": sents[n_test + n_dev:]}
