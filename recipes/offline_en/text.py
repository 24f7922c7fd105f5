"""Stage 1: English sentences from Debian text packages, in spoken form, split with no overlap.

Sources (each optional; a missing package is skipped with a warning):
  wordnet-base   glosses and quoted examples from /usr/share/wordnet/data.{noun,verb,adj,adv}
  fortunes       /usr/share/games/fortunes/* (not the offensive set)
  jargon-text    /usr/share/doc/jargon-text/jargon.txt.gz
  bible-kjv-text verses through the `bible` command
Each sentence goes through `asr.text.normalize_text` (numbers and symbols spelled out, see there),
keeps 3-20 words of which at least 90% are in /usr/share/dict/words, and is de-duplicated.
"""

from __future__ import annotations

import gzip
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

from asr.text import normalize_text

WORDNET = Path("/usr/share/wordnet")
FORTUNES = Path("/usr/share/games/fortunes")
JARGON = Path("/usr/share/doc/jargon-text/jargon.txt.gz")
DICT = Path("/usr/share/dict/words")
MIN_WORDS, MAX_WORDS = 3, 20

_SENT_SPLIT = re.compile(r"(?<=[.!?;])\s+")


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


SOURCES = {"wordnet": wordnet_sentences, "fortunes": fortune_sentences,
           "jargon": jargon_sentences, "bible": bible_sentences}


def collect_sentences(seed: int = 0, sources: set[str] | None = None) -> list[str]:
    vocab = {w.strip().lower() for w in DICT.open(encoding="utf-8", errors="ignore")} if DICT.exists() else None
    seen: set[str] = set()
    out: list[str] = []
    for name, source in SOURCES.items():
        if sources is not None and name not in sources:
            continue
        count = 0
        for raw in source():
            words = normalize_text(raw).split()
            if not MIN_WORDS <= len(words) <= MAX_WORDS:
                continue
            if vocab is not None and sum(w in vocab for w in words) < 0.9 * len(words):
                continue
            sent = " ".join(words)
            if sent not in seen:
                seen.add(sent)
                out.append(sent)
                count += 1
        print(f"text: {name}: {count} sentences", file=sys.stderr)
    random.Random(seed).shuffle(out)
    return out


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
