"""Tokenizers for CTC targets: sentencepiece BPE (default) or characters.

Index 0 is always the CTC blank. A tokenizer serialises to a plain dict (`to_dict`) that is saved
inside the model checkpoint, so a model file carries its own vocabulary.
"""

from __future__ import annotations

import io
from typing import Iterable, Sequence

import sentencepiece as spm

from .text import ALPHABET

BLANK = "<blk>"
UNK = "<unk>"
SPACE = "|"  # the word separator in character vocabularies


class Tokenizer:
    """Common interface: `encode(text) -> ids`, `decode(ids) -> text`, `pieces` (id -> string)."""

    kind: str
    pieces: list[str]

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    @property
    def blank_id(self) -> int:
        return 0

    def encode(self, text: str) -> list[int]:
        raise NotImplementedError

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: Sequence[int]) -> str:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: dict) -> "Tokenizer":
        if d["kind"] == "bpe":
            return BPETokenizer(bytes(d["model"]))
        if d["kind"] == "char":
            return CharTokenizer(list(d["pieces"]))
        raise ValueError(f"unknown tokenizer kind {d['kind']!r}")


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, pieces: list[str] | None = None):
        self.pieces = pieces or [BLANK, UNK, SPACE, *ALPHABET]
        self._index = {p: i for i, p in enumerate(self.pieces)}

    def encode(self, text: str) -> list[int]:
        unk = self._index[UNK]
        return [self._index.get(SPACE if c == " " else c, unk) for c in " ".join(text.split())]

    def decode(self, ids: Sequence[int]) -> str:
        chars = [self.pieces[i] for i in ids if i > 1]
        return " ".join("".join(chars).replace(SPACE, " ").split())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "pieces": list(self.pieces)}


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, model_proto: bytes):
        self._proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self.pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        if self.pieces[0] != BLANK:
            raise ValueError("sentencepiece model must have <blk> at id 0 (train it with train_tokenizer)")

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts))

    def decode(self, ids: Sequence[int]) -> str:
        return self.sp.decode([int(i) for i in ids if i != 0])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "model": self._proto}


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 256) -> Tokenizer:
    """Train a tokenizer on normalised sentences. `kind` is "bpe" or "char"."""
    if kind == "char":
        return CharTokenizer()
    if kind != "bpe":
        raise ValueError(f"tokenizer kind must be 'bpe' or 'char', not {kind!r}")
    sentences = [t for t in texts if t.strip()]
    if not sentences:
        raise ValueError("no text to train the tokenizer on")
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
        model_type="bpe", character_coverage=1.0, pad_id=0, pad_piece=BLANK, unk_id=1,
        bos_id=-1, eos_id=-1, hard_vocab_limit=False, num_threads=1,
        input_sentence_size=2_000_000, shuffle_input_sentence=True, minloglevel=2)
    return BPETokenizer(model.getvalue())
