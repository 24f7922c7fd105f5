"""Word n-gram language models (ARPA files) for lexicon-constrained beam search.

`build_ngram` estimates an interpolated modified Kneser-Ney n-gram over words (Chen & Goodman,
1998, with KenLM's conventions: n-grams that start with <s> keep their counts, unigrams are
interpolated with a uniform distribution over the vocabulary) and writes an ARPA file in the layout
KenLM reads (tab-separated; plain or ``.gz``). It is estimated here because no pip-installable
estimator does it right: KenLM's ``lmplz`` is not in its PyPI package, and PyPI ``arpabo`` (used
before) writes Kneser-Ney with every backoff weight 1 and no interpolation, a model whose
probabilities do not sum to one (it over-scores unseen word pairs, the empty sentence among them).
KenLM, inside flashlight-text's lexicon decoder (`asr.decode.LexiconSearch`), then scores words
during the search, and the LM's unigrams are the decoder's lexicon: each word is spelled with the
acoustic model's tokenizer (`lexicon`), so the search only emits words the LM knows. Against the
token-level LSTM (`asr.lm`), this fixes misspelt words and runs several times faster.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from .io import atomic_write
from .text import normalize_text
from .tokenizer import SPACE, UNK, Tokenizer

MARKERS = ("<s>", "</s>", "<unk>")
SUFFIXES = (".arpa", ".arpa.gz")
Gram = tuple[str, ...]


def is_ngram_path(path: str | Path) -> bool:
    return str(path).endswith(SUFFIXES)


def _open_text(path: Path, mode: str = "rt"):
    return gzip.open(path, mode, encoding="utf-8") if path.suffix == ".gz" else open(path, mode, encoding="utf-8")


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts for counts 1, 2 and 3+, from the counts of counts."""
    n = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:         # too little text for the estimate: Kneser and Ney's defaults
        return 0.5, 1.0, 1.5
    y = n1 / (n1 + 2 * n2)
    return tuple(min(float(k), max(0.0, k - (k + 1) * y * b / a))      # type: ignore[return-value]
                 for k, a, b in ((1, n1, n2), (2, n2, n3), (3, n3, n4)))


def kneser_ney(sentences: Iterable[Sequence[str]], order: int, words: Iterable[str] = (),
               prune: int = 0) -> tuple[dict[Gram, float], dict[Gram, float]]:
    """Interpolated modified Kneser-Ney over word sentences: (log10 probability, log10 backoff)
    per n-gram, for an ARPA file. `words` join the vocabulary (their probability comes from the
    uniform share); `prune` drops the highest order's n-grams seen `prune` times or fewer (orders
    of 3 or more), their mass going to the backoff, as KenLM's ``--prune`` does."""
    if order < 2:
        raise ValueError("order must be at least 2 (KenLM reads no unigram-only models)")
    raw: Counter[Gram] = Counter()
    vocab = {"</s>", "<unk>", *words}
    for sent in sentences:
        toks = ("<s>", *sent, "</s>")
        vocab.update(sent)
        for i in range(1, len(toks)):
            raw[toks[max(0, i - order + 1):i + 1]] += 1
    if not raw:
        raise ValueError("no text to count n-grams from")
    # Adjusted counts: the highest order and n-grams that start with <s> keep their counts; the
    # others count the distinct words seen before them.
    adjusted: dict[int, Counter[Gram]] = {order: Counter({g: c for g, c in raw.items() if len(g) == order})}
    for n in range(order - 1, 0, -1):
        adjusted[n] = Counter({g: c for g, c in raw.items() if len(g) == n})
        for g in adjusted[n + 1]:
            if g[1] != "<s>":
                adjusted[n][g[1:]] += 1
    probs: dict[Gram, float] = {}         # linear, every order
    backoffs: dict[Gram, float] = {}
    for n in range(1, order + 1):
        d = _discounts(adjusted[n].values())
        cut = prune if n == order and n >= 3 else 0
        total: Counter[Gram] = Counter()
        left: Counter[Gram] = Counter()   # the mass each context leaves to the order below
        for g, c in adjusted[n].items():
            total[g[:-1]] += c
            left[g[:-1]] += c if c <= cut else d[min(c, 3) - 1]
        if n == 1:
            t = total[()]
            uniform = left[()] / t / len(vocab)
            for w in vocab:
                c = adjusted[1][(w,)]
                probs[(w,)] = (c - d[min(c, 3) - 1]) / t + uniform if c else uniform
            continue
        for g, c in adjusted[n].items():
            if c > cut:
                h = g[:-1]
                probs[g] = (c - d[min(c, 3) - 1] + left[h] * probs[g[1:]]) / total[h]
        for h, t in total.items():
            backoffs[h] = math.log10(left[h] / t) if left[h] else -99.0
    logp = {g: math.log10(p) for g, p in probs.items()}
    logp[("<s>",)] = -99.0                # never predicted; KenLM's convention
    return logp, backoffs


def _arpa_lines(logp: dict[Gram, float], backoffs: dict[Gram, float], order: int) -> Iterable[str]:
    by_order: dict[int, list[Gram]] = {n: [] for n in range(1, order + 1)}
    for g in logp:
        by_order[len(g)].append(g)
    yield "\\data\\"
    for n in by_order:
        yield f"ngram {n}={len(by_order[n])}"
    for n, grams in by_order.items():
        yield ""
        yield f"\\{n}-grams:"
        for g in sorted(grams):
            tail = f"\t{backoffs.get(g, 0.0):.6f}" if n < order else ""
            yield f"{logp[g]:.6f}\t{' '.join(g)}{tail}"
    yield ""
    yield "\\end\\"


def _sentences(texts: Sequence[str | Path], progress: bool) -> Iterable[list[str]]:
    """The normalised, non-empty lines of `texts` as word lists, read as they are counted."""
    for path in texts:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in tqdm(f, desc=f"n-gram counts {Path(path).name}", unit=" lines", disable=not progress):
                line = normalize_text(line)
                if line:
                    yield line.split()


def build_ngram(texts: Sequence[str | Path], out: str | Path, order: int = 3, words: str | Path | None = None,
                prune: int = 0, progress: bool = True) -> list[int]:
    """Estimate an `order`-gram (`kneser_ney`) from the lines of `texts` (normalised with
    `normalize_text`) and write it to `out` (.arpa or .arpa.gz) atomically. `words`: a word list
    (one per line, e.g. /usr/share/dict/words) whose normalised single words join the vocabulary,
    so the lexicon also spells words the text lacks. Returns the number of n-grams per order."""
    out = Path(out)
    if not is_ngram_path(out):
        raise ValueError(f"{out}: an n-gram LM file ends in {' or '.join(SUFFIXES)}")
    if order < 2:
        raise ValueError("order must be at least 2 (KenLM reads no unigram-only models)")
    extra = []
    if words is not None:
        extra = [w for w in map(normalize_text, Path(words).read_text(errors="replace").splitlines())
                 if w and " " not in w]
    logp, backoffs = kneser_ney(_sentences(texts, progress), order, extra, prune)
    data = "".join(line + "\n" for line in _arpa_lines(logp, backoffs, order)).encode()
    with atomic_write(out, "wb") as f:
        f.write(gzip.compress(data, mtime=0) if out.suffix == ".gz" else data)
    counts = Counter(len(g) for g in logp)
    return [counts[n] for n in range(1, order + 1)]


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
