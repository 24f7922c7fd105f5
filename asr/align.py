"""Word timings by CTC forced alignment (torchaudio.functional.forced_align) of known tokens.

Used for the decoded tokens of a transcript (word start/end/confidence) and for `asr align`-style
alignment of a given text. Confidence is the mean frame posterior of the word's tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from .tokenizer import SPACE, Tokenizer

WORD_START = "\u2581"   # sentencepiece's word-start mark


@dataclass
class Word:
    word: str
    start: float      # seconds
    end: float
    confidence: float

    def to_dict(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 3)}


@dataclass
class Span:
    token: int
    start: int        # first frame
    end: int          # one past the last frame
    score: float      # mean posterior over the span's frames


def align_tokens(log_probs: torch.Tensor, tokens: list[int]) -> list[Span]:
    """Frame spans of `tokens` in (T, V) CTC log-probs (Viterbi forced alignment)."""
    if not tokens:
        return []
    lp = log_probs.float().cpu()[None]
    targets = torch.tensor([tokens], dtype=torch.int32)
    try:
        ali, scores = AF.forced_align(lp, targets, blank=0)
    except RuntimeError:   # too few frames for the tokens: fall back to one frame per token
        return [Span(t, i, i + 1, 0.0) for i, t in enumerate(tokens)][: lp.shape[1]]
    return [Span(s.token, s.start, s.end, float(s.score)) for s in AF.merge_tokens(ali[0], scores[0].exp())]


def spans_to_words(spans: list[Span], tokenizer: Tokenizer, frame_seconds: float, offset: float = 0.0) -> list[Word]:
    """Group token spans into words (BPE: a piece starting with ▁ opens a word; chars: | separates)."""
    words: list[list[Span]] = []
    for sp in spans:
        piece = tokenizer.pieces[sp.token]
        if piece == SPACE:
            words.append([])
            continue
        if piece.startswith(WORD_START) or not words:
            words.append([])
        words[-1].append(sp)
    out = []
    for group in words:
        if not group:
            continue
        text = tokenizer.decode([sp.token for sp in group]).strip()
        if not text:
            continue
        frames = sum(sp.end - sp.start for sp in group)
        conf = sum(sp.score * (sp.end - sp.start) for sp in group) / max(frames, 1)
        out.append(Word(text, offset + group[0].start * frame_seconds, offset + group[-1].end * frame_seconds, conf))
    return out
