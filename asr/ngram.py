"""Word n-gram language models (ARPA files) for lexicon-constrained beam search.

`build_ngram` estimates an n-gram over words from text with PyPI ``arpabo`` (pure Python) and
writes an ARPA file in the layout KenLM reads (tab-separated; plain or ``.gz``). KenLM, inside
flashlight-text's lexicon decoder (`asr.decode.LexiconSearch`), then scores words during the
search, and the LM's unigrams are the decoder's lexicon: each word is spelled with the acoustic
model's tokenizer (`lexicon`), so the search only emits words the LM knows. Against the token-level LSTM
(`asr.lm`), this fixes misspelt words and runs several times faster.
"""

from __future__ import annotations

import gzip
import io
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from .io import atomic_write
from .text import normalize_text
from .tokenizer import SPACE, UNK, Tokenizer

SMOOTHING = ("kneser_ney", "good_turing", "katz_backoff")
MARKERS = ("<s>", "</s>", "<unk>")
SUFFIXES = (".arpa", ".arpa.gz")


def is_ngram_path(path: str | Path) -> bool:
    return str(path).endswith(SUFFIXES)


def _open_text(path: Path, mode: str = "rt"):
    return gzip.open(path, mode, encoding="utf-8") if path.suffix == ".gz" else open(path, mode, encoding="utf-8")


def build_ngram(texts: Sequence[str | Path], out: str | Path, order: int = 2, smoothing: str = "kneser_ney",
                words: str | Path | None = None, progress: bool = True) -> list[int]:
    """Estimate an `order`-gram from the lines of `texts` (normalised with `normalize_text`) and
    write it to `out` (.arpa or .arpa.gz) atomically. `words`: a word list (one per line, e.g.
    /usr/share/dict/words) whose normalised single words join the vocabulary as unigrams seen
    once, so the lexicon also spells words the text lacks. Returns the number of n-grams per order."""
    from arpabo import ArpaBoLM

    if smoothing not in SMOOTHING:
        raise ValueError(f"smoothing {smoothing!r}: choose one of {', '.join(SMOOTHING)}")
    if order < 2:
        raise ValueError("order must be at least 2 (KenLM reads no unigram-only models)")
    out = Path(out)
    if not is_ngram_path(out):
        raise ValueError(f"{out}: an n-gram LM file ends in {' or '.join(SUFFIXES)}")
    lm = ArpaBoLM(max_order=order, smoothing_method=smoothing, unicode_norm=False)
    lines = 0
    for path in texts:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in tqdm(f, desc=f"n-gram counts {Path(path).name}", unit=" lines", disable=not progress):
                line = normalize_text(line)
                if line:
                    lm.read_corpus_line(line)
                    lines += 1
    if not lines:
        raise ValueError("no text to count n-grams from")
    if words is not None:
        extra = sorted({w for w in map(normalize_text, Path(words).read_text(errors="replace").splitlines())
                        if w and " " not in w})
        with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as f:
            f.write("\n".join(extra) + "\n")
            f.flush()
            lm.read_word_file(f.name, 1)
    lm.compute()
    buf = io.StringIO()
    lm.write(buf)
    counts: list[int] = []
    data = "".join(line + "\n" for line in _kenlm_layout(buf.getvalue().splitlines(), counts)).encode()
    with atomic_write(out, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if out.suffix == ".gz" else data)
    return counts


def _kenlm_layout(lines: Iterable[str], counts: list[int]) -> Iterable[str]:
    """arpabo's ARPA text -> KenLM's: from the ``\\data\\`` line on (no header comments), fields
    ``log10 prob <TAB> words [<TAB> backoff]``. Appends the n-gram count per order to `counts`."""
    order, started = 0, False
    for line in lines:
        if line.startswith("\\data\\"):
            started = True
        if not started:
            continue
        if line.startswith("ngram "):
            counts.append(int(line.split("=")[1]))
        m = re.match(r"\\(\d+)-grams:", line)
        if m:
            order = int(m.group(1))
        elif line.startswith("\\"):
            order = 0
        elif order and line.strip():
            p = line.split()
            line = "\t".join([p[0], " ".join(p[1:1 + order]), *p[1 + order:]])
        yield line


@dataclass
class NgramLM:
    """An ARPA file and its vocabulary (the unigrams, without <s>, </s>, <unk>)."""
    path: Path
    words: list[str]


def load_ngram(path: str | Path) -> NgramLM:
    """Read an ARPA file's unigrams (the rest is left to KenLM); clear errors for bad files."""
    from .checkpoint import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such LM file")
    words, in_unigrams = [], False
    try:
        with _open_text(path) as f:
            for line in f:
                if line.startswith("\\"):      # a section header: \data\, \1-grams:, \2-grams:, ...
                    if in_unigrams:
                        break
                    in_unigrams = line.startswith("\\1-grams:")
                elif in_unigrams:
                    p = line.split("\t")
                    if len(p) >= 2 and p[1].strip() not in MARKERS:
                        words.append(p[1].strip())
    except (OSError, UnicodeDecodeError, EOFError) as e:
        raise CheckpointError(f"{path}: cannot read ARPA file ({e})") from None
    if not words:
        raise CheckpointError(f"{path}: not an ARPA file with tab-separated unigrams")
    return NgramLM(path, words)


def lexicon(words: Sequence[str], tokenizer: Tokenizer) -> dict[str, list[int]]:
    """Each of `words` the tokenizer can spell -> its token ids (one batched encode). Words that
    need <unk>, the char tokenizer's word separator or a piece holding whitespace are left out."""
    bad = {i for i, p in enumerate(tokenizer.pieces) if p in (UNK, SPACE) or any(c.isspace() for c in p)}
    return {w: ids for w, ids in zip(words, tokenizer.encode_batch(words)) if ids and bad.isdisjoint(ids)}


def spell(word: str, tokenizer: Tokenizer) -> list[str] | None:
    """`word` as tokenizer pieces for the lexicon; None when the tokenizer cannot spell it."""
    ids = lexicon([word], tokenizer).get(word)
    return [tokenizer.pieces[i] for i in ids] if ids else None


def word_separator(tokenizer: Tokenizer) -> str:
    """The lexicon search's silence between words: a char tokenizer's space, else the blank (BPE
    pieces carry their word boundary)."""
    return SPACE if tokenizer.kind == "char" else tokenizer.pieces[tokenizer.blank_id]
