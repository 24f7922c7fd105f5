"""Property-based tests (hypothesis) for audio loading, normalisation, tokenisation and decoding."""

import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import load_audio
from asr.decode import greedy_decode
from asr.text import normalize_text
from asr.tokenizer import CharTokenizer, train_tokenizer

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_BPE = None


def bpe():
    global _BPE
    if _BPE is None:
        words = "the quick brown fox jumps over lazy dog it's a test of speech recognition".split()
        rng = np.random.default_rng(0)
        _BPE = train_tokenizer([" ".join(rng.choice(words, 8)) for _ in range(300)], "bpe", 60)
    return _BPE


@SETTINGS
@given(st.text(max_size=200))
def test_normalized_text_is_spoken_form(text):
    out = normalize_text(text)
    assert re.fullmatch(r"[a-z']*( [a-z']+)*", out)
    assert normalize_text(out) == out


@SETTINGS
@given(st.from_regex(r"[a-z]{1,8}( [a-z']{1,8}){0,6}", fullmatch=True))
def test_tokenizers_round_trip(text):
    text = normalize_text(text)
    char = CharTokenizer()
    assert char.decode(char.encode(text)) == text
    assert 0 not in char.encode(text)
    ids = bpe().encode(text)
    assert 0 not in ids
    assert bpe().decode(ids) == text


@SETTINGS
@given(st.integers(1, 40), st.integers(0, 2**31 - 1))
def test_greedy_decode_invariants(t, seed):
    tok = CharTokenizer()
    g = torch.Generator().manual_seed(seed)
    lp = torch.randn(2, t, tok.vocab_size, generator=g).log_softmax(-1)
    lengths = torch.tensor([t, max(1, t // 2)])
    for b, (res, n) in enumerate(zip(greedy_decode(lp, lengths, tok), lengths.tolist())):
        assert 0 not in res.tokens
        assert len(res.tokens) == len(res.frames) <= n
        assert res.frames == sorted(set(res.frames)) and all(f < n for f in res.frames)
        path = lp[b, :n].argmax(-1).tolist()
        assert res.tokens == [p for i, p in enumerate(path) if p != 0 and (i == 0 or path[i - 1] != p)]


@SETTINGS
@given(st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]), st.integers(1, 4), st.integers(1, 20000),
       st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "PCM_U8"]), st.integers(0, 2**31 - 1))
def test_load_audio_any_shape(sr, channels, frames, subtype, seed):
    x = np.random.default_rng(seed).uniform(-1, 1, (frames, channels)).astype(np.float32)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.wav"
        sf.write(p, x, sr, subtype=subtype)
        wav = load_audio(p)
    assert wav.dim() == 1 and wav.dtype == torch.float32
    assert abs(wav.numel() - frames * 16000 / sr) <= 1
    assert torch.isfinite(wav).all()
