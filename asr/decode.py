"""CTC decoding: greedy and beam search (flashlight-text's decoders, as in torchaudio's
`ctc_decoder`): lexicon-free over tokens (alone or with the token-level LSTM LM), or over the
words of a word n-gram LM.

`DecodingOptions` selects the strategy; every strategy returns `DecodingResult`s.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field

import torch

from .ngram import NgramLM, lexicon, word_separator
from .tokenizer import UNK, Tokenizer


@dataclass
class DecodingOptions:
    beam_size: int = 1             # 1 = greedy
    beam_threshold: float = 25.0
    beam_size_token: int = 0       # beam search: tokens tried per hypothesis and frame (0 = min(4 x beam, vocab))
    lm_weight: float = 0.5         # shallow-fusion weight of the LM (when one is given)
    word_score: float = 1.5        # insertion bonus against the LM's deletions (only with an LM): per token
                                   # with the LSTM LM, per word with an n-gram; LM_DEFAULTS has tuned values
    blank_skip_threshold: float = 1.0    # beam search: runs of frames whose blank prob exceeds this are
                                         # cut to their first frame before the search (1.0 = keep all)


# Beam, LM weight and word score per kind of LM (and tokens per frame for the n-gram), tuned for the
# shipped model on dev.
LM_DEFAULTS = {"lstm": dict(beam_size=8, lm_weight=0.5, word_score=1.5),
               "ngram": dict(beam_size=128, beam_size_token=8, lm_weight=1.3, word_score=-0.5)}


@dataclass
class DecodingResult:
    text: str
    tokens: list[int]
    frames: list[int] = field(default_factory=list)   # encoder frame index of each token
    score: float = 0.0                                # log-probability (greedy) or beam score


def _check(log_probs: torch.Tensor, lengths: torch.Tensor, vocab_size: int) -> None:
    if log_probs.dim() != 3:
        raise ValueError(f"log_probs must be (B, T, V), got shape {tuple(log_probs.shape)}")
    if log_probs.shape[-1] != vocab_size:
        raise ValueError(f"log_probs has {log_probs.shape[-1]} classes, tokenizer has {vocab_size}")
    if lengths.shape != (log_probs.shape[0],):
        raise ValueError(f"lengths must be ({log_probs.shape[0]},), got {tuple(lengths.shape)}")


def skip_blank_runs(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int,
                    threshold: float) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """Cut each run of frames whose blank probability exceeds `threshold` to its first frame.

    One blank frame of every run stays, so repeated tokens stay separated; the removed frames are
    near-certain blanks, which change every hypothesis's score alike. Returns the compacted
    (B, T', V) log-probs, their lengths and, per utterance, the original index of each kept frame.
    """
    sure = log_probs[..., blank] > torch.log(torch.tensor(threshold))
    keep = ~(sure & torch.cat([torch.zeros_like(sure[:, :1]), sure[:, :-1]], dim=1))
    kept = [keep[b, :int(lengths[b])].nonzero().squeeze(1) for b in range(log_probs.shape[0])]
    out = torch.nn.utils.rnn.pad_sequence([log_probs[b, idx] for b, idx in enumerate(kept)], batch_first=True)
    return out, torch.tensor([len(idx) for idx in kept], dtype=lengths.dtype), kept


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer) -> list[DecodingResult]:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    _check(log_probs, lengths, tokenizer.vocab_size)
    best, ids = log_probs.detach().max(dim=-1)
    out = []
    for b in range(log_probs.shape[0]):
        n = int(lengths[b])
        seq = ids[b, :n].tolist()
        tokens, frames, prev = [], [], tokenizer.blank_id
        for t, tok in enumerate(seq):
            if tok != prev and tok != tokenizer.blank_id:
                tokens.append(tok)
                frames.append(t)
            prev = tok
        out.append(DecodingResult(tokenizer.decode(tokens), tokens, frames, float(best[b, :n].sum())))
    return out


class LexiconSearch:
    """What a word n-gram search needs and no decoding option changes, built once per (tokenizer,
    LM): the word dictionary, KenLM, and the trie of the words' spellings (each scored by its
    unigram, smeared)."""

    def __init__(self, tokenizer: Tokenizer, lm: NgramLM):
        from flashlight.lib.text.decoder import SmearingMode, Trie
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary

        spelled = lexicon(lm.words, tokenizer)
        if not spelled:
            raise ValueError(f"{lm.path}: the tokenizer spells none of the LM's words")
        self.words = Dictionary([*spelled, UNK])
        self.unk = self.words.get_index(UNK)
        self.words.set_default_index(self.unk)
        with _quiet_stderr():       # KenLM prints a progress bar while it reads the file
            self.lm = KenLM(str(lm.path), self.words)
        self.silence = tokenizer.pieces.index(word_separator(tokenizer))
        self.trie = Trie(tokenizer.vocab_size, self.silence)
        start = self.lm.start(False)
        for i, ids in enumerate(spelled.values()):
            self.trie.insert(ids, i, self.lm.score(start, i)[1])
        self.trie.smear(SmearingMode.MAX)


class BeamSearchDecoder:
    """Beam search (flashlight-text's decoders), optionally with a language model fused with
    weight `lm_weight`.

    `lm` is an `asr.lm.LSTMLM` (or any torchaudio `CTCDecoderLM`): lexicon-free search over
    tokens, `word_score` added per emitted token. Or an `asr.ngram.NgramLM`: the search emits only
    the LM's words (each spelled by the tokenizer), KenLM scores them, `word_score` is added per
    word; `search` reuses the `LexiconSearch` of another decoder with the same tokenizer and LM.
    """

    def __init__(self, tokenizer: Tokenizer, options: DecodingOptions, lm=None, search: LexiconSearch | None = None):
        from flashlight.lib.text.decoder import (CriterionType, LexiconDecoder, LexiconDecoderOptions,
                                                 LexiconFreeDecoder, LexiconFreeDecoderOptions, ZeroLM)

        if options.beam_size_token < 0:     # flashlight would crash on it
            raise ValueError(f"beam_size_token must be >= 0 (0 = 4 x the beam), got {options.beam_size_token}")
        self.tokenizer, self.options, self.lm_source = tokenizer, options, lm
        blank = tokenizer.blank_id
        tokens = options.beam_size_token or options.beam_size * 4
        common = dict(beam_size=options.beam_size, beam_size_token=min(tokens, tokenizer.vocab_size),
                      beam_threshold=options.beam_threshold, sil_score=0.0, log_add=True,
                      criterion_type=CriterionType.CTC)
        if isinstance(lm, NgramLM):
            self.search = search or LexiconSearch(tokenizer, lm)
            self.decoder = LexiconDecoder(
                LexiconDecoderOptions(lm_weight=options.lm_weight, word_score=options.word_score,
                                      unk_score=float("-inf"), **common),
                self.search.trie, self.search.lm, self.search.silence, blank, self.search.unk, [], False)
            return
        self.search = None
        if lm is None:
            self.lm, weight = ZeroLM(), 0.0
        else:
            from torchaudio.models.decoder import CTCDecoderLM
            if not isinstance(lm, CTCDecoderLM):
                from .lm import FusionLM
                lm = FusionLM(lm, token_bonus=options.word_score / options.lm_weight if options.lm_weight else 0.0)
            self.lm, weight = lm, options.lm_weight     # held here: the decoder keeps no Python reference
        self.decoder = LexiconFreeDecoder(LexiconFreeDecoderOptions(lm_weight=weight, **common),
                                          self.lm, blank, blank, [])

    def with_options(self, options: DecodingOptions) -> "BeamSearchDecoder":
        """The same search with other options; an n-gram's `LexiconSearch` is reused, not rebuilt."""
        return BeamSearchDecoder(self.tokenizer, options, self.lm_source, self.search)

    def __call__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[DecodingResult]:
        return [hyps[0] if hyps else DecodingResult("", []) for hyps in self.nbest(log_probs, lengths, 1)]

    def nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor, n: int | None = None) -> list[list[DecodingResult]]:
        """Per utterance, the distinct transcripts left in the final beam, best score first (at most
        `n`; all when None): the input of a second-pass rescoring."""
        _check(log_probs, lengths, self.tokenizer.vocab_size)
        log_probs, lengths = log_probs.detach().float().cpu().contiguous(), lengths.cpu()
        kept = None
        if self.options.blank_skip_threshold < 1.0 and log_probs.shape[1]:
            log_probs, lengths, kept = skip_blank_runs(log_probs, lengths, self.tokenizer.blank_id,
                                                       self.options.blank_skip_threshold)
        B, _, V = log_probs.shape
        row_bytes = log_probs.element_size() * log_probs.stride(0)
        out = []
        for b in range(B):
            results, seen = [], set()
            for hyp in self.decoder.decode(log_probs.data_ptr() + b * row_bytes, int(lengths[b]), V):
                # One entry per frame, plus one before the first: a token is emitted where it starts.
                path, tokens, frames = hyp.tokens, [], []
                for i, t in enumerate(path):
                    if t >= 0 and t != self.tokenizer.blank_id and (i == 0 or t != path[i - 1]):
                        tokens.append(int(t))
                        frames.append(max(i - 1, 0))
                text = self.tokenizer.decode(tokens)
                if text in seen:        # the beam keeps paths that differ only in their frames
                    continue
                seen.add(text)
                if kept is not None:
                    frames = [int(kept[b][min(f, len(kept[b]) - 1)]) for f in frames]
                results.append(DecodingResult(text, tokens, frames, float(hyp.score)))
                if n is not None and len(results) == n:
                    break
            out.append(results)
        return out


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 (C++ code's stderr) to /dev/null for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def make_decoder(tokenizer: Tokenizer, options: DecodingOptions | None = None, lm=None):
    """A callable ``(log_probs (B, T, V), lengths) -> list[DecodingResult]``: greedy for
    beam_size 1 without an LM, else beam search (with the LM fused when given). Build it once and
    reuse it: making a beam decoder has a cost."""
    options = options or DecodingOptions()
    if options.beam_size <= 1 and lm is None:
        return lambda log_probs, lengths: greedy_decode(log_probs, lengths, tokenizer)
    return BeamSearchDecoder(tokenizer, options, lm)


def decode(log_probs: torch.Tensor, lengths: torch.Tensor, tokenizer: Tokenizer,
           options: DecodingOptions | None = None, lm=None) -> list[DecodingResult]:
    """Decode a batch of CTC log-probabilities (B, T, V) with the strategy `options` selects."""
    return make_decoder(tokenizer, options, lm)(log_probs, lengths)
